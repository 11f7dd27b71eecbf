/*
 * retpath.c - the return path: messages from the destination to the
 * source on the main connection (docs/stream.md, "Return path").
 *
 *   type u8 | reserved u8 | reserved le16 | length le32 | body
 *
 *   1 result    status le32 | reserved le32 | message (at most 1024)
 *   2 resend    entries of block id le32 | reserved le32 | offset le64
 *   3 sync-ack  seq le64 | channel le16 | reserved 6 bytes
 *   4 page-req  block id le32 | reserved le32 | offset le64 (post-copy)
 *   5 running   (no body): post-copy, the guest runs on the destination
 *
 * The destination writes from several threads (the main connection's and
 * each page channel's), under one lock.  On the source one thread reads
 * every message and keeps what it learnt for the engine's threads.
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

#define RP_HDR_LEN     8
#define RP_RESEND_ITEM 16

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

static int rp_send(struct rp_tx *tx, uint8_t type, const void *body,
		   uint32_t len)
{
	uint8_t h[RP_HDR_LEN] = { type };
	int rc;

	le32_store(h + 4, len);
	pthread_mutex_lock(&tx->lock);
	if (tx->fd < 0) { /* post-copy, paused */
		pthread_mutex_unlock(&tx->lock);
		return -ENOTCONN;
	}
	/* one segment: a header alone would wake the reader for nothing */
	rc = send_all(tx->fd, h, sizeof(h), len ? MSG_MORE : 0);
	if (!rc && len)
		rc = send_all(tx->fd, body, len, 0);
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
	uint8_t body[8 + RP_RESULT_MSG_MAX];
	size_t n = msg ? strnlen(msg, RP_RESULT_MSG_MAX) : 0;

	le32_store(body, (uint32_t)status);
	le32_store(body + 4, 0);
	memcpy(body + 8, msg, n);
	return rp_send(tx, RP_RESULT, body, (uint32_t)(8 + n));
}

int rp_resend_add(struct rp_tx *tx, struct rp_resends *r, uint32_t block_id,
		  uint64_t offset)
{
	uint8_t *e = r->buf + r->n * RP_RESEND_ITEM;

	le32_store(e, block_id);
	le32_store(e + 4, 0);
	le64_store(e + 8, offset);
	r->total++;
	return ++r->n == RP_RESEND_MAX ? rp_resend_flush(tx, r) : 0;
}

int rp_resend_flush(struct rp_tx *tx, struct rp_resends *r)
{
	int rc;

	if (!r->n)
		return 0;
	rc = rp_send(tx, RP_RESEND, r->buf, r->n * RP_RESEND_ITEM);
	r->n = 0;
	return rc;
}

int rp_send_sync_ack(struct rp_tx *tx, uint64_t seq, unsigned channel)
{
	uint8_t body[16] = { 0 };

	le64_store(body, seq);
	le16_store(body + 8, (uint16_t)channel);
	return rp_send(tx, RP_SYNC_ACK, body, sizeof(body));
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
	uint8_t body[16];

	le32_store(body, block_id);
	le32_store(body + 4, 0);
	le64_store(body + 8, offset);
	return rp_send(tx, RP_PAGE_REQ, body, sizeof(body));
}

int rp_send_running(struct rp_tx *tx)
{
	return rp_send(tx, RP_RUNNING, NULL, 0);
}

int rp_send_held(struct rp_tx *tx, uint32_t block_id, uint64_t first,
		 const uint8_t *bits, uint32_t nbytes)
{
	uint8_t body[RP_HELD_MAX];

	if (!nbytes || nbytes > RP_HELD_MAX - 16)
		return -EINVAL;
	le32_store(body, block_id);
	le32_store(body + 4, 0);
	le64_store(body + 8, first);
	memcpy(body + 16, bits, nbytes);
	return rp_send(tx, RP_HELD, body, 16 + nbytes);
}

