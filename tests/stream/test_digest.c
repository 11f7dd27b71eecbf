/*
 * test_digest.c - unit tests of the RAM and device-state digest:
 * ferry_digest_* (src/stream/digest.c) is deterministic, sensitive to every
 * input it covers and matches its wire definition; ferry_vm_digest()
 * (src/vm/vm.c) sorts blocks and sections, so array order does not
 * matter, and it sees every byte a section saves.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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

#define PS 4096u

/* Fill len bytes with a pattern that differs from page to page. */
static void fill(uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

struct input {
	const char *bname[2];
	uint8_t bdata[2][2 * PS]; /* two pages each */
	const char *sname;
	uint32_t instance;
	uint32_t version;
	uint8_t sdata[16];
};

static void input_init(struct input *in)
{
	memset(in, 0, sizeof(*in));
	in->bname[0] = "ram0";
	in->bname[1] = "ram1";
	fill(in->bdata[0], sizeof(in->bdata[0]), 1);
	fill(in->bdata[1], sizeof(in->bdata[1]), 2);
	in->sname = "serial";
	in->instance = 1;
	in->version = 2;
	memcpy(in->sdata, "section contents", 16);
}

static void digest_of(const struct input *in, uint8_t out[16])
{
	struct ferry_digest *g = NULL;

	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, in->bname[0], in->bdata[0], sizeof(in->bdata[0]),
			   PS);
	ferry_digest_block(g, in->bname[1], in->bdata[1], sizeof(in->bdata[1]),
			   PS);
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
	uint8_t ref[16], got[16], tmp[PS];
	struct input in;
	size_t i;

	(void)state;
	input_init(&in);
	digest_of(&in, ref);

	/* bytes spread over both pages of the first block, both ends too */
	for (i = 0; i < sizeof(in.bdata[0]); i += 1021) {
		input_init(&in);
		in.bdata[0][i] ^= 1;
		digest_of(&in, got);
		assert_memory_not_equal(ref, got, 16);
	}
	input_init(&in);
	in.bdata[0][PS - 1] ^= 1;
	digest_of(&in, got);
	assert_memory_not_equal(ref, got, 16);

	input_init(&in);
	in.bdata[1][sizeof(in.bdata[1]) - 1] ^= 0x80;
	digest_of(&in, got);
	assert_memory_not_equal(ref, got, 16);

	/* the order of the pages within a block */
	input_init(&in);
	memcpy(tmp, in.bdata[0], PS);
	memcpy(in.bdata[0], in.bdata[0] + PS, PS);
	memcpy(in.bdata[0] + PS, tmp, PS);
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

	/* back to the reference: nothing above leaked into input_init */
	input_init(&in);
	digest_of(&in, got);
	assert_memory_equal(ref, got, 16);
}

/* Two blocks over the same three pages, split at a given page. */
static void digest_split(const uint8_t *data, const char *n0, const char *n1,
			 size_t pages0, uint8_t out[16])
{
	struct ferry_digest *g;

	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, n0, data, (uint64_t)pages0 * PS, PS);
	ferry_digest_block(g, n1, data + pages0 * PS,
			   (uint64_t)(3 - pages0) * PS, PS);
	ferry_digest_final(g, out);
	ferry_digest_free(g);
}

/* A block given by its page hashes, for test_framing. */
struct hblock {
	const char *name; /* 4 characters */
	uint64_t h[3];
	uint64_t npages;
};

/* What the digest hashes for two such blocks; with_len false leaves out
 * the block lengths. */
static size_t hwire(const struct hblock b[2], bool with_len, uint8_t *w)
{
	size_t n = 0, i, k;

	for (k = 0; k < 2; k++) {
		le32_store(w + n, 4);
		memcpy(w + n + 4, b[k].name, 4);
		n += 8;
		if (with_len) {
			le64_store(w + n, b[k].npages * PS);
			n += 8;
		}
		for (i = 0; i < b[k].npages; i++, n += 8)
			le64_store(w + n, b[k].h[i]);
	}
	return n;
}

static void hdigest(const struct hblock b[2], uint8_t out[16])
{
	struct ferry_digest *g;
	size_t k;

	assert_int_equal(ferry_digest_new(&g), 0);
	for (k = 0; k < 2; k++)
		ferry_digest_block_hashes(g, b[k].name, b[k].npages * PS,
					  b[k].h, b[k].npages);
	ferry_digest_final(g, out);
	ferry_digest_free(g);
}

