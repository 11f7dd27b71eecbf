/*
 * decoder.c - reads the migration stream (docs/stream.md) and trusts
 * nothing in it.
 *
 * Each record header is read, its type and length are checked against the
 * format's limits and the decoder's state before any body byte is read,
 * then every field of the body is checked before it is used.  The decoder
 * never writes guest memory: a page comes out decoded (raw bytes where
 * they lie in the read-ahead buffer, a compressed page decompressed, an
 * XBZRLE delta checked), for the destination's placer to write
 * (src/migration/placer.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ferry/stream.h"
#include "le.h"

#define READ_AHEAD (128u * 1024)

struct ferry_stream_decoder {
	struct ferry_stream_source src;
	uint64_t offset; /* bytes consumed */
	bool header_read;
	bool have_config;
	bool ended;
	bool have_iter;
	bool want_channel; /* header flag MULTIFD: channel record first */
	bool unchanged_ok; /* header flag UNCHANGED */
	bool compress_ok;  /* header flag COMPRESS: zstd and lz4 */
	bool zlib_ok;	   /* header flag ZLIB */
	void *cctx[9];	   /* decompression contexts, by encoding */
	bool check_ok;	   /* header flag CHECK */
	bool postcopy_ok;  /* header flag POSTCOPY */
	bool landed_ok;	   /* header flag LANDED */
	struct ferry_stream_range *ranges; /* the last discard record's */
	bool xbzrle_ok;			   /* header flag XBZRLE */
	uint64_t last_iter;
	struct ferry_stream_config config;
	uint32_t last_block; /* cache for block id lookups */

	/* the destination's RAM, to match the configuration (optional) */
	const struct ferry_ramblock *ram;
	size_t nram;
	uint32_t ram_page_size;
	uint32_t *ram_map; /* config block index -> ram index */

	int error;     /* sticky: first failure of next() */
	uint8_t *body; /* current record body */
	size_t body_cap;
	uint8_t *page;	   /* a decompressed page (config.page_size bytes) */
	size_t rlen, rpos; /* read-ahead buffer: filled, consumed */
	uint8_t rbuf[READ_AHEAD]; /* input read ahead */
};

static const char *const type_names[] = {
	[FERRY_REC_CONFIG] = "configuration",
	[FERRY_REC_PAGE] = "page",
	[FERRY_REC_DEVICE] = "device",
	[FERRY_REC_ITER_END] = "end-of-iteration",
	[FERRY_REC_END] = "end-of-stream",
	[FERRY_REC_CHANNEL] = "channel",
	[FERRY_REC_SYNC] = "sync",
	[FERRY_REC_DISCARD] = "discard",
	[FERRY_REC_POSTCOPY] = "postcopy",
	[FERRY_REC_LANDED] = "landed",
};

const char *ferry_record_type_name(uint32_t type)
{
	if (type < sizeof(type_names) / sizeof(type_names[0]) &&
	    type_names[type])
		return type_names[type];
	return "unknown";
}

int ferry_stream_decoder_new(struct ferry_stream_source src,
			     struct ferry_stream_decoder **out)
{
	struct ferry_stream_decoder *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->src = src;
	*out = d;
	return 0;
}

void ferry_stream_decoder_free(struct ferry_stream_decoder *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < sizeof(d->cctx) / sizeof(d->cctx[0]); i++)
		if (d->cctx[i])
			codec_by_encoding((unsigned)i)->ctx_free(d->cctx[i]);
	free(d->config.blocks);
	free(d->ram_map);
	free(d->body);
	free(d->page);
	free(d->ranges);
	free(d);
}

void ferry_stream_decoder_match_ram(struct ferry_stream_decoder *d,
				    uint32_t page_size,
				    const struct ferry_ramblock *blocks,
				    size_t n)
{
	if (d->have_config || d->header_read)
		return; /* too late: pages may already have been decoded */
	d->ram = blocks;
	d->nram = n;
	d->ram_page_size = page_size;
}

const struct ferry_stream_config *
ferry_stream_decoder_config(const struct ferry_stream_decoder *d)
{
	return d->have_config ? &d->config : NULL;
}

uint64_t ferry_stream_decoder_offset(const struct ferry_stream_decoder *d)
{
	return d->offset;
}

/* The source's read gave n <= 0 with got of the len bytes of `what`
 * (which starts at offset start) read: its error, or truncation. */
static int read_failed(struct ferry_stream_decoder *d, ssize_t n,
		       const char *what, uint64_t start, size_t got, size_t len,
		       struct ferry_error *err)
{
	if (n < 0)
		return ferry_error_set(err, (int)n,
				       "stream offset %" PRIu64
				       ": reading %s: %s",
				       d->offset + got, what,
				       strerror((int)-n));
	return ferry_error_set(err, -ENODATA,
			       "stream offset %" PRIu64 ": input ended inside "
			       "the %s that starts at offset %" PRIu64
			       " (%zu of %zu bytes read)",
			       d->offset + got, what, start, got, len);
}

