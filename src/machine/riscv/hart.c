/*
 * hart.c - one RV64GC hart: the fetch-execute loop over RV64IMA, Zicsr,
 * Zifencei and the privileged instructions, and the taking of traps and
 * interrupts (delegation, priorities, xtvec, the mstatus stack).  The F
 * and D opcodes go to fpu.c, CSRs to csr.c, memory to mmu.c.
 *
 * Instructions are decoded once into the hart's instruction cache
 * (struct rv_dinsn, indexed by physical address) and dispatched by a
 * switch over a dense operation number whose cases step pc by a constant
 * (hart_ops.inc).  Each use compares the entry's bits with RAM's, so a
 * store by any hart, fence.i or RAM rewritten by the engine is seen at
 * the next fetch with nothing to invalidate.  Loads, stores and fetches
 * that hit the fast TLB (a host address per page, good for one privilege
 * and mstatus) go straight to host RAM; the rest go through mmu.c.  The
 * counters are added up in bulk where they can be read.
 * A and LR/SC work on host RAM with host atomics, so they are atomic
 * across harts running on other threads.
 */
#include <string.h>

#include "hart_internal.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define MISA_RV64IMAFDCSU                                                      \
	(2ull << 62 | 1 << ('A' - 'A') | 1 << ('C' - 'A') | 1 << ('D' - 'A') | \
	 1 << ('F' - 'A') | 1 << ('I' - 'A') | 1 << ('M' - 'A') |              \
	 1 << ('S' - 'A') | 1 << ('U' - 'A'))
#define MSTATUS_MPP    (3ull << RV_MSTATUS_MPP_SHIFT)
#define MSTATUS_TVM    (1ull << 20)
#define MSTATUS_TW     (1ull << 21)
#define MSTATUS_TSR    (1ull << 22)
#define MSTATUS_XLEN64 (2ull << 32 | 2ull << 34)
#define PAGE_OFF       (RV_PAGE_SIZE - 1)

/* What one instruction asks of the loop. */
enum step {
	STEP_TRAP,  /* raised an exception: take it */
	STEP_NEXT,  /* done, pc moved */
	STEP_FLUSH, /* done; privilege or translation may have changed */
	STEP_WFI,   /* done, waiting for an interrupt */
};

