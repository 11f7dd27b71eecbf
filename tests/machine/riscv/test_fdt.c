/*
 * test_fdt.c - the generated device tree read back with libfdt: a valid
 * blob; each hart's node with its ISA, MMU, and interrupt controller;
 * RAM; the CLINT, PLIC and UART at QEMU virt's addresses, wired to each
 * hart's contexts through phandles that resolve; /chosen with the
 * command line, the console and the initramfs, and what is left out
 * when there is none; no firmware reservation; hart counts refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libfdt.h>

#include "devices.h"

static void *build(unsigned nharts, const char *cmdline, uint64_t is,
		   uint64_t ie)
{
	struct rv_fdt_params p = {
		.nharts = nharts,
		.ram_base = RV_RAM_BASE,
		.ram_size = 256ull << 20,
		.cmdline = cmdline,
		.initrd_start = is,
		.initrd_end = ie,
	};
	struct ferry_error err = { 0 };
	void *blob = NULL;
	size_t len = 0;

	assert_int_equal(rv_fdt_build(&p, &blob, &len, &err), 0);
	assert_int_equal(fdt_check_header(blob), 0);
	assert_int_equal(len, fdt_totalsize(blob));
	return blob;
}

static uint32_t cell(const void *fdt, int node, const char *name)
{
	int len;
	const fdt32_t *p = fdt_getprop(fdt, node, name, &len);

	assert_non_null(p);
	assert_int_equal(len, 4);
	return fdt32_to_cpu(*p);
}

static uint64_t u64prop(const void *fdt, int node, const char *name)
{
	int len;
	const fdt64_t *p = fdt_getprop(fdt, node, name, &len);

	assert_non_null(p);
	assert_int_equal(len, 8);
	return fdt64_ld(p);
}

static void check_reg(const void *fdt, int node, uint64_t base, uint64_t size)
{
	int len;
	const fdt64_t *p = fdt_getprop(fdt, node, "reg", &len);

	assert_non_null(p);
	assert_int_equal(len, 16);
	assert_int_equal(fdt64_ld(&p[0]), base);
	assert_int_equal(fdt64_ld(&p[1]), size);
}

static void test_root_and_memory(void **state)
{
	void *fdt = build(1, "console=ttyS0", 0, 0);
	int node;

	(void)state;
	assert_string_equal(fdt_getprop(fdt, 0, "compatible", NULL),
			    "riscv-virtio");
	assert_int_equal(cell(fdt, 0, "#address-cells"), 2);
	assert_int_equal(cell(fdt, 0, "#size-cells"), 2);
	node = fdt_path_offset(fdt, "/memory@80000000");
	assert_true(node >= 0);
	assert_string_equal(fdt_getprop(fdt, node, "device_type", NULL),
			    "memory");
	check_reg(fdt, node, RV_RAM_BASE, 256ull << 20);
	/* the machine is the firmware: nothing of RAM is held back */
	assert_true(fdt_path_offset(fdt, "/reserved-memory") < 0);
	assert_int_equal(fdt_num_mem_rsv(fdt), 0);
	free(fdt);
}

static void test_cpus(void **state)
{
	void *fdt = build(4, NULL, 0, 0);
	char path[64];
	unsigned i;
	int cpus, node, intc;

	(void)state;
	cpus = fdt_path_offset(fdt, "/cpus");
	assert_true(cpus >= 0);
	assert_int_equal(cell(fdt, cpus, "timebase-frequency"), 10000000);
	for (i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "/cpus/cpu@%u", i);
		node = fdt_path_offset(fdt, path);
		assert_true(node >= 0);
		assert_int_equal(cell(fdt, node, "reg"), i);
		assert_string_equal(fdt_getprop(fdt, node, "device_type", NULL),
				    "cpu");
		assert_string_equal(fdt_getprop(fdt, node, "riscv,isa", NULL),
				    "rv64imafdc_zicsr_zifencei");
		assert_string_equal(fdt_getprop(fdt, node, "mmu-type", NULL),
				    "riscv,sv48");
		assert_int_equal(fdt_stringlist_search(fdt, node,
						       "riscv,isa-extensions",
						       "zifencei") >= 0,
				 1);
		assert_string_equal(fdt_getprop(fdt, node, "status", NULL),
				    "okay");
		intc = fdt_subnode_offset(fdt, node, "interrupt-controller");
		assert_true(intc >= 0);
		assert_int_equal(fdt_node_check_compatible(fdt, intc,
							   "riscv,cpu-intc"),
				 0);
		assert_int_equal(cell(fdt, intc, "#interrupt-cells"), 1);
		assert_non_null(
			fdt_getprop(fdt, intc, "interrupt-controller", NULL));
		/* cpu-map names this cpu */
		snprintf(path, sizeof(path), "/cpus/cpu-map/cluster0/core%u",
			 i);
		assert_int_equal(
			fdt_node_offset_by_phandle(
				fdt,
				cell(fdt, fdt_path_offset(fdt, path), "cpu")),
			node);
	}
	assert_true(fdt_path_offset(fdt, "/cpus/cpu@4") < 0);
	free(fdt);
}

