/*
 * fpu.c - the F and D extensions: single and double precision arithmetic,
 * conversions, moves, compares and classification for one hart.
 *
 * Arithmetic runs on the host's IEEE 754 unit: the rounding mode is set
 * from the instruction with fesetround() and the exception flags are read
 * back with fetestexcept() into fflags.  x86 SSE and RISC-V agree on the
 * results and the flags of every rounded operation (tininess is detected
 * after rounding on both).  What the host does differently is done here
 * on the bits: a NaN result is always the canonical NaN, conversions to
 * integers saturate, min/max, compares, sign injection and classification
 * never touch the host unit, and a fused multiply-add whose multiplicands
 * are infinity and zero is invalid even when the addend is a quiet NaN.
 *
 * The host has no round-to-nearest, ties-to-max-magnitude (RMM).  It only
 * differs from ties-to-even where the exact result is a midpoint that
 * ties-to-even rounded toward zero, so an RMM operation is done to even
 * and then, when inexact, redone in long double: a midpoint has one bit
 * more than the format, so it is always exact there, and an inexact wide
 * result cannot be a tie.
 */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "riscv.h"

_Static_assert(LDBL_MANT_DIG >= 64 && LDBL_MAX_EXP >= 16384,
	       "RMM needs a long double that holds any double midpoint");

/* fflags, the low five bits of fcsr */
#define FF_NX 0x01u
#define FF_UF 0x02u
#define FF_OF 0x04u
#define FF_DZ 0x08u
#define FF_NV 0x10u

enum { RM_RNE, RM_RTZ, RM_RDN, RM_RUP, RM_RMM, RM_DYN = 7 };

#define OPC_LOAD_FP  0x07
#define OPC_STORE_FP 0x27
#define OPC_FMADD    0x43
#define OPC_FMSUB    0x47
#define OPC_FNMSUB   0x4b
#define OPC_FNMADD   0x4f
#define OPC_OP_FP    0x53

#define MISA_D (1ull << ('D' - 'A'))
#define MISA_F (1ull << ('F' - 'A'))

#define BOX_HI 0xffffffff00000000ull

/* The encoding of one format, for what is done on the bits. */
struct fmt {
	uint64_t sign, exp, quiet, nan;
};
static const struct fmt fmt_s = { 1ull << 31, 0x7f800000ull, 0x00400000ull,
				  0x7fc00000ull };
static const struct fmt fmt_d = { 1ull << 63, 0x7ff0000000000000ull,
				  0x0008000000000000ull,
				  0x7ff8000000000000ull };

static const struct fmt *fmt_of(bool d)
{
	return d ? &fmt_d : &fmt_s;
}

static bool is_nan(const struct fmt *f, uint64_t u)
{
	return (u & ~f->sign) > f->exp;
}

static bool is_snan(const struct fmt *f, uint64_t u)
{
	return is_nan(f, u) && !(u & f->quiet);
}

static bool is_inf(const struct fmt *f, uint64_t u)
{
	return (u & ~f->sign) == f->exp;
}

static bool is_zero(const struct fmt *f, uint64_t u)
{
	return (u & ~f->sign) == 0;
}

static float to_f(uint64_t u)
{
	uint32_t w = (uint32_t)u;
	float x;

	memcpy(&x, &w, sizeof(x));
	return x;
}

static double to_d(uint64_t u)
{
	double x;

	memcpy(&x, &u, sizeof(x));
	return x;
}

static uint64_t bits_f(float x)
{
	uint32_t w;

	memcpy(&w, &x, sizeof(w));
	return w;
}

static uint64_t bits_d(double x)
{
	uint64_t u;

	memcpy(&u, &x, sizeof(u));
	return u;
}

static long double to_ld(uint64_t u, bool d)
{
	return d ? (long double)to_d(u) : (long double)to_f(u);
}

static bool illegal(struct rv_hart *h, uint32_t insn)
{
	return rv_raise(h, RV_EXC_ILLEGAL, insn);
}

static void dirty(struct rv_hart *h)
{
	h->mstatus |= RV_MSTATUS_FS | RV_MSTATUS_SD;
}

static void accrue(struct rv_hart *h, unsigned fl)
{
	if (fl) {
		h->fcsr |= fl;
		dirty(h);
	}
}

/*
 * An operand: a double as it is, a single from the low half only when
 * the register holds a NaN-boxed single (all ones above), else the
 * canonical NaN.
 */
static uint64_t get(const struct rv_hart *h, unsigned r, bool d)
{
	uint64_t v = h->f[r];

	if (d)
		return v;
	return (v & BOX_HI) == BOX_HI ? (uint32_t)v : fmt_s.nan;
}

