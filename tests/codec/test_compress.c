/*
 * test_compress.c - page compressors: round trips on random, zero, text
 * and near-identical pages, and refusal of corrupted or truncated input.
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
	assert_null(codec_by_name("gzip"));
	assert_ptr_equal(codec_by_encoding(codec_zstd.encoding), &codec_zstd);
	assert_null(codec_by_encoding(0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zstd),
		cmocka_unit_test(test_lz4),
		cmocka_unit_test(test_lookup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
