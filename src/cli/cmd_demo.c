/*
 * cmd_demo.c - `ferry demo`: a destination and a source guest on this
 * machine, a migration between them over loopback, and a report.
 *
 * Both guests are real `ferry run` processes driven over their QMP
 * sockets, exactly as an operator's tool would drive them; the demo only
 * adds the bookkeeping.  With --json it prints one JSON object: the
 * source's final query-migrate, with "verified" taken from the
 * destination and the guest's own stall on the destination added as
 * guest.resume-stall-ms.  Unlike QEMU's default, the demo turns the
 * auto-converge capability on (--cap auto-converge=off turns it off).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "drive.h"
#include "guest_view.h"
#include "size.h"

#define MAX_ARGS 64

struct child {
	const char *name;
	pid_t pid;
	char log[300];
	char sock[300];
	char console[300]; /* riscv64: the guest's console */
	struct qmpc qmp;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ferry demo [guest options of ferry run]\n"
		"                  [--mode precopy|postcopy|hybrid]\n"
		"                  [--set PARAM=VALUE]... [--cap NAME=on|off]...\n"
		"                  [--transport tcp|unix|file] [--warmup SECONDS] "
		"[--json]\n"
		"  guest options: --ram --vcpus --fill --workload --dirty --seed "
		"--memfd\n"
		"  --machine riscv64   a RISC-V machine booting Linux instead "
		"(--smp --ram\n"
		"                      --kernel --initrd --append; by default "
		"the kernel and\n"
		"                      initramfs of scripts/riscv-guest.sh, "
		"fetched if missing)\n"
		"  --warmup      seconds the workload runs before migrating "
		"(default 1)\n"
		"  --json        print only the final result as one JSON object\n");
}

static int spawn(struct child *c, char *const argv[])
{
	int fd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return cli_fail("demo: %s: %s", c->log, strerror(errno));
	c->pid = fork();
	if (c->pid < 0) {
		close(fd);
		return cli_fail("demo: fork: %s", strerror(errno));
	}
	if (c->pid == 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(fd);
	return 0;
}

/* The last line a child wrote: its error, when it died. */
static void last_line(const struct child *c, char *out, size_t len)
{
	char line[512] = "";
	FILE *f = fopen(c->log, "r");

	out[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (line[0] != '\n')
			snprintf(out, len, "%s", line);
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
}

static int connect_child(struct child *c, char *err, size_t errlen)
{
	double deadline = cli_now() + 120;
	int status;

	/* the guest maps and fills its RAM before its socket appears */
	while (qmpc_connect(&c->qmp, c->sock, 0.2, err, errlen)) {
		char why[400];

		if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
			c->pid = -1;
			last_line(c, why, sizeof(why));
			snprintf(err, errlen, "the %s guest exited: %s",
				 c->name, why);
			return -ECHILD;
		}
		if (cli_now() > deadline)
			return -ETIMEDOUT;
	}
	return 0;
}

static void finish(struct child *c)
{
	char err[256];
	json_t *r;
	int i;

	if (c->qmp.fd >= 0) {
		r = qmpc_call(&c->qmp, "quit", NULL, err, sizeof(err));
		json_decref(r);
		qmpc_close(&c->qmp);
	}
	for (i = 0; c->pid > 0 && i < 300; i++) {
		if (waitpid(c->pid, NULL, WNOHANG) == c->pid) {
			c->pid = -1;
			break;
		}
		usleep(10000);
	}
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
	}
	unlink(c->log);
	if (c->console[0])
		unlink(c->console);
}

