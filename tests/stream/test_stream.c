/*
 * test_stream.c - unit tests of the migration stream (include/ferry/stream.h):
 * every record type through encoder and decoder, with and without RAM
 * attached; every malformed input the decoder must refuse, with its errno,
 * an offset in the message and a sticky failure; the encoder's sticky error
 * and byte count; a long stream through a small pipe with partial writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

#define PS	 4096u
#define RAM0_LEN (64u * 1024)
#define RAM1_LEN (16u * 1024)

/* The layout most tests use: two blocks, 4 KiB pages. */
static const struct ferry_ramblock layout[2] = {
	{ .id = 0, .name = "ram0", .length = RAM0_LEN },
	{ .id = 1, .name = "ram1", .length = RAM1_LEN },
};

/* ---- helpers ------------------------------------------------------------ */

/* A stream being built: an encoder writing into a buffer. */
struct sb {
	struct ferry_buf buf;
	struct ferry_stream_encoder *e;
};

static void sb_init(struct sb *s)
{
	struct ferry_stream_sink sink;

	memset(s, 0, sizeof(*s));
	sink = ferry_stream_sink_buf(&s->buf);
	assert_int_equal(ferry_stream_encoder_new(sink, &s->e), 0);
}

static void sb_free(struct sb *s)
{
	ferry_stream_encoder_free(s->e);
	ferry_buf_free(&s->buf);
}

/* Flush; the stream length so far is where the next record starts. */
static size_t sb_mark(struct sb *s)
{
	assert_int_equal(ferry_stream_flush(s->e), 0);
	return s->buf.len;
}

/* Header and the standard configuration. */
static void sb_start(struct sb *s)
{
	sb_init(s);
	assert_int_equal(ferry_stream_put_header(s->e, 0), 0);
	assert_int_equal(ferry_stream_put_config(s->e, PS, layout, 2), 0);
}

/* Append a hand-built record, every header field chosen; returns its offset. */
static size_t sb_raw(struct sb *s, uint8_t type, uint8_t flags, uint16_t rsvd,
		     uint32_t len_field, const void *body, size_t body_len)
{
	size_t at = sb_mark(s);
	uint8_t h[FERRY_STREAM_RECORD_HDR_LEN];

	h[0] = type;
	h[1] = flags;
	le16_store(h + 2, rsvd);
	le32_store(h + 4, len_field);
	assert_int_equal(ferry_buf_put(&s->buf, h, sizeof(h)), 0);
	if (body_len)
		assert_int_equal(ferry_buf_put(&s->buf, body, body_len), 0);
	return at;
}

/* A well-framed hand-built record. */
static size_t sb_rec(struct sb *s, uint8_t type, const void *body, uint32_t len)
{
	return sb_raw(s, type, 0, 0, len, body, len);
}

/* The fixed part of a page record body. */
static void page_body(uint8_t *p, uint32_t block, uint8_t enc, uint64_t off,
		      uint32_t plen)
{
	memset(p, 0, FERRY_STREAM_PAGE_HDR_LEN);
	le32_store(p, block);
	p[4] = enc;
	le64_store(p + 8, off);
	le32_store(p + 16, plen);
}

