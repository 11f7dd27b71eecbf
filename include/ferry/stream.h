/*
 * ferry/stream.h - the migration stream: encoder and decoder.
 *
 * The format (docs/stream.md) is a header followed by framed records:
 * configuration, RAM pages, device sections, end-of-iteration markers and
 * the end of stream with its digest.  Every transport carries this same
 * stream.  The encoder keeps a sticky error: once a write fails every later
 * call returns the same code at once, so callers check once, at flush.
 * The decoder trusts nothing it reads: every type, length, id and offset is
 * checked before use, and a failure names the record and its byte offset.
 */
#ifndef FERRY_STREAM_H
#define FERRY_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ferry/error.h"
#include "ferry/vm.h"

#define FERRY_STREAM_MAGIC	    "FERRYMIG" /* 8 bytes, no NUL on the wire */
#define FERRY_STREAM_VERSION	    2 /* 2: the channel record carries a token */
#define FERRY_STREAM_HEADER_LEN	    16
#define FERRY_STREAM_RECORD_HDR_LEN 8
#define FERRY_STREAM_PAGE_HDR_LEN   24 /* page record body before payload */
#define FERRY_STREAM_DEVICE_HDR_LEN 16 /* device record body before name */
#define FERRY_STREAM_MAX_BLOCKS	    1024
#define FERRY_STREAM_MAX_PAGE_SIZE  (1u << 30)
#define FERRY_STREAM_MIN_PAGE_SIZE  4096u
#define FERRY_STREAM_MAX_BLOCK_LEN  (1ull << 48)
#define FERRY_STREAM_MAX_SECTION    (16u << 20) /* device section bytes */

/* Stream header flags.  A decoder refuses bits it does not know. */
#define FERRY_STREAM_F_MULTIFD	 1u  /* a channel record follows the header */
#define FERRY_STREAM_F_UNCHANGED 2u  /* page encoding 2 may appear */
#define FERRY_STREAM_F_COMPRESS	 4u  /* page encodings 3 and 4 may appear */
#define FERRY_STREAM_F_CHECK	 8u  /* page encoding 5 and sync records */
#define FERRY_STREAM_F_XBZRLE	 16u /* page encoding 6 may appear */
#define FERRY_STREAM_F_POSTCOPY \
	32u /* records 8 and 9; a channel record
					follows the header, and the last
					channel is the urgent one */
/* With F_POSTCOPY only: this connection resumes a paused post-copy */
#define FERRY_STREAM_F_RESUME 64u
#define FERRY_STREAM_F_ZLIB   128u /* page encoding 8 may appear */
/* Landed records (10): the pages written into the destination's RAM
 * beside the stream (rdma), named after each pass */
#define FERRY_STREAM_F_LANDED 256u
/* A mapped-ram file's stream (docs/stream.md, "Mapped-ram files"): the
 * pages are at their places in the file, none in the stream */
#define FERRY_STREAM_F_MAPPED 512u
#define FERRY_STREAM_F_KNOWN                                                   \
	(FERRY_STREAM_F_MULTIFD | FERRY_STREAM_F_UNCHANGED |                   \
	 FERRY_STREAM_F_COMPRESS | FERRY_STREAM_F_CHECK |                      \
	 FERRY_STREAM_F_XBZRLE | FERRY_STREAM_F_POSTCOPY |                     \
	 FERRY_STREAM_F_RESUME | FERRY_STREAM_F_ZLIB | FERRY_STREAM_F_LANDED | \
	 FERRY_STREAM_F_MAPPED)
#define FERRY_STREAM_MAX_CHANNELS 64
/* The channel record's token: a random secret drawn per migration that
 * every extra connection must carry (docs/stream.md, "6 - channel"). */
#define FERRY_STREAM_TOKEN_LEN 16

enum ferry_record_type {
	FERRY_REC_CONFIG = 1,
	FERRY_REC_PAGE = 2,
	FERRY_REC_DEVICE = 3,
	FERRY_REC_ITER_END = 4,
	FERRY_REC_END = 5,
	FERRY_REC_CHANNEL = 6,	/* only with FERRY_STREAM_F_MULTIFD */
	FERRY_REC_SYNC = 7,	/* only with FERRY_STREAM_F_CHECK */
	FERRY_REC_DISCARD = 8,	/* only with FERRY_STREAM_F_POSTCOPY */
	FERRY_REC_POSTCOPY = 9, /* only with FERRY_STREAM_F_POSTCOPY */
	FERRY_REC_LANDED = 10,	/* only with FERRY_STREAM_F_LANDED */
};

