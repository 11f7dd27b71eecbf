/*
 * test_boot.c - loading a Linux Image: the header checked (magic,
 * text_offset, image_size and the bss it implies), files that are not
 * an Image refused with the reason, a gzip'd Image inflated, and a whole
 * boot through rv_machine_new: hart 0 in S mode at the entry with
 * a0 = 0 and a1 = a device tree in RAM whose /chosen points at the
 * initramfs's bytes, translation off, the traps delegated and the
 * counters readable, secondaries stopped.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <libfdt.h>
#include <zlib.h>

#include "devices.h"
#include "le.h"

#define RAM_SIZE (64ull << 20)

struct env {
	uint8_t *ram;
	char kernel[64], initrd[64];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	e->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(e->ram != MAP_FAILED);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	if (e->kernel[0])
		unlink(e->kernel);
	if (e->initrd[0])
		unlink(e->initrd);
	munmap(e->ram, RAM_SIZE);
	free(e);
	return 0;
}

/* An Image of len bytes: a header, then a pattern. */
static uint8_t *image(size_t len, uint64_t text_offset, uint64_t image_size)
{
	uint8_t *p = calloc(1, len);
	size_t i;

	for (i = 64; i < len; i++)
		p[i] = (uint8_t)(i * 7);
	le32_store(p, 0x0000006f); /* code0: j . as a stand-in */
	le64_store(p + 8, text_offset);
	le64_store(p + 16, image_size);
	memcpy(p + 0x30, "RISCV\0\0\0", 8);
	le32_store(p + 0x38, RV_IMAGE_MAGIC2);
	return p;
}

static void write_file(char *path, const void *data, size_t len, bool gz)
{
	int fd;

	strcpy(path, "/tmp/test-boot-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	if (gz) {
		gzFile g = gzdopen(fd, "wb");

		assert_non_null(g);
		assert_int_equal(gzwrite(g, data, (unsigned)len), (int)len);
		assert_int_equal(gzclose(g), Z_OK);
	} else {
		assert_int_equal(write(fd, data, len), (ssize_t)len);
		close(fd);
	}
}

static void test_place_image(void **state)
{
	struct env *e = *state;
	struct ferry_error err = { 0 };
	uint8_t *img = image(8192, RV_KERNEL_OFFSET, 16384);
	uint64_t entry, end;

	memset(e->ram, 0xaa, 0x210000);
	assert_int_equal(rv_boot_place_image(e->ram, RV_RAM_BASE, RAM_SIZE, img,
					     8192, &entry, &end, &err),
			 0);
	assert_int_equal(entry, RV_RAM_BASE + RV_KERNEL_OFFSET);
	assert_int_equal(end, RV_RAM_BASE + RV_KERNEL_OFFSET + 16384);
	assert_memory_equal(e->ram + RV_KERNEL_OFFSET, img, 8192);
	/* the bss image_size implies is zeroed, nothing past it touched */
	assert_int_equal(e->ram[RV_KERNEL_OFFSET + 8192], 0);
	assert_int_equal(e->ram[RV_KERNEL_OFFSET + 16383], 0);
	assert_int_equal(e->ram[RV_KERNEL_OFFSET + 16384], 0xaa);
	assert_int_equal(e->ram[RV_KERNEL_OFFSET - 1], 0xaa);
	free(img);
	/* image_size 0 (old headers): the file is all */
	img = image(4096, RV_KERNEL_OFFSET, 0);
	assert_int_equal(rv_boot_place_image(e->ram, RV_RAM_BASE, RAM_SIZE, img,
					     4096, &entry, &end, &err),
			 0);
	assert_int_equal(end, entry + 4096);
	free(img);
}

