/*
 * test_mmu.c - Sv39 and Sv48 translation: page tables built by hand in a
 * small RAM, walked through rv_translate/rv_load/rv_store and by running
 * instructions: superpages (and misaligned ones), the permission rules
 * with SUM, MXR and MPRV, A and D set in the PTE (also when the TLB
 * already holds the page from a load), TLB flushes, page-crossing
 * accesses, access faults and MMIO behind a mapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "riscv.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (8ull << 20)
#define TABLES	 (RAM_BASE + 0x400000) /* page tables are taken from here */
#define FRAME(n) (RAM_BASE + 0x100000 + (n)*RV_PAGE_SIZE)
#define DEV_BASE 0x10000000ull

#define V   (1u << 0)
#define R   (1u << 1)
#define W   (1u << 2)
#define X   (1u << 3)
#define U   (1u << 4)
#define A   (1u << 6)
#define D   (1u << 7)
#define RWX (R | W | X)

struct env {
	struct rv_bus bus;
	struct rv_hart h;
	atomic_bool stop;
	unsigned levels; /* 3: Sv39, 4: Sv48 */
	uint64_t root, next;
	/* what the device saw */
	uint64_t dev_off, dev_val;
	unsigned dev_size, dev_reads, dev_writes;
};

static uint64_t dev_read(void *opaque, uint64_t off, unsigned size)
{
	struct env *e = opaque;

	e->dev_off = off;
	e->dev_size = size;
	e->dev_reads++;
	return 0xabcd0000 | off;
}

static void dev_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct env *e = opaque;

	e->dev_off = off;
	e->dev_val = val;
	e->dev_size = size;
	e->dev_writes++;
}

static uint8_t *ram(struct env *e, uint64_t pa)
{
	assert_true(pa >= RAM_BASE && pa < RAM_BASE + RAM_SIZE);
	return e->bus.ram + (pa - RAM_BASE);
}

static uint64_t rd64(struct env *e, uint64_t pa)
{
	uint64_t v;

	memcpy(&v, ram(e, pa), 8);
	return v;
}

static void wr64(struct env *e, uint64_t pa, uint64_t v)
{
	memcpy(ram(e, pa), &v, 8);
}

static uint64_t alloc_table(struct env *e)
{
	uint64_t pa = e->next;

	e->next += RV_PAGE_SIZE;
	memset(ram(e, pa), 0, RV_PAGE_SIZE);
	return pa;
}

/* The PTE's address for va at level (0: 4 KiB leaf), making tables on
 * the way down. */
static uint64_t pte_addr(struct env *e, uint64_t va, unsigned level)
{
	uint64_t table = e->root;
	unsigned i;

	for (i = e->levels - 1; i > level; i--) {
		uint64_t p = table + ((va >> (12 + 9 * i)) & 511) * 8;
		uint64_t pte = rd64(e, p);

		if (!(pte & V)) {
			pte = (alloc_table(e) >> 12) << 10 | V;
			wr64(e, p, pte);
		}
		table = (pte >> 10) << 12;
	}
	return table + ((va >> (12 + 9 * level)) & 511) * 8;
}

static uint64_t map(struct env *e, uint64_t va, uint64_t pa, unsigned flags,
		    unsigned level)
{
	uint64_t p = pte_addr(e, va, level);

	wr64(e, p, (pa >> 12) << 10 | flags);
	return p;
}

static void paging(struct env *e, unsigned levels)
{
	e->levels = levels;
	e->next = TABLES;
	e->root = alloc_table(e);
	e->h.satp = (levels == 3 ? 8ull : 9ull) << 60 | e->root >> 12;
	rv_tlb_flush(&e->h);
	e->h.priv = RV_PRIV_S;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct rv_mmio dev = { .base = DEV_BASE,
			       .size = 0x100,
			       .read = dev_read,
			       .write = dev_write };

	assert_non_null(e);
	e->bus.ram = aligned_alloc(4096, RAM_SIZE);
	assert_non_null(e->bus.ram);
	memset(e->bus.ram, 0, RAM_SIZE);
	e->bus.ram_base = RAM_BASE;
	e->bus.ram_size = RAM_SIZE;
	dev.opaque = e;
	assert_true(rv_bus_add(&e->bus, &dev));
	rv_hart_reset(&e->h, &e->bus, 0, RAM_BASE);
	e->h.mtvec = RAM_BASE + 0x3000;
	paging(e, 3);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	free(e->bus.ram);
	free(e);
	return 0;
}

