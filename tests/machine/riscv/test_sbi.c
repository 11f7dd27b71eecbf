/*
 * test_sbi.c - the machine's own SBI, called as a kernel calls it (a7
 * the extension, a6 the function) on a machine whose hart threads are
 * started and parked: base and probing, TIME's S-mode timer, IPIs by
 * mask and base, remote fences that reach a parked hart's TLB, HSM start,
 * stop, status and suspend, SRST, the debug console on physical
 * addresses, and the legacy calls with their virtual hart masks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "devices.h"

#define RAM_SIZE (16ull << 20)

struct env {
	uint8_t *ram;
	struct rv_machine *m;
	char out[256];
	size_t nout;
};

struct res {
	bool handled; /* the hart steps on past the ecall */
	int64_t err;
	uint64_t val;
};

static void console(void *opaque, const uint8_t *buf, size_t len)
{
	struct env *e = opaque;

	assert_true(e->nout + len < sizeof(e->out));
	memcpy(e->out + e->nout, buf, len);
	e->nout += len;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct rv_machine_config cfg = { .nharts = 2, .console = console };
	struct ferry_error err = { 0 };
	unsigned i;

	e->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cfg.ram = e->ram;
	cfg.ram_size = RAM_SIZE;
	cfg.console_opaque = e;
	assert_int_equal(rv_machine_new(&cfg, &e->m, &err), 0);
	assert_int_equal(rv_machine_start(e->m, true, &err), 0);
	for (i = 0; i < 2; i++)
		rv_machine_hart(e->m, i)->priv = RV_PRIV_S; /* a kernel */
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	rv_machine_destroy(e->m);
	munmap(e->ram, RAM_SIZE);
	free(e);
	return 0;
}

static struct res call(struct env *e, unsigned hart, uint64_t eid, uint64_t fid,
		       uint64_t a0, uint64_t a1, uint64_t a2)
{
	struct rv_hart *h = rv_machine_hart(e->m, hart);
	struct res r;

	h->x[17] = eid;
	h->x[16] = fid;
	h->x[10] = a0;
	h->x[11] = a1;
	h->x[12] = a2;
	r.handled = rv_sbi_ecall(h, e->m);
	r.err = (int64_t)h->x[10];
	r.val = h->x[11];
	return r;
}

static uint64_t mip(struct env *e, unsigned hart)
{
	return atomic_load(&rv_machine_hart(e->m, hart)->mip);
}

static void test_base(void **state)
{
	struct env *e = *state;
	static const uint64_t exts[] = { SBI_EXT_BASE, SBI_EXT_TIME,
					 SBI_EXT_IPI,  SBI_EXT_RFENCE,
					 SBI_EXT_HSM,  SBI_EXT_SRST,
					 SBI_EXT_DBCN };
	struct res r;
	unsigned i;

	r = call(e, 0, SBI_EXT_BASE, 0, 0, 0, 0);
	assert_true(r.handled);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.val, 2u << 24); /* v2.0 */
	r = call(e, 0, SBI_EXT_BASE, 1, 0, 0, 0);
	assert_int_equal(r.val, SBI_IMPL_ID);
	r = call(e, 0, SBI_EXT_BASE, 2, 0, 0, 0);
	assert_int_equal(r.val, SBI_IMPL_VERSION);
	for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		r = call(e, 0, SBI_EXT_BASE, 3, exts[i], 0, 0);
		assert_int_equal(r.err, 0);
		assert_int_equal(r.val, 1);
	}
	r = call(e, 0, SBI_EXT_BASE, 3, 0x504d55 /* PMU */, 0, 0);
	assert_int_equal(r.val, 0);
	for (i = 4; i <= 6; i++) {
		r = call(e, 0, SBI_EXT_BASE, i, 0, 0, 0);
		assert_int_equal(r.err, 0);
		assert_int_equal(r.val, 0);
	}
	r = call(e, 0, SBI_EXT_BASE, 7, 0, 0, 0);
	assert_int_equal(r.err, SBI_ERR_NOT_SUPPORTED);
	r = call(e, 0, 0x504d55, 0, 0, 0, 0);
	assert_true(r.handled);
	assert_int_equal(r.err, SBI_ERR_NOT_SUPPORTED);
}

static void test_time(void **state)
{
	struct env *e = *state;
	struct res r;

	rv_machine_set_time(e->m, 1000);
	r = call(e, 1, SBI_EXT_TIME, 0, 500, 0, 0);
	assert_int_equal(r.err, 0);
	assert_true(mip(e, 1) & (1u << RV_IRQ_STI));
	assert_false(mip(e, 0) & (1u << RV_IRQ_STI));
	r = call(e, 1, SBI_EXT_TIME, 0, 2000, 0, 0);
	assert_false(mip(e, 1) & (1u << RV_IRQ_STI));
	rv_machine_set_time(e->m, 2000);
	assert_true(mip(e, 1) & (1u << RV_IRQ_STI));
	/* the legacy call programs the same timer */
	e->m->harts[0]->hart.x[10] = 1500;
	call(e, 0, 0x00, 0, 1500, 0, 0);
	assert_true(mip(e, 0) & (1u << RV_IRQ_STI));
	assert_int_equal(rv_clint_deadline(&e->m->clint, 1), UINT64_MAX);
}

