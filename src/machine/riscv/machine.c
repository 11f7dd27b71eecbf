/*
 * machine.c - the virt machine of machine.h: RAM and the devices on one
 * bus, each hart on a thread of its own running rv_hart_run() in
 * slices, and the run control the engine drives.
 *
 * A hart's thread is always in one of three places: running a slice
 * (no lock held), idle in WFI (waiting on its condvar until an interrupt
 * is pending, its next timer deadline, or a kick), or parked (waiting on
 * its condvar, counted in nparked, touching no hart state) because the
 * machine is stopped or halted or the hart is stopped in the SBI's HSM
 * sense.  Stop sets every hart's brk flag, which rv_hart_run checks every
 * 1024 instructions, and returns once all are parked; guest time freezes
 * then and thaws on resume.
 *
 * Between slices a thread honours what other threads asked of it: a TLB
 * flush (an SBI remote fence), its timer lines (the CLINT's compare
 * values against the time), a stop.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices.h"
#include "le.h"

#define SLICE 16384 /* instructions between looks at timers and requests */

/* QEMU's virt has the SiFive test finisher here; Linux uses SRST, but
 * bare-metal tests may poke it. */
#define TEST_BASE  0x100000ull
#define TEST_SIZE  0x1000ull
#define TEST_FAIL  0x3333
#define TEST_PASS  0x5555
#define TEST_RESET 0x7777

static void set_irq(struct rv_machine *m, unsigned i, enum rv_irq irq,
		    bool level)
{
	struct rv_hart *h = &m->harts[i]->hart;
	bool was = (atomic_load(&h->mip) >> irq) & 1;

	if (was == level)
		return;
	rv_hart_set_irq(h, irq, level);
	if (level)
		rv_machine_kick(m, i);
}

static void plic_irq(void *opaque, unsigned ctx, bool level)
{
	set_irq(opaque, ctx / 2, (ctx & 1) ? RV_IRQ_SEI : RV_IRQ_MEI, level);
}

static void clint_irq(void *opaque, unsigned hart, enum rv_irq irq, bool level)
{
	set_irq(opaque, hart, irq, level);
}

static void uart_irq(void *opaque, bool level)
{
	struct rv_machine *m = opaque;

	rv_plic_set_level(&m->plic, RV_UART_IRQ, level);
}

static uint64_t test_read(void *opaque, uint64_t off, unsigned size)
{
	(void)opaque;
	(void)off;
	(void)size;
	return 0;
}

static void test_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	(void)size;
	if (off != 0)
		return;
	switch (val & 0xffff) {
	case TEST_FAIL:
	case TEST_PASS:
		rv_machine_halt(opaque, false);
		break;
	case TEST_RESET:
		rv_machine_halt(opaque, true);
		break;
	}
}

/* m->lock held */
static void kick_locked(struct rv_hart_ctl *hc)
{
	hc->kicked = true;
	pthread_cond_signal(&hc->cond);
}

void rv_machine_kick(void *opaque, unsigned hart)
{
	struct rv_machine *m = opaque;

	if (hart >= m->nharts)
		return;
	pthread_mutex_lock(&m->lock);
	kick_locked(m->harts[hart]);
	pthread_mutex_unlock(&m->lock);
}

/* Flush the TLB if another hart asked: by the hart's own thread, or
 * with that thread parked and m->lock held. */
static void do_flush(struct rv_hart_ctl *hc)
{
	uint64_t r = atomic_load(&hc->flush_req);

	if (r == atomic_load(&hc->flush_done))
		return;
	rv_tlb_flush(&hc->hart);
	atomic_store(&hc->flush_done, r);
}

static bool flush_wanted(struct rv_hart_ctl *hc)
{
	return atomic_load(&hc->flush_req) != atomic_load(&hc->flush_done);
}

/* m->lock held: may the hart leave its parking place? */
static bool may_run(struct rv_machine *m, struct rv_hart_ctl *hc)
{
	return m->running && !atomic_load(&m->halted) &&
	       hc->hsm != RV_HSM_STOPPED && hc->hsm != RV_HSM_START_PENDING;
}

/* m->lock held: wait, touching no hart state, until the hart may run
 * or the machine goes away; flush requests are served meanwhile. */
