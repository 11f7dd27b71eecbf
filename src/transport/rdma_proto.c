/*
 * rdma_proto.c - encoding and decoding of the RDMA control messages.
 *
 * Layout (little-endian), docs/rdma.md "Control messages":
 *
 *   header   u8 version, u8 type, le16 credits, le32 payload length
 *   ready    le32 window, le32 max message size
 *   stream   the bytes
 *   blocks   le32 count, le32 flags (bit 0: pinned), le32 status (0,
 *            or an errno and no blocks), then per block:
 *            le16 name length, name, le64 address, le64 length, le64 key
 *   register / unregister
 *            le32 block, le32 first chunk, le32 count
 *   register result
 *            le32 block, le32 first chunk, le32 count, le32 status,
 *            then count x (le64 address, le64 key) when status is 0
 *   zero     le32 block, le64 offset, le64 length
 *   blocks request, credit: no payload
 */
#include <errno.h>
#include <string.h>

#include "le.h"
#include "rdma_proto.h"

static const char *const names[] = {
	[RDMA_MSG_READY] = "ready",
	[RDMA_MSG_STREAM] = "stream",
	[RDMA_MSG_BLOCKS_REQ] = "blocks request",
	[RDMA_MSG_BLOCKS] = "blocks",
	[RDMA_MSG_REGISTER] = "register",
	[RDMA_MSG_REGISTER_RESULT] = "register result",
	[RDMA_MSG_UNREGISTER] = "unregister",
	[RDMA_MSG_ZERO] = "zero",
	[RDMA_MSG_CREDIT] = "credit",
	[RDMA_MSG_URGENT] = "urgent",
};

const char *rdma_msg_name(enum rdma_msg_type t)
{
	if (t < RDMA_MSG_READY || t > RDMA_MSG_TYPE_MAX)
		return "unknown";
	return names[t];
}

/* A cursor that refuses to run past its end. */
struct wr {
	uint8_t *p, *end;
	bool over;
};

static void put(struct wr *w, const void *src, size_t n)
{
	if (w->over || (size_t)(w->end - w->p) < n) {
		w->over = true;
		return;
	}
	memcpy(w->p, src, n);
	w->p += n;
}

static void put16(struct wr *w, uint16_t v)
{
	uint8_t b[2];

	le16_store(b, v);
	put(w, b, 2);
}

static void put32(struct wr *w, uint32_t v)
{
	uint8_t b[4];

	le32_store(b, v);
	put(w, b, 4);
}

static void put64(struct wr *w, uint64_t v)
{
	uint8_t b[8];

	le64_store(b, v);
	put(w, b, 8);
}

