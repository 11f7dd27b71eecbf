/*
 * rdma.c - the RDMA transport on libfabric: connection, control channel
 * with credits, the stream pump, chunk registration and page writes.
 * docs/rdma.md describes the protocol; rdma.h the model.
 *
 * Threads.  The pump thread owns the receive side: it reads the receive
 * queue, hands stream bytes to the engine's socket, answers register and
 * blocks requests and hands zero messages to the engine (destination),
 * stores answers and wakes whoever waits for them (source).  Any thread
 * may post a send or a write; `lock` covers the endpoint's transmit side,
 * the credits, the key tables and the statistics.  The endpoint is
 * FI_THREAD_SAFE anyway; the lock keeps our own counters whole.
 *
 * Credits.  Each side posts WINDOW receives before it connects and says so
 * in its ready message (which needs no credit: receives are there before
 * any message can arrive).  Every message's header returns the receives
 * reposted since the last one; a side with half its window to return and
 * nothing to say sends a credit message.  A message that carries data needs
 * two credits, so the last one is always there for a credit message, and
 * neither side can end up waiting for the other.
 *
 * Completions.  Writes ask for a completion only when the next write goes
 * to another chunk, every WRITE_STREAK writes, and at a flush; one
 * completion retires the writes before it (FI_SELECTIVE_COMPLETION).
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "rdma.h"
#include "rdma_proto.h"
#include "transport.h"

#define WINDOW		   32 /* receives posted on each side */
#define TX_BUFS		   32 /* control messages in flight */
#define WRITE_STREAK	   32 /* writes per completion, at most */
#define CONNECT_TIMEOUT_MS 10000
#define ANSWER_TIMEOUT_MS  30000 /* for a register or blocks answer */
#define DRAIN_TIMEOUT_MS   5000	 /* closing: for sends to complete */
#define FI_API		   FI_VERSION(1, 10)

/* What this transport finds is its own diagnosis (ferry/error.h). */
#define rdma_error(err, code, ...) \
	ferry_error_set_from(err, FERRY_ERROR_TRANSPORT, code, __VA_ARGS__)

enum op_kind { OP_RECV = 1, OP_SEND, OP_WRITE };
enum key_state { KEY_NONE, KEY_ASKED, KEY_HAVE };

struct op {
	struct fi_context2 ctx; /* first: the provider's, and our key */
	enum op_kind kind;
	unsigned idx;	 /* buffer index (recv, send) */
	unsigned retire; /* write: writes this completion accounts for */
};

struct rblock {
	struct rdma_ram ram;
	uint32_t nchunks;
	/* source */
	unsigned peer;		/* the destination's index of this block */
	uint64_t *raddr, *rkey; /* per chunk, valid where KEY_HAVE */
	uint8_t *have;		/* per chunk: KEY_NONE, KEY_ASKED, KEY_HAVE */
	struct fid_mr **lmr;	/* FI_MR_LOCAL: our chunks, registered */
	struct fid_mr *lpin;	/* FI_MR_LOCAL with pin-all: the whole block */
	/* destination */
	struct fid_mr **mr; /* per chunk, exposed */
	struct fid_mr *pin; /* pin-all: the whole block */
};

/* A write not yet posted, so that the next one can decide whether it asks
 * for a completion (when the next goes to another chunk). */
struct held {
	bool on;
	const void *src;
	void *desc;
	uint64_t raddr, rkey, len;
	unsigned block;
	uint32_t chunk;
};

struct rx_slot { /* a receive that completed, waiting to be handled */
	unsigned idx;
	size_t len;
	size_t done;  /* stream bytes already given to the engine */
	bool handled; /* an urgent message delivered ahead of its turn */
};

struct rdma_conn {
	bool dest;
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_eq *eq;
	struct fid_ep *ep;
	struct fid_cq *txcq, *rxcq;
	int eq_fd, txcq_fd, rxcq_fd;
	uint32_t caps;
	bool mr_local, mr_virt, prov_key;
	uint64_t max_msg;
	unsigned tx_depth;
	uint64_t next_key;

	uint8_t *rxb, *txb; /* WINDOW, TX_BUFS buffers of RDMA_MSG_MAX */
	struct fid_mr *rxmr, *txmr;
	void *rxdesc, *txdesc;
	struct op rxop[WINDOW], txop[TX_BUFS];
	struct op *wop; /* ring of tx_depth write contexts */
	unsigned wop_next;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* lock: */
	bool peer_ready;
	uint32_t credits;   /* messages we may still send */
	uint32_t to_return; /* receives reposted, not yet announced */
	bool tx_busy[TX_BUFS];
	unsigned tx_used;
	unsigned outstanding; /* transmit operations not yet retired */
	unsigned writes_out;  /* of those, writes */
	unsigned streak;      /* writes since the last that asked */
	struct held held;
	uint8_t have_blocks;
	int32_t blocks_status;
	bool revoked;
	int fail_rc;
	char fail[256];
	atomic_int failed;
	bool local_eof;	 /* the engine closed its end of the stream */
	bool urgent_eof; /* ... and of the urgent stream */

	/* pump */
	int sock[2]; /* [0] the engine's, [1] the pump's */
	bool sock0_given;
	int usock[2]; /* the urgent stream's, the same way */
	bool usock0_given;
	pthread_t pump;
	bool pump_live;
	atomic_int quit;
	struct rx_slot fifo[WINDOW];
	unsigned fifo_head, fifo_n;

	struct rblock *b;
	unsigned nb;
	struct rdma_dest_hooks hooks; /* destination */
	uint8_t *zbuf;		      /* source: a chunk of zeros */
	struct fid_mr *zmr;
	struct rdma_stats st; /* lock */
	/* st.write_bytes + st.ctl_bytes, for pacing without the lock */
	_Atomic uint64_t wire_bytes;
};

struct rdma_listener {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_eq *eq;
	struct fid_pep *pep;
	int eq_fd;
	char provider[32];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *fierr(ssize_t rc)
{
	return fi_strerror((int)(rc < 0 ? -rc : rc));
}

/* libfabric's codes are errnos below FI_ERRNO_OFFSET; its own beyond map
 * to EIO for callers that only keep the number. */
static int to_errno(ssize_t rc)
{
	int e = (int)(rc < 0 ? -rc : rc);

	return e && e < FI_ERRNO_OFFSET ? -e : -EIO;
}

/* The first failure sticks; it wakes every waiter and the pump. */
static void fail_locked(struct rdma_conn *c, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail_locked(struct rdma_conn *c, int rc, const char *fmt, ...)
{
	va_list ap;

	if (atomic_load(&c->failed))
		return;
	va_start(ap, fmt);
	vsnprintf(c->fail, sizeof(c->fail), fmt, ap);
	va_end(ap);
	c->fail_rc = rc;
	atomic_store(&c->failed, 1);
	pthread_cond_broadcast(&c->cond);
}

static int failure(struct rdma_conn *c, struct ferry_error *err)
{
	return rdma_error(err, c->fail_rc ? c->fail_rc : -EIO, "rdma: %s",
			  c->fail);
}

/* ---- addresses ----------------------------------------------------------- */

/* "HOST:PORT" or "[V6]:PORT" into host and port strings. */
static int split_addr(const char *addr, char *host, size_t hl, char *port,
		      size_t pl, struct ferry_error *err)
{
	enum hostport_fault f =
		transport_split_hostport(addr, host, hl, port, pl);

	if (f == HOSTPORT_FORM)
		return rdma_error(err, -EINVAL,
				  "rdma address '%s': expected %s", addr,
				  addr[0] == '[' ? "[IPV6]:PORT" : "HOST:PORT");
	if (f == HOSTPORT_PORT)
		return rdma_error(err, -EINVAL,
				  "rdma address '%s': the port must be a "
				  "number from 0 to 65535",
				  addr);
	if (f == HOSTPORT_HOST || !host[0])
		return rdma_error(err, -EINVAL,
				  "rdma address '%s': no host, or one "
				  "too long",
				  addr);
	return 0;
}

int rdma_check_addr(const char *addr, struct ferry_error *err)
{
	char host[256], port[8];

	return split_addr(addr, host, sizeof(host), port, sizeof(port), err);
}

static struct fi_info *make_hints(const char *provider)
{
	struct fi_info *h = fi_allocinfo();

	if (!h)
		return NULL;
	h->ep_attr->type = FI_EP_MSG;
	h->caps = FI_MSG | FI_RMA;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->addr_format = FI_FORMAT_UNSPEC;
	h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
				  FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	h->domain_attr->threading = FI_THREAD_SAFE;
	/* the stream's end of iteration comes after that iteration's pages */
	h->tx_attr->msg_order = FI_ORDER_SAW;
	if (provider && *provider)
		h->fabric_attr->prov_name = strdup(provider);
	return h;
}

static int get_info(const char *host, const char *port, bool passive,
		    const char *provider, struct fi_info **info,
		    struct ferry_error *err)
{
	struct fi_info *hints = make_hints(provider);
	int rc;

	if (!hints)
		return rdma_error(err, -ENOMEM, "out of memory");
	rc = fi_getinfo(FI_API, host, port, passive ? FI_SOURCE : 0, hints,
			info);
	fi_freeinfo(hints);
	if (rc == -FI_ENODATA)
		return rdma_error(
			err, -ENODEV,
			"rdma: no libfabric provider%s%s can reach %s:%s with "
			"connected endpoints, RMA and messages (fi_info -t "
			"FI_EP_MSG lists what there is; on a machine without "
			"RDMA hardware the 'tcp' provider does it)",
			provider && *provider ? " named " : "",
			provider && *provider ? provider : "", host, port);
	if (rc)
		return rdma_error(err, to_errno(rc),
				  "rdma: looking up %s:%s: %s", host, port,
				  fierr(rc));
	return 0;
}

/* ---- memory registration ------------------------------------------------- */

static const char *memlock_hint(char *buf, size_t len)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY)
		snprintf(buf, len, "ulimit -l");
	else
		snprintf(buf, len, "ulimit -l, now %llu KiB",
			 (unsigned long long)rl.rlim_cur / 1024);
	return buf;
}

