/*
 * test_dirty.c - the dirty trackers report exactly the pages written.
 *
 * Each backend is checked against a shadow bitmap over randomised rounds
 * of writes from the test thread, and against real vCPU threads writing
 * while syncs run: every page whose content changed must be reported.
 * The uffd backend is skipped, with the reason, where the kernel or the
 * process's privileges do not allow it.
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

#include "ferry/dirty.h"
#include "ferry/guest.h"
#include "guest_internal.h"

static struct ferry_guest *make_guest(const char *backend, const char *wl,
				      unsigned vcpus)
{
	struct ferry_guest_config cfg = {
		.block_sizes = { 48u << 20, 16u << 20 },
		.nblocks = 2,
		.vcpus = vcpus,
		.fill = FERRY_FILL_MIXED,
		.zero_percent = 30,
		.seed = 42,
		.workload = wl,
		.dirty = backend,
	};
	struct ferry_error err = { 0 };
	struct ferry_guest *g = NULL;
	int rc = ferry_guest_create(&cfg, &g, &err);

	if (rc && !strcmp(backend, "uffd") &&
	    (rc == -EPERM || rc == -ENOSYS || rc == -EINVAL)) {
		printf("# uffd tracker unavailable here: %s\n",
		       ferry_error_msg(&err));
		return NULL;
	}
	if (rc)
		fail_msg("guest create (%s): %s", backend,
			 ferry_error_msg(&err));
	return g;
}

/* Pages reported by a sync, as a byte per guest page. */
static void to_bitmap(const struct ferry_guest *g,
		      const struct ferry_dirty_set *s, uint8_t *bm)
{
	size_t i;
	uint64_t k;

	for (i = 0; i < s->n; i++) {
		const struct ferry_dirty_range *r = &s->ranges[i];

		assert_true(r->block < g->nblocks);
		assert_true(r->first + r->count <=
			    g->blocks[r->block].length / g->page_size);
		for (k = 0; k < r->count; k++) {
			uint64_t gpn =
				g->mem.first_page[r->block] + r->first + k;

			assert_int_equal(bm[gpn], 0); /* reported once */
			bm[gpn] = 1;
		}
	}
}

static void write_page(struct ferry_guest *g, uint64_t gpn, uint64_t v)
{
	uint32_t block;
	uint8_t *p = gmem_page(&g->mem, gpn, &block);
	size_t off = (v % (g->page_size / 8)) * 8;

	memcpy(p + off, &v, 8);
	gmem_wrote(&g->mem, block, p + off, 8);
}

static void shadow_rounds(const char *backend)
{
	struct ferry_guest *g = make_guest(backend, "idle", 1);
	struct ferry_dirty_set set = { 0 };
	struct ferry_error err = { 0 };
	uint8_t *shadow, *seen;
	uint64_t n, s[4], round;

	if (!g) {
		skip();
		return;
	}
	n = g->mem.npages;
	shadow = calloc(n, 1);
	seen = calloc(n, 1);
	assert_non_null(shadow);
	assert_non_null(seen);
	assert_int_equal(ferry_dirty_start(g->dirty, &err), 0);
	assert_int_equal(ferry_dirty_sync(g->dirty, &set, &err), 0);
	assert_int_equal(set.pages, 0); /* nothing written since start */
	xoshiro_seed(s, 7);

	for (round = 0; round < 60; round++) {
		uint64_t want = 0, i, kind = round % 6, count;

		memset(shadow, 0, n);
		memset(seen, 0, n);
		switch (kind) {
		case 0: /* nothing */
			count = 0;
			break;
		case 1: /* one page */
			count = 1;
			break;
		case 2: /* a few */
			count = 1 + xoshiro_next(s) % 40;
			break;
		case 3: /* about 10% */
			count = n / 10;
			break;
		case 4: { /* a run across the block boundary */
			uint64_t start = g->mem.first_page[1] - 100;

			for (i = 0; i < 300; i++) {
				write_page(g, start + i, round);
				shadow[start + i] = 1;
			}
			count = 0;
			break;
		}
		default: /* the last page of each block and the first */
			write_page(g, 0, round);
			write_page(g, g->mem.first_page[1] - 1, round);
			write_page(g, g->mem.first_page[1], round);
			write_page(g, n - 1, round);
			shadow[0] = shadow[g->mem.first_page[1] - 1] = 1;
			shadow[g->mem.first_page[1]] = shadow[n - 1] = 1;
			count = 0;
			break;
		}
		for (i = 0; i < count; i++) {
			uint64_t gpn = xoshiro_next(s) % n;

			/* some pages twice: still one report */
			write_page(g, gpn, xoshiro_next(s));
			shadow[gpn] = 1;
		}
		for (i = 0; i < n; i++)
			want += shadow[i];
		ferry_dirty_set_reset(&set);
		assert_int_equal(ferry_dirty_sync(g->dirty, &set, &err), 0);
		to_bitmap(g, &set, seen);
		if (memcmp(seen, shadow, n)) {
			for (i = 0; i < n && seen[i] == shadow[i]; i++)
				;
			fail_msg("%s round %llu: page %llu written=%d "
				 "reported=%d (%llu written, %llu reported)",
				 backend, (unsigned long long)round,
				 (unsigned long long)i, shadow[i], seen[i],
				 (unsigned long long)want,
				 (unsigned long long)set.pages);
		}
		assert_int_equal(set.pages, want);
	}

	/* After stop nothing is tracked; a new start begins clean. */
	ferry_dirty_stop(g->dirty);
	write_page(g, 5, 1);
	assert_int_equal(ferry_dirty_start(g->dirty, &err), 0);
	ferry_dirty_set_reset(&set);
	assert_int_equal(ferry_dirty_sync(g->dirty, &set, &err), 0);
	assert_int_equal(set.pages, 0);
	write_page(g, 6, 1);
	ferry_dirty_set_reset(&set);
	assert_int_equal(ferry_dirty_sync(g->dirty, &set, &err), 0);
	assert_int_equal(set.pages, 1);
	assert_int_equal(set.ranges[0].first, 6);

	ferry_dirty_set_free(&set);
	free(shadow);
	free(seen);
	ferry_guest_destroy(g);
}