#define FERRY_STREAM_MAX_DISCARDS \
	4096 /* ranges per discard record, and
					  per landed record */

/* A range of pages a discard or landed record names. */
struct ferry_stream_range {
	uint32_t block_index; /* into the configuration's blocks */
	uint32_t ram_index;   /* into attached RAM (0 without) */
	uint64_t first;	      /* page number in the block */
	uint64_t count;
};

enum ferry_page_encoding {
	FERRY_PAGE_RAW = 0,	  /* payload: the page, page_size bytes */
	FERRY_PAGE_ZERO = 1,	  /* payload: none; the page is all zeroes */
	FERRY_PAGE_UNCHANGED = 2, /* payload: none; as last sent (needs
				     FERRY_STREAM_F_UNCHANGED) */
	FERRY_PAGE_ZSTD = 3,	  /* payload: the page, zstd-compressed */
	FERRY_PAGE_LZ4 = 4,	  /* payload: the page, LZ4-compressed */
	FERRY_PAGE_CHECK = 5,	  /* payload: le64 hash; the copy there
				     should hash to it, else the destination
				     asks for the page again (needs
				     FERRY_STREAM_F_CHECK) */
	FERRY_PAGE_XBZRLE = 6,	  /* payload: a delta against the copy there
				     (needs FERRY_STREAM_F_XBZRLE) */
	FERRY_PAGE_UNCHANGED_RUN = 7, /* payload: le32 count; this page and
					 the count - 1 after it are as last
					 sent (needs FERRY_STREAM_F_UNCHANGED) */
	FERRY_PAGE_ZLIB = 8, /* payload: the page, zlib-compressed (RFC 1950;
				needs FERRY_STREAM_F_ZLIB) */
};

/* Where the encoder writes: all of iov, or a negative errno. */
struct ferry_stream_sink {
	int (*writev)(void *opaque, const struct iovec *iov, int iovcnt);
	void *opaque;
};

/* Where the decoder reads: 1 to len bytes (blocking until there is at
 * least one), 0 at the end of input, or a negative errno.  The decoder
 * reads ahead into its own buffer, so a source may return what it has. */
struct ferry_stream_source {
	ssize_t (*read)(void *opaque, void *buf, size_t len);
	void *opaque;
};

/* Ready-made sinks and sources. */
struct ferry_stream_sink ferry_stream_sink_fd(int *fd);
struct ferry_stream_sink ferry_stream_sink_buf(struct ferry_buf *buf);
struct ferry_stream_source ferry_stream_source_fd(int *fd);

struct ferry_stream_memsrc {
	const uint8_t *data;
	size_t len;
	size_t pos;
};
struct ferry_stream_source
ferry_stream_source_mem(struct ferry_stream_memsrc *m);

/* ---- encoder ---------------------------------------------------------- */

struct ferry_stream_encoder;

int ferry_stream_encoder_new(struct ferry_stream_sink sink,
			     struct ferry_stream_encoder **out);
void ferry_stream_encoder_free(struct ferry_stream_encoder *e);

int ferry_stream_put_header(struct ferry_stream_encoder *e, uint32_t flags);
int ferry_stream_put_config(struct ferry_stream_encoder *e, uint32_t page_size,
			    const struct ferry_ramblock *blocks, size_t n);
/*
 * A page record.  The payload is referenced, not copied: it must stay
 * mapped until the next flush (guest RAM always is).  The bytes sent are
 * those the payload holds when the record is flushed.
 */
int ferry_stream_put_page(struct ferry_stream_encoder *e, uint32_t block_id,
			  uint64_t offset, enum ferry_page_encoding enc,
			  const void *payload, uint32_t len);
/*
 * A page whose payload is copied into the encoder first; *copy points
 * at the copy, which is exactly what goes out (hash it to know what the
 * destination holds).  Valid until the next flush.
 */
