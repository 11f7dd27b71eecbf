/*
 * qmp_commands.c - the QMP commands, with QEMU's names and argument
 * shapes: qmp_capabilities (in qmp.c), query-status, stop, cont, quit,
 * migrate, migrate-incoming, migrate_cancel, query-migrate,
 * migrate-set-parameters, query-migrate-parameters,
 * migrate-set-capabilities, query-migrate-capabilities, query-commands,
 * getfd and closefd (descriptors for "fd:NAME"), and the rest below.
 * Their arguments are checked and parsed by qmp_parse.c; here they act.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "qmp_internal.h"

static json_t *fail(struct qmp_error *e, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static json_t *fail(struct qmp_error *e, const char *cls, const char *fmt, ...)
{
	va_list ap;

	e->cls = cls;
	va_start(ap, fmt);
	vsnprintf(e->desc, sizeof(e->desc), fmt, ap);
	va_end(ap);
	return NULL;
}

static bool vm_running(const struct qmp_backend *b)
{
	return b->vm->runctl.running &&
	       b->vm->runctl.running(b->vm->runctl.opaque);
}

static json_t *cmd_query_status(struct qmp_backend *b, json_t *args,
				struct qmp_error *e)
{
	struct ferry_mig_stats st;
	bool running = vm_running(b);
	const char *status = running ? "running" : "paused";

	(void)args, (void)e;
	ferry_migration_query(b->mig, &st);
	if (st.incoming && st.state != FERRY_MIG_COMPLETED && !running)
		status = "inmigrate";
	else if (!st.incoming && st.guest_away && !running)
		status = "postmigrate"; /* it may run on the destination */
	return json_pack("{s:b,s:b,s:s}", "running", running, "singlestep", 0,
			 "status", status);
}

static bool migrating(struct qmp_backend *b)
{
	struct ferry_mig_stats st;

	ferry_migration_query(b->mig, &st);
	/* a destination still waiting for its connection may be set up */
	return (st.state == FERRY_MIG_SETUP && !st.incoming) ||
	       st.state == FERRY_MIG_ACTIVE || st.state == FERRY_MIG_DEVICE ||
	       st.state == FERRY_MIG_POSTCOPY_ACTIVE ||
	       st.state == FERRY_MIG_POSTCOPY_PAUSED ||
	       st.state == FERRY_MIG_POSTCOPY_RECOVER ||
	       st.state == FERRY_MIG_CANCELLING;
}

static json_t *cmd_stop(struct qmp_backend *b, json_t *args,
			struct qmp_error *e)
{
	(void)args, (void)e;
	b->vm->runctl.stop(b->vm->runctl.opaque);
	return json_object();
}

/* cont; ferry's x-force takes back a guest that migrated away */
static json_t *cmd_cont(struct qmp_backend *b, json_t *args,
			struct qmp_error *e)
{
	struct ferry_error err = { 0 };
	bool force;

	if (qmp_parse_cont(args, &force, e))
		return NULL;
	if (ferry_migration_cont(b->mig, force, &err))
		return fail(e, NULL, "%s", ferry_error_msg(&err));
	return json_object();
}

static json_t *cmd_quit(struct qmp_backend *b, json_t *args,
			struct qmp_error *e)
{
	(void)args, (void)e;
	atomic_store(&b->quit, true);
	return json_object();
}

/* ---- descriptors: getfd, closefd, and "fd:NAME" ------------------------ */

static int fd_find(const struct qmp_fds *f, const char *name)
{
	for (int i = 0; f && i < QMP_MAX_FDS; i++)
		if (f->named[i].name[0] && !strcmp(f->named[i].name, name))
			return i;
	return -1;
}

static json_t *cmd_getfd(struct qmp_backend *b, json_t *args,
			 struct qmp_error *e)
{
	struct qmp_fds *f = b->fds;
	const char *name;
	int fd, i;

