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
#include <time.h>
#include <unistd.h>

#include "ferry/dirty.h"
#include "migration_internal.h"
#include "transport.h"

#define PAGES_PER_CHECK 256 /* cancel / rate-limit check interval */

struct out {
	struct ferry_migration *m;
	const struct ferry_vm *vm;
	struct ferry_stream_encoder *enc;
	int fd;
	bool stopped; /* we stopped the vCPUs */
	bool tracking;
	uint64_t sent_pages; /* since the last check */
	/* rate limit window */
	uint64_t win_start_ns;
	uint64_t win_bytes_start;
	uint64_t duplicate, normal;
	unsigned throttle;
	unsigned hot_iterations; /* auto-converge: in a row over budget */
	struct ferry_dirty_set pending; /* dirty, not yet sent */
	/* verify: the hash of each page as last sent (page_hashes.c) */
	struct page_hashes ph;
};

static bool is_zero_page(const uint8_t *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;
	size_t i;

	for (i = 0; i < len / 8; i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] |
		    w[i + 5] | w[i + 6] | w[i + 7])
			return false;
	return true;
}

static void publish(struct out *o, uint64_t remaining_pages)
{
	struct ferry_migration *m = o->m;

	pthread_mutex_lock(&m->lock);
	m->stats.transferred = ferry_stream_encoder_bytes(o->enc);
	m->stats.duplicate = o->duplicate;
	m->stats.normal = o->normal;
	m->stats.normal_bytes = o->normal * o->vm->page_size;
	m->stats.remaining = remaining_pages * o->vm->page_size;
	m->stats.throttle_percent = o->throttle;
	pthread_mutex_unlock(&m->lock);
}

/*
 * The destination gave up (it sends its reason, then hangs up): report its
 * reason rather than the broken pipe it caused here.
 */
static int peer_verdict(struct out *o, int rc, struct ferry_error *err)
{
	char msg[MIG_RESULT_MSG_MAX + 1];
	struct ferry_error e = { 0 };
	int status;

	if (mig_recv_result(o->fd, 1000, &status, msg, sizeof(msg), &e) == 0 &&
	    status)
		return ferry_error_set(err, -status, "destination: %s", msg);
	return ferry_error_set(err, rc, "sending to the destination: %s",
			       strerror(-rc));
}

/* Between batches: honour a cancel, the destination's verdict and
 * max-bandwidth. */
static int checkpoint(struct out *o, struct ferry_error *err)
{
	uint64_t bw, bytes, due_ns, now;

	if (atomic_load(&o->m->cancel) == 1)
		return ferry_error_set(err, -ECANCELED,
				       "migration cancelled by request");
	if (mig_result_pending(o->fd))
		return peer_verdict(o, -ECONNRESET, err);
	pthread_mutex_lock(&o->m->lock);
	bw = o->m->params.max_bandwidth;
	pthread_mutex_unlock(&o->m->lock);
	if (!bw)
		return 0;
	bytes = ferry_stream_encoder_bytes(o->enc) - o->win_bytes_start;
	due_ns = o->win_start_ns + (uint64_t)((double)bytes / (double)bw * 1e9);
	now = mig_now_ns();
	if (due_ns > now) {
		struct timespec ts = { (time_t)((due_ns - now) / 1000000000ull),
				       (long)((due_ns - now) % 1000000000ull) };
		int rc = ferry_stream_flush(o->enc);

		if (rc)
			return peer_verdict(o, rc, err);
		nanosleep(&ts, NULL);
	}
	if (now - o->win_start_ns > 1000000000ull) { /* a new 1 s window */
		o->win_start_ns = mig_now_ns();
		o->win_bytes_start = ferry_stream_encoder_bytes(o->enc);
	}
	return 0;
}

static int send_page(struct out *o, uint32_t bi, uint64_t page,
		     struct ferry_error *err)
{
	const struct ferry_ramblock *b = &o->vm->blocks[bi];
	uint32_t ps = o->vm->page_size;
	uint64_t off = page * ps;
	const uint8_t *p = b->host + off;
	int rc;

