/*
 * rdma_out.c - the source's pages over rdma (docs/rdma.md).
 *
 * The main sender's stream goes on the control channel (rdma.h); pages do
 * not enter it.  Each page is hashed (for the digest) and written with
 * RDMA WRITE straight from guest RAM into the same place on the
 * destination; contiguous pages of a chunk become one write.  In the bulk
 * pass a chunk that is all zero goes as one zero message instead (the
 * seed's "compress"); since the destination applies those on its own
 * time, a sync follows such a pass, and the destination acknowledges it
 * only after them.  Other zero pages are written from a zero buffer, in
 * order with every other write: a message per scattered zero page would
 * cost more than its 4 KiB.
 *
 * This is the rdma page carrier (carrier.h), chosen for a transport with
 * TRANSPORT_RMA; its connection is o->rdma, which nothing else touches.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ferry/vm.h"
#include "outgoing.h"
#include "rdma.h"
#include "rdma_proto.h"
#include "transport.h"

static int page(struct sender *s, uint32_t bi, uint64_t pg,
		struct ferry_error *err)
{
	struct out *o = s->o;
	const struct ferry_ramblock *b = &o->vm->blocks[bi];
	uint32_t ps = o->vm->page_size;
	uint64_t off = pg * ps;
	const uint8_t *p = b->host + off;
	int rc;

	if (codec_is_zero(p, ps)) {
		o->ph.h[bi][pg] = o->ph.zero;
		s->n.duplicate++;
		rc = rdma_zero(o->rdma, bi, off, ps, false, err);
	} else {
		/* taken before the write: a racing store dirties the page,
		 * which then goes again (docs/stream.md, "The digest") */
		o->ph.h[bi][pg] = ferry_page_hash(p, ps);
		s->n.normal++;
		rc = rdma_write(o->rdma, bi, off, ps, err);
	}
	return rc ? rc : sender_page_sent(s, err);
}

static bool chunk_zero(const struct out *o, uint32_t bi, uint64_t first,
		       uint64_t n)
{
	uint32_t ps = o->vm->page_size;

	return codec_is_zero(o->vm->blocks[bi].host + first * ps, n * ps);
}

/* Pages [first, first + n) of block bi went in the bulk pass: if it
 * stops for post-copy, they are not sent again (out_bulk_set). */
static void mark_sent(struct out *o, uint32_t bi, uint64_t first, uint64_t n)
{
	for (uint64_t g = o->first_page[bi] + first, end = g + n;
	     o->bulk_sent && g < end; g++)
		atomic_fetch_or(&o->bulk_sent[g / 64], 1ull << (g % 64));
}

/* The bulk pass over one chunk of pages [first, first + n). */
static int bulk_chunk(struct sender *s, uint32_t bi, uint64_t first, uint64_t n,
		      bool zero, struct ferry_error *err)
{
	struct out *o = s->o;
	uint32_t ps = o->vm->page_size;
	uint64_t k;
	int rc = 0;

	if (!zero) {
		for (k = 0; k < n && !rc; k++) {
			rc = page(s, bi, first + k, err);
			if (!rc || rc == -EINTR) /* posted */
				mark_sent(o, bi, first + k, 1);
		}
		return rc;
	}
	rc = rdma_zero(o->rdma, bi, first * ps, n * ps, true, err);
	if (!rc)
		mark_sent(o, bi, first, n);
	for (k = 0; k < n && !rc; k++) {
		o->ph.h[bi][first + k] = o->ph.zero;
		s->n.duplicate++;
		rc = sender_page_sent(s, err);
	}
	return rc;
}

/* The bulk pass over a block, chunk by chunk.  The next chunk's key is
 * asked for while this one is written (unless it is all zero and needs
 * none), so the register round trip overlaps the writes. */
