/*
 * test_clint.c - the CLINT and the guest's time: time frozen until
 * thawed and frozen again on request, settable either way; msip,
 * mtimecmp (whole and by halves) and mtime through MMIO; MTIP and STIP
 * as levels from the compare values; the next deadline in guest and host
 * time; save/load with bad fields refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices.h"

#define MSIP(h)	    (4ull * (h))
#define MTIMECMP(h) (0x4000ull + 8 * (h))
#define MTIME	    0xbff8ull

struct env {
	struct rv_clint c;
	bool lines[RV_MAX_HARTS][16];
};

static void set_irq(void *opaque, unsigned hart, enum rv_irq irq, bool level)
{
	struct env *e = opaque;

	assert_true(hart < 2);
	e->lines[hart][irq] = level;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	rv_clint_init(&e->c, 2, set_irq, e);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static uint64_t host_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void test_time_freezes(void **state)
{
	struct env *e = *state;
	uint64_t t, u;
	int i;

	assert_int_equal(rv_clint_time(&e->c), 0); /* frozen from the start */
	usleep(2000);
	assert_int_equal(rv_clint_time(&e->c), 0);
	rv_clint_set_time(&e->c, 1000);
	assert_int_equal(rv_clint_time(&e->c), 1000);
	rv_clint_thaw(&e->c);
	t = rv_clint_time(&e->c);
	assert_true(t >= 1000);
	for (i = 0; i < 10000 && rv_clint_time(&e->c) <= t; i++)
		usleep(100);
	assert_true(rv_clint_time(&e->c) > t); /* it runs */
	rv_clint_freeze(&e->c);
	t = rv_clint_time(&e->c);
	usleep(2000);
	assert_int_equal(rv_clint_time(&e->c), t);
	rv_clint_thaw(&e->c);
	u = rv_clint_time(&e->c);
	assert_true(u >= t && u - t < RV_TIMEBASE_HZ); /* no jump */
	/* set while running */
	rv_clint_set_time(&e->c, 5ull << 40);
	assert_true(rv_clint_time(&e->c) >= (5ull << 40));
	assert_true(rv_clint_time(&e->c) < (5ull << 40) + RV_TIMEBASE_HZ);
}

static void test_mtimecmp(void **state)
{
	struct env *e = *state;

	rv_clint_set_time(&e->c, 100);
	assert_false(e->lines[0][RV_IRQ_MTI]);
	rv_clint_write(&e->c, MTIMECMP(0), 50, 8);
	assert_true(e->lines[0][RV_IRQ_MTI]);
	assert_false(e->lines[1][RV_IRQ_MTI]);
	assert_int_equal(rv_clint_read(&e->c, MTIMECMP(0), 8), 50);
	/* by halves, as RV32 code writes it: high first */
	rv_clint_write(&e->c, MTIMECMP(1) + 4, 0, 4);
	rv_clint_write(&e->c, MTIMECMP(1), 200, 4);
	assert_int_equal(rv_clint_read(&e->c, MTIMECMP(1), 8), 200);
	assert_int_equal(rv_clint_read(&e->c, MTIMECMP(1) + 4, 4), 0);
	assert_false(e->lines[1][RV_IRQ_MTI]);
	rv_clint_set_time(&e->c, 200);
	assert_true(e->lines[1][RV_IRQ_MTI]);
	rv_clint_write(&e->c, MTIMECMP(0), 1000, 8);
	assert_false(e->lines[0][RV_IRQ_MTI]);
	/* harts past the machine's read 0 and take nothing */
	rv_clint_write(&e->c, MTIMECMP(5), 1, 8);
	assert_int_equal(rv_clint_read(&e->c, MTIMECMP(5), 8), 0);
}

static void test_msip_and_mtime(void **state)
{
	struct env *e = *state;

	rv_clint_write(&e->c, MSIP(1), 0xffffffff, 4);
	assert_true(e->lines[1][RV_IRQ_MSI]);
	assert_false(e->lines[0][RV_IRQ_MSI]);
	assert_int_equal(rv_clint_read(&e->c, MSIP(1), 4), 1);
	rv_clint_write(&e->c, MSIP(1), 0, 4);
	assert_false(e->lines[1][RV_IRQ_MSI]);
	rv_clint_write(&e->c, MTIME, 0x123456789ull, 8);
	assert_int_equal(rv_clint_time(&e->c), 0x123456789ull);
	assert_int_equal(rv_clint_read(&e->c, MTIME, 8), 0x123456789ull);
	assert_int_equal(rv_clint_read(&e->c, MTIME + 4, 4), 0x1);
	assert_int_equal(rv_clint_read(&e->c, MTIME, 4), 0x23456789);
	rv_clint_write(&e->c, MTIME + 4, 0x2, 4);
	assert_int_equal(rv_clint_time(&e->c), 0x223456789ull);
}