	if (qmp_parse_fdname(args, &name, e))
		return NULL;
	if (!f || !f->npassed || !*f->npassed)
		return fail(e, NULL,
			    "No file descriptor supplied via "
			    "SCM_RIGHTS");
	fd = f->passed[0]; /* the oldest this client passed */
	memmove(f->passed, f->passed + 1, --*f->npassed * sizeof(int));
	if (isdigit((unsigned char)name[0]) || !name[0] ||
	    strlen(name) > QMP_FDNAME_MAX) {
		close(fd);
		return fail(e, NULL,
			    "Parameter 'fdname' expects a name not starting "
			    "with a digit, of 1 to %d bytes",
			    QMP_FDNAME_MAX);
	}
	i = fd_find(f, name);
	if (i >= 0) { /* the name is given again: the new one has it */
		close(f->named[i].fd);
	} else {
		for (i = 0; i < QMP_MAX_FDS && f->named[i].name[0]; i++)
			;
		if (i == QMP_MAX_FDS) {
			close(fd);
			return fail(e, NULL,
				    "%d descriptors are named already: "
				    "closefd one first",
				    QMP_MAX_FDS);
		}
		snprintf(f->named[i].name, sizeof(f->named[i].name), "%s",
			 name);
	}
	f->named[i].fd = fd;
	return json_object();
}

static json_t *cmd_closefd(struct qmp_backend *b, json_t *args,
			   struct qmp_error *e)
{
	const char *name;
	int i;

	if (qmp_parse_fdname(args, &name, e))
		return NULL;
	i = fd_find(b->fds, name);
	if (i < 0)
		return fail(e, NULL, "File descriptor named '%s' not found",
			    name);
	close(b->fds->named[i].fd);
	b->fds->named[i].name[0] = '\0';
	return json_object();
}

/*
 * A uri "fd:NAME" naming a descriptor getfd took: "fd:N" into buf and its
 * entry into *slot, which the caller releases (fd_claimed) once the call
 * using it succeeds, the descriptor then being the migration's.  Any
 * other uri is returned as it is (*slot -1); NULL: no such name.
 */
static const char *fd_uri(struct qmp_backend *b, const char *uri, char *buf,
			  size_t len, int *slot, struct qmp_error *e)
{
	*slot = -1;
	if (strncmp(uri, "fd:", 3) || !uri[3])
		return uri;
	/* a number would hand the migration any descriptor of this
	 * process: one getfd named, the control socket's own */
	if (isdigit((unsigned char)uri[3])) {
		fail(e, NULL,
		     "fd:%s: over QMP, name a descriptor passed with getfd "
		     "(fd:NAME); a number is for descriptors ferry run "
		     "inherited (--incoming fd:N)",
		     uri + 3);
		return NULL;
	}
	*slot = fd_find(b->fds, uri + 3);
	if (*slot < 0) {
		fail(e, NULL, "File descriptor named '%s' has not been found",
		     uri + 3);
		return NULL;
	}
	snprintf(buf, len, "fd:%d", b->fds->named[*slot].fd);
	return buf;
}

static void fd_claimed(struct qmp_backend *b, int slot)
{
	if (slot >= 0)
		b->fds->named[slot].name[0] = '\0';
}

static json_t *cmd_migrate(struct qmp_backend *b, json_t *args,
			   struct qmp_error *e)
{
	struct ferry_error err = { 0 };
	struct qmp_migrate_args a;
	struct ferry_mig_stats st;
	char buf[32];
	int slot;

	if (qmp_parse_migrate(args, &a, e))
		return NULL;
	a.uri = fd_uri(b, a.uri, buf, sizeof(buf), &slot, e);
	if (!a.uri)
		return NULL;
	ferry_migration_query(b->mig, &st);
	if (st.incoming && st.state != FERRY_MIG_COMPLETED)
		return fail(e, NULL,
			    "Guest is an incoming migration "
			    "destination; it cannot migrate out "
			    "before it has arrived");
	if (a.resume) {
		/* a paused post-copy connects again, to migrate-recover's
		 * uri */
		if (ferry_migration_resume(b->mig, a.uri, &err))
			return fail(e, NULL, "%s", ferry_error_msg(&err));
		fd_claimed(b, slot);
		return json_object();
	}
	if (a.blk)
		return fail(e, NULL, "Block migration is not supported");
	if (ferry_migration_start(b->mig, a.uri, &err))
		return fail(e, NULL, "%s", ferry_error_msg(&err));
	fd_claimed(b, slot);
	return json_object();
}

static json_t *cmd_migrate_incoming(struct qmp_backend *b, json_t *args,
				    struct qmp_error *e)
{
	struct ferry_error err = { 0 };
	const char *uri;
	char buf[32];
	int slot;

	if (qmp_parse_migrate_incoming(args, &uri, e))
		return NULL;
	if (!b->incoming_defer)
		return fail(e, NULL,
			    "'-incoming' was not specified on the "
			    "command line (start with --incoming "
			    "defer)");
	uri = fd_uri(b, uri, buf, sizeof(buf), &slot, e);
	if (!uri)
		return NULL;
	if (ferry_migration_incoming(b->mig, uri, &err))
		return fail(e, NULL, "%s", ferry_error_msg(&err));
	fd_claimed(b, slot);
	b->incoming_defer = false;
	return json_object();
}

