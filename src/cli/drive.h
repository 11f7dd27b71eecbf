/* drive.h - driving a migration over QMP: what `ferry migrate` and
 * `ferry demo` share. */
#ifndef FERRY_DRIVE_H
#define FERRY_DRIVE_H

#include <signal.h>
#include <stdbool.h>

#include "qmp_client.h"

#define DRIVE_MAX_OPTS 32

struct drive_opts {
	const char *sets[DRIVE_MAX_OPTS]; /* PARAM=VALUE */
	int nsets;
	const char *caps[DRIVE_MAX_OPTS]; /* NAME=on|off */
	int ncaps;
	int mode; /* DRIVE_PRECOPY, DRIVE_POSTCOPY, DRIVE_HYBRID */
	/* signals caught so far (a handler counts them), or NULL: the first
	 * cancels the migration, the second stops waiting for that */
	const volatile sig_atomic_t *interrupted;
};

enum { DRIVE_PRECOPY, DRIVE_POSTCOPY, DRIVE_HYBRID };

/* --mode precopy|postcopy|hybrid: postcopy-ram on for the last two;
 * postcopy switches at once (during the bulk pass), hybrid after
 * precopy-time-limit (2000 ms unless --set). */
int drive_set_mode(struct drive_opts *o, const char *arg);

/* The options `ferry migrate` and `ferry demo` share, by getopt value:
 * 's' (--set), 'c' (--cap), 'm' (--mode).  Nonzero after an error. */
int drive_option(struct drive_opts *o, int opt, const char *arg);

/* Remember one --set or --cap; checks the shape, not the name. */
int drive_add_set(struct drive_opts *o, const char *arg);
int drive_add_cap(struct drive_opts *o, const char *arg);

/* A --set value as QMP wants it (a new reference): the string
 * parameters as given, on and off as booleans, sizes and numbers as
 * integers, anything else a string for QMP's parser to refuse. */
json_t *drive_set_value(const char *name, const char *v);

/* Send the parameters (if params) and capabilities to a guest. */
int drive_apply(struct qmpc *c, const struct drive_opts *o, bool params,
		char *err, size_t errlen);

/* Start `migrate uri` and wait for it to finish, showing a progress line
 * on stderr when progress is set.  Returns the final query-migrate.  Once
 * o->interrupted counts one, migrate_cancel is sent and the wait goes on
 * to the end (cancelled, or completed when too late to cancel); at two it
 * returns NULL. */
json_t *drive_migrate(struct qmpc *c, const struct drive_opts *o,
		      const char *uri, bool progress, char *err, size_t errlen);

#endif
