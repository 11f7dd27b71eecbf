/*
 * fuzz_xbzrle.c - libFuzzer target for the XBZRLE delta decoder (the real
 * xbzrle_decode of src/codec/xbzrle.c) and its encoder.
 *
 * Byte 0 picks the mode, byte 1 seeds the old page (the copy the
 * destination holds: pseudo-random bytes with runs of zeros).  Even: the
 * rest is a delta off the wire, applied to the old page malloc'ed to
 * exactly 4 KiB, and again to its first 4 KiB >> (1 + byte 1 % 4) bytes,
 * so that ASan sees one byte past either.  Odd: a round trip; bytes 2-3
 * are the room for the delta (little endian, 0 to 4096), the rest edits of
 * the old page in groups of four bytes (offset high, offset low, count,
 * value), and the real encoder writes the new page's delta.
 *
 * A delta is checked against the format of docs/stream.md ("XBZRLE"),
 * read here on its own (apply() below): the decoder must accept exactly
 * the deltas it describes, with -EBADMSG and the page untouched for the
 * others, and leave the bytes it says.  The encoder must write a delta of
 * that format that decodes to the new page, fail only when that delta is
 * larger than its room, and write nothing past that room.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz_pages.h"

#define MAX_DELTA (2 * PS + 64) /* a delta of any page fits */

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_xbzrle: %s\n", what);
		abort();
	}
}

static uint8_t *page_new(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	check(p != NULL, "out of memory");
	return p;
}

/* A ULEB128 as xbzrle.c reads it: at most 5 bytes. */
static bool uleb(const uint8_t *in, size_t inlen, size_t *at, uint64_t *v)
{
	int i;

	*v = 0;
	for (i = 0; i < 5 && *at < inlen; i++) {
		uint8_t b = in[(*at)++];

		*v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* The format on its own: apply the delta to page, or return -EBADMSG
 * (page then half written: give it a scratch copy). */
static int apply(const uint8_t *in, size_t inlen, uint8_t *page, size_t len)
{
	uint64_t pos = 0, skip, count;
	size_t at = 0;
	bool first = true;

	while (at < inlen) {
		if (!uleb(in, inlen, &at, &skip) ||
		    !uleb(in, inlen, &at, &count))
			return -EBADMSG; /* a header cut short */
		if (count == 0 || (skip == 0 && !first))
			return -EBADMSG; /* an empty pair */
		if (skip + count > len - pos || count > inlen - at)
			return -EBADMSG; /* past the page or the delta */
		memcpy(page + pos + skip, in + at, count);
		pos += skip + count;
		at += count;
		first = false;
	}
	return 0;
}

/* xbzrle_decode of in onto the first len bytes of old, against apply() */
static int decode_against(const uint8_t *in, size_t inlen, const uint8_t *old,
			  size_t len, uint8_t **out)
{
	uint8_t *page = page_new(len), *want = page_new(len);
	int rc, want_rc;

	memcpy(page, old, len);
	memcpy(want, old, len);
	want_rc = apply(in, inlen, want, len);
	rc = xbzrle_decode(in, inlen, page, len);
	check(rc == 0 || rc == -EBADMSG, "an errno other than -EBADMSG");
	check(rc == want_rc, rc ? "a delta of the format refused"
				: "a malformed delta accepted");
	check(!memcmp(page, rc ? old : want, len),
	      rc ? "a refused delta changed the page"
		 : "a delta applied other than the format says");
	free(want);
	if (out)
		*out = page;
	else
		free(page);
	return rc;
}

static void wire(const uint8_t *old, uint8_t seed, const uint8_t *in, size_t n)
{
	uint8_t *page, *delta = page_new(MAX_DELTA);
	ptrdiff_t m;

	decode_against(in, n, old, PS >> (1 + seed % 4), NULL);
	if (decode_against(in, n, old, PS, &page) == 0) {
		/* what the encoder makes of the result goes back the same */
		m = xbzrle_encode(old, page, PS, delta, MAX_DELTA);
		check(m >= 0, "a delta larger than any page's");
		check(m > 0 || !memcmp(old, page, PS),
		      "a changed page encoded as no change");
		free(page);
		decode_against(delta, (size_t)m, old, PS, &page);
	}
	free(page);
	free(delta);
}

static void local(const uint8_t *old, const uint8_t *data, size_t n)
{
	size_t cap = (size_t)(data[0] | data[1] << 8) % (PS + 1), i;
	uint8_t *new = page_new(PS), *full = page_new(MAX_DELTA);
	uint8_t *out = page_new(cap), *back;
	ptrdiff_t m, m_full;

	memcpy(new, old, PS);
	for (i = 2; i + 4 <= n; i += 4) {
		size_t off = (size_t)(data[i] << 8 | data[i + 1]) % PS;
		size_t count = data[i + 2] + 1u;

		memset(new + off, data[i + 3],
		       count < PS - off ? count : PS - off);
	}
	m_full = xbzrle_encode(old, new, PS, full, MAX_DELTA);
	check(m_full >= 0, "a delta larger than any page's");
	check((m_full == 0) == !memcmp(old, new, PS),
	      "no delta for a changed page, or one for an unchanged page");
	check(decode_against(full, (size_t)m_full, old, PS, &back) == 0,
	      "the encoder's delta is refused");
	check(!memcmp(back, new, PS), "a delta decodes to another page");
	free(back);
	m = xbzrle_encode(old, new, PS, out, cap);
	if (m < 0)
		check(m == -1 && (size_t)m_full > cap,
		      "the encoder failed with room enough");
	else
		check(m == m_full && !memcmp(out, full, (size_t)m),
		      "less room made another delta");
	free(new);
	free(full);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *old;

	if (size < 2)
		return 0;
	old = page_new(PS);
	fuzz_old_page(old, data[1]);
	if (!(data[0] & 1))
		wire(old, data[1], data + 2, size - 2);
	else if (size >= 4)
		local(old, data + 2, size - 2);
	free(old);
	return 0;
}
