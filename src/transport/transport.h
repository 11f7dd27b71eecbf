/*
 * transport.h - moving bytes between hosts: URIs and connected sockets.
 *
 * A transport is a `struct transport_ops` found by its URI scheme
 * ("tcp", "unix", "rdma", "file", "exec", "fd").  It turns a URI into a listening socket or a
 * connected one; the stream and the engine then use the socket as a plain
 * fd.  It declares what it carries (enum transport_caps): the engine
 * refuses, from those flags alone, what a transport cannot do, and picks
 * the source's page carrier by them (carrier.h).  Adding a transport
 * means adding a file and a line in transport.c.
 */
#ifndef FERRY_TRANSPORT_H
#define FERRY_TRANSPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ferry/error.h"
#include "tls.h"

/* What a transport carries besides one connection's stream. */
enum transport_caps {
	TRANSPORT_CHANNELS = 1u << 0, /* more connections: multifd */
	TRANSPORT_POSTCOPY = 1u << 1, /* post-copy, and its recovery */
	TRANSPORT_CODECS = 1u << 2,   /* pages compressed or XBZRLE-encoded */
	TRANSPORT_TLS = 1u << 3,      /* a TLS session on each connection */
	/* pages go by remote writes into the peer's RAM beside the stream,
	 * through the transport's own connection (rdma.h), not the fd
	 * listen and connect give */
	TRANSPORT_RMA = 1u << 4,
	/* somebody answers on the connection: the destination's verdict,
	 * its acknowledgements and checks, post-copy's page requests (all
	 * but file:, which nobody reads until a restore) */
	TRANSPORT_RETURN = 1u << 5,
	/* a file, written and read at any offset: mapped-ram (fd: has it
	 * for any descriptor that is not a socket, and a pipe then fails
	 * when the save opens it) */
	TRANSPORT_MAPPED = 1u << 6,
};

struct transport_ops {
	const char *scheme;
	unsigned caps; /* enum transport_caps */
	/* Why it lacks the capabilities it lacks, for refusals (NULL when
	 * it has them all): "pages go by RDMA WRITE ..." */
	const char *limits;
	/* Listen on `addr` (the URI after "scheme:"); fills the address
	 * actually bound (a port 0 becomes the port picked) into `bound`. */
	int (*listen)(const char *addr, int *fd, char *bound, size_t len,
		      struct ferry_error *err);
	int (*connect)(const char *addr, int *fd, struct ferry_error *err);
	/* Instead of listen and connect (exec:): start the command the
	 * address names, its pipe's other end into *fd, the process into
	 * *pid; `out` on the source (the stream goes to the command). */
	int (*spawn)(const char *addr, bool out, int *fd, pid_t *pid,
		     struct ferry_error *err);
	/* Check the address's shape without touching the network. */
	int (*check)(const char *addr, struct ferry_error *err);
	/* The transport the address really names (fd:, whose descriptor
	 * decides what it carries); transport_find follows it. */
	const struct transport_ops *(*resolve)(const char *addr);
	/* listen and connect hand over a descriptor the caller gave (fd:):
	 * it is the migration's once the call naming it succeeds, and a
	 * call that fails leaves it open, not closed. */
	bool given;
	/* listen gives the connection itself, not a listener (file:, and
	 * fd: of anything but a listening socket) */
	bool connected;
};

extern const struct transport_ops transport_tcp;
extern const struct transport_ops transport_unix;
/* rdma: only check; the engine connects through rdma.h (TRANSPORT_RMA). */
extern const struct transport_ops transport_rdma;
/* file: listen opens the file to restore from, connect the one to save
 * into (file.c). */
extern const struct transport_ops transport_file;
/* exec: the stream through a pipe to or from a shell command (exec.c). */
extern const struct transport_ops transport_exec;
/* fd: a descriptor the process holds (fd.c): resolves to one of the three
 * below by what the descriptor is. */
extern const struct transport_ops transport_fd;
extern const struct transport_ops transport_fd_conn;	 /* connected socket */
extern const struct transport_ops transport_fd_listener; /* listening one */
extern const struct transport_ops transport_fd_stream;	 /* pipe, file */

/* A command transport_connect or transport_listen started: 0 when it
 * exited with status 0 (waiting as long as it runs when timeout_ms < 0,
 * else killing it after timeout_ms), else what it did. */
int transport_reap(pid_t pid, const char *uri, int timeout_ms,
		   struct ferry_error *err);

/* What is wrong with a HOST:PORT address, if anything. */
enum hostport_fault {
	HOSTPORT_OK,
	HOSTPORT_FORM, /* neither HOST:PORT nor [V6]:PORT */
	HOSTPORT_HOST, /* the host does not fit in its buffer */
	HOSTPORT_PORT, /* not a number from 0 to 65535 (or too long) */
};

