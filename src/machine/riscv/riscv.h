/*
 * riscv.h - the RISC-V machine's shared types: one hart's state, the
 * physical bus it reaches memory and devices through, and what each file
 * of src/machine/riscv/ provides to the others.
 *
 * A hart is an RV64GC interpreter (RV64IMAFDC, Zicsr, Zifencei, the
 * counters) with M, S and U modes and Sv39/Sv48 paging.  It runs on one
 * thread; everything it shares with other harts (RAM, the pending
 * interrupt bits, the devices) is reached atomically or under the
 * device's own lock.  Compressed instructions are expanded to their 32-bit
 * forms first (decode.c), so everything after fetch sees one encoding.
 */
#ifndef FERRY_RISCV_H
#define FERRY_RISCV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define RV_MAX_HARTS   8
#define RV_PAGE_SHIFT  12
#define RV_PAGE_SIZE   (1ull << RV_PAGE_SHIFT)
#define RV_MAX_MMIO    8
#define RV_TIMEBASE_HZ 10000000ull /* the time CSR's rate, as QEMU's virt */

enum rv_priv { RV_PRIV_U = 0, RV_PRIV_S = 1, RV_PRIV_M = 3 };

/* Exception causes (mcause/scause with the interrupt bit clear). */
enum rv_exc {
	RV_EXC_INSN_MISALIGNED = 0,
	RV_EXC_INSN_FAULT = 1,
	RV_EXC_ILLEGAL = 2,
	RV_EXC_BREAKPOINT = 3,
	RV_EXC_LOAD_MISALIGNED = 4,
	RV_EXC_LOAD_FAULT = 5,
	RV_EXC_STORE_MISALIGNED = 6, /* also AMO */
	RV_EXC_STORE_FAULT = 7,
	RV_EXC_ECALL_U = 8,
	RV_EXC_ECALL_S = 9,
	RV_EXC_ECALL_M = 11,
	RV_EXC_INSN_PAGE = 12,
	RV_EXC_LOAD_PAGE = 13,
	RV_EXC_STORE_PAGE = 15,
};

/* Interrupt numbers: bit n of mip/mie, cause n with the interrupt bit. */
enum rv_irq {
	RV_IRQ_SSI = 1,
	RV_IRQ_MSI = 3,
	RV_IRQ_STI = 5,
	RV_IRQ_MTI = 7,
	RV_IRQ_SEI = 9,
	RV_IRQ_MEI = 11,
};
#define RV_CAUSE_INTERRUPT (1ull << 63)

/* mstatus bits the machine relies on beyond the hart */
#define RV_MSTATUS_SIE	     (1ull << 1)
#define RV_MSTATUS_MIE	     (1ull << 3)
#define RV_MSTATUS_SPIE	     (1ull << 5)
#define RV_MSTATUS_MPIE	     (1ull << 7)
#define RV_MSTATUS_SPP	     (1ull << 8)
#define RV_MSTATUS_MPP_SHIFT 11
#define RV_MSTATUS_FS_SHIFT  13 /* 2 bits: off, initial, clean, dirty */
#define RV_MSTATUS_FS	     (3ull << RV_MSTATUS_FS_SHIFT)
#define RV_MSTATUS_MPRV	     (1ull << 17)
#define RV_MSTATUS_SUM	     (1ull << 18)
#define RV_MSTATUS_MXR	     (1ull << 19)
#define RV_MSTATUS_SD	     (1ull << 63)

/*
 * A memory-mapped device: accesses of 1, 2, 4 or 8 bytes at offsets
 * within [base, base + size).  The device does its own locking: any hart
 * may call it at any time.
 */
struct rv_mmio {
	uint64_t base, size;
	uint64_t (*read)(void *opaque, uint64_t off, unsigned size);
	void (*write)(void *opaque, uint64_t off, uint64_t val, unsigned size);
	void *opaque;
};

struct rv_hart;

/*
 * The physical address space: one RAM range and a few devices.  RAM is
 * the host mapping the engine migrates (a ferry RAM block): harts load
 * and store to it directly, so the kernel's dirty tracking and
 * userfaultfd see every write and every first touch.
 */
