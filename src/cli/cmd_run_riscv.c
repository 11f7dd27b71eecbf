/*
 * cmd_run_riscv.c - `ferry run --machine riscv64`: the RISC-V virtual
 * machine (src/machine/riscv/) booting a Linux Image, or waiting as a
 * migration's destination, driven like the reference guest: over QMP,
 * for a while, or until the guest switches itself off.
 *
 * The console is the machine's ns16550a UART: its output goes to this
 * process's standard output (or a file), and with --console stdio what is
 * typed on standard input goes to it.  With --console unix:PATH it is a
 * listening socket, as QEMU's `-serial unix:PATH,server=on,wait=off`:
 * one client at a time reads the output and types at the guest (a new
 * client replaces the old), and output while nobody is connected, or
 * more than the client's socket buffer holds, is dropped rather than
 * stall a hart.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/stream.h"
#include "size.h"
#include "vm.h"

static void riscv_usage(FILE *f)
{
	fprintf(f,
		"usage: ferry run --machine riscv64 [OPTIONS]\n"
		"  --kernel IMAGE        a RISC-V Linux Image to boot (not on a "
		"destination)\n"
		"  --initrd FILE         an initramfs for it\n"
		"  --append CMDLINE      the kernel command line (default "
		"\"console=ttyS0\")\n"
		"  --ram SIZE            guest RAM, a multiple of 2 MiB (default "
		"512M)\n"
		"  --smp N               harts, each on its own thread (default "
		"1, at most 8)\n"
		"  --console WHERE       stdio (default: output to standard "
		"output,\n"
		"                        standard input typed at the guest) | "
		"none | FILE\n"
		"                        (output appended to FILE) | unix:PATH "
		"(a socket\n"
		"                        one client at a time connects to)\n"
		"  --dirty BACKEND       uffd | explicit (default uffd)\n"
		"  --duration SECONDS    stop after this long (default: until "
		"Ctrl-C,\n"
		"                        quit, or the guest powers off)\n"
		"  --qmp unix:PATH|tcp:HOST:PORT\n"
		"                        a QMP control socket\n"
		"  --incoming URI|defer  be a migration destination (no "
		"--kernel:\n"
		"                        the source's state is loaded)\n" CLI_TLS_USAGE
			CLI_MIG_USAGE);
}

struct console {
	int fd;		      /* output; -1: discarded */
	int in;		      /* input: standard input, or -1 */
	int lfd;	      /* unix:PATH: the listener, or -1 */
	pthread_mutex_t lock; /* client's fd: not closed during a send */
	int client;	      /* lock: unix:PATH's connected client, or -1 */
	struct rv_vm *vm;
	atomic_bool quit; /* the reader leaves within its poll interval */
};

static void console_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct console *c = opaque;

	/* never blocking: this runs on a hart's thread, under the UART */
	pthread_mutex_lock(&c->lock);
	if (c->client >= 0)
		(void)send(c->client, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	pthread_mutex_unlock(&c->lock);
	while (c->fd >= 0 && len) {
		ssize_t n = write(c->fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* a closed console loses output, not the guest */
		buf += n;
		len -= (size_t)n;
	}
}

static int console_listen(struct console *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path))
		return cli_fail("--console unix:%s: the path is longer than "
				"%zu bytes",
				path, sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, path);
	/* a socket left by an earlier run goes; anything else stays */
	if (!lstat(path, &st) && S_ISSOCK(st.st_mode))
		unlink(path);
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->lfd < 0 ||
	    bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(c->lfd, 1) < 0)
		return cli_fail("--console unix:%s: %s", path, strerror(errno));
	return 0;
}

/* Input to the guest from standard input or the socket's client, and
 * the socket's clients coming and going; until quit. */
