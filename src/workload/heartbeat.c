/* heartbeat.c - the heartbeat vCPU's tick and its device section. */
#include <errno.h>

#include "heartbeat.h"
#include "le.h"

#define HEARTBEAT_SECTION_LEN 32

void heartbeat_init(struct heartbeat *hb, unsigned period_us)
{
	hb->period_us = period_us;
	atomic_store(&hb->ticks, 0);
	atomic_store(&hb->max_stall_us, 0);
	atomic_store(&hb->window_stall_us, 0);
	hb->last_tick_ns = 0;
}

static void raise_max(_Atomic uint64_t *m, uint64_t v)
{
	uint64_t cur = atomic_load(m);

	while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
		;
}

void heartbeat_tick(struct heartbeat *hb, uint64_t now)
{
	if (hb->last_tick_ns && now > hb->last_tick_ns) {
		uint64_t gap_us = (now - hb->last_tick_ns) / 1000;
		uint64_t stall = gap_us > hb->period_us ? gap_us - hb->period_us
							: 0;

		raise_max(&hb->max_stall_us, stall);
		raise_max(&hb->window_stall_us, stall);
	}
	hb->last_tick_ns = now;
	atomic_fetch_add(&hb->ticks, 1);
}

/* Section "heartbeat" v1: ticks, max stall (us), last tick (realtime ns),
 * period (us), all le64. */
int heartbeat_save(void *opaque, struct ferry_buf *out)
{
	struct heartbeat *hb = opaque;
	int rc = 0;

	rc |= ferry_buf_put_le64(out, atomic_load(&hb->ticks));
	rc |= ferry_buf_put_le64(out, atomic_load(&hb->max_stall_us));
	rc |= ferry_buf_put_le64(out, hb->last_tick_ns);
	rc |= ferry_buf_put_le64(out, hb->period_us);
	return rc ? -ENOMEM : 0;
}

int heartbeat_load(void *opaque, uint32_t version, const uint8_t *data,
		   size_t len, struct ferry_error *err)
{
	struct heartbeat *hb = opaque;
	uint64_t period;

	if (version != 1)
		return ferry_error_set(err, -EPROTONOSUPPORT,
				       "heartbeat section version %u (this "
				       "guest loads version 1)",
				       version);
	if (len != HEARTBEAT_SECTION_LEN)
		return ferry_error_set(err, -EBADMSG,
				       "heartbeat section of %zu bytes, "
				       "expected %d",
				       len, HEARTBEAT_SECTION_LEN);
	period = le64_load(data + 24);
	if (period != hb->period_us)
		return ferry_error_set(
			err, -EINVAL,
			"heartbeat period %llu us on the source, "
			"%u us here",
			(unsigned long long)period, hb->period_us);
	atomic_store(&hb->ticks, le64_load(data));
	atomic_store(&hb->max_stall_us, le64_load(data + 8));
	hb->last_tick_ns = le64_load(data + 16);
	return 0;
}
