/*
 * qmp.c - the QMP server: sockets, greeting, each client's output queue,
 * events, and the client slots.  What it does with a client's bytes
 * (framing, the request's shape, negotiation) is in qmp_parse.c, the
 * commands themselves in qmp_commands.c.
 *
 * Nothing is written to a socket under the server's lock, and no write
 * blocks: a reply or an event is appended to its client's queue (under the
 * lock, which is all the engine's event callback takes), and the server's
 * thread alone writes the queues out, non-blocking, as each socket takes
 * them.  A client whose queue would pass QMP_MAX_OUTPUT (it sends requests
 * and does not read the replies) is dropped.  When every slot is taken a
 * new client still gets in: the one idle longest (not yet negotiated
 * first) is closed for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "qmp.h"
#include "qmp_internal.h"
#include "transport.h"

/* One message waiting to be written: its JSON and the newline. */
struct qmp_msg {
	struct qmp_msg *next;
	size_t len;
	char text[];
};

struct qmp_client {
	int fd;		     /* -1: a free slot; changed by the server's
				thread under the lock */
	struct qmp_input in; /* the server's thread; in.negotiated is set
				and read under the lock */
	/* under the lock: */
	struct qmp_msg *head, *tail; /* queued, not yet taken for writing */
	size_t pending;		     /* bytes queued or taken, not yet sent */
	bool overflow;		     /* pending would have passed
					QMP_MAX_OUTPUT: drop it */
	/* the server's thread only: */
	struct qmp_msg *out;	    /* taken off the queue, being written */
	size_t out_off;		    /* bytes of out->text already sent */
	uint64_t last_ns;	    /* accepted, or last received a byte */
	unsigned long nr;	    /* the how-manieth client, for log lines */
	int passed[QMP_CLIENT_FDS]; /* received, not yet taken by getfd */
	unsigned npassed;
};

