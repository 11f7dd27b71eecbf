/*
 * migration.c - the migration object: states and their transitions,
 * parameters, statistics, start and cancel.  The work itself is in
 * outgoing.c and incoming.c, on the engine's own thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "arrival.h"
#include "migration_internal.h"
#include "rdma.h"
#include "tls.h"
#include "transport.h"

static const char *const state_names[] = {
	[FERRY_MIG_NONE] = "none",
	[FERRY_MIG_SETUP] = "setup",
	[FERRY_MIG_ACTIVE] = "active",
	[FERRY_MIG_DEVICE] = "device",
	[FERRY_MIG_COMPLETED] = "completed",
	[FERRY_MIG_FAILED] = "failed",
	[FERRY_MIG_CANCELLING] = "cancelling",
	[FERRY_MIG_CANCELLED] = "cancelled",
	[FERRY_MIG_POSTCOPY_ACTIVE] = "postcopy-active",
	[FERRY_MIG_POSTCOPY_PAUSED] = "postcopy-paused",
	[FERRY_MIG_POSTCOPY_RECOVER] = "postcopy-recover",
};

#define S(x) (1u << FERRY_MIG_##x)
/* allowed[from] = the states it may move to */
static const unsigned allowed[] = {
	[FERRY_MIG_NONE] = S(SETUP),
	[FERRY_MIG_SETUP] = S(ACTIVE) | S(FAILED) | S(CANCELLING),
	/* a destination goes from active straight to completed */
	[FERRY_MIG_ACTIVE] = S(DEVICE) | S(COMPLETED) | S(FAILED) |
			     S(CANCELLING) | S(POSTCOPY_ACTIVE),
	[FERRY_MIG_DEVICE] = S(COMPLETED) | S(FAILED) | S(CANCELLING),
	[FERRY_MIG_COMPLETED] = S(SETUP),
	[FERRY_MIG_FAILED] = S(SETUP),
	[FERRY_MIG_CANCELLING] = S(CANCELLED) | S(FAILED) | S(COMPLETED),
	[FERRY_MIG_CANCELLED] = S(SETUP),
	[FERRY_MIG_POSTCOPY_ACTIVE] = S(COMPLETED) | S(FAILED) |
				      S(POSTCOPY_PAUSED),
	[FERRY_MIG_POSTCOPY_PAUSED] = S(POSTCOPY_RECOVER) | S(FAILED),
	[FERRY_MIG_POSTCOPY_RECOVER] = S(POSTCOPY_ACTIVE) | S(POSTCOPY_PAUSED) |
				       S(FAILED),
};
#undef S

const char *ferry_mig_state_name(enum ferry_mig_state s)
{
	if ((unsigned)s < sizeof(state_names) / sizeof(state_names[0]))
		return state_names[s];
	return "unknown";
}

void mig_shut_connections(struct ferry_migration *m, int how)
{
	int fd, i;

	for (i = 0; i <= FERRY_STREAM_MAX_CHANNELS; i++) {
		fd = atomic_load(&m->fds[i]);
		if (fd >= 0)
			shutdown(fd, how);
	}
}

uint64_t mig_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void ferry_mig_params_default(struct ferry_mig_params *p)
{
	*p = (struct ferry_mig_params){
		.downtime_limit_ms = 300,
		.max_bandwidth = 0,
		.cpu_throttle_initial = 20,
		.cpu_throttle_increment = 10,
		.max_cpu_throttle = 99,
		.verify = true,
		.auto_converge = false,
		.multifd = false,
		.multifd_channels = 2,
		.compression = 0,
		.zstd_level = 1,
		.zlib_level = 1,
		.codec_auto = true,
		.defer_hot_pages = true,
		.xbzrle = false,
		.xbzrle_cache_size = 64ull << 20,
		.net_timeout_ms = 10000,
	};
}

bool mig_set_state(struct ferry_migration *m, enum ferry_mig_state from,
		   enum ferry_mig_state to)
{
	bool ok;

