/*
 * outgoing.c - the source side of pre-copy migration, on the engine's
 * thread.
 *
 *   setup    connect, send the header and configuration, start dirty
 *            tracking (vCPUs keep running: nothing here takes their lock)
 *   active   bulk pass over all RAM, then iterations over the pages
 *            dirtied meanwhile, until the expected downtime (dirty bytes /
 *            measured bandwidth) is within downtime-limit
 *   device   stop the vCPUs, send the last dirty pages and every device
 *            section, then the end of stream with the digest; wait for the
 *            destination's verdict
 *
 * Any failure before the destination has taken over resumes the source
 * guest: nothing is lost.  Once the end of stream is on its way, a cancel
 * comes too late and the destination's verdict decides.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "hot.h"
#include "postcopy.h"
#include "outgoing.h"
#include "transport.h"

static int send_devices(struct out *o, struct ferry_error *err)
{
	struct ferry_buf buf = { 0 };
	size_t i;
	int rc = 0;

	for (i = 0; i < o->vm->nsections && !rc; i++) {
		const struct ferry_section *s = &o->vm->sections[i];

		ferry_buf_reset(&buf);
		rc = s->save(s->opaque, &buf);
		if (rc) {
			rc = ferry_error_set(err, rc, "saving device %s.%u: %s",
					     s->name, s->instance,
					     strerror(-rc));
			break;
		}
		rc = ferry_stream_put_device(o->main.enc, s->name, s->instance,
					     s->version, buf.data,
					     (uint32_t)buf.len);
		if (rc)
			rc = ferry_error_set(err, rc,
					     "sending device %s.%u: %s",
					     s->name, s->instance,
					     strerror(-rc));
	}
	ferry_buf_free(&buf);
	return rc;
}

/* Nanoseconds since *t, which moves on to now. */
static uint64_t lap(uint64_t *t)
{
	uint64_t now = mig_now_ns(), d = now - *t;

	*t = now;
	return d;
}

static bool guest_running(const struct ferry_vm *vm)
{
	return !vm->runctl.running || vm->runctl.running(vm->runctl.opaque);
}

/* auto-converge, as QEMU does it: when the pages dirtied during an
 * iteration are more than half of what was sent, twice in a row, throttle
 * the vCPUs harder. */
static void converge(struct out *o, uint64_t dirtied_bytes, uint64_t sent_bytes)
{
	struct ferry_mig_params p;

	ferry_migration_get_params(o->m, &p);
	if (!p.auto_converge || !o->vm->runctl.throttle)
		return;
	if (dirtied_bytes * 2 <= sent_bytes) {
		o->hot_iterations = 0;
		return;
	}
	if (++o->hot_iterations < 2)
		return;
	o->hot_iterations = 0;
	o->throttle = o->throttle ? o->throttle + p.cpu_throttle_increment
				  : p.cpu_throttle_initial;
	if (o->throttle > p.max_cpu_throttle)
		o->throttle = p.max_cpu_throttle;
	o->vm->runctl.throttle(o->vm->runctl.opaque, o->throttle);
}

static void set_stat(struct ferry_migration *m, uint64_t *field, uint64_t v)
{
	pthread_mutex_lock(&m->lock);
	*field = v;
	pthread_mutex_unlock(&m->lock);
}

static void set_reason(struct out *o, const char *why)
{
	pthread_mutex_lock(&o->m->lock);
	if (!o->m->stats.postcopy_reason[0])
		snprintf(o->m->stats.postcopy_reason,
			 sizeof(o->m->stats.postcopy_reason), "%s", why);
	pthread_mutex_unlock(&o->m->lock);
}

/* With postcopy-ram: switch now?  When asked (migrate-start-postcopy),
 * and in hybrid mode (precopy-time-limit) when the limit is up or the
 * guest has dirtied memory faster than the link carried it for three
 * iterations in a row. */
static bool want_postcopy(struct out *o, uint64_t dirtied, uint64_t sent,
			  const struct ferry_mig_params *p)
{
	const char *why = NULL;

	o->over_bw = dirtied > sent ? o->over_bw + 1 : 0;
	if (!guest_running(o->vm)) /* it arrives stopped: pre-copy ends it */
		return false;
	if (atomic_load(&o->m->postcopy_req))
		why = "migrate-start-postcopy";
	else if (p->precopy_time_limit_ms &&
		 mig_now_ns() - o->t_precopy_ns >=
			 p->precopy_time_limit_ms * 1000000ull)
		why = "precopy-time-limit";
	else if (p->precopy_time_limit_ms && o->over_bw >= 3)
		why = "dirty rate above bandwidth";
	if (!why)
		return false;
	set_reason(o, why);
	o->go_postcopy = true;
	return true;
}

