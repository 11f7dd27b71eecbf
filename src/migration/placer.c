/*
 * placer.c - the destination's one writer of guest RAM (placer.h).
 *
 * Before post-copy the guest is stopped and a page channel owns its
 * pages, so a page is copied into RAM as it comes.  Once post-copy runs
 * the guest's vCPUs read RAM while pages arrive, from two connections at
 * once, so a page is placed with UFFDIO_COPY (or UFFDIO_ZEROPAGE), which
 * maps it whole and wakes whoever faulted on it; the page maps of
 * postcopy_in.c say which pages are still missing, and a page placed once
 * is never placed again.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "codec.h"
#include "placer.h"
#include "postcopy.h"

/* ranges dropped with one process_madvise call (the kernel's IOV_MAX) */
#define DISCARD_BATCH 1024

#ifndef MADV_REMOVE
#define MADV_REMOVE 9
#endif

int placer_init(struct placer *pl, const struct ferry_vm *vm,
		struct page_hashes *ph, struct pc_in *pc,
		atomic_int *pc_running, struct ferry_error *err)
{
	*pl = (struct placer){ .vm = vm,
			       .ph = ph,
			       .pc = pc,
			       .pc_running = pc_running,
			       .pidfd = -1 };
	pl->anon = calloc(vm->nblocks ? vm->nblocks : 1, sizeof(*pl->anon));
	if (!pl->anon)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	return 0;
}

void placer_free(struct placer *pl)
{
	free(pl->anon);
	pl->anon = NULL;
	if (pl->pidfd >= 0)
		close(pl->pidfd);
	pl->pidfd = -1;
}

/* Post-copy: the page, whole, atomically, unless it is there. */
static int place_atomic(struct placer *pl, uint32_t ri, uint64_t pg,
			const struct ferry_stream_record *rec,
			struct placer_tally *t, struct ferry_error *err)
{
	const struct ferry_ramblock *b = &pl->vm->blocks[ri];
	enum ferry_page_encoding enc = rec->u.page.encoding;
	const uint8_t *data = rec->u.page.data;
	uint32_t ps = pl->vm->page_size;
	uintptr_t dst = (uintptr_t)(b->host + pg * ps);
	int rc;

	if (enc != FERRY_PAGE_RAW && enc != FERRY_PAGE_ZERO &&
	    enc != FERRY_PAGE_ZSTD && enc != FERRY_PAGE_LZ4)
		return ferry_error_set(err, -EPROTO,
				       "stream offset %" PRIu64
				       ": a page encoded as %u in post-copy "
				       "(only whole pages can be placed)",
				       rec->stream_offset, enc);
	if (!pc_in_missing(pl->pc, ri, pg))
		return 0; /* placed already, or never dropped */
	for (;;) {
		if (enc != FERRY_PAGE_ZERO) {
			struct uffdio_copy c = { .dst = dst,
						 .src = (uintptr_t)data,
						 .len = ps };

			rc = ioctl(pl->pc->uffd, UFFDIO_COPY, &c);
		} else {
			struct uffdio_zeropage z = { .range = { .start = dst,
								.len = ps } };

			rc = ioctl(pl->pc->uffd, UFFDIO_ZEROPAGE, &z);
		}
		if (rc == 0 || errno != EAGAIN)
			break;
	}
	if (rc && errno == EEXIST)
		return 0; /* the other connection placed it first */
	if (rc)
		return ferry_error_set(err, -errno,
				       "post-copy: placing page %" PRIu64
				       " of RAM block '%s': %s",
				       pg, b->name, strerror(errno));
	if (!pc_in_placed(pl->pc, ri, pg))
		return 0;
	if (enc == FERRY_PAGE_ZERO) {
		pl->ph->h[ri][pg] = pl->ph->zero;
		t->duplicate++;
	} else {
		pl->ph->h[ri][pg] = ferry_page_hash(data, ps);
		t->normal++;
	}
	return 0;
}

int placer_page(struct placer *pl, const struct ferry_stream_record *rec,
		struct placer_tally *t, struct ferry_error *err)
{
	uint32_t ri = rec->u.page.ram_index, ps = pl->vm->page_size;
	uint64_t pg = rec->u.page.offset / ps;
	uint8_t *dst = pl->vm->blocks[ri].host + rec->u.page.offset;
	struct page_hashes *ph = pl->ph;

