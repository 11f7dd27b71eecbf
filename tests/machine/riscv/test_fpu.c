/*
 * test_fpu.c - the F and D extensions give the bits and the flags the
 * RISC-V spec asks for.
 *
 * Each case runs encoded instructions through rv_fp_exec() on a hart in M
 * mode with a little RAM, and checks results bit for bit against values
 * worked out by hand: every class of instruction, every rounding mode and
 * RMM's ties, the accrued flags, NaN boxing and the canonical NaN,
 * saturating conversions, min/max on signed zeros and NaNs, fused
 * multiply-add's single rounding, and the illegal cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "riscv.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE 0x10000ull

#define NX 0x01u
#define UF 0x02u
#define OF 0x04u
#define DZ 0x08u
#define NV 0x10u

enum { RNE, RTZ, RDN, RUP, RMM, DYN = 7 };

#define BOX(v) (0xffffffff00000000ull | (uint32_t)(v))
#define NAN_S  0x7fc00000u
#define NAN_D  0x7ff8000000000000ull
#define SNAN_S 0x7f800001u
#define SNAN_D 0x7ff0000000000001ull
#define ONE_S  0x3f800000u
#define ONE_D  0x3ff0000000000000ull
#define INF_S  0x7f800000u
#define INF_D  0x7ff0000000000000ull

static uint8_t ram[RAM_SIZE];
static struct rv_bus bus;
static struct rv_hart hart;

static int setup(void **state)
{
	(void)state;
	memset(ram, 0, sizeof(ram));
	memset(&bus, 0, sizeof(bus));
	bus.ram = ram;
	bus.ram_base = RAM_BASE;
	bus.ram_size = RAM_SIZE;
	rv_hart_reset(&hart, &bus, 0, RAM_BASE);
	hart.mstatus |= 1ull << RV_MSTATUS_FS_SHIFT; /* initial */
	return 0;
}

/* Encodings: OP-FP (funct5, fmt), the fused four, loads and stores. */
static uint32_t op(unsigned f5, unsigned fmt, unsigned rd, unsigned rs1,
		   unsigned rs2, unsigned rm)
{
	return f5 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | rm << 12 |
	       rd << 7 | 0x53;
}

static uint32_t r4(unsigned opc, unsigned fmt, unsigned rd, unsigned rs1,
		   unsigned rs2, unsigned rs3, unsigned rm)
{
	return rs3 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | rm << 12 |
	       rd << 7 | opc;
}

#define S	 0
#define D	 1
#define F_ADD	 0x00
#define F_SUB	 0x01
#define F_MUL	 0x02
#define F_DIV	 0x03
#define F_SGNJ	 0x04
#define F_MINMAX 0x05
#define F_CVTFF	 0x08
#define F_SQRT	 0x0b
#define F_CMP	 0x14
#define F_CVTI	 0x18 /* to integer */
#define F_CVTF	 0x1a /* from integer */
#define F_MVX	 0x1c /* FMV.X, FCLASS */
#define F_MVF	 0x1e
#define O_FMADD	 0x43
#define O_FMSUB	 0x47
#define O_FNMSUB 0x4b
#define O_FNMADD 0x4f

static void exec(uint32_t insn)
{
	hart.exc_pending = false;
	assert_true(rv_fp_exec(&hart, insn));
	assert_false(hart.exc_pending);
}

static void exec_illegal(uint32_t insn)
{
	hart.exc_pending = false;
	assert_false(rv_fp_exec(&hart, insn));
	assert_true(hart.exc_pending);
	assert_int_equal(hart.exc_cause, RV_EXC_ILLEGAL);
	assert_int_equal(hart.exc_tval, insn);
}

/* Flags accrued by one instruction, from a clear fflags. */
static unsigned flags_of(uint32_t insn)
{
	hart.fcsr &= ~0x1fu;
	exec(insn);
	return hart.fcsr & 0x1f;
}

/* f1 op f2 into f3 in single, with rounding mode rm. */
static uint32_t bin_s(unsigned f5, uint32_t a, uint32_t b, unsigned rm,
		      unsigned *fl)
{
	hart.f[1] = BOX(a);
	hart.f[2] = BOX(b);
	*fl = flags_of(op(f5, S, 3, 1, 2, rm));
	assert_int_equal(hart.f[3] >> 32, 0xffffffffu);
	return (uint32_t)hart.f[3];
}

static uint64_t bin_d(unsigned f5, uint64_t a, uint64_t b, unsigned rm,
		      unsigned *fl)
{
	hart.f[1] = a;
	hart.f[2] = b;
	*fl = flags_of(op(f5, D, 3, 1, 2, rm));
	return hart.f[3];
}

static void test_load_store(void **state)
{
	uint64_t v;

	(void)state;
	hart.x[5] = RAM_BASE + 0x110;
	memcpy(ram + 0x100, "\x00\x00\x80\x3f", 4);
	/* flw f1, -16(x5) */
	exec((uint32_t)(-16 & 0xfff) << 20 | 5 << 15 | 2 << 12 | 1 << 7 | 0x07);
	assert_int_equal(hart.f[1], BOX(ONE_S));
	/* fsw f1, 8(x5): the low 32 bits only */
	memset(ram + 0x118, 0xaa, 8);
	exec(1 << 20 | 5 << 15 | 2 << 12 | 8 << 7 | 0x27);
	assert_memory_equal(ram + 0x118, "\x00\x00\x80\x3f\xaa\xaa", 6);
	/* fsd f2, -32(x5), then fld f3, -32(x5) */
	hart.f[2] = 0x0123456789abcdefull;
	exec(0x7fu << 25 | 2 << 20 | 5 << 15 | 3 << 12 | 0x27);
	memcpy(&v, ram + 0xf0, 8);
	assert_int_equal(v, 0x0123456789abcdefull);
	exec((uint32_t)(-32 & 0xfff) << 20 | 5 << 15 | 3 << 12 | 3 << 7 | 0x07);
	assert_int_equal(hart.f[3], 0x0123456789abcdefull);
	assert_int_equal(hart.mstatus & RV_MSTATUS_FS, RV_MSTATUS_FS);
	/* outside RAM: the fault is raised and f4 keeps its value */
	hart.x[5] = 0x1000;
	hart.f[4] = 42;
	hart.exc_pending = false;
	assert_false(rv_fp_exec(&hart, 5 << 15 | 3 << 12 | 4 << 7 | 0x07));
	assert_true(hart.exc_pending);
	assert_int_equal(hart.exc_cause, RV_EXC_LOAD_FAULT);
	assert_int_equal(hart.f[4], 42);
	/* FLH (Zfh) and FLQ are not there */
	exec_illegal(5 << 15 | 1 << 12 | 4 << 7 | 0x07);
	exec_illegal(5 << 15 | 4 << 12 | 4 << 7 | 0x07);
}

