/*
 * csr.c - the control and status registers of M and S mode and the
 * user counters and FP CSRs, with the privilege rules of their numbers
 * (bits 9:8 the lowest mode that may touch one, bits 11:10 == 3 read-only)
 * and each register's WARL mask.  sstatus, sie and sip are views of
 * mstatus, mie and mip.  Not here: Sstc (stimecmp is illegal), the
 * hypervisor, debug triggers (tselect and tdata1..3 read 0: tdata1's type
 * 0 says there is no trigger); the PMP registers are accepted and read 0.
 */
#include "riscv.h"

enum {
	CSR_FFLAGS = 0x001,
	CSR_FRM = 0x002,
	CSR_FCSR = 0x003,
	CSR_SSTATUS = 0x100,
	CSR_SIE = 0x104,
	CSR_STVEC = 0x105,
	CSR_SCOUNTEREN = 0x106,
	CSR_SENVCFG = 0x10a,
	CSR_SSCRATCH = 0x140,
	CSR_SEPC = 0x141,
	CSR_SCAUSE = 0x142,
	CSR_STVAL = 0x143,
	CSR_SIP = 0x144,
	CSR_SATP = 0x180,
	CSR_MSTATUS = 0x300,
	CSR_MISA = 0x301,
	CSR_MEDELEG = 0x302,
	CSR_MIDELEG = 0x303,
	CSR_MIE = 0x304,
	CSR_MTVEC = 0x305,
	CSR_MCOUNTEREN = 0x306,
	CSR_MENVCFG = 0x30a,
	CSR_MCOUNTINHIBIT = 0x320,
	CSR_MHPMEVENT3 = 0x323,
	CSR_MHPMEVENT31 = 0x33f,
	CSR_MSCRATCH = 0x340,
	CSR_MEPC = 0x341,
	CSR_MCAUSE = 0x342,
	CSR_MTVAL = 0x343,
	CSR_MIP = 0x344,
	CSR_PMPCFG0 = 0x3a0,
	CSR_PMPCFG15 = 0x3af,
	CSR_PMPADDR0 = 0x3b0,
	CSR_PMPADDR63 = 0x3ef,
	CSR_TSELECT = 0x7a0,
	CSR_TDATA3 = 0x7a3,
	CSR_MCYCLE = 0xb00,
	CSR_MINSTRET = 0xb02,
	CSR_MHPMCOUNTER3 = 0xb03,
	CSR_MHPMCOUNTER31 = 0xb1f,
	CSR_CYCLE = 0xc00,
	CSR_TIME = 0xc01,
	CSR_INSTRET = 0xc02,
	CSR_HPMCOUNTER31 = 0xc1f,
	CSR_MVENDORID = 0xf11,
	CSR_MARCHID = 0xf12,
	CSR_MIMPID = 0xf13,
	CSR_MHARTID = 0xf14,
	CSR_MCONFIGPTR = 0xf15,
};

#define MSTATUS_MPP    (3ull << RV_MSTATUS_MPP_SHIFT)
#define MSTATUS_TVM    (1ull << 20)
#define MSTATUS_TW     (1ull << 21)
#define MSTATUS_TSR    (1ull << 22)
#define MSTATUS_UXL    (3ull << 32)
#define MSTATUS_SXL    (3ull << 34)
#define MSTATUS_XLEN64 (2ull << 32 | 2ull << 34) /* UXL = SXL = 64 */

/* what M mode may write in mstatus (XS, VS, the endianness bits: 0) */
#define MSTATUS_WRITABLE                                                       \
	(RV_MSTATUS_SIE | RV_MSTATUS_MIE | RV_MSTATUS_SPIE | RV_MSTATUS_MPIE | \
	 RV_MSTATUS_SPP | MSTATUS_MPP | RV_MSTATUS_FS | RV_MSTATUS_MPRV |      \
	 RV_MSTATUS_SUM | RV_MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW |          \
	 MSTATUS_TSR)