static void test_uffd_shadow(void **state)
{
	(void)state;
	shadow_rounds("uffd");
}

static void test_explicit_shadow(void **state)
{
	(void)state;
	shadow_rounds("explicit");
}

/*
 * vCPU threads write while the tracker syncs every few milliseconds; at
 * the end, every page whose content differs from a snapshot taken at the
 * start must have been reported by one of the syncs.
 */
static bool guest_wrote(const struct ferry_guest *g)
{
	struct ferry_guest_stats st;

	ferry_guest_stats(g, &st);
	return st.writes > 0;
}

static void concurrent(const char *backend, const char *wl)
{
	struct ferry_guest *g = make_guest(backend, wl, 2);
	struct ferry_dirty_set set = { 0 };
	struct ferry_error err = { 0 };
	uint8_t *seen, *snap;
	uint64_t n, i, changed = 0, ram;
	int k;

	if (!g) {
		skip();
		return;
	}
	n = g->mem.npages;
	ram = n * g->page_size;
	seen = calloc(n, 1);
	snap = malloc(ram);
	assert_non_null(seen);
	assert_non_null(snap);
	assert_int_equal(ferry_guest_start(g, false, &err), 0);
	ferry_guest_stop(g);
	memcpy(snap, g->blocks[0].host, g->blocks[0].length);
	memcpy(snap + g->blocks[0].length, g->blocks[1].host,
	       g->blocks[1].length);
	assert_int_equal(ferry_dirty_start(g->dirty, &err), 0);
	ferry_guest_resume(g);
	/* 40 syncs at least, and on until the workload wrote (up to a
	 * minute: a busy machine may keep the vCPUs waiting) */
	for (k = 0; k < 40 || (k < 12000 && !guest_wrote(g)); k++) {
		usleep(5000);
		assert_int_equal(ferry_dirty_sync(g->dirty, &set, &err), 0);
	}
	ferry_guest_stop(g);
	assert_int_equal(ferry_dirty_sync(g->dirty, &set, &err), 0);
	for (i = 0; i < set.n; i++) {
		const struct ferry_dirty_range *r = &set.ranges[i];
		uint64_t p;

		for (p = 0; p < r->count; p++)
			seen[g->mem.first_page[r->block] + r->first + p] = 1;
	}
	for (i = 0; i < n; i++) {
		uint32_t block;
		const uint8_t *p = gmem_page(&g->mem, i, &block);

		if (memcmp(p, snap + i * g->page_size, g->page_size)) {
			changed++;
			if (!seen[i])
				fail_msg("%s/%s: page %llu changed but was "
					 "never reported dirty",
					 backend, wl, (unsigned long long)i);
		}
	}
	assert_true(changed > 0); /* the workload did run */
	ferry_dirty_set_free(&set);
	free(seen);
	free(snap);
	ferry_guest_destroy(g);
}

static void test_uffd_concurrent_stress(void **state)
{
	(void)state;
	concurrent("uffd", "stress:bytes=32M");
}

static void test_uffd_concurrent_zipf(void **state)
{
	(void)state;
	concurrent("uffd", "zipf:rate=0");
}

static void test_explicit_concurrent_stress(void **state)
{
	(void)state;
	concurrent("explicit", "stress:bytes=32M");
}

static void test_explicit_concurrent_zipf(void **state)
{
	(void)state;
	concurrent("explicit", "zipf:rate=0");
}

static void test_unknown_backend(void **state)
{
	struct ferry_error err = { 0 };
	struct ferry_dirty *d;
	struct ferry_ramblock b = { .id = 0, .name = "ram0" };

	(void)state;
	assert_int_equal(ferry_dirty_open("softdirty", &b, 1, 4096, &d, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "softdirty"));
}

static void test_sync_before_start(void **state)
{
	struct ferry_guest *g = make_guest("explicit", "idle", 1);
	struct ferry_dirty_set set = { 0 };
	struct ferry_error err = { 0 };

	(void)state;
	assert_int_equal(ferry_dirty_sync(g->dirty, &set, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "before start"));
	ferry_guest_destroy(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uffd_shadow),
		cmocka_unit_test(test_explicit_shadow),
		cmocka_unit_test(test_uffd_concurrent_stress),
		cmocka_unit_test(test_uffd_concurrent_zipf),
		cmocka_unit_test(test_explicit_concurrent_stress),
		cmocka_unit_test(test_explicit_concurrent_zipf),
		cmocka_unit_test(test_unknown_backend),
		cmocka_unit_test(test_sync_before_start),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
