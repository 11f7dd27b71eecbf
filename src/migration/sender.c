/*
 * sender.c - a sender (one connection the source's pages leave on: the
 * main one, a multifd channel's, post-copy's urgent one), and the stream
 * carrier: each page framed into the sender's stream in the encoding that
 * costs least for what the destination holds (zero, unchanged, an XBZRLE
 * delta, compressed, raw).  The channels' threads are in channels.c, what
 * a sender looks at between pages in pacing.c, its counters in
 * counters.c.
 *
 * With multifd, every page has one channel for the whole migration: the
 * 2 MiB granule it lies in, counted across RAM blocks, modulo the number
 * of channels.  A channel's connection delivers in order, so a page sent
 * again in a later iteration can never be overtaken by an older copy of
 * itself still in flight on another channel (docs/stream.md,
 * "Multifd").  The main connection carries everything else.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "codec_auto.h"
#include "le.h"
#include "outgoing.h"
#include "transport.h"

#define GRANULE_SHIFT 9 /* 512 pages of 4 KiB: 2 MiB */

/* ---- unchanged runs ---------------------------------------------------- */

/* Unchanged pages in a row go as one record. */
static int run_flush(struct sender *s)
{
	const struct ferry_vm *vm = s->o->vm;
	uint64_t off = s->run_first * vm->page_size;
	uint32_t id = vm->blocks[s->run_block].id;
	const uint8_t *copy;
	uint8_t le[4];
	int rc;

	if (!s->run_count)
		return 0;
	le32_store(le, s->run_count);
	rc = s->run_count == 1
		     ? ferry_stream_put_page(s->enc, id, off,
					     FERRY_PAGE_UNCHANGED, NULL, 0)
		     : ferry_stream_put_page_copy(s->enc, id, off,
						  FERRY_PAGE_UNCHANGED_RUN, le,
						  4, &copy);
	s->run_count = 0;
	return rc;
}

static int run_add(struct sender *s, uint32_t bi, uint64_t page)
{
	int rc = 0;

	s->n.unchanged++;
	if (s->run_count && s->run_block == bi &&
	    s->run_first + s->run_count == page && s->run_count < UINT32_MAX) {
		s->run_count++;
		return 0;
	}
	rc = run_flush(s);
	s->run_block = bi;
	s->run_first = page;
	s->run_count = 1;
	return rc;
}

/* ---- XBZRLE cache ------------------------------------------------------ */

static int xbz_open(struct sender *s, uint64_t bytes, uint32_t ps)
{
	struct xbz_cache *c = &s->xbz;

	c->nslots = bytes / ps ? bytes / ps : 1;
	c->keys = calloc(c->nslots, sizeof(*c->keys));
	c->data = malloc(c->nslots * ps);
	return c->keys && c->data ? 0 : -ENOMEM;
}

static void xbz_close(struct sender *s)
{
	free(s->xbz.keys);
	free(s->xbz.data);
	memset(&s->xbz, 0, sizeof(s->xbz));
}

static uint64_t xbz_slot(const struct xbz_cache *c, uint64_t gpn)
{
	return (gpn * 0x9e3779b97f4a7c15ull >> 17) % c->nslots;
}

/* The cached copy of page gpn, or NULL. */
static uint8_t *xbz_find(struct sender *s, uint64_t gpn, uint32_t ps)
{
	uint64_t k = xbz_slot(&s->xbz, gpn);

	return s->xbz.keys[k] == gpn + 1 ? s->xbz.data + k * ps : NULL;
}

/* After a send: keep what the destination now holds, when it is known
 * exactly, else forget the page. */
static void xbz_note(struct sender *s, uint64_t gpn, const uint8_t *exact,
		     uint32_t ps)
{
	uint64_t k = xbz_slot(&s->xbz, gpn);

	if (exact) {
		s->xbz.keys[k] = gpn + 1;
		memcpy(s->xbz.data + k * ps, exact, ps);
	} else if (s->xbz.keys[k] == gpn + 1) {
		s->xbz.keys[k] = 0;
	}
}