static void put(struct rv_hart *h, unsigned r, bool d, uint64_t v)
{
	h->f[r] = d ? v : BOX_HI | (uint32_t)v;
	dirty(h);
}

static void put_x(struct rv_hart *h, unsigned rd, uint64_t v)
{
	if (rd)
		h->x[rd] = v;
}

/* The rounding mode an instruction's rm field selects, or -1 if invalid. */
static int rounding(const struct rv_hart *h, unsigned rm)
{
	if (rm == RM_DYN)
		rm = (h->fcsr >> 5) & 7;
	return rm <= RM_RMM ? (int)rm : -1;
}

static const int host_mode[] = {
	[RM_RNE] = FE_TONEAREST, [RM_RTZ] = FE_TOWARDZERO,
	[RM_RDN] = FE_DOWNWARD,	 [RM_RUP] = FE_UPWARD,
	[RM_RMM] = FE_TONEAREST, /* then corrected on ties */
};

/*
 * Around one host operation: the mode set and the flags clear before,
 * the flags read and the thread's mode (to nearest) restored after.  The
 * operations between read their operands from and write their result to
 * volatile objects, so the compiler keeps them between these calls.
 */
static void host_begin(int rm)
{
	if (host_mode[rm] != FE_TONEAREST)
		fesetround(host_mode[rm]);
	feclearexcept(FE_ALL_EXCEPT);
}

static unsigned host_end(int rm)
{
	int e = fetestexcept(FE_ALL_EXCEPT);
	unsigned fl = 0;

	if (host_mode[rm] != FE_TONEAREST)
		fesetround(FE_TONEAREST);
	if (e & FE_INVALID)
		fl |= FF_NV;
	if (e & FE_DIVBYZERO)
		fl |= FF_DZ;
	if (e & FE_OVERFLOW)
		fl |= FF_OF;
	if (e & FE_UNDERFLOW)
		fl |= FF_UF;
	if (e & FE_INEXACT)
		fl |= FF_NX;
	return fl;
}

enum fop { FOP_ADD, FOP_SUB, FOP_MUL, FOP_DIV, FOP_SQRT, FOP_FMA };

/*
 * One operation in one host type: calc_s (float), calc_d (double) and
 * calc_ld (long double, for RMM) are the same switch.
 */
#define DEFINE_CALC(name, type, sqrt_fn, fma_fn)              \
	static type name(enum fop op, type a, type b, type c) \
	{                                                     \
		volatile type va = a, vb = b, vc = c, r;      \
                                                              \
		switch (op) {                                 \
		case FOP_ADD:                                 \
			r = va + vb;                          \
			break;                                \
		case FOP_SUB:                                 \
			r = va - vb;                          \
			break;                                \
		case FOP_MUL:                                 \
			r = va * vb;                          \
			break;                                \
		case FOP_DIV:                                 \
			r = va / vb;                          \
			break;                                \
		case FOP_SQRT:                                \
			r = sqrt_fn(va);                      \
			break;                                \
		default:                                      \
			r = fma_fn(va, vb, vc);               \
			break;                                \
		}                                             \
		return r;                                     \
	}
DEFINE_CALC(calc_s, float, sqrtf, fmaf)
DEFINE_CALC(calc_d, double, sqrt, fma)
DEFINE_CALC(calc_ld, long double, sqrtl, fmal)

/* The operation in long double; true when that result is exact. */
static bool calc_wide(enum fop op, long double a, long double b, long double c,
		      long double *w)
{
	feclearexcept(FE_ALL_EXCEPT);
	*w = calc_ld(op, a, b, c);
	return !fetestexcept(FE_INEXACT);
}

/*
 * RMM from the ties-to-even result n (finite, inexact) of the exact value
 * w: the neighbour of n away from zero when w lies exactly halfway to it.
 * Adding one to the bits steps the magnitude up by one unit in the last
 * place, whatever the sign.  n and that neighbour have at most one bit
 * more than the format between them, so their midpoint is exact here.
 */
static uint64_t rmm_fix(uint64_t n, long double w, bool d)
{
	long double ln = to_ld(n, d), lu;

	if (fabsl(w) <= fabsl(ln))
		return n;
	lu = to_ld(n + 1, d);
	return w == (ln + lu) / 2 ? n + 1 : n;
}

/*
 * a op b (or a * b + c), rounded as rm says, with the flags accrued.  A
 * fused multiply-add's NaN cases are decided here: the host need not
 * raise invalid for infinity times zero plus a quiet NaN.
 */
