/*
 * cmd_run.c - `ferry run`: start a reference guest, watch it, stop it.
 *
 * The guest runs its workload while the dirty tracker is synced once per
 * interval; each interval prints the page writes, the pages found dirty,
 * the cost of the sync and the heartbeat's longest stall.  At the end every
 * vCPU is stopped and the digest of RAM and device state is printed.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/dirty.h"
#include "ferry/guest.h"
#include "ferry/migration.h"
#include "ferry/stream.h"
#include "drive.h"
#include "qmp.h"
#include "qmp_internal.h"
#include "size.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: ferry run [OPTIONS]\n"
		"  --machine KIND        reference (default) | riscv64 (a RISC-V "
		"virtual\n"
		"                        machine booting Linux: ferry run "
		"--machine\n"
		"                        riscv64 --help)\n"
		"  --ram SIZE[,SIZE...]  RAM blocks (default 1G), e.g. 768M,256M\n"
		"  --vcpus N             workload vCPUs (default 2)\n"
		"  --fill KIND           random | zero | mixed:Z (Z%% zero pages)"
		" | text\n"
		"                        (compressible words; default random)\n"
		"  --workload SPEC       idle | stress:bytes=B,threads=N,keep=on|off\n"
		"                        | zipf:theta=T,rate=R (default idle)\n"
		"  --dirty BACKEND       uffd | explicit (default uffd)\n"
		"  --memfd               back RAM with a memfd\n"
		"  --seed N              content and workload seed (default 1)\n"
		"  --duration SECONDS    stop after this long (default: until "
		"Ctrl-C)\n"
		"  --interval SECONDS    report interval (default 1)\n"
		"  --qmp unix:PATH|tcp:HOST:PORT\n"
		"                        open a QMP control socket; the guest "
		"then\n"
		"                        runs until 'quit' (no dirty report)\n"
		"  --incoming URI|defer  be a migration destination: listen on "
		"URI\n"
		"                        (tcp:HOST:PORT, port 0 = any; "
		"unix:PATH),\n"
		"                        or wait for migrate-incoming\n" CLI_TLS_USAGE
			CLI_MIG_USAGE);
}

static int parse_ram(const char *arg, struct ferry_guest_config *cfg)
{
	char buf[256], *tok, *save = NULL;
	uint64_t total;
	unsigned i;

	if (strlen(arg) >= sizeof(buf))
		return cli_fail("--ram: value too long");
	strcpy(buf, arg);
	cfg->nblocks = 0;
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		int rc;

		if (cfg->nblocks == FERRY_GUEST_MAX_BLOCKS)
			return cli_fail("--ram: at most %d blocks",
					FERRY_GUEST_MAX_BLOCKS);
		rc = ferry_parse_size(tok, &v);
		if (rc)
			return cli_fail("--ram: '%s' is not a size (expected a "
					"number with an optional K, M, G or T "
					"suffix, like 512M or 1.5G)",
					tok);
		if (v < 4096 || v % 4096)
			return cli_fail(
				"--ram: '%s' must be a positive multiple "
				"of 4 KiB",
				tok);
		cfg->block_sizes[cfg->nblocks++] = v;
	}
	if (!cfg->nblocks)
		return cli_fail("--ram: no size given");
	for (total = 0, i = 0; i < cfg->nblocks; i++)
		total += cfg->block_sizes[i];
	return cli_ram_fits(arg, total);
}

int cli_parse_seconds(const char *opt, const char *arg, double *out)
{
	char *end;

	*out = strtod(arg, &end);
	if (!*arg || *end || !(*out > 0) || *out > 1e7)
		return cli_fail("%s: '%s' is not a positive number of seconds",
				opt, arg);
	return 0;
}

struct service {
	/* held while an event goes to qmp, so that the server is not freed
	 * under the engine's thread: qmp is set to NULL under it first */
	pthread_mutex_t lock;
	struct qmp_server *qmp; /* under lock */
	atomic_int last_state;
};

static void on_migration_event(void *opaque, enum ferry_mig_state st)
{
	struct service *sv = opaque;

	atomic_store(&sv->last_state, (int)st);
	pthread_mutex_lock(&sv->lock);
	qmp_server_event_migration(sv->qmp, st); /* only queues it */
	pthread_mutex_unlock(&sv->lock);
	printf("migration: %s\n", ferry_mig_state_name(st));
	fflush(stdout);
}

