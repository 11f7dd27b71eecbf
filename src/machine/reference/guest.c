/*
 * guest.c - the reference guest: creation, vCPU threads, run control and
 * the vCPU device sections.
 *
 * Run control: every vCPU (workload vCPUs and the heartbeat) checks
 * `stop_req` between steps; a step is bounded (64 page writes), so a stop
 * parks every vCPU well within a millisecond on an idle host.  stop()
 * returns once all of them are parked; after that, registers and RAM are
 * still and any thread may read them.  Waits (idle, pacing, heartbeat
 * period) are timed waits on one condition variable, so a stop wakes them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "guest_internal.h"
#include "le.h"

#define CPU_SECTION_LEN (4 + 4 + 8 + 8 * WL_NREGS)

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int ferry_fill_parse(const char *s, enum ferry_fill *fill,
		     unsigned *zero_percent, struct ferry_error *err)
{
	char *end;
	unsigned long z;

	*zero_percent = 0;
	if (!strcmp(s, "random")) {
		*fill = FERRY_FILL_RANDOM;
		return 0;
	}
	if (!strcmp(s, "zero")) {
		*fill = FERRY_FILL_ZERO;
		return 0;
	}
	if (!strcmp(s, "text")) {
		*fill = FERRY_FILL_TEXT;
		return 0;
	}
	if (!strncmp(s, "mixed:", 6)) {
		z = strtoul(s + 6, &end, 10);
		if (s[6] && !*end && z <= 100) {
			*fill = FERRY_FILL_MIXED;
			*zero_percent = (unsigned)z;
			return 0;
		}
	}
	return ferry_error_set(err, -EINVAL,
			       "fill '%s': expected random, zero, text or "
			       "mixed:Z (Z = percent of zero pages, 0 to 100)",
			       s);
}

/* ---- run control ------------------------------------------------------- */

/* Park until resumed; true when the guest is being destroyed. */
static bool park(struct ferry_guest *g)
{
	bool quit;

	pthread_mutex_lock(&g->lock);
	g->nparked++;
	if (g->nparked == g->nthreads)
		pthread_cond_broadcast(&g->parked);
	while (atomic_load(&g->stop_req) && !g->quit)
		pthread_cond_wait(&g->wake, &g->lock);
	g->nparked--;
	quit = g->quit;
	pthread_mutex_unlock(&g->lock);
	return quit;
}

/* Sleep until `deadline` (CLOCK_MONOTONIC ns), 0 = forever, or a stop. */
static void wait_until(struct ferry_guest *g, uint64_t deadline)
{
	struct timespec ts = { (time_t)(deadline / 1000000000ull),
			       (long)(deadline % 1000000000ull) };

	pthread_mutex_lock(&g->lock);
	while (!atomic_load(&g->stop_req) && !g->quit) {
		if (!deadline) {
			pthread_cond_wait(&g->wake, &g->lock);
		} else if (pthread_cond_timedwait(&g->wake, &g->lock, &ts) ==
			   ETIMEDOUT) {
			break;
		}
	}
	pthread_mutex_unlock(&g->lock);
}

/*
 * auto-converge's throttle: after every millisecond of running, sleep so
 * that the vCPU runs only (100 - percent)% of the time.  Returns true when
 * it slept.
 */
static bool throttle_point(struct ferry_guest *g, uint64_t *ran_since)
{
	unsigned pct = atomic_load_explicit(&g->throttle, memory_order_relaxed);
	uint64_t now, ran;

	if (!pct)
		return false;
	now = now_ns(CLOCK_MONOTONIC);
	ran = now - *ran_since;
	if (ran < 1000000)
		return false;
	wait_until(g, now + ran * pct / (100 - pct));
	*ran_since = now_ns(CLOCK_MONOTONIC);
	return true;
}