static int mr_reg(struct rdma_conn *c, void *addr, uint64_t len,
		  uint64_t access, struct fid_mr **mr)
{
	return fi_mr_reg(c->domain, addr, len, access, 0, c->next_key++, 0, mr,
			 NULL);
}

static void mr_close(struct fid_mr **mr)
{
	if (*mr)
		fi_close(&(*mr)->fid);
	*mr = NULL;
}

/* ---- control messages ---------------------------------------------------- */

static int post_recv(struct rdma_conn *c, unsigned i)
{
	ssize_t rc;

	c->rxop[i].kind = OP_RECV;
	c->rxop[i].idx = i;
	do
		rc = fi_recv(c->ep, c->rxb + (size_t)i * RDMA_MSG_MAX,
			     RDMA_MSG_MAX, c->rxdesc, 0, &c->rxop[i].ctx);
	while (rc == -FI_EAGAIN);
	return rc ? to_errno(rc) : 0;
}

/* Account for transmit completions read; lock held. */
static void tx_done(struct rdma_conn *c, const struct fi_cq_entry *e, ssize_t n)
{
	ssize_t i;

	for (i = 0; i < n; i++) {
		struct op *op = e[i].op_context;

		if (op->kind == OP_SEND) {
			c->tx_busy[op->idx] = false;
			c->tx_used--;
			c->outstanding--;
		} else {
			c->outstanding -= op->retire;
			c->writes_out -= op->retire;
			c->st.completions++;
		}
	}
	if (n > 0)
		pthread_cond_broadcast(&c->cond);
}

/* A failed transmit: what it was, and that the connection is done. */
static void tx_error(struct rdma_conn *c)
{
	struct fi_cq_err_entry ee = { 0 };
	struct op *op;

	if (fi_cq_readerr(c->txcq, &ee, 0) < 0)
		return;
	op = ee.op_context;
	fail_locked(c, -EIO, "%s to the peer failed: %s",
		    op && op->kind == OP_WRITE ? "an RDMA write"
					       : "a control message",
		    fi_cq_strerror(c->txcq, ee.prov_errno, ee.err_data, NULL,
				   0));
	if (op && op->kind == OP_SEND) {
		c->tx_busy[op->idx] = false;
		c->tx_used--;
		c->outstanding--;
	} else if (op && op->kind == OP_WRITE) {
		c->outstanding -= op->retire;
		c->writes_out -= op->retire;
	}
}

/* Read the transmit queue's completions; lock held. */
static void reap_tx(struct rdma_conn *c)
{
	struct fi_cq_entry e[16];
	ssize_t n;

	for (;;) {
		n = fi_cq_read(c->txcq, e, 16);
		if (n == -FI_EAGAIN)
			return;
		if (n == -FI_EAVAIL) {
			tx_error(c);
			continue;
		}
		if (n < 0) {
			fail_locked(c, to_errno(n), "reading completions: %s",
				    fierr(n));
			return;
		}
		tx_done(c, e, n);
	}
}

/* Wait a little for transmit completions; lock held, dropped meanwhile.
 * A blocking read lets providers that progress in the caller's thread
 * (the tcp provider does) move the data meanwhile. */
static void wait_tx(struct rdma_conn *c)
{
	struct fi_cq_entry e[16];
	ssize_t n;

	pthread_mutex_unlock(&c->lock);
	if (c->txcq_fd >= 0)
		n = fi_cq_sread(c->txcq, e, 16, NULL, 10);
	else
		n = fi_cq_read(c->txcq, e, 16);
	pthread_mutex_lock(&c->lock);
	if (n > 0)
		tx_done(c, e, n);
	else if (n == -FI_EAVAIL)
		tx_error(c);
	reap_tx(c);
}

static bool can_send(struct rdma_conn *c, bool credit_only)
{
	return c->peer_ready && c->credits >= (credit_only ? 1u : 2u) &&
	       c->tx_used < TX_BUFS && c->outstanding < c->tx_depth;
}

/* Post one message; lock held, can_send() true (ready excepted). */
static int post_msg(struct rdma_conn *c, struct rdma_msg *m)
{
	struct fi_msg msg;
	struct iovec iov;
	unsigned i;
	uint8_t *buf;
	ssize_t rc;
	int len;

	for (i = 0; c->tx_busy[i]; i++)
		;
	buf = c->txb + (size_t)i * RDMA_MSG_MAX;
	m->credits = (uint16_t)c->to_return;
	len = rdma_msg_encode(m, buf, RDMA_MSG_MAX);
	if (len < 0) {
		fail_locked(c, -EINVAL, "encoding a %s message failed",
			    rdma_msg_name(m->type));
		return -EINVAL;
	}
	iov.iov_base = buf;
	iov.iov_len = (size_t)len;
	c->txop[i].kind = OP_SEND;
	c->txop[i].idx = i;
	msg = (struct fi_msg){ .msg_iov = &iov,
			       .desc = &c->txdesc,
			       .iov_count = 1,
			       .context = &c->txop[i].ctx };
	while ((rc = fi_sendmsg(c->ep, &msg, FI_COMPLETION)) == -FI_EAGAIN)
		wait_tx(c);
	if (rc) {
		fail_locked(c, to_errno(rc), "sending a %s message: %s",
			    rdma_msg_name(m->type), fierr(rc));
		return to_errno(rc);
	}
	if (m->type != RDMA_MSG_STREAM) {
		c->st.ctl_bytes += (uint64_t)len;
		atomic_fetch_add(&c->wire_bytes, (uint64_t)len);
	}
	c->tx_busy[i] = true;
	c->tx_used++;
	c->outstanding++;
	c->to_return = 0;
	if (m->type != RDMA_MSG_READY)
		c->credits--;
	return 0;
}

/* Wait on cond for at most ms milliseconds; lock held. */
static void cond_wait_ms(struct rdma_conn *c, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += ms * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}

/* Send from a thread other than the pump: wait for a credit and a buffer
 * (the pump brings credits in).  Lock held. */
static int send_wait(struct rdma_conn *c, struct rdma_msg *m)
{
	uint64_t deadline = now_ns() + ANSWER_TIMEOUT_MS * 1000000ull;

	for (;;) {
		if (atomic_load(&c->failed))
			return c->fail_rc ? c->fail_rc : -EIO;
		reap_tx(c);
		if (can_send(c, false))
			return post_msg(c, m);
		if (now_ns() > deadline) {
			fail_locked(c, -ETIMEDOUT,
				    "the peer returned no credits for %d s",
				    ANSWER_TIMEOUT_MS / 1000);
			return -ETIMEDOUT;
		}
		if (c->tx_used == TX_BUFS || c->outstanding >= c->tx_depth)
			wait_tx(c);
		else
			cond_wait_ms(c, 10);
	}
}

/* ---- connection set-up --------------------------------------------------- */

static int open_cq(struct rdma_conn *c, size_t size, enum fi_cq_format fmt,
		   struct fid_cq **cq, int *fd)
{
	struct fi_cq_attr a = { .size = size,
				.format = fmt,
				.wait_obj = FI_WAIT_FD };
	int rc = fi_cq_open(c->domain, &a, cq, NULL);

	if (rc == -FI_ENOSYS || rc == -FI_EINVAL) { /* no wait fd: poll */
		a.wait_obj = FI_WAIT_NONE;
		rc = fi_cq_open(c->domain, &a, cq, NULL);
		*fd = -1;
		return rc;
	}
	if (!rc && fi_control(&(*cq)->fid, FI_GETWAIT, fd))
		*fd = -1;
	return rc;
}

/* Domain, endpoint, queues, control buffers and posted receives. */
static int open_endpoint(struct rdma_conn *c, struct fi_info *info,
			 struct ferry_error *err)
{
	uint64_t mrm = info->domain_attr->mr_mode;
	size_t bytes = (size_t)(WINDOW + TX_BUFS) * RDMA_MSG_MAX;
	unsigned i;
	int rc;

