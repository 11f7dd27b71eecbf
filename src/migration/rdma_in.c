/*
 * rdma_in.c - the destination's pages over rdma (arrival.h, docs/rdma.md).
 *
 * The transport's own listener and connection; the stream comes on the
 * connection's socket like any other, pages land by RDMA WRITE in RAM
 * that rdma.c registered (the engine never sees them), and zero messages
 * go to the placer.  After each pass the source names the pages it wrote
 * (landed records), and they are hashed for the digest while the guest
 * still runs there; when the stream ends the keys are revoked, so that
 * nothing lands after.  A source that names nothing (no landed flag) has
 * all of RAM hashed then instead.
 */
#include <errno.h>
#include <stdlib.h>

#include "arrival.h"
#include "migration_internal.h"
#include "placer.h"
#include "rdma.h"
#include "transport.h"

static int rdma_in_listen(struct ferry_migration *m, const char *uri,
			  const char *addr, char *bound, size_t len,
			  struct ferry_error *err)
{
	struct ferry_mig_params p;

	(void)uri;
	ferry_migration_get_params(m, &p);
	return rdma_transport_listen(addr, p.rdma_provider, &m->rdma_listener,
				     bound, len, err);
}

/* Its zero messages, on its pump thread: the placer writes them. */
static void rdma_zeroed(void *opaque, unsigned block, uint64_t off,
			uint64_t len)
{
	const struct ferry_migration *m = opaque;

	placer_zero(m->vm, block, off, len);
}

static void rdma_in_stats(struct ferry_migration *m)
{
	if (!m->rdma) /* closed by a post-copy recovery over tcp: or unix: */
		return;
	pthread_mutex_lock(&m->lock);
	mig_rdma_stats(m->rdma, &m->stats);
	pthread_mutex_unlock(&m->lock);
}

static int rdma_in_accept(struct ferry_migration *m,
			  struct transport_screen *sc, struct transport_conn *c,
			  struct ferry_error *err)
{
	const struct ferry_vm *vm = m->vm;
	struct rdma_ram *ram = mig_rdma_ram(vm);
	const struct rdma_dest_hooks hooks = { .refused = mig_refused,
					       .zero = rdma_zeroed,
					       .opaque = m };
	int rc;

	(void)sc;
	if (!ram)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	rc = rdma_transport_accept(m->rdma_listener, ram, vm->nblocks, -1,
				   &m->cancel, &hooks, &m->rdma, err);
	free(ram);
	rdma_listener_close(m->rdma_listener);
	m->rdma_listener = NULL;
	if (rc)
		return rc;
	*c = (struct transport_conn){ .fd = rdma_stream_fd(m->rdma) };
	rdma_in_stats(m);
	return 0;
}

/* Post-copy's urgent connection: the connection's urgent stream. */
static int rdma_in_channel(struct ferry_migration *m, unsigned i,
			   struct transport_conn *c, struct ferry_error *err)
{
	if (i)
		return ferry_error_set(err, -EPROTO,
				       "rdma: the source announced more page "
				       "channels than post-copy's urgent one");
	*c = (struct transport_conn){ .fd = rdma_urgent_fd(m->rdma) };
	return 0;
}

/* Post-copy: from its discards on, pages come in the streams and are
 * placed through userfaultfd; no remote write may touch RAM a vCPU reads
 * unplaced (or, pinned, that a discard gives new frames). */
static void rdma_in_quiesce(struct ferry_migration *m)
{
	if (!m->rdma)
		return;
	rdma_revoke(m->rdma);
	rdma_in_stats(m);
}

static void hash_pages(const struct ferry_vm *vm, struct page_hashes *ph,
		       uint32_t bi, uint64_t first, uint64_t count)
{
	const uint8_t *p = vm->blocks[bi].host + first * vm->page_size;

	for (uint64_t k = first; k < first + count; k++, p += vm->page_size)
		ph->h[bi][k] = ferry_page_hash(p, vm->page_size);
}

/* The source's writes of a pass are complete when it names them: hashed
 * now, while the guest still runs there, so that at the switch-over only
 * the last pass's pages are (docs/rdma.md, "Switch-over"). */
static void rdma_in_landed(struct ferry_migration *m, struct page_hashes *ph,
			   const struct ferry_stream_range *r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		hash_pages(m->vm, ph, r[i].ram_index, r[i].first, r[i].count);
}

static int rdma_in_settle(struct ferry_migration *m, struct page_hashes *ph,
			  bool hash, struct ferry_error *err)
{
	const struct ferry_vm *vm = m->vm;

	(void)err;
	if (m->rdma)
		rdma_revoke(m->rdma);
	rdma_in_stats(m);
	for (unsigned i = 0; hash && i < vm->nblocks; i++)
		hash_pages(vm, ph, i, 0, vm->blocks[i].length / vm->page_size);
	return 0;
}

static void rdma_in_explain(struct ferry_migration *m, struct ferry_error *err)
{
	if (m->rdma)
		rdma_explain(m->rdma, err);
}

static void rdma_in_close(struct ferry_migration *m)
{
	if (m->rdma) {
		rdma_in_stats(m);
		rdma_close(m->rdma); /* after the verdict went out */
		m->rdma = NULL;
	}
	rdma_listener_close(m->rdma_listener);
	m->rdma_listener = NULL;
}

const struct page_arrival_ops arrival_rdma = {
	.name = "rdma",
	.listen = rdma_in_listen,
	.accept = rdma_in_accept,
	.channel = rdma_in_channel,
	.quiesce = rdma_in_quiesce,
	.landed = rdma_in_landed,
	.settle = rdma_in_settle,
	.explain = rdma_in_explain,
	.close = rdma_in_close,
};