static json_t *cmd_start_postcopy(struct qmp_backend *b, json_t *args,
				  struct qmp_error *e)
{
	struct ferry_error err = { 0 };

	(void)args;
	if (ferry_migration_start_postcopy(b->mig, &err))
		return fail(e, NULL, "%s", ferry_error_msg(&err));
	return json_object();
}

static json_t *cmd_migrate_recover(struct qmp_backend *b, json_t *args,
				   struct qmp_error *e)
{
	struct ferry_error err = { 0 };
	const char *uri;
	char buf[32];
	int slot;

	if (qmp_parse_migrate_incoming(args, &uri, e)) /* the same: a uri */
		return NULL;
	uri = fd_uri(b, uri, buf, sizeof(buf), &slot, e);
	if (!uri)
		return NULL;
	if (ferry_migration_recover(b->mig, uri, &err))
		return fail(e, NULL, "%s", ferry_error_msg(&err));
	fd_claimed(b, slot);
	return json_object();
}

static json_t *cmd_migrate_pause(struct qmp_backend *b, json_t *args,
				 struct qmp_error *e)
{
	struct ferry_error err = { 0 };

	(void)args;
	if (ferry_migration_pause(b->mig, &err))
		return fail(e, NULL, "%s", ferry_error_msg(&err));
	return json_object();
}

static json_t *cmd_migrate_cancel(struct qmp_backend *b, json_t *args,
				  struct qmp_error *e)
{
	(void)args, (void)e;
	ferry_migration_cancel(b->mig);
	return json_object();
}

/* query-migrate's `ram`, and the xbzrle cache's figures. */
static void info_ram(json_t *r, const struct ferry_mig_stats *st)
{
	json_object_set_new(
		r, "ram",
		json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:I,"
			  "s:I}",
			  "transferred", (json_int_t)st->transferred,
			  "remaining", (json_int_t)st->remaining, "total",
			  (json_int_t)st->total, "duplicate",
			  (json_int_t)st->duplicate, "normal",
			  (json_int_t)st->normal, "normal-bytes",
			  (json_int_t)st->normal_bytes, "mbps", st->mbps,
			  "pages-per-second", (json_int_t)st->pages_per_second,
			  "dirty-pages-rate", (json_int_t)st->dirty_pages_rate,
			  "dirty-sync-count", (json_int_t)st->dirty_sync_count,
			  "precopy-bytes", (json_int_t)st->precopy_bytes,
			  "downtime-bytes", (json_int_t)st->downtime_bytes,
			  "iterations", (json_int_t)st->iterations));
	json_object_set_new(json_object_get(r, "ram"), "page-size",
			    json_integer((json_int_t)st->page_size));
	json_object_set_new(json_object_get(r, "ram"), "multifd-bytes",
			    json_integer((json_int_t)st->multifd_bytes));
	/* QEMU's count of pages its bulk stage skipped; ferry skips none */
	json_object_set_new(json_object_get(r, "ram"), "skipped",
			    json_integer(0));
	json_object_set_new(json_object_get(r, "ram"), "unchanged",
			    json_integer((json_int_t)st->unchanged));
	if (!st->incoming)
		json_object_set_new(json_object_get(r, "ram"),
				    "unchanged-checked",
				    json_integer((json_int_t)st->checked));
	json_object_set_new(json_object_get(r, "ram"), "unchanged-stale",
			    json_integer((json_int_t)st->stale));
	if (st->xbzrle_cache_size && !st->incoming)
		json_object_set_new(
			r, "xbzrle-cache",
			json_pack("{s:I,s:I,s:I,s:I,s:f,s:f,s:I}", "cache-size",
				  (json_int_t)st->xbzrle_cache_size, "bytes",
				  (json_int_t)st->xbzrle_bytes, "pages",
				  (json_int_t)st->xbzrle_pages, "cache-miss",
				  (json_int_t)st->xbzrle_cache_miss,
				  "cache-miss-rate",
				  st->xbzrle_lookups
					  ? (double)st->xbzrle_cache_miss /
						    (double)st->xbzrle_lookups
					  : 0.0,
				  "encoding-rate",
				  st->xbzrle_bytes
					  ? (double)st->xbzrle_pages *
						    st->page_size /
						    (double)st->xbzrle_bytes
					  : 0.0,
				  "overflow", (json_int_t)st->xbzrle_overflow));
	if (!st->incoming)
		json_object_set_new(
			json_object_get(r, "ram"), "page-hash-bytes",
			json_integer((json_int_t)st->page_hash_bytes));
	if (!st->incoming)
		json_object_set_new(
			json_object_get(r, "ram"), "deferred",
			json_integer((json_int_t)st->deferred_pages));
}

