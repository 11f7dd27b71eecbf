/*
 * codec.c - bench/codec: what each page codec costs on this CPU, in GB/s
 * per core (one thread), median of several rounds over a 64 MiB buffer.
 *
 * Zero-page check: on zero pages (every byte read) and on random pages
 * (the answer is known after the first bytes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "codec.h"
#include "workload.h"

#define BUF    (64u << 20)
#define PAGE   4096u
#define ROUNDS 7

static double zero_rate(const struct zero_impl *z, const uint8_t *buf)
{
	double gbs[ROUNDS];
	volatile size_t hits = 0;
	int r;

	for (r = 0; r < ROUNDS; r++) {
		double t = bench_now();
		size_t off;

		for (off = 0; off < BUF; off += PAGE)
			hits += z->is_zero(buf + off, PAGE);
		gbs[r] = BUF / (bench_now() - t) / 1e9;
	}
	(void)hits;
	return bench_median(gbs, ROUNDS);
}

int main(void)
{
	uint8_t *zero = aligned_alloc(64, BUF), *rnd = aligned_alloc(64, BUF);
	uint64_t s[4], *w;
	size_t i;

	if (!zero || !rnd)
		return 1;
	memset(zero, 0, BUF);
	xoshiro_seed(s, 1);
	for (w = (uint64_t *)(void *)rnd, i = 0; i < BUF / 8; i++)
		w[i] = xoshiro_next(s);
	bench_print_host();
	__builtin_cpu_init();
	printf("zero-page check, GB/s on one core (median of %d rounds, %u "
	       "MiB of 4 KiB pages); chosen here: %s\n",
	       ROUNDS, BUF >> 20, codec_zero_impl());
	printf("  %-10s %14s %16s\n", "impl", "zero pages", "random pages");
	for (i = 0; i < zero_nimpls; i++) {
		if (!zero_impls[i].supported()) {
			printf("  %-10s not on this CPU\n", zero_impls[i].name);
			continue;
		}
		printf("  %-10s %14.1f %16.1f\n", zero_impls[i].name,
		       zero_rate(&zero_impls[i], zero),
		       zero_rate(&zero_impls[i], rnd));
	}
	free(zero);
	free(rnd);
	return 0;
}
