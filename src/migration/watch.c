/*
 * watch.c - net-timeout: a migration whose connections move no byte for
 * that long has lost its link (a stalled network, a peer that stopped
 * reading), and a blocked send or receive would otherwise wait for ever.
 *
 * A thread beside the engine's samples the kernel's byte counters of every
 * TCP connection of the migration (TCP_INFO: bytes acknowledged by the
 * peer, bytes received) a few times per timeout.  When none has moved for
 * net-timeout ms, or fewer than MIN_BYTES moved in a whole net-timeout (a
 * peer that trickles a byte at a time), it notes the stall and shuts the
 * connections down: the engine's blocked call returns, and the engine
 * fails (pre-copy) or pauses (post-copy) with the stall as its cause.  A
 * destination's connection is shut for reading only, so that its verdict
 * still goes out, unless its own bytes wait unacknowledged in the send
 * queue (SIOCOUTQ): then the peer does not read (or the link is dead both
 * ways), a send may be blocked on it, and it is shut for writing too.
 * Behind TLS (tls.h) the counters are those of the relay's TCP socket.
 * Unix sockets and rdma have no such counters and are not watched;
 * neither is a migration with no connection yet (listening, connecting:
 * those have their own timeouts).
 */
#include <netinet/in.h>
#include <linux/sockios.h> /* SIOCOUTQ */
#include <linux/tcp.h>	   /* tcp_info with the byte counters */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include "migration_internal.h"
#include "tls.h"

/* The least a watched migration moves per net-timeout, both ways. */
#define MIN_BYTES 4096

/* The kernel's byte counters of fd's TCP connection (the one behind a
 * TLS relay too, tls.h): false when it has none (unix, rdma). */
static bool tcp_counters(int fd, struct tcp_info *ti)
{
	socklen_t len = sizeof(*ti);
	unsigned ulen = sizeof(*ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len) < 0) {
		if (tls_wire_tcp_info(fd, ti, &ulen, NULL) < 0)
			return false;
		len = ulen;
	}
	return len >= offsetof(struct tcp_info, tcpi_bytes_received) +
			      sizeof(ti->tcpi_bytes_received);
}

/* A signature of every byte counter (0 when nothing can be watched), and
 * the bytes moved in all. */
static uint64_t sample(struct ferry_migration *m, uint64_t *bytes)
{
	uint64_t sig = 0;
	int i;

	*bytes = 0;
	for (i = 0; i <= FERRY_STREAM_MAX_CHANNELS; i++) {
		int fd = atomic_load(&m->fds[i]);
		struct tcp_info ti;

		if (fd < 0 || !tcp_counters(fd, &ti))
			continue;
		/* distinct per connection, and never 0 */
		sig = sig * 0x9e3779b97f4a7c15ull + ti.tcpi_bytes_acked +
		      (ti.tcpi_bytes_received << 1) + (uint64_t)fd + 1;
		*bytes += ti.tcpi_bytes_acked + ti.tcpi_bytes_received;
	}
	return sig;
}

/* The same connections as when the window opened (fd numbers). */
static uint64_t conn_set(struct ferry_migration *m)
{
	uint64_t set = 0;
	int i;

	for (i = 0; i <= FERRY_STREAM_MAX_CHANNELS; i++)
		set = set * 31 + (uint64_t)(atomic_load(&m->fds[i]) + 1);
	return set;
}

/*
 * Unblock the engine: every connection shut.  A destination keeps its
 * write side for the verdict, unless bytes it sent wait in the send queue:
 * no byte moved, so the peer read none of them, and a send blocked there
 * would wait for ever.
 */