/* The fixed part of a device record body. */
static void device_body(uint8_t *p, uint16_t nl, uint32_t instance,
			uint32_t version, uint32_t dl)
{
	le16_store(p, nl);
	le16_store(p + 2, 0);
	le32_store(p + 4, instance);
	le32_store(p + 8, version);
	le32_store(p + 12, dl);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	for (i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static uint8_t *ram_alloc(size_t len, uint8_t v)
{
	uint8_t *p = aligned_alloc(PS, len);

	assert_non_null(p);
	memset(p, v, len);
	return p;
}

static struct ferry_stream_decoder *dec_open(struct ferry_stream_memsrc *m,
					     const uint8_t *data, size_t len)
{
	struct ferry_stream_decoder *d = NULL;

	m->data = data;
	m->len = len;
	m->pos = 0;
	assert_int_equal(
		ferry_stream_decoder_new(ferry_stream_source_mem(m), &d), 0);
	return d;
}

static void header_ok(struct ferry_stream_decoder *d)
{
	struct ferry_error err = { 0 };
	uint32_t flags = 0xdead;
	int rc = ferry_stream_read_header(d, &flags, &err);

	if (rc)
		print_message("header: %s\n", ferry_error_msg(&err));
	assert_int_equal(rc, 0);
	assert_int_equal(flags, 0);
}

static void next_ok(struct ferry_stream_decoder *d,
		    struct ferry_stream_record *rec)
{
	struct ferry_error err = { 0 };
	int rc = ferry_stream_decoder_next(d, rec, &err);

	if (rc)
		print_message("unexpected failure: %s\n",
			      ferry_error_msg(&err));
	assert_int_equal(rc, 0);
	assert_int_equal(err.code, 0);
}

static void check_err(const struct ferry_error *err, int rc, int code)
{
	if (rc != code)
		print_message("expected %d, got %d: %s\n", code, rc,
			      ferry_error_msg(err));
	assert_int_equal(rc, code);
	assert_int_equal(err->code, code);
	if (!strstr(err->msg, "offset"))
		print_message("message without an offset: '%s'\n", err->msg);
	assert_non_null(strstr(err->msg, "offset"));
}

/* The header read must fail with code. */
static void expect_header_fail(const uint8_t *data, size_t len, int code)
{
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d = dec_open(&m, data, len);
	struct ferry_error err = { 0 };

	check_err(&err, ferry_stream_read_header(d, NULL, &err), code);
	ferry_stream_decoder_free(d);
}

/*
 * Decode the stream (into ram when it is not NULL) and expect exactly `good`
 * records to decode before one fails with `code`.  The failure must name an
 * offset and stick: the next call fails the same way and reads nothing.
 */
static void expect_fail_ram(const uint8_t *data, size_t len,
			    const struct ferry_ramblock *ram, size_t nram,
			    uint32_t page_size, unsigned good, int code)
{
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d = dec_open(&m, data, len);
	struct ferry_stream_record rec;
	struct ferry_error err = { 0 };
	unsigned n = 0;
	uint64_t off;
	int rc, i;

	if (ram)
		ferry_stream_decoder_match_ram(d, page_size, ram, nram);
	header_ok(d);
	while ((rc = ferry_stream_decoder_next(d, &rec, &err)) == 0 &&
	       n < 100000)
		n++;
	if (n != good)
		print_message("%u records decoded before the failure, "
			      "expected %u: %s\n",
			      n, good, ferry_error_msg(&err));
	assert_int_equal(n, good);
	check_err(&err, rc, code);

	off = ferry_stream_decoder_offset(d);
	for (i = 0; i < 2; i++) {
		ferry_error_clear(&err);
		rc = ferry_stream_decoder_next(d, &rec, &err);
		check_err(&err, rc, code);
		assert_int_equal(ferry_stream_decoder_offset(d), off);
	}
	ferry_stream_decoder_free(d);
}

static void expect_fail(const struct ferry_buf *b, unsigned good, int code)
{
	expect_fail_ram(b->data, b->len, NULL, 0, 0, good, code);
}

/* ---- round trips ------------------------------------------------------ */

static void test_header(void **state)
{
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_error err = { 0 };
	struct sb s;

	(void)state;
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	assert_int_equal(sb_mark(&s), FERRY_STREAM_HEADER_LEN);
	assert_memory_equal(s.buf.data, FERRY_STREAM_MAGIC, 8);
	assert_int_equal(le16_load(s.buf.data + 8), FERRY_STREAM_VERSION);
	assert_int_equal(le16_load(s.buf.data + 10), FERRY_STREAM_HEADER_LEN);
	assert_int_equal(le32_load(s.buf.data + 12), 0);

	d = dec_open(&m, s.buf.data, s.buf.len);
	assert_null(ferry_stream_decoder_config(d));
	header_ok(d);
	assert_int_equal(ferry_stream_decoder_offset(d),
			 FERRY_STREAM_HEADER_LEN);
	/* a second header read is a protocol error */
	assert_int_equal(ferry_stream_read_header(d, NULL, &err), -EPROTO);
	ferry_stream_decoder_free(d);
	sb_free(&s);
}

static void test_config_one_block(void **state)
{
	const struct ferry_ramblock one = {
		.id = 77,
		.name = "pc.ram",
		.length = 3 * PS,
	};
	const struct ferry_stream_config *c;
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	struct sb s;
	size_t at;

	(void)state;
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	at = sb_mark(&s);
	assert_int_equal(ferry_stream_put_config(s.e, PS, &one, 1), 0);
	sb_mark(&s);

	d = dec_open(&m, s.buf.data, s.buf.len);
	header_ok(d);
	next_ok(d, &rec);
	assert_int_equal(rec.type, FERRY_REC_CONFIG);
	assert_int_equal(rec.stream_offset, at);
	c = rec.u.config;
	assert_non_null(c);
	assert_ptr_equal(c, ferry_stream_decoder_config(d));
	assert_int_equal(c->page_size, PS);
	assert_int_equal(c->nblocks, 1);
	assert_int_equal(c->blocks[0].id, 77);
	assert_string_equal(c->blocks[0].name, "pc.ram");
	assert_int_equal(c->blocks[0].length, 3 * PS);
	assert_int_equal(ferry_stream_decoder_offset(d), s.buf.len);
	ferry_stream_decoder_free(d);
	sb_free(&s);
}

static void test_config_many_blocks(void **state)
{
	struct ferry_ramblock b[6] = {
		{ .id = 42, .name = "a", .length = 8192 },
		{ .id = 0, .name = "pc.ram", .length = 1ull << 40 },
		{ .id = 0xffffffffu, .name = "vga ~!", .length = 3 * 8192 },
		{ .id = 7, .name = "", .length = 8192 * 1000 },
		{ .id = 1000000, .name = "rom@0xfffc0000", .length = 8192 },
		{ .id = 3, .name = "last", .length = 1ull << 48 },
	};
	const struct ferry_stream_config *c;
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	struct sb s;
	size_t i;

	(void)state;
	memset(b[3].name, 'x', FERRY_NAME_MAX); /* the longest name */
	b[3].name[FERRY_NAME_MAX] = '\0';
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	assert_int_equal(ferry_stream_put_config(s.e, 8192, b, 6), 0);
	sb_mark(&s);

	d = dec_open(&m, s.buf.data, s.buf.len);
	header_ok(d);
	next_ok(d, &rec);
	assert_int_equal(rec.type, FERRY_REC_CONFIG);
	c = ferry_stream_decoder_config(d);
	assert_ptr_equal(c, rec.u.config);
	assert_int_equal(c->page_size, 8192);
	assert_int_equal(c->nblocks, 6);
	for (i = 0; i < 6; i++) {
		assert_int_equal(c->blocks[i].id, b[i].id);
		assert_string_equal(c->blocks[i].name, b[i].name);
		assert_int_equal(c->blocks[i].length, b[i].length);
	}
	assert_int_equal(strlen(c->blocks[3].name), FERRY_NAME_MAX);
	ferry_stream_decoder_free(d);
	sb_free(&s);
}

static void test_page_raw(void **state)
{
	static uint8_t a[PS], b[PS];
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	struct sb s;
	size_t at1, at2;

	(void)state;
	fill(a, PS, 1);
	fill(b, PS, 2);
	sb_start(&s);
	at1 = sb_mark(&s);
	assert_int_equal(ferry_stream_put_page(s.e, 1, 2 * PS, FERRY_PAGE_RAW,
					       a, PS),
			 0);
	at2 = sb_mark(&s);
	assert_int_equal(ferry_stream_put_page(s.e, 0, RAM0_LEN - PS,
					       FERRY_PAGE_RAW, b, PS),
			 0);
	sb_mark(&s);

	d = dec_open(&m, s.buf.data, s.buf.len);
	header_ok(d);
	next_ok(d, &rec);
	next_ok(d, &rec);
	assert_int_equal(rec.type, FERRY_REC_PAGE);
	assert_int_equal(rec.stream_offset, at1);
	assert_int_equal(rec.u.page.block_id, 1);
	assert_int_equal(rec.u.page.block_index, 1);
	assert_int_equal(rec.u.page.offset, 2 * PS);
	assert_int_equal(rec.u.page.encoding, FERRY_PAGE_RAW);
	assert_int_equal(rec.u.page.len, PS);
	assert_non_null(rec.u.page.data);
	assert_memory_equal(rec.u.page.data, a, PS);
	next_ok(d, &rec);
	assert_int_equal(rec.stream_offset, at2);
	assert_int_equal(rec.u.page.block_id, 0);
	assert_int_equal(rec.u.page.block_index, 0);
	assert_int_equal(rec.u.page.offset, RAM0_LEN - PS);
	assert_memory_equal(rec.u.page.data, b, PS);
	assert_int_equal(ferry_stream_decoder_offset(d), s.buf.len);
	ferry_stream_decoder_free(d);
	sb_free(&s);
}

static void test_page_zero(void **state)
{
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	struct sb s;

	(void)state;
	sb_start(&s);
	assert_int_equal(
		ferry_stream_put_page(s.e, 1, PS, FERRY_PAGE_ZERO, NULL, 0), 0);
	sb_mark(&s);

	d = dec_open(&m, s.buf.data, s.buf.len);
	header_ok(d);
	next_ok(d, &rec);
	next_ok(d, &rec);
	assert_int_equal(rec.type, FERRY_REC_PAGE);
	assert_int_equal(rec.u.page.block_id, 1);
	assert_int_equal(rec.u.page.block_index, 1);
	assert_int_equal(rec.u.page.offset, PS);
	assert_int_equal(rec.u.page.encoding, FERRY_PAGE_ZERO);
	assert_int_equal(rec.u.page.len, 0);
	assert_null(rec.u.page.data);
	ferry_stream_decoder_free(d);
	sb_free(&s);
}

/* Pages matched against RAM name the block they belong to, found by name;
 * the decoder writes none of it (the placer does, src/migration/placer.c). */
static void test_page_matched(void **state)
{
	static uint8_t a[PS], b[PS];
	struct ferry_ramblock ram[2];
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	uint8_t *r0, *r1;
	struct sb s;

	(void)state;
	r0 = ram_alloc(RAM0_LEN, 0xaa);
	r1 = ram_alloc(RAM1_LEN, 0xbb);
	/* attached in the other order than the configuration lists them */
	ram[0] = layout[1];
	ram[0].host = r1;
	ram[1] = layout[0];
	ram[1].host = r0;
	fill(a, PS, 3);
	fill(b, PS, 4);

	sb_start(&s);
	assert_int_equal(ferry_stream_put_page(s.e, 1, 2 * PS, FERRY_PAGE_RAW,
					       a, PS),
			 0);
	assert_int_equal(
		ferry_stream_put_page(s.e, 0, 0, FERRY_PAGE_RAW, b, PS), 0);
	/* a dirty destination page, then an already clean one */
	assert_int_equal(ferry_stream_put_page(s.e, 0, 5 * PS, FERRY_PAGE_ZERO,
					       NULL, 0),
			 0);
	assert_int_equal(ferry_stream_put_page(s.e, 0, 5 * PS, FERRY_PAGE_ZERO,
					       NULL, 0),
			 0);
	assert_int_equal(ferry_stream_put_page(s.e, 1, 3 * PS, FERRY_PAGE_ZERO,
					       NULL, 0),
			 0);
	sb_mark(&s);

	d = dec_open(&m, s.buf.data, s.buf.len);
	ferry_stream_decoder_match_ram(d, PS, ram, 2);
	header_ok(d);
	next_ok(d, &rec);
	assert_int_equal(rec.type, FERRY_REC_CONFIG);

	next_ok(d, &rec);
	assert_int_equal(rec.type, FERRY_REC_PAGE);
	assert_int_equal(rec.u.page.block_id, 1);
	assert_int_equal(rec.u.page.block_index, 1);
	assert_int_equal(rec.u.page.ram_index, 0);
	assert_int_equal(rec.u.page.len, PS);
	assert_memory_equal(rec.u.page.data, a, PS);

	next_ok(d, &rec);
	assert_int_equal(rec.u.page.block_id, 0);
	assert_int_equal(rec.u.page.ram_index, 1);
	assert_memory_equal(rec.u.page.data, b, PS);

	next_ok(d, &rec);
	assert_int_equal(rec.u.page.encoding, FERRY_PAGE_ZERO);
	assert_int_equal(rec.u.page.ram_index, 1);
	assert_int_equal(rec.u.page.offset, 5 * PS);
	assert_null(rec.u.page.data);
	next_ok(d, &rec);
	assert_int_equal(rec.u.page.ram_index, 1);
	next_ok(d, &rec);
	assert_int_equal(rec.u.page.ram_index, 0);
	assert_int_equal(rec.u.page.offset, 3 * PS);
	assert_int_equal(ferry_stream_decoder_offset(d), s.buf.len);

	/* RAM as it was */
	assert_true(all_bytes(r0, RAM0_LEN, 0xaa));
	assert_true(all_bytes(r1, RAM1_LEN, 0xbb));

	ferry_stream_decoder_free(d);
	sb_free(&s);
	free(r0);
	free(r1);
}

static void test_device(void **state)
{
	const size_t big_len = 200000; /* over the encoder's 64 KiB arena */
	char longname[FERRY_NAME_MAX + 1];
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	uint8_t *big, empty = 0;
	size_t at[4];
	struct sb s;

	(void)state;
	big = malloc(big_len);
	assert_non_null(big);
	fill(big, big_len, 5);
	memset(longname, 'd', FERRY_NAME_MAX);
	longname[FERRY_NAME_MAX] = '\0';

	sb_start(&s);
	at[0] = sb_mark(&s);
	assert_int_equal(
		ferry_stream_put_device(s.e, "serial", 3, 7, "hello", 5), 0);
	at[1] = sb_mark(&s);
	assert_int_equal(ferry_stream_put_device(s.e, "empty", 0, 1, &empty, 0),
			 0);
	at[2] = sb_mark(&s);
	assert_int_equal(ferry_stream_put_device(s.e, "big", 0xffffffffu,
						 0x12345678u, big,
						 (uint32_t)big_len),
			 0);
	at[3] = sb_mark(&s);
	assert_int_equal(ferry_stream_put_device(s.e, longname, 1, 2, "x", 1),
			 0);
	sb_mark(&s);

	d = dec_open(&m, s.buf.data, s.buf.len);
	header_ok(d);
	next_ok(d, &rec);

	next_ok(d, &rec);
	assert_int_equal(rec.type, FERRY_REC_DEVICE);
	assert_int_equal(rec.stream_offset, at[0]);
	assert_string_equal(rec.u.device.name, "serial");
	assert_int_equal(rec.u.device.instance, 3);
	assert_int_equal(rec.u.device.version, 7);
	assert_int_equal(rec.u.device.len, 5);
	assert_memory_equal(rec.u.device.data, "hello", 5);

	next_ok(d, &rec);
	assert_int_equal(rec.type, FERRY_REC_DEVICE);
	assert_int_equal(rec.stream_offset, at[1]);
	assert_string_equal(rec.u.device.name, "empty");
	assert_int_equal(rec.u.device.instance, 0);
	assert_int_equal(rec.u.device.version, 1);
	assert_int_equal(rec.u.device.len, 0);

	next_ok(d, &rec);
	assert_int_equal(rec.stream_offset, at[2]);
	assert_string_equal(rec.u.device.name, "big");
	assert_int_equal(rec.u.device.instance, 0xffffffffu);
	assert_int_equal(rec.u.device.version, 0x12345678u);
	assert_int_equal(rec.u.device.len, big_len);
	assert_memory_equal(rec.u.device.data, big, big_len);

	next_ok(d, &rec);
	assert_int_equal(rec.stream_offset, at[3]);
	assert_string_equal(rec.u.device.name, longname);
	assert_int_equal(rec.u.device.len, 1);
	assert_memory_equal(rec.u.device.data, "x", 1);
	assert_int_equal(ferry_stream_decoder_offset(d), s.buf.len);

	ferry_stream_decoder_free(d);
	sb_free(&s);
	free(big);
}

static void test_iter_end(void **state)
{
	const uint64_t iters[] = { 0, 1, 5, 1ull << 40, UINT64_MAX };
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	struct sb s;
	size_t i;

	(void)state;
	sb_start(&s);
	for (i = 0; i < 5; i++)
		assert_int_equal(ferry_stream_put_iter_end(s.e, iters[i]), 0);
	sb_mark(&s);

	d = dec_open(&m, s.buf.data, s.buf.len);
	header_ok(d);
	next_ok(d, &rec);
	for (i = 0; i < 5; i++) {
		next_ok(d, &rec);
		assert_int_equal(rec.type, FERRY_REC_ITER_END);
		assert_int_equal(rec.stream_offset,
				 72 + i * (FERRY_STREAM_RECORD_HDR_LEN + 8));
		assert_true(rec.u.iter.iteration == iters[i]);
	}
	ferry_stream_decoder_free(d);
	sb_free(&s);
}

static void end_roundtrip(const uint8_t *digest, bool stopped)
{
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	struct ferry_error err = { 0 };
	struct sb s;
	size_t at;

	sb_start(&s);
	assert_int_equal(ferry_stream_put_iter_end(s.e, 0), 0);
	at = sb_mark(&s);
	if (stopped)
		assert_int_equal(ferry_stream_put_end_stopped(s.e, digest), 0);
	else
		assert_int_equal(ferry_stream_put_end(s.e, digest), 0);
	sb_mark(&s);

	d = dec_open(&m, s.buf.data, s.buf.len);
	header_ok(d);
	next_ok(d, &rec);
	next_ok(d, &rec);
	next_ok(d, &rec);
	assert_int_equal(rec.type, FERRY_REC_END);
	assert_int_equal(rec.stream_offset, at);
	assert_int_equal(rec.u.end.has_digest, digest != NULL);
	assert_int_equal(rec.u.end.stopped, stopped);
	if (digest)
		assert_memory_equal(rec.u.end.digest, digest, 16);
	assert_int_equal(ferry_stream_decoder_offset(d), s.buf.len);
	/* nothing comes after the end, even at the end of input */
	assert_int_equal(ferry_stream_decoder_next(d, &rec, &err), -EPROTO);
	ferry_stream_decoder_free(d);
	sb_free(&s);
}

static void test_end_digest(void **state)
{
	uint8_t digest[16];

	(void)state;
	fill(digest, 16, 6);
	end_roundtrip(digest, false);
	memset(digest, 0, 16); /* an all-zero digest is still a digest */
	end_roundtrip(digest, false);
}

static void test_end_no_digest(void **state)
{
	(void)state;
	end_roundtrip(NULL, false);
}

/* the run state travels: a guest stopped on the source stays stopped */
static void test_end_stopped(void **state)
{
	uint8_t digest[16];

	(void)state;
	fill(digest, 16, 7);
	end_roundtrip(digest, true);
	end_roundtrip(NULL, true);
}

static void test_record_type_name(void **state)
{
	(void)state;
	assert_string_equal(ferry_record_type_name(FERRY_REC_CONFIG),
			    "configuration");
	assert_string_equal(ferry_record_type_name(FERRY_REC_PAGE), "page");
	assert_string_equal(ferry_record_type_name(FERRY_REC_DEVICE), "device");
	assert_string_equal(ferry_record_type_name(FERRY_REC_ITER_END),
			    "end-of-iteration");
	assert_string_equal(ferry_record_type_name(FERRY_REC_END),
			    "end-of-stream");
	assert_string_equal(ferry_record_type_name(0), "unknown");
	assert_string_equal(ferry_record_type_name(FERRY_REC_CHANNEL),
			    "channel");
	assert_string_equal(ferry_record_type_name(FERRY_REC_SYNC), "sync");
	assert_string_equal(ferry_record_type_name(FERRY_REC_DISCARD),
			    "discard");
	assert_string_equal(ferry_record_type_name(FERRY_REC_POSTCOPY),
			    "postcopy");
	assert_string_equal(ferry_record_type_name(FERRY_REC_LANDED), "landed");
	assert_string_equal(ferry_record_type_name(11), "unknown");
	assert_string_equal(ferry_record_type_name(UINT32_MAX), "unknown");
}

/* ---- multifd: the channel record ----------------------------------------- */

/* header with flags, then whatever build() adds; decode up to the end */
static int decode_all(const struct ferry_buf *b, int *records,
		      struct ferry_stream_record *first,
		      struct ferry_error *err)
{
	struct ferry_stream_memsrc m = { b->data, b->len, 0 };
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	int rc;

	assert_int_equal(
		ferry_stream_decoder_new(ferry_stream_source_mem(&m), &d), 0);
	*records = 0;
	rc = ferry_stream_read_header(d, NULL, err);
	while (!rc) {
		rc = ferry_stream_decoder_next(d, &rec, err);
		if (rc)
			break;
		if ((*records)++ == 0)
			*first = rec;
		if (rec.type == FERRY_REC_END)
			break;
	}
	ferry_stream_decoder_free(d);
	return rc;
}

static const uint8_t token[FERRY_STREAM_TOKEN_LEN] = {
	0xf1, 0x02, 0xe3, 0x04, 0xd5, 0x06, 0xc7, 0x08,
	0xb9, 0x0a, 0xab, 0x0c, 0x9d, 0x0e, 0x8f, 0x10,
};

static void channel_stream(struct ferry_buf *b, uint32_t flags, bool channel,
			   uint64_t session, uint16_t index, uint16_t count)
{
	static uint8_t page[4096];
	struct ferry_ramblock blk = { .id = 3,
				      .name = "ram0",
				      .length = 1 << 20 };
	struct ferry_stream_encoder *e;

	memset(b, 0, sizeof(*b));
	assert_int_equal(ferry_stream_encoder_new(ferry_stream_sink_buf(b), &e),
			 0);
	assert_int_equal(ferry_stream_put_header(e, flags), 0);
	if (channel)
		assert_int_equal(ferry_stream_put_channel(e, session, token,
							  index, count),
				 0);
	assert_int_equal(ferry_stream_put_config(e, 4096, &blk, 1), 0);
	assert_int_equal(ferry_stream_put_page(e, 3, 8192, FERRY_PAGE_RAW, page,
					       4096),
			 0);
	assert_int_equal(ferry_stream_put_end(e, NULL), 0);
	assert_int_equal(ferry_stream_flush(e), 0);
	ferry_stream_encoder_free(e);
}

static void test_channel_record(void **state)
{
	struct ferry_error err = { 0 };
	struct ferry_stream_record first;
	struct ferry_buf b;
	int n;

	(void)state;
	channel_stream(&b, FERRY_STREAM_F_MULTIFD, true, 0x1122334455667788ull,
		       2, 4);
	assert_int_equal(decode_all(&b, &n, &first, &err), 0);
	assert_int_equal(n, 4);
	assert_int_equal(first.type, FERRY_REC_CHANNEL);
	assert_int_equal(first.u.channel.session, 0x1122334455667788ull);
	assert_int_equal(first.u.channel.index, 2);
	assert_int_equal(first.u.channel.count, 4);
	assert_memory_equal(first.u.channel.token, token, sizeof(token));
	ferry_buf_free(&b);
	/* on the wire: 32 bytes of body, the token last */
	channel_stream(&b, FERRY_STREAM_F_MULTIFD, true, 1, 1, 2);
	assert_int_equal(le32_load(b.data + FERRY_STREAM_HEADER_LEN + 4),
			 16 + FERRY_STREAM_TOKEN_LEN);
	assert_memory_equal(b.data + FERRY_STREAM_HEADER_LEN + 8 + 16, token,
			    sizeof(token));
	ferry_buf_free(&b);

	/* the flag without the record */
	channel_stream(&b, FERRY_STREAM_F_MULTIFD, false, 0, 0, 0);
	check_err(&err, decode_all(&b, &n, &first, &err), -EPROTO);
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* the record without the flag is a type this stream does not have */
	channel_stream(&b, 0, true, 1, 0, 1);
	check_err(&err, decode_all(&b, &n, &first, &err), -EBADMSG);
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* index past the count, and a count of zero */
	channel_stream(&b, FERRY_STREAM_F_MULTIFD, true, 1, 5, 4);
	check_err(&err, decode_all(&b, &n, &first, &err), -EBADMSG);
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	channel_stream(&b, FERRY_STREAM_F_MULTIFD, true, 1, 0, 0);
	check_err(&err, decode_all(&b, &n, &first, &err), -EBADMSG);
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* reserved bits */
	channel_stream(&b, FERRY_STREAM_F_MULTIFD, true, 1, 1, 2);
	le32_store(b.data + FERRY_STREAM_HEADER_LEN + 8 + 12, 1);
	check_err(&err, decode_all(&b, &n, &first, &err), -EBADMSG);
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* version 1's 16-byte record, without the token (the length says
	 * so before a byte of the body is read), and one too long */
	channel_stream(&b, FERRY_STREAM_F_MULTIFD, true, 1, 1, 2);
	le32_store(b.data + FERRY_STREAM_HEADER_LEN + 4, 16);
	check_err(&err, decode_all(&b, &n, &first, &err), -EBADMSG);
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	channel_stream(&b, FERRY_STREAM_F_MULTIFD, true, 1, 1, 2);
	le32_store(b.data + FERRY_STREAM_HEADER_LEN + 4,
		   16 + FERRY_STREAM_TOKEN_LEN + 1);
	check_err(&err, decode_all(&b, &n, &first, &err), -E2BIG);
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* a version 1 stream (the channel record without a token): refused
	 * by its header, naming both versions */
	channel_stream(&b, FERRY_STREAM_F_MULTIFD, true, 1, 1, 2);
	le16_store(b.data + 8, 1);
	check_err(&err, decode_all(&b, &n, &first, &err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err.msg, "version 1 is not supported"));
	assert_non_null(strstr(err.msg, "reads version 2"));
	ferry_buf_free(&b);
}

/* ---- the unchanged encoding ---------------------------------------------- */

static void unchanged_stream(struct ferry_buf *b, uint32_t flags,
			     uint32_t payload)
{
	static uint8_t page[4096];
	struct ferry_ramblock blk = { .id = 0,
				      .name = "ram0",
				      .length = 1 << 20 };
	struct ferry_stream_encoder *e;

	memset(b, 0, sizeof(*b));
	assert_int_equal(ferry_stream_encoder_new(ferry_stream_sink_buf(b), &e),
			 0);
	assert_int_equal(ferry_stream_put_header(e, flags), 0);
	assert_int_equal(ferry_stream_put_config(e, 4096, &blk, 1), 0);
	assert_int_equal(ferry_stream_put_page(e, 0, 4096, FERRY_PAGE_UNCHANGED,
					       page, payload),
			 0);
	assert_int_equal(ferry_stream_put_end(e, NULL), 0);
	assert_int_equal(ferry_stream_flush(e), 0);
	ferry_stream_encoder_free(e);
}

static void test_unchanged_encoding(void **state)
{
	uint8_t ram[1 << 20];
	struct ferry_ramblock blk = {
		.id = 0, .name = "ram0", .host = ram, .length = sizeof(ram)
	};
	struct ferry_error err = { 0 };
	struct ferry_stream_record first, rec;
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_buf b;
	int n;

	(void)state;
	/* allowed with the flag, and it leaves the page as it is */
	unchanged_stream(&b, FERRY_STREAM_F_UNCHANGED, 0);
	memset(ram, 0xab, sizeof(ram));
	m = (struct ferry_stream_memsrc){ b.data, b.len, 0 };
	assert_int_equal(
		ferry_stream_decoder_new(ferry_stream_source_mem(&m), &d), 0);
	ferry_stream_decoder_match_ram(d, 4096, &blk, 1);
	assert_int_equal(ferry_stream_read_header(d, NULL, &err), 0);
	assert_int_equal(ferry_stream_decoder_next(d, &rec, &err), 0);
	assert_int_equal(ferry_stream_decoder_next(d, &rec, &err), 0);
	assert_int_equal(rec.u.page.encoding, FERRY_PAGE_UNCHANGED);
	assert_int_equal(rec.u.page.len, 0);
	assert_int_equal(ram[4096], 0xab);
	assert_int_equal(ram[8191], 0xab);
	ferry_stream_decoder_free(d);
	ferry_buf_free(&b);
	/* without the flag it is an unknown encoding */
	unchanged_stream(&b, 0, 0);
	check_err(&err, decode_all(&b, &n, &first, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "encoding 2"));
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* and it carries no payload */
	unchanged_stream(&b, FERRY_STREAM_F_UNCHANGED, 4096);
	check_err(&err, decode_all(&b, &n, &first, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "unchanged"));
	ferry_buf_free(&b);
}

/* A stream of one page record with the given encoding and payload, then
 * (when sync) a sync record, then the end. */
static void one_page_stream(struct ferry_buf *b, uint32_t flags,
			    enum ferry_page_encoding enc, const void *payload,
			    uint32_t len, bool sync)
{
	struct ferry_ramblock blk = { .id = 0,
				      .name = "ram0",
				      .length = 1 << 20 };
	struct ferry_stream_encoder *e;
	const uint8_t *copy;

	memset(b, 0, sizeof(*b));
	assert_int_equal(ferry_stream_encoder_new(ferry_stream_sink_buf(b), &e),
			 0);
	assert_int_equal(ferry_stream_put_header(e, flags), 0);
	assert_int_equal(ferry_stream_put_config(e, 4096, &blk, 1), 0);
	assert_int_equal(ferry_stream_put_page_copy(e, 0, 4096, enc, payload,
						    len, &copy),
			 0);
	if (sync)
		assert_int_equal(ferry_stream_put_sync(e, 77), 0);
	assert_int_equal(ferry_stream_put_end(e, NULL), 0);
	assert_int_equal(ferry_stream_flush(e), 0);
	ferry_stream_encoder_free(e);
}

/* Decode b matched against ram (1 MiB, one block); the page record into
 * *rec, its data copied to stay valid. */
static int decode_into(const struct ferry_buf *b, uint8_t *ram,
		       struct ferry_stream_record *rec, struct ferry_error *err)
{
	static uint8_t data[4096];
	struct ferry_ramblock blk = {
		.id = 0, .name = "ram0", .host = ram, .length = 1 << 20
	};
	struct ferry_stream_memsrc m = { b->data, b->len, 0 };
	struct ferry_stream_decoder *d;
	int rc;

	assert_int_equal(
		ferry_stream_decoder_new(ferry_stream_source_mem(&m), &d), 0);
	ferry_stream_decoder_match_ram(d, 4096, &blk, 1);
	rc = ferry_stream_read_header(d, NULL, err);
	if (!rc)
		rc = ferry_stream_decoder_next(d, rec, err); /* config */
	if (!rc)
		rc = ferry_stream_decoder_next(d, rec, err); /* the page */
	if (!rc && rec->u.page.data) { /* a compressed page: all of it */
		memcpy(data, rec->u.page.data,
		       codec_by_encoding(rec->u.page.encoding)
			       ? sizeof(data)
			       : rec->u.page.len);
		rec->u.page.data = data;
	}
	ferry_stream_decoder_free(d);
	return rc;
}

static void test_check_encoding(void **state)
{
	static uint8_t ram[1 << 20];
	uint8_t hash[8], nine[9] = { 0 };
	struct ferry_error err = { 0 };
	struct ferry_stream_record rec, first;
	struct ferry_buf b;
	int n;

	(void)state;
	le64_store(hash, 0x0123456789abcdefull);
	memset(ram, 0xab, sizeof(ram));
	one_page_stream(&b, FERRY_STREAM_F_CHECK, FERRY_PAGE_CHECK, hash, 8,
			true);
	assert_int_equal(decode_into(&b, ram, &rec, &err), 0);
	assert_int_equal(rec.u.page.encoding, FERRY_PAGE_CHECK);
	assert_true(rec.u.page.check_hash == 0x0123456789abcdefull);
	assert_true(all_bytes(ram, sizeof(ram), 0xab)); /* nothing written */
	/* the sync record that follows decodes too */
	assert_int_equal(decode_all(&b, &n, &first, &err), 0);
	ferry_buf_free(&b);
	/* without the flag: an unknown encoding */
	one_page_stream(&b, 0, FERRY_PAGE_CHECK, hash, 8, false);
	check_err(&err, decode_into(&b, ram, &rec, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "encoding 5"));
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* a hash is 8 bytes, no more */
	one_page_stream(&b, FERRY_STREAM_F_CHECK, FERRY_PAGE_CHECK, nine, 9,
			false);
	check_err(&err, decode_into(&b, ram, &rec, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "check page record carries 9"));
	ferry_buf_free(&b);
}

/* A zlib page needs the header's zlib flag (bit 7): a destination that
 * knows zstd and lz4 (bit 2) but not zlib refuses it by name. */
static void test_zlib_flag(void **state)
{
	static uint8_t ram[1 << 20], page[4096], z[4096];
	struct ferry_error err = { 0 };
	struct ferry_stream_record rec;
	struct ferry_buf b;
	void *ctx = codec_zlib.ctx_new(1);
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(page); i++)
		page[i] = (uint8_t)("text pages compress "[i % 20]);
	n = codec_zlib.compress(ctx, page, sizeof(page), z, sizeof(z));
	assert_true(n > 0 && n < sizeof(page));
	one_page_stream(&b, FERRY_STREAM_F_ZLIB, FERRY_PAGE_ZLIB, z,
			(uint32_t)n, false);
	assert_int_equal(decode_into(&b, ram, &rec, &err), 0);
	assert_int_equal(rec.u.page.encoding, FERRY_PAGE_ZLIB);
	assert_int_equal(rec.u.page.len, n); /* the payload's length */
	assert_memory_equal(rec.u.page.data, page, sizeof(page));
	ferry_buf_free(&b);
	one_page_stream(&b, FERRY_STREAM_F_COMPRESS, FERRY_PAGE_ZLIB, z,
			(uint32_t)n, false);
	check_err(&err, decode_into(&b, ram, &rec, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "unknown encoding 8"));
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* and zstd does not come with the zlib flag */
	one_page_stream(&b, FERRY_STREAM_F_ZLIB, FERRY_PAGE_ZSTD, z,
			(uint32_t)n, false);
	check_err(&err, decode_into(&b, ram, &rec, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "unknown encoding 3"));
	ferry_buf_free(&b);
	codec_zlib.ctx_free(ctx);
}

