/*
 * ferry/migration.h - the migration engine.
 *
 * A `struct ferry_migration` moves one `struct ferry_vm` out (source) or
 * in (destination).  States, parameters, capabilities and statistics carry
 * QEMU's names (docs/usage.md lists them).  Everything the engine does runs
 * on its own thread; these calls only start, cancel and observe it, and
 * are safe to make from any thread.
 */
#ifndef FERRY_MIGRATION_H
#define FERRY_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/error.h"
#include "ferry/vm.h"

enum ferry_mig_state {
	FERRY_MIG_NONE,
	FERRY_MIG_SETUP,
	FERRY_MIG_ACTIVE,
	FERRY_MIG_DEVICE,
	FERRY_MIG_COMPLETED,
	FERRY_MIG_FAILED,
	FERRY_MIG_CANCELLING,
	FERRY_MIG_CANCELLED,
	FERRY_MIG_POSTCOPY_ACTIVE,  /* the destination runs; pages follow */
	FERRY_MIG_POSTCOPY_PAUSED,  /* the link broke in post-copy: both
				       sides wait for a new one */
	FERRY_MIG_POSTCOPY_RECOVER, /* reconnecting after a pause */
};

const char *ferry_mig_state_name(enum ferry_mig_state s);

struct ferry_mig_params {
	uint64_t downtime_limit_ms;	 /* downtime-limit, default 300 */
	uint64_t max_bandwidth;		 /* max-bandwidth, bytes/s, 0 = none */
	unsigned cpu_throttle_initial;	 /* percent, default 20 */
	unsigned cpu_throttle_increment; /* percent, default 10 */
	unsigned max_cpu_throttle;	 /* percent, default 99 */
	bool verify;			 /* capability "verify", default on */
	bool auto_converge;		 /* capability "auto-converge" */
	bool multifd;			 /* capability "multifd" */
	unsigned multifd_channels;	 /* multifd-channels, default 2 */
	unsigned compression;		 /* multifd-compression: 0 (none) or a
					 page encoding (zstd, lz4) */
	int zstd_level;			 /* multifd-zstd-level, default 1 */
	int zlib_level;			 /* multifd-zlib-level, default 1 */
	bool codec_auto;		 /* codec-auto (ferry's), default on */
	bool defer_hot_pages;	    /* defer-hot-pages (ferry's), default on */
	bool xbzrle;		    /* capability "xbzrle" */
	uint64_t xbzrle_cache_size; /* xbzrle-cache-size, default 64 MiB */
	bool postcopy_ram;	    /* capability "postcopy-ram" */
	uint64_t precopy_time_limit_ms; /* precopy-time-limit (ferry's): with
					   postcopy-ram, switch after this
					   long; 0 = only when asked */
	bool rdma_pin_all;		/* capability "rdma-pin-all" */
	char rdma_provider[32];		/* rdma-provider (ferry's): the
					   libfabric provider, "" = let it
					   pick (FI_PROVIDER is honoured) */
	uint64_t net_timeout_ms; /* net-timeout (ferry's): no byte moved on
				    any TCP connection for this long fails
				    pre-copy and pauses post-copy; default
				    10000, 0 = never */
	/* TLS (docs/usage.md, "TLS"): "" = plain connections */
	char tls_creds[256];	/* tls-creds: a directory laid out as
				   QEMU's tls-creds-x509 or -psk */
	char tls_hostname[256]; /* tls-hostname: the name the destination's
				   certificate must carry ("" = the URI's
				   host) */
	char tls_authz[256];	/* tls-authz (destination): a file of the
				   client subjects let in ("" = any the CA
				   signed) */
	bool mapped_ram;	/* capability "mapped-ram" (file: and fd: of a
			    file): each page at a fixed place in the file;
			    with multifd, multifd-channels write (and
			    read) at once */
	bool direct_io;		/* direct-io (QEMU's): with mapped-ram, the
			    pages bypass the page cache (O_DIRECT) */
	bool lazy_restore;	/* capability "lazy-restore" (ferry's), on the
			      restoring side: a mapped-ram file's guest
			      runs as soon as its devices are loaded, its
			      pages read on demand (userfaultfd) and in
			      the background */
};

void ferry_mig_params_default(struct ferry_mig_params *p);