/* Lengths are framed: moving a page from one block to the next, or a byte
 * from one name to the next, changes the digest even though the
 * concatenated names and page hashes do not.  So does cutting the same
 * bytes into pages of another size. */
static void test_framing(void **state)
{
	static uint8_t data[3 * PS];
	struct ferry_digest *g;
	struct hblock x[2], y[2];
	uint8_t a[16], b[16], wx[128], wy[128], hdr[8];
	uint64_t blk2, blk3;
	XXH128_canonical_t c;
	size_t nx, ny;

	(void)state;
	fill(data, sizeof(data), 3);
	digest_split(data, "ab", "c", 1, a);

	digest_split(data, "ab", "c", 2, b);
	assert_memory_not_equal(a, b, 16);

	digest_split(data, "a", "bc", 1, b);
	assert_memory_not_equal(a, b, 16);

	digest_split(data, "ab", "c", 1, b);
	assert_memory_equal(a, b, 16);

	/* Only the block length tells these apart: page hashes that read
	 * like the next block's name header make "blk1" [h0] + "blk2" [h1,
	 * "blk3", h2] and "blk1" [h0, "blk2", h1] + "blk3" [h2] the same
	 * bytes once the lengths are left out. */
	le32_store(hdr, 4);
	memcpy(hdr + 4, "blk2", 4);
	blk2 = le64_load(hdr);
	memcpy(hdr + 4, "blk3", 4);
	blk3 = le64_load(hdr);
	x[0] = (struct hblock){ "blk1", { 0x1111 }, 1 };
	x[1] = (struct hblock){ "blk2", { 0x2222, blk3, 0x3333 }, 3 };
	y[0] = (struct hblock){ "blk1", { 0x1111, blk2, 0x2222 }, 3 };
	y[1] = (struct hblock){ "blk3", { 0x3333 }, 1 };
	nx = hwire(x, false, wx);
	ny = hwire(y, false, wy);
	assert_int_equal(nx, ny);
	assert_memory_equal(wx, wy, nx);
	hdigest(x, a);
	hdigest(y, b);
	assert_memory_not_equal(a, b, 16);
	nx = hwire(x, true, wx);
	XXH128_canonicalFromHash(&c, XXH3_128bits(wx, nx));
	assert_memory_equal(a, c.digest, 16);

	/* one block of two 4 KiB pages is not one block of an 8 KiB page */
	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, "ab", data, 2 * PS, PS);
	ferry_digest_final(g, a);
	ferry_digest_free(g);
	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, "ab", data, 2 * PS, 2 * PS);
	ferry_digest_final(g, b);
	ferry_digest_free(g);
	assert_memory_not_equal(a, b, 16);
}

/* The digest is XXH3-128, canonical (big-endian), over length-framed
 * fields, all integers little-endian; a RAM block contributes the XXH3-64
 * of each of its pages (seed 0), not its bytes. */
#define DEF_PAGES 3
#define DEF_BIG	  130 /* more pages than digest.c batches at once */

