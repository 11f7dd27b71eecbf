/*
 * test_hart.c - the hart runs hand-encoded programs on a small RAM bus:
 * RV64I and M arithmetic (division by zero and overflow included), the
 * compressed expansion against the assembler's own pairs, LR/SC and the
 * AMOs, traps (illegal, ecall, the SBI hook, delegation to S), interrupts
 * and their priority, WFI, the CSR rules, and the run loop's exits.
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
#define RAM_SIZE (1ull << 20)
#define DATA	 (RAM_BASE + 0x8000) /* where programs keep their data */
#define MTVEC	 (RAM_BASE + 0x4000)
#define STVEC	 (RAM_BASE + 0x5000)

/* registers by ABI name */
enum { ZERO, RA, SP, GP, TP, T0, T1, T2, S0, S1, A0, A1, A2, A3, A4, A5 };

struct env {
	struct rv_bus bus;
	struct rv_hart h;
	atomic_bool stop;
	unsigned n;   /* words of the program written so far */
	uint64_t now; /* what bus->time reads */
	int ecalls;   /* SBI calls answered */
};

/* The RV32 formats, for hand assembly. */
static uint32_t I(unsigned op, unsigned rd, unsigned f3, unsigned rs1,
		  int32_t imm)
{
	return ((uint32_t)imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 |
	       op;
}

static uint32_t R(unsigned op, unsigned rd, unsigned f3, unsigned rs1,
		  unsigned rs2, unsigned f7)
{
	return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static uint32_t S(unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
	uint32_t u = imm;

	return (u >> 5 & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 |
	       (u & 31) << 7 | 0x23;
}

static uint32_t B(unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
	uint32_t u = imm;

	return (u >> 12 & 1) << 31 | (u >> 5 & 0x3f) << 25 | rs2 << 20 |
	       rs1 << 15 | f3 << 12 | (u >> 1 & 0xf) << 8 | (u >> 11 & 1) << 7 |
	       0x63;
}

static uint32_t J(unsigned rd, int32_t imm)
{
	uint32_t u = imm;

	return (u >> 20 & 1) << 31 | (u >> 1 & 0x3ff) << 21 |
	       (u >> 11 & 1) << 20 | (u >> 12 & 0xff) << 12 | rd << 7 | 0x6f;
}

#define ADDI(rd, rs, imm)	  I(0x13, rd, 0, rs, imm)
#define ADD(rd, a, b)		  R(0x33, rd, 0, a, b, 0)
#define LUI(rd, imm20)		  ((uint32_t)(imm20) << 12 | (rd) << 7 | 0x37)
#define CSRRW(rd, csr, rs)	  I(0x73, rd, 1, rs, csr)
#define CSRRS(rd, csr, rs)	  I(0x73, rd, 2, rs, csr)
#define ECALL			  0x00000073u
#define EBREAK			  0x00100073u
#define MRET			  0x30200073u
#define SRET			  0x10200073u
#define WFI			  0x10500073u
#define NOP			  ADDI(0, 0, 0)
#define AMO(f5, f3, rd, rs1, rs2) R(0x2f, rd, f3, rs1, rs2, (f5) << 2)

static uint64_t read_time(void *opaque)
{
	return ((struct env *)opaque)->now;
}

static bool sbi(struct rv_hart *h, void *opaque)
{
	struct env *e = opaque;

	if (h->x[17] != 0x42)
		return false;
	e->ecalls++;
	h->x[A0] = 0;
	h->x[A1] = 0x1234;
	return true;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	e->bus.ram = aligned_alloc(4096, RAM_SIZE);
	assert_non_null(e->bus.ram);
	memset(e->bus.ram, 0, RAM_SIZE);
	e->bus.ram_base = RAM_BASE;
	e->bus.ram_size = RAM_SIZE;
	e->bus.time = read_time;
	e->bus.time_opaque = e;
	rv_hart_reset(&e->h, &e->bus, 0, RAM_BASE);
	e->h.mtvec = MTVEC;
	e->h.stvec = STVEC;
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

static uint8_t *ram(struct env *e, uint64_t pa)
{
	return e->bus.ram + (pa - RAM_BASE);
}

static void emit(struct env *e, uint32_t insn)
{
	memcpy(ram(e, RAM_BASE + 4 * e->n++), &insn, 4);
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

/* Run exactly the instructions emitted, expecting no early exit. */
static void run_all(struct env *e)
{
	assert_int_equal(rv_hart_run(&e->h, e->n, &e->stop), RV_EXIT_BUDGET);
}

static void test_arith(void **state)
{
	struct env *e = *state;

	emit(e, ADDI(A0, 0, 100));
	emit(e, ADDI(A1, 0, -3));
	emit(e, ADD(A2, A0, A1));		/* 97 */
	emit(e, R(0x33, A3, 0, A1, A0, 0x20));	/* sub: -103 */
	emit(e, LUI(A4, 0x80000));		/* sign-extends */
	emit(e, R(0x33, A5, 3, A1, A0, 0));	/* sltu: -3 < 100 no */
	emit(e, R(0x33, T0, 2, A1, A0, 0));	/* slt: yes */
	emit(e, I(0x13, T1, 5, A1, 0x400 | 1)); /* srai */
	emit(e, I(0x13, T2, 5, A1, 60));	/* srli */
	emit(e, ADDI(0, A0, 5));		/* x0 stays 0 */
	emit(e, 0x00000417);			/* auipc s0, 0 */
	run_all(e);
	assert_int_equal(e->h.x[A2], 97);
	assert_int_equal((int64_t)e->h.x[A3], -103);
	assert_int_equal(e->h.x[A4], 0xffffffff80000000ull);
	assert_int_equal(e->h.x[A5], 0);
	assert_int_equal(e->h.x[T0], 1);
	assert_int_equal((int64_t)e->h.x[T1], -2);
	assert_int_equal(e->h.x[T2], 0xf);
	assert_int_equal(e->h.x[0], 0);
	assert_int_equal(e->h.x[S0], RAM_BASE + 40);
	assert_int_equal(e->h.instret, 11);
}

static void test_word_ops(void **state)
{
	struct env *e = *state;

	emit(e, LUI(A0, 0x7ffff));
	emit(e, I(0x1b, A1, 0, A0, 0x7ff));	/* addiw: 0x7ffff7ff */
	emit(e, I(0x1b, A2, 0, A1, 0x7ff));	/* 0x7ffffffe */
	emit(e, I(0x1b, A2, 0, A2, 2));		/* overflows: negative */
	emit(e, I(0x1b, A3, 1, A0, 1));		/* slliw */
	emit(e, I(0x1b, A4, 5, A3, 0x400 | 4)); /* sraiw */
	emit(e, R(0x3b, A5, 5, A3, A0, 0));	/* srlw by 0x7ffff000 & 31 */
	run_all(e);
	assert_int_equal(e->h.x[A1], 0x7ffff7ffull);
	assert_int_equal(e->h.x[A2], 0xffffffff80000000ull);
	assert_int_equal(e->h.x[A3], 0xffffffffffffe000ull);
	assert_int_equal(e->h.x[A4], 0xfffffffffffffe00ull);
	assert_int_equal(e->h.x[A5], 0xffffffffffffe000ull);
}

static void test_branch_loop(void **state)
{
	struct env *e = *state;

	/* a0 = sum of 1..10 by a counted loop; then jal/jalr */
	emit(e, ADDI(A0, 0, 0));
	emit(e, ADDI(A1, 0, 10));
	emit(e, ADD(A0, A0, A1)); /* 8: loop */
	emit(e, ADDI(A1, A1, -1));
	emit(e, B(1, A1, 0, -8)); /* bne a1, x0, loop */
	emit(e, J(RA, 8));	  /* 20: jal ra, 28 */
	emit(e, ADDI(A2, 0, 1));  /* skipped */
	emit(e, I(0x67, T0, 0, RA,
		  9));		 /* 28: jalr t0, 9(ra) -> 32 (bit 0 cleared) */
	emit(e, ADDI(A3, 0, 7)); /* 32 */
	assert_int_equal(rv_hart_run(&e->h, 2 + 30 + 3, &e->stop),
			 RV_EXIT_BUDGET);
	assert_int_equal(e->h.x[A0], 55);
	assert_int_equal(e->h.x[RA], RAM_BASE + 24);
	assert_int_equal(e->h.x[T0], RAM_BASE + 32);
	assert_int_equal(e->h.x[A2], 0);
	assert_int_equal(e->h.x[A3], 7);
}

static void test_load_store(void **state)
{
	struct env *e = *state;

	e->h.x[S0] = DATA;
	wr64(e, DATA, 0x8877665544332211ull);
	emit(e, I(0x03, A0, 0, S0, 7)); /* lb 0x88 */
	emit(e, I(0x03, A1, 4, S0, 7)); /* lbu */
	emit(e, I(0x03, A2, 1, S0, 6)); /* lh 0x8877 */
	emit(e, I(0x03, A3, 6, S0, 4)); /* lwu */
	emit(e, I(0x03, A4, 2, S0, 4)); /* lw */
	emit(e, I(0x03, A5, 3, S0, 1)); /* misaligned ld */
	emit(e, S(0, S0, A1, 16));	/* sb */
	emit(e, S(1, S0, A2, 18));	/* sh */
	emit(e, S(2, S0, A4, 20));	/* sw */
	emit(e, S(3, S0, A5, 25));	/* misaligned sd */
	run_all(e);
	assert_int_equal(e->h.x[A0], 0xffffffffffffff88ull);
	assert_int_equal(e->h.x[A1], 0x88);
	assert_int_equal(e->h.x[A2], 0xffffffffffff8877ull);
	assert_int_equal(e->h.x[A3], 0x88776655ull);
	assert_int_equal(e->h.x[A4], 0xffffffff88776655ull);
	assert_int_equal(e->h.x[A5], 0x0088776655443322ull);
	assert_int_equal(ram(e, DATA + 16)[0], 0x88);
	assert_int_equal(ram(e, DATA + 18)[0], 0x77);
	assert_int_equal(ram(e, DATA + 19)[0], 0x88);
	assert_int_equal(ram(e, DATA + 20)[0], 0x55);
	assert_int_equal(rd64(e, DATA + 25), 0x0088776655443322ull);
}

static void test_mul(void **state)
{
	struct env *e = *state;

	e->h.x[A0] = (uint64_t)-5;
	e->h.x[A1] = 7;
	e->h.x[A2] = UINT64_MAX;
	emit(e, R(0x33, T0, 0, A0, A1, 1)); /* mul */
	emit(e, R(0x33, T1, 1, A0, A1, 1)); /* mulh: -1 */
	emit(e, R(0x33, T2, 3, A2, A2, 1)); /* mulhu: 2^64 - 2 */
	emit(e, R(0x33, S0, 2, A0, A2, 1)); /* mulhsu: -5 * (2^64-1) >> 64 */
	emit(e, R(0x3b, S1, 0, A2, A1, 1)); /* mulw: -7 */
	run_all(e);
	assert_int_equal((int64_t)e->h.x[T0], -35);
	assert_int_equal(e->h.x[T1], UINT64_MAX);
	assert_int_equal(e->h.x[T2], UINT64_MAX - 1);
	assert_int_equal((int64_t)e->h.x[S0], -5);
	assert_int_equal((int64_t)e->h.x[S1], -7);
}

static void test_div_by_zero(void **state)
{
	struct env *e = *state;

	e->h.x[A0] = 1234;
	e->h.x[A1] = 0;
	emit(e, R(0x33, T0, 4, A0, A1, 1)); /* div */
	emit(e, R(0x33, T1, 5, A0, A1, 1)); /* divu */
	emit(e, R(0x33, T2, 6, A0, A1, 1)); /* rem */
	emit(e, R(0x33, S0, 7, A0, A1, 1)); /* remu */
	emit(e, R(0x3b, S1, 4, A0, A1, 1)); /* divw */
	emit(e, R(0x3b, A2, 5, A0, A1, 1)); /* divuw */
	emit(e, R(0x3b, A3, 6, A0, A1, 1)); /* remw */
	emit(e, R(0x3b, A4, 7, A0, A1, 1)); /* remuw */
	run_all(e);
	assert_int_equal(e->h.x[T0], UINT64_MAX);
	assert_int_equal(e->h.x[T1], UINT64_MAX);
	assert_int_equal(e->h.x[T2], 1234);
	assert_int_equal(e->h.x[S0], 1234);
	assert_int_equal(e->h.x[S1], UINT64_MAX);
	assert_int_equal(e->h.x[A2], UINT64_MAX);
	assert_int_equal(e->h.x[A3], 1234);
	assert_int_equal(e->h.x[A4], 1234);
	assert_false(e->h.exc_pending);
}

static void test_div_overflow(void **state)
{
	struct env *e = *state;

	e->h.x[A0] = 1ull << 63;
	e->h.x[A1] = UINT64_MAX;
	e->h.x[A2] = 0xffffffff80000000ull;
	emit(e, R(0x33, T0, 4, A0, A1, 1)); /* div: INT64_MIN */
	emit(e, R(0x33, T1, 6, A0, A1, 1)); /* rem: 0 */
	emit(e, R(0x3b, T2, 4, A2, A1, 1)); /* divw: INT32_MIN */
	emit(e, R(0x3b, S0, 6, A2, A1, 1)); /* remw: 0 */
	emit(e, R(0x33, S1, 4, A1, A1, 1)); /* -1 / -1 = 1 */
	e->h.x[A3] = (uint64_t)-7;
	e->h.x[A4] = 2;
	emit(e, R(0x33, A5, 6, A3, A4, 1)); /* rem -7 % 2 = -1 */
	run_all(e);
	assert_int_equal(e->h.x[T0], 1ull << 63);
	assert_int_equal(e->h.x[T1], 0);
	assert_int_equal(e->h.x[T2], 0xffffffff80000000ull);
	assert_int_equal(e->h.x[S0], 0);
	assert_int_equal(e->h.x[S1], 1);
	assert_int_equal((int64_t)e->h.x[A5], -1);
}

/* Each compressed instruction against the 32-bit one the assembler
 * gives for the same operation (riscv64-linux-gnu-as, norvc and rvc). */
static const struct {
	uint16_t c;
	uint32_t insn;
} rvc[] = {
	{ 0x0800, 0x01010413 }, /* c.addi4spn s0, sp, 16 */
	{ 0x1ffc, 0x3fc10793 }, /* c.addi4spn a5, sp, 1020 */
	{ 0x2588, 0x0085b507 }, /* c.fld fa0, 8(a1) */
	{ 0x5de8, 0x07c5a503 }, /* c.lw a0, 124(a1) */
	{ 0x7fe4, 0x0f87b483 }, /* c.ld s1, 248(a5) */
	{ 0xaa0c, 0x00b63827 }, /* c.fsd fa1, 16(a2) */
	{ 0xc354, 0x00d72223 }, /* c.sw a3, 4(a4) */
	{ 0xe050, 0x08c43023 }, /* c.sd a2, 128(s0) */
	{ 0x0001, 0x00000013 }, /* c.nop */
	{ 0x1281, 0xfe028293 }, /* c.addi t0, -32 */
	{ 0x257d, 0x01f5051b }, /* c.addiw a0, 31 */
	{ 0x35fd, 0xfff5859b }, /* c.addiw a1, -1 */
	{ 0x5665, 0xff900613 }, /* c.li a2, -7 */
	{ 0x7101, 0xe0010113 }, /* c.addi16sp sp, -512 */
	{ 0x617d, 0x1f010113 }, /* c.addi16sp sp, 496 */
	{ 0x76fd, 0xfffff6b7 }, /* c.lui a3, 0xfffff */
	{ 0x637d, 0x0001f337 }, /* c.lui t1, 0x1f */
	{ 0x907d, 0x03f45413 }, /* c.srli s0, 63 */
	{ 0x8705, 0x40175713 }, /* c.srai a4, 1 */
	{ 0x9bc1, 0xff07f793 }, /* c.andi a5, -16 */
	{ 0x8c89, 0x40a484b3 }, /* c.sub s1, a0 */
	{ 0x8d2d, 0x00b54533 }, /* c.xor a0, a1 */
	{ 0x8e55, 0x00d66633 }, /* c.or a2, a3 */
	{ 0x8f7d, 0x00f77733 }, /* c.and a4, a5 */
	{ 0x9c05, 0x4094043b }, /* c.subw s0, s1 */
	{ 0x9fb9, 0x00e787bb }, /* c.addw a5, a4 */
	{ 0xaffd, 0x7fe0006f }, /* c.j .+2046 */
	{ 0xb001, 0x801ff06f }, /* c.j .-2048 */
	{ 0xcd7d, 0x0e050f63 }, /* c.beqz a0, .+254 */
	{ 0xf081, 0xf00490e3 }, /* c.bnez s1, .-256 */
	{ 0x1e06, 0x021e1e13 }, /* c.slli t3, 33 */
	{ 0x347e, 0x1f813407 }, /* c.fldsp fs0, 504(sp) */
	{ 0x50fe, 0x0fc12083 }, /* c.lwsp ra, 252(sp) */
	{ 0x6fa2, 0x00813f83 }, /* c.ldsp t6, 8(sp) */
	{ 0x8082, 0x00008067 }, /* c.jr ra */
	{ 0x851e, 0x00700533 }, /* c.mv a0, t2 */
	{ 0x9002, 0x00100073 }, /* c.ebreak */
	{ 0x9802, 0x000800e7 }, /* c.jalr a6 */
	{ 0x994e, 0x01390933 }, /* c.add s2, s3 */
	{ 0xa26e, 0x11b13027 }, /* c.fsdsp fs11, 256(sp) */
	{ 0xdfd2, 0x0f412e23 }, /* c.swsp s4, 252(sp) */
	{ 0xff86, 0x1e113c23 }, /* c.sdsp ra, 504(sp) */
};

static void test_rvc_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rvc) / sizeof(rvc[0]); i++) {
		uint32_t got = rv_expand_c(rvc[i].c);

		if (got != rvc[i].insn)
			fail_msg("c 0x%04x: got 0x%08x, want 0x%08x", rvc[i].c,
				 got, rvc[i].insn);
	}
}

static void test_rvc_illegal(void **state)
{
	static const uint16_t bad[] = {
		0x0000, /* all zero */
		0x0010, /* c.addi4spn with imm 0, rd' = a2 */
		0x8000, /* quadrant 0, funct3 4: reserved */
		0x2001, /* c.addiw rd = 0 */
		0x6281, /* c.lui t0, 0: reserved */
		0x6101, /* c.addi16sp sp, 0: reserved */
		0x9c41, /* c.subw's neighbours: reserved (funct 2) */
		0x9c61, /* reserved (funct 3) */
		0x4002, /* c.lwsp x0 */
		0x6002, /* c.ldsp x0 */
		0x8002, /* c.jr x0 */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (rv_expand_c(bad[i]))
			fail_msg("0x%04x expanded to 0x%08x", bad[i],
				 rv_expand_c(bad[i]));
}

static void test_rvc_run(void **state)
{
	struct env *e = *state;
	/* c.li a0, 5; c.addi a0, -1; c.mv a1, a0; c.add a1, a0; c.j +4;
	 * c.li a0, 0 (skipped); then a 32-bit addi at a 2-aligned pc */
	static const uint16_t prog[] = { 0x4515, 0x157d, 0x85aa,
					 0x95aa, 0xa011, 0x4501 };
	uint32_t addi = ADDI(A2, A1, 1);

	memcpy(ram(e, RAM_BASE), prog, sizeof(prog));
	memcpy(ram(e, RAM_BASE + sizeof(prog)), &addi, 4);
	assert_int_equal(rv_hart_run(&e->h, 6, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.x[A0], 4);
	assert_int_equal(e->h.x[A1], 8);
	assert_int_equal(e->h.x[A2], 9);
	assert_int_equal(e->h.pc, RAM_BASE + sizeof(prog) + 4);
	/* an illegal compressed instruction: tval holds its 16 bits */
	e->h.pc = RAM_BASE + 0x100;
	memcpy(ram(e, RAM_BASE + 0x100), &(uint16_t){ 0x6281 }, 2);
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_EXC_ILLEGAL);
	assert_int_equal(e->h.mtval, 0x6281);
}

static void test_straddle(void **state)
{
	struct env *e = *state;
	uint32_t insn = ADDI(A0, 0, 77);

	/* a 32-bit instruction in the last two bytes of a page */
	e->h.pc = RAM_BASE + 0x1ffe;
	memcpy(ram(e, RAM_BASE + 0x1ffe), &insn, 4);
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.x[A0], 77);
	assert_int_equal(e->h.pc, RAM_BASE + 0x2002);
}

static void test_lr_sc(void **state)
{
	struct env *e = *state;

	e->h.x[S0] = DATA;
	e->h.x[A1] = 99;
	wr64(e, DATA, 5);
	emit(e, AMO(0x02, 3, A0, S0, 0));  /* lr.d a0, (s0) */
	emit(e, AMO(0x03, 3, A2, S0, A1)); /* sc.d a2, a1, (s0): ok */
	emit(e, AMO(0x03, 3, A3, S0, A1)); /* sc.d again: no reservation */
	emit(e, AMO(0x02, 2, A4, S0, 0));  /* lr.w */
	run_all(e);
	assert_int_equal(e->h.x[A0], 5);
	assert_int_equal(e->h.x[A2], 0);
	assert_int_equal(e->h.x[A3], 1);
	assert_int_equal(e->h.x[A4], 99);
	assert_int_equal(rd64(e, DATA), 99);
	/* another hart changes the word between LR and SC: SC fails */
	e->n = 0;
	e->h.pc = RAM_BASE;
	emit(e, AMO(0x02, 2, A0, S0, 0));
	emit(e, AMO(0x03, 2, A2, S0, A1));
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	wr64(e, DATA, 7);
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.x[A2], 1);
	assert_int_equal(rd64(e, DATA), 7);
	/* SC to another address than the reservation's fails */
	e->n = 0;
	e->h.pc = RAM_BASE;
	e->h.x[S1] = DATA + 8;
	emit(e, AMO(0x02, 3, A0, S0, 0));
	emit(e, AMO(0x03, 3, A2, S1, A1));
	run_all(e);
	assert_int_equal(e->h.x[A2], 1);
	assert_int_equal(rd64(e, DATA + 8), 0);
	/* a misaligned LR raises a load misaligned exception */
	e->n = 0;
	e->h.pc = RAM_BASE;
	e->h.x[S1] = DATA + 4;
	emit(e, AMO(0x02, 3, A0, S1, 0));
	run_all(e);
	assert_int_equal(e->h.mcause, RV_EXC_LOAD_MISALIGNED);
	assert_int_equal(e->h.mtval, DATA + 4);
}

static void test_amo(void **state)
{
	struct env *e = *state;

	e->h.x[S0] = DATA;
	e->h.x[S1] = DATA + 8;
	wr64(e, DATA, 10);
	wr64(e, DATA + 8, 0xfffffffffffffff0ull);
	e->h.x[A1] = 5;
	emit(e, AMO(0x00, 3, A0, S0, A1)); /* amoadd.d: 10 -> 15 */
	emit(e, AMO(0x01, 3, A2, S0, A1)); /* amoswap.d: 15 -> 5 */
	emit(e, AMO(0x14, 2, A3, S1, A1)); /* amomax.w: -16 vs 5 -> 5 */
	emit(e, AMO(0x18, 3, A4, S0, 0));  /* amominu.d with 0 */
	emit(e, AMO(0x08, 3, A5, S0, A1)); /* amoor.d: 0 | 5 */
	emit(e, AMO(0x1c, 2, T0, S1, A1)); /* amomaxu.w */
	emit(e, AMO(0x10, 2, T1, S1, 0));  /* amomin.w: 5 vs 0 -> 0 */
	emit(e, AMO(0x0c, 3, T2, S0, 0));  /* amoand.d: -> 0 */
	run_all(e);
	assert_int_equal(e->h.x[A0], 10);
	assert_int_equal(e->h.x[A2], 15);
	assert_int_equal(e->h.x[A3], 0xfffffffffffffff0ull); /* sign-extended */
	assert_int_equal(e->h.x[A4], 5);
	assert_int_equal(e->h.x[A5], 0);
	assert_int_equal(e->h.x[T0], 5);
	assert_int_equal(e->h.x[T1], 5);
	assert_int_equal(e->h.x[T2], 5);
	assert_int_equal(rd64(e, DATA), 0);
	/* the upper word of the W target was left alone */
	assert_int_equal(rd64(e, DATA + 8), 0xffffffff00000000ull);
}

static void test_illegal_trap(void **state)
{
	struct env *e = *state;
	uint32_t bad = R(0x33, A0, 0, A0, A0, 0x7f); /* no such funct7 */

	emit(e, NOP);
	emit(e, bad);
	emit(e, CSRRW(0, 0xf14, A0)); /* mhartid is read-only */
	assert_int_equal(rv_hart_run(&e->h, 2, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_EXC_ILLEGAL);
	assert_int_equal(e->h.mepc, RAM_BASE + 4);
	assert_int_equal(e->h.mtval, bad);
	assert_int_equal(e->h.pc, MTVEC);
	assert_int_equal(e->h.priv, RV_PRIV_M);
	assert_int_equal((e->h.mstatus >> RV_MSTATUS_MPP_SHIFT) & 3, RV_PRIV_M);
	assert_int_equal(e->h.instret, 1); /* the trapping one did not retire */
	e->h.pc = RAM_BASE + 8;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mepc, RAM_BASE + 8);
	assert_int_equal(e->h.mtval, CSRRW(0, 0xf14, A0));
}

static void test_ecall(void **state)
{
	struct env *e = *state;

	/* M: cause 11 */
	emit(e, ECALL);
	run_all(e);
	assert_int_equal(e->h.mcause, RV_EXC_ECALL_M);
	assert_int_equal(e->h.mepc, RAM_BASE);
	/* U: cause 8 */
	e->h.pc = RAM_BASE;
	e->h.priv = RV_PRIV_U;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_EXC_ECALL_U);
	assert_int_equal((e->h.mstatus >> RV_MSTATUS_MPP_SHIFT) & 3, RV_PRIV_U);
	/* S with the SBI hook: answered, stepped past, no trap */
	e->bus.ecall = sbi;
	e->bus.ecall_opaque = e;
	e->h.pc = RAM_BASE;
	e->h.priv = RV_PRIV_S;
	e->h.x[17] = 0x42;
	e->h.mcause = 0;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->ecalls, 1);
	assert_int_equal(e->h.x[A1], 0x1234);
	assert_int_equal(e->h.pc, RAM_BASE + 4);
	assert_int_equal(e->h.priv, RV_PRIV_S);
	assert_int_equal(e->h.mcause, 0);
	/* the hook declines: an ordinary trap, cause 9 */
	e->h.pc = RAM_BASE;
	e->h.x[17] = 1;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_EXC_ECALL_S);
	assert_int_equal(e->h.priv, RV_PRIV_M);
}

