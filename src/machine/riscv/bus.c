/*
 * bus.c - the physical address space's devices: a short list of MMIO
 * ranges searched in order (there are a handful, and RAM is checked by
 * the callers before they come here).
 */
#include <stddef.h>

#include "riscv.h"

const struct rv_mmio *rv_bus_find(const struct rv_bus *bus, uint64_t pa)
{
	unsigned i;

	for (i = 0; i < bus->nmmio; i++) {
		const struct rv_mmio *d = &bus->mmio[i];

		if (pa - d->base < d->size)
			return d;
	}
	return NULL;
}

/* Two ranges [a, a + as) and [b, b + bs) share a byte. */
static bool overlaps(uint64_t a, uint64_t as, uint64_t b, uint64_t bs)
{
	return a < b + bs && b < a + as;
}

bool rv_bus_add(struct rv_bus *bus, const struct rv_mmio *dev)
{
	unsigned i;

	if (bus->nmmio >= RV_MAX_MMIO || !dev->size || !dev->read ||
	    !dev->write || dev->base + dev->size < dev->base)
		return false;
	if (bus->ram_size &&
	    overlaps(dev->base, dev->size, bus->ram_base, bus->ram_size))
		return false;
	for (i = 0; i < bus->nmmio; i++)
		if (overlaps(dev->base, dev->size, bus->mmio[i].base,
			     bus->mmio[i].size))
			return false;
	bus->mmio[bus->nmmio++] = *dev;
	return true;
}
