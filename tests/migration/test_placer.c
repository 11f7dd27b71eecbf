/*
 * test_placer.c - the destination's one writer of guest RAM
 * (src/migration/placer.c): a stream of every page encoding, decoded and
 * placed, leaves RAM as the source had it; a zero page never writes a
 * page that is zero already; a bad delta leaves the page alone; a check
 * record asks again only when the copy here differs; discards drop the
 * pages of private and shared RAM and mark them missing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "codec.h"
#include "ferry/stream.h"
#include "le.h"
#include "placer.h"
#include "postcopy.h"

#define PS    4096u
#define PAGES 64u

struct fixture {
	struct ferry_ramblock blk;
	struct ferry_vm vm;
	struct page_hashes ph;
	struct placer pl;
	atomic_int running;
};

static uint8_t *map_ram(size_t len, bool shared)
{
	uint8_t *p;

	if (shared) {
		int fd = memfd_create("test-placer", MFD_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, (off_t)len), 0);
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
	} else {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	assert_true(p != MAP_FAILED);
	return p;
}

static void fixture_init_n(struct fixture *f, bool shared, struct pc_in *pc,
			   uint32_t pages)
{
	struct ferry_error err = { 0 };

	memset(f, 0, sizeof(*f));
	f->blk = (struct ferry_ramblock){ .id = 3,
					  .name = "ram",
					  .host = map_ram(pages * PS, shared),
					  .length = (uint64_t)pages * PS };
	f->vm = (struct ferry_vm){ .page_size = PS,
				   .blocks = &f->blk,
				   .nblocks = 1 };
	assert_int_equal(page_hashes_init(&f->ph, &f->vm, &err), 0);
	assert_int_equal(
		placer_init(&f->pl, &f->vm, &f->ph, pc, &f->running, &err), 0);
}

static void fixture_init(struct fixture *f, bool shared, struct pc_in *pc)
{
	fixture_init_n(f, shared, pc, PAGES);
}

static void fixture_free(struct fixture *f)
{
	placer_free(&f->pl);
	page_hashes_free(&f->ph, &f->vm);
	munmap(f->blk.host, f->blk.length);
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

/* A record for page pg of the fixture's block, as the decoder gives it. */
static struct ferry_stream_record page_rec(enum ferry_page_encoding enc,
					   uint64_t pg, const void *data,
					   uint32_t len)
{
	struct ferry_stream_record r = { .type = FERRY_REC_PAGE };

	r.u.page.block_id = 3;
	r.u.page.offset = pg * PS;
	r.u.page.encoding = enc;
	r.u.page.data = data;
	r.u.page.len = len;
	r.u.page.run = 1;
	return r;
}

/*
 * The source's RAM through the encoder (raw, zero, zstd, lz4, xbzrle over
 * the copy the destination holds, unchanged), then the decoder matched
 * against the destination's RAM, then the placer: the destination ends
 * as the source, with each page's hash noted.
 */
