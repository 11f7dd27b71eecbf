/*
 * qmp.c - the QMP server: sockets, greeting, events.  What it does with a
 * client's bytes (framing, the request's shape, negotiation) is in
 * qmp_parse.c, the commands themselves in qmp_commands.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "qmp.h"
#include "qmp_internal.h"
#include "transport.h"

#define MAX_CLIENTS 16

struct qmp_client {
	int fd;
	struct qmp_input in; /* pending bytes, negotiation */
};

struct qmp_server {
	struct qmp_backend *b;
	int lfd;
	int wake[2]; /* a pipe that stops the poll loop */
	pthread_t thread;
	pthread_mutex_t lock; /* clients[], and every write to a client */
	struct qmp_client clients[MAX_CLIENTS];
	char path[256];
};

static void send_json(struct qmp_server *s, struct qmp_client *c, json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT);
	size_t n, off = 0;

	if (!text)
		return;
	n = strlen(text);
	text[n] = '\n'; /* replaces the NUL; length is known */
	n++;
	while (c->fd >= 0 && off < n) {
		ssize_t w = send(c->fd, text + off, n - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* the poll loop notices the hang-up */
		off += (size_t)w;
	}
	(void)s;
	free(text);
}

/* Answer every complete request in the client's input. */
static void consume(struct qmp_server *s, struct qmp_client *c)
{
	struct qmp_request r;

	for (;;) {
		bool got;

		/* under the lock: qmp_capabilities sets in.negotiated, which
		 * the engine's thread reads to send events */
		pthread_mutex_lock(&s->lock);
		got = qmp_input_next(&c->in, &r);
		pthread_mutex_unlock(&s->lock);
		if (!got)
			break;
		if (!r.reply) {
			struct qmp_error e = { 0 };

			r.reply =
				qmp_reply(qmp_dispatch(s->b, r.cmd, r.args, &e),
					  &e, r.id);
		}
		if (r.reply) {
			pthread_mutex_lock(&s->lock);
			send_json(s, c, r.reply);
			pthread_mutex_unlock(&s->lock);
		}
		qmp_request_done(&r);
	}
}

static void drop(struct qmp_server *s, struct qmp_client *c)
{
	pthread_mutex_lock(&s->lock);
	close(c->fd);
	c->fd = -1;
	qmp_input_free(&c->in);
	pthread_mutex_unlock(&s->lock);
}

static void greet(struct qmp_server *s, struct qmp_client *c)
{
	json_t *g = json_pack("{s:{s:{s:{s:i,s:i,s:i},s:s},s:[]}}", "QMP",
			      "version", "qemu", "micro", 0, "minor", 1,
			      "major", 0, "package", "ferry " FERRY_VERSION,
			      "capabilities");

	pthread_mutex_lock(&s->lock);
	send_json(s, c, g);
	pthread_mutex_unlock(&s->lock);
	json_decref(g);
}

static void *server_main(void *arg)
{
	struct qmp_server *s = arg;

	for (;;) {
		struct pollfd p[MAX_CLIENTS + 2];
		int n = 0, i, idx[MAX_CLIENTS + 2];

		p[n++] = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
		for (i = 0; i < MAX_CLIENTS; i++) {
			if (s->clients[i].fd < 0)
				continue;
			idx[n] = i;
			p[n++] = (struct pollfd){ .fd = s->clients[i].fd,
						  .events = POLLIN };
		}
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN) {
			int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

			for (i = 0; fd >= 0 && i < MAX_CLIENTS; i++)
				if (s->clients[i].fd < 0)
					break;
			if (fd >= 0 && i == MAX_CLIENTS) {
				close(fd); /* too many clients */
			} else if (fd >= 0) {
				pthread_mutex_lock(&s->lock);
				s->clients[i].fd = fd;
				pthread_mutex_unlock(&s->lock);
				greet(s, &s->clients[i]);
			}
		}
		for (i = 2; i < n; i++) {
			struct qmp_client *c = &s->clients[idx[i]];
			char tmp[4096];
			ssize_t r;

			if (!p[i].revents)
				continue;
			r = recv(c->fd, tmp, sizeof(tmp), 0);
			if (r <= 0) {
				if (r < 0 && errno == EINTR)
					continue;
				drop(s, c);
				continue;
			}
			if (qmp_input_push(&c->in, tmp, (size_t)r)) {
				drop(s, c); /* never ends, or no memory */
				continue;
			}
			consume(s, c);
		}
	}
	return NULL;
}

void qmp_server_event_migration(struct qmp_server *s, enum ferry_mig_state st)
{
	struct timeval tv;
	json_t *ev;
	int i;

	if (!s)
		return;
	gettimeofday(&tv, NULL);
	ev = json_pack("{s:s,s:{s:s},s:{s:I,s:I}}", "event", "MIGRATION",
		       "data", "status", ferry_mig_state_name(st), "timestamp",
		       "seconds", (json_int_t)tv.tv_sec, "microseconds",
		       (json_int_t)tv.tv_usec);
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0 && s->clients[i].in.negotiated)
			send_json(s, &s->clients[i], ev);
	pthread_mutex_unlock(&s->lock);
	json_decref(ev);
}

int qmp_server_start(const char *uri, struct qmp_backend *b,
		     struct qmp_server **out, struct ferry_error *err)
{
	struct qmp_server *s;
	char bound[256];
	int i, rc;

	if (strncmp(uri, "unix:", 5))
		return ferry_error_set(err, -EINVAL,
				       "--qmp %s: the control socket is "
				       "unix:PATH",
				       uri);
	s = calloc(1, sizeof(*s));
	if (!s)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	s->b = b;
	for (i = 0; i < MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	rc = transport_listen(uri, &s->lfd, bound, sizeof(bound), err);
	if (rc) {
		free(s);
		return rc;
	}
	snprintf(s->path, sizeof(s->path), "%s", uri + 5);
	if (pipe2(s->wake, O_CLOEXEC) < 0) {
		rc = ferry_error_set(err, -errno, "pipe: %s", strerror(errno));
		goto fail;
	}
	rc = pthread_create(&s->thread, NULL, server_main, s);
	if (rc) {
		rc = ferry_error_set(err, -rc, "QMP thread: %s", strerror(rc));
		close(s->wake[0]);
		close(s->wake[1]);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	close(s->lfd);
	unlink(s->path);
	free(s);
	return rc;
}

void qmp_server_stop(struct qmp_server *s)
{
	int i;

	if (!s)
		return;
	if (write(s->wake[1], "x", 1) < 0)
		return; /* cannot happen with a live pipe */
	pthread_join(s->thread, NULL);
	for (i = 0; i < MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0)
			drop(s, &s->clients[i]);
	close(s->lfd);
	unlink(s->path);
	close(s->wake[0]);
	close(s->wake[1]);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
