/*
 * test_guest.c - the reference guest: fill, run control, vCPU state and
 * the heartbeat.
 *
 * The central check is exact resumption: a stopped guest's RAM and device
 * sections loaded into a second guest make the two indistinguishable, step
 * for step, which is what a migrated guest must be.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry/guest.h"
#include "ferry/stream.h"
#include "guest_internal.h"

static struct ferry_guest *make(const char *wl, enum ferry_fill fill,
				unsigned zero_pct, uint64_t seed)
{
	struct ferry_guest_config cfg = {
		.block_sizes = { 24u << 20, 8u << 20 },
		.nblocks = 2,
		.vcpus = 2,
		.fill = fill,
		.zero_percent = zero_pct,
		.seed = seed,
		.workload = wl,
		.dirty = "explicit",
	};
	struct ferry_error err = { 0 };
	struct ferry_guest *g = NULL;

	if (ferry_guest_create(&cfg, &g, &err))
		fail_msg("create %s: %s", wl, ferry_error_msg(&err));
	return g;
}

static void digest(struct ferry_guest *g, uint8_t out[16])
{
	struct ferry_error err = { 0 };

	assert_int_equal(ferry_vm_digest(ferry_guest_vm(g), out, &err), 0);
}

/*
 * Wait, up to a minute, until the guest's page writes (or with ticks its
 * heartbeat's ticks) pass `than`, and return them: vCPUs run when a busy
 * machine lets them, not within a fixed time.
 */
static uint64_t wait_past(struct ferry_guest *g, bool ticks, uint64_t than)
{
	struct ferry_guest_stats st;
	int i;

	for (i = 0; i < 60000; i++) {
		ferry_guest_stats(g, &st);
		if ((ticks ? st.heartbeat_ticks : st.writes) > than)
			return ticks ? st.heartbeat_ticks : st.writes;
		usleep(1000);
	}
	fail_msg("the guest's %s did not pass %llu in a minute",
		 ticks ? "heartbeat" : "workload", (unsigned long long)than);
	return 0;
}

static uint64_t zero_pages(struct ferry_guest *g)
{
	uint64_t i, n = 0;
	size_t k;

	for (i = 0; i < g->mem.npages; i++) {
		uint32_t b;
		const uint8_t *p = gmem_page(&g->mem, i, &b);

		for (k = 0; k < g->page_size && !p[k]; k++)
			;
		n += k == g->page_size;
	}
	return n;
}

static void test_fill(void **state)
{
	struct ferry_guest *a, *b, *c;
	uint8_t da[16], db[16], dc[16];
	uint64_t z, n;

	(void)state;
	a = make("idle", FERRY_FILL_ZERO, 0, 1);
	assert_int_equal(zero_pages(a), a->mem.npages);
	ferry_guest_destroy(a);

	a = make("idle", FERRY_FILL_RANDOM, 0, 1);
	assert_int_equal(zero_pages(a), 0);
	b = make("idle", FERRY_FILL_RANDOM, 0, 1);
	c = make("idle", FERRY_FILL_RANDOM, 0, 2);
	digest(a, da);
	digest(b, db);
	digest(c, dc);
	assert_memory_equal(da, db, 16);     /* same seed, same guest */
	assert_memory_not_equal(da, dc, 16); /* another seed, another */
	ferry_guest_destroy(a);
	ferry_guest_destroy(b);
	ferry_guest_destroy(c);

	a = make("idle", FERRY_FILL_MIXED, 50, 3);
	z = zero_pages(a);
	n = a->mem.npages;
	assert_true(z > n * 45 / 100 && z < n * 55 / 100);
	ferry_guest_destroy(a);
}

static void test_digest_stable_while_stopped(void **state)
{
	struct ferry_guest *g =
		make("stress:bytes=16M", FERRY_FILL_RANDOM, 0, 5);
	struct ferry_error err = { 0 };
	uint8_t d1[16], d2[16], d3[16];
	struct ferry_guest_stats st;

	(void)state;
	assert_int_equal(ferry_guest_start(g, true, &err), 0);
	wait_past(g, false, 0);
	ferry_guest_stop(g);
	assert_false(ferry_guest_running(g));
	digest(g, d1);
	ferry_guest_stats(g, &st);
	usleep(30000); /* stopped: nothing may change meanwhile */
	digest(g, d2);
	assert_memory_equal(d1, d2, 16);
	ferry_guest_resume(g);
	assert_true(ferry_guest_running(g));
	wait_past(g, false, st.writes);
	ferry_guest_stop(g);
	digest(g, d3);
	assert_memory_not_equal(d1, d3, 16);
	ferry_guest_destroy(g);
}