/*
 * Read exactly len bytes; running out of input is truncation.  Input is
 * read ahead in chunks of up to READ_AHEAD bytes, so a page costs a copy,
 * not three system calls; a request larger than the buffer bypasses it.
 */
static int read_exact(struct ferry_stream_decoder *d, void *buf, size_t len,
		      const char *what, uint64_t start, struct ferry_error *err)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		size_t have = d->rlen - d->rpos, want = len - got;
		ssize_t n;

		if (have) {
			size_t k = have < want ? have : want;

			memcpy(p + got, d->rbuf + d->rpos, k);
			d->rpos += k;
			got += k;
			continue;
		}
		if (want >= READ_AHEAD)
			n = d->src.read(d->src.opaque, p + got, want);
		else
			n = d->src.read(d->src.opaque, d->rbuf, READ_AHEAD);
		if (n <= 0)
			return read_failed(d, n, what, start, got, len, err);
		if (want >= READ_AHEAD) {
			got += (size_t)n;
		} else {
			d->rpos = 0;
			d->rlen = (size_t)n;
		}
	}
	d->offset += len;
	return 0;
}

static int body_reserve(struct ferry_stream_decoder *d, size_t len);

/*
 * Read len bytes and leave them where they lie: in the read-ahead buffer
 * (moved to its front and topped up when they run past its end), or, when
 * they are more than it holds, in the body buffer.  *out is valid until
 * the next read.  A raw page so costs one copy in all: the placer's.
 */
static int read_view(struct ferry_stream_decoder *d, size_t len,
		     const char *what, uint64_t start, const uint8_t **out,
		     struct ferry_error *err)
{
	size_t have = d->rlen - d->rpos;

	if (len > READ_AHEAD) {
		if (body_reserve(d, len))
			return ferry_error_set(err, -ENOMEM, "out of memory");
		*out = d->body;
		return read_exact(d, d->body, len, what, start, err);
	}
	if (have < len) {
		memmove(d->rbuf, d->rbuf + d->rpos, have);
		d->rpos = 0;
		d->rlen = have;
	}
	while (d->rlen - d->rpos < len) {
		ssize_t n = d->src.read(d->src.opaque, d->rbuf + d->rlen,
					READ_AHEAD - d->rlen);

		if (n <= 0)
			return read_failed(d, n, what, start, d->rlen, len,
					   err);
		d->rlen += (size_t)n;
	}
	*out = d->rbuf + d->rpos;
	d->rpos += len;
	d->offset += len;
	return 0;
}

static int read_header(struct ferry_stream_decoder *d, uint32_t *flags,
		       struct ferry_error *err)
{
	uint8_t h[FERRY_STREAM_HEADER_LEN];
	uint16_t version, hlen;
	uint32_t f;
	int rc;

	if (d->error)
		return ferry_error_set(err, d->error,
				       "the decoder already failed (%s)",
				       strerror(-d->error));
	if (d->header_read)
		return ferry_error_set(err, -EPROTO,
				       "stream header read twice");
	rc = read_exact(d, h, sizeof(h), "stream header", 0, err);
	if (rc)
		return rc;
	if (memcmp(h, FERRY_STREAM_MAGIC, 8) != 0)
		return ferry_error_set(err, -EILSEQ,
				       "stream offset 0: bad magic: this is "
				       "not a ferry migration stream");
	version = le16_load(h + 8);
	hlen = le16_load(h + 10);
	f = le32_load(h + 12);
	if (version != FERRY_STREAM_VERSION)
		return ferry_error_set(err, -EPROTONOSUPPORT,
				       "stream offset 8: stream version %u is "
				       "not supported (this ferry reads "
				       "version %u)",
				       version, FERRY_STREAM_VERSION);
	if (hlen != FERRY_STREAM_HEADER_LEN)
		return ferry_error_set(err, -EBADMSG,
				       "stream offset 10: header length %u, "
				       "expected %u",
				       hlen, FERRY_STREAM_HEADER_LEN);
	if (f & ~FERRY_STREAM_F_KNOWN)
		return ferry_error_set(err, -EPROTONOSUPPORT,
				       "stream offset 12: unsupported stream "
				       "flags 0x%x",
				       f & ~FERRY_STREAM_F_KNOWN);
	if ((f & FERRY_STREAM_F_RESUME) && !(f & FERRY_STREAM_F_POSTCOPY))
		return ferry_error_set(err, -EBADMSG,
				       "stream offset 12: the resume flag "
				       "without the post-copy flag");
	d->header_read = true;
	d->want_channel = f &
			  (FERRY_STREAM_F_MULTIFD | FERRY_STREAM_F_POSTCOPY);
	d->postcopy_ok = f & FERRY_STREAM_F_POSTCOPY;
	d->landed_ok = f & FERRY_STREAM_F_LANDED;
	d->unchanged_ok = f & FERRY_STREAM_F_UNCHANGED;
	d->compress_ok = f & FERRY_STREAM_F_COMPRESS;
	d->zlib_ok = f & FERRY_STREAM_F_ZLIB;
	d->check_ok = f & FERRY_STREAM_F_CHECK;
	d->xbzrle_ok = f & FERRY_STREAM_F_XBZRLE;
	if (flags)
		*flags = f;
	return 0;
}

