/*
 * vm.h - the RISC-V machine as the engine sees it: a struct ferry_vm
 * with one RAM block, a section per hart and per device, run control and
 * a dirty tracker.  What a VMM embedding libferry writes; the ferry
 * command's `run --machine riscv64` is built on it.
 */
#ifndef FERRY_RV_VM_H
#define FERRY_RV_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/error.h"
#include "ferry/vm.h"

struct rv_vm;

struct rv_vm_config {
	unsigned nharts;   /* 1 .. RV_MAX_HARTS */
	uint64_t ram_size; /* bytes, a multiple of 2 MiB */
	/* kernel NULL: a destination, which loads state instead */
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	const char *dirty; /* tracker backend; NULL: "uffd" */
	bool prealloc;	   /* touch all of RAM up front */
	void (*console)(void *opaque, const uint8_t *buf, size_t len);
	void *console_opaque;
};

int rv_vm_create(const struct rv_vm_config *cfg, struct rv_vm **out,
		 struct ferry_error *err);
/* Start the harts, running or stopped (a destination starts stopped). */
int rv_vm_start(struct rv_vm *v, bool running, struct ferry_error *err);
const struct ferry_vm *rv_vm_ferry(struct rv_vm *v);
/* Bytes typed at the guest's console. */
void rv_vm_console_input(struct rv_vm *v, const uint8_t *buf, size_t len);
/* True once the guest switched itself off (SBI system reset). */
bool rv_vm_halted(const struct rv_vm *v);

/* What the machine knows of its guest (x-query-guest). */
struct rv_vm_info {
	unsigned nharts;
	unsigned harts_started; /* by the guest (SBI HSM), of nharts */
	uint64_t instret;	/* instructions retired, all harts */
	bool running, halted;
	uint64_t console_bytes; /* bytes the guest wrote to its console */
};
void rv_vm_info(struct rv_vm *v, struct rv_vm_info *out);
void rv_vm_destroy(struct rv_vm *v);

#endif
