/*
 * test_digest.c - unit tests of the RAM and device-state digest:
 * ferry_digest_* (src/stream/digest.c) is deterministic, sensitive to every
 * input it covers and matches its wire definition; ferry_vm_digest()
 * (src/guest/vm.c) sorts blocks and sections, so array order does not
 * matter, and it sees every byte a section saves.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <cmocka.h>

#include "ferry/stream.h"
#include "ferry/vm.h"
#include "le.h"

/* ---- ferry_digest_* ------------------------------------------------------ */

struct input {
	const char *bname[2];
	uint8_t bdata[2][64];
	const char *sname;
	uint32_t instance;
	uint32_t version;
	uint8_t sdata[16];
};

static void input_init(struct input *in)
{
	size_t i;

	memset(in, 0, sizeof(*in));
	in->bname[0] = "ram0";
	in->bname[1] = "ram1";
	for (i = 0; i < sizeof(in->bdata[0]); i++) {
		in->bdata[0][i] = (uint8_t)i;
		in->bdata[1][i] = (uint8_t)(255 - i);
	}
	in->sname = "serial";
	in->instance = 1;
	in->version = 2;
	memcpy(in->sdata, "section contents", 16);
}

static void digest_of(const struct input *in, uint8_t out[16])
{
	struct ferry_digest *g = NULL;

	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, in->bname[0], in->bdata[0], sizeof(in->bdata[0]));
	ferry_digest_block(g, in->bname[1], in->bdata[1], sizeof(in->bdata[1]));
	ferry_digest_section(g, in->sname, in->instance, in->version, in->sdata,
			     sizeof(in->sdata));
	ferry_digest_final(g, out);
	ferry_digest_free(g);
}

static void test_deterministic(void **state)
{
	uint8_t a[16], b[16], zero[16] = { 0 };
	struct input in;

	(void)state;
	input_init(&in);
	digest_of(&in, a);
	digest_of(&in, b);
	assert_memory_equal(a, b, 16);
	assert_memory_not_equal(a, zero, 16);
}

/* Each change must move the digest away from the reference. */
static void test_sensitive(void **state)
{
	uint8_t ref[16], got[16];
	struct input in;
	size_t i;

	(void)state;
	input_init(&in);
	digest_of(&in, ref);

	for (i = 0; i < sizeof(in.bdata[0]); i += 21) {
		input_init(&in);
		in.bdata[0][i] ^= 1;
		digest_of(&in, got);
		assert_memory_not_equal(ref, got, 16);
	}
	input_init(&in);
	in.bdata[1][sizeof(in.bdata[1]) - 1] ^= 0x80;
	digest_of(&in, got);
	assert_memory_not_equal(ref, got, 16);

	input_init(&in);
	in.bname[1] = "ram2";
	digest_of(&in, got);
	assert_memory_not_equal(ref, got, 16);

	input_init(&in);
	in.bname[0] = "ram1";
	in.bname[1] = "ram0";
	digest_of(&in, got);
	assert_memory_not_equal(ref, got, 16);

	input_init(&in);
	in.sname = "serial0";
	digest_of(&in, got);
	assert_memory_not_equal(ref, got, 16);

	input_init(&in);
	in.instance = 2;
	digest_of(&in, got);
	assert_memory_not_equal(ref, got, 16);

	input_init(&in);
	in.version = 3;
	digest_of(&in, got);
	assert_memory_not_equal(ref, got, 16);

	input_init(&in);
	in.sdata[7] ^= 4;
	digest_of(&in, got);
	assert_memory_not_equal(ref, got, 16);
}

/* Lengths are framed: moving a byte from one name or block to the next
 * changes the digest even though the concatenated bytes do not. */
static void test_framing(void **state)
{
	const uint8_t data[8] = "abcdefgh";
	struct ferry_digest *g;
	uint8_t a[16], b[16];

	(void)state;
	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, "ab", data, 4);
	ferry_digest_block(g, "c", data + 4, 4);
	ferry_digest_final(g, a);
	ferry_digest_free(g);

	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, "ab", data, 5);
	ferry_digest_block(g, "c", data + 5, 3);
	ferry_digest_final(g, b);
	ferry_digest_free(g);
	assert_memory_not_equal(a, b, 16);

	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, "a", data, 4);
	ferry_digest_block(g, "bc", data + 4, 4);
	ferry_digest_final(g, b);
	ferry_digest_free(g);
	assert_memory_not_equal(a, b, 16);
}

/* The digest is XXH3-128, canonical (big-endian), over length-framed
 * fields, all integers little-endian. */