/* The access faults with cause and tval (an access split across pages
 * names the part that faulted). */
static void faults_at(struct env *e, uint64_t va, enum rv_access acc,
		      uint64_t cause, uint64_t tval)
{
	uint64_t pa, v = 0;
	bool ok;

	e->h.exc_pending = false;
	if (acc == RV_ACC_FETCH)
		ok = rv_translate(&e->h, va, acc, &pa);
	else if (acc == RV_ACC_LOAD)
		ok = rv_load(&e->h, va, 8, &v);
	else
		ok = rv_store(&e->h, va, 8, 0x5a5a);
	if (ok)
		fail_msg("access %d to 0x%llx did not fault", acc,
			 (unsigned long long)va);
	assert_true(e->h.exc_pending);
	assert_int_equal(e->h.exc_cause, cause);
	assert_int_equal(e->h.exc_tval, tval);
}

static void faults(struct env *e, uint64_t va, enum rv_access acc,
		   uint64_t cause)
{
	faults_at(e, va, acc, cause, va);
}

static uint64_t xlate(struct env *e, uint64_t va, enum rv_access acc)
{
	uint64_t pa = 0;

	if (!rv_translate(&e->h, va, acc, &pa))
		fail_msg("0x%llx: cause %llu", (unsigned long long)va,
			 (unsigned long long)e->h.exc_cause);
	return pa;
}

