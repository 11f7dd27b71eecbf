/*
 * dirty_uffd.c - the "uffd" dirty tracker: userfaultfd write-protect in
 * async mode plus the PAGEMAP_SCAN ioctl.
 *
 * Start write-protects all of RAM.  With UFFD_FEATURE_WP_ASYNC the kernel
 * resolves a write to a protected page by itself (no fault message, no
 * thread of ours involved) and the page table entry loses its uffd-wp bit.
 * A sync asks PAGEMAP_SCAN for the pages whose bit is gone
 * (PAGE_IS_WRITTEN) and, in the same walk, protects them again
 * (PM_SCAN_WP_MATCHING): nothing written between the report and the
 * re-protect can be missed.  Needs Linux 6.7 or later.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dirty_internal.h"

/* Constants newer than the oldest linux-libc-dev we build against. */
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#ifndef PAGEMAP_SCAN
#define PAGE_IS_WRITTEN (1 << 1)
struct page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};
#define PM_SCAN_WP_MATCHING   (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#define VEC_LEN	      1024
#define PROTECT_CHUNK (64ull << 20) /* write-protect in pieces at start */

/*
 * A sync is one walk of the page tables of each RAM block.  Its cost is a
 * read of every page table entry (8 bytes per 4 KiB page; a clean 2 MiB
 * huge page is one entry) plus, for written pages only, re-protecting them
 * and flushing their TLB entries.  Measured on a 2-core VM, splitting the
 * walk over threads made it about four times slower (the walkers contend
 * on TLB shootdowns), so it stays on the syncing thread.
 */
struct uffd_state {
	int uffd;
	int pagemap;
};

static int open_uffd(struct ferry_error *err)
{
	int fd, dev, saved;

	fd = (int)syscall(SYS_userfaultfd,
			  O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd >= 0)
		return fd;
	saved = errno;
	if (saved == ENOSYS)
		return ferry_error_set(err, -ENOSYS,
				       "userfaultfd: this kernel was built "
				       "without it (CONFIG_USERFAULTFD); use "
				       "the explicit dirty tracker");
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW,
			   O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
		close(dev);
		if (fd >= 0)
			return fd;
	}
	return ferry_error_set(err, -saved,
			       "userfaultfd: %s: this process may not use "
			       "userfaultfd; run it as root or with "
			       "CAP_SYS_PTRACE, or set sysctl "
			       "vm.unprivileged_userfaultfd=1, or give it "
			       "read-write access to /dev/userfaultfd, or "
			       "use the explicit dirty tracker",
			       strerror(saved));
}

static void uffd_close(struct ferry_dirty *d)
{
	struct uffd_state *s = d->priv;

	if (!s)
		return;
	if (s->uffd >= 0)
		close(s->uffd); /* unregisters every range */
	if (s->pagemap >= 0)
		close(s->pagemap);
	free(s);
	d->priv = NULL;
}

static int uffd_open(struct ferry_dirty *d, struct ferry_error *err)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_WP_ASYNC |
			    UFFD_FEATURE_WP_UNPOPULATED |
			    UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
	};
	struct uffd_state *s;
	int rc;

	s = calloc(1, sizeof(*s));
	if (!s)
		return ferry_error_set(err, -ENOMEM,
				       "uffd tracker: out of "
				       "memory");
	s->uffd = s->pagemap = -1;
	d->priv = s;

	rc = open_uffd(err);
	if (rc < 0)
		goto fail;
	s->uffd = rc;
	if (ioctl(s->uffd, UFFDIO_API, &api) < 0) {
		rc = ferry_error_set(err, -errno,
				     "UFFDIO_API with UFFD_FEATURE_WP_ASYNC: "
				     "%s: asynchronous write-protect needs "
				     "Linux 6.7 or later; use the explicit "
				     "dirty tracker on older kernels",
				     strerror(errno));
		goto fail;
	}
	s->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (s->pagemap < 0) {
		rc = ferry_error_set(err, -errno, "open /proc/self/pagemap: %s",
				     strerror(errno));
		goto fail;
	}
	return 0;
fail:
	uffd_close(d);
	return rc;
}

