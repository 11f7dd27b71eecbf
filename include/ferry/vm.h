/*
 * ferry/vm.h - what the engine sees of a guest.
 *
 * The engine does not know what a guest is.  A VMM (the reference guest in
 * src/machine/reference/, a KVM guest, a user's own) describes itself with a
 * `struct ferry_vm`: RAM blocks, device-state sections, run control and a
 * dirty tracker.  Everything the engine moves goes through these.
 */
#ifndef FERRY_VM_H
#define FERRY_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ferry/error.h"

#define FERRY_NAME_MAX 255 /* longest RAM block or section name, in bytes */

/* One contiguous range of guest RAM in this process. */
struct ferry_ramblock {
	uint32_t id;		       /* unique within the guest */
	char name[FERRY_NAME_MAX + 1]; /* unique, NUL-terminated */
	uint8_t *host;		       /* page-aligned mapping */
	uint64_t length;	       /* bytes, a multiple of the page size */
};

/* A growable byte buffer; device sections save into one. */
struct ferry_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

int ferry_buf_reserve(struct ferry_buf *b, size_t extra);
int ferry_buf_put(struct ferry_buf *b, const void *p, size_t n);
int ferry_buf_put_le32(struct ferry_buf *b, uint32_t v);
int ferry_buf_put_le64(struct ferry_buf *b, uint64_t v);
void ferry_buf_reset(struct ferry_buf *b);
void ferry_buf_free(struct ferry_buf *b);

/*
 * A device-state section: saved while the guest is stopped, loaded into a
 * stopped guest on the destination.  `load` must check everything it reads:
 * the bytes come off the wire.
 */
struct ferry_section {
	const char *name;
	uint32_t instance;
	uint32_t version;
	int (*save)(void *opaque, struct ferry_buf *out);
	int (*load)(void *opaque, uint32_t version, const uint8_t *data,
		    size_t len, struct ferry_error *err);
	void *opaque;
};

/*
 * Run control.  stop returns once every vCPU is parked.  The rest are
 * optional (NULL when a guest cannot do them): whether vCPUs run; throttle
 * vCPUs to run only (100 - percent)% of the time (auto-converge); the
 * guest's own longest stall in microseconds since the last reset (the
 * reference guest's heartbeat); which of its `nvcpus` vCPUs the thread
 * `tid` (gettid()) is, 0 to nvcpus - 1, or -1 for a thread that is not a
 * vCPU: post-copy's blocktime per vCPU (QEMU's postcopy-vcpu-blocktime),
 * asked from the engine's fault thread for each fault on a missing page.
 */
struct ferry_runctl {
	int (*stop)(void *opaque);
	int (*resume)(void *opaque);
	bool (*running)(void *opaque);
	void (*throttle)(void *opaque, unsigned percent);
	uint64_t (*stall_us)(void *opaque, bool reset);
	int (*vcpu_of)(void *opaque, pid_t tid);
	unsigned nvcpus; /* with vcpu_of; at most FERRY_MIG_MAX_VCPUS count */
	void *opaque;
};

struct ferry_dirty;

struct ferry_vm {
	uint32_t page_size;
	const struct ferry_ramblock *blocks;
	size_t nblocks;
	const struct ferry_section *sections;
	size_t nsections;
	struct ferry_runctl runctl;
	struct ferry_dirty *dirty; /* may be NULL when nothing tracks writes */
};

/*
 * XXH3-128 digest of all RAM and all device sections, as docs/stream.md
 * defines it.  The guest must be stopped.  `out` receives the canonical
 * (big-endian) 16 bytes that the end-of-stream record carries.
 */
int ferry_vm_digest(const struct ferry_vm *vm, uint8_t out[16],
		    struct ferry_error *err);

/*
 * The same digest from page hashes already known: hashes[i][p] is
 * ferry_page_hash() of page p of vm->blocks[i].  The engine keeps these as
 * it sends or places pages, so the digest at switch-over costs a pass over
 * 8 bytes per page, not over all of RAM.
 */
int ferry_vm_digest_hashes(const struct ferry_vm *vm, uint64_t *const *hashes,
			   uint8_t out[16], struct ferry_error *err);

/*
 * The same, with each device section as it was saved earlier (saved[i]
 * for vm->sections[i]) instead of as it is now: post-copy's destination
 * keeps its sections as loaded, since the guest runs on before the last
 * page arrives.
 */
int ferry_vm_digest_saved(const struct ferry_vm *vm, uint64_t *const *hashes,
			  const struct ferry_buf *saved, uint8_t out[16],
			  struct ferry_error *err);

#endif
