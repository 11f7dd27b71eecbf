/*
 * test_plic.c - the PLIC as QEMU's virt lays it out: priorities,
 * pending bits, per-context enables and thresholds, claim/complete with
 * the highest priority first, level-triggered sources that pend again
 * after completion while their line is high, each hart's M and S
 * contexts driving MEIP and SEIP, and save/load with bad fields refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices.h"

#define PRIO(s)	     (4ull * (s))
#define PENDING(w)   (0x1000ull + 4 * (w))
#define ENABLE(c, w) (0x2000ull + 0x80 * (c) + 4 * (w))
#define THRESHOLD(c) (0x200000ull + 0x1000 * (c))
#define CLAIM(c)     (0x200004ull + 0x1000 * (c))

struct env {
	struct rv_plic p;
	bool out[RV_PLIC_NCTX];
	int calls;
};

static void set_irq(void *opaque, unsigned ctx, bool level)
{
	struct env *e = opaque;

	assert_true(ctx < RV_PLIC_NCTX);
	e->out[ctx] = level;
	e->calls++;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	rv_plic_init(&e->p, 2, set_irq, e);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	rv_plic_destroy(&e->p);
	free(e);
	return 0;
}

static uint32_t rd(struct env *e, uint64_t off)
{
	return (uint32_t)rv_plic_read(&e->p, off, 4);
}

static void wr(struct env *e, uint64_t off, uint32_t v)
{
	rv_plic_write(&e->p, off, v, 4);
}

static void test_registers(void **state)
{
	struct env *e = *state;

	wr(e, PRIO(10), 0xff);
	assert_int_equal(rd(e, PRIO(10)), 7); /* 3 priority bits */
	wr(e, PRIO(0), 5);
	assert_int_equal(rd(e, PRIO(0)), 0); /* there is no source 0 */
	wr(e, ENABLE(1, 0), 0xffffffff);
	assert_int_equal(rd(e, ENABLE(1, 0)), 0xfffffffe);
	wr(e, ENABLE(3, 2), 0x1234);
	assert_int_equal(rd(e, ENABLE(3, 2)), 0x1234);
	wr(e, THRESHOLD(2), 9);
	assert_int_equal(rd(e, THRESHOLD(2)), 1);
	/* pending is read-only; contexts past the harts read 0 */
	wr(e, PENDING(0), 0xffffffff);
	assert_int_equal(rd(e, PENDING(0)), 0);
	wr(e, ENABLE(4, 0), 0xff);
	assert_int_equal(rd(e, ENABLE(4, 0)), 0);
	assert_int_equal(rd(e, CLAIM(4)), 0);
}

static void test_claim_complete(void **state)
{
	struct env *e = *state;

	wr(e, PRIO(10), 1);
	wr(e, ENABLE(1, 0), 1u << 10); /* hart 0, S mode */
	rv_plic_set_level(&e->p, 10, true);
	assert_true(e->out[1]);
	assert_false(e->out[0]);
	assert_false(e->out[3]);
	assert_int_equal(rd(e, PENDING(0)), 1u << 10);
	assert_int_equal(rd(e, CLAIM(1)), 10);
	assert_false(e->out[1]); /* claimed: no longer pending */
	assert_int_equal(rd(e, PENDING(0)), 0);
	assert_int_equal(rd(e, CLAIM(1)), 0);
	/* the line fell meanwhile: completion leaves it idle */
	rv_plic_set_level(&e->p, 10, false);
	wr(e, CLAIM(1), 10);
	assert_false(e->out[1]);
	assert_int_equal(rd(e, PENDING(0)), 0);
}

static void test_level_pends_again(void **state)
{
	struct env *e = *state;

	wr(e, PRIO(10), 1);
	wr(e, ENABLE(1, 0), 1u << 10);
	rv_plic_set_level(&e->p, 10, true);
	assert_int_equal(rd(e, CLAIM(1)), 10);
	/* the line is still high at completion: it pends again */
	wr(e, CLAIM(1), 10);
	assert_true(e->out[1]);
	assert_int_equal(rd(e, CLAIM(1)), 10);
	/* a completion of a source not enabled here is ignored */
	wr(e, CLAIM(3), 10);
	assert_false(e->out[1]);
	wr(e, CLAIM(1), 10);
	assert_true(e->out[1]);
}

static void test_priority_and_threshold(void **state)
{
	struct env *e = *state;

	wr(e, PRIO(3), 2);
	wr(e, PRIO(40), 5);
	wr(e, PRIO(7), 5);
	wr(e, ENABLE(2, 0), (1u << 3) | (1u << 7)); /* hart 1, M mode */
	wr(e, ENABLE(2, 1), 1u << 8);		    /* source 40 */
	rv_plic_set_level(&e->p, 3, true);
	rv_plic_set_level(&e->p, 40, true);
	rv_plic_set_level(&e->p, 7, true);
	assert_true(e->out[2]);
	wr(e, THRESHOLD(2), 5);
	assert_false(e->out[2]); /* nothing above 5 */
	wr(e, THRESHOLD(2), 4);
	assert_true(e->out[2]);
	/* equal priorities: the lower id first */
	assert_int_equal(rd(e, CLAIM(2)), 7);
	assert_int_equal(rd(e, CLAIM(2)), 40);
	assert_false(e->out[2]); /* 3 is at or below the threshold */
	wr(e, THRESHOLD(2), 0);
	assert_true(e->out[2]);
	assert_int_equal(rd(e, CLAIM(2)), 3);
	/* priority 0 never interrupts */
	wr(e, PRIO(9), 0);
	wr(e, ENABLE(0, 0), 1u << 9);
	rv_plic_set_level(&e->p, 9, true);
	assert_false(e->out[0]);
	assert_int_equal(rd(e, CLAIM(0)), 0);
}