/* What compression and codec-auto did. */
static void info_codecs(json_t *r, const struct ferry_mig_stats *st)
{
	if (st->compressed_pages)
		json_object_set_new(
			r, "compression",
			json_pack("{s:I,s:I,s:f,s:I,s:f}", "pages",
				  (json_int_t)st->compressed_pages, "busy",
				  (json_int_t)0, "busy-rate", 0.0,
				  "compressed-size",
				  (json_int_t)st->compressed_bytes,
				  "compression-rate",
				  (double)st->compressed_pages * st->page_size /
					  (double)st->compressed_bytes));
	if (st->codec_auto && !st->incoming) {
		static const char *const opt[] = { "none", "lz4", "zstd" };
		json_t *a = json_pack("{s:s,s:f}", "choice",
				      opt[st->auto_choice % 3], "link-mbps",
				      st->auto_link_mbps);
		int k;

		for (k = 0; k < 3; k++)
			json_object_set_new(
				a, opt[k],
				json_pack("{s:I,s:f,s:I}", "pages",
					  (json_int_t)st->auto_pages[k],
					  "cpu-ms",
					  (double)st->auto_cpu_ns[k] / 1e6,
					  "saved-bytes",
					  (json_int_t)st->auto_saved[k]));
		json_object_set_new(r, "codec-auto", a);
	}
}

/* Post-copy's figures, on each side its own. */
static void info_postcopy(json_t *r, const struct ferry_mig_stats *st)
{
	/* as QEMU's, present (0) without post-copy too */
	json_object_set_new(json_object_get(r, "ram"), "postcopy-requests",
			    json_integer((json_int_t)st->postcopy_requests));
	json_object_set_new(json_object_get(r, "ram"), "postcopy-bytes",
			    json_integer((json_int_t)st->postcopy_bytes));
	if (st->postcopy) {
		json_object_set_new(
			json_object_get(r, "ram"), "postcopy-pages",
			json_integer((json_int_t)st->postcopy_pages));
		json_object_set_new(
			r, "postcopy-recoveries",
			json_integer((json_int_t)st->postcopy_recoveries));
		if (st->pause_reason[0])
			json_object_set_new(r, "postcopy-pause-reason",
					    json_string(st->pause_reason));
		if (st->incoming && st->postcopy_vcpus) {
			json_t *per = json_array();

			/* QEMU's: all vCPUs blocked at once, and each */
			for (unsigned v = 0; v < st->postcopy_vcpus; v++)
				json_array_append_new(
					per,
					json_integer(
						(json_int_t)st
							->postcopy_vcpu_blocktime_ms
								[v]));
			json_object_set_new(
				r, "postcopy-blocktime",
				json_integer(
					(json_int_t)st->postcopy_blocktime_ms));
			json_object_set_new(r, "postcopy-vcpu-blocktime", per);
		}
		if (st->incoming) {
			json_object_set_new(
				r, "resume-time",
				json_integer((json_int_t)st->resume_ms));
			json_object_set_new(
				r, "postcopy-fault-latency-us",
				json_pack("{s:I,s:I,s:I}", "p50",
					  (json_int_t)st->fault_p50_us, "p99",
					  (json_int_t)st->fault_p99_us, "max",
					  (json_int_t)st->fault_max_us));
		} else {
			json_object_set_new(r, "postcopy-reason",
					    json_string(st->postcopy_reason));
			json_object_set_new(
				r, "postcopy-time",
				json_integer((json_int_t)st->postcopy_time_ms));
		}
	}
}

