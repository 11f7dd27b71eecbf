/* test_size.c - sizes and fills as the command line spells them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/guest.h"
#include "size.h"

static void test_sizes(void **state)
{
	static const struct {
		const char *s;
		int rc;
		uint64_t v;
	} cases[] = {
		{ "512M", 0, 512ull << 20 },
		{ "4G", 0, 4ull << 30 },
		{ "1.5G", 0, 3ull << 29 },
		{ "1K", 0, 1024 },
		{ "100", 0, 100 },
		{ "100B", 0, 100 },
		{ "1GiB", 0, 1ull << 30 },
		{ "2gb", 0, 2ull << 30 },
		{ "1T", 0, 1ull << 40 },
		{ "", -EINVAL, 0 },
		{ "M", -EINVAL, 0 },
		{ "12X", -EINVAL, 0 },
		{ "1.", -EINVAL, 0 },
		{ "-5", -EINVAL, 0 },
		{ "1.3K", -EINVAL, 0 }, /* 1331.2 bytes */
		{ "1G ", -EINVAL, 0 },
		{ "99999999999T", -ERANGE, 0 },
		{ "99999999999999999999", -ERANGE, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 0;
		int rc = ferry_parse_size(cases[i].s, &v);

		if (rc != cases[i].rc || (rc == 0 && v != cases[i].v))
			fail_msg("'%s': rc %d value %llu", cases[i].s, rc,
				 (unsigned long long)v);
	}
}

static void test_fills(void **state)
{
	struct ferry_error err = { 0 };
	enum ferry_fill f;
	unsigned z;

	(void)state;
	assert_int_equal(ferry_fill_parse("random", &f, &z, &err), 0);
	assert_int_equal(f, FERRY_FILL_RANDOM);
	assert_int_equal(ferry_fill_parse("zero", &f, &z, &err), 0);
	assert_int_equal(f, FERRY_FILL_ZERO);
	assert_int_equal(ferry_fill_parse("mixed:25", &f, &z, &err), 0);
	assert_int_equal(f, FERRY_FILL_MIXED);
	assert_int_equal(z, 25);
	assert_int_equal(ferry_fill_parse("mixed:101", &f, &z, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "mixed:Z"));
	ferry_error_clear(&err);
	assert_int_equal(ferry_fill_parse("mixed:", &f, &z, &err), -EINVAL);
	ferry_error_clear(&err);
	assert_int_equal(ferry_fill_parse("plaid", &f, &z, &err), -EINVAL);
	ferry_error_clear(&err);
	assert_int_equal(ferry_fill_parse("text", &f, &z, &err), 0);
	assert_int_equal(f, FERRY_FILL_TEXT);
}

static void test_format(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(ferry_format_size(512, buf, sizeof(buf)), "512 B");
	assert_string_equal(ferry_format_size(3ull << 29, buf, sizeof(buf)),
			    "1.50 GiB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_fills),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