int rdma_msg_encode(const struct rdma_msg *msg, uint8_t *buf, size_t len)
{
	struct wr w = { buf + RDMA_HDR_SIZE,
			buf + (len < RDMA_MSG_MAX ? len : RDMA_MSG_MAX),
			false };
	uint32_t i;

	if (len < RDMA_HDR_SIZE)
		return -EINVAL;
	switch (msg->type) {
	case RDMA_MSG_READY:
		put32(&w, msg->u.ready.window);
		put32(&w, msg->u.ready.max_size);
		break;
	case RDMA_MSG_STREAM:
	case RDMA_MSG_URGENT:
		if (!msg->u.stream.len)
			return -EINVAL;
		put(&w, msg->u.stream.data, msg->u.stream.len);
		break;
	case RDMA_MSG_BLOCKS_REQ:
	case RDMA_MSG_CREDIT:
		break;
	case RDMA_MSG_BLOCKS:
		if (msg->u.blocks.n > RDMA_BLOCKS_MAX ||
		    !msg->u.blocks.n != !!msg->u.blocks.status ||
		    msg->u.blocks.status < 0 || msg->u.blocks.status > 4095)
			return -EINVAL;
		put32(&w, msg->u.blocks.n);
		put32(&w, msg->u.blocks.pinned ? 1 : 0);
		put32(&w, (uint32_t)msg->u.blocks.status);
		for (i = 0; i < msg->u.blocks.n; i++) {
			const struct rdma_block_desc *b =
				&msg->u.blocks.blocks[i];
			size_t nl = strnlen(b->name, RDMA_NAME_MAX + 1);

			if (!nl || nl > RDMA_NAME_MAX)
				return -EINVAL;
			put16(&w, (uint16_t)nl);
			put(&w, b->name, nl);
			put64(&w, b->addr);
			put64(&w, b->length);
			put64(&w, b->key);
		}
		break;
	case RDMA_MSG_REGISTER:
	case RDMA_MSG_UNREGISTER:
		if (!msg->u.reg.count || msg->u.reg.count > RDMA_REG_MAX)
			return -EINVAL;
		put32(&w, msg->u.reg.block);
		put32(&w, msg->u.reg.first);
		put32(&w, msg->u.reg.count);
		break;
	case RDMA_MSG_REGISTER_RESULT:
		if (!msg->u.reg_result.count ||
		    msg->u.reg_result.count > RDMA_REG_MAX ||
		    msg->u.reg_result.status < 0)
			return -EINVAL;
		put32(&w, msg->u.reg_result.block);
		put32(&w, msg->u.reg_result.first);
		put32(&w, msg->u.reg_result.count);
		put32(&w, (uint32_t)msg->u.reg_result.status);
		if (!msg->u.reg_result.status)
			for (i = 0; i < msg->u.reg_result.count; i++) {
				put64(&w, msg->u.reg_result.keys[i].addr);
				put64(&w, msg->u.reg_result.keys[i].key);
			}
		break;
	case RDMA_MSG_ZERO:
		if (!msg->u.zero.length)
			return -EINVAL;
		put32(&w, msg->u.zero.block);
		put64(&w, msg->u.zero.offset);
		put64(&w, msg->u.zero.length);
		break;
	default:
		return -EINVAL;
	}
	if (w.over)
		return -EINVAL;
	buf[0] = RDMA_PROTO_VERSION;
	buf[1] = (uint8_t)msg->type;
	le16_store(buf + 2, msg->credits);
	le32_store(buf + 4, (uint32_t)(w.p - buf - RDMA_HDR_SIZE));
	return (int)(w.p - buf);
}

/* A reading cursor; `bad` names the first field that did not fit. */
struct rd {
	const uint8_t *p, *end;
	const char *bad;
};

static bool take(struct rd *r, size_t n, const char *field)
{
	if (r->bad)
		return false;
	if ((size_t)(r->end - r->p) < n) {
		r->bad = field;
		return false;
	}
	return true;
}

static uint32_t get32(struct rd *r, const char *field)
{
	uint32_t v = 0;

	if (take(r, 4, field)) {
		v = le32_load(r->p);
		r->p += 4;
	}
	return v;
}

static uint64_t get64(struct rd *r, const char *field)
{
	uint64_t v = 0;

	if (take(r, 8, field)) {
		v = le64_load(r->p);
		r->p += 8;
	}
	return v;
}

static int malformed(struct ferry_error *err, enum rdma_msg_type t,
		     const char *why)
{
	return ferry_error_set(err, -EPROTO, "malformed %s message: %s",
			       rdma_msg_name(t), why);
}

/* A blocks message's payload, into blocks[] (the caller's room): 0, or
 * the error; a payload cut short leaves r->bad set and returns 0. */
static int decode_blocks(struct rd *r, struct rdma_msg *msg,
			 struct rdma_block_desc *blocks,
			 struct ferry_error *err)
{
	const enum rdma_msg_type t = RDMA_MSG_BLOCKS;
	uint32_t flags, status, i;

