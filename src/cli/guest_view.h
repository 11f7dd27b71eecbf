/*
 * guest_view.h - the guest's own account of a migration, read from the
 * consoles of a RISC-V guest running guest/riscv/'s programs: timer
 * (numbered ticks, and a gap line for every freeze) and memcheck
 * (numbered passes, a MISMATCH line for corrupt memory).
 */
#ifndef FERRY_CLI_GUEST_VIEW_H
#define FERRY_CLI_GUEST_VIEW_H

#include <stdbool.h>
#include <stddef.h>

struct guest_view {
	size_t src_bytes, dst_bytes; /* console output on each side */
	/* the timer's ticks, the source's console then the destination's */
	unsigned long ticks, last_tick, src_last_tick, dst_first_tick;
	unsigned long tick_repeats; /* a tick printed twice: two copies ran */
	unsigned long tick_gaps;    /* ticks missing: output was lost */
	unsigned long longest_gap_ms;
	/* memcheck */
	unsigned long src_last_pass, dst_first_pass, last_pass;
	unsigned long mismatches;
	unsigned long panics; /* "Kernel panic" or "Oops" lines */
};

/* Read both consoles; -1 if either cannot be read. */
int guest_view_read(const char *src_console, const char *dst_console,
		    struct guest_view *v);
/* Does the console hold this text yet? */
bool guest_view_has(const char *console, const char *needle);
/* The last memcheck pass it printed, 0 for none. */
unsigned long guest_view_last_pass(const char *console);

#endif
