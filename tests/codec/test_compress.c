/*
 * test_compress.c - page compressors: round trips on random, zero, text
 * and near-identical pages, and refusal of corrupted or truncated input;
 * the same for XBZRLE deltas.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "workload.h"

#define PS 4096

static void fill(uint8_t *p, int kind, uint64_t seed)
{
	uint64_t s[4];
	size_t i;

	xoshiro_seed(s, seed);
	switch (kind) {
	case 0: /* random */
		for (i = 0; i < PS; i += 8) {
			uint64_t v = xoshiro_next(s);

			memcpy(p + i, &v, 8);
		}
		break;
	case 1: /* zero */
		memset(p, 0, PS);
		break;
	case 2: /* text */
		for (i = 0; i < PS; i++)
			p[i] = "the quick brown fox jumps over a lazy dog "
				[(i + xoshiro_next(s) % 3) % 42];
		break;
	default: /* near-identical: zero but a few words */
		memset(p, 0, PS);
		for (i = 0; i < 4; i++)
			p[xoshiro_next(s) % PS] = (uint8_t)xoshiro_next(s);
	}
}

static void round_trip(const struct page_codec *c)
{
	uint8_t page[PS], z[PS], back[PS];
	void *ctx = c->ctx_new(1);
	int kind;

	assert_non_null(ctx);
	for (kind = 0; kind < 4; kind++) {
		size_t n;

		fill(page, kind, (uint64_t)kind + 7);
		n = c->compress(ctx, page, PS, z, PS);
		if (kind == 0) {
			/* random pages do not shrink: send them raw */
			assert_int_equal(n, 0);
			continue;
		}
		assert_true(n > 0 && n < PS);
		memset(back, 0x5a, PS);
		assert_int_equal(c->decompress(ctx, z, n, back, PS), 0);
		assert_memory_equal(page, back, PS);
		/* truncated, or a byte flipped: refused or still one page,
		 * never more than one page written */
		assert_int_equal(c->decompress(ctx, z, n / 2, back, PS),
				 -EBADMSG);
		z[n / 2] ^= 0xff;
		(void)c->decompress(ctx, z, n, back, PS);
		/* a page of a different size is refused */
		z[n / 2] ^= 0xff;
		assert_int_equal(c->decompress(ctx, z, n, back, PS / 2),
				 -EBADMSG);
	}
	c->ctx_free(ctx);
}

static void test_zstd(void **state)
{
	(void)state;
	round_trip(&codec_zstd);
}

static void test_zlib(void **state)
{
	(void)state;
	round_trip(&codec_zlib);
}

static void test_lz4(void **state)
{
	(void)state;
	round_trip(&codec_lz4);
}

static void test_lookup(void **state)
{
	(void)state;
	assert_ptr_equal(codec_by_name("zstd"), &codec_zstd);
	assert_ptr_equal(codec_by_name("lz4"), &codec_lz4);
	assert_ptr_equal(codec_by_name("zlib"), &codec_zlib);
	assert_ptr_equal(codec_by_encoding(codec_zlib.encoding), &codec_zlib);
	assert_null(codec_by_name("gzip"));
	assert_ptr_equal(codec_by_encoding(codec_zstd.encoding), &codec_zstd);
	assert_null(codec_by_encoding(0));
}

/* Every kind of old page against every kind of new page, plus a few
 * bytes changed: the delta rebuilds the new page exactly. */
static void test_xbzrle_round_trip(void **state)
{
	uint8_t old[PS], new[PS], back[PS], d[PS];
	int a, b, k;

	(void)state;
	for (a = 0; a < 4; a++)
		for (b = 0; b < 5; b++) {
			ptrdiff_t n;

			fill(old, a, 11);
			if (b < 4) {
				fill(new, b, 12);
			} else { /* near-identical: a few words rewritten */
				memcpy(new, old, PS);
				for (k = 0; k < 6; k++) {
					uint64_t v = 0x1234567890abcdefull *
						     (uint64_t)(k + 1);

					memcpy(new + ((size_t)k * 677 % PS &
						      ~7u),
					       &v, 8);
				}
			}
			n = xbzrle_encode(old, new, PS, d, PS - 1);
			if (n < 0) { /* no smaller than a page: overflow */
				assert_true(memcmp(old, new, PS) != 0);
				continue;
			}
			if (b == 4)
				assert_true(n > 0 && n <= 6 * (8 + 3));
			memcpy(back, old, PS);
			assert_int_equal(xbzrle_decode(d, (size_t)n, back, PS),
					 0);
			assert_memory_equal(back, new, PS);
		}
	/* equal pages: an empty delta */
	fill(old, 2, 3);
	assert_int_equal(xbzrle_encode(old, old, PS, d, PS - 1), 0);
	assert_int_equal(xbzrle_decode(d, 0, back, PS), 0);
}

/* Changes at the very first and very last byte, and a single equal byte
 * inside a changed run. */
static void test_xbzrle_edges(void **state)
{
	uint8_t old[PS] = { 0 }, new[PS] = { 0 }, back[PS], d[64];
	ptrdiff_t n;

	(void)state;
	new[0] = 1;
	new[2] = 3; /* new[1] equal: folded into one run */
	new[PS - 1] = 9;
	n = xbzrle_encode(old, new, PS, d, sizeof(d));
	/* (0, 3, 1 0 3) and (4092 as two bytes, 1, 9) */
	assert_int_equal(n, 2 + 3 + 3 + 1);
	memset(back, 0, PS);
	assert_int_equal(xbzrle_decode(d, (size_t)n, back, PS), 0);
	assert_memory_equal(back, new, PS);
	/* too small a budget: overflow, not a truncated delta */
	assert_int_equal(xbzrle_encode(old, new, PS, d, 4), -1);
}

/* Deltas off the wire that must be refused, leaving the page alone. */
static void test_xbzrle_malformed(void **state)
{
	static const struct {
		const char *why;
		uint8_t d[8];
		size_t n;
	} bad[] = {
		{ "count of zero", { 0, 0 }, 2 },
		{ "bytes missing", { 0, 4, 1, 2 }, 4 },
		{ "skip past the page", { 0x81, 0x20, 1, 7 }, 4 },   /* 4097 */
		{ "run past the page", { 0xff, 0x1f, 2, 1, 1 }, 5 }, /* 4095+2 */
		{ "second skip of zero", { 0, 1, 5, 0, 1, 6 }, 6 },
		{ "varint cut short", { 0x80 }, 1 },
		{ "varint too long", { 0x80, 0x80, 0x80, 0x80, 0x80, 1 }, 6 },
		{ "count without bytes", { 3 }, 1 },
	};
	uint8_t page[PS], was[PS];
	size_t i;

	(void)state;
	fill(page, 0, 5);
	memcpy(was, page, PS);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("# %s\n", bad[i].why);
		assert_int_equal(xbzrle_decode(bad[i].d, bad[i].n, page, PS),
				 -EBADMSG);
		assert_memory_equal(page, was, PS);
	}
	/* the last byte of the page, exactly */
	assert_int_equal(xbzrle_decode((const uint8_t[]){ 0xff, 0x1f, 1, 7 }, 4,
				       page, PS),
			 0);
	assert_int_equal(page[PS - 1], 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zstd),
		cmocka_unit_test(test_lz4),
		cmocka_unit_test(test_zlib),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_xbzrle_round_trip),
		cmocka_unit_test(test_xbzrle_edges),
		cmocka_unit_test(test_xbzrle_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
