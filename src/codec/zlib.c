/* zlib.c - pages compressed with zlib's deflate, in the zlib format of
 * RFC 1950 (multifd-compression=zlib, QEMU's default codec). */
#define ZLIB_CONST
#include <errno.h>
#include <stdlib.h>
#include <zlib.h>

#include "codec.h"
#include "ferry/stream.h"

struct zl {
	z_stream def, inf; /* one page each call, reset in between */
	bool def_on, inf_on;
};

static void zlib_free(void *ctx)
{
	struct zl *z = ctx;

	if (!z)
		return;
	if (z->def_on)
		deflateEnd(&z->def);
	if (z->inf_on)
		inflateEnd(&z->inf);
	free(z);
}

static void *zlib_new(int level)
{
	struct zl *z = calloc(1, sizeof(*z));

	if (!z)
		return NULL;
	z->def_on = deflateInit(&z->def, level < 0   ? Z_DEFAULT_COMPRESSION
					 : level > 9 ? 9
						     : level) == Z_OK;
	z->inf_on = inflateInit(&z->inf) == Z_OK;
	if (!z->def_on || !z->inf_on) {
		zlib_free(z);
		return NULL;
	}
	return z;
}

static size_t zlib_compress(void *ctx, const void *page, size_t len, void *out,
			    size_t cap)
{
	struct zl *z = ctx;

	if (deflateReset(&z->def) != Z_OK)
		return 0;
	z->def.next_in = page;
	z->def.avail_in = (uInt)len;
	z->def.next_out = out;
	z->def.avail_out = (uInt)cap;
	if (deflate(&z->def, Z_FINISH) != Z_STREAM_END)
		return 0; /* it did not fit: send the page raw */
	return cap - z->def.avail_out >= len ? 0 : cap - z->def.avail_out;
}

static int zlib_decompress(void *ctx, const void *in, size_t inlen, void *page,
			   size_t len)
{
	struct zl *z = ctx;

	if (inflateReset(&z->inf) != Z_OK)
		return -EBADMSG;
	z->inf.next_in = in;
	z->inf.avail_in = (uInt)inlen;
	z->inf.next_out = page;
	z->inf.avail_out = (uInt)len;
	/* exactly one page, and nothing after its end */
	if (inflate(&z->inf, Z_FINISH) != Z_STREAM_END || z->inf.avail_out ||
	    z->inf.avail_in)
		return -EBADMSG;
	return 0;
}

const struct page_codec codec_zlib = {
	.name = "zlib",
	.encoding = FERRY_PAGE_ZLIB,
	.ctx_new = zlib_new,
	.ctx_free = zlib_free,
	.compress = zlib_compress,
	.decompress = zlib_decompress,
};