static void *vcpu_main(void *arg)
{
	struct guest_vcpu *v = arg;
	struct ferry_guest *g = v->g;
	const bool works = v->runs_workload && !g->wl.ops->idle;
	const double rate = works ? g->wl.rate / g->wl.threads : 0;
	uint64_t t0 = now_ns(CLOCK_MONOTONIC), done = 0, n;
	uint64_t ran_since = t0;
	bool throttled;

	atomic_store(&v->tid, gettid());
	for (;;) {
		if (atomic_load_explicit(&g->stop_req, memory_order_acquire)) {
			if (park(g))
				break;
			t0 = now_ns(CLOCK_MONOTONIC);
			done = 0;
			continue;
		}
		if (!works) {
			wait_until(g, 0);
			continue;
		}
		n = g->wl.ops->step(&g->wl, &g->mem, v->index, &v->regs);
		done += n;
		atomic_fetch_add_explicit(&v->writes, n, memory_order_relaxed);
		throttled = throttle_point(g, &ran_since);
		if (throttled) { /* pacing restarts after a throttle sleep */
			t0 = now_ns(CLOCK_MONOTONIC);
			done = 0;
		}
		if (rate > 0) {
			uint64_t due =
				t0 + (uint64_t)((double)done / rate * 1e9);

			if (due > now_ns(CLOCK_MONOTONIC))
				wait_until(g, due);
		}
	}
	return NULL;
}

static void *heartbeat_main(void *arg)
{
	struct ferry_guest *g = arg;
	const uint64_t period = (uint64_t)g->hb.period_us * 1000;
	uint64_t next = now_ns(CLOCK_MONOTONIC);

	for (;;) {
		uint64_t now;

		if (atomic_load_explicit(&g->stop_req, memory_order_acquire)) {
			if (park(g))
				break;
			next = now_ns(CLOCK_MONOTONIC);
			continue;
		}
		heartbeat_tick(&g->hb, now_ns(CLOCK_REALTIME));
		now = now_ns(CLOCK_MONOTONIC);
		next += period;
		if (next < now) /* fell behind: no burst of catch-up ticks */
			next = now + period;
		wait_until(g, next);
	}
	return NULL;
}