bool out_switch_now(struct out *o)
{
	uint64_t limit;

	if (atomic_load(&o->bulk_abort))
		return true;
	if (!guest_running(o->vm))
		return false;
	pthread_mutex_lock(&o->m->lock);
	limit = o->m->params.precopy_time_limit_ms;
	pthread_mutex_unlock(&o->m->lock);
	if (atomic_load(&o->m->postcopy_req))
		set_reason(o, "migrate-start-postcopy");
	else if (limit && mig_now_ns() - o->t_precopy_ns >= limit * 1000000ull)
		set_reason(o, "precopy-time-limit");
	else
		return false;
	atomic_store(&o->bulk_abort, 1);
	return true;
}

/* The bulk pass stopped early: the pages it did not reach go in
 * post-copy, with the dirty ones. */
static int add_unsent(struct out *o, struct ferry_dirty_set *set)
{
	const struct ferry_vm *vm = o->vm;
	uint32_t i;
	uint64_t k, run = 0;
	int rc = 0;

	for (i = 0; i < vm->nblocks && !rc; i++) {
		uint64_t n = vm->blocks[i].length / vm->page_size;

		for (k = 0; k <= n && !rc; k++) {
			uint64_t g = o->first_page[i] + k;
			bool sent = k < n &&
				    (atomic_load(&o->bulk_sent[g / 64]) &
				     (1ull << (g % 64)));

			if (k < n && !sent) {
				run++;
				continue;
			}
			if (run)
				rc = ferry_dirty_set_add(set, i, k - run, run);
			run = 0;
		}
	}
	return rc;
}