static void test_sync_record(void **state)
{
	uint8_t hash[8] = { 0 };
	struct ferry_error err = { 0 };
	struct ferry_stream_record first;
	struct ferry_buf b;
	size_t at;
	int n;

	(void)state;
	/* a sync needs the check flag */
	one_page_stream(&b, 0, FERRY_PAGE_ZERO, hash, 0, true);
	check_err(&err, decode_all(&b, &n, &first, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "unknown record type 7"));
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* and is 8 bytes long */
	one_page_stream(&b, FERRY_STREAM_F_CHECK, FERRY_PAGE_ZERO, hash, 0,
			true);
	at = b.len - (FERRY_STREAM_RECORD_HDR_LEN + 24) -
	     (FERRY_STREAM_RECORD_HDR_LEN + 8);
	assert_int_equal(b.data[at], FERRY_REC_SYNC);
	le32_store(b.data + at + 4, 7);
	check_err(&err, decode_all(&b, &n, &first, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "sync record length 7"));
	ferry_buf_free(&b);
}

static void test_xbzrle_encoding(void **state)
{
	static uint8_t ram[1 << 20];
	/* skip 10, then 3 bytes; skip 4000, then 1 byte */
	static const uint8_t delta[] = { 10, 3, 7, 8, 9, 0xa0, 0x1f, 1, 5 };
	static const uint8_t past[] = { 0xff, 0x1f, 2, 1, 1 };
	struct ferry_error err = { 0 };
	struct ferry_stream_record rec;
	struct ferry_buf b;

	(void)state;
	memset(ram, 0xab, sizeof(ram));
	one_page_stream(&b, FERRY_STREAM_F_XBZRLE, FERRY_PAGE_XBZRLE, delta,
			sizeof(delta), false);
	assert_int_equal(decode_into(&b, ram, &rec, &err), 0);
	assert_int_equal(rec.u.page.encoding, FERRY_PAGE_XBZRLE);
	/* the delta, checked, for the placer to apply (test_placer) */
	assert_int_equal(rec.u.page.len, sizeof(delta));
	assert_memory_equal(rec.u.page.data, delta, sizeof(delta));
	assert_true(all_bytes(ram, sizeof(ram), 0xab));
	ferry_buf_free(&b);
	/* a delta that runs past the page leaves RAM alone */
	memset(ram, 0xab, sizeof(ram));
	one_page_stream(&b, FERRY_STREAM_F_XBZRLE, FERRY_PAGE_XBZRLE, past,
			sizeof(past), false);
	check_err(&err, decode_into(&b, ram, &rec, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "xbzrle"));
	assert_true(all_bytes(ram, sizeof(ram), 0xab));
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* empty, and without the flag */
	one_page_stream(&b, FERRY_STREAM_F_XBZRLE, FERRY_PAGE_XBZRLE, delta, 0,
			false);
	check_err(&err, decode_into(&b, ram, &rec, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "1 to 4095"));
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	one_page_stream(&b, FERRY_STREAM_F_COMPRESS, FERRY_PAGE_XBZRLE, delta,
			sizeof(delta), false);
	check_err(&err, decode_into(&b, ram, &rec, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "encoding 6"));
	ferry_buf_free(&b);
}

