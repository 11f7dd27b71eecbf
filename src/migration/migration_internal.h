/*
 * migration_internal.h - the engine's insides, shared by migration.c
 * (object, states, statistics), outgoing.c (source) and incoming.c
 * (destination).
 */
#ifndef FERRY_MIGRATION_INTERNAL_H
#define FERRY_MIGRATION_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "ferry/dirty.h"
#include "ferry/migration.h"
#include "ferry/stream.h"
#include "retpath_codec.h"

/* The return path: docs/stream.md, "Return path"; its messages in
 * src/stream/retpath_codec.c, their reader and writers in retpath.c. */
#define MIG_RESULT_TIMEOUT_MS 60000
/* how the source's errors about a misbehaving destination begin */
#define RP_VIOLATION	  "protocol violation on the return path"
#define RP_ACK_TIMEOUT_MS 60000

struct page_arrival_ops;
struct rdma_conn;
struct rdma_listener;
struct mapped_in;

struct ferry_migration {
	const struct ferry_vm *vm;
	ferry_mig_event_fn event_fn;
	void *event_opaque;

	pthread_mutex_t lock;
	struct ferry_mig_params params; /* lock */
	struct ferry_mig_stats stats;	/* lock, state included */
	pthread_t thread;
	bool thread_live;	 /* lock */
	atomic_int cancel;	 /* set by ferry_migration_cancel */
	atomic_int postcopy_req; /* migrate-start-postcopy was asked */
	/* the connections (0 = main), -1 when none; cancel shuts them */
	atomic_int fds[FERRY_STREAM_MAX_CHANNELS + 1];
	const struct page_arrival_ops *arrival; /* destination: arrival.h */
	int listen_fd;				/* destination, engine thread */
	pid_t child; /* destination: exec:'s command, or -1; engine thread
			once it runs */
	struct rdma_listener *rdma_listener; /* destination over rdma: */
	struct rdma_conn *rdma;		     /* engine thread */
	struct mapped_in *mapped; /* destination from a mapped-ram file */
	char uri[256];
	struct tls_creds *tls; /* loaded tls-creds, NULL: plain */
	char tls_fault[192];   /* lock: why a TLS connection broke */

	uint64_t t_start_ns;

	/* post-copy recovery: the engine waits, paused, for recover (a new
	 * listen_fd) or resume (a new uri) */
	pthread_cond_t recovery_cond; /* lock */
	bool recovery_asked;	      /* lock */
	atomic_int pause_req;	      /* migrate-pause broke the link */

	/* net-timeout (watch.c): the watcher beside the engine's thread */
	pthread_t watch_thread;
	bool watch_live;		 /* engine thread */
	bool watch_quit;		 /* lock */
	pthread_cond_t watch_cond;	 /* lock */
	_Atomic uint64_t net_stalled_ms; /* it fired: no byte for this long */
};

uint64_t mig_now_ns(void);
/* Shut every connection down (how: SHUT_RDWR, or SHUT_RD to unblock
 * the receives and still send): a blocked call returns. */
void mig_shut_connections(struct ferry_migration *m, int how);

/* Watch the migration's connections for net-timeout while the engine's
 * thread runs (watch.c); 0 or a negative errno. */
int mig_watch_start(struct ferry_migration *m);
void mig_watch_stop(struct ferry_migration *m);

/* Move from `from` to `to` if the table allows it and the state is still
 * `from`; emits the event.  Returns false when the state was another. */
bool mig_set_state(struct ferry_migration *m, enum ferry_mig_state from,
		   enum ferry_mig_state to);
enum ferry_mig_state mig_state(struct ferry_migration *m);

/* Record why the migration failed (first message wins) and move to
 * FAILED, or to CANCELLED when a cancel was asked for. */
void mig_fail(struct ferry_migration *m, const struct ferry_error *err);
/* Source, past the point of no return: the destination may run the
 * guest from now on, so this copy must not (ferry_migration_cont); false
 * again when the destination said it did not take the guest. */
