/*
 * rdma_peer.c - a misbehaving RDMA source for tests/e2e/test_rdma.py: it
 * connects to a destination listening on rdma: with libfabric, as ferry's
 * source would, and then breaks the protocol (docs/rdma.md) in one way.
 *
 *   rdma-peer bad-pdata HOST PORT [magic|version|chunk|short]
 *	a connect request whose private data does not decode; the
 *	destination must refuse it (exit 0 when it did)
 *   rdma-peer bad-register HOST PORT
 *	connect, ready, blocks request; a register for the chunk past the
 *	first block's end (must be answered ERANGE), then one whose chunk
 *	index overflows; wait for the destination to close
 *   rdma-peer bad-zero HOST PORT
 *	connect, ready, blocks request; a zero message for the page past
 *	the first block's end; wait for the destination to close
 *
 * The control messages are ferry's own (rdma_proto.h).  Every wait is
 * bounded (PEER_WAIT_MS) and says what it waited for when it gives up.
 * Exit status 0: the destination did what the mode expects of it; 1: it
 * did not, or something failed here (a line on stderr says which).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

#include "rdma_proto.h"

#define WINDOW	     32 /* receives posted, as ferry's source does */
#define PEER_WAIT_MS 120000
#define FI_API	     FI_VERSION(1, 10)

