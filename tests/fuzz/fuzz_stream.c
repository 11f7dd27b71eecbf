/*
 * fuzz_stream.c - libFuzzer target for the stream decoder.
 *
 * The first input byte picks the mode: even decodes without RAM, odd
 * attaches RAM with a fixed layout (4 KiB pages; "ram0", id 0, 64 KiB and
 * "ram1", id 1, 16 KiB), malloc'ed so that ASan catches any write outside
 * it.  The rest of the input is the stream, read to its first failure or
 * its end.  Besides memory errors, the target aborts when the decoder
 * breaks a promise of stream.h: an undocumented errno, a message without an
 * offset, a failure that does not stick, a page outside its block.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/stream.h"

#define PS	    4096u
#define MAX_RECORDS 100000

static const struct ferry_ramblock layout[2] = {
	{ .id = 0, .name = "ram0", .length = 64u * 1024 },
	{ .id = 1, .name = "ram1", .length = 16u * 1024 },
};

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_stream: %s\n", what);
		abort();
	}
}

static bool documented(int rc)
{
	switch (rc) {
	case -ENODATA:
	case -EILSEQ:
	case -EPROTONOSUPPORT:
	case -EBADMSG:
	case -E2BIG:
	case -ERANGE:
	case -EPROTO:
	case -ENXIO:
	case -ENOMEM:
		return true;
	}
	return false;
}

static void check_failure(int rc, const struct ferry_error *err)
{
	check(documented(rc), "an errno stream.h does not document");
	check(err->code == rc, "error code differs from the return value");
	if (rc != -ENOMEM)
		check(strstr(err->msg, "offset") != NULL,
		      "error message names no offset");
}

static bool name_ok(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > FERRY_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 ||
		    (unsigned char)name[i] > 0x7e)
			return false;
	return true;
}

static void check_config(const struct ferry_stream_config *c)
{
	uint32_t i;

	check(c != NULL, "configuration record without a configuration");
	check(c->page_size >= FERRY_STREAM_MIN_PAGE_SIZE &&
		      c->page_size <= FERRY_STREAM_MAX_PAGE_SIZE &&
		      !(c->page_size & (c->page_size - 1)),
	      "bad page size accepted");
	check(c->nblocks >= 1 && c->nblocks <= FERRY_STREAM_MAX_BLOCKS,
	      "bad block count accepted");
	for (i = 0; i < c->nblocks; i++) {
		check(name_ok(c->blocks[i].name), "bad block name accepted");
		check(c->blocks[i].length &&
			      !(c->blocks[i].length % c->page_size),
		      "bad block length accepted");
	}
}

#define RAM_FILL 0xa5 /* the guest's RAM before decoding */

static void check_page(const struct ferry_stream_decoder *d,
		       const struct ferry_stream_record *rec,
		       const struct ferry_ramblock *ram, size_t nram)
{
	const struct ferry_stream_config *c = ferry_stream_decoder_config(d);
	const struct ferry_stream_block *b;
	const uint8_t *host = NULL;
	size_t k;

	check(c != NULL, "page record before the configuration");
	check(rec->u.page.block_index < c->nblocks, "block index past config");
	b = &c->blocks[rec->u.page.block_index];
	check(b->id == rec->u.page.block_id, "block index and id disagree");
	check(rec->u.page.offset % c->page_size == 0, "unaligned page");
	check(rec->u.page.offset < b->length, "page outside its block");
	if (rec->u.page.encoding == FERRY_PAGE_RAW)
		check(rec->u.page.len == c->page_size && rec->u.page.data,
		      "raw page without a page of data");
	else if (rec->u.page.encoding == FERRY_PAGE_ZSTD ||
		 rec->u.page.encoding == FERRY_PAGE_LZ4 ||
		 rec->u.page.encoding == FERRY_PAGE_ZLIB ||
		 rec->u.page.encoding == FERRY_PAGE_XBZRLE)
		check(rec->u.page.len > 0 && rec->u.page.len < c->page_size &&
			      rec->u.page.data,
		      "compressed page without a page of data");
	else if (rec->u.page.encoding == FERRY_PAGE_CHECK)
		check(rec->u.page.len == 8 && !rec->u.page.data,
		      "check page of other than a hash");
	else if (rec->u.page.encoding == FERRY_PAGE_UNCHANGED_RUN)
		check(rec->u.page.len == 4 && !rec->u.page.data &&
			      rec->u.page.run >= 1 &&
			      rec->u.page.run <=
				      (b->length - rec->u.page.offset) /
					      c->page_size,
		      "unchanged run past its block");
	else
		check((rec->u.page.encoding == FERRY_PAGE_ZERO ||
		       rec->u.page.encoding == FERRY_PAGE_UNCHANGED) &&
			      rec->u.page.len == 0 && !rec->u.page.data,
		      "zero or unchanged page with data");
	if (!ram)
		return;
	/* matched: the block of that name and length; and the page there is
	 * as it was (the decoder never writes RAM: the placer does) */
	check(rec->u.page.ram_index < nram &&
		      !strcmp(ram[rec->u.page.ram_index].name, b->name) &&
		      ram[rec->u.page.ram_index].length == b->length,
	      "page matched to another block than its own");
	host = ram[rec->u.page.ram_index].host + rec->u.page.offset;
	for (k = 0; k < c->page_size; k++)
		check(host[k] == RAM_FILL, "the decoder wrote guest RAM");
}

