/*
 * fuzz_pages.h - the old page of the XBZRLE fuzz target, shared with the
 * generator of its seeds (gen_codec_corpus.c) so that a seed's delta
 * applies to the page the target builds from the same seed byte.
 */
#ifndef FERRY_FUZZ_PAGES_H
#define FERRY_FUZZ_PAGES_H

#include <stddef.h>
#include <stdint.h>

#define PS 4096u

/* The destination's copy: bytes of an xorshift generator, a quarter of
 * the 64-byte lines zero, so that deltas have runs to skip. */
static inline void fuzz_old_page(uint8_t *p, uint8_t seed)
{
	uint32_t x = 0x9e3779b9u ^ seed;
	size_t i;

	for (i = 0; i < PS; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (i / 64) % 4 == seed % 4 ? 0 : (uint8_t)x;
	}
}

#endif
