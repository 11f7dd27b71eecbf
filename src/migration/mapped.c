/*
 * mapped.c - the mapped-ram file's layout and header (mapped.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"
#include "mapped.h"

static uint64_t align_up(uint64_t v)
{
	return (v + MAPPED_ALIGN - 1) & ~(MAPPED_ALIGN - 1);
}

int mapped_layout(uint32_t page_size, const uint32_t *ids,
		  const uint64_t *lengths, uint32_t n, struct mapped_layout *l,
		  struct ferry_error *err)
{
	uint64_t at = MAPPED_ALIGN; /* the header's region */
	uint32_t i;

	memset(l, 0, sizeof(*l));
	if (page_size < 4096 || page_size > MAPPED_ALIGN ||
	    (page_size & (page_size - 1)))
		return ferry_error_set(err, -EINVAL,
				       "mapped-ram: pages of %u bytes (4 KiB "
				       "to 1 MiB, a power of two)",
				       page_size);
	if (!n || n > MAPPED_MAX_BLOCKS)
		return ferry_error_set(err, -EINVAL,
				       "mapped-ram: %u RAM blocks (1 to %u)", n,
				       MAPPED_MAX_BLOCKS);
	l->blocks = calloc(n, sizeof(*l->blocks));
	if (!l->blocks)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	l->page_size = page_size;
	l->nblocks = n;
	for (i = 0; i < n; i++) {
		struct mapped_block *b = &l->blocks[i];
		uint64_t pages = lengths[i] / page_size;

		if (!lengths[i] || lengths[i] % page_size ||
		    lengths[i] > (1ull << 48)) {
			mapped_layout_free(l);
			return ferry_error_set(err, -EINVAL,
					       "mapped-ram: RAM block %u is "
					       "%" PRIu64 " bytes (whole "
					       "pages, at most 256 TiB)",
					       ids[i], lengths[i]);
		}
		b->id = ids[i];
		b->length = lengths[i];
		b->bitmap = at;
		b->bitmap_len = (pages + 63) / 64 * 8;
		b->pages = align_up(at + b->bitmap_len);
		at = b->pages + b->length;
	}
	l->stream = align_up(at);
	return 0;
}

void mapped_layout_free(struct mapped_layout *l)
{
	free(l->blocks);
	l->blocks = NULL;
	l->nblocks = 0;
}

size_t mapped_header_size(const struct mapped_layout *l)
{
	return MAPPED_HEAD_FIXED + (size_t)l->nblocks * MAPPED_HEAD_BLOCK;
}

void mapped_header_encode(const struct mapped_layout *l, uint8_t *buf)
{
	uint32_t i;

	memset(buf, 0, mapped_header_size(l));
	memcpy(buf, MAPPED_MAGIC, 8);
	le32_store(buf + 8, MAPPED_VERSION);
	le32_store(buf + 12, l->page_size);
	le32_store(buf + 16, l->nblocks);
	/* 20: le32 flags, 0 */
	le64_store(buf + 24, l->stream);
	le64_store(buf + 32, l->stream_len);
	for (i = 0; i < l->nblocks; i++) {
		uint8_t *p = buf + MAPPED_HEAD_FIXED + i * MAPPED_HEAD_BLOCK;

		le32_store(p, l->blocks[i].id);
		/* 4: le32, 0 */
		le64_store(p + 8, l->blocks[i].length);
		le64_store(p + 16, l->blocks[i].bitmap);
		le64_store(p + 24, l->blocks[i].pages);
	}
}

static int bad(struct ferry_error *err, const char *why)
{
	return ferry_error_set(err, -EPROTO, "mapped-ram header: %s", why);
}

int mapped_header_decode(const uint8_t *buf, size_t len, uint64_t file_len,
			 struct mapped_layout *l, struct ferry_error *err)
{
	static const uint8_t zero[8];
	uint32_t ids[MAPPED_MAX_BLOCKS], n, i;
	uint64_t lengths[MAPPED_MAX_BLOCKS];
	uint64_t stream, stream_len;
	int rc;

	memset(l, 0, sizeof(*l));
	if (len < MAPPED_HEAD_FIXED)
		return bad(err, "the file is shorter than a header");
	if (!memcmp(buf, zero, 8))
		return bad(err, "none (the first bytes are zero): a mapped-ram "
				"save that never finished, or not a ferry "
				"file");
	if (memcmp(buf, MAPPED_MAGIC, 8))
		return bad(err, "bad magic");
	if (le32_load(buf + 8) != MAPPED_VERSION)
		return ferry_error_set(err, -EPROTO,
				       "mapped-ram header: version %u (this "
				       "ferry reads %u)",
				       le32_load(buf + 8), MAPPED_VERSION);
	if (le32_load(buf + 20))
		return ferry_error_set(err, -EPROTO,
				       "mapped-ram header: unknown flags "
				       "0x%x",
				       le32_load(buf + 20));
	n = le32_load(buf + 16);
	if (!n || n > MAPPED_MAX_BLOCKS)
		return ferry_error_set(err, -EPROTO,
				       "mapped-ram header: %u RAM blocks (1 "
				       "to %u)",
				       n, MAPPED_MAX_BLOCKS);
	if (len < MAPPED_HEAD_FIXED + (size_t)n * MAPPED_HEAD_BLOCK)
		return bad(err, "the file ends inside it");
	for (i = 0; i < n; i++) {
		const uint8_t *p =
			buf + MAPPED_HEAD_FIXED + i * MAPPED_HEAD_BLOCK;

		if (le32_load(p + 4))
			return bad(err, "a block's reserved field is not 0");
		ids[i] = le32_load(p);
		lengths[i] = le64_load(p + 8);
	}
	rc = mapped_layout(le32_load(buf + 12), ids, lengths, n, l, err);
	if (rc) {
		ferry_error_prefix(err, "mapped-ram header: ");
		return rc == -ENOMEM ? rc : -EPROTO;
	}
	/* every offset is the one the layout gives: nothing else is read */
	for (i = 0; i < n; i++) {
		const uint8_t *p =
			buf + MAPPED_HEAD_FIXED + i * MAPPED_HEAD_BLOCK;

		if (le64_load(p + 16) != l->blocks[i].bitmap ||
		    le64_load(p + 24) != l->blocks[i].pages) {
			mapped_layout_free(l);
			return ferry_error_set(err, -EPROTO,
					       "mapped-ram header: block %u's "
					       "offsets are not where its "
					       "layout puts them",
					       ids[i]);
		}
	}
	stream = le64_load(buf + 24);
	stream_len = le64_load(buf + 32);
	if (stream != l->stream) {
		mapped_layout_free(l);
		return bad(err, "the stream is not where the layout puts it");
	}
	if (!stream_len || stream_len > file_len ||
	    stream > file_len - stream_len) {
		mapped_layout_free(l);
		return ferry_error_set(err, -EPROTO,
				       "mapped-ram: the file is cut: its "
				       "stream ends at byte %" PRIu64
				       " and the file at %" PRIu64,
				       stream + stream_len, file_len);
	}
	l->stream_len = stream_len;
	return 0;
}
