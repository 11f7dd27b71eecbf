/*
 * transport.c - URI scheme lookup and accept, shared by all transports;
 * and the screen, which serves a listening socket's connections at once
 * until one delivers the head its caller wants (transport.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rdma.h"
#include "transport.h"

const struct transport_ops transport_rdma = {
	.scheme = "rdma",
	.caps = TRANSPORT_RMA | TRANSPORT_RETURN | TRANSPORT_POSTCOPY,
	.limits = "pages go by RDMA WRITE straight from guest RAM into the "
		  "destination's, on one connection, past any record layer",
	.check = rdma_check_addr,
};

static const struct transport_ops *const transports[] = {
	&transport_tcp,	 &transport_unix, &transport_rdma,
	&transport_file, &transport_exec, &transport_fd,
};

void transport_schemes_with(unsigned caps, char *buf, size_t len)
{
	size_t i, n = 0, k = 0;

	if (!len)
		return;
	buf[0] = '\0';
	for (i = 0; i < sizeof(transports) / sizeof(transports[0]); i++) {
		if ((transports[i]->caps & caps) != caps)
			continue;
		k = (size_t)snprintf(buf + n, len - n, "%s%s:", n ? " or " : "",
				     transports[i]->scheme);
		if (k >= len - n)
			return; /* cut: what fits stays */
		n += k;
	}
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
			"tcp:HOST:PORT, unix:PATH, rdma:HOST:PORT, "
			"file:PATH, exec:COMMAND or fd:NAME)",
			uri ? uri : "");
	for (i = 0; i < sizeof(transports) / sizeof(transports[0]); i++) {
		size_t n = strlen(transports[i]->scheme);

		if ((size_t)(colon - uri) == n &&
		    !strncmp(uri, transports[i]->scheme, n)) {
			*ops = transports[i];
			*addr = colon + 1;
			if ((*ops)->resolve)
				*ops = (*ops)->resolve(*addr);
			return 0;
		}
	}
	return ferry_error_set(err, -EPROTONOSUPPORT,
			       "URI '%s': unknown transport '%.*s' (known: "
			       "tcp, unix, rdma, file, exec, fd)",
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

void transport_release(const char *uri)
{
	const struct transport_ops *ops;
	const char *addr;

	if (transport_find(uri, &ops, &addr, NULL) || !ops->given || !*addr ||
	    strspn(addr, "0123456789") != strlen(addr) || strlen(addr) > 9)
		return;
	close(atoi(addr));
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
		     pid_t *child, struct ferry_error *err)
{
	const struct transport_ops *ops;
	const char *addr;
	int rc = transport_find(uri, &ops, &addr, err);

	if (rc)
		return rc;
	if (ops->spawn && child) {
		snprintf(bound, len, "%s", uri);
		return ops->spawn(addr, false, fd, child, err);
	}
	if (!ops->listen)
		return ferry_error_set(err, -EPROTONOSUPPORT,
				       "URI '%s': not a socket transport", uri);
	return ops->listen(addr, fd, bound, len, err);
}

int transport_connect(const char *uri, int *fd, pid_t *child,
		      struct ferry_error *err)
{
	const struct transport_ops *ops;
	const char *addr;
	int rc = transport_find(uri, &ops, &addr, err);

	if (rc)
		return rc;
	if (ops->spawn && child)
		return ops->spawn(addr, true, fd, child, err);
	if (!ops->connect)
		return ferry_error_set(err, -EPROTONOSUPPORT,
				       "URI '%s': not a socket transport", uri);
	return ops->connect(addr, fd, err);
}

/* ---- the screen ------------------------------------------------------- */

#define SCREEN_READ 65536 /* bytes read at once from a pending connection */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(buf, len, "a peer");
	} else if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		snprintf(buf, len, "a unix socket peer");
	}
}

void transport_screen_init(struct transport_screen *s, int lfd,
			   struct tls_creds *tls, transport_refused_fn refused,
			   void *opaque)
{
	/* accept4 until EAGAIN: the listener must not block */
	fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
	s->lfd = lfd;
	s->tls = tls;
	s->refused = refused;
	s->opaque = opaque;
	s->n = 0;
}

