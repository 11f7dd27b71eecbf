/*
 * postcopy_out.c - the source's side of post-copy.
 *
 * The switch (out_postcopy): stop the guest, drop on the destination the
 * pages still to go, send the devices and hand the guest over.  Then,
 * while the destination runs it: answer page requests at once, on the
 * return path's thread and the urgent connection, with a window of the
 * pages after the one asked for; send every other page still to go on the
 * main connection, from just past the last request (where the guest is
 * likely to touch next).  Each page goes once: whichever thread clears
 * its bit in `todo` sends it.  A broken link pauses; `migrate` with
 * resume connects again and post-copy goes on from the pages the
 * destination says it holds.
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

void pc_out_add(struct pc_out *pc, const struct ferry_dirty_set *pending,
		const struct ferry_dirty_set *hot)
{
	const struct out *o = pc->o;
	size_t i;
	uint64_t k;

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
}

int pc_out_init(struct pc_out *pc, struct out *o,
		const struct ferry_dirty_set *pending,
		const struct ferry_dirty_set *hot, struct ferry_error *err)
{
	const struct ferry_vm *vm = o->vm;

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
	pc_out_add(pc, pending, hot);
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

/* ---- the switch to post-copy, and what follows it --------------------- */

/* Pages the destination must drop: they come again in post-copy. */
static int send_discards(struct out *o, const struct ferry_dirty_set *set)
{
	uint32_t ids[FERRY_STREAM_MAX_DISCARDS];
	uint64_t first[FERRY_STREAM_MAX_DISCARDS],
		count[FERRY_STREAM_MAX_DISCARDS];
	uint32_t n = 0;
	size_t i;
	int rc = 0;

	for (i = 0; i <= set->n && !rc; i++) {
		if (n == FERRY_STREAM_MAX_DISCARDS || (i == set->n && n)) {
			rc = ferry_stream_put_discard(o->main.enc, ids, first,
						      count, n);
			n = 0;
		}
		if (i == set->n)
			break;
		ids[n] = o->vm->blocks[set->ranges[i].block].id;
		first[n] = set->ranges[i].first;
		count[n++] = set->ranges[i].count;
	}
	return rc;
}

/* A connection that goes away mid-stream: keep its byte count. */
static void sender_drop(struct sender *s)
{
	if (s->enc)
		s->past_bytes += ferry_stream_encoder_bytes(s->enc);
	sender_close(s);
}

/*
 * The pages still to go, the end of stream with the digest, the verdict:
 * 0 once the destination has given it (in *status).
 */
static int postcopy_finish(struct out *o, struct pc_out *pc, bool verify,
			   int *status, char *msg, size_t len,
			   struct ferry_error *err)
{
	uint8_t digest[16];
	int rc;

	rc = pc_out_background(pc, err);
	/* no more answers (late requests are for pages sent already); the
	 * lock waits for one under way */
	pc->live = false;
	rp_on_request(&o->rp, pc_out_request, pc);
	if (!rc)
		rc = pc_out_stop(pc, err);
	if (!rc)
		rc = ferry_stream_put_end(o->urgent.enc, NULL);
	if (!rc)
		rc = sender_flush(&o->urgent, err);
	if (!rc && verify)
		rc = ferry_vm_digest_hashes(o->vm, o->ph.h, digest, err);
	if (!rc) /* as in switchover: a success may answer the end alone */
		rc = ferry_stream_flush(o->main.enc);
	if (!rc && rp_end_begin(&o->rp))
		rc = -ECONNRESET;
	if (!rc)
		rc = ferry_stream_put_end(o->main.enc, verify ? digest : NULL);
	if (!rc)
		rc = ferry_stream_flush(o->main.enc);
	out_publish(o, 0);
	if (!rc)
		rc = rp_wait_result(&o->rp, MIG_RESULT_TIMEOUT_MS, status, msg,
				    len, err);
	if (rc && !err->code)
		peer_verdict(o, rc, err);
	return rc;
}

/* A failure after the switch that a new connection can mend: the link
 * broke, and the destination gave no verdict. */
static bool link_lost(struct out *o, int rc)
{
	bool verdict;

	if (rc == -ENOMEM || rc == -ECANCELED)
		return false;
	pthread_mutex_lock(&o->rp.lock);
	verdict = o->rp.have_result;
	pthread_mutex_unlock(&o->rp.lock);
	return !verdict;
}

/* Connect again, learn which pages the destination holds, and answer
 * its requests from there on. */
static int connect_again(struct out *o, struct pc_out *pc,
			 struct ferry_error *err)
{
	int rc;

