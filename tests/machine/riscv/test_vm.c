/*
 * test_vm.c - the RISC-V machine as a struct ferry_vm: its sections,
 * saved on one machine and loaded into another, save again to the same
 * bytes (the destination's digest depends on it), at any moment of a
 * Linux boot; and a machine section from a different machine is refused,
 * naming what differs, with nothing resumed.
 *
 * The boot case needs the guest of scripts/riscv-guest.sh; without it,
 * it says so and passes (make check fetches the guest first).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "le.h"
#include "vm.h"

#ifndef RISCV_CACHE
#define RISCV_CACHE "guest/riscv/cache"
#endif

static struct rv_vm *make(unsigned harts, uint64_t ram, const char *kernel,
			  const char *initrd)
{
	struct rv_vm_config cfg = {
		.nharts = harts,
		.ram_size = ram,
		.kernel = kernel,
		.initrd = initrd,
		.cmdline = "console=ttyS0 ferry.workload=memcheck+timer",
		.dirty = "explicit",
	};
	struct ferry_error err = { 0 };
	struct rv_vm *v = NULL;

	if (rv_vm_create(&cfg, &v, &err))
		fail_msg("rv_vm_create: %s", ferry_error_msg(&err));
	if (rv_vm_start(v, kernel != NULL, &err))
		fail_msg("rv_vm_start: %s", ferry_error_msg(&err));
	return v;
}

static const char *cache_file(const char *name, char *buf, size_t len)
{
	const char *dir = getenv("FERRY_RISCV_CACHE");

	snprintf(buf, len, "%s/%s", dir ? dir : RISCV_CACHE, name);
	return access(buf, R_OK) ? NULL : buf;
}

/* Stop a booting machine at 300 moments, carry its sections into a
 * stopped one, and compare what each saves. */
static void test_round_trip_while_booting(void **state)
{
	char kbuf[512], ibuf[512];
	const char *kernel = cache_file("Image", kbuf, sizeof(kbuf));
	const char *initrd =
		cache_file("initramfs.cpio.gz", ibuf, sizeof(ibuf));
	struct ferry_error err = { 0 };
	const struct ferry_vm *va, *vb;
	struct rv_vm *a, *b;
	unsigned round;
	size_t i;

	(void)state;
	if (!kernel || !initrd) { /* said, and passed, as test_machine does */
		printf("# not run: no guest in %s: run scripts/riscv-guest.sh\n",
		       getenv("FERRY_RISCV_CACHE") ? getenv("FERRY_RISCV_CACHE")
						   : RISCV_CACHE);
		return;
	}
	a = make(2, 256ull << 20, kernel, initrd);
	b = make(2, 256ull << 20, NULL, NULL);
	va = rv_vm_ferry(a);
	vb = rv_vm_ferry(b);
	assert_int_equal(va->nsections, vb->nsections);
	for (round = 0; round < 300; round++) {
		struct ferry_buf saved[16] = { 0 };

		usleep(20000 + (round % 7) * 5000);
		assert_int_equal(va->runctl.stop(va->runctl.opaque), 0);
		assert_false(va->runctl.running(va->runctl.opaque));
		assert_true(va->nsections <= 16);
		for (i = 0; i < va->nsections; i++) {
			const struct ferry_section *s = &va->sections[i];

			assert_string_equal(s->name, vb->sections[i].name);
			assert_int_equal(s->save(s->opaque, &saved[i]), 0);
			if (vb->sections[i].load(vb->sections[i].opaque,
						 s->version, saved[i].data,
						 saved[i].len, &err))
				fail_msg("round %u: %s: %s", round, s->name,
					 ferry_error_msg(&err));
		}
		for (i = 0; i < va->nsections; i++) {
			const struct ferry_section *s = &vb->sections[i];
			struct ferry_buf again = { 0 };

			assert_int_equal(s->save(s->opaque, &again), 0);
			if (again.len != saved[i].len ||
			    memcmp(again.data, saved[i].data, again.len))
				fail_msg("round %u: %s.%u saves differently "
					 "after a load",
					 round, s->name, s->instance);
			ferry_buf_free(&again);
			ferry_buf_free(&saved[i]);
		}
		assert_int_equal(va->runctl.resume(va->runctl.opaque), 0);
	}
	/* the booted one is not the only one stopped: b never ran */
	assert_false(vb->runctl.running(vb->runctl.opaque));
	rv_vm_destroy(a);
	rv_vm_destroy(b);
}