int rp_send_held_end(struct rp_tx *tx)
{
	return rp_send(tx, RP_HELD_END, NULL, 0);
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

static int on_resend(struct rp_rx *rx, const uint8_t *b, uint32_t len)
{
	const struct ferry_vm *vm = rx->vm;
	uint32_t i, k;
	int rc = 0;

	pthread_mutex_lock(&rx->lock);
	for (i = 0; i < len / RP_RESEND_ITEM && !rc; i++) {
		const uint8_t *e = b + i * RP_RESEND_ITEM;
		uint32_t id = le32_load(e);
		uint64_t off = le64_load(e + 8);

		for (k = 0; k < vm->nblocks && vm->blocks[k].id != id; k++)
			;
		if (k == vm->nblocks || le32_load(e + 4) ||
		    off % vm->page_size || off >= vm->blocks[k].length) {
			rc = -EPROTO;
			break;
		}
		rc = ferry_dirty_set_add(&rx->resend, k, off / vm->page_size,
					 1);
	}
	rx->resends += i;
	pthread_mutex_unlock(&rx->lock);
	return rc;
}

static int on_page_req(struct rp_rx *rx, const uint8_t *b)
{
	const struct ferry_vm *vm = rx->vm;
	uint32_t id = le32_load(b), k;
	uint64_t off = le64_load(b + 8);
	void (*fn)(void *, uint32_t, uint64_t);
	void *opaque;

	for (k = 0; k < vm->nblocks && vm->blocks[k].id != id; k++)
		;
	if (k == vm->nblocks || le32_load(b + 4) || off % vm->page_size ||
	    off >= vm->blocks[k].length)
		return -EPROTO;
	/* under req_lock (not lock: the answer may ask whether the
	 * destination spoke): rp_on_request(NULL) waits for a call to end */
	pthread_mutex_lock(&rx->req_lock);
	fn = rx->on_request;
	opaque = rx->req_opaque;
	if (fn) /* none: a late request, for a page already sent */
		fn(opaque, k, off / vm->page_size);
	pthread_mutex_unlock(&rx->req_lock);
	return 0;
}

/* Post-copy recovery: a piece of the destination's list of pages held. */
static int on_held(struct rp_rx *rx, const uint8_t *b, uint32_t len)
{
	const struct ferry_vm *vm = rx->vm;
	uint32_t id = le32_load(b), k, j, nbits = (len - 16) * 8;
	uint64_t first = le64_load(b + 8), pages;

	if (!rx->held)
		return -EPROTO;
	for (k = 0; k < vm->nblocks && vm->blocks[k].id != id; k++)
		;
	if (k == vm->nblocks || le32_load(b + 4))
		return -EPROTO;
	pages = vm->blocks[k].length / vm->page_size;
	if (first >= pages)
		return -EPROTO;
	for (j = 0; j < nbits; j++) {
		uint64_t g = rx->first_page[k] + first + j;

		if (!(b[16 + j / 8] & (1u << (j % 8))))
			continue;
		if (first + j >= pages)
			return -EPROTO;
		atomic_fetch_or(&rx->held[g / 64], 1ull << (g % 64));
	}
	return 0;
}

static void *rp_main(void *arg)
{
	struct rp_rx *rx = arg;
	uint8_t h[RP_HDR_LEN], body[RP_RESEND_MAX * RP_RESEND_ITEM];
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
		len = le32_load(h + 4);
		if (h[1] || le16_load(h + 2) || h[0] < RP_RESULT ||
		    h[0] > RP_HELD_END ||
		    len > (h[0] == RP_RESULT   ? 8 + RP_RESULT_MSG_MAX
			   : h[0] == RP_RESEND ? sizeof(body)
			   : h[0] == RP_HELD   ? RP_HELD_MAX
					       : 16) ||
		    (h[0] == RP_HELD && len <= 16) ||
		    (h[0] == RP_HELD_END && len) ||
		    (h[0] == RP_RESULT && len < 8) ||
		    (h[0] == RP_RESEND && len % RP_RESEND_ITEM) ||
		    ((h[0] == RP_SYNC_ACK || h[0] == RP_PAGE_REQ) &&
		     len != 16) ||
		    (h[0] == RP_RUNNING && len)) {
			rp_closed(rx, -EPROTO,
				  "the destination sent a malformed "
				  "return-path message (type %u, %u bytes)",
				  h[0], len);
			break;
		}
		rc = read_full(rx->fd, body, len);
		if (rc) {
			rp_closed(rx, rc,
				  "the destination's message was cut "
				  "short");
			break;
		}
		if (h[0] == RP_RESULT) {
			uint32_t i, n = len - 8;

			pthread_mutex_lock(&rx->lock);
			for (i = 0; i < n; i++)
				rx->msg[i] = body[8 + i] >= 0x20 &&
							     body[8 + i] < 0x7f
						     ? (char)body[8 + i]
						     : '?';
			rx->msg[n] = '\0';
			rx->status = (int)le32_load(body);
			if (rx->status < 0 || rx->status > 4095)
				rx->status = EPROTO;
			rx->have_result = true;
			pthread_cond_broadcast(&rx->cond);
			pthread_mutex_unlock(&rx->lock);
			break; /* the last message */
		} else if (h[0] == RP_PAGE_REQ) {
			if (on_page_req(rx, body)) {
				rp_closed(rx, -EPROTO,
					  "the destination asked for a page "
					  "outside guest RAM");
				break;
			}
		} else if (h[0] == RP_RUNNING) {
			pthread_mutex_lock(&rx->lock);
			rx->running = true;
			rx->running_ns = mig_now_ns();
			pthread_cond_broadcast(&rx->cond);
			pthread_mutex_unlock(&rx->lock);
		} else if (h[0] == RP_HELD) {
			if (on_held(rx, body, len)) {
				rp_closed(rx, -EPROTO,
					  "the destination listed held pages "
					  "outside guest RAM, or unasked");
				break;
			}
		} else if (h[0] == RP_HELD_END) {
			if (!rx->held) {
				rp_closed(rx, -EPROTO,
					  "the destination listed held pages "
					  "unasked");
				break;
			}
			/* the requests that follow need the new todo */
			pthread_mutex_lock(&rx->lock);
			rx->held_done = true;
			pthread_cond_broadcast(&rx->cond);
			while (!rx->go_on && !rx->stopping)
				pthread_cond_wait(&rx->cond, &rx->lock);
			pthread_mutex_unlock(&rx->lock);
		} else if (h[0] == RP_RESEND) {
			if (on_resend(rx, body, len)) {
				rp_closed(rx, -EPROTO,
					  "the destination asked again for a "
					  "page outside guest RAM");
				break;
			}
		} else {
			uint64_t seq = le64_load(body);
			unsigned ch = le16_load(body + 8);

			if (ch > FERRY_STREAM_MAX_CHANNELS) {
				rp_closed(rx, -EPROTO,
					  "the destination acknowledged a "
					  "sync on channel %u",
					  ch);
				break;
			}
			pthread_mutex_lock(&rx->lock);
			if (seq > rx->acked[ch])
				rx->acked[ch] = seq;
			pthread_cond_broadcast(&rx->cond);
			pthread_mutex_unlock(&rx->lock);
		}
	}
	return NULL;
}

int rp_rx_start(struct rp_rx *rx, const struct ferry_vm *vm, int fd)
{
	int rc;

	rx->vm = vm;
	rx->fd = fd;
	pthread_mutex_init(&rx->lock, NULL);
	pthread_mutex_init(&rx->req_lock, NULL);
	pthread_cond_init(&rx->cond, NULL);
	rc = pthread_create(&rx->thread, NULL, rp_main, rx);
	if (rc)
		return -rc;
	rx->live = true;
	return 0;
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
	shutdown(rx->fd, SHUT_RD);
	pthread_join(rx->thread, NULL);
	rx->live = false;
	ferry_dirty_set_free(&rx->resend);
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

void rp_take_resends(struct rp_rx *rx, struct ferry_dirty_set *into)
{
	pthread_mutex_lock(&rx->lock);
	ferry_dirty_set_free(into);
	*into = rx->resend;
	memset(&rx->resend, 0, sizeof(rx->resend));
	pthread_mutex_unlock(&rx->lock);
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
		rc = ferry_error_set(err, -rx->status, "destination: %s",
				     rx->msg);
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
