/*
 * codec_auto.h - `codec-auto`: each sender picks, page by page, the
 * encoding that gets a page to the destination soonest.
 *
 * For each option (raw, lz4, zstd) a sender keeps what a page costs it in
 * CPU time and how many wire bytes it becomes, measured on its own pages;
 * and what a wire byte costs in time, measured over windows of 1024 pages
 * sent raw: the link's speed as this sender sees it (its share, with
 * multifd).  CPU and link work in parallel, so a page costs the slower of
 * its CPU time and its wire bytes x wire time; the sender sends with the
 * cheapest option.  One window in 16 re-measures: a few pages of each
 * codec, then raw.
 */
#ifndef FERRY_CODEC_AUTO_H
#define FERRY_CODEC_AUTO_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"

#define AUTO_OPTIONS 3 /* 0 = raw, 1 = lz4, 2 = zstd */

struct codec_auto {
	const struct page_codec *codec[AUTO_OPTIONS]; /* [0] is NULL */
	void *ctx[AUTO_OPTIONS];
	double cpu_ns[AUTO_OPTIONS]; /* per page, moving average */
	double wire[AUTO_OPTIONS];   /* wire bytes per page, average */
	double wire_ns_per_byte;     /* the link, as seen here */
	unsigned choice;
	/* the current window */
	uint64_t win_pages, win_start_ns, win_bytes0, win_cpu_ns;
	uint64_t windows;
	/* totals, for query-migrate */
	uint64_t pages[AUTO_OPTIONS], cpu_total_ns[AUTO_OPTIONS];
	uint64_t saved_bytes[AUTO_OPTIONS];
};

int codec_auto_init(struct codec_auto *a, int zstd_level);
void codec_auto_free(struct codec_auto *a);
/* The option for the next compressible page. */
unsigned codec_auto_pick(struct codec_auto *a);
/* Whether to time the next page's CPU cost (clocks are not free). */
bool codec_auto_timed(const struct codec_auto *a);
/* What sending one page with option `opt` cost (cpu_ns only if timed). */
void codec_auto_account(struct codec_auto *a, unsigned opt, bool timed,
			uint64_t cpu_ns, uint64_t wire_bytes,
			uint32_t page_size);
/* Close a window when it is full: `bytes` is the sender's stream bytes. */
void codec_auto_window(struct codec_auto *a, uint64_t now_ns, uint64_t bytes,
		       uint32_t page_size);
const char *codec_auto_name(unsigned opt);

#endif