static void test_ipi(void **state)
{
	struct env *e = *state;
	struct res r;

	r = call(e, 0, SBI_EXT_IPI, 0, 0x2, 0, 0);
	assert_int_equal(r.err, 0);
	assert_true(mip(e, 1) & (1u << RV_IRQ_SSI));
	assert_false(mip(e, 0) & (1u << RV_IRQ_SSI));
	r = call(e, 0, SBI_EXT_IPI, 0, 0x1, 1, 0); /* base 1: hart 1 */
	assert_int_equal(r.err, 0);
	r = call(e, 0, SBI_EXT_IPI, 0, 0x2, 1, 0); /* hart 2: none */
	assert_int_equal(r.err, SBI_ERR_INVALID_PARAM);
	r = call(e, 0, SBI_EXT_IPI, 0, 0, UINT64_MAX, 0); /* all */
	assert_int_equal(r.err, 0);
	assert_true(mip(e, 0) & (1u << RV_IRQ_SSI));
	/* legacy clear_ipi clears the caller's */
	r = call(e, 0, 0x03, 0, 0, 0, 0);
	assert_int_equal(r.err, 0);
	assert_false(mip(e, 0) & (1u << RV_IRQ_SSI));
	assert_true(mip(e, 1) & (1u << RV_IRQ_SSI));
}

static void test_rfence(void **state)
{
	struct env *e = *state;
	struct rv_hart *h1 = rv_machine_hart(e->m, 1);
	struct rv_hart *h0 = rv_machine_hart(e->m, 0);
	struct res r;
	unsigned fid;

	for (fid = 0; fid <= 2; fid++) {
		h0->tlb[3].vpn = 3;
		h1->tlb[3].vpn = 3;
		/* hart 1's thread is parked: it flushes there */
		r = call(e, 0, SBI_EXT_RFENCE, fid, 0x3, 0, 0);
		assert_int_equal(r.err, 0);
		assert_int_equal(h1->tlb[3].vpn, UINT64_MAX);
		assert_int_equal(h0->tlb[3].vpn, UINT64_MAX);
	}
	h1->tlb[3].vpn = 3;
	r = call(e, 0, SBI_EXT_RFENCE, 1, 0x1, 0, 0); /* only hart 0 */
	assert_int_equal(h1->tlb[3].vpn, 3);
	r = call(e, 0, SBI_EXT_RFENCE, 1, 0x4, 0, 0);
	assert_int_equal(r.err, SBI_ERR_INVALID_PARAM);
	r = call(e, 0, SBI_EXT_RFENCE, 3, 0x1, 0, 0); /* hypervisor fence */
	assert_int_equal(r.err, SBI_ERR_NOT_SUPPORTED);
	/* legacy: the mask is at a virtual address (satp 0: physical) */
	memcpy(e->ram + 0x1000, &(uint64_t){ 2 }, 8);
	h0->satp = 0;
	call(e, 0, 0x06, 0, RV_RAM_BASE + 0x1000, 0, 0);
	assert_int_equal(h0->x[10], 0);
	assert_int_equal(h1->tlb[3].vpn, UINT64_MAX);
	/* an unmapped mask is an error to the caller, not a trap */
	call(e, 0, 0x04, 0, 0x1000, 0, 0);
	assert_int_equal((int64_t)h0->x[10], SBI_ERR_INVALID_ADDRESS);
	assert_false(h0->exc_pending);
}

static void test_hsm(void **state)
{
	struct env *e = *state;
	struct rv_hart *h1 = rv_machine_hart(e->m, 1);
	struct res r;

	h1->priv = RV_PRIV_M;
	r = call(e, 0, SBI_EXT_HSM, 2, 1, 0, 0);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.val, RV_HSM_STOPPED);
	r = call(e, 0, SBI_EXT_HSM, 2, 0, 0, 0);
	assert_int_equal(r.val, RV_HSM_STARTED);
	r = call(e, 0, SBI_EXT_HSM, 2, 2, 0, 0);
	assert_int_equal(r.err, SBI_ERR_INVALID_PARAM);
	r = call(e, 0, SBI_EXT_HSM, 0, 1, 0x1000, 7);
	assert_int_equal(r.err, SBI_ERR_INVALID_ADDRESS);
	h1->satp = 0x8000000000000001ull;
	h1->mstatus |= RV_MSTATUS_SIE;
	r = call(e, 0, SBI_EXT_HSM, 0, 1, RV_RAM_BASE + 0x4000, 0x1234);
	assert_int_equal(r.err, 0);
	assert_int_equal(h1->pc, RV_RAM_BASE + 0x4000);
	assert_int_equal(h1->x[10], 1);
	assert_int_equal(h1->x[11], 0x1234);
	assert_int_equal(h1->priv, RV_PRIV_S);
	assert_int_equal(h1->satp, 0);
	assert_int_equal(h1->mstatus & RV_MSTATUS_SIE, 0);
	r = call(e, 0, SBI_EXT_HSM, 2, 1, 0, 0);
	assert_int_equal(r.val, RV_HSM_STARTED);
	r = call(e, 0, SBI_EXT_HSM, 0, 1, RV_RAM_BASE, 0);
	assert_int_equal(r.err, SBI_ERR_ALREADY_AVAILABLE);
	/* default retentive suspend returns at once */
	r = call(e, 1, SBI_EXT_HSM, 3, 0, 0, 0);
	assert_true(r.handled);
	assert_int_equal(r.err, 0);
	r = call(e, 1, SBI_EXT_HSM, 3, 5, 0, 0);
	assert_int_equal(r.err, SBI_ERR_INVALID_PARAM);
	/* a hart that stops itself runs nothing past the ecall: its stop
	 * flag is up, which the hart honours before the next instruction */
	atomic_store(&e->m->harts[1]->brk, false);
	r = call(e, 1, SBI_EXT_HSM, 1, 0, 0, 0);
	assert_true(r.handled);
	assert_true(atomic_load(&e->m->harts[1]->brk));
	r = call(e, 0, SBI_EXT_HSM, 2, 1, 0, 0);
	assert_true(r.val == RV_HSM_STOP_PENDING || r.val == RV_HSM_STOPPED);
}

