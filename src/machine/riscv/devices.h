/*
 * devices.h - the virt machine's parts behind machine.h: the ns16550a
 * UART, the PLIC, the CLINT and the guest's time, the SBI the machine
 * answers itself, the device tree, the Linux boot, and the machine
 * object that ties them to the hart threads.
 *
 * Lock order, outermost first: uart, plic, machine.  A device raises its
 * line with its own lock held; the line reaches the PLIC, whose output
 * reaches the hart through the machine (rv_hart_set_irq, then a kick
 * under the machine's lock).  The CLINT is lock-free: its registers are
 * atomics.
 */
#ifndef FERRY_RV_DEVICES_H
#define FERRY_RV_DEVICES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/error.h"
#include "ferry/vm.h"
#include "machine.h"
#include "riscv.h"

/*
 * uart.c: an ns16550a whose transmitter is instant.  The console
 * callback runs with the UART's lock held, so that bytes from harts
 * writing at once come out whole and in order: it must not call back
 * into the UART (rv_machine_console_input included).
 */
#define RV_UART_RX_MAX 4096 /* what typed input can get ahead of the guest */

struct rv_uart {
	pthread_mutex_t lock; /* everything below */
	uint8_t ier, iir, fcr, lcr, mcr, lsr, msr, scr, dll, dlm;
	bool thr_ipending; /* THR emptied since IIR last showed it */
	bool level;	   /* the interrupt line as last driven */
	uint8_t rx[RV_UART_RX_MAX];
	unsigned rx_head, rx_len;
	/* set once at init */
	void (*console)(void *opaque, const uint8_t *buf, size_t len);
	void *console_opaque;
	void (*irq)(void *opaque, bool level);
	void *irq_opaque;
};

void rv_uart_init(struct rv_uart *u,
		  void (*console)(void *, const uint8_t *, size_t),
		  void *console_opaque, void (*irq)(void *, bool),
		  void *irq_opaque);
void rv_uart_destroy(struct rv_uart *u);
uint64_t rv_uart_read(void *opaque, uint64_t off, unsigned size);
void rv_uart_write(void *opaque, uint64_t off, uint64_t val, unsigned size);
/* Typed bytes into the receive FIFO; returns how many fitted. */
size_t rv_uart_input(struct rv_uart *u, const uint8_t *buf, size_t len);
/* One received byte for the SBI console, or -1 when there is none. */
int rv_uart_getc(struct rv_uart *u);
/* Bytes to the console as if the guest had sent them (the SBI console). */
void rv_uart_output(struct rv_uart *u, const uint8_t *buf, size_t len);
int rv_uart_save(struct rv_uart *u, struct ferry_buf *out);
int rv_uart_load(struct rv_uart *u, const uint8_t *data, size_t len,
		 struct ferry_error *err);

/* plic.c: the SiFive PLIC of QEMU's virt, level-triggered sources */
#define RV_PLIC_NSRC	  128 /* source ids 1..127; 0 means none */
#define RV_PLIC_NDEV	  96  /* what the device tree says, as QEMU's virt */
#define RV_PLIC_NCTX	  (2 * RV_MAX_HARTS)
#define RV_PLIC_WORDS	  (RV_PLIC_NSRC / 32)
#define RV_PLIC_PRIO_MASK 7u

struct rv_plic {
	pthread_mutex_t lock; /* everything below but nctx and the callback */
	unsigned nctx;	      /* 2 per hart: M mode 2N, S mode 2N + 1 */
	uint32_t prio[RV_PLIC_NSRC];
	uint32_t pending[RV_PLIC_WORDS];
	uint32_t claimed[RV_PLIC_WORDS];
	uint32_t level[RV_PLIC_WORDS]; /* each source's line */
	uint32_t enable[RV_PLIC_NCTX][RV_PLIC_WORDS];
	uint32_t threshold[RV_PLIC_NCTX];
	bool out[RV_PLIC_NCTX]; /* each context's line to its hart */
	void (*set_irq)(void *opaque, unsigned ctx, bool level);
	void *opaque;
};

void rv_plic_init(struct rv_plic *p, unsigned nharts,
		  void (*set_irq)(void *, unsigned, bool), void *opaque);
void rv_plic_destroy(struct rv_plic *p);
/* A device's line: src 1 .. RV_PLIC_NSRC - 1. */
void rv_plic_set_level(struct rv_plic *p, unsigned src, bool level);
uint64_t rv_plic_read(void *opaque, uint64_t off, unsigned size);
void rv_plic_write(void *opaque, uint64_t off, uint64_t val, unsigned size);
int rv_plic_save(struct rv_plic *p, struct ferry_buf *out);
int rv_plic_load(struct rv_plic *p, const uint8_t *data, size_t len,
		 struct ferry_error *err);

