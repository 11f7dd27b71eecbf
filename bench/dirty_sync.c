/*
 * dirty_sync.c - bench/dirty-sync: the cost of one dirty-page sync.
 *
 * For 1 GiB and 8 GiB of guest RAM with 0.1% and 10% of pages written
 * since the previous sync, times one ferry_dirty_sync() per backend and
 * prints the median of several rounds.  Each round writes a fresh random
 * set of pages from this thread and checks that the sync reported exactly
 * that many, so a fast but wrong tracker cannot pass unnoticed.
 * Target (issue 2): a 0.1%-dirty sync of 8 GiB under 2 ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "ferry/dirty.h"
#include "ferry/guest.h"
#include "guest_internal.h"

#define ROUNDS 9

static int run_case(struct ferry_guest *g, const char *backend, double pct,
		    uint64_t seed)
{
	const struct ferry_vm *vm = ferry_guest_vm(g);
	struct ferry_dirty_set set = { 0 };
	struct ferry_error err = { 0 };
	uint64_t npages = g->mem.npages, want = (uint64_t)(npages * pct / 100);
	uint8_t *seen = calloc(npages, 1);
	double ms[ROUNDS];
	int r;

	if (!seen)
		return -1;
	ferry_dirty_set_reset(&set);
	if (ferry_dirty_start(vm->dirty, &err) ||
	    ferry_dirty_sync(vm->dirty, &set, &err)) {
		fprintf(stderr, "%s: %s\n", backend, ferry_error_msg(&err));
		free(seen);
		return -1;
	}
	for (r = 0; r < ROUNDS; r++) {
		uint64_t n = 0, s[4];
		double t;

		xoshiro_seed(s, seed + (uint64_t)r);
		memset(seen, 0, npages);
		while (n < want) {
			uint64_t gpn = xoshiro_next(s) % npages;
			uint32_t block;
			uint8_t *p;

			if (seen[gpn])
				continue;
			seen[gpn] = 1;
			p = gmem_page(&g->mem, gpn, &block);
			p[0]++;
			gmem_wrote(&g->mem, block, p, 1);
			n++;
		}
		ferry_dirty_set_reset(&set);
		t = bench_now();
		if (ferry_dirty_sync(vm->dirty, &set, &err)) {
			fprintf(stderr, "%s: %s\n", backend,
				ferry_error_msg(&err));
			free(seen);
			return -1;
		}
		ms[r] = (bench_now() - t) * 1e3;
		if (set.pages != want) {
			fprintf(stderr,
				"%s: sync reported %llu dirty pages, "
				"%llu were written\n",
				backend, (unsigned long long)set.pages,
				(unsigned long long)want);
			free(seen);
			return -1;
		}
	}
	ferry_dirty_stop(vm->dirty);
	printf("  %-9s %6.1f GiB %6.1f%% %10llu %10.3f %10.3f %10.3f\n",
	       backend, (double)(npages * 4096) / (1u << 30), pct,
	       (unsigned long long)want, bench_median(ms, ROUNDS),
	       bench_min(ms, ROUNDS), bench_max(ms, ROUNDS));
	ferry_dirty_set_free(&set);
	free(seen);
	return 0;
}

int main(int argc, char **argv)
{
	static const uint64_t sizes[] = { 1ull << 30, 8ull << 30 };
	static const char *const backends[] = { "uffd", "explicit" };
	static const double pcts[] = { 0.1, 10 };
	int failed = 0;
	size_t si, bi, pi;

	(void)argc, (void)argv;
	bench_print_host();
	printf("one dirty sync, median of %d rounds (ms)\n", ROUNDS);
	printf("  %-9s %10s %7s %10s %10s %10s %10s\n", "backend", "RAM",
	       "dirty", "pages", "median", "min", "max");
	for (si = 0; si < 2; si++) {
		for (bi = 0; bi < 2; bi++) {
			struct ferry_guest_config cfg = {
				.block_sizes = { sizes[si] },
				.nblocks = 1,
				.vcpus = 1,
				.fill = FERRY_FILL_RANDOM,
				.seed = 7,
				.workload = "idle",
				.dirty = backends[bi],
			};
			struct ferry_error err = { 0 };
			struct ferry_guest *g;

			if (ferry_guest_create(&cfg, &g, &err)) {
				printf("  %-9s skipped: %s\n", backends[bi],
				       ferry_error_msg(&err));
				continue;
			}
			for (pi = 0; pi < 2; pi++)
				failed |= run_case(g, backends[bi], pcts[pi],
						   si * 100 + pi) != 0;
			ferry_guest_destroy(g);
		}
	}
	return failed;
}