	c->mr_local = mrm & FI_MR_LOCAL;
	c->mr_virt = mrm & (FI_MR_VIRT_ADDR | FI_MR_BASIC);
	c->prov_key = mrm & (FI_MR_PROV_KEY | FI_MR_BASIC);
	c->max_msg = info->ep_attr->max_msg_size ? info->ep_attr->max_msg_size
						 : RDMA_CHUNK_SIZE;
	c->tx_depth = info->tx_attr->size ? (unsigned)info->tx_attr->size : 64;
	if (c->tx_depth > 4096)
		c->tx_depth = 4096;
	if (c->tx_depth < TX_BUFS + 2 * WRITE_STREAK)
		return rdma_error(err, -ENOTSUP,
				  "rdma: provider %s allows only %u "
				  "operations in flight, ferry needs %d",
				  info->fabric_attr->prov_name, c->tx_depth,
				  TX_BUFS + 2 * WRITE_STREAK);
	snprintf(c->st.provider, sizeof(c->st.provider), "%s",
		 info->fabric_attr->prov_name);
	rc = fi_domain(c->fabric, info, &c->domain, NULL);
	if (!rc)
		rc = fi_endpoint(c->domain, info, &c->ep, NULL);
	if (!rc)
		rc = open_cq(c, c->tx_depth, FI_CQ_FORMAT_CONTEXT, &c->txcq,
			     &c->txcq_fd);
	if (!rc)
		rc = open_cq(c, WINDOW, FI_CQ_FORMAT_MSG, &c->rxcq,
			     &c->rxcq_fd);
	if (!rc)
		rc = fi_ep_bind(c->ep, &c->eq->fid, 0);
	if (!rc)
		rc = fi_ep_bind(c->ep, &c->txcq->fid,
				FI_TRANSMIT | FI_SELECTIVE_COMPLETION);
	if (!rc)
		rc = fi_ep_bind(c->ep, &c->rxcq->fid, FI_RECV);
	if (!rc)
		rc = fi_enable(c->ep);
	if (rc)
		return rdma_error(err, to_errno(rc),
				  "rdma: opening an endpoint on provider "
				  "%s: %s",
				  info->fabric_attr->prov_name, fierr(rc));
	c->wop = calloc(c->tx_depth, sizeof(*c->wop));
	c->rxb = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!c->wop || c->rxb == MAP_FAILED) {
		c->rxb = NULL;
		return rdma_error(err, -ENOMEM, "out of memory");
	}
	c->txb = c->rxb + (size_t)WINDOW * RDMA_MSG_MAX;
	if (c->mr_local) {
		rc = mr_reg(c, c->rxb, (size_t)WINDOW * RDMA_MSG_MAX, FI_RECV,
			    &c->rxmr);
		if (!rc)
			rc = mr_reg(c, c->txb, (size_t)TX_BUFS * RDMA_MSG_MAX,
				    FI_SEND, &c->txmr);
		if (rc) {
			char h[64];

			return rdma_error(err, to_errno(rc),
					  "rdma: registering %zu KiB of "
					  "message buffers: %s (the "
					  "locked-memory limit: %s)",
					  bytes / 1024, fierr(rc),
					  memlock_hint(h, sizeof(h)));
		}
		c->rxdesc = fi_mr_desc(c->rxmr);
		c->txdesc = fi_mr_desc(c->txmr);
	}
	for (i = 0; i < WINDOW; i++) {
		rc = post_recv(c, i);
		if (rc)
			return rdma_error(err, rc, "rdma: posting receives: %s",
					  strerror(-rc));
	}
	return 0;
}

static int set_ram(struct rdma_conn *c, const struct rdma_ram *ram,
		   unsigned nram, struct ferry_error *err)
{
	unsigned i;

	if (nram > RDMA_BLOCKS_MAX)
		return rdma_error(err, -E2BIG,
				  "rdma: %u RAM blocks, at most %d", nram,
				  RDMA_BLOCKS_MAX);
	c->b = calloc(nram, sizeof(*c->b));
	if (!c->b)
		return rdma_error(err, -ENOMEM, "out of memory");
	c->nb = nram;
	for (i = 0; i < nram; i++) {
		struct rblock *b = &c->b[i];

		b->ram = ram[i];
		b->nchunks = (uint32_t)((ram[i].length + RDMA_CHUNK_SIZE - 1) >>
					RDMA_CHUNK_SHIFT);
		if (c->dest) {
			b->mr = calloc(b->nchunks, sizeof(*b->mr));
			if (!b->mr)
				return rdma_error(err, -ENOMEM,
						  "out of memory");
			continue;
		}
		b->raddr = calloc(b->nchunks, sizeof(uint64_t));
		b->rkey = calloc(b->nchunks, sizeof(uint64_t));
		b->have = calloc(b->nchunks, 1);
		b->lmr = calloc(b->nchunks, sizeof(*b->lmr));
		if (!b->raddr || !b->rkey || !b->have || !b->lmr)
			return rdma_error(err, -ENOMEM, "out of memory");
	}
	return 0;
}

static struct rdma_conn *conn_new(bool dest)
{
	struct rdma_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->dest = dest;
	c->eq_fd = c->txcq_fd = c->rxcq_fd = -1;
	c->sock[0] = c->sock[1] = -1;
	c->usock[0] = c->usock[1] = -1;
	c->next_key = 1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	return c;
}

static void *pump_main(void *arg);

