/* cli.h - what the `ferry` subcommands share. */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

int cmd_run(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_run_riscv(int argc, char **argv);

struct ferry_vm;
struct ferry_guest;

/* A created guest for cli_serve(): its ferry_vm, the reference guest
 * when it is one (x-query-guest), and whether it switched itself off. */
struct cli_target {
	const struct ferry_vm *vm;
	struct ferry_guest *guest;
	bool (*halted)(void *opaque);
	/* x-query-guest's answer for a guest that is not the reference
	 * guest (a new JSON object), or NULL */
	json_t *(*info)(void *opaque);
	void *opaque;
};

/* ferry run's --tls-creds DIR, --tls-authz FILE and --tls-hostname NAME:
 * the migration's tls-* parameters before it listens or connects
 * (docs/usage.md, "TLS"). */
#define CLI_TLS_CREDS	 1001
#define CLI_TLS_AUTHZ	 1002
#define CLI_TLS_HOSTNAME 1003
#define CLI_TLS_OPTIONS                                                   \
	{ "tls-creds", required_argument, NULL, CLI_TLS_CREDS },          \
		{ "tls-authz", required_argument, NULL, CLI_TLS_AUTHZ },  \
	{                                                                 \
		"tls-hostname", required_argument, NULL, CLI_TLS_HOSTNAME \
	}
#define CLI_TLS_USAGE                                                      \
	"  --tls-creds DIR       TLS on every migration connection: DIR "  \
	"holds\n"                                                          \
	"                        ca-cert.pem, server-cert.pem, "           \
	"server-key.pem,\n"                                                \
	"                        client-cert.pem, client-key.pem (x509), " \
	"or keys.psk\n"                                                    \
	"  --tls-authz FILE      destination: the client certificate "     \
	"subjects let in\n"                                                \
	"  --tls-hostname NAME   source: the name the destination's "      \
	"certificate carries\n"
void cli_tls_option(int opt, const char *arg);

/* ferry run's --set PARAM=VALUE and --cap NAME=on|off: the migration's
 * parameters and capabilities before it listens (a restore's readers,
 * lazy-restore) or before QMP changes them. */
#define CLI_SET 1004
#define CLI_CAP 1005
#define CLI_MIG_OPTIONS                                 \
	{ "set", required_argument, NULL, CLI_SET },    \
	{                                               \
		"cap", required_argument, NULL, CLI_CAP \
	}
#define CLI_MIG_USAGE                                                    \
	"  --set PARAM=VALUE     a migration parameter, as "             \
	"migrate-set-parameters\n"                                       \
	"                        (before --incoming listens; see ferry " \
	"migrate\n"                                                      \
	"                        --list-parameters)\n"                   \
	"  --cap NAME=on|off     a migration capability, as "            \
	"migrate-set-capabilities\n"
/* Nonzero after an error (printed). */
int cli_mig_option(int opt, const char *arg);

/* Serve a created guest over QMP and/or as a migration destination
 * until quit, Ctrl-C, `duration` seconds (0: no limit) or a halt. */
int cli_serve(const struct cli_target *t, const char *qmp_uri,
	      const char *incoming, double duration);

/* ferry migrate --list-parameters: every parameter and capability, with
 * its unit, range and default (src/cli/params_list.c). */
void cli_list_parameters(FILE *f);

/* A positive number of seconds for option `opt`; 1 (said why) if not. */
int cli_parse_seconds(const char *opt, const char *arg, double *out);

/* Print "ferry: <what>: <why>" to stderr; returns 1 (an exit status). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* --ram of `bytes` in all: 0 if this host's memory holds it, else 1 with
 * a message saying both sizes (before the kernel would kill the process
 * for it). */
int cli_ram_fits(const char *arg, uint64_t bytes);

static inline double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
