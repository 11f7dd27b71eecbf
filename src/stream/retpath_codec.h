/*
 * retpath_codec.h - the return path's messages, destination to source on
 * the main connection (docs/stream.md, "Return path"): their one
 * spelling on the wire, encoded and decoded with no socket and no guest.
 *
 *   type u8 | reserved u8 | reserved le16 | length le32 | body
 *
 *   1 result    status le32 | reserved le32 | message (at most 1024)
 *   2 resend    1 to 256 entries of block id le32 | reserved le32 |
 *               offset le64
 *   3 sync-ack  seq le64 | channel le16 | reserved 6 bytes
 *   4 page-req  block id le32 | reserved le32 | offset le64 (post-copy)
 *   5 running   no body: post-copy, the guest runs on the destination
 *   6 held      block id le32 | reserved le32 | first page le64 |
 *               bitmap, 1 to 4080 bytes (post-copy recovery)
 *   7 held-end  no body: post-copy recovery, the list is complete
 *
 * The decoder checks a message's form: its header, its length, every
 * reserved field, and a field's range where it has one on its own (a
 * status that is an errno, a channel within the stream's).  What needs
 * the guest (a block id, an offset within its block) or the migration
 * (when a verdict may come) is the reader's (src/migration/retpath.c).
 */
#ifndef FERRY_RETPATH_CODEC_H
#define FERRY_RETPATH_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/stream.h"

enum {
	RP_RESULT = 1,
	RP_RESEND = 2,
	RP_SYNC_ACK = 3,
	RP_PAGE_REQ = 4,
	RP_RUNNING = 5,
	RP_HELD = 6, /* post-copy recovery: pages held */
	RP_HELD_END = 7,
};

#define RP_HDR_LEN	  8
#define RP_RESULT_MSG_MAX 1024 /* bytes of a verdict's message */
#define RP_RESEND_ITEM	  16u
#define RP_RESEND_MAX	  256  /* entries per resend message */
#define RP_HELD_MAX	  4096 /* bytes of a held message's body */
#define RP_STATUS_MAX	  4095 /* a verdict's status: 0 or an errno */
#define RP_CHANNEL_MAX	  FERRY_STREAM_MAX_CHANNELS /* a sync-ack's */
#define RP_BODY_MAX	  (RP_RESEND_MAX * RP_RESEND_ITEM)
#define RP_MSG_MAX	  (RP_HDR_LEN + RP_BODY_MAX) /* the longest */

/* A page named by its block's id and its byte offset in it. */
struct rp_page {
	uint32_t block_id;
	uint64_t offset;
};

/* A decoded message; its pointers point into the body decoded. */
struct rp_msg {
	uint8_t type;
	union {
		struct {
			uint32_t status;
			uint32_t len;	     /* of text, */
			const uint8_t *text; /* not NUL-terminated */
		} result;
		struct {
			uint32_t n;		/* entries, */
			const uint8_t *entries; /* rp_resend_entry */
		} resend;
		struct {
			uint64_t seq;
			uint16_t channel;
		} sync_ack;
		struct rp_page page_req;
		struct {
			uint32_t block_id;
			uint64_t first;	     /* page of bit 0 */
			uint32_t nbytes;     /* of bits, */
			const uint8_t *bits; /* bit j: page first + j */
		} held;
	} u;
};

/* "result", "resend", ...; "unknown" for another type. */
const char *rp_type_name(uint8_t type);

/* A message's header: 0 with its type and body length, or -EPROTO with
 * why (the field, its value and the rule). */
int rp_decode_header(const uint8_t *h, uint8_t *type, uint32_t *len, char *why,
		     size_t n);
/* A whole body of that type and length (as the header said): 0 with m,
 * or -EPROTO with why (for a resend, the entry first). */
int rp_decode_body(uint8_t type, const uint8_t *body, uint32_t len,
		   struct rp_msg *m, char *why, size_t n);
/* Entry i of a decoded resend. */
struct rp_page rp_resend_entry(const struct rp_msg *m, uint32_t i);

/* A resend entry, into its 16 bytes. */
void rp_resend_entry_put(uint8_t *e, uint32_t block_id, uint64_t offset);
/* The whole message, header and body, into buf (RP_MSG_MAX bytes): its
 * length; 0 when m cannot be spelt (a body over its limit, an unknown
 * type).  A result's text over RP_RESULT_MSG_MAX bytes is cut there. */
size_t rp_encode(const struct rp_msg *m, uint8_t *buf);

#endif