static void test_sbi_timer_and_deadline(void **state)
{
	struct env *e = *state;
	uint64_t ns, now, t;

	assert_int_equal(rv_clint_deadline(&e->c, 0), UINT64_MAX);
	rv_clint_set_time(&e->c, 1000);
	rv_clint_set_stimecmp(&e->c, 0, 900);
	assert_true(e->lines[0][RV_IRQ_STI]);
	assert_false(e->lines[0][RV_IRQ_MTI]);
	assert_int_equal(rv_clint_deadline(&e->c, 0), UINT64_MAX); /* past */
	rv_clint_set_stimecmp(&e->c, 0, 5000);
	assert_false(e->lines[0][RV_IRQ_STI]);
	rv_clint_write(&e->c, MTIMECMP(0), 3000, 8);
	assert_int_equal(rv_clint_deadline(&e->c, 0), 3000);
	assert_int_equal(rv_clint_deadline(&e->c, 1), UINT64_MAX);
	/* no host deadline while time stands still */
	assert_int_equal(rv_clint_host_ns(&e->c, 3000), UINT64_MAX);
	rv_clint_thaw(&e->c);
	t = rv_clint_time(&e->c);
	now = host_ns();
	ns = rv_clint_host_ns(&e->c, t + RV_TIMEBASE_HZ); /* a second on */
	assert_true(ns > now + 900000000ull && ns < now + 1100000000ull);
	rv_clint_update(&e->c, 0);
	assert_false(e->lines[0][RV_IRQ_STI]);
	rv_clint_set_time(&e->c, 6000);
	assert_true(e->lines[0][RV_IRQ_STI]);
	assert_true(e->lines[0][RV_IRQ_MTI]);
}

static void test_save_load(void **state)
{
	struct env *e = *state, *f = calloc(1, sizeof(*f));
	struct ferry_buf b = { 0 };
	struct ferry_error err = { 0 };

	rv_clint_set_time(&e->c, 777);
	rv_clint_write(&e->c, MSIP(1), 1, 4);
	rv_clint_write(&e->c, MTIMECMP(0), 700, 8);
	rv_clint_set_stimecmp(&e->c, 1, 800);
	assert_int_equal(rv_clint_save(&e->c, &b), 0);
	assert_int_equal(b.len, RV_CLINT_SAVE_LEN(2));

	rv_clint_init(&f->c, 2, set_irq, f);
	assert_int_equal(rv_clint_load(&f->c, b.data, b.len, &err), 0);
	assert_int_equal(rv_clint_time(&f->c), 777);
	assert_true(f->lines[1][RV_IRQ_MSI]);
	assert_true(f->lines[0][RV_IRQ_MTI]);
	assert_false(f->lines[1][RV_IRQ_STI]);
	assert_int_equal(rv_clint_read(&f->c, MTIMECMP(0), 8), 700);
	assert_int_equal(rv_clint_deadline(&f->c, 1), 800);
	free(f);
	ferry_buf_free(&b);
}

static void test_load_rejects(void **state)
{
	struct env *e = *state;
	struct ferry_buf b = { 0 };
	struct ferry_error err = { 0 };
	struct rv_clint three;
	uint8_t bad[128];

	rv_clint_set_time(&e->c, 5);
	assert_int_equal(rv_clint_save(&e->c, &b), 0);
	assert_true(b.len <= sizeof(bad));
	assert_int_equal(rv_clint_load(&e->c, b.data, 3, &err), -EINVAL);
	ferry_error_clear(&err);
	assert_int_equal(rv_clint_load(&e->c, b.data, b.len - 1, &err),
			 -EINVAL);
	ferry_error_clear(&err);
	rv_clint_init(&three, 3, NULL, NULL);
	assert_int_equal(rv_clint_load(&three, b.data, b.len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "harts"));
	ferry_error_clear(&err);
	memcpy(bad, b.data, b.len);
	bad[12 + 20] = 2; /* msip of hart 1 */
	assert_int_equal(rv_clint_load(&e->c, bad, b.len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "msip"));
	assert_int_equal(rv_clint_time(&e->c), 5); /* nothing taken */
	ferry_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_time_freezes),	T(test_mtimecmp),
		T(test_msip_and_mtime), T(test_sbi_timer_and_deadline),
		T(test_save_load),	T(test_load_rejects),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
