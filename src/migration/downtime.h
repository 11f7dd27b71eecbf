/*
 * downtime.h - downtime-limit as a promise: when to switch over, and why a
 * switch-over ran long.
 *
 * Pre-copy switches over when the guest's remaining work fits in
 * downtime-limit.  The remaining pages are known exactly at each sync;
 * what is not known is how fast the last pass will go and what the stop
 * costs besides pages.  The model keeps the last few iterations' page
 * rates and dirty rates, and predicts with a margin learnt from how much
 * they varied (the mean less two standard deviations of the rate, but no
 * lower than 90% of the slowest of them; the mean plus two of the dirty
 * rate; past DT_PATIENCE iterations fewer deviations, so a noisy link
 * cannot hold a guest in pre-copy for good), plus the fixed costs it has
 * measured: the
 * dirty sync (which runs again once the vCPUs are stopped) and the round
 * trip of an iteration's sync with the destination.  After the switch it
 * compares each part of the real downtime with its prediction and, if the
 * limit was exceeded, says which part ran long.
 */
#ifndef FERRY_DOWNTIME_H
#define FERRY_DOWNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DT_HISTORY  4 /* iterations the margin is learnt from */
#define DT_PATIENCE 8 /* iterations before the margin starts to shrink */

struct dt_model {
	double rate[DT_HISTORY];  /* pages per second an iteration sent */
	double dirty[DT_HISTORY]; /* pages per second the guest dirtied */
	unsigned n;		  /* samples held, at most DT_HISTORY */
	unsigned next;		  /* ring position of the next sample */
	bool provisional;	  /* the one sample is the bulk pass's */
	unsigned iterations;	  /* real (not provisional) samples, all told */
	uint64_t sync_ns;	  /* the last dirty sync's duration */
	uint64_t rtt_ns;	  /* longest sync round trip seen */
	/* the last prediction, for dt_explain() */
	uint64_t pages;	   /* pages it expected the last pass to send */
	double low_rate;   /* at this rate (pages per second) */
	uint64_t fixed_ns; /* and these fixed costs */
};

/* What the switch-over really took, part by part (nanoseconds). */
struct dt_actual {
	uint64_t sync_ns;    /* the dirty sync with the vCPUs stopped */
	uint64_t pages;	     /* pages the last pass sent */
	uint64_t pages_ns;   /* sending them, the channels drained */
	uint64_t devices_ns; /* device state and digest */
	uint64_t verdict_ns; /* end of stream to the destination's answer */
};

/* One iteration's measures: its page rate (pages sent per second), the
 * guest's dirty rate, how long its dirty sync took, and the round trip
 * of its sync with the destination (0 when it had none).  A provisional
 * sample (the bulk pass's, its bandwidth in whole pages) stands alone
 * until the first real one replaces it. */
void dt_sample(struct dt_model *dm, double rate, double dirty, uint64_t sync_ns,
	       uint64_t rtt_ns, bool provisional);
/*
 * Expected downtime in ms for `pages` still to go, margin included; also
 * remembered as the prediction that dt_explain() compares with.  Before
 * any sample: UINT64_MAX, unless pages is 0.
 */
uint64_t dt_expect(struct dt_model *dm, uint64_t pages);
/* Over the limit: a sentence naming the part that ran long, into why. */
void dt_explain(const struct dt_model *dm, const struct dt_actual *a,
		uint64_t downtime_ms, uint64_t limit_ms, char *why, size_t len);

#endif