/* interrupts-extended of node: per hart, its controller and 2 causes */
static void check_irqs_ext(const void *fdt, int node, unsigned nharts,
			   uint32_t a, uint32_t b)
{
	const fdt32_t *p;
	char path[64];
	unsigned i;
	int len, intc;

	p = fdt_getprop(fdt, node, "interrupts-extended", &len);
	assert_non_null(p);
	assert_int_equal(len, 16 * nharts);
	for (i = 0; i < nharts; i++) {
		snprintf(path, sizeof(path),
			 "/cpus/cpu@%u/interrupt-controller", i);
		intc = fdt_path_offset(fdt, path);
		assert_int_equal(
			fdt_node_offset_by_phandle(fdt, fdt32_to_cpu(p[4 * i])),
			intc);
		assert_int_equal(fdt32_to_cpu(p[4 * i + 1]), a);
		assert_int_equal(fdt32_to_cpu(p[4 * i + 2]),
				 fdt32_to_cpu(p[4 * i]));
		assert_int_equal(fdt32_to_cpu(p[4 * i + 3]), b);
	}
}

static void test_soc_devices(void **state)
{
	void *fdt = build(2, NULL, 0, 0);
	int clint, plic, uart;

	(void)state;
	assert_int_equal(fdt_node_check_compatible(fdt,
						   fdt_path_offset(fdt, "/soc"),
						   "simple-bus"),
			 0);
	clint = fdt_path_offset(fdt, "/soc/clint@2000000");
	assert_true(clint >= 0);
	assert_int_equal(fdt_node_check_compatible(fdt, clint, "sifive,clint0"),
			 0);
	assert_int_equal(fdt_node_check_compatible(fdt, clint, "riscv,clint0"),
			 0);
	check_reg(fdt, clint, RV_CLINT_BASE, RV_CLINT_SIZE);
	check_irqs_ext(fdt, clint, 2, 3, 7); /* MSI, MTI */

	plic = fdt_path_offset(fdt, "/soc/plic@c000000");
	assert_true(plic >= 0);
	assert_int_equal(
		fdt_node_check_compatible(fdt, plic, "sifive,plic-1.0.0"), 0);
	assert_int_equal(fdt_node_check_compatible(fdt, plic, "riscv,plic0"),
			 0);
	check_reg(fdt, plic, RV_PLIC_BASE, RV_PLIC_SIZE);
	/* context 2N is M mode (MEI 11), 2N + 1 S mode (SEI 9) */
	check_irqs_ext(fdt, plic, 2, 11, 9);
	assert_int_equal(cell(fdt, plic, "riscv,ndev"), RV_PLIC_NDEV);
	assert_int_equal(cell(fdt, plic, "#interrupt-cells"), 1);

	uart = fdt_path_offset(fdt, "/soc/serial@10000000");
	assert_true(uart >= 0);
	assert_int_equal(fdt_node_check_compatible(fdt, uart, "ns16550a"), 0);
	check_reg(fdt, uart, RV_UART_BASE, RV_UART_SIZE);
	assert_int_equal(cell(fdt, uart, "clock-frequency"), 3686400);
	assert_int_equal(cell(fdt, uart, "interrupts"), RV_UART_IRQ);
	assert_int_equal(fdt_node_offset_by_phandle(
				 fdt, cell(fdt, uart, "interrupt-parent")),
			 plic);
	free(fdt);
}

static void test_chosen(void **state)
{
	void *fdt = build(1, "console=ttyS0 quiet", 0x8f000000, 0x8f123456);
	const char *out;
	int chosen;

	(void)state;
	chosen = fdt_path_offset(fdt, "/chosen");
	assert_true(chosen >= 0);
	assert_string_equal(fdt_getprop(fdt, chosen, "bootargs", NULL),
			    "console=ttyS0 quiet");
	out = fdt_getprop(fdt, chosen, "stdout-path", NULL);
	assert_non_null(out);
	assert_int_equal(fdt_path_offset(fdt, out),
			 fdt_path_offset(fdt, "/soc/serial@10000000"));
	assert_int_equal(u64prop(fdt, chosen, "linux,initrd-start"),
			 0x8f000000);
	assert_int_equal(u64prop(fdt, chosen, "linux,initrd-end"), 0x8f123456);
	free(fdt);
}

static void test_chosen_without_initrd(void **state)
{
	void *fdt = build(1, NULL, 0, 0);
	int chosen = fdt_path_offset(fdt, "/chosen");

	(void)state;
	assert_true(chosen >= 0);
	assert_null(fdt_getprop(fdt, chosen, "bootargs", NULL));
	assert_null(fdt_getprop(fdt, chosen, "linux,initrd-start", NULL));
	assert_null(fdt_getprop(fdt, chosen, "linux,initrd-end", NULL));
	assert_non_null(fdt_getprop(fdt, chosen, "stdout-path", NULL));
	free(fdt);
}

static void test_hart_counts(void **state)
{
	struct rv_fdt_params p = { .ram_base = RV_RAM_BASE,
				   .ram_size = 1 << 24 };
	struct ferry_error err = { 0 };
	void *blob = NULL, *fdt;
	size_t len;

	(void)state;
	p.nharts = 0;
	assert_int_equal(rv_fdt_build(&p, &blob, &len, &err), -EINVAL);
	ferry_error_clear(&err);
	p.nharts = RV_MAX_HARTS + 1;
	assert_int_equal(rv_fdt_build(&p, &blob, &len, &err), -EINVAL);
	assert_null(blob);
	fdt = build(RV_MAX_HARTS, NULL, 0, 0);
	check_irqs_ext(fdt, fdt_path_offset(fdt, "/soc/plic@c000000"),
		       RV_MAX_HARTS, 11, 9);
	free(fdt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root_and_memory),
		cmocka_unit_test(test_cpus),
		cmocka_unit_test(test_soc_devices),
		cmocka_unit_test(test_chosen),
		cmocka_unit_test(test_chosen_without_initrd),
		cmocka_unit_test(test_hart_counts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
