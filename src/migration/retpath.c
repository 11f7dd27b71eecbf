/*
 * retpath.c - the return path: messages from the destination to the
 * source on the main connection (docs/stream.md, "Return path").
 *
 * The messages themselves, their form and its checks, are in
 * src/stream/retpath_codec.c; here are their writers and their reader.
 *
 * The destination writes from several threads (the main connection's and
 * each page channel's), under one lock.  On the source one thread reads
 * every message and keeps what it learnt for the engine's threads.  It
 * trusts nothing: a message that breaks a rule (a field out of range, a
 * page asked for again twice between syncs, a success verdict before the
 * end of stream) is a protocol violation, which names the message's type,
 * its byte offset on the return path and the field, fails the migration
 * and shuts the main connection down.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "le.h"
#include "migration_internal.h"

/* ---- destination -------------------------------------------------------- */

static int send_all(int fd, const uint8_t *p, size_t n, int flags)
{
	size_t off = 0;

	while (off < n) {
		ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL | flags);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		off += (size_t)w;
	}
	return 0;
}

/* One message, in one send: a header alone would wake the reader for
 * nothing. */
static int rp_send(struct rp_tx *tx, const struct rp_msg *m)
{
	uint8_t buf[RP_MSG_MAX];
	size_t len = rp_encode(m, buf);
	int rc;

	if (!len)
		return -EINVAL;
	pthread_mutex_lock(&tx->lock);
	if (tx->fd < 0) { /* post-copy, paused */
		pthread_mutex_unlock(&tx->lock);
		return -ENOTCONN;
	}
	rc = send_all(tx->fd, buf, len, 0);
	pthread_mutex_unlock(&tx->lock);
	return rc;
}

void rp_tx_init(struct rp_tx *tx, int fd)
{
	tx->fd = fd;
	pthread_mutex_init(&tx->lock, NULL);
}

void rp_tx_destroy(struct rp_tx *tx)
{
	pthread_mutex_destroy(&tx->lock);
}

int rp_send_result(struct rp_tx *tx, int status, const char *msg)
{
	struct rp_msg m = { .type = RP_RESULT };

	m.u.result.status = (uint32_t)status;
	m.u.result.len = msg ? (uint32_t)strnlen(msg, RP_RESULT_MSG_MAX) : 0;
	m.u.result.text = (const uint8_t *)msg;
	return rp_send(tx, &m);
}

int rp_resend_add(struct rp_tx *tx, struct rp_resends *r, uint32_t block_id,
		  uint64_t offset)
{
	rp_resend_entry_put(r->buf + r->n * RP_RESEND_ITEM, block_id, offset);
	r->total++;
	return ++r->n == RP_RESEND_MAX ? rp_resend_flush(tx, r) : 0;
}

int rp_resend_flush(struct rp_tx *tx, struct rp_resends *r)
{
	struct rp_msg m = { .type = RP_RESEND };
	int rc;

	if (!r->n)
		return 0;
	m.u.resend.n = r->n;
	m.u.resend.entries = r->buf;
	rc = rp_send(tx, &m);
	r->n = 0;
	return rc;
}

int rp_send_sync_ack(struct rp_tx *tx, uint64_t seq, unsigned channel)
{
	struct rp_msg m = { .type = RP_SYNC_ACK };

	m.u.sync_ack.seq = seq;
	m.u.sync_ack.channel = (uint16_t)channel;
	return rp_send(tx, &m);
}

