/* tcp.c - the "tcp:HOST:PORT" transport (IPv4, IPv6 as [ADDR]:PORT). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

#define CONNECT_TIMEOUT_MS 10000

/* "host:port" or "[v6]:port" into host and port strings. */
static int split(const char *addr, char *host, size_t hlen, char *port,
		 size_t plen, struct ferry_error *err)
{
	switch (transport_split_hostport(addr, host, hlen, port, plen)) {
	case HOSTPORT_OK:
		return 0;
	case HOSTPORT_PORT:
		return ferry_error_set(err, -EINVAL,
				       "tcp:%s: the port is not a number from "
				       "0 to 65535",
				       addr);
	default:
		return ferry_error_set(
			err, -EINVAL,
			"tcp:%s: expected tcp:HOST:PORT (IPv6 as "
			"tcp:[ADDR]:PORT)",
			addr);
	}
}

static int resolve(const char *addr, bool passive, struct addrinfo **res,
		   struct ferry_error *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 };
	char host[256], port[16];
	int rc = split(addr, host, sizeof(host), port, sizeof(port), err);

	if (rc)
		return rc;
	rc = getaddrinfo(*host ? host : NULL, port, &hints, res);
	if (rc)
		return ferry_error_set(err, -EHOSTUNREACH,
				       "tcp:%s: cannot resolve '%s': %s", addr,
				       host, gai_strerror(rc));
	return 0;
}

static int tcp_listen(const char *addr, int *out, char *bound, size_t len,
		      struct ferry_error *err)
{
	struct addrinfo *res, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[NI_MAXHOST], port[NI_MAXSERV];
	int fd = -1, one = 1, rc, e = 0;

	rc = resolve(addr, true, &res, err);
	if (rc)
		return rc;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, SOMAXCONN) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return ferry_error_set(err, -e, "tcp:%s: cannot listen: %s%s",
				       addr, strerror(e),
				       e == EADDRINUSE ? " (another process "
							 "has this port; use "
							 "another, or port 0 "
							 "for any free one)"
						       : "");
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port,
		    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(bound, len, strchr(host, ':') ? "tcp:[%s]:%s" : "tcp:%s:%s",
		 host, port);
	*out = fd;
	return 0;
}

static void tune(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int tcp_connect(const char *addr, int *out, struct ferry_error *err)
{
	struct addrinfo *res, *ai;
	int fd = -1, rc, e = ECONNREFUSED;

	rc = resolve(addr, false, &res, err);
	if (rc)
		return rc;
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd p;
		socklen_t sl = sizeof(e);

		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			goto connected;
		if (errno != EINPROGRESS) {
			e = errno;
			close(fd);
			continue;
		}
		p = (struct pollfd){ .fd = fd, .events = POLLOUT };
		if (poll(&p, 1, CONNECT_TIMEOUT_MS) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) == 0 &&
		    e == 0)
			goto connected;
		if (!e)
			e = ETIMEDOUT;
		close(fd);
	}
	freeaddrinfo(res);
	return ferry_error_set(err, -e, "tcp:%s: cannot connect: %s", addr,
			       strerror(e));
connected:
	freeaddrinfo(res);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	tune(fd);
	*out = fd;
	return 0;
}

static int tcp_check(const char *addr, struct ferry_error *err)
{
	char host[256], port[16];

	return split(addr, host, sizeof(host), port, sizeof(port), err);
}

const struct transport_ops transport_tcp = {
	.check = tcp_check,
	.scheme = "tcp",
	.caps = TRANSPORT_CHANNELS | TRANSPORT_POSTCOPY | TRANSPORT_CODECS |
		TRANSPORT_TLS | TRANSPORT_RETURN,
	.listen = tcp_listen,
	.connect = tcp_connect,
};