static void test_page_path(void **state)
{
	/* payloads stay mapped until the flush */
	static uint8_t src[PAGES * PS], outs[PAGES][2 * PS];
	const struct page_codec *codecs[2] = { &codec_zstd, &codec_lz4 };
	struct ferry_stream_memsrc m;
	struct ferry_stream_encoder *e;
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	struct ferry_error err = { 0 };
	struct placer_tally t = { 0 };
	struct ferry_buf b = { 0 };
	struct fixture f;
	void *cctx[2];
	uint32_t pg;
	int rc;

	(void)state;
	fixture_init(&f, false, NULL);
	/* the destination holds an older copy of every page */
	fill(f.blk.host, PAGES * PS, 1);
	memcpy(src, f.blk.host, sizeof(src));
	assert_int_equal(
		ferry_stream_encoder_new(ferry_stream_sink_buf(&b), &e), 0);
	assert_int_equal(
		ferry_stream_put_header(e, FERRY_STREAM_F_COMPRESS |
						   FERRY_STREAM_F_XBZRLE |
						   FERRY_STREAM_F_UNCHANGED),
		0);
	assert_int_equal(ferry_stream_put_config(e, PS, &f.blk, 1), 0);
	cctx[0] = codecs[0]->ctx_new(1);
	cctx[1] = codecs[1]->ctx_new(1);
	for (pg = 0; pg < PAGES; pg++) {
		uint8_t *p = src + pg * PS, *out = outs[pg];
		size_t n;

		switch (pg % 6) {
		case 0: /* raw */
			fill(p, PS, 100 + pg);
			rc = ferry_stream_put_page(e, 3, pg * PS,
						   FERRY_PAGE_RAW, p, PS);
			break;
		case 1: /* zero, over a page that is not */
			memset(p, 0, PS);
			rc = ferry_stream_put_page(e, 3, pg * PS,
						   FERRY_PAGE_ZERO, NULL, 0);
			break;
		case 2: /* compressible, by zstd then lz4 */
		case 3:
			memset(p, (int)pg, PS / 2);
			n = codecs[pg % 6 - 2]->compress(cctx[pg % 6 - 2], p,
							 PS, out, 2 * PS);
			assert_true(n > 0 && n < PS);
			rc = ferry_stream_put_page(e, 3, pg * PS,
						   codecs[pg % 6 - 2]->encoding,
						   out, (uint32_t)n);
			break;
		case 4: { /* a few bytes changed: the delta */
			ptrdiff_t k;

			p[17] ^= 0x55;
			p[PS - 1] ^= 0x0f;
			k = xbzrle_encode(f.blk.host + pg * PS, p, PS, out,
					  PS - 1);
			assert_true(k > 0);
			rc = ferry_stream_put_page(e, 3, pg * PS,
						   FERRY_PAGE_XBZRLE, out,
						   (uint32_t)k);
			break;
		}
		default: /* unchanged */
			rc = ferry_stream_put_page(
				e, 3, pg * PS, FERRY_PAGE_UNCHANGED, NULL, 0);
		}
		assert_int_equal(rc, 0);
	}
	assert_int_equal(ferry_stream_put_end(e, NULL), 0);
	assert_int_equal(ferry_stream_flush(e), 0);
	ferry_stream_encoder_free(e);
	codecs[0]->ctx_free(cctx[0]);
	codecs[1]->ctx_free(cctx[1]);

	m = (struct ferry_stream_memsrc){ b.data, b.len, 0 };
	assert_int_equal(
		ferry_stream_decoder_new(ferry_stream_source_mem(&m), &d), 0);
	ferry_stream_decoder_match_ram(d, PS, &f.blk, 1);
	assert_int_equal(ferry_stream_read_header(d, NULL, &err), 0);
	for (;;) {
		rc = ferry_stream_decoder_next(d, &rec, &err);
		if (rc)
			fail_msg("decoding: %s", err.msg);
		if (rec.type == FERRY_REC_END)
			break;
		if (rec.type == FERRY_REC_PAGE)
			assert_int_equal(placer_page(&f.pl, &rec, &t, &err), 0);
	}
	ferry_stream_decoder_free(d);
	ferry_buf_free(&b);

	assert_memory_equal(f.blk.host, src, sizeof(src));
	for (pg = 0; pg < PAGES; pg++)
		if (pg % 6 != 5)
			assert_true(f.ph.h[0][pg] ==
				    ferry_page_hash(src + pg * PS, PS));
	assert_int_equal(t.duplicate, 11); /* pages 1, 7, ..., 61 */
	assert_int_equal(t.unchanged, 10); /* pages 5, 11, ..., 59 */
	assert_int_equal(t.normal, PAGES - 21);
	assert_int_equal(t.stale, 0);
	fixture_free(&f);
}

/* A zero page over a zero page writes nothing: the page may be mapped
 * read-only (an untouched page stays unallocated), and is not faulted. */
static void test_zero_writes_only_where_needed(void **state)
{
	struct ferry_stream_record r;
	struct ferry_error err = { 0 };
	struct placer_tally t = { 0 };
	struct fixture f;

	(void)state;
	fixture_init(&f, false, NULL);
	memset(f.blk.host + 2 * PS, 0x33, PS);
	assert_int_equal(mprotect(f.blk.host, PS, PROT_READ), 0);
	r = page_rec(FERRY_PAGE_ZERO, 0, NULL, 0);
	assert_int_equal(placer_page(&f.pl, &r, &t, &err), 0);
	r = page_rec(FERRY_PAGE_ZERO, 2, NULL, 0);
	assert_int_equal(placer_page(&f.pl, &r, &t, &err), 0);
	assert_int_equal(f.blk.host[2 * PS + 100], 0);
	assert_int_equal(t.duplicate, 2);
	assert_true(f.ph.h[0][0] == f.ph.zero && f.ph.h[0][2] == f.ph.zero);

	/* runs of zeros (rdma's zero messages): whole pages and parts */
	memset(f.blk.host + 3 * PS, 0x44, 3 * PS);
	placer_zero(&f.vm, 0, 0, PS); /* read-only and zero: not written */
	placer_zero(&f.vm, 0, 3 * PS + 100, PS);
	assert_int_equal(f.blk.host[3 * PS + 99], 0x44);
	assert_int_equal(f.blk.host[3 * PS + 100], 0);
	assert_int_equal(f.blk.host[4 * PS + 99], 0);
	assert_int_equal(f.blk.host[4 * PS + 100], 0x44);
	placer_zero(&f.vm, 0, 4 * PS, 2 * PS);
	assert_int_equal(f.blk.host[5 * PS + PS - 1], 0);
	assert_int_equal(mprotect(f.blk.host, PS, PROT_READ | PROT_WRITE), 0);
	fixture_free(&f);
}