static void test_srst(void **state)
{
	struct env *e = *state;
	struct res r;
	bool reset = true;

	r = call(e, 0, SBI_EXT_SRST, 0, 3, 0, 0);
	assert_int_equal(r.err, SBI_ERR_INVALID_PARAM);
	r = call(e, 0, SBI_EXT_SRST, 0, 0, 7, 0);
	assert_int_equal(r.err, SBI_ERR_INVALID_PARAM);
	r = call(e, 0, SBI_EXT_SRST, 1, 0, 0, 0);
	assert_int_equal(r.err, SBI_ERR_NOT_SUPPORTED);
	assert_false(rv_machine_halted(e->m, &reset));
	atomic_store(&e->m->harts[0]->brk, false);
	r = call(e, 0, SBI_EXT_SRST, 0, 0, 0, 0); /* shutdown */
	assert_true(r.handled);
	assert_true(atomic_load(&e->m->harts[0]->brk));
	assert_true(rv_machine_halted(e->m, &reset));
	assert_false(reset);
	assert_false(rv_machine_running(e->m));
}

static void test_reboot(void **state)
{
	struct env *e = *state;
	bool reset = false;

	call(e, 1, SBI_EXT_SRST, 0, 1, 1, 0); /* cold reboot, failure */
	assert_true(rv_machine_halted(e->m, &reset));
	assert_true(reset);
}

static void test_dbcn_and_legacy_console(void **state)
{
	struct env *e = *state;
	struct res r;

	memcpy(e->ram + 0x2000, "hello, sbi", 10);
	r = call(e, 0, SBI_EXT_DBCN, 0, 10, RV_RAM_BASE + 0x2000, 0);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.val, 10);
	r = call(e, 0, SBI_EXT_DBCN, 2, '!', 0, 0);
	assert_int_equal(r.err, 0);
	call(e, 0, 0x01, 0, '?', 0, 0); /* legacy putchar */
	assert_int_equal(e->nout, 12);
	assert_memory_equal(e->out, "hello, sbi!?", 12);
	/* outside RAM, across its end, or above 2^64 */
	r = call(e, 0, SBI_EXT_DBCN, 0, 4, 0x1000, 0);
	assert_int_equal(r.err, SBI_ERR_INVALID_PARAM);
	r = call(e, 0, SBI_EXT_DBCN, 0, 8, RV_RAM_BASE + RAM_SIZE - 4, 0);
	assert_int_equal(r.err, SBI_ERR_INVALID_PARAM);
	r = call(e, 0, SBI_EXT_DBCN, 0, 1, RV_RAM_BASE, 1);
	assert_int_equal(r.err, SBI_ERR_INVALID_PARAM);
	assert_int_equal(e->nout, 12);
	/* reads take typed bytes */
	r = call(e, 0, SBI_EXT_DBCN, 1, 8, RV_RAM_BASE + 0x3000, 0);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.val, 0);
	rv_machine_console_input(e->m, (const uint8_t *)"xyz", 3);
	r = call(e, 0, SBI_EXT_DBCN, 1, 2, RV_RAM_BASE + 0x3000, 0);
	assert_int_equal(r.val, 2);
	assert_memory_equal(e->ram + 0x3000, "xy", 2);
	call(e, 0, 0x02, 0, 0, 0, 0); /* legacy getchar */
	assert_int_equal(rv_machine_hart(e->m, 0)->x[10], 'z');
	call(e, 0, 0x02, 0, 0, 0, 0);
	assert_int_equal((int64_t)rv_machine_hart(e->m, 0)->x[10], -1);
	/* legacy shutdown */
	call(e, 0, 0x08, 0, 0, 0, 0);
	assert_true(rv_machine_halted(e->m, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_base),	T(test_time),
		T(test_ipi),	T(test_rfence),
		T(test_hsm),	T(test_srst),
		T(test_reboot), T(test_dbcn_and_legacy_console),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