	memset(pc->held, 0, (pc->npages + 63) / 64 * sizeof(uint64_t));
	o->rp.held = pc->held;
	o->rp.first_page = o->first_page;
	o->resuming = true;
	/* the uri may name another transport than the first connection's
	 * (a tcp: resume after post-copy over rdma): its carrier then */
	rc = carrier_pick(o, err);
	if (!rc)
		rc = sender_open(o, &o->main, 0, o->session, err);
	if (!rc) {
		rc = rp_rx_start(&o->rp, o->vm, o->main.fd);
		if (rc)
			rc = ferry_error_set(err, rc, "return-path thread: %s",
					     strerror(-rc));
	}
	if (!rc)
		rc = sender_open(o, &o->urgent, o->nchans + 1, o->session, err);
	o->resuming = false;
	if (!rc)
		rc = rp_wait_held(&o->rp, MIG_RESULT_TIMEOUT_MS, err);
	if (rc)
		return rc;
	pc_out_resume(pc);
	rp_on_request(&o->rp, pc_out_request, pc);
	rp_go_on(&o->rp);
	return 0;
}

/*
 * The link broke after the switch: neither side has the whole guest, so
 * nothing fails; pause until `migrate` with resume gives a new uri, and
 * pause again if that connection fails too.  0 once post-copy goes on.
 */
static int postcopy_recover(struct out *o, struct pc_out *pc,
			    struct ferry_error *err)
{
	struct ferry_error cause = *err;
	int rc;

	for (;;) {
		rp_on_request(&o->rp, NULL, NULL);
		rp_rx_stop(&o->rp);
		memset(&o->rp, 0, sizeof(o->rp));
		sender_drop(&o->urgent);
		sender_drop(&o->main);
		/* and the carrier's connection under them (rdma's), so that
		 * the destination sees the link go and pauses too */
		if (o->carrier->close)
			o->carrier->close(o);
		ferry_error_clear(err);
		rc = mig_pause(o->m, &cause, err);
		if (rc)
			return rc;
		rc = connect_again(o, pc, err);
		if (!rc) {
			mig_recovered(o->m);
			return 0;
		}
		if (rc == -ENOMEM)
			return rc;
		cause = *err;
	}
}

/* to += every range of from. */
static int dirty_join(struct ferry_dirty_set *to,
		      const struct ferry_dirty_set *from,
		      struct ferry_error *err)
{
	size_t i;

	for (i = 0; i < from->n; i++)
		if (ferry_dirty_set_add(to, from->ranges[i].block,
					from->ranges[i].first,
					from->ranges[i].count))
			return ferry_error_set(err, -ENOMEM, "out of memory");
	return 0;
}

/*
 * While the guest still runs here: the pages written so far join those
 * to go, every page sent has landed (no copy in flight can land after its
 * drop), then the destination drops the pages to go and says it has; pc
 * learns them.  Dropping pages is what the switch would spend most of its
 * time on (tens of ms for the 90,000 scattered pages of a 2 GiB zipf
 * guest); so only those the guest writes from here to the stop are
 * dropped in it.
 */
static int postcopy_prepare(struct out *o, struct pc_out *pc,
			    struct ferry_error *err)
{
	struct ferry_dirty_set last = { 0 }; /* written since the last sync */
	int rc = ferry_dirty_sync(o->vm->dirty, &last, err);

	if (!rc)
		rc = dirty_join(&o->pending, &last, err);
	if (!rc)
		rc = out_barrier(o, err);
	if (!rc)
		rc = send_discards(o, &o->pending);
	if (!rc)
		rc = out_barrier(o, err);
	if (!rc)
		rc = pc_out_init(pc, o, &o->pending, &last, err);
	ferry_dirty_set_free(&last);
	return rc;
}

/* Stop the guest; the pages it wrote since postcopy_prepare go in
 * post-copy too (first: they are its working set), dropped there with
 * the discard records that follow; then the devices. */
static int postcopy_stop(struct out *o, struct pc_out *pc,
			 struct ferry_error *err)
{
	struct ferry_dirty_set final = { 0 };
	int rc;

	o->vm->runctl.stop(o->vm->runctl.opaque);
	o->stopped = true;
	rc = ferry_dirty_sync(o->vm->dirty, &final, err);
	if (!rc)
		pc_out_add(pc, &final, &final);
	/* nothing was sent since the barrier: the channels just end */
	if (!rc)
		rc = multifd_finish(o, err);
	if (!rc)
		rc = send_discards(o, &final);
	if (!rc)
		rc = out_send_devices(o, err);
	ferry_dirty_set_free(&final);
	return rc;
}

