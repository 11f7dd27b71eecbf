/*
 * postcopy_out.c - the source's side of post-copy, once the destination
 * runs the guest: answer page requests at once, on the return path's
 * thread and the urgent connection, with a window of the pages after the
 * one asked for; send every other
 * page still to go on the main connection, from just past the last
 * request (where the guest is likely to touch next).  Each page goes
 * once: whichever thread clears its bit in `todo` sends it.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "outgoing.h"
#include "postcopy.h"

#define NO_HINT	   UINT64_MAX
#define WINDOW_MAX 64
#define NEAR_PAGES 64 /* the background's run after a request */

static bool test_clear(_Atomic uint64_t *w, uint64_t i)
{
	uint64_t m = 1ull << (i % 64);

	return atomic_fetch_and(&w[i / 64], ~m) & m;
}

static void split(const struct out *o, uint64_t gpn, uint32_t *bi,
		  uint64_t *page)
{
	uint32_t i = (uint32_t)o->vm->nblocks - 1;

	while (i && o->first_page[i] > gpn)
		i--;
	*bi = i;
	*page = gpn - o->first_page[i];
}

int pc_out_init(struct pc_out *pc, struct out *o,
		const struct ferry_dirty_set *pending,
		const struct ferry_dirty_set *hot, struct ferry_error *err)
{
	const struct ferry_vm *vm = o->vm;
	size_t i;
	uint64_t k;

	memset(pc, 0, sizeof(*pc));
	pc->o = o;
	pc->npages = o->first_page[vm->nblocks - 1] +
		     vm->blocks[vm->nblocks - 1].length / vm->page_size;
	pc->todo = calloc((pc->npages + 63) / 64, sizeof(uint64_t));
	pc->hot = calloc((pc->npages + 63) / 64, sizeof(uint64_t));
	pc->held = calloc((pc->npages + 63) / 64, sizeof(uint64_t));
	if (!pc->todo || !pc->hot || !pc->held)
		return ferry_error_set(err, -ENOMEM,
				       "out of memory for post-copy");
	for (i = 0; i < pending->n; i++) {
		const struct ferry_dirty_range *r = &pending->ranges[i];

		for (k = 0; k < r->count; k++) {
			uint64_t g = o->first_page[r->block] + r->first + k;
			uint64_t m = 1ull << (g % 64);

			if (!(atomic_fetch_or(&pc->todo[g / 64], m) & m))
				pc->left++;
		}
	}
	for (i = 0; i < hot->n; i++) {
		const struct ferry_dirty_range *r = &hot->ranges[i];

		for (k = 0; k < r->count; k++) {
			uint64_t g = o->first_page[r->block] + r->first + k;

			pc->hot[g / 64] |= 1ull << (g % 64);
		}
	}
	atomic_store(&pc->hint, NO_HINT);
	pc->window = 4;
	return 0;
}

/*
 * Send page gpn on s if nobody has (or, `asked`, even if the background
 * took it: that copy may wait behind megabytes queued on the main
 * connection, and the destination places whichever arrives first); 1 if
 * this call sent it.
 */
static int take(struct pc_out *pc, struct sender *s, uint64_t gpn, bool asked,
		struct ferry_error *err)
{
	uint32_t bi;
	uint64_t page;
	bool first;
	int rc;

	if (gpn >= pc->npages)
		return 0;
	first = test_clear(pc->todo, gpn);
	if (!first && !asked)
		return 0;
	split(pc->o, gpn, &bi, &page);
	rc = send_one(s, bi, page, SEND_POSTCOPY, err);
	if (first)
		atomic_fetch_sub(&pc->left, 1);
	return rc ? rc : 1;
}

/*
 * On the return path's thread, as the request arrives (no hand-over to
 * another thread: each wake-up costs tens of microseconds on a loaded
 * host): the page, then the window after it, on the urgent connection.
 */
