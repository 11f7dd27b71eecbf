/*
 * codec.h - how one page travels (DESIGN.md, src/codec/).
 *
 * The zero-page check, in AVX2, SSE2 and portable C, the best one this CPU
 * runs picked on first use; and page compressors, each a
 * `struct page_codec` found by name or by its stream encoding.
 */
#ifndef FERRY_CODEC_H
#define FERRY_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zero_impl {
	const char *name;
	bool (*is_zero)(const void *p, size_t len); /* len: multiple of 128 */
	bool (*supported)(void);
};

/* Every implementation, best first. */
extern const struct zero_impl zero_impls[];
extern const size_t zero_nimpls;

/* Whether len bytes at p (len a multiple of 128) are all zero. */
bool codec_is_zero(const void *p, size_t len);
/* The implementation codec_is_zero() uses here. */
const char *codec_zero_impl(void);

/*
 * A page compressor.  Contexts are per thread.  compress returns the
 * compressed size, or 0 when the page does not shrink (send it raw);
 * decompress must produce exactly `len` bytes into `page`, or returns
 * -EBADMSG: its input comes off the wire.
 */
struct page_codec {
	const char *name;
	unsigned encoding; /* enum ferry_page_encoding */
	void *(*ctx_new)(int level);
	void (*ctx_free)(void *ctx);
	size_t (*compress)(void *ctx, const void *page, size_t len, void *out,
			   size_t cap);
	int (*decompress)(void *ctx, const void *in, size_t inlen, void *page,
			  size_t len);
};

extern const struct page_codec codec_zstd;
extern const struct page_codec codec_lz4;
extern const struct page_codec codec_zlib;

const struct page_codec *codec_by_name(const char *name);
const struct page_codec *codec_by_encoding(unsigned encoding);

/*
 * XBZRLE (xbzrle.c): a page as its difference from the copy the
 * destination holds.  xbzrle_encode writes the delta of `new` against
 * `old` into out and returns its length (0: the pages are equal), or -1
 * when it would take more than cap bytes.  xbzrle_check checks a delta
 * from the wire against a page of `len` bytes; xbzrle_decode checks it,
 * then applies it to `page`; both return -EBADMSG (and leave `page`
 * untouched) when it is malformed.
 */
ptrdiff_t xbzrle_encode(const uint8_t *old, const uint8_t *new, size_t len,
			uint8_t *out, size_t cap);
int xbzrle_check(const uint8_t *in, size_t inlen, size_t len);
int xbzrle_decode(const uint8_t *in, size_t inlen, uint8_t *page, size_t len);

#endif
