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

/*
 * Where a failure was found, for code that acts on it: the message is
 * for people, and nothing should depend on its words.
 */
enum ferry_error_origin {
	/* on this side: bad input, resources, a symptom such as a broken
	 * pipe seen here */
	FERRY_ERROR_LOCAL = 0,
	/* the peer said so (the destination's verdict), or a message from
	 * it broke the protocol */
	FERRY_ERROR_PEER,
	/* the transport under the stream diagnosed its connection (rdma's
	 * completion errors, TLS alerts): it knows better than a symptom */
	FERRY_ERROR_TRANSPORT,
};

struct ferry_error {
	int code;			/* negative errno, 0 when unset */
	enum ferry_error_origin origin; /* meaningful when code is set */
	char msg[FERRY_ERROR_MSG_MAX];	/* NUL-terminated, empty when unset */
};

/*
 * Record the first error: later calls on an error that is already set keep
 * the original message (the place closest to the cause wins).  Returns
 * `code` so that callers can write `return ferry_error_set(err, -EINVAL, ...)`.
 */
int ferry_error_set(struct ferry_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ferry_error_set with an origin other than FERRY_ERROR_LOCAL. */
int ferry_error_set_from(struct ferry_error *err,
			 enum ferry_error_origin origin, int code,
			 const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Put context before a set error's message ("channel 2: " + message);
 * its code and origin stay.  Nothing happens to an unset error.
 */
void ferry_error_prefix(struct ferry_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Clear an error so the structure can be reused. */
void ferry_error_clear(struct ferry_error *err);

/* The message, or strerror(-code) when no message was recorded. */
const char *ferry_error_msg(const struct ferry_error *err);

#endif