static void test_arith(void **state)
{
	unsigned fl;

	(void)state;
	assert_int_equal(bin_s(F_ADD, ONE_S, 0x40000000, RNE, &fl), 0x40400000);
	assert_int_equal(fl, 0);
	assert_int_equal(bin_d(F_SUB, ONE_D, 0x4000000000000000ull, RNE, &fl),
			 0xbff0000000000000ull);
	assert_int_equal(bin_s(F_MUL, 0x40400000, 0xc0000000, RNE, &fl),
			 0xc0c00000); /* 3 * -2 */
	assert_int_equal(bin_d(F_DIV, ONE_D, 0x4008000000000000ull, RNE, &fl),
			 0x3fd5555555555555ull);
	assert_int_equal(fl, NX);
	assert_int_equal(bin_s(F_DIV, ONE_S, 0, RNE, &fl), INF_S);
	assert_int_equal(fl, DZ);
	assert_int_equal(bin_d(F_DIV, 0, 0, RNE, &fl), NAN_D);
	assert_int_equal(fl, NV);
	/* sqrt: exact, inexact, -0, negative */
	hart.f[1] = BOX(0x41100000); /* 9 */
	assert_int_equal(flags_of(op(F_SQRT, S, 2, 1, 0, RNE)), 0);
	assert_int_equal(hart.f[2], BOX(0x40400000));
	hart.f[1] = 0x4000000000000000ull;
	assert_int_equal(flags_of(op(F_SQRT, D, 2, 1, 0, RNE)), NX);
	assert_int_equal(hart.f[2], 0x3ff6a09e667f3bcdull);
	hart.f[1] = 0x8000000000000000ull;
	assert_int_equal(flags_of(op(F_SQRT, D, 2, 1, 0, RNE)), 0);
	assert_int_equal(hart.f[2], 0x8000000000000000ull);
	hart.f[1] = BOX(0xbf800000);
	assert_int_equal(flags_of(op(F_SQRT, S, 2, 1, 0, RNE)), NV);
	assert_int_equal(hart.f[2], BOX(NAN_S));
	/* FSQRT with rs2 != 0 is reserved */
	exec_illegal(op(F_SQRT, S, 2, 1, 1, RNE));
	/* inf - inf */
	assert_int_equal(bin_d(F_SUB, INF_D, INF_D, RNE, &fl), NAN_D);
	assert_int_equal(fl, NV);
	/* x - x is -0 only when rounding down */
	assert_int_equal(bin_d(F_SUB, ONE_D, ONE_D, RNE, &fl), 0);
	assert_int_equal(bin_d(F_SUB, ONE_D, ONE_D, RDN, &fl),
			 0x8000000000000000ull);
}

static void test_rounding_modes(void **state)
{
	static const uint32_t third_s[] = { 0x3eaaaaab, 0x3eaaaaaa, 0x3eaaaaaa,
					    0x3eaaaaab, 0x3eaaaaab };
	static const uint64_t mthird_d[] = { 0xbfd5555555555555ull,
					     0xbfd5555555555555ull,
					     0xbfd5555555555556ull,
					     0xbfd5555555555555ull,
					     0xbfd5555555555555ull };
	unsigned rm, fl;

	(void)state;
	for (rm = RNE; rm <= RMM; rm++) {
		assert_int_equal(bin_s(F_DIV, ONE_S, 0x40400000, rm, &fl),
				 third_s[rm]);
		assert_int_equal(fl, NX);
		assert_int_equal(bin_d(F_DIV, 0xbff0000000000000ull,
				       0x4008000000000000ull, rm, &fl),
				 mthird_d[rm]);
		assert_int_equal(fl, NX);
		/* the same through frm */
		hart.fcsr = rm << 5;
		assert_int_equal(bin_s(F_DIV, ONE_S, 0x40400000, DYN, &fl),
				 third_s[rm]);
		assert_int_equal(hart.fcsr >> 5, rm);
		hart.fcsr = 0;
	}
}