/* The most vCPUs whose post-copy blocktime is kept, one by one. */
#define FERRY_MIG_MAX_VCPUS 256

struct ferry_mig_stats {
	enum ferry_mig_state state;
	bool incoming;
	uint32_t page_size; /* the guest's: what page counts count */
	char uri[256];	    /* where it connects, or listens (bound) */
	char error[FERRY_ERROR_MSG_MAX]; /* why it failed */
	uint64_t total_time_ms;		 /* so far, or in all once finished */
	uint64_t setup_time_ms;
	uint64_t downtime_ms;	       /* stop on the source to resume on the
				     destination (source: until the
				     destination said it resumed) */
	uint64_t expected_downtime_ms; /* margin included (docs/usage.md) */
	uint64_t downtime_overrun_ms;  /* source: over downtime-limit, */
	char downtime_overrun[FERRY_ERROR_MSG_MAX]; /* and which part ran
						       long */
	/* ram */
	uint64_t transferred;	/* stream bytes */
	uint64_t multifd_bytes; /* of those, on the multifd channels */
	uint64_t remaining;	/* bytes known dirty, not yet sent */
	uint64_t total;		/* bytes of RAM */
	uint64_t duplicate;	/* zero pages sent as a flag */
	uint64_t normal;	/* pages sent whole */
	uint64_t normal_bytes;
	uint64_t unchanged; /* dirtied, but as last sent: sent as a flag */
	uint64_t checked;   /* source: of those, checked by the destination
			       (it held a copy whose hash was not exact) */
	uint64_t stale;	    /* checks that failed: the page went again */
	uint64_t page_hash_bytes;  /* memory for per-page hashes */
	uint64_t deferred_pages;   /* hot pages held back, each time */
	uint64_t compressed_pages; /* "compression" object */
	uint64_t compressed_bytes;
	/* "xbzrle-cache" object */
	uint64_t xbzrle_cache_size, xbzrle_bytes, xbzrle_pages;
	uint64_t xbzrle_cache_miss, xbzrle_lookups, xbzrle_overflow;
	/* codec-auto: per option (none, lz4, zstd) */
	bool codec_auto;
	unsigned auto_choice;
	uint64_t auto_pages[3], auto_cpu_ns[3], auto_saved[3];
	double auto_link_mbps; /* the link as the first sender sees it */
	double mbps;	       /* last iteration, megabits per second */
	uint64_t pages_per_second;
	uint64_t dirty_pages_rate;
	uint64_t dirty_sync_count;
	uint64_t precopy_bytes;	 /* sent while vCPUs ran */
	uint64_t downtime_bytes; /* sent while they were stopped */
	uint64_t iterations;
	unsigned throttle_percent;
	/* the guest's own view (heartbeat) */
	bool have_stall;
	uint64_t setup_stall_us;
	uint64_t max_stall_us;
	/* verify: 0 absent, 1 digest matched, -1 mismatch */
	int verified;
	/* The run state travels with the guest (docs/usage.md, "One running
	 * copy").  Source: the destination may run the guest now, so this
	 * copy must not run (QEMU's postmigrate) until the operator takes it
	 * back (ferry_migration_cont with force).  Destination: the source's
	 * guest was stopped, so it arrived stopped. */
	bool guest_away;
	bool arrived_stopped;
	/* post-copy */
	bool postcopy;		    /* it switched to post-copy */
	uint64_t postcopy_requests; /* pages asked for (destination) or
				       answered (source) */
	uint64_t postcopy_bytes;    /* stream bytes after the switch */
	uint64_t postcopy_pages;    /* pages that went after the switch */
	/* destination, when the VMM says which thread is which vCPU
	 * (runctl.vcpu_of), as QEMU: the time all vCPUs were blocked on
	 * missing pages at once, and each vCPU's own time blocked */
	unsigned postcopy_vcpus; /* entries below; 0: not known */
	uint64_t postcopy_blocktime_ms;
	uint64_t postcopy_vcpu_blocktime_ms[FERRY_MIG_MAX_VCPUS];
	uint64_t postcopy_time_ms; /* source: from the destination's
					   resume to the end */
	uint64_t resume_ms; /* destination: from the start until the guest
			       ran here, pages still to come (post-copy,
			       lazy restore) */
	uint64_t fault_p50_us, fault_p99_us, fault_max_us;
	char postcopy_reason[64];		/* why it switched */
	uint64_t postcopy_recoveries;		/* pauses recovered from */
	char pause_reason[FERRY_ERROR_MSG_MAX]; /* why it last paused */
	/* rdma: transport */
	/* TLS on the main connection */
	bool tls;
	bool tls_ktls;	      /* the kernel encrypts (kTLS) */
	char tls_version[16]; /* "TLSv1.3" */
	char tls_cipher[64];  /* "TLS_AES_128_GCM_SHA256" */
	char tls_peer[256];   /* the peer's certificate subject, or
				  "psk:IDENTITY" */
	bool rdma;
	char rdma_provider[32];
	bool rdma_pin_all;
	uint64_t rdma_chunks_registered; /* destination keys handed out */
	uint64_t rdma_register_requests; /* source: round trips for keys */
	uint64_t rdma_register_ms;	 /* source: time spent on them */
	uint64_t rdma_zero_messages;
	uint64_t rdma_writes, rdma_completions, rdma_write_bytes;
	/* destination: connections closed unserved (no stream head in
	   time, garbage, another migration's), and the last one's why */
	uint64_t refused;
	char refused_reason[FERRY_ERROR_MSG_MAX];
};