static int precopy(struct out *o, struct ferry_error *err)
{
	struct ferry_migration *m = o->m;
	const struct ferry_vm *vm = o->vm;
	struct ferry_dirty_set set = { 0 }, send = { 0 };
	uint64_t t0 = mig_now_ns(), it_bytes0 = out_bytes(o), iteration = 0;
	uint64_t it_pages0 = out_pages(o);
	struct hot_pages hp = { 0 };
	struct ferry_mig_params p;
	bool defer;
	int rc;

	ferry_migration_get_params(m, &p);
	defer = p.defer_hot_pages;
	o->t_precopy_ns = t0;
	if (defer && hot_init(&hp, vm))
		return ferry_error_set(err, -ENOMEM,
				       "out of memory for hot-page marks");
	o->in_bulk = true;
	rc = send_pages(o, NULL, SEND_FIRST, err); /* the bulk pass */
	o->in_bulk = false;
	if (rc && atomic_load(&o->bulk_abort)) {
		/* post-copy now: what the bulk pass did not reach goes then */
		ferry_error_clear(err);
		o->go_postcopy = true;
		rc = add_unsent(o, &set);
		if (rc)
			rc = ferry_error_set(err, -ENOMEM, "out of memory");
		hot_free(&hp);
		ferry_dirty_set_free(&o->pending);
		o->pending = set;
		return rc;
	}
	for (;;) {
		uint64_t now, dt, sent, bw, expected, limit, dirty_bytes;
		uint64_t dirty_pages, page_rate, seq = o->sync_seq;
		uint64_t rtt_ns = mig_now_ns(), sync_ns;

		if (!rc)
			rc = out_sync(o, err);
		/* with a barrier: a round trip, drained (stale pages too) */
		rtt_ns = o->sync_seq != seq ? mig_now_ns() - rtt_ns : 0;
		if (!rc)
			rc = ferry_stream_put_iter_end(o->main.enc, iteration);
		if (!rc)
			rc = ferry_stream_flush(o->main.enc);
		if (rc) {
			if (!err->code)
				peer_verdict(o, rc, err);
			break;
		}
		out_publish(o, 0);
		now = mig_now_ns();
		dt = now - t0 ? now - t0 : 1;
		sent = out_bytes(o) - it_bytes0;
		bw = (uint64_t)((double)sent * 1e9 / (double)dt);
		page_rate = (uint64_t)((double)(out_pages(o) - it_pages0) *
				       1e9 / (double)dt);
		ferry_dirty_set_reset(&set);
		ferry_dirty_set_reset(&send);
		sync_ns = mig_now_ns();
		rc = ferry_dirty_sync(vm->dirty, &set, err);
		sync_ns = mig_now_ns() - sync_ns;
		if (!rc && defer &&
		    hot_split(&hp, (uint32_t)iteration + 1, &set, &send))
			rc = ferry_error_set(err, -ENOMEM, "out of memory");
		if (rc)
			break;
		/* what must still go: this sync's pages and the deferred */
		dirty_pages = defer ? send.pages + hp.deferred.pages
				    : set.pages;
		dirty_bytes = dirty_pages * vm->page_size;
		/*
		 * From the pages the iterations after the bulk pass got
		 * through: that counts what a page really costs, hashing
		 * included, whether it goes whole, compressed or as a flag
		 * (the bulk pass's page rate, zero pages and all, says little
		 * of a dirty page's: until the first iteration its bandwidth
		 * in whole pages stands in).  With the margin their spread
		 * gives and the fixed costs measured (downtime.h).
		 */
		if (iteration && page_rate)
			dt_sample(&o->dt, (double)page_rate,
				  (double)set.pages * 1e9 / (double)dt, sync_ns,
				  rtt_ns, false);
		else if (!iteration && bw)
			dt_sample(&o->dt, (double)bw / vm->page_size,
				  (double)set.pages * 1e9 / (double)dt, sync_ns,
				  rtt_ns, true);
		expected = dt_expect(&o->dt, dirty_pages);
		pthread_mutex_lock(&m->lock);
		limit = m->params.downtime_limit_ms;
		m->stats.iterations = ++iteration;
		m->stats.dirty_sync_count++;
		m->stats.mbps = (double)bw * 8 / 1e6;
		m->stats.pages_per_second =
			(uint64_t)((double)sent / vm->page_size * 1e9 / dt);
		m->stats.dirty_pages_rate =
			(uint64_t)((double)set.pages * 1e9 / (double)dt);
		m->stats.expected_downtime_ms = expected;
		m->stats.deferred_pages = hp.deferrals;
		pthread_mutex_unlock(&m->lock);
		out_publish(o, dirty_bytes / vm->page_size);
		/* with nothing left but device state, waiting cannot make
		 * the switch-over shorter */
		if (expected <= limit || !dirty_pages)
			break;
		if (p.postcopy_ram &&
		    want_postcopy(o, set.pages * vm->page_size, sent, &p))
			break;
		converge(o, dirty_bytes, sent);
		t0 = now;
		it_bytes0 = out_bytes(o);
		it_pages0 = out_pages(o);
		rc = send_pages(o, defer ? &send : &set, SEND_AGAIN, err);
	}
	if (defer) { /* switch-over sends the deferred pages too */
		size_t i;

		for (i = 0; !rc && i < send.n; i++)
			rc = ferry_dirty_set_add(&hp.deferred,
						 send.ranges[i].block,
						 send.ranges[i].first,
						 send.ranges[i].count);
		ferry_dirty_set_free(&set);
		set = hp.deferred;
		memset(&hp.deferred, 0, sizeof(hp.deferred));
		if (rc)
			rc = ferry_error_set(err, -ENOMEM, "out of memory");
	}
	hot_free(&hp);
	ferry_dirty_set_free(&send);
	ferry_dirty_set_free(&o->pending);
	o->pending = set; /* sent by switchover() with what comes after */
	return rc;
}