/* what sstatus shows of mstatus, and what S mode may write through it */
#define SSTATUS_VISIBLE                                                      \
	(RV_MSTATUS_SIE | RV_MSTATUS_SPIE | RV_MSTATUS_SPP | RV_MSTATUS_FS | \
	 RV_MSTATUS_SUM | RV_MSTATUS_MXR | MSTATUS_UXL | RV_MSTATUS_SD)
#define SSTATUS_WRITABLE                                                     \
	(RV_MSTATUS_SIE | RV_MSTATUS_SPIE | RV_MSTATUS_SPP | RV_MSTATUS_FS | \
	 RV_MSTATUS_SUM | RV_MSTATUS_MXR)

#define S_IRQS (1ull << RV_IRQ_SSI | 1ull << RV_IRQ_STI | 1ull << RV_IRQ_SEI)
#define ALL_IRQS \
	(S_IRQS | 1ull << RV_IRQ_MSI | 1ull << RV_IRQ_MTI | 1ull << RV_IRQ_MEI)
/* exceptions S mode may take: all but ecall from M and the reserved */
#define DELEGABLE_EXC 0xb3ffull
#define ENVCFG_FIOM   1ull

static uint64_t mstatus_value(const struct rv_hart *h)
{
	uint64_t s = h->mstatus & ~RV_MSTATUS_SD;

	if ((s & RV_MSTATUS_FS) == RV_MSTATUS_FS)
		s |= RV_MSTATUS_SD;
	return s;
}

static void mstatus_write(struct rv_hart *h, uint64_t val, uint64_t mask)
{
	uint64_t s = (h->mstatus & ~mask) | (val & mask);

	/* MPP is WARL over M, S and U: the reserved 2 keeps what was there */
	if (((s & MSTATUS_MPP) >> RV_MSTATUS_MPP_SHIFT) == 2)
		s = (s & ~MSTATUS_MPP) | (h->mstatus & MSTATUS_MPP);
	s = (s & ~(MSTATUS_UXL | MSTATUS_SXL)) | MSTATUS_XLEN64;
	h->mstatus = s & ~RV_MSTATUS_SD;
	if ((s & RV_MSTATUS_FS) == RV_MSTATUS_FS)
		h->mstatus |= RV_MSTATUS_SD;
}

/* Replace the bits of mip in mask, leaving what devices set elsewhere. */
static void mip_write(struct rv_hart *h, uint64_t val, uint64_t mask)
{
	uint64_t old = atomic_load(&h->mip);

	while (!atomic_compare_exchange_weak(&h->mip, &old,
					     (old & ~mask) | (val & mask)))
		;
}

static bool fs_off(const struct rv_hart *h)
{
	return !(h->mstatus & RV_MSTATUS_FS);
}

static void fs_dirty(struct rv_hart *h)
{
	h->mstatus |= RV_MSTATUS_FS | RV_MSTATUS_SD;
}

/* cycle, time, instret, hpmcounterN below M: each needs its bit in
 * mcounteren, and U mode also in scounteren. */
static bool counter_allowed(const struct rv_hart *h, unsigned csr)
{
	uint64_t bit = 1ull << (csr & 31);

	if (h->priv < RV_PRIV_M && !(h->mcounteren & bit))
		return false;
	if (h->priv < RV_PRIV_S && !(h->scounteren & bit))
		return false;
	return true;
}

/* The privilege rule of the number, and TVM for satp. */
static bool accessible(const struct rv_hart *h, unsigned csr)
{
	if (h->priv < ((csr >> 8) & 3))
		return false;
	if (csr == CSR_SATP && h->priv == RV_PRIV_S &&
	    (h->mstatus & MSTATUS_TVM))
		return false;
	return true;
}

static bool illegal(struct rv_hart *h)
{
	/* the hart fills in the instruction bits as tval */
	return rv_raise(h, RV_EXC_ILLEGAL, 0);
}

