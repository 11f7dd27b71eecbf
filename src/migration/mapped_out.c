/*
 * mapped_out.c - the source's pages into a mapped-ram file (mapped.h,
 * docs/stream.md "Mapped-ram files").
 *
 * The main sender's stream goes into the file after the RAM region; no
 * page enters it.  Each page is hashed (for the digest) and written with
 * pwrite at its fixed place, contiguous pages of a sender's share as one
 * write; a zero page is not written, its bit is cleared instead (a clear
 * bit reads as a zero page).  A page saved again overwrites its place, so
 * the file never grows past RAM plus the stream.  With multifd the
 * channels are threads (carrier local_channels) writing their 2 MiB
 * granules of each pass at once; with direct-io the pages go through a
 * second descriptor opened O_DIRECT.  At the end (seal) the bitmaps and
 * then the header are written: a save that stops before has no header,
 * and no restore takes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "carrier.h"
#include "codec.h"
#include "ferry/vm.h"
#include "le.h"
#include "mapped.h"
#include "outgoing.h"
#include "transport.h"

#define RUN_MAX 512 /* pages in one write: 2 MiB of 4 KiB pages */
/* Zero pages in a row that end a write; fewer go in it (written as the
 * zeroes they are, their bits clear), so that scattered zero pages do not
 * cut the file into small writes and extents */
#define ZERO_GAP 16

struct mapped_out {
	struct mapped_layout l;
	int fd;	       /* the file; the main sender's stream goes into it */
	int pfd;       /* the pages' descriptor: fd, or O_DIRECT's */
	uint64_t base; /* where the layout starts in the file (offset=N) */
	_Atomic uint64_t **bits; /* per block: bit set, the page is there */
};

/* A run of contiguous pages of one block, to go as one write; its last
 * `zeros` pages are zero, and go only if a page that is not follows. */
struct run {
	uint32_t bi;
	uint64_t first, n, zeros;
};

static int pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int run_flush(struct sender *s, struct run *r, struct ferry_error *err)
{
	struct out *o = s->o;
	struct mapped_out *mo = o->mapped;
	uint32_t ps = o->vm->page_size;
	uint64_t at = r->first * ps;
	int rc;

	r->n -= r->zeros; /* trailing zero pages: holes, not writes */
	r->zeros = 0;
	if (!r->n)
		return 0;
	rc = pwrite_all(mo->pfd, o->vm->blocks[r->bi].host + at, r->n * ps,
			mo->base + mo->l.blocks[r->bi].pages + at);
	if (rc)
		return ferry_error_set(err, rc,
				       "mapped-ram: writing %" PRIu64
				       " pages of RAM block %s at page %" PRIu64
				       " into %s: %s",
				       r->n, o->vm->blocks[r->bi].name,
				       r->first, o->m->uri, strerror(-rc));
	s->past_bytes += r->n * ps; /* what it moved, for pacing and stats */
	r->n = 0;
	return 0;
}

static int page(struct sender *s, struct run *r, uint32_t bi, uint64_t pg,
		struct ferry_error *err)
{
	struct out *o = s->o;
	_Atomic uint64_t *w = &o->mapped->bits[bi][pg / 64];
	uint64_t bit = 1ull << (pg % 64);
	uint32_t ps = o->vm->page_size;
	const uint8_t *p = o->vm->blocks[bi].host + pg * ps;
	int rc = 0;

	if (r->n && (r->bi != bi || r->first + r->n != pg || r->n == RUN_MAX))
		rc = run_flush(s, r, err);
	if (rc)
		return rc;
	if (codec_is_zero(p, ps)) {
		/* a clear bit reads as zero, whatever its place holds; a
		 * few in a run are written with it, more end it */
		o->ph.h[bi][pg] = o->ph.zero;
		atomic_fetch_and(w, ~bit);
		s->n.duplicate++;
		if (r->n) {
			r->n++;
			if (++r->zeros == ZERO_GAP)
				rc = run_flush(s, r, err);
		}
	} else {
		/* taken before the write: a racing store dirties the page,
		 * which then goes again (docs/stream.md, "The digest") */
		o->ph.h[bi][pg] = ferry_page_hash(p, ps);
		atomic_fetch_or(w, bit);
		s->n.normal++;
		if (!r->n) {
			r->bi = bi;
			r->first = pg;
		}
		r->n++;
		r->zeros = 0;
	}
	return rc ? rc : sender_page_sent(s, err);
}