	if (is_zero_page(p, ps)) {
		rc = ferry_stream_put_page(o->enc, b->id, off, FERRY_PAGE_ZERO,
					   NULL, 0);
		o->duplicate++;
		if (o->ph.h)
			o->ph.h[bi][page] = o->ph.zero;
	} else {
		/* A write racing this send dirties the page, so it goes again
		 * later with a fresh hash; the last copy sent is one taken
		 * after the last write. */
		if (o->ph.h)
			o->ph.h[bi][page] = ferry_page_hash(p, ps);
		rc = ferry_stream_put_page(o->enc, b->id, off, FERRY_PAGE_RAW,
					   p, ps);
		o->normal++;
	}
	if (rc)
		return peer_verdict(o, rc, err);
	if (++o->sent_pages == PAGES_PER_CHECK) {
		o->sent_pages = 0;
		return checkpoint(o, err);
	}
	return 0;
}

static int send_set(struct out *o, const struct ferry_dirty_set *set,
		    struct ferry_error *err)
{
	size_t i;
	uint64_t k, left = set->pages;
	int rc;

	for (i = 0; i < set->n; i++) {
		const struct ferry_dirty_range *r = &set->ranges[i];

		for (k = 0; k < r->count; k++) {
			rc = send_page(o, r->block, r->first + k, err);
			if (rc)
				return rc;
			if ((--left & 4095) == 0)
				publish(o, left);
		}
	}
	return 0;
}