int ferry_guest_stop(struct ferry_guest *g)
{
	pthread_mutex_lock(&g->lock);
	atomic_store(&g->stop_req, true);
	pthread_cond_broadcast(&g->wake);
	while (g->started && g->nparked < g->nthreads)
		pthread_cond_wait(&g->parked, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return 0;
}

int ferry_guest_resume(struct ferry_guest *g)
{
	pthread_mutex_lock(&g->lock);
	atomic_store(&g->stop_req, false);
	pthread_cond_broadcast(&g->wake);
	pthread_mutex_unlock(&g->lock);
	return 0;
}

bool ferry_guest_running(const struct ferry_guest *g)
{
	return g->started && !atomic_load(&g->stop_req);
}

int guest_step(struct ferry_guest *g, unsigned vcpu, unsigned steps)
{
	struct guest_vcpu *v;
	unsigned i;

	if (vcpu >= g->nvcpus)
		return -EINVAL;
	if (ferry_guest_running(g))
		return -EBUSY;
	v = &g->vcpus[vcpu];
	if (!v->runs_workload || g->wl.ops->idle)
		return 0;
	for (i = 0; i < steps; i++)
		atomic_fetch_add(&v->writes,
				 g->wl.ops->step(&g->wl, &g->mem, v->index,
						 &v->regs));
	return 0;
}

/* ---- device sections ---------------------------------------------------- */

/* Section "cpu" v1, instance = vCPU index: workload id (le32), register
 * count (le32), workload fingerprint (le64), registers (le64 each). */
static int cpu_save(void *opaque, struct ferry_buf *out)
{
	struct guest_vcpu *v = opaque;
	int rc = 0, i;

	rc |= ferry_buf_put_le32(out, v->g->wl.ops->id);
	rc |= ferry_buf_put_le32(out, WL_NREGS);
	rc |= ferry_buf_put_le64(out, v->g->wl_fingerprint);
	for (i = 0; i < WL_NREGS; i++)
		rc |= ferry_buf_put_le64(out, v->regs.r[i]);
	return rc ? -ENOMEM : 0;
}

static int cpu_load(void *opaque, uint32_t version, const uint8_t *data,
		    size_t len, struct ferry_error *err)
{
	struct guest_vcpu *v = opaque;
	const struct workload_ops *src;
	uint32_t id;
	int i;

	if (version != CPU_SECTION_VERSION)
		return ferry_error_set(err, -EPROTONOSUPPORT,
				       "cpu %u: section version %u (this guest "
				       "loads version %u)",
				       v->index, version, CPU_SECTION_VERSION);
	if (len != CPU_SECTION_LEN)
		return ferry_error_set(err, -EBADMSG,
				       "cpu %u: section of %zu bytes, expected "
				       "%d",
				       v->index, len, CPU_SECTION_LEN);
	if (le32_load(data + 4) != WL_NREGS)
		return ferry_error_set(err, -EBADMSG,
				       "cpu %u: register count %u, expected %d",
				       v->index, le32_load(data + 4), WL_NREGS);
	id = le32_load(data);
	if (id != v->g->wl.ops->id) {
		src = workload_by_id(id);
		return ferry_error_set(err, -EINVAL,
				       "cpu %u: the source runs workload %s, "
				       "this guest runs %s",
				       v->index, src ? src->name : "(unknown)",
				       v->g->wl.ops->name);
	}
	if (le64_load(data + 8) != v->g->wl_fingerprint)
		return ferry_error_set(err, -EINVAL,
				       "cpu %u: workload %s has different "
				       "parameters (bytes, threads, rate, "
				       "keep, theta) on the source",
				       v->index, v->g->wl.ops->name);
	if (ferry_guest_running(v->g))
		return ferry_error_set(err, -EBUSY,
				       "cpu %u: load into a "
				       "running guest",
				       v->index);
	for (i = 0; i < WL_NREGS; i++)
		v->regs.r[i] = le64_load(data + 16 + 8 * i);
	return 0;
}

static uint64_t fingerprint(const struct workload *w)
{
	struct {
		uint32_t id, threads;
		uint64_t bytes, keep;
		double rate, theta;
	} f;

	memset(&f, 0, sizeof(f));
	f.id = w->ops->id;
	f.threads = w->threads;
	f.bytes = w->bytes;
	f.keep = w->keep;
	f.rate = w->rate;
	f.theta = w->theta;
	return XXH3_64bits(&f, sizeof(f));
}

/* ---- life cycle --------------------------------------------------------- */

static int runctl_stop(void *opaque)
{
	return ferry_guest_stop(opaque);
}

static int runctl_resume(void *opaque)
{
	return ferry_guest_resume(opaque);
}

static bool runctl_running(void *opaque)
{
	return ferry_guest_running(opaque);
}

static void runctl_throttle(void *opaque, unsigned percent)
{
	struct ferry_guest *g = opaque;

	atomic_store(&g->throttle, percent > 99 ? 99 : percent);
}

/* The heartbeat is not a vCPU of the guest: -1, as any other thread. */
static int runctl_vcpu_of(void *opaque, pid_t tid)
{
	struct ferry_guest *g = opaque;

	for (unsigned i = 0; i < g->nvcpus; i++)
		if (atomic_load(&g->vcpus[i].tid) == tid)
			return (int)i;
	return -1;
}

static uint64_t runctl_stall(void *opaque, bool reset)
{
	struct ferry_guest *g = opaque;

	return reset ? atomic_exchange(&g->hb.window_stall_us, 0)
		     : atomic_load(&g->hb.window_stall_us);
}

int ferry_guest_create(const struct ferry_guest_config *cfg,
		       struct ferry_guest **out, struct ferry_error *err)
{
	struct ferry_guest *g;
	pthread_condattr_t ca;
	unsigned i;
	int rc;

	if (cfg->nblocks == 0 || cfg->nblocks > FERRY_GUEST_MAX_BLOCKS)
		return ferry_error_set(err, -EINVAL,
				       "a guest needs 1 to %d "
				       "RAM blocks",
				       FERRY_GUEST_MAX_BLOCKS);
	if (cfg->vcpus == 0 || cfg->vcpus > FERRY_GUEST_MAX_VCPUS)
		return ferry_error_set(err, -EINVAL,
				       "vcpus=%u: a guest has 1 "
				       "to %d vCPUs",
				       cfg->vcpus, FERRY_GUEST_MAX_VCPUS);
	g = calloc(1, sizeof(*g));
	if (!g)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	g->cfg = *cfg;
	g->cfg.workload = NULL; /* not kept: the caller owns the string */
	if (!g->cfg.heartbeat_us)
		g->cfg.heartbeat_us = 1000;
	g->page_size = 4096;
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&g->parked, NULL);
	heartbeat_init(&g->hb, g->cfg.heartbeat_us);

	rc = workload_parse(cfg->workload, cfg->vcpus, &g->wl, err);
	if (rc)
		goto fail;
	rc = guest_ram_alloc(g, err);
	if (rc)
		goto fail;
	rc = workload_prepare(&g->wl, &g->mem, err);
	if (rc)
		goto fail;
	g->wl_fingerprint = fingerprint(&g->wl);
	rc = ferry_dirty_open(cfg->dirty ? cfg->dirty : "uffd", g->blocks,
			      g->nblocks, g->page_size, &g->dirty, err);
	if (rc)
		goto fail;
	if (ferry_dirty_needs_marks(g->dirty))
		g->mem.marks = g->dirty;
	guest_ram_fill(g);

	g->nvcpus = cfg->vcpus;
	for (i = 0; i < g->nvcpus; i++) {
		struct guest_vcpu *v = &g->vcpus[i];

		v->g = g;
		v->index = i;
		v->runs_workload = i < g->wl.threads;
		g->wl.ops->init_regs(&g->wl, i, cfg->seed, &v->regs);
		g->sections[i] = (struct ferry_section){
			.name = "cpu",
			.instance = i,
			.version = CPU_SECTION_VERSION,
			.save = cpu_save,
			.load = cpu_load,
			.opaque = v,
		};
	}
	g->sections[i] = (struct ferry_section){
		.name = "heartbeat",
		.instance = 0,
		.version = 1,
		.save = heartbeat_save,
		.load = heartbeat_load,
		.opaque = &g->hb,
	};
	g->nsections = i + 1;
	g->vm = (struct ferry_vm){
		.page_size = g->page_size,
		.blocks = g->blocks,
		.nblocks = g->nblocks,
		.sections = g->sections,
		.nsections = g->nsections,
		.runctl = { .stop = runctl_stop,
			    .resume = runctl_resume,
			    .running = runctl_running,
			    .throttle = runctl_throttle,
			    .stall_us = runctl_stall,
			    .vcpu_of = runctl_vcpu_of,
			    .nvcpus = g->nvcpus,
			    .opaque = g },
		.dirty = g->dirty,
	};
	*out = g;
	return 0;
fail:
	ferry_guest_destroy(g);
	return rc;
}

