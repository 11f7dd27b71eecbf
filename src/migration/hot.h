/*
 * hot.h - hot pages last (seed 004's prioritisation, applied to
 * pre-copy).  A page dirtied in each of the last two iterations is hot:
 * sending it again now is likely wasted, since it will be dirty again by
 * the next sync.  Hot pages are deferred, iteration after iteration, until
 * they cool down (a sync no longer reports them: then they go at once) or
 * until switch-over.  Bookkeeping costs 4 bytes per page and time in
 * proportion to the dirty pages.
 */
#ifndef FERRY_HOT_H
#define FERRY_HOT_H

#include "ferry/dirty.h"
#include "ferry/vm.h"

struct hot_pages {
	uint32_t **mark; /* per page: last iteration dirty << 8 | streak */
	size_t nblocks;
	struct ferry_dirty_set deferred; /* hot, not sent yet */
	uint64_t deferrals;		 /* pages deferred, counted each time */
};

int hot_init(struct hot_pages *hp, const struct ferry_vm *vm);
void hot_free(struct hot_pages *hp);
/*
 * Iteration `iteration` synced `sync`: fill `send` with what to send now
 * (cool pages, and deferred pages that cooled down) and keep the hot ones
 * in hp->deferred.
 */
int hot_split(struct hot_pages *hp, uint32_t iteration,
	      const struct ferry_dirty_set *sync, struct ferry_dirty_set *send);

#endif