/* Take p[i] out of the list, keeping the order (oldest first). */
static void unlist(struct transport_screen *s, unsigned i)
{
	s->n--;
	memmove(&s->p[i], &s->p[i + 1], (s->n - i) * sizeof(s->p[0]));
}

static void refuse(struct transport_screen *s, unsigned i, const char *why)
{
	struct transport_pending *p = &s->p[i];

	if (s->refused)
		s->refused(s->opaque, p->peer, why);
	tls_conn_free(p->tls);
	close(p->fd);
	free(p->buf);
	unlist(s, i);
}

void transport_screen_close(struct transport_screen *s, const char *why)
{
	while (s->n)
		refuse(s, 0, why);
}

static void take(struct transport_screen *s, unsigned i,
		 struct transport_conn *out)
{
	struct transport_pending *p = &s->p[i];
	int one = 1;

	fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) & ~O_NONBLOCK);
	/* the return path's small messages (page requests) must not wait
	 * for Nagle; a UNIX socket ignores this */
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	out->fd = p->fd;
	out->buf = p->buf;
	out->len = p->len;
	out->tls = p->info;
	out->tls_conn = p->tls;
	unlist(s, i);
}

/* Judge p[i]: 1 when it was taken, 0 when it stays (or went, refused). */
static int judge_one(struct transport_screen *s, unsigned i,
		     transport_judge_fn judge, void *opaque,
		     struct transport_conn *out)
{
	struct ferry_error e = { 0 };
	int r = judge(opaque, s->p[i].buf, s->p[i].len, &e);

	if (r == TRANSPORT_HEAD_TAKE) {
		take(s, i, out);
		return 1;
	}
	if (r < 0) {
		refuse(s, i, ferry_error_msg(&e));
		return 0;
	}
	s->p[i].held = r == TRANSPORT_HEAD_HOLD;
	return 0;
}

/* Accept what waits on the listening socket; the oldest pending make
 * room. */
static int accept_all(struct transport_screen *s, int head_ms,
		      struct ferry_error *err)
{
	char why[96];

