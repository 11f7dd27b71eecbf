/*
 * migration_internal.h - the engine's insides, shared by migration.c
 * (object, states, statistics), outgoing.c (source) and incoming.c
 * (destination).
 */
#ifndef FERRY_MIGRATION_INTERNAL_H
#define FERRY_MIGRATION_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "ferry/migration.h"
#include "ferry/stream.h"

/* The destination's answer after the end of stream: docs/stream.md,
 * "Return path". */
#define MIG_RESULT_MAGIC      "FERRYRES"
#define MIG_RESULT_HDR_LEN    16
#define MIG_RESULT_MSG_MAX    1024
#define MIG_RESULT_TIMEOUT_MS 60000

struct ferry_migration {
	const struct ferry_vm *vm;
	ferry_mig_event_fn event_fn;
	void *event_opaque;

	pthread_mutex_t lock;
	struct ferry_mig_params params; /* lock */
	struct ferry_mig_stats stats;	/* lock, state included */
	pthread_t thread;
	bool thread_live;  /* lock */
	atomic_int cancel; /* set by ferry_migration_cancel */
	/* the connections (0 = main), -1 when none; cancel shuts them */
	atomic_int fds[FERRY_STREAM_MAX_CHANNELS + 1];
	int listen_fd; /* destination, engine thread */
	char uri[256];

	uint64_t t_start_ns;
};

uint64_t mig_now_ns(void);

/* Move from `from` to `to` if the table allows it and the state is still
 * `from`; emits the event.  Returns false when the state was another. */
bool mig_set_state(struct ferry_migration *m, enum ferry_mig_state from,
		   enum ferry_mig_state to);
enum ferry_mig_state mig_state(struct ferry_migration *m);

/* Record why the migration failed (first message wins) and move to
 * FAILED, or to CANCELLED when a cancel was asked for. */
void mig_fail(struct ferry_migration *m, const struct ferry_error *err);

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

void *mig_outgoing_main(void *arg);
void *mig_incoming_main(void *arg);

/* Return path: the destination's verdict. */
int mig_send_result(int fd, int status, const char *msg);
int mig_recv_result(int fd, int timeout_ms, int *status, char *msg, size_t len,
		    struct ferry_error *err);
/* Source: whether the destination has spoken (a verdict, or a hang-up). */
bool mig_result_pending(int fd);
/* Destination: send a failure verdict and give the source time to read
 * it before the connection closes. */
void mig_fail_peer(int fd, int rc, const char *msg);

#endif