static void park(struct rv_machine *m, struct rv_hart_ctl *hc)
{
	hc->parked = true;
	m->nparked++;
	pthread_cond_broadcast(&m->parked);
	while (!atomic_load(&m->quit) && !may_run(m, hc)) {
		do_flush(hc);
		hc->kicked = false;
		pthread_cond_wait(&hc->cond, &m->lock);
	}
	m->nparked--;
	hc->parked = false;
}

/* m->lock held: sleep until an interrupt is pending, the next timer
 * deadline passes, or a kick; the caller loops to see which. */
static void idle(struct rv_machine *m, struct rv_hart_ctl *hc)
{
	struct timespec ts;
	uint64_t ns;

	if (hc->kicked || rv_hart_irq_pending(&hc->hart) ||
	    atomic_load(&hc->brk) || flush_wanted(hc)) {
		hc->kicked = false;
		return;
	}
	ns = rv_clint_host_ns(&m->clint, rv_clint_deadline(&m->clint, hc->id));
	if (ns == UINT64_MAX) {
		pthread_cond_wait(&hc->cond, &m->lock);
	} else {
		ts.tv_sec = (time_t)(ns / 1000000000ull);
		ts.tv_nsec = (long)(ns % 1000000000ull);
		pthread_cond_timedwait(&hc->cond, &m->lock, &ts);
	}
	hc->kicked = false;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A throttled hart sleeps off its debt once it passes a millisecond (a
 * slice is tens of microseconds: sleeping after each would cost more
 * than it sleeps); a stop or quit ends the sleep early, an interrupt
 * waits for it (that is what throttling a guest means). */
#define THROTTLE_MIN_NS 1000000ull

static void throttle_wait(struct rv_machine *m, struct rv_hart_ctl *hc,
			  uint64_t ns)
{
	uint64_t end = mono_ns() + ns;
	struct timespec ts = { .tv_sec = (time_t)(end / 1000000000ull),
			       .tv_nsec = (long)(end % 1000000000ull) };

	pthread_mutex_lock(&m->lock);
	while (!atomic_load(&hc->brk) && !atomic_load(&m->quit) &&
	       mono_ns() < end)
		pthread_cond_timedwait(&hc->cond, &m->lock, &ts);
	pthread_mutex_unlock(&m->lock);
}

void rv_machine_throttle(struct rv_machine *m, unsigned percent)
{
	atomic_store(&m->throttle, percent > 99 ? 99 : percent);
}

static void *hart_main(void *arg)
{
	struct rv_hart_ctl *hc = arg;
	struct rv_machine *m = hc->m;
	struct rv_hart *h = &hc->hart;
	enum rv_exit ex = RV_EXIT_BUDGET;
	uint64_t debt = 0, t0;
	unsigned p;

	atomic_store(&hc->tid, gettid());
	for (;;) {
		do_flush(hc);
		rv_clint_update(&m->clint, hc->id);
		pthread_mutex_lock(&m->lock);
		atomic_store(&hc->brk, false);
		if (atomic_load(&m->quit)) {
			pthread_mutex_unlock(&m->lock);
			break;
		}
		if (hc->hsm == RV_HSM_STOP_PENDING)
			hc->hsm = RV_HSM_STOPPED;
		if (!may_run(m, hc)) {
			park(m, hc);
			pthread_mutex_unlock(&m->lock);
			ex = RV_EXIT_BUDGET;
			continue;
		}
		if (hc->hsm == RV_HSM_SUSPENDED) {
			/* non-retentive: resume at the address given */
			if (rv_hart_irq_pending(h)) {
				rv_boot_enter_s(h, hc->resume_addr,
						hc->resume_opaque);
				hc->hsm = RV_HSM_STARTED;
			} else {
				idle(m, hc);
			}
			pthread_mutex_unlock(&m->lock);
			continue;
		}
		if (ex == RV_EXIT_WFI) {
			idle(m, hc);
			ex = RV_EXIT_BUDGET;
			pthread_mutex_unlock(&m->lock);
			continue;
		}
		hc->kicked = false;
		pthread_mutex_unlock(&m->lock);
		t0 = mono_ns();
		ex = rv_hart_run(h, SLICE, &hc->brk);
		p = atomic_load(&m->throttle);
		if (!p) {
			debt = 0;
			continue;
		}
		debt += (mono_ns() - t0) * p / (100 - p);
		if (debt >= THROTTLE_MIN_NS) {
			throttle_wait(m, hc, debt);
			debt = 0;
		}
	}
	return NULL;
}

static bool in_ram(const struct rv_machine *m, uint64_t pa)
{
	return pa >= m->bus.ram_base && pa - m->bus.ram_base < m->bus.ram_size;
}

long rv_machine_hart_start(struct rv_machine *m, uint64_t hartid, uint64_t addr,
			   uint64_t opaque)
{
	struct rv_hart_ctl *hc;
	long rc = SBI_SUCCESS;

	if (hartid >= m->nharts)
		return SBI_ERR_INVALID_PARAM;
	if (!in_ram(m, addr))
		return SBI_ERR_INVALID_ADDRESS;
	hc = m->harts[hartid];
	pthread_mutex_lock(&m->lock);
	if (hc->hsm != RV_HSM_STOPPED) {
		rc = SBI_ERR_ALREADY_AVAILABLE;
	} else {
		/* stopped: its thread is parked or about to park, and does
		 * not touch the hart until it sees the new state */
		rv_boot_enter_s(&hc->hart, addr, opaque);
		hc->hsm = RV_HSM_STARTED;
		kick_locked(hc);
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

long rv_machine_hart_stop(struct rv_machine *m, unsigned self)
{
	struct rv_hart_ctl *hc = m->harts[self];

	pthread_mutex_lock(&m->lock);
	hc->hsm = RV_HSM_STOP_PENDING;
	atomic_store(&hc->brk, true);
	pthread_mutex_unlock(&m->lock);
	return SBI_SUCCESS;
}

long rv_machine_hart_status(struct rv_machine *m, uint64_t hartid)
{
	long s;

	if (hartid >= m->nharts)
		return SBI_ERR_INVALID_PARAM;
	pthread_mutex_lock(&m->lock);
	s = m->harts[hartid]->hsm;
	pthread_mutex_unlock(&m->lock);
	return s;
}

long rv_machine_hart_suspend(struct rv_machine *m, unsigned self, uint32_t type,
			     uint64_t addr, uint64_t opaque)
{
	struct rv_hart_ctl *hc = m->harts[self];

	/* default retentive: a WFI that may end at once, so it does */
	if (type == 0)
		return SBI_SUCCESS;
	if (type != 0x80000000u)
		return SBI_ERR_INVALID_PARAM;
	if (!in_ram(m, addr))
		return SBI_ERR_INVALID_ADDRESS;
	pthread_mutex_lock(&m->lock);
	hc->hsm = RV_HSM_SUSPENDED;
	hc->resume_addr = addr;
	hc->resume_opaque = opaque;
	atomic_store(&hc->brk, true);
	pthread_mutex_unlock(&m->lock);
	return SBI_SUCCESS;
}

bool rv_machine_must_leave(struct rv_machine *m, unsigned self)
{
	struct rv_hart_ctl *hc = m->harts[self];
	bool leave;

	pthread_mutex_lock(&m->lock);
	leave = hc->hsm == RV_HSM_STOP_PENDING || hc->hsm == RV_HSM_SUSPENDED ||
		atomic_load(&m->halted);
	if (leave) /* the hart looks at brk right after a SYSTEM instruction */
		atomic_store(&hc->brk, true);
	pthread_mutex_unlock(&m->lock);
	return leave;
}

void rv_machine_remote_fence(struct rv_machine *m, unsigned self, uint64_t mask)
{
	uint64_t ticket[RV_MAX_HARTS];
	struct rv_hart_ctl *hc;
	unsigned i;

	for (i = 0; i < m->nharts; i++) {
		if (!((mask >> i) & 1))
			continue;
		hc = m->harts[i];
		if (i == self) {
			rv_tlb_flush(&hc->hart);
			continue;
		}
		ticket[i] = atomic_fetch_add(&hc->flush_req, 1) + 1;
		atomic_store(&hc->brk, true);
		rv_machine_kick(m, i);
	}
	for (i = 0; i < m->nharts; i++) {
		if (!((mask >> i) & 1) || i == self)
			continue;
		hc = m->harts[i];
		/* serve flushes asked of us meanwhile: two harts may be
		 * fencing each other */
		while (atomic_load(&hc->flush_done) < ticket[i] &&
		       !atomic_load(&m->quit)) {
			if (self < m->nharts)
				do_flush(m->harts[self]);
			sched_yield();
		}
	}
}

void rv_machine_send_ipi(struct rv_machine *m, uint64_t mask)
{
	unsigned i;

	for (i = 0; i < m->nharts; i++) {
		if (!((mask >> i) & 1))
			continue;
		rv_hart_set_irq(&m->harts[i]->hart, RV_IRQ_SSI, true);
		rv_machine_kick(m, i);
	}
}

void rv_machine_halt(struct rv_machine *m, bool reset)
{
	unsigned i;

	pthread_mutex_lock(&m->lock);
	if (!atomic_load(&m->halted))
		atomic_store(&m->reset, reset);
	atomic_store(&m->halted, true);
	for (i = 0; i < m->nharts; i++) {
		atomic_store(&m->harts[i]->brk, true);
		kick_locked(m->harts[i]);
	}
	pthread_mutex_unlock(&m->lock);
}

static void free_machine(struct rv_machine *m)
{
	unsigned i;

	for (i = 0; i < m->nharts; i++) {
		if (!m->harts[i])
			continue;
		pthread_cond_destroy(&m->harts[i]->cond);
		free(m->harts[i]);
	}
	rv_uart_destroy(&m->uart);
	rv_plic_destroy(&m->plic);
	pthread_cond_destroy(&m->parked);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int rv_machine_new(const struct rv_machine_config *cfg, struct rv_machine **out,
		   struct ferry_error *err)
{
	struct rv_boot_layout lay;
	struct rv_machine *m;
	pthread_condattr_t ca;
	struct rv_mmio dev;
	unsigned i;
	int rc;

	if (!cfg->nharts || cfg->nharts > RV_MAX_HARTS)
		return ferry_error_set(err, -EINVAL,
				       "riscv: %u harts, 1 to %d are supported",
				       cfg->nharts, RV_MAX_HARTS);
	if (!cfg->ram || cfg->ram_size < (4ull << 20) ||
	    (cfg->ram_size & (RV_PAGE_SIZE - 1)) ||
	    ((uintptr_t)cfg->ram & (RV_PAGE_SIZE - 1)))
		return ferry_error_set(
			err, -EINVAL,
			"riscv: RAM must be a page-aligned mapping of at least 4 MiB");
	m = calloc(1, sizeof(*m));
	if (!m)
		return ferry_error_set(err, -ENOMEM, "riscv: no memory");
	m->cfg = *cfg;
	m->nharts = cfg->nharts;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->parked, NULL);

	m->bus.ram = cfg->ram;
	m->bus.ram_base = RV_RAM_BASE;
	m->bus.ram_size = cfg->ram_size;
	m->bus.time = rv_clint_time_cb;
	m->bus.time_opaque = &m->clint;
	m->bus.ecall = rv_sbi_ecall;
	m->bus.ecall_opaque = m;
	m->bus.kick = rv_machine_kick;
	m->bus.kick_opaque = m;

	rv_uart_init(&m->uart, cfg->console, cfg->console_opaque, uart_irq, m);
	rv_plic_init(&m->plic, m->nharts, plic_irq, m);
	rv_clint_init(&m->clint, m->nharts, clint_irq, m);

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	for (i = 0; i < m->nharts; i++) {
		struct rv_hart_ctl *hc = calloc(1, sizeof(*hc));

		if (!hc) {
			pthread_condattr_destroy(&ca);
			free_machine(m);
			return ferry_error_set(err, -ENOMEM,
					       "riscv: no memory");
		}
		hc->m = m;
		hc->id = i;
		pthread_cond_init(&hc->cond, &ca);
		rv_hart_reset(&hc->hart, &m->bus, i, RV_RAM_BASE);
		/* secondaries wait for the kernel's HSM hart_start */
		hc->hsm = i ? RV_HSM_STOPPED : RV_HSM_STARTED;
		m->harts[i] = hc;
	}
	pthread_condattr_destroy(&ca);

	dev = (struct rv_mmio){ RV_CLINT_BASE, RV_CLINT_SIZE, rv_clint_read,
				rv_clint_write, &m->clint };
	rv_bus_add(&m->bus, &dev);
	dev = (struct rv_mmio){ RV_PLIC_BASE, RV_PLIC_SIZE, rv_plic_read,
				rv_plic_write, &m->plic };
	rv_bus_add(&m->bus, &dev);
	dev = (struct rv_mmio){ RV_UART_BASE, RV_UART_SIZE, rv_uart_read,
				rv_uart_write, &m->uart };
	rv_bus_add(&m->bus, &dev);
	dev = (struct rv_mmio){ TEST_BASE, TEST_SIZE, test_read, test_write,
				m };
	rv_bus_add(&m->bus, &dev);

	if (cfg->kernel) {
		rc = rv_boot_linux(m, cfg->kernel, cfg->initrd, cfg->cmdline,
				   &lay, err);
		if (rc) {
			free_machine(m);
			return rc;
		}
	}
	*out = m;
	return 0;
}

int rv_machine_start(struct rv_machine *m, bool stopped,
		     struct ferry_error *err)
{
	unsigned i;
	int rc;

	pthread_mutex_lock(&m->lock);
	if (m->started) {
		pthread_mutex_unlock(&m->lock);
		return ferry_error_set(err, -EBUSY, "riscv: already started");
	}
	/* with nothing booted the harts wait for state and a resume */
	m->running = !stopped && m->cfg.kernel;
	for (i = 0; i < m->nharts; i++) {
		rc = pthread_create(&m->harts[i]->thread, NULL, hart_main,
				    m->harts[i]);
		if (rc) {
			atomic_store(&m->quit, true);
			pthread_mutex_unlock(&m->lock);
			while (i--) {
				pthread_mutex_lock(&m->lock);
				kick_locked(m->harts[i]);
				pthread_mutex_unlock(&m->lock);
				pthread_join(m->harts[i]->thread, NULL);
				m->harts[i]->thread_started = false;
			}
			return ferry_error_set(err, -rc,
					       "riscv: start hart %u: %s", i,
					       strerror(rc));
		}
		m->harts[i]->thread_started = true;
	}
	m->started = true;
	if (m->running)
		rv_clint_thaw(&m->clint);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int rv_machine_stop(struct rv_machine *m)
{
	unsigned i;

	pthread_mutex_lock(&m->lock);
	m->running = false;
	for (i = 0; i < m->nharts; i++) {
		atomic_store(&m->harts[i]->brk, true);
		kick_locked(m->harts[i]);
	}
	while (m->started && m->nparked < m->nharts)
		pthread_cond_wait(&m->parked, &m->lock);
	rv_clint_freeze(&m->clint);
	pthread_mutex_unlock(&m->lock);
	/* The timer bits of mip as frozen time makes them: a hart updates
	 * them only between slices, so a stopped one may hold a level that
	 * is behind, and the destination, which recomputes them when the
	 * CLINT loads, would then differ from what the source saved. */
	for (i = 0; i < m->nharts; i++)
		rv_clint_update(&m->clint, i);
	return 0;
}

int rv_machine_resume(struct rv_machine *m)
{
	unsigned i;

	pthread_mutex_lock(&m->lock);
	if (!m->running) {
		m->running = true;
		rv_clint_thaw(&m->clint);
		for (i = 0; i < m->nharts; i++)
			kick_locked(m->harts[i]);
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

bool rv_machine_running(const struct rv_machine *m)
{
	return __atomic_load_n(&m->running, __ATOMIC_ACQUIRE) &&
	       !atomic_load(&m->halted);
}

bool rv_machine_halted(const struct rv_machine *m, bool *reset)
{
	bool h = atomic_load(&m->halted);

	if (reset)
		*reset = h && atomic_load(&m->reset);
	return h;
}

void rv_machine_console_input(struct rv_machine *m, const uint8_t *buf,
			      size_t len)
{
	rv_uart_input(&m->uart, buf, len);
}

unsigned rv_machine_nharts(const struct rv_machine *m)
{
	return m->nharts;
}

unsigned rv_machine_harts_started(struct rv_machine *m)
{
	unsigned i, n = 0;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->nharts; i++)
		n += m->harts[i]->hsm == RV_HSM_STARTED ||
		     m->harts[i]->hsm == RV_HSM_SUSPENDED;
	pthread_mutex_unlock(&m->lock);
	return n;
}

uint64_t rv_machine_get_time(const struct rv_machine *m)
{
	return rv_clint_time(&m->clint);
}

void rv_machine_set_time(struct rv_machine *m, uint64_t ticks)
{
	rv_clint_set_time(&m->clint, ticks);
}

struct rv_hart *rv_machine_hart(struct rv_machine *m, unsigned i)
{
	return i < m->nharts ? &m->harts[i]->hart : NULL;
}

int rv_machine_hart_of_thread(struct rv_machine *m, pid_t tid)
{
	for (unsigned i = 0; i < m->nharts; i++)
		if (atomic_load(&m->harts[i]->tid) == tid)
			return (int)i;
	return -1;
}

uint64_t rv_machine_instret(const struct rv_machine *m)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < m->nharts; i++)
		n += __atomic_load_n(&m->harts[i]->hart.instret,
				     __ATOMIC_RELAXED);
	return n;
}

int rv_machine_save_uart(struct rv_machine *m, struct ferry_buf *out)
{
	return rv_uart_save(&m->uart, out);
}

int rv_machine_load_uart(struct rv_machine *m, const uint8_t *data, size_t len,
			 struct ferry_error *err)
{
	return rv_uart_load(&m->uart, data, len, err);
}

int rv_machine_save_plic(struct rv_machine *m, struct ferry_buf *out)
{
	return rv_plic_save(&m->plic, out);
}

int rv_machine_load_plic(struct rv_machine *m, const uint8_t *data, size_t len,
			 struct ferry_error *err)
{
	return rv_plic_load(&m->plic, data, len, err);
}

/*
 * The CLINT section carries the CLINT (rv_clint_save: msip, mtimecmp,
 * the SBI timers, the time) and then, for each hart, what the SBI's HSM
 * knows of it: le32 state, le64 resume address, le64 resume opaque.
 */
#define HSM_LEN 20

int rv_machine_save_clint(struct rv_machine *m, struct ferry_buf *out)
{
	unsigned i;
	int rc;

	rc = rv_clint_save(&m->clint, out);
	if (rc)
		return rc;
	rc = ferry_buf_reserve(out, (size_t)m->nharts * HSM_LEN);
	if (rc)
		return rc;
	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->nharts; i++) {
		struct rv_hart_ctl *hc = m->harts[i];
		/* a stop in flight has parked the hart: it is stopped */
		int s = hc->hsm == RV_HSM_STOP_PENDING ? RV_HSM_STOPPED
						       : hc->hsm;

		ferry_buf_put_le32(out, (uint32_t)s);
		ferry_buf_put_le64(out, hc->resume_addr);
		ferry_buf_put_le64(out, hc->resume_opaque);
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int rv_machine_load_clint(struct rv_machine *m, const uint8_t *data, size_t len,
			  struct ferry_error *err)
{
	size_t clen = RV_CLINT_SAVE_LEN(m->nharts);
	const uint8_t *d;
	unsigned i;
	uint32_t s;
	int rc;

	if (len != clen + (size_t)m->nharts * HSM_LEN)
		return ferry_error_set(
			err, -EINVAL,
			"clint: state of %zu bytes, want %zu for %u harts", len,
			clen + (size_t)m->nharts * HSM_LEN, m->nharts);
	for (i = 0, d = data + clen; i < m->nharts; i++, d += HSM_LEN) {
		s = le32_load(d);
		if (s != RV_HSM_STARTED && s != RV_HSM_STOPPED &&
		    s != RV_HSM_SUSPENDED)
			return ferry_error_set(err, -EINVAL,
					       "clint: hart %u in HSM state %u",
					       i, s);
		if (s == RV_HSM_SUSPENDED && !in_ram(m, le64_load(d + 4)))
			return ferry_error_set(
				err, -EINVAL,
				"clint: hart %u resumes outside RAM", i);
	}
	rc = rv_clint_load(&m->clint, data, clen, err);
	if (rc)
		return rc;
	pthread_mutex_lock(&m->lock);
	for (i = 0, d = data + clen; i < m->nharts; i++, d += HSM_LEN) {
		m->harts[i]->hsm = (int)le32_load(d);
		m->harts[i]->resume_addr = le64_load(d + 4);
		m->harts[i]->resume_opaque = le64_load(d + 12);
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

void rv_machine_destroy(struct rv_machine *m)
{
	unsigned i;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	atomic_store(&m->quit, true);
	for (i = 0; i < m->nharts; i++) {
		atomic_store(&m->harts[i]->brk, true);
		kick_locked(m->harts[i]);
	}
	pthread_mutex_unlock(&m->lock);
	for (i = 0; i < m->nharts; i++)
		if (m->harts[i]->thread_started)
			pthread_join(m->harts[i]->thread, NULL);
	free_machine(m);
}