static uint64_t arith(struct rv_hart *h, int rm, enum fop op, uint64_t a,
		      uint64_t b, uint64_t c, bool d)
{
	const struct fmt *f = fmt_of(d);
	unsigned fl;
	uint64_t r;
	long double w;

	if (op == FOP_FMA && (is_nan(f, a) || is_nan(f, b) || is_nan(f, c))) {
		if (is_snan(f, a) || is_snan(f, b) || is_snan(f, c) ||
		    (is_inf(f, a) && is_zero(f, b)) ||
		    (is_zero(f, a) && is_inf(f, b)))
			accrue(h, FF_NV);
		return f->nan;
	}
	host_begin(rm);
	if (d)
		r = bits_d(calc_d(op, to_d(a), to_d(b), to_d(c)));
	else
		r = bits_f(calc_s(op, to_f(a), to_f(b), to_f(c)));
	fl = host_end(rm);
	accrue(h, fl);
	if (is_nan(f, r))
		return f->nan;
	if (rm == RM_RMM && (fl & FF_NX) && !is_inf(f, r) &&
	    calc_wide(op, to_ld(a, d), to_ld(b, d), to_ld(c, d), &w))
		r = rmm_fix(r, w, d);
	return r;
}

/* Round x (finite) to an integral value as rm says; exact. */
static double round_int(double x, int rm)
{
	switch (rm) {
	case RM_RTZ:
		return trunc(x);
	case RM_RDN:
		return floor(x);
	case RM_RUP:
		return ceil(x);
	case RM_RMM:
		return round(x);
	default:
		if (fabs(x - trunc(x)) == 0.5)
			return 2.0 * round(x / 2.0);
		return round(x);
	}
}

/* Integer kinds of FCVT, as its rs2 field numbers them. */
enum { CVT_W, CVT_WU, CVT_L, CVT_LU };

/*
 * x to an integer of kind k, saturating: out of range gives the nearest
 * end, NaN the largest value, both invalid (and not inexact).  32-bit
 * results are sign-extended, the unsigned ones too.
 */
static uint64_t to_int(double x, bool nan, int rm, unsigned k, unsigned *fl)
{
	static const double lo[] = { -2147483648.0, 0.0, -9223372036854775808.0,
				     0.0 };
	static const double hi[] = { 2147483648.0, 4294967296.0,
				     9223372036854775808.0,
				     18446744073709551616.0 };
	static const uint64_t min[] = { 0xffffffff80000000ull, 0, 1ull << 63,
					0 };
	static const uint64_t max[] = { 0x7fffffffull, UINT64_MAX,
					(1ull << 63) - 1, UINT64_MAX };
	double r;

	if (nan) {
		*fl |= FF_NV;
		return max[k];
	}
	r = isinf(x) ? x : round_int(x, rm);
	if (r < lo[k]) {
		*fl |= FF_NV;
		return min[k];
	}
	if (r >= hi[k]) {
		*fl |= FF_NV;
		return max[k];
	}
	if (r != x)
		*fl |= FF_NX;
	switch (k) {
	case CVT_W:
		return (uint64_t)(int64_t)(int32_t)r;
	case CVT_WU:
		return (uint64_t)(int64_t)(int32_t)(uint32_t)r;
	case CVT_L:
		return (uint64_t)(int64_t)r;
	default:
		return (uint64_t)r;
	}
}

/* An integer of kind k (the low 32 bits of v for W, WU) to the format. */
static uint64_t from_int(struct rv_hart *h, uint64_t v, unsigned k, int rm,
			 bool d)
{
	volatile int64_t vs;
	volatile uint64_t vu = v;
	unsigned fl;
	uint64_t r;
	long double w;

	switch (k) {
	case CVT_W:
		vs = (int32_t)v;
		break;
	case CVT_WU:
		vs = (uint32_t)v;
		break;
	default:
		vs = (int64_t)v;
		break;
	}
	w = k == CVT_LU ? (long double)v : (long double)vs;
	host_begin(rm);
	if (d) {
		volatile double x;

		x = k == CVT_LU ? (double)vu : (double)vs;
		r = bits_d(x);
	} else {
		volatile float x;

		x = k == CVT_LU ? (float)vu : (float)vs;
		r = bits_f(x);
	}
	fl = host_end(rm);
	accrue(h, fl);
	if (rm == RM_RMM && (fl & FF_NX))
		r = rmm_fix(r, w, d);
	return r;
}

