/*
 * mapped_in.c - a restore from a mapped-ram file (mapped.h, docs/stream.md
 * "Mapped-ram files").
 *
 * When the restore opens the file (file:, or fd: of a file), its header
 * is read and checked against this guest's RAM, and the stream decoder is
 * pointed at the stream after the RAM region.  The stream carries no
 * page; when it has ended (settle), every page comes from its place in
 * the file: the bitmaps say which are there, runs of those are read
 * straight into guest RAM (the guest has not run: nothing else touches
 * it), the others are made zero, and each page is hashed for the digest
 * that the engine checks next.  With multifd, multifd-channels readers
 * share the work by 2 MiB granule, as the source's writers did; with
 * direct-io the pages are read through a descriptor opened O_DIRECT.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arrival.h"
#include "codec.h"
#include "le.h"
#include "mapped.h"
#include "migration_internal.h"
#include "placer.h"
#include "postcopy.h"

#define GRANULE_PAGES 512 /* the source's channels' share: 2 MiB */
#define ZERO_GAP      16  /* zero pages a read runs across (mapped_out.c) */
#define AHEAD	      4	  /* granules a reader has the kernel read ahead */

struct mapped_in {
	struct mapped_layout l;
	int fd;		  /* a descriptor of our own on the file */
	int pfd;	  /* the pages': fd, or O_DIRECT's */
	uint64_t base;	  /* the layout's start in the file */
	unsigned readers; /* threads reading pages */
	uint64_t **bits;  /* per block, loaded at settle */
	uint64_t *first;  /* per block: its first granule, across blocks */
	/* a lazy restore: pages placed through the placer into RAM that
	 * userfaultfd watches, on faults (the fault thread) and by the
	 * background readers */
	bool lazy;
	struct placer *pl;
	uint8_t *fbuf; /* the fault thread's window */
	struct reader *bg;
	unsigned nbg;
	pthread_mutex_t lock; /* err */
	int rc;		      /* lock: the first failure */
	struct ferry_error err;
};

struct reader {
	struct ferry_migration *m;
	struct page_hashes *ph;
	bool hash;
	unsigned index;
	pthread_t thread;
	int rc;
	struct ferry_error err;
};

