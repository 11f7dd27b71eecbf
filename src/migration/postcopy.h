/*
 * postcopy.h - post-copy, both sides (docs/stream.md, "Post-copy").
 *
 * Destination (postcopy_in.c): pages dropped by the source's discard
 * records are "missing"; the guest's faults on them are caught with
 * userfaultfd and asked for on the return path; the placer (placer.c)
 * places them with UFFDIO_COPY or UFFDIO_ZEROPAGE, once each, by these
 * maps.
 *
 * Source (postcopy_out.c): the pages still to send are a bitmap; the
 * return path's thread answers requests (the page and a window after it)
 * on the urgent connection, and the engine's thread sends the rest on the
 * main connection, from just past the last request.
 */
#ifndef FERRY_POSTCOPY_H
#define FERRY_POSTCOPY_H

#include "migration_internal.h"

struct pc_in {
	const struct ferry_vm *vm;
	struct rp_tx *tx;
	/* Where a faulted page comes from when nobody is asked on the
	 * return path (a lazy restore: the file), called on the fault
	 * thread; NULL: a page request to the source. */
	void (*fetch)(void *opaque, uint32_t ri, uint64_t page);
	void *fetch_opaque;
	int uffd, quit_fd;
	size_t registered; /* blocks registered with uffd */
	pthread_t fault_thread;
	bool thread_live;
	bool thread_ids;	    /* faults carry the faulting thread's id */
	_Atomic uint64_t **missing; /* [block] bitmap: dropped, not placed */
	_Atomic uint32_t **req_us;  /* [block][page]: when asked (us), 0 */
	uint32_t *src_id;	    /* [block]: the source's block id */
	uint64_t t0_ns;
	_Atomic uint64_t left, placed, requests;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* left reached 0 */
	uint32_t *lat;	     /* lock: request-to-placement, us */
	size_t nlat, lat_cap;
	/* blocktime, as QEMU counts it (runctl.vcpu_of says which thread
	 * is which vCPU; nvcpus 0 when it does not): per vCPU, the page it
	 * waits on (page_key()) or 0, since when, and its time blocked;
	 * the time all were blocked at once */
	unsigned nvcpus;
	struct pc_vcpu {
		uint64_t key;	   /* lock */
		uint64_t since_us; /* lock */
		uint64_t total_us; /* lock */
	} * vcpu;
	unsigned down;		 /* lock: vCPUs blocked now */
	uint64_t all_since_us;	 /* lock: when the last of them blocked */
	uint64_t all_blocked_us; /* lock */
};

int pc_in_init(struct pc_in *pc, const struct ferry_vm *vm, struct rp_tx *tx,
	       struct ferry_error *err);
/* Pages first..first+count-1 of block ri were dropped: they come again. */
void pc_in_mark_missing(struct pc_in *pc, uint32_t ri, uint64_t first,
			uint64_t count);
/* After a recovery, on the new connection: list the pages held, then ask
 * again for every page a vCPU waits on. */
int pc_in_resume(struct pc_in *pc, struct ferry_error *err);
/* Register RAM with userfaultfd and start the fault thread. */
int pc_in_start(struct pc_in *pc, struct ferry_error *err);
/* Whether a page is still to be placed. */
bool pc_in_missing(struct pc_in *pc, uint32_t ri, uint64_t page);
/* A page was placed (UFFDIO_COPY or UFFDIO_ZEROPAGE succeeded): true
 * when this call is the first to say so, and the waits on it end. */
bool pc_in_placed(struct pc_in *pc, uint32_t ri, uint64_t page);
/* Fail unless every dropped page has been placed. */
int pc_in_wait_all(struct pc_in *pc, int timeout_ms, struct ferry_error *err);
void pc_in_stats(struct pc_in *pc, struct ferry_mig_stats *st);
/* Stop the fault thread, unregister, free. */
void pc_in_free(struct pc_in *pc);

struct out;
struct sender;

struct pc_out {
	struct out *o;
	_Atomic uint64_t *todo; /* bitmap by global page: still to send */
	_Atomic uint64_t *held; /* recovery: what the destination holds */
	uint64_t *hot;		/* bitmap: written in the last iteration */
	uint64_t npages;
	_Atomic uint64_t left;
	_Atomic uint64_t hint;	   /* where the background goes on */
	atomic_bool live;	   /* answering requests */
	atomic_size_t waiting;	   /* a request is being answered */
	uint64_t last_req, window; /* the return path thread's */
	_Atomic uint64_t served;
	int rc; /* the first failure answering */
	struct ferry_error err;
};

int pc_out_init(struct pc_out *pc, struct out *o,
		const struct ferry_dirty_set *pending,
		const struct ferry_dirty_set *hot, struct ferry_error *err);
/* More pages to send (pending) and to send first (hot), before it
 * starts. */
void pc_out_add(struct pc_out *pc, const struct ferry_dirty_set *pending,
		const struct ferry_dirty_set *hot);
void pc_out_request(void *opaque, uint32_t block, uint64_t page);
int pc_out_start(struct pc_out *pc, struct ferry_error *err);
/* After a recovery: every page the destination does not hold (pc->held)
 * is to go again; answering resumes. */
void pc_out_resume(struct pc_out *pc);
/* On the engine's thread: send every page still to go. */
int pc_out_background(struct pc_out *pc, struct ferry_error *err);
int pc_out_stop(struct pc_out *pc, struct ferry_error *err);
void pc_out_free(struct pc_out *pc);

#endif