void rp_fail_peer(struct rp_tx *tx, int rc, const char *msg)
{
	uint64_t end = mig_now_ns() + 3000000000ull;
	char buf[4096];

	if (rp_send_result(tx, rc, msg))
		return;
	/* Let the source read the verdict: stop sending, and drain what it
	 * still sends until it hangs up, for up to three seconds (closing
	 * with unread data would reset the connection and could lose the
	 * verdict). */
	shutdown(tx->fd, SHUT_WR);
	while (mig_now_ns() < end) {
		struct pollfd p = { .fd = tx->fd, .events = POLLIN };
		ssize_t r;
		int n = poll(&p, 1, 10);

		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		r = recv(tx->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
}

int rp_send_page_req(struct rp_tx *tx, uint32_t block_id, uint64_t offset)
{
	struct rp_msg m = { .type = RP_PAGE_REQ,
			    .u.page_req = { block_id, offset } };

	return rp_send(tx, &m);
}

int rp_send_running(struct rp_tx *tx)
{
	return rp_send(tx, &(struct rp_msg){ .type = RP_RUNNING });
}

int rp_send_held(struct rp_tx *tx, uint32_t block_id, uint64_t first,
		 const uint8_t *bits, uint32_t nbytes)
{
	struct rp_msg m = { .type = RP_HELD };

	if (!nbytes || nbytes > RP_HELD_MAX - 16)
		return -EINVAL;
	m.u.held.block_id = block_id;
	m.u.held.first = first;
	m.u.held.nbytes = nbytes;
	m.u.held.bits = bits;
	return rp_send(tx, &m);
}

int rp_send_held_end(struct rp_tx *tx)
{
	return rp_send(tx, &(struct rp_msg){ .type = RP_HELD_END });
}

void rp_tx_set_fd(struct rp_tx *tx, int fd)
{
	pthread_mutex_lock(&tx->lock);
	tx->fd = fd;
	pthread_mutex_unlock(&tx->lock);
}

/* ---- source ------------------------------------------------------------- */

static int read_full(int fd, uint8_t *p, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(fd, p + got, len - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ECONNRESET;
		got += (size_t)r;
	}
	return 0;
}

/* Everything after the first fault is ignored: the reader stops. */
static void rp_closed(struct rp_rx *rx, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void rp_closed(struct rp_rx *rx, int rc, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&rx->lock);
	rx->closed = true;
	rx->close_rc = rc;
	va_start(ap, fmt);
	vsnprintf(rx->close_msg, sizeof(rx->close_msg), fmt, ap);
	va_end(ap);
	pthread_cond_broadcast(&rx->cond);
	pthread_mutex_unlock(&rx->lock);
}

/* Under rx->lock: the message at rx->off (header h) broke the rules,
 * `why`: a protocol violation, and the migration's reason. */
static void refuse_held(struct rp_rx *rx, const uint8_t *h, const char *why,
			...) __attribute__((format(printf, 3, 4)));

static void refuse_held(struct rp_rx *rx, const uint8_t *h, const char *why,
			...)
{
	char what[512];
	va_list ap;

	va_start(ap, why);
	vsnprintf(what, sizeof(what), why, ap);
	va_end(ap);
	rx->closed = true;
	rx->close_rc = -EPROTO;
	rx->bad = true;
	snprintf(rx->close_msg, sizeof(rx->close_msg),
		 RP_VIOLATION " at byte %" PRIu64
			      ", %s message (type %u, %u-byte body): %s",
		 rx->off, rp_type_name(h[0]), h[0], le32_load(h + 4), what);
	pthread_cond_broadcast(&rx->cond);
}

/* After refuse_held, unlocked: shut the main connection down, so that
 * the engine's sends stop at once rather than at its next look at the
 * return path. */
static void refused(struct rp_rx *rx)
{
	shutdown(rx->fd, SHUT_RDWR);
}

/* A page named by block id and offset (resend entries, page requests):
 * 0 with its block and page, or -EPROTO with what is wrong in why. */
static int page_of(const struct ferry_vm *vm, struct rp_page e, uint32_t *bi,
		   uint64_t *page, char *why, size_t n)
{
	uint32_t k;

	for (k = 0; k < vm->nblocks && vm->blocks[k].id != e.block_id; k++)
		;
	if (k == vm->nblocks)
		snprintf(why, n, "block id %u is not in the configuration",
			 e.block_id);
	else if (e.offset % vm->page_size)
		snprintf(why, n, "offset 0x%" PRIx64 " is not page-aligned",
			 e.offset);
	else if (e.offset >= vm->blocks[k].length)
		snprintf(why, n,
			 "offset 0x%" PRIx64 " is past the end of block %s "
			 "(%" PRIu64 " bytes)",
			 e.offset, vm->blocks[k].name, vm->blocks[k].length);
	else {
		*bi = k;
		*page = e.offset / vm->page_size;
		return 0;
	}
	return -EPROTO;
}

/* Each entry marks its page (a bit: a page is asked for or not).  Every
 * entry answers one check record, and a page gets at most one between
 * two syncs, so a page asked for twice before rp_take_resends is a
 * protocol violation: no number of messages grows the source. */
static int on_resend(struct rp_rx *rx, const struct rp_msg *msg, char *why,
		     size_t n)
{
	const struct ferry_vm *vm = rx->vm;
	uint32_t i, bi;
	uint64_t page, g;
	int rc = 0;

	for (i = 0; i < msg->u.resend.n && !rc; i++) {
		int k = snprintf(why, n, "entry %u: ", i);

		rc = page_of(vm, rp_resend_entry(msg, i), &bi, &page, why + k,
			     n - (size_t)k);
		if (rc)
			break;
		g = rx->asked_first[bi] + page;
		pthread_mutex_lock(&rx->lock);
		if (rx->asked[g / 64] & (1ull << (g % 64))) {
			snprintf(why + k, n - (size_t)k,
				 "page %" PRIu64 " of block %s asked for "
				 "again a second time before the next sync "
				 "(at most once per sync)",
				 page, vm->blocks[bi].name);
			rc = -EPROTO;
		} else {
			rx->asked[g / 64] |= 1ull << (g % 64);
			rx->asked_pages++;
			rx->resends++;
		}
		pthread_mutex_unlock(&rx->lock);
	}
	return rc;
}

static int on_page_req(struct rp_rx *rx, const struct rp_msg *msg, char *why,
		       size_t n)
{
	void (*fn)(void *, uint32_t, uint64_t);
	uint64_t page;
	void *opaque;
	uint32_t bi;

	if (page_of(rx->vm, msg->u.page_req, &bi, &page, why, n))
		return -EPROTO;
	/* under req_lock (not lock: the answer may ask whether the
	 * destination spoke): rp_on_request(NULL) waits for a call to end */
	pthread_mutex_lock(&rx->req_lock);
	fn = rx->on_request;
	opaque = rx->req_opaque;
	if (fn) /* none: a late request, for a page already sent */
		fn(opaque, bi, page);
	pthread_mutex_unlock(&rx->req_lock);
	return 0;
}

/* Post-copy recovery: a piece of the destination's list of pages held. */
static int on_held(struct rp_rx *rx, const struct rp_msg *msg, char *why,
		   size_t n)
{
	const struct ferry_vm *vm = rx->vm;
	uint32_t id = msg->u.held.block_id, k, j;
	uint32_t nbits = msg->u.held.nbytes * 8;
	uint64_t first = msg->u.held.first, pages = 0;
	const uint8_t *bits = msg->u.held.bits;
	bool ok = false;

	for (k = 0; k < vm->nblocks && vm->blocks[k].id != id; k++)
		;
	if (k < vm->nblocks)
		pages = vm->blocks[k].length / vm->page_size;
	if (!rx->held)
		snprintf(why, n, "not a recovery: no list was asked for");
	else if (k == vm->nblocks)
		snprintf(why, n, "block id %u is not in the configuration", id);
	else if (first >= pages)
		snprintf(why, n,
			 "first page %" PRIu64 " is past the end of block %s "
			 "(%" PRIu64 " pages)",
			 first, vm->blocks[k].name, pages);
	else
		ok = true;
	if (!ok)
		return -EPROTO;
	for (j = 0; j < nbits; j++) {
		uint64_t g = rx->first_page[k] + first + j;

		if (!(bits[j / 8] & (1u << (j % 8))))
			continue;
		if (first + j >= pages) {
			snprintf(why, n,
				 "bit %u: page %" PRIu64 " is past the end of "
				 "block %s (%" PRIu64 " pages)",
				 j, first + j, vm->blocks[k].name, pages);
			return -EPROTO;
		}
		atomic_fetch_or(&rx->held[g / 64], 1ull << (g % 64));
	}
	return 0;
}

/* The verdict, the last message.  A success is the answer to the end of
 * stream: one that comes before the source began to send it (the check
 * and the mark in rp_end_begin are under one lock) answers nothing the
 * source sent, and is refused. */
static void on_result(struct rp_rx *rx, const uint8_t *h,
		      const struct rp_msg *msg)
{
	uint32_t i, n = msg->u.result.len, status = msg->u.result.status;

	pthread_mutex_lock(&rx->lock);
	if (!status && !rx->end_sent) {
		refuse_held(rx, h,
			    "a success verdict before the source sent its end "
			    "of stream");
		pthread_mutex_unlock(&rx->lock);
		refused(rx);
		return;
	}
	for (i = 0; i < n; i++) {
		uint8_t c = msg->u.result.text[i];

		rx->msg[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	rx->msg[n] = '\0';
	rx->status = (int)status;
	rx->have_result = true;
	pthread_cond_broadcast(&rx->cond);
	pthread_mutex_unlock(&rx->lock);
}

/* Post-copy recovery: the list is whole; the requests that follow need
 * the new todo, so the reader waits until the engine has it. */
static int on_held_end(struct rp_rx *rx, char *why, size_t n)
{
	if (!rx->held) {
		snprintf(why, n, "not a recovery: no list was asked for");
		return -EPROTO;
	}
	pthread_mutex_lock(&rx->lock);
	rx->held_done = true;
	pthread_cond_broadcast(&rx->cond);
	while (!rx->go_on && !rx->stopping)
		pthread_cond_wait(&rx->cond, &rx->lock);
	pthread_mutex_unlock(&rx->lock);
	return 0;
}

static void *rp_main(void *arg)
{
	struct rp_rx *rx = arg;
	uint8_t h[RP_HDR_LEN], body[RP_BODY_MAX], type;
	struct rp_msg msg;
	char why[512];
	bool bad = false;
	uint32_t len;
	int rc;

	for (;;) {
		rc = read_full(rx->fd, h, sizeof(h));
		if (rc) {
			rp_closed(rx, rc,
				  "the destination closed the "
				  "connection");
			break;
		}
		if (rp_decode_header(h, &type, &len, why, sizeof(why))) {
			bad = true;
			break;
		}
		rc = read_full(rx->fd, body, len);
		if (rc) {
			rp_closed(rx, rc,
				  "the destination's message was cut "
				  "short");
			break;
		}
		rc = rp_decode_body(type, body, len, &msg, why, sizeof(why));
		if (!rc) {
			switch (type) {
			case RP_RESULT:
				on_result(rx, h, &msg);
				return NULL; /* the last message */
			case RP_RESEND:
				rc = on_resend(rx, &msg, why, sizeof(why));
				break;
			case RP_SYNC_ACK:
				pthread_mutex_lock(&rx->lock);
				if (msg.u.sync_ack.seq >
				    rx->acked[msg.u.sync_ack.channel])
					rx->acked[msg.u.sync_ack.channel] =
						msg.u.sync_ack.seq;
				pthread_cond_broadcast(&rx->cond);
				pthread_mutex_unlock(&rx->lock);
				break;
			case RP_PAGE_REQ:
				rc = on_page_req(rx, &msg, why, sizeof(why));
				break;
			case RP_RUNNING:
				pthread_mutex_lock(&rx->lock);
				rx->running = true;
				rx->running_ns = mig_now_ns();
				pthread_cond_broadcast(&rx->cond);
				pthread_mutex_unlock(&rx->lock);
				break;
			case RP_HELD:
				rc = on_held(rx, &msg, why, sizeof(why));
				break;
			default: /* RP_HELD_END */
				rc = on_held_end(rx, why, sizeof(why));
			}
		}
		if (rc) {
			bad = true;
			break;
		}
		rx->off += RP_HDR_LEN + len;
	}
	if (bad) {
		pthread_mutex_lock(&rx->lock);
		refuse_held(rx, h, "%s", why);
		pthread_mutex_unlock(&rx->lock);
		refused(rx);
	}
	return NULL;
}

int rp_rx_start(struct rp_rx *rx, const struct ferry_vm *vm, int fd)
{
	uint64_t pages = 0;
	uint32_t i;
	int rc;

	rx->vm = vm;
	rx->fd = fd;
	rx->asked_first = calloc(vm->nblocks, sizeof(*rx->asked_first));
	for (i = 0; rx->asked_first && i < vm->nblocks; i++) {
		rx->asked_first[i] = pages;
		pages += vm->blocks[i].length / vm->page_size;
	}
	rx->asked = calloc((pages + 63) / 64, sizeof(*rx->asked));
	if (!rx->asked_first || !rx->asked) {
		rc = -ENOMEM;
		goto err_free;
	}
	pthread_mutex_init(&rx->lock, NULL);
	pthread_mutex_init(&rx->req_lock, NULL);
	pthread_cond_init(&rx->cond, NULL);
	if (fd < 0) { /* nobody answers (file:): nothing to read */
		rx->live = true;
		return 0;
	}
	rc = pthread_create(&rx->thread, NULL, rp_main, rx);
	if (rc) {
		rc = -rc;
		goto err_sync;
	}
	rx->reading = true;
	rx->live = true;
	return 0;
err_sync:
	pthread_cond_destroy(&rx->cond);
	pthread_mutex_destroy(&rx->req_lock);
	pthread_mutex_destroy(&rx->lock);
err_free:
	free(rx->asked);
	free(rx->asked_first);
	rx->asked = NULL;
	rx->asked_first = NULL;
	return rc;
}

void rp_rx_stop(struct rp_rx *rx)
{
	if (!rx->live)
		return;
	pthread_mutex_lock(&rx->lock);
	rx->stopping = true; /* a reader waiting to go on */
	pthread_cond_broadcast(&rx->cond);
	pthread_mutex_unlock(&rx->lock);
	/* wakes the reader: a read on a socket shut for reading ends */
	if (rx->reading) {
		shutdown(rx->fd, SHUT_RD);
		pthread_join(rx->thread, NULL);
	}
	rx->reading = false;
	rx->live = false;
	free(rx->asked);
	free(rx->asked_first);
	rx->asked = NULL;
	rx->asked_first = NULL;
	pthread_cond_destroy(&rx->cond);
	pthread_mutex_destroy(&rx->req_lock);
	pthread_mutex_destroy(&rx->lock);
}

static void deadline(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

bool rp_spoke(struct rp_rx *rx)
{
	bool r;

	pthread_mutex_lock(&rx->lock);
	r = rx->have_result || rx->closed;
	pthread_mutex_unlock(&rx->lock);
	return r;
}

/* Under rx->lock: wait until *flag, the verdict or a hang-up, or until
 * timeout_ms have gone by. */
static void wait_locked(struct rp_rx *rx, const bool *flag, int timeout_ms)
{
	struct timespec ts;
	int rc = 0;

	deadline(&ts, timeout_ms);
	while (!*flag && !rx->have_result && !rx->closed && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&rx->cond, &rx->lock, &ts);
}

int rp_wait_result(struct rp_rx *rx, int timeout_ms, int *status, char *msg,
		   size_t len, struct ferry_error *err)
{
	int rc;

	pthread_mutex_lock(&rx->lock);
	wait_locked(rx, &rx->have_result, timeout_ms);
	if (rx->have_result) {
		*status = rx->status;
		snprintf(msg, len, "%s", rx->msg);
		rc = 0;
	} else if (rx->closed) {
		rc = ferry_error_set(err, rx->close_rc,
				     "no verdict from the destination: %s",
				     rx->close_msg);
	} else {
		rc = ferry_error_set(err, -ETIMEDOUT,
				     "no verdict from the destination "
				     "within %d ms",
				     timeout_ms);
	}
	pthread_mutex_unlock(&rx->lock);
	return rc;
}

int rp_wait_acks(struct rp_rx *rx, const unsigned *channels, unsigned n,
		 uint64_t seq, atomic_int *cancel, struct ferry_error *err)
{
	unsigned waited = 0;
	int rc = 0;

	pthread_mutex_lock(&rx->lock);
	for (;;) {
		unsigned i, done = 0;
		struct timespec ts;

		for (i = 0; i < n; i++)
			done += rx->acked[channels[i]] >= seq;
		if (done == n)
			break;
		if (rx->have_result || rx->closed) {
			rc = -ECONNRESET; /* the caller asks for the verdict */
			break;
		}
		if (atomic_load(cancel) == 1) {
			rc = ferry_error_set(err, -ECANCELED,
					     "migration cancelled by request");
			break;
		}
		if (waited++ == RP_ACK_TIMEOUT_MS / 100) {
			rc = ferry_error_set(err, -ETIMEDOUT,
					     "the destination did not "
					     "acknowledge sync %" PRIu64
					     " within %d ms",
					     seq, RP_ACK_TIMEOUT_MS);
			break;
		}
		deadline(&ts, 100);
		pthread_cond_timedwait(&rx->cond, &rx->lock, &ts);
	}
	pthread_mutex_unlock(&rx->lock);
	return rc;
}

int rp_take_resends(struct rp_rx *rx, struct ferry_dirty_set *into)
{
	const struct ferry_vm *vm = rx->vm;
	uint64_t w, nwords = 0, run = 0, run_first = 0;
	uint32_t bi = 0, run_block = 0;
	int rc = 0;

	ferry_dirty_set_reset(into);
	for (bi = 0; bi < vm->nblocks; bi++)
		nwords = rx->asked_first[bi] +
			 vm->blocks[bi].length / vm->page_size;
	nwords = (nwords + 63) / 64;
	bi = 0;
	pthread_mutex_lock(&rx->lock);
	for (w = 0; w < nwords && rx->asked_pages && !rc; w++) {
		uint64_t bits = rx->asked[w];

		rx->asked[w] = 0;
		while (bits && !rc) {
			uint64_t g = w * 64 + (uint64_t)__builtin_ctzll(bits);

			bits &= bits - 1;
			while (bi + 1 < vm->nblocks &&
			       g >= rx->asked_first[bi + 1])
				bi++;
			if (run && run_block == bi &&
			    run_first + run == g - rx->asked_first[bi]) {
				run++;
				continue;
			}
			if (run)
				rc = ferry_dirty_set_add(into, run_block,
							 run_first, run);
			run_block = bi;
			run_first = g - rx->asked_first[bi];
			run = 1;
		}
	}
	if (run && !rc)
		rc = ferry_dirty_set_add(into, run_block, run_first, run);
	for (; rc && w < nwords; w++) /* after a failure: start afresh */
		rx->asked[w] = 0;
	rx->asked_pages = 0;
	pthread_mutex_unlock(&rx->lock);
	return rc;
}

int rp_end_begin(struct rp_rx *rx)
{
	int rc = 0;

	pthread_mutex_lock(&rx->lock);
	if (rx->have_result || rx->closed)
		rc = -ECONNRESET;
	else
		rx->end_sent = true;
	pthread_mutex_unlock(&rx->lock);
	return rc;
}

int rp_failure(struct rp_rx *rx, struct ferry_error *err)
{
	int rc = 0;

	pthread_mutex_lock(&rx->lock);
	if (rx->closed && rx->bad)
		rc = ferry_error_set_from(err, FERRY_ERROR_PEER, rx->close_rc,
					  "%s", rx->close_msg);
	pthread_mutex_unlock(&rx->lock);
	return rc;
}

void rp_on_request(struct rp_rx *rx,
		   void (*fn)(void *opaque, uint32_t block, uint64_t page),
		   void *opaque)
{
	pthread_mutex_lock(&rx->req_lock);
	rx->on_request = fn;
	rx->req_opaque = opaque;
	pthread_mutex_unlock(&rx->req_lock);
}

int rp_wait_held(struct rp_rx *rx, int timeout_ms, struct ferry_error *err)
{
	int rc;

	pthread_mutex_lock(&rx->lock);
	wait_locked(rx, &rx->held_done, timeout_ms);
	if (rx->held_done)
		rc = 0;
	else if (rx->have_result && rx->status)
		rc = ferry_error_set_from(err, FERRY_ERROR_PEER, -rx->status,
					  "destination: %s", rx->msg);
	else if (rx->have_result || rx->closed)
		rc = ferry_error_set(err, rx->closed ? rx->close_rc : -EPROTO,
				     "no list of held pages: %s",
				     rx->closed ? rx->close_msg
						: "the destination finished");
	else
		rc = ferry_error_set(err, -ETIMEDOUT,
				     "the destination did not list the pages "
				     "it holds within %d ms",
				     timeout_ms);
	pthread_mutex_unlock(&rx->lock);
	return rc;
}

void rp_go_on(struct rp_rx *rx)
{
	pthread_mutex_lock(&rx->lock);
	rx->go_on = true;
	pthread_cond_broadcast(&rx->cond);
	pthread_mutex_unlock(&rx->lock);
}

int rp_wait_running(struct rp_rx *rx, int timeout_ms, uint64_t *when_ns,
		    struct ferry_error *err)
{
	int rc;

	pthread_mutex_lock(&rx->lock);
	wait_locked(rx, &rx->running, timeout_ms);
	if (rx->running) {
		*when_ns = rx->running_ns;
		rc = 0;
	} else if (rx->have_result || rx->closed) {
		rc = -ECONNRESET; /* the caller asks for the verdict */
	} else {
		rc = ferry_error_set(err, -ETIMEDOUT,
				     "the destination did not resume the "
				     "guest within %d ms",
				     timeout_ms);
	}
	pthread_mutex_unlock(&rx->lock);
	return rc;
}