static void test_unchanged_run(void **state)
{
	static uint8_t ram[1 << 20];
	struct ferry_error err = { 0 };
	struct ferry_stream_record rec;
	struct ferry_buf b;
	uint8_t le[4];

	(void)state;
	memset(ram, 0xab, sizeof(ram));
	/* pages 1 to 255: to the end of the block */
	le32_store(le, 255);
	one_page_stream(&b, FERRY_STREAM_F_UNCHANGED, FERRY_PAGE_UNCHANGED_RUN,
			le, 4, false);
	assert_int_equal(decode_into(&b, ram, &rec, &err), 0);
	assert_int_equal(rec.u.page.encoding, FERRY_PAGE_UNCHANGED_RUN);
	assert_int_equal(rec.u.page.run, 255);
	assert_true(all_bytes(ram, sizeof(ram), 0xab));
	ferry_buf_free(&b);
	/* one page past the end of the block */
	le32_store(le, 256);
	one_page_stream(&b, FERRY_STREAM_F_UNCHANGED, FERRY_PAGE_UNCHANGED_RUN,
			le, 4, false);
	check_err(&err, decode_into(&b, ram, &rec, &err), -ERANGE);
	assert_non_null(strstr(err.msg, "unchanged-run of 256 pages"));
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* a run of none */
	le32_store(le, 0);
	one_page_stream(&b, FERRY_STREAM_F_UNCHANGED, FERRY_PAGE_UNCHANGED_RUN,
			le, 4, false);
	check_err(&err, decode_into(&b, ram, &rec, &err), -EBADMSG);
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* without the flag */
	le32_store(le, 2);
	one_page_stream(&b, 0, FERRY_PAGE_UNCHANGED_RUN, le, 4, false);
	check_err(&err, decode_into(&b, ram, &rec, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "encoding 7"));
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* the count is 4 bytes */
	one_page_stream(&b, FERRY_STREAM_F_UNCHANGED, FERRY_PAGE_UNCHANGED_RUN,
			ram, 8, false);
	check_err(&err, decode_into(&b, ram, &rec, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "(4 expected)"));
	ferry_buf_free(&b);
}

/* header (postcopy), channel, config (ram0: 256 pages), one discard record
 * of the given range, a postcopy record, end */
static void discard_stream(struct ferry_buf *b, uint32_t flags, uint32_t id,
			   uint64_t first, uint64_t count)
{
	struct ferry_ramblock blk = { .id = 0,
				      .name = "ram0",
				      .length = 1 << 20 };
	struct ferry_stream_encoder *e;

	memset(b, 0, sizeof(*b));
	assert_int_equal(ferry_stream_encoder_new(ferry_stream_sink_buf(b), &e),
			 0);
	assert_int_equal(ferry_stream_put_header(e, flags), 0);
	if (flags & FERRY_STREAM_F_POSTCOPY)
		assert_int_equal(ferry_stream_put_channel(e, 7, token, 0, 1),
				 0);
	assert_int_equal(ferry_stream_put_config(e, 4096, &blk, 1), 0);
	assert_int_equal(ferry_stream_put_discard(e, &id, &first, &count, 1),
			 0);
	assert_int_equal(ferry_stream_put_postcopy(e, count), 0);
	assert_int_equal(ferry_stream_put_end(e, NULL), 0);
	assert_int_equal(ferry_stream_flush(e), 0);
	ferry_stream_encoder_free(e);
}

static void test_discard_record(void **state)
{
	struct ferry_stream_record rec;
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_error err = { 0 };
	struct ferry_buf b;
	int n;

	(void)state;
	discard_stream(&b, FERRY_STREAM_F_POSTCOPY, 0, 10, 246);
	m = (struct ferry_stream_memsrc){ b.data, b.len, 0 };
	assert_int_equal(
		ferry_stream_decoder_new(ferry_stream_source_mem(&m), &d), 0);
	assert_int_equal(ferry_stream_read_header(d, NULL, &err), 0);
	assert_int_equal(ferry_stream_decoder_next(d, &rec, &err), 0);
	assert_int_equal(rec.type, FERRY_REC_CHANNEL);
	assert_int_equal(ferry_stream_decoder_next(d, &rec, &err), 0);
	assert_int_equal(ferry_stream_decoder_next(d, &rec, &err), 0);
	assert_int_equal(rec.type, FERRY_REC_DISCARD);
	assert_int_equal(rec.u.discard.n, 1);
	assert_true(rec.u.discard.pages == 246);
	assert_true(rec.u.discard.ranges[0].first == 10);
	assert_int_equal(ferry_stream_decoder_next(d, &rec, &err), 0);
	assert_int_equal(rec.type, FERRY_REC_POSTCOPY);
	assert_true(rec.u.postcopy.pages == 246);
	ferry_stream_decoder_free(d);
	ferry_buf_free(&b);
	/* one page past the block */
	discard_stream(&b, FERRY_STREAM_F_POSTCOPY, 0, 10, 247);
	check_err(&err, decode_all(&b, &n, &rec, &err), -ERANGE);
	assert_non_null(strstr(err.msg, "discard range 0"));
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* a count of zero */
	discard_stream(&b, FERRY_STREAM_F_POSTCOPY, 0, 10, 0);
	check_err(&err, decode_all(&b, &n, &rec, &err), -EBADMSG);
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* a block the configuration did not declare */
	discard_stream(&b, FERRY_STREAM_F_POSTCOPY, 9, 0, 1);
	check_err(&err, decode_all(&b, &n, &rec, &err), -ENXIO);
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* without the flag */
	discard_stream(&b, 0, 0, 0, 1);
	check_err(&err, decode_all(&b, &n, &rec, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "unknown record type 8"));
	ferry_buf_free(&b);
}

/* header, config (ram0: 256 pages), a landed record of two ranges, end */
static void landed_stream(struct ferry_buf *b, uint32_t flags, uint32_t id,
			  uint64_t first, uint64_t count)
{
	struct ferry_ramblock blk = { .id = 0,
				      .name = "ram0",
				      .length = 1 << 20 };
	struct ferry_stream_encoder *e;
	uint32_t ids[2] = { 0, id };
	uint64_t firsts[2] = { 0, first }, counts[2] = { 3, count };

	memset(b, 0, sizeof(*b));
	assert_int_equal(ferry_stream_encoder_new(ferry_stream_sink_buf(b), &e),
			 0);
	assert_int_equal(ferry_stream_put_header(e, flags), 0);
	assert_int_equal(ferry_stream_put_config(e, 4096, &blk, 1), 0);
	assert_int_equal(ferry_stream_put_landed(e, ids, firsts, counts, 2), 0);
	assert_int_equal(ferry_stream_put_end(e, NULL), 0);
	assert_int_equal(ferry_stream_flush(e), 0);
	ferry_stream_encoder_free(e);
}

/* The pages rdma wrote, named after a pass: checked as discard's are. */
static void test_landed_record(void **state)
{
	struct ferry_stream_record rec;
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_error err = { 0 };
	struct ferry_buf b;
	int n;

	(void)state;
	landed_stream(&b, FERRY_STREAM_F_LANDED, 0, 100, 156);
	m = (struct ferry_stream_memsrc){ b.data, b.len, 0 };
	assert_int_equal(
		ferry_stream_decoder_new(ferry_stream_source_mem(&m), &d), 0);
	assert_int_equal(ferry_stream_read_header(d, NULL, &err), 0);
	assert_int_equal(ferry_stream_decoder_next(d, &rec, &err), 0);
	assert_int_equal(ferry_stream_decoder_next(d, &rec, &err), 0);
	assert_int_equal(rec.type, FERRY_REC_LANDED);
	assert_int_equal(rec.u.discard.n, 2);
	assert_true(rec.u.discard.pages == 159);
	assert_true(rec.u.discard.ranges[1].first == 100);
	assert_true(rec.u.discard.ranges[1].count == 156);
	assert_int_equal(ferry_stream_decoder_next(d, &rec, &err), 0);
	assert_int_equal(rec.type, FERRY_REC_END);
	ferry_stream_decoder_free(d);
	ferry_buf_free(&b);
	/* past the block, by one page */
	landed_stream(&b, FERRY_STREAM_F_LANDED, 0, 100, 157);
	check_err(&err, decode_all(&b, &n, &rec, &err), -ERANGE);
	assert_non_null(strstr(err.msg, "landed range 1"));
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* a block the configuration did not declare */
	landed_stream(&b, FERRY_STREAM_F_LANDED, 5, 0, 1);
	check_err(&err, decode_all(&b, &n, &rec, &err), -ENXIO);
	assert_non_null(strstr(err.msg, "landed record names RAM block id 5"));
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* without the flag: unknown, as to a destination before it */
	landed_stream(&b, 0, 0, 0, 1);
	check_err(&err, decode_all(&b, &n, &rec, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "unknown record type 10"));
	ferry_buf_free(&b);
	ferry_error_clear(&err);
	/* a post-copy stream's flag is not enough */
	landed_stream(&b, FERRY_STREAM_F_CHECK, 0, 0, 1);
	check_err(&err, decode_all(&b, &n, &rec, &err), -EBADMSG);
	ferry_buf_free(&b);
}

/* ---- a long stream through a small pipe ---------------------------------- */

#define PIPE_PAGES   2000u
#define PIPE_DEV_LEN 100000u

struct pipe_job {
	int fd;
	pthread_t writer;
	uint8_t *src;
	uint8_t *dev;
	uint8_t digest[16];
	uint64_t bytes;
	int rc;
	int done;
};

static volatile sig_atomic_t sigusr1_seen;

static void on_sigusr1(int sig)
{
	(void)sig;
	sigusr1_seen++;
}