static int pread_all(int fd, uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t r = pread(fd, p, len, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENODATA;
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

bool mapped_in_probe(int fd)
{
	uint8_t magic[8];
	off_t at = lseek(fd, 0, SEEK_CUR);

	if (at < 0 || pread(fd, magic, sizeof(magic), at) != sizeof(magic))
		return false;
	/* a stream starts with its own magic; a mapped-ram file with its
	 * header, or zeroes where that was never written */
	return !memcmp(magic, MAPPED_MAGIC, 8) ||
	       !memcmp(magic, "\0\0\0\0\0\0\0\0", 8);
}

static void mi_free(struct mapped_in *mi)
{
	free(mi->fbuf);
	free(mi->bg);
	if (mi->lazy)
		pthread_mutex_destroy(&mi->lock);
	for (uint32_t i = 0; mi->bits && i < mi->l.nblocks; i++)
		free(mi->bits[i]);
	free(mi->bits);
	free(mi->first);
	if (mi->pfd >= 0 && mi->pfd != mi->fd)
		close(mi->pfd);
	if (mi->fd >= 0)
		close(mi->fd);
	mapped_layout_free(&mi->l);
	free(mi);
}

/* The header, checked against this guest's RAM: the same blocks, in the
 * same order, of the same lengths and page size. */
static int check_guest(const struct ferry_vm *vm, const struct mapped_layout *l,
		       struct ferry_error *err)
{
	if (l->page_size != vm->page_size)
		return ferry_error_set(err, -EPROTO,
				       "another guest's save: pages of %u "
				       "bytes in the file, %u here",
				       l->page_size, vm->page_size);
	if (l->nblocks != vm->nblocks)
		return ferry_error_set(err, -EPROTO,
				       "another guest's save: %u RAM blocks "
				       "in the file, %zu here",
				       l->nblocks, (size_t)vm->nblocks);
	for (uint32_t i = 0; i < l->nblocks; i++)
		if (l->blocks[i].id != vm->blocks[i].id ||
		    l->blocks[i].length != vm->blocks[i].length)
			return ferry_error_set(
				err, -EPROTO,
				"another guest's save: RAM block %u is %s "
				"(%" PRIu64 " bytes) here and block id %u of "
				"%" PRIu64 " bytes in the file",
				i, vm->blocks[i].name, vm->blocks[i].length,
				l->blocks[i].id, l->blocks[i].length);
	return 0;
}

int mapped_in_open(struct ferry_migration *m, int fd, struct ferry_error *err)
{
	struct mapped_in *mi = calloc(1, sizeof(*mi));
	struct ferry_mig_params p;
	uint8_t *head = NULL;
	struct stat st;
	off_t at = lseek(fd, 0, SEEK_CUR);
	ssize_t got;
	int rc;

	if (!mi)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	mi->fd = mi->pfd = -1;
	if (at < 0 || fstat(fd, &st) < 0) {
		rc = ferry_error_set(err, -errno, "%s", strerror(errno));
		goto fail;
	}
	mi->base = (uint64_t)at;
	head = malloc(MAPPED_ALIGN);
	if (!head) {
		rc = ferry_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	got = pread(fd, head, MAPPED_ALIGN, at);
	if (got < 0) {
		rc = ferry_error_set(err, -errno, "reading the header: %s",
				     strerror(errno));
		goto fail;
	}
	rc = mapped_header_decode(head, (size_t)got,
				  (uint64_t)st.st_size - mi->base, &mi->l, err);
	if (!rc)
		rc = check_guest(m->vm, &mi->l, err);
	if (rc)
		goto fail;
	mi->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (mi->fd < 0 ||
	    lseek(fd, (off_t)(mi->base + mi->l.stream), SEEK_SET) < 0) {
		rc = ferry_error_set(err, -errno, "%s", strerror(errno));
		goto fail;
	}
	mi->pfd = mi->fd;
	ferry_migration_get_params(m, &p);
	mi->readers = p.multifd ? p.multifd_channels : 1;
	if (p.direct_io && mi->base % 4096) {
		rc = ferry_error_set(
			err, -EINVAL,
			"direct-io: the save starts at byte %" PRIu64
			", and O_DIRECT reads need it a multiple "
			"of 4096",
			mi->base);
		goto fail;
	}
	if (p.direct_io) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", mi->fd);
		mi->pfd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (mi->pfd < 0) {
			rc = ferry_error_set(err, -errno,
					     "direct-io: the file cannot be "
					     "opened with O_DIRECT (%s): its "
					     "file system may not take it; "
					     "turn direct-io off",
					     strerror(errno));
			mi->pfd = mi->fd;
			goto fail;
		}
	}
	free(head);
	m->mapped = mi;
	return 0;
fail:
	free(head);
	mi_free(mi);
	return rc;
}

static int load_bitmaps(struct mapped_in *mi, struct ferry_error *err)
{
	uint64_t granules = 0;
	int rc;

	mi->bits = calloc(mi->l.nblocks, sizeof(*mi->bits));
	mi->first = calloc(mi->l.nblocks, sizeof(*mi->first));
	if (!mi->bits || !mi->first)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < mi->l.nblocks; i++) {
		const struct mapped_block *b = &mi->l.blocks[i];
		uint8_t *raw = malloc(b->bitmap_len);

		mi->bits[i] = malloc(b->bitmap_len);
		if (!raw || !mi->bits[i]) {
			free(raw);
			return ferry_error_set(err, -ENOMEM, "out of memory");
		}
		rc = pread_all(mi->fd, raw, b->bitmap_len,
			       mi->base + b->bitmap);
		for (uint64_t k = 0; !rc && k < b->bitmap_len / 8; k++)
			mi->bits[i][k] = le64_load(raw + k * 8);
		free(raw);
		if (rc)
			return ferry_error_set(err, rc,
					       "reading the bitmap of RAM "
					       "block %u: %s",
					       b->id, strerror(-rc));
		mi->first[i] = granules;
		granules += (b->length / mi->l.page_size + GRANULE_PAGES - 1) /
			    GRANULE_PAGES;
	}
	return 0;
}

static bool present(const struct mapped_in *mi, uint32_t bi, uint64_t pg)
{
	return mi->bits[bi][pg / 64] >> (pg % 64) & 1;
}

/* Pages [first, first + n) of block bi, from the first page in the file
 * to the last, read as one; those among them whose bit is clear (what
 * their places hold does not count) made zero; each hashed. */
static int read_run(struct reader *r, uint32_t bi, uint64_t first, uint64_t n)
{
	struct mapped_in *mi = r->m->mapped;
	const struct ferry_vm *vm = r->m->vm;
	uint32_t ps = vm->page_size;
	uint8_t *host = vm->blocks[bi].host + first * ps;
	int rc = pread_all(mi->pfd, host, n * ps,
			   mi->base + mi->l.blocks[bi].pages + first * ps);

	for (uint64_t k = 0; !rc && k < n; k++)
		if (!present(mi, bi, first + k))
			memset(host + k * ps, 0, ps);

	if (rc)
		return ferry_error_set(&r->err, rc,
				       "reading %" PRIu64 " pages of RAM "
				       "block %s at page %" PRIu64 ": %s",
				       n, vm->blocks[bi].name, first,
				       rc == -ENODATA ? "the file ends there"
						      : strerror(-rc));
	for (uint64_t k = 0; r->hash && k < n; k++)
		r->ph->h[bi][first + k] = ferry_page_hash(host + k * ps, ps);
	return 0;
}

/* A zero page not read: made zero, unless it is (untouched memory stays
 * unallocated). */
static void zero_page(struct reader *r, uint32_t bi, uint64_t k)
{
	const struct ferry_vm *vm = r->m->vm;
	uint8_t *p = vm->blocks[bi].host + k * vm->page_size;

	if (!codec_is_zero(p, vm->page_size))
		memset(p, 0, vm->page_size);
	if (r->hash)
		r->ph->h[bi][k] = r->ph->zero;
}

/* One granule of block bi: runs of pages in the file read as one, across
 * fewer than ZERO_GAP zero pages (as the source wrote them); the rest
 * made zero. */
static int granule(struct reader *r, uint32_t bi, uint64_t g)
{
	struct mapped_in *mi = r->m->mapped;
	const struct ferry_vm *vm = r->m->vm;
	uint64_t n = vm->blocks[bi].length / vm->page_size;
	uint64_t k = g * GRANULE_PAGES, end = k + GRANULE_PAGES;
	uint64_t first = 0, last = 0; /* a run: pages in the file */
	bool open = false;
	int rc = 0;

	if (end > n)
		end = n;
	for (; k < end && !rc; k++) {
		if (!present(mi, bi, k))
			continue;
		if (open && k - last <= ZERO_GAP) {
			last = k;
			continue;
		}
		if (open) {
			rc = read_run(r, bi, first, last + 1 - first);
			for (uint64_t z = last + 1; z < k; z++)
				zero_page(r, bi, z);
		} else {
			for (uint64_t z = g * GRANULE_PAGES; z < k; z++)
				zero_page(r, bi, z);
		}
		first = last = k;
		open = true;
	}
	if (!rc && open)
		rc = read_run(r, bi, first, last + 1 - first);
	for (k = open ? last + 1 : g * GRANULE_PAGES; !rc && k < end; k++)
		zero_page(r, bi, k);
	return rc;
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct mapped_in *mi = r->m->mapped;
	const struct ferry_vm *vm = r->m->vm;

	for (uint32_t bi = 0; bi < vm->nblocks && !r->rc; bi++) {
		uint64_t n = vm->blocks[bi].length / vm->page_size;
		uint64_t gs = (n + GRANULE_PAGES - 1) / GRANULE_PAGES;

		for (uint64_t g = 0; g < gs && !r->rc; g++) {
			uint64_t ahead = g + AHEAD * mi->readers;

			if ((mi->first[bi] + g) % mi->readers != r->index)
				continue;
			/* the kernel reads a later granule of this reader's
			 * while this one is hashed: one thread overlaps its
			 * reads with its work */
			if (ahead < gs)
				(void)posix_fadvise(
					mi->pfd,
					(off_t)(mi->base +
						mi->l.blocks[bi].pages +
						ahead * GRANULE_PAGES *
							vm->page_size),
					(off_t)GRANULE_PAGES * vm->page_size,
					POSIX_FADV_WILLNEED);
			r->rc = granule(r, bi, g);
		}
	}
	return NULL;
}

int mapped_in_settle(struct ferry_migration *m, struct page_hashes *ph,
		     bool hash, struct ferry_error *err)
{
	struct mapped_in *mi = m->mapped;
	struct reader *r;
	unsigned i, started = 0;
	int rc;

	if (mi->lazy) /* placed already, each hashed as placed */
		return 0;
	rc = load_bitmaps(mi, err);
	if (rc)
		return rc;
	r = calloc(mi->readers, sizeof(*r));
	if (!r)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	for (i = 0; i < mi->readers; i++)
		r[i] = (struct reader){
			.m = m, .ph = ph, .hash = hash, .index = i
		};
	/* reader 0 is this thread */
	for (i = 1; i < mi->readers; i++, started++)
		if (pthread_create(&r[i].thread, NULL, reader_main, &r[i]))
			break;
	if (started + 1 < mi->readers) { /* fewer threads: fewer shares */
		for (i = 1; i <= started; i++)
			pthread_join(r[i].thread, NULL);
		free(r);
		return ferry_error_set(err, -EAGAIN,
				       "mapped-ram: cannot start %u readers",
				       mi->readers);
	}
	reader_main(&r[0]);
	for (i = 1; i < mi->readers; i++)
		pthread_join(r[i].thread, NULL);
	for (i = 0; i < mi->readers; i++)
		if (r[i].rc && !rc) {
			rc = r[i].rc;
			*err = r[i].err;
			ferry_error_prefix(err, "mapped-ram: ");
		}
	free(r);
	return rc;
}

/* ---- lazy restore ------------------------------------------------------ */

#define WINDOW 16 /* pages a fault reads: its own and those around it */

static void lazy_fail(struct mapped_in *mi, int rc,
		      const struct ferry_error *err)
{
	pthread_mutex_lock(&mi->lock);
	if (!mi->rc) {
		mi->rc = rc;
		mi->err = *err;
	}
	pthread_mutex_unlock(&mi->lock);
}

/* Pages [first, first + n) of block bi through the placer, the faulted
 * one (want) first: from buf where its bit is set (buf holds the pages
 * from page `from` on), else zero; those placed already are skipped. */
static int lazy_place(struct mapped_in *mi, uint32_t bi, uint64_t first,
		      uint64_t n, uint64_t want, const uint8_t *buf,
		      uint64_t from, struct placer_tally *t,
		      struct ferry_error *err)
{
	uint32_t ps = mi->l.page_size;
	int rc = 0;

	for (uint64_t i = 0; i <= n && !rc; i++) {
		/* the faulted page first (i == 0), then the others */
		uint64_t k = i == 0 ? want : first + i - 1;
		struct ferry_stream_record rec = { .type = FERRY_REC_PAGE };

		if ((i && k == want) || k < first || k >= first + n)
			continue;
		rec.u.page.ram_index = bi;
		rec.u.page.offset = k * ps;
		rec.u.page.len = ps;
		if (present(mi, bi, k)) {
			rec.u.page.encoding = FERRY_PAGE_RAW;
			rec.u.page.data = buf + (k - from) * ps;
		} else {
			rec.u.page.encoding = FERRY_PAGE_ZERO;
		}
		rc = placer_page(mi->pl, &rec, t, err);
	}
	return rc;
}

/* Read pages [first, first + n) of block bi that the file holds, from
 * the first of them to the last, into buf; *from: the first read. */
static int lazy_read(struct mapped_in *mi, uint32_t bi, uint64_t first,
		     uint64_t n, uint8_t *buf, uint64_t *from,
		     struct ferry_error *err)
{
	uint32_t ps = mi->l.page_size;
	uint64_t a = first, b = first + n;
	int rc;

	while (a < b && !present(mi, bi, a))
		a++;
	while (b > a && !present(mi, bi, b - 1))
		b--;
	*from = a;
	if (a == b)
		return 0;
	rc = pread_all(mi->pfd, buf, (b - a) * ps,
		       mi->base + mi->l.blocks[bi].pages + a * ps);
	if (rc)
		return ferry_error_set(
			err, rc,
			"lazy restore: reading %" PRIu64
			" pages of RAM block %u at page %" PRIu64 ": %s",
			b - a, mi->l.blocks[bi].id, a,
			rc == -ENODATA ? "the file ends there" : strerror(-rc));
	return 0;
}

/* On the fault thread: the page a vCPU waits on, and its window. */
static void lazy_fetch(void *opaque, uint32_t bi, uint64_t page)
{
	struct mapped_in *mi = opaque;
	uint64_t n = mi->l.blocks[bi].length / mi->l.page_size;
	uint64_t first = page / WINDOW * WINDOW, from;
	uint64_t len = first + WINDOW <= n ? WINDOW : n - first;
	struct ferry_error err = { 0 };
	struct placer_tally t = { 0 };
	int rc = lazy_read(mi, bi, first, len, mi->fbuf, &from, &err);

	if (!rc)
		rc = lazy_place(mi, bi, first, len, page, mi->fbuf, from, &t,
				&err);
	if (rc) /* the vCPU stays blocked; the engine stops the guest */
		lazy_fail(mi, rc, &err);
}

/* A background reader: its granules, each read and placed (what the
 * faults placed first is skipped). */
static void *lazy_main(void *arg)
{
	struct reader *r = arg;
	struct mapped_in *mi = r->m->mapped;
	uint32_t ps = mi->l.page_size;
	struct placer_tally t = { 0 };
	uint8_t *buf = NULL;
	int rc = 0;

	if (posix_memalign((void **)&buf, 4096, (size_t)GRANULE_PAGES * ps))
		rc = ferry_error_set(&r->err, -ENOMEM, "out of memory");
	for (uint32_t bi = 0; !rc && bi < mi->l.nblocks; bi++) {
		uint64_t n = mi->l.blocks[bi].length / ps;
		uint64_t gs = (n + GRANULE_PAGES - 1) / GRANULE_PAGES;

		for (uint64_t g = 0; !rc && g < gs; g++) {
			uint64_t first = g * GRANULE_PAGES, from;
			uint64_t len = first + GRANULE_PAGES <= n
					       ? GRANULE_PAGES
					       : n - first;

			if ((mi->first[bi] + g) % mi->nbg != r->index)
				continue;
			pthread_mutex_lock(&mi->lock);
			rc = mi->rc; /* a fault's failure ends it all */
			pthread_mutex_unlock(&mi->lock);
			if (rc) {
				rc = 0; /* said by the fault's failure */
				break;
			}
			rc = lazy_read(mi, bi, first, len, buf, &from, &r->err);
			if (!rc)
				rc = lazy_place(mi, bi, first, len, first, buf,
						from, &t, &r->err);
			if (rc) /* the other readers stop too */
				lazy_fail(mi, rc, &r->err);
		}
	}
	free(buf);
	r->rc = rc;
	return NULL;
}

int mapped_in_lazy_prepare(struct ferry_migration *m, struct placer *pl,
			   struct pc_in *pc, struct ferry_error *err)
{
	struct mapped_in *mi = m->mapped;
	uint32_t ps = mi->l.page_size;
	int rc = load_bitmaps(mi, err);

	if (rc)
		return rc;
	mi->bg = calloc(mi->readers, sizeof(*mi->bg));
	if (!mi->bg ||
	    posix_memalign((void **)&mi->fbuf, 4096, (size_t)WINDOW * ps))
		return ferry_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&mi->lock, NULL);
	mi->lazy = true;
	mi->pl = pl;
	pc->fetch = lazy_fetch;
	pc->fetch_opaque = mi;
	return 0;
}