static void test_delegation(void **state)
{
	struct env *e = *state;

	e->h.medeleg = 1ull << RV_EXC_ILLEGAL | 1ull << RV_EXC_BREAKPOINT;
	e->h.mstatus |= RV_MSTATUS_SIE;
	e->h.priv = RV_PRIV_S;
	emit(e, 0xffffffff); /* illegal */
	run_all(e);
	assert_int_equal(e->h.priv, RV_PRIV_S);
	assert_int_equal(e->h.scause, RV_EXC_ILLEGAL);
	assert_int_equal(e->h.sepc, RAM_BASE);
	assert_int_equal(e->h.stval, 0xffffffff);
	assert_int_equal(e->h.pc, STVEC);
	assert_true(e->h.mstatus & RV_MSTATUS_SPP);
	assert_true(e->h.mstatus & RV_MSTATUS_SPIE);
	assert_false(e->h.mstatus & RV_MSTATUS_SIE);
	assert_int_equal(e->h.mcause, 0);
	/* from U: SPP records U */
	e->h.pc = RAM_BASE;
	e->h.priv = RV_PRIV_U;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_false(e->h.mstatus & RV_MSTATUS_SPP);
	/* a delegated cause in M mode stays in M */
	e->h.pc = RAM_BASE;
	e->h.priv = RV_PRIV_M;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.priv, RV_PRIV_M);
	assert_int_equal(e->h.mcause, RV_EXC_ILLEGAL);
	assert_int_equal(e->h.pc, MTVEC);
	/* sret back to U; TSR makes sret illegal in S */
	e->n = 0;
	e->h.pc = RAM_BASE;
	e->h.priv = RV_PRIV_S;
	e->h.mstatus &= ~RV_MSTATUS_SPP;
	e->h.sepc = RAM_BASE + 0x100;
	emit(e, SRET);
	run_all(e);
	assert_int_equal(e->h.priv, RV_PRIV_U);
	assert_int_equal(e->h.pc, RAM_BASE + 0x100);
	e->h.pc = RAM_BASE;
	e->h.priv = RV_PRIV_S;
	e->h.medeleg = 0;
	e->h.mstatus |= 1ull << 22; /* TSR */
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_EXC_ILLEGAL);
	assert_int_equal(e->h.priv, RV_PRIV_M);
}