static void *pipe_writer(void *arg)
{
	struct pipe_job *j = arg;
	struct ferry_ramblock blk = {
		.id = 9,
		.name = "big",
		.host = j->src,
		.length = (uint64_t)PIPE_PAGES * PS,
	};
	struct ferry_stream_encoder *e = NULL;
	struct ferry_digest *g = NULL;
	uint32_t i;
	int rc;

	rc = ferry_stream_encoder_new(ferry_stream_sink_fd(&j->fd), &e);
	if (!rc)
		rc = ferry_digest_new(&g);
	if (!rc)
		rc = ferry_stream_put_header(e, 0);
	if (!rc)
		rc = ferry_stream_put_config(e, PS, &blk, 1);
	for (i = 0; i < PIPE_PAGES && !rc; i++) {
		const uint8_t *p = j->src + (uint64_t)i * PS;

		if (i % 5 == 0)
			rc = ferry_stream_put_page(e, 9, (uint64_t)i * PS,
						   FERRY_PAGE_ZERO, NULL, 0);
		else
			rc = ferry_stream_put_page(e, 9, (uint64_t)i * PS,
						   FERRY_PAGE_RAW, p, PS);
		if (!rc && i == PIPE_PAGES / 2)
			rc = ferry_stream_put_device(e, "dev", 2, 3, j->dev,
						     PIPE_DEV_LEN);
		if (!rc && i % 500 == 499)
			rc = ferry_stream_put_iter_end(e, i / 500);
	}
	if (!rc) {
		ferry_digest_block(g, blk.name, blk.host, blk.length, 4096);
		ferry_digest_section(g, "dev", 2, 3, j->dev, PIPE_DEV_LEN);
		ferry_digest_final(g, j->digest);
		rc = ferry_stream_put_end(e, j->digest);
	}
	if (!rc)
		rc = ferry_stream_flush(e);
	if (e)
		j->bytes = ferry_stream_encoder_bytes(e);
	ferry_stream_encoder_free(e);
	ferry_digest_free(g);
	close(j->fd);
	j->rc = rc;
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Interrupt the writer's blocked writes, so some come back partial. */
static void *pipe_pester(void *arg)
{
	struct pipe_job *j = arg;

	while (!__atomic_load_n(&j->done, __ATOMIC_ACQUIRE)) {
		pthread_kill(j->writer, SIGUSR1);
		usleep(100);
	}
	return NULL;
}

static void test_fd_pipe(void **state)
{
	const uint64_t len = (uint64_t)PIPE_PAGES * PS;
	struct sigaction sa, old_usr1, old_pipe;
	struct ferry_stream_decoder *d = NULL;
	struct ferry_stream_record rec;
	struct ferry_error err = { 0 };
	struct ferry_ramblock dst;
	struct ferry_digest *g;
	struct pipe_job j;
	pthread_t pester;
	uint8_t *devcopy, digest[16], got[16];
	unsigned pages = 0, iters = 0, devs = 0;
	int fds[2], rfd;
	uint32_t i;

	(void)state;
	memset(&j, 0, sizeof(j));
	j.src = ram_alloc(len, 0);
	j.dev = malloc(PIPE_DEV_LEN);
	devcopy = malloc(PIPE_DEV_LEN);
	assert_non_null(j.dev);
	assert_non_null(devcopy);
	fill(j.dev, PIPE_DEV_LEN, 7);
	for (i = 0; i < PIPE_PAGES; i++)
		if (i % 5)
			fill(j.src + (uint64_t)i * PS, PS, 100 + i);
	dst = (struct ferry_ramblock){
		.id = 9,
		.name = "big",
		.host = ram_alloc(len, 0x5a),
		.length = len,
	};

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1; /* no SA_RESTART: writes come back short */
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, &old_usr1), 0);
	sa.sa_handler = SIG_IGN;
	assert_int_equal(sigaction(SIGPIPE, &sa, &old_pipe), 0);

	assert_int_equal(pipe(fds), 0);
	fcntl(fds[1], F_SETPIPE_SZ, 4096); /* the smallest pipe there is */
	rfd = fds[0];
	j.fd = fds[1];
	sigusr1_seen = 0;
	assert_int_equal(pthread_create(&j.writer, NULL, pipe_writer, &j), 0);
	assert_int_equal(pthread_create(&pester, NULL, pipe_pester, &j), 0);

	assert_int_equal(
		ferry_stream_decoder_new(ferry_stream_source_fd(&rfd), &d), 0);
	ferry_stream_decoder_match_ram(d, PS, &dst, 1);
	header_ok(d);
	for (;;) {
		next_ok(d, &rec);
		if (rec.type == FERRY_REC_PAGE) {
			assert_int_equal(rec.u.page.offset,
					 (uint64_t)pages * PS);
			assert_int_equal(rec.u.page.encoding,
					 pages % 5 ? FERRY_PAGE_RAW
						   : FERRY_PAGE_ZERO);
			/* placed as the placer would */
			if (rec.u.page.data)
				memcpy(dst.host + rec.u.page.offset,
				       rec.u.page.data, PS);
			else
				memset(dst.host + rec.u.page.offset, 0, PS);
			pages++;
		} else if (rec.type == FERRY_REC_DEVICE) {
			assert_string_equal(rec.u.device.name, "dev");
			assert_int_equal(rec.u.device.len, PIPE_DEV_LEN);
			memcpy(devcopy, rec.u.device.data, PIPE_DEV_LEN);
			devs++;
		} else if (rec.type == FERRY_REC_ITER_END) {
			assert_int_equal(rec.u.iter.iteration, iters);
			iters++;
		} else if (rec.type == FERRY_REC_END) {
			break;
		}
	}
	assert_true(rec.u.end.has_digest);
	memcpy(got, rec.u.end.digest, 16);
	assert_int_equal(ferry_stream_decoder_next(d, &rec, &err), -EPROTO);

	assert_int_equal(pthread_join(pester, NULL), 0);
	assert_int_equal(pthread_join(j.writer, NULL), 0);
	assert_int_equal(sigaction(SIGUSR1, &old_usr1, NULL), 0);
	assert_int_equal(sigaction(SIGPIPE, &old_pipe, NULL), 0);
	assert_int_equal(j.rc, 0);
	assert_int_equal(ferry_stream_decoder_offset(d), j.bytes);

	assert_int_equal(pages, PIPE_PAGES);
	assert_int_equal(iters, PIPE_PAGES / 500);
	assert_int_equal(devs, 1);
	assert_memory_equal(dst.host, j.src, len);
	assert_memory_equal(devcopy, j.dev, PIPE_DEV_LEN);
	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, dst.name, dst.host, dst.length, 4096);
	ferry_digest_section(g, "dev", 2, 3, devcopy, PIPE_DEV_LEN);
	ferry_digest_final(g, digest);
	ferry_digest_free(g);
	assert_memory_equal(digest, got, 16);
	assert_memory_equal(digest, j.digest, 16);

	ferry_stream_decoder_free(d);
	close(rfd);
	free(dst.host);
	free(j.src);
	free(j.dev);
	free(devcopy);
}

/* ---- malformed headers -------------------------------------------------- */

static void test_bad_magic(void **state)
{
	struct sb s;

	(void)state;
	sb_start(&s);
	sb_mark(&s);
	s.buf.data[0] = 'X';
	expect_header_fail(s.buf.data, s.buf.len, -EILSEQ);
	s.buf.data[0] = 'F';
	s.buf.data[7] = 'g';
	expect_header_fail(s.buf.data, s.buf.len, -EILSEQ);
	sb_free(&s);
}

static void test_bad_version(void **state)
{
	struct sb s;

	(void)state;
	sb_start(&s);
	sb_mark(&s);
	le16_store(s.buf.data + 8, FERRY_STREAM_VERSION + 1);
	expect_header_fail(s.buf.data, s.buf.len, -EPROTONOSUPPORT);
	le16_store(s.buf.data + 8, 0);
	expect_header_fail(s.buf.data, s.buf.len, -EPROTONOSUPPORT);
	sb_free(&s);
}

static void test_header_flags(void **state)
{
	struct sb s;

	(void)state;
	sb_start(&s);
	sb_mark(&s);
	le32_store(s.buf.data + 12, 1024); /* bits 0 to 9 are known */
	expect_header_fail(s.buf.data, s.buf.len, -EPROTONOSUPPORT);
	/* resume (bit 6) only with post-copy (bit 5) */
	le32_store(s.buf.data + 12, FERRY_STREAM_F_RESUME);
	expect_header_fail(s.buf.data, s.buf.len, -EBADMSG);
	le32_store(s.buf.data + 12, 0x80000000u);
	expect_header_fail(s.buf.data, s.buf.len, -EPROTONOSUPPORT);
	sb_free(&s);
}

static void test_header_len(void **state)
{
	struct sb s;

	(void)state;
	sb_start(&s);
	sb_mark(&s);
	le16_store(s.buf.data + 10, FERRY_STREAM_HEADER_LEN + 8);
	expect_header_fail(s.buf.data, s.buf.len, -EBADMSG);
	le16_store(s.buf.data + 10, 0);
	expect_header_fail(s.buf.data, s.buf.len, -EBADMSG);
	sb_free(&s);
}

static void test_truncated_header(void **state)
{
	struct sb s;
	size_t n;

	(void)state;
	sb_start(&s);
	sb_mark(&s);
	for (n = 0; n < FERRY_STREAM_HEADER_LEN; n++)
		expect_header_fail(s.buf.data, n, -ENODATA);
	sb_free(&s);
}

/* ---- truncation ------------------------------------------------------- */

static void test_empty_after_header(void **state)
{
	struct sb s;

	(void)state;
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	sb_mark(&s);
	expect_fail(&s.buf, 0, -ENODATA);
	sb_free(&s);
}

static void test_truncated_record_header(void **state)
{
	struct sb s;
	size_t cfg_end, n;

	(void)state;
	sb_start(&s);
	cfg_end = sb_mark(&s);
	assert_int_equal(ferry_stream_put_iter_end(s.e, 0), 0);
	sb_mark(&s);
	/* inside the configuration's record header */
	for (n = 1; n < FERRY_STREAM_RECORD_HDR_LEN; n++)
		expect_fail_ram(s.buf.data, FERRY_STREAM_HEADER_LEN + n, NULL,
				0, 0, 0, -ENODATA);
	/* inside a later record's header */
	for (n = 1; n < FERRY_STREAM_RECORD_HDR_LEN; n++)
		expect_fail_ram(s.buf.data, cfg_end + n, NULL, 0, 0, 1,
				-ENODATA);
	/* inside a configuration body */
	expect_fail_ram(s.buf.data, cfg_end - 1, NULL, 0, 0, 0, -ENODATA);
	sb_free(&s);
}

static void test_truncated_page(void **state)
{
	static uint8_t a[PS];
	struct ferry_ramblock ram[2];
	struct sb s;
	size_t at, cut[] = {
		FERRY_STREAM_RECORD_HDR_LEN + 1, /* in the page header */
		FERRY_STREAM_RECORD_HDR_LEN + FERRY_STREAM_PAGE_HDR_LEN,
		FERRY_STREAM_RECORD_HDR_LEN + FERRY_STREAM_PAGE_HDR_LEN + 1,
		FERRY_STREAM_RECORD_HDR_LEN + FERRY_STREAM_PAGE_HDR_LEN +
			PS / 2,
		FERRY_STREAM_RECORD_HDR_LEN + FERRY_STREAM_PAGE_HDR_LEN + PS -
			1,
	};
	size_t i;

	(void)state;
	fill(a, PS, 8);
	sb_start(&s);
	at = sb_mark(&s);
	assert_int_equal(
		ferry_stream_put_page(s.e, 1, PS, FERRY_PAGE_RAW, a, PS), 0);
	sb_mark(&s);
	memcpy(ram, layout, sizeof(ram));
	ram[0].host = ram_alloc(RAM0_LEN, 0);
	ram[1].host = ram_alloc(RAM1_LEN, 0);
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		expect_fail_ram(s.buf.data, at + cut[i], NULL, 0, 0, 1,
				-ENODATA);
		expect_fail_ram(s.buf.data, at + cut[i], ram, 2, PS, 1,
				-ENODATA);
	}
	free(ram[0].host);
	free(ram[1].host);
	sb_free(&s);
}

static void test_truncated_device(void **state)
{
	static uint8_t data[1000];
	struct sb s;
	size_t at, n;

	(void)state;
	fill(data, sizeof(data), 9);
	sb_start(&s);
	at = sb_mark(&s);
	assert_int_equal(ferry_stream_put_device(s.e, "dev", 0, 1, data,
						 sizeof(data)),
			 0);
	sb_mark(&s);
	for (n = at + FERRY_STREAM_RECORD_HDR_LEN; n < s.buf.len; n += 97)
		expect_fail_ram(s.buf.data, n, NULL, 0, 0, 1, -ENODATA);
	expect_fail_ram(s.buf.data, s.buf.len - 1, NULL, 0, 0, 1, -ENODATA);
	sb_free(&s);
}

/* ---- record framing and order ------------------------------------------ */

static void test_unknown_type(void **state)
{
	const uint8_t types[] = { 0, FERRY_REC_END + 1, 0x7f, 0xff };
	uint8_t body[8] = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(types); i++) {
		struct sb s;

		sb_start(&s);
		sb_rec(&s, types[i], body, sizeof(body));
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}
}

