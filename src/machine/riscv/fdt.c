/*
 * fdt.c - the device tree the kernel boots with, written with libfdt's
 * sequential-write API and modelled on what QEMU 7.2 generates for its
 * virt machine (hw/riscv/virt.c): the harts under /cpus, each with its
 * local interrupt controller; RAM; the CLINT, PLIC and UART under /soc;
 * and /chosen with the command line, the console and the initramfs.
 *
 * There is no firmware in RAM to reserve: the machine answers the SBI
 * itself, so the kernel may use RAM from its base.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <libfdt.h>

#include "devices.h"

#define PH_CPU(i)  (1 + (i))
#define PH_INTC(i) (0x10 + (i))
#define PH_PLIC	   0x40

static const char isa_exts[] = "i\0m\0a\0f\0d\0c\0zicntr\0zicsr\0zifencei";

static int reg(void *fdt, uint64_t base, uint64_t size)
{
	fdt64_t r[2] = { cpu_to_fdt64(base), cpu_to_fdt64(size) };

	return fdt_property(fdt, "reg", r, sizeof(r));
}

/* interrupts-extended: each hart's controller with two causes */
static int irqs_ext(void *fdt, unsigned nharts, uint32_t a, uint32_t b)
{
	fdt32_t cells[4 * RV_MAX_HARTS];
	unsigned i;

	for (i = 0; i < nharts; i++) {
		cells[4 * i] = cpu_to_fdt32(PH_INTC(i));
		cells[4 * i + 1] = cpu_to_fdt32(a);
		cells[4 * i + 2] = cpu_to_fdt32(PH_INTC(i));
		cells[4 * i + 3] = cpu_to_fdt32(b);
	}
	return fdt_property(fdt, "interrupts-extended", cells, 16 * nharts);
}

#define TRY(x)                      \
	do {                        \
		if ((rc = (x)) < 0) \
			return rc;  \
	} while (0)

static int cpus(void *fdt, unsigned nharts)
{
	char name[32];
	unsigned i;
	int rc;

	TRY(fdt_begin_node(fdt, "cpus"));
	TRY(fdt_property_cell(fdt, "#address-cells", 1));
	TRY(fdt_property_cell(fdt, "#size-cells", 0));
	TRY(fdt_property_cell(fdt, "timebase-frequency", RV_TIMEBASE_HZ));
	for (i = 0; i < nharts; i++) {
		snprintf(name, sizeof(name), "cpu@%u", i);
		TRY(fdt_begin_node(fdt, name));
		TRY(fdt_property_cell(fdt, "phandle", PH_CPU(i)));
		TRY(fdt_property_string(fdt, "device_type", "cpu"));
		TRY(fdt_property_cell(fdt, "reg", i));
		TRY(fdt_property_string(fdt, "status", "okay"));
		TRY(fdt_property_string(fdt, "compatible", "riscv"));
		TRY(fdt_property_string(fdt, "riscv,isa",
					"rv64imafdc_zicsr_zifencei"));
		TRY(fdt_property_string(fdt, "riscv,isa-base", "rv64i"));
		TRY(fdt_property(fdt, "riscv,isa-extensions", isa_exts,
				 sizeof(isa_exts)));
		TRY(fdt_property_string(fdt, "mmu-type", "riscv,sv48"));
		TRY(fdt_begin_node(fdt, "interrupt-controller"));
		TRY(fdt_property_cell(fdt, "#interrupt-cells", 1));
		TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
		TRY(fdt_property_string(fdt, "compatible", "riscv,cpu-intc"));
		TRY(fdt_property_cell(fdt, "phandle", PH_INTC(i)));
		TRY(fdt_end_node(fdt));
		TRY(fdt_end_node(fdt));
	}
	TRY(fdt_begin_node(fdt, "cpu-map"));
	TRY(fdt_begin_node(fdt, "cluster0"));
	for (i = 0; i < nharts; i++) {
		snprintf(name, sizeof(name), "core%u", i);
		TRY(fdt_begin_node(fdt, name));
		TRY(fdt_property_cell(fdt, "cpu", PH_CPU(i)));
		TRY(fdt_end_node(fdt));
	}
	TRY(fdt_end_node(fdt));
	TRY(fdt_end_node(fdt));
	return fdt_end_node(fdt);
}