static void test_definition(void **state)
{
	const uint8_t bdata[5] = { 1, 2, 3, 4, 5 };
	const uint8_t sdata[3] = { 'x', 'y', 'z' };
	struct ferry_digest *g;
	XXH128_canonical_t c;
	uint8_t wire[128], got[16];
	size_t n = 0;

	(void)state;
	le32_store(wire + n, 4);
	memcpy(wire + n + 4, "ram0", 4);
	le64_store(wire + n + 8, sizeof(bdata));
	memcpy(wire + n + 16, bdata, sizeof(bdata));
	n += 16 + sizeof(bdata);
	le32_store(wire + n, 3);
	memcpy(wire + n + 4, "dev", 3);
	le32_store(wire + n + 7, 9);	  /* instance */
	le32_store(wire + n + 11, 0x102); /* version */
	le32_store(wire + n + 15, sizeof(sdata));
	memcpy(wire + n + 19, sdata, sizeof(sdata));
	n += 19 + sizeof(sdata);
	XXH128_canonicalFromHash(&c, XXH3_128bits(wire, n));

	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, "ram0", bdata, sizeof(bdata));
	ferry_digest_section(g, "dev", 9, 0x102, sdata, sizeof(sdata));
	ferry_digest_final(g, got);
	ferry_digest_free(g);
	assert_memory_equal(got, c.digest, 16);
}

static void test_hex(void **state)
{
	uint8_t d[16];
	char hex[33];
	size_t i;

	(void)state;
	for (i = 0; i < 16; i++)
		d[i] = (uint8_t)(i * 17 + 0x0a);
	memset(hex, 'Z', sizeof(hex));
	ferry_digest_hex(d, hex);
	assert_int_equal(strlen(hex), 32);
	assert_string_equal(hex, "0a1b2c3d4e5f708192a3b4c5d6e7f809");

	memset(d, 0xff, sizeof(d));
	ferry_digest_hex(d, hex);
	assert_string_equal(hex, "ffffffffffffffffffffffffffffffff");

	memset(d, 0, sizeof(d));
	d[15] = 0xab;
	ferry_digest_hex(d, hex);
	assert_int_equal(strlen(hex), 32);
	for (i = 0; i < 32; i++)
		assert_true((hex[i] >= '0' && hex[i] <= '9') ||
			    (hex[i] >= 'a' && hex[i] <= 'f'));
	assert_string_equal(hex + 28, "00ab");
}

/* ---- ferry_vm_digest --------------------------------------------------- */

#define PS 4096u

struct sec_state {
	uint8_t data[100];
	size_t len;
	int fail; /* negative errno to return, or 0 */
};

static int sec_save(void *opaque, struct ferry_buf *out)
{
	struct sec_state *s = opaque;

	if (s->fail)
		return s->fail;
	return ferry_buf_put(out, s->data, s->len);
}

struct vm_fixture {
	struct ferry_ramblock blocks[2];
	struct ferry_section sections[3];
	struct sec_state st[3];
	struct ferry_vm vm;
};

static void vm_setup(struct vm_fixture *f)
{
	size_t i;

	memset(f, 0, sizeof(*f));
	f->blocks[0] = (struct ferry_ramblock){
		.id = 0,
		.name = "pc.ram",
		.length = 4 * PS,
	};
	f->blocks[1] = (struct ferry_ramblock){
		.id = 1,
		.name = "bios",
		.length = PS,
	};
	for (i = 0; i < 2; i++) {
		size_t j;

		f->blocks[i].host = malloc(f->blocks[i].length);
		assert_non_null(f->blocks[i].host);
		for (j = 0; j < f->blocks[i].length; j++)
			f->blocks[i].host[j] = (uint8_t)(j * 7 + i);
	}
	/* two instances of one device, and a second device */
	f->sections[0] = (struct ferry_section){
		.name = "serial",
		.instance = 1,
		.version = 1,
	};
	f->sections[1] = (struct ferry_section){
		.name = "serial",
		.instance = 0,
		.version = 1,
	};
	f->sections[2] = (struct ferry_section){
		.name = "cpu",
		.instance = 0,
		.version = 4,
	};
	for (i = 0; i < 3; i++) {
		f->sections[i].save = sec_save;
		f->sections[i].opaque = &f->st[i];
		memset(f->st[i].data, (int)(0x40 + i), sizeof(f->st[i].data));
		f->st[i].len = 10 + 20 * i;
	}
	f->vm.page_size = PS;
	f->vm.blocks = f->blocks;
	f->vm.nblocks = 2;
	f->vm.sections = f->sections;
	f->vm.nsections = 3;
}

static void vm_teardown(struct vm_fixture *f)
{
	free(f->blocks[0].host);
	free(f->blocks[1].host);
}

static void vm_digest_ok(const struct ferry_vm *vm, uint8_t out[16])
{
	struct ferry_error err = { 0 };
	int rc = ferry_vm_digest(vm, out, &err);

	if (rc)
		print_message("ferry_vm_digest: %s\n", ferry_error_msg(&err));
	assert_int_equal(rc, 0);
}