static void test_contexts_apart(void **state)
{
	struct env *e = *state;

	wr(e, PRIO(10), 1);
	wr(e, PRIO(11), 1);
	wr(e, ENABLE(1, 0), 1u << 10);
	wr(e, ENABLE(3, 0), (1u << 10) | (1u << 11));
	rv_plic_set_level(&e->p, 11, true);
	assert_false(e->out[1]);
	assert_true(e->out[3]);
	rv_plic_set_level(&e->p, 10, true);
	assert_true(e->out[1]);
	/* one claim takes the source from every context */
	assert_int_equal(rd(e, CLAIM(1)), 10);
	assert_false(e->out[1]);
	assert_int_equal(rd(e, CLAIM(3)), 11);
	assert_false(e->out[3]);
	wr(e, CLAIM(3), 11);
	assert_true(e->out[3]);
	/* out-of-range sources are ignored */
	rv_plic_set_level(&e->p, 0, true);
	rv_plic_set_level(&e->p, RV_PLIC_NSRC, true);
}

static void test_save_load(void **state)
{
	struct env *e = *state, *f = calloc(1, sizeof(*f));
	struct ferry_buf b = { 0 }, b2 = { 0 };
	struct ferry_error err = { 0 };

	wr(e, PRIO(10), 3);
	wr(e, PRIO(33), 2);
	wr(e, ENABLE(1, 0), 1u << 10);
	wr(e, ENABLE(1, 1), 1u << 1);
	wr(e, THRESHOLD(1), 1);
	rv_plic_set_level(&e->p, 10, true);
	rv_plic_set_level(&e->p, 33, true);
	assert_int_equal(rd(e, CLAIM(1)), 10);
	assert_int_equal(rv_plic_save(&e->p, &b), 0);

	rv_plic_init(&f->p, 2, set_irq, f);
	assert_int_equal(rv_plic_load(&f->p, b.data, b.len, &err), 0);
	assert_true(f->out[1]); /* 33 pending: driven at load */
	assert_int_equal(rd(f, PRIO(10)), 3);
	assert_int_equal(rd(f, THRESHOLD(1)), 1);
	assert_int_equal(rd(f, CLAIM(1)), 33);
	wr(f, CLAIM(1), 10); /* 10 was claimed before the save */
	assert_int_equal(rd(f, CLAIM(1)), 10);
	assert_int_equal(rv_plic_save(&e->p, &b2), 0);
	assert_int_equal(b.len, b2.len);
	assert_memory_equal(b.data, b2.data, b.len);
	rv_plic_destroy(&f->p);
	free(f);
	ferry_buf_free(&b);
	ferry_buf_free(&b2);
}

static void test_load_rejects(void **state)
{
	struct env *e = *state;
	struct ferry_buf b = { 0 };
	struct ferry_error err = { 0 };
	struct rv_plic other;
	uint8_t *bad;

	assert_int_equal(rv_plic_save(&e->p, &b), 0);
	bad = malloc(b.len);
	assert_int_equal(rv_plic_load(&e->p, b.data, b.len - 4, &err), -EINVAL);
	ferry_error_clear(&err);
	memcpy(bad, b.data, b.len);
	bad[0] = 64; /* sources */
	assert_int_equal(rv_plic_load(&e->p, bad, b.len, &err), -EINVAL);
	ferry_error_clear(&err);
	/* a machine of another size */
	rv_plic_init(&other, 3, NULL, NULL);
	assert_int_equal(rv_plic_load(&other, b.data, b.len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "contexts"));
	rv_plic_destroy(&other);
	ferry_error_clear(&err);
	memcpy(bad, b.data, b.len);
	bad[8 + 4 * 10] = 8; /* priority of source 10 */
	assert_int_equal(rv_plic_load(&e->p, bad, b.len, &err), -EINVAL);
	ferry_error_clear(&err);
	memcpy(bad, b.data, b.len);
	bad[8 + 4 * RV_PLIC_NSRC] = 1; /* source 0 pending */
	assert_int_equal(rv_plic_load(&e->p, bad, b.len, &err), -EINVAL);
	ferry_error_clear(&err);
	memcpy(bad, b.data, b.len);
	bad[b.len - 4] = 8; /* threshold of the last context */
	assert_int_equal(rv_plic_load(&e->p, bad, b.len, &err), -EINVAL);
	free(bad);
	ferry_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_registers),	   T(test_claim_complete),
		T(test_level_pends_again), T(test_priority_and_threshold),
		T(test_contexts_apart),	   T(test_save_load),
		T(test_load_rejects),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