/* A sender's share of a set (NULL: of all RAM), written. */
static int mapped_send(struct sender *s, const struct ferry_dirty_set *set,
		       enum send_mode mode, struct ferry_error *err)
{
	const struct ferry_vm *vm = s->o->vm;
	struct run r = { 0 };
	uint64_t k;
	size_t i;
	int rc = 0;

	(void)mode; /* every pass writes pages whole */
	if (set) {
		for (i = 0; i < set->n && !rc; i++) {
			const struct ferry_dirty_range *d = &set->ranges[i];

			for (k = 0; k < d->count && !rc; k++)
				if (sender_mine(s, d->block, d->first + k))
					rc = page(s, &r, d->block, d->first + k,
						  err);
		}
	} else {
		for (i = 0; i < vm->nblocks && !rc; i++) {
			uint64_t n = vm->blocks[i].length / vm->page_size;

			for (k = 0; k < n && !rc; k++)
				if (sender_mine(s, (uint32_t)i, k))
					rc = page(s, &r, (uint32_t)i, k, err);
		}
	}
	if (!rc)
		rc = run_flush(s, &r, err);
	if (!rc && s->enc) { /* the stream so far, into the file too */
		rc = ferry_stream_flush(s->enc);
		if (rc)
			rc = ferry_error_set(err, rc, "writing %s: %s",
					     s->o->m->uri, strerror(-rc));
	}
	sender_publish(s);
	return rc;
}

static void mo_free(struct mapped_out *mo)
{
	for (uint32_t i = 0; mo->bits && i < mo->l.nblocks; i++)
		free((void *)mo->bits[i]);
	free((void *)mo->bits);
	if (mo->pfd >= 0 && mo->pfd != mo->fd)
		close(mo->pfd);
	mapped_layout_free(&mo->l);
	free(mo);
}

/* The file and its layout; the main sender's stream starts after the RAM
 * region.  The channels (index > 0) have nothing to open. */
static int mapped_open(struct out *o, struct sender *s, struct ferry_error *err)
{
	const struct ferry_vm *vm = o->vm;
	uint32_t ids[MAPPED_MAX_BLOCKS];
	uint64_t lengths[MAPPED_MAX_BLOCKS];
	struct ferry_mig_params p;
	struct mapped_out *mo;
	struct stat st;
	off_t at;
	int fd = -1, rc;

	if (s != &o->main)
		return 0;
	o->connect_tried = true; /* a given descriptor is ours to close */
	rc = transport_connect(o->m->uri, &fd, NULL, err);
	if (rc)
		return rc;
	if (vm->nblocks > MAPPED_MAX_BLOCKS) {
		close(fd);
		return ferry_error_set(
			err, -EINVAL, "mapped-ram: %zu RAM blocks (at most %u)",
			(size_t)vm->nblocks, MAPPED_MAX_BLOCKS);
	}
	mo = calloc(1, sizeof(*mo));
	if (!mo) {
		close(fd);
		return ferry_error_set(err, -ENOMEM, "out of memory");
	}
	mo->fd = fd;
	mo->pfd = fd;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = ferry_error_set(err, -EINVAL,
				     "mapped-ram: %s is not a regular file: "
				     "a pipe or a socket cannot hold pages at "
				     "fixed places",
				     o->m->uri);
		goto fail;
	}
	if (fcntl(fd, F_GETFL) & O_APPEND) { /* pwrite would append */
		rc = ferry_error_set(err, -EINVAL,
				     "mapped-ram: %s is open for appending "
				     "(O_APPEND, a shell's >>): pages cannot "
				     "go to their places",
				     o->m->uri);
		goto fail;
	}
	for (uint32_t i = 0; i < vm->nblocks; i++) {
		ids[i] = vm->blocks[i].id;
		lengths[i] = vm->blocks[i].length;
	}
	rc = mapped_layout(vm->page_size, ids, lengths, vm->nblocks, &mo->l,
			   err);
	if (rc)
		goto fail;
	mo->bits = calloc(vm->nblocks, sizeof(*mo->bits));
	for (uint32_t i = 0; mo->bits && i < vm->nblocks; i++) {
		mo->bits[i] = calloc(mo->l.blocks[i].bitmap_len, 1);
		if (!mo->bits[i])
			break;
	}
	if (!mo->bits || !mo->bits[vm->nblocks - 1]) {
		rc = ferry_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	/* nothing of an earlier save stays (an fd: file is not cut when it
	 * is opened): the header region and every place read as zero */
	at = lseek(fd, 0, SEEK_CUR);
	if (at < 0 || ftruncate(fd, at) < 0 ||
	    ftruncate(fd, at + (off_t)mo->l.stream) < 0 ||
	    lseek(fd, at + (off_t)mo->l.stream, SEEK_SET) < 0) {
		rc = ferry_error_set(err, -errno,
				     "mapped-ram: laying out %s (%" PRIu64
				     " bytes before the stream): %s",
				     o->m->uri, mo->l.stream, strerror(errno));
		goto fail;
	}
	mo->base = (uint64_t)at;
	ferry_migration_get_params(o->m, &p);
	if (p.direct_io && mo->base % 4096) {
		rc = ferry_error_set(err, -EINVAL,
				     "direct-io: %s starts at byte %" PRIu64
				     ", and O_DIRECT writes need it a "
				     "multiple of 4096",
				     o->m->uri, mo->base);
		goto fail;
	}
	if (p.direct_io) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		mo->pfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
		if (mo->pfd < 0) {
			rc = ferry_error_set(err, -errno,
					     "direct-io: %s cannot be opened "
					     "with O_DIRECT (%s): its file "
					     "system may not take it; turn "
					     "direct-io off",
					     o->m->uri, strerror(errno));
			mo->pfd = fd;
			goto fail;
		}
	}
	o->mapped = mo;
	s->fd = fd;
	return 0;
