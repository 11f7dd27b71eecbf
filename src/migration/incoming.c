/*
 * incoming.c - the destination side, on the engine's thread.
 *
 * Accept the main connection (and, with multifd, one connection per page
 * channel, each with a receiver thread), screening every connection for
 * its stream head (header, channel and configuration records) so that a
 * stray one is refused and listening goes on; decode the stream into the
 * stopped guest (the decoder places pages only after checking them
 * against this guest's RAM), load each device section, and at the end of
 * stream compare the digest of what was loaded with the source's.  Only a
 * complete, verified guest is resumed; the verdict goes back to the source
 * either way.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "migration_internal.h"
#include "arrival.h"
#include "placer.h"
#include "postcopy.h"
#include "transport.h"

#define HEAD_MS 10000 /* with net-timeout 0 */

/* A connection's bytes: those the screen read (its head, maybe more),
 * then the socket's. */
struct conn_src {
	int *fd;
	uint8_t *buf;
	size_t len, pos;
	struct tls_conn *tls; /* a page channel's TLS, read in place */
};

/* What a connection's receiver needs besides its decoder. */
struct receiver {
	struct placer *pl;	/* shared: the one writer of guest RAM */
	atomic_int *first_fail; /* shared: who failed first */
	struct rp_tx *tx;
	struct rp_resends rs; /* stale pages, not yet reported */
	unsigned channel;     /* 0 = main connection */
	bool urgent;	      /* post-copy's answers: no pages before it */
	struct placer_tally t;
};

/* A page channel's receiver. */
struct rx {
	struct ferry_migration *m;
	int fd;
	struct conn_src src;
	int main_fd;
	struct ferry_stream_decoder *d;
	unsigned index; /* its channel number */
	pthread_t thread;
	bool live;
	struct receiver rcv;
	atomic_int *first_fail; /* who failed first: 0 none, -1 main */
	int rc;
	struct ferry_error err;
};

static const struct ferry_section *find_section(const struct ferry_vm *vm,
						const char *name,
						uint32_t instance, size_t *idx)
{
	size_t i;

	for (i = 0; i < vm->nsections; i++)
		if (!strcmp(vm->sections[i].name, name) &&
		    vm->sections[i].instance == instance) {
			*idx = i;
			return &vm->sections[i];
		}
	return NULL;
}

/*
 * A page off this connection, to the placer; a check record whose hash is
 * not that of the copy here asks the source for the page again
 * (docs/stream.md, "Return path").
 */
static int placed(struct receiver *r, const struct ferry_stream_record *rec,
		  struct ferry_error *err)
{
	int rc;

	if (r->urgent && !atomic_load(r->pl->pc_running))
		return ferry_error_set(err, -EPROTO,
				       "stream offset %" PRIu64
				       ": a page on the urgent connection "
				       "before post-copy",
				       rec->stream_offset);
	rc = placer_page(r->pl, rec, &r->t, err);
	if (rc != 1)
		return rc;
	rc = rp_resend_add(r->tx, &r->rs, rec->u.page.block_id,
			   rec->u.page.offset);
	if (rc)
		return ferry_error_set(err, rc,
				       "asking the source for a page again: %s",
				       strerror(-rc));
	return 0;
}

/* Everything before the sync record is placed: report the stale pages
 * found so far, then acknowledge. */
static int synced(struct receiver *r, uint64_t seq, struct ferry_error *err)
{
	int rc = rp_resend_flush(r->tx, &r->rs);

	if (!rc)
		rc = rp_send_sync_ack(r->tx, seq, r->channel);
	if (rc)
		return ferry_error_set(err, rc,
				       "acknowledging sync %" PRIu64 ": %s",
				       seq, strerror(-rc));
	return 0;
}

static void *rx_main(void *arg)
{
	struct rx *r = arg;
	struct ferry_stream_record rec;

	while (!r->rc) {
		r->rc = ferry_stream_decoder_next(r->d, &rec, &r->err);
		if (r->rc)
			break;
		if (rec.type == FERRY_REC_PAGE) {
			r->rc = placed(&r->rcv, &rec, &r->err);
		} else if (rec.type == FERRY_REC_SYNC) {
			r->rc = synced(&r->rcv, rec.u.sync.seq, &r->err);
		} else if (rec.type == FERRY_REC_END) {
			break;
		} else if (rec.type != FERRY_REC_CONFIG) {
			r->rc = ferry_error_set(
				&r->err, -EPROTO,
				"stream offset %" PRIu64
				": a %s record on a page "
				"channel",
				rec.stream_offset,
				ferry_record_type_name(rec.type));
			break;
		}
	}
	/* wake the main connection's reader: we failed (first, unless the
	 * main connection or another channel failed before) */
	if (r->rc) {
		int none = 0, me = (int)r->index;

		if (atomic_compare_exchange_strong(r->first_fail, &none, me))
			shutdown(r->main_fd, SHUT_RD);
	}
	return NULL;
}