static void on_qmp_log(void *opaque, const char *msg)
{
	(void)opaque;
	fprintf(stderr, "ferry run: %s\n", msg);
}

/*
 * A guest driven from outside: over the QMP socket, and/or as the
 * destination of an incoming migration.  A destination whose migration
 * fails exits with status 1 and resumes nothing.  The guest is already
 * created, and started when it is not a destination.
 */
static const char *tls_opt[3];	   /* creds, authz, hostname */
static struct drive_opts mig_opts; /* --set, --cap */

int cli_mig_option(int opt, const char *arg)
{
	return opt == CLI_SET ? drive_add_set(&mig_opts, arg)
			      : drive_add_cap(&mig_opts, arg);
}

/* --set and --cap into the migration, through QMP's own parsers (the
 * same names, ranges and messages as migrate-set-parameters). */
static int apply_params(struct ferry_migration *mig)
{
	struct ferry_mig_params p;
	struct qmp_error e = { 0 };
	int i;

	ferry_migration_get_params(mig, &p);
	for (i = 0; i < mig_opts.nsets; i++) {
		const char *arg = mig_opts.sets[i], *eq = strchr(arg, '=');
		char name[128];
		json_t *args = json_object();
		int rc;

		snprintf(name, sizeof(name), "%.*s", (int)(eq - arg), arg);
		rc = args ? json_object_set_new(args, name,
						drive_set_value(name, eq + 1))
			  : -1;
		rc = rc ? -ENOMEM : qmp_parse_params(args, &p, &e);
		json_decref(args);
		if (rc)
			return cli_fail("--set %s: %s", arg,
					rc == -ENOMEM ? "out of memory"
						      : e.desc);
	}
	for (i = 0; i < mig_opts.ncaps; i++) {
		const char *arg = mig_opts.caps[i], *eq = strchr(arg, '=');
		json_t *args = json_pack("{s:[{s:s%,s:b}]}", "capabilities",
					 "capability", arg, (size_t)(eq - arg),
					 "state", !strcmp(eq + 1, "on"));
		int rc = args ? qmp_parse_caps(args, &p, &e) : -ENOMEM;

		json_decref(args);
		if (rc)
			return cli_fail("--cap %s: %s", arg,
					rc == -ENOMEM ? "out of memory"
						      : e.desc);
	}
	ferry_migration_set_params(mig, &p);
	return 0;
}

void cli_tls_option(int opt, const char *arg)
{
	tls_opt[opt - CLI_TLS_CREDS] = arg;
}

/* The --tls-* options onto the migration's parameters. */
static int apply_tls(struct ferry_migration *mig)
{
	static const char *const names[] = { "--tls-creds", "--tls-authz",
					     "--tls-hostname" };
	struct ferry_mig_params p;
	char *field[3];
	int i;

	ferry_migration_get_params(mig, &p);
	field[0] = p.tls_creds;
	field[1] = p.tls_authz;
	field[2] = p.tls_hostname;
	for (i = 0; i < 3; i++) {
		if (!tls_opt[i])
			continue;
		if (strlen(tls_opt[i]) >= sizeof(p.tls_creds))
			return cli_fail("%s: longer than %zu bytes", names[i],
					sizeof(p.tls_creds) - 1);
		snprintf(field[i], sizeof(p.tls_creds), "%s", tls_opt[i]);
	}
	ferry_migration_set_params(mig, &p);
	return 0;
}