static void test_rmm_ties(void **state)
{
	unsigned fl;

	(void)state;
	/* 1 + 2^-24 is halfway between 1 and its successor */
	assert_int_equal(bin_s(F_ADD, ONE_S, 0x33800000, RNE, &fl), ONE_S);
	assert_int_equal(fl, NX);
	assert_int_equal(bin_s(F_ADD, ONE_S, 0x33800000, RMM, &fl), 0x3f800001);
	assert_int_equal(fl, NX);
	assert_int_equal(bin_s(F_SUB, 0xbf800000, 0x33800000, RMM, &fl),
			 0xbf800001);
	/* a tie where even is already away from zero */
	assert_int_equal(bin_s(F_ADD, 0x3f800001, 0x33800000, RMM, &fl),
			 0x3f800002);
	/* not a tie: RMM is to nearest */
	assert_int_equal(bin_s(F_ADD, ONE_S, 0x33000000, RMM, &fl), ONE_S);
	assert_int_equal(bin_d(F_ADD, ONE_D, 0x3ca0000000000000ull, RNE, &fl),
			 ONE_D);
	assert_int_equal(bin_d(F_ADD, ONE_D, 0x3ca0000000000000ull, RMM, &fl),
			 ONE_D + 1);
	/* a subnormal tie: 5 * 2^-1074 * 0.5 */
	assert_int_equal(bin_d(F_MUL, 5, 0x3fe0000000000000ull, RNE, &fl), 2);
	assert_int_equal(fl, UF | NX);
	assert_int_equal(bin_d(F_MUL, 5, 0x3fe0000000000000ull, RMM, &fl), 3);
	assert_int_equal(fl, UF | NX);
	/* half the smallest subnormal: to 0 even, away to the smallest */
	assert_int_equal(bin_s(F_MUL, 1, 0x3f000000, RNE, &fl), 0);
	assert_int_equal(bin_s(F_MUL, 1, 0x3f000000, RMM, &fl), 1);
	assert_int_equal(fl, UF | NX);
	/* conversions: 2^24 + 1 to single, 2.5 and -2.5 to integers */
	hart.x[1] = 0x1000001;
	exec(op(F_CVTF, S, 2, 1, 2, RNE));
	assert_int_equal(hart.f[2], BOX(0x4b800000));
	exec(op(F_CVTF, S, 2, 1, 2, RMM));
	assert_int_equal(hart.f[2], BOX(0x4b800001));
	hart.f[1] = BOX(0x40200000);
	hart.f[2] = BOX(0xc0200000);
	assert_int_equal(flags_of(op(F_CVTI, S, 3, 1, 0, RNE)), NX);
	assert_int_equal(hart.x[3], 2);
	assert_int_equal(flags_of(op(F_CVTI, S, 3, 1, 0, RMM)), NX);
	assert_int_equal(hart.x[3], 3);
	exec(op(F_CVTI, S, 3, 2, 0, RMM));
	assert_int_equal(hart.x[3], (uint64_t)-3);
	exec(op(F_CVTI, S, 3, 2, 0, RNE));
	assert_int_equal(hart.x[3], (uint64_t)-2);
	exec(op(F_CVTI, S, 3, 2, 2, RDN));
	assert_int_equal(hart.x[3], (uint64_t)-3);
	exec(op(F_CVTI, S, 3, 2, 2, RUP));
	assert_int_equal(hart.x[3], (uint64_t)-2);
	/* double to single, halfway */
	hart.f[1] = 0x3ff0000010000000ull; /* 1 + 2^-24 */
	exec(op(F_CVTFF, S, 2, 1, 1, RMM));
	assert_int_equal(hart.f[2], BOX(0x3f800001));
	exec(op(F_CVTFF, S, 2, 1, 1, RNE));
	assert_int_equal(hart.f[2], BOX(ONE_S));
	/* a fused multiply-add whose exact result is a tie: 1*1 + 2^-24 */
	hart.f[1] = BOX(ONE_S);
	hart.f[2] = BOX(0x33800000);
	exec(r4(O_FMADD, S, 3, 1, 1, 2, RMM));
	assert_int_equal(hart.f[3], BOX(0x3f800001));
	exec(r4(O_FMADD, S, 3, 1, 1, 2, RNE));
	assert_int_equal(hart.f[3], BOX(ONE_S));
}

static void test_overflow_underflow(void **state)
{
	unsigned fl;

	(void)state;
	/* FLT_MAX * 2: infinity to nearest and up, FLT_MAX toward zero */
	assert_int_equal(bin_s(F_MUL, 0x7f7fffff, 0x40000000, RNE, &fl), INF_S);
	assert_int_equal(fl, OF | NX);
	assert_int_equal(bin_s(F_MUL, 0x7f7fffff, 0x40000000, RTZ, &fl),
			 0x7f7fffff);
	assert_int_equal(fl, OF | NX);
	assert_int_equal(bin_s(F_MUL, 0x7f7fffff, 0xc0000000, RUP, &fl),
			 0xff7fffff);
	assert_int_equal(bin_d(F_MUL, 0x7fefffffffffffffull,
			       0x7fefffffffffffffull, RMM, &fl),
			 INF_D);
	assert_int_equal(fl, OF | NX);
	/* an exact subnormal result does not underflow */
	assert_int_equal(bin_s(F_MUL, 0x00800000, 0x3f000000, RNE, &fl),
			 0x00400000);
	assert_int_equal(fl, 0);
	/*
	 * Tininess after rounding: 2^-126 (1 - 2^-25) rounds to 2^-126 even
	 * with an unbounded exponent, so it is not tiny (NX alone); 2^-126
	 * (1 - 2^-24) is a 24-bit value below 2^-126, tiny (UF and NX).
	 */
	hart.f[1] = 0x380ffffff0000000ull;
	assert_int_equal(flags_of(op(F_CVTFF, S, 2, 1, 1, RNE)), NX);
	assert_int_equal(hart.f[2], BOX(0x00800000));
	hart.f[1] = 0x380fffffe0000000ull;
	assert_int_equal(flags_of(op(F_CVTFF, S, 2, 1, 1, RNE)), UF | NX);
	assert_int_equal(hart.f[2], BOX(0x00800000));
	/* double to single overflow */
	hart.f[1] = 0x47f0000000000000ull;
	assert_int_equal(flags_of(op(F_CVTFF, S, 2, 1, 1, RDN)), OF | NX);
	assert_int_equal(hart.f[2], BOX(0x7f7fffff));
	/* flags accrue: nothing clears them but a write of fcsr */
	hart.fcsr = 0;
	bin_s(F_DIV, ONE_S, 0, RNE, &fl);
	hart.f[1] = BOX(ONE_S);
	hart.f[2] = BOX(0x40400000);
	exec(op(F_DIV, S, 3, 1, 2, RNE));
	assert_int_equal(hart.fcsr, DZ | NX);
}