/* A delta that does not fit the page is refused and the page is left. */
static void test_bad_delta(void **state)
{
	static const uint8_t past[] = { 0xff, 0x1f, 2, 1, 1 };
	struct ferry_stream_record r;
	struct ferry_error err = { 0 };
	struct placer_tally t = { 0 };
	struct fixture f;

	(void)state;
	fixture_init(&f, false, NULL);
	memset(f.blk.host, 0xab, PS);
	r = page_rec(FERRY_PAGE_XBZRLE, 0, past, sizeof(past));
	r.stream_offset = 4242;
	assert_int_equal(placer_page(&f.pl, &r, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "stream offset 4242"));
	assert_non_null(strstr(err.msg, "xbzrle"));
	for (size_t i = 0; i < PS; i++)
		assert_int_equal(f.blk.host[i], 0xab);
	fixture_free(&f);
}

/* A check record: 0 when the copy here has that hash, 1 (ask again) and a
 * stale page when it does not; unchanged runs count their pages. */
static void test_check_and_unchanged(void **state)
{
	struct ferry_stream_record r;
	struct ferry_error err = { 0 };
	struct placer_tally t = { 0 };
	struct fixture f;
	uint8_t page[PS];

	(void)state;
	fixture_init(&f, false, NULL);
	fill(page, PS, 9);
	r = page_rec(FERRY_PAGE_RAW, 1, page, PS);
	assert_int_equal(placer_page(&f.pl, &r, &t, &err), 0);
	r = page_rec(FERRY_PAGE_CHECK, 1, NULL, 8);
	r.u.page.check_hash = ferry_page_hash(page, PS);
	assert_int_equal(placer_page(&f.pl, &r, &t, &err), 0);
	r.u.page.check_hash ^= 1;
	assert_int_equal(placer_page(&f.pl, &r, &t, &err), 1);
	r = page_rec(FERRY_PAGE_UNCHANGED_RUN, 2, NULL, 4);
	r.u.page.run = 7;
	assert_int_equal(placer_page(&f.pl, &r, &t, &err), 0);
	assert_int_equal(t.normal, 1);
	assert_int_equal(t.unchanged, 8);
	assert_int_equal(t.stale, 1);
	fixture_free(&f);
}

/* In post-copy only whole pages can be placed. */
static void test_postcopy_whole_pages_only(void **state)
{
	static const uint8_t delta[] = { 10, 1, 7 };
	struct ferry_stream_record r;
	struct ferry_error err = { 0 };
	struct placer_tally t = { 0 };
	struct fixture f;

	(void)state;
	fixture_init(&f, false, NULL);
	atomic_store(&f.running, 1);
	r = page_rec(FERRY_PAGE_XBZRLE, 0, delta, sizeof(delta));
	assert_int_equal(placer_page(&f.pl, &r, &t, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "post-copy"));
	assert_int_equal(f.blk.host[10], 0);
	fixture_free(&f);
}

/* Discards drop the pages (they read back as zero) and mark them missing,
 * over more ranges than one process_madvise call takes, in private and
 * in shared RAM. */
#define DPAGES 4200u /* every other one: 2100 ranges, over 1024 */

static void discard(bool shared)
{
	static struct ferry_stream_range r[DPAGES / 2];
	struct ferry_error err = { 0 };
	struct pc_in pc;
	struct fixture f;
	uint32_t i;

	fixture_init_n(&f, shared, &pc, DPAGES);
	assert_int_equal(pc_in_init(&pc, &f.vm, NULL, &err), 0);
	for (i = 0; i < DPAGES; i++)
		memset(f.blk.host + (size_t)i * PS, 0x5c, PS);
	for (i = 0; i < DPAGES / 2; i++)
		r[i] = (struct ferry_stream_range){ .ram_index = 0,
						    .first = 2 * i,
						    .count = 1 };
	assert_int_equal(placer_discard(&f.pl, r, DPAGES / 2, &err), 0);
	for (i = 0; i < DPAGES; i++) {
		const uint8_t *p = f.blk.host + (size_t)i * PS;

		assert_int_equal(pc_in_missing(&pc, 0, i), i % 2 == 0);
		if (i % 2 == 0)
			assert_true(codec_is_zero(p, PS));
		else
			assert_true(p[0] == 0x5c && p[PS - 1] == 0x5c);
	}
	assert_int_equal(atomic_load(&pc.left), DPAGES / 2);
	/* placed once: the first placement counts, not a second */
	assert_true(pc_in_placed(&pc, 0, 4));
	assert_false(pc_in_placed(&pc, 0, 4));
	assert_false(pc_in_placed(&pc, 0, 5)); /* never dropped */
	assert_int_equal(atomic_load(&pc.left), DPAGES / 2 - 1);
	pc_in_free(&pc);
	fixture_free(&f);
}

static void test_discard_private(void **state)
{
	(void)state;
	discard(false);
}

static void test_discard_shared(void **state)
{
	(void)state;
	discard(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_path),
		cmocka_unit_test(test_zero_writes_only_where_needed),
		cmocka_unit_test(test_bad_delta),
		cmocka_unit_test(test_check_and_unchanged),
		cmocka_unit_test(test_postcopy_whole_pages_only),
		cmocka_unit_test(test_discard_private),
		cmocka_unit_test(test_discard_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