void rv_hart_reset(struct rv_hart *h, struct rv_bus *bus, unsigned id,
		   uint64_t pc)
{
	rv_decode_init();
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

/* After anything that may have changed the mode: empty the fast TLB if
 * it did. */
static inline void fast_check(struct rv_hart *h)
{
	if (unlikely(rv_fast_mode(h) != h->fast_mode ||
		     h->satp != h->fast_satp))
		rv_ftlb_flush(h);
}

/*
 * On entry to rv_hart_run: the TLB may have been flushed behind the
 * hart's back (its state loaded), so keep of the fast TLB only what the
 * TLB still holds when translation is on.
 */
static void fast_enter(struct rv_hart *h)
{
	unsigned i;

	fast_check(h);
	if (!(h->satp >> 60))
		return;
	for (i = 0; i < RV_TLB_SIZE; i++) {
		struct rv_ftlb_entry *e = &h->ftlb[i];
		uint64_t vpn = h->tlb[i].vpn;

		if (e->ld != vpn)
			e->ld = UINT64_MAX;
		if (e->st != vpn)
			e->st = UINT64_MAX;
		if (e->x != vpn)
			e->x = UINT64_MAX;
	}
}

/* Translate va for acc and, when its page is all RAM, enter it in the
 * fast TLB; false with the fault raised. */
static bool ftlb_fill(struct rv_hart *h, uint64_t va, enum rv_access acc)
{
	const struct rv_bus *bus = h->bus;
	uint64_t vpn = va >> RV_PAGE_SHIFT, pa, off;
	struct rv_ftlb_entry *e = &h->ftlb[vpn & (RV_TLB_SIZE - 1)];
	uintptr_t host;

	if (!rv_translate(h, va, acc, &pa))
		return false;
	off = (pa & ~PAGE_OFF) - bus->ram_base;
	if (off >= bus->ram_size || bus->ram_size - off < RV_PAGE_SIZE)
		return true;
	host = (uintptr_t)(bus->ram + off) - (va & ~PAGE_OFF);
	if (e->host != host) {
		/* the other tags were for this index under another mapping */
		e->ld = e->st = e->x = UINT64_MAX;
		e->host = host;
	}
	if (acc == RV_ACC_LOAD)
		e->ld = vpn;
	else if (acc == RV_ACC_STORE)
		e->st = vpn;
	else
		e->x = vpn;
	return true;
}

/* A load the fast TLB missed: fill it, or go through rv_load for a
 * device or an access across pages. */
static bool load_slow(struct rv_hart *h, uint64_t va, unsigned size,
		      uint64_t *val)
{
	const struct rv_ftlb_entry *e;
	uint64_t vpn = va >> RV_PAGE_SHIFT;

	if ((va & PAGE_OFF) + size <= RV_PAGE_SIZE) {
		if (!ftlb_fill(h, va, RV_ACC_LOAD))
			return false;
		e = &h->ftlb[vpn & (RV_TLB_SIZE - 1)];
		if (e->ld == vpn) {
			*val = 0;
			memcpy(val, (const void *)(e->host + va), size);
			return true;
		}
	}
	return rv_load(h, va, size, val);
}

static bool store_slow(struct rv_hart *h, uint64_t va, unsigned size,
		       uint64_t val)
{
	const struct rv_ftlb_entry *e;
	uint64_t vpn = va >> RV_PAGE_SHIFT;

	if ((va & PAGE_OFF) + size <= RV_PAGE_SIZE) {
		if (!ftlb_fill(h, va, RV_ACC_STORE))
			return false;
		e = &h->ftlb[vpn & (RV_TLB_SIZE - 1)];
		if (e->st == vpn) {
			memcpy((void *)(e->host + va), &val, size);
			return true;
		}
	}
	return rv_store(h, va, size, val);
}

/* The fetch cache: the page pc is in, as a host address in RAM, and the
 * decoded entries for it. */
struct fetch {
	uint64_t vpn;
	const uint8_t *host;
	struct rv_dinsn *dec;
};

/* Fetch the 16 bits at va. */
static bool fetch16(struct rv_hart *h, uint64_t va, uint16_t *out)
{
	const struct rv_bus *bus = h->bus;
	uint64_t pa, off;

	if (!rv_translate(h, va, RV_ACC_FETCH, &pa))
		return false;
	off = pa - bus->ram_base;
	if (off >= bus->ram_size || bus->ram_size - off < 2)
		return rv_raise(h, RV_EXC_INSN_FAULT, va);
	memcpy(out, bus->ram + off, 2);
	return true;
}

/* The slow fetch: an instruction that may straddle two pages (the second
 * half may fault on its own, with its own address), or a page not all
 * RAM.  Its bits in *raw, the upper half 0 for a compressed one. */
static bool fetch_slow(struct rv_hart *h, uint64_t pc, uint32_t *raw)
{
	uint16_t lo, hi;

	if (!fetch16(h, pc, &lo))
		return false;
	if ((lo & 3) != 3) {
		*raw = lo;
		return true;
	}
	if (!fetch16(h, pc + 2, &hi))
		return false;
	*raw = (uint32_t)hi << 16 | lo;
	return true;
}

/* Point the fetch cache at pc's page if the fast TLB can have it; false
 * with the fault raised. */
static bool fetch_page(struct rv_hart *h, struct fetch *fc, uint64_t pc)
{
	uint64_t vpn = pc >> RV_PAGE_SHIFT;
	const struct rv_ftlb_entry *e = &h->ftlb[vpn & (RV_TLB_SIZE - 1)];
	uintptr_t off;

	fc->vpn = UINT64_MAX;
	if (e->x != vpn) {
		if (!ftlb_fill(h, pc, RV_ACC_FETCH))
			return false;
		if (e->x != vpn)
			return true; /* not RAM: fetch_slow faults */
	}
	fc->vpn = vpn;
	fc->host = (const uint8_t *)(e->host + (vpn << RV_PAGE_SHIFT));
	off = (uintptr_t)(fc->host - h->bus->ram);
	fc->dec = &h->dcache[(off >> 1) & (RV_DCACHE_SIZE - 1)];
	return true;
}

/*
 * The counters, kept in bulk: cycle counts every instruction started
 * (interrupts and traps included), instret every one retired.  They are
 * brought up to date only where they can be read (before a SYSTEM
 * instruction, and on return), with the mcountinhibit of the time, which
 * only a SYSTEM instruction changes.
 */
struct counts {
	uint64_t cycles, retired; /* already added to h->cycle, h->instret */
};

static inline void count(struct rv_hart *h, struct counts *c, uint64_t cycles,
			 uint64_t retired)
{
	if (!(h->mcountinhibit & 1))
		h->cycle += cycles - c->cycles;
	if (!(h->mcountinhibit & 4))
		h->instret += retired - c->retired;
	c->cycles = cycles;
	c->retired = retired;
}

void rv_hart_flush_decode(struct rv_hart *h)
{
	memset(h->dcache, 0, sizeof(h->dcache));
	rv_tlb_flush(h); /* the fast TLB too */
}

#define POLL_EVERY 1024 /* instructions between looks at *stop and mip */

/* Done: on to the instruction l bytes on. */
#define NEXT(l)            \
	do {               \
		pc += (l); \
		goto next; \
	} while (0)

/* Sign-extending load of type T and unsigned store of type T at
 * x[rs1] + imm, through the fast TLB when it hits. */
#define LOAD(T)                                                              \
	do {                                                                 \
		uint64_t va = x[d->rs1] + d->imm, vpn = va >> RV_PAGE_SHIFT; \
		const struct rv_ftlb_entry *e =                              \
			&h->ftlb[vpn & (RV_TLB_SIZE - 1)];                   \
		T t;                                                         \
		if (likely(e->ld == vpn &&                                   \
			   (va & PAGE_OFF) <= RV_PAGE_SIZE - sizeof(T))) {   \
			memcpy(&t, (const void *)(e->host + va), sizeof(T)); \
		} else {                                                     \
			uint64_t v;                                          \
			h->pc = pc;                                          \
			if (!load_slow(h, va, sizeof(T), &v))                \
				goto trap;                                   \
			t = (T)v;                                            \
			poll_at = n;                                         \
		}                                                            \
		x[d->rd] = (uint64_t)(int64_t)t;                             \
	} while (0)

#define STORE(T)                                                             \
	do {                                                                 \
		uint64_t va = x[d->rs1] + d->imm, vpn = va >> RV_PAGE_SHIFT; \
		const struct rv_ftlb_entry *e =                              \
			&h->ftlb[vpn & (RV_TLB_SIZE - 1)];                   \
		T t = (T)x[d->rs2];                                          \
		if (likely(e->st == vpn &&                                   \
			   (va & PAGE_OFF) <= RV_PAGE_SIZE - sizeof(T))) {   \
			memcpy((void *)(e->host + va), &t, sizeof(T));       \
		} else {                                                     \
			h->pc = pc;                                          \
			if (!store_slow(h, va, sizeof(T), t))                \
				goto trap;                                   \
			poll_at = n;                                         \
		}                                                            \
	} while (0)

#define BRANCH(cond)                           \
	do {                                   \
		if (cond) {                    \
			pc += (int64_t)d->imm; \
			goto next;             \
		}                              \
	} while (0)

enum rv_exit rv_hart_run(struct rv_hart *h, uint64_t budget,
			 const atomic_bool *stop)
{
	struct fetch fc = { UINT64_MAX, NULL, NULL };
	struct counts cnt = { 0, 0 };
	enum rv_exit ex = RV_EXIT_BUDGET;
	uint64_t *x = h->x;
	uint64_t n = 0, poll_at = 0, unret = 0, pc, a, b;
	const struct rv_dinsn *d;
	struct rv_dinsn one;
	enum step st;

	/* a hart whose state was loaded rather than reset needs it too */
	rv_decode_init();
	if (stop && atomic_load_explicit(stop, memory_order_relaxed))
		return RV_EXIT_STOP;
	if (h->wfi) {
		if (!rv_hart_irq_pending(h))
			return RV_EXIT_WFI;
		h->wfi = false;
	}
	fast_enter(h);
	pc = h->pc;
	for (;;) {
		uint64_t off;

		if (unlikely(n >= poll_at)) {
			if (n >= budget)
				break;
			if (n && stop &&
			    atomic_load_explicit(stop, memory_order_relaxed)) {
				ex = RV_EXIT_STOP;
				break;
			}
			poll_at = budget - n > POLL_EVERY ? n + POLL_EVERY
							  : budget;
			if (unlikely(atomic_load_explicit(
					     &h->mip, memory_order_relaxed) &
				     h->mie)) {
				uint64_t irqs = takeable(h);

				if (irqs) {
					n++;
					unret++;
					h->pc = pc;
					take_trap(h,
						  RV_CAUSE_INTERRUPT |
							  highest(irqs),
						  0);
					pc = h->pc;
					fc.vpn = UINT64_MAX;
					fast_check(h);
					poll_at = n;
					continue;
				}
			}
		}
		n++;
		off = pc & PAGE_OFF;
		if (unlikely((pc >> RV_PAGE_SHIFT) != fc.vpn)) {
			h->pc = pc;
			if (!fetch_page(h, &fc, pc))
				goto fetch_fault;
		}
		if (likely(fc.vpn != UINT64_MAX && off <= RV_PAGE_SIZE - 4)) {
			struct rv_dinsn *e = &fc.dec[off >> 1];
			uint32_t w;

			memcpy(&w, fc.host + off, 4);
			if (unlikely(e->raw != w))
				rv_decode(e, w);
			d = e;
		} else {
			uint32_t raw;

			h->pc = pc;
			if (!fetch_slow(h, pc, &raw))
				goto fetch_fault;
			rv_decode(&one, raw);
			d = &one;
		}
		a = x[d->rs1];
		b = x[d->rs2];
		switch (d->op) {
#define L    4
#define C(o) (o)
#include "hart_ops.inc"
#undef L
#undef C
#define L    2
#define C(o) ((o) | RV_OP_C)
#include "hart_ops.inc"
#undef L
#undef C
		default:
			rv_raise(h, RV_EXC_ILLEGAL, 0);
			goto trap;
		}
	next:
		x[0] = 0;
		continue;
	trap:
		x[0] = 0;
		unret++;
		h->pc = pc;
		take_trap(h, h->exc_cause,
			  h->exc_cause == RV_EXC_ILLEGAL
				  ? (d->len == 2 ? d->raw & 0xffff : d->raw)
				  : h->exc_tval);
		goto trapped;
	fetch_fault:
		unret++;
		take_trap(h, h->exc_cause, h->exc_tval);
	trapped:
		h->exc_pending = false;
		pc = h->pc;
		fc.vpn = UINT64_MAX;
		fast_check(h);
		poll_at = n;
	}
out:
	h->pc = pc;
	count(h, &cnt, n, n - unret);
	return ex;
}