/* ---- pages --------------------------------------------------------------- */

/* The page as a delta against the destination's copy, when that copy is
 * cached and the delta is smaller than a page.  1: sent; 0: send it
 * another way (the cache is refreshed afterwards). */
static int try_xbzrle(struct sender *s, uint32_t bi, uint64_t off, uint64_t gpn,
		      const uint8_t *p, int *rc)
{
	struct out *o = s->o;
	uint32_t ps = o->vm->page_size;
	uint8_t *old = xbz_find(s, gpn, ps), *z = s->scratch + ps;
	uint64_t page = off / ps;
	const uint8_t *copy;
	ptrdiff_t n;

	s->n.xbz_lookups++;
	if (!old) {
		s->n.xbz_miss++;
		return 0;
	}
	memcpy(s->scratch, p, ps); /* a still copy: the delta is exact */
	n = xbzrle_encode(old, s->scratch, ps, z, ps - 1);
	if (n < 0) {
		s->n.xbz_overflow++;
		return 0;
	}
	if (n == 0) /* what the destination holds already */
		*rc = run_add(s, bi, page);
	else
		*rc = ferry_stream_put_page_copy(s->enc, o->vm->blocks[bi].id,
						 off, FERRY_PAGE_XBZRLE, z,
						 (uint32_t)n, &copy);
	o->ph.h[bi][page] = ferry_page_hash(s->scratch, ps);
	o->ph.exact[bi][page / 64] |= 1ull << (page % 64);
	memcpy(old, s->scratch, ps);
	if (n) {
		s->n.xbz_pages++;
		s->n.xbz_bytes += (uint64_t)n;
	}
	return 1;
}

/*
 * A page in full: compressed (from a still copy, so the hash is exactly
 * of what arrives) when a codec is on, else raw: straight from RAM in the
 * bulk pass and in post-copy (the hash then is of RAM, which may have
 * moved on), copied otherwise.  *copy gets the bytes sent, for the XBZRLE
 * cache.
 */
static int send_whole(struct sender *s, uint32_t bi, uint64_t page,
		      enum send_mode mode, const uint8_t **copy)
{
	struct out *o = s->o;
	const struct ferry_ramblock *b = &o->vm->blocks[bi];
	uint32_t ps = o->vm->page_size;
	uint64_t off = page * ps, *h = &o->ph.h[bi][page];
	uint64_t *ex = &o->ph.exact[bi][page / 64], bit = 1ull << (page % 64);
	const uint8_t *p = b->host + off;
	const struct page_codec *c = s->codec;
	void *ctx = s->cctx;
	uint64_t t0 = 0, cpu = 0, wire = ps;
	bool timed = false;
	unsigned opt = 0;
	int rc;