static int soc(void *fdt, unsigned nharts)
{
	static const char clint_compat[] = "sifive,clint0\0riscv,clint0";
	static const char plic_compat[] = "sifive,plic-1.0.0\0riscv,plic0";
	char name[48];
	int rc;

	TRY(fdt_begin_node(fdt, "soc"));
	TRY(fdt_property_cell(fdt, "#address-cells", 2));
	TRY(fdt_property_cell(fdt, "#size-cells", 2));
	TRY(fdt_property_string(fdt, "compatible", "simple-bus"));
	TRY(fdt_property(fdt, "ranges", NULL, 0));

	snprintf(name, sizeof(name), "clint@%llx", RV_CLINT_BASE);
	TRY(fdt_begin_node(fdt, name));
	TRY(irqs_ext(fdt, nharts, RV_IRQ_MSI, RV_IRQ_MTI));
	TRY(reg(fdt, RV_CLINT_BASE, RV_CLINT_SIZE));
	TRY(fdt_property(fdt, "compatible", clint_compat,
			 sizeof(clint_compat)));
	TRY(fdt_end_node(fdt));

	snprintf(name, sizeof(name), "plic@%llx", RV_PLIC_BASE);
	TRY(fdt_begin_node(fdt, name));
	TRY(fdt_property_cell(fdt, "phandle", PH_PLIC));
	TRY(fdt_property_cell(fdt, "riscv,ndev", RV_PLIC_NDEV));
	TRY(reg(fdt, RV_PLIC_BASE, RV_PLIC_SIZE));
	TRY(irqs_ext(fdt, nharts, RV_IRQ_MEI, RV_IRQ_SEI));
	TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
	TRY(fdt_property(fdt, "compatible", plic_compat, sizeof(plic_compat)));
	TRY(fdt_property_cell(fdt, "#address-cells", 0));
	TRY(fdt_property_cell(fdt, "#interrupt-cells", 1));
	TRY(fdt_end_node(fdt));

	snprintf(name, sizeof(name), "serial@%llx", RV_UART_BASE);
	TRY(fdt_begin_node(fdt, name));
	TRY(fdt_property_cell(fdt, "interrupts", RV_UART_IRQ));
	TRY(fdt_property_cell(fdt, "interrupt-parent", PH_PLIC));
	TRY(fdt_property_cell(fdt, "clock-frequency", 3686400));
	TRY(reg(fdt, RV_UART_BASE, RV_UART_SIZE));
	TRY(fdt_property_string(fdt, "compatible", "ns16550a"));
	TRY(fdt_end_node(fdt));
	return fdt_end_node(fdt);
}

static int build(const struct rv_fdt_params *p, void *fdt, int size)
{
	uint8_t seed[32];
	char name[48];
	int rc;

	TRY(fdt_create(fdt, size));
	TRY(fdt_finish_reservemap(fdt));
	TRY(fdt_begin_node(fdt, ""));
	TRY(fdt_property_cell(fdt, "#address-cells", 2));
	TRY(fdt_property_cell(fdt, "#size-cells", 2));
	TRY(fdt_property_string(fdt, "compatible", "riscv-virtio"));
	TRY(fdt_property_string(fdt, "model", "riscv-virtio,ferry"));

	TRY(fdt_begin_node(fdt, "chosen"));
	if (p->cmdline)
		TRY(fdt_property_string(fdt, "bootargs", p->cmdline));
	snprintf(name, sizeof(name), "/soc/serial@%llx", RV_UART_BASE);
	TRY(fdt_property_string(fdt, "stdout-path", name));
	if (p->initrd_end > p->initrd_start) {
		TRY(fdt_property_u64(fdt, "linux,initrd-start",
				     p->initrd_start));
		TRY(fdt_property_u64(fdt, "linux,initrd-end", p->initrd_end));
	}
	/* the kernel's random pool gets going at once, as on QEMU */
	if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) == sizeof(seed))
		TRY(fdt_property(fdt, "rng-seed", seed, sizeof(seed)));
	TRY(fdt_end_node(fdt));

	snprintf(name, sizeof(name), "memory@%llx",
		 (unsigned long long)p->ram_base);
	TRY(fdt_begin_node(fdt, name));
	TRY(fdt_property_string(fdt, "device_type", "memory"));
	TRY(reg(fdt, p->ram_base, p->ram_size));
	TRY(fdt_end_node(fdt));

	TRY(cpus(fdt, p->nharts));
	TRY(soc(fdt, p->nharts));
	TRY(fdt_end_node(fdt));
	return fdt_finish(fdt);
}

int rv_fdt_build(const struct rv_fdt_params *p, void **blob, size_t *len,
		 struct ferry_error *err)
{
	int size = 16384, rc;
	void *fdt = NULL, *n;

	if (!p->nharts || p->nharts > RV_MAX_HARTS)
		return ferry_error_set(err, -EINVAL,
				       "fdt: %u harts, 1 to %d are supported",
				       p->nharts, RV_MAX_HARTS);
	for (;;) {
		n = realloc(fdt, size);
		if (!n) {
			free(fdt);
			return ferry_error_set(err, -ENOMEM,
					       "fdt: no memory for %d bytes",
					       size);
		}
		fdt = n;
		rc = build(p, fdt, size);
		if (rc != -FDT_ERR_NOSPACE || size >= (1 << 24))
			break;
		size *= 2;
	}
	if (rc < 0) {
		free(fdt);
		return ferry_error_set(err, -EINVAL, "fdt: %s",
				       fdt_strerror(rc));
	}
	fdt_pack(fdt);
	*blob = fdt;
	*len = fdt_totalsize(fdt);
	return 0;
}
