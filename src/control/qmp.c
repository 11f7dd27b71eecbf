/*
 * qmp.c - the QMP server: sockets, framing, greeting, negotiation, events.
 * The commands themselves are in qmp_commands.c.
 *
 * Input is a stream of JSON objects, not necessarily one per line; each
 * complete object is executed as it arrives.  Malformed JSON gets an error
 * reply and the client's buffer is dropped, as QEMU's parser resets.
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
#define MAX_INPUT   (1u << 20)

struct qmp_client {
	int fd;
	bool negotiated;
	char *buf;
	size_t len;
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

static json_t *error_reply(const char *cls, const char *desc, json_t *id)
{
	json_t *r =
		json_pack("{s:{s:s,s:s}}", "error", "class", cls, "desc", desc);

	if (id)
		json_object_set(r, "id", id);
	return r;
}

static void execute(struct qmp_server *s, struct qmp_client *c, json_t *req)
{
	json_t *id = json_is_object(req) ? json_object_get(req, "id") : NULL;
	json_t *cmd = json_is_object(req) ? json_object_get(req, "execute")
					  : NULL;
	json_t *args = json_is_object(req) ? json_object_get(req, "arguments")
					   : NULL;
	json_t *reply, *ret;
	struct qmp_error e = { 0 };

	if (!json_is_object(req)) {
		reply = error_reply("GenericError",
				    "QMP input must be a JSON object", NULL);
	} else if (!json_is_string(cmd)) {
		reply = error_reply("GenericError",
				    "QMP input lacks member 'execute'", id);
	} else if (args && !json_is_object(args)) {
		reply = error_reply("GenericError",
				    "QMP input member 'arguments' must be an "
				    "object",
				    id);
	} else if (!c->negotiated &&
		   strcmp(json_string_value(cmd), "qmp_capabilities")) {
		reply = error_reply("CommandNotFound",
				    "Expecting capabilities negotiation with "
				    "'qmp_capabilities'",
				    id);
	} else if (!strcmp(json_string_value(cmd), "qmp_capabilities")) {
		if (c->negotiated)
			reply = error_reply("CommandNotFound",
					    "Capabilities negotiation is "
					    "already complete, command ignored",
					    id);
		else {
			c->negotiated = true;
			reply = json_pack("{s:{}}", "return");
			if (id)
				json_object_set(reply, "id", id);
		}
	} else {
		ret = qmp_dispatch(s->b, json_string_value(cmd), args, &e);
		if (ret) {
			reply = json_pack("{s:o}", "return", ret);
			if (id)
				json_object_set(reply, "id", id);
		} else {
			reply = error_reply(e.cls ? e.cls : "GenericError",
					    e.desc, id);
		}
	}
	pthread_mutex_lock(&s->lock);
	send_json(s, c, reply);
	pthread_mutex_unlock(&s->lock);
	json_decref(reply);
}

/* Execute every complete object in the client's buffer. */
static void consume(struct qmp_server *s, struct qmp_client *c)
{
	size_t off = 0;

	while (off < c->len) {
		json_error_t jerr;
		json_t *req;

		while (off < c->len && strchr(" \t\r\n", c->buf[off]))
			off++;
		if (off == c->len)
			break;
		req = json_loadb(c->buf + off, c->len - off,
				 JSON_DISABLE_EOF_CHECK, &jerr);
		if (!req) {
			if (json_error_code(&jerr) ==
			    json_error_premature_end_of_input)
				break; /* wait for the rest */
			{
				char desc[300];
				json_t *r;

				snprintf(desc, sizeof(desc),
					 "JSON parse error, %s", jerr.text);
				r = error_reply("GenericError", desc, NULL);
				pthread_mutex_lock(&s->lock);
				send_json(s, c, r);
				pthread_mutex_unlock(&s->lock);
				json_decref(r);
			}
			off = c->len; /* drop the rest, like QEMU's parser */
			break;
		}
		off += jerr.position;
		execute(s, c, req);
		json_decref(req);
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
}

static void drop(struct qmp_server *s, struct qmp_client *c)
{
	pthread_mutex_lock(&s->lock);
	close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = 0;
	c->negotiated = false;
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
			if (c->len + (size_t)r > MAX_INPUT) {
				drop(s, c); /* a client that never ends */
				continue;
			}
			c->buf = realloc(c->buf, c->len + (size_t)r + 1);
			if (!c->buf) {
				drop(s, c);
				continue;
			}
			memcpy(c->buf + c->len, tmp, (size_t)r);
			c->len += (size_t)r;
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
		if (s->clients[i].fd >= 0 && s->clients[i].negotiated)
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
