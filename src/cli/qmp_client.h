/* qmp_client.h - a small QMP client for `ferry migrate` and `ferry demo`. */
#ifndef FERRY_QMP_CLIENT_H
#define FERRY_QMP_CLIENT_H

#include <jansson.h>
#include <stddef.h>

struct qmpc {
	int fd;
	char *buf;
	size_t len;
};

/* Connect to a QMP socket ("unix:PATH" or a path), waiting up to
 * timeout_s for it to appear, and negotiate capabilities. */
int qmpc_connect(struct qmpc *c, const char *uri, double timeout_s, char *err,
		 size_t errlen);
/* Run a command; args (may be NULL) is consumed.  Returns the "return"
 * value (a new reference), or NULL with the error's text in err. */
json_t *qmpc_call(struct qmpc *c, const char *cmd, json_t *args, char *err,
		  size_t errlen);
void qmpc_close(struct qmpc *c);

#endif