static double jnum(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

/* post-copy's blocktime as QEMU counts it, when the destination knows
 * its vCPUs: each one's, and all of them at once. */
static void print_blocktime(json_t *r)
{
	json_t *per = json_object_get(r, "postcopy-vcpu-blocktime"), *t;
	size_t i;

	if (!json_array_size(per))
		return;
	printf("  blocktime    all vCPUs blocked at once %.0f ms; each:",
	       jnum(r, "postcopy-blocktime"));
	json_array_foreach(per, i, t)
	{
		printf("%s %lld", i ? "," : "",
		       (long long)json_integer_value(t));
	}
	printf(" ms\n");
}

static void report(json_t *r, const char *uri, char *const guest_args[])
{
	json_t *ram = json_object_get(r, "ram"),
	       *g = json_object_get(r, "guest");
	json_t *v = json_object_get(r, "verified");
	const char *status = json_string_value(json_object_get(r, "status"));
	const bool saved = !strncmp(uri, "file:", 5);
	char a[32], b[32], c[32];
	int i;

	printf("ferry demo: %s %s; guest:",
	       saved ? "saved by pre-copy into, then restored from,"
	       : json_object_get(r, "postcopy-reason")
		       ? "pre-copy, then post-copy over"
		       : "pre-copy over",
	       uri);
	for (i = 0; guest_args[i]; i++)
		printf(" %s", guest_args[i]);
	printf("\n  status       %s%s\n", status,
	       !v		 ? ""
	       : json_is_true(v) ? ", verified: the digest of RAM and device "
				   "state matches on both sides"
				 : ", DIGEST MISMATCH");
	if (json_object_get(r, "error-desc"))
		printf("  error        %s\n",
		       json_string_value(json_object_get(r, "error-desc")));
	if (json_object_get(r, "guest-error"))
		printf("  guest        %s\n",
		       json_string_value(json_object_get(r, "guest-error")));
	printf("  %s   %.0f ms (setup %.0f ms)\n",
	       saved ? "save time " : "total time", jnum(r, "total-time"),
	       jnum(r, "setup-time"));
	if (json_object_get(r, "restore-time"))
		printf("  restore      %.0f ms: a new process read the file, "
		       "checked the digest and ran the guest\n",
		       jnum(r, "restore-time"));
	if (json_object_get(r, "downtime"))
		printf("  downtime     %.0f ms from stop on the source to %s\n",
		       jnum(r, "downtime"),
		       saved ? "the file written and synced to disk"
			     : "resume on the destination");
	if (ram) {
		printf("  transferred  %s in %.0f iterations (RAM %s); %.0f "
		       "Mbit/s in the last iteration\n",
		       ferry_format_size((uint64_t)jnum(ram, "transferred"), a,
					 sizeof(a)),
		       jnum(ram, "iterations"),
		       ferry_format_size((uint64_t)jnum(ram, "total"), b,
					 sizeof(b)),
		       jnum(ram, "mbps"));
		printf("  pages        %.0f sent whole, %.0f zero pages sent as "
		       "a flag\n",
		       jnum(ram, "normal"), jnum(ram, "duplicate"));
		printf("  bytes        %s while the guest ran, %s while it was "
		       "stopped\n",
		       ferry_format_size((uint64_t)jnum(ram, "precopy-bytes"),
					 a, sizeof(a)),
		       ferry_format_size((uint64_t)jnum(ram, "downtime-bytes"),
					 c, sizeof(c)));
	}
	if (json_object_get(r, "postcopy-reason") && ram) {
		json_t *l = json_object_get(r, "postcopy-fault-latency-us");

		printf("  post-copy    switched (%s) after %.0f ms; %.0f pages "
		       "(%s) followed in %.0f ms, %.0f of them asked for by "
		       "the destination\n",
		       json_string_value(json_object_get(r, "postcopy-reason")),
		       jnum(r, "total-time") - jnum(r, "postcopy-time"),
		       jnum(ram, "postcopy-pages"),
		       ferry_format_size((uint64_t)jnum(ram, "postcopy-bytes"),
					 a, sizeof(a)),
		       jnum(r, "postcopy-time"),
		       jnum(ram, "postcopy-requests"));
		if (l)
			printf("  faults       request to placement: p50 %.0f "
			       "us, p99 %.0f us, max %.0f us\n",
			       jnum(l, "p50"), jnum(l, "p99"), jnum(l, "max"));
		print_blocktime(r);
	}
	if (g && json_object_get(g, "carried-on")) {
		printf("  guest view   %s: console %s (%.0f bytes on the "
		       "source, %.0f on the destination), memcheck %s (%.0f "
		       "passes, %.0f of them before the move), longest freeze "
		       "the guest's timer saw: %s\n",
		       json_is_true(json_object_get(g, "carried-on"))
			       ? "carried on as one copy"
			       : "DID NOT CARRY ON",
		       json_is_true(json_object_get(g, "console-continuous"))
			       ? "continuous"
			       : "BROKEN (ticks missing or twice)",
		       jnum(g, "console-bytes-source"),
		       jnum(g, "console-bytes-destination"),
		       json_string_value(json_object_get(g, "memcheck")),
		       jnum(g, "memcheck-destination-passes"),
		       jnum(g, "memcheck-source-passes"),
		       jnum(g, "longest-freeze-ms") > 0
			       ? "see below"
			       : "none over its 200 ms threshold");
		if (jnum(g, "longest-freeze-ms") > 0)
			printf("               a gap of %.0f ms between two "
			       "100 ms clock reads\n",
			       jnum(g, "longest-freeze-ms"));
	} else if (g)
		printf("  guest view   longest heartbeat stall: %.1f ms at "
		       "setup, %.1f ms during the migration, %.1f ms across "
		       "the switch-over\n",
		       jnum(g, "setup-stall-ms"), jnum(g, "max-stall-ms"),
		       jnum(g, "resume-stall-ms"));
}

/*
 * The guest that scripts/riscv-guest.sh builds, in guest/riscv/cache/ of
 * the tree this binary was built in (FERRY_RISCV_CACHE names another
 * folder); the script runs first when it is not there yet.
 */
static int riscv_guest_files(char *kernel, char *initrd, size_t len)
{
	char exe[256], cache[300], cmd[700];
	const char *env = getenv("FERRY_RISCV_CACHE");
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (env) {
		snprintf(cache, sizeof(cache), "%s", env);
	} else {
		if (n <= 0)
			return cli_fail("demo: /proc/self/exe: %s",
					strerror(errno));
		exe[n] = '\0';
		/* build/ferry: the tree is the build folder's parent */
		for (int i = 0; i < 2 && (slash = strrchr(exe, '/')); i++)
			*slash = '\0';
		snprintf(cache, sizeof(cache), "%s/guest/riscv/cache", exe);
	}
	snprintf(kernel, len, "%s/Image", cache);
	snprintf(initrd, len, "%s/initramfs.cpio.gz", cache);
	if (!access(kernel, R_OK) && !access(initrd, R_OK))
		return 0;
	if (env)
		return cli_fail(
			"demo: no RISC-V guest in %s (FERRY_RISCV_CACHE)",
			cache);
	snprintf(cmd, sizeof(cmd), "'%s/scripts/riscv-guest.sh' >&2", exe);
	fprintf(stderr, "ferry demo: fetching and building the RISC-V guest "
			"(scripts/riscv-guest.sh)\n");
	if (system(cmd) || access(kernel, R_OK) || access(initrd, R_OK))
		return cli_fail("demo: no RISC-V guest: scripts/riscv-guest.sh "
				"did not build %s; give --kernel and --initrd",
				cache);
	return 0;
}

/* Wait until the child's console holds `text`: false when it exits, or
 * after `seconds`. */
static bool wait_console(struct child *c, const char *text, double seconds,
			 char *err, size_t errlen)
{
	double deadline = cli_now() + seconds;
	char why[400];

	while (!guest_view_has(c->console, text)) {
		if (waitpid(c->pid, NULL, WNOHANG) == c->pid) {
			c->pid = -1;
			last_line(c, why, sizeof(why));
			snprintf(err, errlen, "the %s guest exited: %s",
				 c->name, why);
			return false;
		}
		if (cli_now() > deadline) {
			snprintf(err, errlen,
				 "the %s guest's console shows no \"%s\" "
				 "after %.0f s",
				 c->name, text, seconds);
			return false;
		}
		usleep(100000);
	}
	return true;
}

/*
 * What the guest saw, once the destination's memcheck finished two more
 * passes: the consoles joined (ticks consecutive, none twice), the
 * longest freeze its timer measured, memcheck's verdict.  False when the
 * guest did not carry on as one clean copy.
 */
static bool riscv_guest_view(struct child *src, struct child *dst, json_t *r,
			     char *err, size_t errlen)
{
	unsigned long want = guest_view_last_pass(src->console) + 2;
	double deadline = cli_now() + 600;
	struct guest_view v;
	bool continuous, ok;

	while (guest_view_last_pass(dst->console) < want &&
	       cli_now() < deadline)
		usleep(100000);
	if (guest_view_read(src->console, dst->console, &v)) {
		snprintf(err, errlen, "cannot read the guest's consoles");
		return false;
	}
	continuous = v.dst_first_tick == v.src_last_tick + 1 &&
		     !v.tick_repeats && !v.tick_gaps;
	ok = continuous && !v.mismatches && !v.panics && v.last_pass >= want;
	json_object_set_new(
		r, "guest",
		json_pack("{s:b,s:I,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:b}",
			  "console-continuous", continuous, "tick-repeats",
			  (json_int_t)v.tick_repeats, "tick-gaps",
			  (json_int_t)v.tick_gaps, "longest-freeze-ms",
			  (json_int_t)v.longest_gap_ms, "memcheck",
			  v.mismatches ? "MISMATCH" : "ok",
			  "memcheck-source-passes", (json_int_t)v.src_last_pass,
			  "memcheck-destination-passes",
			  (json_int_t)v.last_pass, "console-bytes-source",
			  (json_int_t)v.src_bytes, "console-bytes-destination",
			  (json_int_t)v.dst_bytes, "panics",
			  (json_int_t)v.panics, "carried-on", ok));
	if (!ok)
		snprintf(err, errlen,
			 "the guest did not carry on cleanly: ticks %s, "
			 "memcheck %s (%lu passes on the destination, %lu "
			 "wanted)%s",
			 continuous ? "continuous" : "broken",
			 v.mismatches ? "found a MISMATCH" : "ok", v.last_pass,
			 want, v.panics ? ", the kernel panicked" : "");
	return ok;
}

/* What `ferry demo` was asked. */
struct demo {
	char *guest_args[MAX_ARGS]; /* both sides' guest options */
	int n;
	char *src_args[MAX_ARGS]; /* the source's alone (its boot) */
	int nsrc;
	char names[MAX_ARGS][24]; /* --NAME of the options passed on */
	int nnames;
	char kernel[320], initrd[320];
	bool riscv, have_kernel, have_append, json;
	const char *transport;
	double warmup;
	struct drive_opts d;
};

#define DEMO_GO (-1) /* demo_parse: go on */

/* The command line into dm: DEMO_GO, or the exit status. */
static int demo_parse(struct demo *dm, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ram", required_argument, NULL, 'g' },
		{ "vcpus", required_argument, NULL, 'g' },
		{ "fill", required_argument, NULL, 'g' },
		{ "workload", required_argument, NULL, 'g' },
		{ "dirty", required_argument, NULL, 'g' },
		{ "seed", required_argument, NULL, 'g' },
		{ "memfd", no_argument, NULL, 'G' },
		{ "smp", required_argument, NULL, 'g' },
		{ "machine", required_argument, NULL, 'R' },
		{ "kernel", required_argument, NULL, 'K' },
		{ "initrd", required_argument, NULL, 'K' },
		{ "append", required_argument, NULL, 'K' },
		{ "mode", required_argument, NULL, 'm' },
		{ "set", required_argument, NULL, 's' },
		{ "cap", required_argument, NULL, 'c' },
		{ "transport", required_argument, NULL, 't' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *end;
	int o, idx;

	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, &idx)) != -1) {
		switch (o) {
		case 'g':
		case 'G':
			if (dm->n + 2 >= MAX_ARGS || dm->nnames == MAX_ARGS)
				return cli_fail("demo: too many options");
			snprintf(dm->names[dm->nnames], sizeof(dm->names[0]),
				 "--%s", opts[idx].name);
			dm->guest_args[dm->n++] = dm->names[dm->nnames++];
			if (o == 'g')
				dm->guest_args[dm->n++] = optarg;
			break;
		case 'R':
			if (strcmp(optarg, "riscv64") &&
			    strcmp(optarg, "reference"))
				return cli_fail("demo: --machine %s: expected "
						"reference or riscv64",
						optarg);
			dm->riscv = !strcmp(optarg, "riscv64");
			break;
		case 'K': /* the source boots; the destination loads */
			if (dm->nsrc + 2 >= MAX_ARGS || dm->nnames == MAX_ARGS)
				return cli_fail("demo: too many options");
			snprintf(dm->names[dm->nnames], sizeof(dm->names[0]),
				 "--%s", opts[idx].name);
			dm->src_args[dm->nsrc++] = dm->names[dm->nnames++];
			dm->src_args[dm->nsrc++] = optarg;
			dm->have_kernel |= !strcmp(opts[idx].name, "kernel");
			dm->have_append |= !strcmp(opts[idx].name, "append");
			break;
		case 's':
		case 'c':
		case 'm':
			if (drive_option(&dm->d, o, optarg))
				return 1;
			break;
		case 't':
			if (strcmp(optarg, "tcp") && strcmp(optarg, "unix") &&
			    strcmp(optarg, "file"))
				return cli_fail(
					"demo: --transport %s: expected "
					"tcp, unix or file",
					optarg);
			dm->transport = optarg;
			break;
		case 'w':
			dm->warmup = strtod(optarg, &end);
			if (!*optarg || *end || dm->warmup < 0 ||
			    dm->warmup > 3600)
				return cli_fail("demo: --warmup '%s' is not a "
						"number of seconds",
						optarg);
			break;
		case 'j':
			dm->json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		return cli_fail("demo: unexpected argument '%s'", argv[optind]);
	if (dm->nsrc && !dm->riscv)
		return cli_fail("demo: --kernel, --initrd and --append are for "
				"--machine riscv64");
	return DEMO_GO;
}

/* The defaults the options left: the RISC-V guest's kernel, initrd and
 * command line, and auto-converge.  0, or the exit status. */
static int demo_defaults(struct demo *dm)
{
	int i;

	if (dm->riscv) {
		if (dm->n + 2 >= MAX_ARGS || dm->nsrc + 6 >= MAX_ARGS)
			return cli_fail("demo: too many options");
		dm->guest_args[dm->n++] = "--machine";
		dm->guest_args[dm->n++] = "riscv64";
		if (!dm->have_kernel) {
			if (riscv_guest_files(dm->kernel, dm->initrd,
					      sizeof(dm->kernel)))
				return 1;
			dm->src_args[dm->nsrc++] = "--kernel";
			dm->src_args[dm->nsrc++] = dm->kernel;
			dm->src_args[dm->nsrc++] = "--initrd";
			dm->src_args[dm->nsrc++] = dm->initrd;
		}
		if (!dm->have_append) {
			dm->src_args[dm->nsrc++] = "--append";
			dm->src_args[dm->nsrc++] =
				"console=ttyS0 ferry.workload=memcheck+timer";
		}
	}
	dm->guest_args[dm->n] = NULL;
	/* A guest that dirties memory faster than loopback carries it (the
	 * default stress demo does) converges only when throttled: the demo
	 * turns auto-converge on unless told otherwise. */
	for (i = 0; i < dm->d.ncaps; i++)
		if (!strncmp(dm->d.caps[i], "auto-converge=", 14))
			return 0;
	return drive_add_cap(&dm->d, "auto-converge=on") ? 1 : 0;
}

/* `ferry run GUEST-OPTIONS [--console FILE] --qmp unix:SOCK`, and the
 * source's boot options or the destination's --incoming uri.  The
 * strings it allocates go to owned[]. */
static void demo_argv(const struct demo *dm, struct child *src,
		      struct child *dst, const char *dir, char *uri,
		      char **argv_src, char **argv_dst, char **owned,
		      int *nowned)
{
	int i, ns, nd;

	argv_dst[0] = argv_src[0] = "ferry";
	argv_dst[1] = argv_src[1] = "run";
	for (i = 0, ns = nd = 2; i < dm->n; i++)
		argv_dst[nd++] = argv_src[ns++] = dm->guest_args[i];
	if (dm->riscv) {
		snprintf(src->console, sizeof(src->console),
			 "%s/source.console", dir);
		snprintf(dst->console, sizeof(dst->console),
			 "%s/destination.console", dir);
		argv_src[ns++] = "--console";
		argv_src[ns++] = src->console;
		argv_dst[nd++] = "--console";
		argv_dst[nd++] = dst->console;
	}
	for (i = 0; i < dm->nsrc; i++)
		argv_src[ns++] = dm->src_args[i];
	argv_src[ns++] = "--qmp";
	argv_src[ns] = owned[(*nowned)++] = malloc(strlen(src->sock) + 6);
	sprintf(argv_src[ns++], "unix:%s", src->sock);
	argv_src[ns] = NULL;
	argv_dst[nd++] = "--qmp";
	argv_dst[nd] = owned[(*nowned)++] = malloc(strlen(dst->sock) + 6);
	sprintf(argv_dst[nd++], "unix:%s", dst->sock);
	argv_dst[nd++] = "--incoming";
	argv_dst[nd++] = uri;
	argv_dst[nd] = NULL;
}

/*
 * What only the destination knows, into the source's result r: whether
 * it verified the guest, its guest's stall at resume, post-copy's fault
 * figures.  The destination's query-migrate once it is no longer active
 * (at most 30 s), or NULL with err set.
 */
static json_t *destination_view(struct child *dst, json_t *r, char *err,
				size_t len)
{
	json_t *dinfo = NULL, *dv;
	int i;

	for (i = 0; i < 600; i++) {
		const char *ds;

		dinfo = qmpc_call(&dst->qmp, "query-migrate", NULL, err, len);
		ds = dinfo ? json_string_value(json_object_get(dinfo, "status"))
			   : NULL;
		if (!ds || strcmp(ds, "active") || i == 599)
			break;
		json_decref(dinfo);
		dinfo = NULL;
		usleep(50000);
	}
	if (dinfo) {
		usleep(20000); /* a heartbeat tick or two after resume */
		json_decref(dinfo);
		dinfo = qmpc_call(&dst->qmp, "query-migrate", NULL, err, len);
	}
	dv = dinfo ? json_object_get(dinfo, "verified") : NULL;
	if (dv)
		json_object_set(r, "verified", dv);
	else
		json_object_del(r, "verified");
	if (dinfo && json_object_get(r, "guest") &&
	    json_object_get(dinfo, "guest"))
		json_object_set_new(
			json_object_get(r, "guest"), "resume-stall-ms",
			json_real(jnum(json_object_get(dinfo, "guest"),
				       "max-stall-ms")));
	if (!dinfo)
		json_object_set_new(r, "destination-error", json_string(err));
	/* post-copy: what only the destination measures */
	if (dinfo && json_object_get(dinfo, "postcopy-fault-latency-us")) {
		if (json_object_get(dinfo, "postcopy-vcpu-blocktime")) {
			json_object_set(r, "postcopy-blocktime",
					json_object_get(dinfo,
							"postcopy-blocktime"));
			json_object_set(
				r, "postcopy-vcpu-blocktime",
				json_object_get(dinfo,
						"postcopy-vcpu-blocktime"));
		}
		json_object_set(r, "postcopy-fault-latency-us",
				json_object_get(dinfo,
						"postcopy-fault-latency-us"));
	}
	return dinfo;
}

/* --transport file: once the source saved the guest, a new process
 * restores it; its total time goes into r as restore-time. */
static int restore(struct child *dst, char *const argv[], json_t *r, char *err,
		   size_t len)
{
	const char *st = json_string_value(json_object_get(r, "status"));
	json_t *d = NULL;
	bool ok;
	int i;

	if (!st || strcmp(st, "completed")) {
		snprintf(err, len, "the save did not complete (%s)",
			 st ? st : "no status");
		return -1;
	}
	if (spawn(dst, argv) || connect_child(dst, err, len))
		return -1;
	for (i = 0; i < 6000; i++) { /* until it ends, at most 10 minutes */
		json_decref(d);
		d = qmpc_call(&dst->qmp, "query-migrate", NULL, err, len);
		st = d ? json_string_value(json_object_get(d, "status")) : NULL;
		if (!st || !strcmp(st, "completed") || !strcmp(st, "failed"))
			break;
		usleep(100000);
	}
	ok = st && !strcmp(st, "completed");
	if (ok)
		json_object_set(r, "restore-time",
				json_object_get(d, "total-time"));
	else if (st)
		snprintf(err, len, "%s",
			 json_string_value(json_object_get(d, "error-desc")));
	else /* it failed and went: its last word says why */
		last_line(dst, err, len);
	json_decref(d); /* st was d's */
	return ok ? 0 : -1;
}

int cmd_demo(int argc, char **argv)
{
	char *argv_dst[2 * MAX_ARGS + 8], *argv_src[2 * MAX_ARGS + 8],
		*owned[MAX_ARGS + 4];
	int nowned = 0;
	char dir[] = "/tmp/ferry-demo-XXXXXX", uri[300], err[512];
	struct child dst = { .name = "destination", .pid = -1 };
	struct child src = { .name = "source", .pid = -1 };
	struct demo dm = { .transport = "tcp", .warmup = 1 };
	const char *status;
	json_t *r = NULL, *dinfo = NULL, *dv;
	bool saved;
	int rc = 1;

	dst.qmp.fd = src.qmp.fd = -1;
	rc = demo_parse(&dm, argc, argv);
	if (rc != DEMO_GO)
		return rc;
	rc = demo_defaults(&dm);
	if (rc)
		return rc;
	rc = 1;
	if (!mkdtemp(dir))
		return cli_fail("demo: mkdtemp: %s", strerror(errno));
	snprintf(dst.log, sizeof(dst.log), "%s/destination.log", dir);
	snprintf(src.log, sizeof(src.log), "%s/source.log", dir);
	snprintf(dst.sock, sizeof(dst.sock), "%s/destination.qmp", dir);
	snprintf(src.sock, sizeof(src.sock), "%s/source.qmp", dir);
	saved = !strcmp(dm.transport, "file");
	if (!strcmp(dm.transport, "tcp"))
		snprintf(uri, sizeof(uri), "tcp:127.0.0.1:0");
	else if (saved) /* saved by the source, then restored by a new one */
		snprintf(uri, sizeof(uri), "file:%s/guest.sav", dir);
	else
		snprintf(uri, sizeof(uri), "unix:%s/migration.sock", dir);
	demo_argv(&dm, &src, &dst, dir, uri, argv_src, argv_dst, owned,
		  &nowned);

	if ((!saved && spawn(&dst, argv_dst)) || spawn(&src, argv_src))
		goto out;
	if ((!saved && connect_child(&dst, err, sizeof(err))) ||
	    connect_child(&src, err, sizeof(err))) {
		cli_fail("demo: %s", err);
		goto out;
	}
	if (!saved) {
		dinfo = qmpc_call(&dst.qmp, "query-migrate", NULL, err,
				  sizeof(err));
		if (!dinfo) {
			cli_fail("demo: destination: %s", err);
			goto out;
		}
		snprintf(uri, sizeof(uri), "%s",
			 json_string_value(json_object_get(dinfo, "uri")));
		json_decref(dinfo);
		dinfo = NULL;
	}
	if ((!saved && drive_apply(&dst.qmp, &dm.d, false, err, sizeof(err))) ||
	    drive_apply(&src.qmp, &dm.d, true, err, sizeof(err))) {
		cli_fail("demo: %s", err);
		goto out;
	}
	if (dm.riscv) { /* booted, and memcheck has verified its memory once */
		if (!dm.json)
			fprintf(stderr, "ferry demo: booting Linux on the "
					"riscv64 machine\n");
		if (!wait_console(&src, "ferry-memcheck: pass 1 ok", 900, err,
				  sizeof(err))) {
			cli_fail("demo: %s", err);
			goto out;
		}
	}
	usleep((useconds_t)(dm.warmup * 1e6));
	r = drive_migrate(&src.qmp, &dm.d, uri,
			  !dm.json && isatty(STDERR_FILENO), err, sizeof(err));
	if (!r) {
		cli_fail("demo: source: %s", err);
		goto out;
	}
	if (saved && restore(&dst, argv_dst, r, err, sizeof(err))) {
		cli_fail("demo: restore: %s", err);
		goto out;
	}
	dinfo = destination_view(&dst, r, err, sizeof(err));
	dv = json_object_get(r, "verified");
	status = json_string_value(json_object_get(r, "status"));
	rc = status && !strcmp(status, "completed") && (!dv || json_is_true(dv))
		     ? 0
		     : 1;
	if (!rc && dm.riscv &&
	    !riscv_guest_view(&src, &dst, r, err, sizeof(err))) {
		json_object_set_new(r, "guest-error", json_string(err));
		rc = 1;
	}
	if (dm.json) {
		char *text = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);

		printf("%s\n", text);
		free(text);
	} else {
		report(r, uri, dm.guest_args);
	}
out:
	json_decref(r);
	json_decref(dinfo);
	finish(&src);
	finish(&dst);
	if (saved) {
		snprintf(uri, sizeof(uri), "%s/guest.sav", dir);
		unlink(uri);
	}
	rmdir(dir);
	while (nowned)
		free(owned[--nowned]);
	return rc;
}
