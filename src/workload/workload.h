/*
 * workload.h - the reference guest's vCPU programs.
 *
 * A workload is a `struct workload_ops` found by name.  Its state per vCPU
 * is a small register file (`struct wl_regs`) that the guest saves as the
 * vCPU's device section; `step` does a bounded amount of work (well under
 * a millisecond) from the registers and guest memory alone, so a vCPU can
 * park between steps and a workload loaded on another host continues
 * exactly where it stopped.
 */
#ifndef FERRY_WORKLOAD_H
#define FERRY_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/dirty.h"
#include "ferry/error.h"
#include "ferry/guest.h"
#include "ferry/vm.h"

#define WL_NREGS 8

struct wl_regs {
	uint64_t r[WL_NREGS];
};

/* Guest memory as the workloads see it: pages numbered across blocks. */
struct guest_mem {
	const struct ferry_ramblock *blocks;
	uint32_t nblocks;
	uint64_t first_page[FERRY_GUEST_MAX_BLOCKS]; /* gpn of each block's page 0 */
	uint64_t npages;
	unsigned page_shift;
	struct ferry_dirty *marks; /* set when writes must be marked */
};

/* Host address of guest page gpn (< npages); *block receives its block. */
static inline uint8_t *gmem_page(const struct guest_mem *m, uint64_t gpn,
				 uint32_t *block)
{
	uint32_t b = 0;

	while (b + 1 < m->nblocks && gpn >= m->first_page[b + 1])
		b++;
	*block = b;
	return m->blocks[b].host + ((gpn - m->first_page[b]) << m->page_shift);
}

/* Tell the dirty tracker about a write when it needs telling. */
static inline void gmem_wrote(const struct guest_mem *m, uint32_t block,
			      const uint8_t *p, uint64_t len)
{
	if (m->marks)
		ferry_dirty_mark(m->marks, block,
				 (uint64_t)(p - m->blocks[block].host), len);
}

struct workload;

struct workload_ops {
	const char *name;
	uint32_t id;	     /* recorded in the vCPU section */
	bool idle;	     /* never steps: its vCPUs just wait */
	double default_rate; /* page writes per second when rate= is absent */
	/* One key=value of the spec. */
	int (*param)(struct workload *w, const char *key, const char *value,
		     struct ferry_error *err);
	/* Check parameters against the guest and build tables. */
	int (*prepare)(struct workload *w, const struct guest_mem *m,
		       struct ferry_error *err);
	void (*init_regs)(const struct workload *w, unsigned thread,
			  uint64_t seed, struct wl_regs *r);
	/* Bounded work; returns the page writes done. */
	uint64_t (*step)(const struct workload *w, const struct guest_mem *m,
			 unsigned thread, struct wl_regs *r);
	void (*release)(struct workload *w);
};

struct workload {
	const struct workload_ops *ops;
	unsigned threads; /* vCPUs that run it; others idle */
	double rate;	  /* page writes per second in all, 0 = unpaced */
	uint64_t bytes;	  /* region the workload writes, from gpn 0 */
	uint64_t region_pages;
	bool keep;    /* stress: rewrite the same values */
	double theta; /* zipf skew */
	void *priv;   /* tables built by prepare */
};

extern const struct workload_ops workload_idle;
extern const struct workload_ops workload_stress;
extern const struct workload_ops workload_zipf;

/*
 * Parse "NAME[:key=value,...]" into w.  Keys every workload takes:
 * threads=N (default: all vCPUs), rate=R (page writes per second, 0 means
 * as fast as it can), bytes=SIZE (region, from the start of RAM).
 */
int workload_parse(const char *spec, unsigned vcpus, struct workload *w,
		   struct ferry_error *err);
int workload_prepare(struct workload *w, const struct guest_mem *m,
		     struct ferry_error *err);
const struct workload_ops *workload_by_id(uint32_t id);
void workload_release(struct workload *w);

/* The word stress writes at the start of page gpn in a pass. */
uint64_t stress_value(uint64_t gpn, uint64_t pass, bool keep);

/* splitmix64 and xoshiro256**: small, fast, and state fits in registers. */
static inline uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t xoshiro_next(uint64_t s[4])
{
	uint64_t result = rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

static inline void xoshiro_seed(uint64_t s[4], uint64_t seed)
{
	int i;

	for (i = 0; i < 4; i++)
		s[i] = splitmix64(&seed);
}

#endif
