/*
 * postcopy_in.c - the destination's side of post-copy: drop the pages the
 * source will send again, catch the guest's faults on them with
 * userfaultfd (missing mode), and ask the source for each.  The placer
 * (placer.c) drops the pages and places them as they arrive, from the main
 * connection (background) or the urgent one (answers); this file keeps
 * the maps it places by.
 *
 * A page is "missing" from its discard until it is placed; a page placed
 * once is never placed again (the second copy finds it present: EEXIST).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "le.h"
#include "postcopy.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_MISSING_SHMEM
#define UFFD_FEATURE_MISSING_SHMEM (1 << 5)
#endif

static bool test_bit(const _Atomic uint64_t *w, uint64_t i)
{
	return atomic_load(&w[i / 64]) & (1ull << (i % 64));
}

/* Clear bit i; true if this call cleared it. */
static bool test_clear_bit(_Atomic uint64_t *w, uint64_t i)
{
	uint64_t m = 1ull << (i % 64);

	return atomic_fetch_and(&w[i / 64], ~m) & m;
}

int pc_in_init(struct pc_in *pc, const struct ferry_vm *vm, struct rp_tx *tx,
	       struct ferry_error *err)
{
	size_t i;

	memset(pc, 0, sizeof(*pc));
	pc->vm = vm;
	pc->tx = tx;
	pc->uffd = -1;
	pc->quit_fd = -1;
	pthread_mutex_init(&pc->lock, NULL);
	pthread_cond_init(&pc->cond, NULL);
	pc->missing = calloc(vm->nblocks, sizeof(*pc->missing));
	pc->req_us = calloc(vm->nblocks, sizeof(*pc->req_us));
	pc->src_id = calloc(vm->nblocks, sizeof(*pc->src_id));
	if (!pc->missing || !pc->req_us || !pc->src_id)
		goto oom;
	for (i = 0; i < vm->nblocks; i++) {
		uint64_t n = vm->blocks[i].length / vm->page_size;

		pc->missing[i] = calloc((n + 63) / 64, sizeof(uint64_t));
		pc->req_us[i] = calloc(n, sizeof(uint32_t));
		if (!pc->missing[i] || !pc->req_us[i])
			goto oom;
	}
	if (vm->runctl.vcpu_of && vm->runctl.nvcpus) {
		pc->nvcpus = vm->runctl.nvcpus < FERRY_MIG_MAX_VCPUS
				     ? vm->runctl.nvcpus
				     : FERRY_MIG_MAX_VCPUS;
		pc->vcpu = calloc(pc->nvcpus, sizeof(*pc->vcpu));
		if (!pc->vcpu)
			goto oom;
	}
	pc->t0_ns = mig_now_ns();
	return 0;
oom:
	pc_in_free(pc);
	return ferry_error_set(err, -ENOMEM,
			       "out of memory for post-copy page maps");
}

void pc_in_mark_missing(struct pc_in *pc, uint32_t ri, uint64_t first,
			uint64_t count)
{
	uint64_t k, added = 0;

	for (k = first; k < first + count; k++) {
		uint64_t m = 1ull << (k % 64);

		if (!(atomic_fetch_or(&pc->missing[ri][k / 64], m) & m))
			added++;
	}
	atomic_fetch_add(&pc->left, added);
}

static void record_latency(struct pc_in *pc, uint64_t us)
{
	pthread_mutex_lock(&pc->lock);
	if (pc->nlat == pc->lat_cap) {
		size_t cap = pc->lat_cap ? pc->lat_cap * 2 : 4096;
		uint32_t *l = realloc(pc->lat, cap * sizeof(*l));

		if (l) {
			pc->lat = l;
			pc->lat_cap = cap;
		}
	}
	if (pc->nlat < pc->lat_cap)
		pc->lat[pc->nlat++] = us > UINT32_MAX ? UINT32_MAX
						      : (uint32_t)us;
	pthread_mutex_unlock(&pc->lock);
}