static void test_not_an_image(void **state)
{
	struct env *e = *state;
	struct ferry_error err = { 0 };
	uint8_t elf[128] = { 0x7f, 'E', 'L', 'F', 2, 1, 1 };
	uint64_t entry, end;

	assert_int_equal(rv_boot_place_image(e->ram, RV_RAM_BASE, RAM_SIZE, elf,
					     sizeof(elf), &entry, &end, &err),
			 -ENOEXEC);
	assert_non_null(strstr(err.msg, "not a RISC-V Linux Image"));
	ferry_error_clear(&err);
	assert_int_equal(rv_boot_place_image(e->ram, RV_RAM_BASE, RAM_SIZE, elf,
					     32, &entry, &end, &err),
			 -ENOEXEC);
	assert_non_null(strstr(err.msg, "too short"));
}

static void test_image_bounds(void **state)
{
	struct env *e = *state;
	struct ferry_error err = { 0 };
	uint8_t *img = image(4096, RV_KERNEL_OFFSET, RAM_SIZE);
	uint64_t entry, end;

	assert_int_equal(rv_boot_place_image(e->ram, RV_RAM_BASE, RAM_SIZE, img,
					     4096, &entry, &end, &err),
			 -ENOSPC);
	assert_non_null(strstr(err.msg, "does not fit"));
	free(img);
	ferry_error_clear(&err);
	img = image(4096, RV_KERNEL_OFFSET + 2, 8192);
	assert_int_equal(rv_boot_place_image(e->ram, RV_RAM_BASE, RAM_SIZE, img,
					     4096, &entry, &end, &err),
			 -ENOEXEC);
	free(img);
	ferry_error_clear(&err);
	img = image(4096, UINT64_MAX & ~0xfffull, 8192);
	assert_int_equal(rv_boot_place_image(e->ram, RV_RAM_BASE, RAM_SIZE, img,
					     4096, &entry, &end, &err),
			 -ENOSPC);
	free(img);
}

/* Boot through the machine; returns it for the caller to inspect. */
static struct rv_machine *boot(struct env *e, unsigned nharts, bool gz,
			       size_t initrd_len, int expect)
{
	uint8_t *img = image(100000, RV_KERNEL_OFFSET, 300000);
	uint8_t *rd = malloc(initrd_len ? initrd_len : 1);
	struct rv_machine_config cfg = {
		.nharts = nharts,
		.ram = e->ram,
		.ram_size = RAM_SIZE,
		.cmdline = "console=ttyS0 rdinit=/init",
	};
	struct ferry_error err = { 0 };
	struct rv_machine *m = NULL;
	size_t i;

	for (i = 0; i < initrd_len; i++)
		rd[i] = (uint8_t)(i * 13 + 1);
	write_file(e->kernel, img, 100000, gz);
	cfg.kernel = e->kernel;
	if (initrd_len) {
		write_file(e->initrd, rd, initrd_len, false);
		cfg.initrd = e->initrd;
	}
	assert_int_equal(rv_machine_new(&cfg, &m, &err), expect);
	if (!expect)
		assert_memory_equal(e->ram + RV_KERNEL_OFFSET, img, 100000);
	free(img);
	free(rd);
	return m;
}