static int switchover(struct out *o, struct ferry_error *err)
{
	struct ferry_migration *m = o->m;
	const struct ferry_vm *vm = o->vm;
	struct ferry_mig_params p;
	uint8_t digest[16];
	uint64_t t_stop, bytes0, t, downtime;
	struct dt_actual took = { 0 };
	char msg[RP_RESULT_MSG_MAX + 1];
	int rc, status;

	ferry_migration_get_params(m, &p);
	if (!mig_set_state(m, FERRY_MIG_ACTIVE, FERRY_MIG_DEVICE))
		return ferry_error_set(err, -ECANCELED,
				       "migration cancelled by request");
	t_stop = mig_now_ns();
	bytes0 = out_bytes(o);
	set_stat(m, &m->stats.precopy_bytes, bytes0);
	/* the run state travels: a guest the operator stopped arrives
	 * stopped, and a failure here leaves it as it was */
	o->stopped = guest_running(vm);
	vm->runctl.stop(vm->runctl.opaque);
	/* what the last iteration found, and what was dirtied since; a page
	 * in both is sent twice, and the second copy wins */
	t = mig_now_ns();
	rc = ferry_dirty_sync(vm->dirty, &o->pending, err);
	pthread_mutex_lock(&m->lock);
	m->stats.dirty_sync_count++;
	pthread_mutex_unlock(&m->lock);
	o->final = true; /* the channels' threads see it with their job */
	took.sync_ns = lap(&t);
	took.pages = o->pending.pages;
	if (!rc)
		rc = send_pages(o, &o->pending, SEND_AGAIN, err);
	if (!rc)
		rc = multifd_finish(o, err);
	if (!rc && o->postcopy) { /* no post-copy after all: close it */
		rc = ferry_stream_put_end(o->urgent.enc, NULL);
		if (!rc)
			rc = sender_flush(&o->urgent, err);
	}
	took.pages_ns = lap(&t);
	if (!rc)
		rc = send_devices(o, err);
	if (!rc && p.verify)
		rc = ferry_vm_digest_hashes(vm, o->ph.h, digest, err);
	took.devices_ns = lap(&t);
	if (rc)
		return rc;
	/* Past this point a cancel no longer applies (migration.c). */
	if (!atomic_compare_exchange_strong(&m->cancel, &(int){ 0 }, 2))
		return ferry_error_set(err, -ECANCELED,
				       "migration cancelled by request");
	/* all but the end out, and no word from the destination yet: only
	 * then the end, which alone a success verdict may answer */
	rc = ferry_stream_flush(o->main.enc);
	if (!rc && rp_end_begin(&o->rp))
		rc = -ECONNRESET;
	if (rc)
		return peer_verdict(o, rc, err);
	mig_guest_away(m, true);
	if (o->stopped)
		rc = ferry_stream_put_end(o->main.enc,
					  p.verify ? digest : NULL);
	else
		rc = ferry_stream_put_end_stopped(o->main.enc,
						  p.verify ? digest : NULL);
	if (!rc)
		rc = ferry_stream_flush(o->main.enc);
	out_publish(o, 0);
	set_stat(m, &m->stats.downtime_bytes, out_bytes(o) - bytes0);
	if (!rc)
		rc = rp_wait_result(&o->rp, MIG_RESULT_TIMEOUT_MS, &status, msg,
				    sizeof(msg), err);
	if (rc) {
		/* The destination may hold a complete guest: do not run a
		 * second copy here.  The operator decides ('cont'). */
		struct ferry_error e = *err;

		o->stopped = false;
		ferry_error_clear(err);
		return ferry_error_set(err, rc,
				       "connection lost after the whole state "
				       "was sent (%s): the destination may be "
				       "running the guest, so the source guest "
				       "stays stopped; resume it with 'cont' "
				       "and force only if the destination "
				       "did not",
				       e.code ? ferry_error_msg(&e)
					      : strerror(-rc));
	}
	if (status) { /* it resumed nothing: this copy is the guest */
		mig_guest_away(m, false);
		return ferry_error_set_from(err, FERRY_ERROR_PEER, -status,
					    "destination: %s", msg);
	}
	took.verdict_ns = lap(&t);
	downtime = (mig_now_ns() - t_stop) / 1000000;
	pthread_mutex_lock(&m->lock);
	m->stats.downtime_ms = downtime;
	if (downtime > p.downtime_limit_ms) { /* say how much, and why */
		m->stats.downtime_overrun_ms = downtime - p.downtime_limit_ms;
		dt_explain(&o->dt, &took, downtime, p.downtime_limit_ms,
			   m->stats.downtime_overrun,
			   sizeof(m->stats.downtime_overrun));
	}
	pthread_mutex_unlock(&m->lock);
	if (p.verify) {
		pthread_mutex_lock(&m->lock);
		m->stats.verified = 1;
		pthread_mutex_unlock(&m->lock);
	}
	return 0;
}

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
static bool link_failure(struct out *o, int rc)
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
static int reconnect(struct out *o, struct pc_out *pc, struct ferry_error *err)
{
	int rc;

	memset(pc->held, 0, (pc->npages + 63) / 64 * sizeof(uint64_t));
	o->rp.held = pc->held;
	o->rp.first_page = o->first_page;
	o->resuming = true;
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
		ferry_error_clear(err);
		rc = mig_pause(o->m, &cause, err);
		if (rc)
			return rc;
		rc = reconnect(o, pc, err);
		if (!rc) {
			mig_recovered(o->m);
			return 0;
		}
		if (rc == -ENOMEM)
			return rc;
		cause = *err;
	}
}

