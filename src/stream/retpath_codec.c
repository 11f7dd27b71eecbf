/* retpath_codec.c - the return path's messages (retpath_codec.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "le.h"
#include "retpath_codec.h"

/* What each message may be: its name and its body's length bounds. */
static const struct {
	const char *name;
	uint32_t min, max;
} kinds[] = {
	[RP_RESULT] = { "result", 8, 8 + RP_RESULT_MSG_MAX },
	[RP_RESEND] = { "resend", RP_RESEND_ITEM,
			RP_RESEND_MAX *RP_RESEND_ITEM },
	[RP_SYNC_ACK] = { "sync-ack", 16, 16 },
	[RP_PAGE_REQ] = { "page request", 16, 16 },
	[RP_RUNNING] = { "running", 0, 0 },
	[RP_HELD] = { "held", 17, RP_HELD_MAX },
	[RP_HELD_END] = { "held-end", 0, 0 },
};

const char *rp_type_name(uint8_t type)
{
	return type >= RP_RESULT && type <= RP_HELD_END ? kinds[type].name
							: "unknown";
}

static int bad(char *why, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -EPROTO;
}

int rp_decode_header(const uint8_t *h, uint8_t *type, uint32_t *len, char *why,
		     size_t n)
{
	uint32_t l = le32_load(h + 4);
	uint8_t t = h[0];

	if (t < RP_RESULT || t > RP_HELD_END)
		return bad(why, n, "unknown type");
	if (h[1])
		return bad(why, n, "reserved byte 1 is 0x%02x, not 0", h[1]);
	if (le16_load(h + 2))
		return bad(why, n, "reserved bytes 2-3 are 0x%04x, not 0",
			   le16_load(h + 2));
	if (kinds[t].min == kinds[t].max && l != kinds[t].min)
		return bad(why, n, "body length must be %u", kinds[t].min);
	if (l < kinds[t].min || l > kinds[t].max)
		return bad(why, n, "body length must be %u to %u", kinds[t].min,
			   kinds[t].max);
	if (t == RP_RESEND && l % RP_RESEND_ITEM)
		return bad(why, n, "body length is not a multiple of %u",
			   RP_RESEND_ITEM);
	*type = t;
	*len = l;
	return 0;
}

/* block id le32 | reserved le32 | offset le64: the reserved field. */
static int page_form(const uint8_t *e, char *why, size_t n)
{
	if (le32_load(e + 4))
		return bad(why, n, "reserved field is 0x%08x, not 0",
			   le32_load(e + 4));
	return 0;
}

int rp_decode_body(uint8_t type, const uint8_t *b, uint32_t len,
		   struct rp_msg *m, char *why, size_t n)
{
	uint8_t h[RP_HDR_LEN] = { type };
	uint32_t i;
	int k;

	/* the length as a header would carry it: the same rules */
	le32_store(h + 4, len);
	if (rp_decode_header(h, &m->type, &len, why, n))
		return -EPROTO;
	switch (type) {
	case RP_RESULT:
		m->u.result.status = le32_load(b);
		if (le32_load(b + 4))
			return bad(why, n, "reserved field is 0x%08x, not 0",
				   le32_load(b + 4));
		if (m->u.result.status > RP_STATUS_MAX)
			return bad(why, n, "status %u is not an errno",
				   m->u.result.status);
		m->u.result.len = len - 8;
		m->u.result.text = b + 8;
		return 0;
	case RP_RESEND:
		m->u.resend.n = len / RP_RESEND_ITEM;
		m->u.resend.entries = b;
		for (i = 0; i < m->u.resend.n; i++) {
			k = snprintf(why, n, "entry %u: ", i);
			if (page_form(b + i * RP_RESEND_ITEM, why + k,
				      n - (size_t)k))
				return -EPROTO;
		}
		return 0;
	case RP_SYNC_ACK:
		m->u.sync_ack.seq = le64_load(b);
		m->u.sync_ack.channel = le16_load(b + 8);
		if (m->u.sync_ack.channel > RP_CHANNEL_MAX)
			return bad(why, n, "channel %u is over %d",
				   m->u.sync_ack.channel, RP_CHANNEL_MAX);
		for (i = 10; i < 16; i++)
			if (b[i])
				return bad(why, n,
					   "reserved byte %u is 0x%02x, not 0",
					   i, b[i]);
		return 0;
	case RP_PAGE_REQ:
		m->u.page_req.block_id = le32_load(b);
		m->u.page_req.offset = le64_load(b + 8);
		return page_form(b, why, n);
	case RP_HELD:
		m->u.held.block_id = le32_load(b);
		m->u.held.first = le64_load(b + 8);
		m->u.held.nbytes = len - 16;
		m->u.held.bits = b + 16;
		return page_form(b, why, n);
	default: /* running, held-end: no body */
		return 0;
	}
}

struct rp_page rp_resend_entry(const struct rp_msg *m, uint32_t i)
{
	const uint8_t *e = m->u.resend.entries + i * RP_RESEND_ITEM;

	return (struct rp_page){ le32_load(e), le64_load(e + 8) };
}

void rp_resend_entry_put(uint8_t *e, uint32_t block_id, uint64_t offset)
{
	le32_store(e, block_id);
	le32_store(e + 4, 0);
	le64_store(e + 8, offset);
}

size_t rp_encode(const struct rp_msg *m, uint8_t *buf)
{
	uint8_t *b = buf + RP_HDR_LEN;
	uint32_t len = 0;

	memset(buf, 0, RP_HDR_LEN);
	switch (m->type) {
	case RP_RESULT:
		len = m->u.result.len < RP_RESULT_MSG_MAX ? m->u.result.len
							  : RP_RESULT_MSG_MAX;
		le32_store(b, m->u.result.status);
		le32_store(b + 4, 0);
		if (len)
			memcpy(b + 8, m->u.result.text, len);
		len += 8;
		break;
	case RP_RESEND:
		if (!m->u.resend.n || m->u.resend.n > RP_RESEND_MAX)
			return 0;
		len = m->u.resend.n * RP_RESEND_ITEM;
		memcpy(b, m->u.resend.entries, len);
		break;
	case RP_SYNC_ACK:
		len = 16;
		memset(b, 0, len);
		le64_store(b, m->u.sync_ack.seq);
		le16_store(b + 8, m->u.sync_ack.channel);
		break;
	case RP_PAGE_REQ:
		len = 16;
		rp_resend_entry_put(b, m->u.page_req.block_id,
				    m->u.page_req.offset);
		break;
	case RP_HELD:
		if (!m->u.held.nbytes || m->u.held.nbytes > RP_HELD_MAX - 16)
			return 0;
		len = 16 + m->u.held.nbytes;
		rp_resend_entry_put(b, m->u.held.block_id, m->u.held.first);
		memcpy(b + 16, m->u.held.bits, m->u.held.nbytes);
		break;
	case RP_RUNNING:
	case RP_HELD_END:
		break;
	default:
		return 0;
	}
	buf[0] = m->type;
	le32_store(buf + 4, len);
	return RP_HDR_LEN + len;
}
