/*
 * mapped.h - the mapped-ram file (capability mapped-ram, QEMU's name;
 * docs/stream.md, "Mapped-ram files"): every RAM page has a fixed place in
 * the file, so a page saved again overwrites its place, several writers
 * and readers work at once, and a reader finds any page without reading
 * the rest.
 *
 * From the file's offset (file:PATH,offset=N; else 0), all little-endian:
 *
 *   [0, 1 MiB)       the header, written last: a save that did not finish
 *                    has none
 *   per block        a bitmap (bit set: the page is in the file; clear:
 *                    the page is zero), then at the next 1 MiB its pages,
 *                    page k at pages + k * page size
 *   then, at 1 MiB   the ferry stream, with no page in it: configuration,
 *                    passes, device state, the digest
 *
 * Where everything lies follows from the page size and the blocks'
 * lengths alone (mapped_layout); a header that says anything else is
 * refused.  Pure code: no file, no guest.
 */
#ifndef FERRY_MAPPED_H
#define FERRY_MAPPED_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/error.h"

#define MAPPED_MAGIC	  "FERRYMAP"
#define MAPPED_VERSION	  1u
#define MAPPED_ALIGN	  (1ull << 20) /* header region, pages, the stream */
#define MAPPED_HEAD_FIXED 40u	       /* header bytes before the blocks */
#define MAPPED_HEAD_BLOCK 32u	       /* header bytes per block */
#define MAPPED_MAX_BLOCKS 1024u

struct mapped_block {
	uint32_t id;
	uint64_t length;     /* bytes, a multiple of the page size */
	uint64_t bitmap;     /* offset of its bitmap */
	uint64_t bitmap_len; /* bytes: one bit per page, whole 8-byte words */
	uint64_t pages;	     /* offset of its first page */
};

struct mapped_layout {
	uint32_t page_size;
	uint32_t nblocks;
	struct mapped_block *blocks; /* owned */
	uint64_t stream;	     /* offset of the stream */
	uint64_t stream_len;	     /* its bytes (known once it is written) */
};

/* The layout for these blocks (ids, lengths): 0, or -EINVAL/-ENOMEM with
 * err saying why.  Free with mapped_layout_free. */
int mapped_layout(uint32_t page_size, const uint32_t *ids,
		  const uint64_t *lengths, uint32_t n, struct mapped_layout *l,
		  struct ferry_error *err);
void mapped_layout_free(struct mapped_layout *l);

/* The header's bytes for l: MAPPED_HEAD_FIXED + n * MAPPED_HEAD_BLOCK. */
size_t mapped_header_size(const struct mapped_layout *l);
void mapped_header_encode(const struct mapped_layout *l, uint8_t *buf);

/*
 * A header read from a file of file_len bytes (from its offset): 0 with
 * l filled, or -EPROTO (-ENOMEM) with err naming what is wrong: no magic
 * (or all zero: a save that never finished), another version, a page
 * size or block count out of range, a layout other than mapped_layout's,
 * a stream that ends past the file (cut).  len is what was read: the
 * whole header region, or less when the file is shorter.
 */
int mapped_header_decode(const uint8_t *buf, size_t len, uint64_t file_len,
			 struct mapped_layout *l, struct ferry_error *err);

#endif