static void test_record_flags(void **state)
{
	const struct {
		uint8_t flags;
		uint16_t rsvd;
	} bad[] = { { 1, 0 }, { 0x80, 0 }, { 0, 1 }, { 0, 0x8000 } };
	uint8_t body[8] = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sb s;
		size_t at;

		/* on a later record */
		sb_start(&s);
		sb_raw(&s, FERRY_REC_ITER_END, bad[i].flags, bad[i].rsvd, 8,
		       body, 8);
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);

		/* on the configuration */
		sb_start(&s);
		sb_mark(&s);
		at = FERRY_STREAM_HEADER_LEN;
		s.buf.data[at + 1] = bad[i].flags;
		le16_store(s.buf.data + at + 2, bad[i].rsvd);
		expect_fail(&s.buf, 0, -EBADMSG);
		sb_free(&s);
	}
}

/* Reserved fields inside record bodies. */
static void test_body_reserved(void **state)
{
	static uint8_t a[PS];
	uint8_t digest[16] = { 1 };
	struct sb s;
	size_t at, i;

	(void)state;
	/* page: the three bytes after the encoding, and the last word */
	for (i = 0; i < 4; i++) {
		sb_start(&s);
		at = sb_mark(&s);
		assert_int_equal(ferry_stream_put_page(s.e, 0, 0,
						       FERRY_PAGE_RAW, a, PS),
				 0);
		sb_mark(&s);
		if (i < 3)
			s.buf.data[at + 13 + i] = 1;
		else
			le32_store(s.buf.data + at + 28, 0x100);
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}

	/* device */
	sb_start(&s);
	at = sb_mark(&s);
	assert_int_equal(ferry_stream_put_device(s.e, "dev", 0, 1, "abc", 3),
			 0);
	sb_mark(&s);
	le16_store(s.buf.data + at + 10, 1);
	expect_fail(&s.buf, 1, -EBADMSG);
	sb_free(&s);

	/* a configuration block */
	sb_start(&s);
	sb_mark(&s);
	le16_store(s.buf.data + FERRY_STREAM_HEADER_LEN + 22, 1);
	expect_fail(&s.buf, 0, -EBADMSG);
	sb_free(&s);

	/* end of stream: unknown flags, reserved word */
	for (i = 0; i < 2; i++) {
		sb_start(&s);
		at = sb_mark(&s);
		assert_int_equal(ferry_stream_put_end(s.e, digest), 0);
		sb_mark(&s);
		le32_store(s.buf.data + at + 8 + 4 * i, i ? 1 : 5);
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}
}

static void test_page_before_config(void **state)
{
	uint8_t body[FERRY_STREAM_PAGE_HDR_LEN];
	struct sb s;

	(void)state;
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	page_body(body, 0, FERRY_PAGE_ZERO, 0, 0);
	sb_rec(&s, FERRY_REC_PAGE, body, sizeof(body));
	expect_fail(&s.buf, 0, -EPROTO);
	sb_free(&s);
}

static void test_device_before_config(void **state)
{
	struct sb s;

	(void)state;
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	assert_int_equal(ferry_stream_put_device(s.e, "dev", 0, 1, "abc", 3),
			 0);
	sb_mark(&s);
	expect_fail(&s.buf, 0, -EPROTO);
	sb_free(&s);

	/* nor the markers */
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	assert_int_equal(ferry_stream_put_iter_end(s.e, 0), 0);
	sb_mark(&s);
	expect_fail(&s.buf, 0, -EPROTO);
	sb_free(&s);

	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	assert_int_equal(ferry_stream_put_end(s.e, NULL), 0);
	sb_mark(&s);
	expect_fail(&s.buf, 0, -EPROTO);
	sb_free(&s);
}

static void test_second_config(void **state)
{
	struct sb s;

	(void)state;
	sb_start(&s);
	assert_int_equal(ferry_stream_put_iter_end(s.e, 0), 0);
	assert_int_equal(ferry_stream_put_config(s.e, PS, layout, 2), 0);
	sb_mark(&s);
	expect_fail(&s.buf, 2, -EPROTO);
	sb_free(&s);
}

static void test_record_after_end(void **state)
{
	struct sb s;

	(void)state;
	sb_start(&s);
	assert_int_equal(ferry_stream_put_end(s.e, NULL), 0);
	assert_int_equal(ferry_stream_put_iter_end(s.e, 0), 0);
	sb_mark(&s);
	expect_fail(&s.buf, 2, -EPROTO);
	sb_free(&s);

	sb_start(&s);
	assert_int_equal(ferry_stream_put_end(s.e, NULL), 0);
	assert_int_equal(ferry_stream_put_end(s.e, NULL), 0);
	sb_mark(&s);
	expect_fail(&s.buf, 2, -EPROTO);
	sb_free(&s);
}

/* A failure sticks even when valid records follow it. */
static void test_sticky(void **state)
{
	struct ferry_stream_memsrc m;
	struct ferry_stream_decoder *d;
	struct ferry_stream_record rec;
	struct ferry_error err = { 0 };
	struct sb s;
	uint64_t off;

	(void)state;
	sb_start(&s);
	sb_raw(&s, 9, 0, 0, 0, NULL, 0);
	assert_int_equal(ferry_stream_put_iter_end(s.e, 0), 0);
	assert_int_equal(ferry_stream_put_end(s.e, NULL), 0);
	sb_mark(&s);

	d = dec_open(&m, s.buf.data, s.buf.len);
	header_ok(d);
	next_ok(d, &rec);
	check_err(&err, ferry_stream_decoder_next(d, &rec, &err), -EBADMSG);
	off = ferry_stream_decoder_offset(d);
	ferry_error_clear(&err);
	check_err(&err, ferry_stream_decoder_next(d, &rec, &err), -EBADMSG);
	assert_int_equal(ferry_stream_decoder_offset(d), off);
	/* without an error structure too */
	assert_int_equal(ferry_stream_decoder_next(d, &rec, NULL), -EBADMSG);
	assert_int_equal(ferry_stream_decoder_offset(d), off);
	ferry_stream_decoder_free(d);
	sb_free(&s);
}

/* ---- page records ------------------------------------------------------ */

static void test_unknown_block(void **state)
{
	static uint8_t a[PS];
	struct sb s;

	(void)state;
	sb_start(&s);
	assert_int_equal(
		ferry_stream_put_page(s.e, 2, 0, FERRY_PAGE_RAW, a, PS), 0);
	sb_mark(&s);
	expect_fail(&s.buf, 1, -ENXIO);
	sb_free(&s);

	/* a known block first, so a lookup cache is warm */
	sb_start(&s);
	assert_int_equal(
		ferry_stream_put_page(s.e, 1, 0, FERRY_PAGE_ZERO, NULL, 0), 0);
	assert_int_equal(ferry_stream_put_page(s.e, 0xffffffffu, 0,
					       FERRY_PAGE_ZERO, NULL, 0),
			 0);
	sb_mark(&s);
	expect_fail(&s.buf, 2, -ENXIO);
	sb_free(&s);
}

static void test_offset_past_end(void **state)
{
	const struct {
		uint32_t block;
		uint64_t off;
	} bad[] = {
		{ 1, RAM1_LEN },
		{ 0, RAM0_LEN },
		{ 1, RAM0_LEN - PS }, /* inside block 0, past block 1 */
		{ 0, UINT64_MAX - PS + 1 },
		{ 0, 1ull << 63 },
	};
	static uint8_t a[PS];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sb s;

		sb_start(&s);
		assert_int_equal(ferry_stream_put_page(s.e, bad[i].block,
						       bad[i].off,
						       FERRY_PAGE_RAW, a, PS),
				 0);
		sb_mark(&s);
		expect_fail(&s.buf, 1, -ERANGE);
		sb_free(&s);

		sb_start(&s);
		assert_int_equal(
			ferry_stream_put_page(s.e, bad[i].block, bad[i].off,
					      FERRY_PAGE_ZERO, NULL, 0),
			0);
		sb_mark(&s);
		expect_fail(&s.buf, 1, -ERANGE);
		sb_free(&s);
	}
}

static void test_unaligned_offset(void **state)
{
	const uint64_t bad[] = { 1, 100, PS / 2, PS + 8, RAM1_LEN - 1 };
	static uint8_t a[PS];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sb s;

		sb_start(&s);
		assert_int_equal(ferry_stream_put_page(s.e, 1, bad[i],
						       FERRY_PAGE_RAW, a, PS),
				 0);
		sb_mark(&s);
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}
}

static void test_raw_wrong_len(void **state)
{
	const uint32_t lens[] = { 0, 1, 100, PS - 1 };
	static uint8_t a[PS];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct sb s;

		sb_start(&s);
		assert_int_equal(ferry_stream_put_page(
					 s.e, 0, 0, FERRY_PAGE_RAW, a, lens[i]),
				 0);
		sb_mark(&s);
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}
}

static void test_zero_with_payload(void **state)
{
	const uint32_t lens[] = { 1, 8, PS };
	static uint8_t a[PS];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct sb s;

		sb_start(&s);
		assert_int_equal(ferry_stream_put_page(s.e, 0, 0,
						       FERRY_PAGE_ZERO, a,
						       lens[i]),
				 0);
		sb_mark(&s);
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}
}

static void test_unknown_encoding(void **state)
{
	const uint8_t encs[] = { 2, 3, 0x80, 0xff };
	static uint8_t a[PS];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(encs); i++) {
		struct sb s;

		sb_start(&s);
		assert_int_equal(
			ferry_stream_put_page(s.e, 0, 0,
					      (enum ferry_page_encoding)encs[i],
					      a, PS),
			0);
		sb_mark(&s);
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);

		sb_start(&s);
		assert_int_equal(
			ferry_stream_put_page(s.e, 0, 0,
					      (enum ferry_page_encoding)encs[i],
					      NULL, 0),
			0);
		sb_mark(&s);
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}
}

static void test_payload_len_mismatch(void **state)
{
	const uint32_t plens[] = { 0, PS - 1, PS + 1, 0xffffffffu };
	static uint8_t a[PS];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(plens) / sizeof(plens[0]); i++) {
		struct sb s;
		size_t at;

		sb_start(&s);
		at = sb_mark(&s);
		assert_int_equal(ferry_stream_put_page(s.e, 0, 0,
						       FERRY_PAGE_RAW, a, PS),
				 0);
		sb_mark(&s);
		le32_store(s.buf.data + at + 24, plens[i]);
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}

	/* a zero page claiming a payload it does not carry */
	{
		struct sb s;
		size_t at;

		sb_start(&s);
		at = sb_mark(&s);
		assert_int_equal(ferry_stream_put_page(
					 s.e, 0, 0, FERRY_PAGE_ZERO, NULL, 0),
				 0);
		sb_mark(&s);
		le32_store(s.buf.data + at + 24, PS);
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}
}

static void test_page_too_big(void **state)
{
	uint8_t body[FERRY_STREAM_PAGE_HDR_LEN];
	static uint8_t a[2 * PS];
	struct sb s;

	(void)state;
	sb_start(&s);
	assert_int_equal(
		ferry_stream_put_page(s.e, 0, 0, FERRY_PAGE_RAW, a, PS + 1), 0);
	sb_mark(&s);
	expect_fail(&s.buf, 1, -E2BIG);
	sb_free(&s);

	/* refused from the record header alone: no body follows */
	sb_start(&s);
	page_body(body, 0, FERRY_PAGE_RAW, 0, PS);
	sb_raw(&s, FERRY_REC_PAGE, 0, 0, 0xffffffffu, body, sizeof(body));
	expect_fail(&s.buf, 1, -E2BIG);
	sb_free(&s);

	/* and too short for its own header */
	sb_start(&s);
	sb_rec(&s, FERRY_REC_PAGE, body, 10);
	expect_fail(&s.buf, 1, -EBADMSG);
	sb_free(&s);
}

/* ---- device records ---------------------------------------------------- */

static void test_device_too_big(void **state)
{
	const uint32_t dl = FERRY_STREAM_MAX_SECTION + 1;
	uint8_t *body;
	struct sb s;

	(void)state;
	/* the record length alone is over the limit */
	sb_start(&s);
	sb_raw(&s, FERRY_REC_DEVICE, 0, 0,
	       FERRY_STREAM_DEVICE_HDR_LEN + FERRY_NAME_MAX +
		       FERRY_STREAM_MAX_SECTION + 1,
	       NULL, 0);
	expect_fail(&s.buf, 1, -E2BIG);
	sb_free(&s);

	/* a record length within limits, a data length over them */
	body = calloc(1, FERRY_STREAM_DEVICE_HDR_LEN + 3 + dl);
	assert_non_null(body);
	device_body(body, 3, 0, 1, dl);
	memcpy(body + FERRY_STREAM_DEVICE_HDR_LEN, "dev", 3);
	sb_start(&s);
	sb_rec(&s, FERRY_REC_DEVICE, body,
	       FERRY_STREAM_DEVICE_HDR_LEN + 3 + dl);
	expect_fail(&s.buf, 1, -E2BIG);
	sb_free(&s);
	free(body);

	/* the encoder will not write one */
	sb_start(&s);
	assert_int_equal(ferry_stream_put_device(s.e, "dev", 0, 1, "", dl),
			 -E2BIG);
	assert_int_equal(ferry_stream_encoder_error(s.e), 0);
	sb_free(&s);
}