static int bulk_block(struct sender *s, uint32_t bi, struct ferry_error *err)
{
	struct out *o = s->o;
	uint64_t per_chunk = RDMA_CHUNK_SIZE / o->vm->page_size;
	uint64_t n = o->vm->blocks[bi].length / o->vm->page_size, k, len;
	bool zero = false, next_zero = false;
	int rc = 0;

	for (k = 0; k < n && !rc; k += per_chunk) {
		len = n - k < per_chunk ? n - k : per_chunk;
		zero = k ? next_zero : chunk_zero(o, bi, k, len);
		if (k + per_chunk < n) {
			uint64_t k2 = k + per_chunk;

			next_zero = chunk_zero(o, bi, k2,
					       n - k2 < per_chunk ? n - k2
								  : per_chunk);
			if (!next_zero)
				rc = rdma_prefetch(o->rdma, bi,
						   k2 * o->vm->page_size, err);
		}
		if (!rc)
			rc = bulk_chunk(s, bi, k, len, zero, err);
	}
	return rc;
}

/* Name what this pass wrote, in landed records of up to LANDED_BATCH
 * ranges (the format takes FERRY_STREAM_MAX_DISCARDS; a smaller batch
 * keeps the arrays on the stack): the set's ranges, or (bulk) every
 * block whole. */
#define LANDED_BATCH 256

static int put_landed(struct sender *s, const struct ferry_dirty_set *set)
{
	const struct ferry_vm *vm = s->o->vm;
	uint32_t ids[LANDED_BATCH];
	uint64_t first[LANDED_BATCH], count[LANDED_BATCH];
	size_t total = set ? set->n : vm->nblocks;
	uint32_t n = 0;
	int rc = 0;

	for (size_t i = 0; i < total && !rc; i++) {
		uint32_t bi = set ? set->ranges[i].block : (uint32_t)i;

		ids[n] = vm->blocks[bi].id;
		first[n] = set ? set->ranges[i].first : 0;
		count[n] = set ? set->ranges[i].count
			       : vm->blocks[bi].length / vm->page_size;
		if (++n == LANDED_BATCH || i + 1 == total) {
			rc = ferry_stream_put_landed(s->enc, ids, first, count,
						     n);
			n = 0;
		}
	}
	return rc ? rc : ferry_stream_flush(s->enc);
}

/* A sender's share of a set, flushed (and, after zero messages,
 * acknowledged); then, with landed records, named. */
static int rdma_send(struct sender *s, const struct ferry_dirty_set *set,
		     enum send_mode mode, struct ferry_error *err)
{
	const struct ferry_vm *vm = s->o->vm;
	struct out *o = s->o;
	struct rdma_stats before, after;
	struct ferry_dirty_set done = { 0 };
	bool stopped;
	uint64_t k;
	size_t i;
	int rc = 0;

	(void)mode; /* every pass sends pages whole */
	rdma_get_stats(o->rdma, &before);
	if (set) {
		for (i = 0; i < set->n && !rc; i++) {
			const struct ferry_dirty_range *r = &set->ranges[i];

			for (k = 0; k < r->count && !rc; k++)
				rc = page(s, r->block, r->first + k, err);
		}
	} else {
		for (i = 0; i < vm->nblocks && !rc; i++)
			rc = bulk_block(s, (uint32_t)i, err);
	}
	/* the bulk pass stopped for post-copy: what it wrote is finished
	 * and named as any pass's, before post-copy's discards */
	stopped = !set && rc == -EINTR && atomic_load(&o->bulk_abort);
	if (stopped) {
		ferry_error_clear(err);
		rc = out_bulk_set(o, true, &done);
		if (rc)
			rc = ferry_error_set(err, rc, "out of memory");
	}
	if (!rc)
		rc = rdma_flush(o->rdma, err);
	if (!rc) {
		rc = ferry_stream_flush(s->enc);
		if (rc)
			rc = peer_verdict(o, rc, err);
	}
	rdma_get_stats(o->rdma, &after);
	/* zero messages are applied by the destination as they come: the
	 * next pass may write the same pages only after they are done */
	if (!rc && after.zero_messages != before.zero_messages)
		rc = out_barrier(o, err);
	/* after the barrier: the destination hashes zeroed pages only once
	 * the zeroes are there */
	if (!rc && s->landed && (!stopped || done.n)) {
		rc = put_landed(s, stopped ? &done : set);
		if (rc)
			rc = peer_verdict(o, rc, err);
		/* and, while the guest runs, until it has hashed them: else a
		 * guest that converges at once (an idle one, after the bulk
		 * pass) would stop while the destination still hashes all of
		 * RAM, and that would be downtime */
		if (!rc && !o->final)
			rc = out_barrier(o, err);
	}
	ferry_dirty_set_free(&done);
	sender_publish(s);
	if (!rc && stopped) /* outgoing.c's precopy goes on to post-copy */
		return ferry_error_set(err, -EINTR,
				       "bulk pass stopped for post-copy");
	return rc;
}

