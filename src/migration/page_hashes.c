/*
 * page_hashes.c - page hashes for the digest, kept by both sides of the engine
 * (docs/stream.md, "The digest").
 */
#include <errno.h>
#include <stdlib.h>

#include "migration_internal.h"

int page_hashes_init(struct page_hashes *ph, const struct ferry_vm *vm,
		     struct ferry_error *err)
{
	uint8_t *zero = calloc(1, vm->page_size);
	size_t i;

	ph->h = calloc(vm->nblocks, sizeof(*ph->h));
	ph->exact = calloc(vm->nblocks, sizeof(*ph->exact));
	if (!zero || !ph->h || !ph->exact)
		goto oom;
	ph->zero = ferry_page_hash(zero, vm->page_size);
	free(zero);
	zero = NULL;
	for (i = 0; i < vm->nblocks; i++) {
		uint64_t n = vm->blocks[i].length / vm->page_size;

		ph->h[i] = calloc(n, sizeof(uint64_t));
		ph->exact[i] = calloc((n + 63) / 64, sizeof(uint64_t));
		if (!ph->h[i] || !ph->exact[i])
			goto oom;
	}
	return 0;
oom:
	free(zero);
	page_hashes_free(ph, vm);
	return ferry_error_set(err, -ENOMEM,
			       "out of memory for page hashes (8 bytes per "
			       "page)");
}

void page_hashes_free(struct page_hashes *ph, const struct ferry_vm *vm)
{
	size_t i;

	for (i = 0; i < vm->nblocks; i++) {
		if (ph->h)
			free(ph->h[i]);
		if (ph->exact)
			free(ph->exact[i]);
	}
	free(ph->h);
	free(ph->exact);
	ph->h = NULL;
	ph->exact = NULL;
}
