/*
 * test_hart_state.c - the "riscv-hart" section: a hart saved and loaded
 * into another is the same hart, and a section it could not have come
 * from is refused, naming the field, with nothing of it written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hart_state.h"
#include "le.h"

#define MISA_RV64GCSU                                                   \
	((2ull << 62) | (1u << 0) | (1u << 2) | (1u << 3) | (1u << 5) | \
	 (1u << 8) | (1u << 12) | (1u << 18) | (1u << 20))

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A hart with every field random but legal. */
static void fill(struct rv_hart *h, unsigned id, uint64_t seed)
{
	unsigned i;

	memset(h, 0, sizeof(*h));
	h->id = id;
	h->misa = MISA_RV64GCSU;
	for (i = 1; i < 32; i++)
		h->x[i] = rnd(&seed);
	for (i = 0; i < 32; i++)
		h->f[i] = rnd(&seed);
	h->pc = 0x80200000 + (rnd(&seed) & 0xffffe);
	h->priv = RV_PRIV_S;
	h->fcsr = (3 << 5) | 0x11;
	h->mstatus = (1ull << RV_MSTATUS_MPP_SHIFT) | RV_MSTATUS_SIE |
		     (3ull << RV_MSTATUS_FS_SHIFT);
	h->medeleg = 0xb1ff;
	h->mideleg = 0x222;
	h->mie = 0xaaa;
	atomic_store(&h->mip, 0x22);
	h->mtvec = rnd(&seed) & ~3ull;
	h->mscratch = rnd(&seed);
	h->mepc = rnd(&seed) & ~1ull;
	h->mcause = 9;
	h->mtval = rnd(&seed);
	h->mcounteren = 7;
	h->menvcfg = 1ull << 63;
	h->mcountinhibit = 0;
	h->stvec = 0xffffffff80001000ull;
	h->sscratch = rnd(&seed);
	h->sepc = rnd(&seed) & ~1ull;
	h->scause = RV_CAUSE_INTERRUPT | RV_IRQ_STI;
	h->stval = rnd(&seed);
	h->satp = (9ull << 60) | (rnd(&seed) & 0xfffffffffffull);
	h->scounteren = 2;
	h->cycle = rnd(&seed);
	h->instret = rnd(&seed);
	h->wfi = true;
}

static void save(const struct rv_hart *h, struct ferry_buf *b)
{
	memset(b, 0, sizeof(*b));
	assert_int_equal(rv_hart_save(h, b), 0);
}

static void blank(struct rv_hart *h, unsigned id)
{
	unsigned i;

	memset(h, 0, sizeof(*h));
	h->id = id;
	h->misa = MISA_RV64GCSU;
	h->lr_valid = true;
	h->lr_addr = 0x80001000;
	for (i = 0; i < RV_TLB_SIZE; i++)
		h->tlb[i].vpn = i;
}

static void test_round_trip(void **state)
{
	struct rv_hart a, b;
	struct ferry_error err = { 0 };
	struct ferry_buf buf;
	unsigned i;

	(void)state;
	fill(&a, 2, 99);
	save(&a, &buf);
	blank(&b, 2);
	assert_int_equal(rv_hart_load(&b, RV_HART_SECTION_VERSION, buf.data,
				      buf.len, &err),
			 0);
	assert_memory_equal(a.x, b.x, sizeof(a.x));
	assert_memory_equal(a.f, b.f, sizeof(a.f));
	assert_int_equal(a.pc, b.pc);
	assert_int_equal(a.priv, b.priv);
	assert_int_equal(a.fcsr, b.fcsr);
	assert_int_equal(a.mstatus, b.mstatus);
	assert_int_equal(a.medeleg, b.medeleg);
	assert_int_equal(a.mideleg, b.mideleg);
	assert_int_equal(a.mie, b.mie);
	assert_int_equal(atomic_load(&a.mip), atomic_load(&b.mip));
	assert_int_equal(a.mtvec, b.mtvec);
	assert_int_equal(a.mscratch, b.mscratch);
	assert_int_equal(a.mepc, b.mepc);
	assert_int_equal(a.mcause, b.mcause);
	assert_int_equal(a.mtval, b.mtval);
	assert_int_equal(a.mcounteren, b.mcounteren);
	assert_int_equal(a.menvcfg, b.menvcfg);
	assert_int_equal(a.stvec, b.stvec);
	assert_int_equal(a.sscratch, b.sscratch);
	assert_int_equal(a.sepc, b.sepc);
	assert_int_equal(a.scause, b.scause);
	assert_int_equal(a.stval, b.stval);
	assert_int_equal(a.satp, b.satp);
	assert_int_equal(a.scounteren, b.scounteren);
	assert_int_equal(a.cycle, b.cycle);
	assert_int_equal(a.instret, b.instret);
	assert_true(b.wfi);
	/* what does not travel */
	assert_false(b.lr_valid);
	for (i = 0; i < RV_TLB_SIZE; i++)
		assert_int_equal(b.tlb[i].vpn, UINT64_MAX);
	/* and saved again, the same bytes */
	{
		struct ferry_buf again;

		save(&b, &again);
		assert_int_equal(again.len, buf.len);
		assert_memory_equal(again.data, buf.data, buf.len);
		ferry_buf_free(&again);
	}
	ferry_buf_free(&buf);
}