struct qmp_server {
	struct qmp_backend *b;
	int lfd;
	int wake[2]; /* a non-blocking pipe: queued output, or stop */
	atomic_bool stopping;
	pthread_t thread;
	pthread_mutex_t lock; /* clients[].fd, in.negotiated, their queues */
	struct qmp_client clients[QMP_MAX_CLIENTS];
	unsigned long accepted; /* the server's thread */
	char path[256];	    /* unix: the socket's file, removed at the end */
	char bound[256];    /* the address as bound (tcp: the port picked) */
	struct qmp_fds fds; /* the server's thread */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void note(struct qmp_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A line for the embedder's log: the library does not print. */
static void note(struct qmp_server *s, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!s->b->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->b->log(s->b->log_opaque, msg);
}

static struct qmp_msg *msg_new(json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT);
	struct qmp_msg *m;
	size_t n;

	if (!text)
		return NULL;
	n = strlen(text);
	m = malloc(sizeof(*m) + n + 1);
	if (m) {
		m->next = NULL;
		m->len = n + 1;
		memcpy(m->text, text, n);
		m->text[n] = '\n';
	}
	free(text);
	return m;
}

static void msgs_free(struct qmp_msg *m)
{
	while (m) {
		struct qmp_msg *next = m->next;

		free(m);
		m = next;
	}
}

/* Under the lock: queue m (taken) for c, or mark c overflowing. */
static void enqueue_locked(struct qmp_client *c, struct qmp_msg *m)
{
	if (c->fd < 0 || c->overflow || c->pending + m->len > QMP_MAX_OUTPUT) {
		if (c->fd >= 0)
			c->overflow = true;
		free(m);
		return;
	}
	c->pending += m->len;
	if (c->tail)
		c->tail->next = m;
	else
		c->head = m;
	c->tail = m;
}

static void enqueue(struct qmp_server *s, struct qmp_client *c, json_t *j)
{
	struct qmp_msg *m = msg_new(j);

	if (!m)
		return;
	pthread_mutex_lock(&s->lock);
	enqueue_locked(c, m);
	pthread_mutex_unlock(&s->lock);
}

static void wake(struct qmp_server *s)
{
	/* full means a wake-up is pending anyway */
	if (write(s->wake[1], "x", 1) < 0 && errno != EAGAIN)
		return;
}

static void drop(struct qmp_server *s, struct qmp_client *c)
{
	pthread_mutex_lock(&s->lock);
	close(c->fd);
	c->fd = -1;
	qmp_input_free(&c->in);
	msgs_free(c->head);
	c->head = c->tail = NULL;
	c->pending = 0;
	c->overflow = false;
	pthread_mutex_unlock(&s->lock);
	msgs_free(c->out);
	c->out = NULL;
	c->out_off = 0;
	while (c->npassed) /* passed and never named: nobody has them */
		close(c->passed[--c->npassed]);
}

/*
 * Write what c has queued, as far as its socket takes it without
 * blocking, and with no lock held.  Returns -1 when c was dropped.
 */
static int flush(struct qmp_server *s, struct qmp_client *c)
{
	struct qmp_msg *m, **end;
	size_t sent = 0;
	bool overflow;

	pthread_mutex_lock(&s->lock);
	overflow = c->overflow;
	for (end = &c->out; *end; end = &(*end)->next)
		;
	*end = c->head; /* take the whole queue, in order */
	c->head = c->tail = NULL;
	pthread_mutex_unlock(&s->lock);
	if (overflow) {
		note(s,
		     "QMP: client %lu dropped: more than %u bytes of replies "
		     "and events queued (it does not read them)",
		     c->nr, QMP_MAX_OUTPUT);
		drop(s, c);
		return -1;
	}
	while ((m = c->out)) {
		ssize_t w = send(c->fd, m->text + c->out_off,
				 m->len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0) {
			drop(s, c); /* hung up */
			return -1;
		}
		c->out_off += (size_t)w;
		sent += (size_t)w;
		if (c->out_off == m->len) {
			c->out = m->next;
			c->out_off = 0;
			free(m);
		}
	}
	pthread_mutex_lock(&s->lock);
	c->pending -= sent;
	pthread_mutex_unlock(&s->lock);
	return 0;
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
		got = !c->overflow && qmp_input_next(&c->in, &r);
		pthread_mutex_unlock(&s->lock);
		if (!got)
			break;
		if (!r.reply) {
			struct qmp_error e = { 0 };

			s->fds.passed = c->passed;
			s->fds.npassed = &c->npassed;
			r.reply =
				qmp_reply(qmp_dispatch(s->b, r.cmd, r.args, &e),
					  &e, r.id);
			s->fds.passed = NULL;
			s->fds.npassed = NULL;
		}
		if (r.reply)
			enqueue(s, c, r.reply);
		qmp_request_done(&r);
	}
}

static void greet(struct qmp_server *s, struct qmp_client *c)
{
	json_t *g = json_pack("{s:{s:o,s:[]}}", "QMP", "version", qmp_version(),
			      "capabilities");

	enqueue(s, c, g);
	json_decref(g);
}

/*
 * A slot for a new client: a free one, or else the one idle longest is
 * closed, those that have not negotiated before those that have, so that
 * clients held open never lock the operator out.
 */
static struct qmp_client *slot(struct qmp_server *s, uint64_t now)
{
	struct qmp_client *v = NULL;
	bool vneg = false;
	int i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < QMP_MAX_CLIENTS; i++) {
		struct qmp_client *c = &s->clients[i];

		if (c->fd < 0) {
			pthread_mutex_unlock(&s->lock);
			return c;
		}
		if (!v || (vneg && !c->in.negotiated) ||
		    (vneg == c->in.negotiated && c->last_ns < v->last_ns)) {
			v = c;
			vneg = c->in.negotiated;
		}
	}
	pthread_mutex_unlock(&s->lock);
	note(s,
	     "QMP: all %d client slots taken: client %lu (%s, idle %.1f s) "
	     "closed for a new one",
	     QMP_MAX_CLIENTS, v->nr, vneg ? "negotiated" : "not negotiated",
	     (double)(now - v->last_ns) / 1e9);
	drop(s, v);
	return v;
}

