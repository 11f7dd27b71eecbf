/*
 * hart.c - one RV64GC hart: the fetch-execute loop over RV64IMA, Zicsr,
 * Zifencei and the privileged instructions, and the taking of traps and
 * interrupts (delegation, priorities, xtvec, the mstatus stack).  The F
 * and D opcodes go to fpu.c, CSRs to csr.c, memory to mmu.c.
 *
 * Nothing of the instruction stream is cached but the host address of
 * the page being fetched from, kept for the length of one rv_hart_run()
 * and dropped at every SYSTEM instruction and trap (what can change the
 * privilege or the translation); instructions are read from RAM each
 * time, so stores to code are seen at once and fence.i has nothing to do.
 * A and LR/SC work on host RAM with host atomics, so they are atomic
 * across harts running on other threads.
 */
#include <pthread.h>
#include <string.h>

#include "riscv.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define MISA_RV64IMAFDCSU                                                      \
	(2ull << 62 | 1 << ('A' - 'A') | 1 << ('C' - 'A') | 1 << ('D' - 'A') | \
	 1 << ('F' - 'A') | 1 << ('I' - 'A') | 1 << ('M' - 'A') |              \
	 1 << ('S' - 'A') | 1 << ('U' - 'A'))
#define MSTATUS_MPP	(3ull << RV_MSTATUS_MPP_SHIFT)
#define MSTATUS_TVM	(1ull << 20)
#define MSTATUS_TW	(1ull << 21)
#define MSTATUS_TSR	(1ull << 22)
#define MSTATUS_XLEN64	(2ull << 32 | 2ull << 34)
#define STOP_CHECK_MASK 1023 /* look at *stop every 1024 instructions */

/* What one instruction asks of the loop. */
enum step {
	STEP_TRAP,  /* raised an exception: take it */
	STEP_NEXT,  /* done, pc moved */
	STEP_FLUSH, /* done; privilege or translation may have changed */
	STEP_WFI,   /* done, waiting for an interrupt */
};

/*
 * Every 16-bit encoding's expansion, computed once for the process: a
 * pure function of the bits, shared read-only by all harts (the
 * expansion's switch is a third of the time of compressed code).
 */
static uint32_t rvc_table[1 << 16];
static pthread_once_t rvc_once = PTHREAD_ONCE_INIT;

static void rvc_fill(void)
{
	unsigned c;

	for (c = 0; c < (1u << 16); c++)
		rvc_table[c] = (c & 3) == 3 ? 0 : rv_expand_c(c);
}

void rv_hart_reset(struct rv_hart *h, struct rv_bus *bus, unsigned id,
		   uint64_t pc)
{
	pthread_once(&rvc_once, rvc_fill);
	memset(h, 0, sizeof(*h));
	atomic_init(&h->mip, 0);
	h->bus = bus;
	h->id = id;
	h->pc = pc;
	h->priv = RV_PRIV_M;
	h->misa = MISA_RV64IMAFDCSU;
	h->mstatus = MSTATUS_XLEN64;
	rv_tlb_flush(h);
}

bool rv_raise(struct rv_hart *h, uint64_t cause, uint64_t tval)
{
	h->exc_pending = true;
	h->exc_cause = cause;
	h->exc_tval = tval;
	return false;
}

void rv_hart_set_irq(struct rv_hart *h, enum rv_irq irq, bool level)
{
	if (level)
		atomic_fetch_or(&h->mip, 1ull << irq);
	else
		atomic_fetch_and(&h->mip, ~(1ull << irq));
}

/*
 * What wakes a WFI: an interrupt pending and enabled in mie, whatever
 * mstatus.xIE says (Linux idles in WFI with interrupts masked, and takes
 * them once it unmasks).  mie is only written by the hart's own thread.
 */
bool rv_hart_irq_pending(const struct rv_hart *h)
{
	return atomic_load(&h->mip) &
	       __atomic_load_n(&h->mie, __ATOMIC_RELAXED);
}

/* The interrupts that would be taken now: those for M mode first. */
static uint64_t takeable(const struct rv_hart *h)
{
	uint64_t p = atomic_load_explicit(&h->mip, memory_order_relaxed) &
		     h->mie;
	uint64_t m = p & ~h->mideleg, s = p & h->mideleg;

	if (m && (h->priv < RV_PRIV_M || (h->mstatus & RV_MSTATUS_MIE)))
		return m;
	if (s && (h->priv < RV_PRIV_S ||
		  (h->priv == RV_PRIV_S && (h->mstatus & RV_MSTATUS_SIE))))
		return s;
	return 0;
}