/*
 * Post-copy: make sure the destination has handled every page sent so
 * far and tell it which pages to drop, then stop, tell it the few more
 * the guest wrote meanwhile, send the devices and the switch; from then
 * on the destination runs the guest and the source must never resume its
 * copy.  Then the remaining pages: answers first, the rest in the
 * background; the end of stream with the digest; the verdict.
 */
int out_postcopy(struct out *o, struct ferry_error *err)
{
	struct ferry_migration *m = o->m;
	struct ferry_mig_params p;
	struct pc_out pc = { 0 };
	enum ferry_mig_state s;
	uint64_t t_stop, bytes0, running_ns = 0;
	char msg[RP_RESULT_MSG_MAX + 1];
	uint64_t to_go = 0, stop_bytes;
	int rc, status;

	ferry_migration_get_params(m, &p);
	rc = postcopy_prepare(o, &pc, err);
	if (rc)
		goto out;
	t_stop = mig_now_ns();
	stop_bytes = ferry_stream_encoder_bytes(o->main.enc);
	rc = postcopy_stop(o, &pc, err);
	if (rc)
		goto out;
	/* Past this point the destination may run the guest: no cancel, and
	 * no resuming here, whatever happens. */
	if (!atomic_compare_exchange_strong(&m->cancel, &(int){ 0 }, 2)) {
		rc = ferry_error_set(err, -ECANCELED,
				     "migration cancelled by request");
		goto out;
	}
	mig_guest_away(m, true);
	mig_set_state(m, FERRY_MIG_ACTIVE, FERRY_MIG_POSTCOPY_ACTIVE);
	bytes0 = out_bytes(o);
	pthread_mutex_lock(&m->lock);
	m->stats.postcopy = true;
	m->stats.precopy_bytes = bytes0;
	pthread_mutex_unlock(&m->lock);
	o->stopped = false;
	to_go = pc.left;
	rp_on_request(&o->rp, pc_out_request, &pc);
	rc = pc_out_start(&pc, err);
	if (!rc)
		rc = ferry_stream_put_postcopy(o->main.enc, pc.left);
	if (!rc)
		rc = ferry_stream_flush(o->main.enc);
	if (!rc)
		rc = rp_wait_running(&o->rp, MIG_RESULT_TIMEOUT_MS, &running_ns,
				     err);
	if (!rc) {
		mig_set_stat(m, &m->stats.downtime_ms,
			     (running_ns - t_stop) / 1000000);
		/* the discards, the devices and the switch, on the main
		 * connection while stopped (the page channels only ended) */
		mig_set_stat(m, &m->stats.downtime_bytes,
			     ferry_stream_encoder_bytes(o->main.enc) -
				     stop_bytes);
	} else if (!err->code) {
		peer_verdict(o, rc, err);
	}
	for (;;) {
		if (!rc)
			rc = postcopy_finish(o, &pc, p.verify, &status, msg,
					     sizeof(msg), err);
		if (!rc || !link_lost(o, rc))
			break;
		rc = postcopy_recover(o, &pc, err);
		if (rc)
			break;
	}
	bytes0 = out_bytes(o) - bytes0;
	pthread_mutex_lock(&m->lock);
	m->stats.postcopy_bytes = bytes0;
	m->stats.postcopy_requests = atomic_load(&pc.served);
	m->stats.postcopy_pages = to_go;
	if (running_ns)
		m->stats.postcopy_time_ms =
			(mig_now_ns() - running_ns) / 1000000;
	pthread_mutex_unlock(&m->lock);
	if (!rc && status)
		rc = ferry_error_set_from(err, FERRY_ERROR_PEER, -status,
					  "destination: %s", msg);
	if (!rc && p.verify) {
		pthread_mutex_lock(&m->lock);
		m->stats.verified = 1;
		pthread_mutex_unlock(&m->lock);
	}
out:
	if (rc && !err->code)
		peer_verdict(o, rc, err);
	pc_out_stop(&pc, &(struct ferry_error){ 0 });
	rp_on_request(&o->rp, NULL, NULL);
	s = mig_state(m);
	if (rc &&
	    (s == FERRY_MIG_POSTCOPY_ACTIVE || s == FERRY_MIG_POSTCOPY_PAUSED ||
	     s == FERRY_MIG_POSTCOPY_RECOVER)) {
		struct ferry_error e = *err;

		ferry_error_clear(err);
		ferry_error_set(err, rc,
				"post-copy failed after the switch (%s): the "
				"guest's memory is split between source and "
				"destination; the source stays stopped",
				ferry_error_msg(&e));
	}
	pc_out_free(&pc);
	return rc;
}
