/*
 * sender.c - how pages leave the source: on the main connection, or
 * spread over multifd channels, each with its own connection, encoder and
 * thread.
 *
 * With multifd, every page has one channel for the whole migration: the
 * 2 MiB granule it lies in, counted across RAM blocks, modulo the number
 * of channels.  A channel's connection delivers in order, so a page sent
 * again in a later iteration can never be overtaken by an older copy of
 * itself still in flight on another channel (docs/stream.md,
 * "Multifd").  The main connection carries everything else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "codec_auto.h"
#include "outgoing.h"
#include "transport.h"

#define PAGES_PER_CHECK 256 /* cancel / rate-limit check interval */
#define GRANULE_SHIFT	9   /* 512 pages of 4 KiB: 2 MiB */

uint64_t out_bytes(struct out *o)
{
	uint64_t b;
	unsigned i;

	pthread_mutex_lock(&o->m->lock);
	b = o->main.pub_bytes;
	for (i = 0; i < o->nchans; i++)
		b += o->chans[i].pub_bytes;
	pthread_mutex_unlock(&o->m->lock);
	return b;
}

/* codec-auto's totals over all senders; the choice of the first. */
static void auto_stats(struct out *o, struct ferry_mig_stats *st)
{
	unsigned i, k, n = o->nchans ? o->nchans : 1;

	st->codec_auto = o->nchans ? o->chans[0].autoc_on : o->main.autoc_on;
	if (!st->codec_auto)
		return;
	memset(st->auto_pages, 0, sizeof(st->auto_pages));
	memset(st->auto_cpu_ns, 0, sizeof(st->auto_cpu_ns));
	memset(st->auto_saved, 0, sizeof(st->auto_saved));
	for (i = 0; i < n; i++) {
		const struct codec_auto *a = o->nchans ? &o->chans[i].pub_auto
						       : &o->main.pub_auto;

		for (k = 0; k < AUTO_OPTIONS; k++) {
			st->auto_pages[k] += a->pages[k];
			st->auto_cpu_ns[k] += a->cpu_total_ns[k];
			st->auto_saved[k] += a->saved_bytes[k];
		}
		if (i == 0) {
			st->auto_choice = a->choice;
			st->auto_link_mbps = a->wire_ns_per_byte
						     ? 8e3 / a->wire_ns_per_byte
						     : 0;
		}
	}
}

static void sender_publish(struct sender *s)
{
	struct ferry_migration *m = s->o->m;

	pthread_mutex_lock(&m->lock);
	s->pub_bytes = ferry_stream_encoder_bytes(s->enc);
	s->pub_duplicate = s->duplicate;
	s->pub_normal = s->normal;
	s->pub_unchanged = s->unchanged;
	s->pub_compressed = s->compressed;
	s->pub_compressed_bytes = s->compressed_bytes;
	if (s->autoc_on)
		s->pub_auto = s->autoc;
	auto_stats(s->o, &m->stats);
	pthread_mutex_unlock(&m->lock);
}

void out_publish(struct out *o, uint64_t remaining_pages)
{
	struct ferry_migration *m = o->m;
	uint64_t bytes, dup, norm, unch, cp, cb;
	unsigned i;

	sender_publish(&o->main);
	pthread_mutex_lock(&m->lock);
	bytes = o->main.pub_bytes;
	dup = o->main.pub_duplicate;
	norm = o->main.pub_normal;
	unch = o->main.pub_unchanged;
	cp = o->main.pub_compressed;
	cb = o->main.pub_compressed_bytes;
	for (i = 0; i < o->nchans; i++) {
		bytes += o->chans[i].pub_bytes;
		dup += o->chans[i].pub_duplicate;
		norm += o->chans[i].pub_normal;
		unch += o->chans[i].pub_unchanged;
		cp += o->chans[i].pub_compressed;
		cb += o->chans[i].pub_compressed_bytes;
	}
	m->stats.transferred = bytes;
	m->stats.duplicate = dup;
	m->stats.normal = norm;
	m->stats.normal_bytes = norm * o->vm->page_size;
	m->stats.unchanged = unch;
	m->stats.compressed_pages = cp;
	m->stats.compressed_bytes = cb;
	auto_stats(o, &m->stats);
	m->stats.remaining = remaining_pages * o->vm->page_size;
	m->stats.throttle_percent = o->throttle;
	pthread_mutex_unlock(&m->lock);
}

/*
 * The destination gave up (it sends its reason on the main connection,
 * then hangs up): report its reason rather than the broken pipe it caused
 * here.
 */
