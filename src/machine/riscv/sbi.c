/*
 * sbi.c - the Supervisor Binary Interface (v2.0) answered by the machine
 * itself for S-mode ecalls, where a real board runs OpenSBI in M mode:
 * base, TIME, IPI, RFENCE, HSM, SRST and the debug console, and the
 * legacy v0.1 calls that old kernels make.  a7 names the extension, a6
 * the function; the answer is an error code in a0 and a value in a1
 * (legacy calls: a value in a0 alone).  Anything else is
 * SBI_ERR_NOT_SUPPORTED.
 *
 * The debug console takes physical addresses, read straight from RAM;
 * the legacy calls take a virtual address of a hart mask, read through
 * the calling hart's translation.
 */
#include <string.h>

#include "devices.h"

#define A0 10
#define A1 11
#define A2 12
#define A3 13
#define A4 14
#define A6 16
#define A7 17

struct ret {
	long err;
	uint64_t val;
};

static struct ret ok(uint64_t val)
{
	return (struct ret){ SBI_SUCCESS, val };
}

static struct ret fail(long err)
{
	return (struct ret){ err, 0 };
}

static bool supported(uint64_t eid)
{
	switch (eid) {
	case SBI_EXT_BASE:
	case SBI_EXT_TIME:
	case SBI_EXT_IPI:
	case SBI_EXT_RFENCE:
	case SBI_EXT_HSM:
	case SBI_EXT_SRST:
	case SBI_EXT_DBCN:
		return true;
	}
	return eid <= 0x08; /* the legacy calls */
}

/* The harts a (mask, base) pair names, as bits; base -1 names all. */
static long hart_set(const struct rv_machine *m, uint64_t mask, uint64_t base,
		     uint64_t *set)
{
	unsigned i;

	*set = 0;
	if (base == UINT64_MAX) {
		*set = (1ull << m->nharts) - 1;
		return SBI_SUCCESS;
	}
	for (i = 0; i < 64; i++) {
		if (!((mask >> i) & 1))
			continue;
		if (base >= m->nharts || i >= m->nharts - base)
			return SBI_ERR_INVALID_PARAM;
		*set |= 1ull << (base + i);
	}
	return SBI_SUCCESS;
}

static struct ret base(struct rv_hart *h, uint64_t fid)
{
	switch (fid) {
	case 0:
		return ok(SBI_SPEC_VERSION);
	case 1:
		return ok(SBI_IMPL_ID);
	case 2:
		return ok(SBI_IMPL_VERSION);
	case 3:
		return ok(supported(h->x[A0]));
	case 4: /* mvendorid, marchid, mimpid: none, as the hart's CSRs */
	case 5:
	case 6:
		return ok(0);
	}
	return fail(SBI_ERR_NOT_SUPPORTED);
}

static struct ret rfence(struct rv_machine *m, struct rv_hart *h, uint64_t fid)
{
	uint64_t set;
	long e;

	/* fence.i, sfence.vma, sfence.vma with an ASID; not the H ones.
	 * Each flushes the targets' whole TLB, which covers any range. */
	if (fid > 2)
		return fail(SBI_ERR_NOT_SUPPORTED);
	e = hart_set(m, h->x[A0], h->x[A1], &set);
	if (e)
		return fail(e);
	rv_machine_remote_fence(m, h->id, set);
	return ok(0);
}

static struct ret hsm(struct rv_machine *m, struct rv_hart *h, uint64_t fid)
{
	switch (fid) {
	case 0:
		return fail(
			rv_machine_hart_start(m, h->x[A0], h->x[A1], h->x[A2]));
	case 1:
		return fail(rv_machine_hart_stop(m, h->id));
	case 2: {
		long s = rv_machine_hart_status(m, h->x[A0]);

		return s < 0 ? fail(s) : ok((uint64_t)s);
	}
	case 3:
		return fail(rv_machine_hart_suspend(
			m, h->id, (uint32_t)h->x[A0], h->x[A1], h->x[A2]));
	}
	return fail(SBI_ERR_NOT_SUPPORTED);
}

static struct ret srst(struct rv_machine *m, struct rv_hart *h, uint64_t fid)
{
	uint64_t type = h->x[A0] & 0xffffffffull;
	uint64_t reason = h->x[A1] & 0xffffffffull;

	if (fid != 0)
		return fail(SBI_ERR_NOT_SUPPORTED);
	if (type > 2)
		return fail(type >= 0xf0000000 ? SBI_ERR_NOT_SUPPORTED
					       : SBI_ERR_INVALID_PARAM);
	if (reason > 1 && reason < 0xe0000000)
		return fail(SBI_ERR_INVALID_PARAM);
	rv_machine_halt(m, type != 0);
	return ok(0);
}

