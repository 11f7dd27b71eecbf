/*
 * cmd_migrate.c - `ferry migrate`: drive a running guest's migration over
 * its QMP socket, show progress, print the final query-migrate result.
 */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "drive.h"

static volatile sig_atomic_t interrupted, last_signal;

static void on_signal(int sig)
{
	last_signal = sig;
	interrupted++;
}

static const char *signame(void)
{
	return last_signal == SIGINT ? "SIGINT" : "SIGTERM";
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ferry migrate --qmp unix:PATH|tcp:HOST:PORT URI "
		"[--set PARAM=VALUE]"
		"... [--cap NAME=on|off]...\n"
		"  URI is tcp:HOST:PORT or unix:PATH (the destination's "
		"--incoming)\n"
		"  --set downtime-limit=MS, max-bandwidth=BYTES_PER_S "
		"(200M works),\n"
		"        multifd-compression=zstd, tls-creds=DIR, ...: any "
		"parameter of\n"
		"        migrate-set-parameters (numbers, sizes, strings, "
		"on/off)\n"
		"  --cap verify=on|off, auto-converge=on|off, multifd=on|off, "
		"xbzrle=on|off,\n"
		"        postcopy-ram=on|off, ...\n"
		"  --list-parameters  every parameter and capability, with "
		"its unit, range\n"
		"        and default\n"
		"  --mode precopy (default), postcopy (switch at once: the "
		"memory follows) or hybrid\n"
		"        (postcopy after precopy-time-limit, 2000 ms unless "
		"--set)\n"
		"  Ctrl-C or SIGTERM cancels the migration: the guest keeps "
		"running on the source\n");
}

int cmd_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "qmp", required_argument, NULL, 'q' },
		{ "set", required_argument, NULL, 's' },
		{ "cap", required_argument, NULL, 'c' },
		{ "mode", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ "list-parameters", no_argument, NULL, 'l' },
		{ 0 },
	};
	struct drive_opts d = { .interrupted = &interrupted };
	struct sigaction sa = { .sa_handler = on_signal };
	const char *qmp = NULL, *status;
	char err[512];
	struct qmpc c;
	json_t *r;
	char *text;
	int o, rc;

	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'q':
			qmp = optarg;
			break;
		case 's':
		case 'c':
		case 'm':
			if (drive_option(&d, o, optarg))
				return 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'l':
			cli_list_parameters(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!qmp)
		return cli_fail("migrate: --qmp unix:PATH (or tcp:HOST:PORT) "
				"is required");
	if (optind != argc - 1)
		return cli_fail("migrate: expected one destination URI");
	if (qmpc_connect(&c, qmp, 0, err, sizeof(err)))
		return cli_fail("migrate: %s", err);
	/* no SA_RESTART: the wait between two queries ends at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = drive_apply(&c, &d, true, err, sizeof(err));
	r = rc ? NULL
	       : drive_migrate(&c, &d, argv[optind], isatty(STDERR_FILENO), err,
			       sizeof(err));
	qmpc_close(&c);
	if (!r)
		return cli_fail("migrate: %s", err);
	text = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("%s\n", text);
	free(text);
	status = json_string_value(json_object_get(r, "status"));
	rc = status && !strcmp(status, "completed") ? 0 : 1;
	if (interrupted && status && !strcmp(status, "cancelled"))
		cli_fail("migrate: interrupted by %s: migration cancelled; "
			 "the guest keeps running on the source",
			 signame());
	else if (interrupted && !rc)
		fprintf(stderr,
			"ferry: migrate: interrupted by %s too late to cancel: "
			"the migration completed\n",
			signame());
	else if (rc)
		cli_fail("migrate: %s: %s", status ? status : "unknown",
			 json_string_value(json_object_get(r, "error-desc"))
				 ?: "no reason given");
	json_decref(r);
	return rc;
}
