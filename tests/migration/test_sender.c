/*
 * test_sender.c - the source's choice of encoding for each page
 * (src/migration/sender.c, the stream carrier), read back from what it
 * wrote: a zero page as zero, the bulk pass raw and uncopied, a page sent
 * again unchanged as a run when the copy there is exactly it, as a hash to
 * check while the guest runs and in full once it is stopped, a changed
 * page as an XBZRLE delta over the copy sent before, and a compressible
 * page compressed.  The stream goes to a memfd through the real sender;
 * only the connection is this test's.
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

#include "carrier.h"
#include "codec.h"
#include "outgoing.h"

#define PS    4096u
#define PAGES 8u
#define MAXR  64

struct rig {
	struct ferry_ramblock blk;
	struct ferry_vm vm;
	struct ferry_migration *m;
	struct page_carrier_ops carrier;
	struct out o;
};

/* A page record as read back. */
struct got {
	uint64_t page;
	enum ferry_page_encoding enc;
	uint32_t len, run;
	uint64_t check_hash;
	uint8_t data[PS];
};

/* The connection: a memfd, read back by collect(). */
static int mem_open(struct out *o, struct sender *s, struct ferry_error *err)
{
	(void)o;
	s->fd = memfd_create("test-sender", MFD_CLOEXEC);
	return s->fd < 0 ? ferry_error_set(err, -errno, "memfd") : 0;
}

static void rig_open(struct rig *r, bool xbzrle, unsigned compression)
{
	struct ferry_error err = { 0 };
	struct ferry_mig_params p;

	memset(r, 0, sizeof(*r));
	r->blk = (struct ferry_ramblock){
		.id = 7,
		.name = "ram",
		.host = mmap(NULL, PAGES * PS, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
		.length = PAGES * PS
	};
	assert_true(r->blk.host != MAP_FAILED);
	r->vm = (struct ferry_vm){ .page_size = PS,
				   .blocks = &r->blk,
				   .nblocks = 1 };
	assert_int_equal(ferry_migration_new(&r->vm, &r->m, &err), 0);
	ferry_migration_get_params(r->m, &p);
	p.codec_auto = false;
	p.xbzrle = xbzrle;
	p.compression = compression;
	ferry_migration_set_params(r->m, &p);
	r->carrier = carrier_stream;
	r->carrier.open = mem_open;
	r->o.m = r->m;
	r->o.vm = &r->vm;
	r->o.carrier = &r->carrier;
	r->o.xbzrle = xbzrle;
	assert_int_equal(page_hashes_init(&r->o.ph, &r->vm, &err), 0);
	assert_int_equal(out_number_pages(&r->o, &err), 0);
	assert_int_equal(sender_open(&r->o, &r->o.main, 0, 0, &err), 0);
}

static void rig_close(struct rig *r)
{
	sender_close(&r->o.main);
	page_hashes_free(&r->o.ph, &r->vm);
	free(r->o.first_page);
	ferry_migration_free(r->m);
	munmap(r->blk.host, r->blk.length);
}

/* Pages first..first+count-1 in `mode` through the carrier. */
static void send(struct rig *r, uint64_t first, uint64_t count,
		 enum send_mode mode)
{
	struct ferry_dirty_range range = { .block = 0,
					   .first = first,
					   .count = count };
	struct ferry_dirty_set set = { .ranges = &range, .n = 1 };
	struct ferry_error err = { 0 };

	assert_int_equal(r->carrier.send(&r->o.main, &set, mode, &err), 0);
}

/* Every page record written so far, in order; their number. */
static size_t collect(struct rig *r, struct got *g)
{
	off_t len = lseek(r->o.main.fd, 0, SEEK_END);
	uint8_t *buf = malloc((size_t)len);
	struct ferry_stream_memsrc src = { buf, (size_t)len, 0 };
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	struct ferry_error err = { 0 };
	size_t n = 0;

	assert_non_null(buf);
	assert_int_equal(pread(r->o.main.fd, buf, (size_t)len, 0), len);
	assert_int_equal(
		ferry_stream_decoder_new(ferry_stream_source_mem(&src), &d), 0);
	assert_int_equal(ferry_stream_read_header(d, NULL, &err), 0);
	while (ferry_stream_decoder_offset(d) < (uint64_t)len) {
		assert_int_equal(ferry_stream_decoder_next(d, &rec, &err), 0);
		if (rec.type != FERRY_REC_PAGE)
			continue;
		assert_true(n < MAXR);
		g[n] = (struct got){ .page = rec.u.page.offset / PS,
				     .enc = rec.u.page.encoding,
				     .len = rec.u.page.len,
				     .run = rec.u.page.run,
				     .check_hash = rec.u.page.check_hash };
		/* a compressed page comes decompressed; others as sent */
		if (rec.u.page.data)
			memcpy(g[n].data, rec.u.page.data,
			       rec.u.page.encoding == FERRY_PAGE_ZSTD ||
					       rec.u.page.encoding ==
						       FERRY_PAGE_LZ4
				       ? PS
				       : rec.u.page.len);
		n++;
	}
	ferry_stream_decoder_free(d);
	free(buf);
	return n;
}

static void fill(uint8_t *p, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	for (i = 0; i < PS; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 24);
	}
}

static bool exact(const struct rig *r, uint64_t page)
{
	return r->o.ph.exact[0][page / 64] & (1ull << (page % 64));
}

/* The bulk pass: a zero page as zero, the others raw, straight from RAM
 * (not copied, so their hash is not known to be of what arrived). */
