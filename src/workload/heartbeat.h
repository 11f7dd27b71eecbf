/*
 * heartbeat.h - the always-on heartbeat vCPU's state.
 *
 * The heartbeat wakes every period and notes how far past the period the
 * gap since its previous tick ran: the in-guest measure of freezes and
 * downtime (seed 001's timer script).  Its last tick is a CLOCK_REALTIME
 * stamp saved with its device section, so the first tick after a guest
 * resumes on another host measures the whole stop-to-resume gap.
 */
#ifndef FERRY_HEARTBEAT_H
#define FERRY_HEARTBEAT_H

#include <stdatomic.h>
#include <stdint.h>

#include "ferry/error.h"
#include "ferry/vm.h"

struct heartbeat {
	unsigned period_us;
	/* written by the heartbeat thread, read by anyone */
	_Atomic uint64_t ticks;
	_Atomic uint64_t max_stall_us;
	_Atomic uint64_t window_stall_us;
	/* heartbeat thread only, or anyone while the guest is stopped */
	uint64_t last_tick_ns;
};

void heartbeat_init(struct heartbeat *hb, unsigned period_us);
void heartbeat_tick(struct heartbeat *hb, uint64_t now_realtime_ns);
int heartbeat_save(void *opaque, struct ferry_buf *out);
int heartbeat_load(void *opaque, uint32_t version, const uint8_t *data,
		   size_t len, struct ferry_error *err);

#endif