static void test_nan_boxing(void **state)
{
	unsigned fl;

	(void)state;
	/* an unboxed single reads as the canonical NaN, quietly */
	hart.f[1] = 0x000000003f800000ull;
	hart.f[2] = BOX(ONE_S);
	assert_int_equal(flags_of(op(F_ADD, S, 3, 1, 2, RNE)), 0);
	assert_int_equal(hart.f[3], BOX(NAN_S));
	hart.f[1] = 0xfffffffe3f800000ull; /* one bit short of boxed */
	exec(op(F_MUL, S, 3, 1, 2, RNE));
	assert_int_equal(hart.f[3], BOX(NAN_S));
	/* sign injection and classification see the canonical NaN too */
	hart.f[2] = BOX(0xbf800000);
	exec(op(F_SGNJ, S, 3, 1, 2, 0));
	assert_int_equal(hart.f[3], BOX(0xffc00000));
	exec(op(F_MVX, S, 4, 1, 0, 1));
	assert_int_equal(hart.x[4], 1u << 9);
	/* min/max take the other operand */
	exec(op(F_MINMAX, S, 3, 1, 2, 0));
	assert_int_equal(hart.f[3], BOX(0xbf800000));
	/* moves and stores pass the low 32 bits as they are */
	hart.f[1] = 0x12345678bf800000ull;
	exec(op(F_MVX, S, 4, 1, 0, 0));
	assert_int_equal(hart.x[4], 0xffffffffbf800000ull);
	hart.x[5] = 0x1234567800000000ull | ONE_S;
	exec(op(F_MVF, S, 6, 5, 0, 0));
	assert_int_equal(hart.f[6], BOX(ONE_S));
	/* a double op reads all 64 bits: a boxed single is a NaN there */
	assert_int_equal(bin_d(F_ADD, BOX(ONE_S), ONE_D, RNE, &fl), NAN_D);
	assert_int_equal(fl, 0);
	/* FCVT.D.S of an unboxed value: the canonical NaN, no flags */
	hart.f[1] = 0x3f800000ull;
	assert_int_equal(flags_of(op(F_CVTFF, D, 2, 1, 0, RNE)), 0);
	assert_int_equal(hart.f[2], NAN_D);
}

static void test_canonical_nan(void **state)
{
	unsigned fl;

	(void)state;
	/* NaN payloads do not propagate; quiet ones raise nothing */
	assert_int_equal(bin_s(F_ADD, 0xffc12345, ONE_S, RNE, &fl), NAN_S);
	assert_int_equal(fl, 0);
	assert_int_equal(bin_s(F_ADD, SNAN_S, ONE_S, RNE, &fl), NAN_S);
	assert_int_equal(fl, NV);
	assert_int_equal(bin_d(F_MUL, 0xfff8000000000123ull, ONE_D, RNE, &fl),
			 NAN_D);
	assert_int_equal(fl, 0);
	assert_int_equal(bin_d(F_MUL, INF_D, 0, RNE, &fl), NAN_D);
	assert_int_equal(fl, NV);
	/* conversions between the formats */
	hart.f[1] = BOX(0x7fc12345);
	assert_int_equal(flags_of(op(F_CVTFF, D, 2, 1, 0, RNE)), 0);
	assert_int_equal(hart.f[2], NAN_D);
	hart.f[1] = BOX(SNAN_S);
	assert_int_equal(flags_of(op(F_CVTFF, D, 2, 1, 0, RNE)), NV);
	assert_int_equal(hart.f[2], NAN_D);
	hart.f[1] = SNAN_D;
	assert_int_equal(flags_of(op(F_CVTFF, S, 2, 1, 1, RNE)), NV);
	assert_int_equal(hart.f[2], BOX(NAN_S));
	hart.f[1] = BOX(0x3f800000);
	assert_int_equal(flags_of(op(F_CVTFF, D, 2, 1, 0, RNE)), 0);
	assert_int_equal(hart.f[2], ONE_D);
}

/* FCVT.<k>.<fmt> of f1 into x3: the result, with its flags in *fl. */
static uint64_t to_int(unsigned fmt, unsigned k, uint64_t v, unsigned rm,
		       unsigned *fl)
{
	hart.f[1] = fmt == S ? BOX(v) : v;
	*fl = flags_of(op(F_CVTI, fmt, 3, 1, k, rm));
	return hart.x[3];
}