/* The rdma transport's figures. */
static void info_rdma(json_t *r, const struct ferry_mig_stats *st)
{
	if (st->rdma) {
		json_t *o = json_pack(
			"{s:s,s:b,s:I,s:I,s:I}", "provider", st->rdma_provider,
			"pin-all", st->rdma_pin_all, "chunks-registered",
			(json_int_t)st->rdma_chunks_registered, "zero-messages",
			(json_int_t)st->rdma_zero_messages, "write-bytes",
			(json_int_t)st->rdma_write_bytes);

		if (!st->incoming) {
			json_object_set_new(
				o, "register-requests",
				json_integer(
					(json_int_t)st->rdma_register_requests));
			json_object_set_new(
				o, "register-time",
				json_integer((json_int_t)st->rdma_register_ms));
			json_object_set_new(
				o, "writes",
				json_integer((json_int_t)st->rdma_writes));
			json_object_set_new(
				o, "completions",
				json_integer((json_int_t)st->rdma_completions));
		}
		json_object_set_new(r, "rdma", o);
	}
}

/* QEMU's socket-address for a destination's uri: [SocketAddress]. */
static json_t *socket_address(const char *uri)
{
	const char *colon;

	if (!strncmp(uri, "unix:", 5))
		return json_pack("[{s:s,s:s}]", "type", "unix", "path",
				 uri + 5);
	if (strncmp(uri, "tcp:", 4) && strncmp(uri, "rdma:", 5))
		return NULL;
	uri = strchr(uri, ':') + 1;
	colon = strrchr(uri, ':');
	if (!colon)
		return NULL;
	return json_pack("[{s:s,s:s%,s:s}]", "type", "inet", "host", uri,
			 (size_t)(colon - uri), "port", colon + 1);
}

json_t *qmp_migrate_info(const struct ferry_mig_stats *st)
{
	bool running = st->state == FERRY_MIG_SETUP ||
		       st->state == FERRY_MIG_ACTIVE ||
		       st->state == FERRY_MIG_DEVICE ||
		       st->state == FERRY_MIG_POSTCOPY_ACTIVE ||
		       st->state == FERRY_MIG_CANCELLING;
	json_t *r;

	if (st->state == FERRY_MIG_NONE)
		return json_object();
	r = json_pack("{s:s,s:I,s:I,s:s}", "status",
		      ferry_mig_state_name(st->state), "total-time",
		      (json_int_t)st->total_time_ms, "setup-time",
		      (json_int_t)st->setup_time_ms, "uri", st->uri);
	if (st->state == FERRY_MIG_COMPLETED && !st->incoming)
		json_object_set_new(r, "downtime",
				    json_integer((json_int_t)st->downtime_ms));
	if (st->downtime_overrun_ms) /* ferry's: over downtime-limit */
		json_object_set_new(
			r, "downtime-overrun",
			json_pack("{s:I,s:s}", "ms",
				  (json_int_t)st->downtime_overrun_ms, "why",
				  st->downtime_overrun));
	if (st->incoming) {
		json_t *sa = socket_address(st->uri);

		if (sa)
			json_object_set_new(r, "socket-address", sa);
	}
	if (running && !st->incoming)
		json_object_set_new(
			r, "expected-downtime",
			json_integer((json_int_t)st->expected_downtime_ms));
	info_ram(r, st);
	info_codecs(r, st);
	info_postcopy(r, st);
	info_rdma(r, st);
	if (st->tls) /* ferry's: the main connection's TLS session */
		json_object_set_new(
			r, "tls",
			json_pack("{s:s,s:s,s:s,s:b}", "version",
				  st->tls_version, "cipher", st->tls_cipher,
				  "peer", st->tls_peer, "ktls", st->tls_ktls));
	if (st->refused) { /* ferry's: strays a destination refused */
		json_object_set_new(r, "refused-connections",
				    json_integer((json_int_t)st->refused));
		json_object_set_new(r, "refused-reason",
				    json_string(st->refused_reason));
	}
	if (st->throttle_percent)
		json_object_set_new(r, "cpu-throttle-percentage",
				    json_integer(st->throttle_percent));
	if (st->have_stall)
		json_object_set_new(
			r, "guest",
			json_pack("{s:f,s:f}", "max-stall-ms",
				  (double)st->max_stall_us / 1e3,
				  "setup-stall-ms",
				  (double)st->setup_stall_us / 1e3));
	if (st->verified)
		json_object_set_new(r, "verified",
				    json_boolean(st->verified > 0));
	if (st->error[0] &&
	    (st->state == FERRY_MIG_FAILED || st->state == FERRY_MIG_CANCELLED))
		json_object_set_new(r, "error-desc", json_string(st->error));
	return r;
}

static json_t *cmd_query_migrate(struct qmp_backend *b, json_t *args,
				 struct qmp_error *e)
{
	struct ferry_mig_stats st;