/* FCVT.S.D: a double to single, rounded. */
static uint64_t narrow(struct rv_hart *h, uint64_t a, int rm)
{
	volatile double va = to_d(a);
	volatile float x;
	unsigned fl;
	uint64_t r;

	if (is_nan(&fmt_d, a)) {
		accrue(h, is_snan(&fmt_d, a) ? FF_NV : 0);
		return fmt_s.nan;
	}
	host_begin(rm);
	x = (float)va;
	r = bits_f(x);
	fl = host_end(rm);
	accrue(h, fl);
	if (rm == RM_RMM && (fl & FF_NX) && !is_inf(&fmt_s, r))
		r = rmm_fix(r, to_d(a), false);
	return r;
}

/*
 * A key that orders values as integers do, -0 below +0: negative values
 * have their bits inverted, positive ones the sign set.
 */
static uint64_t order_key(const struct fmt *f, uint64_t u)
{
	uint64_t all = f->sign | (f->sign - 1);

	return (u & f->sign) ? ~u & all : u | f->sign;
}

/* FMIN/FMAX: IEEE 754-2019 minimumNumber/maximumNumber. */
static uint64_t min_max(struct rv_hart *h, uint64_t a, uint64_t b, bool max,
			bool d)
{
	const struct fmt *f = fmt_of(d);
	bool lt;

	if (is_snan(f, a) || is_snan(f, b))
		accrue(h, FF_NV);
	if (is_nan(f, a) && is_nan(f, b))
		return f->nan;
	if (is_nan(f, a))
		return b;
	if (is_nan(f, b))
		return a;
	lt = order_key(f, a) < order_key(f, b);
	return lt != max ? a : b;
}

/* FLE (0), FLT (1), FEQ (2): FEQ is quiet, the others signal on NaN. */
static uint64_t compare(struct rv_hart *h, unsigned op, uint64_t a, uint64_t b,
			bool d)
{
	const struct fmt *f = fmt_of(d);
	bool zeros = is_zero(f, a) && is_zero(f, b);
	uint64_t ka = order_key(f, a), kb = order_key(f, b);

	if (is_nan(f, a) || is_nan(f, b)) {
		if (op != 2 || is_snan(f, a) || is_snan(f, b))
			accrue(h, FF_NV);
		return 0;
	}
	switch (op) {
	case 0:
		return zeros || ka <= kb;
	case 1:
		return !zeros && ka < kb;
	default:
		return zeros || a == b;
	}
}

static uint64_t classify(uint64_t u, bool d)
{
	const struct fmt *f = fmt_of(d);
	bool neg = u & f->sign;

	if (is_nan(f, u))
		return is_snan(f, u) ? 1u << 8 : 1u << 9;
	if (is_inf(f, u))
		return neg ? 1u << 0 : 1u << 7;
	if (is_zero(f, u))
		return neg ? 1u << 3 : 1u << 4;
	if (!(u & f->exp))
		return neg ? 1u << 2 : 1u << 5;
	return neg ? 1u << 1 : 1u << 6;
}

static bool load_store(struct rv_hart *h, uint32_t insn)
{
	unsigned width = (insn >> 12) & 7, rs1 = (insn >> 15) & 31;
	bool store = (insn & 0x7f) == OPC_STORE_FP;
	int64_t imm;
	uint64_t v;

	if (width != 2 && width != 3)
		return illegal(h, insn);
	if (width == 3 && !(h->misa & MISA_D))
		return illegal(h, insn);
	if (store) {
		unsigned rs2 = (insn >> 20) & 31;

		imm = ((int32_t)(insn & 0xfe000000) >> 20) |
		      (int32_t)((insn >> 7) & 31);
		v = width == 3 ? h->f[rs2] : (uint32_t)h->f[rs2];
		return rv_store(h, h->x[rs1] + (uint64_t)imm,
				width == 3 ? 8 : 4, v);
	}
	imm = (int32_t)insn >> 20;
	if (!rv_load(h, h->x[rs1] + (uint64_t)imm, width == 3 ? 8 : 4, &v))
		return false;
	put(h, (insn >> 7) & 31, width == 3, v);
	return true;
}

static bool fused(struct rv_hart *h, uint32_t insn)
{
	unsigned fmt = (insn >> 25) & 3, opc = insn & 0x7f;
	bool d = fmt == 1;
	int rm = rounding(h, (insn >> 12) & 7);
	uint64_t a, b, c, sign;

	if (fmt > 1 || (d && !(h->misa & MISA_D)) || rm < 0)
		return illegal(h, insn);
	sign = fmt_of(d)->sign;
	a = get(h, (insn >> 15) & 31, d);
	b = get(h, (insn >> 20) & 31, d);
	c = get(h, insn >> 27, d);
	/* Negations are exact and keep a NaN signalling or quiet. */
	if (opc == OPC_FNMSUB || opc == OPC_FNMADD)
		a ^= sign;
	if (opc == OPC_FMSUB || opc == OPC_FNMADD)
		c ^= sign;
	put(h, (insn >> 7) & 31, d, arith(h, rm, FOP_FMA, a, b, c, d));
	return true;
}