int ferry_stream_put_page_copy(struct ferry_stream_encoder *e,
			       uint32_t block_id, uint64_t offset,
			       enum ferry_page_encoding enc,
			       const void *payload, uint32_t len,
			       const uint8_t **copy);
/* Device section; data is copied (or written out) before this returns. */
int ferry_stream_put_device(struct ferry_stream_encoder *e, const char *name,
			    uint32_t instance, uint32_t version,
			    const void *data, uint32_t len);
int ferry_stream_put_iter_end(struct ferry_stream_encoder *e,
			      uint64_t iteration);
/* End of stream; digest may be NULL when verification is off. */
int ferry_stream_put_end(struct ferry_stream_encoder *e,
			 const uint8_t digest[16]);
/* The same for a guest that was not running when the source stopped it
 * (docs/stream.md, "5 - end of stream"): the destination keeps it
 * stopped. */
int ferry_stream_put_end_stopped(struct ferry_stream_encoder *e,
				 const uint8_t digest[16]);
/* With FERRY_STREAM_F_MULTIFD or _POSTCOPY, the first record of every
 * connection: the session, the migration's token (never logged), this
 * connection's index and the count of page channels. */
int ferry_stream_put_channel(struct ferry_stream_encoder *e, uint64_t session,
			     const uint8_t token[FERRY_STREAM_TOKEN_LEN],
			     uint16_t index, uint16_t count);
/* With FERRY_STREAM_F_CHECK: the destination acknowledges `seq` on the
 * return path once it has handled every record before this one. */
int ferry_stream_put_sync(struct ferry_stream_encoder *e, uint64_t seq);
/* With FERRY_STREAM_F_POSTCOPY: pages the destination must drop, as
 * (block id, first page, count) triples, at most
 * FERRY_STREAM_MAX_DISCARDS; then, after the device sections, the switch
 * to post-copy with the number of pages still to come. */
int ferry_stream_put_discard(struct ferry_stream_encoder *e,
			     const uint32_t *block_ids, const uint64_t *first,
			     const uint64_t *count, uint32_t n);
int ferry_stream_put_postcopy(struct ferry_stream_encoder *e, uint64_t pages);
/* With FERRY_STREAM_F_LANDED: pages written beside the stream (rdma) since
 * the last landed record, all landed, as discard's triples; the
 * destination hashes them while the guest still runs on the source. */
int ferry_stream_put_landed(struct ferry_stream_encoder *e,
			    const uint32_t *block_ids, const uint64_t *first,
			    const uint64_t *count, uint32_t n);
int ferry_stream_flush(struct ferry_stream_encoder *e);
/* The sticky error: 0 or the first negative errno a write returned. */
int ferry_stream_encoder_error(const struct ferry_stream_encoder *e);
/* Bytes handed to the sink so far, plus those still buffered. */
uint64_t ferry_stream_encoder_bytes(const struct ferry_stream_encoder *e);

/* ---- decoder ---------------------------------------------------------- */

struct ferry_stream_block {
	uint32_t id;
	char name[FERRY_NAME_MAX + 1];
	uint64_t length;
};

struct ferry_stream_config {
	uint32_t page_size;
	uint32_t nblocks;
	struct ferry_stream_block *blocks;
};

struct ferry_stream_record {
	enum ferry_record_type type;
	uint64_t stream_offset; /* where the record header starts */
	union {
		const struct ferry_stream_config *config;
		struct {
			uint32_t block_id;
			uint32_t block_index; /* into config->blocks */
			uint64_t offset;
			enum ferry_page_encoding encoding;
			uint32_t len;
			/* the page's bytes (raw, or decompressed), or an
			 * XBZRLE delta (len bytes, checked against the page's
			 * bounds) to apply to the copy the destination holds;
			 * NULL for zero, unchanged and check records.  Valid
			 * until the next call. */
			const uint8_t *data;
			uint32_t ram_index;  /* the matched RAM block's index */
			uint64_t check_hash; /* FERRY_PAGE_CHECK's hash */
			uint32_t run;	     /* pages: 1, or the run's */
		} page;
		struct {
			char name[FERRY_NAME_MAX + 1];
			uint32_t instance;
			uint32_t version;
			uint32_t len;
			const uint8_t *data; /* valid until the next call */
		} device;
		struct {
			uint64_t iteration;
		} iter;
		struct {
			bool has_digest;
			bool stopped; /* the guest stays stopped */
			uint8_t digest[16];
		} end;
		struct {
			uint64_t session; /* the same on all of a migration's */
			uint16_t index; /* 0 = main, 1..count = page channels */
			uint16_t count; /* page channels */
			/* the secret that authorizes the connection: compare
			 * in constant time, never log */
			uint8_t token[FERRY_STREAM_TOKEN_LEN];
		} channel;
		struct {
			uint64_t seq;
		} sync;
		struct {
			const struct ferry_stream_range *ranges; /* until the
								    next call */
			uint32_t n;
			uint64_t pages; /* the sum of the counts */
		} discard;		/* and FERRY_REC_LANDED's ranges */
		struct {
			uint64_t pages;
		} postcopy;
	} u;
};