	(void)args, (void)e;
	ferry_migration_query(b->mig, &st);
	return qmp_migrate_info(&st);
}

static json_t *cmd_set_params(struct qmp_backend *b, json_t *args,
			      struct qmp_error *e)
{
	struct ferry_mig_params p;

	ferry_migration_get_params(b->mig, &p);
	if (qmp_parse_params(args, &p, e))
		return NULL;
	ferry_migration_set_params(b->mig, &p);
	return json_object();
}

static json_t *cmd_query_params(struct qmp_backend *b, json_t *args,
				struct qmp_error *e)
{
	struct ferry_mig_params p;
	json_t *r = json_object();
	size_t i;

	(void)args, (void)e;
	ferry_migration_get_params(b->mig, &p);
	for (i = 0; i < qmp_nparams; i++) {
		const char *f = (const char *)&p + qmp_params[i].offset;
		uint64_t v = qmp_params[i].is_u64
				     ? *(const uint64_t *)(const void *)f
				     : *(const unsigned *)(const void *)f;

		json_object_set_new(r, qmp_params[i].name,
				    json_integer((json_int_t)v));
	}
	json_object_set_new(r, "codec-auto", json_boolean(p.codec_auto));
	json_object_set_new(r, "defer-hot-pages",
			    json_boolean(p.defer_hot_pages));
	json_object_set_new(r, "direct-io", json_boolean(p.direct_io));
	json_object_set_new(r, "rdma-provider", json_string(p.rdma_provider));
	json_object_set_new(r, "tls-creds", json_string(p.tls_creds));
	json_object_set_new(r, "tls-hostname", json_string(p.tls_hostname));
	json_object_set_new(r, "tls-authz", json_string(p.tls_authz));
	json_object_set_new(
		r, "multifd-compression",
		json_string(p.compression
				    ? codec_by_encoding(p.compression)->name
				    : "none"));
	return r;
}

static json_t *cmd_set_caps(struct qmp_backend *b, json_t *args,
			    struct qmp_error *e)
{
	struct ferry_mig_params p;

	ferry_migration_get_params(b->mig, &p);
	if (qmp_parse_caps(args, &p, e))
		return NULL;
	if (migrating(b))
		return fail(e, NULL,
			    "There's a migration process in "
			    "progress");
	ferry_migration_set_params(b->mig, &p);
	return json_object();
}

static json_t *cmd_query_caps(struct qmp_backend *b, json_t *args,
			      struct qmp_error *e)
{
	struct ferry_mig_params p;

	(void)args, (void)e;
	ferry_migration_get_params(b->mig, &p);
	return json_pack("[{s:s,s:b},{s:s,s:b},{s:s,s:b},{s:s,s:b},{s:s,s:b},"
			 "{s:s,s:b},{s:s,s:b},{s:s,s:b},{s:s,s:b},{s:s,s:b},"
			 "{s:s,s:b}]",
			 "capability", "verify", "state", p.verify,
			 "capability", "auto-converge", "state",
			 p.auto_converge, "capability", "multifd", "state",
			 p.multifd, "capability", "xbzrle", "state", p.xbzrle,
			 "capability", "postcopy-ram", "state", p.postcopy_ram,
			 "capability", "rdma-pin-all", "state", p.rdma_pin_all,
			 "capability", "mapped-ram", "state", p.mapped_ram,
			 "capability", "lazy-restore", "state", p.lazy_restore,
			 "capability", "events", "state", 1, "capability",
			 "return-path", "state", 1, "capability",
			 "postcopy-blocktime", "state", 1);
}

/* ferry's: the guest's own view: the reference guest's heartbeat (it
 * ticks while the guest runs, whatever the migration does), or what
 * another VMM knows of its machine. */
static json_t *cmd_query_guest(struct qmp_backend *b, json_t *args,
			       struct qmp_error *e)
{
	struct ferry_guest_stats st;

	(void)args;
	if (!b->guest && b->guest_info) {
		json_t *info = b->guest_info(b->guest_opaque);

		return info ? info : fail(e, "GenericError", "out of memory");
	}
	if (!b->guest)
		return fail(e, "CommandNotFound",
			    "this VMM embeds libferry without the reference "
			    "guest");
	ferry_guest_stats(b->guest, &st);
	return json_pack("{s:I,s:I,s:f,s:b}", "heartbeat-ticks",
			 (json_int_t)st.heartbeat_ticks, "writes",
			 (json_int_t)st.writes, "max-stall-ms",
			 st.max_stall_us / 1000.0, "running", st.running);
}

