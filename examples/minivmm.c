/*
 * minivmm.c - a VMM of its own that embeds libferry: the smallest guest
 * that migrates live, built only against the installed headers and
 * `pkg-config --cflags --libs ferry` (examples/Makefile).
 *
 *   minivmm in URI     wait for the guest on URI (tcp:HOST:PORT, port 0
 *                      picks one; it prints the address it listens on),
 *                      run it on, then check what it holds
 *   minivmm out URI    run the guest, migrate it live to URI
 *
 * The guest: one RAM block, one vCPU thread and one device, "counter".
 * Step k of the vCPU writes the number k into one 8-byte slot of RAM
 * (slot_of(k)) and counts the step in the device.  Since RAM starts out
 * zero, RAM after n steps is fully determined by n: the destination
 * replays n steps into a scratch buffer and compares, which checks what
 * arrived and what the guest did after it arrived, beside the engine's
 * own digest (stats.verified).
 *
 * The order of calls, and which thread makes each, is the one
 * docs/embedding.md describes.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ferry/dirty.h>
#include <ferry/migration.h>
#include <ferry/version.h>
#include <ferry/vm.h>

#define PAGE	   4096u
#define RAM_SIZE   (64u << 20)
#define HOT_PAGES  4096u /* the vCPU writes into the first 16 MiB */
#define WORDS	   (PAGE / 8)
#define BURST	   16u	/* steps between pauses: a dirty rate that */
#define PAUSE_US   100u /* pre-copy converges on over loopback */
#define SECTION_SZ 16u	/* the counter device: le64 steps, le64 sum */

struct minivm {
	struct ferry_ramblock ram;
	struct ferry_section dev;
	struct ferry_dirty *dirty;
	struct ferry_vm vm;

	/* lock: the vCPU holds it for each step; stop() takes it to park
	 * the vCPU between steps */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool running, quit; /* lock */
	uint64_t steps;	    /* lock: the device's registers */
	uint64_t sum;	    /* lock: sum of the numbers written */
	pthread_t vcpu;

	/* the engine's state changes, from its thread */
	pthread_mutex_t ev_lock;
	pthread_cond_t ev_cond;
	enum ferry_mig_state state; /* ev_lock */
};

static uint64_t slot_of(uint64_t k)
{
	uint64_t page = (k * 2654435761u) % HOT_PAGES;

	return page * PAGE + (k % WORDS) * 8;
}