int peer_verdict(struct out *o, int rc, struct ferry_error *err)
{
	char msg[MIG_RESULT_MSG_MAX + 1];
	struct ferry_error e = { 0 };
	int status;

	if (rc == -ECANCELED || atomic_load(&o->m->cancel) == 1)
		return ferry_error_set(err, -ECANCELED,
				       "migration cancelled by request");
	if (mig_recv_result(o->main.fd, 1000, &status, msg, sizeof(msg), &e) ==
		    0 &&
	    status)
		return ferry_error_set(err, -status, "destination: %s", msg);
	return ferry_error_set(err, rc, "sending to the destination: %s",
			       strerror(-rc));
}

/* Between batches: honour a cancel, the destination's verdict and this
 * sender's share of max-bandwidth. */
static int checkpoint(struct sender *s, struct ferry_error *err)
{
	struct out *o = s->o;
	uint64_t bw, bytes, due_ns, now;

	if (atomic_load(&o->m->cancel) == 1)
		return ferry_error_set(err, -ECANCELED,
				       "migration cancelled by request");
	if (mig_result_pending(o->main.fd))
		return peer_verdict(o, -ECONNRESET, err);
	pthread_mutex_lock(&o->m->lock);
	bw = o->m->params.max_bandwidth / (o->nchans ? o->nchans : 1);
	pthread_mutex_unlock(&o->m->lock);
	if ((s->normal + s->duplicate + s->unchanged + s->compressed) % 4096 ==
	    0)
		sender_publish(s);
	if (s->autoc_on)
		codec_auto_window(&s->autoc, mig_now_ns(),
				  ferry_stream_encoder_bytes(s->enc),
				  o->vm->page_size);
	if (!bw)
		return 0;
	bytes = ferry_stream_encoder_bytes(s->enc) - s->win_bytes_start;
	due_ns = s->win_start_ns + (uint64_t)((double)bytes / (double)bw * 1e9);
	now = mig_now_ns();
	if (due_ns > now) {
		struct timespec ts = { (time_t)((due_ns - now) / 1000000000ull),
				       (long)((due_ns - now) % 1000000000ull) };
		int rc = ferry_stream_flush(s->enc);

		if (rc)
			return peer_verdict(o, rc, err);
		nanosleep(&ts, NULL);
	}
	if (now - s->win_start_ns > 1000000000ull) { /* a new 1 s window */
		s->win_start_ns = mig_now_ns();
		s->win_bytes_start = ferry_stream_encoder_bytes(s->enc);
	}
	return 0;
}

/*
 * One page, as the cheapest record that leaves the destination with
 * exactly its content:
 *   zero        a flag; the destination zeroes its copy;
 *   unchanged   a flag, when the page hashes to what the destination is
 *               known to hold (the hash of an exact copy sent earlier);
 *   raw, first  sent from guest RAM without a copy; its hash is taken
 *               before the send, so a write racing the send can make it
 *               differ from what arrives: such a write also dirties the
 *               page, which is then sent again, so the hash is never
 *               trusted for "unchanged" (its exact bit stays clear);
 *   raw, again  copied first, and the copy hashed and sent: exact.
 * The digest is built from these hashes; every page's last record is one
 * whose hash matches what arrived (docs/stream.md, "The digest").
 */
static int send_page(struct sender *s, uint32_t bi, uint64_t page, bool again,
		     struct ferry_error *err)
{
	struct out *o = s->o;
	const struct ferry_ramblock *b = &o->vm->blocks[bi];
	uint32_t ps = o->vm->page_size;
	uint64_t off = page * ps, *h = &o->ph.h[bi][page];
	uint64_t *ex = &o->ph.exact[bi][page / 64], bit = 1ull << (page % 64);
	const uint8_t *p = b->host + off, *copy;
	uint64_t hash;
	int rc;

