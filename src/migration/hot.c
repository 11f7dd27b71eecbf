/* hot.c - deferring pages that are dirtied iteration after iteration. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hot.h"

#define HOT_STREAK 2 /* dirty in this many iterations in a row: hot */
#define ITER_MASK  0xffffffu

int hot_init(struct hot_pages *hp, const struct ferry_vm *vm)
{
	size_t i;

	memset(hp, 0, sizeof(*hp));
	hp->mark = calloc(vm->nblocks, sizeof(*hp->mark));
	if (!hp->mark)
		return -ENOMEM;
	hp->nblocks = vm->nblocks;
	for (i = 0; i < vm->nblocks; i++) {
		hp->mark[i] = calloc(vm->blocks[i].length / vm->page_size,
				     sizeof(uint32_t));
		if (!hp->mark[i]) {
			hot_free(hp);
			return -ENOMEM;
		}
	}
	return 0;
}

void hot_free(struct hot_pages *hp)
{
	size_t i;

	for (i = 0; hp->mark && i < hp->nblocks; i++)
		free(hp->mark[i]);
	free(hp->mark);
	hp->mark = NULL;
	ferry_dirty_set_free(&hp->deferred);
}

int hot_split(struct hot_pages *hp, uint32_t iteration,
	      const struct ferry_dirty_set *sync, struct ferry_dirty_set *send)
{
	struct ferry_dirty_set hot = { 0 };
	uint32_t it = iteration & ITER_MASK, prev = (iteration - 1) & ITER_MASK;
	size_t i;
	uint64_t k;
	int rc = 0;

	for (i = 0; i < sync->n && !rc; i++) {
		const struct ferry_dirty_range *r = &sync->ranges[i];

		for (k = 0; k < r->count && !rc; k++) {
			uint32_t *m = &hp->mark[r->block][r->first + k];
			uint32_t streak = (*m >> 8) == prev && (*m & 0xff)
						  ? (*m & 0xff) + 1
						  : 1;

			if (streak > 255)
				streak = 255;
			*m = it << 8 | streak;
			if (streak >= HOT_STREAK) {
				rc = ferry_dirty_set_add(&hot, r->block,
							 r->first + k, 1);
				hp->deferrals++;
			} else {
				rc = ferry_dirty_set_add(send, r->block,
							 r->first + k, 1);
			}
		}
	}
	/* deferred pages this sync did not report have cooled: send them */
	for (i = 0; i < hp->deferred.n && !rc; i++) {
		const struct ferry_dirty_range *r = &hp->deferred.ranges[i];

		for (k = 0; k < r->count && !rc; k++)
			if ((hp->mark[r->block][r->first + k] >> 8) != it)
				rc = ferry_dirty_set_add(send, r->block,
							 r->first + k, 1);
	}
	ferry_dirty_set_free(&hp->deferred);
	hp->deferred = hot;
	return rc ? -ENOMEM : 0;
}
