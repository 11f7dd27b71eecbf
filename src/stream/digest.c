/*
 * digest.c - the XXH3-128 digest of RAM and device state that the
 * end-of-stream record carries (docs/stream.md, "The digest").
 *
 * The caller feeds RAM blocks, then device sections, each group sorted as
 * the document says; ferry_vm_digest() in src/vm/vm.c does that.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ferry/stream.h"
#include "le.h"

struct ferry_digest {
	XXH3_state_t *state;
};

int ferry_digest_new(struct ferry_digest **out)
{
	struct ferry_digest *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	g->state = XXH3_createState();
	if (!g->state) {
		free(g);
		return -ENOMEM;
	}
	XXH3_128bits_reset(g->state);
	*out = g;
	return 0;
}

void ferry_digest_free(struct ferry_digest *g)
{
	if (!g)
		return;
	XXH3_freeState(g->state);
	free(g);
}

static void put_name(struct ferry_digest *g, const char *name)
{
	uint8_t w[4];
	size_t n = strlen(name);

	le32_store(w, (uint32_t)n);
	XXH3_128bits_update(g->state, w, sizeof(w));
	XXH3_128bits_update(g->state, name, n);
}

uint64_t ferry_page_hash(const void *page, size_t len)
{
	return XXH3_64bits(page, len);
}

static void block_header(struct ferry_digest *g, const char *name, uint64_t len)
{
	uint8_t w[8];

	put_name(g, name);
	le64_store(w, len);
	XXH3_128bits_update(g->state, w, sizeof(w));
}

void ferry_digest_block(struct ferry_digest *g, const char *name,
			const void *data, uint64_t len, uint32_t page_size)
{
	const uint8_t *p = data;
	uint8_t w[8 * 64];
	uint64_t off;
	size_t n = 0;

	block_header(g, name, len);
	for (off = 0; off < len; off += page_size) {
		le64_store(w + 8 * n++, ferry_page_hash(p + off, page_size));
		if (n == 64) {
			XXH3_128bits_update(g->state, w, sizeof(w));
			n = 0;
		}
	}
	XXH3_128bits_update(g->state, w, 8 * n);
}

void ferry_digest_block_hashes(struct ferry_digest *g, const char *name,
			       uint64_t len, const uint64_t *hashes,
			       uint64_t npages)
{
	uint8_t w[8 * 64];
	uint64_t i;
	size_t n = 0;

	block_header(g, name, len);
	for (i = 0; i < npages; i++) {
		le64_store(w + 8 * n++, hashes[i]);
		if (n == 64) {
			XXH3_128bits_update(g->state, w, sizeof(w));
			n = 0;
		}
	}
	XXH3_128bits_update(g->state, w, 8 * n);
}

void ferry_digest_section(struct ferry_digest *g, const char *name,
			  uint32_t instance, uint32_t version, const void *data,
			  uint32_t len)
{
	uint8_t w[12];

	put_name(g, name);
	le32_store(w, instance);
	le32_store(w + 4, version);
	le32_store(w + 8, len);
	XXH3_128bits_update(g->state, w, sizeof(w));
	XXH3_128bits_update(g->state, data, len);
}

void ferry_digest_final(struct ferry_digest *g, uint8_t out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(g->state));
	memcpy(out, c.digest, 16);
}

void ferry_digest_hex(const uint8_t digest[16], char out[33])
{
	int i;

	for (i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
}