static json_t *cmd_query_commands(struct qmp_backend *b, json_t *args,
				  struct qmp_error *e);

json_t *qmp_version(void)
{
	return json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "major",
			 QMP_QEMU_MAJOR, "minor", QMP_QEMU_MINOR, "micro",
			 QMP_QEMU_MICRO, "package", "ferry " FERRY_VERSION);
}

static json_t *cmd_query_version(struct qmp_backend *b, json_t *args,
				 struct qmp_error *e)
{
	(void)b, (void)args, (void)e;
	return qmp_version();
}

/* A guest has no name here (QEMU's -name is not an option of ferry's). */
static json_t *cmd_query_name(struct qmp_backend *b, json_t *args,
			      struct qmp_error *e)
{
	(void)b, (void)args, (void)e;
	return json_object();
}

/* The events ferry sends. */
static json_t *cmd_query_events(struct qmp_backend *b, json_t *args,
				struct qmp_error *e)
{
	(void)b, (void)args, (void)e;
	return json_pack("[{s:s}]", "name", "MIGRATION");
}

/* json's number at key k of o (0 when it has none). */
static json_int_t jint(json_t *o, const char *k)
{
	json_t *v = o ? json_object_get(o, k) : NULL;

	return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* HMP's `info migrate`, in QEMU's words, from query-migrate's answer. */
static char *hmp_info_migrate(struct qmp_backend *b)
{
	struct ferry_mig_stats st;
	json_t *caps = cmd_query_caps(b, NULL, NULL), *r, *ram, *c;
	char *out = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&out, &len);

	if (!f) {
		json_decref(caps);
		return NULL;
	}
	ferry_migration_query(b->mig, &st);
	r = qmp_migrate_info(&st);
	fprintf(f, "capabilities:");
	json_array_foreach(caps, i, c)
	{
		fprintf(f, " %s: %s",
			json_string_value(json_object_get(c, "capability")),
			json_is_true(json_object_get(c, "state")) ? "on"
								  : "off");
	}
	fprintf(f, "\n");
	ram = json_object_get(r, "ram");
	if (json_object_get(r, "status")) {
		fprintf(f, "Migration status: %s\n",
			json_string_value(json_object_get(r, "status")));
		fprintf(f, "total time: %lld ms\n",
			(long long)jint(r, "total-time"));
		if (json_object_get(r, "expected-downtime"))
			fprintf(f, "expected downtime: %lld ms\n",
				(long long)jint(r, "expected-downtime"));
		if (json_object_get(r, "downtime"))
			fprintf(f, "downtime: %lld ms\n",
				(long long)jint(r, "downtime"));
		fprintf(f, "setup: %lld ms\n",
			(long long)jint(r, "setup-time"));
	}
	if (ram) {
		json_t *mbps = json_object_get(ram, "mbps");

		fprintf(f, "transferred ram: %lld kbytes\n",
			(long long)jint(ram, "transferred") >> 10);
		fprintf(f, "throughput: %0.2f mbps\n",
			json_is_number(mbps) ? json_number_value(mbps) : 0.0);
		fprintf(f, "remaining ram: %lld kbytes\n",
			(long long)jint(ram, "remaining") >> 10);
		fprintf(f, "total ram: %lld kbytes\n",
			(long long)jint(ram, "total") >> 10);
		fprintf(f, "duplicate: %lld pages\n",
			(long long)jint(ram, "duplicate"));
		fprintf(f, "normal: %lld pages\n",
			(long long)jint(ram, "normal"));
		fprintf(f, "normal bytes: %lld kbytes\n",
			(long long)jint(ram, "normal-bytes") >> 10);
		fprintf(f, "dirty sync count: %lld\n",
			(long long)jint(ram, "dirty-sync-count"));
		fprintf(f, "page size: %lld kbytes\n",
			(long long)jint(ram, "page-size") >> 10);
		fprintf(f, "pages-per-second: %lld\n",
			(long long)jint(ram, "pages-per-second"));
		if (json_object_get(ram, "postcopy-requests"))
			fprintf(f, "postcopy request count: %lld\n",
				(long long)jint(ram, "postcopy-requests"));
	}
	if (json_object_get(r, "error-desc"))
		fprintf(f, "error description: %s\n",
			json_string_value(json_object_get(r, "error-desc")));
	fclose(f);
	json_decref(r);
	json_decref(caps);
	return out;
}