/*
 * Post-copy: stop, make sure the destination has handled every page sent
 * so far, tell it which pages to drop, send the devices and the switch;
 * from then on the destination runs the guest and the source must never
 * resume its copy.  Then the remaining pages: answers first, the rest in
 * the background; the end of stream with the digest; the verdict.
 */
static int postcopy(struct out *o, struct ferry_error *err)
{
	struct ferry_migration *m = o->m;
	const struct ferry_vm *vm = o->vm;
	struct ferry_mig_params p;
	struct pc_out pc = { 0 };
	enum ferry_mig_state s;
	uint64_t t_stop, bytes0, running_ns = 0;
	char msg[RP_RESULT_MSG_MAX + 1];
	struct ferry_dirty_set last = { 0 }; /* written since the last sync */
	uint64_t to_go = 0, stop_bytes;
	int rc, status;
	size_t i;

	ferry_migration_get_params(m, &p);
	t_stop = mig_now_ns();
	stop_bytes = ferry_stream_encoder_bytes(o->main.enc);
	vm->runctl.stop(vm->runctl.opaque);
	o->stopped = true;
	rc = ferry_dirty_sync(vm->dirty, &last, err);
	for (i = 0; !rc && i < last.n; i++)
		if (ferry_dirty_set_add(&o->pending, last.ranges[i].block,
					last.ranges[i].first,
					last.ranges[i].count))
			rc = ferry_error_set(err, -ENOMEM, "out of memory");
	if (!rc)
		rc = out_barrier(o, err);
	if (!rc)
		rc = multifd_finish(o, err);
	if (!rc)
		rc = send_discards(o, &o->pending);
	if (!rc)
		rc = send_devices(o, err);
	if (!rc)
		rc = pc_out_init(&pc, o, &o->pending, &last, err);
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
		set_stat(m, &m->stats.downtime_ms,
			 (running_ns - t_stop) / 1000000);
		/* the discards, the devices and the switch, on the main
		 * connection while stopped (the page channels only ended) */
		set_stat(m, &m->stats.downtime_bytes,
			 ferry_stream_encoder_bytes(o->main.enc) - stop_bytes);
	} else if (!err->code) {
		peer_verdict(o, rc, err);
	}
	for (;;) {
		if (!rc)
			rc = postcopy_finish(o, &pc, p.verify, &status, msg,
					     sizeof(msg), err);
		if (!rc || !link_failure(o, rc))
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
	ferry_dirty_set_free(&last);
	return rc;
}

/* The migration's token (docs/stream.md, "6 - channel"): 128 random
 * bits from the kernel, or the migration fails. */