static void test_device_bad_name(void **state)
{
	const char *const names[] = { "de\001v", "dev\177", "\200", " \n",
				      "tab\there" };
	uint8_t body[FERRY_STREAM_DEVICE_HDR_LEN + 3];
	struct sb s;
	size_t i;

	(void)state;
	/* empty */
	device_body(body, 0, 0, 1, 3);
	memcpy(body + FERRY_STREAM_DEVICE_HDR_LEN, "abc", 3);
	sb_start(&s);
	sb_rec(&s, FERRY_REC_DEVICE, body, sizeof(body));
	expect_fail(&s.buf, 1, -EBADMSG);
	sb_free(&s);

	/* non-printable */
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		sb_start(&s);
		assert_int_equal(ferry_stream_put_device(s.e, names[i], 0, 1,
							 "abc", 3),
				 0);
		sb_mark(&s);
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}

	/* over FERRY_NAME_MAX */
	{
		size_t nl = FERRY_NAME_MAX + 1;
		uint8_t big[FERRY_STREAM_DEVICE_HDR_LEN + FERRY_NAME_MAX + 1];

		device_body(big, (uint16_t)nl, 0, 1, 0);
		memset(big + FERRY_STREAM_DEVICE_HDR_LEN, 'a', nl);
		sb_start(&s);
		sb_rec(&s, FERRY_REC_DEVICE, big, sizeof(big));
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}
}

static void test_device_lengths(void **state)
{
	uint8_t body[FERRY_STREAM_DEVICE_HDR_LEN + 8];
	struct sb s;

	(void)state;
	memset(body, 'a', sizeof(body));
	/* name and data lengths that do not add up to the record's */
	device_body(body, 3, 0, 1, 4);
	sb_start(&s);
	sb_rec(&s, FERRY_REC_DEVICE, body, sizeof(body));
	expect_fail(&s.buf, 1, -EBADMSG);
	sb_free(&s);

	device_body(body, 3, 0, 1, 6);
	sb_start(&s);
	sb_rec(&s, FERRY_REC_DEVICE, body, sizeof(body));
	expect_fail(&s.buf, 1, -EBADMSG);
	sb_free(&s);

	device_body(body, 0xffff, 0, 1, 0xffffffffu);
	sb_start(&s);
	sb_rec(&s, FERRY_REC_DEVICE, body, sizeof(body));
	expect_fail(&s.buf, 1, -E2BIG);
	sb_free(&s);

	/* shorter than its fixed header */
	sb_start(&s);
	sb_rec(&s, FERRY_REC_DEVICE, body, FERRY_STREAM_DEVICE_HDR_LEN - 1);
	expect_fail(&s.buf, 1, -EBADMSG);
	sb_free(&s);

	/* a record length grown by a corrupt bit, and the input stops
	 * after the head: the lengths disagree at once (EBADMSG), the
	 * decoder does not wait for bytes that never come (ENODATA) */
	device_body(body, 3, 0, 1, 5);
	sb_start(&s);
	sb_rec(&s, FERRY_REC_DEVICE, body, sizeof(body));
	le32_store(s.buf.data + s.buf.len - sizeof(body) - 4,
		   (uint32_t)sizeof(body) + (1u << 22));
	s.buf.len -= sizeof(body) - FERRY_STREAM_DEVICE_HDR_LEN;
	expect_fail(&s.buf, 1, -EBADMSG);
	sb_free(&s);
}

/* ---- configuration records ---------------------------------------------- */

static void config_fail(uint32_t page_size, const struct ferry_ramblock *b,
			size_t n, int code)
{
	struct sb s;

	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	assert_int_equal(ferry_stream_put_config(s.e, page_size, b, n), 0);
	sb_mark(&s);
	expect_fail(&s.buf, 0, code);
	sb_free(&s);
}

static void test_config_page_size(void **state)
{
	const uint32_t bad[] = { 0,
				 1,
				 2048,
				 12288,
				 PS + 1,
				 3u << 20,
				 FERRY_STREAM_MAX_PAGE_SIZE << 1,
				 UINT32_MAX };
	const struct ferry_ramblock b = {
		.id = 0,
		.name = "ram0",
		.length = 3ull << 30,
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		config_fail(bad[i], &b, 1, -EBADMSG);
}

static void test_config_zero_blocks(void **state)
{
	(void)state;
	config_fail(PS, NULL, 0, -EBADMSG);
}

static void test_config_dup_block(void **state)
{
	const struct ferry_ramblock same_id[3] = {
		{ .id = 4, .name = "a", .length = PS },
		{ .id = 5, .name = "b", .length = PS },
		{ .id = 4, .name = "c", .length = PS },
	};
	const struct ferry_ramblock same_name[3] = {
		{ .id = 4, .name = "a", .length = PS },
		{ .id = 5, .name = "b", .length = PS },
		{ .id = 6, .name = "b", .length = PS },
	};

	(void)state;
	config_fail(PS, same_id, 3, -EBADMSG);
	config_fail(PS, same_name, 3, -EBADMSG);
}

static void test_config_block_len(void **state)
{
	const uint64_t bad[] = { 0, 1, PS - 1, PS + 1, 3 * PS / 2 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct ferry_ramblock b[2] = {
			{ .id = 0, .name = "ok", .length = PS },
			{ .id = 1, .name = "bad", .length = bad[i] },
		};

		config_fail(PS, b, 2, -EBADMSG);
	}
}

/* The encoded configuration's body, with room to spare. */
static size_t config_bytes(uint8_t *out, size_t cap)
{
	struct sb c;
	size_t len;

	sb_init(&c);
	assert_int_equal(ferry_stream_put_config(c.e, PS, layout, 2), 0);
	len = sb_mark(&c) - FERRY_STREAM_RECORD_HDR_LEN;
	assert_true(len <= cap);
	memcpy(out, c.buf.data + FERRY_STREAM_RECORD_HDR_LEN, len);
	sb_free(&c);
	return len;
}

static void test_config_trailing(void **state)
{
	uint8_t body[256] = { 0 };
	size_t len, extra;

	(void)state;
	len = config_bytes(body, sizeof(body) - 32);
	for (extra = 1; extra <= 17; extra += 4) {
		struct sb s;

		sb_init(&s);
		assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
		sb_rec(&s, FERRY_REC_CONFIG, body, (uint32_t)(len + extra));
		expect_fail(&s.buf, 0, -EBADMSG);
		sb_free(&s);
	}
}

/* Block counts and names that disagree with the record's length. */
static void test_config_framing(void **state)
{
	uint8_t body[256] = { 0 };
	uint8_t big[8];
	struct sb s;
	size_t len;

	(void)state;
	len = config_bytes(body, sizeof(body));

	/* too short for page size and count */
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	sb_rec(&s, FERRY_REC_CONFIG, body, 4);
	expect_fail(&s.buf, 0, -EBADMSG);
	sb_free(&s);

	/* the last block cut off */
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	sb_rec(&s, FERRY_REC_CONFIG, body, (uint32_t)(len - 1));
	expect_fail(&s.buf, 0, -EBADMSG);
	sb_free(&s);

	/* more blocks counted than present */
	le32_store(body + 4, 3);
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	sb_rec(&s, FERRY_REC_CONFIG, body, (uint32_t)len);
	expect_fail(&s.buf, 0, -EBADMSG);
	sb_free(&s);
	le32_store(body + 4, 2);

	/* a name length running past the record */
	le16_store(body + 8 + 20 + 4, 200);
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	sb_rec(&s, FERRY_REC_CONFIG, body, (uint32_t)len);
	expect_fail(&s.buf, 0, -EBADMSG);
	sb_free(&s);

	/* an empty name */
	le16_store(body + 8 + 20 + 4, 0);
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	sb_rec(&s, FERRY_REC_CONFIG, body, (uint32_t)len);
	expect_fail(&s.buf, 0, -EBADMSG);
	sb_free(&s);

	/* over the block limit */
	le32_store(big, PS);
	le32_store(big + 4, FERRY_STREAM_MAX_BLOCKS + 1);
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	sb_rec(&s, FERRY_REC_CONFIG, big, sizeof(big));
	expect_fail(&s.buf, 0, -E2BIG);
	sb_free(&s);

	/* a record length over any possible configuration */
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	sb_raw(&s, FERRY_REC_CONFIG, 0, 0, 0x7fffffff, NULL, 0);
	expect_fail(&s.buf, 0, -E2BIG);
	sb_free(&s);
}

/* ---- markers ------------------------------------------------------------- */

static void test_iter_not_increasing(void **state)
{
	const uint64_t pairs[][2] = {
		{ 1, 1 }, { 5, 2 }, { 0, 0 }, { UINT64_MAX, 0 }
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		struct sb s;

		sb_start(&s);
		assert_int_equal(ferry_stream_put_iter_end(s.e, pairs[i][0]),
				 0);
		assert_int_equal(ferry_stream_put_iter_end(s.e, pairs[i][1]),
				 0);
		sb_mark(&s);
		expect_fail(&s.buf, 2, -EPROTO);
		sb_free(&s);
	}
}

static void test_marker_lengths(void **state)
{
	uint8_t body[32] = { 0 };
	struct sb s;

	(void)state;
	sb_start(&s);
	sb_rec(&s, FERRY_REC_ITER_END, body, 4);
	expect_fail(&s.buf, 1, -EBADMSG);
	sb_free(&s);

	sb_start(&s);
	sb_rec(&s, FERRY_REC_ITER_END, body, 9);
	expect_fail(&s.buf, 1, -E2BIG);
	sb_free(&s);

	sb_start(&s);
	sb_rec(&s, FERRY_REC_END, body, 8);
	expect_fail(&s.buf, 1, -EBADMSG);
	sb_free(&s);

	sb_start(&s);
	sb_rec(&s, FERRY_REC_END, body, 32);
	expect_fail(&s.buf, 1, -E2BIG);
	sb_free(&s);
}

static void test_end_digest_no_flag(void **state)
{
	uint8_t digest[16];
	size_t i;

	(void)state;
	fill(digest, 16, 10);
	for (i = 0; i < 16; i += 15) {
		struct sb s;
		size_t at;

		sb_start(&s);
		at = sb_mark(&s);
		assert_int_equal(ferry_stream_put_end(s.e, NULL), 0);
		sb_mark(&s);
		s.buf.data[at + 16 + i] = 1; /* one stray digest byte */
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}
	{
		struct sb s;
		size_t at;

		sb_start(&s);
		at = sb_mark(&s);
		assert_int_equal(ferry_stream_put_end(s.e, digest), 0);
		sb_mark(&s);
		le32_store(s.buf.data + at + 8, 0);
		expect_fail(&s.buf, 1, -EBADMSG);
		sb_free(&s);
	}
}

/* ---- attached RAM -------------------------------------------------------- */

static void test_config_mismatch_ram(void **state)
{
	struct ferry_ramblock ram[2];
	uint8_t *r0, *r1;
	struct sb s;

	(void)state;
	r0 = ram_alloc(2 * RAM0_LEN, 0);
	r1 = ram_alloc(2 * RAM1_LEN, 0);
	sb_start(&s);
	sb_mark(&s);

	/* different length */
	memcpy(ram, layout, sizeof(ram));
	ram[0].host = r0;
	ram[1].host = r1;
	ram[1].length = 2 * RAM1_LEN;
	expect_fail_ram(s.buf.data, s.buf.len, ram, 2, PS, 0, -ENXIO);

	/* a name the guest does not have */
	memcpy(ram, layout, sizeof(ram));
	ram[0].host = r0;
	ram[1].host = r1;
	strcpy(ram[1].name, "ramX");
	expect_fail_ram(s.buf.data, s.buf.len, ram, 2, PS, 0, -ENXIO);

	/* different page size */
	memcpy(ram, layout, sizeof(ram));
	ram[0].host = r0;
	ram[1].host = r1;
	expect_fail_ram(s.buf.data, s.buf.len, ram, 2, 2 * PS, 0, -ENXIO);

	/* a block fewer, a block more */
	expect_fail_ram(s.buf.data, s.buf.len, ram, 1, PS, 0, -ENXIO);
	sb_free(&s);
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	assert_int_equal(ferry_stream_put_config(s.e, PS, layout, 1), 0);
	sb_mark(&s);
	expect_fail_ram(s.buf.data, s.buf.len, ram, 2, PS, 0, -ENXIO);

	sb_free(&s);
	free(r0);
	free(r1);
}

/* A block followed by an inaccessible guard page. */
static uint8_t *guarded_alloc(size_t len)
{
	uint8_t *p = mmap(NULL, len + PS, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	assert_int_equal(mprotect(p + len, PS, PROT_NONE), 0);
	memset(p, 0x33, len);
	return p;
}

/* Pages just past a block's end must not touch memory past it. */
static void test_guard_page(void **state)
{
	static uint8_t a[PS];
	struct ferry_ramblock ram[2];
	uint8_t expect[RAM1_LEN];
	size_t i;

	(void)state;
	fill(a, PS, 11);
	memcpy(ram, layout, sizeof(ram));
	ram[0].host = guarded_alloc(RAM0_LEN);
	ram[1].host = guarded_alloc(RAM1_LEN);

	for (i = 0; i < 4; i++) {
		uint32_t block = i & 1;
		enum ferry_page_encoding enc = i < 2 ? FERRY_PAGE_RAW
						     : FERRY_PAGE_ZERO;
		uint64_t end = ram[block].length;
		struct sb s;

		sb_start(&s);
		/* the last page is fine */
		assert_int_equal(ferry_stream_put_page(s.e, block, end - PS,
						       FERRY_PAGE_RAW, a, PS),
				 0);
		assert_int_equal(ferry_stream_put_page(s.e, block, end, enc, a,
						       enc ? 0 : PS),
				 0);
		sb_mark(&s);
		expect_fail_ram(s.buf.data, s.buf.len, ram, 2, PS, 2, -ERANGE);
		sb_free(&s);
	}
	/* and the decoder wrote none of RAM */
	memset(expect, 0x33, sizeof(expect));
	assert_memory_equal(ram[1].host, expect, RAM1_LEN);

	munmap(ram[0].host, RAM0_LEN + PS);
	munmap(ram[1].host, RAM1_LEN + PS);
}

/* ---- the encoder ------------------------------------------------------- */

struct fail_sink {
	int calls;
};

static int fail_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct fail_sink *f = opaque;

	(void)iov;
	(void)iovcnt;
	f->calls++;
	return -EPIPE;
}

static void test_encoder_sticky(void **state)
{
	struct fail_sink f = { 0 };
	struct ferry_stream_sink sink = { .writev = fail_writev, .opaque = &f };
	struct ferry_stream_encoder *e;
	static uint8_t a[PS], big[1100000] /* over the encoder arena (1 MiB) */;
	uint8_t digest[16] = { 0 };
	uint64_t bytes;

	(void)state;
	assert_int_equal(ferry_stream_encoder_new(sink, &e), 0);
	assert_int_equal(ferry_stream_put_header(e, 0), 0);
	assert_int_equal(ferry_stream_put_config(e, PS, layout, 2), 0);
	assert_int_equal(ferry_stream_put_page(e, 0, 0, FERRY_PAGE_RAW, a, PS),
			 0);
	assert_int_equal(ferry_stream_encoder_error(e), 0);
	assert_int_equal(f.calls, 0);

	assert_int_equal(ferry_stream_flush(e), -EPIPE);
	assert_int_equal(f.calls, 1);
	assert_int_equal(ferry_stream_encoder_error(e), -EPIPE);
	bytes = ferry_stream_encoder_bytes(e);

	assert_int_equal(ferry_stream_put_header(e, 0), -EPIPE);
	assert_int_equal(ferry_stream_put_config(e, PS, layout, 2), -EPIPE);
	assert_int_equal(ferry_stream_put_page(e, 0, 0, FERRY_PAGE_RAW, a, PS),
			 -EPIPE);
	assert_int_equal(ferry_stream_put_page(e, 0, 0, FERRY_PAGE_ZERO, NULL,
					       0),
			 -EPIPE);
	assert_int_equal(ferry_stream_put_device(e, "dev", 0, 1, "abc", 3),
			 -EPIPE);
	assert_int_equal(ferry_stream_put_device(e, "dev", 0, 1, big,
						 sizeof(big)),
			 -EPIPE);
	assert_int_equal(ferry_stream_put_iter_end(e, 1), -EPIPE);
	assert_int_equal(ferry_stream_put_end(e, digest), -EPIPE);
	assert_int_equal(ferry_stream_put_end(e, NULL), -EPIPE);
	assert_int_equal(ferry_stream_flush(e), -EPIPE);
	assert_int_equal(ferry_stream_flush(e), -EPIPE);
	assert_int_equal(ferry_stream_encoder_error(e), -EPIPE);
	/* nothing more reached the sink, nothing more was counted */
	assert_int_equal(f.calls, 1);
	assert_int_equal(ferry_stream_encoder_bytes(e), bytes);
	ferry_stream_encoder_free(e);

	/* a failure inside a put that must flush (a large section) */
	f.calls = 0;
	assert_int_equal(ferry_stream_encoder_new(sink, &e), 0);
	assert_int_equal(ferry_stream_put_header(e, 0), 0);
	assert_int_equal(ferry_stream_put_device(e, "dev", 0, 1, big,
						 sizeof(big)),
			 -EPIPE);
	assert_int_equal(ferry_stream_encoder_error(e), -EPIPE);
	assert_int_equal(ferry_stream_put_iter_end(e, 1), -EPIPE);
	assert_int_equal(ferry_stream_flush(e), -EPIPE);
	assert_int_equal(f.calls, 1);
	ferry_stream_encoder_free(e);
}

/* The fd sink reports EPIPE from a pipe with no reader. */
static void test_encoder_epipe_fd(void **state)
{
	struct sigaction sa, old;
	struct ferry_stream_encoder *e;
	static uint8_t a[PS];
	int fds[2];

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);

	assert_int_equal(
		ferry_stream_encoder_new(ferry_stream_sink_fd(&fds[1]), &e), 0);
	assert_int_equal(ferry_stream_put_header(e, 0), 0);
	assert_int_equal(ferry_stream_flush(e), -EPIPE);
	assert_int_equal(ferry_stream_put_page(e, 0, 0, FERRY_PAGE_RAW, a, PS),
			 -EPIPE);
	assert_int_equal(ferry_stream_flush(e), -EPIPE);
	assert_int_equal(ferry_stream_encoder_error(e), -EPIPE);
	ferry_stream_encoder_free(e);
	close(fds[1]);
	assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
}

