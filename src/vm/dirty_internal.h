/*
 * dirty_internal.h - the plug-in point for dirty trackers.
 *
 * A backend is a `struct dirty_ops` with a name, found by that name in
 * dirty.c's table.  Adding a backend means adding a file and a line there.
 */
#ifndef FERRY_DIRTY_INTERNAL_H
#define FERRY_DIRTY_INTERNAL_H

#include <stdatomic.h>

#include "ferry/dirty.h"

struct dirty_ops {
	const char *name;
	bool needs_marks;
	int (*open)(struct ferry_dirty *d, struct ferry_error *err);
	int (*start)(struct ferry_dirty *d, struct ferry_error *err);
	int (*sync)(struct ferry_dirty *d, struct ferry_dirty_set *out,
		    struct ferry_error *err);
	void (*stop)(struct ferry_dirty *d);
	void (*mark)(struct ferry_dirty *d, uint32_t block, uint64_t first,
		     uint64_t count);
	void (*close)(struct ferry_dirty *d);
};

struct ferry_dirty {
	const struct dirty_ops *ops;
	const struct ferry_ramblock *blocks;
	size_t nblocks;
	uint32_t page_size;
	unsigned page_shift;
	atomic_bool tracking; /* set between start and stop */
	void *priv;	      /* the backend's state */
};

extern const struct dirty_ops dirty_uffd_ops;
extern const struct dirty_ops dirty_explicit_ops;

#endif
