/*
 * fuzz_rdma.c - libFuzzer target for the RDMA control-message decoder and
 * the connection data.
 *
 * The input is one control message.  Besides memory errors, the target
 * aborts when the decoder breaks a promise of rdma_proto.h: a failure that
 * is not -EPROTO or has no message, a count beyond its limit, or a message
 * it accepted that does not encode back to exactly the same bytes (the
 * format has one spelling for each message).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdma_proto.h"

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_rdma: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rdma_block_desc room[RDMA_BLOCKS_MAX];
	static uint8_t again[RDMA_MSG_MAX];
	struct rdma_connect_data cd;
	struct ferry_error err = { 0 };
	struct rdma_msg m = { 0 };
	int rc, n;

	if (size > RDMA_MSG_MAX)
		return 0;
	ferry_error_clear(&err);
	if (rdma_connect_decode(data, size, &cd, &err))
		check(err.code && err.msg[0],
		      "connect: failure without reason");
	ferry_error_clear(&err);
	m.u.blocks.blocks = room;
	rc = rdma_msg_decode(data, size, &m, &err);
	if (rc) {
		check(rc == -EPROTO, "an errno other than -EPROTO");
		check(err.code == rc && err.msg[0],
		      "a failure without its message");
		return 0;
	}
	switch (m.type) {
	case RDMA_MSG_BLOCKS:
		check(m.u.blocks.n <= RDMA_BLOCKS_MAX, "too many blocks");
		break;
	case RDMA_MSG_REGISTER:
	case RDMA_MSG_UNREGISTER:
		check(m.u.reg.count && m.u.reg.count <= RDMA_REG_MAX,
		      "register count out of range");
		break;
	case RDMA_MSG_REGISTER_RESULT:
		check(m.u.reg_result.count <= RDMA_REG_MAX,
		      "result count out of range");
		break;
	case RDMA_MSG_STREAM:
	case RDMA_MSG_URGENT:
		check(m.u.stream.data >= data &&
			      m.u.stream.data + m.u.stream.len == data + size,
		      "stream bytes outside the message");
		break;
	default:
		break;
	}
	n = rdma_msg_encode(&m, again, sizeof(again));
	check(n >= 0, "a decoded message does not encode");
	check((size_t)n == size && !memcmp(again, data, size),
	      "a decoded message encodes to other bytes");
	return 0;
}