	if (codec_is_zero(p, ps)) {
		rc = ferry_stream_put_page(s->enc, b->id, off, FERRY_PAGE_ZERO,
					   NULL, 0);
		s->duplicate++;
		*h = o->ph.zero;
		*ex |= bit;
	} else if (again && (*ex & bit) &&
		   (hash = ferry_page_hash(p, ps)) == *h) {
		rc = ferry_stream_put_page(s->enc, b->id, off,
					   FERRY_PAGE_UNCHANGED, NULL, 0);
		s->unchanged++;
	} else {
		const struct page_codec *c = s->codec;
		void *ctx = s->cctx;
		uint64_t t0 = 0, cpu = 0, wire = ps;
		bool timed = false;
		unsigned opt = 0;

		if (s->autoc_on) {
			opt = codec_auto_pick(&s->autoc);
			c = s->autoc.codec[opt];
			ctx = s->autoc.ctx[opt];
			timed = codec_auto_timed(&s->autoc);
			t0 = timed ? mig_now_ns() : 0;
		}
		if (c) {
			/* a still copy, hashed, compressed: what arrives is
			 * exactly the copy */
			uint8_t *z = s->scratch + ps;
			size_t n;

			memcpy(s->scratch, p, ps);
			*h = ferry_page_hash(s->scratch, ps);
			*ex |= bit;
			n = c->compress(ctx, s->scratch, ps, z, ps);
			/* CPU only: a put may block on the link, and that
			 * time is the link's, not the codec's */
			cpu = timed ? mig_now_ns() - t0 : 0;
			if (n) {
				rc = ferry_stream_put_page_copy(
					s->enc, b->id, off,
					(enum ferry_page_encoding)c->encoding,
					z, (uint32_t)n, &copy);
				s->compressed++;
				s->compressed_bytes += n;
				wire = n;
			} else {
				rc = ferry_stream_put_page_copy(
					s->enc, b->id, off, FERRY_PAGE_RAW,
					s->scratch, ps, &copy);
				s->normal++;
			}
		} else if (!again) {
			*h = ferry_page_hash(p, ps);
			*ex &= ~bit;
			cpu = timed ? mig_now_ns() - t0 : 0;
			rc = ferry_stream_put_page(s->enc, b->id, off,
						   FERRY_PAGE_RAW, p, ps);
			s->normal++;
		} else {
			rc = ferry_stream_put_page_copy(s->enc, b->id, off,
							FERRY_PAGE_RAW, p, ps,
							&copy);
			if (!rc) {
				*h = ferry_page_hash(copy, ps);
				*ex |= bit;
			}
			cpu = timed ? mig_now_ns() - t0 : 0;
			s->normal++;
		}
		if (s->autoc_on)
			codec_auto_account(&s->autoc, opt, timed, cpu,
					   wire + FERRY_STREAM_RECORD_HDR_LEN +
						   FERRY_STREAM_PAGE_HDR_LEN,
					   ps);
	}
	if (rc)
		return peer_verdict(o, rc, err);
	if (++s->sent_pages == PAGES_PER_CHECK) {
		s->sent_pages = 0;
		return checkpoint(s, err);
	}
	return 0;
}

/* Does this sender carry page `page` of block `bi`? */
static bool mine(const struct sender *s, uint32_t bi, uint64_t page)
{
	const struct out *o = s->o;

	if (!o->nchans)
		return true;
	return ((o->first_page[bi] + page) >> GRANULE_SHIFT) % o->nchans ==
	       s->index - 1;
}

/* This sender's share of a set (NULL: of all RAM), then a flush. */
static int send_share(struct sender *s, const struct ferry_dirty_set *set,
		      struct ferry_error *err)
{
	const struct ferry_vm *vm = s->o->vm;
	uint64_t k;
	size_t i;
	int rc = 0;

	if (set) {
		for (i = 0; i < set->n && !rc; i++) {
			const struct ferry_dirty_range *r = &set->ranges[i];

			for (k = 0; k < r->count && !rc; k++)
				if (mine(s, r->block, r->first + k))
					rc = send_page(s, r->block,
						       r->first + k, true, err);
		}
	} else {
		for (i = 0; i < vm->nblocks && !rc; i++) {
			uint64_t n = vm->blocks[i].length / vm->page_size;

			for (k = 0; k < n && !rc; k++)
				if (mine(s, (uint32_t)i, k))
					rc = send_page(s, (uint32_t)i, k, false,
						       err);
		}
	}
	if (!rc) {
		rc = ferry_stream_flush(s->enc);
		if (rc)
			rc = peer_verdict(s->o, rc, err);
	}
	sender_publish(s);
	return rc;
}

