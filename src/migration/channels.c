/*
 * channels.c - the multifd page channels: one connection, encoder and
 * thread each, given jobs (a dirty set, or all of RAM) by the engine's
 * thread, which waits until every channel has sent its share.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "carrier.h"
#include "outgoing.h"

static void *channel_main(void *arg)
{
	struct sender *s = arg;
	struct out *o = s->o;
	uint64_t seen = 0;

	pthread_mutex_lock(&o->lock);
	for (;;) {
		const struct ferry_dirty_set *job;
		enum send_mode mode;

		while (o->generation == seen && !o->quit)
			pthread_cond_wait(&o->go, &o->lock);
		if (o->quit)
			break;
		seen = o->generation;
		job = o->job;
		mode = o->job_mode;
		pthread_mutex_unlock(&o->lock);
		ferry_error_clear(&s->err);
		s->rc = o->carrier->send(s, job, mode, &s->err);
		pthread_mutex_lock(&o->lock);
		if (--o->busy == 0)
			pthread_cond_broadcast(&o->done);
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

int send_pages(struct out *o, const struct ferry_dirty_set *set,
	       enum send_mode mode, struct ferry_error *err)
{
	unsigned i;

	if (!o->nchans)
		return o->carrier->send(&o->main, set, mode, err);
	pthread_mutex_lock(&o->lock);
	o->job = set;
	o->job_mode = mode;
	o->busy = o->nchans;
	o->generation++;
	pthread_cond_broadcast(&o->go);
	while (o->busy)
		pthread_cond_wait(&o->done, &o->lock);
	pthread_mutex_unlock(&o->lock);
	for (i = 0; i < o->nchans; i++) {
		if (!o->chans[i].rc)
			continue;
		if (!err || err->code)
			return o->chans[i].rc;
		*err = o->chans[i].err;
		/* the destination's verdict, its protocol violation or a
		 * cancel shows on every channel: no channel to name then */
		if (err->origin != FERRY_ERROR_PEER &&
		    o->chans[i].rc != -ECANCELED)
			ferry_error_prefix(err, "channel %u: ", i + 1);
		return o->chans[i].rc;
	}
	return 0;
}

int multifd_start(struct out *o, unsigned n, uint64_t session,
		  struct ferry_error *err)
{
	unsigned i;
	int rc;

	o->chans = calloc(n, sizeof(*o->chans));
	if (!o->chans)
		return ferry_error_set(err, -ENOMEM, "out of memory");
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
		if (!o->chans[i].enc) /* a thread with no stream (mapped-ram) */
			continue;
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
	o->chans = NULL;
}