static void test_mret(void **state)
{
	struct env *e = *state;

	e->h.mepc = RAM_BASE + 0x200;
	e->h.mstatus |= RV_MSTATUS_MPIE | 1ull << RV_MSTATUS_MPP_SHIFT |
			RV_MSTATUS_MPRV;
	emit(e, MRET);
	run_all(e);
	assert_int_equal(e->h.priv, RV_PRIV_S);
	assert_int_equal(e->h.pc, RAM_BASE + 0x200);
	assert_true(e->h.mstatus & RV_MSTATUS_MIE);
	assert_true(e->h.mstatus & RV_MSTATUS_MPIE);
	assert_false(e->h.mstatus & RV_MSTATUS_MPRV);
	assert_int_equal((e->h.mstatus >> RV_MSTATUS_MPP_SHIFT) & 3, 0);
	/* mret from S is illegal */
	e->h.pc = RAM_BASE;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_EXC_ILLEGAL);
}

static void test_interrupt(void **state)
{
	struct env *e = *state;
	unsigned i;

	for (i = 0; i < 8; i++)
		emit(e, NOP);
	e->h.mtvec = MTVEC | 1; /* vectored */
	e->h.mie = 1ull << RV_IRQ_MTI;
	rv_hart_set_irq(&e->h, RV_IRQ_MTI, true);
	/* MIE clear in M: not taken */
	assert_int_equal(rv_hart_run(&e->h, 2, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.pc, RAM_BASE + 8);
	assert_true(rv_hart_irq_pending(&e->h));
	e->h.mstatus |= RV_MSTATUS_MIE;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_CAUSE_INTERRUPT | RV_IRQ_MTI);
	assert_int_equal(e->h.mepc, RAM_BASE + 8);
	assert_int_equal(e->h.pc, MTVEC + 4 * RV_IRQ_MTI);
	assert_int_equal(e->h.mtval, 0);
	assert_false(e->h.mstatus & RV_MSTATUS_MIE);
	assert_true(e->h.mstatus & RV_MSTATUS_MPIE);
	/* exceptions ignore the vector */
	rv_hart_set_irq(&e->h, RV_IRQ_MTI, false);
	assert_false(rv_hart_irq_pending(&e->h));
	wr64(e, MTVEC + 4 * RV_IRQ_MTI, ECALL);
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.pc, MTVEC);
	/* in U mode M interrupts are taken whatever MIE says */
	e->h.priv = RV_PRIV_U;
	e->h.pc = RAM_BASE;
	e->h.mstatus &= ~RV_MSTATUS_MIE;
	rv_hart_set_irq(&e->h, RV_IRQ_MTI, true);
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.priv, RV_PRIV_M);
	assert_int_equal(e->h.mcause, RV_CAUSE_INTERRUPT | RV_IRQ_MTI);
}