/*
 * clint.c: msip and mtimecmp per hart, mtime, and the S-mode timer that
 * SBI set_timer programs.  Guest time runs from the host's
 * CLOCK_MONOTONIC plus an offset, and stands still while frozen.
 */
struct rv_clint {
	unsigned nharts;
	_Atomic int64_t offset;	    /* guest ticks minus host ticks */
	atomic_bool frozen;	    /* time stands at frozen_at */
	_Atomic uint64_t frozen_at; /* guest ticks */
	_Atomic uint32_t msip[RV_MAX_HARTS];
	_Atomic uint64_t mtimecmp[RV_MAX_HARTS];
	_Atomic uint64_t stimecmp[RV_MAX_HARTS]; /* SBI set_timer */
	void (*set_irq)(void *opaque, unsigned hart, enum rv_irq irq,
			bool level);
	void *opaque;
};

/* Starts frozen at time 0 with no timer armed. */
void rv_clint_init(struct rv_clint *c, unsigned nharts,
		   void (*set_irq)(void *, unsigned, enum rv_irq, bool),
		   void *opaque);
uint64_t rv_clint_time(const struct rv_clint *c);
uint64_t rv_clint_time_cb(void *opaque); /* for bus->time */
void rv_clint_set_time(struct rv_clint *c, uint64_t ticks);
void rv_clint_freeze(struct rv_clint *c);
void rv_clint_thaw(struct rv_clint *c);
/* Drive hart's MTIP and STIP from the time and its compare values. */
void rv_clint_update(struct rv_clint *c, unsigned hart);
void rv_clint_set_stimecmp(struct rv_clint *c, unsigned hart, uint64_t v);
/* The earliest compare value of hart still ahead of the time, or
 * UINT64_MAX when none is; and the host CLOCK_MONOTONIC nanoseconds at
 * which guest time reaches `ticks` while it runs. */
uint64_t rv_clint_deadline(const struct rv_clint *c, unsigned hart);
uint64_t rv_clint_host_ns(const struct rv_clint *c, uint64_t ticks);
uint64_t rv_clint_read(void *opaque, uint64_t off, unsigned size);
void rv_clint_write(void *opaque, uint64_t off, uint64_t val, unsigned size);
/* Saves msip, mtimecmp, the SBI timers and the time itself. */
int rv_clint_save(struct rv_clint *c, struct ferry_buf *out);
int rv_clint_load(struct rv_clint *c, const uint8_t *data, size_t len,
		  struct ferry_error *err);
#define RV_CLINT_SAVE_LEN(n) (4 + 8 + (size_t)(n) * (4 + 8 + 8))

/* sbi.c: the SBI v2.0 the machine answers for S-mode ecalls */
#define SBI_SUCCESS		  0
#define SBI_ERR_FAILED		  (-1)
#define SBI_ERR_NOT_SUPPORTED	  (-2)
#define SBI_ERR_INVALID_PARAM	  (-3)
#define SBI_ERR_DENIED		  (-4)
#define SBI_ERR_INVALID_ADDRESS	  (-5)
#define SBI_ERR_ALREADY_AVAILABLE (-6)
#define SBI_ERR_ALREADY_STARTED	  (-7)
#define SBI_ERR_ALREADY_STOPPED	  (-8)

#define SBI_EXT_BASE   0x10
#define SBI_EXT_TIME   0x54494d45
#define SBI_EXT_IPI    0x735049
#define SBI_EXT_RFENCE 0x52464e43
#define SBI_EXT_HSM    0x48534d
#define SBI_EXT_SRST   0x53525354
#define SBI_EXT_DBCN   0x4442434e

#define SBI_IMPL_ID	 0x46455259 /* "FERY": no id of the spec's list */
#define SBI_IMPL_VERSION 1
#define SBI_SPEC_VERSION ((2u << 24) | 0) /* 2.0 */

/* HSM states (the spec's numbers) */
enum rv_hsm {
	RV_HSM_STARTED = 0,
	RV_HSM_STOPPED = 1,
	RV_HSM_START_PENDING = 2,
	RV_HSM_STOP_PENDING = 3,
	RV_HSM_SUSPENDED = 4,
};

/* bus->ecall with opaque the machine: true when answered */
bool rv_sbi_ecall(struct rv_hart *h, void *opaque);

/* fdt.c */
struct rv_fdt_params {
	unsigned nharts;
	uint64_t ram_base, ram_size;
	const char *cmdline;		   /* NULL: none */
	uint64_t initrd_start, initrd_end; /* both 0: no initrd */
};