int mapped_in_lazy_start(struct ferry_migration *m, struct ferry_error *err)
{
	struct mapped_in *mi = m->mapped;
	unsigned n = mi->readers;
	int rc;

	mi->nbg = n;	 /* the shares */
	mi->readers = 0; /* threads started, joined by finish */
	for (unsigned i = 0; i < n; i++, mi->readers++) {
		mi->bg[i] = (struct reader){ .m = m, .index = i };
		rc = pthread_create(&mi->bg[i].thread, NULL, lazy_main,
				    &mi->bg[i]);
		if (rc) { /* the others stop at their next granule */
			lazy_fail(mi, -rc,
				  &(struct ferry_error){ .code = -rc });
			return ferry_error_set(err, -rc,
					       "lazy restore: a reader thread: "
					       "%s",
					       strerror(rc));
		}
	}
	return 0;
}

int mapped_in_lazy_finish(struct ferry_migration *m, struct ferry_error *err)
{
	struct mapped_in *mi = m->mapped;
	int rc = 0;

	if (!mi || !mi->lazy)
		return 0;
	for (unsigned i = 0; i < mi->readers; i++) {
		pthread_join(mi->bg[i].thread, NULL);
		if (mi->bg[i].rc && !rc) {
			rc = mi->bg[i].rc;
			*err = mi->bg[i].err;
		}
	}
	mi->readers = 0;
	pthread_mutex_lock(&mi->lock);
	if (mi->rc && !rc) {
		rc = mi->rc;
		*err = mi->err;
	}
	pthread_mutex_unlock(&mi->lock);
	return rc;
}

void mapped_in_close(struct ferry_migration *m)
{
	if (m->mapped)
		mi_free(m->mapped);
	m->mapped = NULL;
}