static ssize_t conn_read(void *opaque, void *buf, size_t len)
{
	struct conn_src *c = opaque;

	if (c->pos < c->len) {
		size_t n = c->len - c->pos < len ? c->len - c->pos : len;

		memcpy(buf, c->buf + c->pos, n);
		c->pos += n;
		return (ssize_t)n;
	}
	if (c->tls)
		return tls_conn_read(c->tls, buf, len);
	for (;;) {
		ssize_t r = read(*c->fd, buf, len);

		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

/* A taken connection becomes the source of fd's stream. */
static void conn_src_set(struct conn_src *c, int *fd,
			 const struct transport_conn *tc)
{
	free(c->buf);
	tls_conn_free(c->tls);
	*fd = tc->fd;
	*c = (struct conn_src){
		.fd = fd, .buf = tc->buf, .len = tc->len, .tls = tc->tls_conn
	};
}

/* Before the socket is closed. */
static void conn_src_free(struct conn_src *c)
{
	free(c->buf);
	c->buf = NULL;
	c->len = c->pos = 0;
	tls_conn_free(c->tls);
	c->tls = NULL;
}

/* The main connection, which several threads read and write, goes
 * through a TLS relay (tls.h): c->fd becomes its plain end.  On failure
 * the connection is closed. */
static int conn_relay(struct transport_conn *c, struct ferry_error *err)
{
	int rc;

	if (!c->tls_conn)
		return 0;
	rc = tls_conn_relay(c->tls_conn, &c->fd, err);
	c->tls_conn = NULL;
	if (rc) {
		close(c->fd);
		c->fd = -1;
		free(c->buf);
		c->buf = NULL;
	}
	return rc;
}

/* How long a connection has for its stream head: net-timeout. */
static int head_ms(struct ferry_migration *m)
{
	struct ferry_mig_params p;

	ferry_migration_get_params(m, &p);
	if (!p.net_timeout_ms)
		return HEAD_MS;
	return p.net_timeout_ms > INT32_MAX ? INT32_MAX : (int)p.net_timeout_ms;
}

/* A connection closed unserved: counted, and the last reason kept for
 * query-migrate (and so for ferry run's log). */
void mig_refused(void *opaque, const char *peer, const char *why)
{
	struct ferry_migration *m = opaque;
	struct ferry_error e = { .code = -EPROTO };

	snprintf(e.msg, sizeof(e.msg), "%s", why);
	mig_explain_offset(&e, NULL);
	ferry_error_prefix(&e, "%s: ", peer);
	pthread_mutex_lock(&m->lock);
	m->stats.refused++;
	memcpy(m->stats.refused_reason, e.msg, sizeof(e.msg));
	pthread_mutex_unlock(&m->lock);
}

/* What a connection's head says. */
struct head {
	uint32_t flags;
	bool channel; /* a channel record came */
	uint64_t session;
	uint8_t token[FERRY_STREAM_TOKEN_LEN];
	unsigned index, count;
};

/* The migration the main connection started: its id tells sessions
 * apart, its token (never logged) lets an extra connection in. */
struct session {
	uint64_t id;
	uint8_t token[FERRY_STREAM_TOKEN_LEN];
};

/* The head carries this session's token: compared in constant time, so
 * the time a refusal takes says nothing of how much of it was right. */
static bool token_ok(const struct head *h, const struct session *s)
{
	return CRYPTO_memcmp(h->token, s->token, FERRY_STREAM_TOKEN_LEN) == 0;
}

/* Parse the stream head in what a connection sent so far: 0 when whole,
 * TRANSPORT_HEAD_MORE, or a negative errno.  The configuration is only
 * checked for its form here; whether it fits this guest is the
 * migration's business (and its failure, with a verdict). */
static int parse_head(const uint8_t *buf, size_t len, struct head *h,
		      struct ferry_error *err)
{
	static const char magic[8] = "FERRYMIG";
	struct ferry_stream_memsrc ms = { .data = buf, .len = len };
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	int rc;

	if (memcmp(buf, magic, len < 8 ? len : 8))
		return ferry_error_set(err, -EILSEQ,
				       "not a migration stream (no FERRYMIG "
				       "magic)");
	rc = ferry_stream_decoder_new(ferry_stream_source_mem(&ms), &d);
	if (rc)
		return ferry_error_set(err, rc, "out of memory");
	*h = (struct head){ 0 };
	rc = ferry_stream_read_header(d, &h->flags, err);
	h->channel = h->flags &
		     (FERRY_STREAM_F_MULTIFD | FERRY_STREAM_F_POSTCOPY);
	if (!rc && h->channel) {
		rc = ferry_stream_decoder_next(d, &rec, err);
		h->session = rec.u.channel.session;
		h->index = rec.u.channel.index;
		h->count = rec.u.channel.count;
		memcpy(h->token, rec.u.channel.token, sizeof(h->token));
	}
	if (!rc) /* the configuration */
		rc = ferry_stream_decoder_next(d, &rec, err);
	ferry_stream_decoder_free(d);
	return rc == -ENODATA ? TRANSPORT_HEAD_MORE : rc;
}

/* The main connection: a head that starts a migration.  A page
 * channel's head waits (held) for the channels' turn. */
static int judge_main(void *opaque, const uint8_t *buf, size_t len,
		      struct ferry_error *err)
{
	struct head h;
	int rc = parse_head(buf, len, &h, err);

	(void)opaque;
	if (rc)
		return rc;
	if (h.flags & FERRY_STREAM_F_RESUME)
		return ferry_error_set(err, -EPROTO,
				       "it resumes a post-copy, and none is "
				       "paused here");
	return h.channel && h.index ? TRANSPORT_HEAD_HOLD : TRANSPORT_HEAD_TAKE;
}

/* Page channels: those of this migration, each once. */
struct chan_judge {
	const struct session *s;
	unsigned n;
	bool resume; /* post-copy recovery's */
	const bool *seen;
	unsigned index; /* of the one taken */
};

/* A page channel's head, parsed: this migration's, a channel not seen. */
static int judge_head(struct chan_judge *j, const struct head *hp,
		      struct ferry_error *err)
{
	const struct head h = *hp;
	bool ours;

	if (!h.channel || h.index == 0)
		return ferry_error_set(err, -EPROTO,
				       "the head of a main connection while "
				       "this migration's page channels join");
	ours = !(h.flags & FERRY_STREAM_F_RESUME) == !j->resume &&
	       h.session == j->s->id;
	if (ours && !token_ok(&h, j->s))
		return ferry_error_set(err, -EACCES,
				       "a channel record with the session's "
				       "id but the wrong token");
	if (!ours || h.count != j->n)
		return ferry_error_set(err, -EPROTO,
				       "a connection for channel %u of %u of "
				       "another migration (this one has %u "
				       "channels)",
				       h.index, h.count, j->n);
	if (j->seen[h.index - 1])
		return ferry_error_set(err, -EPROTO,
				       "channel %u connected twice", h.index);
	j->index = h.index;
	return TRANSPORT_HEAD_TAKE;
}

static int judge_channel(void *opaque, const uint8_t *buf, size_t len,
			 struct ferry_error *err)
{
	struct head h;
	int rc = parse_head(buf, len, &h, err);

	return rc ? rc : judge_head(opaque, &h, err);
}

/* Post-copy recovery's main connection: it resumes this session. */
static int judge_resume(void *opaque, const uint8_t *buf, size_t len,
			struct ferry_error *err)
{
	const struct session *s = opaque;
	struct head h;
	int rc = parse_head(buf, len, &h, err);

	if (rc)
		return rc;
	if (!(h.flags & FERRY_STREAM_F_RESUME))
		return ferry_error_set(err, -EPROTO,
				       "post-copy recovery: the connection "
				       "does not resume a post-copy (header "
				       "flags 0x%x)",
				       h.flags);
	if (h.session == s->id && !token_ok(&h, s))
		return ferry_error_set(err, -EACCES,
				       "post-copy recovery: a channel record "
				       "with the session's id but the wrong "
				       "token");
	if (h.count != 1 || h.session != s->id || h.index > 1)
		return ferry_error_set(err, -EPROTO,
				       "post-copy recovery: a connection for "
				       "channel %u of %u of another migration",
				       h.index, h.count);
	return h.index ? TRANSPORT_HEAD_HOLD : TRANSPORT_HEAD_TAKE;
}

static int open_decoder(const struct ferry_vm *vm, struct conn_src *src,
			struct ferry_stream_decoder **d, uint32_t *flags,
			struct ferry_error *err)
{
	int rc = ferry_stream_decoder_new(
		(struct ferry_stream_source){ .read = conn_read,
					      .opaque = src },
		d);

	if (rc)
		return ferry_error_set(err, rc, "out of memory");
	ferry_stream_decoder_match_ram(*d, vm->page_size, vm->blocks,
				       vm->nblocks);
	return ferry_stream_read_header(*d, flags, err);
}

/* Accept and start the page channels the main connection announced;
 * the screen refuses any other connection meanwhile. */
static int open_channels(struct ferry_migration *m, struct transport_screen *sc,
			 const struct receiver *main,
			 const struct session *session, bool urgent,
			 bool resume, struct rx *rx, unsigned n,
			 struct ferry_error *err)
{
	const struct ferry_vm *vm = m->vm;
	struct ferry_stream_record rec;
	bool seen[FERRY_STREAM_MAX_CHANNELS] = { false };
	struct chan_judge j = {
		.s = session, .n = n, .resume = resume, .seen = seen
	};
	/* all of them within net-timeout (10 s when that is 0) */
	int window_ms = head_ms(m);
	uint64_t until = mig_now_ns() + (uint64_t)window_ms * 1000000ull;
	unsigned i, k;
	uint32_t flags;
	int rc;

	for (i = 0; i < n; i++) {
		struct rx *r = &rx[i]; /* in the order they connect */
		struct transport_conn c;
		uint64_t now = mig_now_ns();

		/* a transport's own streams (rdma's urgent one) are judged
		 * once read; a listener's connections before */
		rc = sc ? transport_screen_take(
				  sc, head_ms(m),
				  now < until ? (int)((until - now) / 1000000)
					      : 0,
				  &m->cancel, judge_channel, &j, &c, err)
			: m->arrival->channel(m, i, &c, err);
		if (rc == -ETIMEDOUT) {
			ferry_error_clear(err);
			return ferry_error_set(err, rc,
					       "%u of %u page channels "
					       "connected within %d ms",
					       i, n, window_ms);
		}
		if (rc)
			return rc;
		conn_src_set(&r->src, &r->fd, &c);
		atomic_store(&m->fds[1 + i], r->fd);
		/* as judged: the header, then this migration's channel */
		rc = open_decoder(vm, &r->src, &r->d, &flags, err);
		if (!rc)
			rc = ferry_stream_decoder_next(r->d, &rec, err);
		if (!rc && !sc) {
			struct head h = {
				.flags = flags,
				.channel = rec.type == FERRY_REC_CHANNEL,
				.session = rec.u.channel.session,
				.index = rec.u.channel.index,
				.count = rec.u.channel.count,
			};

			memcpy(h.token, rec.u.channel.token, sizeof(h.token));
			rc = judge_head(&j, &h, err);
			rc = rc == TRANSPORT_HEAD_TAKE ? 0 : rc;
			explicit_bzero(h.token, sizeof(h.token));
		}
		if (rc)
			return rc;
		k = rec.u.channel.index;
		seen[k - 1] = true;
		r->index = k;
		r->rcv.urgent = urgent && k == n; /* post-copy's answers */
	}
	for (i = 0; i < n; i++) {
		rx[i].m = m;
		rx[i].rcv.pl = main->pl;
		rx[i].rcv.tx = main->tx;
		rx[i].rcv.channel = rx[i].index;
		rx[i].first_fail = main->first_fail;
		rx[i].main_fd = main->tx->fd;
		rc = pthread_create(&rx[i].thread, NULL, rx_main, &rx[i]);
		if (rc)
			return ferry_error_set(err, -rc, "channel thread: %s",
					       strerror(rc));
		rx[i].live = true;
	}
	return 0;
}

/* Stop (on failure) and reap the channels; add up what they placed. */
static int close_channels(struct ferry_migration *m, struct rx *rx, unsigned n,
			  bool failed, struct placer_tally *t,
			  struct ferry_error *err)
{
	unsigned i, blame = n;
	int first = n && rx[0].first_fail ? atomic_load(rx[0].first_fail) : 0;
	int rc = 0;

	for (i = 0; failed && i < n; i++)
		if (rx[i].fd >= 0)
			shutdown(rx[i].fd, SHUT_RDWR);
	for (i = 0; i < n; i++)
		if (rx[i].live)
			pthread_join(rx[i].thread, NULL);
	/* the channel that failed first; the others failed after it (their
	 * connections were shut) */
	for (i = 0; i < n; i++)
		if (rx[i].live && rx[i].rc &&
		    (blame == n || (int)rx[i].index == first))
			blame = i;
	for (i = 0; i < n; i++) {
		t->duplicate += rx[i].rcv.t.duplicate;
		t->normal += rx[i].rcv.t.normal;
		t->unchanged += rx[i].rcv.t.unchanged;
		t->stale += rx[i].rcv.t.stale;
		ferry_stream_decoder_free(rx[i].d);
		conn_src_free(&rx[i].src);
		atomic_store(&m->fds[1 + i], -1);
		mig_note_tls_fault(m, rx[i].fd);
		if (rx[i].fd >= 0)
			close(rx[i].fd);
	}
	if (blame < n)
		rc = ferry_error_set(err, rx[blame].rc, "channel %u: %s",
				     rx[blame].index,
				     ferry_error_msg(&rx[blame].err));
	free(rx);
	return rc;
}

static void publish(struct ferry_migration *m, const struct placer_tally *t,
		    uint64_t bytes)
{
	pthread_mutex_lock(&m->lock);
	m->stats.duplicate = t->duplicate;
	m->stats.normal = t->normal;
	m->stats.normal_bytes = t->normal * m->vm->page_size;
	m->stats.unchanged = t->unchanged;
	m->stats.stale = t->stale;
	m->stats.transferred = bytes;
	pthread_mutex_unlock(&m->lock);
}

static int check_digest(struct ferry_migration *m, struct page_hashes *ph,
			const struct ferry_buf *saved,
			const struct ferry_stream_record *end,
			struct ferry_error *err)
{
	uint8_t digest[16];
	char a[33], b[33];
	int rc = ferry_vm_digest_saved(m->vm, ph->h, saved, digest, err);

	if (rc)
		return rc;
	pthread_mutex_lock(&m->lock);
	m->stats.verified = memcmp(digest, end->u.end.digest, 16) ? -1 : 1;
	pthread_mutex_unlock(&m->lock);
	if (!memcmp(digest, end->u.end.digest, 16))
		return 0;
	ferry_digest_hex(end->u.end.digest, a);
	ferry_digest_hex(digest, b);
	return ferry_error_set(err, -EBADMSG,
			       "digest mismatch: the source's RAM and device "
			       "state hash to %s, what arrived hashes to %s; "
			       "%s",
			       a, b,
			       saved ? "the guest, already running in "
				       "post-copy, is stopped"
				     : "the guest is not resumed");
}

/*
 * The switch to post-copy: every device section is loaded; keep each as
 * loaded for the digest, catch faults on the dropped pages, place pages
 * ourselves from now on, and let the guest run.
 */
static int postcopy_run(struct ferry_migration *m,
			struct ferry_stream_decoder *d, struct pc_in *pc,
			atomic_int *running, struct ferry_buf *saved,
			const bool *loaded, struct ferry_error *err)
{
	const struct ferry_vm *vm = m->vm;
	const struct ferry_stream_config *c = ferry_stream_decoder_config(d);
	size_t i, j;
	int rc;

	for (i = 0; i < vm->nsections; i++)
		if (!loaded[i])
			return ferry_error_set(err, -ENODATA,
					       "post-copy began without device "
					       "section %s.%u",
					       vm->sections[i].name,
					       vm->sections[i].instance);
	for (i = 0; i < vm->nblocks; i++)
		for (j = 0; j < c->nblocks; j++)
			if (!strcmp(c->blocks[j].name, vm->blocks[i].name))
				pc->src_id[i] = c->blocks[j].id;
	for (i = 0; i < vm->nsections; i++) {
		rc = vm->sections[i].save(vm->sections[i].opaque, &saved[i]);
		if (rc)
			return ferry_error_set(err, rc,
					       "saving device %s.%u for the "
					       "digest: %s",
					       vm->sections[i].name,
					       vm->sections[i].instance,
					       strerror(-rc));
	}
	rc = pc_in_start(pc, err);
	if (rc)
		return rc;
	atomic_store(running, 1);
	if (vm->runctl.stall_us)
		vm->runctl.stall_us(vm->runctl.opaque, true);
	vm->runctl.resume(vm->runctl.opaque);
	rp_send_running(pc->tx);
	pthread_mutex_lock(&m->lock);
	m->stats.postcopy = true;
	m->stats.resume_ms = (mig_now_ns() - m->t_start_ns) / 1000000;
	pthread_mutex_unlock(&m->lock);
	mig_set_state(m, FERRY_MIG_ACTIVE, FERRY_MIG_POSTCOPY_ACTIVE);
	return 0;
}

/* Errors of the link or the stream on it, which a new connection mends;
 * not those of this side (memory, placement). */
static bool mendable(int rc)
{
	switch (-rc) {
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
	case ENOTCONN:
	case ESHUTDOWN:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ENETDOWN:
	case EIO:
	case ENODATA: /* the stream ended early */
	case EBADMSG: /* garbage on the wire: nothing of it was placed */
	case EPROTO:
		return true;
	default:
		return false;
	}
}

/* Accept the source's connections after a pause, and tell it which pages
 * are here. */
static int accept_again(struct ferry_migration *m, struct rp_tx *tx,
			struct pc_in *pc, const struct receiver *main,
			const struct session *session, int *fd,
			struct conn_src *src, struct ferry_stream_decoder **d,
			struct rx **rx, unsigned *nchan,
			struct ferry_error *err)
{
	struct ferry_stream_record rec;
	struct transport_screen sc;
	struct transport_conn c;
	uint32_t flags = 0;
	int rc;

	/* until the source comes, a cancel, or migrate-pause (back to
	 * postcopy-paused, for another migrate-recover); others are
	 * refused */
	transport_screen_init(&sc, m->listen_fd, m->tls, mig_refused, m);
	do {
		ferry_error_clear(err);
		rc = transport_screen_take(&sc, head_ms(m), 200, &m->cancel,
					   judge_resume, (void *)session, &c,
					   err);
	} while (rc == -ETIMEDOUT && !atomic_load(&m->pause_req));
	if (rc == -ETIMEDOUT)
		rc = ferry_error_set(err, -ECONNABORTED,
				     "migrate-pause before the source "
				     "connected");
	if (!rc)
		rc = conn_relay(&c, err);
	if (!rc) {
		conn_src_set(src, fd, &c);
		atomic_store(&m->fds[0], *fd);
		if (c.tls.on)
			mig_tls_stats(m, &c.tls);
		rc = open_decoder(m->vm, src, d, &flags, err);
	}
	if (!rc) /* this session's, as judged */
		rc = ferry_stream_decoder_next(*d, &rec, err);
	if (!rc) {
		/* the channel threads' main_fd, and the fault thread's
		 * requests: from now on, this connection */
		rp_tx_set_fd(tx, *fd);
		*rx = calloc(1, sizeof(**rx));
		if (!*rx)
			rc = ferry_error_set(err, -ENOMEM, "out of memory");
	}
	if (!rc) {
		(*rx)[0].fd = -1;
		*nchan = 1;
		rc = open_channels(m, &sc, main, session, true, true, *rx, 1,
				   err);
	}
	transport_screen_close(&sc, "the post-copy recovery has its "
				    "connections");
	close(m->listen_fd);
	m->listen_fd = -1;
	/* the first connection's pages beside the stream (rdma) are over:
	 * its figures stay, its connection goes */
	if (!rc && m->arrival->close)
		m->arrival->close(m);
	if (!rc)
		rc = pc_in_resume(pc, err);
	return rc;
}

/*
 * Post-copy, the link broke: drop the connection, pause until
 * migrate-recover gives a new uri, and pause again if the new connection
 * fails too.  0 once post-copy goes on.
 */
static int recover(struct ferry_migration *m, struct rp_tx *tx,
		   struct pc_in *pc, struct receiver *main,
		   const struct session *session, int *fd, struct conn_src *src,
		   struct ferry_stream_decoder **d, struct rx **rx,
		   unsigned *nchan, struct ferry_error *err)
{
	struct ferry_error cause = *err;
	int rc;

	for (;;) {
		rp_tx_set_fd(tx, -1);
		atomic_store(&m->fds[0], -1);
		ferry_stream_decoder_free(*d);
		*d = NULL;
		conn_src_free(src);
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		ferry_error_clear(err);
		rc = mig_pause(m, &cause, err);
		if (rc)
			return rc;
		rc = accept_again(m, tx, pc, main, session, fd, src, d, rx,
				  nchan, err);
		if (!rc) {
			mig_recovered(m);
			return 0;
		}
		if (*rx) {
			struct ferry_error e = { 0 };

			close_channels(m, *rx, *nchan, true, &main->t, &e);
			*rx = NULL;
		}
		if (rc == -ENOMEM)
			return rc;
		cause = *err;
	}
}

/* A migration's reception, on the engine's thread. */
struct dest {
	struct ferry_migration *m;
	const struct ferry_vm *vm;
	struct rp_tx *tx;
	int fd; /* the main connection, after any recovery */
	struct conn_src src;
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec; /* the last: at the end, the end */
	uint32_t flags;			/* the stream header's */
	struct ferry_mig_params p;
	struct page_hashes ph;
	struct placer pl;
	struct receiver rcv; /* the main connection's */
	atomic_int first_fail;
	struct pc_in pc;
	bool pc_inited;
	atomic_int running;	 /* post-copy runs */
	struct ferry_buf *saved; /* post-copy: device sections as loaded */
	bool *loaded;		 /* [section] */
	struct rx *rx;		 /* the page channels' receivers */
	unsigned nchan;
	uint64_t n;	/* pages of the main connection */
	uint64_t bytes; /* stream bytes of lost connections */
	struct session sess;
	bool resumed; /* after a post-copy recovery */
	bool lazy;    /* a lazy restore (mapped_in.c) */
};

/* Set up to read the stream: hashes, placer, the main connection's
 * decoder, post-copy's maps and the page channels; then no connection
 * more is taken. */
static int dest_open(struct dest *x, struct transport_screen *sc,
		     const struct transport_conn *conn, struct ferry_error *err)
{
	struct ferry_migration *m = x->m;
	const struct ferry_vm *vm = x->vm;
	struct ferry_stream_record rec;
	unsigned i;
	int rc;

	ferry_migration_get_params(m, &x->p);
	conn_src_set(&x->src, &x->fd, conn);
	x->loaded = calloc(vm->nsections + 1, sizeof(bool));
	/* page hashes, whether or not verify is on here: the source may
	 * send a digest, and then it is checked */
	rc = x->loaded ? page_hashes_init(&x->ph, vm, err)
		       : ferry_error_set(err, -ENOMEM, "out of memory");
	if (!rc)
		rc = placer_init(&x->pl, vm, &x->ph, &x->pc, &x->running, err);
	if (!rc)
		rc = open_decoder(vm, &x->src, &x->d, &x->flags, err);
	if (!rc && !(x->flags & FERRY_STREAM_F_MAPPED) !=
			   (m->arrival != &arrival_mapped))
		rc = ferry_error_set(
			err, -EPROTO, "%s",
			m->arrival == &arrival_mapped
				? "the file's header says mapped-ram, but its "
				  "stream does not: not one save"
				: "the stream's pages are at fixed places in a "
				  "mapped-ram file, and it did not come from "
				  "one");
	/* a lazy restore runs the guest on post-copy's machinery */
	x->lazy = !rc && m->arrival == &arrival_mapped && x->p.lazy_restore;
	if (!rc && ((x->flags & FERRY_STREAM_F_POSTCOPY) || x->lazy)) {
		x->saved = calloc(vm->nsections + 1, sizeof(*x->saved));
		rc = x->saved ? pc_in_init(&x->pc, vm, x->tx, err)
			      : ferry_error_set(err, -ENOMEM, "out of memory");
		x->pc_inited = !rc;
	}
	if (!rc &&
	    (x->flags & (FERRY_STREAM_F_MULTIFD | FERRY_STREAM_F_POSTCOPY))) {
		rc = ferry_stream_decoder_next(x->d, &rec, err);
		if (!rc && rec.u.channel.index != 0)
			rc = ferry_error_set(err, -EPROTO,
					     "the first connection is page "
					     "channel %u, not the main one",
					     rec.u.channel.index);
		x->nchan = rc ? 0 : rec.u.channel.count;
		x->sess.id = rec.u.channel.session;
		memcpy(x->sess.token, rec.u.channel.token,
		       sizeof(x->sess.token));
		explicit_bzero(rec.u.channel.token,
			       sizeof(rec.u.channel.token));
		x->rx = calloc(x->nchan + 1, sizeof(*x->rx));
		for (i = 0; x->rx && i < x->nchan; i++)
			x->rx[i].fd = -1;
		if (!rc && !x->rx)
			rc = ferry_error_set(err, -ENOMEM, "out of memory");
		if (!rc && x->nchan && !sc && !m->arrival->channel)
			rc = ferry_error_set(err, -EPROTO,
					     "the source announced %u page "
					     "channels, and this connection "
					     "came alone (%s): there is no "
					     "listener to take them on",
					     x->nchan, m->uri);
		if (!rc)
			rc = open_channels(m, sc, &x->rcv, &x->sess,
					   x->flags & FERRY_STREAM_F_POSTCOPY,
					   false, x->rx, x->nchan, err);
	}
	if (sc) /* every connection is in */
		transport_screen_close(sc, "the migration has its "
					   "connections");
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	m->listen_fd = -1;
	return rc;
}

/* A page on the main connection. */
static int dest_page(struct dest *x, struct ferry_error *err)
{
	struct ferry_migration *m = x->m;
	int rc;

	if (x->nchan > (x->flags & FERRY_STREAM_F_POSTCOPY ? 1u : 0u) &&
	    !atomic_load(&x->running))
		return ferry_error_set(err, -EPROTO,
				       "stream offset %" PRIu64
				       ": a page on the main connection of a "
				       "multifd migration",
				       x->rec.stream_offset);
	rc = placed(&x->rcv, &x->rec, err);
	if ((++x->n & 4095) == 0) {
		publish(m, &x->rcv.t,
			x->bytes + ferry_stream_decoder_offset(x->d));
		if (atomic_load(&x->running)) {
			/* post-copy's figures, while it runs */
			pthread_mutex_lock(&m->lock);
			pc_in_stats(&x->pc, &m->stats);
			pthread_mutex_unlock(&m->lock);
		}
	}
	return rc;
}

static int dest_device(struct dest *x, struct ferry_error *err)
{
	const struct ferry_stream_record *rec = &x->rec;
	const struct ferry_section *s;
	size_t idx;

	s = find_section(x->vm, rec->u.device.name, rec->u.device.instance,
			 &idx);
	if (!s)
		return ferry_error_set(err, -ENOENT,
				       "stream offset %" PRIu64
				       ": device section %s.%u does not exist "
				       "in this guest",
				       rec->stream_offset, rec->u.device.name,
				       rec->u.device.instance);
	x->loaded[idx] = true;
	return s->load(s->opaque, rec->u.device.version, rec->u.device.data,
		       rec->u.device.len, err);
}

/* The main connection's records until the end of stream or a failure. */
static int dest_records(struct dest *x, bool *ran, struct ferry_error *err)
{
	struct ferry_stream_record *rec = &x->rec;
	int rc;

	for (;;) {
		rc = ferry_stream_decoder_next(x->d, rec, err);
		if (rc || rec->type == FERRY_REC_END)
			return rc;
		if (x->resumed && rec->type != FERRY_REC_PAGE &&
		    rec->type != FERRY_REC_CONFIG)
			return ferry_error_set(
				err, -EPROTO,
				"stream offset %" PRIu64 ": a %s record after "
				"a post-copy recovery",
				rec->stream_offset,
				ferry_record_type_name(rec->type));
		switch (rec->type) {
		case FERRY_REC_PAGE:
			rc = dest_page(x, err);
			break;
		case FERRY_REC_SYNC:
			rc = synced(&x->rcv, rec->u.sync.seq, err);
			break;
		case FERRY_REC_DEVICE:
			rc = dest_device(x, err);
			break;
		case FERRY_REC_DISCARD:
			if (x->m->arrival->quiesce)
				x->m->arrival->quiesce(x->m);
			rc = placer_discard(&x->pl, rec->u.discard.ranges,
					    rec->u.discard.n, err);
			break;
		case FERRY_REC_LANDED:
			if (!x->m->arrival->landed)
				return ferry_error_set(
					err, -EPROTO,
					"stream offset %" PRIu64
					": a landed record, but pages "
					"come in the stream on this "
					"connection",
					rec->stream_offset);
			x->m->arrival->landed(x->m, &x->ph,
					      rec->u.discard.ranges,
					      rec->u.discard.n);
			break;
		case FERRY_REC_POSTCOPY:
			if (x->m->arrival->quiesce)
				x->m->arrival->quiesce(x->m);
			rc = postcopy_run(x->m, x->d, &x->pc, &x->running,
					  x->saved, x->loaded, err);
			*ran = !rc;
			break;
		case FERRY_REC_ITER_END:
			pthread_mutex_lock(&x->m->lock);
			x->m->stats.iterations = rec->u.iter.iteration + 1;
			pthread_mutex_unlock(&x->m->lock);
			break;
		default:
			break;
		}
		if (rc)
			return rc;
	}
}

/* Reap the page channels (stopping them if rc failed); a channel that
 * failed first explains the main connection's failure. */
static int dest_reap(struct dest *x, int rc, struct ferry_error *err)
{
	struct ferry_error cerr = { 0 };
	int crc;

	if (rc) /* unless a channel failed first, the main connection did */
		atomic_compare_exchange_strong(&x->first_fail, &(int){ 0 }, -1);
	if (!x->rx)
		return rc;
	crc = close_channels(x->m, x->rx, x->nchan, rc != 0, &x->rcv.t, &cerr);
	x->rx = NULL;
	if (crc && (!rc || atomic_load(&x->first_fail) > 0)) {
		ferry_error_clear(err);
		rc = ferry_error_set(err, crc, "%s", cerr.msg);
	}
	return rc;
}

/* The stream is over (rc: how): post-copy's last pages, the figures, the
 * checks of the end of stream and the digest; everything freed. */
static int dest_close(struct dest *x, int rc, bool ran, struct ferry_error *err)
{
	struct ferry_migration *m = x->m;
	const struct ferry_vm *vm = x->vm;
	const struct ferry_stream_record *rec = &x->rec;
	unsigned i;

	if (!rc && atomic_load(&x->running))
		rc = pc_in_wait_all(&x->pc, 0, err);
	publish(m, &x->rcv.t,
		x->bytes + (x->d ? ferry_stream_decoder_offset(x->d) : 0));
	if (x->pc_inited) {
		pthread_mutex_lock(&m->lock);
		pc_in_stats(&x->pc, &m->stats);
		pthread_mutex_unlock(&m->lock);
		pc_in_free(&x->pc); /* also wakes any vCPU still waiting */
	}
	placer_free(&x->pl);
	ferry_stream_decoder_free(x->d);
	conn_src_free(&x->src);
	for (i = 0; !rc && i < vm->nsections; i++)
		if (!x->loaded[i])
			rc = ferry_error_set(err, -ENODATA,
					     "the stream ended without device "
					     "section %s.%u",
					     vm->sections[i].name,
					     vm->sections[i].instance);
	free(x->loaded);
	if (!rc && rec->u.end.stopped && ran)
		rc = ferry_error_set(err, -EPROTO,
				     "the end of stream says the source's "
				     "guest was stopped, but it already runs "
				     "here in post-copy");
	if (!rc && rec->u.end.stopped) {
		pthread_mutex_lock(&m->lock);
		m->stats.arrived_stopped = true;
		pthread_mutex_unlock(&m->lock);
	}
	if (!rc && !rec->u.end.has_digest && x->p.verify)
		rc = ferry_error_set(err, -EPROTO,
				     "the source sent no digest but 'verify' "
				     "is on here");
	if (!rc && m->arrival->settle) /* pages landed beside the stream */
		rc = m->arrival->settle(m, &x->ph,
					rec->u.end.has_digest &&
						!(x->flags &
						  FERRY_STREAM_F_LANDED),
					err);
	if (!rc && rec->u.end.has_digest)
		rc = check_digest(m, &x->ph, ran ? x->saved : NULL, rec, err);
	page_hashes_free(&x->ph, vm);
	for (i = 0; x->saved && i < vm->nsections; i++)
		ferry_buf_free(&x->saved[i]);
	free(x->saved);
	explicit_bzero(x->sess.token, sizeof(x->sess.token));
	return rc;
}

/*
 * A lazy restore, once the stream has ended: the devices as loaded kept
 * for the digest, all of RAM dropped and watched by userfaultfd, the
 * guest run at once; its faults are served from the file, background
 * readers place the rest (mapped_in.c), and every page is placed before
 * the digest is checked, as after post-copy.  A guest saved stopped is
 * restored whole instead: nothing would run meanwhile.
 */
static int lazy_run(struct dest *x, bool *ran, struct ferry_error *err)
{
	struct ferry_error ignored = { 0 }; /* after the first failure */
	struct ferry_migration *m = x->m;
	const struct ferry_vm *vm = x->vm;
	struct ferry_stream_range r;
	size_t i;
	int rc = 0, frc;

	if (x->rec.u.end.stopped) {
		x->lazy = false;
		return 0;
	}
	for (i = 0; !rc && i < vm->nsections; i++) {
		if (!x->loaded[i])
			return 0; /* dest_close says which */
		rc = vm->sections[i].save(vm->sections[i].opaque, &x->saved[i]);
		if (rc)
			rc = ferry_error_set(err, rc,
					     "saving device %s.%u for the "
					     "digest: %s",
					     vm->sections[i].name,
					     vm->sections[i].instance,
					     strerror(-rc));
	}
	for (i = 0; !rc && i < vm->nblocks; i++) {
		r = (struct ferry_stream_range){
			.ram_index = (uint32_t)i,
			.count = vm->blocks[i].length / vm->page_size,
		};
		rc = placer_discard(&x->pl, &r, 1, err); /* all missing */
	}
	if (!rc) /* faults go to the file from the first */
		rc = mapped_in_lazy_prepare(m, &x->pl, &x->pc, err);
	if (!rc)
		rc = pc_in_start(&x->pc, err);
	if (rc)
		return rc;
	/* from here the placer places atomically, each page once */
	atomic_store(&x->running, 1);
	rc = mapped_in_lazy_start(m, err);
	if (!rc) {
		if (vm->runctl.stall_us)
			vm->runctl.stall_us(vm->runctl.opaque, true);
		vm->runctl.resume(vm->runctl.opaque);
		*ran = true;
		pthread_mutex_lock(&m->lock);
		m->stats.postcopy = true;
		m->stats.resume_ms = (mig_now_ns() - m->t_start_ns) / 1000000;
		pthread_mutex_unlock(&m->lock);
		mig_set_state(m, FERRY_MIG_ACTIVE, FERRY_MIG_POSTCOPY_ACTIVE);
	}
	frc = mapped_in_lazy_finish(m, rc ? &ignored : err);
	if (!rc)
		rc = frc;
	/* the last placements of the fault thread, if it raced a reader */
	if (!rc)
		rc = pc_in_wait_all(&x->pc, 60000, err);
	return rc;
}

static int receive(struct ferry_migration *m, struct transport_screen *sc,
		   const struct transport_conn *conn, struct rp_tx *tx,
		   bool *ran, struct ferry_error *err)
{
	struct dest x = { .m = m,
			  .vm = m->vm,
			  .tx = tx,
			  .fd = tx->fd,
			  .pc = { .uffd = -1, .quit_fd = -1 },
			  .pl = { .pidfd = -1 } };
	int rc;

	x.src.fd = &x.fd;
	x.rcv = (struct receiver){ .pl = &x.pl,
				   .tx = tx,
				   .first_fail = &x.first_fail };
	rc = dest_open(&x, sc, conn, err);
	for (;;) {
		if (!rc)
			rc = dest_records(&x, ran, err);
		rc = dest_reap(&x, rc, err);
		if (!rc || !atomic_load(&x.running) || !mendable(rc))
			break;
		/* post-copy: the guest runs here on what it has; wait for a
		 * new connection rather than lose it */
		x.bytes += x.d ? ferry_stream_decoder_offset(x.d) : 0;
		rc = recover(m, tx, &x.pc, &x.rcv, &x.sess, &x.fd, &x.src, &x.d,
			     &x.rx, &x.nchan, err);
		if (rc)
			break;
		x.resumed = true;
		atomic_store(&x.first_fail, 0);
	}
	if (!rc && x.lazy)
		rc = lazy_run(&x, ran, err);
	return dest_close(&x, rc, *ran, err);
}

static int stream_listen(struct ferry_migration *m, const char *uri,
			 const char *addr, char *bound, size_t len,
			 struct ferry_error *err)
{
	int fd = -1,
	    rc = transport_listen(uri, &fd, bound, len, &m->child, err);

	(void)addr;
	if (!rc)
		m->listen_fd = fd;
	return rc;
}

/* Until a connection delivers the head of a migration (the head's time
 * limit as net-timeout is now); the screen stays open for the page
 * channels. */
static int stream_accept(struct ferry_migration *m, struct transport_screen *sc,
			 struct transport_conn *c, struct ferry_error *err)
{
	int rc;

	transport_screen_init(sc, m->listen_fd, m->tls, mig_refused, m);
	do {
		ferry_error_clear(err);
		rc = transport_screen_take(sc, head_ms(m), 200, &m->cancel,
					   judge_main, NULL, c, err);
	} while (rc == -ETIMEDOUT);
	if (!rc)
		rc = conn_relay(c, err);
	if (rc) {
		transport_screen_close(sc, "the listener closed");
		close(m->listen_fd);
		m->listen_fd = -1;
	}
	return rc;
}

static void stream_close(struct ferry_migration *m)
{
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	m->listen_fd = -1;
	if (m->child > 0) /* exec:: the stream is read; it is done too */
		(void)transport_reap(m->child, m->uri, 5000, NULL);
	m->child = -1;
}

const struct page_arrival_ops arrival_stream = {
	.name = "stream",
	.listen = stream_listen,
	.screened = true,
	.accept = stream_accept,
	.close = stream_close,
};

/* A restore, or a connection passed in: the "listening" descriptor is the
 * connection itself (a file opened at its offset, a pipe, a socket); its
 * stream is checked like any other. */
static int given_accept(struct ferry_migration *m, struct transport_screen *sc,
			struct transport_conn *c, struct ferry_error *err)
{
	(void)sc, (void)err;
	*c = (struct transport_conn){ .fd = m->listen_fd };
	m->listen_fd = -1;
	return 0;
}

/* A restore: the file, and if it is a mapped-ram save, its header read
 * and the arrival that reads its pages. */
static int file_listen(struct ferry_migration *m, const char *uri,
		       const char *addr, char *bound, size_t len,
		       struct ferry_error *err)
{
	int rc = stream_listen(m, uri, addr, bound, len, err);

	if (rc || !mapped_in_probe(m->listen_fd))
		return rc;
	rc = mapped_in_open(m, m->listen_fd, err);
	if (rc) { /* the caller closes the file, unless it was given */
		ferry_error_prefix(err, "%s: ", uri);
		return rc;
	}
	m->arrival = &arrival_mapped;
	return 0;
}

static void mapped_close(struct ferry_migration *m)
{
	mapped_in_close(m);
	stream_close(m);
}

const struct page_arrival_ops arrival_mapped = {
	.name = "mapped",
	.listen = file_listen,
	.one_way = true,
	.accept = given_accept,
	.settle = mapped_in_settle,
	.close = mapped_close,
};

const struct page_arrival_ops arrival_file = {
	.name = "file",
	.listen = file_listen,
	.one_way = true,
	.accept = given_accept,
	.close = stream_close,
};

const struct page_arrival_ops arrival_given = {
	.name = "given",
	.listen = stream_listen,
	.accept = given_accept,
	.close = stream_close,
};

void *mig_incoming_main(void *arg)
{
	struct ferry_migration *m = arg;
	const struct ferry_vm *vm = m->vm;
	struct ferry_error err = { 0 };
	struct transport_screen sc, *scp = NULL;
	struct transport_conn c = { .fd = -1 };
	struct rp_tx tx;
	bool ran = false, stay_stopped;
	int fd = -1, rc;

	rc = mig_watch_start(m);
	if (rc) {
		ferry_error_set(&err, rc, "net-timeout thread: %s",
				strerror(-rc));
		goto fail;
	}
	rc = m->arrival->accept(m, &sc, &c, &err);
	if (rc)
		goto fail;
	scp = m->arrival->screened ? &sc : NULL;
	fd = c.fd;
	atomic_store(&m->fds[0], fd);
	if (c.tls.on)
		mig_tls_stats(m, &c.tls);
	rp_tx_init(&tx, m->arrival->one_way ? -1 : fd);
	pthread_mutex_lock(&m->lock);
	m->t_start_ns = mig_now_ns(); /* total-time counts from here */
	pthread_mutex_unlock(&m->lock);
	if (!mig_set_state(m, FERRY_MIG_SETUP, FERRY_MIG_ACTIVE)) {
		rc = ferry_error_set(&err, -ECANCELED, "cancelled");
		if (scp)
			transport_screen_close(scp, "the listener closed");
		if (m->listen_fd >= 0)
			close(m->listen_fd);
		m->listen_fd = -1;
		free(c.buf);
		goto fail;
	}
	rc = receive(m, scp, &c, &tx, &ran, &err);
	if (rc && ran) {
		/* post-copy: the guest ran here, and now cannot go on */
		struct ferry_error e = err;

		vm->runctl.stop(vm->runctl.opaque);
		ferry_error_clear(&err);
		ferry_error_set(&err, rc,
				"%s failed while the guest ran here (%s): the "
				"guest is stopped",
				m->arrival == &arrival_mapped
					? "the lazy restore"
					: "post-copy",
				ferry_error_msg(&e));
	}
	if (rc)
		goto fail;
	pthread_mutex_lock(&m->lock);
	stay_stopped = m->stats.arrived_stopped;
	pthread_mutex_unlock(&m->lock);
	if (!ran && !stay_stopped) {
		if (vm->runctl.stall_us)
			vm->runctl.stall_us(vm->runctl.opaque, true);
		vm->runctl.resume(vm->runctl.opaque);
	}
	rp_send_result(&tx, 0, stay_stopped ? "arrived stopped" : "resumed");
	if (!mig_set_state(m, FERRY_MIG_ACTIVE, FERRY_MIG_COMPLETED))
		mig_set_state(m, FERRY_MIG_POSTCOPY_ACTIVE,
			      FERRY_MIG_COMPLETED);
	goto out;
fail:
	if (m->arrival->explain)
		m->arrival->explain(m, &err);
	/* the verdict names a stall too; a post-copy recovery may have lost
	 * the connection to send it on */
	mig_explain_tls(m, &err);
	mig_explain_stall(m, &err);
	mig_explain_offset(&err,
			   m->arrival->one_way ? "the saved stream" : NULL);
	if (m->child > 0) { /* exec:: what its command did says more */
		struct ferry_error ce = { 0 };

		if (transport_reap(m->child, m->uri, 2000, &ce))
			ferry_error_prefix(&err, "%s; then ", ce.msg);
		m->child = -1;
	}
	if (fd >= 0 && tx.fd >= 0)
		rp_fail_peer(&tx, -rc, ferry_error_msg(&err));
	mig_fail(m, &err);
out:
	atomic_store(&m->fds[0], -1);
	if (fd >= 0) {
		/* the connection now, after any post-copy recovery */
		if (tx.fd >= 0)
			close(tx.fd);
		else if (m->arrival->one_way)
			close(fd);
		rp_tx_destroy(&tx);
	}
	if (m->arrival->close) /* after the verdict went out */
		m->arrival->close(m);
	mig_watch_stop(m);
	return NULL;
}