/* A device tree for the virt machine, malloc'd into *blob. */
int rv_fdt_build(const struct rv_fdt_params *p, void **blob, size_t *len,
		 struct ferry_error *err);

/* boot.c */
#define RV_IMAGE_MAGIC2	 0x05435352u /* "RSC\x05" at offset 0x38 */
#define RV_KERNEL_OFFSET 0x200000ull /* where rv64 Linux wants to start */

struct rv_boot_layout {
	uint64_t entry, kernel_end;
	uint64_t initrd_start, initrd_end; /* 0 when none */
	uint64_t fdt_addr, fdt_size;
};

/*
 * Check a RISC-V Linux Image held in memory and copy it into RAM at
 * ram_base + text_offset; *entry and *end are its physical bounds
 * (image_size, not the file's length, counts: it includes the bss).
 */
int rv_boot_place_image(uint8_t *ram, uint64_t ram_base, uint64_t ram_size,
			const uint8_t *img, size_t len, uint64_t *entry,
			uint64_t *end, struct ferry_error *err);
/* Load kernel, initrd and a device tree into the machine's RAM and
 * point hart 0 at the kernel. */
int rv_boot_linux(struct rv_machine *m, const char *kernel, const char *initrd,
		  const char *cmdline, struct rv_boot_layout *lay,
		  struct ferry_error *err);
/*
 * A hart as firmware hands it to S mode: pc, a0 = its id, a1, satp 0,
 * SIE off, the traps OpenSBI delegates delegated, the counters readable.
 */
void rv_boot_enter_s(struct rv_hart *h, uint64_t pc, uint64_t a1);

/* machine.c: the machine object, shared with sbi.c and boot.c */
struct rv_hart_ctl {
	struct rv_hart hart;
	struct rv_machine *m;
	unsigned id;
	pthread_t thread;
	bool thread_started;
	_Atomic pid_t tid; /* its thread's gettid(), once it runs */
	/* leave rv_hart_run at the next instruction boundary: set with
	 * the reason already recorded, cleared by the hart's thread */
	atomic_bool brk;
	/* TLB flushes other harts asked for, and the last one done: the
	 * hart's own thread flushes before its next instruction */
	_Atomic uint64_t flush_req, flush_done;
	pthread_cond_t cond; /* the hart's thread waits here (m->lock) */
	bool kicked;	     /* m->lock: a wake-up since the last wait */
	bool parked;	     /* m->lock: waiting, touching no hart state */
	int hsm;	     /* m->lock: enum rv_hsm */
	bool resume_nonret;  /* m->lock: non-retentive suspend */
	uint64_t resume_addr, resume_opaque; /* m->lock */
};

struct rv_machine {
	struct rv_machine_config cfg;
	unsigned nharts;
	struct rv_bus bus;
	struct rv_uart uart;
	struct rv_plic plic;
	struct rv_clint clint;
	struct rv_hart_ctl *harts[RV_MAX_HARTS];

	pthread_mutex_t lock;  /* the fields below that say so */
	pthread_cond_t parked; /* nparked changed */
	bool running;	       /* lock: harts are to run */
	bool started;	       /* lock: threads exist */
	atomic_bool quit;      /* threads are to exit (set under lock) */
	unsigned nparked;      /* lock */
	atomic_bool halted;    /* the guest switched itself off */
	atomic_bool reset;     /* ... asking for a reboot */
	atomic_uint throttle;  /* percent of time harts sleep (auto-converge) */
};

/* Services the SBI asks of the machine; results are SBI error codes. */
long rv_machine_hart_start(struct rv_machine *m, uint64_t hartid, uint64_t addr,
			   uint64_t opaque);
long rv_machine_hart_stop(struct rv_machine *m, unsigned self);
long rv_machine_hart_status(struct rv_machine *m, uint64_t hartid);
long rv_machine_hart_suspend(struct rv_machine *m, unsigned self, uint32_t type,
			     uint64_t addr, uint64_t opaque);
/* Flush the TLB of every hart in `mask` (bit i: hart i) and return once
 * each has; self flushes at once. */
void rv_machine_remote_fence(struct rv_machine *m, unsigned self,
			     uint64_t mask);
void rv_machine_send_ipi(struct rv_machine *m, uint64_t mask);
void rv_machine_halt(struct rv_machine *m, bool reset);
/* True when hart self must not run on past its ecall: it stopped
 * itself or the machine halted.  Sets its stop flag, which the hart
 * honours before the instruction after the ecall. */
bool rv_machine_must_leave(struct rv_machine *m, unsigned self);
/* Wake hart i's thread (bus->kick). */
void rv_machine_kick(void *opaque, unsigned hart);

#endif