struct ferry_migration;

typedef void (*ferry_mig_event_fn)(void *opaque, enum ferry_mig_state s);

int ferry_migration_new(const struct ferry_vm *vm, struct ferry_migration **out,
			struct ferry_error *err);
/* Called, from the engine's thread, on every state change. */
void ferry_migration_on_event(struct ferry_migration *m, ferry_mig_event_fn fn,
			      void *opaque);

/* Parameters take effect at once, also during a migration. */
void ferry_migration_get_params(struct ferry_migration *m,
				struct ferry_mig_params *p);
void ferry_migration_set_params(struct ferry_migration *m,
				const struct ferry_mig_params *p);

/* Source: connect to uri and migrate the guest, running or stopped; the
 * destination resumes it only if it was running when the source stopped
 * it.  -EALREADY (with err) once the guest has migrated away. */
int ferry_migration_start(struct ferry_migration *m, const char *uri,
			  struct ferry_error *err);
/* Destination: listen on uri (stats.uri gets the bound address, port 0
 * picks a free one) and receive into the stopped guest. */
int ferry_migration_incoming(struct ferry_migration *m, const char *uri,
			     struct ferry_error *err);

/* Cancel, in any state; a finished migration ignores it, and so does one
 * in post-copy (neither side has the whole guest then).  A paused
 * post-copy is given up: it fails, and its guest stays stopped. */
void ferry_migration_cancel(struct ferry_migration *m);

/* Source, with postcopy-ram: switch to post-copy at the end of the
 * current iteration.  -EINVAL (with err) when not possible now. */
int ferry_migration_start_postcopy(struct ferry_migration *m,
				   struct ferry_error *err);

/*
 * Post-copy recovery (docs/stream.md, "Post-copy recovery").  A broken
 * connection after the switch pauses both sides (postcopy-paused) instead
 * of failing.  The destination listens again on uri (recover), the source
 * connects to it (resume); the destination tells which pages it holds,
 * and post-copy goes on.  Each returns -EINVAL (with err) when the
 * migration is not paused on that side.
 */
int ferry_migration_recover(struct ferry_migration *m, const char *uri,
			    struct ferry_error *err);
int ferry_migration_resume(struct ferry_migration *m, const char *uri,
			   struct ferry_error *err);
/* Either side, in post-copy: break the connections now, as a failed link
 * would (migrate-pause). */
int ferry_migration_pause(struct ferry_migration *m, struct ferry_error *err);

/*
 * Resume the guest (QMP's cont), the one way that keeps a single running
 * copy: refused (-EBUSY, with err) while an incoming migration has not
 * completed and while the source switches over or the destination runs
 * the guest in post-copy; refused (-EPERM) once the guest has migrated
 * away, unless force: then the operator takes this copy back, and the
 * destination's must not run.
 */
int ferry_migration_cont(struct ferry_migration *m, bool force,
			 struct ferry_error *err);

void ferry_migration_query(struct ferry_migration *m,
			   struct ferry_mig_stats *st);

/* Wait for the engine's thread to finish, then free. */
void ferry_migration_free(struct ferry_migration *m);

#endif
