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
#include <signal.h>
#include <fcntl.h>
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

int out_send_devices(struct out *o, struct ferry_error *err)
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

bool out_guest_running(const struct ferry_vm *vm)
{
	return !vm->runctl.running || vm->runctl.running(vm->runctl.opaque);
}

void mig_set_stat(struct ferry_migration *m, uint64_t *field, uint64_t v)
{
	pthread_mutex_lock(&m->lock);
	*field = v;
	pthread_mutex_unlock(&m->lock);
}

int out_bulk_set(const struct out *o, bool sent_ones,
		 struct ferry_dirty_set *set)
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

			if (k < n && sent == sent_ones) {
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

/* An iteration's figures into the statistics; downtime-limit now. */
static uint64_t iteration_figures(struct out *o, uint64_t iteration,
				  uint64_t sent, uint64_t dt,
				  uint64_t dirtied_pages, uint64_t expected,
				  uint64_t deferrals)
{
	struct ferry_migration *m = o->m;
	uint32_t ps = o->vm->page_size;
	uint64_t limit;

	pthread_mutex_lock(&m->lock);
	limit = m->params.downtime_limit_ms;
	m->stats.iterations = iteration;
	m->stats.dirty_sync_count++;
	m->stats.mbps = (double)sent * 8 * 1e3 / (double)dt;
	m->stats.pages_per_second =
		(uint64_t)((double)sent / ps * 1e9 / (double)dt);
	m->stats.dirty_pages_rate =
		(uint64_t)((double)dirtied_pages * 1e9 / (double)dt);
	m->stats.expected_downtime_ms = expected;
	m->stats.deferred_pages = deferrals;
	pthread_mutex_unlock(&m->lock);
	return limit;
}

/* The pages for switch-over: the last sync's (*set) with the ones hot
 * pages deferred and those of the last iteration's (*send) that went
 * back there; *set takes the result. */
static int with_deferred(struct hot_pages *hp, struct ferry_dirty_set *set,
			 const struct ferry_dirty_set *send)
{
	size_t i;
	int rc = 0;

	for (i = 0; !rc && i < send->n; i++)
		rc = ferry_dirty_set_add(&hp->deferred, send->ranges[i].block,
					 send->ranges[i].first,
					 send->ranges[i].count);
	ferry_dirty_set_free(set);
	*set = hp->deferred;
	memset(&hp->deferred, 0, sizeof(hp->deferred));
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
	out_publish(o, 0); /* all of RAM to go, from now */
	rc = send_pages(o, NULL, SEND_FIRST, err); /* the bulk pass */
	o->in_bulk = false;
	if (rc && atomic_load(&o->bulk_abort)) {
		/* post-copy now: what the bulk pass did not reach goes then */
		ferry_error_clear(err);
		o->go_postcopy = true;
		rc = out_bulk_set(o, false, &set);
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
		/* a file: its writeback starts now, so that the sync at the
		 * end, with the guest stopped, has only the last pass left */
		if (!rc && o->one_way)
			(void)sync_file_range(o->main.fd, 0, 0,
					      SYNC_FILE_RANGE_WRITE);
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
		limit = iteration_figures(o, ++iteration, sent, dt, set.pages,
					  expected, hp.deferrals);
		out_publish(o, dirty_bytes / vm->page_size);
		/* with nothing left but device state, waiting cannot make
		 * the switch-over shorter */
		if (expected <= limit || !dirty_pages)
			break;
		if (p.postcopy_ram &&
		    out_want_postcopy(o, set.pages * vm->page_size, sent, &p))
			break;
		out_converge(o, dirty_bytes, sent);
		t0 = now;
		it_bytes0 = out_bytes(o);
		it_pages0 = out_pages(o);
		rc = send_pages(o, defer ? &send : &set, SEND_AGAIN, err);
	}
	if (defer && !rc) { /* switch-over sends the deferred pages too */
		rc = with_deferred(&hp, &set, &send);
		if (rc)
			rc = ferry_error_set(err, -ENOMEM, "out of memory");
	}
	hot_free(&hp);
	ferry_dirty_set_free(&send);
	ferry_dirty_set_free(&o->pending);
	o->pending = set; /* sent by switchover() with what comes after */
	return rc;
}

/* The end of a save (file:): nobody gives a verdict, so the stream is
 * the guest only once it is on disk.  Then this copy stays stopped, as
 * after any migration (a restore may run it elsewhere); a failure before
 * that resumes it, as nothing else holds it. */
static int one_way_end(struct out *o, int rc, uint64_t t_stop,
		       struct dt_actual *took, struct ferry_error *err)
{
	struct ferry_migration *m = o->m;
	uint64_t t = mig_now_ns();

	if (!rc && o->carrier->seal) /* mapped-ram: bitmaps, then header */
		rc = o->carrier->seal(o, err);
	if (!rc && o->child > 0) {
		/* exec: its input ends, and it must finish what it does */
		close(o->main.fd);
		o->main.fd = -1;
		rc = transport_reap(o->child, m->uri, -1, err);
		o->child = -1;
	} else if (!rc && fsync(o->main.fd) < 0 && errno != EINVAL) {
		rc = -errno; /* EINVAL: a pipe (fd:), which has no disk */
	}
	if (rc) {
		mig_guest_away(m, false);
		if (!err->code)
			ferry_error_set(err, rc, "writing %s: %s", m->uri,
					strerror(-rc));
		return rc;
	}
	took->verdict_ns = mig_now_ns() - t;
	pthread_mutex_lock(&m->lock);
	m->stats.downtime_ms = (mig_now_ns() - t_stop) / 1000000;
	pthread_mutex_unlock(&m->lock);
	return 0;
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
	mig_set_stat(m, &m->stats.precopy_bytes, bytes0);
	/* the run state travels: a guest the operator stopped arrives
	 * stopped, and a failure here leaves it as it was */
	o->stopped = out_guest_running(vm);
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
		rc = out_send_devices(o, err);
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
	mig_set_stat(m, &m->stats.downtime_bytes, out_bytes(o) - bytes0);
	if (o->one_way) /* file: written and on disk is the end */
		return one_way_end(o, rc, t_stop, &took, err);
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

/* Connect, open the page connections and the return path, and start
 * dirty tracking: the guest runs on meanwhile. */
static int setup(struct out *o, struct ferry_error *err)
{
	struct ferry_migration *m = o->m;
	const struct ferry_vm *vm = o->vm;
	struct ferry_mig_params p;
	int rc;

	ferry_migration_get_params(m, &p);
	rc = carrier_pick(o, err);
	if (rc)
		return rc;
	o->nchans = p.multifd ? p.multifd_channels : 0;
	o->xbzrle = p.xbzrle;
	o->postcopy = p.postcopy_ram;
	o->bulk_stop = out_switch_now;
	o->session = ((uint64_t)getpid() << 32) ^ mig_now_ns();
	rc = draw_token(o->token, err);
	if (!rc)
		rc = out_number_pages(o, err);
	if (!rc && o->postcopy) {
		uint64_t n = o->first_page[vm->nblocks - 1] +
			     vm->blocks[vm->nblocks - 1].length / vm->page_size;

		o->bulk_sent = calloc((n + 63) / 64, sizeof(uint64_t));
		if (!o->bulk_sent)
			rc = ferry_error_set(err, -ENOMEM, "out of memory");
	}
	if (!rc)
		rc = sender_open(o, &o->main, 0, o->session, err);
	if (!rc) {
		rc = rp_rx_start(&o->rp, vm, o->one_way ? -1 : o->main.fd);
		if (rc)
			rc = ferry_error_set(err, rc, "return-path thread: %s",
					     strerror(-rc));
	}
	if (!rc && atomic_load(&m->cancel) == 1)
		rc = ferry_error_set(err, -ECANCELED,
				     "migration cancelled by request");
	if (!rc && o->nchans)
		rc = multifd_start(o, o->nchans, o->session, err);
	if (!rc && o->postcopy)
		rc = sender_open(o, &o->urgent, o->nchans + 1, o->session, err);
	if (rc)
		return rc;
	/* always: "unchanged" pages need them, and the digest */
	rc = page_hashes_init(&o->ph, vm, err);
	if (rc)
		return rc;
	pthread_mutex_lock(&m->lock);
	m->stats.page_hash_bytes = m->stats.total / vm->page_size * 8;
	m->stats.xbzrle_cache_size = o->xbzrle ? p.xbzrle_cache_size : 0;
	pthread_mutex_unlock(&m->lock);
	rc = ferry_dirty_start(vm->dirty, err);
	if (!rc)
		o->tracking = true;
	return rc;
}

void *mig_outgoing_main(void *arg)
{
	struct ferry_migration *m = arg;
	const struct ferry_vm *vm = m->vm;
	struct ferry_error err = { 0 };
	struct out o = {
		.m = m, .vm = vm, .main.fd = -1, .urgent.fd = -1, .child = -1
	};
	sigset_t pipe;

	/* a command that went away is an error on write, not a SIGPIPE: the
	 * engine's threads (its senders inherit this) keep it blocked */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
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
	rc = setup(&o, &err);
	if (rc)
		goto fail;
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
		rc = o.go_postcopy && out_guest_running(vm)
			     ? out_postcopy(&o, &err)
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
	if (o.child > 0) { /* exec:: what its command did says more */
		struct ferry_error ce = { 0 };

		if (o.main.fd >= 0) { /* its input ends: it may still be in
					 the middle of something */
			close(o.main.fd);
			o.main.fd = -1;
		}
		if (transport_reap(o.child, m->uri, 2000, &ce))
			ferry_error_prefix(&err, "%s; then ", ce.msg);
		o.child = -1;
	}
	mig_fail(m, &err);
out:
	multifd_stop(&o);
	sender_close(&o.urgent);
	rp_rx_stop(&o.rp);
	sender_close(&o.main);
	if (o.child > 0) /* a failed save: its command goes too */
		(void)transport_reap(o.child, m->uri, 5000, NULL);
	if (o.carrier && o.carrier->close)
		o.carrier->close(&o);
	if (!o.connect_tried) /* a given descriptor it never got to */
		transport_release(m->uri);
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
