/*
 * encoder.c - writes the migration stream (docs/stream.md).
 *
 * Record headers and small bodies are copied into an arena; page payloads
 * are referenced in place, so a page goes from guest RAM to the sink with
 * no copy.  Everything is gathered into an iovec array and handed to the
 * sink in one writev when the array or arena fills, or on flush.  The first
 * failure is sticky: every later call returns it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/stream.h"
#include "le.h"

#define ARENA_SIZE (1024u * 1024) /* headers, small bodies, copied pages */
#define IOV_SLOTS  256

struct ferry_stream_encoder {
	struct ferry_stream_sink sink;
	int error;	  /* sticky: first negative errno */
	uint64_t flushed; /* bytes handed to the sink */
	uint64_t pending; /* bytes gathered, not yet flushed */
	struct iovec iov[IOV_SLOTS];
	int niov;
	size_t arena_used;
	uint8_t *arena;
};

int ferry_stream_encoder_new(struct ferry_stream_sink sink,
			     struct ferry_stream_encoder **out)
{
	struct ferry_stream_encoder *e = calloc(1, sizeof(*e));

	if (!e || !(e->arena = malloc(ARENA_SIZE))) {
		free(e);
		return -ENOMEM;
	}
	e->sink = sink;
	*out = e;
	return 0;
}

void ferry_stream_encoder_free(struct ferry_stream_encoder *e)
{
	if (e)
		free(e->arena);
	free(e);
}

int ferry_stream_encoder_error(const struct ferry_stream_encoder *e)
{
	return e->error;
}

uint64_t ferry_stream_encoder_bytes(const struct ferry_stream_encoder *e)
{
	return e->flushed + e->pending;
}

int ferry_stream_flush(struct ferry_stream_encoder *e)
{
	int rc;

	if (e->error)
		return e->error;
	if (e->niov) {
		rc = e->sink.writev(e->sink.opaque, e->iov, e->niov);
		if (rc < 0) {
			e->error = rc;
			return rc;
		}
	}
	e->flushed += e->pending;
	e->pending = 0;
	e->niov = 0;
	e->arena_used = 0;
	return 0;
}

/* Make room for `bytes` of arena and `slots` iovecs. */
static int reserve(struct ferry_stream_encoder *e, size_t bytes, int slots)
{
	if (e->error)
		return e->error;
	if (e->arena_used + bytes > ARENA_SIZE || e->niov + slots > IOV_SLOTS)
		return ferry_stream_flush(e);
	return 0;
}

/* Append a reference to bytes that stay valid until the next flush. */
static void add_ref(struct ferry_stream_encoder *e, const void *p, size_t len)
{
	struct iovec *last = e->niov ? &e->iov[e->niov - 1] : NULL;

	if (!len)
		return;
	if (last && (const uint8_t *)last->iov_base + last->iov_len == p) {
		last->iov_len += len;
	} else {
		e->iov[e->niov].iov_base = (void *)p;
		e->iov[e->niov].iov_len = len;
		e->niov++;
	}
	e->pending += len;
}

/* Take `len` bytes of arena (reserve() must have made room). */
static uint8_t *arena_take(struct ferry_stream_encoder *e, size_t len)
{
	uint8_t *p = e->arena + e->arena_used;

	e->arena_used += len;
	add_ref(e, p, len);
	return p;
}

/* Copy bytes into the stream, flushing around them when they are large. */
static int put_bytes(struct ferry_stream_encoder *e, const void *p, size_t len)
{
	int rc;

	if (len <= ARENA_SIZE) {
		rc = reserve(e, len, 1);
		if (rc)
			return rc;
		memcpy(arena_take(e, len), p, len);
		return 0;
	}
	rc = reserve(e, 0, 1);
	if (rc)
		return rc;
	add_ref(e, p, len);
	return ferry_stream_flush(e); /* the caller's buffer may go away */
}

static void record_header(uint8_t *p, enum ferry_record_type type,
			  uint32_t body_len)
{
	p[0] = (uint8_t)type;
	p[1] = 0; /* flags */
	le16_store(p + 2, 0);
	le32_store(p + 4, body_len);
}

int ferry_stream_put_header(struct ferry_stream_encoder *e, uint32_t flags)
{
	uint8_t h[FERRY_STREAM_HEADER_LEN];

	memcpy(h, FERRY_STREAM_MAGIC, 8);
	le16_store(h + 8, FERRY_STREAM_VERSION);
	le16_store(h + 10, FERRY_STREAM_HEADER_LEN);
	le32_store(h + 12, flags);
	return put_bytes(e, h, sizeof(h));
}

