/* qmp_internal.h - between the QMP server (qmp.c) and its commands. */
#ifndef FERRY_QMP_INTERNAL_H
#define FERRY_QMP_INTERNAL_H

#include <jansson.h>

#include "qmp.h"

struct qmp_error {
	const char *cls; /* QMP error class, NULL = GenericError */
	char desc[512];
};

/* Run one command; returns its "return" value (owned by the caller), or
 * NULL with e filled. */
json_t *qmp_dispatch(struct qmp_backend *b, const char *cmd, json_t *args,
		     struct qmp_error *e);

/* query-migrate's answer, also used by `ferry demo` and `ferry migrate`
 * through the socket. */
json_t *qmp_migrate_info(const struct ferry_mig_stats *st);

#endif