int cli_serve(const struct cli_target *t, const char *qmp_uri,
	      const char *incoming, double duration)
{
	struct ferry_error err = { 0 };
	struct qmp_backend backend = { 0 };
	struct service sv = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct qmp_server *qs = NULL;
	struct ferry_migration *mig = NULL;
	struct ferry_mig_stats st;
	bool reported = false, paused = false;
	uint64_t refused = 0;
	double t0;
	int rc = 1;

	if (ferry_migration_new(t->vm, &mig, &err)) {
		cli_fail("run: %s", ferry_error_msg(&err));
		goto out;
	}
	if (apply_tls(mig) || apply_params(mig))
		goto out;
	ferry_migration_on_event(mig, on_migration_event, &sv);
	backend.vm = t->vm;
	backend.mig = mig;
	backend.guest = t->guest;
	backend.guest_info = t->info;
	backend.guest_opaque = t->opaque;
	backend.incoming = incoming != NULL;
	backend.incoming_defer = incoming && !strcmp(incoming, "defer");
	backend.log = on_qmp_log;
	/* listening first: a client that finds the control socket finds the
	 * incoming migration's uri in query-migrate */
	if (incoming && !backend.incoming_defer &&
	    ferry_migration_incoming(mig, incoming, &err)) {
		cli_fail("--incoming: %s", ferry_error_msg(&err));
		goto out;
	}
	if (qmp_uri && qmp_server_start(qmp_uri, &backend, &qs, &err)) {
		cli_fail("%s", ferry_error_msg(&err));
		goto out;
	}
	pthread_mutex_lock(&sv.lock);
	sv.qmp = qs;
	pthread_mutex_unlock(&sv.lock);
	ferry_migration_query(mig, &st);
	printf("ferry run: %s%s%s%s\n",
	       incoming ? "waiting for a migration on " : "guest running",
	       incoming ? (backend.incoming_defer ? "(defer)" : st.uri) : "",
	       qs ? ", QMP on " : "", qs ? qmp_server_uri(qs) : "");
	fflush(stdout);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	t0 = cli_now();
	rc = 0;
	while (!interrupted && !atomic_load(&backend.quit) &&
	       (!duration || cli_now() - t0 < duration)) {
		usleep(20000);
		if (t->halted && t->halted(t->opaque)) {
			printf("ferry run: the guest switched itself off\n");
			fflush(stdout);
			break;
		}
		ferry_migration_query(mig, &st);
		/* the library says nothing itself: why post-copy paused,
		 * and what it waits for, once per pause */
		if (st.state == FERRY_MIG_POSTCOPY_PAUSED && !paused) {
			printf("ferry run: post-copy paused (%s); waiting for "
			       "%s with a new uri\n",
			       st.pause_reason,
			       st.incoming ? "migrate-recover"
					   : "migrate with resume");
			fflush(stdout);
		}
		paused = st.state == FERRY_MIG_POSTCOPY_PAUSED;
		if (!incoming || reported)
			continue;
		if (st.refused < refused) /* another incoming migration */
			refused = 0;
		if (st.refused != refused) { /* strays: the log says why */
			printf("ferry run: refused %llu connection%s: %s\n",
			       (unsigned long long)(st.refused - refused),
			       st.refused - refused > 1 ? "s, the last" : "",
			       st.refused_reason);
			fflush(stdout);
			refused = st.refused;
		}
		if (st.state == FERRY_MIG_FAILED ||
		    st.state == FERRY_MIG_CANCELLED) {
			rc = cli_fail("incoming migration %s: %s",
				      ferry_mig_state_name(st.state), st.error);
			break;
		}
		if (st.state == FERRY_MIG_COMPLETED) {
			printf("ferry run: migration completed in %llu ms, %s; "
			       "guest running\n",
			       (unsigned long long)st.total_time_ms,
			       st.verified > 0 ? "verified" : "not verified");
			fflush(stdout);
			reported = true;
		}
	}
out:
	/* no event reaches the server once it is out of sv: the engine's
	 * thread may be sending one now, and it holds sv.lock meanwhile */
	pthread_mutex_lock(&sv.lock);
	sv.qmp = NULL;
	pthread_mutex_unlock(&sv.lock);
	qmp_server_stop(qs);
	ferry_migration_free(mig);
	return rc;
}

static int run_service(struct ferry_guest_config *cfg, const char *qmp_uri,
		       const char *incoming, double duration)
{
	struct ferry_error err = { 0 };
	struct ferry_guest *g = NULL;
	struct cli_target t = { 0 };
	int rc;

	if (incoming) {
		cfg->fill = FERRY_FILL_ZERO; /* the source's RAM replaces it */
		cfg->prealloc = true;	     /* first touch is not free */
	}
	if (ferry_guest_create(cfg, &g, &err) ||
	    ferry_guest_start(g, !incoming, &err)) {
		ferry_guest_destroy(g);
		return cli_fail("run: %s", ferry_error_msg(&err));
	}
	t.vm = ferry_guest_vm(g);
	t.guest = g;
	rc = cli_serve(&t, qmp_uri, incoming, duration);
	ferry_guest_destroy(g);
	return rc;
}