/* The privileged spec's order among interrupts for one mode. */
static unsigned highest(uint64_t irqs)
{
	static const unsigned order[] = { RV_IRQ_MEI, RV_IRQ_MSI, RV_IRQ_MTI,
					  RV_IRQ_SEI, RV_IRQ_SSI, RV_IRQ_STI };
	unsigned i;

	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (irqs & (1ull << order[i]))
			return order[i];
	return __builtin_ctzll(irqs);
}

/* Enter the trap handler for cause (interrupt bit included) at M, or at
 * S when the cause is delegated and the hart is not in M. */
static void take_trap(struct rv_hart *h, uint64_t cause, uint64_t tval)
{
	bool irq = cause & RV_CAUSE_INTERRUPT;
	unsigned code = cause & 63;
	uint64_t deleg = irq ? h->mideleg : h->medeleg;
	uint64_t s = h->mstatus, tvec;

	if (h->priv <= RV_PRIV_S && ((deleg >> code) & 1)) {
		h->scause = cause;
		h->sepc = h->pc;
		h->stval = tval;
		s &= ~(RV_MSTATUS_SPIE | RV_MSTATUS_SPP);
		if (s & RV_MSTATUS_SIE)
			s |= RV_MSTATUS_SPIE;
		if (h->priv == RV_PRIV_S)
			s |= RV_MSTATUS_SPP;
		s &= ~RV_MSTATUS_SIE;
		h->priv = RV_PRIV_S;
		tvec = h->stvec;
	} else {
		h->mcause = cause;
		h->mepc = h->pc;
		h->mtval = tval;
		s &= ~(RV_MSTATUS_MPIE | MSTATUS_MPP);
		if (s & RV_MSTATUS_MIE)
			s |= RV_MSTATUS_MPIE;
		s |= (uint64_t)h->priv << RV_MSTATUS_MPP_SHIFT;
		s &= ~RV_MSTATUS_MIE;
		h->priv = RV_PRIV_M;
		tvec = h->mtvec;
	}
	h->mstatus = s;
	h->pc = (tvec & ~3ull) + (irq && (tvec & 1) ? 4ull * code : 0);
	h->lr_valid = false;
}

static inline int64_t sx32(uint64_t v)
{
	return (int32_t)v;
}

/* Sign-extend the low n bits of v. */
static inline int64_t sext(uint64_t v, unsigned n)
{
	return (int64_t)(v << (64 - n)) >> (64 - n);
}

static bool illegal(struct rv_hart *h)
{
	return rv_raise(h, RV_EXC_ILLEGAL, 0);
}

/* M: what division by zero and overflow give (no trap). */
static uint64_t divide(unsigned f3, uint64_t a, uint64_t b)
{
	switch (f3) {
	case 4: /* div */
		if (!b)
			return UINT64_MAX;
		if ((int64_t)a == INT64_MIN && (int64_t)b == -1)
			return a;
		return (int64_t)a / (int64_t)b;
	case 5: /* divu */
		return b ? a / b : UINT64_MAX;
	case 6: /* rem */
		if (!b)
			return a;
		if ((int64_t)a == INT64_MIN && (int64_t)b == -1)
			return 0;
		return (int64_t)a % (int64_t)b;
	default: /* remu */
		return b ? a % b : a;
	}
}

static uint64_t divide32(unsigned f3, uint64_t a64, uint64_t b64)
{
	int32_t a = a64, b = b64;
	uint32_t ua = a64, ub = b64;

	switch (f3) {
	case 4: /* divw */
		if (!b)
			return UINT64_MAX;
		if (a == INT32_MIN && b == -1)
			return sx32(a);
		return sx32(a / b);
	case 5: /* divuw */
		return ub ? (uint64_t)sx32(ua / ub) : UINT64_MAX;
	case 6: /* remw */
		if (!b)
			return sx32(a);
		if (a == INT32_MIN && b == -1)
			return 0;
		return sx32(a % b);
	default: /* remuw */
		return sx32(ub ? ua % ub : ua);
	}
}