	pthread_mutex_lock(&m->lock);
	ok = m->stats.state == from && (allowed[from] & (1u << to));
	if (ok) {
		m->stats.state = to;
		if (to == FERRY_MIG_COMPLETED || to == FERRY_MIG_FAILED ||
		    to == FERRY_MIG_CANCELLED)
			m->stats.total_time_ms =
				(mig_now_ns() - m->t_start_ns) / 1000000;
	}
	pthread_mutex_unlock(&m->lock);
	if (ok && m->event_fn)
		m->event_fn(m->event_opaque, to);
	return ok;
}

enum ferry_mig_state mig_state(struct ferry_migration *m)
{
	enum ferry_mig_state s;

	pthread_mutex_lock(&m->lock);
	s = m->stats.state;
	pthread_mutex_unlock(&m->lock);
	return s;
}

void mig_explain_stall(struct ferry_migration *m, struct ferry_error *err)
{
	uint64_t ms;
	struct ferry_error e = *err;

	if (atomic_load(&m->cancel) == 1 || !atomic_load(&m->net_stalled_ms))
		return;
	ms = atomic_exchange(&m->net_stalled_ms, 0);
	ferry_error_clear(err);
	ferry_error_set(err, e.code ? e.code : -ETIMEDOUT,
			"no progress on the network for %llu ms "
			"(net-timeout): %s",
			(unsigned long long)ms, ferry_error_msg(&e));
}

void mig_explain_offset(struct ferry_error *err, const char *where)
{
	const char *msg = err->msg, *at = strstr(msg, "stream offset ");
	char out[sizeof(err->msg)];
	unsigned long long n;
	int len;

	if (!at || sscanf(at, "stream offset %llu%n", &n, &len) != 1 ||
	    at[len] == ' ')
		return; /* none, or said already */
	snprintf(out, sizeof(out), "%.*sstream offset %llu (byte %llu of %s)%s",
		 (int)(at - msg), msg, n, n,
		 where ? where : "what the peer sent on that connection",
		 at + len);
	memcpy(err->msg, out, sizeof(out));
}

void mig_fail(struct ferry_migration *m, const struct ferry_error *err)
{
	enum ferry_mig_state s = mig_state(m);
	struct ferry_error e = *err;

	if (atomic_load(&m->cancel) == 1 && s != FERRY_MIG_CANCELLING &&
	    mig_set_state(m, s, FERRY_MIG_CANCELLING))
		s = FERRY_MIG_CANCELLING;
	if (s != FERRY_MIG_CANCELLING) {
		mig_explain_tls(m, &e);
		mig_explain_stall(m, &e);
	}
	mig_explain_offset(&e, NULL);
	pthread_mutex_lock(&m->lock);
	if (!m->stats.error[0])
		snprintf(m->stats.error, sizeof(m->stats.error), "%s",
			 ferry_error_msg(&e));
	pthread_mutex_unlock(&m->lock);
	if (s == FERRY_MIG_CANCELLING)
		mig_set_state(m, s, FERRY_MIG_CANCELLED);
	else
		mig_set_state(m, s, FERRY_MIG_FAILED);
}

void mig_note_tls_fault(struct ferry_migration *m, int fd)
{
	char f[sizeof(m->tls_fault)];

	if (fd < 0 || !m->tls)
		return;
	tls_wire_fault(fd, f, sizeof(f));
	pthread_mutex_lock(&m->lock);
	if (f[0] && !m->tls_fault[0])
		snprintf(m->tls_fault, sizeof(m->tls_fault), "%s", f);
	pthread_mutex_unlock(&m->lock);
}