bool rv_csr_read(struct rv_hart *h, unsigned csr, uint64_t *val)
{
	if (!accessible(h, csr))
		return illegal(h);
	switch (csr) {
	case CSR_FFLAGS:
	case CSR_FRM:
	case CSR_FCSR:
		if (fs_off(h))
			return illegal(h);
		*val = csr == CSR_FFLAGS ? h->fcsr & 0x1f
		       : csr == CSR_FRM	 ? (h->fcsr >> 5) & 7
					 : h->fcsr & 0xff;
		return true;
	case CSR_SSTATUS:
		*val = mstatus_value(h) & SSTATUS_VISIBLE;
		return true;
	case CSR_SIE:
		*val = h->mie & h->mideleg;
		return true;
	case CSR_SIP:
		*val = atomic_load(&h->mip) & h->mideleg;
		return true;
	case CSR_STVEC:
		*val = h->stvec;
		return true;
	case CSR_SCOUNTEREN:
		*val = h->scounteren;
		return true;
	case CSR_SENVCFG:
		*val = h->senvcfg;
		return true;
	case CSR_SSCRATCH:
		*val = h->sscratch;
		return true;
	case CSR_SEPC:
		*val = h->sepc;
		return true;
	case CSR_SCAUSE:
		*val = h->scause;
		return true;
	case CSR_STVAL:
		*val = h->stval;
		return true;
	case CSR_SATP:
		*val = h->satp;
		return true;
	case CSR_MSTATUS:
		*val = mstatus_value(h);
		return true;
	case CSR_MISA:
		*val = h->misa;
		return true;
	case CSR_MEDELEG:
		*val = h->medeleg;
		return true;
	case CSR_MIDELEG:
		*val = h->mideleg;
		return true;
	case CSR_MIE:
		*val = h->mie;
		return true;
	case CSR_MTVEC:
		*val = h->mtvec;
		return true;
	case CSR_MCOUNTEREN:
		*val = h->mcounteren;
		return true;
	case CSR_MENVCFG:
		*val = h->menvcfg;
		return true;
	case CSR_MCOUNTINHIBIT:
		*val = h->mcountinhibit;
		return true;
	case CSR_MSCRATCH:
		*val = h->mscratch;
		return true;
	case CSR_MEPC:
		*val = h->mepc;
		return true;
	case CSR_MCAUSE:
		*val = h->mcause;
		return true;
	case CSR_MTVAL:
		*val = h->mtval;
		return true;
	case CSR_MIP:
		*val = atomic_load(&h->mip);
		return true;
	case CSR_MCYCLE:
		*val = h->cycle;
		return true;
	case CSR_MINSTRET:
		*val = h->instret;
		return true;
	case CSR_MVENDORID:
	case CSR_MARCHID:
	case CSR_MIMPID:
	case CSR_MCONFIGPTR:
		*val = 0;
		return true;
	case CSR_MHARTID:
		*val = h->id;
		return true;
	default:
		break;
	}
	if (csr >= CSR_CYCLE && csr <= CSR_HPMCOUNTER31) {
		if (!counter_allowed(h, csr))
			return illegal(h);
		if (csr == CSR_CYCLE)
			*val = h->cycle;
		else if (csr == CSR_INSTRET)
			*val = h->instret;
		else if (csr == CSR_TIME)
			*val = h->bus && h->bus->time
				       ? h->bus->time(h->bus->time_opaque)
				       : 0;
		else
			*val = 0;
		return true;
	}
	/* counters and events that count nothing; PMP registers that
	 * protect nothing (RV64 has the even pmpcfg only); no triggers */
	if ((csr >= CSR_TSELECT && csr <= CSR_TDATA3) ||
	    (csr >= CSR_MHPMCOUNTER3 && csr <= CSR_MHPMCOUNTER31) ||
	    (csr >= CSR_MHPMEVENT3 && csr <= CSR_MHPMEVENT31) ||
	    (csr >= CSR_PMPCFG0 && csr <= CSR_PMPCFG15 && !(csr & 1)) ||
	    (csr >= CSR_PMPADDR0 && csr <= CSR_PMPADDR63)) {
		*val = 0;
		return true;
	}
	return illegal(h);
}

/* xtvec: direct or vectored; other modes leave it as it was. */
static void tvec_write(uint64_t *tvec, uint64_t val)
{
	if ((val & 3) < 2)
		*tvec = val;
}

static bool satp_write(struct rv_hart *h, uint64_t val)
{
	uint64_t mode = val >> 60;

	if (mode != 0 && mode != 8 && mode != 9)
		return true; /* unsupported mode: unchanged */
	h->satp = val;
	rv_tlb_flush(h);
	return true;
}