static void test_convert_saturation(void **state)
{
	enum { W, WU, L, LU };
	unsigned fl;

	(void)state;
	assert_int_equal(to_int(S, W, NAN_S, RNE, &fl), 0x7fffffff);
	assert_int_equal(fl, NV);
	assert_int_equal(to_int(S, W, 0xffc00000, RNE, &fl), 0x7fffffff);
	assert_int_equal(to_int(S, W, INF_S, RNE, &fl), 0x7fffffff);
	assert_int_equal(to_int(S, W, 0xff800000, RNE, &fl),
			 0xffffffff80000000ull);
	assert_int_equal(fl, NV);
	assert_int_equal(to_int(S, W, 0x4f32d05e, RNE, &fl), 0x7fffffff);
	assert_int_equal(to_int(S, W, 0xcf32d05e, RNE, &fl),
			 0xffffffff80000000ull);
	assert_int_equal(fl, NV);
	/* unsigned: NaN and too big are all ones (sign-extended for WU) */
	assert_int_equal(to_int(D, WU, NAN_D, RNE, &fl), UINT64_MAX);
	assert_int_equal(fl, NV);
	assert_int_equal(to_int(D, WU, 0x41efffffffe00000ull, RNE, &fl),
			 UINT64_MAX); /* 4294967295 */
	assert_int_equal(fl, 0);
	assert_int_equal(to_int(D, WU, 0xbff0000000000000ull, RNE, &fl), 0);
	assert_int_equal(fl, NV);
	/* -0.5 rounds to zero: in range, merely inexact; -0 is exact */
	assert_int_equal(to_int(D, WU, 0xbfe0000000000000ull, RTZ, &fl), 0);
	assert_int_equal(fl, NX);
	assert_int_equal(to_int(D, LU, 0x8000000000000000ull, RNE, &fl), 0);
	assert_int_equal(fl, 0);
	assert_int_equal(to_int(D, LU, 0xbfe0000000000000ull, RDN, &fl), 0);
	assert_int_equal(fl, NV);
	/* the 32-bit edges, rounded first */
	assert_int_equal(to_int(D, W, 0x41dfffffffd9999aull, RNE, &fl),
			 0x7fffffff);
	assert_int_equal(fl, NX);
	assert_int_equal(to_int(D, W, 0x41dfffffffe00000ull, RNE, &fl),
			 0x7fffffff); /* 2147483647.5 rounds out of range */
	assert_int_equal(fl, NV);
	assert_int_equal(to_int(D, W, 0x41dfffffffe00000ull, RTZ, &fl),
			 0x7fffffff);
	assert_int_equal(fl, NX);
	/* the 64-bit edges */
	assert_int_equal(to_int(D, L, 0x43e0000000000000ull, RNE, &fl),
			 INT64_MAX);
	assert_int_equal(fl, NV);
	assert_int_equal(to_int(D, L, 0xc3e0000000000000ull, RNE, &fl),
			 1ull << 63);
	assert_int_equal(fl, 0);
	assert_int_equal(to_int(D, LU, 0x43f0000000000000ull, RNE, &fl),
			 UINT64_MAX);
	assert_int_equal(fl, NV);
	assert_int_equal(to_int(D, LU, 0x43efffffffffffffull, RNE, &fl),
			 0xfffffffffffff800ull);
	assert_int_equal(fl, 0);
	assert_int_equal(to_int(S, L, 0xdf000000, RNE, &fl), 1ull << 63);
	assert_int_equal(fl, 0);
	/* x0 is never written */
	hart.f[1] = BOX(ONE_S);
	exec(op(F_CVTI, S, 0, 1, W, RNE));
	assert_int_equal(hart.x[0], 0);
}

static void test_convert_from_int(void **state)
{
	enum { W, WU, L, LU };

	(void)state;
	/* W reads the low 32 bits as signed, WU as unsigned */
	hart.x[1] = 0x00000000ffffffffull;
	exec(op(F_CVTF, D, 2, 1, W, RNE));
	assert_int_equal(hart.f[2], 0xbff0000000000000ull);
	exec(op(F_CVTF, D, 2, 1, WU, RNE));
	assert_int_equal(hart.f[2], 0x41efffffffe00000ull);
	assert_int_equal(flags_of(op(F_CVTF, S, 2, 1, WU, RTZ)), NX);
	assert_int_equal(hart.f[2], BOX(0x4f7fffff));
	exec(op(F_CVTF, S, 2, 1, WU, RNE));
	assert_int_equal(hart.f[2], BOX(0x4f800000));
	/* 64-bit: UINT64_MAX and INT64_MIN */
	hart.x[1] = UINT64_MAX;
	assert_int_equal(flags_of(op(F_CVTF, D, 2, 1, LU, RNE)), NX);
	assert_int_equal(hart.f[2], 0x43f0000000000000ull);
	exec(op(F_CVTF, D, 2, 1, LU, RTZ));
	assert_int_equal(hart.f[2], 0x43efffffffffffffull);
	exec(op(F_CVTF, D, 2, 1, L, RNE));
	assert_int_equal(hart.f[2], 0xbff0000000000000ull);
	hart.x[1] = 1ull << 63;
	assert_int_equal(flags_of(op(F_CVTF, S, 2, 1, L, RNE)), 0);
	assert_int_equal(hart.f[2], BOX(0xdf000000));
	/* 2^53 + 1 to double: a tie, even below, RMM above */
	hart.x[1] = (1ull << 53) + 1;
	exec(op(F_CVTF, D, 2, 1, L, RNE));
	assert_int_equal(hart.f[2], 0x4340000000000000ull);
	exec(op(F_CVTF, D, 2, 1, LU, RMM));
	assert_int_equal(hart.f[2], 0x4340000000000001ull);
	exec(op(F_CVTF, D, 2, 1, L, RUP));
	assert_int_equal(hart.f[2], 0x4340000000000001ull);
	hart.x[1] = (uint64_t) - ((1ll << 53) + 1);
	exec(op(F_CVTF, D, 2, 1, L, RDN));
	assert_int_equal(hart.f[2], 0xc340000000000001ull);
	exec(op(F_CVTF, D, 2, 1, L, RMM));
	assert_int_equal(hart.f[2], 0xc340000000000001ull);
	/* rs2 beyond LU is reserved */
	exec_illegal(op(F_CVTF, D, 2, 1, 4, RNE));
	exec_illegal(op(F_CVTI, D, 2, 1, 5, RNE));
}

static void test_min_max(void **state)
{
	unsigned fl;

	(void)state;
	assert_int_equal(bin_s(F_MINMAX, 0x80000000, 0, 0, &fl), 0x80000000);
	assert_int_equal(bin_s(F_MINMAX, 0, 0x80000000, 0, &fl), 0x80000000);
	assert_int_equal(bin_s(F_MINMAX, 0x80000000, 0, 1, &fl), 0);
	assert_int_equal(bin_s(F_MINMAX, 0, 0x80000000, 1, &fl), 0);
	assert_int_equal(fl, 0);
	assert_int_equal(bin_d(F_MINMAX, 0x8000000000000000ull, 0, 0, &fl),
			 0x8000000000000000ull);
	assert_int_equal(bin_d(F_MINMAX, 0, 0x8000000000000000ull, 1, &fl), 0);
	/* ordinary values, negatives */
	assert_int_equal(bin_s(F_MINMAX, 0xc0000000, 0xbf800000, 0, &fl),
			 0xc0000000);
	assert_int_equal(bin_d(F_MINMAX, 0xc000000000000000ull, ONE_D, 1, &fl),
			 ONE_D);
	/* a quiet NaN gives the number and no flag, a signalling one NV */
	assert_int_equal(bin_s(F_MINMAX, NAN_S, ONE_S, 0, &fl), ONE_S);
	assert_int_equal(fl, 0);
	assert_int_equal(bin_s(F_MINMAX, ONE_S, SNAN_S, 1, &fl), ONE_S);
	assert_int_equal(fl, NV);
	assert_int_equal(bin_d(F_MINMAX, SNAN_D, INF_D, 0, &fl), INF_D);
	assert_int_equal(fl, NV);
	/* both NaN: the canonical NaN */
	assert_int_equal(bin_s(F_MINMAX, 0x7fc00001, 0xffc00002, 0, &fl),
			 NAN_S);
	assert_int_equal(fl, 0);
	assert_int_equal(bin_d(F_MINMAX, SNAN_D, 0xfff8000000000001ull, 1, &fl),
			 NAN_D);
	assert_int_equal(fl, NV);
	exec_illegal(op(F_MINMAX, S, 3, 1, 2, 2));
}