/*
 * QEMU's human-monitor-command for what operators and libvirt type most:
 * info status, info migrate, migrate_set_parameter NAME VALUE,
 * migrate_set_capability NAME on|off.  As in QEMU, the answer is the
 * monitor's text, an error included ("Error: ..."), not a QMP error.
 */
static json_t *cmd_hmp(struct qmp_backend *b, json_t *args, struct qmp_error *e)
{
	json_t *line = args ? json_object_get(args, "command-line") : NULL;
	struct qmp_error he = { 0 };
	struct hmp_cmd h;
	json_t *r = NULL, *st;
	char *text;

	if (!json_is_string(line))
		return fail(e, NULL,
			    "Parameter 'command-line' is missing or not a "
			    "string");
	if (qmp_parse_hmp(json_string_value(line), &h, &he))
		return json_sprintf("Error: %s\n", he.desc);
	switch (h.kind) {
	case HMP_INFO_STATUS:
		st = cmd_query_status(b, NULL, &he);
		r = json_sprintf(
			"VM status: %s\n",
			json_is_true(json_object_get(st, "running")) ? "running"
			: !strcmp(json_string_value(
					  json_object_get(st, "status")),
				  "paused")
				? "paused"
			: !strcmp(json_string_value(
					  json_object_get(st, "status")),
				  "inmigrate")
				? "paused (inmigrate)"
				: "paused (postmigrate)");
		json_decref(st);
		break;
	case HMP_INFO_MIGRATE:
		text = hmp_info_migrate(b);
		r = text ? json_string(text) : NULL;
		free(text);
		break;
	case HMP_SET_PARAMETER:
	case HMP_SET_CAPABILITY:
		r = h.kind == HMP_SET_PARAMETER ? cmd_set_params(b, h.args, &he)
						: cmd_set_caps(b, h.args, &he);
		json_decref(r);
		r = he.desc[0] ? json_sprintf("Error: %s\n", he.desc)
			       : json_string("");
		break;
	}
	json_decref(h.args);
	return r ? r : fail(e, NULL, "out of memory");
}

static json_t *cmd_query_schema(struct qmp_backend *b, json_t *args,
				struct qmp_error *e)
{
	json_t *r = qmp_schema();

	(void)b, (void)args;
	return r ? r : fail(e, NULL, "out of memory");
}

static const struct {
	const char *name;
	json_t *(*fn)(struct qmp_backend *b, json_t *args, struct qmp_error *e);
} commands[] = {
	{ "query-status", cmd_query_status },
	{ "getfd", cmd_getfd },
	{ "closefd", cmd_closefd },
	{ "stop", cmd_stop },
	{ "cont", cmd_cont },
	{ "quit", cmd_quit },
	{ "migrate", cmd_migrate },
	{ "migrate-incoming", cmd_migrate_incoming },
	{ "migrate_cancel", cmd_migrate_cancel },
	{ "migrate-start-postcopy", cmd_start_postcopy },
	{ "migrate-recover", cmd_migrate_recover },
	{ "migrate-pause", cmd_migrate_pause },
	{ "query-migrate", cmd_query_migrate },
	{ "migrate-set-parameters", cmd_set_params },
	{ "query-migrate-parameters", cmd_query_params },
	{ "migrate-set-capabilities", cmd_set_caps },
	{ "query-migrate-capabilities", cmd_query_caps },
	{ "query-commands", cmd_query_commands },
	{ "query-version", cmd_query_version },
	{ "query-name", cmd_query_name },
	{ "query-events", cmd_query_events },
	{ "query-qmp-schema", cmd_query_schema },
	{ "human-monitor-command", cmd_hmp },
	{ "x-query-guest", cmd_query_guest },
};

static json_t *cmd_query_commands(struct qmp_backend *b, json_t *args,
				  struct qmp_error *e)
{
	json_t *r = json_array();
	size_t i;

	(void)b, (void)args, (void)e;
	json_array_append_new(r,
			      json_pack("{s:s}", "name", "qmp_capabilities"));
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		json_array_append_new(r, json_pack("{s:s}", "name",
						   commands[i].name));
	return r;
}

json_t *qmp_dispatch(struct qmp_backend *b, const char *cmd, json_t *args,
		     struct qmp_error *e)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(cmd, commands[i].name))
			return commands[i].fn(b, args ? args : NULL, e);
	return fail(e, "CommandNotFound", "The command %s has not been found",
		    cmd);
}
