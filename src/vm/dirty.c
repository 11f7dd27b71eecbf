/* dirty.c - the dirty tracker interface: backend lookup and dirty sets. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dirty_internal.h"

static const struct dirty_ops *const backends[] = {
	&dirty_uffd_ops,
	&dirty_explicit_ops,
};

void ferry_dirty_set_reset(struct ferry_dirty_set *s)
{
	s->n = 0;
	s->pages = 0;
}

void ferry_dirty_set_free(struct ferry_dirty_set *s)
{
	free(s->ranges);
	memset(s, 0, sizeof(*s));
}

int ferry_dirty_set_add(struct ferry_dirty_set *s, uint32_t block,
			uint64_t first, uint64_t count)
{
	struct ferry_dirty_range *last = s->n ? &s->ranges[s->n - 1] : NULL;

	if (!count)
		return 0;
	if (last && last->block == block &&
	    last->first + last->count == first) {
		last->count += count;
		s->pages += count;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		struct ferry_dirty_range *r =
			realloc(s->ranges, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		s->ranges = r;
		s->cap = cap;
	}
	s->ranges[s->n++] = (struct ferry_dirty_range){ block, first, count };
	s->pages += count;
	return 0;
}

int ferry_dirty_open(const char *backend, const struct ferry_ramblock *blocks,
		     size_t nblocks, uint32_t page_size,
		     struct ferry_dirty **out, struct ferry_error *err)
{
	const struct dirty_ops *ops = NULL;
	struct ferry_dirty *d;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i]->name, backend))
			ops = backends[i];
	if (!ops)
		return ferry_error_set(err, -EINVAL,
				       "unknown dirty tracker '%s' (known: "
				       "uffd, explicit)",
				       backend);
	if (!page_size || (page_size & (page_size - 1)))
		return ferry_error_set(err, -EINVAL,
				       "dirty tracker: page size %u is not a "
				       "power of two",
				       page_size);
	d = calloc(1, sizeof(*d));
	if (!d)
		return ferry_error_set(err, -ENOMEM,
				       "dirty tracker: out of "
				       "memory");
	d->ops = ops;
	d->blocks = blocks;
	d->nblocks = nblocks;
	d->page_size = page_size;
	d->page_shift = (unsigned)__builtin_ctz(page_size);
	rc = ops->open(d, err);
	if (rc) {
		free(d);
		return rc;
	}
	*out = d;
	return 0;
}

int ferry_dirty_start(struct ferry_dirty *d, struct ferry_error *err)
{
	int rc = d->ops->start(d, err);

	if (!rc)
		atomic_store(&d->tracking, true);
	return rc;
}

int ferry_dirty_sync(struct ferry_dirty *d, struct ferry_dirty_set *out,
		     struct ferry_error *err)
{
	if (!atomic_load(&d->tracking))
		return ferry_error_set(err, -EINVAL,
				       "dirty tracker '%s': "
				       "sync before start",
				       d->ops->name);
	return d->ops->sync(d, out, err);
}

void ferry_dirty_stop(struct ferry_dirty *d)
{
	if (!atomic_exchange(&d->tracking, false))
		return;
	d->ops->stop(d);
}

void ferry_dirty_mark(struct ferry_dirty *d, uint32_t block, uint64_t offset,
		      uint64_t len)
{
	uint64_t first, last;

	if (!d || !d->ops->mark || !len ||
	    !atomic_load_explicit(&d->tracking, memory_order_relaxed))
		return;
	if (block >= d->nblocks || offset >= d->blocks[block].length)
		return;
	if (len > d->blocks[block].length - offset)
		len = d->blocks[block].length - offset;
	first = offset >> d->page_shift;
	last = (offset + len - 1) >> d->page_shift;
	d->ops->mark(d, block, first, last - first + 1);
}

bool ferry_dirty_needs_marks(const struct ferry_dirty *d)
{
	return d->ops->needs_marks;
}

const char *ferry_dirty_backend(const struct ferry_dirty *d)
{
	return d->ops->name;
}

void ferry_dirty_close(struct ferry_dirty *d)
{
	if (!d)
		return;
	ferry_dirty_stop(d);
	d->ops->close(d);
	free(d);
}
