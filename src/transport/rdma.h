/*
 * rdma.h - the RDMA transport on libfabric (docs/rdma.md).
 *
 * One connection-oriented endpoint (FI_EP_MSG) carries two things:
 *
 *  - control messages (rdma_proto.h), SENDs into receives the peer posted,
 *    with credits so that a SEND never finds no receive.  One of them,
 *    "stream", carries the ferry stream without its pages: the engine
 *    reads and writes that stream on a plain socket (rdma_stream_fd), and
 *    a pump thread moves its bytes to and from the control channel;
 *    another, "urgent", a second stream the same way (rdma_urgent_fd),
 *    ahead of the first: post-copy's answers;
 *  - pages, which the source writes straight into the destination's guest
 *    RAM with RDMA WRITE, into 1 MiB chunks the destination registered
 *    when asked (or all at once with pin-all) and whose keys the source
 *    caches.
 *
 * The destination's pump thread answers register requests and hands zero
 * messages to the engine's placer (rdma_dest_hooks.zero), in the order
 * they arrive among the stream's bytes, so a sync record that follows
 * them is acknowledged only once they are done.  It never exposes more
 * than the RAM blocks it was given, and never writes them itself.
 */
#ifndef FERRY_RDMA_H
#define FERRY_RDMA_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/error.h"

struct rdma_conn;
struct rdma_listener;

/* A RAM block as the transport sees it: what may be read or exposed. */
struct rdma_ram {
	const char *name;
	uint8_t *host;
	uint64_t length;
};

struct rdma_stats {
	char provider[32];
	bool pin_all;
	/* destination: keys handed out; source: keys received */
	uint64_t chunks_registered;
	uint64_t register_requests; /* round trips for keys */
	uint64_t zero_messages;
	uint64_t writes;      /* RDMA WRITE operations */
	uint64_t completions; /* of those, the ones that asked for one */
	uint64_t write_bytes;
	uint64_t ctl_bytes;   /* control messages sent, the stream's aside */
	uint64_t register_ns; /* source: time waiting for keys */
};

/* Shape check for "HOST:PORT" (the URI after "rdma:"). */
int rdma_check_addr(const char *addr, struct ferry_error *err);

/* Destination: listen on addr; `provider` NULL or "" lets libfabric pick
 * (FI_PROVIDER is honoured).  `bound` gets "rdma:HOST:PORT" as bound. */
int rdma_transport_listen(const char *addr, const char *provider,
			  struct rdma_listener **out, char *bound, size_t len,
			  struct ferry_error *err);
/* What the destination's connection tells the engine. */
struct rdma_dest_hooks {
	/* a connection request refused (the wait goes on) */
	void (*refused)(void *opaque, const char *peer, const char *why);
	/* a zero message, checked to lie within RAM block `block`: len bytes
	 * at off are to become zero (on the pump's thread, with the
	 * connection's lock held: it must not call into the transport) */
	void (*zero)(void *opaque, unsigned block, uint64_t off, uint64_t len);
	void *opaque;
};

/* Accept one connection (the listener is spent after it), waiting at most
 * timeout_ms (-1: forever), returning -ECANCELED once *cancel is set.  The
 * source's capabilities decide pin-all; RAM is what may be exposed.  A
 * connection request that is not a ferry source's (its private data does
 * not decode) or an attempt that fails is refused, told to hooks->refused,
 * and the wait goes on. */
int rdma_transport_accept(struct rdma_listener *l, const struct rdma_ram *ram,
			  unsigned nram, int timeout_ms, atomic_int *cancel,
			  const struct rdma_dest_hooks *hooks,
			  struct rdma_conn **out, struct ferry_error *err);
void rdma_listener_close(struct rdma_listener *l);

/* Source: connect, agree on the protocol, learn the destination's RAM
 * blocks and match them by name and length with ours. */
int rdma_transport_connect(const char *addr, const char *provider, bool pin_all,
			   const struct rdma_ram *ram, unsigned nram,
			   struct rdma_conn **out, struct ferry_error *err);

/* The engine's end of the stream socket (the caller's to close once
 * given). */
int rdma_stream_fd(struct rdma_conn *c);
/* The engine's end of the urgent stream: a second byte stream on the
 * control channel (urgent messages) that the source's pump sends before
 * the main stream's next message and the destination's hands on ahead of
 * any main stream bytes the engine has not read yet: post-copy's answers
 * to page requests (docs/rdma.md, "Post-copy").  The caller's to close
 * once given. */
int rdma_urgent_fd(struct rdma_conn *c);

/* Source: write `len` bytes at `off` of local block `block` into the same
 * place on the destination.  [off, off + len) lies within one chunk.
 * Writes complete in the background; rdma_flush waits for them all. */
int rdma_write(struct rdma_conn *c, unsigned block, uint64_t off, uint64_t len,
	       struct ferry_error *err);
/* Source: the same place on the destination becomes zero, by a zero
 * message (`message`: the destination applies it on its own time, so the
 * caller syncs before writing there again) or by writing zeros from a
 * local zero buffer (ordered like any write). */
int rdma_zero(struct rdma_conn *c, unsigned block, uint64_t off, uint64_t len,
	      bool message, struct ferry_error *err);
int rdma_flush(struct rdma_conn *c, struct ferry_error *err);
/* Source: ask for the key of the chunk holding `off` now, without waiting
 * for the answer, so that its first write finds it there. */
int rdma_prefetch(struct rdma_conn *c, unsigned block, uint64_t off,
		  struct ferry_error *err);

/* Destination: revoke every key now (no write lands after this). */
void rdma_revoke(struct rdma_conn *c);

/* If the connection failed and `err` is only this side's symptom of it
 * (a closed stream, a short read), replace it with the transport's
 * diagnosis, keeping the symptom in parentheses. */
void rdma_explain(struct rdma_conn *c, struct ferry_error *err);
void rdma_get_stats(struct rdma_conn *c, struct rdma_stats *st);
/* write_bytes + ctl_bytes of the stats, cheaply (no lock): for pacing. */
uint64_t rdma_wire_bytes(struct rdma_conn *c);

/* Let the pump send what the engine wrote, then tear everything down. */
void rdma_close(struct rdma_conn *c);

#endif
