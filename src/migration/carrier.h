/*
 * carrier.h - how the source's pages reach the destination.
 *
 * A sender (outgoing.h) owns one connection.  What it does with its share
 * of a dirty set is its carrier's business, and the carrier is chosen once
 * per migration, from the transport's capabilities (transport.h), when
 * the engine starts:
 *
 *  - the stream carrier (sender.c) frames every page into the ferry
 *    stream on the sender's connection, choosing its encoding (zero,
 *    unchanged, XBZRLE, compressed, raw) page by page;
 *  - the rdma carrier (rdma_out.c) writes pages by RDMA WRITE from guest
 *    RAM into the destination's RAM, and the stream carries only what is
 *    not a page (device state, syncs, the digest);
 *  - the mapped carrier (mapped_out.c, capability mapped-ram) writes each
 *    page at its fixed place in a file (mapped.h), and the stream after
 *    them carries the rest.
 *
 * Nothing above or below a carrier asks which one it is.
 */
#ifndef FERRY_CARRIER_H
#define FERRY_CARRIER_H

#include <stdint.h>

#include "ferry/dirty.h"
#include "ferry/error.h"
#include "ferry/migration.h"

struct out;
struct sender;
enum send_mode;

struct page_carrier_ops {
	const char *name;
	/* Stream header flags it needs beside the engine's: landed records
	 * (FERRY_STREAM_F_LANDED) for one that writes RAM beside the
	 * stream and names what it wrote, so that the destination hashes
	 * it while the guest runs (with capability verify only). */
	uint32_t stream_flags;
	/* Stream header flags it always needs (FERRY_STREAM_F_MAPPED). */
	uint32_t format_flags;
	/* Its multifd channels are threads beside the main sender, with no
	 * connection or stream of their own (mapped-ram: each writes its
	 * pages into the file). */
	bool local_channels;
	/* Connect sender s to the migration's URI: s->fd becomes the socket
	 * its stream is written to. */
	int (*open)(struct out *o, struct sender *s, struct ferry_error *err);
	/* s's share of a set (NULL: of all RAM) in `mode`, flushed: when it
	 * returns, the destination has it or will before the next record. */
	int (*send)(struct sender *s, const struct ferry_dirty_set *set,
		    enum send_mode mode, struct ferry_error *err);
	/* Bytes it moved beside the stream (NULL: none). */
	uint64_t (*wire_bytes)(struct out *o);
	/* Its own figures into the statistics, m->lock held (NULL: none). */
	void (*stats)(struct out *o, struct ferry_mig_stats *st);
	/* A failure's cause, where the connection under it knows better than
	 * the engine's symptom (NULL: never). */
	void (*explain)(struct out *o, struct ferry_error *err);
	/* Undo what open set up beyond the senders' sockets, once they are
	 * closed; the last figures go into the statistics first. */
	void (*close)(struct out *o);
	/* One-way (a save): the stream is whole; finish the file before it
	 * is synced (NULL: nothing to add). */
	int (*seal)(struct out *o, struct ferry_error *err);
};

extern const struct page_carrier_ops carrier_stream; /* sender.c */
extern const struct page_carrier_ops carrier_rdma;   /* rdma_out.c */
extern const struct page_carrier_ops carrier_mapped; /* mapped_out.c */

/* The carrier for the migration's URI, by its transport's capabilities,
 * into o->carrier (and the capabilities into o->caps). */
int carrier_pick(struct out *o, struct ferry_error *err);

#endif