struct peer {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_eq *eq;
	struct fid_ep *ep;
	struct fid_cq *txcq, *rxcq;
	struct fid_mr *mr;
	void *desc;
	uint8_t *buf; /* WINDOW receive buffers, then one to send from */
	struct fi_context2 rxctx[WINDOW], txctx;
	uint32_t credits;   /* messages we may still send */
	uint16_t to_return; /* receives reposted, not yet announced */
	bool closed;	    /* the destination shut the connection */
	struct rdma_block_desc blocks[RDMA_BLOCKS_MAX];
	uint32_t nblocks;
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("rdma-peer: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = ms * 1000000 };

	nanosleep(&ts, NULL);
}

static const char *fierr(ssize_t rc)
{
	return fi_strerror((int)(rc < 0 ? -rc : rc));
}

/* The same endpoint ferry's source asks libfabric for. */
static int open_peer(struct peer *p, const char *host, const char *port)
{
	struct fi_eq_attr ea = { .size = 16, .wait_obj = FI_WAIT_UNSPEC };
	struct fi_cq_attr ca = { .size = WINDOW + 1,
				 .format = FI_CQ_FORMAT_MSG,
				 .wait_obj = FI_WAIT_NONE };
	struct fi_info *hints = fi_allocinfo();
	size_t bytes = (size_t)(WINDOW + 1) * RDMA_MSG_MAX;
	unsigned i;
	int rc;

	if (!hints)
		return fail("out of memory");
	hints->ep_attr->type = FI_EP_MSG;
	hints->caps = FI_MSG | FI_RMA;
	hints->mode = FI_CONTEXT | FI_CONTEXT2;
	hints->addr_format = FI_FORMAT_UNSPEC;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
				      FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	hints->domain_attr->threading = FI_THREAD_SAFE;
	hints->fabric_attr->prov_name = strdup("tcp");
	rc = fi_getinfo(FI_API, host, port, 0, hints, &p->info);
	fi_freeinfo(hints);
	if (rc)
		return fail("fi_getinfo tcp %s:%s: %s", host, port, fierr(rc));
	rc = fi_fabric(p->info->fabric_attr, &p->fabric, NULL);
	if (!rc)
		rc = fi_eq_open(p->fabric, &ea, &p->eq, NULL);
	if (!rc)
		rc = fi_domain(p->fabric, p->info, &p->domain, NULL);
	if (!rc)
		rc = fi_endpoint(p->domain, p->info, &p->ep, NULL);
	if (!rc)
		rc = fi_cq_open(p->domain, &ca, &p->txcq, NULL);
	if (!rc)
		rc = fi_cq_open(p->domain, &ca, &p->rxcq, NULL);
	if (!rc)
		rc = fi_ep_bind(p->ep, &p->eq->fid, 0);
	if (!rc)
		rc = fi_ep_bind(p->ep, &p->txcq->fid, FI_TRANSMIT);
	if (!rc)
		rc = fi_ep_bind(p->ep, &p->rxcq->fid, FI_RECV);
	if (!rc)
		rc = fi_enable(p->ep);
	if (rc)
		return fail("opening an endpoint: %s", fierr(rc));
	p->buf = calloc(WINDOW + 1, RDMA_MSG_MAX);
	if (!p->buf)
		return fail("out of memory");
	if (p->info->domain_attr->mr_mode & FI_MR_LOCAL) {
		rc = fi_mr_reg(p->domain, p->buf, bytes, FI_SEND | FI_RECV, 0,
			       1, 0, &p->mr, NULL);
		if (rc)
			return fail("registering buffers: %s", fierr(rc));
		p->desc = fi_mr_desc(p->mr);
	}
	for (i = 0; i < WINDOW; i++) {
		rc = (int)fi_recv(p->ep, p->buf + (size_t)i * RDMA_MSG_MAX,
				  RDMA_MSG_MAX, p->desc, 0, &p->rxctx[i]);
		if (rc)
			return fail("posting a receive: %s", fierr(rc));
	}
	return 0;
}

static void close_peer(struct peer *p)
{
	if (p->ep)
		fi_close(&p->ep->fid);
	if (p->mr)
		fi_close(&p->mr->fid);
	if (p->txcq)
		fi_close(&p->txcq->fid);
	if (p->rxcq)
		fi_close(&p->rxcq->fid);
	if (p->eq)
		fi_close(&p->eq->fid);
	if (p->domain)
		fi_close(&p->domain->fid);
	if (p->fabric)
		fi_close(&p->fabric->fid);
	if (p->info)
		fi_freeinfo(p->info);
	free(p->buf);
}

/* The connect request with `pdata`; 0 once connected, -ECONNREFUSED when
 * the destination refused it, another negative errno otherwise. */
static int connect_with(struct peer *p, const uint8_t *pdata, size_t len)
{
	uint8_t ev[sizeof(struct fi_eq_cm_entry) + 256];
	uint64_t deadline = now_ms() + PEER_WAIT_MS;
	uint32_t event;
	ssize_t n;
	int rc;

	rc = fi_connect(p->ep, p->info->dest_addr, pdata, len);
	if (rc) {
		fail("fi_connect: %s", fierr(rc));
		return -EIO;
	}
	while (now_ms() < deadline) {
		n = fi_eq_sread(p->eq, &event, ev, sizeof(ev), 100, 0);
		if (n == -FI_EAGAIN || n == -FI_ETIMEDOUT)
			continue;
		if (n == -FI_EAVAIL) {
			struct fi_eq_err_entry e = { 0 };

			fi_eq_readerr(p->eq, &e, 0);
			printf("rdma-peer: connect refused: %s\n",
			       fi_strerror(e.err));
			return e.err == FI_ECONNREFUSED ? -ECONNREFUSED : -EIO;
		}
		if (n < 0) {
			fail("waiting to connect: %s", fierr(n));
			return -EIO;
		}
		if (event == FI_CONNECTED)
			return 0;
	}
	fail("no answer to the connect request in %d s", PEER_WAIT_MS / 1000);
	return -ETIMEDOUT;
}

/* Whether the destination shut the connection (or it failed). */
static void check_eq(struct peer *p)
{
	uint8_t ev[sizeof(struct fi_eq_cm_entry) + 64];
	uint32_t event;
	ssize_t n = fi_eq_read(p->eq, &event, ev, sizeof(ev), 0);

	if (n == -FI_EAVAIL) {
		struct fi_eq_err_entry e = { 0 };

		fi_eq_readerr(p->eq, &e, 0);
		p->closed = true;
	} else if (n >= 0 && event == FI_SHUTDOWN) {
		p->closed = true;
	}
}

static int send_msg(struct peer *p, struct rdma_msg *m)
{
	uint8_t *tx = p->buf + (size_t)WINDOW * RDMA_MSG_MAX;
	uint64_t deadline = now_ms() + PEER_WAIT_MS;
	struct fi_cq_msg_entry e;
	ssize_t n;
	int len;

	if (m->type != RDMA_MSG_READY && p->credits < 2)
		return fail("no credits left to send a %s message",
			    rdma_msg_name(m->type));
	m->credits = p->to_return;
	len = rdma_msg_encode(m, tx, RDMA_MSG_MAX);
	if (len < 0)
		return fail("encoding a %s message", rdma_msg_name(m->type));
	while ((n = fi_send(p->ep, tx, (size_t)len, p->desc, 0, &p->txctx)) ==
	       -FI_EAGAIN)
		fi_cq_read(p->txcq, &e, 1);
	if (n)
		return fail("sending a %s message: %s", rdma_msg_name(m->type),
			    fierr(n));
	p->to_return = 0;
	if (m->type != RDMA_MSG_READY)
		p->credits--;
	/* one buffer to send from: wait until it is free again */
	while ((n = fi_cq_read(p->txcq, &e, 1)) == -FI_EAGAIN) {
		if (now_ms() > deadline)
			return fail("a %s message did not complete in %d s",
				    rdma_msg_name(m->type),
				    PEER_WAIT_MS / 1000);
		fi_cq_read(p->rxcq, NULL, 0); /* progress */
		pause_ms(1);
	}
	if (n < 0)
		return fail("sending a %s message failed: %s",
			    rdma_msg_name(m->type), fierr(n));
	return 0;
}

/* The next message from the destination other than credit and stream
 * (those are taken in passing), decoded into *m; its receive is posted
 * again.  1 when the destination closed instead, -1 on a failure. */
static int recv_msg(struct peer *p, struct rdma_msg *m)
{
	uint64_t deadline = now_ms() + PEER_WAIT_MS;
	struct ferry_error err = { 0 };
	struct fi_cq_msg_entry e;
	ssize_t n;

	for (;;) {
		struct fi_context2 *ctx;
		const uint8_t *b;
		unsigned i;

		n = fi_cq_read(p->rxcq, &e, 1);
		if (n == -FI_EAGAIN) {
			check_eq(p);
			if (p->closed)
				return 1;
			if (now_ms() > deadline)
				return -fail("no message from the destination "
					     "in %d s",
					     PEER_WAIT_MS / 1000);
			pause_ms(1);
			continue;
		}
		if (n < 0) { /* a receive flushed by the close */
			struct fi_cq_err_entry ee = { 0 };

			fi_cq_readerr(p->rxcq, &ee, 0);
			check_eq(p);
			if (p->closed)
				return 1;
			return -fail("receiving: %s", fi_strerror(ee.err));
		}
		ctx = e.op_context;
		i = (unsigned)(ctx - p->rxctx);
		b = p->buf + (size_t)i * RDMA_MSG_MAX;
		memset(m, 0, sizeof(*m));
		m->u.blocks.blocks = p->blocks;
		ferry_error_clear(&err);
		if (rdma_msg_decode(b, e.len, m, &err))
			return -fail(
				"the destination sent a malformed message: "
				"%s",
				ferry_error_msg(&err));
		p->credits += m->credits;
		if (m->type == RDMA_MSG_READY)
			p->credits += m->u.ready.window - 1;
		if (m->type == RDMA_MSG_STREAM) /* the verdict, say */
			printf("rdma-peer: %u stream bytes from the "
			       "destination\n",
			       m->u.stream.len);
		/* what *m points into is copied out (blocks) or not kept */
		if (fi_recv(p->ep, p->buf + (size_t)i * RDMA_MSG_MAX,
			    RDMA_MSG_MAX, p->desc, 0, &p->rxctx[i]))
			return -fail("reposting a receive");
		p->to_return++;
		if (m->type != RDMA_MSG_CREDIT && m->type != RDMA_MSG_STREAM)
			return 0;
	}
}

static int expect(struct peer *p, enum rdma_msg_type t, struct rdma_msg *m)
{
	int rc = recv_msg(p, m);

	if (rc > 0)
		return fail("the destination closed while a %s message was "
			    "due",
			    rdma_msg_name(t));
	if (rc)
		return 1;
	if (m->type != t)
		return fail("the destination sent a %s message, not %s",
			    rdma_msg_name(m->type), rdma_msg_name(t));
	return 0;
}

/* What a source does first: connect, ready both ways, the blocks. */
static int handshake(struct peer *p)
{
	struct rdma_connect_data cd = { .magic = RDMA_CONNECT_MAGIC,
					.version = RDMA_PROTO_VERSION,
					.chunk_shift = RDMA_CHUNK_SHIFT };
	uint8_t pdata[RDMA_CONNECT_SIZE];
	struct rdma_msg m = { .type = RDMA_MSG_READY };
	int rc;

	rdma_connect_encode(&cd, pdata);
	rc = connect_with(p, pdata, sizeof(pdata));
	if (rc)
		return fail("the destination did not accept a valid connect "
			    "request (%s)",
			    strerror(-rc));
	m.u.ready.window = WINDOW;
	m.u.ready.max_size = RDMA_MSG_MAX;
	if (send_msg(p, &m) || expect(p, RDMA_MSG_READY, &m))
		return 1;
	m = (struct rdma_msg){ .type = RDMA_MSG_BLOCKS_REQ };
	if (send_msg(p, &m) || expect(p, RDMA_MSG_BLOCKS, &m))
		return 1;
	if (m.u.blocks.status || !m.u.blocks.n)
		return fail("the blocks message has status %d, %u blocks",
			    m.u.blocks.status, m.u.blocks.n);
	p->nblocks = m.u.blocks.n;
	printf("rdma-peer: connected; block 0 is '%s', %" PRIu64 " bytes\n",
	       p->blocks[0].name, p->blocks[0].length);
	return 0;
}

/* After the bad message: the destination must end the connection. */
static int wait_closed(struct peer *p)
{
	struct rdma_msg m;
	int rc;

	while (!(rc = recv_msg(p, &m)))
		printf("rdma-peer: a %s message after the bad one\n",
		       rdma_msg_name(m.type));
	if (rc < 0)
		return 1;
	printf("rdma-peer: the destination closed the connection\n");
	return 0;
}

static int bad_pdata(struct peer *p, const char *kind)
{
	struct rdma_connect_data cd = { .magic = RDMA_CONNECT_MAGIC,
					.version = RDMA_PROTO_VERSION,
					.chunk_shift = RDMA_CHUNK_SHIFT };
	uint8_t pdata[RDMA_CONNECT_SIZE];
	size_t len = sizeof(pdata);
	int rc;

	if (!strcmp(kind, "magic"))
		cd.magic = 0x12345678;
	else if (!strcmp(kind, "version"))
		cd.version = RDMA_PROTO_VERSION + 8;
	else if (!strcmp(kind, "chunk"))
		cd.chunk_shift = RDMA_CHUNK_SHIFT + 1;
	else if (!strcmp(kind, "short"))
		len = 4;
	else
		return fail("bad-pdata: no kind '%s' (magic, version, chunk, "
			    "short)",
			    kind);
	rdma_connect_encode(&cd, pdata);
	rc = connect_with(p, pdata, len);
	if (!rc)
		return fail("the destination accepted private data with a bad "
			    "%s",
			    kind);
	return rc == -ECONNREFUSED ? 0 : 1;
}

static int bad_register(struct peer *p)
{
	struct rdma_msg m = { .type = RDMA_MSG_REGISTER };
	uint32_t past =
		(uint32_t)((p->blocks[0].length + RDMA_CHUNK_SIZE - 1) >>
			   RDMA_CHUNK_SHIFT);

	/* a chunk past RAM is not malformed: the answer is ERANGE */
	m.u.reg.block = 0;
	m.u.reg.first = past;
	m.u.reg.count = 1;
	if (send_msg(p, &m) || expect(p, RDMA_MSG_REGISTER_RESULT, &m))
		return 1;
	if (m.u.reg_result.status != ERANGE)
		return fail("a register for chunk %u of %u got status %d, not "
			    "ERANGE",
			    past, past, m.u.reg_result.status);
	printf("rdma-peer: chunk %u past RAM: ERANGE\n", past);
	/* a chunk index that overflows is malformed: the encoder lets it
	 * by, the destination's decoder must not */
	m = (struct rdma_msg){ .type = RDMA_MSG_REGISTER };
	m.u.reg.first = UINT32_MAX;
	m.u.reg.count = 2;
	if (send_msg(p, &m))
		return 1;
	printf("rdma-peer: sent a register whose chunk index overflows\n");
	return wait_closed(p);
}

static int bad_zero(struct peer *p)
{
	struct rdma_msg m = { .type = RDMA_MSG_ZERO };

	m.u.zero.block = 0;
	m.u.zero.offset = p->blocks[0].length;
	m.u.zero.length = 4096;
	if (send_msg(p, &m))
		return 1;
	printf("rdma-peer: sent a zero message past RAM\n");
	return wait_closed(p);
}

int main(int argc, char **argv)
{
	struct peer p = { 0 };
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 4 || argc > 5 ||
	    (argc == 5 && strcmp(argv[1], "bad-pdata"))) {
		fprintf(stderr, "usage: rdma-peer bad-pdata HOST PORT "
				"[magic|version|chunk|short]\n"
				"       rdma-peer bad-register|bad-zero HOST "
				"PORT\n");
		return 2;
	}
	rc = open_peer(&p, argv[2], argv[3]);
	if (rc)
		;
	else if (!strcmp(argv[1], "bad-pdata"))
		rc = bad_pdata(&p, argc == 5 ? argv[4] : "magic");
	else if (!strcmp(argv[1], "bad-register"))
		rc = handshake(&p) || bad_register(&p);
	else if (!strcmp(argv[1], "bad-zero"))
		rc = handshake(&p) || bad_zero(&p);
	else
		rc = fail("no mode '%s'", argv[1]);
	close_peer(&p);
	return rc;
}