static int draw_token(uint8_t *token, struct ferry_error *err)
{
	size_t got = 0;

	while (got < FERRY_STREAM_TOKEN_LEN) {
		ssize_t n =
			getrandom(token + got, FERRY_STREAM_TOKEN_LEN - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ferry_error_set(err, -errno,
					       "cannot draw the migration's "
					       "token (getrandom: %s)",
					       strerror(errno));
		got += (size_t)n;
	}
	return 0;
}

void *mig_outgoing_main(void *arg)
{
	struct ferry_migration *m = arg;
	const struct ferry_vm *vm = m->vm;
	struct ferry_error err = { 0 };
	struct out o = { .m = m, .vm = vm, .main.fd = -1 };
	struct ferry_mig_params params;
	uint64_t t0 = mig_now_ns();
	int rc;

	pthread_mutex_init(&o.lock, NULL);
	pthread_cond_init(&o.go, NULL);
	pthread_cond_init(&o.done, NULL);
	if (vm->runctl.stall_us)
		vm->runctl.stall_us(vm->runctl.opaque, true);
	if (!vm->dirty) {
		rc = ferry_error_set(&err, -ENOTSUP,
				     "this guest has no dirty tracker");
		goto fail;
	}
	rc = mig_watch_start(m);
	if (rc) {
		ferry_error_set(&err, rc, "net-timeout thread: %s",
				strerror(-rc));
		goto fail;
	}
	ferry_migration_get_params(m, &params);
	rc = carrier_pick(&o, &err);
	if (rc)
		goto fail;
	o.nchans = params.multifd ? params.multifd_channels : 0;
	o.xbzrle = params.xbzrle;
	o.postcopy = params.postcopy_ram;
	o.urgent.fd = -1;
	o.session = ((uint64_t)getpid() << 32) ^ mig_now_ns();
	rc = draw_token(o.token, &err);
	if (!rc)
		rc = out_number_pages(&o, &err);
	if (!rc && o.postcopy) {
		uint64_t n = o.first_page[vm->nblocks - 1] +
			     vm->blocks[vm->nblocks - 1].length / vm->page_size;

		o.bulk_sent = calloc((n + 63) / 64, sizeof(uint64_t));
		if (!o.bulk_sent)
			rc = ferry_error_set(&err, -ENOMEM, "out of memory");
	}
	if (!rc)
		rc = sender_open(&o, &o.main, 0, o.session, &err);
	if (!rc) {
		rc = rp_rx_start(&o.rp, vm, o.main.fd);
		if (rc)
			rc = ferry_error_set(&err, rc, "return-path thread: %s",
					     strerror(-rc));
	}
	if (!rc && atomic_load(&m->cancel) == 1)
		rc = ferry_error_set(&err, -ECANCELED,
				     "migration cancelled by request");
	if (!rc && o.nchans)
		rc = multifd_start(&o, o.nchans, o.session, &err);
	if (!rc && o.postcopy)
		rc = sender_open(&o, &o.urgent, o.nchans + 1, o.session, &err);
	if (rc)
		goto fail;
	/* always: "unchanged" pages need them, and the digest */
	rc = page_hashes_init(&o.ph, vm, &err);
	if (rc)
		goto fail;
	pthread_mutex_lock(&m->lock);
	m->stats.page_hash_bytes = m->stats.total / vm->page_size * 8;
	m->stats.xbzrle_cache_size = o.xbzrle ? params.xbzrle_cache_size : 0;
	pthread_mutex_unlock(&m->lock);
	rc = ferry_dirty_start(vm->dirty, &err);
	if (rc)
		goto fail;
	o.tracking = true;
	pthread_mutex_lock(&m->lock);
	m->stats.setup_time_ms = (mig_now_ns() - t0) / 1000000;
	if (vm->runctl.stall_us) {
		m->stats.have_stall = true;
		m->stats.setup_stall_us =
			vm->runctl.stall_us(vm->runctl.opaque, false);
	}
	pthread_mutex_unlock(&m->lock);
	if (!mig_set_state(m, FERRY_MIG_SETUP, FERRY_MIG_ACTIVE)) {
		rc = ferry_error_set(&err, -ECANCELED,
				     "migration cancelled by request");
		goto fail;
	}
	rc = precopy(&o, &err);
	if (!rc)
		/* a guest stopped meanwhile has nothing to run on there:
		 * what the bulk pass left goes in the switch-over */
		rc = o.go_postcopy && guest_running(vm) ? postcopy(&o, &err)
							: switchover(&o, &err);
	if (rc)
		goto fail;
	ferry_dirty_stop(vm->dirty);
	if (o.throttle)
		vm->runctl.throttle(vm->runctl.opaque, 0);
	pthread_mutex_lock(&m->lock);
	if (vm->runctl.stall_us)
		m->stats.max_stall_us =
			vm->runctl.stall_us(vm->runctl.opaque, false);
	pthread_mutex_unlock(&m->lock);
	if (!mig_set_state(m, FERRY_MIG_DEVICE, FERRY_MIG_COMPLETED) &&
	    !mig_set_state(m, FERRY_MIG_POSTCOPY_ACTIVE, FERRY_MIG_COMPLETED))
		mig_set_state(m, FERRY_MIG_CANCELLING, FERRY_MIG_COMPLETED);
	goto out;
fail:
	if (o.carrier && o.carrier->explain)
		o.carrier->explain(&o, &err);
	if (o.tracking)
		ferry_dirty_stop(vm->dirty);
	if (o.throttle)
		vm->runctl.throttle(vm->runctl.opaque, 0);
	if (o.stopped)
		vm->runctl.resume(vm->runctl.opaque);
	mig_fail(m, &err);
out:
	multifd_stop(&o);
	sender_close(&o.urgent);
	rp_rx_stop(&o.rp);
	sender_close(&o.main);
	if (o.carrier && o.carrier->close)
		o.carrier->close(&o);
	free(o.first_page);
	free(o.bulk_sent);
	ferry_dirty_set_free(&o.resend);
	ferry_dirty_set_free(&o.pending);
	page_hashes_free(&o.ph, vm);
	pthread_cond_destroy(&o.go);
	pthread_cond_destroy(&o.done);
	pthread_mutex_destroy(&o.lock);
	mig_watch_stop(m);
	explicit_bzero(o.token, sizeof(o.token));
	return NULL;
}