static void check_record(const struct ferry_stream_decoder *d,
			 const struct ferry_stream_record *rec,
			 const struct ferry_ramblock *ram, size_t nram)
{
	switch (rec->type) {
	case FERRY_REC_CONFIG:
		check(rec->u.config == ferry_stream_decoder_config(d),
		      "configuration not kept");
		check_config(rec->u.config);
		break;
	case FERRY_REC_PAGE:
		check_page(d, rec, ram, nram);
		break;
	case FERRY_REC_DEVICE:
		check(name_ok(rec->u.device.name), "bad device name accepted");
		check(rec->u.device.len <= FERRY_STREAM_MAX_SECTION,
		      "oversized device section accepted");
		break;
	case FERRY_REC_ITER_END:
		break;
	case FERRY_REC_END:
		break;
	case FERRY_REC_SYNC:
	case FERRY_REC_POSTCOPY:
		break;
	case FERRY_REC_DISCARD:
	case FERRY_REC_LANDED: {
		const struct ferry_stream_config *c =
			ferry_stream_decoder_config(d);
		uint32_t i;

		check(rec->u.discard.n >= 1 &&
			      rec->u.discard.n <= FERRY_STREAM_MAX_DISCARDS,
		      "discard record with no or too many ranges");
		for (i = 0; i < rec->u.discard.n; i++) {
			const struct ferry_stream_range *r =
				&rec->u.discard.ranges[i];
			uint64_t n;

			check(r->block_index < c->nblocks,
			      "discard in an undeclared block");
			n = c->blocks[r->block_index].length / c->page_size;
			check(r->count && r->first < n &&
				      r->count <= n - r->first,
			      "discard range past its block");
		}
		break;
	}
	case FERRY_REC_CHANNEL:
		check(rec->u.channel.count >= 1 &&
			      rec->u.channel.count <=
				      FERRY_STREAM_MAX_CHANNELS &&
			      rec->u.channel.index <= rec->u.channel.count,
		      "channel record out of range");
		break;
	default:
		check(false, "unknown record type returned");
	}
}

/* Decode the stream; returns 0 at a clean end, else the failure. */
static int decode(const uint8_t *data, size_t size,
		  const struct ferry_ramblock *ram, size_t nram)
{
	struct ferry_stream_memsrc m = { .data = data, .len = size };
	struct ferry_stream_decoder *d = NULL;
	struct ferry_stream_record rec;
	struct ferry_error err = { 0 };
	uint64_t off;
	int rc, n;

	if (ferry_stream_decoder_new(ferry_stream_source_mem(&m), &d))
		return -ENOMEM;
	if (ram)
		ferry_stream_decoder_match_ram(d, PS, ram, nram);
	rc = ferry_stream_read_header(d, NULL, &err);
	if (rc) {
		check_failure(rc, &err);
		goto out;
	}
	for (n = 0; n < MAX_RECORDS; n++) {
		ferry_error_clear(&err);
		rc = ferry_stream_decoder_next(d, &rec, &err);
		check(ferry_stream_decoder_offset(d) <= size,
		      "offset past the input");
		if (rc)
			break;
		check(rec.stream_offset < ferry_stream_decoder_offset(d),
		      "record offset not before the decoder's");
		check_record(d, &rec, ram, nram);
		if (rec.type == FERRY_REC_END) {
			/* nothing may follow */
			ferry_error_clear(&err);
			rc = ferry_stream_decoder_next(d, &rec, &err);
			check(rc == -EPROTO, "a record after the end");
			check_failure(rc, &err);
			rc = 0;
			goto out;
		}
	}
	if (!rc)
		goto out;
	check_failure(rc, &err);
	/* the failure sticks and reads nothing more */
	off = ferry_stream_decoder_offset(d);
	ferry_error_clear(&err);
	check(ferry_stream_decoder_next(d, &rec, &err) == rc,
	      "failure did not stick");
	check_failure(rc, &err);
	check(ferry_stream_decoder_offset(d) == off, "read after a failure");
out:
	ferry_stream_decoder_free(d);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ferry_ramblock ram[2];
	size_t i;

	if (size < 1)
		return 0;
	if (!(data[0] & 1)) {
		decode(data + 1, size - 1, NULL, 0);
		return 0;
	}
	memcpy(ram, layout, sizeof(ram));
	for (i = 0; i < 2; i++) {
		/* exactly the block's size, so ASan sees one byte past it */
		ram[i].host = malloc(ram[i].length);
		if (!ram[i].host) {
			free(ram[0].host);
			return 0;
		}
		memset(ram[i].host, RAM_FILL, ram[i].length);
	}
	decode(data + 1, size - 1, ram, 2);
	free(ram[0].host);
	free(ram[1].host);
	return 0;
}