void mig_guest_away(struct ferry_migration *m, bool away);
/* Note why the TLS relay behind fd broke its connection, if it did,
 * before fd is closed; and say it in err (once). */
void mig_note_tls_fault(struct ferry_migration *m, int fd);
void mig_explain_tls(struct ferry_migration *m, struct ferry_error *err);
/* The TLS session of the main connection, into the statistics. */
struct tls_info;
void mig_tls_stats(struct ferry_migration *m, const struct tls_info *info);
/* If net-timeout shut the connections, say so first in err (once). */
void mig_explain_stall(struct ferry_migration *m, struct ferry_error *err);
/* A decoder's "stream offset N" said for people: which byte of what the
 * peer sent on that connection, or of `where` (once; code and origin
 * stay). */
void mig_explain_offset(struct ferry_error *err, const char *where);

/* Post-copy recovery, on the engine's thread: note why the link broke
 * (the stall or migrate-pause, if either did it), move to postcopy-paused
 * and wait for recover/resume (0, in postcopy-recover) or a cancel. */
int mig_pause(struct ferry_migration *m, const struct ferry_error *cause,
	      struct ferry_error *err);
/* A new connection is up: postcopy-recover -> postcopy-active. */
void mig_recovered(struct ferry_migration *m);

/* Per-page hashes for the digest (docs/stream.md, "The digest"). */
struct page_hashes {
	uint64_t **h;	  /* h[block][page]: hash of the page as sent */
	uint64_t **exact; /* source: bit per page, set when h is the hash
			     of exactly the bytes sent (a copy) */
	uint64_t zero;	  /* the hash of a zero page */
};

int page_hashes_init(struct page_hashes *ph, const struct ferry_vm *vm,
		     struct ferry_error *err);
void page_hashes_free(struct page_hashes *ph, const struct ferry_vm *vm);

/* The rdma connection's figures into st (the caller holds m->lock). */
void mig_rdma_stats(struct rdma_conn *c, struct ferry_mig_stats *st);
/* A destination's listener refused a connection: count it and say why
 * (opaque: the migration). */
void mig_refused(void *opaque, const char *peer, const char *why);

/* The guest's RAM blocks as the rdma transport takes them; free() it. */
struct rdma_ram *mig_rdma_ram(const struct ferry_vm *vm);

void *mig_outgoing_main(void *arg);
void *mig_incoming_main(void *arg);

/* Return path, destination side: messages go out under a lock, from
 * whichever thread has something to say. */
struct rp_tx {
	int fd;
	pthread_mutex_t lock;
};

/* Pages a receiver found stale (a check record whose hash did not match),
 * batched per thread. */
struct rp_resends {
	uint8_t buf[RP_RESEND_MAX * 16];
	unsigned n;
	uint64_t total;
};

void rp_tx_init(struct rp_tx *tx, int fd);
void rp_tx_destroy(struct rp_tx *tx);
int rp_send_result(struct rp_tx *tx, int status, const char *msg);
int rp_resend_add(struct rp_tx *tx, struct rp_resends *r, uint32_t block_id,
		  uint64_t offset);
int rp_resend_flush(struct rp_tx *tx, struct rp_resends *r);
int rp_send_sync_ack(struct rp_tx *tx, uint64_t seq, unsigned channel);
/* Post-copy: ask for a page (the source's block id); say the guest runs. */
int rp_send_page_req(struct rp_tx *tx, uint32_t block_id, uint64_t offset);
int rp_send_running(struct rp_tx *tx);
/* Post-copy recovery: the pages held (a bit per page from `first` of the
 * source's block `block_id`, 1 = held), then the end of that list. */
int rp_send_held(struct rp_tx *tx, uint32_t block_id, uint64_t first,
		 const uint8_t *bits, uint32_t nbytes);
int rp_send_held_end(struct rp_tx *tx);
/* Point the return path at a new connection (-1: none, sends fail). */
void rp_tx_set_fd(struct rp_tx *tx, int fd);
/* Send a failure verdict and give the source time to read it before the
 * connection closes. */
