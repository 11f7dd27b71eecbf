/* test_zero.c - every zero-page check this CPU runs agrees with memcmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"

static void check_impl(const struct zero_impl *z)
{
	static const size_t lens[] = { 128, 4096, 2u << 20 };
	size_t li, pos;

	for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t len = lens[li];
		uint8_t *p = aligned_alloc(64, len);

		assert_non_null(p);
		memset(p, 0, len);
		assert_true(z->is_zero(p, len));
		/* one set bit anywhere makes a page non-zero */
		for (pos = 0; pos<len; pos += len> 8192 ? 4093 : 1) {
			p[pos] = (uint8_t)(1u << (pos % 8));
			if (z->is_zero(p, len))
				fail_msg("%s: byte %zu of %zu set, called zero",
					 z->name, pos, len);
			p[pos] = 0;
		}
		p[len - 1] = 0x80;
		assert_false(z->is_zero(p, len));
		free(p);
	}
}

static void test_all_impls(void **state)
{
	size_t i, ran = 0;

	(void)state;
	__builtin_cpu_init();
	for (i = 0; i < zero_nimpls; i++) {
		if (!zero_impls[i].supported()) {
			print_message("# %s: not on this CPU\n",
				      zero_impls[i].name);
			continue;
		}
		check_impl(&zero_impls[i]);
		ran++;
	}
	assert_true(ran >= 1); /* portable always runs */
}

static void test_chosen(void **state)
{
	uint8_t page[4096] __attribute__((aligned(64))) = { 0 };

	(void)state;
	assert_non_null(codec_zero_impl());
	assert_true(codec_is_zero(page, sizeof(page)));
	page[4095] = 1;
	assert_false(codec_is_zero(page, sizeof(page)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_impls),
		cmocka_unit_test(test_chosen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
