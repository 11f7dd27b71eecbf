/*
 * test_rdma_proto.c - the RDMA control messages: every type survives a
 * round trip, and every malformed variant is refused with a message that
 * names what is wrong.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rdma_proto.h"

static uint8_t buf[RDMA_MSG_MAX];
static struct rdma_block_desc room[RDMA_BLOCKS_MAX];

static int decode(size_t len, struct rdma_msg *m, struct ferry_error *e)
{
	memset(m, 0, sizeof(*m));
	m->u.blocks.blocks = room;
	ferry_error_clear(e);
	return rdma_msg_decode(buf, len, m, e);
}

static void refused(size_t len, const char *why)
{
	struct ferry_error e;
	struct rdma_msg m;
	int rc = decode(len, &m, &e);

	assert_int_equal(rc, -EPROTO);
	if (!strstr(e.msg, why))
		fail_msg("expected '%s' in '%s'", why, e.msg);
}

static int encode(const struct rdma_msg *m)
{
	int n = rdma_msg_encode(m, buf, sizeof(buf));

	assert_true(n >= RDMA_HDR_SIZE);
	return n;
}

static void test_round_trips(void **state)
{
	static const uint8_t bytes[] = "a stream record";
	struct rdma_block_desc blocks[2] = {
		{ .name = "pc.ram",
		  .addr = 0x7f0000000000ull,
		  .length = 256ull << 20,
		  .key = 77 },
		{ .name = "vga", .addr = 0, .length = 4096, .key = 0 },
	};
	struct rdma_msg m, d;
	struct ferry_error e;
	int n;

	(void)state;
	m = (struct rdma_msg){ .type = RDMA_MSG_READY, .credits = 3 };
	m.u.ready.window = 32;
	m.u.ready.max_size = RDMA_MSG_MAX;
	n = encode(&m);
	assert_int_equal(decode((size_t)n, &d, &e), 0);
	assert_int_equal(d.type, RDMA_MSG_READY);
	assert_int_equal(d.credits, 3);
	assert_int_equal(d.u.ready.window, 32);

	m = (struct rdma_msg){ .type = RDMA_MSG_STREAM };
	m.u.stream.data = bytes;
	m.u.stream.len = sizeof(bytes);
	n = encode(&m);
	assert_int_equal(decode((size_t)n, &d, &e), 0);
	assert_int_equal(d.u.stream.len, sizeof(bytes));
	assert_memory_equal(d.u.stream.data, bytes, sizeof(bytes));

	m.type = RDMA_MSG_URGENT;
	n = encode(&m);
	assert_int_equal(decode((size_t)n, &d, &e), 0);
	assert_int_equal(d.type, RDMA_MSG_URGENT);
	assert_int_equal(d.u.stream.len, sizeof(bytes));
	assert_memory_equal(d.u.stream.data, bytes, sizeof(bytes));
	assert_string_equal(rdma_msg_name(RDMA_MSG_URGENT), "urgent");

	m = (struct rdma_msg){ .type = RDMA_MSG_BLOCKS };
	m.u.blocks.n = 2;
	m.u.blocks.pinned = true;
	m.u.blocks.blocks = blocks;
	n = encode(&m);
	assert_int_equal(decode((size_t)n, &d, &e), 0);
	assert_int_equal(d.u.blocks.n, 2);
	assert_true(d.u.blocks.pinned);
	assert_string_equal(d.u.blocks.blocks[0].name, "pc.ram");
	assert_int_equal(d.u.blocks.blocks[0].addr, 0x7f0000000000ull);
	assert_int_equal(d.u.blocks.blocks[0].length, 256ull << 20);
	assert_int_equal(d.u.blocks.blocks[0].key, 77);
	assert_string_equal(d.u.blocks.blocks[1].name, "vga");

	m = (struct rdma_msg){ .type = RDMA_MSG_BLOCKS };
	m.u.blocks.status = ENOMEM;
	n = encode(&m);
	assert_int_equal(decode((size_t)n, &d, &e), 0);
	assert_int_equal(d.u.blocks.status, ENOMEM);
	assert_int_equal(d.u.blocks.n, 0);

	m = (struct rdma_msg){ .type = RDMA_MSG_REGISTER };
	m.u.reg.block = 1;
	m.u.reg.first = 40;
	m.u.reg.count = RDMA_REG_MAX;
	n = encode(&m);
	assert_int_equal(decode((size_t)n, &d, &e), 0);
	assert_int_equal(d.u.reg.first, 40);
	assert_int_equal(d.u.reg.count, RDMA_REG_MAX);
	m.type = RDMA_MSG_UNREGISTER;
	n = encode(&m);
	assert_int_equal(decode((size_t)n, &d, &e), 0);
	assert_int_equal(d.type, RDMA_MSG_UNREGISTER);

	m = (struct rdma_msg){ .type = RDMA_MSG_REGISTER_RESULT };
	m.u.reg_result.block = 0;
	m.u.reg_result.first = 7;
	m.u.reg_result.count = 2;
	m.u.reg_result.keys[0] = (struct rdma_chunk_key){ 0x1000, 5 };
	m.u.reg_result.keys[1] = (struct rdma_chunk_key){ 0x2000, 6 };
	n = encode(&m);
	assert_int_equal(decode((size_t)n, &d, &e), 0);
	assert_int_equal(d.u.reg_result.status, 0);
	assert_int_equal(d.u.reg_result.keys[1].addr, 0x2000);
	assert_int_equal(d.u.reg_result.keys[1].key, 6);
	m.u.reg_result.status = ERANGE; /* a refusal carries no keys */
	n = encode(&m);
	assert_int_equal(n, RDMA_HDR_SIZE + 16);
	assert_int_equal(decode((size_t)n, &d, &e), 0);
	assert_int_equal(d.u.reg_result.status, ERANGE);

	m = (struct rdma_msg){ .type = RDMA_MSG_ZERO };
	m.u.zero.block = 0;
	m.u.zero.offset = 1ull << 20;
	m.u.zero.length = 1ull << 20;
	n = encode(&m);
	assert_int_equal(decode((size_t)n, &d, &e), 0);
	assert_int_equal(d.u.zero.offset, 1ull << 20);
	assert_int_equal(d.u.zero.length, 1ull << 20);

	m = (struct rdma_msg){ .type = RDMA_MSG_CREDIT, .credits = 16 };
	n = encode(&m);
	assert_int_equal(n, RDMA_HDR_SIZE);
	assert_int_equal(decode((size_t)n, &d, &e), 0);
	assert_int_equal(d.credits, 16);
	m.type = RDMA_MSG_BLOCKS_REQ;
	n = encode(&m);
	assert_int_equal(decode((size_t)n, &d, &e), 0);
}

