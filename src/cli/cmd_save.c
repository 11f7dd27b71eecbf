/*
 * cmd_save.c - `ferry save` and `ferry restore`: the file: transport's
 * shorthands (docs/usage.md, "Save and restore").
 *
 *   ferry save --qmp SOCKET FILE [migrate options]
 *       = ferry migrate --qmp SOCKET file:FILE [migrate options]
 *   ferry restore FILE [guest options of ferry run]
 *       = ferry run [guest options] --incoming file:FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_ARGS 128

static int usage_save(FILE *f, int rc)
{
	fprintf(f, "usage: ferry save --qmp unix:PATH|tcp:HOST:PORT FILE "
		   "[--set PARAM=VALUE]... [--cap NAME=on|off]...\n"
		   "  saves the guest into FILE (created mode 0600) while it "
		   "runs, as\n"
		   "  ferry migrate --qmp SOCKET file:FILE; the guest then "
		   "stays stopped\n"
		   "  (cont with x-force runs it again); ferry restore brings "
		   "it back\n");
	return rc;
}

static int usage_restore(FILE *f, int rc)
{
	fprintf(f, "usage: ferry restore FILE [guest options of ferry run] "
		   "[--qmp SOCKET]\n"
		   "  restores a guest that ferry save wrote, as\n"
		   "  ferry run [options] --incoming file:FILE: the digest in "
		   "FILE is checked\n"
		   "  and only then does the guest run, as it was saved; the "
		   "guest options\n"
		   "  must describe the same guest (--ram, --vcpus, "
		   "--workload, --machine)\n");
	return rc;
}

static char *file_uri(const char *path)
{
	char *u = malloc(strlen(path) + 6);

	if (u)
		sprintf(u, "file:%s", path);
	return u;
}

int cmd_save(int argc, char **argv)
{
	char *args[MAX_ARGS + 2];
	char *uri = NULL;
	int i, n = 0, rc;

	if (argc > MAX_ARGS)
		return cli_fail("save: too many arguments");
	args[n++] = "migrate";
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return usage_save(stdout, 0);
		/* options that take a value keep it; the one other word is
		 * the file */
		if (argv[i][0] == '-') {
			args[n++] = argv[i];
			if (!strchr(argv[i], '=') && i + 1 < argc &&
			    strcmp(argv[i], "--list-parameters"))
				args[n++] = argv[++i];
			continue;
		}
		if (uri)
			return cli_fail("save: one FILE, not '%s' and '%s' "
					"(try ferry save --help)",
					uri + 5, argv[i]);
		uri = file_uri(argv[i]);
		if (!uri)
			return cli_fail("save: out of memory");
		args[n++] = uri;
	}
	if (!uri) {
		usage_save(stderr, 2);
		return cli_fail("save: which FILE?");
	}
	args[n] = NULL;
	rc = cmd_migrate(n, args);
	free(uri);
	return rc;
}

int cmd_restore(int argc, char **argv)
{
	char *args[MAX_ARGS + 4];
	char *uri;
	int i, n = 0, rc;

	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 &&
		    (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
			return usage_restore(stdout, 0);
		usage_restore(stderr, 2);
		return cli_fail("restore: the FILE comes first");
	}
	if (argc > MAX_ARGS)
		return cli_fail("restore: too many arguments");
	for (i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--incoming"))
			return cli_fail("restore: --incoming is file:%s here",
					argv[1]);
	uri = file_uri(argv[1]);
	if (!uri)
		return cli_fail("restore: out of memory");
	args[n++] = "run";
	for (i = 2; i < argc; i++)
		args[n++] = argv[i];
	args[n++] = "--incoming";
	args[n++] = uri;
	args[n] = NULL;
	rc = cmd_run(n, args);
	free(uri);
	return rc;
}