/* The same digest, fed by hand in the documented order. */
static void test_vm_matches_manual(void **state)
{
	struct ferry_digest *g;
	struct vm_fixture f;
	uint8_t a[16], b[16];

	(void)state;
	vm_setup(&f);
	vm_digest_ok(&f.vm, a);

	assert_int_equal(ferry_digest_new(&g), 0);
	/* blocks by name, sections by name then instance */
	ferry_digest_block(g, "bios", f.blocks[1].host, f.blocks[1].length);
	ferry_digest_block(g, "pc.ram", f.blocks[0].host, f.blocks[0].length);
	ferry_digest_section(g, "cpu", 0, 4, f.st[2].data,
			     (uint32_t)f.st[2].len);
	ferry_digest_section(g, "serial", 0, 1, f.st[1].data,
			     (uint32_t)f.st[1].len);
	ferry_digest_section(g, "serial", 1, 1, f.st[0].data,
			     (uint32_t)f.st[0].len);
	ferry_digest_final(g, b);
	ferry_digest_free(g);
	assert_memory_equal(a, b, 16);
	vm_teardown(&f);
}

static void test_vm_order_independent(void **state)
{
	struct ferry_ramblock rblocks[2];
	struct ferry_section rsections[3];
	static const size_t perms[6][3] = {
		{ 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
		{ 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
	};
	struct ferry_vm vm;
	struct vm_fixture f;
	uint8_t ref[16], got[16];
	size_t p, i;

	(void)state;
	vm_setup(&f);
	vm_digest_ok(&f.vm, ref);

	rblocks[0] = f.blocks[1];
	rblocks[1] = f.blocks[0];
	for (p = 0; p < 6; p++) {
		for (i = 0; i < 3; i++)
			rsections[i] = f.sections[perms[p][i]];
		vm = f.vm;
		vm.blocks = p & 1 ? rblocks : f.blocks;
		vm.sections = rsections;
		vm_digest_ok(&vm, got);
		assert_memory_equal(ref, got, 16);
	}
	/* the caller's arrays are left as they were */
	assert_string_equal(rblocks[0].name, "bios");
	assert_string_equal(rsections[0].name, "cpu");
	vm_teardown(&f);
}

static void test_vm_sensitive(void **state)
{
	struct vm_fixture f;
	uint8_t ref[16], got[16];

	(void)state;
	vm_setup(&f);
	vm_digest_ok(&f.vm, ref);

	/* a section's saved bytes */
	f.st[1].data[3] ^= 1;
	vm_digest_ok(&f.vm, got);
	assert_memory_not_equal(ref, got, 16);
	f.st[1].data[3] ^= 1;
	vm_digest_ok(&f.vm, got);
	assert_memory_equal(ref, got, 16);

	/* how many it saves */
	f.st[0].len++;
	vm_digest_ok(&f.vm, got);
	assert_memory_not_equal(ref, got, 16);
	f.st[0].len--;

	/* nothing at all */
	f.st[2].len = 0;
	vm_digest_ok(&f.vm, got);
	assert_memory_not_equal(ref, got, 16);
	f.st[2].len = 50;

	/* swapping two instances' contents */
	f.sections[0].opaque = &f.st[1];
	f.sections[1].opaque = &f.st[0];
	vm_digest_ok(&f.vm, got);
	assert_memory_not_equal(ref, got, 16);
	f.sections[0].opaque = &f.st[0];
	f.sections[1].opaque = &f.st[1];

	/* a section's version */
	f.sections[2].version++;
	vm_digest_ok(&f.vm, got);
	assert_memory_not_equal(ref, got, 16);
	f.sections[2].version--;

	/* the last byte of RAM */
	f.blocks[0].host[f.blocks[0].length - 1] ^= 0x10;
	vm_digest_ok(&f.vm, got);
	assert_memory_not_equal(ref, got, 16);
	f.blocks[0].host[f.blocks[0].length - 1] ^= 0x10;

	vm_digest_ok(&f.vm, got);
	assert_memory_equal(ref, got, 16);
	vm_teardown(&f);
}

static void test_vm_save_fails(void **state)
{
	struct ferry_error err = { 0 };
	struct vm_fixture f;
	uint8_t out[16];

	(void)state;
	vm_setup(&f);
	f.st[0].fail = -EIO;
	assert_int_equal(ferry_vm_digest(&f.vm, out, &err), -EIO);
	assert_int_equal(err.code, -EIO);
	assert_non_null(strstr(err.msg, "serial"));
	vm_teardown(&f);
}

static void test_vm_empty(void **state)
{
	struct ferry_vm vm = { .page_size = PS };
	struct ferry_digest *g;
	uint8_t a[16], b[16];

	(void)state;
	vm_digest_ok(&vm, a);
	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_final(g, b);
	ferry_digest_free(g);
	assert_memory_equal(a, b, 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_sensitive),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_definition),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_vm_matches_manual),
		cmocka_unit_test(test_vm_order_independent),
		cmocka_unit_test(test_vm_sensitive),
		cmocka_unit_test(test_vm_save_fails),
		cmocka_unit_test(test_vm_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