static void test_definition(void **state)
{
	static uint8_t bdata[DEF_PAGES * PS], big[DEF_BIG * 2 * PS];
	static uint8_t wire[64 + 8 * (DEF_PAGES + DEF_BIG) + 64];
	const uint8_t sdata[3] = { 'x', 'y', 'z' };
	struct ferry_digest *g;
	XXH128_canonical_t c;
	uint8_t got[16];
	size_t n = 0, i;

	(void)state;
	fill(bdata, sizeof(bdata), 4);
	fill(big, sizeof(big), 5);
	for (i = 0; i < DEF_PAGES; i++)
		assert_true(ferry_page_hash(bdata + i * PS, PS) ==
			    XXH3_64bits(bdata + i * PS, PS));

	/* block "big", pages of 8 KiB */
	le32_store(wire + n, 3);
	memcpy(wire + n + 4, "big", 3);
	le64_store(wire + n + 7, sizeof(big));
	n += 15;
	for (i = 0; i < DEF_BIG; i++, n += 8)
		le64_store(wire + n, XXH3_64bits(big + i * 2 * PS, 2 * PS));
	/* block "ram0", pages of 4 KiB */
	le32_store(wire + n, 4);
	memcpy(wire + n + 4, "ram0", 4);
	le64_store(wire + n + 8, sizeof(bdata));
	n += 16;
	for (i = 0; i < DEF_PAGES; i++, n += 8)
		le64_store(wire + n, XXH3_64bits(bdata + i * PS, PS));
	/* section "dev" */
	le32_store(wire + n, 3);
	memcpy(wire + n + 4, "dev", 3);
	le32_store(wire + n + 7, 9);	  /* instance */
	le32_store(wire + n + 11, 0x102); /* version */
	le32_store(wire + n + 15, sizeof(sdata));
	memcpy(wire + n + 19, sdata, sizeof(sdata));
	n += 19 + sizeof(sdata);
	assert_true(n <= sizeof(wire));
	XXH128_canonicalFromHash(&c, XXH3_128bits(wire, n));

	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, "big", big, sizeof(big), 2 * PS);
	ferry_digest_block(g, "ram0", bdata, sizeof(bdata), PS);
	ferry_digest_section(g, "dev", 9, 0x102, sdata, sizeof(sdata));
	ferry_digest_final(g, got);
	ferry_digest_free(g);
	assert_memory_equal(got, c.digest, 16);
}

/* One block through ferry_digest_block and through
 * ferry_digest_block_hashes over ferry_page_hash of each page. */
static void block_both_ways(const char *name, const uint8_t *data,
			    uint64_t npages, uint32_t page_size,
			    uint8_t by_bytes[16], uint8_t by_hashes[16])
{
	struct ferry_digest *g;
	uint64_t *h = calloc(npages ? npages : 1, sizeof(*h));
	uint64_t i;

	assert_non_null(h);
	for (i = 0; i < npages; i++)
		h[i] = ferry_page_hash(data + i * page_size, page_size);

	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, name, data, npages * page_size, page_size);
	ferry_digest_section(g, "after", 0, 1, "x", 1);
	ferry_digest_final(g, by_bytes);
	ferry_digest_free(g);

	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block_hashes(g, name, npages * page_size, h, npages);
	ferry_digest_section(g, "after", 0, 1, "x", 1);
	ferry_digest_final(g, by_hashes);
	ferry_digest_free(g);
	free(h);
}

static void test_hashes_match_block(void **state)
{
	static const struct {
		uint64_t npages;
		uint32_t page_size;
	} cases[] = {
		{ 1, PS },  { 2, PS },	 { 63, PS },	{ 64, PS },
		{ 65, PS }, { 200, PS }, { 1, 2 * PS }, { 70, 2 * PS },
	};
	uint8_t prev[16] = { 0 };
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		size_t len = cases[k].npages * cases[k].page_size;
		uint8_t *data = malloc(len);
		uint8_t a[16], b[16];

		assert_non_null(data);
		fill(data, len, (uint32_t)k + 10);
		block_both_ways("pc.ram", data, cases[k].npages,
				cases[k].page_size, a, b);
		assert_memory_equal(a, b, 16);
		/* and each case is its own digest */
		assert_memory_not_equal(a, prev, 16);
		memcpy(prev, a, 16);
		free(data);
	}
}

/* A change in the last page of a block, even its last byte, reaches the
 * digest; so does the same change fed as page hashes. */
static void test_last_page(void **state)
{
	static const uint64_t npages[] = { 1, 65, 128 };
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(npages) / sizeof(npages[0]); k++) {
		size_t len = npages[k] * PS;
		uint8_t *data = malloc(len);
		uint8_t ref[16], a[16], b[16];
		size_t pos[3] = { len - PS, len - PS + 1234, len - 1 };
		size_t j;

		assert_non_null(data);
		fill(data, len, 20 + (uint32_t)k);
		block_both_ways("ram", data, npages[k], PS, ref, b);
		assert_memory_equal(ref, b, 16);
		for (j = 0; j < 3; j++) {
			data[pos[j]] ^= 0x01;
			block_both_ways("ram", data, npages[k], PS, a, b);
			assert_memory_not_equal(ref, a, 16);
			assert_memory_equal(a, b, 16);
			data[pos[j]] ^= 0x01;
		}
		block_both_ways("ram", data, npages[k], PS, a, b);
		assert_memory_equal(ref, a, 16);
		free(data);
	}
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
			f->blocks[i].host[j] = (uint8_t)(j * 7 + j / PS * 13 +
							 i); /* pages differ */
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