static uint32_t now_us(const struct pc_in *pc)
{
	uint64_t us = (mig_now_ns() - pc->t0_ns) / 1000 + 1;

	return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Microseconds since post-copy began, for blocktime: 64 bits. */
static uint64_t now_us64(const struct pc_in *pc)
{
	return (mig_now_ns() - pc->t0_ns) / 1000;
}

/* Which page a vCPU waits on: never 0. */
static uint64_t page_key(uint32_t ri, uint64_t page)
{
	return (uint64_t)(ri + 1) << 48 | page;
}

/* vCPU v faulted on a missing page (the fault thread). */
static void blocked(struct pc_in *pc, unsigned v, uint64_t key)
{
	struct pc_vcpu *c = &pc->vcpu[v];

	pthread_mutex_lock(&pc->lock);
	if (!c->key) {
		c->key = key;
		c->since_us = now_us64(pc);
		if (++pc->down == pc->nvcpus)
			pc->all_since_us = c->since_us;
	}
	pthread_mutex_unlock(&pc->lock);
}

/* The page `key` is there: every vCPU waiting on it runs again. */
static void unblocked(struct pc_in *pc, uint64_t key)
{
	uint64_t now;

	if (!pc->nvcpus)
		return;
	pthread_mutex_lock(&pc->lock);
	now = now_us64(pc);
	for (unsigned v = 0; v < pc->nvcpus && pc->down; v++) {
		struct pc_vcpu *c = &pc->vcpu[v];

		if (c->key != key)
			continue;
		if (pc->down == pc->nvcpus)
			pc->all_blocked_us += now - pc->all_since_us;
		c->total_us += now - c->since_us;
		c->key = 0;
		pc->down--;
	}
	pthread_mutex_unlock(&pc->lock);
}

bool pc_in_missing(struct pc_in *pc, uint32_t ri, uint64_t page)
{
	return test_bit(pc->missing[ri], page);
}

bool pc_in_placed(struct pc_in *pc, uint32_t ri, uint64_t page)
{
	uint32_t req;

	if (!test_clear_bit(pc->missing[ri], page))
		return false;
	atomic_fetch_sub(&pc->left, 1);
	atomic_fetch_add(&pc->placed, 1);
	req = atomic_exchange(&pc->req_us[ri][page], 0);
	if (req) { /* somebody faulted on it */
		record_latency(pc, now_us(pc) - req);
		unblocked(pc, page_key(ri, page));
	}
	if (atomic_load(&pc->left) == 0) {
		pthread_mutex_lock(&pc->lock);
		pthread_cond_broadcast(&pc->cond);
		pthread_mutex_unlock(&pc->lock);
	}
	return true;
}

/* Wake the threads waiting on a page that is there. */
static void wake(struct pc_in *pc, const struct ferry_ramblock *b,
		 uint64_t page)
{
	struct uffdio_range r = {
		.start = (uintptr_t)b->host + page * pc->vm->page_size,
		.len = pc->vm->page_size,
	};

	ioctl(pc->uffd, UFFDIO_WAKE, &r);
}

/* A fault by thread tid: ask for the page, once; or wake the faulting
 * thread if the page arrived between the fault and now.  A vCPU's wait
 * is counted from here until the page is placed: placed before the
 * fault counted it (the placement found no vCPU to end), the second look
 * at the bitmap ends it. */
static void on_fault(struct pc_in *pc, uint64_t addr, pid_t tid)
{
	const struct ferry_vm *vm = pc->vm;
	uint32_t ps = vm->page_size;
	int v = -1;
	size_t i;

	if (pc->nvcpus && tid)
		v = vm->runctl.vcpu_of(vm->runctl.opaque, tid);

	for (i = 0; i < vm->nblocks; i++) {
		const struct ferry_ramblock *b = &vm->blocks[i];
		uint64_t page;
		uint32_t zero = 0;

		if (addr < (uintptr_t)b->host ||
		    addr >= (uintptr_t)b->host + b->length)
			continue;
		page = (addr - (uintptr_t)b->host) / ps;
		if (!test_bit(pc->missing[i], page)) {
			wake(pc, b, page);
			return;
		}
		if (v >= 0 && (unsigned)v < pc->nvcpus)
			blocked(pc, (unsigned)v, page_key((uint32_t)i, page));
		if (atomic_compare_exchange_strong(&pc->req_us[i][page], &zero,
						   now_us(pc))) {
			atomic_fetch_add(&pc->requests, 1);
			/* failing: post-copy is paused, and pc_in_resume
			 * asks again */
			if (pc->fetch)
				pc->fetch(pc->fetch_opaque, (uint32_t)i, page);
			else
				(void)rp_send_page_req(pc->tx, pc->src_id[i],
						       page * ps);
		} /* else asked already */
		/* placed meanwhile (the request raced a placement)? */
		if (!test_bit(pc->missing[i], page)) {
			unblocked(pc, page_key((uint32_t)i, page));
			wake(pc, b, page);
		}
		return;
	}
}

int pc_in_resume(struct pc_in *pc, struct ferry_error *err)
{
	const struct ferry_vm *vm = pc->vm;
	uint8_t bits[RP_HELD_MAX - 16];
	const uint64_t per = sizeof(bits) * 8;
	size_t i;
	int rc = 0;

	for (i = 0; i < vm->nblocks && !rc; i++) {
		uint64_t n = vm->blocks[i].length / vm->page_size, first, k;

		for (first = 0; first < n && !rc; first += per) {
			uint64_t cnt = n - first < per ? n - first : per;

			memset(bits, 0, sizeof(bits));
			for (k = 0; k < cnt; k++)
				if (!test_bit(pc->missing[i], first + k))
					bits[k / 8] |= (uint8_t)(1u << (k % 8));
			rc = rp_send_held(pc->tx, pc->src_id[i], first, bits,
					  (uint32_t)((cnt + 7) / 8));
		}
	}
	if (!rc)
		rc = rp_send_held_end(pc->tx);
	for (i = 0; i < vm->nblocks && !rc; i++) {
		uint64_t n = vm->blocks[i].length / vm->page_size, k;

		for (k = 0; k < n && !rc; k++)
			if (atomic_load(&pc->req_us[i][k]) &&
			    test_bit(pc->missing[i], k))
				rc = rp_send_page_req(pc->tx, pc->src_id[i],
						      k * vm->page_size);
	}
	if (rc)
		return ferry_error_set(err, rc,
				       "post-copy recovery: listing the pages "
				       "held: %s",
				       strerror(-rc));
	return 0;
}

static void *fault_main(void *arg)
{
	struct pc_in *pc = arg;
	struct uffd_msg msg[16];

	for (;;) {
		struct pollfd p[2] = { { .fd = pc->uffd, .events = POLLIN },
				       { .fd = pc->quit_fd,
					 .events = POLLIN } };
		ssize_t n;
		int i;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		n = read(pc->uffd, msg, sizeof(msg));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			break;
		}
		for (i = 0; i < n / (ssize_t)sizeof(msg[0]); i++)
			if (msg[i].event == UFFD_EVENT_PAGEFAULT)
				on_fault(pc, msg[i].arg.pagefault.address,
					 pc->thread_ids ? (pid_t)msg[i]
								  .arg.pagefault
								  .feat.ptid
							: 0);
	}
	return NULL;
}