static void accept_one(struct qmp_server *s)
{
	int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	uint64_t now = now_ns();
	struct qmp_client *c;

	if (fd < 0)
		return;
	c = slot(s, now);
	c->nr = ++s->accepted;
	c->last_ns = now;
	pthread_mutex_lock(&s->lock);
	c->fd = fd;
	pthread_mutex_unlock(&s->lock);
	greet(s, c);
}

/* The descriptors that came with the bytes (SCM_RIGHTS), into c's list;
 * those past QMP_CLIENT_FDS are closed. */
static void take_fds(struct qmp_server *s, struct qmp_client *c,
		     struct msghdr *mh)
{
	struct cmsghdr *cm;
	unsigned closed = 0;

	for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t n, i;
		int fd;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(fd));
			if (c->npassed < QMP_CLIENT_FDS) {
				c->passed[c->npassed++] = fd;
			} else {
				close(fd);
				closed++;
			}
		}
	}
	if (closed || (mh->msg_flags & MSG_CTRUNC))
		note(s,
		     "QMP: client %lu passed more than %d descriptors "
		     "that no getfd took: the rest were closed",
		     c->nr, QMP_CLIENT_FDS);
}

static void receive(struct qmp_server *s, struct qmp_client *c)
{
	char tmp[4096];
	union {
		char buf[CMSG_SPACE(QMP_CLIENT_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { tmp, sizeof(tmp) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	ssize_t r = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);

	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r >= 0 && mh.msg_controllen)
		take_fds(s, c, &mh);
	if (r <= 0) {
		drop(s, c);
		return;
	}
	c->last_ns = now_ns();
	if (qmp_input_push(&c->in, tmp, (size_t)r)) {
		note(s,
		     "QMP: client %lu dropped: a request longer than %u "
		     "bytes",
		     c->nr, QMP_MAX_INPUT);
		drop(s, c); /* never ends, or no memory */
		return;
	}
	consume(s, c);
}

static void *server_main(void *arg)
{
	struct qmp_server *s = arg;

	while (!atomic_load(&s->stopping)) {
		struct pollfd p[QMP_MAX_CLIENTS + 2];
		int n = 0, i, idx[QMP_MAX_CLIENTS + 2];
		char drain[64];

		p[n++] = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
		for (i = 0; i < QMP_MAX_CLIENTS; i++) {
			struct qmp_client *c = &s->clients[i];

			if (c->fd < 0 || flush(s, c))
				continue;
			idx[n] = i;
			p[n++] = (struct pollfd){
				.fd = c->fd,
				.events = (short)(POLLIN |
						  (c->out ? POLLOUT : 0)),
			};
		}
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			while (read(s->wake[0], drain, sizeof(drain)) > 0)
				;
		for (i = 2; i < n; i++) {
			struct qmp_client *c = &s->clients[idx[i]];

			/* POLLOUT alone: the next round's flush writes */
			if (c->fd >= 0 && (p[i].revents & ~POLLOUT))
				receive(s, c);
		}
		if (p[1].revents & POLLIN)
			accept_one(s);
	}
	return NULL;
}

void qmp_server_event_migration(struct qmp_server *s, enum ferry_mig_state st)
{
	struct qmp_msg *m;
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
	m = msg_new(ev);
	json_decref(ev);
	if (!m)
		return;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < QMP_MAX_CLIENTS; i++) {
		struct qmp_client *c = &s->clients[i];
		struct qmp_msg *copy;

		if (c->fd < 0 || !c->in.negotiated)
			continue;
		copy = malloc(sizeof(*m) + m->len);
		if (!copy)
			continue;
		memcpy(copy, m, sizeof(*m) + m->len);
		enqueue_locked(c, copy);
	}
	pthread_mutex_unlock(&s->lock);
	free(m);
	wake(s);
}

/*
 * QEMU's -qmp syntax: unix:PATH or tcp:HOST:PORT, then options, each
 * ",NAME=VALUE": server=on (the control socket always listens), wait=on
 * or off (ferry never waits for a client before the guest runs: either is
 * taken).  A comma in PATH is written ",,".  The address into uri.
 */
static int qmp_uri(const char *spec, char *uri, size_t len,
		   struct ferry_error *err)
{
	const char *p = spec;
	size_t n = 0;

	if (strncmp(spec, "unix:", 5) && strncmp(spec, "tcp:", 4))
		return ferry_error_set(err, -EINVAL,
				       "--qmp %s: the control socket is "
				       "unix:PATH or tcp:HOST:PORT",
				       spec);
	for (; *p && !(p[0] == ',' && p[1] != ','); p++) {
		if (p[0] == ',') /* ",," */
			p++;
		if (n + 1 == len)
			return ferry_error_set(err, -ENAMETOOLONG,
					       "--qmp %s: too long", spec);
		uri[n++] = *p;
	}
	uri[n] = '\0';
	while (*p == ',') {
		const char *opt = ++p, *end = strchr(opt, ',');
		size_t olen = end ? (size_t)(end - opt) : strlen(opt);

		if ((olen == 9 && !strncmp(opt, "server=on", 9)) ||
		    (olen == 6 && !strncmp(opt, "server", 6)) ||
		    (olen == 7 && !strncmp(opt, "wait=on", 7)) ||
		    (olen == 8 && !strncmp(opt, "wait=off", 8)) ||
		    (olen == 6 && !strncmp(opt, "nowait", 6))) {
			p += olen;
			continue;
		}
		if (olen == 10 && !strncmp(opt, "server=off", 10))
			return ferry_error_set(err, -EINVAL,
					       "--qmp %s: server=off: the "
					       "control socket always listens "
					       "(server=on)",
					       spec);
		return ferry_error_set(err, -EINVAL,
				       "--qmp %s: unknown option '%.*s' "
				       "(server=on, wait=on|off)",
				       spec, (int)olen, opt);
	}
	return 0;
}

int qmp_server_start(const char *spec, struct qmp_backend *b,
		     struct qmp_server **out, struct ferry_error *err)
{
	struct qmp_server *s;
	char uri[256];
	int i, rc;

	rc = qmp_uri(spec, uri, sizeof(uri), err);
	if (rc)
		return rc;
	s = calloc(1, sizeof(*s));
	if (!s)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	s->b = b;
	b->fds = &s->fds;
	for (i = 0; i < QMP_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	atomic_init(&s->stopping, false);
	pthread_mutex_init(&s->lock, NULL);
	rc = transport_listen(uri, &s->lfd, s->bound, sizeof(s->bound), NULL,
			      err);
	if (rc) {
		free(s);
		return rc;
	}
	if (!strncmp(uri, "unix:", 5))
		snprintf(s->path, sizeof(s->path), "%s", uri + 5);
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
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
	if (s->path[0])
		unlink(s->path);
	free(s);
	return rc;
}

const char *qmp_server_uri(const struct qmp_server *s)
{
	return s->bound;
}

void qmp_server_stop(struct qmp_server *s)
{
	int i;

	if (!s)
		return;
	atomic_store(&s->stopping, true);
	wake(s);
	pthread_join(s->thread, NULL);
	for (i = 0; i < QMP_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0)
			drop(s, &s->clients[i]);
	for (i = 0; i < QMP_MAX_FDS; i++)
		if (s->fds.named[i].name[0])
			close(s->fds.named[i].fd);
	s->b->fds = NULL;
	close(s->lfd);
	if (s->path[0])
		unlink(s->path);
	close(s->wake[0]);
	close(s->wake[1]);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
