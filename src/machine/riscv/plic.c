/*
 * plic.c - the SiFive PLIC at 0xc000000, laid out as QEMU's virt:
 * priorities from 0x0 (4 bytes a source), the pending bits at 0x1000,
 * each context's enable bits at 0x2000 + 0x80 * ctx, and its threshold
 * and claim/complete register at 0x200000 + 0x1000 * ctx.  Hart N has
 * context 2N for M mode and 2N + 1 for S mode; a context's line is MEIP
 * or SEIP of its hart.
 *
 * Sources are level-triggered, as the UART's line is: a source is
 * pending while its line is high and it is not claimed; a claim takes it
 * out of pending until its completion, after which a line still high
 * makes it pending again.
 */
#include <errno.h>
#include <string.h>

#include "devices.h"
#include "le.h"

#define PRIO_BASE      0x0
#define PENDING_BASE   0x1000
#define ENABLE_BASE    0x2000
#define ENABLE_STRIDE  0x80
#define CONTEXT_BASE   0x200000
#define CONTEXT_STRIDE 0x1000

static bool bit(const uint32_t *w, unsigned i)
{
	return (w[i / 32] >> (i % 32)) & 1;
}

static void set_bit(uint32_t *w, unsigned i, bool v)
{
	if (v)
		w[i / 32] |= 1u << (i % 32);
	else
		w[i / 32] &= ~(1u << (i % 32));
}

/* The best source context ctx could claim: highest priority, then
 * lowest id; 0 when none.  Priority 0 never interrupts. */
static unsigned best(const struct rv_plic *p, unsigned ctx, uint32_t *prio)
{
	unsigned w, i, id = 0;
	uint32_t max = 0, m;

	for (w = 0; w < RV_PLIC_WORDS; w++) {
		m = p->pending[w] & p->enable[ctx][w];
		while (m) {
			i = w * 32 + (unsigned)__builtin_ctz(m);
			m &= m - 1;
			if (p->prio[i] > max) {
				max = p->prio[i];
				id = i;
			}
		}
	}
	*prio = max;
	return id;
}

/* Drive each context's line from its best source and threshold; with
 * force, drive every line whether it changed or not. */
static void update(struct rv_plic *p, bool force)
{
	unsigned ctx;
	uint32_t prio;
	bool level;

	for (ctx = 0; ctx < p->nctx; ctx++) {
		level = best(p, ctx, &prio) && prio > p->threshold[ctx];
		if (level == p->out[ctx] && !force)
			continue;
		p->out[ctx] = level;
		if (p->set_irq)
			p->set_irq(p->opaque, ctx, level);
	}
}

void rv_plic_init(struct rv_plic *p, unsigned nharts,
		  void (*set_irq)(void *, unsigned, bool), void *opaque)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->nctx = 2 * nharts;
	p->set_irq = set_irq;
	p->opaque = opaque;
}

void rv_plic_destroy(struct rv_plic *p)
{
	pthread_mutex_destroy(&p->lock);
}

void rv_plic_set_level(struct rv_plic *p, unsigned src, bool level)
{
	if (!src || src >= RV_PLIC_NSRC)
		return;
	pthread_mutex_lock(&p->lock);
	set_bit(p->level, src, level);
	if (!level)
		set_bit(p->pending, src, false);
	else if (!bit(p->claimed, src))
		set_bit(p->pending, src, true);
	update(p, false);
	pthread_mutex_unlock(&p->lock);
}

static uint32_t claim(struct rv_plic *p, unsigned ctx)
{
	uint32_t prio;
	unsigned id = best(p, ctx, &prio);

	if (id) {
		set_bit(p->pending, id, false);
		set_bit(p->claimed, id, true);
	}
	update(p, false);
	return id;
}

static void complete(struct rv_plic *p, unsigned ctx, uint32_t id)
{
	/* the spec ignores a completion of a source not enabled here */
	if (!id || id >= RV_PLIC_NSRC || !bit(p->enable[ctx], id))
		return;
	set_bit(p->claimed, id, false);
	if (bit(p->level, id))
		set_bit(p->pending, id, true);
	update(p, false);
}