/* "HOST:PORT" or "[V6]:PORT" into host and port strings (host may be
 * empty); each transport words its own error. */
enum hostport_fault transport_split_hostport(const char *addr, char *host,
					     size_t hlen, char *port,
					     size_t plen);

/* The schemes of the transports that have every capability in `caps`,
 * as a user reads them: "tcp: or unix:". */
void transport_schemes_with(unsigned caps, char *buf, size_t len);

/* Split "scheme:addr" and find the transport; *addr points into uri. */
int transport_find(const char *uri, const struct transport_ops **ops,
		   const char **addr, struct ferry_error *err);
/* A migration that took a given descriptor (fd:N) and ends before it
 * connected closes it: the descriptor was its own (transport_ops.given).
 * Any other URI: nothing. */
void transport_release(const char *uri);
/* The URI names a known transport and a well-formed address. */
int transport_check(const char *uri, struct ferry_error *err);

/* Listen or connect by URI.  `bound` receives the full URI bound
 * ("tcp:127.0.0.1:40123"). */
/* *child: the process a command transport started (exec:), else left
 * as it was; NULL where none may be started. */
int transport_listen(const char *uri, int *fd, char *bound, size_t len,
		     pid_t *child, struct ferry_error *err);
int transport_connect(const char *uri, int *fd, pid_t *child,
		      struct ferry_error *err);

/*
 * Screening: a listening destination serves every connection at once and
 * takes only those whose first bytes (their head) the caller's judge
 * finds right; a stray connection (a port scan, a health check, an idle or
 * slow peer, garbage) is closed and reported, and listening goes on.
 *
 * Each connection accepted has head_ms from its accept to deliver its head;
 * at most TRANSPORT_PENDING_MAX wait at once (a new one pushes the oldest
 * out), so idle connections cannot keep the real source from being served.
 * The screen lives across calls: a head judged complete but not for this
 * call (a page channel that came before its main connection) is held for
 * a later call with another judge.
 */
#define TRANSPORT_PENDING_MAX 64

enum transport_head {
	TRANSPORT_HEAD_TAKE, /* the connection is the caller's */
	TRANSPORT_HEAD_MORE, /* not all of the head yet: read on */
	TRANSPORT_HEAD_HOLD, /* a whole head, for a later call: keep it */
};

/* Judge the bytes a connection sent so far: an enum transport_head, or a
 * negative errno with err saying why the connection is refused. */
typedef int (*transport_judge_fn)(void *opaque, const uint8_t *head, size_t len,
				  struct ferry_error *err);
/* Told of each connection closed unserved: its peer and why. */
typedef void (*transport_refused_fn)(void *opaque, const char *peer,
				     const char *why);

struct transport_pending {
	int fd;
	uint64_t deadline_ns;
	uint8_t *buf; /* what it sent so far */
	size_t len, cap;
	bool held; /* its head is whole: judged again, not read */
	char peer[64];
	struct tls_conn *tls; /* its TLS session */
	bool tls_up;	      /* handshaken and judged: the head comes */
	short tls_events;     /* what the session waits for */
	struct tls_info info; /* the session, once up */
};

/* Owned by one thread (the destination engine's). */
struct transport_screen {
	int lfd;
	transport_refused_fn refused;
	void *opaque;
	struct tls_creds *tls; /* NULL: plain connections */
	struct transport_pending p[TRANSPORT_PENDING_MAX]; /* oldest first */
	unsigned n;
};

/* A connection taken: a blocking fd and the bytes already read from it
 * (its head, maybe more), which come before anything read from fd;
 * free(buf) when done. */
struct transport_conn {
	int fd;
	uint8_t *buf;
	size_t len;
	struct tls_info tls;	   /* .on when it came over TLS, */
	struct tls_conn *tls_conn; /* and its session, the taker's: read in
				      place or handed to a relay (tls.h) */
};

/* With tls, every connection is first a TLS handshake, its client
 * judged (tls.h), and only then is its head read: a refused client
 * sends no byte the engine reads. */
void transport_screen_init(struct transport_screen *s, int lfd,
			   struct tls_creds *tls, transport_refused_fn refused,
			   void *opaque);
/* Close every connection still waiting (each reported, with `why`). */
void transport_screen_close(struct transport_screen *s, const char *why);
/* Serve the listening socket and the pending connections until one is
 * taken (0), timeout_ms passes (-ETIMEDOUT; -1: never) or *cancel becomes
 * non-zero (-ECANCELED). */
int transport_screen_take(struct transport_screen *s, int head_ms,
			  int timeout_ms, atomic_int *cancel,
			  transport_judge_fn judge, void *opaque,
			  struct transport_conn *out, struct ferry_error *err);

#endif
