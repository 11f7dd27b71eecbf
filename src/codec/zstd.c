/* zstd.c - pages compressed with zstd (multifd-compression=zstd). */
#include <errno.h>
#include <stdlib.h>
#include <zstd.h>

#include "codec.h"
#include "ferry/stream.h"

struct zctx {
	ZSTD_CCtx *c;
	ZSTD_DCtx *d;
	int level;
};

static void *zstd_new(int level)
{
	struct zctx *z = calloc(1, sizeof(*z));

	if (!z)
		return NULL;
	z->c = ZSTD_createCCtx();
	z->d = ZSTD_createDCtx();
	z->level = level;
	if (!z->c || !z->d) {
		ZSTD_freeCCtx(z->c);
		ZSTD_freeDCtx(z->d);
		free(z);
		return NULL;
	}
	return z;
}

static void zstd_free(void *ctx)
{
	struct zctx *z = ctx;

	if (!z)
		return;
	ZSTD_freeCCtx(z->c);
	ZSTD_freeDCtx(z->d);
	free(z);
}

static size_t zstd_compress(void *ctx, const void *page, size_t len, void *out,
			    size_t cap)
{
	struct zctx *z = ctx;
	size_t n = ZSTD_compressCCtx(z->c, out, cap, page, len, z->level);

	return ZSTD_isError(n) || n >= len ? 0 : n;
}

static int zstd_decompress(void *ctx, const void *in, size_t inlen, void *page,
			   size_t len)
{
	struct zctx *z = ctx;
	size_t n = ZSTD_decompressDCtx(z->d, page, len, in, inlen);

	return ZSTD_isError(n) || n != len ? -EBADMSG : 0;
}

const struct page_codec codec_zstd = {
	.name = "zstd",
	.encoding = FERRY_PAGE_ZSTD,
	.ctx_new = zstd_new,
	.ctx_free = zstd_free,
	.compress = zstd_compress,
	.decompress = zstd_decompress,
};
