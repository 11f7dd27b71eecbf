/*
 * arrival.h - how pages reach the destination: its side of the carrier
 * (carrier.h).
 *
 * The arrival is chosen once, from the transport's capabilities, when the
 * destination starts listening:
 *
 *  - the stream arrival (incoming.c): every page comes framed in the
 *    ferry stream, on the main connection or a page channel, screened
 *    like every connection, and the placer writes it;
 *  - the rdma arrival (rdma_in.c): pages land by RDMA WRITE in RAM the
 *    transport registered, zero runs come as messages the placer writes,
 *    and the stream carries the rest;
 *  - the file arrival (incoming.c): the stream, every page in it, read
 *    from a saved file, a pipe or a descriptor passed in, with nobody to
 *    answer;
 *  - the given arrival (incoming.c): the stream arrival on a connected
 *    socket passed in (fd:), with no listener to screen.
 *
 * The engine's thread (incoming.c) calls these in this order; nothing
 * else in it asks which arrival it has.
 */
#ifndef FERRY_ARRIVAL_H
#define FERRY_ARRIVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/error.h"

struct ferry_migration;
struct ferry_stream_range;
struct page_hashes;
struct pc_in;
struct placer;
struct tls_creds;
struct transport_conn;
struct transport_screen;

struct page_arrival_ops {
	const char *name;
	/* Listen on the URI's address (on the caller's thread, before the
	 * engine's starts); `bound` gets the URI as bound.  TLS credentials
	 * are the migration's, m->tls, once it runs. */
	int (*listen)(struct ferry_migration *m, const char *uri,
		      const char *addr, char *bound, size_t len,
		      struct ferry_error *err);
	/* The main connection.  With `screened`, accept initialises *sc and
	 * leaves it open for the page channels' connections. */
	bool screened;
	/* Nobody reads what the destination says (file:): no verdict and no
	 * acknowledgement is sent, and the connection is closed here. */
	bool one_way;
	int (*accept)(struct ferry_migration *m, struct transport_screen *sc,
		      struct transport_conn *c, struct ferry_error *err);
	/* Not screened: page channel i (from 0) as a stream of the main
	 * connection's own, judged by its head once read (NULL: no page
	 * channel comes without a listener). */
	int (*channel)(struct ferry_migration *m, unsigned i,
		       struct transport_conn *c, struct ferry_error *err);
	/* No page lands beside the stream after this: post-copy's discards
	 * and userfaultfd are next (NULL: none ever does). */
	void (*quiesce)(struct ferry_migration *m);
	/* A landed record (docs/stream.md, 10): these pages landed beside
	 * the stream in the pass before it; their hashes become those of
	 * RAM as it is now (NULL: pages never land beside the stream, and
	 * a landed record is refused). */
	void (*landed)(struct ferry_migration *m, struct page_hashes *ph,
		       const struct ferry_stream_range *r, uint32_t n);
	/* The stream ended: no page lands beside it after this, and with
	 * `hash` the page hashes become those of RAM as it is, all of it
	 * (false: they are current already, from the stream or from landed
	 * records; NULL: all pages came in the stream).  mapped-ram reads
	 * them from their places in the file here, and may fail. */
	int (*settle)(struct ferry_migration *m, struct page_hashes *ph,
		      bool hash, struct ferry_error *err);
	/* Where a failure's cause is known better than the engine's
	 * symptom (NULL: never). */
	void (*explain)(struct ferry_migration *m, struct ferry_error *err);
	/* Its figures into the statistics, and its connection or listener
	 * closed; again is harmless (NULL: nothing to close). */
	void (*close)(struct ferry_migration *m);
};

extern const struct page_arrival_ops arrival_stream; /* incoming.c */
extern const struct page_arrival_ops arrival_file;   /* incoming.c */
extern const struct page_arrival_ops arrival_given;  /* incoming.c */
extern const struct page_arrival_ops arrival_mapped; /* incoming.c */

/* mapped_in.c: a restore from a mapped-ram file (mapped.h).  open reads
 * and checks the header of the file fd is open on (at its offset) and
 * leaves fd at the stream; settle reads every page into RAM, several
 * readers at once with multifd; close frees it. */
int mapped_in_open(struct ferry_migration *m, int fd, struct ferry_error *err);
int mapped_in_settle(struct ferry_migration *m, struct page_hashes *ph,
		     bool hash, struct ferry_error *err);
void mapped_in_close(struct ferry_migration *m);
/* A lazy restore (capability lazy-restore), once the guest's RAM is
 * dropped (post-copy's pc, its placer pl): prepare, before userfaultfd
 * watches it, points faults at the file (a window of pages around each);
 * start, once the placer places atomically, has readers fill the rest in
 * the background; finish waits for them, with the first failure.
 * settle then has nothing to do. */
int mapped_in_lazy_prepare(struct ferry_migration *m, struct placer *pl,
			   struct pc_in *pc, struct ferry_error *err);
int mapped_in_lazy_start(struct ferry_migration *m, struct ferry_error *err);
int mapped_in_lazy_finish(struct ferry_migration *m, struct ferry_error *err);
/* Is the file at fd's offset a mapped-ram save (its magic, or a region of
 * zeroes where a header would be)? */
bool mapped_in_probe(int fd);
extern const struct page_arrival_ops arrival_rdma; /* rdma_in.c */

#endif
