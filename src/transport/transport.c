/* transport.c - URI scheme lookup and accept, shared by all transports. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rdma.h"
#include "transport.h"

const struct transport_ops transport_rdma = {
	.scheme = "rdma",
	.check = rdma_check_addr,
};

static const struct transport_ops *const transports[] = {
	&transport_tcp,
	&transport_unix,
	&transport_rdma,
};

int transport_is_rdma(const char *uri)
{
	return uri && !strncmp(uri, "rdma:", 5);
}

int transport_find(const char *uri, const struct transport_ops **ops,
		   const char **addr, struct ferry_error *err)
{
	const char *colon = uri ? strchr(uri, ':') : NULL;
	size_t i;

	if (!colon)
		return ferry_error_set(
			err, -EINVAL,
			"URI '%s' has no scheme (expected "
			"tcp:HOST:PORT, unix:PATH or rdma:HOST:PORT)",
			uri ? uri : "");
	for (i = 0; i < sizeof(transports) / sizeof(transports[0]); i++) {
		size_t n = strlen(transports[i]->scheme);

		if ((size_t)(colon - uri) == n &&
		    !strncmp(uri, transports[i]->scheme, n)) {
			*ops = transports[i];
			*addr = colon + 1;
			return 0;
		}
	}
	return ferry_error_set(err, -EPROTONOSUPPORT,
			       "URI '%s': unknown transport '%.*s' (known: "
			       "tcp, unix, rdma)",
			       uri, (int)(colon - uri), uri);
}

enum hostport_fault transport_split_hostport(const char *addr, char *host,
					     size_t hlen, char *port,
					     size_t plen)
{
	const char *colon, *h = addr, *p;
	size_t n;

	if (*addr == '[') {
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':')
			return HOSTPORT_FORM;
		h = addr + 1;
		n = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return HOSTPORT_FORM;
		n = (size_t)(colon - addr);
	}
	if (n >= hlen)
		return HOSTPORT_HOST;
	p = colon + 1;
	if (!*p || strlen(p) >= plen || strspn(p, "0123456789") != strlen(p) ||
	    atol(p) > 65535)
		return HOSTPORT_PORT;
	memcpy(host, h, n);
	host[n] = '\0';
	strcpy(port, p);
	return HOSTPORT_OK;
}

int transport_check(const char *uri, struct ferry_error *err)
{
	const struct transport_ops *ops;
	const char *addr;
	int rc = transport_find(uri, &ops, &addr, err);

	if (rc)
		return rc;
	return ops->check ? ops->check(addr, err) : 0;
}

int transport_listen(const char *uri, int *fd, char *bound, size_t len,
		     struct ferry_error *err)
{
	const struct transport_ops *ops;
	const char *addr;
	int rc = transport_find(uri, &ops, &addr, err);

	if (rc)
		return rc;
	if (!ops->listen)
		return ferry_error_set(err, -EPROTONOSUPPORT,
				       "URI '%s': not a socket transport", uri);
	return ops->listen(addr, fd, bound, len, err);
}

int transport_connect(const char *uri, int *fd, struct ferry_error *err)
{
	const struct transport_ops *ops;
	const char *addr;
	int rc = transport_find(uri, &ops, &addr, err);

	if (rc)
		return rc;
	if (!ops->connect)
		return ferry_error_set(err, -EPROTONOSUPPORT,
				       "URI '%s': not a socket transport", uri);
	return ops->connect(addr, fd, err);
}

int transport_accept(int lfd, int *fd, int timeout_ms, atomic_int *cancel,
		     struct ferry_error *err)
{
	int waited = 0;

	for (;;) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int n;

		if (cancel && atomic_load(cancel))
			return ferry_error_set(err, -ECANCELED,
					       "accept: cancelled");
		n = poll(&p, 1, 100);
		if (n < 0 && errno != EINTR)
			return ferry_error_set(err, -errno, "poll: %s",
					       strerror(errno));
		if (n > 0) {
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (c >= 0) {
				int one = 1;

				/* the return path's small messages (page
				 * requests) must not wait for Nagle; a UNIX
				 * socket ignores this */
				setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one,
					   sizeof(one));
				*fd = c;
				return 0;
			}
			if (errno != EINTR && errno != EAGAIN &&
			    errno != ECONNABORTED)
				return ferry_error_set(err, -errno,
						       "accept: %s",
						       strerror(errno));
		}
		waited += 100;
		if (timeout_ms >= 0 && waited >= timeout_ms)
			return ferry_error_set(err, -ETIMEDOUT,
					       "no incoming connection within "
					       "%d ms",
					       timeout_ms);
	}
}
