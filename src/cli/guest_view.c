/*
 * guest_view.c - what a RISC-V guest said on its consoles about a
 * migration (guest_view.h): the programs of guest/riscv/ print numbered
 * lines, so the source's console followed by the destination's shows
 * whether the guest carried on as one copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest_view.h"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	*len = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *p = realloc(buf, cap ? 2 * cap : 65536);

			if (!p)
				break;
			buf = p;
			cap = cap ? 2 * cap : 65536;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		if (!got)
			break;
		n += got;
	}
	fclose(f);
	if (buf)
		buf[n] = '\0';
	*len = n;
	return buf;
}

/* Every "ferry-timer: tick N", "gap N ms" and "ferry-memcheck: pass N
 * ok" / "MISMATCH" line of text, in order, into v. */
static void scan(const char *text, struct guest_view *v, bool destination)
{
	const char *p = text;
	unsigned long n;

	while (p && *p) {
		const char *eol = strchr(p, '\n');

		if (sscanf(p, "ferry-timer: tick %lu", &n) == 1) {
			if (v->ticks && n != v->last_tick + 1) {
				if (n <= v->last_tick)
					v->tick_repeats++;
				else
					v->tick_gaps++;
			}
			if (destination && !v->dst_first_tick)
				v->dst_first_tick = n;
			v->last_tick = n;
			v->ticks++;
		} else if (sscanf(p, "ferry-timer: gap %lu ms", &n) == 1) {
			if (n > v->longest_gap_ms)
				v->longest_gap_ms = n;
		} else if (sscanf(p, "ferry-memcheck: pass %lu ok", &n) == 1) {
			if (destination && !v->dst_first_pass)
				v->dst_first_pass = n;
			if (!destination)
				v->src_last_pass = n;
			v->last_pass = n;
		} else if (!strncmp(p, "ferry-memcheck: MISMATCH", 24)) {
			v->mismatches++;
		} else if (strstr(p, "Kernel panic") || strstr(p, "Oops")) {
			v->panics++;
		}
		p = eol ? eol + 1 : NULL;
	}
}

int guest_view_read(const char *src_console, const char *dst_console,
		    struct guest_view *v)
{
	size_t ls, ld;
	char *s, *d;

	memset(v, 0, sizeof(*v));
	s = slurp(src_console, &ls);
	d = slurp(dst_console, &ld);
	if (!s || !d) {
		free(s);
		free(d);
		return -1;
	}
	v->src_bytes = ls;
	v->dst_bytes = ld;
	scan(s, v, false);
	v->src_last_tick = v->last_tick;
	scan(d, v, true);
	free(s);
	free(d);
	return 0;
}

bool guest_view_has(const char *console, const char *needle)
{
	size_t len;
	char *t = slurp(console, &len);
	bool found = t && strstr(t, needle);

	free(t);
	return found;
}

unsigned long guest_view_last_pass(const char *console)
{
	struct guest_view v = { 0 };
	size_t len;
	char *t = slurp(console, &len);

	if (t)
		scan(t, &v, false);
	free(t);
	return v.last_pass;
}