	msg->u.blocks.blocks = blocks;
	msg->u.blocks.n = get32(r, "count");
	flags = get32(r, "flags");
	status = get32(r, "status");
	if (r->bad)
		return 0;
	if (status > 4095)
		return malformed(err, t, "status is not an errno");
	if (!msg->u.blocks.n != !!status)
		return malformed(err, t,
				 "blocks must come exactly when the status "
				 "is 0");
	if (msg->u.blocks.n > RDMA_BLOCKS_MAX)
		return malformed(err, t, "block count out of range");
	msg->u.blocks.status = (int32_t)status;
	if (flags & ~1u)
		return malformed(err, t, "unknown flags");
	if (!blocks && msg->u.blocks.n)
		return malformed(err, t, "no room for blocks");
	msg->u.blocks.pinned = flags & 1u;
	for (i = 0; i < msg->u.blocks.n && !r->bad; i++) {
		struct rdma_block_desc *b = &blocks[i];
		uint16_t nl = 0;

		if (take(r, 2, "name length")) {
			nl = (uint16_t)(r->p[0] | r->p[1] << 8);
			r->p += 2;
		}
		if (r->bad)
			return 0;
		if (!nl || nl > RDMA_NAME_MAX)
			return malformed(err, t, "name length out of range");
		if (!take(r, nl, "name"))
			return 0;
		memcpy(b->name, r->p, nl);
		b->name[nl] = '\0';
		r->p += nl;
		if (strlen(b->name) != nl)
			return malformed(err, t, "NUL in a name");
		b->addr = get64(r, "address");
		b->length = get64(r, "length");
		b->key = get64(r, "key");
		if (!r->bad && !b->length)
			return malformed(err, t, "a block of 0 bytes");
		if (!r->bad && b->addr + b->length < b->addr)
			return malformed(err, t,
					 "block wraps the address space");
	}
	return 0;
}

/* A register result's payload: 0, or the error; a payload cut short
 * leaves r->bad set and returns 0. */
static int decode_reg_result(struct rd *r, struct rdma_msg *msg,
			     struct ferry_error *err)
{
	const enum rdma_msg_type t = RDMA_MSG_REGISTER_RESULT;
	uint32_t status, i;

	msg->u.reg_result.block = get32(r, "block");
	msg->u.reg_result.first = get32(r, "first chunk");
	msg->u.reg_result.count = get32(r, "count");
	status = get32(r, "status");
	if (r->bad)
		return 0;
	if (!msg->u.reg_result.count || msg->u.reg_result.count > RDMA_REG_MAX)
		return malformed(err, t, "chunk count out of range");
	if (status > 4095)
		return malformed(err, t, "status is not an errno");
	msg->u.reg_result.status = (int32_t)status;
	if (!status)
		for (i = 0; i < msg->u.reg_result.count; i++) {
			msg->u.reg_result.keys[i].addr = get64(r, "address");
			msg->u.reg_result.keys[i].key = get64(r, "key");
		}
	return 0;
}

int rdma_msg_decode(const uint8_t *buf, size_t len, struct rdma_msg *msg,
		    struct ferry_error *err)
{
	struct rdma_block_desc *blocks = msg->u.blocks.blocks;
	struct rd r;
	uint32_t plen;
	enum rdma_msg_type t;

