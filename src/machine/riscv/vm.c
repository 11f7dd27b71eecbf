/*
 * vm.c - the RISC-V machine behind struct ferry_vm (vm.h).
 *
 * RAM is one anonymous mapping, the engine's block "ram0", that the harts
 * load and store to directly: the dirty tracker (userfaultfd
 * write-protect) sees their writes as the kernel's, and post-copy's
 * missing-page faults block a hart's thread in the kernel until the page
 * arrives, with nothing in the interpreter knowing.
 *
 * Sections, in this order: "riscv-machine" (harts, RAM size, guest time),
 * one "riscv-hart" per hart, "riscv-clint", "riscv-plic", "riscv-uart".
 * Time is saved with the machine so that a destination's guest clock
 * goes on from the source's, not from its own host's.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ferry/dirty.h"
#include "hart_state.h"
#include "le.h"
#include "machine.h"
#include "vm.h"

#define MACHINE_SECTION_VERSION 1
#define MACHINE_SECTION_LEN	24
#define DEVICE_SECTION_VERSION	1
#define RAM_ALIGN		(2ull << 20)

struct rv_vm {
	struct rv_vm_config cfg;
	struct rv_machine *m;
	struct ferry_ramblock block;
	struct ferry_dirty *dirty;
	struct ferry_section sections[RV_MAX_HARTS + 4];
	struct rv_vm_hart {
		struct rv_vm *v;
		unsigned index;
	} harts[RV_MAX_HARTS];
	struct ferry_vm vm;
	_Atomic uint64_t console_bytes;
};

/* The console passes through here on its way to the user's callback. */
static void console_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct rv_vm *v = opaque;

	atomic_fetch_add(&v->console_bytes, len);
	if (v->cfg.console)
		v->cfg.console(v->cfg.console_opaque, buf, len);
}

static int machine_save(void *opaque, struct ferry_buf *out)
{
	struct rv_vm *v = opaque;
	int rc = 0;

	rc |= ferry_buf_put_le32(out, v->cfg.nharts);
	rc |= ferry_buf_put_le32(out, 0);
	rc |= ferry_buf_put_le64(out, v->cfg.ram_size);
	rc |= ferry_buf_put_le64(out, rv_machine_get_time(v->m));
	return rc ? -ENOMEM : 0;
}

static int machine_load(void *opaque, uint32_t version, const uint8_t *data,
			size_t len, struct ferry_error *err)
{
	struct rv_vm *v = opaque;
	uint32_t nharts;
	uint64_t ram;

	if (version != MACHINE_SECTION_VERSION)
		return ferry_error_set(err, -EPROTONOSUPPORT,
				       "riscv-machine: section version %u "
				       "(this machine loads version %u)",
				       version, MACHINE_SECTION_VERSION);
	if (len != MACHINE_SECTION_LEN)
		return ferry_error_set(err, -EBADMSG,
				       "riscv-machine: section of %zu bytes, "
				       "expected %d",
				       len, MACHINE_SECTION_LEN);
	nharts = le32_load(data);
	ram = le64_load(data + 8);
	if (nharts != v->cfg.nharts)
		return ferry_error_set(err, -EINVAL,
				       "riscv-machine: the source has %u "
				       "hart%s, this machine %u (--smp)",
				       nharts, nharts == 1 ? "" : "s",
				       v->cfg.nharts);
	if (le32_load(data + 4))
		return ferry_error_set(err, -EINVAL,
				       "riscv-machine: unknown flags 0x%x",
				       le32_load(data + 4));
	if (ram != v->cfg.ram_size)
		return ferry_error_set(err, -EINVAL,
				       "riscv-machine: the source has %llu "
				       "bytes of RAM, this machine %llu",
				       (unsigned long long)ram,
				       (unsigned long long)v->cfg.ram_size);
	if (rv_machine_running(v->m))
		return ferry_error_set(err, -EBUSY,
				       "riscv-machine: load into a running "
				       "machine");
	rv_machine_set_time(v->m, le64_load(data + 16));
	return 0;
}

static int hart_save(void *opaque, struct ferry_buf *out)
{
	struct rv_vm_hart *vh = opaque;

	return rv_hart_save(rv_machine_hart(vh->v->m, vh->index), out);
}