uint64_t rv_plic_read(void *opaque, uint64_t off, unsigned size)
{
	struct rv_plic *p = opaque;
	uint64_t v = 0;
	unsigned ctx;

	(void)size; /* registers are 32 bits; wider reads see the low one */
	pthread_mutex_lock(&p->lock);
	if (off < PENDING_BASE) {
		if (off / 4 < RV_PLIC_NSRC)
			v = p->prio[off / 4];
	} else if (off < ENABLE_BASE) {
		if ((off - PENDING_BASE) / 4 < RV_PLIC_WORDS)
			v = p->pending[(off - PENDING_BASE) / 4];
	} else if (off < CONTEXT_BASE) {
		ctx = (off - ENABLE_BASE) / ENABLE_STRIDE;
		off = (off - ENABLE_BASE) % ENABLE_STRIDE / 4;
		if (ctx < p->nctx && off < RV_PLIC_WORDS)
			v = p->enable[ctx][off];
	} else {
		ctx = (off - CONTEXT_BASE) / CONTEXT_STRIDE;
		off = (off - CONTEXT_BASE) % CONTEXT_STRIDE;
		if (ctx < p->nctx && off == 0)
			v = p->threshold[ctx];
		else if (ctx < p->nctx && off == 4)
			v = claim(p, ctx);
	}
	pthread_mutex_unlock(&p->lock);
	return v;
}

void rv_plic_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct rv_plic *p = opaque;
	uint32_t v = (uint32_t)val;
	unsigned ctx;

	(void)size;
	pthread_mutex_lock(&p->lock);
	if (off < PENDING_BASE) {
		if (off / 4 && off / 4 < RV_PLIC_NSRC) {
			p->prio[off / 4] = v & RV_PLIC_PRIO_MASK;
			update(p, false);
		}
	} else if (off < ENABLE_BASE) {
		/* pending is read-only: the gateways set it */
	} else if (off < CONTEXT_BASE) {
		ctx = (off - ENABLE_BASE) / ENABLE_STRIDE;
		off = (off - ENABLE_BASE) % ENABLE_STRIDE / 4;
		if (ctx < p->nctx && off < RV_PLIC_WORDS) {
			p->enable[ctx][off] = off ? v
						  : v & ~1u; /* no source 0 */
			update(p, false);
		}
	} else {
		ctx = (off - CONTEXT_BASE) / CONTEXT_STRIDE;
		off = (off - CONTEXT_BASE) % CONTEXT_STRIDE;
		if (ctx < p->nctx && off == 0) {
			p->threshold[ctx] = v & RV_PLIC_PRIO_MASK;
			update(p, false);
		} else if (ctx < p->nctx && off == 4) {
			complete(p, ctx, v);
		}
	}
	pthread_mutex_unlock(&p->lock);
}

/*
 * Saved, all le32: the number of sources and of contexts, each source's
 * priority, the pending, claimed and line bit words, each context's
 * enable words, each context's threshold.
 */
static size_t save_len(unsigned nctx)
{
	return 4 * (2 + RV_PLIC_NSRC + 3 * RV_PLIC_WORDS +
		    (size_t)nctx * (RV_PLIC_WORDS + 1));
}

int rv_plic_save(struct rv_plic *p, struct ferry_buf *out)
{
	unsigned i, c;
	int rc;

	pthread_mutex_lock(&p->lock);
	rc = ferry_buf_reserve(out, save_len(p->nctx));
	if (rc)
		goto out;
	ferry_buf_put_le32(out, RV_PLIC_NSRC);
	ferry_buf_put_le32(out, p->nctx);
	for (i = 0; i < RV_PLIC_NSRC; i++)
		ferry_buf_put_le32(out, p->prio[i]);
	for (i = 0; i < RV_PLIC_WORDS; i++)
		ferry_buf_put_le32(out, p->pending[i]);
	for (i = 0; i < RV_PLIC_WORDS; i++)
		ferry_buf_put_le32(out, p->claimed[i]);
	for (i = 0; i < RV_PLIC_WORDS; i++)
		ferry_buf_put_le32(out, p->level[i]);
	for (c = 0; c < p->nctx; c++)
		for (i = 0; i < RV_PLIC_WORDS; i++)
			ferry_buf_put_le32(out, p->enable[c][i]);
	for (c = 0; c < p->nctx; c++)
		ferry_buf_put_le32(out, p->threshold[c]);
out:
	pthread_mutex_unlock(&p->lock);
	return rc;
}