static void *channel_main(void *arg)
{
	struct sender *s = arg;
	struct out *o = s->o;
	uint64_t seen = 0;

	pthread_mutex_lock(&o->lock);
	for (;;) {
		const struct ferry_dirty_set *job;

		while (o->generation == seen && !o->quit)
			pthread_cond_wait(&o->go, &o->lock);
		if (o->quit)
			break;
		seen = o->generation;
		job = o->job;
		pthread_mutex_unlock(&o->lock);
		ferry_error_clear(&s->err);
		s->rc = send_share(s, job, &s->err);
		pthread_mutex_lock(&o->lock);
		if (--o->busy == 0)
			pthread_cond_broadcast(&o->done);
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

int send_pages(struct out *o, const struct ferry_dirty_set *set,
	       struct ferry_error *err)
{
	unsigned i;

	if (!o->nchans)
		return send_share(&o->main, set, err);
	pthread_mutex_lock(&o->lock);
	o->job = set;
	o->busy = o->nchans;
	o->generation++;
	pthread_cond_broadcast(&o->go);
	while (o->busy)
		pthread_cond_wait(&o->done, &o->lock);
	pthread_mutex_unlock(&o->lock);
	for (i = 0; i < o->nchans; i++)
		if (o->chans[i].rc) {
			/* a cancel shows on every channel: report it as such */
			ferry_error_set(err, o->chans[i].rc, "channel %u: %s",
					i + 1,
					ferry_error_msg(&o->chans[i].err));
			return o->chans[i].rc;
		}
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
	rc = transport_connect(o->m->uri, &s->fd, err);
	if (rc)
		return rc;
	atomic_store(&o->m->fds[index], s->fd);
	rc = ferry_stream_encoder_new(ferry_stream_sink_fd(&s->fd), &s->enc);
	if (rc)
		return ferry_error_set(err, rc, "out of memory");
	ferry_migration_get_params(o->m, &p);
	if (p.compression) {
		s->codec = codec_by_encoding(p.compression);
		s->cctx = s->codec ? s->codec->ctx_new(p.zstd_level) : NULL;
		if (!s->codec || !s->cctx)
			return ferry_error_set(err, -ENOMEM,
					       "out of memory for compression");
	} else if (p.codec_auto) {
		if (codec_auto_init(&s->autoc, p.zstd_level))
			return ferry_error_set(err, -ENOMEM,
					       "out of memory for codec-auto");
		s->autoc_on = true;
	}
	if (s->codec || s->autoc_on) {
		s->scratch = malloc(2 * (size_t)vm->page_size);
		if (!s->scratch)
			return ferry_error_set(err, -ENOMEM,
					       "out of memory for compression");
	}
	rc = ferry_stream_put_header(s->enc,
				     (o->nchans ? FERRY_STREAM_F_MULTIFD : 0) |
					     FERRY_STREAM_F_UNCHANGED |
					     (s->codec || s->autoc_on
						      ? FERRY_STREAM_F_COMPRESS
						      : 0));
	if (!rc && o->nchans)
		rc = ferry_stream_put_channel(s->enc, session, (uint16_t)index,
					      (uint16_t)o->nchans);
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
	return 0;
}

void sender_close(struct sender *s)
{
	if (s->o)
		atomic_store(&s->o->m->fds[s->index], -1);
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
}

int multifd_start(struct out *o, unsigned n, uint64_t session,
		  struct ferry_error *err)
{
	const struct ferry_vm *vm = o->vm;
	uint64_t pages = 0;
	unsigned i;
	int rc;

	o->first_page = calloc(vm->nblocks, sizeof(*o->first_page));
	o->chans = calloc(n, sizeof(*o->chans));
	if (!o->first_page || !o->chans)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	for (i = 0; i < vm->nblocks; i++) {
		o->first_page[i] = pages;
		pages += vm->blocks[i].length / vm->page_size;
	}
	for (i = 0; i < n; i++)
		o->chans[i].fd = -1;
	for (i = 0; i < n; i++) {
		rc = sender_open(o, &o->chans[i], i + 1, session, err);
		if (rc)
			return rc;
		rc = pthread_create(&o->chans[i].thread, NULL, channel_main,
				    &o->chans[i]);
		if (rc)
			return ferry_error_set(err, -rc, "channel thread: %s",
					       strerror(rc));
		o->chans[i].thread_live = true;
	}
	return 0;
}

int multifd_finish(struct out *o, struct ferry_error *err)
{
	unsigned i;
	int rc;

	/* the channels' threads are idle between jobs */
	for (i = 0; i < o->nchans; i++) {
		rc = ferry_stream_put_end(o->chans[i].enc, NULL);
		if (!rc)
			rc = ferry_stream_flush(o->chans[i].enc);
		if (rc)
			return peer_verdict(o, rc, err);
		sender_publish(&o->chans[i]);
	}
	return 0;
}

void multifd_stop(struct out *o)
{
	unsigned i;

	pthread_mutex_lock(&o->lock);
	o->quit = true;
	pthread_cond_broadcast(&o->go);
	pthread_mutex_unlock(&o->lock);
	for (i = 0; o->chans && i < o->nchans; i++) {
		if (o->chans[i].thread_live)
			pthread_join(o->chans[i].thread, NULL);
		sender_close(&o->chans[i]);
	}
	free(o->chans);
	free(o->first_page);
	o->chans = NULL;
	o->first_page = NULL;
}
