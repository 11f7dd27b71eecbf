/*
 * zipf.c - "zipf:theta=T,rate=R": random writes (default theta 0.99, 100000
 * writes per second) with a skewed hot set, the
 * way an OLTP database touches its buffer pool.
 *
 * Page ranks follow a Zipf distribution with exponent theta (0 <= theta <
 * 1, default 0.99), drawn with the method of Gray et al., "Quickly
 * Generating Billion-Record Synthetic Databases" (SIGMOD 1994), as YCSB
 * does.  Rank k maps to page (k * P) mod n for a P coprime to n, which
 * spreads the hot set over the region instead of packing it at the start.
 * Each write stores a 64-bit word at a random aligned offset of the page.
 *
 * Registers: r0..r3 = xoshiro256** state, r4 = writes done.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

#define WRITES_PER_STEP 64

struct zipf_table {
	double zetan, alpha, eta, half_pow_theta;
	uint64_t n, stride;
};

static int zipf_param(struct workload *w, const char *key, const char *val,
		      struct ferry_error *err)
{
	char *end;
	double t;

	if (strcmp(key, "theta"))
		return 0;
	t = strtod(val, &end);
	if (*end || !*val || !(t >= 0 && t < 1))
		return ferry_error_set(err, -EINVAL,
				       "workload zipf: theta=%s: expected a "
				       "number from 0 up to (not including) 1",
				       val);
	w->theta = t;
	return 1;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

static int zipf_prepare(struct workload *w, const struct guest_mem *m,
			struct ferry_error *err)
{
	struct zipf_table *z = calloc(1, sizeof(*z));
	double theta = w->theta, zeta2;
	uint64_t i;

	(void)m;
	if (!z)
		return ferry_error_set(err, -ENOMEM, "zipf: out of memory");
	z->n = w->region_pages;
	for (i = 1; i <= z->n; i++)
		z->zetan += 1.0 / pow((double)i, theta);
	zeta2 = 1.0 + 1.0 / pow(2.0, theta);
	z->alpha = 1.0 / (1.0 - theta);
	z->eta = (1.0 - pow(2.0 / (double)z->n, 1.0 - theta)) /
		 (1.0 - zeta2 / z->zetan);
	z->half_pow_theta = 1.0 + pow(0.5, theta);
	/* an odd stride near n * golden ratio, coprime to n */
	z->stride = ((uint64_t)((double)z->n * 0.6180339887) | 1);
	while (gcd(z->stride, z->n) != 1)
		z->stride += 2;
	w->priv = z;
	return 0;
}

static void zipf_release(struct workload *w)
{
	free(w->priv);
}

static void zipf_init(const struct workload *w, unsigned thread, uint64_t seed,
		      struct wl_regs *r)
{
	(void)w;
	memset(r, 0, sizeof(*r));
	xoshiro_seed(r->r, seed ^ (0x5a17ull * (thread + 1)));
}

static uint64_t zipf_rank(const struct zipf_table *z, double u)
{
	double uz = u * z->zetan;
	uint64_t k;

	if (uz < 1.0)
		return 0;
	if (uz < z->half_pow_theta)
		return 1;
	k = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
	return k < z->n ? k : z->n - 1;
}

static uint64_t zipf_step(const struct workload *w, const struct guest_mem *m,
			  unsigned thread, struct wl_regs *r)
{
	const struct zipf_table *z = w->priv;
	const uint64_t words = (1ull << m->page_shift) / 8;
	int i;

	(void)thread;
	for (i = 0; i < WRITES_PER_STEP; i++) {
		uint64_t x = xoshiro_next(r->r);
		double u = (double)(x >> 11) * 0x1.0p-53;
		uint64_t rank = zipf_rank(z, u);
		uint64_t gpn =
			(uint64_t)(((unsigned __int128)rank * z->stride) %
				   z->n);
		uint64_t word = xoshiro_next(r->r) % words;
		uint32_t block;
		uint8_t *p = gmem_page(m, gpn, &block) + word * 8;

		__atomic_store_n((uint64_t *)(void *)p, x | 1,
				 __ATOMIC_RELAXED);
		gmem_wrote(m, block, p, 8);
		r->r[4]++;
	}
	return WRITES_PER_STEP;
}

const struct workload_ops workload_zipf = {
	.name = "zipf",
	.id = 2,
	.default_rate = 100000,
	.param = zipf_param,
	.prepare = zipf_prepare,
	.init_regs = zipf_init,
	.step = zipf_step,
	.release = zipf_release,
};
