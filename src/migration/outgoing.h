/*
 * outgoing.h - the source side's state, shared by outgoing.c (the
 * migration's course: setup, iterations, switch-over) and sender.c (how
 * pages go out: on the main connection, or on multifd channels).
 */
#ifndef FERRY_OUTGOING_H
#define FERRY_OUTGOING_H

#include "ferry/dirty.h"
#include "carrier.h"
#include "codec_auto.h"
#include "downtime.h"
#include "migration_internal.h"

struct out;

/* XBZRLE: copies of pages as last sent, one slot per page-sized entry,
 * direct-mapped by page number (docs/stream.md, "XBZRLE"). */
struct xbz_cache {
	uint64_t nslots;
	uint64_t *keys; /* global page number + 1; 0 = empty */
	uint8_t *data;
};

/* How a job's pages go: the bulk pass, a dirty set, or pages the
 * destination asked for again (always in full). */
enum send_mode { SEND_FIRST, SEND_AGAIN, SEND_FULL, SEND_POSTCOPY };

/* What a sender's pages add up to. */
struct send_counts {
	uint64_t duplicate, normal, unchanged;
	uint64_t compressed, compressed_bytes;
	uint64_t checked; /* check records sent */
	uint64_t xbz_pages, xbz_bytes, xbz_lookups, xbz_miss, xbz_overflow;
	uint64_t bytes; /* published only: what sender_bytes() said */
};

/* One connection that pages go out on, and the thread that feeds it. */
struct sender {
	struct out *o;
	unsigned index; /* 0 = main connection, 1..n = page channels */
	int fd;
	struct tls_conn *tls; /* a page channel's TLS, written in place */
	struct ferry_stream_encoder *enc;
	struct send_counts n;	/* owner thread */
	struct send_counts pub; /* m->lock: a copy for statistics */
	uint64_t past_bytes;	/* stream bytes of its earlier connections */
	uint64_t sent_pages;	/* since the last checkpoint */
	uint64_t win_start_ns, win_bytes_start; /* max-bandwidth window */
	const struct page_codec *codec;		/* compression, or NULL */
	void *cctx;
	uint8_t *scratch;	 /* a page copy, then the page compressed */
	struct codec_auto autoc; /* codec-auto, when autoc_on */
	bool autoc_on;
	struct codec_auto pub_auto;	    /* m->lock: a copy for statistics */
	bool checks_unsynced;		    /* checked since the last sync */
	struct ferry_dirty_set checked_set; /* those pages, until the sync */
	uint32_t run_block, run_count;	    /* unchanged pages, not yet sent */
	uint64_t run_first;
	struct xbz_cache xbz; /* with the xbzrle capability */
	pthread_t thread;
	bool thread_live;
	bool landed; /* its stream names the pages written beside it */
	int rc;	     /* the last job's result */
	struct ferry_error err;
};

struct out {
	struct ferry_migration *m;
	const struct ferry_vm *vm;
	struct sender main;
	struct sender *chans; /* multifd page channels, NULL without */
	unsigned nchans;
	bool postcopy;	      /* postcopy-ram: the urgent connection */
	struct sender urgent; /* its sender, index nchans + 1 */
	uint64_t *first_page; /* per block: its first page, counted
				 across blocks (page-to-channel map) */
	bool xbzrle;	      /* the capability, fixed at setup */
	bool final;	      /* vCPUs stopped: no check records now */
	bool one_way;	      /* nobody answers (file:, exec:): no checks, no
			 verdict; the end is the stream written and synced,
			 or the command it went to exited with 0 */
	pid_t child;	      /* exec:'s command, or -1 */
	/* the main connection was asked for: a descriptor given with the
	 * uri (fd:) is the migration's since, and closed by it */
	bool connect_tried;
	struct rp_rx rp; /* the destination's messages */
	uint64_t sync_seq;
	struct ferry_dirty_set resend; /* stale pages, to send in full */
	bool stopped;		       /* we stopped the vCPUs */
	bool tracking;
	unsigned throttle;
	unsigned hot_iterations; /* auto-converge: in a row over budget */
	unsigned over_bw;	 /* hybrid: iterations dirtying faster than
				    the link, in a row */
	bool go_postcopy;	 /* precopy() stopped to switch to post-copy */
	bool resuming;		 /* connecting again after a post-copy pause */
	uint64_t session;	 /* the channel records': tells sessions
				    apart */
	/* the channel records' secret, drawn per migration: what lets an
	 * extra connection in.  Never logged or reported. */
	uint8_t token[FERRY_STREAM_TOKEN_LEN];
	bool in_bulk; /* the bulk pass runs */
	/* asked by the senders every few pages of the bulk pass, with
	 * postcopy-ram: true to stop it and switch now (the engine's
	 * policy, outgoing.c; it sets the reason) */
	bool (*bulk_stop)(struct out *o);
	atomic_int bulk_abort;		/* it stopped early, for post-copy */
	_Atomic uint64_t *bulk_sent;	/* bit per global page: sent in it */
	uint64_t t_precopy_ns;		/* when the bulk pass began */
	struct ferry_dirty_set pending; /* dirty, not yet sent */
	const struct page_carrier_ops *carrier; /* chosen at start */
	unsigned caps;		   /* the transport's (enum transport_caps) */
	struct rdma_conn *rdma;	   /* the rdma carrier's connection */
	struct mapped_out *mapped; /* the mapped carrier's file */
	struct page_hashes ph;	   /* verify: hash of each page sent */
	struct dt_model dt; /* the engine's thread: when to switch over */

