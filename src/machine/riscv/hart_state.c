/*
 * hart_state.c - a hart's architectural state as the "riscv-hart"
 * section (hart_state.h).  The layout, all little-endian:
 *
 *	le32 hart id, le32 privilege, le32 fcsr, le32 flags (bit 0: in WFI)
 *	le64 pc, x1..x31, f0..f31, then the CSRs of csr_fields[] in order
 *
 * Nothing else of the hart travels: the TLB is emptied on load, and a
 * reservation is dropped (any SC may fail; the first one after the move
 * does).
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "hart_state.h"
#include "le.h"

#define HEAD_LEN 16
#define FLAG_WFI 1u

/* the CSRs that travel, in the section's order */
static const size_t csr_fields[] = {
	offsetof(struct rv_hart, mstatus),
	offsetof(struct rv_hart, misa),
	offsetof(struct rv_hart, medeleg),
	offsetof(struct rv_hart, mideleg),
	offsetof(struct rv_hart, mie),
	offsetof(struct rv_hart, mip),
	offsetof(struct rv_hart, mtvec),
	offsetof(struct rv_hart, mscratch),
	offsetof(struct rv_hart, mepc),
	offsetof(struct rv_hart, mcause),
	offsetof(struct rv_hart, mtval),
	offsetof(struct rv_hart, mcounteren),
	offsetof(struct rv_hart, menvcfg),
	offsetof(struct rv_hart, mcountinhibit),
	offsetof(struct rv_hart, stvec),
	offsetof(struct rv_hart, sscratch),
	offsetof(struct rv_hart, sepc),
	offsetof(struct rv_hart, scause),
	offsetof(struct rv_hart, stval),
	offsetof(struct rv_hart, satp),
	offsetof(struct rv_hart, scounteren),
	offsetof(struct rv_hart, senvcfg),
	offsetof(struct rv_hart, cycle),
	offsetof(struct rv_hart, instret),
};

#define NCSR	    (sizeof(csr_fields) / sizeof(csr_fields[0]))
#define SECTION_LEN (HEAD_LEN + 8 * (1 + 31 + 32 + NCSR))

static uint64_t *csr_at(struct rv_hart *h, size_t i)
{
	return (uint64_t *)((char *)h + csr_fields[i]);
}

int rv_hart_save(const struct rv_hart *h, struct ferry_buf *out)
{
	struct rv_hart *w = (struct rv_hart *)h; /* csr_at reads only */
	int rc = 0;
	size_t i;

	rc |= ferry_buf_put_le32(out, h->id);
	rc |= ferry_buf_put_le32(out, h->priv);
	rc |= ferry_buf_put_le32(out, h->fcsr);
	rc |= ferry_buf_put_le32(out, h->wfi ? FLAG_WFI : 0);
	rc |= ferry_buf_put_le64(out, h->pc);
	for (i = 1; i < 32; i++)
		rc |= ferry_buf_put_le64(out, h->x[i]);
	for (i = 0; i < 32; i++)
		rc |= ferry_buf_put_le64(out, h->f[i]);
	for (i = 0; i < NCSR; i++) {
		if (csr_fields[i] == offsetof(struct rv_hart, mip))
			rc |= ferry_buf_put_le64(out, atomic_load(&w->mip));
		else
			rc |= ferry_buf_put_le64(out, *csr_at(w, i));
	}
	return rc ? -ENOMEM : 0;
}

/* The fields a hart cannot hold, whatever the source was: a stream that
 * carries one is corrupt or from a different machine. */
static int check(const struct rv_hart *h, uint32_t priv, uint32_t fcsr,
		 uint32_t flags, uint64_t pc, const uint64_t *csr,
		 struct ferry_error *err)
{
	uint64_t mstatus = 0, misa = 0, satp = 0, mode;
	size_t i;