static int body_reserve(struct ferry_stream_decoder *d, size_t len)
{
	uint8_t *p;

	if (len <= d->body_cap)
		return 0;
	p = realloc(d->body, len);
	if (!p)
		return -ENOMEM;
	d->body = p;
	d->body_cap = len;
	return 0;
}

/* Names on the wire: 1..255 printable ASCII bytes. */
static bool name_ok(const uint8_t *p, size_t len)
{
	size_t i;

	if (len == 0 || len > FERRY_NAME_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return false;
	return true;
}

static bool is_zero(const uint8_t *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;
	uint64_t acc = 0;
	size_t i;

	for (i = 0; i < len / 8; i++)
		acc |= w[i];
	return acc == 0;
}

#define FAIL(code, ...) ferry_error_set(err, code, __VA_ARGS__)

static int parse_config(struct ferry_stream_decoder *d, uint64_t at,
			uint32_t len, struct ferry_error *err)
{
	const uint8_t *p = d->body, *end = d->body + len;
	struct ferry_stream_config *c = &d->config;
	uint32_t ps, n, i, j;

	if (len < 8)
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": configuration record "
			    "of %u bytes is too short",
			    at, len);
	ps = le32_load(p);
	n = le32_load(p + 4);
	p += 8;
	if (ps < FERRY_STREAM_MIN_PAGE_SIZE ||
	    ps > FERRY_STREAM_MAX_PAGE_SIZE || (ps & (ps - 1)))
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": configuration record: "
			    "page size %u is not a power of two between %u "
			    "and %u",
			    at, ps, FERRY_STREAM_MIN_PAGE_SIZE,
			    FERRY_STREAM_MAX_PAGE_SIZE);
	if (n == 0 || n > FERRY_STREAM_MAX_BLOCKS)
		return FAIL(n ? -E2BIG : -EBADMSG,
			    "stream offset %" PRIu64 ": configuration record: "
			    "%u RAM blocks (1 to %u allowed)",
			    at, n, FERRY_STREAM_MAX_BLOCKS);
	c->blocks = calloc(n, sizeof(*c->blocks));
	if (!c->blocks)
		return FAIL(-ENOMEM,
			    "out of memory decoding the configuration");
	c->page_size = ps;
	for (i = 0; i < n; i++) {
		struct ferry_stream_block *b = &c->blocks[i];
		uint16_t nl;

		if (end - p < 16)
			return FAIL(-EBADMSG,
				    "stream offset %" PRIu64 ": configuration "
				    "record: block %u of %u runs past the "
				    "record's %u bytes",
				    at, i, n, len);
		b->id = le32_load(p);
		nl = le16_load(p + 4);
		if (le16_load(p + 6) != 0)
			return FAIL(-EBADMSG,
				    "stream offset %" PRIu64 ": configuration "
				    "record: block %u has reserved bits set",
				    at, i);
		b->length = le64_load(p + 8);
		p += 16;
		if (nl > end - p || !name_ok(p, nl))
			return FAIL(-EBADMSG,
				    "stream offset %" PRIu64 ": configuration "
				    "record: block %u has a bad name (length "
				    "%u; 1 to %u printable bytes allowed)",
				    at, i, nl, FERRY_NAME_MAX);
		memcpy(b->name, p, nl);
		b->name[nl] = '\0';
		p += nl;
		if (b->length == 0 || b->length % ps ||
		    b->length > FERRY_STREAM_MAX_BLOCK_LEN)
			return FAIL(b->length > FERRY_STREAM_MAX_BLOCK_LEN
					    ? -E2BIG
					    : -EBADMSG,
				    "stream offset %" PRIu64 ": configuration "
				    "record: block '%s' has length %" PRIu64
				    " (must be a non-zero multiple of the page "
				    "size, at most 2^48)",
				    at, b->name, b->length);
		for (j = 0; j < i; j++)
			if (c->blocks[j].id == b->id ||
			    !strcmp(c->blocks[j].name, b->name))
				return FAIL(-EBADMSG,
					    "stream offset %" PRIu64
					    ": configuration record: block "
					    "'%s' (id %u) repeats the id or "
					    "name of block '%s' (id %u)",
					    at, b->name, b->id,
					    c->blocks[j].name, c->blocks[j].id);
	}
	if (p != end)
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": configuration record "
			    "has %td bytes after its last block",
			    at, end - p);
	c->nblocks = n;
	return 0;
}

