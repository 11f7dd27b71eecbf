/*
 * vm.c - operations on any `struct ferry_vm`, whatever guest is behind it:
 * the digest of RAM and device state (docs/stream.md, "The digest").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/stream.h"
#include "ferry/vm.h"

static int cmp_block(const void *a, const void *b)
{
	const struct ferry_ramblock *x =
		*(const struct ferry_ramblock *const *)a;
	const struct ferry_ramblock *y =
		*(const struct ferry_ramblock *const *)b;

	return strcmp(x->name, y->name);
}

static int cmp_section(const void *a, const void *b)
{
	const struct ferry_section *x = *(const struct ferry_section *const *)a;
	const struct ferry_section *y = *(const struct ferry_section *const *)b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->instance < y->instance ? -1 : x->instance > y->instance;
}

int ferry_vm_digest(const struct ferry_vm *vm, uint8_t out[16],
		    struct ferry_error *err)
{
	return ferry_vm_digest_hashes(vm, NULL, out, err);
}

int ferry_vm_digest_hashes(const struct ferry_vm *vm, uint64_t *const *hashes,
			   uint8_t out[16], struct ferry_error *err)
{
	return ferry_vm_digest_saved(vm, hashes, NULL, out, err);
}

int ferry_vm_digest_saved(const struct ferry_vm *vm, uint64_t *const *hashes,
			  const struct ferry_buf *saved, uint8_t out[16],
			  struct ferry_error *err)
{
	const struct ferry_ramblock **blocks = NULL;
	const struct ferry_section **secs = NULL;
	struct ferry_digest *g = NULL;
	struct ferry_buf buf = { 0 };
	size_t i;
	int rc;

	blocks = calloc(vm->nblocks + 1, sizeof(*blocks));
	secs = calloc(vm->nsections + 1, sizeof(*secs));
	rc = ferry_digest_new(&g);
	if (!blocks || !secs || rc) {
		rc = ferry_error_set(err, -ENOMEM, "digest: out of memory");
		goto out;
	}
	for (i = 0; i < vm->nblocks; i++)
		blocks[i] = &vm->blocks[i];
	for (i = 0; i < vm->nsections; i++)
		secs[i] = &vm->sections[i];
	qsort(blocks, vm->nblocks, sizeof(*blocks), cmp_block);
	qsort(secs, vm->nsections, sizeof(*secs), cmp_section);
	for (i = 0; i < vm->nblocks; i++) {
		const struct ferry_ramblock *b = blocks[i];

		if (hashes)
			ferry_digest_block_hashes(g, b->name, b->length,
						  hashes[b - vm->blocks],
						  b->length / vm->page_size);
		else
			ferry_digest_block(g, b->name, b->host, b->length,
					   vm->page_size);
	}
	for (i = 0; i < vm->nsections; i++) {
		const struct ferry_section *s = secs[i];

		if (saved) {
			const struct ferry_buf *b = &saved[s - vm->sections];

			ferry_digest_section(g, s->name, s->instance,
					     s->version, b->data,
					     (uint32_t)b->len);
			continue;
		}
		ferry_buf_reset(&buf);
		rc = s->save(s->opaque, &buf);
		if (rc) {
			rc = ferry_error_set(err, rc,
					     "digest: saving section "
					     "%s.%u: %s",
					     s->name, s->instance,
					     strerror(-rc));
			goto out;
		}
		ferry_digest_section(g, s->name, s->instance, s->version,
				     buf.data, (uint32_t)buf.len);
	}
	ferry_digest_final(g, out);
	rc = 0;
out:
	ferry_buf_free(&buf);
	ferry_digest_free(g);
	free(secs);
	free(blocks);
	return rc;
}
