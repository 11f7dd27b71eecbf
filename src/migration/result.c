/*
 * result.c - what both sides of the engine share: page hashes for the
 * digest, and the return path's one message: the destination's verdict
 * after the end of stream (docs/stream.md, "Return path").
 *
 *   magic "FERRYRES" (8) | status le32 (0 = resumed, else an errno) |
 *   message length le32 (at most 1024) | message
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "le.h"
#include "migration_internal.h"

int mig_send_result(int fd, int status, const char *msg)
{
	uint8_t buf[MIG_RESULT_HDR_LEN + MIG_RESULT_MSG_MAX];
	size_t n = msg ? strnlen(msg, MIG_RESULT_MSG_MAX) : 0, off = 0;

	memcpy(buf, MIG_RESULT_MAGIC, 8);
	le32_store(buf + 8, (uint32_t)status);
	le32_store(buf + 12, (uint32_t)n);
	memcpy(buf + MIG_RESULT_HDR_LEN, msg, n);
	n += MIG_RESULT_HDR_LEN;
	while (off < n) {
		ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -errno;
		off += (size_t)w;
	}
	return 0;
}

static int read_full(int fd, uint8_t *p, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int n = poll(&pf, 1, timeout_ms);
		ssize_t r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? -ETIMEDOUT : -errno;
		r = read(fd, p + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ECONNRESET;
		got += (size_t)r;
	}
	return 0;
}

int mig_recv_result(int fd, int timeout_ms, int *status, char *msg, size_t len,
		    struct ferry_error *err)
{
	uint8_t h[MIG_RESULT_HDR_LEN], body[MIG_RESULT_MSG_MAX];
	uint32_t n, i;
	int rc;

	rc = read_full(fd, h, sizeof(h), timeout_ms);
	if (rc)
		return ferry_error_set(err, rc,
				       "no verdict from the destination: %s",
				       strerror(-rc));
	n = le32_load(h + 12);
	if (memcmp(h, MIG_RESULT_MAGIC, 8) || n > MIG_RESULT_MSG_MAX ||
	    le32_load(h + 8) > 4095)
		return ferry_error_set(err, -EBADMSG,
				       "the destination's verdict is "
				       "malformed");
	rc = read_full(fd, body, n, timeout_ms);
	if (rc)
		return ferry_error_set(err, rc,
				       "the destination's verdict was cut "
				       "short: %s",
				       strerror(-rc));
	for (i = 0; i < n && i + 1 < len; i++)
		msg[i] = body[i] >= 0x20 && body[i] < 0x7f ? (char)body[i]
							   : '?';
	if (len)
		msg[i] = '\0';
	*status = (int)le32_load(h + 8);
	return 0;
}

bool mig_result_pending(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP));
}

void mig_fail_peer(int fd, int rc, const char *msg)
{
	char buf[4096];
	int i;

	if (mig_send_result(fd, rc, msg))
		return;
	/* Let the source read the verdict: stop sending, and drain what it
	 * still sends until it hangs up (closing with unread data would
	 * reset the connection and could lose the verdict). */
	shutdown(fd, SHUT_WR);
	for (i = 0; i < 300; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 10) < 0)
			break;
		r = read(fd, buf, sizeof(buf));
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
}

int page_hashes_init(struct page_hashes *ph, const struct ferry_vm *vm,
		     struct ferry_error *err)
{
	uint8_t *zero = calloc(1, vm->page_size);
	size_t i;

	ph->h = calloc(vm->nblocks, sizeof(*ph->h));
	ph->exact = calloc(vm->nblocks, sizeof(*ph->exact));
	if (!zero || !ph->h || !ph->exact)
		goto oom;
	ph->zero = ferry_page_hash(zero, vm->page_size);
	free(zero);
	zero = NULL;
	for (i = 0; i < vm->nblocks; i++) {
		uint64_t n = vm->blocks[i].length / vm->page_size;

		ph->h[i] = calloc(n, sizeof(uint64_t));
		ph->exact[i] = calloc((n + 63) / 64, sizeof(uint64_t));
		if (!ph->h[i] || !ph->exact[i])
			goto oom;
	}
	return 0;
oom:
	free(zero);
	page_hashes_free(ph, vm);
	return ferry_error_set(err, -ENOMEM,
			       "out of memory for page hashes (8 bytes per "
			       "page)");
}

void page_hashes_free(struct page_hashes *ph, const struct ferry_vm *vm)
{
	size_t i;

	for (i = 0; i < vm->nblocks; i++) {
		if (ph->h)
			free(ph->h[i]);
		if (ph->exact)
			free(ph->exact[i]);
	}
	free(ph->h);
	free(ph->exact);
	ph->h = NULL;
	ph->exact = NULL;
}