	if (s->autoc_on) {
		opt = codec_auto_pick(&s->autoc);
		c = s->autoc.codec[opt];
		ctx = s->autoc.ctx[opt];
		timed = codec_auto_timed(&s->autoc);
		t0 = timed ? mig_now_ns() : 0;
	}
	if (c) {
		uint8_t *z = s->scratch + ps;
		size_t n;

		memcpy(s->scratch, p, ps);
		*h = ferry_page_hash(s->scratch, ps);
		if (mode != SEND_POSTCOPY)
			*ex |= bit;
		n = c->compress(ctx, s->scratch, ps, z, ps);
		/* CPU only: a put may block on the link, and that time is
		 * the link's, not the codec's */
		cpu = timed ? mig_now_ns() - t0 : 0;
		if (n) {
			rc = ferry_stream_put_page_copy(
				s->enc, b->id, off,
				(enum ferry_page_encoding)c->encoding, z,
				(uint32_t)n, copy);
			s->n.compressed++;
			s->n.compressed_bytes += n;
			wire = n;
		} else {
			rc = ferry_stream_put_page_copy(s->enc, b->id, off,
							FERRY_PAGE_RAW,
							s->scratch, ps, copy);
			s->n.normal++;
		}
		*copy = s->scratch;
	} else if (mode == SEND_POSTCOPY) {
		/* the vCPUs are stopped for good: RAM is still */
		*h = ferry_page_hash(p, ps);
		rc = ferry_stream_put_page(s->enc, b->id, off, FERRY_PAGE_RAW,
					   p, ps);
		s->n.normal++;
	} else if (mode == SEND_FIRST) {
		*h = ferry_page_hash(p, ps);
		*ex &= ~bit;
		cpu = timed ? mig_now_ns() - t0 : 0;
		rc = ferry_stream_put_page(s->enc, b->id, off, FERRY_PAGE_RAW,
					   p, ps);
		s->n.normal++;
	} else {
		rc = ferry_stream_put_page_copy(s->enc, b->id, off,
						FERRY_PAGE_RAW, p, ps, copy);
		if (!rc) {
			*h = ferry_page_hash(*copy, ps);
			*ex |= bit;
		}
		cpu = timed ? mig_now_ns() - t0 : 0;
		s->n.normal++;
	}
	if (s->autoc_on)
		codec_auto_account(&s->autoc, opt, timed, cpu,
				   wire + FERRY_STREAM_RECORD_HDR_LEN +
					   FERRY_STREAM_PAGE_HDR_LEN,
				   ps);
	return rc;
}

/* Sent again and unchanged: a run of unchanged pages where the copy
 * there is exactly this one, else (the guest still running) its hash for
 * the destination to check. */
static int send_unchanged(struct sender *s, uint32_t bi, uint64_t page,
			  uint64_t hash)
{
	const struct ferry_ramblock *b = &s->o->vm->blocks[bi];
	uint64_t ex = s->o->ph.exact[bi][page / 64] & (1ull << (page % 64));
	const uint8_t *copy;
	uint8_t le[8];
	int rc;

	if (ex)
		return run_add(s, bi, page);
	le64_store(le, hash);
	rc = ferry_stream_put_page_copy(s->enc, b->id,
					page * s->o->vm->page_size,
					FERRY_PAGE_CHECK, le, 8, &copy);
	s->n.checked++;
	s->checks_unsynced = true;
	/* out of memory: it only stays inexact */
	(void)ferry_dirty_set_add(&s->checked_set, bi, page, 1);
	s->n.unchanged++;
	return rc;
}

/*
 * One page, as the cheapest record that leaves the destination with
 * exactly its content:
 *   zero        a flag; the destination zeroes its copy;
 *   unchanged   a flag, when the page hashes to what the destination is
 *               known to hold (the hash of an exact copy sent earlier);
 *   check       the hash, when the page hashes to what was sent before
 *               but that send was not exact (see raw, first): the
 *               destination compares it with the hash of its copy and,
 *               if they differ, asks for the page again (out_sync);
 *   xbzrle      a delta against the cached copy of what was last sent;
 *   raw, first  sent from guest RAM without a copy; its hash is taken
 *               before the send, so a write racing the send can make it
 *               differ from what arrives: such a write also dirties the
 *               page, which is then sent again, so the hash is never
 *               trusted for "unchanged" (its exact bit stays clear);
 *   raw, again  copied first, and the copy hashed and sent: exact;
 *   compressed  the same, through zstd or lz4.
 * The digest is built from these hashes; every page's last record is one
 * whose hash matches what arrived (docs/stream.md, "The digest").
 */
static int send_page(struct sender *s, uint32_t bi, uint64_t page,
		     enum send_mode mode, struct ferry_error *err)
{
	struct out *o = s->o;
	const struct ferry_ramblock *b = &o->vm->blocks[bi];
	uint32_t ps = o->vm->page_size;
	uint64_t off = page * ps, *h = &o->ph.h[bi][page];
	uint64_t *ex = &o->ph.exact[bi][page / 64], bit = 1ull << (page % 64);
	uint64_t gpn = o->first_page[bi] + page;
	const uint8_t *p = b->host + off, *copy = NULL;
	uint64_t hash;
	int rc;