static void *console_in(void *opaque)
{
	struct console *c = opaque;
	uint8_t buf[256];
	ssize_t n;

	while (!atomic_load(&c->quit)) {
		struct pollfd p[3];
		int np = 0, cfd, i;

		pthread_mutex_lock(&c->lock);
		cfd = c->client; /* only this thread changes it */
		pthread_mutex_unlock(&c->lock);

		if (c->in >= 0)
			p[np++] = (struct pollfd){ .fd = c->in,
						   .events = POLLIN };
		if (c->lfd >= 0)
			p[np++] = (struct pollfd){ .fd = c->lfd,
						   .events = POLLIN };
		if (cfd >= 0)
			p[np++] =
				(struct pollfd){ .fd = cfd, .events = POLLIN };
		if (!np || poll(p, (nfds_t)np, 100) <= 0) {
			if (!np)
				usleep(100000);
			continue;
		}
		for (i = 0; i < np; i++) {
			if (!p[i].revents)
				continue;
			if (p[i].fd == c->lfd) {
				int nfd = accept4(c->lfd, NULL, NULL,
						  SOCK_CLOEXEC);

				if (nfd >= 0) { /* the newest client wins */
					pthread_mutex_lock(&c->lock);
					if (c->client >= 0)
						close(c->client);
					c->client = nfd;
					pthread_mutex_unlock(&c->lock);
				}
				continue;
			}
			n = read(p[i].fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) { /* that input ended */
				if (p[i].fd == c->in) {
					c->in = -1;
				} else {
					pthread_mutex_lock(&c->lock);
					c->client = -1;
					close(p[i].fd);
					pthread_mutex_unlock(&c->lock);
				}
				continue;
			}
			rv_vm_console_input(c->vm, buf, (size_t)n);
		}
	}
	return NULL;
}

static bool halted(void *opaque)
{
	return rv_vm_halted(opaque);
}

static json_t *info(void *opaque)
{
	struct rv_vm_info in;

	rv_vm_info(opaque, &in);
	return json_pack("{s:s,s:i,s:i,s:I,s:b,s:b,s:I}", "machine", "riscv64",
			 "harts", (int)in.nharts, "harts-started",
			 (int)in.harts_started, "instructions",
			 (json_int_t)in.instret, "running", in.running,
			 "halted", in.halted, "console-bytes",
			 (json_int_t)in.console_bytes);
}

/* What `ferry run --machine riscv64` was asked, beside the machine's
 * configuration. */
struct riscv_args {
	const char *qmp_uri, *incoming, *console;
	double duration;
};

#define RISCV_GO (-1) /* riscv_parse: go on */

/* The command line into cfg and a: RISCV_GO, or the exit status. */
static int riscv_parse(int argc, char **argv, struct rv_vm_config *cfg,
		       struct riscv_args *a)
{
	static const struct option opts[] = {
		{ "machine", required_argument, NULL, 'M' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "append", required_argument, NULL, 'a' },
		{ "ram", required_argument, NULL, 'r' },
		{ "smp", required_argument, NULL, 'c' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "console", required_argument, NULL, 'C' },
		{ "dirty", required_argument, NULL, 'd' },
		{ "duration", required_argument, NULL, 't' },
		{ "qmp", required_argument, NULL, 'q' },
		{ "incoming", required_argument, NULL, 'I' },
		CLI_TLS_OPTIONS,
		CLI_MIG_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long v;
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'M':
			if (strcmp(optarg, "riscv64"))
				return cli_fail("--machine: '%s' is not a "
						"machine (reference, riscv64)",
						optarg);
			break;
		case 'k':
			cfg->kernel = optarg;
			break;
		case 'i':
			cfg->initrd = optarg;
			break;
		case 'a':
			cfg->cmdline = optarg;
			break;
		case 'r':
			if (ferry_parse_size(optarg, &cfg->ram_size) ||
			    !cfg->ram_size || cfg->ram_size % (2u << 20))
				return cli_fail("--ram: '%s' is not a size "
						"that is a multiple of 2 MiB "
						"(like 512M or 1G)",
						optarg);
			if (cli_ram_fits(optarg, cfg->ram_size))
				return 1;
			break;
		case 'c':
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v < 1 || v > 8)
				return cli_fail("--smp: '%s' is not a number "
						"of harts from 1 to 8",
						optarg);
			cfg->nharts = (unsigned)v;
			break;
		case 'C':
			a->console = optarg;
			break;
		case 'd':
			cfg->dirty = optarg;
			break;
		case 't':
			if (cli_parse_seconds("--duration", optarg,
					      &a->duration))
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
			riscv_usage(stdout);
			return 0;
		default:
			riscv_usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		return cli_fail("run: unexpected argument '%s'", argv[optind]);
	if (a->incoming && cfg->kernel)
		return cli_fail("--kernel with --incoming: a destination boots "
				"nothing, the source's machine state arrives");
	if (!a->incoming && !cfg->kernel)
		return cli_fail("--machine riscv64: --kernel IMAGE is needed "
				"(or --incoming, to be a destination)");
	return RISCV_GO;
}