/* The configuration must describe exactly the attached RAM. */
static int match_ram(struct ferry_stream_decoder *d, uint64_t at,
		     struct ferry_error *err)
{
	const struct ferry_stream_config *c = &d->config;
	uint32_t i;
	size_t j;

	if (c->page_size != d->ram_page_size)
		return FAIL(-ENXIO,
			    "stream offset %" PRIu64 ": source page size %u "
			    "differs from this guest's %u",
			    at, c->page_size, d->ram_page_size);
	if (c->nblocks != d->nram)
		return FAIL(-ENXIO,
			    "stream offset %" PRIu64 ": source has %u RAM "
			    "blocks, this guest has %zu",
			    at, c->nblocks, d->nram);
	d->ram_map = calloc(c->nblocks, sizeof(*d->ram_map));
	if (!d->ram_map)
		return FAIL(-ENOMEM,
			    "out of memory decoding the configuration");
	for (i = 0; i < c->nblocks; i++) {
		for (j = 0; j < d->nram; j++)
			if (!strcmp(d->ram[j].name, c->blocks[i].name))
				break;
		if (j == d->nram)
			return FAIL(-ENXIO,
				    "stream offset %" PRIu64 ": source RAM "
				    "block '%s' does not exist in this guest",
				    at, c->blocks[i].name);
		if (d->ram[j].length != c->blocks[i].length)
			return FAIL(-ENXIO,
				    "stream offset %" PRIu64 ": RAM block "
				    "'%s' is %" PRIu64 " bytes on the source "
				    "and %" PRIu64 " here",
				    at, c->blocks[i].name, c->blocks[i].length,
				    d->ram[j].length);
		d->ram_map[i] = (uint32_t)j;
	}
	return 0;
}

static int find_block(struct ferry_stream_decoder *d, uint32_t id,
		      uint32_t *index)
{
	uint32_t i;

	if (d->last_block < d->config.nblocks &&
	    d->config.blocks[d->last_block].id == id) {
		*index = d->last_block;
		return 0;
	}
	for (i = 0; i < d->config.nblocks; i++) {
		if (d->config.blocks[i].id == id) {
			d->last_block = i;
			*index = i;
			return 0;
		}
	}
	return -ENXIO;
}

/* The payload length of the fixed-size encodings. */
static uint32_t payload_len(uint32_t enc, uint32_t ps)
{
	if (enc == FERRY_PAGE_RAW)
		return ps;
	if (enc == FERRY_PAGE_CHECK)
		return 8;
	return enc == FERRY_PAGE_UNCHANGED_RUN ? 4 : 0;
}

static const char *encoding_name(uint32_t enc)
{
	static const char *const names[] = {
		"raw",	 "zero",   "unchanged",	    "zstd", "lz4",
		"check", "xbzrle", "unchanged-run", "zlib",
	};

	return enc < sizeof(names) / sizeof(names[0]) ? names[enc] : "unknown";
}

/* A page record's encoding against the header's flags, and its payload
 * length against the encoding: *codec for a compressed page, *xbz for a
 * delta. */
static int check_encoding(struct ferry_stream_decoder *d, uint64_t at,
			  uint32_t enc, uint32_t plen,
			  const struct page_codec **codec, bool *xbz,
			  struct ferry_error *err)
{
	const uint32_t ps = d->config.page_size;

	*codec = (enc == FERRY_PAGE_ZLIB ? d->zlib_ok : d->compress_ok)
			 ? codec_by_encoding(enc)
			 : NULL;
	*xbz = enc == FERRY_PAGE_XBZRLE && d->xbzrle_ok;
	if (enc != FERRY_PAGE_RAW && enc != FERRY_PAGE_ZERO &&
	    !((enc == FERRY_PAGE_UNCHANGED ||
	       enc == FERRY_PAGE_UNCHANGED_RUN) &&
	      d->unchanged_ok) &&
	    !(enc == FERRY_PAGE_CHECK && d->check_ok) && !*xbz && !*codec)
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": page record "
			    "has unknown encoding %u",
			    at, enc);
	if ((*codec || *xbz) && (plen == 0 || plen >= ps))
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": %s page record "
			    "carries %u payload bytes (1 to %u)",
			    at, *xbz ? "xbzrle" : (*codec)->name, plen, ps - 1);
	if (!*codec && !*xbz && plen != payload_len(enc, ps))
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": %s page "
			    "record carries %u payload bytes (%u expected)",
			    at, encoding_name(enc), plen, payload_len(enc, ps));
	return 0;
}

/* A page record's payload: a check record's hash, an XBZRLE delta
 * (checked), a compressed page (decompressed), a raw page (where it lies
 * in the read-ahead buffer). */