/* The machine section of a 2-hart, 256 MiB machine, as saved. */
static void machine_section(struct ferry_buf *out)
{
	struct rv_vm *src = make(2, 256ull << 20, NULL, NULL);
	const struct ferry_vm *v = rv_vm_ferry(src);

	assert_string_equal(v->sections[0].name, "riscv-machine");
	assert_int_equal(v->sections[0].save(v->sections[0].opaque, out), 0);
	rv_vm_destroy(src);
}

static void refused(struct rv_vm *dst, uint32_t version, const uint8_t *data,
		    size_t len, const char *want)
{
	const struct ferry_vm *v = rv_vm_ferry(dst);
	struct ferry_error err = { 0 };

	assert_int_not_equal(v->sections[0].load(v->sections[0].opaque, version,
						 data, len, &err),
			     0);
	if (!strstr(ferry_error_msg(&err), want))
		fail_msg("\"%s\" does not say \"%s\"", ferry_error_msg(&err),
			 want);
	assert_false(v->runctl.running(v->runctl.opaque));
}

static void test_machine_section_refusals(void **state)
{
	struct ferry_buf sec = { 0 };
	struct rv_vm *one, *small, *same;
	uint8_t *copy;

	(void)state;
	machine_section(&sec);
	one = make(1, 256ull << 20, NULL, NULL);
	small = make(2, 128ull << 20, NULL, NULL);
	same = make(2, 256ull << 20, NULL, NULL);
	refused(one, 1, sec.data, sec.len, "2 harts, this machine 1");
	refused(small, 1, sec.data, sec.len, "bytes of RAM");
	refused(same, 2, sec.data, sec.len, "version 2");
	refused(same, 1, sec.data, sec.len - 1, "bytes");
	copy = malloc(sec.len);
	assert_non_null(copy);
	memcpy(copy, sec.data, sec.len);
	le32_store(copy + 4, 1);
	refused(same, 1, copy, sec.len, "flags");
	free(copy);
	/* and the same machine takes it */
	{
		const struct ferry_vm *v = rv_vm_ferry(same);
		struct ferry_error err = { 0 };

		assert_int_equal(v->sections[0].load(v->sections[0].opaque, 1,
						     sec.data, sec.len, &err),
				 0);
	}
	rv_vm_destroy(one);
	rv_vm_destroy(small);
	rv_vm_destroy(same);
	ferry_buf_free(&sec);
}

static void test_bad_config(void **state)
{
	struct rv_vm_config cfg = { .nharts = 0, .ram_size = 256ull << 20 };
	struct ferry_error err = { 0 };
	struct rv_vm *v = NULL;

	(void)state;
	assert_int_not_equal(rv_vm_create(&cfg, &v, &err), 0);
	assert_non_null(strstr(ferry_error_msg(&err), "harts"));
	cfg.nharts = 9;
	err = (struct ferry_error){ 0 };
	assert_int_not_equal(rv_vm_create(&cfg, &v, &err), 0);
	cfg.nharts = 1;
	cfg.ram_size = (256ull << 20) + 4096;
	err = (struct ferry_error){ 0 };
	assert_int_not_equal(rv_vm_create(&cfg, &v, &err), 0);
	assert_non_null(strstr(ferry_error_msg(&err), "2 MiB"));
	cfg.ram_size = 256ull << 20;
	cfg.initrd = "initrd";
	err = (struct ferry_error){ 0 };
	assert_int_not_equal(rv_vm_create(&cfg, &v, &err), 0);
	assert_non_null(strstr(ferry_error_msg(&err), "without a kernel"));
	assert_null(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_machine_section_refusals),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_round_trip_while_booting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
