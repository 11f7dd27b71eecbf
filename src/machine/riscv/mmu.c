/*
 * mmu.c - virtual memory: Sv39 and Sv48 page-table walks, the TLB, and
 * the loads and stores every instruction (and fpu.c) goes through.
 *
 * The TLB caches translations only: each hit checks the access against
 * the leaf PTE's flags at the current privilege and mstatus (SUM, MXR),
 * and a store to an entry whose D bit is clear walks again, so the walk
 * sets D.  A and D are set in hardware, as QEMU does, with a
 * compare-and-swap on the PTE in RAM (another hart may be changing it).
 * Superpages are cached as the 4 KiB page the access fell in.
 */
#include <string.h>

#include "riscv.h"

#define PTE_V	       (1u << 0)
#define PTE_R	       (1u << 1)
#define PTE_W	       (1u << 2)
#define PTE_X	       (1u << 3)
#define PTE_U	       (1u << 4)
#define PTE_A	       (1u << 6)
#define PTE_D	       (1u << 7)
#define PTE_PPN_MASK   ((1ull << 44) - 1)
#define SATP_MODE_SV39 8ull
#define SATP_MODE_SV48 9ull
#define PAGE_OFF       (RV_PAGE_SIZE - 1)

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static inline bool in_ram(const struct rv_bus *b, uint64_t pa, unsigned size)
{
	uint64_t off = pa - b->ram_base;

	return off < b->ram_size && b->ram_size - off >= size;
}

void rv_tlb_flush(struct rv_hart *h)
{
	unsigned i;

	for (i = 0; i < RV_TLB_SIZE; i++)
		h->tlb[i].vpn = UINT64_MAX;
}

/* The privilege loads and stores are checked at: MPRV makes M-mode
 * loads and stores act as MPP's; fetches always use the current one. */
static inline unsigned data_priv(const struct rv_hart *h, enum rv_access acc)
{
	if (acc != RV_ACC_FETCH && h->priv == RV_PRIV_M &&
	    (h->mstatus & RV_MSTATUS_MPRV))
		return (h->mstatus >> RV_MSTATUS_MPP_SHIFT) & 3;
	return h->priv;
}

static inline bool allowed(const struct rv_hart *h, unsigned pte,
			   enum rv_access acc, unsigned priv)
{
	switch (acc) {
	case RV_ACC_FETCH:
		if (!(pte & PTE_X))
			return false;
		break;
	case RV_ACC_LOAD:
		if (!(pte & PTE_R) &&
		    !((h->mstatus & RV_MSTATUS_MXR) && (pte & PTE_X)))
			return false;
		break;
	default:
		if (!(pte & PTE_W))
			return false;
		break;
	}
	if (pte & PTE_U)
		return priv == RV_PRIV_U ||
		       (acc != RV_ACC_FETCH && (h->mstatus & RV_MSTATUS_SUM));
	return priv != RV_PRIV_U;
}

static bool page_fault(struct rv_hart *h, uint64_t va, enum rv_access acc)
{
	static const uint64_t cause[] = { RV_EXC_INSN_PAGE, RV_EXC_LOAD_PAGE,
					  RV_EXC_STORE_PAGE };

	return rv_raise(h, cause[acc], va);
}

static bool access_fault(struct rv_hart *h, uint64_t va, enum rv_access acc)
{
	static const uint64_t cause[] = { RV_EXC_INSN_FAULT, RV_EXC_LOAD_FAULT,
					  RV_EXC_STORE_FAULT };

	return rv_raise(h, cause[acc], va);
}

/*
 * Walk the tables for va (satp's mode is Sv39 or Sv48), check the leaf
 * and set its A (and D for a store), then fill the TLB entry.
 */
