/*
 * decode.c - RV64C: each 16-bit instruction expanded to the 32-bit
 * instruction it stands for, so the hart (and fpu.c, for c.fld/c.fsd and
 * their sp forms) executes one encoding.  Reserved and illegal encodings
 * expand to 0, which no 32-bit instruction is; HINTs expand to the
 * instruction they are encoded as (writing x0), which does nothing.
 */
#include "riscv.h"

enum {
	OP_LOAD = 0x03,
	OP_LOAD_FP = 0x07,
	OP_IMM = 0x13,
	OP_IMM_32 = 0x1b,
	OP_STORE = 0x23,
	OP_STORE_FP = 0x27,
	OP_OP = 0x33,
	OP_LUI = 0x37,
	OP_OP_32 = 0x3b,
	OP_BRANCH = 0x63,
	OP_JALR = 0x67,
	OP_JAL = 0x6f,
	OP_SYSTEM = 0x73,
};

/* Bits hi..lo of c, shifted down. */
static inline uint32_t bits(uint32_t c, unsigned hi, unsigned lo)
{
	return (c >> lo) & ((1u << (hi - lo + 1)) - 1);
}

/* Sign-extend the low n bits of v. */
static inline int32_t sext(uint32_t v, unsigned n)
{
	return (int32_t)(v << (32 - n)) >> (32 - n);
}

