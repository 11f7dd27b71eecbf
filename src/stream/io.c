/* io.c - ready-made sinks and sources for the stream: fds and memory. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/stream.h"

static int fd_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	int fd = *(int *)opaque;
	struct iovec local[IOV_MAX];
	int n = iovcnt < IOV_MAX ? iovcnt : IOV_MAX;

	if (iovcnt > IOV_MAX)
		return -EINVAL;
	memcpy(local, iov, (size_t)n * sizeof(*iov));
	while (n > 0) {
		struct msghdr mh = { .msg_iov = local,
				     .msg_iovlen = (size_t)n };
		/* sockets: a vanished peer is an error, not a SIGPIPE */
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		struct iovec *v = local;

		if (w < 0 && errno == ENOTSOCK)
			w = writev(fd, local, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* drop what was written, keep the rest */
		while (n > 0 && (size_t)w >= v->iov_len) {
			w -= (ssize_t)v->iov_len;
			v++;
			n--;
		}
		if (n > 0) {
			v->iov_base = (uint8_t *)v->iov_base + w;
			v->iov_len -= (size_t)w;
		}
		memmove(local, v, (size_t)n * sizeof(*v));
	}
	return 0;
}

struct ferry_stream_sink ferry_stream_sink_fd(int *fd)
{
	return (struct ferry_stream_sink){ .writev = fd_writev, .opaque = fd };
}

static int buf_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct ferry_buf *b = opaque;
	int i, rc;

	for (i = 0; i < iovcnt; i++) {
		rc = ferry_buf_put(b, iov[i].iov_base, iov[i].iov_len);
		if (rc)
			return rc;
	}
	return 0;
}

struct ferry_stream_sink ferry_stream_sink_buf(struct ferry_buf *buf)
{
	return (struct ferry_stream_sink){ .writev = buf_writev,
					   .opaque = buf };
}

/* Whatever is there, at least one byte: the decoder buffers. */
static ssize_t fd_read(void *opaque, void *buf, size_t len)
{
	int fd = *(int *)opaque;

	for (;;) {
		ssize_t r = read(fd, buf, len);

		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

struct ferry_stream_source ferry_stream_source_fd(int *fd)
{
	return (struct ferry_stream_source){ .read = fd_read, .opaque = fd };
}

static ssize_t mem_read(void *opaque, void *buf, size_t len)
{
	struct ferry_stream_memsrc *m = opaque;
	size_t n = m->len - m->pos;

	if (n > len)
		n = len;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

struct ferry_stream_source
ferry_stream_source_mem(struct ferry_stream_memsrc *m)
{
	return (struct ferry_stream_source){ .read = mem_read, .opaque = m };
}
