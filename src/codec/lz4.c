/* lz4.c - pages compressed with LZ4 (multifd-compression=lz4). */
#include <errno.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ferry/stream.h"

struct lctx {
	int accel; /* LZ4's acceleration: 1 = best ratio */
};

static void *lz4_new(int level)
{
	struct lctx *l = calloc(1, sizeof(*l));

	if (l)
		l->accel = level < 1 ? 1 : level;
	return l;
}

static void lz4_free(void *ctx)
{
	free(ctx);
}

static size_t lz4_compress(void *ctx, const void *page, size_t len, void *out,
			   size_t cap)
{
	struct lctx *l = ctx;
	int n = LZ4_compress_fast(page, out, (int)len, (int)cap, l->accel);

	return n <= 0 || (size_t)n >= len ? 0 : (size_t)n;
}

static int lz4_decompress(void *ctx, const void *in, size_t inlen, void *page,
			  size_t len)
{
	int n = LZ4_decompress_safe(in, page, (int)inlen, (int)len);

	(void)ctx;
	return n < 0 || (size_t)n != len ? -EBADMSG : 0;
}

const struct page_codec codec_lz4 = {
	.name = "lz4",
	.encoding = FERRY_PAGE_LZ4,
	.ctx_new = lz4_new,
	.ctx_free = lz4_free,
	.compress = lz4_compress,
	.decompress = lz4_decompress,
};
