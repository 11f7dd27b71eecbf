/*
 * codec.h - how one page travels (DESIGN.md, src/codec/).
 *
 * For now: the zero-page check, in AVX2, SSE2 and portable C, the best
 * one this CPU runs picked on first use.
 */
#ifndef FERRY_CODEC_H
#define FERRY_CODEC_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
