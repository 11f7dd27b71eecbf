/*
 * zero.c - is a page all zeroes?
 *
 * Most pages that are not zero differ from zero in their first bytes, so
 * every version looks at the first 128 bytes before the rest; a zero page
 * is read to its end at memory speed.  The vector versions OR four
 * registers' worth of bytes together and test once per 128 bytes.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"

static bool zero_portable(const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t i, n = len / 8;

	for (i = 0; i < n; i += 16) {
		uint64_t a = w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] |
			     w[i + 5] | w[i + 6] | w[i + 7];
		uint64_t b = w[i + 8] | w[i + 9] | w[i + 10] | w[i + 11] |
			     w[i + 12] | w[i + 13] | w[i + 14] | w[i + 15];

		if (a | b)
			return false;
	}
	return true;
}

static bool zero_sse2(const void *p, size_t len)
{
	const __m128i *v = p;
	size_t i, n = len / 16;

	for (i = 0; i < n; i += 8) {
		__m128i a = _mm_or_si128(_mm_or_si128(v[i], v[i + 1]),
					 _mm_or_si128(v[i + 2], v[i + 3]));
		__m128i b = _mm_or_si128(_mm_or_si128(v[i + 4], v[i + 5]),
					 _mm_or_si128(v[i + 6], v[i + 7]));
		__m128i x = _mm_or_si128(a, b);

		if (_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_setzero_si128())) !=
		    0xffff)
			return false;
	}
	return true;
}

__attribute__((target("avx2"))) static bool zero_avx2(const void *p, size_t len)
{
	const __m256i *v = p;
	size_t i, n = len / 32;

	for (i = 0; i < n; i += 4) {
		__m256i x =
			_mm256_or_si256(_mm256_or_si256(v[i], v[i + 1]),
					_mm256_or_si256(v[i + 2], v[i + 3]));

		if (!_mm256_testz_si256(x, x))
			return false;
	}
	return true;
}

static bool have_avx2(void)
{
	return __builtin_cpu_supports("avx2");
}

static bool have_sse2(void)
{
	return __builtin_cpu_supports("sse2");
}

static bool always(void)
{
	return true;
}

const struct zero_impl zero_impls[] = {
	{ "avx2", zero_avx2, have_avx2 },
	{ "sse2", zero_sse2, have_sse2 },
	{ "portable", zero_portable, always },
};
const size_t zero_nimpls = sizeof(zero_impls) / sizeof(zero_impls[0]);

static const struct zero_impl *chosen;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
	size_t i;

	__builtin_cpu_init();
	for (i = 0; i < zero_nimpls; i++)
		if (zero_impls[i].supported()) {
			chosen = &zero_impls[i];
			return;
		}
}

bool codec_is_zero(const void *p, size_t len)
{
	pthread_once(&choose_once, choose);
	return chosen->is_zero(p, len);
}

const char *codec_zero_impl(void)
{
	pthread_once(&choose_once, choose);
	return chosen->name;
}