	if (codec_is_zero(p, ps)) {
		rc = ferry_stream_put_page(s->enc, b->id, off, FERRY_PAGE_ZERO,
					   NULL, 0);
		s->n.duplicate++;
		*h = o->ph.zero;
		if (mode != SEND_POSTCOPY) {
			*ex |= bit;
			if (o->xbzrle)
				xbz_note(s, gpn, NULL, ps);
		}
	} else if (mode == SEND_AGAIN &&
		   (hash = ferry_page_hash(p, ps)) == *h &&
		   ((*ex & bit) || (!o->final && !o->one_way))) {
		/* with nobody to check a hash (file:), only an exact copy
		 * stays: the rest goes whole */
		rc = send_unchanged(s, bi, page, hash);
	} else if ((mode == SEND_AGAIN || mode == SEND_FULL) && o->xbzrle &&
		   try_xbzrle(s, bi, off, gpn, p, &rc)) {
		; /* sent as a delta */
	} else {
		rc = send_whole(s, bi, page, mode, &copy);
		if (o->xbzrle && mode != SEND_POSTCOPY)
			xbz_note(s, gpn, rc ? NULL : copy, ps);
	}
	if (!rc && mode == SEND_FIRST && o->bulk_sent) /* a channel owns
							  whole words */
		atomic_fetch_or(&o->bulk_sent[gpn / 64], 1ull << (gpn % 64));
	if (rc)
		return peer_verdict(o, rc, err);
	return sender_page_sent(s, err);
}

bool sender_mine(const struct sender *s, uint32_t bi, uint64_t page)
{
	const struct out *o = s->o;

	if (!o->nchans)
		return true;
	return ((o->first_page[bi] + page) >> GRANULE_SHIFT) % o->nchans ==
	       s->index - 1;
}

/* The stream carrier: this sender's share of a set (NULL: of all RAM),
 * each page framed into its stream by send_page, then a flush. */
static int stream_send(struct sender *s, const struct ferry_dirty_set *set,
		       enum send_mode mode, struct ferry_error *err)
{
	const struct ferry_vm *vm = s->o->vm;
	uint64_t k;
	size_t i;
	int rc = 0;

	if (set) {
		for (i = 0; i < set->n && !rc; i++) {
			const struct ferry_dirty_range *r = &set->ranges[i];

			for (k = 0; k < r->count && !rc; k++)
				if (sender_mine(s, r->block, r->first + k))
					rc = send_page(s, r->block,
						       r->first + k, mode, err);
		}
	} else {
		for (i = 0; i < vm->nblocks && !rc; i++) {
			uint64_t n = vm->blocks[i].length / vm->page_size;

			for (k = 0; k < n && !rc; k++)
				if (sender_mine(s, (uint32_t)i, k))
					rc = send_page(s, (uint32_t)i, k,
						       SEND_FIRST, err);
		}
	}
	if (!rc) {
		rc = run_flush(s);
		if (!rc)
			rc = ferry_stream_flush(s->enc);
		if (rc)
			rc = peer_verdict(s->o, rc, err);
	}
	sender_publish(s);
	return rc;
}

int send_one(struct sender *s, uint32_t bi, uint64_t page, enum send_mode mode,
	     struct ferry_error *err)
{
	return send_page(s, bi, page, mode, err);
}

int sender_flush(struct sender *s, struct ferry_error *err)
{
	int rc = ferry_stream_flush(s->enc);

	sender_publish(s);
	return rc ? peer_verdict(s->o, rc, err) : 0;
}

int out_number_pages(struct out *o, struct ferry_error *err)
{
	const struct ferry_vm *vm = o->vm;
	uint64_t pages = 0;
	unsigned i;

	o->first_page = calloc(vm->nblocks, sizeof(*o->first_page));
	if (!o->first_page)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	for (i = 0; i < vm->nblocks; i++) {
		o->first_page[i] = pages;
		pages += vm->blocks[i].length / vm->page_size;
	}
	return 0;
}