static void check_boot(struct env *e, struct rv_machine *m, size_t initrd_len)
{
	struct rv_hart *h = rv_machine_hart(m, 0);
	uint64_t fdt_pa = h->x[11], is, ie;
	const void *fdt;
	const fdt64_t *p;
	int chosen, len;
	size_t i;

	assert_int_equal(h->priv, RV_PRIV_S);
	assert_int_equal(h->pc, RV_RAM_BASE + RV_KERNEL_OFFSET);
	assert_int_equal(h->x[10], 0);
	assert_int_equal(h->satp, 0);
	assert_int_equal(h->mstatus & RV_MSTATUS_SIE, 0);
	/* what S mode handles is delegated; ecalls from S are the SBI's */
	assert_true(h->medeleg & (1u << RV_EXC_LOAD_PAGE));
	assert_true(h->medeleg & (1u << RV_EXC_STORE_PAGE));
	assert_true(h->medeleg & (1u << RV_EXC_INSN_PAGE));
	assert_true(h->medeleg & (1u << RV_EXC_ECALL_U));
	assert_true(h->medeleg & (1u << RV_EXC_ILLEGAL));
	assert_true(h->medeleg & (1u << RV_EXC_BREAKPOINT));
	assert_false(h->medeleg & (1u << RV_EXC_ECALL_S));
	assert_int_equal(h->mideleg, (1u << RV_IRQ_SSI) | (1u << RV_IRQ_STI) |
					     (1u << RV_IRQ_SEI));
	assert_int_equal(h->mcounteren & 7, 7);

	assert_int_equal(fdt_pa & 7, 0);
	assert_true(fdt_pa >= RV_RAM_BASE + RV_KERNEL_OFFSET + 300000);
	assert_true(fdt_pa < RV_RAM_BASE + RAM_SIZE);
	fdt = e->ram + (fdt_pa - RV_RAM_BASE);
	assert_int_equal(fdt_check_header(fdt), 0);
	assert_true(fdt_pa + fdt_totalsize(fdt) <= RV_RAM_BASE + RAM_SIZE);
	chosen = fdt_path_offset(fdt, "/chosen");
	assert_string_equal(fdt_getprop(fdt, chosen, "bootargs", NULL),
			    "console=ttyS0 rdinit=/init");
	p = fdt_getprop(fdt, chosen, "linux,initrd-start", &len);
	if (!initrd_len) {
		assert_null(p);
		return;
	}
	assert_non_null(p);
	is = fdt64_ld(p);
	ie = fdt64_ld((const fdt64_t *)fdt_getprop(fdt, chosen,
						   "linux,initrd-end", NULL));
	assert_int_equal(ie - is, initrd_len);
	assert_int_equal(is & (RV_PAGE_SIZE - 1), 0);
	/* above the kernel and its bss, below the device tree */
	assert_true(is >= RV_RAM_BASE + RV_KERNEL_OFFSET + 300000);
	assert_true(ie <= fdt_pa);
	for (i = 0; i < initrd_len; i++)
		if (e->ram[is - RV_RAM_BASE + i] != (uint8_t)(i * 13 + 1))
			fail_msg("initrd byte %zu differs", i);
}

static void test_boot_raw(void **state)
{
	struct env *e = *state;
	struct rv_machine *m = boot(e, 2, false, 123457, 0);
	struct ferry_error err = { 0 };

	check_boot(e, m, 123457);
	/* hart 1 waits, stopped, for the kernel's hart_start */
	assert_int_equal(rv_machine_hart_status(m, 1), RV_HSM_STOPPED);
	assert_int_equal(rv_machine_hart_status(m, 0), RV_HSM_STARTED);
	assert_int_equal(rv_machine_hart(m, 1)->priv, RV_PRIV_M);
	assert_int_equal(rv_machine_nharts(m), 2);
	(void)err;
	rv_machine_destroy(m);
}

static void test_boot_gzip_no_initrd(void **state)
{
	struct env *e = *state;
	struct rv_machine *m = boot(e, 1, true, 0, 0);

	check_boot(e, m, 0);
	rv_machine_destroy(m);
}

static void test_boot_refusals(void **state)
{
	struct env *e = *state;
	struct rv_machine_config cfg = {
		.nharts = 1,
		.ram = e->ram,
		.ram_size = RAM_SIZE,
	};
	struct ferry_error err = { 0 };
	struct rv_machine *m = NULL;
	static const char text[] = "#!/bin/sh\necho not a kernel\n"
				   "................................"
				   "................................";

	/* an initramfs that cannot fit */
	assert_null(boot(e, 1, false, RAM_SIZE, -ENOSPC));
	unlink(e->initrd);
	unlink(e->kernel);
	e->initrd[0] = 0;
	write_file(e->kernel, text, sizeof(text), false);
	cfg.kernel = e->kernel;
	assert_int_equal(rv_machine_new(&cfg, &m, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "not a RISC-V Linux Image"));
	ferry_error_clear(&err);
	cfg.kernel = "/nonexistent/Image";
	assert_true(rv_machine_new(&cfg, &m, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/Image"));
	assert_null(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_place_image),	     T(test_not_an_image),
		T(test_image_bounds),	     T(test_boot_raw),
		T(test_boot_gzip_no_initrd), T(test_boot_refusals),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