static uint32_t enc_i(int32_t imm, unsigned rs1, unsigned f3, unsigned rd,
		      unsigned op)
{
	return ((uint32_t)imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 |
	       op;
}

static uint32_t enc_s(int32_t imm, unsigned rs2, unsigned rs1, unsigned f3,
		      unsigned op)
{
	uint32_t u = (uint32_t)imm;

	return bits(u, 11, 5) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 |
	       bits(u, 4, 0) << 7 | op;
}

static uint32_t enc_b(int32_t imm, unsigned rs2, unsigned rs1, unsigned f3)
{
	uint32_t u = (uint32_t)imm;

	return bits(u, 12, 12) << 31 | bits(u, 10, 5) << 25 | rs2 << 20 |
	       rs1 << 15 | f3 << 12 | bits(u, 4, 1) << 8 |
	       bits(u, 11, 11) << 7 | OP_BRANCH;
}

static uint32_t enc_j(int32_t imm, unsigned rd)
{
	uint32_t u = (uint32_t)imm;

	return bits(u, 20, 20) << 31 | bits(u, 10, 1) << 21 |
	       bits(u, 11, 11) << 20 | bits(u, 19, 12) << 12 | rd << 7 | OP_JAL;
}

static uint32_t enc_r(unsigned f7, unsigned rs2, unsigned rs1, unsigned f3,
		      unsigned rd, unsigned op)
{
	return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

/* Quadrant 0: the stack-pointer addi and the loads and stores through
 * the eight popular registers (x8..x15 as rd'/rs1'/rs2'). */
static uint32_t q0(uint32_t c)
{
	unsigned rdp = bits(c, 4, 2) + 8, rs1p = bits(c, 9, 7) + 8;
	/* the offsets of the doubleword and word forms */
	uint32_t offd = bits(c, 12, 10) << 3 | bits(c, 6, 5) << 6;
	uint32_t offw = bits(c, 12, 10) << 3 | bits(c, 6, 6) << 2 |
			bits(c, 5, 5) << 6;
	uint32_t imm;

	switch (bits(c, 15, 13)) {
	case 0: /* c.addi4spn */
		imm = bits(c, 12, 11) << 4 | bits(c, 10, 7) << 6 |
		      bits(c, 6, 6) << 2 | bits(c, 5, 5) << 3;
		if (!imm)
			return 0;
		return enc_i(imm, 2, 0, rdp, OP_IMM);
	case 1: /* c.fld */
		return enc_i(offd, rs1p, 3, rdp, OP_LOAD_FP);
	case 2: /* c.lw */
		return enc_i(offw, rs1p, 2, rdp, OP_LOAD);
	case 3: /* c.ld */
		return enc_i(offd, rs1p, 3, rdp, OP_LOAD);
	case 5: /* c.fsd */
		return enc_s(offd, rdp, rs1p, 3, OP_STORE_FP);
	case 6: /* c.sw */
		return enc_s(offw, rdp, rs1p, 2, OP_STORE);
	case 7: /* c.sd */
		return enc_s(offd, rdp, rs1p, 3, OP_STORE);
	default:
		return 0;
	}
}

/* Quadrant 1: immediates, the ALU on rd'/rs2', jumps and branches. */
static uint32_t q1(uint32_t c)
{
	unsigned rd = bits(c, 11, 7), rdp = bits(c, 9, 7) + 8;
	unsigned rs2p = bits(c, 4, 2) + 8;
	int32_t imm6 = sext(bits(c, 12, 12) << 5 | bits(c, 6, 2), 6);
	uint32_t u;

	switch (bits(c, 15, 13)) {
	case 0: /* c.addi, c.nop */
		return enc_i(imm6, rd, 0, rd, OP_IMM);
	case 1: /* c.addiw */
		if (!rd)
			return 0;
		return enc_i(imm6, rd, 0, rd, OP_IMM_32);
	case 2: /* c.li */
		return enc_i(imm6, 0, 0, rd, OP_IMM);
	case 3:
		if (rd == 2) { /* c.addi16sp */
			u = bits(c, 12, 12) << 9 | bits(c, 6, 6) << 4 |
			    bits(c, 5, 5) << 6 | bits(c, 4, 3) << 7 |
			    bits(c, 2, 2) << 5;
			if (!u)
				return 0;
			return enc_i(sext(u, 10), 2, 0, 2, OP_IMM);
		}
		/* c.lui: the immediate lands in bits 17:12 */
		if (!imm6)
			return 0;
		return ((uint32_t)imm6 << 12) | rd << 7 | OP_LUI;
	case 4:
		switch (bits(c, 11, 10)) {
		case 0: /* c.srli */
			return enc_i(bits(c, 12, 12) << 5 | bits(c, 6, 2), rdp,
				     5, rdp, OP_IMM);
		case 1: /* c.srai */
			return enc_i(0x400 | bits(c, 12, 12) << 5 |
					     bits(c, 6, 2),
				     rdp, 5, rdp, OP_IMM);
		case 2: /* c.andi */
			return enc_i(imm6, rdp, 7, rdp, OP_IMM);
		default:
			break;
		}
		if (!bits(c, 12, 12)) {
			static const unsigned f3[4] = { 0, 4, 6, 7 };
			unsigned op = bits(c, 6, 5);

			/* c.sub, c.xor, c.or, c.and */
			return enc_r(op ? 0 : 0x20, rs2p, rdp, f3[op], rdp,
				     OP_OP);
		}
		switch (bits(c, 6, 5)) {
		case 0: /* c.subw */
			return enc_r(0x20, rs2p, rdp, 0, rdp, OP_OP_32);
		case 1: /* c.addw */
			return enc_r(0, rs2p, rdp, 0, rdp, OP_OP_32);
		default:
			return 0;
		}
	case 5: /* c.j */
		u = bits(c, 12, 12) << 11 | bits(c, 11, 11) << 4 |
		    bits(c, 10, 9) << 8 | bits(c, 8, 8) << 10 |
		    bits(c, 7, 7) << 6 | bits(c, 6, 6) << 7 |
		    bits(c, 5, 3) << 1 | bits(c, 2, 2) << 5;
		return enc_j(sext(u, 12), 0);
	default: /* c.beqz, c.bnez */
		u = bits(c, 12, 12) << 8 | bits(c, 11, 10) << 3 |
		    bits(c, 6, 5) << 6 | bits(c, 4, 3) << 1 |
		    bits(c, 2, 2) << 5;
		return enc_b(sext(u, 9), 0, rdp, bits(c, 13, 13));
	}
}

/* Quadrant 2: shifts, the sp-relative loads and stores, jr/jalr/mv/add
 * and ebreak. */
static uint32_t q2(uint32_t c)
{
	unsigned rd = bits(c, 11, 7), rs2 = bits(c, 6, 2);
	uint32_t ld = bits(c, 12, 12) << 5 | bits(c, 6, 5) << 3 |
		      bits(c, 4, 2) << 6;
	uint32_t sd = bits(c, 12, 10) << 3 | bits(c, 9, 7) << 6;

	switch (bits(c, 15, 13)) {
	case 0: /* c.slli */
		return enc_i(bits(c, 12, 12) << 5 | rs2, rd, 1, rd, OP_IMM);
	case 1: /* c.fldsp */
		return enc_i(ld, 2, 3, rd, OP_LOAD_FP);
	case 2: /* c.lwsp */
		if (!rd)
			return 0;
		return enc_i(bits(c, 12, 12) << 5 | bits(c, 6, 4) << 2 |
				     bits(c, 3, 2) << 6,
			     2, 2, rd, OP_LOAD);
	case 3: /* c.ldsp */
		if (!rd)
			return 0;
		return enc_i(ld, 2, 3, rd, OP_LOAD);
	case 4:
		if (!bits(c, 12, 12)) {
			if (rs2) /* c.mv */
				return enc_r(0, rs2, 0, 0, rd, OP_OP);
			if (!rd)
				return 0;
			/* c.jr */
			return enc_i(0, rd, 0, 0, OP_JALR);
		}
		if (rs2) /* c.add */
			return enc_r(0, rs2, rd, 0, rd, OP_OP);
		if (!rd) /* c.ebreak */
			return 0x00100000 | OP_SYSTEM;
		/* c.jalr */
		return enc_i(0, rd, 0, 1, OP_JALR);
	case 5: /* c.fsdsp */
		return enc_s(sd, rs2, 2, 3, OP_STORE_FP);
	case 6: /* c.swsp */
		return enc_s(bits(c, 12, 9) << 2 | bits(c, 8, 7) << 6, rs2, 2,
			     2, OP_STORE);
	default: /* c.sdsp */
		return enc_s(sd, rs2, 2, 3, OP_STORE);
	}
}

uint32_t rv_expand_c(uint16_t c)
{
	switch (c & 3) {
	case 0:
		return q0(c);
	case 1:
		return q1(c);
	case 2:
		return q2(c);
	default:
		return 0; /* not a compressed instruction */
	}
}