static int read_payload(struct ferry_stream_decoder *d, uint64_t at,
			uint32_t enc, uint32_t plen,
			const struct page_codec *codec, bool xbz,
			struct ferry_stream_record *rec,
			struct ferry_error *err)
{
	const uint32_t ps = d->config.page_size;
	const uint8_t *p = NULL;
	int rc = read_view(d, plen, "page record", at, &p, err);

	if (rc)
		return rc;
	if (enc == FERRY_PAGE_CHECK) {
		rec->u.page.check_hash = le64_load(p);
	} else if (xbz) {
		/* the delta, for the placer to apply to the copy there */
		if (xbzrle_check(p, plen, ps))
			return FAIL(-EBADMSG,
				    "stream offset %" PRIu64
				    ": xbzrle page record's delta "
				    "is malformed or runs past the "
				    "page",
				    at);
		rec->u.page.data = p;
	} else if (codec) {
		if (!d->page)
			d->page = malloc(ps);
		if (!d->cctx[enc])
			d->cctx[enc] = codec->ctx_new(1);
		if (!d->page || !d->cctx[enc])
			return FAIL(-ENOMEM, "out of memory for a %s page",
				    codec->name);
		if (codec->decompress(d->cctx[enc], p, plen, d->page, ps))
			return FAIL(-EBADMSG,
				    "stream offset %" PRIu64 ": %s "
				    "page record does not decompress "
				    "to one page",
				    at, codec->name);
		rec->u.page.data = d->page;
	} else {
		rec->u.page.data = p; /* raw */
	}
	return 0;
}

static int read_page(struct ferry_stream_decoder *d, uint64_t at, uint32_t len,
		     struct ferry_stream_record *rec, struct ferry_error *err)
{
	const uint32_t ps = d->config.page_size;
	const struct ferry_stream_block *b;
	uint8_t h[FERRY_STREAM_PAGE_HDR_LEN];
	const struct page_codec *codec;
	bool xbz;
	uint32_t idx, plen, enc;
	uint64_t off;
	int rc;

	if (len < FERRY_STREAM_PAGE_HDR_LEN ||
	    len - FERRY_STREAM_PAGE_HDR_LEN > ps)
		return FAIL(len < FERRY_STREAM_PAGE_HDR_LEN ? -EBADMSG : -E2BIG,
			    "stream offset %" PRIu64 ": page record of %u "
			    "bytes (header %u, payload at most the page size "
			    "%u)",
			    at, len, FERRY_STREAM_PAGE_HDR_LEN, ps);
	rc = read_exact(d, h, sizeof(h), "page record", at, err);
	if (rc)
		return rc;
	enc = h[4];
	off = le64_load(h + 8);
	plen = le32_load(h + 16);
	if (h[5] || h[6] || h[7] || le32_load(h + 20))
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": page record "
			    "has reserved bits set",
			    at);
	if (find_block(d, le32_load(h), &idx))
		return FAIL(-ENXIO,
			    "stream offset %" PRIu64 ": page record "
			    "names RAM block id %u, which the configuration "
			    "does not declare",
			    at, le32_load(h));
	b = &d->config.blocks[idx];
	if (plen != len - FERRY_STREAM_PAGE_HDR_LEN)
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": page record "
			    "payload length %u disagrees with the record "
			    "length %u",
			    at, plen, len);
	if (off % ps)
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": page record "
			    "offset 0x%" PRIx64 " in block '%s' is not "
			    "page-aligned",
			    at, off, b->name);
	if (off >= b->length)
		return FAIL(-ERANGE,
			    "stream offset %" PRIu64 ": page record "
			    "offset 0x%" PRIx64 " is past the end of block "
			    "'%s' (%" PRIu64 " bytes)",
			    at, off, b->name, b->length);
	rc = check_encoding(d, at, enc, plen, &codec, &xbz, err);
	if (rc)
		return rc;
	rec->u.page.run = 1;
	rec->u.page.data = NULL;
	if (enc == FERRY_PAGE_UNCHANGED_RUN) {
		uint8_t c[4];
		uint32_t n;

		rc = read_exact(d, c, 4, "page record", at, err);
		if (rc)
			return rc;
		n = le32_load(c);
		if (n == 0 || n > (b->length - off) / ps)
			return FAIL(n ? -ERANGE : -EBADMSG,
				    "stream offset %" PRIu64
				    ": unchanged-run of %u pages at 0x%" PRIx64
				    " in block '%s' (1 to the end of the "
				    "block)",
				    at, n, off, b->name);
		rec->u.page.run = n;
	} else if (plen) {
		rc = read_payload(d, at, enc, plen, codec, xbz, rec, err);
		if (rc)
			return rc;
	}
	rec->u.page.block_id = b->id;
	rec->u.page.block_index = idx;
	rec->u.page.offset = off;
	rec->u.page.encoding = (enum ferry_page_encoding)enc;
	rec->u.page.len = plen;
	rec->u.page.ram_index = d->ram ? d->ram_map[idx] : 0;
	return 0;
}