static int hart_load(void *opaque, uint32_t version, const uint8_t *data,
		     size_t len, struct ferry_error *err)
{
	struct rv_vm_hart *vh = opaque;

	if (rv_machine_running(vh->v->m))
		return ferry_error_set(err, -EBUSY,
				       "hart %u: load into a running machine",
				       vh->index);
	return rv_hart_load(rv_machine_hart(vh->v->m, vh->index), version, data,
			    len, err);
}

/* The devices' sections: one version each for now, checked here. */
#define DEVICE(name, dev)                                                    \
	static int dev##_save(void *opaque, struct ferry_buf *out)           \
	{                                                                    \
		struct rv_vm *v = opaque;                                    \
		return rv_machine_save_##dev(v->m, out);                     \
	}                                                                    \
	static int dev##_load(void *opaque, uint32_t version,                \
			      const uint8_t *data, size_t len,               \
			      struct ferry_error *err)                       \
	{                                                                    \
		struct rv_vm *v = opaque;                                    \
		if (version != DEVICE_SECTION_VERSION)                       \
			return ferry_error_set(err, -EPROTONOSUPPORT,        \
					       name ": section version %u "  \
						    "(this machine loads "   \
						    "version %u)",           \
					       version,                      \
					       DEVICE_SECTION_VERSION);      \
		if (rv_machine_running(v->m))                                \
			return ferry_error_set(err, -EBUSY,                  \
					       name ": load into a running " \
						    "machine");              \
		return rv_machine_load_##dev(v->m, data, len, err);          \
	}
DEVICE("riscv-clint", clint)
DEVICE("riscv-plic", plic)
DEVICE("riscv-uart", uart)
#undef DEVICE

static int runctl_stop(void *opaque)
{
	struct rv_vm *v = opaque;

	return rv_machine_stop(v->m);
}

static int runctl_resume(void *opaque)
{
	struct rv_vm *v = opaque;
	unsigned i;

	/* RAM and state may have been loaded behind the harts' backs while
	 * they were parked: nothing decoded or translated before counts */
	if (!rv_machine_running(v->m))
		for (i = 0; i < v->cfg.nharts; i++)
			rv_hart_flush_decode(rv_machine_hart(v->m, i));
	return rv_machine_resume(v->m);
}

static bool runctl_running(void *opaque)
{
	struct rv_vm *v = opaque;

	return rv_machine_running(v->m);
}

static void runctl_throttle(void *opaque, unsigned percent)
{
	struct rv_vm *v = opaque;

	rv_machine_throttle(v->m, percent);
}

static int runctl_vcpu_of(void *opaque, pid_t tid)
{
	struct rv_vm *v = opaque;

	return rv_machine_hart_of_thread(v->m, tid);
}

static int check_config(const struct rv_vm_config *cfg, struct ferry_error *err)
{
	if (cfg->nharts < 1 || cfg->nharts > RV_MAX_HARTS)
		return ferry_error_set(err, -EINVAL,
				       "%u harts: the machine has 1 to %d",
				       cfg->nharts, RV_MAX_HARTS);
	if (!cfg->ram_size || cfg->ram_size % RAM_ALIGN)
		return ferry_error_set(err, -EINVAL,
				       "RAM of %llu bytes: a positive "
				       "multiple of 2 MiB is needed",
				       (unsigned long long)cfg->ram_size);
	if (cfg->ram_size > (1ull << 40))
		return ferry_error_set(err, -EINVAL,
				       "RAM of %llu bytes: at most 1 TiB",
				       (unsigned long long)cfg->ram_size);
	if (!cfg->kernel && cfg->initrd)
		return ferry_error_set(err, -EINVAL,
				       "an initrd without a kernel");
	return 0;
}

int rv_vm_create(const struct rv_vm_config *cfg, struct rv_vm **out,
		 struct ferry_error *err)
{
	struct rv_machine_config mc;
	struct rv_vm *v;
	unsigned i, n = 0;
	void *p;
	int rc;

