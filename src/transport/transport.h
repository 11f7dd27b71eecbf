/*
 * transport.h - moving bytes between hosts: URIs and connected sockets.
 *
 * A transport is a `struct transport_ops` found by its URI scheme
 * ("tcp", "unix").  It turns a URI into a listening socket or a connected
 * one; the stream and the engine then use the socket as a plain fd.
 * Adding a transport means adding a file and a line in transport.c.
 */
#ifndef FERRY_TRANSPORT_H
#define FERRY_TRANSPORT_H

#include <stdatomic.h>
#include <stddef.h>

#include "ferry/error.h"

struct transport_ops {
	const char *scheme;
	/* Listen on `addr` (the URI after "scheme:"); fills the address
	 * actually bound (a port 0 becomes the port picked) into `bound`. */
	int (*listen)(const char *addr, int *fd, char *bound, size_t len,
		      struct ferry_error *err);
	int (*connect)(const char *addr, int *fd, struct ferry_error *err);
	/* Check the address's shape without touching the network. */
	int (*check)(const char *addr, struct ferry_error *err);
};

extern const struct transport_ops transport_tcp;
extern const struct transport_ops transport_unix;
/* rdma: only check; the engine connects through rdma.h, not an fd. */
extern const struct transport_ops transport_rdma;

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

/* Whether the URI names the rdma transport. */
int transport_is_rdma(const char *uri);

/* Split "scheme:addr" and find the transport; *addr points into uri. */
int transport_find(const char *uri, const struct transport_ops **ops,
		   const char **addr, struct ferry_error *err);
/* The URI names a known transport and a well-formed address. */
int transport_check(const char *uri, struct ferry_error *err);

/* Listen or connect by URI.  `bound` receives the full URI bound
 * ("tcp:127.0.0.1:40123"). */
int transport_listen(const char *uri, int *fd, char *bound, size_t len,
		     struct ferry_error *err);
int transport_connect(const char *uri, int *fd, struct ferry_error *err);

/* Accept one connection, waiting at most timeout_ms (-1: forever), and
 * return early with -ECANCELED when *cancel becomes non-zero. */
int transport_accept(int lfd, int *fd, int timeout_ms, atomic_int *cancel,
		     struct ferry_error *err);

#endif
