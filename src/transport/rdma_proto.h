/*
 * rdma_proto.h - the RDMA transport's control messages (docs/rdma.md).
 *
 * Pure encoding and decoding, no libfabric: every message is a header
 * (version, type, returned credits, payload length) and a payload whose
 * shape the type fixes.  The decoder checks each length and count against
 * the bytes it was given and the limits below before it fills anything;
 * what it returns is safe to index with.  Whether a block or chunk exists
 * is for the caller to check against its RAM.
 */
#ifndef FERRY_RDMA_PROTO_H
#define FERRY_RDMA_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/error.h"

#define RDMA_PROTO_VERSION 1
#define RDMA_HDR_SIZE	   8
#define RDMA_MSG_MAX	   (32u * 1024) /* header included */
#define RDMA_PAYLOAD_MAX   (RDMA_MSG_MAX - RDMA_HDR_SIZE)
#define RDMA_CHUNK_SHIFT   20 /* 1 MiB */
#define RDMA_CHUNK_SIZE	   (1ull << RDMA_CHUNK_SHIFT)
#define RDMA_REG_MAX	   64  /* chunks in one register message */
#define RDMA_BLOCKS_MAX	   256 /* RAM blocks in one blocks message */
#define RDMA_NAME_MAX	   255

/* Connection private data (fi_connect / fi_accept), 16 bytes. */
#define RDMA_CONNECT_MAGIC 0x464d5246u /* "FRMF" */
#define RDMA_CONNECT_SIZE  16
#define RDMA_CAP_PIN_ALL   0x1u
#define RDMA_CAPS_KNOWN	   RDMA_CAP_PIN_ALL

enum rdma_msg_type {
	RDMA_MSG_READY = 1,  /* window: receives posted */
	RDMA_MSG_STREAM,     /* bytes of the ferry stream (non-RAM state) */
	RDMA_MSG_BLOCKS_REQ, /* source: your RAM blocks, please */
	RDMA_MSG_BLOCKS,     /* destination: its RAM blocks */
	RDMA_MSG_REGISTER,   /* source: register these chunks */
	RDMA_MSG_REGISTER_RESULT, /* destination: their keys, or why not */
	RDMA_MSG_UNREGISTER,	  /* source: revoke these chunks' keys */
	RDMA_MSG_ZERO,		  /* source: these pages are zero */
	RDMA_MSG_CREDIT,	  /* only the header's credits */
	RDMA_MSG_URGENT, /* bytes of the urgent stream (post-copy's answers) */
	RDMA_MSG_TYPE_MAX = RDMA_MSG_URGENT,
};

struct rdma_connect_data {
	uint32_t magic;
	uint8_t version;
	uint32_t caps;
	uint32_t chunk_shift;
};

struct rdma_block_desc {
	char name[RDMA_NAME_MAX + 1];
	uint64_t addr;	 /* remote address of the block's first byte */
	uint64_t length; /* bytes */
	uint64_t key;	 /* pinned: the block's key; else 0 */
};

struct rdma_chunk_key {
	uint64_t addr; /* remote address of the chunk's first byte */
	uint64_t key;
};

struct rdma_msg {
	enum rdma_msg_type type;
	uint16_t credits; /* receives the sender posted again for us */
	union {
		struct {
			uint32_t window;
			uint32_t max_size;
		} ready;
		struct {		     /* stream, urgent */
			const uint8_t *data; /* points into the decoded buffer */
			uint32_t len;
		} stream;
		struct {
			uint32_t n; /* 0 exactly when status is not */
			bool pinned;
			int32_t status; /* 0, or why RAM could not be pinned */
			struct rdma_block_desc *blocks; /* caller's array */
		} blocks;
		struct { /* register, unregister */
			uint32_t block;
			uint32_t first; /* chunk index within the block */
			uint32_t count;
		} reg;
		struct {
			uint32_t block, first, count;
			int32_t status; /* 0, or a positive errno */
			struct rdma_chunk_key keys[RDMA_REG_MAX];
		} reg_result;
		struct {
			uint32_t block;
			uint64_t offset, length;
		} zero;
	} u;
};

const char *rdma_msg_name(enum rdma_msg_type t);

/* Encode into buf (at least RDMA_MSG_MAX bytes); returns the message's
 * size, or a negative errno (-EINVAL) when it would not be valid. */
int rdma_msg_encode(const struct rdma_msg *msg, uint8_t *buf, size_t len);

/* Decode one message of exactly `len` bytes.  For a blocks message the
 * caller gives room for RDMA_BLOCKS_MAX descriptors in msg->u.blocks.blocks
 * (set before the call).  -EPROTO with a message naming the field on
 * anything malformed. */
int rdma_msg_decode(const uint8_t *buf, size_t len, struct rdma_msg *msg,
		    struct ferry_error *err);

void rdma_connect_encode(const struct rdma_connect_data *d, uint8_t *buf);
int rdma_connect_decode(const uint8_t *buf, size_t len,
			struct rdma_connect_data *d, struct ferry_error *err);

#endif
