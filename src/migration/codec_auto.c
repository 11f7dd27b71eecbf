/* codec_auto.c - picking each page's encoding by measured cost. */
#include <errno.h>
#include <string.h>

#include "codec_auto.h"

#define WINDOW	      1024 /* pages per measurement window */
#define PROBE_EVERY   16   /* windows between tries of the other options */
#define PROBE_PAGES   16   /* pages per option per try */
#define SAMPLE	      16   /* outside probes, time one page in this many */
#define AVG(old, new) ((old) ? 0.8 * (old) + 0.2 * (new) : (new))

static const char *const names[AUTO_OPTIONS] = { "none", "lz4", "zstd" };

const char *codec_auto_name(unsigned opt)
{
	return opt < AUTO_OPTIONS ? names[opt] : "?";
}

int codec_auto_init(struct codec_auto *a, int zstd_level)
{
	unsigned i;

	memset(a, 0, sizeof(*a));
	a->codec[1] = &codec_lz4;
	a->codec[2] = &codec_zstd;
	for (i = 1; i < AUTO_OPTIONS; i++) {
		a->ctx[i] = a->codec[i]->ctx_new(i == 2 ? zstd_level : 1);
		if (!a->ctx[i]) {
			codec_auto_free(a);
			return -ENOMEM;
		}
	}
	return 0;
}

void codec_auto_free(struct codec_auto *a)
{
	unsigned i;

	for (i = 1; i < AUTO_OPTIONS; i++)
		if (a->ctx[i])
			a->codec[i]->ctx_free(a->ctx[i]);
	memset(a->ctx, 0, sizeof(a->ctx));
}

/*
 * One window in PROBE_EVERY is a measuring window: it starts with a few
 * pages of each codec (their CPU cost and ratio on current data), then
 * sends raw, which times the link.
 */
static bool measuring(const struct codec_auto *a)
{
	return a->windows % PROBE_EVERY == 0;
}

bool codec_auto_timed(const struct codec_auto *a)
{
	/* clocks cost: time probes, and one page in SAMPLE otherwise */
	return measuring(a) || (a->win_pages % SAMPLE) == 0;
}

unsigned codec_auto_pick(struct codec_auto *a)
{
	if (!measuring(a))
		return a->choice;
	if (a->win_pages < AUTO_OPTIONS * PROBE_PAGES)
		return (unsigned)(a->win_pages / PROBE_PAGES);
	return 0;
}

void codec_auto_account(struct codec_auto *a, unsigned opt, bool timed,
			uint64_t cpu_ns, uint64_t wire_bytes,
			uint32_t page_size)
{
	if (timed)
		a->cpu_ns[opt] = AVG(a->cpu_ns[opt], (double)cpu_ns);
	else
		cpu_ns = (uint64_t)a->cpu_ns[opt]; /* the estimate */
	a->wire[opt] = AVG(a->wire[opt], (double)wire_bytes);
	a->pages[opt]++;
	a->cpu_total_ns[opt] += cpu_ns;
	if (wire_bytes < page_size)
		a->saved_bytes[opt] += page_size - wire_bytes;
	if (opt)
		a->win_cpu_ns += cpu_ns;
	a->win_pages++;
}

void codec_auto_window(struct codec_auto *a, uint64_t now_ns, uint64_t bytes,
		       uint32_t page_size)
{
	uint64_t wall, wire;
	double best = 0;
	unsigned i;

	if (a->win_pages < WINDOW) {
		if (!a->win_start_ns) {
			a->win_start_ns = now_ns;
			a->win_bytes0 = bytes;
		}
		return;
	}
	wall = now_ns - a->win_start_ns;
	wire = bytes - a->win_bytes0;
	/* time the link only on (mostly) raw windows: compressing, the
	 * sender may be waiting on its CPU, not on the link */
	if (wire && (measuring(a) || a->choice == 0))
		a->wire_ns_per_byte =
			AVG(a->wire_ns_per_byte, (double)wall / (double)wire);
	/* CPU and link work in parallel (the kernel sends while the next
	 * page is compressed): a page costs the slower of the two */
	for (i = 0; i < AUTO_OPTIONS; i++) {
		double w = a->wire[i] ? a->wire[i] : page_size;
		double link = w * a->wire_ns_per_byte;
		double cost = link > a->cpu_ns[i] ? link : a->cpu_ns[i];

		if (i && !a->pages[i])
			continue; /* never measured */
		if (i == 0 || cost < best) {
			best = cost;
			a->choice = i;
		}
	}
	a->windows++;
	a->win_pages = 0;
	a->win_cpu_ns = 0;
	a->win_start_ns = now_ns;
	a->win_bytes0 = bytes;
}