	if (len < RDMA_HDR_SIZE)
		return ferry_error_set(err, -EPROTO,
				       "control message of %zu bytes is "
				       "shorter than its %d-byte header",
				       len, RDMA_HDR_SIZE);
	if (buf[0] != RDMA_PROTO_VERSION)
		return ferry_error_set(err, -EPROTO,
				       "control message version %u, "
				       "this side speaks %u",
				       buf[0], RDMA_PROTO_VERSION);
	t = (enum rdma_msg_type)buf[1];
	if (buf[1] < RDMA_MSG_READY || buf[1] > RDMA_MSG_TYPE_MAX)
		return ferry_error_set(err, -EPROTO,
				       "unknown control message type %u",
				       buf[1]);
	plen = le32_load(buf + 4);
	if (plen != len - RDMA_HDR_SIZE)
		return ferry_error_set(err, -EPROTO,
				       "%s message says %u payload bytes "
				       "but %zu arrived",
				       rdma_msg_name(t), plen,
				       len - RDMA_HDR_SIZE);
	memset(msg, 0, sizeof(*msg));
	msg->type = t;
	msg->credits = le16_load(buf + 2);
	r.p = buf + RDMA_HDR_SIZE;
	r.end = buf + len;
	r.bad = NULL;
	switch (t) {
	case RDMA_MSG_READY:
		msg->u.ready.window = get32(&r, "window");
		msg->u.ready.max_size = get32(&r, "max size");
		if (!r.bad && !msg->u.ready.window)
			return malformed(err, t, "a window of 0 receives");
		if (!r.bad && msg->u.ready.max_size < RDMA_HDR_SIZE + 1)
			return malformed(err, t, "max size below a header");
		break;
	case RDMA_MSG_STREAM:
	case RDMA_MSG_URGENT:
		if (!plen)
			return malformed(err, t, "no bytes");
		msg->u.stream.data = r.p;
		msg->u.stream.len = plen;
		r.p = r.end;
		break;
	case RDMA_MSG_BLOCKS_REQ:
	case RDMA_MSG_CREDIT:
		break;
	case RDMA_MSG_BLOCKS: {
		int rc = decode_blocks(&r, msg, blocks, err);

		if (rc)
			return rc;
		break;
	}
	case RDMA_MSG_REGISTER:
	case RDMA_MSG_UNREGISTER:
		msg->u.reg.block = get32(&r, "block");
		msg->u.reg.first = get32(&r, "first chunk");
		msg->u.reg.count = get32(&r, "count");
		if (!r.bad &&
		    (!msg->u.reg.count || msg->u.reg.count > RDMA_REG_MAX))
			return malformed(err, t, "chunk count out of range");
		if (!r.bad &&
		    msg->u.reg.first + (uint64_t)msg->u.reg.count > UINT32_MAX)
			return malformed(err, t, "chunk index overflows");
		break;
	case RDMA_MSG_REGISTER_RESULT: {
		int rc = decode_reg_result(&r, msg, err);

		if (rc)
			return rc;
		break;
	}
	case RDMA_MSG_ZERO:
		msg->u.zero.block = get32(&r, "block");
		msg->u.zero.offset = get64(&r, "offset");
		msg->u.zero.length = get64(&r, "length");
		if (!r.bad && !msg->u.zero.length)
			return malformed(err, t, "a zero run of 0 bytes");
		if (!r.bad && msg->u.zero.offset + msg->u.zero.length <
				      msg->u.zero.offset)
			return malformed(err, t, "offset + length overflows");
		break;
	}
	if (r.bad)
		return malformed(err, t, r.bad);
	if (r.p != r.end)
		return malformed(err, t, "bytes after the payload");
	return 0;
}

void rdma_connect_encode(const struct rdma_connect_data *d, uint8_t *buf)
{
	memset(buf, 0, RDMA_CONNECT_SIZE);
	le32_store(buf, d->magic);
	buf[4] = d->version;
	le32_store(buf + 8, d->caps);
	le32_store(buf + 12, d->chunk_shift);
}

int rdma_connect_decode(const uint8_t *buf, size_t len,
			struct rdma_connect_data *d, struct ferry_error *err)
{
	if (len < RDMA_CONNECT_SIZE)
		return ferry_error_set_from(
			err, FERRY_ERROR_PEER, -EPROTO,
			"rdma: the peer's connection data is "
			"%zu bytes, not %d: not ferry",
			len, RDMA_CONNECT_SIZE);
	d->magic = le32_load(buf);
	d->version = buf[4];
	d->caps = le32_load(buf + 8);
	d->chunk_shift = le32_load(buf + 12);
	if (d->magic != RDMA_CONNECT_MAGIC)
		return ferry_error_set_from(
			err, FERRY_ERROR_PEER, -EPROTO,
			"rdma: the peer is not ferry (magic "
			"0x%08x)",
			d->magic);
	if (d->version != RDMA_PROTO_VERSION)
		return ferry_error_set_from(
			err, FERRY_ERROR_PEER, -EPROTONOSUPPORT,
			"rdma: the peer speaks protocol version "
			"%u, this side %u",
			d->version, RDMA_PROTO_VERSION);
	if (d->chunk_shift != RDMA_CHUNK_SHIFT)
		return ferry_error_set_from(
			err, FERRY_ERROR_PEER, -EPROTO,
			"rdma: the peer uses chunks of 2^%u "
			"bytes, this side 2^%d",
			d->chunk_shift, RDMA_CHUNK_SHIFT);
	return 0;
}