/* stress keep=off: a stop lands between steps, so each slice holds the
 * current pass's values before the position register, the previous
 * pass's after it. */
static void test_stop_leaves_stress_consistent(void **state)
{
	struct ferry_guest *g =
		make("stress:bytes=4M,keep=off", FERRY_FILL_RANDOM, 0, 9);
	struct ferry_error err = { 0 };
	unsigned t, round;

	(void)state;
	assert_int_equal(ferry_guest_start(g, true, &err), 0);
	for (round = 0; round < 5; round++) {
		/* two passes of each vCPU's slice at least, then a stop at
		 * a point that differs from round to round */
		for (t = 0; t < 2; t++) {
			uint64_t base = atomic_load(&g->vcpus[t].writes);
			int i;

			for (i = 0;
			     i < 60000 && atomic_load(&g->vcpus[t].writes) <
						  base + g->wl.region_pages;
			     i++)
				usleep(1000);
		}
		usleep(round * 3000);
		ferry_guest_stop(g);
		for (t = 0; t < 2; t++) {
			const struct wl_regs *r = &g->vcpus[t].regs;
			uint64_t first = g->wl.region_pages * t / 2;
			uint64_t count =
				g->wl.region_pages * (t + 1) / 2 - first;
			uint64_t i;

			assert_true(r->r[0] >= 2); /* at least a pass done */
			assert_true(r->r[1] < count);
			for (i = 0; i < count; i++) {
				uint32_t b;
				uint64_t gpn = first + i, v;
				uint64_t pass = i < r->r[1] ? r->r[0]
							    : r->r[0] - 1;

				memcpy(&v, gmem_page(&g->mem, gpn, &b), 8);
				if (v != stress_value(gpn, pass, false))
					fail_msg("vcpu %u page %llu: pass %llu "
						 "value expected",
						 t, (unsigned long long)gpn,
						 (unsigned long long)pass);
			}
		}
		ferry_guest_resume(g);
	}
	ferry_guest_destroy(g);
}

/* Save every section of a stopped guest into a ferry_buf per section. */
static void copy_state(struct ferry_guest *from, struct ferry_guest *to)
{
	const struct ferry_vm *a = ferry_guest_vm(from),
			      *b = ferry_guest_vm(to);
	struct ferry_error err = { 0 };
	size_t i;

	assert_int_equal(a->nblocks, b->nblocks);
	for (i = 0; i < a->nblocks; i++)
		memcpy(b->blocks[i].host, a->blocks[i].host,
		       a->blocks[i].length);
	assert_int_equal(a->nsections, b->nsections);
	for (i = 0; i < a->nsections; i++) {
		struct ferry_buf buf = { 0 };

		assert_string_equal(a->sections[i].name, b->sections[i].name);
		assert_int_equal(
			a->sections[i].save(a->sections[i].opaque, &buf), 0);
		if (b->sections[i].load(b->sections[i].opaque,
					a->sections[i].version, buf.data,
					buf.len, &err))
			fail_msg("load %s: %s", b->sections[i].name,
				 ferry_error_msg(&err));
		ferry_buf_free(&buf);
	}
}

static void exact_resume(const char *wl)
{
	struct ferry_guest *a = make(wl, FERRY_FILL_MIXED, 20, 11);
	struct ferry_guest *b = make(wl, FERRY_FILL_ZERO, 0, 11);
	struct ferry_error err = { 0 };
	uint8_t da[16], db[16], before[16];
	unsigned v;

	assert_int_equal(ferry_guest_start(a, true, &err), 0);
	assert_int_equal(ferry_guest_start(b, false, &err), 0);
	usleep(20000);
	ferry_guest_stop(a);
	copy_state(a, b);
	digest(a, da);
	digest(b, db);
	assert_memory_equal(da, db, 16);
	memcpy(before, da, 16);
	for (v = 0; v < 2; v++) {
		assert_int_equal(guest_step(a, v, 100), 0);
		assert_int_equal(guest_step(b, v, 100), 0);
	}
	digest(a, da);
	digest(b, db);
	assert_memory_equal(da, db, 16); /* same steps, same result */
	assert_memory_not_equal(da, before, 16);
	assert_int_equal(guest_step(a, 0, 1), 0);
	digest(a, da);
	assert_memory_not_equal(da, db, 16); /* and the check can fail */
	/* a running guest cannot be stepped by hand */
	ferry_guest_resume(b);
	assert_int_equal(guest_step(b, 0, 1), -EBUSY);
	ferry_guest_destroy(a);
	ferry_guest_destroy(b);
}

