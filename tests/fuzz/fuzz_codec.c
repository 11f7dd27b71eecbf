/*
 * fuzz_codec.c - libFuzzer target for one page codec's decompress (built
 * once per codec: fuzz-zstd with -DFUZZ_CODEC="zstd", fuzz-lz4 with
 * -DFUZZ_CODEC="lz4", fuzz-zlib with -DFUZZ_CODEC="zlib"), the real one
 * from src/codec/.
 *
 * The first input byte picks the mode.  Even: the rest is a compressed page
 * off the wire, decompressed into a 4 KiB page malloc'ed to exactly its
 * size (ASan sees one byte past it).  Odd: a round trip; byte 1 picks the
 * level, bytes 2-3 the room for the compressed page (little endian, 1 to
 * 4096), and the rest, repeated, is the page that the real compressor
 * compresses.  Besides memory errors, the target aborts when the codec
 * breaks a promise of codec.h: decompress fails with other than -EBADMSG,
 * leaves a byte of the page unwritten, accepts an input that makes more or
 * fewer than `len` bytes, or does not give back what compress was given;
 * compress claims more room than it had or a page that does not shrink.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define PS	   4096u
#define NLEVELS	   19
#define MAX_OUTPUT (2 * PS)

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_codec (" FUZZ_CODEC "): %s\n", what);
		abort();
	}
}

/* One context per level, kept: a context is per thread, and one that
 * served earlier inputs must decode the next as a fresh one would. */
static void *context(const struct page_codec *c, unsigned level)
{
	static void *ctx[NLEVELS + 1];

	if (!ctx[level])
		ctx[level] = c->ctx_new((int)level);
	check(ctx[level] != NULL, "ctx_new failed");
	return ctx[level];
}

static uint8_t *page_new(size_t len, uint8_t fill)
{
	uint8_t *p = malloc(len ? len : 1);

	check(p != NULL, "out of memory");
	memset(p, fill, len);
	return p;
}

/* decompress into a buffer of exactly len bytes; returns its rc */
static int decode(const struct page_codec *c, void *ctx, const uint8_t *in,
		  size_t inlen, size_t len, uint8_t fill, uint8_t **out)
{
	uint8_t *p = page_new(len, fill);
	int rc = c->decompress(ctx, in, inlen, p, len);

	check(rc == 0 || rc == -EBADMSG, "an errno other than -EBADMSG");
	if (out)
		*out = p;
	else
		free(p);
	return rc;
}

/* compress a page into exactly cap bytes; the result must decode back */
static size_t round_trip(const struct page_codec *c, void *ctx,
			 const uint8_t *page, size_t cap)
{
	uint8_t *z = page_new(cap, 0xee), *back;
	size_t n = c->compress(ctx, page, PS, z, cap);

	check(n <= cap, "compress used more room than it had");
	check(n < PS, "compress kept a page that does not shrink");
	if (n) {
		check(decode(c, ctx, z, n, PS, 0x77, &back) == 0,
		      "a compressed page does not decompress");
		check(!memcmp(back, page, PS),
		      "a compressed page decompresses to other bytes");
		free(back);
	}
	free(z);
	return n;
}

static void wire(const struct page_codec *c, const uint8_t *in, size_t n)
{
	void *ctx = context(c, 1);
	uint8_t *a, *b;
	int rc;

	rc = decode(c, ctx, in, n, PS, 0xa5, &a);
	/* the same again over other bytes: every byte of the page is written,
	 * and nothing of the last call stays in the context */
	check(decode(c, ctx, in, n, PS, 0x5a, &b) == rc,
	      "the same input decodes differently");
	if (rc == 0) {
		check(!memcmp(a, b, PS), "decompress left bytes unwritten");
		/* the input makes exactly PS bytes, no page of another size */
		check(decode(c, ctx, in, n, PS - 1, 0, NULL) == -EBADMSG,
		      "a page decompressed into one byte less");
		check(decode(c, ctx, in, n, MAX_OUTPUT, 0, NULL) == -EBADMSG,
		      "a page decompressed into a larger one");
		round_trip(c, ctx, a, PS);
	}
	free(a);
	free(b);
}

static void local(const struct page_codec *c, const uint8_t *data, size_t n)
{
	unsigned level = 1 + data[0] % NLEVELS;
	size_t cap = (size_t)(data[1] | data[2] << 8) % PS + 1, i;
	const uint8_t *recipe = data + 3;
	size_t rlen = n - 3;
	uint8_t *page = page_new(PS, 0);
	void *ctx = context(c, level);

	for (i = 0; rlen && i < PS; i++)
		page[i] = recipe[i % rlen];
	/* more room never makes a page that fit fail */
	if (round_trip(c, ctx, page, cap))
		check(round_trip(c, ctx, page, PS) != 0,
		      "a page fits in less room but not in a page");
	free(page);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct page_codec *c = codec_by_name(FUZZ_CODEC);

	check(c != NULL, "no such codec");
	if (size < 1)
		return 0;
	if (!(data[0] & 1))
		wire(c, data + 1, size - 1);
	else if (size >= 4)
		local(c, data + 1, size - 1);
	return 0;
}
