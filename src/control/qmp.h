/*
 * qmp.h - the control socket: QEMU's QMP wire protocol over a UNIX socket.
 *
 * The server greets each client, waits for qmp_capabilities, then answers
 * commands with {"return": ...} or {"error": {"class", "desc"}}, and sends
 * MIGRATION events to every client, each through its own bounded queue.  It runs on its own thread and only
 * calls the public APIs of the guest's ferry_vm and the migration engine,
 * so a broken client cannot hurt the guest.
 */
#ifndef FERRY_QMP_H
#define FERRY_QMP_H

#include <stdatomic.h>
#include <stdbool.h>

#include <jansson.h>

#include "ferry/error.h"
#include "ferry/guest.h"
#include "ferry/migration.h"
#include "ferry/vm.h"

struct qmp_server;

struct qmp_backend {
	const struct ferry_vm *vm;
	struct ferry_migration *mig;
	const struct ferry_guest *guest; /* the reference guest, or NULL */
	/* another VMM's own view of its guest for x-query-guest (a new
	 * object, called on the server's thread), when guest is NULL */
	json_t *(*guest_info)(void *opaque);
	void *guest_opaque;
	bool incoming;	     /* a destination (started with --incoming) */
	bool incoming_defer; /* migrate-incoming may start it */
	atomic_bool quit;    /* set by the quit command */
	/* the server's notes (a client dropped or closed for another), on
	 * its thread; NULL: none */
	void (*log)(void *opaque, const char *msg);
	void *log_opaque;
	/* the server's (qmp_internal.h), not the caller's to set */
	struct qmp_fds *fds;
};

int qmp_server_start(const char *uri, struct qmp_backend *b,
		     struct qmp_server **out, struct ferry_error *err);
/* Queue an event for every client that finished negotiation; never
 * blocks on a client.  Not during or after qmp_server_stop. */
void qmp_server_event_migration(struct qmp_server *s, enum ferry_mig_state st);
void qmp_server_stop(struct qmp_server *s);
/* Where it listens: unix:PATH, or tcp:HOST:PORT with the port bound. */
const char *qmp_server_uri(const struct qmp_server *s);

#endif
