/*
 * qmp_internal.h - between the QMP server (qmp.c), what it does with a
 * client's bytes (qmp_parse.c) and its commands (qmp_commands.c).
 */
#ifndef FERRY_QMP_INTERNAL_H
#define FERRY_QMP_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qmp.h"

struct qmp_error {
	const char *cls; /* QMP error class, NULL = GenericError */
	char desc[512];
};

/*
 * qmp_parse.c: a client's bytes up to the command, trusting nothing.
 *
 * A client's input: bytes received, not yet taken as requests.
 */
#define QMP_MAX_INPUT (1u << 20) /* a client with more pending is dropped */
/* qmp.c: replies and events queued for one client and not yet taken by
 * its socket; one that would pass this is dropped (docs/usage.md) */
#define QMP_MAX_OUTPUT (1u << 20)
/* qmp.c: clients at once; one more closes the one idle longest */
#define QMP_MAX_CLIENTS 16

struct qmp_input {
	char *buf;
	size_t len;	 /* bytes in buf */
	size_t off;	 /* of those, taken by qmp_input_next */
	bool negotiated; /* qmp_capabilities done */
};

/*
 * Descriptors passed with SCM_RIGHTS over a unix: QMP socket (qmp.c
 * receives them) and named by getfd (qmp_commands.c), as QEMU's monitor
 * keeps them; the server's thread only.  A descriptor received waits in
 * its client's list until a getfd takes it (oldest first) or the client
 * goes; a named one stays until closefd, a getfd of the same name, or a
 * migrate, migrate-incoming or migrate-recover that names it "fd:NAME"
 * and succeeds (the migration has it then).
 */
#define QMP_MAX_FDS    32  /* named at once */
#define QMP_CLIENT_FDS 8   /* received and not yet taken, per client */
#define QMP_FDNAME_MAX 127 /* bytes of a name */

struct qmp_fds {
	struct {
		char name[QMP_FDNAME_MAX + 1]; /* "": a free entry */
		int fd;
	} named[QMP_MAX_FDS];
	/* the client whose request runs: what it passed, not yet taken */
	int *passed;
	unsigned *npassed;
};

/* One request taken off the input. */
struct qmp_request {
	json_t *req;	 /* the JSON value, NULL after malformed JSON */
	json_t *reply;	 /* the answer, when it needs no command */
	const char *cmd; /* else the command for qmp_dispatch, */
	json_t *args;	 /* its arguments (NULL: none) */
	json_t *id;	 /* and the id its reply echoes (NULL: none) */
};

/* Append n received bytes: -E2BIG past QMP_MAX_INPUT, -ENOMEM. */
int qmp_input_push(struct qmp_input *in, const char *data, size_t n);
/*
 * Take the next complete request: 1 and r filled (r->reply set, or r->cmd
 * to dispatch; qmp_capabilities and the checks of a request's shape are
 * answered here), or 0 when none is complete: the rest stays for later.
 * Malformed JSON is answered and drops the whole input.
 */
int qmp_input_next(struct qmp_input *in, struct qmp_request *r);
void qmp_request_done(struct qmp_request *r);
void qmp_input_free(struct qmp_input *in);

/* {"error": {"class", "desc"}}, with the id when not NULL (borrowed). */
json_t *qmp_error_reply(const char *cls, const char *desc, json_t *id);
/* {"return": ret} (ret taken), or the error in e when ret is NULL. */
json_t *qmp_reply(json_t *ret, const struct qmp_error *e, json_t *id);

/* The arguments of the commands that take some, checked and parsed; 0, or
 * -EINVAL with e filled.  Strings point into args. */
struct qmp_migrate_args {
	const char *uri;
	bool resume, blk; /* asked for; qmp_commands.c refuses blk */
};

int qmp_parse_migrate(json_t *args, struct qmp_migrate_args *out,
		      struct qmp_error *e);
int qmp_parse_migrate_incoming(json_t *args, const char **uri,
			       struct qmp_error *e);
/* getfd and closefd: {"fdname": str} */
int qmp_parse_fdname(json_t *args, const char **name, struct qmp_error *e);
/* cont: ferry's "x-force" (bool, default false) */
int qmp_parse_cont(json_t *args, bool *force, struct qmp_error *e);
/* migrate-set-parameters and migrate-set-capabilities: the arguments
 * applied onto p, which stays as it was on failure. */
int qmp_parse_params(json_t *args, struct ferry_mig_params *p,
		     struct qmp_error *e);
int qmp_parse_caps(json_t *args, struct ferry_mig_params *p,
		   struct qmp_error *e);

/* The integer parameters: QMP name, range, field of ferry_mig_params. */
struct qmp_param {
	const char *name;
	uint64_t min, max;
	size_t offset; /* into ferry_mig_params */
	bool is_u64;   /* else unsigned */
};

extern const struct qmp_param qmp_params[];
extern const size_t qmp_nparams;

/* query-qmp-schema's answer: a new SchemaInfo list (qmp_schema.c). */
json_t *qmp_schema(void);

/* human-monitor-command's command line, as far as ferry has it. */
enum hmp_kind {
	HMP_INFO_STATUS,
	HMP_INFO_MIGRATE,
	HMP_SET_PARAMETER, /* args: migrate-set-parameters' */
	HMP_SET_CAPABILITY /* args: migrate-set-capabilities' */
};

struct hmp_cmd {
	enum hmp_kind kind;
	json_t *args; /* owned; NULL for the info commands */
};

/* "info status", "info migrate", "migrate_set_parameter NAME VALUE",
 * "migrate_set_capability NAME on|off": 0, or -EINVAL with e's text for
 * the HMP output (an unknown command, a missing or bad argument). */
int qmp_parse_hmp(const char *line, struct hmp_cmd *out, struct qmp_error *e);

/* qmp_commands.c: run one command; returns its "return" value (owned by the caller), or
 * NULL with e filled. */
json_t *qmp_dispatch(struct qmp_backend *b, const char *cmd, json_t *args,
		     struct qmp_error *e);

/* query-migrate's answer, also used by `ferry demo` and `ferry migrate`
 * through the socket. */
json_t *qmp_migrate_info(const struct ferry_mig_stats *st);

/*
 * The version in the greeting and query-version: the QEMU whose QMP
 * ferry speaks for the commands it has (7.2, the reference its tests and
 * benches compare against; clients such as libvirt refuse a 0.x "QEMU"),
 * and `package` naming ferry and its own version.
 */
#define QMP_QEMU_MAJOR 7
#define QMP_QEMU_MINOR 2
#define QMP_QEMU_MICRO 0
json_t *qmp_version(void);

#endif