struct ferry_stream_decoder;

int ferry_stream_decoder_new(struct ferry_stream_source src,
			     struct ferry_stream_decoder **out);
void ferry_stream_decoder_free(struct ferry_stream_decoder *d);

/*
 * Match the stream against the destination's RAM.  The configuration
 * record must then agree with it (page size, and for each block one of the
 * same name and length; ids may differ), and each page record names the
 * block it belongs to in rec.u.page.ram_index.  The decoder never writes
 * RAM: the caller places what it decoded.  Must be called before the
 * header is read; later calls are ignored.
 */
void ferry_stream_decoder_match_ram(struct ferry_stream_decoder *d,
				    uint32_t page_size,
				    const struct ferry_ramblock *blocks,
				    size_t n);

/* Read the stream header.  Must come first. */
int ferry_stream_read_header(struct ferry_stream_decoder *d, uint32_t *flags,
			     struct ferry_error *err);

/*
 * Read the next record.  Returns 0 with *rec filled, or a negative errno
 * with err naming the record and byte offset:
 *   -ENODATA          input ended inside the header or a record
 *   -EILSEQ           bad magic
 *   -EPROTONOSUPPORT  unsupported version or header flags
 *   -EBADMSG          a malformed field (unknown type or encoding, reserved
 *                     bits set, lengths that disagree, bad names)
 *   -E2BIG            a length over the format's limits
 *   -ERANGE           a page offset outside its block
 *   -EPROTO           records out of order (page before configuration,
 *                     configuration twice, anything after the end)
 *   -ENXIO            a block id that the configuration did not declare,
 *                     or a configuration that differs from attached RAM
 */
int ferry_stream_decoder_next(struct ferry_stream_decoder *d,
			      struct ferry_stream_record *rec,
			      struct ferry_error *err);

/* The configuration once read, else NULL. */
const struct ferry_stream_config *
ferry_stream_decoder_config(const struct ferry_stream_decoder *d);

/* Bytes consumed so far. */
uint64_t ferry_stream_decoder_offset(const struct ferry_stream_decoder *d);

const char *ferry_record_type_name(uint32_t type);

/* ---- digest (docs/stream.md, "The digest") ---------------------------- */

struct ferry_digest;

int ferry_digest_new(struct ferry_digest **out);
void ferry_digest_free(struct ferry_digest *g);
/* A block of RAM: its pages are hashed one by one (ferry_page_hash). */
void ferry_digest_block(struct ferry_digest *g, const char *name,
			const void *data, uint64_t len, uint32_t page_size);
/* The same, from page hashes already known (one per page, in order). */
void ferry_digest_block_hashes(struct ferry_digest *g, const char *name,
			       uint64_t len, const uint64_t *hashes,
			       uint64_t npages);
/* XXH3-64 of one page: the unit the digest is built from. */
uint64_t ferry_page_hash(const void *page, size_t len);
void ferry_digest_section(struct ferry_digest *g, const char *name,
			  uint32_t instance, uint32_t version, const void *data,
			  uint32_t len);
void ferry_digest_final(struct ferry_digest *g, uint8_t out[16]);
/* Lower-case hex of a digest into 33 bytes. */
void ferry_digest_hex(const uint8_t digest[16], char out[33]);

#endif