static int load_words(const uint8_t **d, uint32_t *w, const char *what,
		      struct ferry_error *err)
{
	unsigned i;

	for (i = 0; i < RV_PLIC_WORDS; i++, *d += 4)
		w[i] = le32_load(*d);
	if (w[0] & 1)
		return ferry_error_set(err, -EINVAL,
				       "plic: source 0 set in the %s bits",
				       what);
	return 0;
}

int rv_plic_load(struct rv_plic *p, const uint8_t *data, size_t len,
		 struct ferry_error *err)
{
	uint32_t prio[RV_PLIC_NSRC], pending[RV_PLIC_WORDS],
		claimed[RV_PLIC_WORDS], level[RV_PLIC_WORDS],
		enable[RV_PLIC_NCTX][RV_PLIC_WORDS], threshold[RV_PLIC_NCTX];
	const uint8_t *d = data;
	uint32_t nsrc, nctx;
	unsigned i, c;
	int rc;

	if (len < 8)
		return ferry_error_set(err, -EINVAL,
				       "plic: state of %zu bytes, too short",
				       len);
	nsrc = le32_load(d);
	nctx = le32_load(d + 4);
	d += 8;
	if (nsrc != RV_PLIC_NSRC)
		return ferry_error_set(err, -EINVAL,
				       "plic: %u sources, this PLIC has %d",
				       nsrc, RV_PLIC_NSRC);
	if (nctx != p->nctx)
		return ferry_error_set(err, -EINVAL,
				       "plic: %u contexts, this machine has %u",
				       nctx, p->nctx);
	if (len != save_len(nctx))
		return ferry_error_set(err, -EINVAL,
				       "plic: state of %zu bytes, want %zu",
				       len, save_len(nctx));
	for (i = 0; i < RV_PLIC_NSRC; i++, d += 4) {
		prio[i] = le32_load(d);
		if (prio[i] > RV_PLIC_PRIO_MASK || (i == 0 && prio[i]))
			return ferry_error_set(
				err, -EINVAL, "plic: source %u has priority %u",
				i, prio[i]);
	}
	rc = load_words(&d, pending, "pending", err);
	if (!rc)
		rc = load_words(&d, claimed, "claimed", err);
	if (!rc)
		rc = load_words(&d, level, "line", err);
	for (c = 0; !rc && c < nctx; c++)
		rc = load_words(&d, enable[c], "enable", err);
	if (rc)
		return rc;
	for (c = 0; c < nctx; c++, d += 4) {
		threshold[c] = le32_load(d);
		if (threshold[c] > RV_PLIC_PRIO_MASK)
			return ferry_error_set(
				err, -EINVAL,
				"plic: context %u has threshold %u", c,
				threshold[c]);
	}
	for (i = 0; i < RV_PLIC_WORDS; i++)
		if (pending[i] & claimed[i])
			return ferry_error_set(
				err, -EINVAL,
				"plic: a source both pending and claimed (word %u)",
				i);

	pthread_mutex_lock(&p->lock);
	memcpy(p->prio, prio, sizeof(prio));
	memcpy(p->pending, pending, sizeof(pending));
	memcpy(p->claimed, claimed, sizeof(claimed));
	memcpy(p->level, level, sizeof(level));
	for (c = 0; c < nctx; c++) {
		memcpy(p->enable[c], enable[c], sizeof(enable[c]));
		p->threshold[c] = threshold[c];
	}
	update(p, true);
	pthread_mutex_unlock(&p->lock);
	return 0;
}
