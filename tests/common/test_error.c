/* test_error.c - a ferry_error keeps its first cause, its code and where
 * it was found, whatever context is put in front of its message. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/error.h"

static void test_first_cause_stays(void **state)
{
	struct ferry_error e = { 0 };

	(void)state;
	assert_int_equal(ferry_error_set(&e, -EIO, "read: %s", "short"), -EIO);
	assert_int_equal(ferry_error_set_from(&e, FERRY_ERROR_PEER, -EPROTO,
					      "later"),
			 -EPROTO);
	assert_int_equal(e.code, -EIO);
	assert_int_equal(e.origin, FERRY_ERROR_LOCAL);
	assert_string_equal(ferry_error_msg(&e), "read: short");
}

static void test_origin_and_clear(void **state)
{
	struct ferry_error e = { 0 };

	(void)state;
	ferry_error_set_from(&e, FERRY_ERROR_TRANSPORT, -ECONNRESET, "rdma: %d",
			     7);
	assert_int_equal(e.origin, FERRY_ERROR_TRANSPORT);
	assert_string_equal(ferry_error_msg(&e), "rdma: 7");
	ferry_error_clear(&e);
	assert_int_equal(e.code, 0);
	assert_int_equal(e.origin, FERRY_ERROR_LOCAL);
	assert_string_equal(ferry_error_msg(&e), "no error");
	/* a cleared error takes a new cause */
	ferry_error_set_from(&e, FERRY_ERROR_PEER, -EINVAL, "destination: no");
	assert_int_equal(e.origin, FERRY_ERROR_PEER);
}

static void test_prefix(void **state)
{
	struct ferry_error e = { 0 };
	char big[FERRY_ERROR_MSG_MAX + 100];

	(void)state;
	ferry_error_prefix(&e, "channel %u: ", 2u); /* unset: nothing */
	assert_int_equal(e.code, 0);
	assert_string_equal(ferry_error_msg(&e), "no error");

	ferry_error_set_from(&e, FERRY_ERROR_TRANSPORT, -EPIPE, "broken pipe");
	ferry_error_prefix(&e, "channel %u: ", 2u);
	assert_string_equal(ferry_error_msg(&e), "channel 2: broken pipe");
	assert_int_equal(e.code, -EPIPE);
	assert_int_equal(e.origin, FERRY_ERROR_TRANSPORT);

	/* a message at the limit loses its end, never the context */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ferry_error_clear(&e);
	ferry_error_set(&e, -E2BIG, "%s", big);
	assert_int_equal(strlen(ferry_error_msg(&e)), FERRY_ERROR_MSG_MAX - 1);
	ferry_error_prefix(&e, "ctx: ");
	assert_int_equal(strlen(ferry_error_msg(&e)), FERRY_ERROR_MSG_MAX - 1);
	assert_memory_equal(ferry_error_msg(&e), "ctx: xxx", 8);

	/* a context longer than the whole message keeps what fits */
	ferry_error_prefix(&e, "%s", big);
	assert_int_equal(strlen(ferry_error_msg(&e)), FERRY_ERROR_MSG_MAX - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_cause_stays),
		cmocka_unit_test(test_origin_and_clear),
		cmocka_unit_test(test_prefix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
