/*
 * dirty_explicit.c - the "explicit" dirty tracker: writers call
 * ferry_dirty_mark() and the tracker keeps a two-level bitmap per block.
 *
 * Level 0 has a bit per page; level 1 has a bit per 64-bit word of level
 * 0 that may hold set bits.  mark() sets the page bit, then (when it was
 * newly set) the summary bit; sync() takes summary words with an atomic
 * exchange and only visits the page words they point at, so a sync costs
 * O(dirty pages + RAM/4096 pages), not O(RAM).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dirty_internal.h"

struct explicit_block {
	_Atomic uint64_t *pages;   /* bit per page */
	_Atomic uint64_t *summary; /* bit per word of pages[] */
	uint64_t npages;
	uint64_t nwords;
	uint64_t nsummary;
};

struct explicit_state {
	struct explicit_block *b;
};

static void explicit_close(struct ferry_dirty *d)
{
	struct explicit_state *s = d->priv;
	size_t i;

	if (!s)
		return;
	for (i = 0; i < d->nblocks; i++) {
		free((void *)s->b[i].pages);
		free((void *)s->b[i].summary);
	}
	free(s->b);
	free(s);
	d->priv = NULL;
}

static int explicit_open(struct ferry_dirty *d, struct ferry_error *err)
{
	struct explicit_state *s = calloc(1, sizeof(*s));
	size_t i;

	if (!s)
		goto oom;
	d->priv = s;
	s->b = calloc(d->nblocks, sizeof(*s->b));
	if (!s->b)
		goto oom;
	for (i = 0; i < d->nblocks; i++) {
		struct explicit_block *b = &s->b[i];

		b->npages = d->blocks[i].length >> d->page_shift;
		b->nwords = (b->npages + 63) / 64;
		b->nsummary = (b->nwords + 63) / 64;
		b->pages = calloc(b->nwords, sizeof(*b->pages));
		b->summary = calloc(b->nsummary, sizeof(*b->summary));
		if (!b->pages || !b->summary)
			goto oom;
	}
	return 0;
oom:
	explicit_close(d);
	return ferry_error_set(err, -ENOMEM,
			       "explicit dirty tracker: out of memory for "
			       "bitmaps");
}

static int explicit_start(struct ferry_dirty *d, struct ferry_error *err)
{
	struct explicit_state *s = d->priv;
	size_t i;
	uint64_t w;

	(void)err;
	for (i = 0; i < d->nblocks; i++) {
		for (w = 0; w < s->b[i].nwords; w++)
			atomic_store_explicit(&s->b[i].pages[w], 0,
					      memory_order_relaxed);
		for (w = 0; w < s->b[i].nsummary; w++)
			atomic_store_explicit(&s->b[i].summary[w], 0,
					      memory_order_relaxed);
	}
	atomic_thread_fence(memory_order_seq_cst);
	return 0;
}

static void explicit_mark(struct ferry_dirty *d, uint32_t block, uint64_t first,
			  uint64_t count)
{
	struct explicit_block *b =
		&((struct explicit_state *)d->priv)->b[block];
	uint64_t p = first, end = first + count;

	while (p < end) {
		uint64_t w = p / 64, bit = p % 64;
		uint64_t n = 64 - bit < end - p ? 64 - bit : end - p;
		uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;
		uint64_t old = atomic_fetch_or(&b->pages[w], mask);

		if ((old & mask) != mask)
			atomic_fetch_or(&b->summary[w / 64], 1ull << (w % 64));
		p += n;
	}
}

static int explicit_sync(struct ferry_dirty *d, struct ferry_dirty_set *out,
			 struct ferry_error *err)
{
	struct explicit_state *s = d->priv;
	uint32_t i;

	for (i = 0; i < d->nblocks; i++) {
		struct explicit_block *b = &s->b[i];
		uint64_t sw;

		for (sw = 0; sw < b->nsummary; sw++) {
			uint64_t sum;

			if (!atomic_load_explicit(&b->summary[sw],
						  memory_order_relaxed))
				continue;
			sum = atomic_exchange(&b->summary[sw], 0);
			while (sum) {
				uint64_t w = sw * 64 +
					     (uint64_t)__builtin_ctzll(sum);
				uint64_t bits =
					atomic_exchange(&b->pages[w], 0);

				sum &= sum - 1;
				while (bits) {
					unsigned lo =
						(unsigned)__builtin_ctzll(bits);
					uint64_t run = bits >> lo;
					unsigned len =
						run == ~0ull
							? 64
							: (unsigned)
								  __builtin_ctzll(
									  ~run);

					if (ferry_dirty_set_add(
						    out, i, w * 64 + lo, len))
						return ferry_error_set(
							err, -ENOMEM,
							"dirty sync: out of "
							"memory");
					bits &= len + lo >= 64
							? 0
							: ~0ull << (lo + len);
				}
			}
		}
	}
	return 0;
}

static void explicit_stop(struct ferry_dirty *d)
{
	(void)d;
}

const struct dirty_ops dirty_explicit_ops = {
	.name = "explicit",
	.needs_marks = true,
	.open = explicit_open,
	.start = explicit_start,
	.sync = explicit_sync,
	.stop = explicit_stop,
	.mark = explicit_mark,
	.close = explicit_close,
};
