/*
 * guest_internal.h - the reference guest's insides, shared by the files
 * of src/machine/reference/ and by tests that step vCPUs by hand.
 */
#ifndef FERRY_GUEST_INTERNAL_H
#define FERRY_GUEST_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "ferry/dirty.h"
#include "ferry/guest.h"
#include "heartbeat.h"
#include "workload.h"

#define CPU_SECTION_VERSION 1

struct ferry_guest;

struct guest_vcpu {
	struct ferry_guest *g;
	unsigned index;
	bool runs_workload; /* index < workload threads */
	pthread_t thread;
	bool thread_started;
	_Atomic pid_t tid;	 /* its thread's gettid(), once it runs */
	struct wl_regs regs;	 /* own thread while running; anyone while
				    the guest is stopped */
	_Atomic uint64_t writes; /* page writes, for stats */
};

struct ferry_guest {
	struct ferry_guest_config cfg;
	uint32_t page_size;
	struct ferry_ramblock blocks[FERRY_GUEST_MAX_BLOCKS];
	size_t nblocks;
	struct guest_mem mem;
	struct workload wl;
	uint64_t wl_fingerprint; /* workload and its parameters */
	struct ferry_dirty *dirty;

	struct guest_vcpu vcpus[FERRY_GUEST_MAX_VCPUS];
	unsigned nvcpus;
	struct heartbeat hb;
	pthread_t hb_thread;
	bool hb_started;

	/* run control */
	pthread_mutex_t lock;
	pthread_cond_t wake;   /* parked, idle and pacing vCPUs wait here */
	pthread_cond_t parked; /* stop() waits here for every vCPU */
	atomic_bool stop_req;  /* set while stopping or stopped */
	bool quit;	       /* lock */
	bool started;	       /* lock */
	unsigned nthreads;     /* lock: vCPU threads including heartbeat */
	unsigned nparked;      /* lock */
	atomic_uint throttle;  /* percent of time the vCPUs sleep */

	struct ferry_section sections[FERRY_GUEST_MAX_VCPUS + 1];
	size_t nsections;
	struct ferry_vm vm;
};

/* ram.c */
int guest_ram_alloc(struct ferry_guest *g, struct ferry_error *err);
void guest_ram_fill(struct ferry_guest *g);
void guest_ram_free(struct ferry_guest *g);

/*
 * Run `steps` workload steps of vCPU `vcpu` on this thread.  The guest
 * must be stopped.  Steps depend only on registers and RAM, so two guests
 * with equal RAM and registers stay equal step for step.
 */
int guest_step(struct ferry_guest *g, unsigned vcpu, unsigned steps);

#endif