static uint64_t mul(unsigned f3, uint64_t a, uint64_t b)
{
	switch (f3) {
	case 0:
		return a * b;
	case 1: /* mulh */
		return (uint64_t)(((__int128)(int64_t)a * (int64_t)b) >> 64);
	case 2: /* mulhsu */
		return (uint64_t)(((__int128)(int64_t)a * (__int128)b) >> 64);
	default: /* mulhu */
		return (uint64_t)(((unsigned __int128)a * b) >> 64);
	}
}

/* The host address of an AMO's operand: translated for a store (an LR
 * for a load), aligned, and in RAM. */
static bool amo_addr(struct rv_hart *h, uint64_t va, unsigned size, bool lr,
		     void **p, uint64_t *pap)
{
	const struct rv_bus *bus = h->bus;
	uint64_t pa;

	if (va & (size - 1))
		return rv_raise(h,
				lr ? RV_EXC_LOAD_MISALIGNED
				   : RV_EXC_STORE_MISALIGNED,
				va);
	if (!rv_translate(h, va, lr ? RV_ACC_LOAD : RV_ACC_STORE, &pa))
		return false;
	if (pa - bus->ram_base >= bus->ram_size)
		return rv_raise(h, lr ? RV_EXC_LOAD_FAULT : RV_EXC_STORE_FAULT,
				va);
	*p = bus->ram + (pa - bus->ram_base);
	*pap = pa;
	return true;
}

#define AMO_OPS(T, p, v, old)                                              \
	do {                                                               \
		T cur;                                                     \
		switch (funct5) {                                          \
		case 0x01:                                                 \
			old = __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); \
			break;                                             \
		case 0x00:                                                 \
			old = __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);  \
			break;                                             \
		case 0x04:                                                 \
			old = __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST);  \
			break;                                             \
		case 0x0c:                                                 \
			old = __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST);  \
			break;                                             \
		case 0x08:                                                 \
			old = __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);   \
			break;                                             \
		default: /* min, max, minu, maxu */                        \
			cur = __atomic_load_n(p, __ATOMIC_SEQ_CST);        \
			do {                                               \
				T want = pick(funct5, cur, v, sizeof(T));  \
				if (__atomic_compare_exchange_n(           \
					    p, &cur, want, false,          \
					    __ATOMIC_SEQ_CST,              \
					    __ATOMIC_SEQ_CST))             \
					break;                             \
			} while (1);                                       \
			old = cur;                                         \
			break;                                             \
		}                                                          \
	} while (0)

/* amomin/amomax/amominu/amomaxu: the value to store, at width size. */
static uint64_t pick(unsigned funct5, uint64_t cur, uint64_t v, unsigned size)
{
	int64_t sc = size == 4 ? (int32_t)cur : (int64_t)cur;
	int64_t sv = size == 4 ? (int32_t)v : (int64_t)v;

	switch (funct5) {
	case 0x10:
		return sc < sv ? cur : v;
	case 0x14:
		return sc > sv ? cur : v;
	case 0x18:
		return cur < v ? cur : v;
	default:
		return cur > v ? cur : v;
	}
}