/* [addr, addr + len) in RAM, as a host pointer; NULL when it is not. */
static uint8_t *ram_range(const struct rv_machine *m, uint64_t lo, uint64_t hi,
			  uint64_t len)
{
	uint64_t off;

	if (hi) /* above 2^64 on RV64 */
		return NULL;
	if (lo < m->bus.ram_base)
		return NULL;
	off = lo - m->bus.ram_base;
	if (off > m->bus.ram_size || len > m->bus.ram_size - off)
		return NULL;
	return m->bus.ram + off;
}

static struct ret dbcn(struct rv_machine *m, struct rv_hart *h, uint64_t fid)
{
	uint64_t n = h->x[A0], i;
	uint8_t *p, b;
	int c;

	switch (fid) {
	case 0:
		p = ram_range(m, h->x[A1], h->x[A2], n);
		if (!p)
			return fail(SBI_ERR_INVALID_PARAM);
		rv_uart_output(&m->uart, p, n);
		return ok(n);
	case 1:
		p = ram_range(m, h->x[A1], h->x[A2], n);
		if (!p)
			return fail(SBI_ERR_INVALID_PARAM);
		for (i = 0; i < n && (c = rv_uart_getc(&m->uart)) >= 0; i++)
			p[i] = (uint8_t)c;
		return ok(i);
	case 2:
		b = (uint8_t)h->x[A0];
		rv_uart_output(&m->uart, &b, 1);
		return ok(0);
	}
	return fail(SBI_ERR_NOT_SUPPORTED);
}

/* A legacy hart mask: the unsigned long at virtual address va, or
 * every hart when va is 0. */
static bool legacy_mask(struct rv_machine *m, struct rv_hart *h, uint64_t va,
			uint64_t *set)
{
	uint64_t v;

	if (!va) {
		*set = (1ull << m->nharts) - 1;
		return true;
	}
	if (!rv_load(h, va, 8, &v)) {
		h->exc_pending = false; /* an error to the caller, no trap */
		return false;
	}
	*set = v & ((1ull << m->nharts) - 1);
	return true;
}

static long legacy(struct rv_machine *m, struct rv_hart *h, uint64_t eid)
{
	uint64_t set;
	uint8_t b;

	switch (eid) {
	case 0x00: /* set_timer */
		rv_clint_set_stimecmp(&m->clint, h->id, h->x[A0]);
		return 0;
	case 0x01: /* console_putchar */
		b = (uint8_t)h->x[A0];
		rv_uart_output(&m->uart, &b, 1);
		return 0;
	case 0x02: /* console_getchar */
		return rv_uart_getc(&m->uart);
	case 0x03: /* clear_ipi */
		rv_hart_set_irq(h, RV_IRQ_SSI, false);
		return 0;
	case 0x04: /* send_ipi */
		if (!legacy_mask(m, h, h->x[A0], &set))
			return SBI_ERR_INVALID_ADDRESS;
		rv_machine_send_ipi(m, set);
		return 0;
	case 0x05: /* remote_fence_i */
	case 0x06: /* remote_sfence_vma */
	case 0x07: /* remote_sfence_vma_asid */
		if (!legacy_mask(m, h, h->x[A0], &set))
			return SBI_ERR_INVALID_ADDRESS;
		rv_machine_remote_fence(m, h->id, set);
		return 0;
	case 0x08: /* shutdown */
		rv_machine_halt(m, false);
		return 0;
	}
	return SBI_ERR_NOT_SUPPORTED;
}

bool rv_sbi_ecall(struct rv_hart *h, void *opaque)
{
	struct rv_machine *m = opaque;
	uint64_t eid = h->x[A7], fid = h->x[A6], set;
	struct ret r = fail(SBI_ERR_NOT_SUPPORTED);
	long e;

	if (eid <= 0x0f) {
		h->x[A0] = (uint64_t)legacy(m, h, eid);
	} else {
		switch (eid) {
		case SBI_EXT_BASE:
			r = base(h, fid);
			break;
		case SBI_EXT_TIME:
			if (fid == 0) {
				rv_clint_set_stimecmp(&m->clint, h->id,
						      h->x[A0]);
				r = ok(0);
			}
			break;
		case SBI_EXT_IPI:
			if (fid != 0)
				break;
			e = hart_set(m, h->x[A0], h->x[A1], &set);
			if (!e)
				rv_machine_send_ipi(m, set);
			r = fail(e);
			break;
		case SBI_EXT_RFENCE:
			r = rfence(m, h, fid);
			break;
		case SBI_EXT_HSM:
			r = hsm(m, h, fid);
			break;
		case SBI_EXT_SRST:
			r = srst(m, h, fid);
			break;
		case SBI_EXT_DBCN:
			r = dbcn(m, h, fid);
			break;
		}
		h->x[A0] = (uint64_t)r.err;
		h->x[A1] = r.val;
	}
	/*
	 * A hart that stopped itself or switched the machine off must not
	 * run on past the ecall: the kernel takes a return for a failure.
	 * The machine has set its stop flag, which rv_hart_run() looks at
	 * straight after a SYSTEM instruction, before the next one.
	 */
	rv_machine_must_leave(m, h->id);
	return true;
}
