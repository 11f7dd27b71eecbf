/*
 * gen_codec_corpus.c - writes the seeds of the codec fuzz targets
 * (tests/fuzz/fuzz_codec.c, fuzz_xbzrle.c): gen-codec-corpus DIR writes
 * DIR/zstd, DIR/lz4 and DIR/xbzrle.  The seeds checked in under
 * tests/fuzz/corpus/ were written by it; run it again after a change of
 * the targets' input layout.
 *
 * For each target: pages compressed (or deltas encoded) by the real
 * codec, after the mode byte that makes the target decode them, and round
 * trips (the other mode) of a few pages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "fuzz_pages.h"

static int put(const char *dir, const char *name, const uint8_t *head,
	       size_t hlen, const void *body, size_t blen)
{
	char path[4096];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f) {
		perror(path);
		return -errno;
	}
	ok = fwrite(head, 1, hlen, f) == hlen &&
	     (!blen || fwrite(body, 1, blen, f) == blen);
	if (fclose(f) || !ok) {
		perror(path);
		return -EIO;
	}
	return 0;
}

static void page_text(uint8_t *p)
{
	size_t at = 0;
	unsigned line = 0;

	while (at < PS) {
		char s[80];
		int n = snprintf(s, sizeof(s),
				 "line %u: the guest writes its pages\n",
				 line++);

		memcpy(p + at, s, (size_t)n < PS - at ? (size_t)n : PS - at);
		at += (size_t)n;
	}
}

static void page_pattern(uint8_t *p)
{
	size_t i;

	for (i = 0; i < PS; i++)
		p[i] = (uint8_t)(i % 16);
}

static void page_sparse(uint8_t *p)
{
	uint64_t v;
	size_t i;

	memset(p, 0, PS);
	for (i = 0; i < PS; i += 512) {
		v = 0x1000 + i;
		memcpy(p + i, &v, sizeof(v));
	}
}

static void page_half(uint8_t *p)
{
	fuzz_old_page(p, 7);
	memset(p, 0, PS / 2);
}

static const struct {
	const char *name;
	void (*fill)(uint8_t *p);
} pages[] = {
	{ "text", page_text },
	{ "pattern", page_pattern },
	{ "sparse", page_sparse },
	{ "half", page_half },
};
#define NPAGES (sizeof(pages) / sizeof(pages[0]))

static int codec_seeds(const char *top, const char *name)
{
	static const char *const recipes[] = { "ferry ", "a",
					       "migrate-set-parameters" };
	const struct page_codec *c = codec_by_name(name);
	uint8_t page[PS], z[PS], mode = 0;
	char dir[4096], file[64];
	void *ctx = c ? c->ctx_new(3) : NULL;
	size_t i, n;
	int rc = 0;

	if (!ctx)
		return -ENOMEM;
	snprintf(dir, sizeof(dir), "%s/%s", top, name);
	mkdir(dir, 0755);
	for (i = 0; i < NPAGES && !rc; i++) {
		pages[i].fill(page);
		n = c->compress(ctx, page, PS, z, sizeof(z));
		if (!n)
			continue; /* does not shrink */
		snprintf(file, sizeof(file), "wire-%s", pages[i].name);
		rc = put(dir, file, &mode, 1, z, n);
	}
	for (i = 0; i < sizeof(recipes) / sizeof(recipes[0]) && !rc; i++) {
		/* mode, level, room (4096, and 64 for the last) */
		uint8_t head[4] = { 1, (uint8_t)(i * 4), 0xff, 0x0f };

		if (i == 2)
			head[2] = 63, head[3] = 0;
		snprintf(file, sizeof(file), "round-trip-%zu", i);
		rc = put(dir, file, head, 4, recipes[i], strlen(recipes[i]));
	}
	c->ctx_free(ctx);
	return rc;
}

/* One delta: the seed's old page with len bytes at off set to v. */
static int delta_seed(const char *dir, const char *file, uint8_t seed,
		      const size_t *edit, size_t nedit)
{
	uint8_t old[PS], new[PS], d[2 * PS], head[2] = { 0, seed };
	ptrdiff_t n;
	size_t i;

	fuzz_old_page(old, seed);
	memcpy(new, old, PS);
	for (i = 0; i < nedit; i++)
		memset(new + edit[3 * i], (int)edit[3 * i + 2],
		       edit[3 * i + 1]);
	n = xbzrle_encode(old, new, PS, d, sizeof(d));
	if (n < 0)
		return -E2BIG;
	return put(dir, file, head, 2, d, (size_t)n);
}

static int xbzrle_seeds(const char *top)
{
	/* offset, length, value */
	static const size_t one[] = { 100, 8, 0x41 };
	static const size_t first[] = { 0, 3, 0xff, 4000, 96, 0 };
	static const size_t many[] = { 10,   1,	 1,    20,   2,	  2,
				       64,   64, 0x5a, 1024, 300, 0x33,
				       2047, 2,	 0,    4090, 6,	  0xcc };
	/* mode, seed, room 4095 / 16, then edits: offset hi, lo, count-1,
	 * value */
	static const uint8_t rt_edits[] = { 1,	  3,	0xff, 0x0f, 0x00, 0x40,
					    7,	  0x11, 0x08, 0x00, 0xff, 0x00,
					    0x0f, 0xf0, 0x0f, 0xee };
	static const uint8_t rt_small[] = { 1,	  0,	0x10, 0x00,
					    0x02, 0x00, 0x63, 0x99 };
	char dir[4096];
	int rc;

	snprintf(dir, sizeof(dir), "%s/xbzrle", top);
	mkdir(dir, 0755);
	rc = delta_seed(dir, "wire-one-run", 1, one, 1);
	if (!rc)
		rc = delta_seed(dir, "wire-first-and-last", 2, first, 2);
	if (!rc)
		rc = delta_seed(dir, "wire-many", 0, many, 6);
	if (!rc)
		rc = delta_seed(dir, "wire-unchanged", 3, NULL, 0);
	if (!rc)
		rc = put(dir, "round-trip-edits", rt_edits, sizeof(rt_edits),
			 NULL, 0);
	if (!rc)
		rc = put(dir, "round-trip-small-room", rt_small,
			 sizeof(rt_small), NULL, 0);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen-codec-corpus DIR\n");
		return 2;
	}
	mkdir(argv[1], 0755);
	if (codec_seeds(argv[1], "zstd") || codec_seeds(argv[1], "lz4") ||
	    codec_seeds(argv[1], "zlib") || xbzrle_seeds(argv[1]))
		return 1;
	return 0;
}