bool rv_csr_write(struct rv_hart *h, unsigned csr, uint64_t val)
{
	if (!accessible(h, csr) || ((csr >> 10) & 3) == 3)
		return illegal(h);
	switch (csr) {
	case CSR_FFLAGS:
	case CSR_FRM:
	case CSR_FCSR:
		if (fs_off(h))
			return illegal(h);
		if (csr == CSR_FFLAGS)
			h->fcsr = (h->fcsr & ~0x1fu) | (val & 0x1f);
		else if (csr == CSR_FRM)
			h->fcsr = (h->fcsr & 0x1f) | (val & 7) << 5;
		else
			h->fcsr = val & 0xff;
		fs_dirty(h);
		return true;
	case CSR_SSTATUS:
		mstatus_write(h, val, SSTATUS_WRITABLE);
		return true;
	case CSR_SIE:
		h->mie = (h->mie & ~(h->mideleg & S_IRQS)) |
			 (val & h->mideleg & S_IRQS);
		return true;
	case CSR_SIP:
		mip_write(h, val, h->mideleg & (1ull << RV_IRQ_SSI));
		return true;
	case CSR_STVEC:
		tvec_write(&h->stvec, val);
		return true;
	case CSR_SCOUNTEREN:
		h->scounteren = val & 0xffffffff;
		return true;
	case CSR_SENVCFG:
		h->senvcfg = val & ENVCFG_FIOM;
		return true;
	case CSR_SSCRATCH:
		h->sscratch = val;
		return true;
	case CSR_SEPC:
		h->sepc = val & ~1ull;
		return true;
	case CSR_SCAUSE:
		h->scause = val;
		return true;
	case CSR_STVAL:
		h->stval = val;
		return true;
	case CSR_SATP:
		return satp_write(h, val);
	case CSR_MSTATUS:
		mstatus_write(h, val, MSTATUS_WRITABLE);
		return true;
	case CSR_MISA:
		return true; /* read-only: writes are ignored */
	case CSR_MEDELEG:
		h->medeleg = val & DELEGABLE_EXC;
		return true;
	case CSR_MIDELEG:
		h->mideleg = val & S_IRQS;
		return true;
	case CSR_MIE:
		h->mie = val & ALL_IRQS;
		return true;
	case CSR_MTVEC:
		tvec_write(&h->mtvec, val);
		return true;
	case CSR_MCOUNTEREN:
		h->mcounteren = val & 0xffffffff;
		return true;
	case CSR_MENVCFG:
		h->menvcfg = val & ENVCFG_FIOM;
		return true;
	case CSR_MCOUNTINHIBIT:
		h->mcountinhibit = val & 5; /* CY and IR */
		return true;
	case CSR_MSCRATCH:
		h->mscratch = val;
		return true;
	case CSR_MEPC:
		h->mepc = val & ~1ull;
		return true;
	case CSR_MCAUSE:
		h->mcause = val;
		return true;
	case CSR_MTVAL:
		h->mtval = val;
		return true;
	case CSR_MIP:
		mip_write(h, val, S_IRQS);
		return true;
	case CSR_MCYCLE:
		/* the hart counts the writing instruction after this: the
		 * value written is what the next instruction reads */
		h->cycle = val - !(h->mcountinhibit & 1);
		return true;
	case CSR_MINSTRET:
		h->instret = val - !(h->mcountinhibit & 4);
		return true;
	default:
		break;
	}
	if ((csr >= CSR_TSELECT && csr <= CSR_TDATA3) ||
	    (csr >= CSR_MHPMCOUNTER3 && csr <= CSR_MHPMCOUNTER31) ||
	    (csr >= CSR_MHPMEVENT3 && csr <= CSR_MHPMEVENT31) ||
	    (csr >= CSR_PMPCFG0 && csr <= CSR_PMPCFG15 && !(csr & 1)) ||
	    (csr >= CSR_PMPADDR0 && csr <= CSR_PMPADDR63))
		return true;
	return illegal(h);
}