void mig_explain_tls(struct ferry_migration *m, struct ferry_error *err)
{
	char f[sizeof(m->tls_fault)];
	struct ferry_error e = *err;
	int i;

	for (i = 0; i <= FERRY_STREAM_MAX_CHANNELS; i++)
		mig_note_tls_fault(m, atomic_load(&m->fds[i]));
	pthread_mutex_lock(&m->lock);
	snprintf(f, sizeof(f), "%s", m->tls_fault);
	pthread_mutex_unlock(&m->lock);
	if (!f[0] || strstr(ferry_error_msg(err), f))
		return;
	ferry_error_clear(err);
	ferry_error_set_from(err, e.origin, e.code, "%s (%s)",
			     ferry_error_msg(&e), f);
}

void mig_tls_stats(struct ferry_migration *m, const struct tls_info *info)
{
	struct ferry_mig_stats *st = &m->stats;

	pthread_mutex_lock(&m->lock);
	st->tls = info->on;
	st->tls_ktls = info->ktls_send && info->ktls_recv;
	snprintf(st->tls_version, sizeof(st->tls_version), "%s", info->version);
	snprintf(st->tls_cipher, sizeof(st->tls_cipher), "%s", info->cipher);
	snprintf(st->tls_peer, sizeof(st->tls_peer), "%s", info->peer);
	pthread_mutex_unlock(&m->lock);
}

/* tls-creds for this migration's role, NULL without; refused on a
 * transport that cannot carry TLS (docs/rdma.md). */
static int load_tls(struct ferry_migration *m, const char *uri, bool server,
		    struct tls_creds **out, struct ferry_error *err)
{
	const struct transport_ops *t;
	struct ferry_mig_params p;
	const char *addr;
	char with[64];
	int rc;

	*out = NULL;
	ferry_migration_get_params(m, &p);
	if (!p.tls_creds[0]) {
		if (server && p.tls_authz[0])
			return ferry_error_set(err, -EINVAL,
					       "tls-authz is set but tls-creds "
					       "is not: a client certificate "
					       "needs TLS");
		return 0;
	}
	rc = transport_find(uri, &t, &addr, err);
	if (rc)
		return rc;
	if (!(t->caps & TRANSPORT_TLS)) {
		transport_schemes_with(TRANSPORT_TLS, with, sizeof(with));
		return ferry_error_set(err, -EINVAL,
				       "tls-creds is set, and %s: does not "
				       "carry TLS (%s; QEMU refuses this too): "
				       "use %s for an encrypted migration, or "
				       "clear tls-creds on a trusted fabric",
				       t->scheme, t->limits, with);
	}
	return tls_creds_load(p.tls_creds, server ? p.tls_authz : "", server,
			      out, err);
}

int ferry_migration_new(const struct ferry_vm *vm, struct ferry_migration **out,
			struct ferry_error *err)
{
	struct ferry_migration *m = calloc(1, sizeof(*m));
	size_t i;

	if (!m)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	m->vm = vm;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->watch_cond, NULL);
	pthread_cond_init(&m->recovery_cond, NULL);
	ferry_mig_params_default(&m->params);
	for (i = 0; i <= FERRY_STREAM_MAX_CHANNELS; i++)
		atomic_init(&m->fds[i], -1);
	m->listen_fd = -1;
	m->child = -1;
	*out = m;
	return 0;
}

void ferry_migration_on_event(struct ferry_migration *m, ferry_mig_event_fn fn,
			      void *opaque)
{
	m->event_fn = fn;
	m->event_opaque = opaque;
}

void ferry_migration_get_params(struct ferry_migration *m,
				struct ferry_mig_params *p)
{
	pthread_mutex_lock(&m->lock);
	*p = m->params;
	pthread_mutex_unlock(&m->lock);
}

void ferry_migration_set_params(struct ferry_migration *m,
				const struct ferry_mig_params *p)
{
	pthread_mutex_lock(&m->lock);
	m->params = *p;
	pthread_mutex_unlock(&m->lock);
}

static int begin(struct ferry_migration *m, const char *uri, bool incoming,
		 struct tls_creds *tls, void *(*fn)(void *),
		 struct ferry_error *err)
{
	enum ferry_mig_state s;
	uint64_t total = 0;
	size_t i;
	int rc;