/* The stream socket and the pump; then "ready". */
static int start(struct rdma_conn *c, struct ferry_error *err)
{
	struct rdma_msg m = { .type = RDMA_MSG_READY };
	int sz = 4 << 20, rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->sock) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->usock))
		return rdma_error(err, -errno, "socketpair: %s",
				  strerror(errno));
	setsockopt(c->sock[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(c->sock[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	m.u.ready.window = WINDOW;
	m.u.ready.max_size = RDMA_MSG_MAX;
	pthread_mutex_lock(&c->lock);
	rc = post_msg(c, &m);
	pthread_mutex_unlock(&c->lock);
	if (rc)
		return failure(c, err);
	rc = pthread_create(&c->pump, NULL, pump_main, c);
	if (rc)
		return rdma_error(err, -rc, "rdma: starting its thread: %s",
				  strerror(rc));
	c->pump_live = true;
	return 0;
}

/* Wait for one CM event on the EQ; -ETIMEDOUT, or the error it carried. */
static int eq_wait(struct fid_eq *eq, uint32_t want, uint8_t *buf, size_t len,
		   int timeout_ms, size_t *got, char *why, size_t wl)
{
	uint32_t ev;
	ssize_t n = fi_eq_sread(eq, &ev, buf, len, timeout_ms, 0);

	if (n == -FI_EAVAIL) {
		struct fi_eq_err_entry e = { 0 };

		fi_eq_readerr(eq, &e, 0);
		snprintf(why, wl, "%s", fi_strerror(e.err));
		return e.err ? -e.err : -ECONNREFUSED;
	}
	if (n == -FI_EAGAIN || n == -FI_ETIMEDOUT) {
		snprintf(why, wl, "no answer in %d s", timeout_ms / 1000);
		return -ETIMEDOUT;
	}
	if (n < 0) {
		snprintf(why, wl, "%s", fierr(n));
		return to_errno(n);
	}
	if (ev != want) {
		snprintf(why, wl, "unexpected connection event %u", ev);
		return -EPROTO;
	}
	*got = (size_t)n;
	return 0;
}

/* ---- the source ---------------------------------------------------------- */

/* Wait until *state is `want`; lock held. */
static int wait_answer(struct rdma_conn *c, const uint8_t *state, uint8_t want,
		       const char *what)
{
	uint64_t deadline = now_ns() + ANSWER_TIMEOUT_MS * 1000000ull;

	while (*state != want && !atomic_load(&c->failed)) {
		if (now_ns() > deadline) {
			fail_locked(c, -ETIMEDOUT,
				    "the destination did not answer a %s in "
				    "%d s",
				    what, ANSWER_TIMEOUT_MS / 1000);
			break;
		}
		cond_wait_ms(c, 20);
	}
	return *state == want ? 0 : (c->fail_rc ? c->fail_rc : -EIO);
}

/* Local registration of our RAM, where the provider wants it. */
static int pin_local(struct rdma_conn *c, struct ferry_error *err)
{
	unsigned i;
	int rc;

	c->zbuf = mmap(NULL, RDMA_CHUNK_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->zbuf == MAP_FAILED) {
		c->zbuf = NULL;
		return rdma_error(err, -ENOMEM, "out of memory");
	}
	memset(c->zbuf, 0, RDMA_CHUNK_SIZE);
	if (!c->mr_local)
		return 0;
	rc = mr_reg(c, c->zbuf, RDMA_CHUNK_SIZE, FI_WRITE, &c->zmr);
	for (i = 0; !rc && (c->caps & RDMA_CAP_PIN_ALL) && i < c->nb; i++)
		rc = mr_reg(c, c->b[i].ram.host, c->b[i].ram.length, FI_WRITE,
			    &c->b[i].lpin);
	if (rc) {
		char h[64];

		return rdma_error(err, to_errno(rc),
				  "rdma: registering the source's RAM "
				  "failed: %s; raise the locked-memory "
				  "limit (%s) or turn off rdma-pin-all",
				  fierr(rc), memlock_hint(h, sizeof(h)));
	}
	return 0;
}

static int source_blocks(struct rdma_conn *c, struct ferry_error *err)
{
	struct rdma_msg m = { .type = RDMA_MSG_BLOCKS_REQ };
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = send_wait(c, &m);
	if (!rc)
		rc = wait_answer(c, &c->have_blocks, 1, "blocks request");
	pthread_mutex_unlock(&c->lock);
	if (rc)
		return failure(c, err);
	if (c->blocks_status)
		return rdma_error(
			err, -c->blocks_status,
			"rdma: the destination could not pin its RAM for "
			"rdma-pin-all: %s; raise its locked-memory limit "
			"(ulimit -l there) or turn off rdma-pin-all",
			strerror(c->blocks_status));
	return 0;
}

int rdma_transport_connect(const char *addr, const char *provider, bool pin_all,
			   const struct rdma_ram *ram, unsigned nram,
			   struct rdma_conn **out, struct ferry_error *err)
{
	struct rdma_connect_data cd = { .magic = RDMA_CONNECT_MAGIC,
					.version = RDMA_PROTO_VERSION,
					.caps = pin_all ? RDMA_CAP_PIN_ALL : 0,
					.chunk_shift = RDMA_CHUNK_SHIFT };
	struct fi_eq_attr ea = { .size = 16, .wait_obj = FI_WAIT_FD };
	uint8_t pdata[RDMA_CONNECT_SIZE];
	uint8_t evbuf[sizeof(struct fi_eq_cm_entry) + 256];
	char host[256], port[8], why[128];
	struct rdma_conn *c;
	size_t got = 0;
	int rc;

	*out = NULL;
	rc = split_addr(addr, host, sizeof(host), port, sizeof(port), err);
	if (rc)
		return rc;
	c = conn_new(false);
	if (!c)
		return rdma_error(err, -ENOMEM, "out of memory");
	*out = c;
	rc = get_info(host, port, false, provider, &c->info, err);
	if (!rc)
		rc = set_ram(c, ram, nram, err);
	if (rc)
		return rc;
	rc = fi_fabric(c->info->fabric_attr, &c->fabric, NULL);
	if (!rc)
		rc = fi_eq_open(c->fabric, &ea, &c->eq, NULL);
	if (rc)
		return rdma_error(err, to_errno(rc),
				  "rdma: opening provider %s: %s",
				  c->info->fabric_attr->prov_name, fierr(rc));
	if (fi_control(&c->eq->fid, FI_GETWAIT, &c->eq_fd))
		c->eq_fd = -1;
	rc = open_endpoint(c, c->info, err);
	if (rc)
		return rc;
	rdma_connect_encode(&cd, pdata);
	rc = fi_connect(c->ep, c->info->dest_addr, pdata, sizeof(pdata));
	if (rc)
		return rdma_error(err, to_errno(rc),
				  "rdma: connecting to %s: %s", addr,
				  fierr(rc));
	rc = eq_wait(c->eq, FI_CONNECTED, evbuf, sizeof(evbuf),
		     CONNECT_TIMEOUT_MS, &got, why, sizeof(why));
	if (rc)
		return rdma_error(err, rc,
				  "rdma: connecting to %s (provider %s): "
				  "%s; is the destination listening "
				  "there with migrate-incoming rdma:...?",
				  addr, c->info->fabric_attr->prov_name, why);
	rc = rdma_connect_decode(evbuf + sizeof(struct fi_eq_cm_entry),
				 got - sizeof(struct fi_eq_cm_entry), &cd, err);
	if (rc)
		return rc;
	if ((cd.caps & RDMA_CAP_PIN_ALL) != (pin_all ? RDMA_CAP_PIN_ALL : 0))
		return rdma_error(err, -EPROTO,
				  "rdma: the destination did not agree "
				  "to pin-all as asked");
	c->caps = cd.caps;
	pthread_mutex_lock(&c->lock);
	c->st.pin_all = pin_all;
	pthread_mutex_unlock(&c->lock);
	rc = pin_local(c, err);
	if (!rc)
		rc = start(c, err);
	if (!rc)
		rc = source_blocks(c, err);
	return rc;
}

/* Ask for a chunk's key without waiting for the answer; lock held. */
static int ask_key(struct rdma_conn *c, struct rblock *b, uint32_t chunk)
{
	struct rdma_msg m = { .type = RDMA_MSG_REGISTER };
	int rc;

	if (b->have[chunk] != KEY_NONE)
		return 0;
	m.u.reg.block = b->peer;
	m.u.reg.first = chunk;
	m.u.reg.count = 1;
	rc = send_wait(c, &m);
	if (!rc) {
		b->have[chunk] = KEY_ASKED;
		c->st.register_requests++;
	}
	return rc;
}

/* The remote place of a chunk, asking the destination the first time
 * (the pump stores the answer); lock held. */
static int chunk_key(struct rdma_conn *c, struct rblock *b, uint32_t chunk,
		     struct ferry_error *err)
{
	uint64_t t0;
	int rc;

	if (b->have[chunk] == KEY_HAVE)
		return 0;
	t0 = now_ns();
	rc = ask_key(c, b, chunk);
	if (!rc)
		rc = wait_answer(c, &b->have[chunk], KEY_HAVE,
				 "register request");
	c->st.register_ns += now_ns() - t0;
	return rc ? failure(c, err) : 0;
}

int rdma_prefetch(struct rdma_conn *c, unsigned block, uint64_t off,
		  struct ferry_error *err)
{
	int rc;

	if (block >= c->nb || off >= c->b[block].ram.length)
		return rdma_error(err, -EINVAL,
				  "rdma: a key asked for outside RAM");
	pthread_mutex_lock(&c->lock);
	rc = atomic_load(&c->failed)
		     ? -EIO
		     : ask_key(c, &c->b[block],
			       (uint32_t)(off >> RDMA_CHUNK_SHIFT));
	pthread_mutex_unlock(&c->lock);
	return rc ? failure(c, err) : 0;
}

static void *local_desc(struct rdma_conn *c, struct rblock *b, uint32_t chunk,
			int *rc)
{
	*rc = 0;
	if (!c->mr_local)
		return NULL;
	if (b->lpin)
		return fi_mr_desc(b->lpin);
	if (!b->lmr[chunk]) {
		uint64_t off = (uint64_t)chunk << RDMA_CHUNK_SHIFT;
		uint64_t len = b->ram.length - off < RDMA_CHUNK_SIZE
				       ? b->ram.length - off
				       : RDMA_CHUNK_SIZE;

		*rc = mr_reg(c, b->ram.host + off, len, FI_WRITE,
			     &b->lmr[chunk]);
		if (*rc) {
			char h[64];

			fail_locked(c, to_errno(*rc),
				    "registering the source's chunk %u of %s: "
				    "%s (the locked-memory limit: %s)",
				    chunk, b->ram.name, fierr(*rc),
				    memlock_hint(h, sizeof(h)));
			return NULL;
		}
	}
	return fi_mr_desc(b->lmr[chunk]);
}

/* Post the held write; lock held. */
static int post_held(struct rdma_conn *c, bool signal)
{
	struct held *h = &c->held;
	struct fi_rma_iov riov = { h->raddr, h->len, h->rkey };
	struct iovec iov = { (void *)h->src, h->len };
	struct fi_msg_rma msg = { .msg_iov = &iov,
				  .desc = &h->desc,
				  .iov_count = 1,
				  .rma_iov = &riov,
				  .rma_iov_count = 1 };
	struct op *op = NULL;
	ssize_t rc;

	if (!h->on)
		return 0;
	if (c->streak + 1 >= WRITE_STREAK)
		signal = true;
	/* room for it and for the control messages */
	while (c->outstanding + TX_BUFS + 1 > c->tx_depth &&
	       !atomic_load(&c->failed))
		wait_tx(c);
	if (atomic_load(&c->failed))
		return c->fail_rc ? c->fail_rc : -EIO;
	if (signal) {
		op = &c->wop[c->wop_next++ % c->tx_depth];
		op->kind = OP_WRITE;
		op->retire = c->streak + 1;
		msg.context = &op->ctx;
	}
	while ((rc = fi_writemsg(c->ep, &msg, signal ? FI_COMPLETION : 0)) ==
	       -FI_EAGAIN)
		wait_tx(c);
	if (rc) {
		fail_locked(c, to_errno(rc), "posting an RDMA write: %s",
			    fierr(rc));
		return to_errno(rc);
	}
	c->outstanding++;
	c->writes_out++;
	c->streak = signal ? 0 : c->streak + 1;
	c->st.writes++;
	c->st.write_bytes += h->len;
	atomic_fetch_add(&c->wire_bytes, h->len);
	h->on = false;
	return 0;
}

static int write_from(struct rdma_conn *c, unsigned block, uint64_t off,
		      uint64_t len, const void *src, void *desc,
		      struct ferry_error *err)
{
	struct rblock *b;
	uint32_t chunk = (uint32_t)(off >> RDMA_CHUNK_SHIFT);
	uint64_t coff = off - ((uint64_t)chunk << RDMA_CHUNK_SHIFT);
	int rc;

	if (block >= c->nb || !len || off + len > c->b[block].ram.length ||
	    coff + len > RDMA_CHUNK_SIZE)
		return rdma_error(err, -EINVAL,
				  "rdma: a write outside one chunk");
	b = &c->b[block];
	pthread_mutex_lock(&c->lock);
	if (atomic_load(&c->failed)) {
		pthread_mutex_unlock(&c->lock);
		return failure(c, err);
	}
	/* no reap here: completions are read when room runs short */
	rc = chunk_key(c, b, chunk, err);
	if (!rc && !desc) {
		desc = local_desc(c, b, chunk, &rc);
		if (rc)
			rc = failure(c, err);
	}
	if (rc) {
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
	/* the held write asks for a completion when we move on to another
	 * chunk: completions come per chunk, not per page */
	if (c->held.on) {
		struct held *h = &c->held;

		if (h->block == block && h->chunk == chunk &&
		    (const uint8_t *)h->src + h->len == (const uint8_t *)src &&
		    h->raddr + h->len == b->raddr[chunk] + coff &&
		    h->len + len <= c->max_msg) {
			h->len += len; /* contiguous: one write */
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		rc = post_held(c, h->block != block || h->chunk != chunk);
		if (rc) {
			pthread_mutex_unlock(&c->lock);
			return failure(c, err);
		}
	}
	c->held = (struct held){ .on = true,
				 .src = src,
				 .desc = desc,
				 .raddr = b->raddr[chunk] + coff,
				 .rkey = b->rkey[chunk],
				 .len = len,
				 .block = block,
				 .chunk = chunk };
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int rdma_write(struct rdma_conn *c, unsigned block, uint64_t off, uint64_t len,
	       struct ferry_error *err)
{
	if (block >= c->nb)
		return rdma_error(err, -EINVAL, "rdma: no block %u", block);
	return write_from(c, block, off, len, c->b[block].ram.host + off, NULL,
			  err);
}

int rdma_zero(struct rdma_conn *c, unsigned block, uint64_t off, uint64_t len,
	      bool message, struct ferry_error *err)
{
	struct rdma_msg m = { .type = RDMA_MSG_ZERO };
	int rc;

	if (block >= c->nb || !len || off + len > c->b[block].ram.length)
		return rdma_error(err, -EINVAL,
				  "rdma: a zero run outside its block");
	if (!message)
		/* the same offset in the zero chunk: zero pages in a row
		 * stay one write */
		return write_from(c, block, off, len,
				  c->zbuf + (off & (RDMA_CHUNK_SIZE - 1)),
				  c->zmr ? fi_mr_desc(c->zmr) : NULL, err);
	m.u.zero.block = c->b[block].peer;
	m.u.zero.offset = off;
	m.u.zero.length = len;
	/* a held write stays held: only the bulk pass sends zero messages,
	 * and there no write and no zero run touch the same page */
	pthread_mutex_lock(&c->lock);
	rc = send_wait(c, &m);
	if (!rc)
		c->st.zero_messages++;
	pthread_mutex_unlock(&c->lock);
	return rc ? failure(c, err) : 0;
}

int rdma_flush(struct rdma_conn *c, struct ferry_error *err)
{
	int rc;

	uint64_t deadline = now_ns() + ANSWER_TIMEOUT_MS * 1000000ull;

	pthread_mutex_lock(&c->lock);
	rc = post_held(c, true);
	while (!rc && c->writes_out && !atomic_load(&c->failed)) {
		if (now_ns() > deadline)
			fail_locked(c, -ETIMEDOUT,
				    "%u RDMA writes did not complete in %d s",
				    c->writes_out, ANSWER_TIMEOUT_MS / 1000);
		wait_tx(c);
	}
	rc = atomic_load(&c->failed) ? -EIO : rc;
	pthread_mutex_unlock(&c->lock);
	return rc ? failure(c, err) : 0;
}

/* ---- the destination ----------------------------------------------------- */

int rdma_transport_listen(const char *addr, const char *provider,
			  struct rdma_listener **out, char *bound, size_t len,
			  struct ferry_error *err)
{
	struct fi_eq_attr ea = { .size = 16, .wait_obj = FI_WAIT_FD };
	struct sockaddr_storage ss;
	size_t sl = sizeof(ss);
	char host[256], port[8];
	struct rdma_listener *l;
	unsigned p = 0;
	int rc;

	*out = NULL;
	rc = split_addr(addr, host, sizeof(host), port, sizeof(port), err);
	if (rc)
		return rc;
	l = calloc(1, sizeof(*l));
	if (!l)
		return rdma_error(err, -ENOMEM, "out of memory");
	l->eq_fd = -1;
	rc = get_info(host, port, true, provider, &l->info, err);
	if (rc)
		goto fail;
	snprintf(l->provider, sizeof(l->provider), "%s",
		 l->info->fabric_attr->prov_name);
	rc = fi_fabric(l->info->fabric_attr, &l->fabric, NULL);
	if (!rc)
		rc = fi_eq_open(l->fabric, &ea, &l->eq, NULL);
	if (!rc)
		rc = fi_passive_ep(l->fabric, l->info, &l->pep, NULL);
	if (!rc)
		rc = fi_pep_bind(l->pep, &l->eq->fid, 0);
	if (!rc)
		rc = fi_listen(l->pep);
	if (rc) {
		rc = rdma_error(err, to_errno(rc),
				"rdma: listening on %s (provider %s): %s", addr,
				l->provider, fierr(rc));
		goto fail;
	}
	if (fi_control(&l->eq->fid, FI_GETWAIT, &l->eq_fd))
		l->eq_fd = -1;
	if (!fi_getname(&l->pep->fid, &ss, &sl)) {
		if (ss.ss_family == AF_INET)
			p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	if (!p)
		p = (unsigned)atoi(port);
	snprintf(bound, len, strchr(host, ':') ? "rdma:[%s]:%u" : "rdma:%s:%u",
		 host, p);
	*out = l;
	return 0;
fail:
	rdma_listener_close(l);
	return rc;
}

void rdma_listener_close(struct rdma_listener *l)
{
	if (!l)
		return;
	if (l->pep)
		fi_close(&l->pep->fid);
	if (l->eq)
		fi_close(&l->eq->fid);
	if (l->fabric)
		fi_close(&l->fabric->fid);
	if (l->info)
		fi_freeinfo(l->info);
	free(l);
}

/* Pin-all on the destination: each block whole, exposed for writes. */
static int pin_blocks(struct rdma_conn *c)
{
	unsigned i;
	int rc = 0;

	for (i = 0; !rc && i < c->nb; i++)
		rc = mr_reg(c, c->b[i].ram.host, c->b[i].ram.length,
			    FI_REMOTE_WRITE, &c->b[i].pin);
	for (i = 0; !rc && i < c->nb; i++)
		c->st.chunks_registered += c->b[i].nchunks;
	return rc ? -to_errno(rc) : 0;
}

int rdma_transport_accept(struct rdma_listener *l, const struct rdma_ram *ram,
			  unsigned nram, int timeout_ms, atomic_int *cancel,
			  const struct rdma_dest_hooks *hooks,
			  struct rdma_conn **out, struct ferry_error *err)
{
	uint8_t evbuf[sizeof(struct fi_eq_cm_entry) + 256];
	struct fi_eq_cm_entry *e = (struct fi_eq_cm_entry *)evbuf;
	uint8_t pdata[RDMA_CONNECT_SIZE];
	struct rdma_connect_data cd;
	struct ferry_error bad = { 0 };
	uint64_t deadline =
		timeout_ms < 0 ? UINT64_MAX
			       : now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct rdma_conn *c;
	char why[128];
	uint32_t ev;
	size_t got = 0;
	ssize_t n;
	int rc;

	*out = NULL;
again:
	for (;;) { /* the connection request, cancellable */
		if (cancel && atomic_load(cancel))
			return rdma_error(err, -ECANCELED,
					  "cancelled while waiting for "
					  "the source");
		if (now_ns() > deadline)
			return rdma_error(err, -ETIMEDOUT,
					  "rdma: no connection in %d ms",
					  timeout_ms);
		n = fi_eq_sread(l->eq, &ev, evbuf, sizeof(evbuf), 100, 0);
		if (n == -FI_EAGAIN || n == -FI_ETIMEDOUT)
			continue;
		if (n == -FI_EAVAIL) {
			struct fi_eq_err_entry ee = { 0 };

			fi_eq_readerr(l->eq, &ee, 0);
			/* one attempt failed; the listener lives on */
			snprintf(why, sizeof(why),
				 "a connection attempt failed: %s",
				 fi_strerror(ee.err));
			if (hooks->refused)
				hooks->refused(hooks->opaque, "an rdma peer",
					       why);
			continue;
		}
		if (n < 0)
			return rdma_error(err, to_errno(n),
					  "rdma: waiting for the source: "
					  "%s",
					  fierr(n));
		if (ev == FI_CONNREQ)
			break;
	}
	got = (size_t)n;
	rc = rdma_connect_decode(evbuf + sizeof(*e), got - sizeof(*e), &cd,
				 &bad);
	if (rc) { /* not a ferry source: refused, and the wait goes on */
		fi_reject(l->pep, e->info->handle, NULL, 0);
		fi_freeinfo(e->info);
		if (hooks->refused)
			hooks->refused(hooks->opaque, "an rdma peer",
				       ferry_error_msg(&bad));
		ferry_error_clear(&bad);
		goto again;
	}
	c = conn_new(true);
	if (!c) {
		fi_reject(l->pep, e->info->handle, NULL, 0);
		fi_freeinfo(e->info);
		return rdma_error(err, -ENOMEM, "out of memory");
	}
	*out = c;
	c->info = e->info;
	/* the connection takes the fabric and queue over */
	c->fabric = l->fabric;
	c->eq = l->eq;
	c->eq_fd = l->eq_fd;
	l->fabric = NULL;
	l->eq = NULL;
	c->hooks = *hooks;
	c->caps = cd.caps & RDMA_CAPS_KNOWN;
	c->st.pin_all = c->caps & RDMA_CAP_PIN_ALL;
	rc = set_ram(c, ram, nram, err);
	if (!rc)
		rc = open_endpoint(c, c->info, err);
	if (rc) {
		fi_reject(l->pep, c->info->handle, NULL, 0);
		return rc;
	}
	cd.caps = c->caps;
	rdma_connect_encode(&cd, pdata);
	rc = fi_accept(c->ep, pdata, sizeof(pdata));
	if (rc)
		return rdma_error(err, to_errno(rc),
				  "rdma: accepting the source: %s", fierr(rc));
	rc = eq_wait(c->eq, FI_CONNECTED, evbuf, sizeof(evbuf),
		     CONNECT_TIMEOUT_MS, &got, why, sizeof(why));
	if (rc)
		return rdma_error(err, rc, "rdma: accepting the source: %s",
				  why);
	/* the listener is spent: one connection per migration */
	fi_close(&l->pep->fid);
	l->pep = NULL;
	return start(c, err);
}

/* A register request: keys for chunks of our RAM, never beyond it. */
static void on_register(struct rdma_conn *c, const struct rdma_msg *in,
			struct rdma_msg *out)
{
	struct rblock *b;
	uint32_t i;
	int rc = 0;

	*out = (struct rdma_msg){ .type = RDMA_MSG_REGISTER_RESULT };
	out->u.reg_result.block = in->u.reg.block;
	out->u.reg_result.first = in->u.reg.first;
	out->u.reg_result.count = in->u.reg.count;
	if (c->revoked) {
		out->u.reg_result.status = EACCES;
		return;
	}
	if (in->u.reg.block >= c->nb ||
	    (uint64_t)in->u.reg.first + in->u.reg.count >
		    c->b[in->u.reg.block].nchunks) {
		out->u.reg_result.status = ERANGE;
		return;
	}
	b = &c->b[in->u.reg.block];
	for (i = 0; i < in->u.reg.count; i++) {
		uint32_t k = in->u.reg.first + i;
		uint64_t off = (uint64_t)k << RDMA_CHUNK_SHIFT;
		uint64_t len = b->ram.length - off < RDMA_CHUNK_SIZE
				       ? b->ram.length - off
				       : RDMA_CHUNK_SIZE;
		struct fid_mr *mr;
		uint64_t base;

		if (b->pin) {
			mr = b->pin;
			base = c->mr_virt ? (uint64_t)(uintptr_t)b->ram.host
					  : 0;
			base += off;
		} else {
			if (!b->mr[k]) {
				rc = mr_reg(c, b->ram.host + off, len,
					    FI_REMOTE_WRITE, &b->mr[k]);
				if (rc)
					break;
				c->st.chunks_registered++;
			}
			mr = b->mr[k];
			base = c->mr_virt ? (uint64_t)(uintptr_t)(b->ram.host +
								  off)
					  : 0;
		}
		out->u.reg_result.keys[i].addr = base;
		out->u.reg_result.keys[i].key = fi_mr_key(mr);
	}
	if (rc)
		out->u.reg_result.status = -to_errno(rc);
}

static void on_unregister(struct rdma_conn *c, const struct rdma_msg *in)
{
	struct rblock *b;
	uint32_t i;

	if (in->u.reg.block >= c->nb)
		return;
	b = &c->b[in->u.reg.block];
	for (i = 0;
	     i < in->u.reg.count && in->u.reg.first + (uint64_t)i < b->nchunks;
	     i++)
		mr_close(&b->mr[in->u.reg.first + i]);
}

/* A run of our RAM becomes zero: the engine's placer writes it. */
static int on_zero(struct rdma_conn *c, const struct rdma_msg *in)
{
	if (in->u.zero.block >= c->nb ||
	    in->u.zero.offset + in->u.zero.length >
		    c->b[in->u.zero.block].ram.length) {
		fail_locked(c, -EPROTO,
			    "a zero message for bytes outside RAM "
			    "(block %u, offset %" PRIu64 ", %" PRIu64 " bytes)",
			    in->u.zero.block, in->u.zero.offset,
			    in->u.zero.length);
		return -EPROTO;
	}
	if (c->hooks.zero)
		c->hooks.zero(c->hooks.opaque, in->u.zero.block,
			      in->u.zero.offset, in->u.zero.length);
	c->st.zero_messages++;
	return 0;
}

void rdma_revoke(struct rdma_conn *c)
{
	unsigned i;
	uint32_t k;

	pthread_mutex_lock(&c->lock);
	c->revoked = true;
	for (i = 0; i < c->nb; i++) {
		mr_close(&c->b[i].pin);
		for (k = 0; c->b[i].mr && k < c->b[i].nchunks; k++)
			mr_close(&c->b[i].mr[k]);
	}
	pthread_mutex_unlock(&c->lock);
}

/* The answer to a blocks request; returns what the caller frees. */
static void *on_blocks_req(struct rdma_conn *c, struct rdma_msg *out)
{
	struct rdma_block_desc *d = calloc(c->nb ? c->nb : 1, sizeof(*d));
	unsigned i;
	int rc = 0;

	*out = (struct rdma_msg){ .type = RDMA_MSG_BLOCKS };
	out->u.blocks.blocks = d;
	if (!d) {
		out->u.blocks.status = ENOMEM;
		return NULL;
	}
	if (c->caps & RDMA_CAP_PIN_ALL)
		rc = pin_blocks(c);
	if (rc) {
		out->u.blocks.status = rc;
		return d;
	}
	for (i = 0; i < c->nb; i++) {
		snprintf(d[i].name, sizeof(d[i].name), "%s", c->b[i].ram.name);
		d[i].length = c->b[i].ram.length;
		if (c->b[i].pin) {
			d[i].addr =
				c->mr_virt
					? (uint64_t)(uintptr_t)c->b[i].ram.host
					: 0;
			d[i].key = fi_mr_key(c->b[i].pin);
		}
	}
	out->u.blocks.n = c->nb;
	out->u.blocks.pinned = c->caps & RDMA_CAP_PIN_ALL;
	return d;
}

/* ---- the pump ------------------------------------------------------------ */

/* The destination's blocks, matched with ours by name and length. */
static void on_blocks(struct rdma_conn *c, const struct rdma_msg *m)
{
	unsigned i, j;

	c->blocks_status = m->u.blocks.status;
	for (i = 0; !m->u.blocks.status && i < c->nb; i++) {
		struct rblock *b = &c->b[i];

		for (j = 0; j < m->u.blocks.n; j++)
			if (!strcmp(m->u.blocks.blocks[j].name, b->ram.name))
				break;
		if (j == m->u.blocks.n) {
			fail_locked(c, -ENOENT,
				    "the destination has no RAM block '%s'",
				    b->ram.name);
			return;
		}
		if (m->u.blocks.blocks[j].length != b->ram.length) {
			fail_locked(c, -EINVAL,
				    "RAM block '%s' is %" PRIu64
				    " bytes here and %" PRIu64
				    " on the destination",
				    b->ram.name, b->ram.length,
				    m->u.blocks.blocks[j].length);
			return;
		}
		b->peer = j;
		if (m->u.blocks.pinned) {
			uint32_t k;

			for (k = 0; k < b->nchunks; k++) {
				b->raddr[k] = m->u.blocks.blocks[j].addr +
					      ((uint64_t)k << RDMA_CHUNK_SHIFT);
				b->rkey[k] = m->u.blocks.blocks[j].key;
				b->have[k] = KEY_HAVE;
			}
			c->st.chunks_registered += b->nchunks;
		}
	}
	c->have_blocks = 1;
	pthread_cond_broadcast(&c->cond);
}

/* Keys the source asked for: into the cache, for whoever waits. */
static void on_reg_result(struct rdma_conn *c, const struct rdma_msg *m)
{
	uint32_t first = m->u.reg_result.first, n = m->u.reg_result.count, k;
	struct rblock *b = NULL;
	unsigned i;

	for (i = 0; i < c->nb && !b; i++)
		if (c->b[i].peer == m->u.reg_result.block)
			b = &c->b[i];
	for (k = 0; b && k < n; k++)
		if ((uint64_t)first + k >= b->nchunks ||
		    b->have[first + k] != KEY_ASKED)
			b = NULL;
	if (!b) {
		fail_locked(c, -EPROTO,
			    "the destination answered a register request for "
			    "a chunk not asked for");
		return;
	}
	if (m->u.reg_result.status) {
		int e = m->u.reg_result.status;
		bool lim = e == ENOMEM || e == EAGAIN || e == EPERM;

		fail_locked(c, -e,
			    "the destination refused to register chunk %u of "
			    "block %s: %s%s",
			    first, b->ram.name, strerror(e),
			    lim ? "; raise its locked-memory limit (ulimit -l "
				  "there)"
				: "");
		return;
	}
	for (k = 0; k < n; k++) {
		b->raddr[first + k] = m->u.reg_result.keys[k].addr;
		b->rkey[first + k] = m->u.reg_result.keys[k].key;
		b->have[first + k] = KEY_HAVE;
	}
	c->st.chunks_registered += n;
	pthread_cond_broadcast(&c->cond);
}

/* A message this side does not take is the peer misbehaving. */
static bool wrong_side(struct rdma_conn *c, enum rdma_msg_type t)
{
	switch (t) {
	case RDMA_MSG_BLOCKS_REQ:
	case RDMA_MSG_REGISTER:
	case RDMA_MSG_UNREGISTER:
	case RDMA_MSG_ZERO:
	case RDMA_MSG_URGENT:
		return !c->dest;
	case RDMA_MSG_BLOCKS:
	case RDMA_MSG_REGISTER_RESULT:
		return c->dest;
	default:
		return false;
	}
}

/* Handle the oldest received message; false when it must wait (the engine
 * is not reading, or an answer needs credits).  Lock held. */
static bool handle_one(struct rdma_conn *c)
{
	struct rx_slot *s = &c->fifo[c->fifo_head];
	const uint8_t *buf = c->rxb + (size_t)s->idx * RDMA_MSG_MAX;
	struct rdma_block_desc *blocks = NULL;
	struct ferry_error e = { 0 };
	struct rdma_msg m = { 0 }, reply;
	bool need_reply;

	need_reply = buf[1] == RDMA_MSG_REGISTER ||
		     buf[1] == RDMA_MSG_BLOCKS_REQ;
	if (need_reply && c->dest && !can_send(c, false))
		return false;
	if (buf[1] == RDMA_MSG_BLOCKS) {
		blocks = calloc(RDMA_BLOCKS_MAX, sizeof(*blocks));
		if (!blocks) {
			fail_locked(c, -ENOMEM, "out of memory");
			return true;
		}
	}
	m.u.blocks.blocks = blocks;
	if (rdma_msg_decode(buf, s->len, &m, &e)) {
		fail_locked(c, e.code, "%s", ferry_error_msg(&e));
		free(blocks);
		return true;
	}
	if (wrong_side(c, m.type)) {
		fail_locked(c, -EPROTO, "the %s sent a %s message",
			    c->dest ? "source" : "destination",
			    rdma_msg_name(m.type));
		free(blocks);
		return true;
	}
	switch (m.type) {
	case RDMA_MSG_STREAM:
	case RDMA_MSG_URGENT:
		while (!s->handled && s->done < m.u.stream.len) {
			int fd = m.type == RDMA_MSG_URGENT ? c->usock[1]
							   : c->sock[1];
			ssize_t w = send(fd, m.u.stream.data + s->done,
					 m.u.stream.len - s->done,
					 MSG_DONTWAIT | MSG_NOSIGNAL);

			if (w < 0 && (errno == EAGAIN || errno == EINTR))
				return false;
			if (w < 0) { /* the engine closed: drop it */
				s->done = m.u.stream.len;
				break;
			}
			s->done += (size_t)w;
		}
		break;
	case RDMA_MSG_READY:
		if (c->peer_ready) {
			fail_locked(c, -EPROTO, "a second ready message");
			break;
		}
		c->peer_ready = true;
		/* our own ready used one of its receives */
		c->credits += m.u.ready.window - 1;
		break;
	case RDMA_MSG_BLOCKS_REQ: {
		void *mem = on_blocks_req(c, &reply);

		post_msg(c, &reply);
		free(mem);
		break;
	}
	case RDMA_MSG_BLOCKS:
		on_blocks(c, &m);
		break;
	case RDMA_MSG_REGISTER:
		on_register(c, &m, &reply);
		post_msg(c, &reply);
		break;
	case RDMA_MSG_REGISTER_RESULT:
		on_reg_result(c, &m);
		break;
	case RDMA_MSG_UNREGISTER:
		on_unregister(c, &m);
		break;
	case RDMA_MSG_ZERO:
		on_zero(c, &m);
		break;
	case RDMA_MSG_CREDIT:
		break;
	}
	free(blocks);
	return true;
}

/* Read the receive queue into the FIFO, taking each header's credits at
 * once: answers may wait for credits that later messages bring.  Lock
 * held. */
static void read_rx(struct rdma_conn *c)
{
	struct fi_cq_msg_entry e[8];
	ssize_t n;
	int i;

	while (c->fifo_n < WINDOW) {
		n = fi_cq_read(c->rxcq, e, 8);
		if (n == -FI_EAGAIN)
			return;
		if (n == -FI_EAVAIL) {
			struct fi_cq_err_entry ee = { 0 };

			fi_cq_readerr(c->rxcq, &ee, 0);
			if (ee.err != FI_ECANCELED)
				fail_locked(c, -EIO,
					    "receiving a control message: "
					    "%s",
					    fi_strerror(ee.err));
			return;
		}
		if (n < 0) {
			fail_locked(c, to_errno(n), "reading receives: %s",
				    fierr(n));
			return;
		}
		for (i = 0; i < n; i++) {
			struct op *op = e[i].op_context;
			const uint8_t *b =
				c->rxb + (size_t)op->idx * RDMA_MSG_MAX;
			struct rx_slot *s =
				&c->fifo[(c->fifo_head + c->fifo_n) % WINDOW];

			if (e[i].len < RDMA_HDR_SIZE) {
				fail_locked(c, -EPROTO,
					    "a control message of %zu bytes",
					    e[i].len);
				return;
			}
			c->credits += (uint32_t)(b[2] | b[3] << 8);
			if (c->credits > 4 * WINDOW) {
				fail_locked(c, -EPROTO,
					    "the peer returned more credits "
					    "than it was given");
				return;
			}
			s->idx = op->idx;
			s->len = e[i].len;
			s->done = 0;
			s->handled = false;
			c->fifo_n++;
		}
		pthread_cond_broadcast(&c->cond);
	}
}

/* Urgent message s, handed to the engine now, ahead of its turn; false
 * when the engine's urgent socket is full.  Lock held. */
static bool urgent_now(struct rdma_conn *c, struct rx_slot *s)
{
	const uint8_t *buf = c->rxb + (size_t)s->idx * RDMA_MSG_MAX;
	struct ferry_error e = { 0 };
	struct rdma_msg m = { 0 };

	if (!c->dest || rdma_msg_decode(buf, s->len, &m, &e))
		return false; /* its turn at the head says why */
	while (s->done < m.u.stream.len) {
		ssize_t w = send(c->usock[1], m.u.stream.data + s->done,
				 m.u.stream.len - s->done,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return false;
		if (w < 0) /* the engine closed: drop it */
			break;
		s->done += (size_t)w;
	}
	s->handled = true;
	return true;
}

/* The oldest message waits for the engine to read its main stream: the
 * urgent messages behind it go to the urgent stream now, in their order,
 * so that a page a vCPU waits for never queues behind the background's
 * (docs/rdma.md, "Post-copy").  Lock held. */
static void urgent_ahead(struct rdma_conn *c)
{
	const struct rx_slot *h = &c->fifo[c->fifo_head];

	/* the oldest is urgent itself: the urgent stream is what is full */
	if (c->rxb[(size_t)h->idx * RDMA_MSG_MAX + 1] == RDMA_MSG_URGENT)
		return;
	for (unsigned k = 1; k < c->fifo_n; k++) {
		struct rx_slot *s = &c->fifo[(c->fifo_head + k) % WINDOW];
		const uint8_t *buf = c->rxb + (size_t)s->idx * RDMA_MSG_MAX;

		if (buf[1] == RDMA_MSG_URGENT && !s->handled &&
		    !urgent_now(c, s))
			return;
	}
}

static void handle_rx(struct rdma_conn *c)
{
	while (c->fifo_n && !atomic_load(&c->failed)) {
		unsigned idx = c->fifo[c->fifo_head].idx;

		if (!handle_one(c)) {
			urgent_ahead(c);
			return;
		}
		c->fifo_head = (c->fifo_head + 1) % WINDOW;
		c->fifo_n--;
		if (post_recv(c, idx)) {
			fail_locked(c, -EIO, "reposting a receive failed");
			return;
		}
		c->to_return++;
	}
}

/* One message of the engine's bytes on stream `type`: 1 sent, 0 none
 * waiting, -1 (eof set) the engine closed it or sending failed. */
static int pump_one(struct rdma_conn *c, enum rdma_msg_type type)
{
	static __thread uint8_t chunk[RDMA_PAYLOAD_MAX];
	int fd = type == RDMA_MSG_URGENT ? c->usock[1] : c->sock[1];
	bool *eof = type == RDMA_MSG_URGENT ? &c->urgent_eof : &c->local_eof;
	struct rdma_msg m = { .type = type };
	ssize_t n;

	if (*eof)
		return -1;
	n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		*eof = true;
		return -1;
	}
	m.u.stream.data = chunk;
	m.u.stream.len = (uint32_t)n;
	return post_msg(c, &m) ? -1 : 1;
}

/* The engine's stream bytes, as many as credits allow; the urgent
 * stream's first, before each message of the main one. */
static void pump_out(struct rdma_conn *c)
{
	while (can_send(c, false)) {
		if (pump_one(c, RDMA_MSG_URGENT) > 0)
			continue;
		if (!can_send(c, false) || pump_one(c, RDMA_MSG_STREAM) <= 0)
			return;
	}
}

static void check_eq(struct rdma_conn *c)
{
	uint8_t buf[sizeof(struct fi_eq_cm_entry) + 64];
	uint32_t ev;
	ssize_t n = fi_eq_read(c->eq, &ev, buf, sizeof(buf), 0);

	if (n == -FI_EAVAIL) {
		struct fi_eq_err_entry e = { 0 };

		fi_eq_readerr(c->eq, &e, 0);
		fail_locked(c, -ECONNRESET, "the connection failed: %s",
			    fi_strerror(e.err));
	} else if (n >= 0 && ev == FI_SHUTDOWN) {
		/* what it sent before it went is still the engine's */
		read_rx(c);
		handle_rx(c);
		fail_locked(c, -ECONNRESET,
			    "the peer closed the connection (process gone or "
			    "migration ended there)");
	}
}

static void *pump_main(void *arg)
{
	struct rdma_conn *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!atomic_load(&c->quit)) {
		struct pollfd p[6];
		struct fid *f[2];
		int np = 0, nf = 0, timeout = 100;
		bool stalled, tx_blocked;

		reap_tx(c);
		read_rx(c);
		handle_rx(c);
		check_eq(c);
		if (atomic_load(&c->failed)) {
			/* what arrived before the failure is the engine's:
			 * a verdict, say; then end its stream */
			shutdown(c->sock[1], SHUT_RDWR);
			shutdown(c->usock[1], SHUT_RDWR);
			break;
		}
		pump_out(c);
		if (c->to_return >= WINDOW / 2 && can_send(c, true)) {
			struct rdma_msg m = { .type = RDMA_MSG_CREDIT };

			post_msg(c, &m);
		}
		/* after the engine closed its end the pump still answers
		 * (a register the engine waits on, say) until rdma_close */
		stalled = c->fifo_n != 0;
		if (!c->local_eof && can_send(c, false))
			p[np++] = (struct pollfd){ c->sock[1], POLLIN, 0 };
		if (!c->urgent_eof && can_send(c, false))
			p[np++] = (struct pollfd){ c->usock[1], POLLIN, 0 };
		if (stalled) {
			p[np++] = (struct pollfd){ c->sock[1], POLLOUT, 0 };
			p[np++] = (struct pollfd){ c->usock[1], POLLOUT, 0 };
		}
		/* transmit completions matter only when they hold us up:
		 * the tcp provider's transmit queue never lets a wait start
		 * while anything was ever posted */
		tx_blocked = (c->tx_used == TX_BUFS ||
			      c->outstanding >= c->tx_depth) &&
			     (stalled || !c->local_eof);
		f[nf++] = &c->rxcq->fid;
		f[nf++] = &c->eq->fid;
		pthread_mutex_unlock(&c->lock);
		if (tx_blocked || c->rxcq_fd < 0 || c->eq_fd < 0 ||
		    fi_trywait(c->fabric, f, nf) != FI_SUCCESS) {
			timeout = 0;
		} else {
			p[np++] = (struct pollfd){ c->rxcq_fd, POLLIN, 0 };
			p[np++] = (struct pollfd){ c->eq_fd, POLLIN, 0 };
		}
		poll(p, (nfds_t)np, timeout ? timeout : 1);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- the rest ------------------------------------------------------------ */

int rdma_stream_fd(struct rdma_conn *c)
{
	c->sock0_given = true;
	return c->sock[0];
}

int rdma_urgent_fd(struct rdma_conn *c)
{
	c->usock0_given = true;
	return c->usock[0];
}

void rdma_explain(struct rdma_conn *c, struct ferry_error *err)
{
	struct ferry_error symptom;

	/* the peer's verdict, a cancel and the transport's own diagnosis say
	 * more than this side's view of a closed stream */
	if (!atomic_load(&c->failed) || err->origin != FERRY_ERROR_LOCAL ||
	    err->code == -ECANCELED)
		return;
	symptom = *err;
	ferry_error_clear(err);
	rdma_error(err, symptom.code, "rdma: %s (%s)", c->fail,
		   ferry_error_msg(&symptom));
}

uint64_t rdma_wire_bytes(struct rdma_conn *c)
{
	return atomic_load(&c->wire_bytes);
}

void rdma_get_stats(struct rdma_conn *c, struct rdma_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->st;
	pthread_mutex_unlock(&c->lock);
}

void rdma_close(struct rdma_conn *c)
{
	unsigned i;
	uint32_t k;

	if (!c)
		return;
	if (c->pump_live) {
		uint64_t deadline = now_ns() + DRAIN_TIMEOUT_MS * 1000000ull;

		/* the engine closed its end: the pump sends what is left */
		if (!c->sock0_given && c->sock[0] >= 0)
			shutdown(c->sock[0], SHUT_WR);
		if (!c->usock0_given && c->usock[0] >= 0)
			shutdown(c->usock[0], SHUT_WR);
		while (!atomic_load(&c->failed) && now_ns() < deadline) {
			bool done;

			pthread_mutex_lock(&c->lock);
			reap_tx(c);
			done = c->local_eof && c->urgent_eof && !c->outstanding;
			pthread_mutex_unlock(&c->lock);
			if (done)
				break;
			usleep(1000);
		}
		atomic_store(&c->quit, 1);
		pthread_join(c->pump, NULL);
	}
	if (c->ep)
		fi_shutdown(c->ep, 0);
	for (i = 0; c->b && i < c->nb; i++) {
		struct rblock *b = &c->b[i];

		mr_close(&b->pin);
		mr_close(&b->lpin);
		for (k = 0; k < b->nchunks; k++) {
			if (b->mr)
				mr_close(&b->mr[k]);
			if (b->lmr)
				mr_close(&b->lmr[k]);
		}
		free(b->mr);
		free(b->lmr);
		free(b->raddr);
		free(b->rkey);
		free(b->have);
	}
	free(c->b);
	mr_close(&c->zmr);
	mr_close(&c->rxmr);
	mr_close(&c->txmr);
	if (c->ep)
		fi_close(&c->ep->fid);
	if (c->txcq)
		fi_close(&c->txcq->fid);
	if (c->rxcq)
		fi_close(&c->rxcq->fid);
	if (c->eq)
		fi_close(&c->eq->fid);
	if (c->domain)
		fi_close(&c->domain->fid);
	if (c->fabric)
		fi_close(&c->fabric->fid);
	if (c->info)
		fi_freeinfo(c->info);
	if (c->rxb)
		munmap(c->rxb, (size_t)(WINDOW + TX_BUFS) * RDMA_MSG_MAX);
	if (c->zbuf)
		munmap(c->zbuf, RDMA_CHUNK_SIZE);
	free(c->wop);
	if (!c->sock0_given && c->sock[0] >= 0)
		close(c->sock[0]);
	if (c->sock[1] >= 0)
		close(c->sock[1]);
	if (!c->usock0_given && c->usock[0] >= 0)
		close(c->usock[0]);
	if (c->usock[1] >= 0)
		close(c->usock[1]);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