static void test_exact_resume_stress(void **state)
{
	(void)state;
	exact_resume("stress:bytes=8M,keep=off");
}

static void test_exact_resume_zipf(void **state)
{
	(void)state;
	exact_resume("zipf:theta=0.9,rate=0");
}

static void test_cpu_section_checks(void **state)
{
	struct ferry_guest *a = make("stress:bytes=8M", FERRY_FILL_ZERO, 0, 1);
	struct ferry_guest *b = make("zipf", FERRY_FILL_ZERO, 0, 1);
	struct ferry_guest *c = make("stress:bytes=4M", FERRY_FILL_ZERO, 0, 1);
	const struct ferry_section *sa = &ferry_guest_vm(a)->sections[0];
	const struct ferry_section *sb = &ferry_guest_vm(b)->sections[0];
	const struct ferry_section *sc = &ferry_guest_vm(c)->sections[0];
	struct ferry_error err = { 0 };
	struct ferry_buf buf = { 0 };

	(void)state;
	assert_string_equal(sa->name, "cpu");
	assert_int_equal(sa->save(sa->opaque, &buf), 0);
	/* another workload */
	assert_int_equal(sb->load(sb->opaque, 1, buf.data, buf.len, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "stress"));
	/* same workload, other parameters */
	ferry_error_clear(&err);
	assert_int_equal(sc->load(sc->opaque, 1, buf.data, buf.len, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "parameters"));
	/* truncated, and an unknown version */
	ferry_error_clear(&err);
	assert_int_equal(sa->load(sa->opaque, 1, buf.data, buf.len - 1, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "section of"));
	ferry_error_clear(&err);
	assert_int_equal(sa->load(sa->opaque, 2, buf.data, buf.len, &err),
			 -EPROTONOSUPPORT);
	/* the field that is wrong is the one named */
	ferry_error_clear(&err);
	buf.data[4] ^= 1;
	assert_int_equal(sa->load(sa->opaque, 1, buf.data, buf.len, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "register count 9, expected 8"));
	ferry_buf_free(&buf);
	ferry_guest_destroy(a);
	ferry_guest_destroy(b);
	ferry_guest_destroy(c);
}

static void test_heartbeat_sees_stop(void **state)
{
	struct ferry_guest *g = make("idle", FERRY_FILL_ZERO, 0, 1);
	struct ferry_error err = { 0 };
	struct ferry_guest_stats st;

	(void)state;
	assert_int_equal(ferry_guest_start(g, true, &err), 0);
	wait_past(g, true, 5);
	ferry_guest_stop(g);
	ferry_guest_stats(g, &st);
	usleep(80000); /* the freeze: at least this long */
	ferry_guest_resume(g);
	wait_past(g, true, st.heartbeat_ticks); /* a tick after the resume */
	ferry_guest_stats(g, &st);
	/* the 80 ms freeze shows up as a stall of at least 70 ms */
	assert_true(st.max_stall_us >= 70000);
	ferry_guest_destroy(g);
}

static void test_bad_configs(void **state)
{
	static const struct {
		const char *wl, *needle;
	} cases[] = {
		{ "dance", "unknown workload" },
		{ "stress:threads=3", "threads" },
		{ "stress:keep=maybe", "keep" },
		{ "stress:bytes=1G", "more than" },
		{ "stress:bytes=12Q", "not a size" },
		{ "zipf:theta=1", "theta" },
		{ "zipf:rate=-4", "rate" },
		{ "zipf:color=red", "unknown parameter" },
		{ "stress:keep", "key=value" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ferry_guest_config cfg = {
			.block_sizes = { 8u << 20 },
			.nblocks = 1,
			.vcpus = 2,
			.workload = cases[i].wl,
			.dirty = "explicit",
		};
		struct ferry_error err = { 0 };
		struct ferry_guest *g = NULL;

		assert_int_equal(ferry_guest_create(&cfg, &g, &err), -EINVAL);
		if (!strstr(err.msg, cases[i].needle))
			fail_msg("%s: message '%s' lacks '%s'", cases[i].wl,
				 err.msg, cases[i].needle);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fill),
		cmocka_unit_test(test_digest_stable_while_stopped),
		cmocka_unit_test(test_stop_leaves_stress_consistent),
		cmocka_unit_test(test_exact_resume_stress),
		cmocka_unit_test(test_exact_resume_zipf),
		cmocka_unit_test(test_cpu_section_checks),
		cmocka_unit_test(test_heartbeat_sees_stop),
		cmocka_unit_test(test_bad_configs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