static void test_irq_priority(void **state)
{
	struct env *e = *state;

	emit(e, NOP);
	e->h.mie = 0xaaa;
	e->h.mstatus |= RV_MSTATUS_MIE;
	atomic_store(&e->h.mip, 1ull << RV_IRQ_MSI | 1ull << RV_IRQ_MTI |
					1ull << RV_IRQ_MEI |
					1ull << RV_IRQ_SEI);
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_CAUSE_INTERRUPT | RV_IRQ_MEI);
	rv_hart_set_irq(&e->h, RV_IRQ_MEI, false);
	e->h.pc = RAM_BASE;
	e->h.mstatus |= RV_MSTATUS_MIE;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_CAUSE_INTERRUPT | RV_IRQ_MSI);
	rv_hart_set_irq(&e->h, RV_IRQ_MSI, false);
	e->h.pc = RAM_BASE;
	e->h.mstatus |= RV_MSTATUS_MIE;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_CAUSE_INTERRUPT | RV_IRQ_MTI);
	/* S interrupts delegated: never taken in M, even with MIE */
	rv_hart_set_irq(&e->h, RV_IRQ_MTI, false);
	e->h.mideleg = 0x222;
	rv_hart_set_irq(&e->h, RV_IRQ_STI, true);
	rv_hart_set_irq(&e->h, RV_IRQ_SSI, true);
	e->h.pc = RAM_BASE;
	e->h.mstatus |= RV_MSTATUS_MIE;
	e->h.mcause = 0;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, 0);
	assert_int_equal(e->h.pc, RAM_BASE + 4);
	/* in S with SIE clear: not taken; with SIE: SEI, then SSI, then STI */
	e->h.priv = RV_PRIV_S;
	e->h.pc = RAM_BASE;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.pc, RAM_BASE + 4);
	e->h.mstatus |= RV_MSTATUS_SIE;
	e->h.pc = RAM_BASE;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.scause, RV_CAUSE_INTERRUPT | RV_IRQ_SEI);
	assert_int_equal(e->h.priv, RV_PRIV_S);
	assert_int_equal(e->h.pc, STVEC);
	rv_hart_set_irq(&e->h, RV_IRQ_SEI, false);
	e->h.mstatus |= RV_MSTATUS_SIE;
	e->h.pc = RAM_BASE;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.scause, RV_CAUSE_INTERRUPT | RV_IRQ_SSI);
	/* an M interrupt preempts S mode whatever SIE says */
	rv_hart_set_irq(&e->h, RV_IRQ_MTI, true);
	e->h.mstatus &= ~(RV_MSTATUS_SIE | RV_MSTATUS_MIE);
	e->h.pc = RAM_BASE;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_CAUSE_INTERRUPT | RV_IRQ_MTI);
	assert_int_equal(e->h.priv, RV_PRIV_M);
	assert_true(e->h.mstatus & (1ull << RV_MSTATUS_MPP_SHIFT));
}

