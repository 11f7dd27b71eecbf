/*
 * hart_internal.h - what hart.c and decode.c share of the pre-decoded
 * instruction: the dense operation numbers the dispatch switches over,
 * and the decoder that fills a struct rv_dinsn from an instruction's bits.
 */
#ifndef FERRY_RV_HART_INTERNAL_H
#define FERRY_RV_HART_INTERNAL_H

#include "riscv.h"

/*
 * One number per operation the hart executes inline; AMO, SYSTEM, FENCE
 * and the F/D opcodes go to their slow functions with the instruction's
 * 32-bit form.  RV_OP_ILLEGAL is 0, so a zeroed entry decodes the zeroed
 * RAM it matches (0x0000 is the illegal compressed instruction).
 */
enum rv_op {
	RV_OP_ILLEGAL = 0,
	RV_OP_LUI,
	RV_OP_AUIPC,
	RV_OP_JAL,
	RV_OP_JALR,
	RV_OP_BEQ,
	RV_OP_BNE,
	RV_OP_BLT,
	RV_OP_BGE,
	RV_OP_BLTU,
	RV_OP_BGEU,
	RV_OP_LB,
	RV_OP_LH,
	RV_OP_LW,
	RV_OP_LD,
	RV_OP_LBU,
	RV_OP_LHU,
	RV_OP_LWU,
	RV_OP_SB,
	RV_OP_SH,
	RV_OP_SW,
	RV_OP_SD,
	RV_OP_ADDI,
	RV_OP_SLLI,
	RV_OP_SLTI,
	RV_OP_SLTIU,
	RV_OP_XORI,
	RV_OP_SRLI,
	RV_OP_SRAI,
	RV_OP_ORI,
	RV_OP_ANDI,
	RV_OP_ADDIW,
	RV_OP_SLLIW,
	RV_OP_SRLIW,
	RV_OP_SRAIW,
	RV_OP_ADD,
	RV_OP_SUB,
	RV_OP_SLL,
	RV_OP_SLT,
	RV_OP_SLTU,
	RV_OP_XOR,
	RV_OP_SRL,
	RV_OP_SRA,
	RV_OP_OR,
	RV_OP_AND,
	RV_OP_MUL,
	RV_OP_MULH,
	RV_OP_MULHSU,
	RV_OP_MULHU,
	RV_OP_DIV,
	RV_OP_DIVU,
	RV_OP_REM,
	RV_OP_REMU,
	RV_OP_ADDW,
	RV_OP_SUBW,
	RV_OP_SLLW,
	RV_OP_SRLW,
	RV_OP_SRAW,
	RV_OP_MULW,
	RV_OP_DIVW,
	RV_OP_DIVUW,
	RV_OP_REMW,
	RV_OP_REMUW,
	RV_OP_FENCE,
	RV_OP_FENCE_I,
	RV_OP_AMO,
	RV_OP_SYSTEM,
	RV_OP_FP,
	RV_OP_COUNT,
	/* or'ed into the operation of a compressed instruction */
	RV_OP_C = 0x80
};

/*
 * The fast TLB is good for one privilege, one set of the mstatus bits
 * that decide data access (MPRV, MPP, SUM, MXR) and one satp; the top bit
 * tells a mode from the zeroes of a hart nobody reset.
 */
static inline uint64_t rv_fast_mode(const struct rv_hart *h)
{
	return 1ull << 63 | h->priv |
	       (h->mstatus & (RV_MSTATUS_MPRV | 3ull << RV_MSTATUS_MPP_SHIFT |
			      RV_MSTATUS_SUM | RV_MSTATUS_MXR));
}

/* mmu.c: empty the fast TLB, and note it as good for the mode now. */
void rv_ftlb_flush(struct rv_hart *h);

/* Fill the expansion table of compressed instructions (once a process). */
void rv_decode_init(void);
/* The 32-bit form of the instruction whose bits (at least its own 16 or
 * 32 of them) are raw, or 0 for an illegal compressed one. */
uint32_t rv_insn32(uint32_t raw);
/* Decode the instruction whose 32 bits in RAM are raw into d. */
void rv_decode(struct rv_dinsn *d, uint32_t raw);

#endif
