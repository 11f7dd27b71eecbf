/*
 * memcheck - sees from inside the guest whether its RAM survived.  It
 * fills a buffer with a pattern that depends on a seed, on each word's
 * offset and on a per-page generation, then loops:
 *
 *   verify the whole buffer against the pattern,
 *   rewrite one page in 16 (a different sixteenth each pass) with the
 *   next generation, so the buffer keeps changing under a migration,
 *   print "ferry-memcheck: pass N ok", or for a wrong page
 *   "ferry-memcheck: MISMATCH at offset X" (its first wrong byte offset
 *   in the buffer, hex) and put the page right, so later passes report
 *   only new damage,
 *   sleep PAUSE_MS (so the console gets one line a second, not dozens).
 *
 *   memcheck [BYTES [SEED [PAUSE_MS [FLIP]]]]
 *
 * BYTES a multiple of 4K (default 16M), SEED decimal (default 24301),
 * PAUSE_MS default 1000.  FLIP, a byte offset, makes memcheck damage its
 * own buffer there once, after pass 1, to show that damage is seen.
 *
 * A page sent from an older pass, a page put at the wrong address, or a
 * page lost (zero) all break the pattern.
 */
#include "guest.h"

#define PAGE	    4096
#define WORDS	    (PAGE / 8)
#define SLICES	    16
#define MAX_REPORTS 8 /* MISMATCH lines per pass; the rest are counted */

struct memcheck {
	uint64_t *buf;
	uint32_t *gen; /* one per page, also in guest RAM */
	uint64_t pages;
	uint64_t seed;
};

static uint64_t expect(const struct memcheck *mc, uint64_t page, uint64_t w)
{
	uint64_t word = page * WORDS + w;

	return mix64(mc->seed ^ (word * 0x9e3779b97f4a7c15ull) ^
		     ((uint64_t)mc->gen[page] << 40));
}

static void fill_page(struct memcheck *mc, uint64_t page)
{
	uint64_t *p = mc->buf + page * WORDS;
	uint64_t w;

	for (w = 0; w < WORDS; w++)
		p[w] = expect(mc, page, w);
}

/* Offset in the page of its first wrong byte, or PAGE; counts the
 * wrong words in *wrong. */
static uint64_t check_page(const struct memcheck *mc, uint64_t page,
			   uint64_t *wrong)
{
	const uint64_t *p = mc->buf + page * WORDS;
	uint64_t w, diff, first = PAGE;
	unsigned b;

	for (w = 0; w < WORDS; w++) {
		diff = p[w] ^ expect(mc, page, w);
		if (!diff)
			continue;
		++*wrong;
		if (first != PAGE)
			continue;
		/* little-endian: the lowest differing byte comes first */
		for (b = 0; !(diff >> (8 * b) & 0xff); b++)
			;
		first = w * 8 + b;
	}
	return first;
}

int guest_main(int argc, char **argv)
{
	uint64_t bytes = argc > 1 ? parse_size(argv[1]) : 16ull << 20;
	uint64_t seed = argc > 2 ? parse_size(argv[2]) : 24301;
	uint64_t pause = argc > 3 ? parse_size(argv[3]) : 1000;
	uint64_t flip = argc > 4 ? parse_size(argv[4]) : ~0ull;
	struct line l = { .len = 0 };
	struct memcheck mc;
	uint64_t pass, page;

	if (!bytes || bytes % PAGE ||
	    (argc > 3 && !pause && argv[3][0] != '0') ||
	    (argc > 4 && flip >= bytes)) {
		put_str(&l, "ferry-memcheck: bad arguments (BYTES a multiple "
			    "of 4K, SEED, PAUSE_MS, FLIP below BYTES)");
		line_end(&l);
		return 2;
	}
	mc.pages = bytes / PAGE;
	mc.seed = seed;
	mc.buf = map_anon(bytes);
	mc.gen = map_anon(mc.pages * sizeof(*mc.gen));
	if (!mc.buf || !mc.gen) {
		put_str(&l, "ferry-memcheck: cannot map ");
		put_u64(&l, bytes, 10);
		put_str(&l, " bytes");
		line_end(&l);
		return 1;
	}
	put_str(&l, "ferry-memcheck: start ");
	put_u64(&l, bytes, 10);
	put_str(&l, " bytes, seed ");
	put_u64(&l, seed, 10);
	if (flip != ~0ull) {
		put_str(&l, ", will flip byte ");
		put_u64(&l, flip, 16);
	}
	line_end(&l);
	for (page = 0; page < mc.pages; page++)
		fill_page(&mc, page);

	for (pass = 1;; pass++) {
		uint64_t wrong = 0, bad_pages = 0;

		for (page = 0; page < mc.pages; page++) {
			uint64_t first = check_page(&mc, page, &wrong);

			if (first == PAGE)
				continue;
			if (bad_pages++ < MAX_REPORTS) {
				put_str(&l,
					"ferry-memcheck: MISMATCH at offset ");
				put_u64(&l, page * PAGE + first, 16);
				line_end(&l);
			}
			fill_page(&mc, page);
		}
		for (page = pass % SLICES; page < mc.pages; page += SLICES) {
			mc.gen[page]++;
			fill_page(&mc, page);
		}
		put_str(&l, "ferry-memcheck: pass ");
		put_u64(&l, pass, 10);
		if (bad_pages) {
			put_str(&l, " FAILED: ");
			put_u64(&l, wrong, 10);
			put_str(&l, " words wrong in ");
			put_u64(&l, bad_pages, 10);
			put_str(&l, " pages");
		} else {
			put_str(&l, " ok");
		}
		line_end(&l);
		if (pass == 1 && flip != ~0ull)
			((volatile unsigned char *)mc.buf)[flip] ^= 0x10;
		if (pause)
			sleep_ms((long)pause);
	}
}