static void test_encoder_refuses(void **state)
{
	struct rdma_block_desc b = { .name = "", .length = 1 };
	struct rdma_msg m;

	(void)state;
	m = (struct rdma_msg){ .type = RDMA_MSG_REGISTER };
	m.u.reg.count = 0;
	assert_int_equal(rdma_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	m.u.reg.count = RDMA_REG_MAX + 1;
	assert_int_equal(rdma_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	m = (struct rdma_msg){ .type = RDMA_MSG_BLOCKS };
	m.u.blocks.n = 1;
	m.u.blocks.blocks = &b; /* an empty name */
	assert_int_equal(rdma_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	m.u.blocks.status = ENOMEM; /* blocks and a failure at once */
	strcpy(b.name, "ram");
	assert_int_equal(rdma_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	m = (struct rdma_msg){ .type = RDMA_MSG_STREAM };
	assert_int_equal(rdma_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	m = (struct rdma_msg){ .type = (enum rdma_msg_type)42 };
	assert_int_equal(rdma_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	m = (struct rdma_msg){ .type = RDMA_MSG_CREDIT };
	assert_int_equal(rdma_msg_encode(&m, buf, 4), -EINVAL);
}

static void test_malformed(void **state)
{
	struct rdma_msg m = { .type = RDMA_MSG_REGISTER };
	int n;

	(void)state;
	refused(3, "shorter than its");
	m.u.reg.count = 1;
	n = encode(&m);
	buf[0] = 2;
	refused((size_t)n, "version 2");
	buf[0] = RDMA_PROTO_VERSION;
	buf[1] = 0;
	refused((size_t)n, "unknown control message type 0");
	buf[1] = RDMA_MSG_TYPE_MAX + 1;
	refused((size_t)n, "unknown control message type");
	buf[1] = RDMA_MSG_REGISTER;
	refused((size_t)n - 1, "but 11 arrived");
	/* a payload short of its fields: the length agrees, the fields not */
	buf[4] = 8;
	refused((size_t)n - 4, "count");
	buf[4] = 12;
	buf[16] = 0; /* count 0 */
	refused((size_t)n, "chunk count out of range");
	buf[16] = RDMA_REG_MAX + 1;
	refused((size_t)n, "chunk count out of range");
	buf[16] = 2; /* first + count past 2^32 */
	memset(buf + 12, 0xff, 4);
	refused((size_t)n, "overflows");
	/* bytes after the payload */
	m = (struct rdma_msg){ .type = RDMA_MSG_CREDIT };
	n = encode(&m);
	buf[4] = 1;
	refused((size_t)n + 1, "bytes after the payload");
	m = (struct rdma_msg){ .type = RDMA_MSG_READY };
	m.u.ready.max_size = RDMA_MSG_MAX;
	n = encode(&m); /* window 0 */
	refused((size_t)n, "a window of 0");
	m = (struct rdma_msg){ .type = RDMA_MSG_ZERO };
	m.u.zero.offset = UINT64_MAX - 10;
	m.u.zero.length = 4096;
	n = encode(&m);
	refused((size_t)n, "overflows");
	m = (struct rdma_msg){ .type = RDMA_MSG_REGISTER_RESULT };
	m.u.reg_result.count = 1;
	n = encode(&m);
	buf[4] = 16; /* no keys: as a refusal is */
	buf[20] = 0;
	buf[21] = 0x10; /* status 4096 */
	refused((size_t)n - 16, "status is not an errno");
	m = (struct rdma_msg){ .type = RDMA_MSG_STREAM };
	m.u.stream.data = (const uint8_t *)"x";
	m.u.stream.len = 1;
	n = encode(&m);
	buf[4] = 0;
	refused((size_t)n - 1, "no bytes");
}

static void test_malformed_blocks(void **state)
{
	struct rdma_block_desc b = { .name = "ram", .length = 8192 };
	struct rdma_msg m = { .type = RDMA_MSG_BLOCKS };
	int n;

	(void)state;
	m.u.blocks.n = 1;
	m.u.blocks.blocks = &b;
	n = encode(&m);
	/* header 8, count 4, flags 4, status 4, name length 2 at 20, name
	 * at 22, address at 25, length at 33, key at 41 */
	buf[20] = 0;
	refused((size_t)n, "name length out of range");
	buf[20] = 200; /* runs past the message */
	refused((size_t)n, "name");
	buf[20] = 3;
	buf[23] = '\0';
	refused((size_t)n, "NUL in a name");
	buf[23] = 'm';
	buf[12] = 2; /* flags: unknown bit */
	refused((size_t)n, "unknown flags");
	buf[12] = 0;
	buf[8] = 0; /* count 0 with status 0 */
	refused((size_t)n, "exactly when the status is 0");
	buf[8] = 1;
	memset(buf + 33, 0, 8); /* length 0 */
	refused((size_t)n, "a block of 0 bytes");
	memset(buf + 25, 0xff, 8); /* address wraps */
	buf[33] = 1;
	refused((size_t)n, "wraps");
	n = encode(&m);
	buf[8] = 2; /* says two, carries one */
	refused((size_t)n, "name length");
	buf[8] = 0xff;
	buf[9] = 0xff;
	refused((size_t)n, "block count out of range");
}

static void test_connect_data(void **state)
{
	struct rdma_connect_data d = { RDMA_CONNECT_MAGIC, RDMA_PROTO_VERSION,
				       RDMA_CAP_PIN_ALL, RDMA_CHUNK_SHIFT };
	struct rdma_connect_data out;
	struct ferry_error e = { 0 };
	uint8_t b[RDMA_CONNECT_SIZE];

	(void)state;
	rdma_connect_encode(&d, b);
	assert_int_equal(rdma_connect_decode(b, sizeof(b), &out, &e), 0);
	assert_int_equal(out.caps, RDMA_CAP_PIN_ALL);
	assert_int_equal(rdma_connect_decode(b, 8, &out, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "not ferry"));
	b[4] = 9;
	ferry_error_clear(&e);
	assert_int_equal(rdma_connect_decode(b, sizeof(b), &out, &e),
			 -EPROTONOSUPPORT);
	assert_non_null(strstr(e.msg, "version 9"));
	b[4] = RDMA_PROTO_VERSION;
	b[12] = 21;
	ferry_error_clear(&e);
	assert_int_equal(rdma_connect_decode(b, sizeof(b), &out, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "chunks of 2^21"));
	b[0] ^= 1;
	ferry_error_clear(&e);
	assert_int_equal(rdma_connect_decode(b, sizeof(b), &out, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "magic"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_encoder_refuses),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_malformed_blocks),
		cmocka_unit_test(test_connect_data),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
