/*
 * policy.c - the source's convergence policy: when the guest is throttled
 * (auto-converge), and when pre-copy gives way to post-copy, during the
 * bulk pass or at the end of an iteration.  How long the switch-over
 * would take is downtime.c's model; outgoing.c asks both.
 */
#include <stdatomic.h>
#include <stdio.h>

#include "outgoing.h"

/* auto-converge, as QEMU does it: when the pages dirtied during an
 * iteration are more than half of what was sent, twice in a row, throttle
 * the vCPUs harder. */
void out_converge(struct out *o, uint64_t dirtied_bytes, uint64_t sent_bytes)
{
	struct ferry_mig_params p;

	ferry_migration_get_params(o->m, &p);
	if (!p.auto_converge || !o->vm->runctl.throttle)
		return;
	if (dirtied_bytes * 2 <= sent_bytes) {
		o->hot_iterations = 0;
		return;
	}
	if (++o->hot_iterations < 2)
		return;
	o->hot_iterations = 0;
	o->throttle = o->throttle ? o->throttle + p.cpu_throttle_increment
				  : p.cpu_throttle_initial;
	if (o->throttle > p.max_cpu_throttle)
		o->throttle = p.max_cpu_throttle;
	o->vm->runctl.throttle(o->vm->runctl.opaque, o->throttle);
}

static void set_reason(struct out *o, const char *why)
{
	pthread_mutex_lock(&o->m->lock);
	if (!o->m->stats.postcopy_reason[0])
		snprintf(o->m->stats.postcopy_reason,
			 sizeof(o->m->stats.postcopy_reason), "%s", why);
	pthread_mutex_unlock(&o->m->lock);
}

/* With postcopy-ram: switch now?  When asked (migrate-start-postcopy),
 * and in hybrid mode (precopy-time-limit) when the limit is up or the
 * guest has dirtied memory faster than the link carried it for three
 * iterations in a row. */
bool out_want_postcopy(struct out *o, uint64_t dirtied, uint64_t sent,
		       const struct ferry_mig_params *p)
{
	const char *why = NULL;

	o->over_bw = dirtied > sent ? o->over_bw + 1 : 0;
	if (!out_guest_running(
		    o->vm)) /* it arrives stopped: pre-copy ends it */
		return false;
	if (atomic_load(&o->m->postcopy_req))
		why = "migrate-start-postcopy";
	else if (p->precopy_time_limit_ms &&
		 mig_now_ns() - o->t_precopy_ns >=
			 p->precopy_time_limit_ms * 1000000ull)
		why = "precopy-time-limit";
	else if (p->precopy_time_limit_ms && o->over_bw >= 3)
		why = "dirty rate above bandwidth";
	if (!why)
		return false;
	set_reason(o, why);
	o->go_postcopy = true;
	return true;
}

/* The bulk pass's o->bulk_stop: post-copy now (asked for, or the
 * precopy-time-limit is up)?  Sets the reason, and stops every sender's
 * bulk pass. */
bool out_switch_now(struct out *o)
{
	uint64_t limit;

	if (atomic_load(&o->bulk_abort))
		return true;
	if (!out_guest_running(o->vm))
		return false;
	pthread_mutex_lock(&o->m->lock);
	limit = o->m->params.precopy_time_limit_ms;
	pthread_mutex_unlock(&o->m->lock);
	if (atomic_load(&o->m->postcopy_req))
		set_reason(o, "migrate-start-postcopy");
	else if (limit && mig_now_ns() - o->t_precopy_ns >= limit * 1000000ull)
		set_reason(o, "precopy-time-limit");
	else
		return false;
	atomic_store(&o->bulk_abort, 1);
	return true;
}