static int tls_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	return tls_conn_writev(opaque, iov, iovcnt);
}

/* TLS on the new connection (tls.h), checked against tls-hostname or
 * the URI's host; the main connection's session goes into the
 * statistics. */
static int sender_tls(struct out *o, struct sender *s, struct ferry_error *err)
{
	struct ferry_mig_params p;
	struct tls_info info;
	char host[256] = "", port[16];
	int rc, ms;

	ferry_migration_get_params(o->m, &p);
	if (p.tls_hostname[0])
		snprintf(host, sizeof(host), "%s", p.tls_hostname);
	else if (!strncmp(o->m->uri, "tcp:", 4) &&
		 transport_split_hostport(o->m->uri + 4, host, sizeof(host),
					  port, sizeof(port)) != HOSTPORT_OK)
		host[0] = '\0';
	ms = p.net_timeout_ms && p.net_timeout_ms < INT32_MAX
		     ? (int)p.net_timeout_ms
		     : 10000;
	rc = tls_client(o->m->tls, host, s->fd, ms, &info, &s->tls, err);
	/* the main connection carries the return path too, read and
	 * written by several threads: a relay serves it (tls.h) */
	if (!rc && s->index == 0) {
		rc = tls_conn_relay(s->tls, &s->fd, err);
		s->tls = NULL;
	}
	if (rc) {
		ferry_error_prefix(err, "channel %u: ", s->index);
		return rc;
	}
	if (s->index == 0)
		mig_tls_stats(o->m, &info);
	return 0;
}

int sender_open(struct out *o, struct sender *s, unsigned index,
		uint64_t session, struct ferry_error *err)
{
	const struct ferry_vm *vm = o->vm;
	struct ferry_mig_params p;
	int rc;

	s->o = o;
	s->index = index;
	s->fd = -1;
	s->tls = NULL;
	rc = o->carrier->open(o, s, err);
	if (!rc && index && o->carrier->local_channels) {
		/* a thread beside the main sender, no stream */
		s->win_start_ns = mig_now_ns();
		s->win_bytes_start = sender_bytes(s);
		return 0;
	}
	if (rc)
		return rc;
	if (o->m->tls)
		rc = sender_tls(o, s, err);
	if (rc)
		return rc;
	atomic_store(&o->m->fds[index], s->fd);
	rc = ferry_stream_encoder_new(
		s->tls ? (struct ferry_stream_sink){ .writev = tls_writev,
						     .opaque = s->tls }
		       : ferry_stream_sink_fd(&s->fd),
		&s->enc);
	if (rc)
		return ferry_error_set(err, rc, "out of memory");
	ferry_migration_get_params(o->m, &p);
	if (p.compression) {
		s->codec = codec_by_encoding(p.compression);
		s->cctx = s->codec ? s->codec->ctx_new(s->codec == &codec_zlib
							       ? p.zlib_level
							       : p.zstd_level)
				   : NULL;
		if (!s->codec || !s->cctx)
			return ferry_error_set(err, -ENOMEM,
					       "out of memory for compression");
	} else if (p.codec_auto && (o->caps & TRANSPORT_CODECS) &&
		   o->carrier == &carrier_stream) {
		if (codec_auto_init(&s->autoc, p.zstd_level))
			return ferry_error_set(err, -ENOMEM,
					       "out of memory for codec-auto");
		s->autoc_on = true;
	}
	if (p.xbzrle && !o->resuming && index <= o->nchans &&
	    (o->nchans ? index >= 1 : index == 0)) {
		/* the cache, split among the page carriers */
		uint64_t share =
			p.xbzrle_cache_size / (o->nchans ? o->nchans : 1);

		if (xbz_open(s, share, vm->page_size))
			return ferry_error_set(err, -ENOMEM,
					       "out of memory for the xbzrle "
					       "cache (%" PRIu64 " bytes)",
					       share);
	}
	if (s->codec || s->autoc_on || p.xbzrle) {
		s->scratch = malloc(2 * (size_t)vm->page_size);
		if (!s->scratch)
			return ferry_error_set(err, -ENOMEM,
					       "out of memory for compression");
	}
	s->landed = p.verify &&
		    (o->carrier->stream_flags & FERRY_STREAM_F_LANDED);
	rc = ferry_stream_put_header(
		s->enc,
		(o->nchans && !o->carrier->local_channels
			 ? FERRY_STREAM_F_MULTIFD
			 : 0) |
			o->carrier->format_flags |
			(o->postcopy ? FERRY_STREAM_F_POSTCOPY : 0) |
			(o->resuming ? FERRY_STREAM_F_RESUME : 0) |
			FERRY_STREAM_F_UNCHANGED |
			(o->one_way ? 0 : FERRY_STREAM_F_CHECK) |
			(p.xbzrle ? FERRY_STREAM_F_XBZRLE : 0) |
			(s->codec == &codec_zlib ? FERRY_STREAM_F_ZLIB : 0) |
			(p.verify ? o->carrier->stream_flags : 0) |
			((s->codec && s->codec != &codec_zlib) || s->autoc_on
				 ? FERRY_STREAM_F_COMPRESS
				 : 0));
	if (!rc && o->resuming) /* the main connection and the urgent one */
		rc = ferry_stream_put_channel(s->enc, session, o->token,
					      index ? 1 : 0, 1);
	else if (!rc &&
		 ((o->nchans && !o->carrier->local_channels) || o->postcopy))
		rc = ferry_stream_put_channel(
			s->enc, session, o->token, (uint16_t)index,
			(uint16_t)(o->nchans + (o->postcopy ? 1 : 0)));
	if (!rc)
		rc = ferry_stream_put_config(s->enc, vm->page_size, vm->blocks,
					     vm->nblocks);
	if (!rc)
		rc = ferry_stream_flush(s->enc);
	if (rc)
		return ferry_error_set(err, rc,
				       "channel %u: sending the "
				       "configuration: %s",
				       index, strerror(-rc));
	s->win_start_ns = mig_now_ns();
	s->win_bytes_start = sender_bytes(s);
	return 0;
}