/* Load `buf` into a blank hart 2, expecting refusal with `want` in the
 * message and the hart untouched. */
static void refused(const uint8_t *data, size_t len, uint32_t version,
		    const char *want)
{
	struct rv_hart b, before;
	struct ferry_error err = { 0 };

	blank(&b, 2);
	before = b;
	assert_int_not_equal(rv_hart_load(&b, version, data, len, &err), 0);
	if (!strstr(ferry_error_msg(&err), want))
		fail_msg("message \"%s\" does not name \"%s\"",
			 ferry_error_msg(&err), want);
	assert_memory_equal(&b, &before, sizeof(b));
}

static void test_bad_length_and_version(void **state)
{
	struct rv_hart a;
	struct ferry_buf buf;

	(void)state;
	fill(&a, 2, 1);
	save(&a, &buf);
	refused(buf.data, buf.len - 1, RV_HART_SECTION_VERSION, "bytes");
	refused(buf.data, 0, RV_HART_SECTION_VERSION, "bytes");
	refused(buf.data, buf.len, RV_HART_SECTION_VERSION + 1, "version");
	ferry_buf_free(&buf);
}

static void test_wrong_hart(void **state)
{
	struct rv_hart a;
	struct ferry_buf buf;

	(void)state;
	fill(&a, 3, 1);
	save(&a, &buf);
	refused(buf.data, buf.len, RV_HART_SECTION_VERSION, "hart 3");
	ferry_buf_free(&buf);
}

/* Byte offset of CSR number `index` (in the order of the layout) */
#define CSR_OFF(index) (16 + 8 * (1 + 31 + 32) + 8 * (index))

static void test_impossible_fields(void **state)
{
	struct rv_hart a;
	struct ferry_buf buf;
	uint8_t *copy;

	(void)state;
	fill(&a, 2, 5);
	save(&a, &buf);
	copy = malloc(buf.len);
	assert_non_null(copy);

	memcpy(copy, buf.data, buf.len);
	le32_store(copy + 4, 2); /* no such privilege level */
	refused(copy, buf.len, RV_HART_SECTION_VERSION, "privilege");

	memcpy(copy, buf.data, buf.len);
	le32_store(copy + 8, 5 << 5); /* rounding mode 5 */
	refused(copy, buf.len, RV_HART_SECTION_VERSION, "fcsr");

	memcpy(copy, buf.data, buf.len);
	le32_store(copy + 12, 6);
	refused(copy, buf.len, RV_HART_SECTION_VERSION, "flags");

	memcpy(copy, buf.data, buf.len);
	le64_store(copy + 16, 0x80200001); /* odd pc */
	refused(copy, buf.len, RV_HART_SECTION_VERSION, "pc");

	memcpy(copy, buf.data, buf.len);
	le64_store(copy + CSR_OFF(1), MISA_RV64GCSU | (1u << 21)); /* +V */
	refused(copy, buf.len, RV_HART_SECTION_VERSION, "misa");

	memcpy(copy, buf.data, buf.len);
	le64_store(copy + CSR_OFF(0), 2ull << RV_MSTATUS_MPP_SHIFT);
	refused(copy, buf.len, RV_HART_SECTION_VERSION, "MPP");

	memcpy(copy, buf.data, buf.len);
	le64_store(copy + CSR_OFF(19), 10ull << 60); /* Sv57 */
	refused(copy, buf.len, RV_HART_SECTION_VERSION, "satp mode");

	free(copy);
	ferry_buf_free(&buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_bad_length_and_version),
		cmocka_unit_test(test_wrong_hart),
		cmocka_unit_test(test_impossible_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
