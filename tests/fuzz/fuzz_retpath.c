/*
 * fuzz_retpath.c - libFuzzer target for the return path's messages
 * (src/stream/retpath_codec.c).
 *
 * The input is one message, header and body.  Besides memory errors, the
 * target aborts when the decoder breaks a promise of retpath_codec.h: a
 * failure that is not -EPROTO or has no reason, a body length beyond its
 * type's limits, a field out of its range, or a message it accepted that
 * does not encode back to exactly the same bytes (the format has one
 * spelling for each message).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retpath_codec.h"

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_retpath: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t again[RP_MSG_MAX];
	struct rp_msg m = { 0 };
	char why[256] = "";
	uint32_t len;
	uint8_t type;
	int rc;

	if (size < RP_HDR_LEN || size > RP_MSG_MAX)
		return 0;
	rc = rp_decode_header(data, &type, &len, why, sizeof(why));
	if (rc) {
		check(rc == -EPROTO && why[0], "header: a failure without "
					       "its reason");
		return 0;
	}
	check(len <= RP_BODY_MAX, "a body over the largest");
	if (RP_HDR_LEN + len != size)
		return 0; /* the reader reads exactly len */
	rc = rp_decode_body(type, data + RP_HDR_LEN, len, &m, why, sizeof(why));
	if (rc) {
		check(rc == -EPROTO && why[0], "body: a failure without "
					       "its reason");
		return 0;
	}
	check(m.type == type, "the type changed");
	switch (type) {
	case RP_RESULT:
		check(m.u.result.status <= RP_STATUS_MAX &&
			      m.u.result.len <= RP_RESULT_MSG_MAX,
		      "result out of range");
		break;
	case RP_RESEND:
		check(m.u.resend.n >= 1 && m.u.resend.n <= RP_RESEND_MAX,
		      "resend count out of range");
		break;
	case RP_SYNC_ACK:
		check(m.u.sync_ack.channel <= RP_CHANNEL_MAX,
		      "sync-ack channel out of range");
		break;
	case RP_HELD:
		check(m.u.held.nbytes >= 1 &&
			      m.u.held.nbytes <= RP_HELD_MAX - 16,
		      "held bitmap out of range");
		break;
	default:
		break;
	}
	check(rp_encode(&m, again) == size && !memcmp(again, data, size),
	      "a decoded message encodes to other bytes");
	return 0;
}