void pc_out_request(void *opaque, uint32_t block, uint64_t page)
{
	struct pc_out *pc = opaque;
	struct sender *s = &pc->o->urgent;
	uint64_t gpn = pc->o->first_page[block] + page, k, w;
	int rc = 0;

	if (pc->rc || !pc->live)
		return; /* failed: the background sends the rest, or fails */
	atomic_fetch_add(&pc->waiting, 1);
	/* sequential faults widen the window, scattered ones narrow it */
	if (pc->served && gpn > pc->last_req &&
	    gpn <= pc->last_req + 2 * pc->window + 16)
		pc->window = pc->window * 2 > WINDOW_MAX ? WINDOW_MAX
							 : pc->window * 2;
	else if (pc->window > 1)
		pc->window /= 2;
	pc->last_req = gpn;
	atomic_fetch_add(&pc->served, 1);
	w = pc->window;
	rc = take(pc, s, gpn, true, &pc->err);
	for (k = 1; k <= w && rc >= 0; k++)
		rc = take(pc, s, gpn + k, false, &pc->err);
	if (rc >= 0)
		rc = sender_flush(s, &pc->err);
	atomic_store(&pc->hint, gpn + w + 1);
	atomic_fetch_sub(&pc->waiting, 1);
	if (rc < 0)
		pc->rc = rc;
}

int pc_out_start(struct pc_out *pc, struct ferry_error *err)
{
	(void)err;
	pc->live = true;
	return 0;
}

void pc_out_resume(struct pc_out *pc)
{
	uint64_t w, nw = (pc->npages + 63) / 64, left = 0;

	for (w = 0; w < nw; w++) {
		uint64_t todo = ~atomic_load(&pc->held[w]);

		if (w == nw - 1 && pc->npages % 64)
			todo &= (1ull << (pc->npages % 64)) - 1;
		atomic_store(&pc->todo[w], todo);
		left += (uint64_t)__builtin_popcountll(todo);
	}
	atomic_store(&pc->left, left);
	atomic_store(&pc->hint, NO_HINT);
	pc->rc = 0;
	ferry_error_clear(&pc->err);
	pc->live = true;
}

/* The first page at or after `from` whose bit is set in todo (and, with
 * only_hot, in hot), or npages. */
static uint64_t next_page(const struct pc_out *pc, uint64_t from, bool only_hot)
{
	while (from < pc->npages) {
		uint64_t w = atomic_load(&pc->todo[from / 64]);

		if (only_hot)
			w &= pc->hot[from / 64];
		w >>= from % 64;
		if (w)
			return from + (uint64_t)__builtin_ctzll(w);
		from = (from / 64 + 1) * 64;
	}
	return pc->npages;
}

/*
 * Hottest first: the pages after the last one asked for (where the guest
 * is likely to go next), then the pages written during the last
 * iteration (the guest's working set), then the rest in order.
 */
int pc_out_background(struct pc_out *pc, struct ferry_error *err)
{
	struct sender *s = &pc->o->main;
	uint64_t cursor = 0, hot = 0, near = 0, near_left = 0, g, sent = 0;
	int rc = 0;

	while (atomic_load(&pc->left) && rc >= 0) {
		uint64_t h = atomic_exchange(&pc->hint, NO_HINT);

		if (h != NO_HINT && h < pc->npages) {
			near = h;
			near_left = NEAR_PAGES;
		}
		if (near_left) {
			g = next_page(pc, near, false);
			near_left = g - near < near_left
					    ? near_left - (g - near)
					    : 0;
			near = g + 1;
			if (!near_left || g >= pc->npages)
				continue;
			near_left--;
		} else if (pc->hot && hot < pc->npages) {
			g = next_page(pc, hot, true);
			hot = g + 1;
			if (g >= pc->npages)
				continue;
		} else {
			g = next_page(pc, cursor, false);
			if (g >= pc->npages) {
				if (!cursor)
					break; /* answers took the rest */
				cursor = 0;
				continue;
			}
			cursor = g + 1;
		}
		/* a vCPU waits for a page: let its answer have the CPU (two
		 * cores are shared by everything here) */
		if (atomic_load(&pc->waiting))
			sched_yield();
		rc = take(pc, s, g, false, err);
		if (rc > 0 && ++sent % 4096 == 0) /* live figures */
			out_publish(pc->o, atomic_load(&pc->left));
	}
	if (rc >= 0)
		rc = sender_flush(s, err);
	return rc < 0 ? rc : 0;
}

/* Called after rp_on_request(NULL): no request is being served. */
int pc_out_stop(struct pc_out *pc, struct ferry_error *err)
{
	pc->live = false;
	if (pc->rc)
		return ferry_error_set(err, pc->rc, "urgent channel: %s",
				       ferry_error_msg(&pc->err));
	return 0;
}

void pc_out_free(struct pc_out *pc)
{
	free(pc->todo);
	free(pc->hot);
	free(pc->held);
	pc->todo = NULL;
	pc->hot = NULL;
	pc->held = NULL;
	pc->o = NULL;
}