	pthread_mutex_lock(&m->lock);
	s = m->stats.state;
	if (!incoming && m->stats.guest_away) {
		pthread_mutex_unlock(&m->lock);
		tls_creds_free(tls);
		return ferry_error_set(err, -EALREADY,
				       "the guest already migrated to %s and "
				       "may run there; this copy is out of "
				       "date and is not migrated again (cont "
				       "with force takes it back first)",
				       m->uri);
	}
	if (s != FERRY_MIG_NONE && s != FERRY_MIG_COMPLETED &&
	    s != FERRY_MIG_FAILED && s != FERRY_MIG_CANCELLED) {
		pthread_mutex_unlock(&m->lock);
		tls_creds_free(tls);
		return ferry_error_set(err, -EBUSY,
				       "a migration is already in progress "
				       "(state %s)",
				       ferry_mig_state_name(s));
	}
	if (m->thread_live) { /* the previous one has finished: reap it */
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
		pthread_mutex_lock(&m->lock);
		m->thread_live = false;
	}
	tls_creds_free(m->tls); /* the last one's, its thread gone */
	m->tls = tls;
	m->tls_fault[0] = '\0';
	for (i = 0; i < m->vm->nblocks; i++)
		total += m->vm->blocks[i].length;
	memset(&m->stats, 0, sizeof(m->stats));
	m->stats.state = s;
	m->stats.incoming = incoming;
	m->stats.page_size = m->vm->page_size;
	m->stats.total = total;
	snprintf(m->stats.uri, sizeof(m->stats.uri), "%s", uri);
	snprintf(m->uri, sizeof(m->uri), "%s", uri);
	atomic_store(&m->cancel, 0);
	atomic_store(&m->postcopy_req, 0);
	m->t_start_ns = mig_now_ns();
	pthread_mutex_unlock(&m->lock);

	if (!mig_set_state(m, s, FERRY_MIG_SETUP))
		return ferry_error_set(err, -EBUSY, "migration state changed");
	rc = pthread_create(&m->thread, NULL, fn, m);
	if (rc) {
		struct ferry_error e = { 0 };

		ferry_error_set(&e, -rc,
				"cannot start the migration thread: "
				"%s",
				strerror(rc));
		mig_fail(m, &e);
		return ferry_error_set(err, -rc, "%s", e.msg);
	}
	pthread_mutex_lock(&m->lock);
	m->thread_live = true;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int ferry_migration_start_postcopy(struct ferry_migration *m,
				   struct ferry_error *err)
{
	enum ferry_mig_state s;
	bool cap, incoming;

	pthread_mutex_lock(&m->lock);
	s = m->stats.state;
	cap = m->params.postcopy_ram;
	incoming = m->stats.incoming;
	pthread_mutex_unlock(&m->lock);
	if (!cap)
		return ferry_error_set(err, -EINVAL,
				       "postcopy-ram is not enabled");
	if (incoming || (s != FERRY_MIG_SETUP && s != FERRY_MIG_ACTIVE))
		return ferry_error_set(err, -EINVAL,
				       "no outgoing migration in setup or "
				       "active state (it is %s)",
				       ferry_mig_state_name(s));
	atomic_store(&m->postcopy_req, 1);
	return 0;
}

int ferry_migration_pause(struct ferry_migration *m, struct ferry_error *err)
{
	enum ferry_mig_state s = mig_state(m);

	if (s != FERRY_MIG_POSTCOPY_ACTIVE && s != FERRY_MIG_POSTCOPY_RECOVER)
		return ferry_error_set(err, -EINVAL,
				       "migrate-pause: the migration is not "
				       "in post-copy (it is %s)",
				       ferry_mig_state_name(s));
	atomic_store(&m->pause_req, 1);
	mig_shut_connections(m, SHUT_RDWR);
	return 0;
}

/* The side and state that recover/resume need. */
static int check_paused(struct ferry_migration *m, bool incoming,
			const char *what, const char *uri,
			struct ferry_error *err)
{
	const struct transport_ops *t;
	struct ferry_mig_stats st;
	const char *addr;
	char with[64];
	int rc;