/* The first 16 bytes of a device record's body, against its length. */
static int device_head(struct ferry_stream_decoder *d, uint64_t at,
		       uint32_t len, struct ferry_error *err)
{
	const uint8_t *p = d->body;
	uint32_t nl = le16_load(p), dl = le32_load(p + 12);

	if (le16_load(p + 2))
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": device "
			    "record has reserved bits set",
			    at);
	if (dl > FERRY_STREAM_MAX_SECTION)
		return FAIL(-E2BIG,
			    "stream offset %" PRIu64 ": device "
			    "section of %u bytes (at most %u)",
			    at, dl, FERRY_STREAM_MAX_SECTION);
	if ((uint64_t)FERRY_STREAM_DEVICE_HDR_LEN + nl + dl != len)
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": device "
			    "record: name length %u and data length %u "
			    "disagree with the record length %u",
			    at, nl, dl, len);
	return 0;
}

static int parse_device(struct ferry_stream_decoder *d, uint64_t at,
			uint32_t len, struct ferry_stream_record *rec,
			struct ferry_error *err)
{
	const uint8_t *p = d->body;
	uint32_t nl, dl;
	int rc;

	if (len < FERRY_STREAM_DEVICE_HDR_LEN)
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": device "
			    "record of %u bytes is too short",
			    at, len);
	rc = device_head(d, at, len, err);
	if (rc)
		return rc;
	nl = le16_load(p);
	dl = le32_load(p + 12);
	if (!name_ok(p + FERRY_STREAM_DEVICE_HDR_LEN, nl))
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": device "
			    "record has a bad name (1 to %u printable bytes)",
			    at, FERRY_NAME_MAX);
	memcpy(rec->u.device.name, p + FERRY_STREAM_DEVICE_HDR_LEN, nl);
	rec->u.device.name[nl] = '\0';
	rec->u.device.instance = le32_load(p + 4);
	rec->u.device.version = le32_load(p + 8);
	rec->u.device.len = dl;
	rec->u.device.data = p + FERRY_STREAM_DEVICE_HDR_LEN + nl;
	return 0;
}

static int parse_end(struct ferry_stream_decoder *d, uint64_t at,
		     struct ferry_stream_record *rec, struct ferry_error *err)
{
	const uint8_t *p = d->body;
	uint32_t flags = le32_load(p);

	if (flags > 3 || le32_load(p + 4))
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": end-of-stream "
			    "record has unknown flags 0x%x",
			    at, flags);
	rec->u.end.has_digest = flags & 1;
	rec->u.end.stopped = flags & 2;
	memcpy(rec->u.end.digest, p + 8, 16);
	if (!rec->u.end.has_digest && !is_zero(p + 8, 16))
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": end-of-stream "
			    "record carries digest bytes but no digest flag",
			    at);
	return 0;
}

/* A discard or a landed record's ranges, each inside its block. */
static int parse_ranges(struct ferry_stream_decoder *d, uint64_t at,
			uint32_t type, uint32_t len,
			struct ferry_stream_record *rec,
			struct ferry_error *err)
{
	const char *tn = ferry_record_type_name(type);
	uint32_t i, n = len / 24;
	uint64_t pages = 0;

	if (!n || len % 24)
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": %s record of "
			    "%u bytes (1 to %u ranges of 24)",
			    at, tn, len, FERRY_STREAM_MAX_DISCARDS);
	if (!d->ranges) {
		d->ranges =
			calloc(FERRY_STREAM_MAX_DISCARDS, sizeof(*d->ranges));
		if (!d->ranges)
			return FAIL(-ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		const uint8_t *p = d->body + i * 24;
		struct ferry_stream_range *r = &d->ranges[i];
		uint64_t bpages;
		uint32_t idx;

		if (find_block(d, le32_load(p), &idx))
			return FAIL(-ENXIO,
				    "stream offset %" PRIu64 ": %s "
				    "record names RAM block id %u, which the "
				    "configuration does not declare",
				    at, tn, le32_load(p));
		bpages = d->config.blocks[idx].length / d->config.page_size;
		r->block_index = idx;
		r->ram_index = d->ram ? d->ram_map[idx] : 0;
		r->first = le64_load(p + 8);
		r->count = le64_load(p + 16);
		if (le32_load(p + 4) || !r->count || r->first >= bpages ||
		    r->count > bpages - r->first)
			return FAIL(r->count && !le32_load(p + 4) ? -ERANGE
								  : -EBADMSG,
				    "stream offset %" PRIu64 ": %s "
				    "range %u: pages %" PRIu64 "+%" PRIu64
				    " of block '%s' (%" PRIu64 " pages)",
				    at, tn, i, r->first, r->count,
				    d->config.blocks[idx].name, bpages);
		pages += r->count;
	}
	rec->u.discard.ranges = d->ranges;
	rec->u.discard.n = n;
	rec->u.discard.pages = pages;
	return 0;
}