/* FLE (0), FLT (1), FEQ (2) of f1, f2 into x3. */
static uint64_t cmp(unsigned fmt, unsigned which, uint64_t a, uint64_t b,
		    unsigned *fl)
{
	hart.f[1] = fmt == S ? BOX(a) : a;
	hart.f[2] = fmt == S ? BOX(b) : b;
	hart.x[3] = 77;
	*fl = flags_of(op(F_CMP, fmt, 3, 1, 2, which));
	return hart.x[3];
}

static void test_compare(void **state)
{
	unsigned fl;

	(void)state;
	assert_int_equal(cmp(S, 2, 0x80000000, 0, &fl), 1);
	assert_int_equal(cmp(S, 1, 0x80000000, 0, &fl), 0);
	assert_int_equal(cmp(S, 0, 0, 0x80000000, &fl), 1);
	assert_int_equal(cmp(D, 1, 0xc000000000000000ull, ONE_D, &fl), 1);
	assert_int_equal(cmp(D, 1, ONE_D, ONE_D, &fl), 0);
	assert_int_equal(cmp(D, 0, ONE_D, ONE_D, &fl), 1);
	assert_int_equal(cmp(D, 0, 0xc000000000000000ull, 0xbff0000000000000ull,
			     &fl),
			 1);
	assert_int_equal(fl, 0);
	/* FEQ is quiet on quiet NaNs, FLT and FLE signal on any NaN */
	assert_int_equal(cmp(S, 2, NAN_S, NAN_S, &fl), 0);
	assert_int_equal(fl, 0);
	assert_int_equal(cmp(S, 2, SNAN_S, ONE_S, &fl), 0);
	assert_int_equal(fl, NV);
	assert_int_equal(cmp(D, 1, NAN_D, ONE_D, &fl), 0);
	assert_int_equal(fl, NV);
	assert_int_equal(cmp(D, 0, ONE_D, NAN_D, &fl), 0);
	assert_int_equal(fl, NV);
	assert_int_equal(cmp(S, 2, INF_S, INF_S, &fl), 1);
	exec_illegal(op(F_CMP, S, 3, 1, 2, 3));
}

static void test_sign_injection(void **state)
{
	unsigned fl;

	(void)state;
	assert_int_equal(bin_s(F_SGNJ, ONE_S, 0x80000000, 0, &fl), 0xbf800000);
	assert_int_equal(bin_s(F_SGNJ, 0xbf800000, 0x80000000, 1, &fl), ONE_S);
	assert_int_equal(bin_s(F_SGNJ, 0xbf800000, 0x80000000, 2, &fl), ONE_S);
	assert_int_equal(bin_s(F_SGNJ, 0xbf800000, 0, 2, &fl), 0xbf800000);
	/* NaN payloads are moved, not canonicalised, and nothing signals */
	assert_int_equal(bin_s(F_SGNJ, SNAN_S, 0x80000000, 0, &fl), 0xff800001);
	assert_int_equal(fl, 0);
	assert_int_equal(bin_d(F_SGNJ, SNAN_D, SNAN_D, 1, &fl),
			 0x8000000000000000ull | SNAN_D);
	assert_int_equal(bin_d(F_SGNJ, 0xfff0000000000001ull, SNAN_D, 2, &fl),
			 0xfff0000000000001ull);
	assert_int_equal(fl, 0);
	exec_illegal(op(F_SGNJ, D, 3, 1, 2, 3));
}

static void test_fclass(void **state)
{
	static const uint32_t s[10] = { 0xff800000, 0xbf800000, 0x807fffff,
					0x80000000, 0x00000000, 0x00000001,
					0x7f7fffff, 0x7f800000, 0x7fbfffff,
					0x7fc00000 };
	static const uint64_t d[10] = { 0xfff0000000000000ull,
					0x8010000000000000ull,
					0x8000000000000001ull,
					0x8000000000000000ull,
					0,
					0x000fffffffffffffull,
					ONE_D,
					INF_D,
					SNAN_D,
					0xfff8000000000000ull };
	unsigned i;

	(void)state;
	for (i = 0; i < 10; i++) {
		hart.f[1] = BOX(s[i]);
		assert_int_equal(flags_of(op(F_MVX, S, 2, 1, 0, 1)), 0);
		assert_int_equal(hart.x[2], 1u << i);
		hart.f[1] = d[i];
		exec(op(F_MVX, D, 2, 1, 0, 1));
		assert_int_equal(hart.x[2], 1u << i);
	}
}