static void test_sv39_page(void **state)
{
	struct env *e = *state;
	uint64_t v = 0;

	map(e, 0x1000, FRAME(3), V | RWX | A | D, 0);
	assert_int_equal(xlate(e, 0x1234, RV_ACC_LOAD), FRAME(3) + 0x234);
	assert_true(rv_store(&e->h, 0x1008, 8, 0x1122334455667788ull));
	assert_int_equal(rd64(e, FRAME(3) + 8), 0x1122334455667788ull);
	assert_true(rv_load(&e->h, 0x100c, 4, &v));
	assert_int_equal(v, 0x11223344);
	/* the neighbour page is not mapped */
	faults(e, 0x2000, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
	faults(e, 0x2000, RV_ACC_STORE, RV_EXC_STORE_PAGE);
	faults(e, 0x2000, RV_ACC_FETCH, RV_EXC_INSN_PAGE);
}

static void test_sv48_page(void **state)
{
	struct env *e = *state;
	uint64_t va = 0x00007f1234567000ull;

	paging(e, 4);
	map(e, va, FRAME(5), V | R | W | A | D, 0);
	assert_int_equal(xlate(e, va + 0xff8, RV_ACC_STORE), FRAME(5) + 0xff8);
	/* the same va's top half sign-extended wrongly: not canonical */
	faults(e, va | 1ull << 50, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
	/* negative half, canonical, unmapped */
	faults(e, 0xffff800000000000ull, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
	map(e, 0xffff800000000000ull, FRAME(6), V | R | A, 0);
	assert_int_equal(xlate(e, 0xffff800000000010ull, RV_ACC_LOAD),
			 FRAME(6) + 0x10);
}

static void test_sv39_canonical(void **state)
{
	struct env *e = *state;

	/* Sv39: bits 63..39 must equal bit 38 */
	map(e, 0x1000, FRAME(1), V | R | A, 0);
	faults(e, 0x1000 | 1ull << 39, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
	faults(e, 0x1000 | 1ull << 63, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
	map(e, 0xffffffc000000000ull, FRAME(2), V | R | A, 0);
	assert_int_equal(xlate(e, 0xffffffc000000004ull, RV_ACC_LOAD),
			 FRAME(2) + 4);
}

static void test_superpages(void **state)
{
	struct env *e = *state;
	uint64_t v;

	/* a 1 GiB page: RAM seen at va 0x40000000 */
	map(e, 0x40000000, RAM_BASE, V | RWX | A | D, 2);
	assert_int_equal(xlate(e, 0x40123458, RV_ACC_LOAD),
			 RAM_BASE + 0x123458);
	/* a 2 MiB page */
	map(e, 0x200000, RAM_BASE + 0x200000, V | R | W | A | D, 1);
	wr64(e, RAM_BASE + 0x3ffff8, 42);
	assert_true(rv_load(&e->h, 0x3ffff8, 8, &v));
	assert_int_equal(v, 42);
	/* both cached as 4 KiB pages: another page of the same megapage */
	assert_int_equal(xlate(e, 0x201000, RV_ACC_LOAD), RAM_BASE + 0x201000);
	/* Sv48's 512 GiB page */
	paging(e, 4);
	map(e, 0, 0, V | R | A, 3);
	assert_int_equal(xlate(e, RAM_BASE + 0x10, RV_ACC_LOAD),
			 RAM_BASE + 0x10);
}

static void test_misaligned_superpage(void **state)
{
	struct env *e = *state;

	/* a megapage whose PPN is not 2 MiB aligned */
	map(e, 0x200000, RAM_BASE + 0x1000, V | R | A, 1);
	faults(e, 0x200010, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
	/* a gigapage on a 2 MiB boundary */
	map(e, 0x40000000, RAM_BASE + 0x200000, V | R | A, 2);
	faults(e, 0x40000000, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
}

static void test_reserved_ptes(void **state)
{
	struct env *e = *state;
	uint64_t p;

	/* W without R */
	map(e, 0x1000, FRAME(1), V | W | A | D, 0);
	faults(e, 0x1000, RV_ACC_STORE, RV_EXC_STORE_PAGE);
	/* the Svnapot bit, unimplemented */
	p = map(e, 0x3000, FRAME(1), V | R | A, 0);
	wr64(e, p, rd64(e, p) | 1ull << 63);
	faults(e, 0x3000, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
	/* a pointer at the last level */
	map(e, 0x4000, FRAME(1), V, 0);
	faults(e, 0x4000, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
}

static void test_permissions(void **state)
{
	struct env *e = *state;
	uint64_t v;

	map(e, 0x1000, FRAME(1), V | R | A | D, 0);	/* read-only */
	map(e, 0x2000, FRAME(2), V | X | A | D, 0);	/* execute-only */
	map(e, 0x3000, FRAME(3), V | R | W | A | D, 0); /* no X */
	faults(e, 0x1000, RV_ACC_STORE, RV_EXC_STORE_PAGE);
	faults(e, 0x1000, RV_ACC_FETCH, RV_EXC_INSN_PAGE);
	faults(e, 0x2000, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
	faults(e, 0x3000, RV_ACC_FETCH, RV_EXC_INSN_PAGE);
	assert_int_equal(xlate(e, 0x2000, RV_ACC_FETCH), FRAME(2));
	/* MXR: execute-only pages read */
	e->h.mstatus |= RV_MSTATUS_MXR;
	assert_true(rv_load(&e->h, 0x2000, 8, &v));
	faults(e, 0x2000, RV_ACC_STORE, RV_EXC_STORE_PAGE);
}

static void test_user_pages(void **state)
{
	struct env *e = *state;
	uint64_t v;

	map(e, 0x1000, FRAME(1), V | RWX | U | A | D, 0);
	map(e, 0x2000, FRAME(2), V | RWX | A | D, 0);
	/* S on a U page: only with SUM, and never to fetch */
	faults(e, 0x1000, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
	faults(e, 0x1000, RV_ACC_STORE, RV_EXC_STORE_PAGE);
	e->h.mstatus |= RV_MSTATUS_SUM;
	assert_true(rv_load(&e->h, 0x1000, 8, &v));
	assert_true(rv_store(&e->h, 0x1000, 8, v));
	faults(e, 0x1000, RV_ACC_FETCH, RV_EXC_INSN_PAGE);
	/* U: its own pages only, SUM or not */
	e->h.priv = RV_PRIV_U;
	assert_int_equal(xlate(e, 0x1000, RV_ACC_FETCH), FRAME(1));
	faults(e, 0x2000, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
	faults(e, 0x2000, RV_ACC_FETCH, RV_EXC_INSN_PAGE);
}

static void test_accessed_dirty(void **state)
{
	struct env *e = *state;
	uint64_t p = map(e, 0x1000, FRAME(1), V | R | W, 0);
	uint64_t q = map(e, 0x2000, FRAME(2), V | R | W, 0);
	uint64_t v;

	assert_true(rv_load(&e->h, 0x1000, 8, &v));
	assert_int_equal(rd64(e, p) & (A | D), A);
	assert_true(rv_store(&e->h, 0x2000, 4, 7));
	assert_int_equal(rd64(e, q) & (A | D), A | D);
	/* a faulting access sets neither */
	map(e, 0x3000, FRAME(3), V | R, 0);
	faults(e, 0x3000, RV_ACC_STORE, RV_EXC_STORE_PAGE);
	assert_int_equal(rd64(e, pte_addr(e, 0x3000, 0)) & (A | D), 0);
}

/* The TLB has the page from a load; a store to it must still set D
 * (what FP stores, through the same rv_store, depend on too). */
static void test_dirty_after_load(void **state)
{
	struct env *e = *state;
	uint64_t p = map(e, 0x5000, FRAME(5), V | R | W | A, 0);
	uint64_t v;

	assert_true(rv_load(&e->h, 0x5008, 8, &v));
	assert_int_equal(rd64(e, p) & D, 0);
	assert_true(rv_store(&e->h, 0x5010, 8, 0xfeed));
	assert_int_equal(rd64(e, p) & D, D);
	assert_int_equal(rd64(e, FRAME(5) + 0x10), 0xfeed);
	/* an AMO is a store too */
	p = map(e, 0x6000, FRAME(6), V | R | W | A, 0);
	assert_true(rv_load(&e->h, 0x6000, 8, &v));
	e->h.x[10] = 0x6000;
	e->h.x[11] = 3;
	e->h.pc = RAM_BASE;
	e->h.priv = RV_PRIV_S;
	e->h.satp = 0; /* run the code bare, data through the tables */
	rv_tlb_flush(&e->h);
	e->h.priv = RV_PRIV_M;
	e->h.mstatus |= RV_MSTATUS_MPRV | 1ull << RV_MSTATUS_MPP_SHIFT;
	e->h.satp = 8ull << 60 | e->root >> 12;
	/* amoadd.d a2, a1, (a0) */
	wr64(e, RAM_BASE, 0x00b5362f);
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.pc, RAM_BASE + 4);
	assert_int_equal(rd64(e, p) & D, D);
	assert_int_equal(rd64(e, FRAME(6)), 3);
}

/* FP loads and stores (fpu.c) go through the same rv_load/rv_store: an
 * fsd to a clean page the TLB has from an fld sets D and lands. */
static void test_fp_store_dirty(void **state)
{
	struct env *e = *state;
	/* fld fs1, 0(a0); fsd fs1, 8(a0); c.fsd fs1, 16(a0) */
	static const uint32_t prog[] = { 0x00053487, 0x00953427, 0xa904 };
	uint64_t p;

	map(e, 0x10000, FRAME(1), V | R | X | A, 0);
	p = map(e, 0x20000, FRAME(2), V | R | W | A, 0);
	memcpy(ram(e, FRAME(1)), prog, sizeof(prog));
	wr64(e, FRAME(2), 0x400921fb54442d18ull);
	e->h.mstatus |= 1ull << RV_MSTATUS_FS_SHIFT;
	e->h.pc = 0x10000;
	e->h.x[10] = 0x20000;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.pc, 0x10004);
	assert_int_equal(rd64(e, p) & D, 0);
	assert_int_equal(rv_hart_run(&e->h, 2, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.pc, 0x1000a);
	assert_int_equal(rd64(e, p) & D, D);
	assert_int_equal(rd64(e, FRAME(2) + 8), 0x400921fb54442d18ull);
	assert_int_equal(rd64(e, FRAME(2) + 16), 0x400921fb54442d18ull);
	/* read-only: a store page fault, with the address */
	wr64(e, p, (FRAME(2) >> 12) << 10 | V | R | A);
	rv_tlb_flush(&e->h);
	e->h.pc = 0x10004;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_EXC_STORE_PAGE);
	assert_int_equal(e->h.mtval, 0x20008);
}

static void test_tlb_flush(void **state)
{
	struct env *e = *state;
	uint64_t p = map(e, 0x1000, FRAME(1), V | R | A, 0);

	assert_int_equal(xlate(e, 0x1000, RV_ACC_LOAD), FRAME(1));
	/* changed without sfence.vma: the TLB may keep the old one (ours
	 * does) */
	wr64(e, p, (FRAME(2) >> 12) << 10 | V | R | A);
	assert_int_equal(xlate(e, 0x1000, RV_ACC_LOAD), FRAME(1));
	rv_tlb_flush(&e->h);
	assert_int_equal(xlate(e, 0x1000, RV_ACC_LOAD), FRAME(2));
	/* a satp write flushes too */
	wr64(e, p, (FRAME(3) >> 12) << 10 | V | R | A);
	assert_true(rv_csr_write(&e->h, 0x180, e->h.satp));
	assert_int_equal(xlate(e, 0x1000, RV_ACC_LOAD), FRAME(3));
	/* and sfence.vma, executed */
	wr64(e, p, (FRAME(4) >> 12) << 10 | V | R | A);
	e->h.priv = RV_PRIV_M;
	wr64(e, RAM_BASE, 0x12000073);
	e->h.pc = RAM_BASE;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	e->h.priv = RV_PRIV_S;
	assert_int_equal(xlate(e, 0x1000, RV_ACC_LOAD), FRAME(4));
	/* a permission lost: the walk faults once flushed */
	wr64(e, p, 0);
	rv_tlb_flush(&e->h);
	faults(e, 0x1000, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
}

static void test_mprv(void **state)
{
	struct env *e = *state;

	map(e, 0x1000, FRAME(1), V | R | W | A | D, 0);
	e->h.priv = RV_PRIV_M;
	/* M: bare, satp or not */
	assert_int_equal(xlate(e, RAM_BASE + 8, RV_ACC_LOAD), RAM_BASE + 8);
	/* MPRV with MPP = S: loads and stores translate, fetches do not */
	e->h.mstatus |= RV_MSTATUS_MPRV | 1ull << RV_MSTATUS_MPP_SHIFT;
	assert_int_equal(xlate(e, 0x1008, RV_ACC_STORE), FRAME(1) + 8);
	assert_int_equal(xlate(e, RAM_BASE, RV_ACC_FETCH), RAM_BASE);
	/* MPP = U: S pages are out of reach */
	e->h.mstatus &= ~(3ull << RV_MSTATUS_MPP_SHIFT);
	faults(e, 0x1008, RV_ACC_LOAD, RV_EXC_LOAD_PAGE);
	/* MPP = M: bare again */
	e->h.mstatus |= 3ull << RV_MSTATUS_MPP_SHIFT;
	assert_int_equal(xlate(e, 0x1008, RV_ACC_LOAD), 0x1008);
}

static void test_bare(void **state)
{
	struct env *e = *state;
	uint64_t v;

	e->h.satp = 0;
	assert_int_equal(xlate(e, RAM_BASE + 0x10, RV_ACC_LOAD),
			 RAM_BASE + 0x10);
	wr64(e, RAM_BASE + 0x10, 99);
	assert_true(rv_load(&e->h, RAM_BASE + 0x10, 8, &v));
	assert_int_equal(v, 99);
	/* outside RAM and devices: access faults */
	faults(e, 0x1000, RV_ACC_LOAD, RV_EXC_LOAD_FAULT);
	faults(e, RAM_BASE + RAM_SIZE, RV_ACC_STORE, RV_EXC_STORE_FAULT);
	/* straddling RAM's end */
	faults_at(e, RAM_BASE + RAM_SIZE - 4, RV_ACC_LOAD, RV_EXC_LOAD_FAULT,
		  RAM_BASE + RAM_SIZE);
}

static void test_page_crossing(void **state)
{
	struct env *e = *state;
	uint64_t v;

	/* two virtual neighbours on frames far apart */
	map(e, 0x1000, FRAME(7), V | R | W | A | D, 0);
	map(e, 0x2000, FRAME(2), V | R | W | A | D, 0);
	assert_true(rv_store(&e->h, 0x1ffd, 8, 0x0807060504030201ull));
	assert_int_equal(ram(e, FRAME(7) + 0xffd)[0], 1);
	assert_int_equal(ram(e, FRAME(7) + 0xfff)[0], 3);
	assert_int_equal(ram(e, FRAME(2))[0], 4);
	assert_int_equal(ram(e, FRAME(2) + 4)[0], 8);
	assert_true(rv_load(&e->h, 0x1ffe, 4, &v));
	assert_int_equal(v, 0x05040302);
	/* the second page unmapped: the fault names it, and nothing of the
	 * first page was written */
	map(e, 0x3000, FRAME(3), V | R | W | A | D, 0);
	wr64(e, FRAME(3) + 0xff8, 0);
	faults_at(e, 0x3ffc, RV_ACC_STORE, RV_EXC_STORE_PAGE, 0x4000);
	assert_int_equal(rd64(e, FRAME(3) + 0xff8), 0);
}

static void test_access_faults(void **state)
{
	struct env *e = *state;

	/* a leaf pointing outside RAM, where no device is */
	map(e, 0x1000, 0x20000000, V | R | W | A | D, 0);
	faults(e, 0x1000, RV_ACC_LOAD, RV_EXC_LOAD_FAULT);
	faults(e, 0x1000, RV_ACC_STORE, RV_EXC_STORE_FAULT);
	/* the root table itself outside RAM */
	e->h.satp = 8ull << 60 | 0x1000;
	rv_tlb_flush(&e->h);
	faults(e, 0x1000, RV_ACC_LOAD, RV_EXC_LOAD_FAULT);
	faults(e, 0x1000, RV_ACC_FETCH, RV_EXC_INSN_FAULT);
}

static void test_mmio(void **state)
{
	struct env *e = *state;
	uint64_t v = 0;

	map(e, 0x7000, DEV_BASE, V | R | W | A | D, 0);
	assert_true(rv_store(&e->h, 0x7010, 4, 0x55aa));
	assert_int_equal(e->dev_writes, 1);
	assert_int_equal(e->dev_off, 0x10);
	assert_int_equal(e->dev_val, 0x55aa);
	assert_int_equal(e->dev_size, 4);
	assert_true(rv_load(&e->h, 0x7005, 1, &v));
	assert_int_equal(e->dev_reads, 1);
	assert_int_equal(v, 0xabcd0005);
	assert_int_equal(e->dev_size, 1);
	/* misaligned, or past the device's end: access fault */
	faults(e, 0x7002, RV_ACC_LOAD, RV_EXC_LOAD_FAULT);
	faults(e, 0x7100, RV_ACC_LOAD, RV_EXC_LOAD_FAULT);
	assert_int_equal(e->dev_reads, 1);
	/* the bus refuses overlapping devices */
	struct rv_mmio dup = { .base = DEV_BASE + 0x80,
			       .size = 0x100,
			       .read = dev_read,
			       .write = dev_write };
	assert_false(rv_bus_add(&e->bus, &dup));
	assert_null(rv_bus_find(&e->bus, DEV_BASE + 0x100));
	assert_non_null(rv_bus_find(&e->bus, DEV_BASE + 0xff));
}

static void test_fetch_fault(void **state)
{
	struct env *e = *state;
	/* addi a0, zero, 1 at va 0x1000; the next page unmapped */
	uint32_t insn = 0x00100513;

	map(e, 0x1000, FRAME(1), V | R | X | A, 0);
	memcpy(ram(e, FRAME(1)), &insn, 4);
	e->h.pc = 0x1000;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.x[10], 1);
	/* jump off the end: an instruction page fault at the new pc */
	e->h.pc = 0x5000;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_EXC_INSN_PAGE);
	assert_int_equal(e->h.mtval, 0x5000);
	assert_int_equal(e->h.mepc, 0x5000);
	assert_int_equal(e->h.priv, RV_PRIV_M);
	/* a 32-bit instruction whose second half is on the unmapped page:
	 * epc is the instruction, tval the half that faulted */
	memcpy(ram(e, FRAME(1) + 0xffe), &insn, 2);
	e->h.priv = RV_PRIV_S;
	e->h.pc = 0x1ffe;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_EXC_INSN_PAGE);
	assert_int_equal(e->h.mepc, 0x1ffe);
	assert_int_equal(e->h.mtval, 0x2000);
	/* mapped, it runs */
	map(e, 0x2000, FRAME(2), V | R | X | A, 0);
	memcpy(ram(e, FRAME(2)), (uint8_t *)&insn + 2, 2);
	rv_tlb_flush(&e->h);
	e->h.priv = RV_PRIV_S;
	e->h.pc = 0x1ffe;
	e->h.x[10] = 0;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.x[10], 1);
	assert_int_equal(e->h.pc, 0x2002);
}

static void test_run_translated(void **state)
{
	struct env *e = *state;
	/* sd a1, 8(a0); ld a2, 8(a0); addi a0, a0, 16; a faulting sd last */
	static const uint32_t prog[] = { 0x00b53423, 0x00853603, 0x01050513,
					 0x00b53023 };
	uint64_t p;

	map(e, 0x10000, FRAME(1), V | R | X | A, 0);
	p = map(e, 0x20000, FRAME(2), V | R | W | A, 0);
	memcpy(ram(e, FRAME(1)), prog, sizeof(prog));
	e->h.medeleg = 1ull << RV_EXC_STORE_PAGE;
	e->h.stvec = 0x10800;
	e->h.pc = 0x10000;
	e->h.x[10] = 0x20ff0;
	e->h.x[11] = 0x1234;
	assert_int_equal(rv_hart_run(&e->h, 4, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.x[12], 0x1234);
	assert_int_equal(rd64(e, FRAME(2) + 0xff8), 0x1234);
	assert_int_equal(rd64(e, p) & D, D);
	/* the last store fell on 0x21000: delegated to S */
	assert_int_equal(e->h.priv, RV_PRIV_S);
	assert_int_equal(e->h.scause, RV_EXC_STORE_PAGE);
	assert_int_equal(e->h.stval, 0x21000);
	assert_int_equal(e->h.sepc, 0x1000c);
	assert_int_equal(e->h.pc, 0x10800);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_sv39_page),
		T(test_sv48_page),
		T(test_sv39_canonical),
		T(test_superpages),
		T(test_misaligned_superpage),
		T(test_reserved_ptes),
		T(test_permissions),
		T(test_user_pages),
		T(test_accessed_dirty),
		T(test_dirty_after_load),
		T(test_fp_store_dirty),
		T(test_tlb_flush),
		T(test_mprv),
		T(test_bare),
		T(test_page_crossing),
		T(test_access_faults),
		T(test_mmio),
		T(test_fetch_fault),
		T(test_run_translated),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