static void rdma_out_stats(struct out *o, struct ferry_mig_stats *st);

/* Connect the main sender; its fd is the stream's socket.  Post-copy's
 * urgent sender gets the same connection's urgent stream (no other
 * sender is opened over rdma). */
static int rdma_open(struct out *o, struct sender *s, struct ferry_error *err)
{
	const struct ferry_vm *vm = o->vm;
	const struct transport_ops *t;
	struct ferry_mig_params p;
	struct rdma_ram *ram;
	const char *addr;
	int rc;

	if (s != &o->main) {
		if (!o->rdma || s != &o->urgent)
			return ferry_error_set(err, -EINVAL,
					       "rdma: a page channel without "
					       "the main connection");
		s->fd = rdma_urgent_fd(o->rdma);
		return 0;
	}
	rc = transport_find(o->m->uri, &t, &addr, err);
	if (rc)
		return rc;
	if (vm->page_size > RDMA_CHUNK_SIZE)
		return ferry_error_set(err, -ENOTSUP,
				       "rdma: pages of %u bytes are larger "
				       "than a chunk (%llu bytes)",
				       vm->page_size,
				       (unsigned long long)RDMA_CHUNK_SIZE);
	ram = mig_rdma_ram(vm);
	if (!ram)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	ferry_migration_get_params(o->m, &p);
	rc = rdma_transport_connect(addr, p.rdma_provider, p.rdma_pin_all, ram,
				    vm->nblocks, &o->rdma, err);
	free(ram);
	if (rc)
		return rc;
	s->fd = rdma_stream_fd(o->rdma);
	pthread_mutex_lock(&o->m->lock);
	rdma_out_stats(o, &o->m->stats);
	pthread_mutex_unlock(&o->m->lock);
	return 0;
}

static uint64_t rdma_out_wire_bytes(struct out *o)
{
	return o->rdma ? rdma_wire_bytes(o->rdma) : 0;
}

static void rdma_out_stats(struct out *o, struct ferry_mig_stats *st)
{
	mig_rdma_stats(o->rdma, st);
}

static void rdma_out_explain(struct out *o, struct ferry_error *err)
{
	if (o->rdma)
		rdma_explain(o->rdma, err);
}

static void rdma_out_close(struct out *o)
{
	if (!o->rdma)
		return;
	pthread_mutex_lock(&o->m->lock);
	rdma_out_stats(o, &o->m->stats);
	pthread_mutex_unlock(&o->m->lock);
	rdma_close(o->rdma);
	o->rdma = NULL;
}

const struct page_carrier_ops carrier_rdma = {
	.name = "rdma",
	.stream_flags = FERRY_STREAM_F_LANDED,
	.open = rdma_open,
	.send = rdma_send,
	.wire_bytes = rdma_out_wire_bytes,
	.stats = rdma_out_stats,
	.explain = rdma_out_explain,
	.close = rdma_out_close,
};