static bool op_fp(struct rv_hart *h, uint32_t insn)
{
	unsigned rd = (insn >> 7) & 31, f3 = (insn >> 12) & 7;
	unsigned rs1 = (insn >> 15) & 31, rs2 = (insn >> 20) & 31;
	unsigned f5 = insn >> 27, fl = 0;
	bool d = (insn >> 25) & 1;
	const struct fmt *f = fmt_of(d);
	uint64_t a, b, r;
	int rm = rounding(h, f3);

	if ((insn >> 26) & 1) /* half and quad precision */
		return illegal(h, insn);
	if (d && !(h->misa & MISA_D))
		return illegal(h, insn);
	a = get(h, rs1, d);
	b = get(h, rs2, d);
	switch (f5) {
	case 0x00: /* FADD, FSUB, FMUL, FDIV */
	case 0x01:
	case 0x02:
	case 0x03:
		if (rm < 0)
			break;
		put(h, rd, d, arith(h, rm, (enum fop)f5, a, b, 0, d));
		return true;
	case 0x0b: /* FSQRT */
		if (rm < 0 || rs2)
			break;
		put(h, rd, d, arith(h, rm, FOP_SQRT, a, 0, 0, d));
		return true;
	case 0x04: /* FSGNJ, FSGNJN, FSGNJX */
		if (f3 > 2)
			break;
		r = f3 == 0 ? b : f3 == 1 ? ~b : a ^ b;
		put(h, rd, d, (a & ~f->sign) | (r & f->sign));
		return true;
	case 0x05: /* FMIN, FMAX */
		if (f3 > 1)
			break;
		put(h, rd, d, min_max(h, a, b, f3, d));
		return true;
	case 0x08: /* FCVT.S.D, FCVT.D.S */
		if (rm < 0 || rs2 != (d ? 0u : 1u))
			break;
		if (!d) {
			put(h, rd, false, narrow(h, get(h, rs1, true), rm));
			return true;
		}
		a = get(h, rs1, false);
		if (is_nan(&fmt_s, a)) {
			accrue(h, is_snan(&fmt_s, a) ? FF_NV : 0);
			r = fmt_d.nan;
		} else {
			r = bits_d((double)to_f(a));
		}
		put(h, rd, true, r);
		return true;
	case 0x14: /* FLE, FLT, FEQ */
		if (f3 > 2)
			break;
		put_x(h, rd, compare(h, f3, a, b, d));
		return true;
	case 0x18: /* FCVT.W[U]/L[U] from S or D */
		if (rm < 0 || rs2 > CVT_LU)
			break;
		r = to_int(d ? to_d(a) : (double)to_f(a), is_nan(f, a), rm, rs2,
			   &fl);
		accrue(h, fl);
		put_x(h, rd, r);
		return true;
	case 0x1a: /* FCVT.S/D from W[U]/L[U] */
		if (rm < 0 || rs2 > CVT_LU)
			break;
		put(h, rd, d, from_int(h, h->x[rs1], rs2, rm, d));
		return true;
	case 0x1c: /* FMV.X.W/D, FCLASS */
		if (rs2 || f3 > 1)
			break;
		if (f3 == 1)
			r = classify(a, d);
		else if (d)
			r = h->f[rs1];
		else
			r = (uint64_t)(int64_t)(int32_t)h->f[rs1];
		put_x(h, rd, r);
		return true;
	case 0x1e: /* FMV.W.X, FMV.D.X */
		if (rs2 || f3)
			break;
		put(h, rd, d, h->x[rs1]);
		return true;
	}
	return illegal(h, insn);
}

bool rv_fp_exec(struct rv_hart *h, uint32_t insn)
{
	if (!(h->mstatus & RV_MSTATUS_FS) || !(h->misa & MISA_F))
		return illegal(h, insn);
	switch (insn & 0x7f) {
	case OPC_LOAD_FP:
	case OPC_STORE_FP:
		return load_store(h, insn);
	case OPC_FMADD:
	case OPC_FMSUB:
	case OPC_FNMSUB:
	case OPC_FNMADD:
		return fused(h, insn);
	case OPC_OP_FP:
		return op_fp(h, insn);
	}
	return illegal(h, insn);
}
