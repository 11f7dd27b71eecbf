/*
 * test_mapped.c - the mapped-ram file's layout and header (mapped.h):
 * where everything lies, the header's round trip, and each header a
 * restore must refuse.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "le.h"
#include "mapped.h"

#define MiB (1ull << 20)

static const uint32_t ids[] = { 0, 7 };
static const uint64_t lens[] = { 8 * MiB, 4096 * 3 };

static void make(struct mapped_layout *l)
{
	struct ferry_error err = { 0 };

	assert_int_equal(mapped_layout(4096, ids, lens, 2, l, &err), 0);
}

static void test_layout(void **state)
{
	struct mapped_layout l;

	(void)state;
	make(&l);
	/* the header's 1 MiB, a bitmap, its pages at the next 1 MiB */
	assert_int_equal(l.blocks[0].bitmap, MiB);
	assert_int_equal(l.blocks[0].bitmap_len, 2048 / 8);
	assert_int_equal(l.blocks[0].pages, 2 * MiB);
	assert_int_equal(l.blocks[1].bitmap, 10 * MiB);
	assert_int_equal(l.blocks[1].bitmap_len, 8); /* whole words */
	assert_int_equal(l.blocks[1].pages, 11 * MiB);
	assert_int_equal(l.stream, 12 * MiB);
	mapped_layout_free(&l);
}

static void test_bad_layouts(void **state)
{
	struct ferry_error err = { 0 };
	struct mapped_layout l;
	uint64_t part[] = { 4096 + 1 };

	(void)state;
	assert_int_equal(mapped_layout(3000, ids, lens, 2, &l, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "pages of 3000 bytes"));
	ferry_error_clear(&err);
	assert_int_equal(mapped_layout(4096, ids, part, 1, &l, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "whole pages"));
	ferry_error_clear(&err);
	assert_int_equal(mapped_layout(4096, ids, lens, 0, &l, &err), -EINVAL);
}

/* A sealed header for a file of file_len bytes, into buf (1 MiB). */
static uint64_t sealed(uint8_t *buf)
{
	struct mapped_layout l;
	uint64_t file_len;

	make(&l);
	l.stream_len = 5000;
	file_len = l.stream + l.stream_len;
	memset(buf, 0, MAPPED_ALIGN);
	mapped_header_encode(&l, buf);
	mapped_layout_free(&l);
	return file_len;
}

static void test_round_trip(void **state)
{
	struct ferry_error err = { 0 };
	uint8_t *buf = malloc(MAPPED_ALIGN);
	struct mapped_layout l;
	uint64_t file_len = sealed(buf);

	(void)state;
	assert_int_equal(
		mapped_header_decode(buf, MAPPED_ALIGN, file_len, &l, &err), 0);
	assert_int_equal(l.nblocks, 2);
	assert_int_equal(l.blocks[1].id, 7);
	assert_int_equal(l.blocks[1].length, 4096 * 3);
	assert_int_equal(l.stream_len, 5000);
	mapped_layout_free(&l);
	free(buf);
}

/* The header changed by fn is refused with -EPROTO and `why`. */
static void refused(void (*fn)(uint8_t *buf, uint64_t *len, size_t *n),
		    const char *why)
{
	struct ferry_error err = { 0 };
	uint8_t *buf = malloc(MAPPED_ALIGN);
	struct mapped_layout l;
	uint64_t file_len = sealed(buf);
	size_t n = MAPPED_ALIGN;

	fn(buf, &file_len, &n);
	assert_int_equal(mapped_header_decode(buf, n, file_len, &l, &err),
			 -EPROTO);
	if (!strstr(err.msg, why))
		fail_msg("'%s' does not say '%s'", err.msg, why);
	free(buf);
}

static void unsealed(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)len, (void)n;
	memset(b, 0, 64);
}
static void magic(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)len, (void)n;
	b[3] ^= 1;
}
static void version(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)len, (void)n;
	le32_store(b + 8, 2);
}
static void flags(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)len, (void)n;
	le32_store(b + 20, 1);
}
static void no_blocks(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)len, (void)n;
	le32_store(b + 16, 0);
}
static void many_blocks(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)len, (void)n;
	le32_store(b + 16, MAPPED_MAX_BLOCKS + 1);
}
static void short_read(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)b, (void)len;
	*n = MAPPED_HEAD_FIXED + MAPPED_HEAD_BLOCK; /* one of two blocks */
}
static void page_size(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)len, (void)n;
	le32_store(b + 12, 4095);
}
static void moved_pages(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)len, (void)n;
	le64_store(b + MAPPED_HEAD_FIXED + 24, 3 * MiB);
}
static void moved_stream(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)len, (void)n;
	le64_store(b + 24, 13 * MiB);
}
static void cut(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)b, (void)n;
	*len -= 1;
}
static void part_block(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)len, (void)n;
	le64_store(b + MAPPED_HEAD_FIXED + MAPPED_HEAD_BLOCK + 8, 4097);
}
static void reserved(uint8_t *b, uint64_t *len, size_t *n)
{
	(void)len, (void)n;
	le32_store(b + MAPPED_HEAD_FIXED + 4, 1);
}

static void test_refused(void **state)
{
	(void)state;
	refused(unsealed, "never finished");
	refused(magic, "bad magic");
	refused(version, "version 2");
	refused(flags, "unknown flags");
	refused(no_blocks, "0 RAM blocks");
	refused(many_blocks, "1025 RAM blocks");
	refused(short_read, "ends inside it");
	refused(page_size, "pages of 4095 bytes");
	refused(moved_pages, "not where its layout puts them");
	refused(moved_stream, "stream is not where");
	refused(cut, "the file is cut");
	refused(part_block, "whole pages");
	refused(reserved, "reserved");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_bad_layouts),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
