/*
 * test_retpath_codec.c - the return path's messages: every type survives
 * a round trip, byte for byte, and every malformed variant is refused
 * with a message that names the field and the rule.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "le.h"
#include "retpath_codec.h"

static uint8_t buf[RP_MSG_MAX];

/* Decode buf[0..len): header, then body. */
static int decode(size_t len, struct rp_msg *m, char *why, size_t n)
{
	uint32_t blen;
	uint8_t type;

	memset(m, 0, sizeof(*m));
	why[0] = '\0';
	if (len < RP_HDR_LEN)
		return -EINVAL;
	if (rp_decode_header(buf, &type, &blen, why, n))
		return -EPROTO;
	assert_int_equal(RP_HDR_LEN + blen, len);
	return rp_decode_body(type, buf + RP_HDR_LEN, blen, m, why, n);
}

static void refused(size_t len, const char *expect)
{
	struct rp_msg m;
	char why[256];

	assert_int_equal(decode(len, &m, why, sizeof(why)), -EPROTO);
	if (!strstr(why, expect))
		fail_msg("expected '%s' in '%s'", expect, why);
}

/* Encode m into buf, decode it back into out; the bytes encode again
 * to the same. */
static size_t round_trip(const struct rp_msg *m, struct rp_msg *out)
{
	uint8_t again[RP_MSG_MAX];
	char why[256];
	size_t len = rp_encode(m, buf);

	assert_true(len >= RP_HDR_LEN);
	if (decode(len, out, why, sizeof(why)))
		fail_msg("%s did not decode: %s", rp_type_name(m->type), why);
	assert_int_equal(out->type, m->type);
	assert_int_equal(rp_encode(out, again), len);
	assert_memory_equal(again, buf, len);
	return len;
}

static void test_round_trips(void **state)
{
	static const char text[] = "destination: verify failed";
	uint8_t entries[3 * RP_RESEND_ITEM], bits[40];
	struct rp_msg m, out;
	struct rp_page p;
	unsigned i;

	(void)state;
	m = (struct rp_msg){ .type = RP_RESULT };
	m.u.result.status = 5;
	m.u.result.len = sizeof(text) - 1;
	m.u.result.text = (const uint8_t *)text;
	assert_int_equal(round_trip(&m, &out), RP_HDR_LEN + 8 + 26);
	assert_int_equal(out.u.result.status, 5);
	assert_int_equal(out.u.result.len, 26);
	assert_memory_equal(out.u.result.text, text, 26);

	for (i = 0; i < 3; i++)
		rp_resend_entry_put(entries + i * RP_RESEND_ITEM, 7 + i,
				    (uint64_t)i << 32 | 4096);
	m = (struct rp_msg){ .type = RP_RESEND };
	m.u.resend.n = 3;
	m.u.resend.entries = entries;
	assert_int_equal(round_trip(&m, &out), RP_HDR_LEN + 48);
	assert_int_equal(out.u.resend.n, 3);
	p = rp_resend_entry(&out, 2);
	assert_int_equal(p.block_id, 9);
	assert_true(p.offset == ((uint64_t)2 << 32 | 4096));

	m = (struct rp_msg){ .type = RP_SYNC_ACK };
	m.u.sync_ack.seq = 0x0102030405060708ull;
	m.u.sync_ack.channel = RP_CHANNEL_MAX;
	round_trip(&m, &out);
	assert_true(out.u.sync_ack.seq == 0x0102030405060708ull);
	assert_int_equal(out.u.sync_ack.channel, RP_CHANNEL_MAX);

	m = (struct rp_msg){ .type = RP_PAGE_REQ,
			     .u.page_req = { 3, 1ull << 40 } };
	round_trip(&m, &out);
	assert_int_equal(out.u.page_req.block_id, 3);
	assert_true(out.u.page_req.offset == 1ull << 40);

	for (i = 0; i < sizeof(bits); i++)
		bits[i] = (uint8_t)(i * 37);
	m = (struct rp_msg){ .type = RP_HELD };
	m.u.held.block_id = 1;
	m.u.held.first = 640;
	m.u.held.nbytes = sizeof(bits);
	m.u.held.bits = bits;
	assert_int_equal(round_trip(&m, &out), RP_HDR_LEN + 16 + 40);
	assert_int_equal(out.u.held.first, 640);
	assert_memory_equal(out.u.held.bits, bits, sizeof(bits));

	m = (struct rp_msg){ .type = RP_RUNNING };
	assert_int_equal(round_trip(&m, &out), RP_HDR_LEN);
	m = (struct rp_msg){ .type = RP_HELD_END };
	assert_int_equal(round_trip(&m, &out), RP_HDR_LEN);
}

