/*
 * stress.c - "stress:bytes=B,threads=N,keep=on|off", after
 * `stress --vm N --vm-bytes B [--vm-keep]`.
 *
 * Thread t owns an equal slice of the first B bytes of RAM and writes one
 * 64-bit word at the start of each page, page after page, pass after pass.
 * keep=off writes a value that depends on the pass (the page's content
 * changes every pass); keep=on writes the same value every pass (the page
 * is dirtied but its content stays the same after the first pass).
 *
 * Registers: r0 = pass (from 1), r1 = next page within the slice.
 * Invariant while stopped: pages of the slice before r1 hold
 * stress_value(gpn, r0), the others stress_value(gpn, r0 - 1) (or their
 * fill content in pass 1).
 */
#include <errno.h>
#include <string.h>

#include "workload.h"

#define PAGES_PER_STEP 64

uint64_t stress_value(uint64_t gpn, uint64_t pass, bool keep)
{
	uint64_t s = gpn * 0x9e3779b97f4a7c15ull ^ (keep ? 0 : pass);

	return splitmix64(&s) | 1; /* never zero: a written page is not a
				      zero page */
}

static void slice(const struct workload *w, unsigned t, uint64_t *first,
		  uint64_t *count)
{
	uint64_t n = w->region_pages;

	*first = n * t / w->threads;
	*count = n * (t + 1) / w->threads - *first;
}

static int stress_param(struct workload *w, const char *key, const char *val,
			struct ferry_error *err)
{
	if (strcmp(key, "keep"))
		return 0;
	if (!strcmp(val, "on"))
		w->keep = true;
	else if (!strcmp(val, "off"))
		w->keep = false;
	else
		return ferry_error_set(err, -EINVAL,
				       "workload stress: keep=%s: expected on "
				       "or off",
				       val);
	return 1;
}

static void stress_init(const struct workload *w, unsigned thread,
			uint64_t seed, struct wl_regs *r)
{
	(void)w, (void)thread, (void)seed;
	memset(r, 0, sizeof(*r));
	r->r[0] = 1;
}

static uint64_t stress_step(const struct workload *w, const struct guest_mem *m,
			    unsigned thread, struct wl_regs *r)
{
	uint64_t first, count, i;

	slice(w, thread, &first, &count);
	if (r->r[1] >= count) { /* a saved position from a smaller slice */
		r->r[1] = 0;
		r->r[0]++;
	}
	for (i = 0; i < PAGES_PER_STEP; i++) {
		uint64_t gpn = first + r->r[1];
		uint64_t v = stress_value(gpn, r->r[0], w->keep);
		uint32_t block;
		uint8_t *p = gmem_page(m, gpn, &block);

		__atomic_store_n((uint64_t *)(void *)p, v, __ATOMIC_RELAXED);
		gmem_wrote(m, block, p, sizeof(v));
		if (++r->r[1] == count) {
			r->r[1] = 0;
			r->r[0]++;
		}
	}
	return PAGES_PER_STEP;
}

const struct workload_ops workload_stress = {
	.name = "stress",
	.id = 1,
	.param = stress_param,
	.init_regs = stress_init,
	.step = stress_step,
};