static int open_uffd(void)
{
	int fd = (int)syscall(SYS_userfaultfd,
			      O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (fd < 0 && errno == EINVAL) /* kernels before 5.11 */
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

int pc_in_start(struct pc_in *pc, struct ferry_error *err)
{
	const struct ferry_vm *vm = pc->vm;
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_MISSING_SHMEM };
	size_t i;
	int rc;

	rc = open_uffd();
	if (rc < 0)
		return ferry_error_set(err, rc,
				       "post-copy needs userfaultfd: %s "
				       "(vm.unprivileged_userfaultfd, or run "
				       "as root)",
				       strerror(-rc));
	pc->uffd = rc;
	/* the faulting thread's id, for blocktime per vCPU (Linux 4.14);
	 * UFFDIO_API takes one try per descriptor, so a kernel without it
	 * costs a second descriptor */
	if (pc->nvcpus) {
		struct uffdio_api tid_api = api;

		tid_api.features |= UFFD_FEATURE_THREAD_ID;
		if (ioctl(pc->uffd, UFFDIO_API, &tid_api) == 0) {
			pc->thread_ids = true;
			goto registered;
		}
		close(pc->uffd);
		pc->nvcpus = 0; /* not known, then */
		rc = open_uffd();
		if (rc < 0)
			return ferry_error_set(err, rc, "userfaultfd: %s",
					       strerror(-rc));
		pc->uffd = rc;
	}
	if (ioctl(pc->uffd, UFFDIO_API, &api) < 0)
		return ferry_error_set(err, -errno, "post-copy: UFFDIO_API: %s",
				       strerror(errno));
registered:
	for (i = 0; i < vm->nblocks; i++) {
		struct uffdio_register reg = {
			.range = { .start = (uintptr_t)vm->blocks[i].host,
				   .len = vm->blocks[i].length },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (ioctl(pc->uffd, UFFDIO_REGISTER, &reg) < 0)
			return ferry_error_set(err, -errno,
					       "post-copy: registering RAM "
					       "block '%s' with userfaultfd: "
					       "%s",
					       vm->blocks[i].name,
					       strerror(errno));
		pc->registered = i + 1;
	}
	pc->quit_fd = eventfd(0, EFD_CLOEXEC);
	if (pc->quit_fd < 0)
		return ferry_error_set(err, -errno, "eventfd: %s",
				       strerror(errno));
	rc = pthread_create(&pc->fault_thread, NULL, fault_main, pc);
	if (rc)
		return ferry_error_set(err, -rc, "post-copy fault thread: %s",
				       strerror(rc));
	pc->thread_live = true;
	return 0;
}

int pc_in_wait_all(struct pc_in *pc, int timeout_ms, struct ferry_error *err)
{
	struct timespec ts;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	pthread_mutex_lock(&pc->lock);
	while (atomic_load(&pc->left) && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&pc->cond, &pc->lock, &ts);
	pthread_mutex_unlock(&pc->lock);
	if (atomic_load(&pc->left))
		return ferry_error_set(
			err, -ENODATA,
			"post-copy: the stream ended with %" PRIu64
			" pages never received",
			(uint64_t)atomic_load(&pc->left));
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void pc_in_stats(struct pc_in *pc, struct ferry_mig_stats *st)
{
	pthread_mutex_lock(&pc->lock);
	st->postcopy_requests = atomic_load(&pc->requests);
	st->postcopy_pages = atomic_load(&pc->placed);
	st->postcopy_vcpus = pc->nvcpus;
	if (pc->nvcpus) {
		uint64_t now = now_us64(pc), all = pc->all_blocked_us;

		/* a wait still going on counts up to now */
		if (pc->down == pc->nvcpus)
			all += now - pc->all_since_us;
		st->postcopy_blocktime_ms = all / 1000;
		for (unsigned v = 0; v < pc->nvcpus; v++) {
			const struct pc_vcpu *c = &pc->vcpu[v];

			st->postcopy_vcpu_blocktime_ms[v] =
				(c->total_us +
				 (c->key ? now - c->since_us : 0)) /
				1000;
		}
	}
	if (pc->nlat) {
		qsort(pc->lat, pc->nlat, sizeof(*pc->lat), cmp_u32);
		st->fault_p50_us = pc->lat[pc->nlat / 2];
		st->fault_p99_us = pc->lat[pc->nlat * 99 / 100];
		st->fault_max_us = pc->lat[pc->nlat - 1];
	}
	pthread_mutex_unlock(&pc->lock);
}

void pc_in_free(struct pc_in *pc)
{
	const struct ferry_vm *vm = pc->vm;
	size_t i;

	if (pc->thread_live) {
		uint64_t one = 1;

		if (write(pc->quit_fd, &one, sizeof(one)) != sizeof(one))
			pthread_cancel(pc->fault_thread);
		pthread_join(pc->fault_thread, NULL);
		pc->thread_live = false;
	}
	for (i = 0; i < pc->registered; i++) {
		struct uffdio_range r = {
			.start = (uintptr_t)vm->blocks[i].host,
			.len = vm->blocks[i].length,
		};

		ioctl(pc->uffd, UFFDIO_UNREGISTER, &r);
	}
	if (pc->uffd >= 0)
		close(pc->uffd);
	if (pc->quit_fd >= 0)
		close(pc->quit_fd);
	for (i = 0; vm && i < vm->nblocks; i++) {
		if (pc->missing)
			free(pc->missing[i]);
		if (pc->req_us)
			free(pc->req_us[i]);
	}
	free(pc->missing);
	free(pc->req_us);
	free(pc->src_id);
	free(pc->lat);
	free(pc->vcpu);
	pthread_cond_destroy(&pc->cond);
	pthread_mutex_destroy(&pc->lock);
	memset(pc, 0, sizeof(*pc));
	pc->uffd = pc->quit_fd = -1;
}