/* Sections as the fixture saves them, in the documented order. */
static void feed_sections(struct ferry_digest *g, const struct vm_fixture *f)
{
	ferry_digest_section(g, "cpu", 0, 4, f->st[2].data,
			     (uint32_t)f->st[2].len);
	ferry_digest_section(g, "serial", 0, 1, f->st[1].data,
			     (uint32_t)f->st[1].len);
	ferry_digest_section(g, "serial", 1, 1, f->st[0].data,
			     (uint32_t)f->st[0].len);
}

/* A block fed as page hashes. */
static void feed_hashes(struct ferry_digest *g, const struct ferry_ramblock *b,
			uint32_t page_size)
{
	uint64_t npages = b->length / page_size, i;
	uint64_t *h = calloc(npages, sizeof(*h));

	assert_non_null(h);
	for (i = 0; i < npages; i++)
		h[i] = ferry_page_hash(b->host + i * page_size, page_size);
	ferry_digest_block_hashes(g, b->name, b->length, h, npages);
	free(h);
}

/* The same digest, fed by hand in the documented order: blocks by name
 * (the fixture holds them the other way round), sections by name then
 * instance, pages of vm->page_size. */
static void test_vm_matches_manual(void **state)
{
	struct ferry_digest *g;
	struct vm_fixture f;
	uint8_t a[16], b[16], c[16];

	(void)state;
	vm_setup(&f);
	vm_digest_ok(&f.vm, a);

	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, "bios", f.blocks[1].host, f.blocks[1].length, PS);
	ferry_digest_block(g, "pc.ram", f.blocks[0].host, f.blocks[0].length,
			   PS);
	feed_sections(g, &f);
	ferry_digest_final(g, b);
	ferry_digest_free(g);
	assert_memory_equal(a, b, 16);

	/* the same from page hashes */
	assert_int_equal(ferry_digest_new(&g), 0);
	feed_hashes(g, &f.blocks[1], PS);
	feed_hashes(g, &f.blocks[0], PS);
	feed_sections(g, &f);
	ferry_digest_final(g, b);
	ferry_digest_free(g);
	assert_memory_equal(a, b, 16);

	/* the wrong order is another digest */
	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, "pc.ram", f.blocks[0].host, f.blocks[0].length,
			   PS);
	ferry_digest_block(g, "bios", f.blocks[1].host, f.blocks[1].length, PS);
	feed_sections(g, &f);
	ferry_digest_final(g, b);
	ferry_digest_free(g);
	assert_memory_not_equal(a, b, 16);

	/* pages of vm->page_size: "pc.ram" alone, in 8 KiB pages */
	f.vm.nblocks = 1;
	f.vm.page_size = 2 * PS;
	vm_digest_ok(&f.vm, a);
	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, "pc.ram", f.blocks[0].host, f.blocks[0].length,
			   2 * PS);
	feed_sections(g, &f);
	ferry_digest_final(g, b);
	ferry_digest_free(g);
	assert_memory_equal(a, b, 16);
	assert_int_equal(ferry_digest_new(&g), 0);
	ferry_digest_block(g, "pc.ram", f.blocks[0].host, f.blocks[0].length,
			   PS);
	feed_sections(g, &f);
	ferry_digest_final(g, c);
	ferry_digest_free(g);
	assert_memory_not_equal(a, c, 16);
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

	/* two pages of a block trading places */
	{
		uint8_t *ram = f.blocks[0].host;
		uint8_t tmp[PS];

		memcpy(tmp, ram, PS);
		memcpy(ram, ram + PS, PS);
		memcpy(ram + PS, tmp, PS);
		vm_digest_ok(&f.vm, got);
		assert_memory_not_equal(ref, got, 16);
		memcpy(ram + PS, ram, PS);
		memcpy(ram, tmp, PS);
	}

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
		cmocka_unit_test(test_hashes_match_block),
		cmocka_unit_test(test_last_page),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_vm_matches_manual),
		cmocka_unit_test(test_vm_order_independent),
		cmocka_unit_test(test_vm_sensitive),
		cmocka_unit_test(test_vm_save_fails),
		cmocka_unit_test(test_vm_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
