/*
 * codec.c - bench/codec: what each page codec costs on this CPU, in GB/s
 * per core (one thread), median of several rounds over a 64 MiB buffer.
 *
 * Zero-page check: on zero pages (every byte read) and on random pages
 * (the answer is known after the first bytes).  Compressors: compress and
 * decompress speed in GB/s of pages, and the ratio, on text pages (the
 * guest's --fill text) and random ones (which do not shrink).
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

struct crow {
	double c_gbs, d_gbs, ratio;
};

static struct crow comp_rate(const struct page_codec *c, const uint8_t *buf)
{
	double cg[ROUNDS], dg[ROUNDS];
	static uint8_t z[PAGE], back[PAGE];
	void *ctx = c->ctx_new(1);
	uint64_t in = 0, out = 0;
	struct crow row = { 0, 0, 0 };
	int r;

	if (!ctx)
		return row;
	for (r = 0; r < ROUNDS; r++) {
		double t = bench_now(), td = 0;
		size_t off;

		in = out = 0;
		for (off = 0; off < BUF / 4; off += PAGE) {
			size_t n = c->compress(ctx, buf + off, PAGE, z, PAGE);
			double t1;

			in += PAGE;
			out += n ? n : PAGE;
			if (!n)
				continue;
			t1 = bench_now();
			c->decompress(ctx, z, n, back, PAGE);
			td += bench_now() - t1;
		}
		cg[r] = (double)in / (bench_now() - t - td) / 1e9;
		dg[r] = td > 0 ? (double)in / td / 1e9 : 0;
	}
	c->ctx_free(ctx);
	row.c_gbs = bench_median(cg, ROUNDS);
	row.d_gbs = bench_median(dg, ROUNDS);
	row.ratio = (double)in / (double)out;
	return row;
}

static void fill_text(uint8_t *p, size_t len)
{
	static const char *const words[] = { "the ",	 "guest ", "page ",
					     "memory ",	 "of ",	   "and ",
					     "migrate ", "host. " };
	uint64_t s[4];
	size_t off = 0;

	xoshiro_seed(s, 3);
	while (off < len) {
		const char *w = words[xoshiro_next(s) % 8];
		size_t n = strlen(w);

		if (n > len - off)
			n = len - off;
		memcpy(p + off, w, n);
		off += n;
	}
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
	{
		const struct page_codec *cs[] = { &codec_zstd, &codec_lz4 };
		uint8_t *text = aligned_alloc(64, BUF / 4);

		if (!text)
			return 1;
		fill_text(text, BUF / 4);
		printf("compressors (level 1), GB/s of pages on one core, %u "
		       "MiB:\n",
		       BUF >> 22);
		printf("  %-6s %-7s %11s %13s %7s\n", "codec", "pages",
		       "compress", "decompress", "ratio");
		for (i = 0; i < 2; i++) {
			struct crow t = comp_rate(cs[i], text);
			struct crow q = comp_rate(cs[i], rnd);

			printf("  %-6s %-7s %11.2f %13.2f %7.2f\n", cs[i]->name,
			       "text", t.c_gbs, t.d_gbs, t.ratio);
			printf("  %-6s %-7s %11.2f %13s %7.2f\n", cs[i]->name,
			       "random", q.c_gbs, "-", q.ratio);
		}
		free(text);
	}
	free(zero);
	free(rnd);
	return 0;
}