static bool walk(struct rv_hart *h, uint64_t va, enum rv_access acc,
		 unsigned priv, uint64_t *pa)
{
	const struct rv_bus *bus = h->bus;
	unsigned levels = (h->satp >> 60) == SATP_MODE_SV39 ? 3 : 4;
	unsigned vabits = RV_PAGE_SHIFT + 9 * levels;
	uint64_t base = (h->satp & PTE_PPN_MASK) << RV_PAGE_SHIFT;
	uint64_t pte, ppn, want, mask;
	struct rv_tlb_entry *e;
	uint64_t *p;
	int i;

	/* the bits above the top level copy its top bit */
	if ((uint64_t)((int64_t)(va << (64 - vabits)) >> (64 - vabits)) != va)
		return page_fault(h, va, acc);
	for (i = levels - 1;; i--) {
		uint64_t idx = (va >> (RV_PAGE_SHIFT + 9 * i)) & 511;
		uint64_t pte_pa = base + idx * 8;

		if (!in_ram(bus, pte_pa, 8))
			return access_fault(h, va, acc);
		p = (uint64_t *)(bus->ram + (pte_pa - bus->ram_base));
	again:
		pte = __atomic_load_n(p, __ATOMIC_ACQUIRE);
		/* N, PBMT and the reserved bits: no Svnapot, no Svpbmt */
		if (!(pte & PTE_V) || (!(pte & PTE_R) && (pte & PTE_W)) ||
		    (pte >> 54))
			return page_fault(h, va, acc);
		ppn = (pte >> 10) & PTE_PPN_MASK;
		if (pte & (PTE_R | PTE_X))
			break;
		if (i == 0)
			return page_fault(h, va, acc);
		base = ppn << RV_PAGE_SHIFT;
	}
	if (!allowed(h, pte, acc, priv))
		return page_fault(h, va, acc);
	mask = (1ull << (9 * i)) - 1;
	if (ppn & mask) /* a misaligned superpage */
		return page_fault(h, va, acc);
	want = PTE_A | (acc == RV_ACC_STORE ? PTE_D : 0);
	if ((pte & want) != want) {
		uint64_t npte = pte | want;

		/* lost a race with another writer of the PTE: look again */
		if (!__atomic_compare_exchange_n(p, &pte, npte, false,
						 __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			goto again;
		pte = npte;
	}
	ppn |= (va >> RV_PAGE_SHIFT) & mask;
	e = &h->tlb[(va >> RV_PAGE_SHIFT) & (RV_TLB_SIZE - 1)];
	e->vpn = va >> RV_PAGE_SHIFT;
	e->ppn = ppn;
	e->pte = pte & 0xff;
	e->asid = (h->satp >> 44) & 0xffff;
	*pa = ppn << RV_PAGE_SHIFT | (va & PAGE_OFF);
	return true;
}

static inline bool translate(struct rv_hart *h, uint64_t va, enum rv_access acc,
			     uint64_t *pa)
{
	unsigned priv = data_priv(h, acc);
	uint64_t vpn = va >> RV_PAGE_SHIFT;
	const struct rv_tlb_entry *e;

	if (priv == RV_PRIV_M || !(h->satp >> 60)) {
		*pa = va;
		return true;
	}
	e = &h->tlb[vpn & (RV_TLB_SIZE - 1)];
	if (likely(e->vpn == vpn && allowed(h, e->pte, acc, priv) &&
		   (acc != RV_ACC_STORE || (e->pte & PTE_D)))) {
		*pa = e->ppn << RV_PAGE_SHIFT | (va & PAGE_OFF);
		return true;
	}
	return walk(h, va, acc, priv, pa);
}

bool rv_translate(struct rv_hart *h, uint64_t va, enum rv_access acc,
		  uint64_t *pa)
{
	return translate(h, va, acc, pa);
}

/* A device access: whole, aligned, and inside the device. */
static const struct rv_mmio *mmio_at(const struct rv_hart *h, uint64_t pa,
				     unsigned size)
{
	const struct rv_mmio *d = rv_bus_find(h->bus, pa);

	if (!d || (pa & (size - 1)) || d->size - (pa - d->base) < size)
		return NULL;
	return d;
}

static inline uint64_t ram_read(const uint8_t *p, unsigned size)
{
	uint8_t b;
	uint16_t s;
	uint32_t w;
	uint64_t d;

	switch (size) {
	case 1:
		memcpy(&b, p, 1);
		return b;
	case 2:
		memcpy(&s, p, 2);
		return s;
	case 4:
		memcpy(&w, p, 4);
		return w;
	default:
		memcpy(&d, p, 8);
		return d;
	}
}

static inline void ram_write(uint8_t *p, unsigned size, uint64_t v)
{
	uint8_t b = v;
	uint16_t s = v;
	uint32_t w = v;

	switch (size) {
	case 1:
		memcpy(p, &b, 1);
		break;
	case 2:
		memcpy(p, &s, 2);
		break;
	case 4:
		memcpy(p, &w, 4);
		break;
	default:
		memcpy(p, &v, 8);
		break;
	}
}

/* A load or store that crosses into the next page: both halves are
 * translated before anything is written, and both must be RAM. */
static bool split(struct rv_hart *h, uint64_t va, unsigned size,
		  enum rv_access acc, uint64_t *val)
{
	const struct rv_bus *bus = h->bus;
	unsigned n1 = RV_PAGE_SIZE - (va & PAGE_OFF);
	uint64_t pa1, pa2;
	uint8_t buf[8];

	if (!translate(h, va, acc, &pa1))
		return false;
	if (!in_ram(bus, pa1, n1))
		return access_fault(h, va, acc);
	if (!translate(h, va + n1, acc, &pa2))
		return false;
	if (!in_ram(bus, pa2, size - n1))
		return access_fault(h, va + n1, acc);
	if (acc == RV_ACC_LOAD) {
		memcpy(buf, bus->ram + (pa1 - bus->ram_base), n1);
		memcpy(buf + n1, bus->ram + (pa2 - bus->ram_base), size - n1);
		*val = 0;
		memcpy(val, buf, size);
	} else {
		memcpy(buf, val, 8);
		memcpy(bus->ram + (pa1 - bus->ram_base), buf, n1);
		memcpy(bus->ram + (pa2 - bus->ram_base), buf + n1, size - n1);
	}
	return true;
}

bool rv_load(struct rv_hart *h, uint64_t va, unsigned size, uint64_t *val)
{
	const struct rv_bus *bus = h->bus;
	const struct rv_mmio *d;
	uint64_t pa;

	if (unlikely((va & PAGE_OFF) + size > RV_PAGE_SIZE))
		return split(h, va, size, RV_ACC_LOAD, val);
	if (!translate(h, va, RV_ACC_LOAD, &pa))
		return false;
	if (likely(in_ram(bus, pa, size))) {
		*val = ram_read(bus->ram + (pa - bus->ram_base), size);
		return true;
	}
	d = mmio_at(h, pa, size);
	if (!d)
		return access_fault(h, va, RV_ACC_LOAD);
	*val = d->read(d->opaque, pa - d->base, size);
	return true;
}

bool rv_store(struct rv_hart *h, uint64_t va, unsigned size, uint64_t val)
{
	const struct rv_bus *bus = h->bus;
	const struct rv_mmio *d;
	uint64_t pa;

	if (unlikely((va & PAGE_OFF) + size > RV_PAGE_SIZE))
		return split(h, va, size, RV_ACC_STORE, &val);
	if (!translate(h, va, RV_ACC_STORE, &pa))
		return false;
	if (likely(in_ram(bus, pa, size))) {
		ram_write(bus->ram + (pa - bus->ram_base), size, val);
		return true;
	}
	d = mmio_at(h, pa, size);
	if (!d)
		return access_fault(h, va, RV_ACC_STORE);
	d->write(d->opaque, pa - d->base, val, size);
	return true;
}