	for (i = 0; i < NCSR; i++) {
		if (csr_fields[i] == offsetof(struct rv_hart, mstatus))
			mstatus = csr[i];
		else if (csr_fields[i] == offsetof(struct rv_hart, misa))
			misa = csr[i];
		else if (csr_fields[i] == offsetof(struct rv_hart, satp))
			satp = csr[i];
	}
	if (priv != RV_PRIV_U && priv != RV_PRIV_S && priv != RV_PRIV_M)
		return ferry_error_set(err, -EINVAL,
				       "hart %u: privilege level %u (0, 1 or 3 "
				       "expected)",
				       h->id, priv);
	if (fcsr > 0xff || (fcsr >> 5) > 4)
		return ferry_error_set(err, -EINVAL,
				       "hart %u: fcsr 0x%x (flags in bits 0-4, "
				       "a rounding mode 0-4 in bits 5-7)",
				       h->id, fcsr);
	if (flags & ~FLAG_WFI)
		return ferry_error_set(err, -EINVAL,
				       "hart %u: unknown flags 0x%x", h->id,
				       flags);
	if (pc & 1)
		return ferry_error_set(err, -EINVAL,
				       "hart %u: pc 0x%llx is not 2-byte "
				       "aligned",
				       h->id, (unsigned long long)pc);
	if (misa != h->misa)
		return ferry_error_set(err, -EINVAL,
				       "hart %u: misa 0x%llx on the source, "
				       "0x%llx on this hart: not the same ISA",
				       h->id, (unsigned long long)misa,
				       (unsigned long long)h->misa);
	if (((mstatus >> RV_MSTATUS_MPP_SHIFT) & 3) == 2)
		return ferry_error_set(err, -EINVAL,
				       "hart %u: mstatus 0x%llx has MPP 2, a "
				       "privilege level this hart lacks",
				       h->id, (unsigned long long)mstatus);
	mode = satp >> 60;
	if (mode != 0 && mode != 8 && mode != 9)
		return ferry_error_set(err, -EINVAL,
				       "hart %u: satp mode %llu (bare, Sv39 "
				       "or Sv48 expected)",
				       h->id, (unsigned long long)mode);
	return 0;
}

int rv_hart_load(struct rv_hart *h, uint32_t version, const uint8_t *data,
		 size_t len, struct ferry_error *err)
{
	uint64_t csr[NCSR];
	uint32_t id, priv, fcsr, flags;
	const uint8_t *p;
	uint64_t pc;
	size_t i;
	int rc;

	if (version != RV_HART_SECTION_VERSION)
		return ferry_error_set(err, -EPROTONOSUPPORT,
				       "hart %u: section version %u (this "
				       "machine loads version %u)",
				       h->id, version, RV_HART_SECTION_VERSION);
	if (len != SECTION_LEN)
		return ferry_error_set(err, -EBADMSG,
				       "hart %u: section of %zu bytes, "
				       "expected %zu",
				       h->id, len, (size_t)SECTION_LEN);
	id = le32_load(data);
	priv = le32_load(data + 4);
	fcsr = le32_load(data + 8);
	flags = le32_load(data + 12);
	if (id != h->id)
		return ferry_error_set(err, -EINVAL,
				       "hart %u: the section is hart %u's",
				       h->id, id);
	p = data + HEAD_LEN;
	pc = le64_load(p);
	p += 8 * (1 + 31 + 32);
	for (i = 0; i < NCSR; i++, p += 8)
		csr[i] = le64_load(p);
	rc = check(h, priv, fcsr, flags, pc, csr, err);
	if (rc)
		return rc;

	/* all checked: nothing is written before this point */
	h->priv = priv;
	h->fcsr = fcsr;
	h->wfi = flags & FLAG_WFI;
	h->pc = pc;
	p = data + HEAD_LEN + 8;
	h->x[0] = 0;
	for (i = 1; i < 32; i++, p += 8)
		h->x[i] = le64_load(p);
	for (i = 0; i < 32; i++, p += 8)
		h->f[i] = le64_load(p);
	for (i = 0; i < NCSR; i++) {
		if (csr_fields[i] == offsetof(struct rv_hart, mip))
			atomic_store(&h->mip, csr[i]);
		else
			*csr_at(h, i) = csr[i];
	}
	h->lr_valid = false;
	h->exc_pending = false;
	for (i = 0; i < RV_TLB_SIZE; i++)
		h->tlb[i].vpn = UINT64_MAX;
	return 0;
}