	for (;;) {
		struct transport_pending *p;
		int c = accept4(s->lfd, NULL, NULL,
				SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (c < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return 0;
			if (errno == ECONNABORTED || errno == EMFILE ||
			    errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				return 0; /* one lost; the listener goes on */
			return ferry_error_set(err, -errno, "accept: %s",
					       strerror(errno));
		}
		if (s->n == TRANSPORT_PENDING_MAX) {
			snprintf(why, sizeof(why),
				 "pushed out by a newer connection (%u "
				 "waited for their stream head)",
				 (unsigned)TRANSPORT_PENDING_MAX);
			refuse(s, 0, why);
		}
		p = &s->p[s->n++];
		*p = (struct transport_pending){
			.fd = c,
			.deadline_ns = now_ns() + (uint64_t)head_ms * 1000000,
		};
		peer_name(c, p->peer, sizeof(p->peer));
		if (s->tls) {
			p->tls = tls_accept_new(s->tls, c);
			p->tls_events = POLLIN;
			if (!p->tls)
				refuse(s, s->n - 1,
				       "out of memory for its TLS session");
		}
	}
}

/* Read what p[i] has: 0 read (or nothing there yet), -1 refused. */
static int read_one(struct transport_screen *s, unsigned i)
{
	struct transport_pending *p = &s->p[i];
	char why[320];
	ssize_t r;

	if (p->tls && !p->tls_up) {
		int t = tls_accept_step(p->tls, &p->tls_events, &p->info, why,
					sizeof(why));

		if (t < 0) {
			refuse(s, i, why);
			return -1;
		}
		if (t == 0)
			return 0;
		p->tls_up = true; /* the head comes inside the session */
		p->tls_events = POLLIN;
	}
	if (p->cap - p->len < SCREEN_READ) {
		uint8_t *b = realloc(p->buf, p->len + SCREEN_READ);

		if (!b) {
			refuse(s, i, "out of memory for its stream head");
			return -1;
		}
		p->buf = b;
		p->cap = p->len + SCREEN_READ;
	}
	if (p->tls) {
		r = tls_conn_read_nb(p->tls, p->buf + p->len, SCREEN_READ,
				     &p->tls_events, why, sizeof(why));
		if (r == -EPROTO) {
			refuse(s, i, why);
			return -1;
		}
		if (r < 0) {
			errno = -(int)r;
			r = -1;
		}
	} else {
		r = recv(p->fd, p->buf + p->len, SCREEN_READ, MSG_DONTWAIT);
	}
	if (r > 0) {
		p->len += (size_t)r;
		return 0;
	}
	if (r < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (r == 0)
		snprintf(why, sizeof(why),
			 "closed after %zu bytes, before its stream head was "
			 "whole",
			 p->len);
	else
		snprintf(why, sizeof(why), "receiving its stream head: %s",
			 strerror(errno));
	refuse(s, i, why);
	return -1;
}

/* Does a session hold bytes of a head that no poll would show? */
static bool ready(const struct transport_screen *s)
{
	unsigned i;

	for (i = 0; i < s->n; i++)
		if (!s->p[i].held && s->p[i].tls && s->p[i].tls_up &&
		    tls_conn_pending(s->p[i].tls))
			return true;
	return false;
}

int transport_screen_take(struct transport_screen *s, int head_ms,
			  int timeout_ms, atomic_int *cancel,
			  transport_judge_fn judge, void *opaque,
			  struct transport_conn *out, struct ferry_error *err)
{
	uint64_t start = now_ns();
	struct pollfd pfd[TRANSPORT_PENDING_MAX + 1];
	unsigned i, k;
	int rc;

	/* those already whole, or part-way, meet this call's judge first */
	for (i = s->n; i-- > 0;)
		if (s->p[i].len && judge_one(s, i, judge, opaque, out))
			return 0;
	for (;;) {
		uint64_t now;
		int n;

		if (cancel && atomic_load(cancel))
			return ferry_error_set(err, -ECANCELED,
					       "accept: cancelled");
		pfd[0] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
		for (i = 0; i < s->n; i++)
			pfd[1 + i] = (struct pollfd){
				.fd = s->p[i].held ? -1 : s->p[i].fd,
				.events = s->p[i].tls ? s->p[i].tls_events
						      : POLLIN,
			};
		k = s->n;
		n = poll(pfd, 1 + k, ready(s) ? 0 : 100);
		/* what a session holds decrypted, no poll shows */
		for (i = 0; n >= 0 && i < k; i++)
			if (!s->p[i].held && s->p[i].tls && s->p[i].tls_up &&
			    tls_conn_pending(s->p[i].tls)) {
				pfd[1 + i].revents |= POLLIN;
				n += n == 0;
			}
		if (n < 0 && errno != EINTR)
			return ferry_error_set(err, -errno, "poll: %s",
					       strerror(errno));
		/* newest first, so that a removal leaves the indices of
		 * those still to read as they were */
		for (i = k; n > 0 && i-- > 0;) {
			if (!pfd[1 + i].revents)
				continue;
			if (!read_one(s, i) && s->p[i].len &&
			    judge_one(s, i, judge, opaque, out))
				return 0;
		}
		now = now_ns();
		for (i = s->n; i-- > 0;)
			if (now >= s->p[i].deadline_ns) {
				char why[128];

				if (s->p[i].tls && !s->p[i].tls_up)
					snprintf(why, sizeof(why),
						 "no TLS handshake within %d "
						 "ms",
						 head_ms);
				else if (s->p[i].held)
					snprintf(why, sizeof(why),
						 "its stream head came, but "
						 "no migration took it within "
						 "%d ms",
						 head_ms);
				else
					snprintf(why, sizeof(why),
						 "no whole stream head within "
						 "%d ms (%zu bytes of it)",
						 head_ms, s->p[i].len);
				refuse(s, i, why);
			}
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			rc = accept_all(s, head_ms, err);
			if (rc)
				return rc;
		}
		if (timeout_ms >= 0 &&
		    now - start >= (uint64_t)timeout_ms * 1000000)
			return ferry_error_set(err, -ETIMEDOUT,
					       "no incoming connection within "
					       "%d ms",
					       timeout_ms);
	}
}