/* What `ferry run` was asked, beside the guest's configuration. */
struct run_args {
	const char *qmp_uri, *incoming;
	double duration, interval;
};

#define RUN_GO (-1) /* run_parse: go on */

/* The command line into cfg and a: RUN_GO, or the exit status. */
static int run_parse(int argc, char **argv, struct ferry_guest_config *cfg,
		     struct run_args *a)
{
	static const struct option opts[] = {
		{ "ram", required_argument, NULL, 'r' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "fill", required_argument, NULL, 'f' },
		{ "workload", required_argument, NULL, 'w' },
		{ "dirty", required_argument, NULL, 'd' },
		{ "memfd", no_argument, NULL, 'm' },
		{ "seed", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 't' },
		{ "interval", required_argument, NULL, 'i' },
		{ "qmp", required_argument, NULL, 'q' },
		{ "incoming", required_argument, NULL, 'I' },
		{ "machine", required_argument, NULL, 'M' },
		CLI_TLS_OPTIONS,
		CLI_MIG_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct ferry_error err = { 0 };
	unsigned long v;
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'M':
			break; /* reference: the riscv64 machine went above */
		case 'r':
			if (parse_ram(optarg, cfg))
				return 1;
			break;
		case 'c':
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v < 1 ||
			    v > FERRY_GUEST_MAX_VCPUS)
				return cli_fail("--vcpus: '%s' is not a number "
						"from 1 to %d",
						optarg, FERRY_GUEST_MAX_VCPUS);
			cfg->vcpus = (unsigned)v;
			break;
		case 'f':
			if (ferry_fill_parse(optarg, &cfg->fill,
					     &cfg->zero_percent, &err))
				return cli_fail("--fill: %s",
						ferry_error_msg(&err));
			break;
		case 'w':
			cfg->workload = optarg;
			break;
		case 'd':
			cfg->dirty = optarg;
			break;
		case 'm':
			cfg->memfd = true;
			break;
		case 's':
			cfg->seed = strtoull(optarg, &end, 0);
			if (!*optarg || *end)
				return cli_fail("--seed: '%s' is not a number",
						optarg);
			break;
		case 't':
			if (cli_parse_seconds("--duration", optarg,
					      &a->duration))
				return 1;
			break;
		case 'i':
			if (cli_parse_seconds("--interval", optarg,
					      &a->interval))
				return 1;
			break;
		case 'q':
			a->qmp_uri = optarg;
			break;
		case 'I':
			a->incoming = optarg;
			break;
		case CLI_TLS_CREDS:
		case CLI_TLS_AUTHZ:
		case CLI_TLS_HOSTNAME:
			cli_tls_option(c, optarg);
			break;
		case CLI_SET:
		case CLI_CAP:
			if (cli_mig_option(c, optarg))
				return 2;
			break;
		case 'h':
			run_usage(stdout);
			return 0;
		default:
			run_usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		return cli_fail("run: unexpected argument '%s'", argv[optind]);
	return RUN_GO;
}

/* Reporting mode: the guest runs here, and every interval says how it
 * writes and what a dirty sync costs; at the end, its digest. */
