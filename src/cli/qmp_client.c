/* qmp_client.c - talks QMP to a ferry guest, as a management tool would. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "qmp_client.h"

#define REPLY_TIMEOUT_MS 60000

/* Read one newline-terminated JSON message. */
static json_t *read_msg(struct qmpc *c, char *err, size_t errlen)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		char tmp[65536];
		ssize_t r;

		if (nl) {
			json_error_t je;
			size_t n = (size_t)(nl - c->buf) + 1;
			json_t *j = json_loadb(c->buf, n - 1, 0, &je);

			memmove(c->buf, c->buf + n, c->len - n);
			c->len -= n;
			if (!j)
				snprintf(err, errlen, "bad JSON from QMP: %s",
					 je.text);
			return j;
		}
		r = poll(&p, 1, REPLY_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue; /* a signal: its handler only counts it */
		if (r <= 0) {
			snprintf(err, errlen, "QMP: no reply within %d s",
				 REPLY_TIMEOUT_MS / 1000);
			return NULL;
		}
		r = read(c->fd, tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "QMP: connection closed");
			return NULL;
		}
		c->buf = realloc(c->buf, c->len + (size_t)r);
		if (!c->buf) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		memcpy(c->buf + c->len, tmp, (size_t)r);
		c->len += (size_t)r;
	}
}

json_t *qmpc_call(struct qmpc *c, const char *cmd, json_t *args, char *err,
		  size_t errlen)
{
	json_t *req = json_pack("{s:s}", "execute", cmd), *msg, *ret;
	char *text;
	size_t n, off = 0;

	if (args)
		json_object_set_new(req, "arguments", args);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n = strlen(text);
	while (off < n) {
		ssize_t w = send(c->fd, text + off, n - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(err, errlen, "QMP: %s", strerror(errno));
			free(text);
			return NULL;
		}
		off += (size_t)w;
	}
	free(text);
	for (;;) {
		msg = read_msg(c, err, errlen);
		if (!msg)
			return NULL;
		if (!json_object_get(msg, "event"))
			break;
		json_decref(msg);
	}
	ret = json_object_get(msg, "return");
	if (ret) {
		json_incref(ret);
	} else {
		const char *desc = json_string_value(
			json_object_get(json_object_get(msg, "error"), "desc"));

		snprintf(err, errlen, "%s", desc ? desc : "malformed reply");
	}
	json_decref(msg);
	return ret;
}

/* One attempt at a tcp:HOST:PORT socket: a connected fd, or -1. */
static int tcp_socket(const char *hostport)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	int fd = -1;

	if (!colon || (size_t)(colon - hostport) >= sizeof(host)) {
		errno = EINVAL;
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
	if (getaddrinfo(host, colon + 1, &hints, &res)) {
		errno = EHOSTUNREACH;
		return -1;
	}
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

/* One attempt at a unix socket: a connected fd, or -1. */
static int unix_socket(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (const struct sockaddr *)sa, sizeof(*sa))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int qmpc_connect(struct qmpc *c, const char *uri, double timeout_s, char *err,
		 size_t errlen)
{
	bool tcp = !strncmp(uri, "tcp:", 4);
	const char *path = tcp			      ? uri + 4
			   : strncmp(uri, "unix:", 5) ? uri
						      : uri + 5;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	double deadline = cli_now() + timeout_s;
	json_t *greeting, *ret;

	memset(c, 0, sizeof(*c));
	if (!tcp && strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "QMP socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	if (!tcp)
		strcpy(sa.sun_path, path);
	for (;;) {
		c->fd = tcp ? tcp_socket(path) : unix_socket(&sa);
		if (c->fd >= 0 || cli_now() > deadline)
			break;
		usleep(20000);
	}
	if (c->fd < 0) {
		snprintf(err, errlen, "cannot connect to the QMP socket %s: %s",
			 uri, strerror(errno));
		return -ECONNREFUSED;
	}
	greeting = read_msg(c, err, errlen);
	if (!greeting || !json_object_get(greeting, "QMP")) {
		if (greeting)
			snprintf(err, errlen, "%s did not greet with QMP",
				 path);
		json_decref(greeting);
		qmpc_close(c);
		return -EPROTO;
	}
	json_decref(greeting);
	ret = qmpc_call(c, "qmp_capabilities", NULL, err, errlen);
	if (!ret) {
		qmpc_close(c);
		return -EPROTO;
	}
	json_decref(ret);
	return 0;
}

void qmpc_close(struct qmpc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = 0;
}