/* Largest body each record type may have, before anything is read. */
static uint64_t max_body(const struct ferry_stream_decoder *d, uint32_t type)
{
	switch (type) {
	case FERRY_REC_CONFIG:
		return 8 + (uint64_t)FERRY_STREAM_MAX_BLOCKS *
				   (16 + FERRY_NAME_MAX);
	case FERRY_REC_PAGE:
		return FERRY_STREAM_PAGE_HDR_LEN +
		       (uint64_t)d->config.page_size;
	case FERRY_REC_DEVICE:
		return FERRY_STREAM_DEVICE_HDR_LEN + FERRY_NAME_MAX +
		       (uint64_t)FERRY_STREAM_MAX_SECTION;
	case FERRY_REC_ITER_END:
		return 8;
	case FERRY_REC_END:
		return 24;
	case FERRY_REC_CHANNEL:
		return 16 + FERRY_STREAM_TOKEN_LEN;
	case FERRY_REC_SYNC:
		return 8;
	case FERRY_REC_DISCARD:
	case FERRY_REC_LANDED:
		return FERRY_STREAM_MAX_DISCARDS * 24;
	case FERRY_REC_POSTCOPY:
		return 8;
	}
	return 0;
}

/* A record header's type and length against the format and the
 * decoder's state, before any of its body is read. */
static int check_header(struct ferry_stream_decoder *d, const uint8_t *h,
			uint64_t at, struct ferry_error *err)
{
	uint32_t type = h[0], len = le32_load(h + 4);
	const char *tn = ferry_record_type_name(type);

	if (type < FERRY_REC_CONFIG || type > FERRY_REC_LANDED ||
	    (type == FERRY_REC_CHANNEL && !d->want_channel) ||
	    (type == FERRY_REC_SYNC && !d->check_ok) ||
	    ((type == FERRY_REC_DISCARD || type == FERRY_REC_POSTCOPY) &&
	     !d->postcopy_ok) ||
	    (type == FERRY_REC_LANDED && !d->landed_ok))
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": unknown "
			    "record type %u",
			    at, type);
	if (d->want_channel && type != FERRY_REC_CHANNEL)
		return FAIL(-EPROTO,
			    "stream offset %" PRIu64 ": %s record where the "
			    "channel record must come (first, with the "
			    "multifd flag)",
			    at, tn);
	if (h[1] || le16_load(h + 2))
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": %s record "
			    "has reserved bits set",
			    at, tn);
	if (type == FERRY_REC_CONFIG && d->have_config)
		return FAIL(-EPROTO,
			    "stream offset %" PRIu64 ": a second "
			    "configuration record",
			    at);
	if (type != FERRY_REC_CONFIG && type != FERRY_REC_CHANNEL &&
	    !d->have_config)
		return FAIL(-EPROTO,
			    "stream offset %" PRIu64 ": %s record "
			    "before the configuration record",
			    at, tn);
	if (len > max_body(d, type))
		return FAIL(-E2BIG,
			    "stream offset %" PRIu64 ": %s record "
			    "length %u exceeds the limit of %" PRIu64,
			    at, tn, len, max_body(d, type));
	if ((type == FERRY_REC_ITER_END || type == FERRY_REC_END ||
	     type == FERRY_REC_CHANNEL || type == FERRY_REC_SYNC ||
	     type == FERRY_REC_POSTCOPY) &&
	    len != max_body(d, type))
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": %s record "
			    "length %u, expected %" PRIu64,
			    at, tn, len, max_body(d, type));

	return 0;
}

/* A body other than a page's, into d->body. */
static int read_body(struct ferry_stream_decoder *d, uint64_t at, uint32_t type,
		     uint32_t len, struct ferry_error *err)
{
	const char *tn = ferry_record_type_name(type);
	int rc;

	if (body_reserve(d, len ? len : 1))
		return FAIL(-ENOMEM, "out of memory for a %u-byte %s record",
			    len, tn);
	if (type == FERRY_REC_DEVICE && len >= FERRY_STREAM_DEVICE_HDR_LEN) {
		/* the head first: lengths that disagree (a corrupt length)
		 * fail now, not after waiting for bytes that never come */
		rc = read_exact(d, d->body, FERRY_STREAM_DEVICE_HDR_LEN, tn, at,
				err);
		if (!rc)
			rc = device_head(d, at, len, err);
		if (!rc)
			rc = read_exact(d,
					d->body + FERRY_STREAM_DEVICE_HDR_LEN,
					len - FERRY_STREAM_DEVICE_HDR_LEN, tn,
					at, err);
	} else {
		rc = read_exact(d, d->body, len, tn, at, err);
	}
	if (rc)
		return rc;

	return 0;
}