	/* page jobs for the channels' threads */
	pthread_mutex_t lock;
	pthread_cond_t go, done;
	uint64_t generation;		   /* lock */
	unsigned busy;			   /* lock */
	bool quit;			   /* lock */
	const struct ferry_dirty_set *job; /* lock; NULL = every page */
	enum send_mode job_mode;	   /* lock */
};

/* sender.c, channels.c, pacing.c, counters.c */
/* After each page: every few pages, the cancel, the destination's
 * verdict and max-bandwidth are looked at. */
int sender_page_sent(struct sender *s, struct ferry_error *err);
/* Does this sender carry page `page` of block `bi` (its channel's share,
 * by 2 MiB granule; all of them without channels)? */
bool sender_mine(const struct sender *s, uint32_t bi, uint64_t page);
void sender_publish(struct sender *s);
int sender_open(struct out *o, struct sender *s, unsigned index,
		uint64_t session, struct ferry_error *err);
/* Send a dirty set (or with NULL every page) on the main connection or,
 * with multifd, on the channels, and flush.  Blocks until all is out. */
int send_pages(struct out *o, const struct ferry_dirty_set *set,
	       enum send_mode mode, struct ferry_error *err);
/* If check records went out since the last time: wait until the
 * destination has answered them all, then send the stale pages in full. */
int out_sync(struct out *o, struct ferry_error *err);
/* Map pages to global page numbers (channel choice, XBZRLE). */
int out_number_pages(struct out *o, struct ferry_error *err);
int multifd_start(struct out *o, unsigned n, uint64_t session,
		  struct ferry_error *err);
/* Close each channel's stream with an end record (no digest). */
int multifd_finish(struct out *o, struct ferry_error *err);
void multifd_stop(struct out *o);
void sender_close(struct sender *s);
/* One page on s (post-copy's threads), and flushing s. */
int send_one(struct sender *s, uint32_t bi, uint64_t page, enum send_mode mode,
	     struct ferry_error *err);
int sender_flush(struct sender *s, struct ferry_error *err);
/* A sync on every page connection, acknowledged: the destination has
 * handled everything sent before (no resends are expected). */
int out_barrier(struct out *o, struct ferry_error *err);
/* A bulk pass stopped early for post-copy: the pages it sent (sent_ones)
 * or those it did not reach, added to *set (o->bulk_sent); -ENOMEM. */
int out_bulk_set(const struct out *o, bool sent_ones,
		 struct ferry_dirty_set *set);
/* Bytes this sender moved: its stream's, on this connection and the
 * ones before, and for the main sender what its carrier moved beside. */
uint64_t sender_bytes(struct sender *s);
/* Stream bytes on all connections, published by their senders. */
uint64_t out_bytes(struct out *o);
/* Pages sent, in any encoding, on all connections. */
uint64_t out_pages(struct out *o);
/* Refresh the statistics that the senders feed. */
void out_publish(struct out *o, uint64_t remaining_pages);
/* The destination's reason, if it sent one, else a send error. */
int peer_verdict(struct out *o, int rc, struct ferry_error *err);

/* policy.c */
/* auto-converge, after an iteration that dirtied dirtied_bytes while it
 * sent sent_bytes. */
void out_converge(struct out *o, uint64_t dirtied_bytes, uint64_t sent_bytes);
/* At the end of an iteration, with postcopy-ram: switch to post-copy
 * now?  Sets the reason and o->go_postcopy. */
bool out_want_postcopy(struct out *o, uint64_t dirtied, uint64_t sent,
		       const struct ferry_mig_params *p);
/* During the bulk pass (o->bulk_stop): switch now? */
bool out_switch_now(struct out *o);

/* outgoing.c */
/* Whether the guest runs (a guest without the callback always does). */
bool out_guest_running(const struct ferry_vm *vm);
/* Every device section, saved now, on the main connection. */
int out_send_devices(struct out *o, struct ferry_error *err);
/* *field = v, under m->lock. */
void mig_set_stat(struct ferry_migration *m, uint64_t *field, uint64_t v);

/* postcopy_out.c */
/* Switch to post-copy and see it through to the destination's verdict
 * (the guest stopped here for good once the switch is made). */
int out_postcopy(struct out *o, struct ferry_error *err);

#endif