int ferry_stream_put_config(struct ferry_stream_encoder *e, uint32_t page_size,
			    const struct ferry_ramblock *blocks, size_t n)
{
	struct ferry_buf b = { 0 };
	uint8_t hdr[FERRY_STREAM_RECORD_HDR_LEN] = { 0 };
	size_t i;
	int rc = 0;

	if (e->error)
		return e->error;
	if (n > FERRY_STREAM_MAX_BLOCKS)
		return -E2BIG;
	rc |= ferry_buf_put(&b, hdr, sizeof(hdr)); /* patched below */
	rc |= ferry_buf_put_le32(&b, page_size);
	rc |= ferry_buf_put_le32(&b, (uint32_t)n);
	for (i = 0; i < n && !rc; i++) {
		size_t nl = strnlen(blocks[i].name, FERRY_NAME_MAX + 1);
		uint8_t w[4];

		if (nl == 0 || nl > FERRY_NAME_MAX) {
			ferry_buf_free(&b);
			return -EINVAL;
		}
		rc |= ferry_buf_put_le32(&b, blocks[i].id);
		le16_store(w, (uint16_t)nl);
		le16_store(w + 2, 0);
		rc |= ferry_buf_put(&b, w, 4);
		rc |= ferry_buf_put_le64(&b, blocks[i].length);
		rc |= ferry_buf_put(&b, blocks[i].name, nl);
	}
	if (rc) {
		ferry_buf_free(&b);
		return -ENOMEM;
	}
	record_header(b.data, FERRY_REC_CONFIG,
		      (uint32_t)(b.len - FERRY_STREAM_RECORD_HDR_LEN));
	rc = put_bytes(e, b.data, b.len);
	ferry_buf_free(&b);
	return rc;
}

int ferry_stream_put_page(struct ferry_stream_encoder *e, uint32_t block_id,
			  uint64_t offset, enum ferry_page_encoding enc,
			  const void *payload, uint32_t len)
{
	const size_t hlen =
		FERRY_STREAM_RECORD_HDR_LEN + FERRY_STREAM_PAGE_HDR_LEN;
	uint8_t *p;
	int rc;

	if (len > FERRY_STREAM_MAX_PAGE_SIZE)
		return -E2BIG;
	rc = reserve(e, hlen, 2);
	if (rc)
		return rc;
	p = arena_take(e, hlen);
	record_header(p, FERRY_REC_PAGE, FERRY_STREAM_PAGE_HDR_LEN + len);
	p += FERRY_STREAM_RECORD_HDR_LEN;
	le32_store(p, block_id);
	p[4] = (uint8_t)enc;
	p[5] = p[6] = p[7] = 0;
	le64_store(p + 8, offset);
	le32_store(p + 16, len);
	le32_store(p + 20, 0);
	add_ref(e, payload, len);
	return 0;
}

int ferry_stream_put_page_copy(struct ferry_stream_encoder *e,
			       uint32_t block_id, uint64_t offset,
			       enum ferry_page_encoding enc,
			       const void *payload, uint32_t len,
			       const uint8_t **copy)
{
	const size_t hlen =
		FERRY_STREAM_RECORD_HDR_LEN + FERRY_STREAM_PAGE_HDR_LEN;
	uint8_t *c;
	int rc;

	if (len > ARENA_SIZE - hlen)
		return -E2BIG;
	/* header and copy together, so one flush can't come between */
	rc = reserve(e, hlen + len, 2);
	if (rc)
		return rc;
	c = e->arena + e->arena_used + hlen;
	memcpy(c, payload, len);
	rc = ferry_stream_put_page(e, block_id, offset, enc, c, len);
	if (rc)
		return rc;
	e->arena_used += len; /* the copy's bytes, referenced above */
	*copy = c;
	return 0;
}

int ferry_stream_put_device(struct ferry_stream_encoder *e, const char *name,
			    uint32_t instance, uint32_t version,
			    const void *data, uint32_t len)
{
	const size_t hlen =
		FERRY_STREAM_RECORD_HDR_LEN + FERRY_STREAM_DEVICE_HDR_LEN;
	size_t nl = strnlen(name, FERRY_NAME_MAX + 1);
	uint8_t h[FERRY_STREAM_RECORD_HDR_LEN + FERRY_STREAM_DEVICE_HDR_LEN];
	int rc;

	if (e->error)
		return e->error;
	if (nl == 0 || nl > FERRY_NAME_MAX)
		return -EINVAL;
	if (len > FERRY_STREAM_MAX_SECTION)
		return -E2BIG;
	record_header(h, FERRY_REC_DEVICE,
		      (uint32_t)(FERRY_STREAM_DEVICE_HDR_LEN + nl + len));
	le16_store(h + 8, (uint16_t)nl);
	le16_store(h + 10, 0);
	le32_store(h + 12, instance);
	le32_store(h + 16, version);
	le32_store(h + 20, len);
	rc = put_bytes(e, h, hlen);
	if (!rc)
		rc = put_bytes(e, name, nl);
	if (!rc)
		rc = put_bytes(e, data, len);
	return rc;
}

