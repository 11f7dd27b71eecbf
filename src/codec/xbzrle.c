/*
 * xbzrle.c - XOR-based zero-run-length delta of a page against the copy
 * the destination already holds (after QEMU's XBZRLE; the format is ours,
 * docs/stream.md, "XBZRLE").
 *
 * A delta is a run of pairs, each
 *     skip   ULEB128: bytes equal to the old copy, left as they are
 *     count  ULEB128, at least 1: bytes that differ
 *     bytes  the new content of those `count` bytes
 * Bytes after the last pair are unchanged.  Only the first pair may have a
 * skip of 0; every count is at least 1, so a delta has no empty pairs.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* A byte of x is zero: some bytes of the two words are equal. */
static bool has_zero_byte(uint64_t x)
{
	return ((x - ONES) & ~x & HIGHS) != 0;
}

static size_t put_uleb(uint8_t *out, size_t at, size_t cap, size_t v)
{
	do {
		uint8_t b = v & 0x7f;

		v >>= 7;
		if (at >= cap)
			return SIZE_MAX;
		out[at++] = v ? (uint8_t)(b | 0x80) : b;
	} while (v);
	return at;
}

ptrdiff_t xbzrle_encode(const uint8_t *old, const uint8_t *new, size_t len,
			uint8_t *out, size_t cap)
{
	size_t i = 0, at = 0;

	while (i < len) {
		size_t skip0 = i, nz0;

		while (i + 8 <= len && load64(old + i) == load64(new + i))
			i += 8;
		while (i < len && old[i] == new[i])
			i++;
		if (i == len)
			break; /* the rest is unchanged */
		nz0 = i;
		for (;;) {
			while (i + 8 <= len && !has_zero_byte(load64(old + i) ^
							      load64(new + i)))
				i += 8;
			while (i < len && old[i] != new[i])
				i++;
			/* one equal byte between changes costs more as a
			 * new pair (two headers) than inside the run */
			if (i + 1 < len && old[i + 1] != new[i + 1]) {
				i++;
				continue;
			}
			break;
		}
		at = put_uleb(out, at, cap, nz0 - skip0);
		if (at != SIZE_MAX)
			at = put_uleb(out, at, cap, i - nz0);
		if (at == SIZE_MAX || cap - at < i - nz0)
			return -1; /* no smaller than the page */
		memcpy(out + at, new + nz0, i - nz0);
		at += i - nz0;
	}
	return (ptrdiff_t)at;
}

static int get_uleb(const uint8_t *in, size_t inlen, size_t *at, size_t *v)
{
	size_t r = 0;
	unsigned shift = 0;

	for (;;) {
		uint8_t b;

		if (*at >= inlen || shift > 28)
			return -EBADMSG;
		b = in[(*at)++];
		r |= (size_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			break;
		shift += 7;
	}
	*v = r;
	return 0;
}

/* Walk a delta; with page, apply it.  Checks every bound first. */
static int walk(const uint8_t *in, size_t inlen, uint8_t *page, size_t len)
{
	size_t at = 0, pos = 0;
	bool first = true;

	while (at < inlen) {
		size_t skip, n;

		if (get_uleb(in, inlen, &at, &skip) ||
		    get_uleb(in, inlen, &at, &n))
			return -EBADMSG;
		if ((!first && !skip) || !n || skip > len - pos ||
		    n > len - pos - skip || n > inlen - at)
			return -EBADMSG;
		pos += skip;
		if (page)
			memcpy(page + pos, in + at, n);
		pos += n;
		at += n;
		first = false;
	}
	return 0;
}

int xbzrle_check(const uint8_t *in, size_t inlen, size_t len)
{
	return walk(in, inlen, NULL, len);
}

int xbzrle_decode(const uint8_t *in, size_t inlen, uint8_t *page, size_t len)
{
	int rc = walk(in, inlen, NULL, len);

	return rc ? rc : walk(in, inlen, page, len);
}