static int parse_iter(struct ferry_stream_decoder *d, uint64_t at,
		      struct ferry_stream_record *rec, struct ferry_error *err)
{
	rec->u.iter.iteration = le64_load(d->body);
	if (d->have_iter && rec->u.iter.iteration <= d->last_iter)
		return FAIL(-EPROTO,
			    "stream offset %" PRIu64 ": iteration %" PRIu64
			    " ends after "
			    "iteration %" PRIu64,
			    at, rec->u.iter.iteration, d->last_iter);
	d->have_iter = true;
	d->last_iter = rec->u.iter.iteration;
	return 0;
}

static int parse_channel(struct ferry_stream_decoder *d, uint64_t at,
			 struct ferry_stream_record *rec,
			 struct ferry_error *err)
{
	rec->u.channel.session = le64_load(d->body);
	rec->u.channel.index = le16_load(d->body + 8);
	rec->u.channel.count = le16_load(d->body + 10);
	memcpy(rec->u.channel.token, d->body + 16, FERRY_STREAM_TOKEN_LEN);
	if (le32_load(d->body + 12) || !rec->u.channel.count ||
	    rec->u.channel.count > FERRY_STREAM_MAX_CHANNELS ||
	    rec->u.channel.index > rec->u.channel.count)
		return FAIL(-EBADMSG,
			    "stream offset %" PRIu64 ": channel "
			    "record: channel %u of %u (1 to %u page "
			    "channels)",
			    at, rec->u.channel.index, rec->u.channel.count,
			    FERRY_STREAM_MAX_CHANNELS);
	d->want_channel = false;
	return 0;
}

static int next_record(struct ferry_stream_decoder *d,
		       struct ferry_stream_record *rec, struct ferry_error *err)
{
	uint8_t h[FERRY_STREAM_RECORD_HDR_LEN];
	uint64_t at = d->offset;
	uint32_t type, len;
	int rc;

	if (!d->header_read)
		return FAIL(-EPROTO, "stream header not read yet");
	if (d->ended)
		return FAIL(-EPROTO,
			    "stream offset %" PRIu64 ": the stream "
			    "already ended",
			    at);
	rc = read_exact(d, h, sizeof(h), "record header", at, err);
	if (rc)
		return rc;
	type = h[0];
	len = le32_load(h + 4);
	memset(rec, 0, sizeof(*rec));
	rec->type = (enum ferry_record_type)type;
	rec->stream_offset = at;
	rc = check_header(d, h, at, err);
	if (rc)
		return rc;
	if (type == FERRY_REC_PAGE)
		return read_page(d, at, len, rec, err);
	rc = read_body(d, at, type, len, err);
	if (rc)
		return rc;

	switch (type) {
	case FERRY_REC_CONFIG:
		rc = parse_config(d, at, len, err);
		if (!rc && d->ram)
			rc = match_ram(d, at, err);
		if (rc) {
			free(d->config.blocks);
			d->config.blocks = NULL;
			d->config.nblocks = 0;
			return rc;
		}
		d->have_config = true;
		rec->u.config = &d->config;
		return 0;
	case FERRY_REC_DEVICE:
		return parse_device(d, at, len, rec, err);
	case FERRY_REC_ITER_END:
		return parse_iter(d, at, rec, err);
	case FERRY_REC_CHANNEL:
		return parse_channel(d, at, rec, err);
	case FERRY_REC_SYNC:
		rec->u.sync.seq = le64_load(d->body);
		return 0;
	case FERRY_REC_POSTCOPY:
		rec->u.postcopy.pages = le64_load(d->body);
		return 0;
	case FERRY_REC_DISCARD:
	case FERRY_REC_LANDED:
		return parse_ranges(d, at, type, len, rec, err);
	case FERRY_REC_END:
		rc = parse_end(d, at, rec, err);
		if (!rc)
			d->ended = true;
		return rc;
	}
	return FAIL(-EBADMSG,
		    "stream offset %" PRIu64 ": unknown record type "
		    "%u",
		    at, type);
}

int ferry_stream_decoder_next(struct ferry_stream_decoder *d,
			      struct ferry_stream_record *rec,
			      struct ferry_error *err)
{
	int rc;

	if (d->error)
		return FAIL(d->error,
			    "stream offset %" PRIu64 ": the decoder "
			    "already failed (%s)",
			    d->offset, strerror(-d->error));
	rc = next_record(d, rec, err);
	if (rc)
		d->error = rc;
	return rc;
}

int ferry_stream_read_header(struct ferry_stream_decoder *d, uint32_t *flags,
			     struct ferry_error *err)
{
	int rc = read_header(d, flags, err);

	if (rc && !d->error)
		d->error = rc;
	return rc;
}
