/*
 * machine.h - the RISC-V virtual machine as a whole: QEMU virt's memory
 * map, N harts on their own threads, the UART, PLIC and CLINT, the SBI
 * the kernel calls, and the boot of a Linux Image with its initramfs and
 * a generated device tree.  What src/machine/riscv/vm.c turns into a
 * struct ferry_vm for the engine.
 */
#ifndef FERRY_RV_MACHINE_H
#define FERRY_RV_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/error.h"
#include "ferry/vm.h"

/* QEMU virt's addresses (hw/riscv/virt.c), so one kernel boots on both */
#define RV_CLINT_BASE 0x02000000ull
#define RV_CLINT_SIZE 0x00010000ull
#define RV_PLIC_BASE  0x0c000000ull
#define RV_PLIC_SIZE  0x00600000ull
#define RV_UART_BASE  0x10000000ull
#define RV_UART_SIZE  0x00000100ull
#define RV_UART_IRQ   10
#define RV_RAM_BASE   0x80000000ull

struct rv_machine;

struct rv_machine_config {
	unsigned nharts; /* 1 .. RV_MAX_HARTS */
	/* guest RAM: a page-aligned mapping of ram_size bytes the caller
	 * owns (the engine's RAM block), at RV_RAM_BASE */
	uint8_t *ram;
	uint64_t ram_size;
	/* what to boot: a Linux Image, an initramfs (may be NULL) and the
	 * kernel command line.  kernel NULL: nothing is loaded and no hart
	 * runs until state is loaded into it (a migration's destination) */
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	/* the UART's output, byte by byte (any thread); NULL: discarded */
	void (*console)(void *opaque, const uint8_t *buf, size_t len);
	void *console_opaque;
};

int rv_machine_new(const struct rv_machine_config *cfg, struct rv_machine **out,
		   struct ferry_error *err);
/* Start the hart threads; stopped: they wait for rv_machine_resume(). */
int rv_machine_start(struct rv_machine *m, bool stopped,
		     struct ferry_error *err);
/* Park every hart at an instruction boundary and freeze guest time;
 * returns once all are parked.  Resume lets them run on. */
int rv_machine_stop(struct rv_machine *m);
int rv_machine_resume(struct rv_machine *m);
bool rv_machine_running(const struct rv_machine *m);
/* True once the guest asked to be switched off (SBI SRST, or the
 * test finisher); *reset tells a reboot from a shutdown. */
bool rv_machine_halted(const struct rv_machine *m, bool *reset);
/* Bytes typed at the console (to the UART's receive FIFO). */
void rv_machine_console_input(struct rv_machine *m, const uint8_t *buf,
			      size_t len);
unsigned rv_machine_nharts(const struct rv_machine *m);
/* Harts the guest has started (in the SBI's HSM sense: not stopped). */
unsigned rv_machine_harts_started(struct rv_machine *m);
/* Guest time in timebase ticks (frozen while stopped); set it on a
 * stopped machine before it runs on the destination. */
uint64_t rv_machine_get_time(const struct rv_machine *m);
void rv_machine_set_time(struct rv_machine *m, uint64_t ticks);
/* The hart state of hart i, for save and load while stopped. */
struct rv_hart *rv_machine_hart(struct rv_machine *m, unsigned i);
/* Which hart runs on thread tid (gettid()), or -1. */
int rv_machine_hart_of_thread(struct rv_machine *m, pid_t tid);
/* Let the harts run only (100 - percent)% of the time, percent up to
 * 99: the engine's auto-converge slows a guest that dirties RAM faster
 * than the link carries it.  0: full speed. */
void rv_machine_throttle(struct rv_machine *m, unsigned percent);
/* Instructions the harts retired, all told (statistics). */
uint64_t rv_machine_instret(const struct rv_machine *m);

/*
 * Device state while stopped: each device saves into a ferry_buf and
 * loads from bytes that came off the wire, checking every field.
 */
int rv_machine_save_uart(struct rv_machine *m, struct ferry_buf *out);
int rv_machine_load_uart(struct rv_machine *m, const uint8_t *data, size_t len,
			 struct ferry_error *err);
int rv_machine_save_plic(struct rv_machine *m, struct ferry_buf *out);
int rv_machine_load_plic(struct rv_machine *m, const uint8_t *data, size_t len,
			 struct ferry_error *err);
int rv_machine_save_clint(struct rv_machine *m, struct ferry_buf *out);
int rv_machine_load_clint(struct rv_machine *m, const uint8_t *data, size_t len,
			  struct ferry_error *err);

void rv_machine_destroy(struct rv_machine *m);

#endif
