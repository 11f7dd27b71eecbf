/*
 * timer - makes a freeze visible from inside the guest.  It reads the
 * wall clock (gettimeofday) every 100 ms and prints
 *
 *   ferry-timer: gap N ms      when two reads are more than 200 ms apart
 *   ferry-timer: tick N        every 10 s, the Nth heartbeat
 *
 * so the downtime of a migration shows up as one gap line in the
 * guest's console, and a guest that stopped for good as missing ticks.
 */
#include "guest.h"

#define PERIOD_MS 100
#define GAP_MS	  200
#define TICK_MS	  10000

int guest_main(int argc, char **argv)
{
	struct line l = { .len = 0 };
	int64_t last, last_tick, now;
	uint64_t ticks = 0;

	(void)argc;
	(void)argv;
	put_str(&l, "ferry-timer: start, period ");
	put_u64(&l, PERIOD_MS, 10);
	put_str(&l, " ms, gaps over ");
	put_u64(&l, GAP_MS, 10);
	put_str(&l, " ms shown");
	line_end(&l);
	last = last_tick = now_us();
	for (;;) {
		sleep_ms(PERIOD_MS);
		now = now_us();
		if (now - last > GAP_MS * 1000) {
			put_str(&l, "ferry-timer: gap ");
			put_u64(&l, (uint64_t)(now - last) / 1000, 10);
			put_str(&l, " ms");
			line_end(&l);
		}
		/* The clock may also step back (a destination whose time is
		 * behind): start counting the tick again from now. */
		if (now < last_tick)
			last_tick = now;
		if (now - last_tick >= TICK_MS * 1000) {
			put_str(&l, "ferry-timer: tick ");
			put_u64(&l, ++ticks, 10);
			line_end(&l);
			last_tick = now;
		}
		last = now;
	}
}