void sender_close(struct sender *s)
{
	if (s->o)
		atomic_store(&s->o->m->fds[s->index], -1);
	if (s->o && s->fd >= 0)
		mig_note_tls_fault(s->o->m, s->fd);
	tls_conn_free(s->tls);
	s->tls = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	ferry_stream_encoder_free(s->enc);
	s->enc = NULL;
	if (s->cctx)
		s->codec->ctx_free(s->cctx);
	s->cctx = NULL;
	if (s->autoc_on)
		codec_auto_free(&s->autoc);
	s->autoc_on = false;
	free(s->scratch);
	s->scratch = NULL;
	xbz_close(s);
	ferry_dirty_set_free(&s->checked_set);
}

static int stream_open(struct out *o, struct sender *s, struct ferry_error *err)
{
	if (s == &o->main) /* a given descriptor is ours to close */
		o->connect_tried = true;
	/* a command (exec:) runs for the main connection only */
	return transport_connect(o->m->uri, &s->fd,
				 s == &o->main ? &o->child : NULL, err);
}

const struct page_carrier_ops carrier_stream = {
	.name = "stream",
	.open = stream_open,
	.send = stream_send,
};

int carrier_pick(struct out *o, struct ferry_error *err)
{
	struct ferry_mig_params p;
	const struct transport_ops *t;
	const char *addr;
	int rc = transport_find(o->m->uri, &t, &addr, err);

	if (rc)
		return rc;
	o->caps = t->caps;
	o->one_way = !(t->caps & TRANSPORT_RETURN);
	ferry_migration_get_params(o->m, &p);
	o->carrier = t->caps & TRANSPORT_RMA ? &carrier_rdma
		     : p.mapped_ram && (t->caps & TRANSPORT_MAPPED)
			     ? &carrier_mapped
			     : &carrier_stream;
	return 0;
}