int ferry_stream_put_iter_end(struct ferry_stream_encoder *e,
			      uint64_t iteration)
{
	uint8_t h[FERRY_STREAM_RECORD_HDR_LEN + 8];

	record_header(h, FERRY_REC_ITER_END, 8);
	le64_store(h + 8, iteration);
	return put_bytes(e, h, sizeof(h));
}

static int put_end(struct ferry_stream_encoder *e, const uint8_t digest[16],
		   uint32_t flags)
{
	uint8_t h[FERRY_STREAM_RECORD_HDR_LEN + 24];

	record_header(h, FERRY_REC_END, 24);
	le32_store(h + 8, flags | (digest ? 1 : 0));
	le32_store(h + 12, 0);
	if (digest)
		memcpy(h + 16, digest, 16);
	else
		memset(h + 16, 0, 16);
	return put_bytes(e, h, sizeof(h));
}

int ferry_stream_put_end(struct ferry_stream_encoder *e,
			 const uint8_t digest[16])
{
	return put_end(e, digest, 0);
}

int ferry_stream_put_end_stopped(struct ferry_stream_encoder *e,
				 const uint8_t digest[16])
{
	return put_end(e, digest, 2);
}

int ferry_stream_put_channel(struct ferry_stream_encoder *e, uint64_t session,
			     const uint8_t token[FERRY_STREAM_TOKEN_LEN],
			     uint16_t index, uint16_t count)
{
	uint8_t h[FERRY_STREAM_RECORD_HDR_LEN + 16 + FERRY_STREAM_TOKEN_LEN];

	record_header(h, FERRY_REC_CHANNEL, 16 + FERRY_STREAM_TOKEN_LEN);
	le64_store(h + 8, session);
	le16_store(h + 16, index);
	le16_store(h + 18, count);
	le32_store(h + 20, 0);
	memcpy(h + 24, token, FERRY_STREAM_TOKEN_LEN);
	return put_bytes(e, h, sizeof(h));
}

int ferry_stream_put_sync(struct ferry_stream_encoder *e, uint64_t seq)
{
	uint8_t h[FERRY_STREAM_RECORD_HDR_LEN + 8];

	record_header(h, FERRY_REC_SYNC, 8);
	le64_store(h + 8, seq);
	return put_bytes(e, h, sizeof(h));
}

/* A discard or landed record: (block id, first, count) triples. */
static int put_ranges(struct ferry_stream_encoder *e,
		      enum ferry_record_type type, const uint32_t *block_ids,
		      const uint64_t *first, const uint64_t *count, uint32_t n)
{
	uint8_t h[FERRY_STREAM_RECORD_HDR_LEN], r[24];
	uint32_t i;
	int rc;

	if (!n || n > FERRY_STREAM_MAX_DISCARDS)
		return -EINVAL;
	record_header(h, type, n * 24);
	rc = put_bytes(e, h, sizeof(h));
	for (i = 0; i < n && !rc; i++) {
		le32_store(r, block_ids[i]);
		le32_store(r + 4, 0);
		le64_store(r + 8, first[i]);
		le64_store(r + 16, count[i]);
		rc = put_bytes(e, r, sizeof(r));
	}
	return rc;
}

int ferry_stream_put_discard(struct ferry_stream_encoder *e,
			     const uint32_t *block_ids, const uint64_t *first,
			     const uint64_t *count, uint32_t n)
{
	return put_ranges(e, FERRY_REC_DISCARD, block_ids, first, count, n);
}

int ferry_stream_put_landed(struct ferry_stream_encoder *e,
			    const uint32_t *block_ids, const uint64_t *first,
			    const uint64_t *count, uint32_t n)
{
	return put_ranges(e, FERRY_REC_LANDED, block_ids, first, count, n);
}

int ferry_stream_put_postcopy(struct ferry_stream_encoder *e, uint64_t pages)
{
	uint8_t h[FERRY_STREAM_RECORD_HDR_LEN + 8];

	record_header(h, FERRY_REC_POSTCOPY, 8);
	le64_store(h + 8, pages);
	return put_bytes(e, h, sizeof(h));
}
