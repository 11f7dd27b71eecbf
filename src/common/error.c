/* error.c - the single place where ferry_error is filled. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ferry/error.h"

int ferry_error_set(struct ferry_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err || err->code)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void ferry_error_clear(struct ferry_error *err)
{
	if (!err)
		return;
	err->code = 0;
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
