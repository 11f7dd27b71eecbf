/*
 * fd.c - the "fd:N" transport, as QEMU's: the stream on a descriptor the
 * process already holds, inherited (`ferry run --incoming fd:3`) or passed
 * over the QMP socket with getfd, whose "fd:NAME" the QMP server turns
 * into the number before the engine sees it.
 *
 * What the descriptor is decides what it carries, so "fd" resolves to one
 * of three transports once it has looked at it (transport_find):
 *
 *  - a connected socket: one connection with a peer that answers (the
 *    verdict, acknowledgements, checks), but none beside it, so neither
 *    multifd nor post-copy (whose answers come on a channel of their
 *    own), and no TLS (a destination's TLS handshake is its listener's);
 *  - a listening socket: a destination's listener, as tcp:'s or unix:'s
 *    (page channels, TLS, stray connections screened); a source cannot
 *    connect with it;
 *  - anything else (a pipe, a FIFO, a regular file): one stream with
 *    nobody answering, as exec: and file: are.
 *
 * The descriptor becomes the migration's when the call that names it
 * succeeds (the engine closes it at the end); a refused call leaves it
 * open and the caller's (transport_ops.given).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport.h"

/* The descriptor's number, or -1 when the address is not a number. */
static int parse(const char *addr)
{
	if (!*addr || strspn(addr, "0123456789") != strlen(addr) ||
	    strlen(addr) > 9)
		return -1;
	return (int)strtol(addr, NULL, 10);
}

static int fd_check(const char *addr, struct ferry_error *err)
{
	int fd = parse(addr);

	if (fd < 0)
		return ferry_error_set(err, -EINVAL,
				       "fd:%s: not a descriptor number (a "
				       "name is one given with QMP's getfd, "
				       "and only the QMP socket knows it)",
				       addr);
	if (fcntl(fd, F_GETFD) < 0)
		return ferry_error_set(err, -EBADF,
				       "fd:%s: no such open descriptor in this "
				       "process",
				       addr);
	return 0;
}

/* The descriptor, if it is open for what the side does with it. */
static int take(const char *addr, bool write, int *out, struct ferry_error *err)
{
	int fd = parse(addr), fl, rc = fd_check(addr, err);

	if (rc)
		return rc;
	fl = fcntl(fd, F_GETFL);
	if (write && (fl & O_ACCMODE) == O_RDONLY)
		return ferry_error_set(err, -EACCES,
				       "fd:%s is open for reading only: a "
				       "source writes its stream there",
				       addr);
	if (!write && (fl & O_ACCMODE) == O_WRONLY)
		return ferry_error_set(err, -EACCES,
				       "fd:%s is open for writing only: a "
				       "destination reads its stream from it",
				       addr);
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC); /* no command inherits it */
	*out = fd;
	return 0;
}

static int given_listen(const char *addr, int *fd, char *bound, size_t len,
			struct ferry_error *err)
{
	int rc = take(addr, false, fd, err);
	struct stat st;

	if (rc)
		return rc;
	/* a saved file, read once front to back (as file:) */
	if (!fstat(*fd, &st) && S_ISREG(st.st_mode)) {
		(void)posix_fadvise(*fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		(void)posix_fadvise(*fd, 0, 0, POSIX_FADV_WILLNEED);
	}
	snprintf(bound, len, "fd:%s", addr);
	return 0;
}

/* On the engine's thread, after the migrate that named it succeeded: the
 * descriptor is the migration's, and closed when it cannot serve. */
static int given_connect(const char *addr, int *fd, struct ferry_error *err)
{
	int rc = take(addr, true, fd, err);

	if (rc == -EACCES)
		close(parse(addr)); /* open, but the wrong way round */
	return rc;
}

const struct transport_ops transport_fd_conn = {
	.scheme = "fd",
	.caps = TRANSPORT_CODECS | TRANSPORT_RETURN,
	.given = true,
	.connected = true,
	.limits = "a connected socket passed in is one connection, and "
		  "multifd's pages and post-copy's answers each need their "
		  "own beside it; a destination's TLS handshake is its "
		  "listener's",
	.listen = given_listen,
	.connect = given_connect,
	.check = fd_check,
};

const struct transport_ops transport_fd_stream = {
	.scheme = "fd",
	.caps = TRANSPORT_CODECS | TRANSPORT_MAPPED,
	.given = true,
	.connected = true,
	.limits = "a pipe or a file passed in is one stream with nobody "
		  "answering: no connections beside it, no page requests, "
		  "no TLS",
	.listen = given_listen,
	.connect = given_connect,
	.check = fd_check,
};

static int listener_listen(const char *addr, int *fd, char *bound, size_t len,
			   struct ferry_error *err)
{
	int rc = fd_check(addr, err);

	if (rc)
		return rc;
	*fd = parse(addr);
	(void)fcntl(*fd, F_SETFD, FD_CLOEXEC);
	snprintf(bound, len, "fd:%s", addr);
	return 0;
}

static int listener_connect(const char *addr, int *fd, struct ferry_error *err)
{
	(void)fd;
	close(parse(addr)); /* the migration's, as given_connect's */
	return ferry_error_set(err, -ENOTCONN,
			       "fd:%s is a listening socket: a source needs a "
			       "connected socket, a pipe or a file",
			       addr);
}

const struct transport_ops transport_fd_listener = {
	.scheme = "fd",
	.caps = TRANSPORT_CHANNELS | TRANSPORT_POSTCOPY | TRANSPORT_CODECS |
		TRANSPORT_TLS | TRANSPORT_RETURN,
	.given = true,
	.listen = listener_listen,
	.connect = listener_connect,
	.check = fd_check,
};

static const struct transport_ops *fd_resolve(const char *addr)
{
	int fd = parse(addr), on = 0;
	socklen_t n = sizeof(on);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return &transport_fd_stream; /* its check says why */
	if (!S_ISSOCK(st.st_mode))
		return &transport_fd_stream;
	if (!getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &n) && on)
		return &transport_fd_listener;
	return &transport_fd_conn;
}

const struct transport_ops transport_fd = {
	.scheme = "fd",
	.resolve = fd_resolve,
	.check = fd_check,
};