	*out = NULL;
	rc = check_config(cfg, err);
	if (rc)
		return rc;
	v = calloc(1, sizeof(*v));
	if (!v)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	v->cfg = *cfg;
	p = mmap(NULL, cfg->ram_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		rc = ferry_error_set(err, -errno,
				     "mmap %llu bytes of guest RAM: %s",
				     (unsigned long long)cfg->ram_size,
				     strerror(errno));
		free(v);
		return rc;
	}
	madvise(p, cfg->ram_size, MADV_HUGEPAGE);
	if (cfg->prealloc)
		for (uint64_t off = 0; off < cfg->ram_size; off += 4096)
			((volatile uint8_t *)p)[off] = 0;
	v->block.id = 0;
	snprintf(v->block.name, sizeof(v->block.name), "ram0");
	v->block.host = p;
	v->block.length = cfg->ram_size;

	mc = (struct rv_machine_config){
		.nharts = cfg->nharts,
		.ram = p,
		.ram_size = cfg->ram_size,
		.kernel = cfg->kernel,
		.initrd = cfg->initrd,
		.cmdline = cfg->cmdline,
		.console = console_out,
		.console_opaque = v,
	};
	rc = rv_machine_new(&mc, &v->m, err);
	if (rc)
		goto fail;
	rc = ferry_dirty_open(cfg->dirty ? cfg->dirty : "uffd", &v->block, 1,
			      RV_PAGE_SIZE, &v->dirty, err);
	if (rc)
		goto fail;

	v->sections[n++] = (struct ferry_section){
		.name = "riscv-machine",
		.version = MACHINE_SECTION_VERSION,
		.save = machine_save,
		.load = machine_load,
		.opaque = v,
	};
	for (i = 0; i < cfg->nharts; i++) {
		v->harts[i] = (struct rv_vm_hart){ .v = v, .index = i };
		v->sections[n++] = (struct ferry_section){
			.name = RV_HART_SECTION,
			.instance = i,
			.version = RV_HART_SECTION_VERSION,
			.save = hart_save,
			.load = hart_load,
			.opaque = &v->harts[i],
		};
	}
	v->sections[n++] = (struct ferry_section){
		.name = "riscv-clint",
		.version = DEVICE_SECTION_VERSION,
		.save = clint_save,
		.load = clint_load,
		.opaque = v,
	};
	v->sections[n++] = (struct ferry_section){
		.name = "riscv-plic",
		.version = DEVICE_SECTION_VERSION,
		.save = plic_save,
		.load = plic_load,
		.opaque = v,
	};
	v->sections[n++] = (struct ferry_section){
		.name = "riscv-uart",
		.version = DEVICE_SECTION_VERSION,
		.save = uart_save,
		.load = uart_load,
		.opaque = v,
	};
	v->vm = (struct ferry_vm){
		.page_size = RV_PAGE_SIZE,
		.blocks = &v->block,
		.nblocks = 1,
		.sections = v->sections,
		.nsections = n,
		.runctl = { .stop = runctl_stop,
			    .resume = runctl_resume,
			    .running = runctl_running,
			    .throttle = runctl_throttle,
			    .vcpu_of = runctl_vcpu_of,
			    .nvcpus = v->cfg.nharts,
			    .opaque = v },
		.dirty = v->dirty,
	};
	*out = v;
	return 0;
fail:
	rv_vm_destroy(v);
	return rc;
}

int rv_vm_start(struct rv_vm *v, bool running, struct ferry_error *err)
{
	return rv_machine_start(v->m, !running, err);
}

const struct ferry_vm *rv_vm_ferry(struct rv_vm *v)
{
	return &v->vm;
}

void rv_vm_console_input(struct rv_vm *v, const uint8_t *buf, size_t len)
{
	rv_machine_console_input(v->m, buf, len);
}

bool rv_vm_halted(const struct rv_vm *v)
{
	bool reset;

	return rv_machine_halted(v->m, &reset);
}

void rv_vm_info(struct rv_vm *v, struct rv_vm_info *out)
{
	bool reset;

	out->nharts = v->cfg.nharts;
	out->harts_started = rv_machine_harts_started(v->m);
	out->instret = rv_machine_instret(v->m);
	out->running = rv_machine_running(v->m);
	out->halted = rv_machine_halted(v->m, &reset);
	out->console_bytes = atomic_load(&v->console_bytes);
}

void rv_vm_destroy(struct rv_vm *v)
{
	if (!v)
		return;
	if (v->m) /* joins the harts: then nothing touches RAM */
		rv_machine_destroy(v->m);
	ferry_dirty_close(v->dirty);
	if (v->block.host)
		munmap(v->block.host, v->block.length);
	free(v);
}
