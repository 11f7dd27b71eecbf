/* cli.h - what the `ferry` subcommands share. */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include <stdint.h>
#include <time.h>

int cmd_run(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* Print "ferry: <what>: <why>" to stderr; returns 1 (an exit status). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