/* The limits: the longest of each, and what cannot be spelt. */
static void test_limits(void **state)
{
	static uint8_t entries[(RP_RESEND_MAX + 1) * RP_RESEND_ITEM];
	static uint8_t bits[RP_HELD_MAX];
	static char text[RP_RESULT_MSG_MAX + 100];
	struct rp_msg m, out;

	(void)state;
	memset(text, 'x', sizeof(text));
	m = (struct rp_msg){ .type = RP_RESULT };
	m.u.result.len = sizeof(text); /* cut at the limit */
	m.u.result.text = (const uint8_t *)text;
	assert_int_equal(round_trip(&m, &out),
			 RP_HDR_LEN + 8 + RP_RESULT_MSG_MAX);
	m = (struct rp_msg){ .type = RP_RESEND };
	m.u.resend.n = RP_RESEND_MAX;
	m.u.resend.entries = entries;
	assert_int_equal(round_trip(&m, &out), RP_MSG_MAX);
	m.u.resend.n = RP_RESEND_MAX + 1;
	assert_int_equal(rp_encode(&m, buf), 0);
	m.u.resend.n = 0;
	assert_int_equal(rp_encode(&m, buf), 0);
	m = (struct rp_msg){ .type = RP_HELD };
	m.u.held.nbytes = RP_HELD_MAX - 16;
	m.u.held.bits = bits;
	assert_int_equal(round_trip(&m, &out), RP_HDR_LEN + RP_HELD_MAX);
	m.u.held.nbytes = RP_HELD_MAX - 15;
	assert_int_equal(rp_encode(&m, buf), 0);
	m.u.held.nbytes = 0;
	assert_int_equal(rp_encode(&m, buf), 0);
	m = (struct rp_msg){ .type = 8 };
	assert_int_equal(rp_encode(&m, buf), 0);
	assert_string_equal(rp_type_name(8), "unknown");
	assert_string_equal(rp_type_name(RP_PAGE_REQ), "page request");
}

/* A header of type t and body length len, body zeroed. */
static size_t msg(uint8_t t, uint32_t len)
{
	memset(buf, 0, sizeof(buf));
	buf[0] = t;
	le32_store(buf + 4, len);
	return RP_HDR_LEN + len;
}

static void test_malformed_headers(void **state)
{
	(void)state;
	refused(msg(0, 0), "unknown type");
	refused(msg(8, 0), "unknown type");
	refused(msg(0xff, 0), "unknown type");
	msg(RP_RUNNING, 0);
	buf[1] = 1;
	refused(RP_HDR_LEN, "reserved byte 1 is 0x01, not 0");
	msg(RP_RUNNING, 0);
	le16_store(buf + 2, 0x8000);
	refused(RP_HDR_LEN, "reserved bytes 2-3 are 0x8000, not 0");
	/* each type's length rule, one byte each side of it */
	refused(msg(RP_RESULT, 7), "body length must be 8 to 1032");
	refused(msg(RP_RESULT, 8 + RP_RESULT_MSG_MAX + 1),
		"body length must be 8 to 1032");
	refused(msg(RP_RESEND, 0), "body length must be 16 to 4096");
	refused(msg(RP_RESEND, 17), "not a multiple of 16");
	refused(msg(RP_RESEND, RP_BODY_MAX + 16),
		"body length must be 16 to 4096");
	refused(msg(RP_SYNC_ACK, 15), "body length must be 16");
	refused(msg(RP_SYNC_ACK, 17), "body length must be 16");
	refused(msg(RP_PAGE_REQ, 8), "body length must be 16");
	refused(msg(RP_RUNNING, 1), "body length must be 0");
	refused(msg(RP_HELD, 16), "body length must be 17 to 4096");
	refused(msg(RP_HELD, RP_HELD_MAX + 1), "body length must be 17");
	refused(msg(RP_HELD_END, 4), "body length must be 0");
}

static void test_malformed_bodies(void **state)
{
	struct rp_msg m;
	char why[256];

	(void)state;
	msg(RP_RESULT, 8);
	le32_store(buf + RP_HDR_LEN + 4, 1);
	refused(RP_HDR_LEN + 8, "reserved field is 0x00000001, not 0");
	msg(RP_RESULT, 8);
	le32_store(buf + RP_HDR_LEN, RP_STATUS_MAX + 1);
	refused(RP_HDR_LEN + 8, "status 4096 is not an errno");
	msg(RP_RESULT, 8);
	le32_store(buf + RP_HDR_LEN, RP_STATUS_MAX);
	assert_int_equal(decode(RP_HDR_LEN + 8, &m, why, sizeof(why)), 0);

	msg(RP_RESEND, 48);
	le32_store(buf + RP_HDR_LEN + 2 * RP_RESEND_ITEM + 4, 0xabcd);
	refused(RP_HDR_LEN + 48,
		"entry 2: reserved field is 0x0000abcd, not 0");

	msg(RP_SYNC_ACK, 16);
	le16_store(buf + RP_HDR_LEN + 8, RP_CHANNEL_MAX + 1);
	refused(RP_HDR_LEN + 16, "channel 65 is over 64");
	msg(RP_SYNC_ACK, 16);
	buf[RP_HDR_LEN + 15] = 0x10;
	refused(RP_HDR_LEN + 16, "reserved byte 15 is 0x10, not 0");

	msg(RP_PAGE_REQ, 16);
	le32_store(buf + RP_HDR_LEN + 4, 2);
	refused(RP_HDR_LEN + 16, "reserved field is 0x00000002, not 0");
	msg(RP_HELD, 17);
	le32_store(buf + RP_HDR_LEN + 4, 3);
	refused(RP_HDR_LEN + 17, "reserved field is 0x00000003, not 0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_malformed_headers),
		cmocka_unit_test(test_malformed_bodies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
