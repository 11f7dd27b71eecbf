/*
 * ferry/guest.h - the reference guest.
 *
 * A guest process as a library object: RAM blocks allocated with mmap,
 * filled with chosen content, vCPU threads that run a workload, an
 * always-on heartbeat vCPU that measures stalls, and run control.  It plugs
 * into the engine through ferry_guest_vm(), like any other VMM would.
 */
#ifndef FERRY_GUEST_H
#define FERRY_GUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/error.h"
#include "ferry/vm.h"

#define FERRY_GUEST_MAX_BLOCKS 16
#define FERRY_GUEST_MAX_VCPUS  64

enum ferry_fill {
	FERRY_FILL_RANDOM, /* every byte from a seeded generator */
	FERRY_FILL_ZERO,   /* untouched anonymous memory */
	FERRY_FILL_MIXED,  /* zero_percent of pages zero, the rest random */
	FERRY_FILL_TEXT,   /* pages of English-like words: compressible */
};

struct ferry_guest_config {
	uint64_t block_sizes[FERRY_GUEST_MAX_BLOCKS]; /* bytes; named ram0.. */
	unsigned nblocks;
	unsigned vcpus; /* workload vCPUs, heartbeat not counted */
	enum ferry_fill fill;
	unsigned zero_percent; /* for FERRY_FILL_MIXED */
	uint64_t seed;	       /* content and workload randomness */
	const char *workload;  /* "idle", "stress:bytes=..", "zipf:..." */
	const char *dirty;     /* "uffd" (default) or "explicit" */
	bool memfd;	       /* memfd-backed RAM instead of anonymous */
	bool prealloc;	       /* back all of RAM at creation (destinations) */
	unsigned heartbeat_us; /* heartbeat period, default 1000 */
};

struct ferry_guest_stats {
	uint64_t writes; /* page writes by all workload vCPUs */
	uint64_t heartbeat_ticks;
	uint64_t max_stall_us;	  /* longest gap beyond the period, ever */
	uint64_t window_stall_us; /* longest since the last window reset */
	bool running;
};

struct ferry_guest;

/* Parse "--fill" values: random, zero, mixed:Z. */
int ferry_fill_parse(const char *s, enum ferry_fill *fill,
		     unsigned *zero_percent, struct ferry_error *err);

/* Allocate and fill RAM, parse the workload, open the dirty tracker. */
int ferry_guest_create(const struct ferry_guest_config *cfg,
		       struct ferry_guest **out, struct ferry_error *err);

/* Start the vCPU threads, running or stopped (a destination loads state
 * into a stopped guest, then resumes it). */
int ferry_guest_start(struct ferry_guest *g, bool running,
		      struct ferry_error *err);

/* Park every vCPU at a safe point; returns once all are parked. */
int ferry_guest_stop(struct ferry_guest *g);
int ferry_guest_resume(struct ferry_guest *g);
bool ferry_guest_running(const struct ferry_guest *g);

void ferry_guest_stats(const struct ferry_guest *g,
		       struct ferry_guest_stats *st);
/* Start a new window for window_stall_us. */
void ferry_guest_reset_stall_window(struct ferry_guest *g);

/* The engine's view of this guest. */
const struct ferry_vm *ferry_guest_vm(struct ferry_guest *g);

/* Stop and join the vCPUs, unmap RAM. */
void ferry_guest_destroy(struct ferry_guest *g);

#endif