static void *vcpu_main(void *opaque)
{
	struct minivm *v = opaque;
	unsigned n = 0;

	pthread_mutex_lock(&v->lock);
	for (;;) {
		while (!v->running && !v->quit)
			pthread_cond_wait(&v->wake, &v->lock);
		if (v->quit)
			break;
		uint64_t k = ++v->steps, off = slot_of(k);

		memcpy(v->ram.host + off, &k, sizeof(k));
		ferry_dirty_mark(v->dirty, 0, off, sizeof(k));
		v->sum += k;
		if (++n % BURST == 0) {
			pthread_mutex_unlock(&v->lock);
			usleep(PAUSE_US);
			pthread_mutex_lock(&v->lock);
		}
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

/* Run control, called by the engine from its own thread. */
static int vm_stop(void *opaque)
{
	struct minivm *v = opaque;

	pthread_mutex_lock(&v->lock); /* the vCPU is between steps now */
	v->running = false;
	pthread_mutex_unlock(&v->lock);
	return 0;
}

static int vm_resume(void *opaque)
{
	struct minivm *v = opaque;

	pthread_mutex_lock(&v->lock);
	v->running = true;
	pthread_cond_signal(&v->wake);
	pthread_mutex_unlock(&v->lock);
	return 0;
}

static bool vm_running(void *opaque)
{
	struct minivm *v = opaque;
	bool r;

	pthread_mutex_lock(&v->lock);
	r = v->running;
	pthread_mutex_unlock(&v->lock);
	return r;
}

/* The counter device: saved and loaded while the guest is stopped. */
static int dev_save(void *opaque, struct ferry_buf *out)
{
	struct minivm *v = opaque;
	int rc = ferry_buf_put_le64(out, v->steps);

	return rc ? rc : ferry_buf_put_le64(out, v->sum);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t x = 0;

	for (int i = 7; i >= 0; i--)
		x = x << 8 | p[i];
	return x;
}

static int dev_load(void *opaque, uint32_t version, const uint8_t *data,
		    size_t len, struct ferry_error *err)
{
	struct minivm *v = opaque;

	/* the bytes come off the wire: check them all */
	if (version != 1)
		return ferry_error_set(err, -EINVAL,
				       "counter: version %" PRIu32
				       ", this minivmm knows 1",
				       version);
	if (len != SECTION_SZ)
		return ferry_error_set(err, -EINVAL,
				       "counter: %zu bytes, expected %u", len,
				       SECTION_SZ);
	v->steps = get_le64(data);
	v->sum = get_le64(data + 8);
	return 0;
}

static void on_event(void *opaque, enum ferry_mig_state s)
{
	struct minivm *v = opaque;

	pthread_mutex_lock(&v->ev_lock);
	v->state = s;
	pthread_cond_broadcast(&v->ev_cond);
	pthread_mutex_unlock(&v->ev_lock);
}

static bool finished(enum ferry_mig_state s)
{
	return s == FERRY_MIG_COMPLETED || s == FERRY_MIG_FAILED ||
	       s == FERRY_MIG_CANCELLED;
}

static enum ferry_mig_state wait_finished(struct minivm *v)
{
	enum ferry_mig_state s;

	pthread_mutex_lock(&v->ev_lock);
	while (!finished(v->state))
		pthread_cond_wait(&v->ev_cond, &v->ev_lock);
	s = v->state;
	pthread_mutex_unlock(&v->ev_lock);
	return s;
}

static int minivm_create(struct minivm *v, struct ferry_error *err)
{
	void *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int rc;

	if (ram == MAP_FAILED)
		return ferry_error_set(err, -errno, "mmap of %u MiB of RAM: %s",
				       RAM_SIZE >> 20, strerror(errno));
	v->ram = (struct ferry_ramblock){ .id = 0,
					  .host = ram,
					  .length = RAM_SIZE };
	strcpy(v->ram.name, "ram0");
	v->dev = (struct ferry_section){ .name = "counter",
					 .instance = 0,
					 .version = 1,
					 .save = dev_save,
					 .load = dev_load,
					 .opaque = v };
	/* the explicit tracker: the vCPU says what it wrote */
	rc = ferry_dirty_open("explicit", &v->ram, 1, PAGE, &v->dirty, err);
	if (rc) {
		munmap(ram, RAM_SIZE);
		return rc;
	}
	v->vm = (struct ferry_vm){
		.page_size = PAGE,
		.blocks = &v->ram,
		.nblocks = 1,
		.sections = &v->dev,
		.nsections = 1,
		.runctl = { .stop = vm_stop,
			    .resume = vm_resume,
			    .running = vm_running,
			    .opaque = v },
		.dirty = v->dirty,
	};
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->wake, NULL);
	pthread_mutex_init(&v->ev_lock, NULL);
	pthread_cond_init(&v->ev_cond, NULL);
	rc = -pthread_create(&v->vcpu, NULL, vcpu_main, v);
	if (rc) {
		ferry_dirty_close(v->dirty);
		v->dirty = NULL;
		munmap(ram, RAM_SIZE);
		return ferry_error_set(err, rc, "vCPU thread: %s",
				       strerror(-rc));
	}
	return 0;
}

static void minivm_destroy(struct minivm *v)
{
	pthread_mutex_lock(&v->lock);
	v->quit = true;
	pthread_cond_signal(&v->wake);
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->vcpu, NULL);
	ferry_dirty_close(v->dirty);
	munmap(v->ram.host, RAM_SIZE);
}

/* RAM after `steps` steps from zero, against what the guest holds. */
static int check_replay(const struct minivm *v, uint64_t steps)
{
	uint8_t *want = calloc(1, RAM_SIZE);
	uint64_t sum = 0;
	int rc = 0;

	if (!want)
		return -ENOMEM;
	for (uint64_t k = 1; k <= steps; k++) {
		memcpy(want + slot_of(k), &k, sizeof(k));
		sum += k;
	}
	if (memcmp(want, v->ram.host, RAM_SIZE) || sum != v->sum)
		rc = -EBADMSG;
	free(want);
	return rc;
}

