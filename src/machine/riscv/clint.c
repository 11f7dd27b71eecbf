/*
 * clint.c - the SiFive CLINT at 0x2000000 (msip at 0x0 + 4 * hart,
 * mtimecmp at 0x4000 + 8 * hart, mtime at 0xbff8) and the guest's time
 * it shows: RV_TIMEBASE_HZ ticks of the host's CLOCK_MONOTONIC plus an
 * offset, frozen while the machine is stopped so that a guest never
 * sees the time it spent stopped or in flight to another host.
 *
 * Beside mtimecmp each hart has the S-mode timer that SBI set_timer
 * programs (what OpenSBI keeps in mtimecmp for the kernel): STIP is
 * high while the time is at or past it, as MTIP is for mtimecmp.  Timer
 * lines are levels recomputed whenever a compare value or the time is
 * set, and by each hart's thread between its slices and when it wakes.
 *
 * Everything is atomic: harts read the time on every rdtime.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "devices.h"
#include "le.h"

#define MSIP_BASE     0x0
#define MTIMECMP_BASE 0x4000
#define MTIME	      0xbff8
#define NS_PER_TICK   (1000000000ull / RV_TIMEBASE_HZ)

static uint64_t host_ticks(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) /
	       NS_PER_TICK;
}

void rv_clint_init(struct rv_clint *c, unsigned nharts,
		   void (*set_irq)(void *, unsigned, enum rv_irq, bool),
		   void *opaque)
{
	unsigned i;

	memset(c, 0, sizeof(*c));
	c->nharts = nharts;
	c->set_irq = set_irq;
	c->opaque = opaque;
	atomic_store(&c->frozen, true);
	atomic_store(&c->frozen_at, 0);
	/* no timer fires before the guest arms one */
	for (i = 0; i < RV_MAX_HARTS; i++) {
		atomic_store(&c->mtimecmp[i], UINT64_MAX);
		atomic_store(&c->stimecmp[i], UINT64_MAX);
	}
}

uint64_t rv_clint_time(const struct rv_clint *c)
{
	if (atomic_load(&c->frozen))
		return atomic_load(&c->frozen_at);
	return host_ticks() + (uint64_t)atomic_load(&c->offset);
}

uint64_t rv_clint_time_cb(void *opaque)
{
	return rv_clint_time(opaque);
}

void rv_clint_set_time(struct rv_clint *c, uint64_t ticks)
{
	unsigned i;

	if (atomic_load(&c->frozen))
		atomic_store(&c->frozen_at, ticks);
	else
		atomic_store(&c->offset, (int64_t)(ticks - host_ticks()));
	for (i = 0; i < c->nharts; i++)
		rv_clint_update(c, i);
}

void rv_clint_freeze(struct rv_clint *c)
{
	if (atomic_load(&c->frozen))
		return;
	atomic_store(&c->frozen_at, rv_clint_time(c));
	atomic_store(&c->frozen, true);
}

void rv_clint_thaw(struct rv_clint *c)
{
	if (!atomic_load(&c->frozen))
		return;
	atomic_store(&c->offset,
		     (int64_t)(atomic_load(&c->frozen_at) - host_ticks()));
	atomic_store(&c->frozen, false);
}

void rv_clint_update(struct rv_clint *c, unsigned hart)
{
	uint64_t t;

	if (hart >= c->nharts || !c->set_irq)
		return;
	t = rv_clint_time(c);
	c->set_irq(c->opaque, hart, RV_IRQ_MTI,
		   t >= atomic_load(&c->mtimecmp[hart]));
	c->set_irq(c->opaque, hart, RV_IRQ_STI,
		   t >= atomic_load(&c->stimecmp[hart]));
}

void rv_clint_set_stimecmp(struct rv_clint *c, unsigned hart, uint64_t v)
{
	if (hart >= c->nharts)
		return;
	atomic_store(&c->stimecmp[hart], v);
	rv_clint_update(c, hart);
}

uint64_t rv_clint_deadline(const struct rv_clint *c, unsigned hart)
{
	uint64_t t = rv_clint_time(c), d = UINT64_MAX, v;

	if (hart >= c->nharts)
		return d;
	v = atomic_load(&c->mtimecmp[hart]);
	if (v > t && v < d)
		d = v;
	v = atomic_load(&c->stimecmp[hart]);
	if (v > t && v < d)
		d = v;
	return d;
}

uint64_t rv_clint_host_ns(const struct rv_clint *c, uint64_t ticks)
{
	uint64_t host;

	if (atomic_load(&c->frozen) || ticks == UINT64_MAX)
		return UINT64_MAX;
	host = ticks - (uint64_t)atomic_load(&c->offset);
	if (host > UINT64_MAX / NS_PER_TICK)
		return UINT64_MAX;
	return host * NS_PER_TICK;
}