	ferry_migration_query(m, &st);
	if (st.incoming != incoming)
		return ferry_error_set(err, -EINVAL, "%s is for the %s side",
				       what,
				       incoming ? "destination" : "source");
	if (st.state != FERRY_MIG_POSTCOPY_PAUSED)
		return ferry_error_set(err, -EINVAL,
				       "%s: the migration is not paused in "
				       "post-copy (it is %s)",
				       what, ferry_mig_state_name(st.state));
	rc = transport_check(uri, err);
	if (!rc)
		rc = transport_find(uri, &t, &addr, err);
	if (!rc && (t->caps & TRANSPORT_RMA))
		rc = ferry_error_set(err, -EINVAL,
				     "%s: post-copy recovery over rdma is not "
				     "built; give a tcp: or unix: uri (after "
				     "the switch pages go in the stream, not "
				     "by RDMA WRITE)",
				     what);
	else if (!rc && !(t->caps & TRANSPORT_POSTCOPY)) {
		transport_schemes_with(TRANSPORT_POSTCOPY, with, sizeof(with));
		rc = ferry_error_set(err, -EINVAL,
				     "%s: post-copy runs over %s, not %s: (%s)",
				     what, with, t->scheme, t->limits);
	}
	return rc;
}

/* Hand the paused engine its way back: a listening socket (recover) or
 * a uri to connect to (resume, lfd -1). */
static int ask_recovery(struct ferry_migration *m, const char *what, int lfd,
			const char *uri, struct ferry_error *err)
{
	pthread_mutex_lock(&m->lock);
	if (m->recovery_asked || m->stats.state != FERRY_MIG_POSTCOPY_PAUSED) {
		pthread_mutex_unlock(&m->lock);
		return ferry_error_set(err, -EBUSY,
				       "%s: a recovery is already under way",
				       what);
	}
	if (lfd >= 0)
		m->listen_fd = lfd;
	else
		snprintf(m->uri, sizeof(m->uri), "%s", uri);
	snprintf(m->stats.uri, sizeof(m->stats.uri), "%s", uri);
	m->recovery_asked = true;
	pthread_cond_broadcast(&m->recovery_cond);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int ferry_migration_recover(struct ferry_migration *m, const char *uri,
			    struct ferry_error *err)
{
	const struct transport_ops *t;
	const char *addr;
	char bound[256];
	int rc, fd;

	rc = check_paused(m, true, "migrate-recover", uri, err);
	if (!rc)
		rc = transport_find(uri, &t, &addr, err);
	if (!rc && t->connected)
		rc = ferry_error_set(err, -EINVAL,
				     "migrate-recover: %s is a connection, and "
				     "a recovery waits for the source on a "
				     "listening socket (tcp:, unix:, or fd: "
				     "of a listening socket)",
				     uri);
	if (!rc)
		rc = transport_listen(uri, &fd, bound, sizeof(bound), NULL,
				      err);
	if (!rc) {
		rc = ask_recovery(m, "migrate-recover", fd, bound, err);
		if (rc && !t->given)
			close(fd);
	}
	return rc;
}

int ferry_migration_resume(struct ferry_migration *m, const char *uri,
			   struct ferry_error *err)
{
	int rc = check_paused(m, false, "migrate with resume", uri, err);

	return rc ? rc : ask_recovery(m, "migrate with resume", -1, uri, err);
}

int mig_pause(struct ferry_migration *m, const struct ferry_error *cause,
	      struct ferry_error *err)
{
	bool asked = atomic_exchange(&m->pause_req, 0);
	enum ferry_mig_state s = mig_state(m);
	struct ferry_error why = *cause;

	mig_explain_stall(m, &why);
	pthread_mutex_lock(&m->lock);
	snprintf(m->stats.pause_reason, sizeof(m->stats.pause_reason), "%s",
		 asked ? "migrate-pause" : ferry_error_msg(&why));
	m->recovery_asked = false;
	pthread_mutex_unlock(&m->lock);
	if (!mig_set_state(m, s, FERRY_MIG_POSTCOPY_PAUSED))
		return ferry_error_set(err, -EINVAL,
				       "post-copy cannot pause in state %s",
				       ferry_mig_state_name(s));
	pthread_mutex_lock(&m->lock);
	while (!m->recovery_asked && atomic_load(&m->cancel) != 1)
		pthread_cond_wait(&m->recovery_cond, &m->lock);
	asked = m->recovery_asked;
	m->recovery_asked = false;
	pthread_mutex_unlock(&m->lock);
	if (!asked)
		return ferry_error_set(err, -ECANCELED,
				       "post-copy given up while paused "
				       "(migrate_cancel; the pause was: %s)",
				       m->stats.pause_reason);
	mig_set_state(m, FERRY_MIG_POSTCOPY_PAUSED, FERRY_MIG_POSTCOPY_RECOVER);
	return 0;
}

void mig_recovered(struct ferry_migration *m)
{
	pthread_mutex_lock(&m->lock);
	m->stats.postcopy_recoveries++;
	pthread_mutex_unlock(&m->lock);
	mig_set_state(m, FERRY_MIG_POSTCOPY_RECOVER, FERRY_MIG_POSTCOPY_ACTIVE);
}

/* What the parameters ask that the transport does not carry. */
static int refusals(struct ferry_migration *m, const struct transport_ops *t,
		    struct ferry_error *err)
{
	struct ferry_mig_params p;
	char with[64];

	ferry_migration_get_params(m, &p);
	if (p.mapped_ram && !(t->caps & TRANSPORT_MAPPED))
		return ferry_error_set(err, -EINVAL,
				       "%s: mapped-ram puts pages at fixed "
				       "places in a file (file:, or fd: of a "
				       "file); turn mapped-ram off",
				       t->scheme);
	if (p.mapped_ram && (p.xbzrle || p.compression))
		return ferry_error_set(err, -EINVAL,
				       "mapped-ram keeps every page whole at "
				       "its place in the file; turn %s off",
				       p.xbzrle ? "xbzrle"
						: "multifd-compression");
	if (p.direct_io && !p.mapped_ram)
		return ferry_error_set(err, -EINVAL,
				       "direct-io needs mapped-ram (pages at "
				       "aligned places in the file)");
	/* mapped-ram's channels are threads writing the one file */
	if (p.multifd && !(t->caps & TRANSPORT_CHANNELS) && !p.mapped_ram)
		return ferry_error_set(err, -EINVAL,
				       "%s: multifd is not supported over %s "
				       "(%s); turn multifd off",
				       t->scheme, t->scheme, t->limits);
	if (p.postcopy_ram && !(t->caps & TRANSPORT_POSTCOPY)) {
		transport_schemes_with(TRANSPORT_POSTCOPY, with, sizeof(with));
		return ferry_error_set(err, -EINVAL,
				       "%s: post-copy is not supported over "
				       "%s yet (%s); turn postcopy-ram off or "
				       "use %s",
				       t->scheme, t->scheme, t->limits, with);
	}
	if ((p.xbzrle || p.compression) && !(t->caps & TRANSPORT_CODECS))
		return ferry_error_set(err, -EINVAL,
				       "%s: pages go uncompressed over %s "
				       "(%s); turn %s off",
				       t->scheme, t->scheme, t->limits,
				       p.xbzrle ? "xbzrle"
						: "multifd-compression");
	return 0;
}

int ferry_migration_start(struct ferry_migration *m, const char *uri,
			  struct ferry_error *err)
{
	const struct transport_ops *t;
	struct tls_creds *tls = NULL;
	const char *addr;
	int rc = transport_check(uri, err);

	if (!rc)
		rc = transport_find(uri, &t, &addr, err);
	if (!rc)
		rc = refusals(m, t, err);
	if (!rc)
		rc = load_tls(m, uri, false, &tls, err);
	if (rc)
		return rc;
	return begin(m, uri, false, tls, mig_outgoing_main, err);
}

int ferry_migration_incoming(struct ferry_migration *m, const char *uri,
			     struct ferry_error *err)
{
	const struct transport_ops *t;
	struct tls_creds *tls = NULL;
	const char *addr;
	char bound[256];
	int rc;

	if (mig_state(m) != FERRY_MIG_NONE)
		return ferry_error_set(err, -EBUSY,
				       "this guest already took an incoming "
				       "migration");
	rc = transport_check(uri, err);
	if (!rc)
		rc = transport_find(uri, &t, &addr, err);
	if (!rc)
		rc = load_tls(m, uri, true, &tls, err);
	if (rc)
		return rc;
	/* remote writes come on the transport's own connection */
	m->arrival = t->caps & TRANSPORT_RMA	     ? &arrival_rdma
		     : !(t->caps & TRANSPORT_RETURN) ? &arrival_file
		     : t->connected		     ? &arrival_given
						     : &arrival_stream;
	rc = m->arrival->listen(m, uri, addr, bound, sizeof(bound), err);
	if (rc) {
		/* what it opened before failing (a given one stays open) */
		if (m->listen_fd >= 0 && !t->given)
			close(m->listen_fd);
		m->listen_fd = -1;
		tls_creds_free(tls);
		return rc;
	}
	rc = begin(m, bound, true, tls, mig_incoming_main, err);
	if (rc && t->given) /* refused: the descriptor stays the caller's */
		m->listen_fd = -1;
	if (rc && m->arrival->close)
		m->arrival->close(m);
	return rc;
}

void mig_rdma_stats(struct rdma_conn *c, struct ferry_mig_stats *st)
{
	struct rdma_stats r;

	if (!c)
		return;
	rdma_get_stats(c, &r);
	st->rdma = true;
	snprintf(st->rdma_provider, sizeof(st->rdma_provider), "%s",
		 r.provider);
	st->rdma_pin_all = r.pin_all;
	st->rdma_chunks_registered = r.chunks_registered;
	st->rdma_register_requests = r.register_requests;
	st->rdma_register_ms = r.register_ns / 1000000;
	st->rdma_zero_messages = r.zero_messages;
	st->rdma_writes = r.writes;
	st->rdma_completions = r.completions;
	st->rdma_write_bytes = r.write_bytes;
}

struct rdma_ram *mig_rdma_ram(const struct ferry_vm *vm)
{
	struct rdma_ram *ram = calloc(vm->nblocks, sizeof(*ram));
	unsigned i;

	for (i = 0; ram && i < vm->nblocks; i++)
		ram[i] = (struct rdma_ram){ vm->blocks[i].name,
					    vm->blocks[i].host,
					    vm->blocks[i].length };
	return ram;
}

void ferry_migration_cancel(struct ferry_migration *m)
{
	enum ferry_mig_state s = mig_state(m);

	if (s == FERRY_MIG_POSTCOPY_PAUSED || s == FERRY_MIG_POSTCOPY_RECOVER) {
		/* give up waiting: the engine fails, its guest stays
		 * stopped */
		pthread_mutex_lock(&m->lock);
		atomic_store(&m->cancel, 1);
		pthread_cond_broadcast(&m->recovery_cond);
		pthread_mutex_unlock(&m->lock);
		mig_shut_connections(m, SHUT_RDWR);
		return;
	}

	if (s != FERRY_MIG_SETUP && s != FERRY_MIG_ACTIVE &&
	    s != FERRY_MIG_DEVICE)
		return;
	/* 0 -> 1; a 2 means the end of stream is already on its way and
	 * the destination decides (outgoing.c): too late to cancel. */
	if (!atomic_compare_exchange_strong(&m->cancel, &(int){ 0 }, 1))
		return;
	if (!mig_set_state(m, s, FERRY_MIG_CANCELLING))
		return;
	/* Unblock a send or receive; the engine's thread cleans up. */
	mig_shut_connections(m, SHUT_RDWR);
}

void mig_guest_away(struct ferry_migration *m, bool away)
{
	pthread_mutex_lock(&m->lock);
	m->stats.guest_away = away;
	pthread_mutex_unlock(&m->lock);
}

int ferry_migration_cont(struct ferry_migration *m, bool force,
			 struct ferry_error *err)
{
	const struct ferry_runctl *rc = &m->vm->runctl;
	enum ferry_mig_state s;
	int ret = 0;

	/* under the lock: the source's switch to device (or post-copy)
	 * state is too, so the engine either sees the guest running when
	 * it stops it, or this sees the switch and refuses */
	pthread_mutex_lock(&m->lock);
	s = m->stats.state;
	if (m->stats.incoming && s != FERRY_MIG_COMPLETED &&
	    s != FERRY_MIG_NONE)
		ret = ferry_error_set(err, -EBUSY,
				      "Guest is waiting for an incoming "
				      "migration");
	else if (!m->stats.incoming && s == FERRY_MIG_DEVICE)
		ret = ferry_error_set(err, -EBUSY,
				      "Migration is switching over; try again "
				      "when it has finished");
	else if (!m->stats.incoming && (s == FERRY_MIG_POSTCOPY_ACTIVE ||
					s == FERRY_MIG_POSTCOPY_PAUSED ||
					s == FERRY_MIG_POSTCOPY_RECOVER))
		ret = ferry_error_set(err, -EBUSY,
				      "the guest runs on the destination in "
				      "post-copy; this copy cannot run");
	else if (m->stats.guest_away && !force)
		ret = ferry_error_set(err, -EPERM,
				      "the guest migrated to %s and may run "
				      "there; resuming this copy would run "
				      "two: give force (QMP: cont "
				      "{\"x-force\": true}) only if the "
				      "destination's copy is not running and "
				      "never will",
				      m->uri);
	if (!ret) {
		m->stats.guest_away = false;
		ret = rc->resume(rc->opaque);
		if (ret)
			ferry_error_set(err, ret, "resuming the guest: %s",
					strerror(-ret));
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

void ferry_migration_query(struct ferry_migration *m,
			   struct ferry_mig_stats *st)
{
	pthread_mutex_lock(&m->lock);
	*st = m->stats;
	/* a destination's guest runs on: its heartbeat's view is live, and
	 * its first tick after resume measured the whole freeze */
	if (st->incoming && st->state == FERRY_MIG_COMPLETED &&
	    m->vm->runctl.stall_us) {
		st->have_stall = true;
		st->max_stall_us =
			m->vm->runctl.stall_us(m->vm->runctl.opaque, false);
	}
	if (st->state == FERRY_MIG_SETUP || st->state == FERRY_MIG_ACTIVE ||
	    st->state == FERRY_MIG_DEVICE ||
	    st->state == FERRY_MIG_CANCELLING ||
	    st->state == FERRY_MIG_POSTCOPY_ACTIVE ||
	    st->state == FERRY_MIG_POSTCOPY_PAUSED ||
	    st->state == FERRY_MIG_POSTCOPY_RECOVER)
		st->total_time_ms = (mig_now_ns() - m->t_start_ns) / 1000000;
	pthread_mutex_unlock(&m->lock);
}

void ferry_migration_free(struct ferry_migration *m)
{
	bool live;

	if (!m)
		return;
	ferry_migration_cancel(m);
	pthread_mutex_lock(&m->lock);
	live = m->thread_live;
	pthread_mutex_unlock(&m->lock);
	if (live)
		pthread_join(m->thread, NULL);
	if (m->arrival && m->arrival->close)
		m->arrival->close(m); /* a listener the engine never took */
	tls_creds_free(m->tls);
	pthread_cond_destroy(&m->watch_cond);
	pthread_cond_destroy(&m->recovery_cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