static int run_out(struct minivm *v, struct ferry_migration *m, const char *uri,
		   struct ferry_error *err)
{
	struct ferry_mig_stats st;
	int rc;

	vm_resume(v);
	usleep(300000); /* let the guest dirty some RAM first */
	rc = ferry_migration_start(m, uri, err);
	if (rc)
		return rc;
	wait_finished(v);
	ferry_migration_query(m, &st);
	if (st.state != FERRY_MIG_COMPLETED)
		return ferry_error_set(err, -EIO, "migration %s: %s",
				       ferry_mig_state_name(st.state),
				       st.error);
	printf("minivmm out: completed in %" PRIu64 " ms, downtime %" PRIu64
	       " ms, %" PRIu64 " iterations, digest %s\n",
	       st.total_time_ms, st.downtime_ms, st.iterations,
	       st.verified > 0 ? "verified" : "not verified");
	/* this copy must not run again: the guest lives over there now */
	if (vm_running(v))
		return ferry_error_set(err, -EPERM, "the source still runs");
	return st.verified > 0 ? 0 : -EBADMSG;
}

static int run_in(struct minivm *v, struct ferry_migration *m, const char *uri,
		  struct ferry_error *err)
{
	struct ferry_mig_stats st;
	uint64_t arrived, now;
	int rc;

	rc = ferry_migration_incoming(m, uri, err);
	if (rc)
		return rc;
	ferry_migration_query(m, &st);
	printf("minivmm in: listening on %s\n", st.uri);
	fflush(stdout);
	wait_finished(v);
	ferry_migration_query(m, &st);
	if (st.state != FERRY_MIG_COMPLETED)
		return ferry_error_set(err, -EIO, "migration %s: %s",
				       ferry_mig_state_name(st.state),
				       st.error);
	if (st.verified <= 0)
		return ferry_error_set(err, -EBADMSG, "digest not verified");
	pthread_mutex_lock(&v->lock);
	arrived = v->steps;
	pthread_mutex_unlock(&v->lock);
	/* the engine resumed the guest: it runs on here */
	for (int i = 0; i < 6000; i++) {
		pthread_mutex_lock(&v->lock);
		now = v->steps;
		pthread_mutex_unlock(&v->lock);
		if (now > arrived + 1000)
			break;
		usleep(10000);
	}
	vm_stop(v);
	if (v->steps <= arrived)
		return ferry_error_set(err, -EIO, "the guest did not run on");
	rc = check_replay(v, v->steps);
	if (rc)
		return ferry_error_set(err, rc,
				       "RAM differs from %" PRIu64 " steps",
				       v->steps);
	printf("minivmm in: arrived at step %" PRIu64 ", ran on to %" PRIu64
	       "; digest verified; RAM matches the replay\n",
	       arrived, v->steps);
	return 0;
}

int main(int argc, char **argv)
{
	struct ferry_error err = { 0 };
	struct ferry_migration *m = NULL;
	struct minivm v = { 0 };
	bool in;
	int rc;

	if (argc != 3 || (strcmp(argv[1], "in") && strcmp(argv[1], "out"))) {
		fprintf(stderr, "usage: minivmm in|out URI  (libferry %s)\n",
			ferry_version());
		return 2;
	}
	in = !strcmp(argv[1], "in");
	rc = minivm_create(&v, &err);
	if (!rc)
		rc = ferry_migration_new(&v.vm, &m, &err);
	if (!rc) {
		ferry_migration_on_event(m, on_event, &v);
		rc = in ? run_in(&v, m, argv[2], &err)
			: run_out(&v, m, argv[2], &err);
	}
	if (rc)
		fprintf(stderr, "minivmm %s: %s\n", argv[1],
			ferry_error_msg(&err));
	if (m)
		ferry_migration_free(m);
	if (v.dirty)
		minivm_destroy(&v);
	return rc ? 1 : 0;
}
