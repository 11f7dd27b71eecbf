/*
 * placer.h - the destination's one writer of guest RAM (placer.c).
 *
 * Whatever comes off the wire and into guest memory goes through here: a
 * page the decoder checked and decoded, a zero run (a zero page record,
 * or an RDMA zero message), and the dropping of discarded pages at the
 * switch to post-copy.  The one exception is an RDMA WRITE, which the
 * hardware puts into RAM that the destination registered for it, before
 * the guest runs (docs/rdma.md).
 */
#ifndef FERRY_PLACER_H
#define FERRY_PLACER_H

#include "migration_internal.h"

struct pc_in;

/* What a connection's pages add up to. */
struct placer_tally {
	uint64_t duplicate, normal, unchanged, stale;
};

struct placer {
	const struct ferry_vm *vm;
	struct page_hashes *ph; /* each page's hash as placed */
	struct pc_in *pc;	/* post-copy's page maps, or NULL */
	/* set once post-copy runs: pages are placed atomically, once */
	atomic_int *pc_running;
	bool *anon;    /* [block]: MADV_REMOVE refused (private memory) */
	int pidfd;     /* ours, for process_madvise; -1 */
	bool no_pmadv; /* process_madvise refused MADV_DONTNEED */
};

int placer_init(struct placer *pl, const struct ferry_vm *vm,
		struct page_hashes *ph, struct pc_in *pc,
		atomic_int *pc_running, struct ferry_error *err);
void placer_free(struct placer *pl);

/*
 * Write a page record that the decoder matched against this guest's RAM
 * (ferry_stream_decoder_match_ram) and decoded, and note its hash: before
 * post-copy into RAM (a zero page only where the copy here is not zero
 * already, an XBZRLE delta onto the copy here); in post-copy only whole
 * pages, each atomically with UFFDIO_COPY or UFFDIO_ZEROPAGE unless it is
 * there already.  Returns 1 for a check record whose hash is not that of
 * the copy here (the source is to send the page again), 0, or a negative
 * errno with err set.  Threads may place at once, each its own pages
 * before post-copy, any pages in it.
 */
int placer_page(struct placer *pl, const struct ferry_stream_record *rec,
		struct placer_tally *t, struct ferry_error *err);

/* Before post-copy: len bytes at off of block ri become zero, written only
 * page by page where they are not zero already (an untouched page stays
 * unallocated).  It needs nothing but the guest's RAM: the RDMA
 * transport's thread calls it for the zero messages it receives. */
void placer_zero(const struct ferry_vm *vm, uint32_t ri, uint64_t off,
		 uint64_t len);

/*
 * Drop the pages of n ranges (a discard record's): they come again, in
 * post-copy.  Shared memory has its hole punched (MADV_REMOVE); private
 * memory is dropped in batches of ranges with one process_madvise call
 * each where the kernel takes MADV_DONTNEED there (Linux 6.16 and later
 * batch its TLB flushes too), else a madvise per range.
 */
int placer_discard(struct placer *pl, const struct ferry_stream_range *r,
		   uint32_t n, struct ferry_error *err);

#endif