static void test_moves(void **state)
{
	(void)state;
	hart.f[1] = 0x8123456789abcdefull;
	exec(op(F_MVX, D, 2, 1, 0, 0));
	assert_int_equal(hart.x[2], 0x8123456789abcdefull);
	hart.x[3] = 0xfedcba9876543210ull;
	exec(op(F_MVF, D, 4, 3, 0, 0));
	assert_int_equal(hart.f[4], 0xfedcba9876543210ull);
	exec(op(F_MVF, S, 4, 3, 0, 0));
	assert_int_equal(hart.f[4], BOX(0x76543210));
	hart.f[5] = BOX(0x76543210);
	exec(op(F_MVX, S, 6, 5, 0, 0));
	assert_int_equal(hart.x[6], 0x76543210);
	/* reserved rm or rs2 */
	exec_illegal(op(F_MVF, D, 4, 3, 0, 1));
	exec_illegal(op(F_MVX, D, 4, 3, 1, 0));
	exec_illegal(op(F_MVX, D, 4, 3, 0, 2));
}

static void test_fma(void **state)
{
	(void)state;
	/*
	 * (1 + 2^-30)^2 - (1 + 2^-29) is 2^-60 exactly; a multiply rounded
	 * before the add would lose it and give 0.
	 */
	hart.f[1] = 0x3ff0000000400000ull;
	hart.f[2] = 0xbff0000000800000ull;
	assert_int_equal(flags_of(r4(O_FMADD, D, 3, 1, 1, 2, RNE)), 0);
	assert_int_equal(hart.f[3], 0x3c30000000000000ull);
	exec(op(F_MUL, D, 4, 1, 1, RNE));
	exec(op(F_ADD, D, 4, 4, 2, RNE));
	assert_int_equal(hart.f[4], 0);
	/* the negated forms: -(a*b) + c, a*b - c, -(a*b) - c */
	hart.f[2] = 0x3ff0000000800000ull;
	exec(r4(O_FNMSUB, D, 3, 1, 1, 2, RNE));
	assert_int_equal(hart.f[3], 0xbc30000000000000ull);
	exec(r4(O_FMSUB, D, 3, 1, 1, 2, RNE));
	assert_int_equal(hart.f[3], 0x3c30000000000000ull);
	hart.f[2] = 0xbff0000000800000ull;
	exec(r4(O_FNMADD, D, 3, 1, 1, 2, RNE));
	assert_int_equal(hart.f[3], 0xbc30000000000000ull);
	/* single: (1 + 2^-12)^2 - (1 + 2^-11) = 2^-24 */
	hart.f[1] = BOX(0x3f800800);
	hart.f[2] = BOX(0xbf801000);
	exec(r4(O_FMADD, S, 3, 1, 1, 2, RNE));
	assert_int_equal(hart.f[3], BOX(0x33800000));
	/* infinity times zero is invalid even with a quiet NaN added */
	hart.f[1] = INF_D;
	hart.f[2] = 0;
	hart.f[4] = NAN_D;
	assert_int_equal(flags_of(r4(O_FMADD, D, 3, 1, 2, 4, RNE)), NV);
	assert_int_equal(hart.f[3], NAN_D);
	assert_int_equal(flags_of(r4(O_FMADD, D, 3, 4, 2, 4, RNE)), 0);
	hart.f[4] = 0xfff0000000000000ull; /* inf * 0 - inf */
	assert_int_equal(flags_of(r4(O_FMADD, D, 3, 1, 2, 4, RNE)), NV);
	hart.f[4] = ONE_D;
	assert_int_equal(flags_of(r4(O_FMADD, D, 3, 2, 1, 4, RNE)), NV);
	/* exact zero sums: +0 to nearest, -0 rounding down */
	hart.f[1] = ONE_D;
	hart.f[2] = 0xbff0000000000000ull;
	exec(r4(O_FMADD, D, 3, 1, 1, 2, RNE));
	assert_int_equal(hart.f[3], 0);
	exec(r4(O_FMADD, D, 3, 1, 1, 2, RDN));
	assert_int_equal(hart.f[3], 0x8000000000000000ull);
	/* fmt 2 (half) and 3 (quad) are not there */
	exec_illegal(r4(O_FMADD, 2, 3, 1, 1, 2, RNE));
	exec_illegal(r4(O_FMADD, 3, 3, 1, 1, 2, RNE));
}

static void test_illegal_rm(void **state)
{
	unsigned rm;

	(void)state;
	hart.f[1] = BOX(ONE_S);
	hart.f[3] = 99;
	for (rm = 5; rm <= 6; rm++) {
		exec_illegal(op(F_ADD, S, 3, 1, 1, rm));
		exec_illegal(op(F_SQRT, D, 3, 1, 0, rm));
		exec_illegal(r4(O_FMADD, S, 3, 1, 1, 1, rm));
		exec_illegal(op(F_CVTI, S, 3, 1, 0, rm));
		exec_illegal(op(F_CVTF, S, 3, 1, 0, rm));
		exec_illegal(op(F_CVTFF, D, 3, 1, 0, rm));
	}
	/* DYN with frm 5, 6 or 7 */
	for (rm = 5; rm <= 7; rm++) {
		hart.fcsr = rm << 5;
		exec_illegal(op(F_MUL, D, 3, 1, 1, DYN));
		exec_illegal(r4(O_FNMADD, D, 3, 1, 1, 1, DYN));
	}
	assert_int_equal(hart.f[3], 99);
	assert_int_equal(hart.fcsr, 7u << 5);
	/* what does not round ignores frm */
	exec(op(F_SGNJ, S, 3, 1, 1, 0));
	assert_int_equal(hart.f[3], BOX(ONE_S));
	/* other major opcodes and fmt encodings */
	exec_illegal(op(F_ADD, 2, 3, 1, 1, RNE));
	exec_illegal(op(0x1f, S, 3, 1, 1, RNE));
	exec_illegal(0x00000013); /* addi */
}