static void shut(struct ferry_migration *m, bool incoming)
{
	int i, fd, queued, wire;
	struct tcp_info ti;
	unsigned len = sizeof(ti);

	if (!incoming) {
		mig_shut_connections(m, SHUT_RDWR);
		return;
	}
	for (i = 0; i <= FERRY_STREAM_MAX_CHANNELS; i++) {
		fd = atomic_load(&m->fds[i]);
		if (fd < 0)
			continue;
		if (ioctl(fd, SIOCOUTQ, &queued) < 0)
			queued = 0;
		/* behind TLS, what waits in the relay's socket too */
		if (tls_wire_tcp_info(fd, &ti, &len, &wire) == 0)
			queued += wire;
		shutdown(fd, queued > 0 ? SHUT_RDWR : SHUT_RD);
	}
}

/*
 * Not watched: no migration, or a finished one; and a source whose end of
 * stream is on its way (cancel 2 in device state), which waits for the
 * destination's verdict with a limit of its own: only that verdict can
 * tell whether the guest runs there, and the destination's own watcher
 * sends it when the stream stalled on that side.
 */
static bool watched(struct ferry_migration *m)
{
	enum ferry_mig_state s = m->stats.state;

	if (s == FERRY_MIG_DEVICE && !m->stats.incoming &&
	    atomic_load(&m->cancel) == 2)
		return false;
	return s == FERRY_MIG_SETUP || s == FERRY_MIG_ACTIVE ||
	       s == FERRY_MIG_DEVICE || s == FERRY_MIG_POSTCOPY_ACTIVE ||
	       s == FERRY_MIG_POSTCOPY_RECOVER;
}

static void *watch_main(void *arg)
{
	struct ferry_migration *m = arg;
	uint64_t last_sig = 0, since = mig_now_ns();
	uint64_t win_set = 0, win_bytes = 0, win_start = since;

	pthread_mutex_lock(&m->lock);
	while (!m->watch_quit) {
		uint64_t timeout = m->params.net_timeout_ms, now, sig,
			 bytes = 0;
		uint64_t step_ms = timeout ? timeout / 8 : 1000;
		struct timespec ts;
		bool watch, incoming;

		if (step_ms < 10)
			step_ms = 10;
		if (step_ms > 1000)
			step_ms = 1000;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(step_ms / 1000);
		ts.tv_nsec += (long)(step_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&m->watch_cond, &m->lock, &ts);
		if (m->watch_quit)
			break;
		watch = timeout && watched(m);
		incoming = m->stats.incoming;
		pthread_mutex_unlock(&m->lock);
		sig = watch ? sample(m, &bytes) : 0;
		now = mig_now_ns();
		if (!sig || conn_set(m) != win_set) {
			/* the minimum rate's window: over the same
			 * connections, from when they were first seen */
			win_set = sig ? conn_set(m) : 0;
			win_bytes = bytes;
			win_start = now;
		}
		if (!sig || sig != last_sig) {
			last_sig = sig;
			since = now;
		}
		if (sig && (now - since >= timeout * 1000000 ||
			    (now - win_start >= timeout * 1000000 &&
			     bytes - win_bytes < MIN_BYTES))) {
			/* no byte, or too few in the window */
			atomic_store(&m->net_stalled_ms,
				     (now - since >= timeout * 1000000
					      ? now - since
					      : now - win_start) /
					     1000000);
			shut(m, incoming);
			last_sig = 0;
			since = now;
			win_set = 0;
		} else if (sig && now - win_start >= timeout * 1000000) {
			win_bytes = bytes; /* enough moved: a new window */
			win_start = now;
		}
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int mig_watch_start(struct ferry_migration *m)
{
	int rc;

	atomic_store(&m->net_stalled_ms, 0);
	pthread_mutex_lock(&m->lock);
	m->watch_quit = false;
	pthread_mutex_unlock(&m->lock);
	rc = pthread_create(&m->watch_thread, NULL, watch_main, m);
	m->watch_live = !rc;
	return -rc;
}

void mig_watch_stop(struct ferry_migration *m)
{
	if (!m->watch_live)
		return;
	pthread_mutex_lock(&m->lock);
	m->watch_quit = true;
	pthread_cond_broadcast(&m->watch_cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->watch_thread, NULL);
	m->watch_live = false;
}