void rp_fail_peer(struct rp_tx *tx, int rc, const char *msg);

/* Return path, source side: one thread reads, the engine asks. */
struct rp_rx {
	const struct ferry_vm *vm;
	int fd;
	pthread_t thread;
	bool live;
	bool reading; /* a thread reads fd (none for a peer that never
			 answers: file:) */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* lock: */
	bool have_result;
	int status; /* 0 resumed, else an errno */
	char msg[RP_RESULT_MSG_MAX + 1];
	bool closed; /* the connection ended or misbehaved */
	int close_rc;
	char close_msg[768];
	bool bad;      /* closed on a message that broke the rules: a
			  protocol violation, named in close_msg */
	bool end_sent; /* the source began its end of stream: only now may a
			  success verdict come (rp_end_begin) */
	uint64_t acked[FERRY_STREAM_MAX_CHANNELS + 1]; /* by channel */
	/* pages to send again, in full: a bit per page (global numbering by
	 * asked_first), so a page is asked for or not; rp_take_resends
	 * empties it at each sync, and a page asked for twice before that
	 * is a protocol violation (docs/stream.md, "Return path") */
	uint64_t *asked;
	uint64_t asked_pages;
	uint64_t resends;
	bool running; /* post-copy: the destination resumed the guest */
	uint64_t running_ns;
	/* post-copy: called on the reader's thread for each page asked for,
	 * under req_lock */
	pthread_mutex_t req_lock;
	void (*on_request)(void *opaque, uint32_t block, uint64_t page);
	void *req_opaque;
	/* post-copy recovery: set before rp_rx_start; the reader sets a bit
	 * per page held (global numbering by first_page), then waits after
	 * the end of the list until the engine says go on */
	_Atomic uint64_t *held;
	const uint64_t *first_page;
	bool held_done, go_on, stopping; /* lock */
	/* the reader's own: */
	uint64_t *asked_first; /* per block: its first page (asked) */
	uint64_t off; /* return-path bytes before the message being read */
};

/* fd < 0: nobody will answer (file:); the waits below then only time out
 * and nothing is ever asked again. */
int rp_rx_start(struct rp_rx *rx, const struct ferry_vm *vm, int fd);
void rp_rx_stop(struct rp_rx *rx);
/* Whether the destination has spoken (a verdict) or hung up. */
bool rp_spoke(struct rp_rx *rx);
int rp_wait_result(struct rp_rx *rx, int timeout_ms, int *status, char *msg,
		   size_t len, struct ferry_error *err);
/* Wait until each of `channels` acknowledged sync `seq`; -ECONNRESET
 * (err untouched) when the destination spoke or hung up first. */
int rp_wait_acks(struct rp_rx *rx, const unsigned *channels, unsigned n,
		 uint64_t seq, atomic_int *cancel, struct ferry_error *err);
/* Move the pages the destination asked for again into `into` (merged
 * into ranges); -ENOMEM. */
int rp_take_resends(struct rp_rx *rx, struct ferry_dirty_set *into);
/* The source is about to send its end of stream: from now on a success
 * verdict is the destination's answer to it.  -ECONNRESET (the caller
 * asks for the verdict) when the destination spoke or hung up first. */
int rp_end_begin(struct rp_rx *rx);
/* The protocol violation that closed the return path, in err; 0 when
 * none did. */
int rp_failure(struct rp_rx *rx, struct ferry_error *err);
/* Post-copy: route page requests to fn from now on. */
void rp_on_request(struct rp_rx *rx,
		   void (*fn)(void *opaque, uint32_t block, uint64_t page),
		   void *opaque);
/* Post-copy recovery: wait for the whole list of pages held; then let
 * the reader go on (to the page requests that follow it). */
int rp_wait_held(struct rp_rx *rx, int timeout_ms, struct ferry_error *err);
void rp_go_on(struct rp_rx *rx);
/* Post-copy: wait until the destination says the guest runs. */
int rp_wait_running(struct rp_rx *rx, int timeout_ms, uint64_t *when_ns,
		    struct ferry_error *err);

#endif
