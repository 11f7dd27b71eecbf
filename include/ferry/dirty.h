/*
 * ferry/dirty.h - dirty-page tracking behind one interface.
 *
 * A tracker watches a set of RAM blocks.  After ferry_dirty_start() every
 * write to guest RAM is recorded; ferry_dirty_sync() appends the pages
 * written since the previous sync (or start) to a ferry_dirty_set and
 * re-arms tracking for them.  A sync costs time in proportion to the dirty
 * pages, not to the size of RAM.
 *
 * Backends:
 *   "uffd"      userfaultfd write-protect in async mode plus the
 *               PAGEMAP_SCAN ioctl (Linux 6.7 or later): the kernel notes
 *               the writes, nothing in the guest changes.
 *   "explicit"  the writer calls ferry_dirty_mark() after each write: for
 *               tests and for embedders that already know what they wrote.
 */
#ifndef FERRY_DIRTY_H
#define FERRY_DIRTY_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/error.h"
#include "ferry/vm.h"

struct ferry_dirty;

/* A run of dirty pages: `count` pages from page `first` of block `block`
 * (an index into the array the tracker was opened with). */
struct ferry_dirty_range {
	uint32_t block;
	uint64_t first;
	uint64_t count;
};

struct ferry_dirty_set {
	struct ferry_dirty_range *ranges;
	size_t n;
	size_t cap;
	uint64_t pages; /* sum of counts */
};

void ferry_dirty_set_reset(struct ferry_dirty_set *s);
void ferry_dirty_set_free(struct ferry_dirty_set *s);
int ferry_dirty_set_add(struct ferry_dirty_set *s, uint32_t block,
			uint64_t first, uint64_t count);

/*
 * Open a tracker named `backend` ("uffd", "explicit") over `blocks`, which
 * must stay mapped until ferry_dirty_close().  Nothing is tracked until
 * ferry_dirty_start().
 */
int ferry_dirty_open(const char *backend, const struct ferry_ramblock *blocks,
		     size_t nblocks, uint32_t page_size,
		     struct ferry_dirty **out, struct ferry_error *err);

/* Start tracking: from now on, every page is clean until written. */
int ferry_dirty_start(struct ferry_dirty *d, struct ferry_error *err);

/* Append the pages written since the last sync or start; re-arm them. */
int ferry_dirty_sync(struct ferry_dirty *d, struct ferry_dirty_set *out,
		     struct ferry_error *err);

/* Stop tracking; writes no longer cost anything. */
void ferry_dirty_stop(struct ferry_dirty *d);

/* Record a write (explicit backend; other backends ignore it). */
void ferry_dirty_mark(struct ferry_dirty *d, uint32_t block, uint64_t offset,
		      uint64_t len);

/* True when writers must call ferry_dirty_mark() for writes to count. */
bool ferry_dirty_needs_marks(const struct ferry_dirty *d);

const char *ferry_dirty_backend(const struct ferry_dirty *d);

void ferry_dirty_close(struct ferry_dirty *d);

#endif