static void test_wfi(void **state)
{
	struct env *e = *state;

	emit(e, WFI);
	emit(e, NOP);
	e->h.mie = 1ull << RV_IRQ_MSI;
	assert_int_equal(rv_hart_run(&e->h, 100, &e->stop), RV_EXIT_WFI);
	assert_true(e->h.wfi);
	assert_int_equal(e->h.pc, RAM_BASE + 4);
	/* nothing pending: stays asleep */
	assert_int_equal(rv_hart_run(&e->h, 100, &e->stop), RV_EXIT_WFI);
	assert_int_equal(e->h.pc, RAM_BASE + 4);
	/* pending and enabled in mie, though MIE is clear: wakes, and runs
	 * on without taking it */
	rv_hart_set_irq(&e->h, RV_IRQ_MSI, true);
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_false(e->h.wfi);
	assert_int_equal(e->h.pc, RAM_BASE + 8);
	/* WFI with something pending does not stop */
	e->h.pc = RAM_BASE;
	assert_int_equal(rv_hart_run(&e->h, 2, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.pc, RAM_BASE + 8);
	/* TW: illegal in S */
	rv_hart_set_irq(&e->h, RV_IRQ_MSI, false);
	e->h.pc = RAM_BASE;
	e->h.priv = RV_PRIV_S;
	e->h.mstatus |= 1ull << 21;
	assert_int_equal(rv_hart_run(&e->h, 1, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.mcause, RV_EXC_ILLEGAL);
	assert_int_equal(e->h.mtval, WFI);
}

static void test_stop(void **state)
{
	struct env *e = *state;

	/* an endless loop: j . */
	emit(e, J(0, 0));
	atomic_store(&e->stop, true);
	assert_int_equal(rv_hart_run(&e->h, 1000000, &e->stop), RV_EXIT_STOP);
	atomic_store(&e->stop, false);
	assert_int_equal(rv_hart_run(&e->h, 100000, &e->stop), RV_EXIT_BUDGET);
	assert_int_equal(e->h.instret, 100000);
	assert_int_equal(e->h.pc, RAM_BASE);
}

static void test_csr_rules(void **state)
{
	struct env *e = *state;
	struct rv_hart *h = &e->h;
	uint64_t v;

	/* sstatus is a view of mstatus */
	h->mstatus |= RV_MSTATUS_MIE | RV_MSTATUS_SIE;
	assert_true(rv_csr_read(h, 0x100, &v));
	assert_int_equal(v & RV_MSTATUS_MIE, 0);
	assert_true(v & RV_MSTATUS_SIE);
	assert_true(rv_csr_write(h, 0x100, RV_MSTATUS_SUM));
	assert_true(h->mstatus & RV_MSTATUS_MIE);
	assert_false(h->mstatus & RV_MSTATUS_SIE);
	assert_true(h->mstatus & RV_MSTATUS_SUM);
	/* sie through mideleg */
	assert_true(rv_csr_write(h, 0x104, 0xaaa));
	assert_int_equal(h->mie, 0);
	h->mideleg = 0x222;
	assert_true(rv_csr_write(h, 0x104, 0xaaa));
	assert_int_equal(h->mie, 0x222);
	/* satp: an unsupported mode leaves it unchanged */
	assert_true(rv_csr_write(h, 0x180, 8ull << 60 | 0x1234));
	assert_true(rv_csr_write(h, 0x180, 10ull << 60 | 0x1));
	assert_int_equal(h->satp, 8ull << 60 | 0x1234);
	/* FP CSRs: illegal with FS off, dirty after a write */
	assert_false(rv_csr_read(h, 0x003, &v));
	h->mstatus |= 1ull << RV_MSTATUS_FS_SHIFT;
	assert_true(rv_csr_write(h, 0x002, 3));
	assert_int_equal(h->fcsr, 3 << 5);
	assert_int_equal(h->mstatus & RV_MSTATUS_FS, RV_MSTATUS_FS);
	assert_true(rv_csr_read(h, 0x300, &v));
	assert_true(v & RV_MSTATUS_SD);
	/* read-only numbers, and privilege */
	assert_false(rv_csr_write(h, 0xf14, 1));
	assert_false(rv_csr_write(h, 0xc00, 1));
	h->priv = RV_PRIV_S;
	assert_false(rv_csr_read(h, 0x300, &v));
	assert_true(rv_csr_read(h, 0x100, &v));
	/* counters below M need mcounteren, and in U scounteren too */
	assert_false(rv_csr_read(h, 0xc01, &v));
	h->mcounteren = 2;
	e->now = 777;
	assert_true(rv_csr_read(h, 0xc01, &v));
	assert_int_equal(v, 777);
	h->priv = RV_PRIV_U;
	assert_false(rv_csr_read(h, 0xc01, &v));
	h->scounteren = 2;
	assert_true(rv_csr_read(h, 0xc01, &v));
	assert_false(rv_csr_read(h, 0xc00, &v));
	assert_false(rv_csr_read(h, 0x100, &v));
	/* TVM: satp illegal in S */
	h->priv = RV_PRIV_S;
	h->mstatus |= 1ull << 20;
	assert_false(rv_csr_read(h, 0x180, &v));
	/* stimecmp: no Sstc */
	assert_false(rv_csr_read(h, 0x14d, &v));
	h->priv = RV_PRIV_M;
	/* MPP's reserved value 2 is not taken; misa is read-only */
	assert_true(rv_csr_write(h, 0x300, 2ull << RV_MSTATUS_MPP_SHIFT));
	assert_int_equal((h->mstatus >> RV_MSTATUS_MPP_SHIFT) & 3, 0);
	assert_true(rv_csr_write(h, 0x301, 0));
	assert_true(rv_csr_read(h, 0x301, &v));
	assert_int_equal(v >> 62, 2);
	assert_true(v & (1 << ('C' - 'A')));
	/* mtvec modes above 1 are not taken */
	assert_true(rv_csr_write(h, 0x305, 0x80001000ull | 2));
	assert_int_equal(h->mtvec, MTVEC);
	/* the PMP registers are accepted */
	assert_true(rv_csr_write(h, 0x3a0, 0x1f));
	assert_true(rv_csr_write(h, 0x3b0, ~0ull));
	assert_false(rv_csr_read(h, 0x3a1, &v));
}

static void test_counters(void **state)
{
	struct env *e = *state;

	emit(e, NOP);
	emit(e, I(0x73, 0, 5, 0, 0xb02)); /* csrwi minstret, 0 */
	emit(e, CSRRS(A0, 0xb02, 0));	  /* reads the value written */
	emit(e, CSRRS(A1, 0xc02, 0));	  /* instret: one more */
	emit(e, I(0x73, 0, 5, 5, 0xb00)); /* csrwi mcycle, 5 */
	emit(e, CSRRS(A2, 0xb00, 0));
	emit(e, I(0x73, 0, 5, 4, 0x320)); /* csrwi mcountinhibit, IR */
	emit(e, NOP);
	emit(e, CSRRS(A3, 0xb02, 0));
	run_all(e);
	assert_int_equal(e->h.x[A0], 0);
	assert_int_equal(e->h.x[A1], 1);
	assert_int_equal(e->h.x[A2], 5);
	assert_int_equal(e->h.x[A3], e->h.instret);
	assert_int_equal(e->h.x[A3], 4);
}

static void test_fence_and_rdtime(void **state)
{
	struct env *e = *state;

	e->now = 123456;
	emit(e, 0x0ff0000f);	      /* fence iorw, iorw */
	emit(e, 0x0000100f);	      /* fence.i */
	emit(e, CSRRS(A0, 0xc01, 0)); /* rdtime */
	emit(e, CSRRS(A1, 0xf14, 0)); /* mhartid */
	emit(e, 0x12000073);	      /* sfence.vma */
	run_all(e);
	assert_int_equal(e->h.x[A0], 123456);
	assert_int_equal(e->h.x[A1], 0);
	assert_int_equal(e->h.pc, RAM_BASE + 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_arith),	      T(test_word_ops),
		T(test_branch_loop),  T(test_load_store),
		T(test_mul),	      T(test_div_by_zero),
		T(test_div_overflow), T(test_rvc_table),
		T(test_rvc_illegal),  T(test_rvc_run),
		T(test_straddle),     T(test_lr_sc),
		T(test_amo),	      T(test_illegal_trap),
		T(test_ecall),	      T(test_delegation),
		T(test_mret),	      T(test_interrupt),
		T(test_irq_priority), T(test_wfi),
		T(test_stop),	      T(test_csr_rules),
		T(test_counters),     T(test_fence_and_rdtime),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
