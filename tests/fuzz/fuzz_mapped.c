/*
 * fuzz_mapped.c - libFuzzer target for a mapped-ram file's header
 * (src/migration/mapped.c).
 *
 * The input is the file's length (le64) and then what a restore reads at
 * the file's offset.  Besides memory errors, the target aborts when the
 * decoder breaks a promise of mapped.h: a failure that is not -EPROTO or
 * has no reason; or, for a header it takes, a layout whose parts overlap
 * or leave their order, a stream past the file's end, or bytes that do
 * not encode back to the same header (the format has one spelling).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"
#include "mapped.h"

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_mapped: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ferry_error err = { 0 };
	struct mapped_layout l;
	uint64_t file_len, end = MAPPED_ALIGN;
	uint8_t *again;
	int rc;

	if (size < 8)
		return 0;
	file_len = le64_load(data);
	rc = mapped_header_decode(data + 8, size - 8, file_len, &l, &err);
	if (rc) {
		check(rc == -EPROTO && err.msg[0], "a failure without its "
						   "reason");
		return 0;
	}
	check(l.nblocks >= 1 && l.nblocks <= MAPPED_MAX_BLOCKS,
	      "a block count out of range");
	for (uint32_t i = 0; i < l.nblocks; i++) {
		const struct mapped_block *b = &l.blocks[i];

		check(b->bitmap >= end, "a bitmap over what comes before it");
		check(b->bitmap_len * 8 >= b->length / l.page_size,
		      "a bitmap too short for its pages");
		check(b->pages >= b->bitmap + b->bitmap_len &&
			      b->pages % MAPPED_ALIGN == 0,
		      "pages over their bitmap, or not aligned");
		check(b->length && b->length % l.page_size == 0,
		      "a block of no or part pages");
		end = b->pages + b->length;
	}
	check(l.stream >= end && l.stream % MAPPED_ALIGN == 0,
	      "a stream over the pages, or not aligned");
	check(l.stream_len && l.stream + l.stream_len <= file_len,
	      "a stream past the file's end");
	again = malloc(mapped_header_size(&l));
	check(again != NULL, "out of memory");
	mapped_header_encode(&l, again);
	check(mapped_header_size(&l) <= size - 8 &&
		      !memcmp(again, data + 8, mapped_header_size(&l)),
	      "a header that does not encode back to its bytes");
	free(again);
	mapped_layout_free(&l);
	return 0;
}