/* --console: none, stdio, unix:PATH (a listener) or a file to append to.
 * 0, or 1 with the error said. */
static int console_open(struct console *con, const char *console)
{
	if (!strcmp(console, "none")) {
		con->fd = -1;
	} else if (!strcmp(console, "stdio")) {
		con->in = STDIN_FILENO;
	} else if (!strncmp(console, "unix:", 5)) {
		con->fd = -1;
		if (console_listen(con, console + 5))
			return 1;
	} else {
		con->fd = open(console,
			       O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (con->fd < 0)
			return cli_fail("--console: %s: %s", console,
					strerror(errno));
	}
	return 0;
}

int cmd_run_riscv(int argc, char **argv)
{
	struct rv_vm_config cfg = {
		.nharts = 1,
		.ram_size = 512ull << 20,
		.cmdline = "console=ttyS0",
	};
	struct console con = {
		.fd = STDOUT_FILENO, .in = -1, .lfd = -1, .client = -1
	};
	struct riscv_args a = { .console = "stdio" };
	const char *console;
	struct ferry_error err = { 0 };
	struct cli_target t = { 0 };
	struct rv_vm *vm = NULL;
	uint8_t digest[16];
	char hex[33], sz[32];
	pthread_t reader;
	bool reading = false;
	int rc = 1;

	rc = riscv_parse(argc, argv, &cfg, &a);
	if (rc != RISCV_GO)
		return rc;
	console = a.console;
	if (console_open(&con, console))
		return 1;
	rc = 1;
	cfg.prealloc = a.incoming != NULL; /* first touch is not free */
	cfg.console = console_out;
	cfg.console_opaque = &con;
	if (rv_vm_create(&cfg, &vm, &err)) {
		cli_fail("run: %s", ferry_error_msg(&err));
		goto out;
	}
	con.vm = vm;
	if (rv_vm_start(vm, !a.incoming, &err)) {
		cli_fail("run: %s", ferry_error_msg(&err));
		goto out;
	}
	if (con.in >= 0 || con.lfd >= 0)
		reading = !pthread_create(&reader, NULL, console_in, &con);
	if (!a.qmp_uri && !a.incoming)
		printf("ferry run: riscv64, %s RAM, %u hart%s, kernel %s\n",
		       ferry_format_size(cfg.ram_size, sz, sizeof(sz)),
		       cfg.nharts, cfg.nharts > 1 ? "s" : "", cfg.kernel);
	fflush(stdout);
	t.vm = rv_vm_ferry(vm);
	t.halted = halted;
	t.info = info;
	t.opaque = vm;
	rc = cli_serve(&t, a.qmp_uri, a.incoming, a.duration);
	if (!rc && !a.qmp_uri && !a.incoming) {
		const struct ferry_vm *fv = rv_vm_ferry(vm);

		double t0 = cli_now(), stop_ms;

		fv->runctl.stop(fv->runctl.opaque);
		stop_ms = (cli_now() - t0) * 1e3;
		if (ferry_vm_digest(fv, digest, &err)) {
			rc = cli_fail("run: %s", ferry_error_msg(&err));
			goto out;
		}
		ferry_digest_hex(digest, hex);
		printf("ferry run: stopped every hart in %.3f ms; digest of RAM "
		       "and device state: %s\n",
		       stop_ms, hex);
	}
out:
	atomic_store(&con.quit, true);
	if (reading)
		pthread_join(reader, NULL);
	rv_vm_destroy(vm);
	if (con.fd > STDOUT_FILENO)
		close(con.fd);
	if (con.client >= 0)
		close(con.client);
	if (con.lfd >= 0) {
		close(con.lfd);
		unlink(console + 5);
	}
	return rc ? 1 : 0;
}