int ferry_guest_start(struct ferry_guest *g, bool running,
		      struct ferry_error *err)
{
	unsigned i;
	int rc;

	pthread_mutex_lock(&g->lock);
	if (g->started) {
		pthread_mutex_unlock(&g->lock);
		return ferry_error_set(err, -EALREADY, "guest already started");
	}
	atomic_store(&g->stop_req, !running);
	g->started = true;
	for (i = 0; i < g->nvcpus; i++) {
		rc = pthread_create(&g->vcpus[i].thread, NULL, vcpu_main,
				    &g->vcpus[i]);
		if (rc)
			goto fail;
		g->vcpus[i].thread_started = true;
		g->nthreads++;
	}
	rc = pthread_create(&g->hb_thread, NULL, heartbeat_main, g);
	if (rc)
		goto fail;
	g->hb_started = true;
	g->nthreads++;
	pthread_mutex_unlock(&g->lock);
	return 0;
fail:
	pthread_mutex_unlock(&g->lock);
	return ferry_error_set(err, -rc, "starting vCPU threads: %s",
			       strerror(rc));
}

void ferry_guest_stats(const struct ferry_guest *g,
		       struct ferry_guest_stats *st)
{
	unsigned i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < g->nvcpus; i++)
		st->writes += atomic_load(&g->vcpus[i].writes);
	st->heartbeat_ticks = atomic_load(&g->hb.ticks);
	st->max_stall_us = atomic_load(&g->hb.max_stall_us);
	st->window_stall_us = atomic_load(&g->hb.window_stall_us);
	st->running = ferry_guest_running(g);
}

void ferry_guest_reset_stall_window(struct ferry_guest *g)
{
	atomic_store(&g->hb.window_stall_us, 0);
}

const struct ferry_vm *ferry_guest_vm(struct ferry_guest *g)
{
	return &g->vm;
}

void ferry_guest_destroy(struct ferry_guest *g)
{
	unsigned i;

	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->quit = true;
	atomic_store(&g->stop_req, true); /* running vCPUs park, then leave */
	pthread_cond_broadcast(&g->wake);
	pthread_mutex_unlock(&g->lock);
	for (i = 0; i < g->nvcpus; i++)
		if (g->vcpus[i].thread_started)
			pthread_join(g->vcpus[i].thread, NULL);
	if (g->hb_started)
		pthread_join(g->hb_thread, NULL);
	ferry_dirty_close(g->dirty);
	workload_release(&g->wl);
	guest_ram_free(g);
	pthread_cond_destroy(&g->wake);
	pthread_cond_destroy(&g->parked);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