/* A 4-byte access to one half of a 64-bit register, or all of it. */
static uint64_t merge(uint64_t old, uint64_t off, uint64_t val, unsigned size)
{
	unsigned shift = (off & 4) * 8;

	if (size == 8)
		return val;
	return (old & ~(0xffffffffull << shift)) |
	       ((val & 0xffffffffull) << shift);
}

static uint64_t extract(uint64_t v, uint64_t off, unsigned size)
{
	if (size == 8)
		return v;
	return (v >> ((off & 4) * 8)) & 0xffffffffull;
}

uint64_t rv_clint_read(void *opaque, uint64_t off, unsigned size)
{
	struct rv_clint *c = opaque;
	uint64_t h;

	if (off < MTIMECMP_BASE) {
		h = (off - MSIP_BASE) / 4;
		return h < RV_MAX_HARTS && h < c->nharts
			       ? atomic_load(&c->msip[h])
			       : 0;
	}
	if (off >= MTIME && off < MTIME + 8)
		return extract(rv_clint_time(c), off, size);
	h = (off - MTIMECMP_BASE) / 8;
	if (off < MTIME && h < RV_MAX_HARTS && h < c->nharts)
		return extract(atomic_load(&c->mtimecmp[h]), off, size);
	return 0;
}

void rv_clint_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct rv_clint *c = opaque;
	uint64_t h;

	if (off < MTIMECMP_BASE) {
		h = (off - MSIP_BASE) / 4;
		if (h >= RV_MAX_HARTS || h >= c->nharts || (off & 3))
			return;
		atomic_store(&c->msip[h], val & 1);
		if (c->set_irq)
			c->set_irq(c->opaque, h, RV_IRQ_MSI, val & 1);
		return;
	}
	if (off >= MTIME && off < MTIME + 8) {
		rv_clint_set_time(c, merge(rv_clint_time(c), off, val, size));
		return;
	}
	h = (off - MTIMECMP_BASE) / 8;
	if (off < MTIME && h < RV_MAX_HARTS && h < c->nharts) {
		atomic_store(&c->mtimecmp[h],
			     merge(atomic_load(&c->mtimecmp[h]), off, val,
				   size));
		rv_clint_update(c, h);
	}
}

/*
 * Saved, little-endian: le32 harts, le64 time, then for each hart le32
 * msip, le64 mtimecmp, le64 S-mode timer.
 */
int rv_clint_save(struct rv_clint *c, struct ferry_buf *out)
{
	unsigned i;
	int rc;

	rc = ferry_buf_reserve(out, RV_CLINT_SAVE_LEN(c->nharts));
	if (rc)
		return rc;
	ferry_buf_put_le32(out, c->nharts);
	ferry_buf_put_le64(out, rv_clint_time(c));
	for (i = 0; i < c->nharts; i++) {
		ferry_buf_put_le32(out, atomic_load(&c->msip[i]));
		ferry_buf_put_le64(out, atomic_load(&c->mtimecmp[i]));
		ferry_buf_put_le64(out, atomic_load(&c->stimecmp[i]));
	}
	return 0;
}

int rv_clint_load(struct rv_clint *c, const uint8_t *data, size_t len,
		  struct ferry_error *err)
{
	const uint8_t *d;
	uint32_t n, msip;
	unsigned i;

	if (len < 4)
		return ferry_error_set(err, -EINVAL,
				       "clint: state of %zu bytes, too short",
				       len);
	n = le32_load(data);
	if (n != c->nharts)
		return ferry_error_set(
			err, -EINVAL,
			"clint: state of %u harts, this machine has %u", n,
			c->nharts);
	if (len != RV_CLINT_SAVE_LEN(n))
		return ferry_error_set(err, -EINVAL,
				       "clint: state of %zu bytes, want %zu",
				       len, RV_CLINT_SAVE_LEN(n));
	for (i = 0, d = data + 12; i < n; i++, d += 20) {
		msip = le32_load(d);
		if (msip > 1)
			return ferry_error_set(
				err, -EINVAL,
				"clint: hart %u msip %u is not 0 or 1", i,
				msip);
	}
	for (i = 0, d = data + 12; i < n; i++, d += 20) {
		atomic_store(&c->msip[i], le32_load(d));
		atomic_store(&c->mtimecmp[i], le64_load(d + 4));
		atomic_store(&c->stimecmp[i], le64_load(d + 12));
		if (c->set_irq)
			c->set_irq(c->opaque, i, RV_IRQ_MSI, le32_load(d));
	}
	/* this updates every hart's timer lines too */
	rv_clint_set_time(c, le64_load(data + 4));
	return 0;
}
