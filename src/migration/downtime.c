/*
 * downtime.c - the switch-over decision's model of downtime (downtime.h):
 * a prediction with a margin learnt from the last iterations, and the
 * explanation of a switch-over that ran over the limit.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "downtime.h"

/* Device state, the digest, the destination's check and resume, when
 * nothing better is known: small, and never nothing. */
#define DT_FLOOR_NS 1000000ull

void dt_sample(struct dt_model *dm, double rate, double dirty, uint64_t sync_ns,
	       uint64_t rtt_ns, bool provisional)
{
	if (dm->provisional)
		dm->n = dm->next = 0;
	dm->provisional = provisional;
	if (!provisional)
		dm->iterations++;
	dm->rate[dm->next] = rate;
	dm->dirty[dm->next] = dirty;
	dm->next = (dm->next + 1) % DT_HISTORY;
	if (dm->n < DT_HISTORY)
		dm->n++;
	dm->sync_ns = sync_ns;
	if (rtt_ns > dm->rtt_ns)
		dm->rtt_ns = rtt_ns;
}

static void mean_sd(const double *v, unsigned n, double *mean, double *sd)
{
	double sum = 0, sq = 0;
	unsigned i;

	for (i = 0; i < n; i++)
		sum += v[i];
	*mean = sum / n;
	for (i = 0; i < n; i++)
		sq += (v[i] - *mean) * (v[i] - *mean);
	*sd = n > 1 ? sqrt(sq / (n - 1)) : 0;
}

uint64_t dt_expect(struct dt_model *dm, uint64_t pages)
{
	double rate, rsd, dirty, dsd, low, high, lowest = INFINITY, ns, k;
	unsigned i;

	dm->fixed_ns = dm->sync_ns + dm->rtt_ns + DT_FLOOR_NS;
	dm->pages = pages;
	if (!dm->n) {
		dm->low_rate = 0;
		return pages ? UINT64_MAX : (dm->fixed_ns + 999999) / 1000000;
	}
	mean_sd(dm->rate, dm->n, &rate, &rsd);
	mean_sd(dm->dirty, dm->n, &dirty, &dsd);
	for (i = 0; i < dm->n; i++)
		if (dm->rate[i] < lowest)
			lowest = dm->rate[i];
	/*
	 * Two standard deviations at first; past DT_PATIENCE iterations the
	 * margin shrinks (k = 2 * DT_PATIENCE / iterations), so a guest that
	 * would converge on the plain mean is not held in pre-copy forever
	 * by a noisy link: by 4 * DT_PATIENCE it is half a deviation.
	 */
	k = dm->iterations > DT_PATIENCE ? 2.0 * DT_PATIENCE / dm->iterations
					 : 2.0;
	/* one sample says nothing of the spread: assume a fifth */
	low = dm->n > 1 ? rate - k * rsd : rate * (1 - 0.1 * k);
	high = dm->n > 1 ? dirty + k * dsd : dirty * (1 + 0.125 * k);
	if (low < lowest * 0.9) /* a wide spread: a little under the worst */
		low = lowest * 0.9;
	if (!(low > 0))
		return UINT64_MAX;
	/* pages dirtied from this sync to the stop: about one sync's time */
	dm->pages = pages + (uint64_t)(high * (double)dm->sync_ns / 1e9);
	dm->low_rate = low;
	ns = (double)dm->fixed_ns + (double)dm->pages / low * 1e9;
	return ns >= 1.8e19 ? UINT64_MAX : (uint64_t)ns / 1000000 + 1;
}

void dt_explain(const struct dt_model *dm, const struct dt_actual *a,
		uint64_t downtime_ms, uint64_t limit_ms, char *why, size_t len)
{
	enum { PAGES, SYNC, DEVICES, VERDICT, NPARTS };
	double want[NPARTS], over[NPARTS];
	unsigned i, worst = PAGES;
	int n;

	want[PAGES] = dm->low_rate > 0 ? (double)a->pages / dm->low_rate * 1e9
				       : 0;
	want[SYNC] = (double)dm->sync_ns;
	want[DEVICES] = (double)DT_FLOOR_NS;
	want[VERDICT] = (double)dm->rtt_ns;
	over[PAGES] = (double)a->pages_ns - want[PAGES];
	over[SYNC] = (double)a->sync_ns - want[SYNC];
	over[DEVICES] = (double)a->devices_ns - want[DEVICES];
	over[VERDICT] = (double)a->verdict_ns - want[VERDICT];
	for (i = 1; i < NPARTS; i++)
		if (over[i] > over[worst])
			worst = i;
	n = snprintf(why, len,
		     "downtime %" PRIu64 " ms, %" PRIu64
		     " ms over downtime-limit %" PRIu64 " ms: ",
		     downtime_ms, downtime_ms - limit_ms, limit_ms);
	if (n < 0 || (size_t)n >= len)
		return;
	why += n, len -= (size_t)n;
	switch (worst) {
	case PAGES:
		snprintf(why, len,
			 "the last pass sent %" PRIu64 " pages (%" PRIu64
			 " expected) in %" PRIu64 " ms, at %.0f pages/s "
			 "against the %.0f pages/s the last iterations let "
			 "it expect",
			 a->pages, dm->pages, a->pages_ns / 1000000,
			 a->pages_ns
				 ? (double)a->pages * 1e9 / (double)a->pages_ns
				 : 0.0,
			 dm->low_rate);
		break;
	case SYNC:
		snprintf(why, len,
			 "the dirty sync with the vCPUs stopped took %" PRIu64
			 " ms (%" PRIu64 " ms expected)",
			 a->sync_ns / 1000000, dm->sync_ns / 1000000);
		break;
	case DEVICES:
		snprintf(why, len,
			 "saving and sending device state and the digest "
			 "took %" PRIu64 " ms",
			 a->devices_ns / 1000000);
		break;
	default:
		snprintf(why, len,
			 "the destination's verdict came %" PRIu64
			 " ms after the end of stream (%" PRIu64
			 " ms expected): the link or the destination was slow",
			 a->verdict_ns / 1000000, dm->rtt_ns / 1000000);
	}
}
