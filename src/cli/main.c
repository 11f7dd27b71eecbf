/* main.c - the `ferry` command: finds the subcommand and runs it. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "size.h"
#include "ferry/version.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "run", cmd_run, "run a reference guest (source or destination)" },
	{ "migrate", cmd_migrate,
	  "migrate a running guest over its QMP socket" },
	{ "demo", cmd_demo, "migrate a guest between two processes here" },
	{ "save", cmd_save, "save a running guest into a file (file:)" },
	{ "restore", cmd_restore, "restore a saved guest into a new process" },
};

int cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("ferry: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int cli_ram_fits(const char *arg, uint64_t bytes)
{
	long pages = sysconf(_SC_PHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
	uint64_t host = pages > 0 && ps > 0 ? (uint64_t)pages * (uint64_t)ps
					    : 0;
	char want[32], have[32];

	if (!host || bytes <= host)
		return 0;
	return cli_fail("--ram %s: %s is more than this host's memory (%s)",
			arg, ferry_format_size(bytes, want, sizeof(want)),
			ferry_format_size(host, have, sizeof(have)));
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: ferry COMMAND [OPTIONS]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\n'ferry help COMMAND' or 'ferry COMMAND --help' describes "
		   "a command's options;\n'ferry --version' prints the "
		   "version.\n");
}

int main(int argc, char **argv)
{
	size_t i;

	/* a vanished peer is an error to report, not a reason to die */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "help") && argc > 2) { /* help COMMAND */
		char *sub[] = { argv[2], "--help", NULL };

		for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (!strcmp(argv[2], commands[i].name))
				return commands[i].run(2, sub);
		cli_fail("help: unknown command '%s' (try 'ferry help')",
			 argv[2]);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("ferry %s\n", ferry_version());
		return 0;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	cli_fail("unknown command '%s' (try 'ferry help')", argv[1]);
	return 2;
}