static int run_report(const struct ferry_guest_config *cfg,
		      const struct run_args *a)
{
	struct ferry_error err = { 0 };
	struct ferry_dirty_set set = { 0 };
	struct ferry_guest_stats st;
	struct ferry_guest *g = NULL;
	double t0, t, last, stop_ms;
	uint64_t total = 0, last_writes = 0;
	uint32_t ps;
	uint8_t digest[16];
	char hex[33], sz[32];
	unsigned i;
	int rc = 1;

	for (i = 0, total = 0; i < cfg->nblocks; i++)
		total += cfg->block_sizes[i];
	printf("ferry run: %s RAM in %u block%s, %u vCPU%s, workload %s, "
	       "dirty tracker %s\n",
	       ferry_format_size(total, sz, sizeof(sz)), cfg->nblocks,
	       cfg->nblocks > 1 ? "s" : "", cfg->vcpus,
	       cfg->vcpus > 1 ? "s" : "", cfg->workload, cfg->dirty);
	t0 = cli_now();
	if (ferry_guest_create(cfg, &g, &err))
		return cli_fail("run: %s", ferry_error_msg(&err));
	printf("  RAM mapped and filled in %.2f s\n", cli_now() - t0);
	ps = ferry_guest_vm(g)->page_size;
	if (ferry_dirty_start(ferry_guest_vm(g)->dirty, &err) ||
	    ferry_guest_start(g, true, &err)) {
		cli_fail("run: %s", ferry_error_msg(&err));
		goto out;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	printf("  %7s %12s %12s %12s %9s %13s\n", "time", "writes/s",
	       "dirty pages", "dirty MiB/s", "sync ms", "max stall ms");
	t0 = last = cli_now();
	while (!interrupted && (!a->duration || last - t0 < a->duration)) {
		double s0, sync_ms, span;

		usleep(20000);
		t = cli_now();
		if (t - last < a->interval &&
		    !(a->duration && t - t0 >= a->duration) && !interrupted)
			continue;
		ferry_dirty_set_reset(&set);
		s0 = cli_now();
		if (ferry_dirty_sync(ferry_guest_vm(g)->dirty, &set, &err)) {
			cli_fail("run: %s", ferry_error_msg(&err));
			goto out;
		}
		sync_ms = (cli_now() - s0) * 1e3;
		span = t - last;
		ferry_guest_stats(g, &st);
		ferry_guest_reset_stall_window(g);
		printf("  %6.1fs %12.0f %12llu %12.1f %9.3f %13.3f\n", t - t0,
		       (double)(st.writes - last_writes) / span,
		       (unsigned long long)set.pages,
		       (double)set.pages * ps / span / (1 << 20), sync_ms,
		       (double)st.window_stall_us / 1e3);
		fflush(stdout);
		last_writes = st.writes;
		last = t;
	}

	t = cli_now();
	ferry_guest_stop(g);
	stop_ms = (cli_now() - t) * 1e3;
	if (ferry_vm_digest(ferry_guest_vm(g), digest, &err)) {
		cli_fail("run: %s", ferry_error_msg(&err));
		goto out;
	}
	ferry_digest_hex(digest, hex);
	ferry_guest_stats(g, &st);
	printf("  stopped every vCPU in %.3f ms; %llu page writes, %llu "
	       "heartbeat ticks, longest stall %.3f ms\n",
	       stop_ms, (unsigned long long)st.writes,
	       (unsigned long long)st.heartbeat_ticks,
	       (double)st.max_stall_us / 1e3);
	printf("  digest of RAM and device state: %s\n", hex);
	rc = 0;
out:
	ferry_dirty_set_free(&set);
	ferry_guest_destroy(g);
	return rc;
}

int cmd_run(int argc, char **argv)
{
	struct ferry_guest_config cfg = {
		.block_sizes = { 1ull << 30 },
		.nblocks = 1,
		.vcpus = 2,
		.fill = FERRY_FILL_RANDOM,
		.seed = 1,
		.workload = "idle",
		.dirty = "uffd",
	};
	struct run_args a = { .interval = 1 };
	unsigned i;
	int rc;

	for (i = 1; i < (unsigned)argc; i++) {
		if (!strcmp(argv[i], "--machine") && i + 1 < (unsigned)argc &&
		    strcmp(argv[i + 1], "reference"))
			return cmd_run_riscv(argc, argv);
		if (!strncmp(argv[i], "--machine=", 10) &&
		    strcmp(argv[i] + 10, "reference"))
			return cmd_run_riscv(argc, argv);
	}
	rc = run_parse(argc, argv, &cfg, &a);
	if (rc != RUN_GO)
		return rc;
	if (a.qmp_uri || a.incoming)
		return run_service(&cfg, a.qmp_uri, a.incoming, a.duration);
	if (mig_opts.nsets || mig_opts.ncaps)
		return cli_fail("run: --set and --cap are for a migration: "
				"give --qmp or --incoming too");
	return run_report(&cfg, &a);
}
