/* error.c - the single place where ferry_error is filled. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ferry/error.h"

static int set(struct ferry_error *err, enum ferry_error_origin origin,
	       int code, const char *fmt, va_list ap)
{
	if (!err || err->code)
		return code;
	err->code = code;
	err->origin = origin;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

int ferry_error_set(struct ferry_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set(err, FERRY_ERROR_LOCAL, code, fmt, ap);
	va_end(ap);
	return code;
}

int ferry_error_set_from(struct ferry_error *err,
			 enum ferry_error_origin origin, int code,
			 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set(err, origin, code, fmt, ap);
	va_end(ap);
	return code;
}

void ferry_error_prefix(struct ferry_error *err, const char *fmt, ...)
{
	char head[FERRY_ERROR_MSG_MAX];
	size_t n, len;
	va_list ap;
	int w;

	if (!err || !err->code)
		return;
	va_start(ap, fmt);
	w = vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	if (w <= 0)
		return;
	n = (size_t)w < sizeof(head) ? (size_t)w : sizeof(head) - 1;
	len = strnlen(err->msg, sizeof(err->msg) - 1);
	if (n + len > sizeof(err->msg) - 1) /* the message's end goes */
		len = sizeof(err->msg) - 1 - n;
	memmove(err->msg + n, err->msg, len);
	memcpy(err->msg, head, n);
	err->msg[n + len] = '\0';
}

void ferry_error_clear(struct ferry_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->origin = FERRY_ERROR_LOCAL;
	err->msg[0] = '\0';
}

const char *ferry_error_msg(const struct ferry_error *err)
{
	if (!err || !err->code)
		return "no error";
	if (err->msg[0])
		return err->msg;
	return strerror(-err->code);
}