struct rv_bus {
	uint8_t *ram;
	uint64_t ram_base; /* 0x80000000 on the virt machine */
	uint64_t ram_size;
	struct rv_mmio mmio[RV_MAX_MMIO];
	unsigned nmmio;
	/* the time CSR (RV_TIMEBASE_HZ ticks); NULL reads 0 */
	uint64_t (*time)(void *opaque);
	void *time_opaque;
	/*
	 * An ecall from S mode, when set: the machine's own SBI (sbi.c)
	 * answers it (a0/a1 written, pc not yet advanced: the hart steps
	 * past the ecall) instead of a trap into M mode.  Returns false to
	 * trap after all.  NULL: every ecall traps (the ISA tests).
	 */
	bool (*ecall)(struct rv_hart *h, void *opaque);
	void *ecall_opaque;
	/* called after a hart set another hart's pending bits (an IPI),
	 * so the target's thread wakes from WFI; may be NULL */
	void (*kick)(void *opaque, unsigned hart);
	void *kick_opaque;
};

/* Find the device at physical address pa, or NULL (bus.c). */
const struct rv_mmio *rv_bus_find(const struct rv_bus *bus, uint64_t pa);
/* Add a device; false when the bus is full or the range overlaps. */
bool rv_bus_add(struct rv_bus *bus, const struct rv_mmio *dev);

/* A direct-mapped TLB; each entry maps one 4 KiB virtual page. */
#define RV_TLB_SIZE 256
struct rv_tlb_entry {
	uint64_t vpn; /* virtual page number; UINT64_MAX when empty */
	uint64_t ppn; /* physical page number */
	uint8_t pte;  /* the leaf PTE's low flag bits (V R W X U G A D) */
	uint16_t asid;
};

/*
 * One pre-decoded instruction (hart.c, decode.c): what the dispatch needs
 * of it, and the instruction's bits in RAM when it was decoded (all 32
 * of them, for a compressed one too).  An entry is a pure function of
 * raw, so it is used only while RAM still holds raw at the pc: stores by
 * any hart, fence.i and RAM rewritten by the engine need no invalidation.
 */
#define RV_DCACHE_SIZE (1u << 16) /* entries, one per 2 bytes of code */
struct rv_dinsn {
	uint32_t raw;
	int32_t imm;
	uint8_t op; /* enum rv_op (hart_internal.h); 0 is illegal */
	uint8_t rd, rs1, rs2;
	uint8_t len; /* 2 or 4 */
	uint8_t pad[3];
};

/*
 * The fast TLB (hart.c, mmu.c): for each entry of the TLB's index, the
 * virtual page whose loads, stores and fetches were last allowed at the
 * current privilege, mstatus and satp and land in RAM, and what to add to
 * the virtual address for the host's.  UINT64_MAX tags are empty.
 */
struct rv_ftlb_entry {
	uint64_t ld, st, x;
	uintptr_t host;
};

struct rv_hart {
	/* architectural state: what migrates (hart_state.c) */
	uint64_t x[32]; /* x[0] reads 0: never written */
	uint64_t f[32]; /* NaN-boxed single precision in the low half */
	uint64_t pc;
	unsigned priv; /* enum rv_priv */
	uint32_t fcsr; /* frm << 5 | fflags */
	uint64_t mstatus, misa, medeleg, mideleg, mie, mtvec, mscratch, mepc,
		mcause, mtval, mcounteren, menvcfg, mcountinhibit;
	uint64_t stvec, sscratch, sepc, scause, stval, satp, scounteren,
		senvcfg;
	uint64_t cycle, instret;
	_Atomic uint64_t mip; /* devices and other harts set bits */
	bool lr_valid;	      /* a reservation is held */
	uint64_t lr_addr;     /* its physical address */
	uint64_t lr_val;      /* the value LR read (SC compares it) */
	bool wfi;	      /* stopped in WFI until an interrupt is pending */