fail:
	mo_free(mo);
	close(fd);
	return rc;
}

/* The stream is whole: the bitmaps, then the header, which makes the file
 * a save. */
static int mapped_seal(struct out *o, struct ferry_error *err)
{
	struct mapped_out *mo = o->mapped;
	size_t hlen = mapped_header_size(&mo->l);
	uint8_t *buf;
	off_t end = lseek(mo->fd, 0, SEEK_CUR);
	int rc = 0;

	if (end < 0)
		return ferry_error_set(err, -errno, "%s: %s", o->m->uri,
				       strerror(errno));
	mo->l.stream_len = (uint64_t)end - mo->base - mo->l.stream;
	for (uint32_t i = 0; !rc && i < mo->l.nblocks; i++) {
		const struct mapped_block *b = &mo->l.blocks[i];
		uint64_t words = b->bitmap_len / 8;

		buf = malloc(b->bitmap_len);
		if (!buf)
			return ferry_error_set(err, -ENOMEM, "out of memory");
		for (uint64_t k = 0; k < words; k++)
			le64_store(buf + k * 8, atomic_load(&mo->bits[i][k]));
		rc = pwrite_all(mo->fd, buf, b->bitmap_len,
				mo->base + b->bitmap);
		free(buf);
	}
	/* pages and bitmaps on disk before the header that vouches for
	 * them: a crash between leaves a file with no header */
	if (!rc && (fdatasync(mo->fd) < 0 ||
		    (mo->pfd != mo->fd && fdatasync(mo->pfd) < 0)))
		rc = -errno;
	buf = rc ? NULL : malloc(hlen);
	if (!rc && !buf)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	if (!rc) {
		mapped_header_encode(&mo->l, buf);
		rc = pwrite_all(mo->fd, buf, hlen, mo->base);
		free(buf);
	}
	if (rc)
		return ferry_error_set(err, rc, "mapped-ram: sealing %s: %s",
				       o->m->uri, strerror(-rc));
	return 0;
}

static void mapped_close(struct out *o)
{
	if (o->mapped)
		mo_free(o->mapped);
	o->mapped = NULL;
}

const struct page_carrier_ops carrier_mapped = {
	.name = "mapped",
	.format_flags = FERRY_STREAM_F_MAPPED,
	.local_channels = true,
	.open = mapped_open,
	.send = mapped_send,
	.close = mapped_close,
	.seal = mapped_seal,
};
