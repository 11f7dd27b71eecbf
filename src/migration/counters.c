/*
 * counters.c - what the source's senders count, and the statistics made
 * of it.
 *
 * Each sender counts its pages in its own struct send_counts (its thread
 * alone writes it) and publishes a copy under the migration's lock every
 * few thousand pages and at each flush; everything that reports adds up
 * the published copies here, in one place.
 */
#include <string.h>

#include "carrier.h"
#include "codec_auto.h"
#include "outgoing.h"

/* The pages a sender's counts name. */
static uint64_t counts_pages(const struct send_counts *c)
{
	return c->normal + c->duplicate + c->unchanged + c->compressed +
	       c->xbz_pages;
}

static void counts_add(struct send_counts *to, const struct send_counts *c)
{
	to->duplicate += c->duplicate;
	to->normal += c->normal;
	to->unchanged += c->unchanged;
	to->compressed += c->compressed;
	to->compressed_bytes += c->compressed_bytes;
	to->checked += c->checked;
	to->xbz_pages += c->xbz_pages;
	to->xbz_bytes += c->xbz_bytes;
	to->xbz_lookups += c->xbz_lookups;
	to->xbz_miss += c->xbz_miss;
	to->xbz_overflow += c->xbz_overflow;
	to->bytes += c->bytes;
}

/* Every connection's published counts, added up (m->lock held). */
static struct send_counts out_counts(struct out *o)
{
	struct send_counts t = o->main.pub;
	unsigned i;

	counts_add(&t, &o->urgent.pub);
	for (i = 0; i < o->nchans; i++)
		counts_add(&t, &o->chans[i].pub);
	return t;
}

uint64_t out_pages(struct out *o)
{
	struct send_counts t;

	pthread_mutex_lock(&o->m->lock);
	t = out_counts(o);
	pthread_mutex_unlock(&o->m->lock);
	return counts_pages(&t);
}

uint64_t out_bytes(struct out *o)
{
	struct send_counts t;

	pthread_mutex_lock(&o->m->lock);
	t = out_counts(o);
	pthread_mutex_unlock(&o->m->lock);
	return t.bytes;
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

/* Bytes this sender moved: its stream's, on this connection and the
 * ones before, and for the main sender what its carrier moved beside. */
uint64_t sender_bytes(struct sender *s)
{
	uint64_t n = s->past_bytes;

	if (s->enc)
		n += ferry_stream_encoder_bytes(s->enc);
	if (s->index == 0 && s->o->carrier->wire_bytes)
		n += s->o->carrier->wire_bytes(s->o);
	return n;
}

/* The senders' counts into the statistics (m->lock held); during the
 * bulk pass also what it has still to go and its rate so far, which no
 * iteration measures yet. */
static void stats_from_counts(struct out *o, struct ferry_mig_stats *st)
{
	struct send_counts t = out_counts(o);
	uint32_t ps = o->vm->page_size;

	st->checked = t.checked;
	st->xbzrle_pages = t.xbz_pages;
	st->xbzrle_bytes = t.xbz_bytes;
	st->xbzrle_lookups = t.xbz_lookups;
	st->xbzrle_cache_miss = t.xbz_miss;
	st->xbzrle_overflow = t.xbz_overflow;
	st->transferred = t.bytes;
	st->multifd_bytes = 0;
	for (unsigned i = 0; i < o->nchans; i++)
		st->multifd_bytes += o->chans[i].pub.bytes;
	st->duplicate = t.duplicate;
	st->normal = t.normal;
	st->normal_bytes = t.normal * ps;
	st->unchanged = t.unchanged;
	st->compressed_pages = t.compressed;
	st->compressed_bytes = t.compressed_bytes;
	auto_stats(o, st);
	if (o->in_bulk) {
		uint64_t total = st->total / ps, done = counts_pages(&t);
		uint64_t dt = mig_now_ns() - o->t_precopy_ns;

		st->remaining = (total > done ? total - done : 0) * ps;
		st->mbps = dt ? (double)t.bytes * 8e3 / (double)dt : 0;
	}
}

void sender_publish(struct sender *s)
{
	struct ferry_migration *m = s->o->m;

	pthread_mutex_lock(&m->lock);
	s->pub = s->n;
	s->pub.bytes = sender_bytes(s);
	if (s->autoc_on)
		s->pub_auto = s->autoc;
	stats_from_counts(s->o, &m->stats);
	if (s->o->carrier->stats)
		s->o->carrier->stats(s->o, &m->stats);
	pthread_mutex_unlock(&m->lock);
}

void out_publish(struct out *o, uint64_t remaining_pages)
{
	struct ferry_migration *m = o->m;

	sender_publish(&o->main);
	pthread_mutex_lock(&m->lock);
	stats_from_counts(o, &m->stats);
	if (!o->in_bulk) /* the bulk pass's is its own */
		m->stats.remaining = remaining_pages * o->vm->page_size;
	m->stats.throttle_percent = o->throttle;
	pthread_mutex_unlock(&m->lock);
}