static void test_fs_state(void **state)
{
	unsigned fl;

	(void)state;
	/* FS off: every F and D instruction is illegal, loads and moves too */
	hart.mstatus &= ~RV_MSTATUS_FS;
	hart.f[1] = BOX(ONE_S);
	exec_illegal(op(F_ADD, S, 3, 1, 1, RNE));
	exec_illegal(op(F_MVX, D, 2, 1, 0, 0));
	exec_illegal(5 << 15 | 3 << 12 | 4 << 7 | 0x07);
	assert_int_equal(hart.mstatus & (RV_MSTATUS_FS | RV_MSTATUS_SD), 0);
	/* clean (2): a store or a quiet compare writes nothing */
	hart.mstatus |= 2ull << RV_MSTATUS_FS_SHIFT;
	hart.x[5] = RAM_BASE;
	exec(1 << 20 | 5 << 15 | 3 << 12 | 0x27);
	cmp(D, 2, ONE_D, ONE_D, &fl);
	assert_int_equal(hart.mstatus & RV_MSTATUS_FS,
			 2ull << RV_MSTATUS_FS_SHIFT);
	assert_false(hart.mstatus & RV_MSTATUS_SD);
	/* a flag raised by a compare writes fcsr: dirty */
	cmp(D, 1, NAN_D, ONE_D, &fl);
	assert_int_equal(hart.mstatus & RV_MSTATUS_FS, RV_MSTATUS_FS);
	assert_true(hart.mstatus & RV_MSTATUS_SD);
	/* any write of f[] makes it dirty */
	hart.mstatus &= ~(RV_MSTATUS_FS | RV_MSTATUS_SD);
	hart.mstatus |= 1ull << RV_MSTATUS_FS_SHIFT;
	exec(op(F_SGNJ, S, 3, 1, 1, 0));
	assert_int_equal(hart.mstatus & RV_MSTATUS_FS, RV_MSTATUS_FS);
	assert_true(hart.mstatus & RV_MSTATUS_SD);
	/* no D in misa: D instructions are illegal, F ones are not */
	hart.misa &= ~(1ull << ('D' - 'A'));
	exec_illegal(op(F_ADD, D, 3, 1, 1, RNE));
	exec_illegal(5 << 15 | 3 << 12 | 4 << 7 | 0x07);
	exec(op(F_ADD, S, 3, 1, 1, RNE));
}

/*
 * The hart hands its FP instructions here, compressed ones expanded:
 *	c.fld fs0, 0(s0); c.fld fs1, 8(s0); fadd.d fa0, fs0, fs1;
 *	c.fsd fa0, 16(s0); fcvt.w.d a1, fa0, rtz; frflags a2;
 *	fdiv.s fa1, fa2, fa2; c.fldsp fa3, 0(sp)
 * and the last traps once FS is off, with the 16 bits as mtval.
 */
static void test_through_hart(void **state)
{
	static const uint8_t prog[] = {
		0x00, 0x20, 0x04, 0x24, 0x53, 0x75, 0x94, 0x02,
		0x08, 0xa8, 0xd3, 0x15, 0x05, 0xc2, 0x73, 0x26,
		0x10, 0x00, 0xd3, 0x75, 0xc6, 0x18, 0x82, 0x26,
	};
	const double in[2] = { 1.5, 2.25 };
	uint64_t out;

	(void)state;
	memcpy(ram, prog, sizeof(prog));
	memcpy(ram + 0x800, in, sizeof(in));
	hart.x[8] = RAM_BASE + 0x800;
	hart.x[2] = RAM_BASE + 0x808;
	hart.f[12] = BOX(0);
	hart.mtvec = RAM_BASE + 0x400;
	assert_int_equal(rv_hart_run(&hart, 7, NULL), RV_EXIT_BUDGET);
	assert_int_equal(hart.pc, RAM_BASE + 0x16);
	memcpy(&out, ram + 0x810, 8);
	assert_int_equal(out, 0x400e000000000000ull); /* 3.75 */
	assert_int_equal(hart.x[11], 3);
	assert_int_equal(hart.x[12], NX);
	assert_int_equal(hart.f[11], BOX(NAN_S));
	assert_int_equal(hart.fcsr, NV | NX);
	assert_int_equal(hart.mstatus & RV_MSTATUS_FS, RV_MSTATUS_FS);
	hart.mstatus &= ~(RV_MSTATUS_FS | RV_MSTATUS_SD);
	assert_int_equal(rv_hart_run(&hart, 1, NULL), RV_EXIT_BUDGET);
	assert_int_equal(hart.mcause, RV_EXC_ILLEGAL);
	assert_int_equal(hart.mtval, 0x2682);
	assert_int_equal(hart.mepc, RAM_BASE + 0x16);
	assert_int_equal(hart.pc, RAM_BASE + 0x400);
	hart.mstatus |= 1ull << RV_MSTATUS_FS_SHIFT;
	hart.pc = RAM_BASE + 0x16;
	assert_int_equal(rv_hart_run(&hart, 1, NULL), RV_EXIT_BUDGET);
	assert_int_equal(hart.f[13], 0x4002000000000000ull); /* 2.25 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_load_store, setup),
		cmocka_unit_test_setup(test_arith, setup),
		cmocka_unit_test_setup(test_rounding_modes, setup),
		cmocka_unit_test_setup(test_rmm_ties, setup),
		cmocka_unit_test_setup(test_overflow_underflow, setup),
		cmocka_unit_test_setup(test_nan_boxing, setup),
		cmocka_unit_test_setup(test_canonical_nan, setup),
		cmocka_unit_test_setup(test_convert_saturation, setup),
		cmocka_unit_test_setup(test_convert_from_int, setup),
		cmocka_unit_test_setup(test_min_max, setup),
		cmocka_unit_test_setup(test_compare, setup),
		cmocka_unit_test_setup(test_sign_injection, setup),
		cmocka_unit_test_setup(test_fclass, setup),
		cmocka_unit_test_setup(test_moves, setup),
		cmocka_unit_test_setup(test_fma, setup),
		cmocka_unit_test_setup(test_illegal_rm, setup),
		cmocka_unit_test_setup(test_fs_state, setup),
		cmocka_unit_test_setup(test_through_hart, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