static int send_all(struct out *o, struct ferry_error *err)
{
	uint64_t left = o->m->stats.total / o->vm->page_size, k;
	uint32_t bi;
	int rc;

	for (bi = 0; bi < o->vm->nblocks; bi++) {
		uint64_t n = o->vm->blocks[bi].length / o->vm->page_size;

		for (k = 0; k < n; k++) {
			rc = send_page(o, bi, k, err);
			if (rc)
				return rc;
			if ((--left & 4095) == 0)
				publish(o, left);
		}
	}
	return 0;
}

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
		rc = ferry_stream_put_device(o->enc, s->name, s->instance,
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

static int precopy(struct out *o, struct ferry_error *err)
{
	struct ferry_migration *m = o->m;
	const struct ferry_vm *vm = o->vm;
	struct ferry_dirty_set set = { 0 };
	uint64_t t0 = mig_now_ns(), it_bytes0 = 0, iteration = 0;
	int rc;

	o->win_start_ns = t0;
	o->win_bytes_start = ferry_stream_encoder_bytes(o->enc);
	rc = send_all(o, err);
	for (;;) {
		uint64_t now, dt, sent, bw, expected, limit, dirty_bytes;

		if (!rc)
			rc = ferry_stream_put_iter_end(o->enc, iteration);
		if (!rc)
			rc = ferry_stream_flush(o->enc);
		if (rc) {
			if (!err->code)
				peer_verdict(o, rc, err);
			break;
		}
		now = mig_now_ns();
		dt = now - t0 ? now - t0 : 1;
		sent = ferry_stream_encoder_bytes(o->enc) - it_bytes0;
		bw = (uint64_t)((double)sent * 1e9 / (double)dt);
		ferry_dirty_set_reset(&set);
		rc = ferry_dirty_sync(vm->dirty, &set, err);
		if (rc)
			break;
		dirty_bytes = set.pages * vm->page_size;
		expected = bw ? dirty_bytes * 1000 / bw : UINT64_MAX;
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
		pthread_mutex_unlock(&m->lock);
		publish(o, set.pages);
		if (expected <= limit)
			break;
		converge(o, dirty_bytes, sent);
		t0 = now;
		it_bytes0 = ferry_stream_encoder_bytes(o->enc);
		rc = send_set(o, &set, err);
	}
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
	uint64_t t_stop, bytes0;
	char msg[MIG_RESULT_MSG_MAX + 1];
	int rc, status;

	ferry_migration_get_params(m, &p);
	if (!mig_set_state(m, FERRY_MIG_ACTIVE, FERRY_MIG_DEVICE))
		return ferry_error_set(err, -ECANCELED,
				       "migration cancelled by request");
	t_stop = mig_now_ns();
	bytes0 = ferry_stream_encoder_bytes(o->enc);
	set_stat(m, &m->stats.precopy_bytes, bytes0);
	vm->runctl.stop(vm->runctl.opaque);
	o->stopped = true;
	/* what the last iteration found, and what was dirtied since; a page
	 * in both is sent twice, and the second copy wins */
	rc = ferry_dirty_sync(vm->dirty, &o->pending, err);
	pthread_mutex_lock(&m->lock);
	m->stats.dirty_sync_count++;
	pthread_mutex_unlock(&m->lock);
	if (!rc)
		rc = send_set(o, &o->pending, err);
	if (!rc)
		rc = send_devices(o, err);
	if (!rc && p.verify)
		rc = ferry_vm_digest_hashes(vm, o->ph.h, digest, err);
	if (rc)
		return rc;
	/* Past this point a cancel no longer applies (migration.c). */
	if (!atomic_compare_exchange_strong(&m->cancel, &(int){ 0 }, 2))
		return ferry_error_set(err, -ECANCELED,
				       "migration cancelled by request");
	rc = ferry_stream_put_end(o->enc, p.verify ? digest : NULL);
	if (!rc)
		rc = ferry_stream_flush(o->enc);
	set_stat(m, &m->stats.downtime_bytes,
		 ferry_stream_encoder_bytes(o->enc) - bytes0);
	publish(o, 0);
	if (!rc)
		rc = mig_recv_result(o->fd, MIG_RESULT_TIMEOUT_MS, &status, msg,
				     sizeof(msg), err);
	if (rc) {
		/* The destination may hold a complete guest: do not run a
		 * second copy here.  The operator decides ('cont'). */
		o->stopped = false;
		return ferry_error_set(err, rc,
				       "connection lost after the whole state "
				       "was sent (%s): the destination may be "
				       "running the guest, so the source guest "
				       "stays stopped; resume it with 'cont' "
				       "only if the destination did not",
				       ferry_error_msg(err));
	}
	if (status)
		return ferry_error_set(err, -status, "destination: %s", msg);
	set_stat(m, &m->stats.downtime_ms, (mig_now_ns() - t_stop) / 1000000);
	if (p.verify) {
		pthread_mutex_lock(&m->lock);
		m->stats.verified = 1;
		pthread_mutex_unlock(&m->lock);
	}
	return 0;
}

void *mig_outgoing_main(void *arg)
{
	struct ferry_migration *m = arg;
	const struct ferry_vm *vm = m->vm;
	struct ferry_error err = { 0 };
	struct out o = { .m = m, .vm = vm, .fd = -1 };
	struct ferry_mig_params params;
	uint64_t t0 = mig_now_ns();
	int rc;

	if (vm->runctl.stall_us)
		vm->runctl.stall_us(vm->runctl.opaque, true);
	if (!vm->dirty) {
		rc = ferry_error_set(&err, -ENOTSUP,
				     "this guest has no dirty tracker");
		goto fail;
	}
	rc = transport_connect(m->uri, &o.fd, &err);
	if (rc)
		goto fail;
	atomic_store(&m->fd, o.fd);
	if (atomic_load(&m->cancel) == 1) {
		rc = ferry_error_set(&err, -ECANCELED,
				     "migration cancelled by request");
		goto fail;
	}
	rc = ferry_stream_encoder_new(ferry_stream_sink_fd(&o.fd), &o.enc);
	if (rc) {
		ferry_error_set(&err, rc, "out of memory");
		goto fail;
	}
	rc = ferry_stream_put_header(o.enc, 0);
	if (!rc)
		rc = ferry_stream_put_config(o.enc, vm->page_size, vm->blocks,
					     vm->nblocks);
	if (rc) {
		ferry_error_set(&err, rc, "sending the configuration: %s",
				strerror(-rc));
		goto fail;
	}
	ferry_migration_get_params(m, &params);
	if (params.verify) {
		rc = page_hashes_init(&o.ph, vm, &err);
		if (rc)
			goto fail;
	}
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
		rc = switchover(&o, &err);
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
	if (!mig_set_state(m, FERRY_MIG_DEVICE, FERRY_MIG_COMPLETED))
		mig_set_state(m, FERRY_MIG_CANCELLING, FERRY_MIG_COMPLETED);
	goto out;
fail:
	if (o.tracking)
		ferry_dirty_stop(vm->dirty);
	if (o.throttle)
		vm->runctl.throttle(vm->runctl.opaque, 0);
	if (o.stopped)
		vm->runctl.resume(vm->runctl.opaque);
	mig_fail(m, &err);
out:
	atomic_store(&m->fd, -1);
	if (o.fd >= 0)
		close(o.fd);
	ferry_stream_encoder_free(o.enc);
	ferry_dirty_set_free(&o.pending);
	page_hashes_free(&o.ph, vm);
	return NULL;
}
