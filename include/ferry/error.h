/*
 * ferry/error.h - how libferry reports failures.
 *
 * Every function that can fail returns 0 or a negative errno.  Set-up and
 * public functions also take a last `struct ferry_error *` which is filled
 * once, where the failure is found, with a message that names what failed
 * and why; callers further up carry it unchanged.  Passing NULL is allowed
 * when the caller only wants the code.
 */
#ifndef FERRY_ERROR_H
#define FERRY_ERROR_H

#include <stddef.h>

#define FERRY_ERROR_MSG_MAX 512

struct ferry_error {
	int code;		       /* negative errno, 0 when unset */
	char msg[FERRY_ERROR_MSG_MAX]; /* NUL-terminated, empty when unset */
};

/*
 * Record the first error: later calls on an error that is already set keep
 * the original message (the place closest to the cause wins).  Returns
 * `code` so that callers can write `return ferry_error_set(err, -EINVAL, ...)`.
 */
int ferry_error_set(struct ferry_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Clear an error so the structure can be reused. */
void ferry_error_clear(struct ferry_error *err);

/* The message, or strerror(-code) when no message was recorded. */
const char *ferry_error_msg(const struct ferry_error *err);

#endif