static void test_bulk_pass(void **state)
{
	struct got g[MAXR];
	struct rig r;
	uint64_t k;

	(void)state;
	rig_open(&r, false, 0);
	for (k = 1; k < PAGES; k++)
		fill(r.blk.host + k * PS, (unsigned)k);
	send(&r, 0, PAGES, SEND_FIRST);
	assert_int_equal(collect(&r, g), PAGES);
	assert_int_equal(g[0].enc, FERRY_PAGE_ZERO);
	assert_true(exact(&r, 0));
	assert_true(r.o.ph.h[0][0] == r.o.ph.zero);
	for (k = 1; k < PAGES; k++) {
		assert_int_equal(g[k].page, k);
		assert_int_equal(g[k].enc, FERRY_PAGE_RAW);
		assert_memory_equal(g[k].data, r.blk.host + k * PS, PS);
		assert_true(r.o.ph.h[0][k] ==
			    ferry_page_hash(r.blk.host + k * PS, PS));
		assert_false(exact(&r, k));
	}
	rig_close(&r);
}

/*
 * Sent again unchanged: while the guest runs, a hash for the destination
 * to check (the bulk pass's copy may have been torn); once it is stopped,
 * in full, as a copy; after that, a run of unchanged pages.
 */
static void test_again_unchanged(void **state)
{
	struct got g[MAXR];
	struct rig r;
	size_t n;
	uint64_t k;

	(void)state;
	rig_open(&r, false, 0);
	for (k = 0; k < PAGES; k++)
		fill(r.blk.host + k * PS, 10 + (unsigned)k);
	send(&r, 0, PAGES, SEND_FIRST);
	send(&r, 2, 3, SEND_AGAIN);
	n = collect(&r, g);
	assert_int_equal(n, PAGES + 3);
	for (k = 0; k < 3; k++) {
		assert_int_equal(g[PAGES + k].page, 2 + k);
		assert_int_equal(g[PAGES + k].enc, FERRY_PAGE_CHECK);
		assert_true(g[PAGES + k].check_hash ==
			    ferry_page_hash(r.blk.host + (2 + k) * PS, PS));
	}
	assert_int_equal(r.o.main.n.checked, 3);

	r.o.final = true; /* stopped: no checks now */
	send(&r, 2, 3, SEND_AGAIN);
	n = collect(&r, g);
	assert_int_equal(n, PAGES + 6);
	for (k = 0; k < 3; k++) {
		assert_int_equal(g[PAGES + 3 + k].enc, FERRY_PAGE_RAW);
		assert_true(exact(&r, 2 + k));
	}
	send(&r, 2, 3, SEND_AGAIN);
	n = collect(&r, g);
	assert_int_equal(n, PAGES + 7);
	assert_int_equal(g[n - 1].enc, FERRY_PAGE_UNCHANGED_RUN);
	assert_int_equal(g[n - 1].page, 2);
	assert_int_equal(g[n - 1].run, 3);
	rig_close(&r);
}

/* With xbzrle: a changed page goes as its delta over the copy sent last,
 * once a copy was sent; the delta applied to that copy is the page. */
static void test_again_changed_xbzrle(void **state)
{
	uint8_t before[PS], page[PS];
	struct got g[MAXR];
	struct rig r;
	size_t n;

	(void)state;
	rig_open(&r, true, 0);
	fill(r.blk.host + 3 * PS, 1);
	send(&r, 0, PAGES, SEND_FIRST);
	/* changed, and no copy in the cache yet: in full, copied */
	r.blk.host[3 * PS + 5] ^= 0xff;
	send(&r, 3, 1, SEND_AGAIN);
	n = collect(&r, g);
	assert_int_equal(g[n - 1].enc, FERRY_PAGE_RAW);
	memcpy(before, g[n - 1].data, PS);
	/* changed a little: the delta */
	r.blk.host[3 * PS + 100] ^= 0x5a;
	r.blk.host[3 * PS + 3000] ^= 0x33;
	send(&r, 3, 1, SEND_AGAIN);
	n = collect(&r, g);
	assert_int_equal(g[n - 1].enc, FERRY_PAGE_XBZRLE);
	assert_true(g[n - 1].len < 64);
	memcpy(page, before, PS);
	assert_int_equal(xbzrle_decode(g[n - 1].data, g[n - 1].len, page, PS),
			 0);
	assert_memory_equal(page, r.blk.host + 3 * PS, PS);
	assert_int_equal(r.o.main.n.xbz_pages, 1);
	rig_close(&r);
}

/* With multifd-compression: a page that shrinks goes compressed, one that
 * does not goes raw; both from a still copy, so their hashes are exact.
 * (The decoder hands the page decompressed.) */
static void test_compression(void **state)
{
	struct got g[MAXR];
	struct rig r;

	(void)state;
	rig_open(&r, false, codec_zstd.encoding);
	memset(r.blk.host + PS, 'a', PS / 2);
	fill(r.blk.host + 2 * PS, 9);
	send(&r, 1, 2, SEND_FIRST);
	assert_int_equal(collect(&r, g), 2);
	assert_int_equal(g[0].enc, codec_zstd.encoding);
	assert_true(g[0].len < PS / 8);
	assert_memory_equal(g[0].data, r.blk.host + PS, PS);
	assert_int_equal(g[1].enc, FERRY_PAGE_RAW);
	assert_true(exact(&r, 1) && exact(&r, 2));
	assert_int_equal(r.o.main.n.compressed, 1);
	assert_int_equal(r.o.main.n.normal, 1);
	rig_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bulk_pass),
		cmocka_unit_test(test_again_unchanged),
		cmocka_unit_test(test_again_changed_xbzrle),
		cmocka_unit_test(test_compression),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