	/* not architectural: rebuilt, never migrated */
	unsigned id; /* mhartid */
	struct rv_bus *bus;
	struct rv_tlb_entry tlb[RV_TLB_SIZE];
	/* the exception being raised by the current instruction */
	bool exc_pending;
	uint64_t exc_cause, exc_tval;
	/* the fast paths' caches, filled by rv_hart_run() */
	uint64_t fast_mode, fast_satp; /* what the fast TLB was filled under */
	struct rv_ftlb_entry ftlb[RV_TLB_SIZE];
	struct rv_dinsn dcache[RV_DCACHE_SIZE];
};

/* Outcome of rv_hart_run(). */
enum rv_exit {
	RV_EXIT_BUDGET, /* ran the instructions it was given */
	RV_EXIT_WFI,	/* in WFI with nothing pending: sleep until kicked */
	RV_EXIT_STOP,	/* *stop became true */
};

/* hart.c */
/* Reset state: M mode at pc, misa RV64IMAFDCSU, everything else 0. */
void rv_hart_reset(struct rv_hart *h, struct rv_bus *bus, unsigned id,
		   uint64_t pc);
/*
 * Run up to `budget` instructions (taking pending interrupts between
 * them), and return early when the hart waits in WFI or *stop is set.
 * A hart stopped this way is at an instruction boundary.
 */
enum rv_exit rv_hart_run(struct rv_hart *h, uint64_t budget,
			 const atomic_bool *stop);
/*
 * Drop what the hart cached of RAM and of the page tables (decoded
 * instructions, the fast TLB): call it on a stopped hart whose RAM was
 * rewritten behind its back or whose state was loaded, before it runs.
 */
void rv_hart_flush_decode(struct rv_hart *h);
/* Set or clear pending interrupt bit `irq` (any thread). */
void rv_hart_set_irq(struct rv_hart *h, enum rv_irq irq, bool level);
/* True when an interrupt would be taken now (wakes a WFI). */
bool rv_hart_irq_pending(const struct rv_hart *h);
/* Record exception `cause` for the current instruction; returns false so
 * callers can `return rv_raise(...)`. */
bool rv_raise(struct rv_hart *h, uint64_t cause, uint64_t tval);

/* decode.c: the 32-bit form of a compressed instruction, or 0 if it is
 * illegal (the hart raises with the 16 bits as tval). */
uint32_t rv_expand_c(uint16_t c);

/* mmu.c: virtual to physical for an access of this kind by h, with the
 * TLB; false with the page or access fault raised. */
enum rv_access { RV_ACC_FETCH, RV_ACC_LOAD, RV_ACC_STORE };
bool rv_translate(struct rv_hart *h, uint64_t va, enum rv_access acc,
		  uint64_t *pa);
void rv_tlb_flush(struct rv_hart *h); /* sfence.vma, satp writes */
/*
 * Loads and stores of 1, 2, 4 or 8 bytes at virtual address va, through
 * translation, to RAM or a device; false with the fault raised.  A
 * misaligned access within RAM is done (the hart allows them); one that
 * crosses a page is split.  These are what fpu.c uses for FLW/FLD/FSW/FSD.
 */
bool rv_load(struct rv_hart *h, uint64_t va, unsigned size, uint64_t *val);
bool rv_store(struct rv_hart *h, uint64_t va, unsigned size, uint64_t val);

/* csr.c: CSR access by the current instruction at h->priv; false with
 * the illegal-instruction exception raised. */
bool rv_csr_read(struct rv_hart *h, unsigned csr, uint64_t *val);
bool rv_csr_write(struct rv_hart *h, unsigned csr, uint64_t val);

/*
 * fpu.c: execute one instruction of the F or D extension (major opcodes
 * LOAD-FP 0x07, STORE-FP 0x27, FMADD 0x43, FMSUB 0x47, FNMSUB 0x4b,
 * FNMADD 0x4f, OP-FP 0x53).  Advancing pc is the caller's; false with the
 * exception raised (illegal when mstatus.FS is off or the rounding mode is
 * invalid, or a load/store fault).  Sets mstatus.FS dirty when it writes
 * f[] or fcsr.
 */
bool rv_fp_exec(struct rv_hart *h, uint32_t insn);

#endif