/* Bad arguments are refused without poisoning the encoder. */
static void test_encoder_bad_args(void **state)
{
	const struct ferry_ramblock unnamed = { .id = 0, .length = PS };
	struct sb s;

	(void)state;
	sb_init(&s);
	assert_int_equal(ferry_stream_put_header(s.e, 0), 0);
	assert_int_equal(ferry_stream_put_config(s.e, PS, &unnamed, 1),
			 -EINVAL);
	assert_int_equal(ferry_stream_put_device(s.e, "", 0, 1, "a", 1),
			 -EINVAL);
	assert_int_equal(ferry_stream_put_page(s.e, 0, 0, FERRY_PAGE_RAW, NULL,
					       FERRY_STREAM_MAX_PAGE_SIZE + 1),
			 -E2BIG);
	assert_int_equal(ferry_stream_encoder_error(s.e), 0);
	assert_int_equal(ferry_stream_encoder_bytes(s.e),
			 FERRY_STREAM_HEADER_LEN);
	assert_int_equal(sb_mark(&s), FERRY_STREAM_HEADER_LEN);
	sb_free(&s);
}

static void test_encoder_bytes(void **state)
{
	static uint8_t a[PS], big[150000];
	uint8_t digest[16] = { 0 };
	uint64_t before;
	struct sb s;
	int i;

	(void)state;
	sb_init(&s);
	assert_int_equal(ferry_stream_encoder_bytes(s.e), 0);

#define PUT_ADDS(call, n)                                                  \
	do {                                                               \
		before = ferry_stream_encoder_bytes(s.e);                  \
		assert_int_equal((call), 0);                               \
		assert_int_equal(ferry_stream_encoder_bytes(s.e) - before, \
				 (n));                                     \
	} while (0)

	PUT_ADDS(ferry_stream_put_header(s.e, 0), 16);
	PUT_ADDS(ferry_stream_put_config(s.e, PS, layout, 2),
		 8 + 8 + 2 * (16 + 4));
	PUT_ADDS(ferry_stream_put_page(s.e, 0, 0, FERRY_PAGE_RAW, a, PS),
		 8 + 24 + PS);
	PUT_ADDS(ferry_stream_put_page(s.e, 0, PS, FERRY_PAGE_ZERO, NULL, 0),
		 8 + 24);
	PUT_ADDS(ferry_stream_put_device(s.e, "dev", 1, 2, "hello", 5),
		 8 + 16 + 3 + 5);
	assert_int_equal(s.buf.len, 0); /* all of it still buffered */
	PUT_ADDS(ferry_stream_put_device(s.e, "big", 1, 2, big, sizeof(big)),
		 8 + 16 + 3 + sizeof(big));
	/* enough pages to fill the encoder's iovec array more than once */
	for (i = 0; i < 700; i++)
		PUT_ADDS(ferry_stream_put_page(s.e, 0, (uint64_t)(i % 16) * PS,
					       FERRY_PAGE_RAW, a, PS),
			 8 + 24 + PS);
	PUT_ADDS(ferry_stream_put_iter_end(s.e, 0), 16);
	PUT_ADDS(ferry_stream_put_end(s.e, digest), 32);
#undef PUT_ADDS

	before = ferry_stream_encoder_bytes(s.e);
	assert_int_equal(ferry_stream_flush(s.e), 0);
	assert_int_equal(ferry_stream_encoder_bytes(s.e), before);
	assert_int_equal(ferry_stream_encoder_bytes(s.e), s.buf.len);
	assert_int_equal(ferry_stream_flush(s.e), 0);
	assert_int_equal(ferry_stream_encoder_bytes(s.e), s.buf.len);
	sb_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* round trips */
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_config_one_block),
		cmocka_unit_test(test_config_many_blocks),
		cmocka_unit_test(test_page_raw),
		cmocka_unit_test(test_page_zero),
		cmocka_unit_test(test_page_matched),
		cmocka_unit_test(test_device),
		cmocka_unit_test(test_iter_end),
		cmocka_unit_test(test_end_digest),
		cmocka_unit_test(test_end_no_digest),
		cmocka_unit_test(test_end_stopped),
		cmocka_unit_test(test_record_type_name),
		cmocka_unit_test(test_fd_pipe),
		/* malformed input */
		cmocka_unit_test(test_bad_magic),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_header_flags),
		cmocka_unit_test(test_channel_record),
		cmocka_unit_test(test_unchanged_encoding),
		cmocka_unit_test(test_check_encoding),
		cmocka_unit_test(test_zlib_flag),
		cmocka_unit_test(test_landed_record),
		cmocka_unit_test(test_sync_record),
		cmocka_unit_test(test_xbzrle_encoding),
		cmocka_unit_test(test_unchanged_run),
		cmocka_unit_test(test_discard_record),
		cmocka_unit_test(test_header_len),
		cmocka_unit_test(test_truncated_header),
		cmocka_unit_test(test_empty_after_header),
		cmocka_unit_test(test_truncated_record_header),
		cmocka_unit_test(test_truncated_page),
		cmocka_unit_test(test_truncated_device),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_record_flags),
		cmocka_unit_test(test_body_reserved),
		cmocka_unit_test(test_page_before_config),
		cmocka_unit_test(test_device_before_config),
		cmocka_unit_test(test_second_config),
		cmocka_unit_test(test_record_after_end),
		cmocka_unit_test(test_sticky),
		cmocka_unit_test(test_unknown_block),
		cmocka_unit_test(test_offset_past_end),
		cmocka_unit_test(test_unaligned_offset),
		cmocka_unit_test(test_raw_wrong_len),
		cmocka_unit_test(test_zero_with_payload),
		cmocka_unit_test(test_unknown_encoding),
		cmocka_unit_test(test_payload_len_mismatch),
		cmocka_unit_test(test_page_too_big),
		cmocka_unit_test(test_device_too_big),
		cmocka_unit_test(test_device_bad_name),
		cmocka_unit_test(test_device_lengths),
		cmocka_unit_test(test_config_page_size),
		cmocka_unit_test(test_config_zero_blocks),
		cmocka_unit_test(test_config_dup_block),
		cmocka_unit_test(test_config_block_len),
		cmocka_unit_test(test_config_trailing),
		cmocka_unit_test(test_config_framing),
		cmocka_unit_test(test_iter_not_increasing),
		cmocka_unit_test(test_marker_lengths),
		cmocka_unit_test(test_end_digest_no_flag),
		cmocka_unit_test(test_config_mismatch_ram),
		cmocka_unit_test(test_guard_page),
		/* the encoder */
		cmocka_unit_test(test_encoder_sticky),
		cmocka_unit_test(test_encoder_epipe_fd),
		cmocka_unit_test(test_encoder_bad_args),
		cmocka_unit_test(test_encoder_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
