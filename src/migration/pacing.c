/*
 * pacing.c - what a sender looks at between pages: every few pages the
 * cancel, the destination's verdict, the bulk pass's stop for post-copy
 * and max-bandwidth; and the barriers (a sync on every page connection,
 * acknowledged) that say the destination has handled everything sent
 * before them, with check records' stale pages sent again.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "codec_auto.h"
#include "outgoing.h"

#define PAGES_PER_CHECK 256 /* cancel / rate-limit check interval */

/*
 * The destination gave up (it sends its reason on the main connection,
 * then hangs up): report its reason rather than the broken pipe it caused
 * here.
 */
int peer_verdict(struct out *o, int rc, struct ferry_error *err)
{
	char msg[RP_RESULT_MSG_MAX + 1];
	struct ferry_error e = { 0 };
	int status;

	if (rc == -ECANCELED || atomic_load(&o->m->cancel) == 1)
		return ferry_error_set(err, -ECANCELED,
				       "migration cancelled by request");
	if (o->one_way) /* no verdict will come: the write failed here */
		return ferry_error_set(err, rc, "writing %s: %s", o->m->uri,
				       strerror(-rc));
	if (rp_wait_result(&o->rp, 1000, &status, msg, sizeof(msg), &e) == 0 &&
	    status)
		return ferry_error_set_from(err, FERRY_ERROR_PEER, -status,
					    "destination: %s", msg);
	/* a message that broke the rules: its reason, not the reset that
	 * followed when the reader shut the connection */
	if (rp_failure(&o->rp, err))
		return err->code;
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
	if (rp_spoke(&o->rp))
		return peer_verdict(o, -ECONNRESET, err);
	if (o->in_bulk && o->postcopy && o->bulk_stop && o->bulk_stop(o))
		return ferry_error_set(err, -EINTR,
				       "bulk pass stopped for post-copy");
	pthread_mutex_lock(&o->m->lock);
	/* post-copy's answers are not held back: a vCPU waits for them */
	bw = s == &o->urgent
		     ? 0
		     : o->m->params.max_bandwidth / (o->nchans ? o->nchans : 1);
	pthread_mutex_unlock(&o->m->lock);
	if ((s->n.normal + s->n.duplicate + s->n.unchanged + s->n.compressed) %
		    4096 ==
	    0)
		sender_publish(s);
	if (s->autoc_on)
		codec_auto_window(&s->autoc, mig_now_ns(),
				  ferry_stream_encoder_bytes(s->enc),
				  o->vm->page_size);
	if (!bw)
		return 0;
	bytes = sender_bytes(s) - s->win_bytes_start;
	due_ns = s->win_start_ns + (uint64_t)((double)bytes / (double)bw * 1e9);
	now = mig_now_ns();
	if (due_ns > now) {
		struct timespec ts = { (time_t)((due_ns - now) / 1000000000ull),
				       (long)((due_ns - now) % 1000000000ull) };
		int rc = s->enc ? ferry_stream_flush(s->enc) : 0;

		if (rc)
			return peer_verdict(o, rc, err);
		nanosleep(&ts, NULL);
	}
	if (now - s->win_start_ns > 1000000000ull) { /* a new 1 s window */
		s->win_start_ns = mig_now_ns();
		s->win_bytes_start = sender_bytes(s);
	}
	return 0;
}

int sender_page_sent(struct sender *s, struct ferry_error *err)
{
	if (++s->sent_pages < PAGES_PER_CHECK)
		return 0;
	s->sent_pages = 0;
	return checkpoint(s, err);
}

static void mark_exact(struct out *o, const struct ferry_dirty_set *set,
		       bool exact)
{
	size_t i;
	uint64_t k;

	for (i = 0; i < set->n; i++) {
		const struct ferry_dirty_range *r = &set->ranges[i];

		for (k = r->first; k < r->first + r->count; k++) {
			uint64_t *w = &o->ph.exact[r->block][k / 64];

			if (exact)
				*w |= 1ull << (k % 64);
			else
				*w &= ~(1ull << (k % 64));
		}
	}
}

/* The connections that carry pages in pre-copy: the main one, or the
 * multifd channels. */
static unsigned npage_senders(const struct out *o)
{
	return o->nchans ? o->nchans : 1;
}

static struct sender *page_sender(struct out *o, unsigned i)
{
	return o->nchans ? &o->chans[i] : &o->main;
}

int out_sync(struct out *o, struct ferry_error *err)
{
	bool any = false;
	unsigned i;
	int rc;

	for (i = 0; i < npage_senders(o); i++) {
		any |= page_sender(o, i)->checks_unsynced;
		page_sender(o, i)->checks_unsynced = false;
	}
	if (!any)
		return 0;
	rc = out_barrier(o, err);
	if (rc)
		return rc;
	if (rp_take_resends(&o->rp, &o->resend))
		return ferry_error_set(err, -ENOMEM, "out of memory");
	/* The destination holds what each checked page hashes to, except
	 * the stale ones: those go again, in full. */
	for (i = 0; i < npage_senders(o); i++) {
		mark_exact(o, &page_sender(o, i)->checked_set, true);
		ferry_dirty_set_reset(&page_sender(o, i)->checked_set);
	}
	mark_exact(o, &o->resend, false);
	pthread_mutex_lock(&o->m->lock);
	o->m->stats.stale = o->rp.resends;
	pthread_mutex_unlock(&o->m->lock);
	if (!o->resend.pages)
		return 0;
	return send_pages(o, &o->resend, SEND_FULL, err);
}

int out_barrier(struct out *o, struct ferry_error *err)
{
	unsigned ids[FERRY_STREAM_MAX_CHANNELS + 1], i;
	int rc = 0;

	o->sync_seq++;
	/* the channels' threads are idle between jobs */
	for (i = 0; i < npage_senders(o) && !rc; i++) {
		struct sender *s = page_sender(o, i);

		rc = ferry_stream_put_sync(s->enc, o->sync_seq);
		if (!rc)
			rc = ferry_stream_flush(s->enc);
		ids[i] = s->index;
	}
	if (!rc)
		rc = rp_wait_acks(&o->rp, ids, npage_senders(o), o->sync_seq,
				  &o->m->cancel, err);
	if (rc)
		return err->code ? rc : peer_verdict(o, rc, err);
	return 0;
}