static int protect(struct ferry_dirty *d, bool on, struct ferry_error *err)
{
	struct uffd_state *s = d->priv;
	size_t i;

	for (i = 0; i < d->nblocks; i++) {
		uint64_t off;

		/* In pieces, so no vCPU waits long on a page-table lock. */
		for (off = 0; off < d->blocks[i].length; off += PROTECT_CHUNK) {
			uint64_t len = d->blocks[i].length - off;
			struct uffdio_writeprotect wp;

			if (len > PROTECT_CHUNK)
				len = PROTECT_CHUNK;
			wp.range.start = (uintptr_t)d->blocks[i].host + off;
			wp.range.len = len;
			wp.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
			if (ioctl(s->uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
				return ferry_error_set(
					err, -errno,
					"UFFDIO_WRITEPROTECT on RAM block "
					"'%s' at offset 0x%" PRIx64 ": %s",
					d->blocks[i].name, off,
					strerror(errno));
		}
	}
	return 0;
}

/* Registered only while tracking, so that the same RAM can be registered
 * otherwise meanwhile (post-copy's missing-page faults on a destination). */
static void unregister(struct ferry_dirty *d, size_t n)
{
	struct uffd_state *s = d->priv;
	size_t i;

	for (i = 0; i < n; i++) {
		struct uffdio_range r = {
			.start = (uintptr_t)d->blocks[i].host,
			.len = d->blocks[i].length,
		};

		ioctl(s->uffd, UFFDIO_UNREGISTER, &r);
	}
}

static int uffd_start(struct ferry_dirty *d, struct ferry_error *err)
{
	struct uffd_state *s = d->priv;
	size_t i;
	int rc;

	for (i = 0; i < d->nblocks; i++) {
		struct uffdio_register reg = {
			.range = { .start = (uintptr_t)d->blocks[i].host,
				   .len = d->blocks[i].length },
			.mode = UFFDIO_REGISTER_MODE_WP,
		};

		if (ioctl(s->uffd, UFFDIO_REGISTER, &reg) < 0) {
			rc = ferry_error_set(err, -errno,
					     "UFFDIO_REGISTER (write-protect) "
					     "on RAM block '%s': %s",
					     d->blocks[i].name,
					     strerror(errno));
			unregister(d, i);
			return rc;
		}
	}
	rc = protect(d, true, err);
	if (rc)
		unregister(d, d->nblocks);
	return rc;
}

static int uffd_sync(struct ferry_dirty *d, struct ferry_dirty_set *out,
		     struct ferry_error *err)
{
	struct uffd_state *s = d->priv;
	struct page_region vec[VEC_LEN];
	uint32_t i;

	for (i = 0; i < d->nblocks; i++) {
		uint64_t base = (uintptr_t)d->blocks[i].host;
		uint64_t end = base + d->blocks[i].length;
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
			.start = base,
			.end = end,
			.vec = (uintptr_t)vec,
			.vec_len = VEC_LEN,
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};

		while (arg.start < end) {
			int n = ioctl(s->pagemap, PAGEMAP_SCAN, &arg), k;

			if (n < 0)
				return ferry_error_set(
					err, -errno,
					"PAGEMAP_SCAN on RAM block '%s': %s%s",
					d->blocks[i].name, strerror(errno),
					errno == EINVAL
						? " (needs Linux 6.7 or later)"
						: "");
			for (k = 0; k < n; k++)
				if (ferry_dirty_set_add(
					    out, i,
					    (vec[k].start - base) >>
						    d->page_shift,
					    (vec[k].end - vec[k].start) >>
						    d->page_shift))
					return ferry_error_set(
						err, -ENOMEM,
						"dirty sync: out of memory");
			/* walk_end says where a full vector stopped the walk */
			if (arg.walk_end <= arg.start)
				break;
			arg.start = arg.walk_end;
		}
	}
	return 0;
}

static void uffd_stop(struct ferry_dirty *d)
{
	protect(d, false, NULL);
	unregister(d, d->nblocks);
}

const struct dirty_ops dirty_uffd_ops = {
	.name = "uffd",
	.needs_marks = false,
	.open = uffd_open,
	.start = uffd_start,
	.sync = uffd_sync,
	.stop = uffd_stop,
	.mark = NULL,
	.close = uffd_close,
};