	if (pl->pc_running && atomic_load(pl->pc_running))
		return place_atomic(pl, ri, pg, rec, t, err);
	switch (rec->u.page.encoding) {
	case FERRY_PAGE_ZERO:
		if (!codec_is_zero(dst, ps))
			memset(dst, 0, ps);
		ph->h[ri][pg] = ph->zero;
		t->duplicate++;
		return 0;
	case FERRY_PAGE_UNCHANGED:
	case FERRY_PAGE_UNCHANGED_RUN:
		/* the copy here stays, and so its hash */
		t->unchanged += rec->u.page.run;
		return 0;
	case FERRY_PAGE_CHECK:
		if (rec->u.page.check_hash == ph->h[ri][pg]) {
			t->unchanged++;
			return 0;
		}
		t->stale++;
		return 1;
	case FERRY_PAGE_XBZRLE:
		if (xbzrle_decode(rec->u.page.data, rec->u.page.len, dst, ps))
			return ferry_error_set(err, -EBADMSG,
					       "stream offset %" PRIu64
					       ": xbzrle page record's delta "
					       "is malformed or runs past the "
					       "page",
					       rec->stream_offset);
		break;
	default: /* raw, or decompressed */
		memcpy(dst, rec->u.page.data, ps);
	}
	ph->h[ri][pg] = ferry_page_hash(dst, ps);
	t->normal++;
	return 0;
}

/* len bytes at p all zero (the fast check where it can take them) */
static bool all_zero(const uint8_t *p, size_t len)
{
	if (len % 128 == 0)
		return codec_is_zero(p, len);
	while (len--)
		if (*p++)
			return false;
	return true;
}

void placer_zero(const struct ferry_vm *vm, uint32_t ri, uint64_t off,
		 uint64_t len)
{
	uint8_t *host = vm->blocks[ri].host;
	uint32_t ps = vm->page_size;
	uint64_t end = off + len;

	while (off < end) {
		/* to the next page boundary, or the end */
		size_t n = ps - off % ps;

		if (n > end - off)
			n = (size_t)(end - off);
		if (!all_zero(host + off, n))
			memset(host + off, 0, n);
		off += n;
	}
}

static int drop_failed(const struct iovec *v, struct ferry_error *err)
{
	return ferry_error_set(err, -errno,
			       "post-copy: dropping %zu bytes of RAM at %p: %s",
			       v->iov_len, v->iov_base, strerror(errno));
}

/* Private RAM: v[0..n) dropped, in one call where the kernel can. */
static int drop_private(struct placer *pl, const struct iovec *v, size_t n,
			struct ferry_error *err)
{
	size_t i, want = 0;

	for (i = 0; i < n; i++)
		want += v[i].iov_len;
	if (!pl->no_pmadv && pl->pidfd < 0) {
		pl->pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
		pl->no_pmadv = pl->pidfd < 0;
	}
	if (!pl->no_pmadv) {
		long r = syscall(SYS_process_madvise, pl->pidfd, v, n,
				 MADV_DONTNEED, 0);

		if (r == (long)want)
			return 0;
		if (r < 0 && (errno == EINVAL || errno == ENOSYS ||
			      errno == EPERM || errno == EOPNOTSUPP))
			pl->no_pmadv = true; /* this kernel: madvise */
		/* a part: the rest one by one (again is harmless) */
	}
	for (i = 0; i < n; i++)
		if (madvise(v[i].iov_base, v[i].iov_len, MADV_DONTNEED))
			return drop_failed(&v[i], err);
	return 0;
}

int placer_discard(struct placer *pl, const struct ferry_stream_range *r,
		   uint32_t n, struct ferry_error *err)
{
	struct iovec v[DISCARD_BATCH];
	uint32_t ps = pl->vm->page_size, i;
	size_t nv = 0;
	int rc = 0;

	for (i = 0; !rc && i < n; i++) {
		uint32_t ri = r[i].ram_index;
		uint8_t *p = pl->vm->blocks[ri].host + r[i].first * ps;
		size_t len = r[i].count * ps;

		pc_in_mark_missing(pl->pc, ri, r[i].first, r[i].count);
		/* shared memory (memfd) keeps pages unless the hole is
		 * punched; private memory refuses that (EINVAL), once per
		 * block */
		if (!pl->anon[ri]) {
			if (!madvise(p, len, MADV_REMOVE))
				continue;
			if (errno == EINVAL)
				pl->anon[ri] = true;
		}
		v[nv++] = (struct iovec){ p, len };
		if (nv == DISCARD_BATCH) {
			rc = drop_private(pl, v, nv, err);
			nv = 0;
		}
	}
	if (!rc && nv)
		rc = drop_private(pl, v, nv, err);
	return rc;
}