/* A: LR, SC and the AMOs, W or D. */
static bool amo(struct rv_hart *h, uint32_t insn, unsigned rd, uint64_t a,
		uint64_t b)
{
	unsigned funct5 = insn >> 27, f3 = (insn >> 12) & 7;
	unsigned size = f3 == 2 ? 4 : 8;
	uint64_t old, pa = 0;
	void *p = NULL;

	if ((f3 != 2 && f3 != 3) ||
	    (funct5 != 0x02 && funct5 != 0x03 && funct5 != 0x01 &&
	     funct5 != 0x00 && funct5 != 0x04 && funct5 != 0x0c &&
	     funct5 != 0x08 && funct5 != 0x10 && funct5 != 0x14 &&
	     funct5 != 0x18 && funct5 != 0x1c) ||
	    (funct5 == 0x02 && ((insn >> 20) & 31)))
		return illegal(h);
	if (!amo_addr(h, a, size, funct5 == 0x02, &p, &pa))
		return false;
	if (funct5 == 0x02) { /* lr */
		old = size == 4 ? (uint64_t)__atomic_load_n((uint32_t *)p,
							    __ATOMIC_SEQ_CST)
				: __atomic_load_n((uint64_t *)p,
						  __ATOMIC_SEQ_CST);
		h->lr_valid = true;
		h->lr_addr = pa;
		h->lr_val = old;
	} else if (funct5 == 0x03) { /* sc */
		bool ok = false;

		if (h->lr_valid && h->lr_addr == pa) {
			if (size == 4) {
				uint32_t exp = h->lr_val;

				ok = __atomic_compare_exchange_n(
					(uint32_t *)p, &exp, (uint32_t)b, false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
			} else {
				uint64_t exp = h->lr_val;

				ok = __atomic_compare_exchange_n(
					(uint64_t *)p, &exp, b, false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
			}
		}
		h->lr_valid = false;
		old = !ok;
		size = 8;
	} else if (size == 4) {
		uint32_t *q = p, v = b, o;

		AMO_OPS(uint32_t, q, v, o);
		old = o;
	} else {
		uint64_t *q = p, v = b, o;

		AMO_OPS(uint64_t, q, v, o);
		old = o;
	}
	h->x[rd] = size == 4 ? (uint64_t)sx32(old) : old;
	return true;
}

/* CSRRW, CSRRS, CSRRC and their immediate forms. */
static bool csr_op(struct rv_hart *h, uint32_t insn, unsigned rd, unsigned rs1)
{
	unsigned f3 = (insn >> 12) & 7, csr = insn >> 20;
	uint64_t src = f3 & 4 ? rs1 : h->x[rs1], old = 0;

	switch (f3 & 3) {
	case 1:
		if (rd && !rv_csr_read(h, csr, &old))
			return false;
		if (!rv_csr_write(h, csr, src))
			return false;
		break;
	case 2:
	case 3:
		if (!rv_csr_read(h, csr, &old))
			return false;
		if (rs1 &&
		    !rv_csr_write(h, csr,
				  (f3 & 3) == 2 ? old | src : old & ~src))
			return false;
		break;
	default:
		return illegal(h);
	}
	h->x[rd] = old;
	return true;
}

static enum step mret(struct rv_hart *h)
{
	uint64_t s = h->mstatus;
	unsigned mpp = (s >> RV_MSTATUS_MPP_SHIFT) & 3;

	if (h->priv != RV_PRIV_M)
		return illegal(h), STEP_TRAP;
	s &= ~(RV_MSTATUS_MIE | MSTATUS_MPP);
	if (s & RV_MSTATUS_MPIE)
		s |= RV_MSTATUS_MIE;
	s |= RV_MSTATUS_MPIE;
	if (mpp != RV_PRIV_M)
		s &= ~RV_MSTATUS_MPRV;
	h->mstatus = s;
	h->priv = mpp;
	h->pc = h->mepc;
	return STEP_FLUSH;
}

static enum step sret(struct rv_hart *h)
{
	uint64_t s = h->mstatus;

	if (h->priv < RV_PRIV_S || (h->priv == RV_PRIV_S && (s & MSTATUS_TSR)))
		return illegal(h), STEP_TRAP;
	h->priv = s & RV_MSTATUS_SPP ? RV_PRIV_S : RV_PRIV_U;
	s &= ~(RV_MSTATUS_SIE | RV_MSTATUS_SPP | RV_MSTATUS_MPRV);
	if (s & RV_MSTATUS_SPIE)
		s |= RV_MSTATUS_SIE;
	s |= RV_MSTATUS_SPIE;
	h->mstatus = s;
	h->pc = h->sepc;
	return STEP_FLUSH;
}

/* SYSTEM: CSRs, ecall, ebreak, xret, wfi, sfence.vma. */
static enum step system(struct rv_hart *h, uint32_t insn, uint64_t npc)
{
	unsigned rd = (insn >> 7) & 31, rs1 = (insn >> 15) & 31;

	if ((insn >> 12) & 7) {
		if (!csr_op(h, insn, rd, rs1))
			return STEP_TRAP;
		h->pc = npc;
		return STEP_FLUSH;
	}
	switch (insn) {
	case 0x00000073: /* ecall */
		if (h->priv == RV_PRIV_S && h->bus->ecall &&
		    h->bus->ecall(h, h->bus->ecall_opaque)) {
			h->pc = npc;
			return STEP_FLUSH;
		}
		rv_raise(h, RV_EXC_ECALL_U + h->priv, 0);
		return STEP_TRAP;
	case 0x00100073: /* ebreak */
		rv_raise(h, RV_EXC_BREAKPOINT, h->pc);
		return STEP_TRAP;
	case 0x30200073:
		return mret(h);
	case 0x10200073:
		return sret(h);
	case 0x10500073: /* wfi */
		if (h->priv == RV_PRIV_U ||
		    (h->priv == RV_PRIV_S && (h->mstatus & MSTATUS_TW)))
			return illegal(h), STEP_TRAP;
		h->pc = npc;
		if (rv_hart_irq_pending(h))
			return STEP_FLUSH;
		h->wfi = true;
		return STEP_WFI;
	default:
		break;
	}
	if ((insn >> 25) == 0x09 && !rd) { /* sfence.vma */
		if (h->priv == RV_PRIV_U ||
		    (h->priv == RV_PRIV_S && (h->mstatus & MSTATUS_TVM)))
			return illegal(h), STEP_TRAP;
		rv_tlb_flush(h);
		h->pc = npc;
		return STEP_FLUSH;
	}
	return illegal(h), STEP_TRAP;
}

static const unsigned load_size[8] = { 1, 2, 4, 8, 1, 2, 4, 0 };

/* Execute insn (32-bit form; ilen is 2 for an expanded one) at h->pc. */
static inline enum step exec(struct rv_hart *h, uint32_t insn, unsigned ilen)
{
	uint64_t *x = h->x;
	unsigned rd = (insn >> 7) & 31, rs1 = (insn >> 15) & 31;
	unsigned rs2 = (insn >> 20) & 31, f3 = (insn >> 12) & 7;
	unsigned f7 = insn >> 25;
	int64_t imm = (int32_t)insn >> 20;
	uint64_t pc = h->pc, npc = pc + ilen, a = x[rs1], b = x[rs2], v;
	bool taken;

	switch (insn & 0x7f) {
	case 0x37: /* lui */
		x[rd] = (int64_t)(int32_t)(insn & 0xfffff000);
		break;
	case 0x17: /* auipc */
		x[rd] = pc + (int64_t)(int32_t)(insn & 0xfffff000);
		break;
	case 0x6f: /* jal */
		imm = sext((insn >> 31) << 20 | ((insn >> 21) & 0x3ff) << 1 |
				   ((insn >> 20) & 1) << 11 |
				   ((insn >> 12) & 0xff) << 12,
			   21);
		x[rd] = npc;
		npc = pc + imm;
		break;
	case 0x67: /* jalr */
		if (f3)
			return illegal(h), STEP_TRAP;
		v = (a + imm) & ~1ull;
		x[rd] = npc;
		npc = v;
		break;
	case 0x63:
		switch (f3) {
		case 0:
			taken = a == b;
			break;
		case 1:
			taken = a != b;
			break;
		case 4:
			taken = (int64_t)a < (int64_t)b;
			break;
		case 5:
			taken = (int64_t)a >= (int64_t)b;
			break;
		case 6:
			taken = a < b;
			break;
		case 7:
			taken = a >= b;
			break;
		default:
			return illegal(h), STEP_TRAP;
		}
		if (taken)
			npc = pc + sext((insn >> 31) << 12 |
						((insn >> 25) & 0x3f) << 5 |
						((insn >> 8) & 0xf) << 1 |
						((insn >> 7) & 1) << 11,
					13);
		break;
	case 0x03:
		if (f3 == 7)
			return illegal(h), STEP_TRAP;
		if (!rv_load(h, a + imm, load_size[f3], &v))
			return STEP_TRAP;
		switch (f3) {
		case 0:
			v = (int8_t)v;
			break;
		case 1:
			v = (int16_t)v;
			break;
		case 2:
			v = (int32_t)v;
			break;
		}
		x[rd] = v;
		break;
	case 0x23:
		if (f3 > 3)
			return illegal(h), STEP_TRAP;
		imm = (int64_t)((imm & ~31ll) | rd);
		if (!rv_store(h, a + imm, 1u << f3, b))
			return STEP_TRAP;
		break;
	case 0x13:
		switch (f3) {
		case 0:
			v = a + imm;
			break;
		case 1:
			if (insn >> 26)
				return illegal(h), STEP_TRAP;
			v = a << (imm & 63);
			break;
		case 2:
			v = (int64_t)a < imm;
			break;
		case 3:
			v = a < (uint64_t)imm;
			break;
		case 4:
			v = a ^ imm;
			break;
		case 5:
			if ((insn >> 26) == 0)
				v = a >> (imm & 63);
			else if ((insn >> 26) == 0x10)
				v = (int64_t)a >> (imm & 63);
			else
				return illegal(h), STEP_TRAP;
			break;
		case 6:
			v = a | imm;
			break;
		default:
			v = a & imm;
			break;
		}
		x[rd] = v;
		break;
	case 0x1b:
		if (f3 == 0)
			v = sx32(a + imm);
		else if (f3 == 1 && f7 == 0)
			v = sx32((uint32_t)a << rs2);
		else if (f3 == 5 && f7 == 0)
			v = sx32((uint32_t)a >> rs2);
		else if (f3 == 5 && f7 == 0x20)
			v = sx32((int32_t)a >> rs2);
		else
			return illegal(h), STEP_TRAP;
		x[rd] = v;
		break;
	case 0x33:
		if (f7 == 0) {
			switch (f3) {
			case 0:
				v = a + b;
				break;
			case 1:
				v = a << (b & 63);
				break;
			case 2:
				v = (int64_t)a < (int64_t)b;
				break;
			case 3:
				v = a < b;
				break;
			case 4:
				v = a ^ b;
				break;
			case 5:
				v = a >> (b & 63);
				break;
			case 6:
				v = a | b;
				break;
			default:
				v = a & b;
				break;
			}
		} else if (f7 == 0x20 && f3 == 0) {
			v = a - b;
		} else if (f7 == 0x20 && f3 == 5) {
			v = (int64_t)a >> (b & 63);
		} else if (f7 == 1) {
			v = f3 < 4 ? mul(f3, a, b) : divide(f3, a, b);
		} else {
			return illegal(h), STEP_TRAP;
		}
		x[rd] = v;
		break;
	case 0x3b:
		if (f7 == 0 && f3 == 0)
			v = sx32(a + b);
		else if (f7 == 0 && f3 == 1)
			v = sx32((uint32_t)a << (b & 31));
		else if (f7 == 0 && f3 == 5)
			v = sx32((uint32_t)a >> (b & 31));
		else if (f7 == 0x20 && f3 == 0)
			v = sx32(a - b);
		else if (f7 == 0x20 && f3 == 5)
			v = sx32((int32_t)a >> (b & 31));
		else if (f7 == 1 && f3 == 0)
			v = sx32((uint32_t)a * (uint32_t)b);
		else if (f7 == 1 && f3 >= 4)
			v = divide32(f3, a, b);
		else
			return illegal(h), STEP_TRAP;
		x[rd] = v;
		break;
	case 0x0f:
		if (f3 == 0) /* fence: order this hart's host accesses */
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
		else if (f3 != 1) /* fence.i: nothing is cached */
			return illegal(h), STEP_TRAP;
		break;
	case 0x2f:
		if (!amo(h, insn, rd, a, b))
			return STEP_TRAP;
		break;
	case 0x73:
		return system(h, insn, npc);
	case 0x07:
	case 0x27:
	case 0x43:
	case 0x47:
	case 0x4b:
	case 0x4f:
	case 0x53:
		if (!rv_fp_exec(h, insn))
			return STEP_TRAP;
		break;
	default:
		return illegal(h), STEP_TRAP;
	}
	h->pc = npc;
	return STEP_NEXT;
}

/* The fetch cache: the page pc is in, as a host address in RAM. */
struct fetch {
	uint64_t vpn;
	const uint8_t *host;
};

/* Fetch the 16 bits at va, filling the cache for its page. */
static bool fetch16(struct rv_hart *h, struct fetch *fc, uint64_t va,
		    uint16_t *out)
{
	const struct rv_bus *bus = h->bus;
	uint64_t pa, off;

	if (!rv_translate(h, va, RV_ACC_FETCH, &pa))
		return false;
	off = pa - bus->ram_base;
	if (off >= bus->ram_size || bus->ram_size - off < 2)
		return rv_raise(h, RV_EXC_INSN_FAULT, va);
	memcpy(out, bus->ram + off, 2);
	off &= ~(RV_PAGE_SIZE - 1);
	if (bus->ram_size - off >= RV_PAGE_SIZE) {
		fc->vpn = va >> RV_PAGE_SHIFT;
		fc->host = bus->ram + off;
	}
	return true;
}

/* The slow fetch: a new page, or a 32-bit instruction that straddles
 * two (the second half may fault on its own, with its own address). */
static bool fetch_slow(struct rv_hart *h, struct fetch *fc, uint32_t *insn)
{
	uint64_t pc = h->pc;
	uint16_t lo, hi;

	fc->vpn = UINT64_MAX;
	if (!fetch16(h, fc, pc, &lo))
		return false;
	if ((lo & 3) != 3) {
		*insn = lo;
		return true;
	}
	if ((pc & (RV_PAGE_SIZE - 1)) != RV_PAGE_SIZE - 2 &&
	    fc->vpn != UINT64_MAX) {
		/* fetch16 cached the page: the rest of it is there */
		memcpy(&hi, fc->host + (pc & (RV_PAGE_SIZE - 1)) + 2, 2);
	} else {
		struct fetch tmp = { UINT64_MAX, NULL };

		if (!fetch16(h, &tmp, pc + 2, &hi))
			return false;
	}
	*insn = (uint32_t)hi << 16 | lo;
	return true;
}

enum rv_exit rv_hart_run(struct rv_hart *h, uint64_t budget,
			 const atomic_bool *stop)
{
	struct fetch fc = { UINT64_MAX, NULL };
	uint64_t n;

	/* a hart whose state was loaded rather than reset needs it too */
	pthread_once(&rvc_once, rvc_fill);
	if (stop && atomic_load_explicit(stop, memory_order_relaxed))
		return RV_EXIT_STOP;
	if (h->wfi) {
		if (!rv_hart_irq_pending(h))
			return RV_EXIT_WFI;
		h->wfi = false;
	}
	for (n = 0; n < budget; n++) {
		uint64_t pc = h->pc, off = pc & (RV_PAGE_SIZE - 1);
		uint32_t insn, raw;
		unsigned ilen = 4;
		enum step st;

		if (unlikely((n & STOP_CHECK_MASK) == STOP_CHECK_MASK) &&
		    stop && atomic_load_explicit(stop, memory_order_relaxed))
			return RV_EXIT_STOP;
		if (!(h->mcountinhibit & 1))
			h->cycle++;
		if (unlikely(atomic_load_explicit(&h->mip,
						  memory_order_relaxed) &
			     h->mie)) {
			uint64_t irqs = takeable(h);

			if (irqs) {
				take_trap(h, RV_CAUSE_INTERRUPT | highest(irqs),
					  0);
				fc.vpn = UINT64_MAX;
				continue;
			}
		}
		h->exc_pending = false;
		if (likely((pc >> RV_PAGE_SHIFT) == fc.vpn &&
			   off <= RV_PAGE_SIZE - 4)) {
			memcpy(&insn, fc.host + off, 4);
		} else if (!fetch_slow(h, &fc, &insn)) {
			take_trap(h, h->exc_cause, h->exc_tval);
			fc.vpn = UINT64_MAX;
			continue;
		}
		raw = insn;
		if ((insn & 3) != 3) {
			raw = insn & 0xffff;
			insn = rvc_table[raw];
			ilen = 2;
			if (unlikely(!insn)) {
				take_trap(h, RV_EXC_ILLEGAL, raw);
				fc.vpn = UINT64_MAX;
				continue;
			}
		}
		st = exec(h, insn, ilen);
		h->x[0] = 0;
		if (likely(st == STEP_NEXT)) {
			if (!(h->mcountinhibit & 4))
				h->instret++;
			continue;
		}
		fc.vpn = UINT64_MAX;
		if (st == STEP_TRAP) {
			take_trap(h, h->exc_cause,
				  h->exc_cause == RV_EXC_ILLEGAL ? raw
								 : h->exc_tval);
			continue;
		}
		if (!(h->mcountinhibit & 4))
			h->instret++;
		if (st == STEP_WFI)
			return RV_EXIT_WFI;
	}
	return RV_EXIT_BUDGET;
}
