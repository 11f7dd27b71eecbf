/*
 * test_machine.c - the whole machine running a tiny riscv64 program, an
 * Image booted as Linux is (the source is below, the bytes are what
 * riscv64-linux-gnu-as/ld/objcopy made of it): it prints through the
 * UART, starts hart 1 through HSM where there is one (which prints and
 * stops itself), counts until the test lets it go, sleeps in WFI until
 * an SBI timer, takes a typed byte through the UART's interrupt and the
 * PLIC, and switches the machine off with SRST.  On 1 and 2 harts; with
 * a stop that freezes the harts and the time, and a resume; and with a
 * migration in miniature: stopped, saved, loaded into a machine that
 * booted nothing, and finished there.  A Linux boot case runs when
 * guest/riscv/cache/Image is there, and is skipped otherwise.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices.h"

/*
 * prog.S, built with -march=rv64ima_zicsr, -Ttext=0x80200000:
 *
 *	.equ UART, 0x10000000
 *	.equ PLIC, 0x0c000000
 *	.equ DATA, 0x80201000	// counter +0, go +8, flag +16, opaque +24
 *	_start:	j real_start; .word 0; .dword 0x200000 (text_offset);
 *		.dword 0x2000 (image_size); .dword 0; .word 2; .word 0;
 *		.dword 0; .ascii "RISCV\0\0\0"; .ascii "RSC\x05"; .word 0
 *	real_start:
 *		bnez a0, secondary
 *		puts "hello\n"
 *		HSM get_status(1); bnez a0, single	// one hart
 *		HSM hart_start(1, secondary, 0x55)
 *	1:	lw t2, DATA+16; beqz t2, 1b		// hart 1 is up
 *	single:
 *	2:	DATA+0 += 1; ld t3, DATA+8; beqz t3, 2b	// until go
 *		TIME set_timer(time + 10000); csrs sie, STIE
 *	3:	wfi; csrr t1, sip; andi STIP; beqz 3b
 *		TIME set_timer(-1); puts "tick\n"
 *		PLIC priority[10] = 1, enable[ctx 1] = 1 << 10, threshold 0
 *		UART IER = 1; csrs sie, SEIE; puts "ready\n"
 *	4:	wfi; csrr t1, sip; andi SEIP; beqz 4b
 *		claim; lbu RBR; sb THR (echo); complete; sb '\n'
 *		puts "bye\n"; SRST system_reset(0, 0)
 *	5:	j 5b
 *	secondary:
 *		sd a1, DATA+24; puts "hart1\n"; sw 1, DATA+16
 *		HSM hart_stop()
 *	6:	j 6b
 */
static const unsigned char prog[] = {
	0x6f, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x52, 0x49, 0x53, 0x43, 0x56, 0x00, 0x00, 0x00, 0x52, 0x53, 0x43, 0x05,
	0x00, 0x00, 0x00, 0x00, 0x63, 0x12, 0x05, 0x18, 0x17, 0x05, 0x00, 0x00,
	0x13, 0x05, 0x45, 0x1e, 0x97, 0x00, 0x00, 0x00, 0xe7, 0x80, 0x00, 0x1c,
	0xb7, 0x58, 0x48, 0x00, 0x9b, 0x88, 0xd8, 0x34, 0x13, 0x08, 0x20, 0x00,
	0x13, 0x05, 0x10, 0x00, 0x73, 0x00, 0x00, 0x00, 0x63, 0x1c, 0x05, 0x02,
	0xb7, 0x58, 0x48, 0x00, 0x9b, 0x88, 0xd8, 0x34, 0x13, 0x08, 0x00, 0x00,
	0x13, 0x05, 0x10, 0x00, 0x97, 0x05, 0x00, 0x00, 0x93, 0x85, 0x85, 0x14,
	0x13, 0x06, 0x50, 0x05, 0x73, 0x00, 0x00, 0x00, 0x37, 0x03, 0x08, 0x00,
	0x1b, 0x03, 0x13, 0x20, 0x13, 0x13, 0xc3, 0x00, 0x83, 0x23, 0x03, 0x01,
	0xe3, 0x8e, 0x03, 0xfe, 0x37, 0x03, 0x08, 0x00, 0x1b, 0x03, 0x13, 0x20,
	0x13, 0x13, 0xc3, 0x00, 0x83, 0x33, 0x03, 0x00, 0x93, 0x83, 0x13, 0x00,
	0x23, 0x30, 0x73, 0x00, 0x03, 0x3e, 0x83, 0x00, 0xe3, 0x08, 0x0e, 0xfe,
	0xf3, 0x22, 0x10, 0xc0, 0x37, 0x23, 0x00, 0x00, 0x1b, 0x03, 0x03, 0x71,
	0x33, 0x85, 0x62, 0x00, 0xb7, 0x58, 0x49, 0x54, 0x9b, 0x88, 0x58, 0xd4,
	0x13, 0x08, 0x00, 0x00, 0x73, 0x00, 0x00, 0x00, 0x93, 0x02, 0x00, 0x02,
	0x73, 0xa0, 0x42, 0x10, 0x73, 0x00, 0x50, 0x10, 0x73, 0x23, 0x40, 0x14,
	0x13, 0x73, 0x03, 0x02, 0xe3, 0x0a, 0x03, 0xfe, 0x13, 0x05, 0xf0, 0xff,
	0xb7, 0x58, 0x49, 0x54, 0x9b, 0x88, 0x58, 0xd4, 0x13, 0x08, 0x00, 0x00,
	0x73, 0x00, 0x00, 0x00, 0x17, 0x05, 0x00, 0x00, 0x13, 0x05, 0xa5, 0x12,
	0x97, 0x00, 0x00, 0x00, 0xe7, 0x80, 0x80, 0x0f, 0xb7, 0x02, 0x00, 0x0c,
	0x13, 0x03, 0x10, 0x00, 0x23, 0xa4, 0x62, 0x02, 0xb7, 0x23, 0x00, 0x0c,
	0x9b, 0x83, 0x03, 0x08, 0x13, 0x03, 0x00, 0x40, 0x23, 0xa0, 0x63, 0x00,
	0xb7, 0x13, 0x20, 0x0c, 0x23, 0xa0, 0x03, 0x00, 0xb7, 0x02, 0x00, 0x10,
	0x13, 0x03, 0x10, 0x00, 0xa3, 0x80, 0x62, 0x00, 0x93, 0x02, 0x00, 0x20,
	0x73, 0xa0, 0x42, 0x10, 0x17, 0x05, 0x00, 0x00, 0x13, 0x05, 0x85, 0x0e,
	0x97, 0x00, 0x00, 0x00, 0xe7, 0x80, 0x00, 0x0b, 0x73, 0x00, 0x50, 0x10,
	0x73, 0x23, 0x40, 0x14, 0x13, 0x73, 0x03, 0x20, 0xe3, 0x0a, 0x03, 0xfe,
	0xb7, 0x13, 0x20, 0x0c, 0x9b, 0x83, 0x43, 0x00, 0x83, 0xa5, 0x03, 0x00,
	0xb7, 0x02, 0x00, 0x10, 0x03, 0xc5, 0x02, 0x00, 0x23, 0x80, 0xa2, 0x00,
	0x23, 0xa0, 0xb3, 0x00, 0x13, 0x05, 0xa0, 0x00, 0x23, 0x80, 0xa2, 0x00,
	0x17, 0x05, 0x00, 0x00, 0x13, 0x05, 0xb5, 0x0a, 0x97, 0x00, 0x00, 0x00,
	0xe7, 0x80, 0xc0, 0x06, 0xb7, 0x58, 0x52, 0x53, 0x9b, 0x88, 0x48, 0x35,
	0x13, 0x08, 0x00, 0x00, 0x13, 0x05, 0x00, 0x00, 0x93, 0x05, 0x00, 0x00,
	0x73, 0x00, 0x00, 0x00, 0x6f, 0x00, 0x00, 0x00, 0x37, 0x03, 0x08, 0x00,
	0x1b, 0x03, 0x13, 0x20, 0x13, 0x13, 0xc3, 0x00, 0x23, 0x3c, 0xb3, 0x00,
	0x17, 0x05, 0x00, 0x00, 0x13, 0x05, 0xb5, 0x05, 0x97, 0x00, 0x00, 0x00,
	0xe7, 0x80, 0x00, 0x03, 0x37, 0x03, 0x08, 0x00, 0x1b, 0x03, 0x13, 0x20,
	0x13, 0x13, 0xc3, 0x00, 0x93, 0x03, 0x10, 0x00, 0x23, 0x28, 0x73, 0x00,
	0xb7, 0x58, 0x48, 0x00, 0x9b, 0x88, 0xd8, 0x34, 0x13, 0x08, 0x10, 0x00,
	0x73, 0x00, 0x00, 0x00, 0x6f, 0x00, 0x00, 0x00, 0xb7, 0x02, 0x00, 0x10,
	0x03, 0x43, 0x05, 0x00, 0x63, 0x08, 0x03, 0x00, 0x23, 0x80, 0x62, 0x00,
	0x13, 0x05, 0x15, 0x00, 0x6f, 0xf0, 0x1f, 0xff, 0x67, 0x80, 0x00, 0x00,
	0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x0a, 0x00, 0x68, 0x61, 0x72, 0x74, 0x31,
	0x0a, 0x00, 0x74, 0x69, 0x63, 0x6b, 0x0a, 0x00, 0x72, 0x65, 0x61, 0x64,
	0x79, 0x0a, 0x00, 0x62, 0x79, 0x65, 0x0a, 0x00
};

#define RAM_SIZE (16ull << 20)
#define DATA_OFF 0x201000ull /* DATA - RV_RAM_BASE */
#define BOUND_MS 120000	     /* generous: a loaded machine is slow */

struct env {
	uint8_t *ram;
	char kernel[64];
	struct rv_machine *m;
	pthread_mutex_t lock;
	char out[1 << 16];
	size_t nout;
};

static void console(void *opaque, const uint8_t *buf, size_t len)
{
	struct env *e = opaque;

	pthread_mutex_lock(&e->lock);
	if (e->nout + len < sizeof(e->out)) {
		memcpy(e->out + e->nout, buf, len);
		e->nout += len;
		e->out[e->nout] = 0;
	}
	pthread_mutex_unlock(&e->lock);
}

static bool has_output(struct env *e, const char *s)
{
	bool r;

	pthread_mutex_lock(&e->lock);
	r = strstr(e->out, s) != NULL;
	pthread_mutex_unlock(&e->lock);
	return r;
}

static volatile uint64_t *data(struct env *e, unsigned word)
{
	return (volatile uint64_t *)(e->ram + DATA_OFF + 8 * word);
}

/* Wait for cond(e) with a generous bound; false if it never came. */
static bool wait_for(struct env *e, bool (*cond)(struct env *, const void *),
		     const void *arg)
{
	int i;

	for (i = 0; i < BOUND_MS; i++) {
		if (cond(e, arg))
			return true;
		usleep(1000);
	}
	return cond(e, arg);
}

static bool c_output(struct env *e, const void *s)
{
	return has_output(e, s);
}

static bool c_counting(struct env *e, const void *min)
{
	return __atomic_load_n(data(e, 0), __ATOMIC_RELAXED) >
	       *(const uint64_t *)min;
}

static bool c_halted(struct env *e, const void *arg)
{
	(void)arg;
	return rv_machine_halted(e->m, NULL);
}

static struct env *env_new(void)
{
	struct env *e = calloc(1, sizeof(*e));
	int fd;

	pthread_mutex_init(&e->lock, NULL);
	e->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(e->ram != MAP_FAILED);
	strcpy(e->kernel, "/tmp/test-machine-XXXXXX");
	fd = mkstemp(e->kernel);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, prog, sizeof(prog)), (ssize_t)sizeof(prog));
	close(fd);
	return e;
}

static void env_free(struct env *e)
{
	rv_machine_destroy(e->m);
	unlink(e->kernel);
	munmap(e->ram, RAM_SIZE);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static void boot(struct env *e, unsigned nharts, bool with_kernel)
{
	struct rv_machine_config cfg = {
		.nharts = nharts,
		.ram = e->ram,
		.ram_size = RAM_SIZE,
		.kernel = with_kernel ? e->kernel : NULL,
		.cmdline = "test",
		.console = console,
		.console_opaque = e,
	};
	struct ferry_error err = { 0 };

	if (rv_machine_new(&cfg, &e->m, &err))
		fail_msg("rv_machine_new: %s", ferry_error_msg(&err));
}

static void start(struct env *e, bool stopped)
{
	struct ferry_error err = { 0 };

	if (rv_machine_start(e->m, stopped, &err))
		fail_msg("rv_machine_start: %s", ferry_error_msg(&err));
}

/* Let the program past its counting loop and see it through. */
static void finish(struct env *e)
{
	bool reset = true;
	uint64_t zero = 0;

	assert_true(wait_for(e, c_counting, &zero));
	*data(e, 1) = 1; /* go */
	assert_true(wait_for(e, c_output, "ready\n"));
	rv_machine_console_input(e->m, (const uint8_t *)"k", 1);
	assert_true(wait_for(e, c_halted, NULL));
	assert_true(rv_machine_halted(e->m, &reset));
	assert_false(reset);
	assert_true(has_output(e, "tick\nready\nk\nbye\n"));
}

static void test_one_hart(void **state)
{
	struct env *e = env_new();

	(void)state;
	boot(e, 1, true);
	start(e, false);
	assert_true(rv_machine_running(e->m));
	finish(e);
	assert_string_equal(e->out, "hello\ntick\nready\nk\nbye\n");
	assert_false(rv_machine_running(e->m));
	assert_true(rv_machine_instret(e->m) > 100);
	assert_int_equal(rv_machine_stop(e->m), 0);
	env_free(e);
}

static void test_two_harts(void **state)
{
	struct env *e = env_new();

	(void)state;
	boot(e, 2, true);
	start(e, false);
	finish(e);
	assert_true(has_output(e, "hello\n"));
	assert_true(has_output(e, "hart1\n"));
	assert_int_equal(*data(e, 3), 0x55); /* hart_start's opaque in a1 */
	assert_int_equal(rv_machine_hart_status(e->m, 1), RV_HSM_STOPPED);
	env_free(e);
}

static void test_stop_resume(void **state)
{
	struct env *e = env_new();
	uint64_t c, t, n, zero = 0;

	(void)state;
	boot(e, 2, true);
	start(e, true);
	/* started stopped: nothing runs, time stands */
	usleep(10000);
	assert_false(rv_machine_running(e->m));
	assert_int_equal(rv_machine_instret(e->m), 0);
	assert_int_equal(rv_machine_get_time(e->m), 0);
	assert_int_equal(rv_machine_resume(e->m), 0);
	assert_true(wait_for(e, c_counting, &zero));

	assert_int_equal(rv_machine_stop(e->m), 0);
	assert_false(rv_machine_running(e->m));
	c = *data(e, 0);
	t = rv_machine_get_time(e->m);
	n = rv_machine_instret(e->m);
	usleep(20000);
	assert_int_equal(*data(e, 0), c);
	assert_int_equal(rv_machine_get_time(e->m), t);
	assert_int_equal(rv_machine_instret(e->m), n);
	/* a second stop is a no-op */
	assert_int_equal(rv_machine_stop(e->m), 0);
	/* time set while stopped is where it resumes from */
	rv_machine_set_time(e->m, t + 12345);
	assert_int_equal(rv_machine_get_time(e->m), t + 12345);

	assert_int_equal(rv_machine_resume(e->m), 0);
	assert_true(rv_machine_running(e->m));
	assert_true(wait_for(e, c_counting, &c));
	assert_true(rv_machine_get_time(e->m) >= t + 12345);
	finish(e);
	env_free(e);
}

/* What a migration carries of a hart: everything architectural. */
static void copy_hart(struct rv_hart *to, const struct rv_hart *from)
{
	struct rv_bus *bus = to->bus;
	unsigned id = to->id;

	memcpy(to, from, sizeof(*to));
	to->bus = bus;
	to->id = id;
	rv_tlb_flush(to);
}

static void test_save_load(void **state)
{
	struct env *a = env_new(), *b = env_new();
	struct ferry_buf su = { 0 }, sp = { 0 }, sc = { 0 };
	struct ferry_buf su2 = { 0 }, sp2 = { 0 }, sc2 = { 0 };
	struct ferry_error err = { 0 };
	uint64_t zero = 0, t;
	unsigned i;

	(void)state;
	boot(a, 2, true);
	start(a, false);
	assert_true(wait_for(a, c_counting, &zero));
	assert_true(wait_for(a, c_output, "hart1\n"));
	rv_machine_console_input(a->m, (const uint8_t *)"zz", 2);
	assert_int_equal(rv_machine_stop(a->m), 0);
	t = rv_machine_get_time(a->m);
	assert_int_equal(rv_machine_save_uart(a->m, &su), 0);
	assert_int_equal(rv_machine_save_plic(a->m, &sp), 0);
	assert_int_equal(rv_machine_save_clint(a->m, &sc), 0);

	/* the destination booted nothing and holds its harts */
	boot(b, 2, false);
	start(b, false);
	usleep(5000);
	assert_int_equal(rv_machine_instret(b->m), 0);
	assert_int_equal(rv_machine_stop(b->m), 0);
	memcpy(b->ram, a->ram, RAM_SIZE);
	for (i = 0; i < 2; i++)
		copy_hart(rv_machine_hart(b->m, i), rv_machine_hart(a->m, i));
	if (rv_machine_load_uart(b->m, su.data, su.len, &err) ||
	    rv_machine_load_plic(b->m, sp.data, sp.len, &err) ||
	    rv_machine_load_clint(b->m, sc.data, sc.len, &err))
		fail_msg("load: %s", ferry_error_msg(&err));
	assert_int_equal(rv_machine_get_time(b->m), t);
	assert_int_equal(rv_machine_hart_status(b->m, 1), RV_HSM_STOPPED);
	/* what loaded saves again the same */
	assert_int_equal(rv_machine_save_uart(b->m, &su2), 0);
	assert_int_equal(rv_machine_save_plic(b->m, &sp2), 0);
	assert_int_equal(rv_machine_save_clint(b->m, &sc2), 0);
	assert_int_equal(su.len, su2.len);
	assert_memory_equal(su.data, su2.data, su.len);
	assert_int_equal(sp.len, sp2.len);
	assert_memory_equal(sp.data, sp2.data, sp.len);
	assert_int_equal(sc.len, sc2.len);
	assert_memory_equal(sc.data, sc2.data, sc.len);

	/* the typed bytes travelled: drain them as the guest would */
	assert_int_equal(rv_uart_getc(&b->m->uart), 'z');
	assert_int_equal(rv_uart_getc(&b->m->uart), 'z');
	assert_int_equal(rv_machine_resume(b->m), 0);
	finish(b);
	assert_false(has_output(b, "hello"));
	assert_false(rv_machine_halted(a->m, NULL));
	ferry_buf_free(&su);
	ferry_buf_free(&sp);
	ferry_buf_free(&sc);
	ferry_buf_free(&su2);
	ferry_buf_free(&sp2);
	ferry_buf_free(&sc2);
	env_free(a);
	env_free(b);
}

static void test_load_rejects(void **state)
{
	struct env *e = env_new();
	struct ferry_buf sc = { 0 };
	struct ferry_error err = { 0 };
	uint8_t *bad;

	(void)state;
	boot(e, 2, false);
	assert_int_equal(rv_machine_save_clint(e->m, &sc), 0);
	bad = malloc(sc.len);
	assert_int_equal(rv_machine_load_clint(e->m, sc.data, sc.len - 1, &err),
			 -EINVAL);
	ferry_error_clear(&err);
	memcpy(bad, sc.data, sc.len);
	bad[RV_CLINT_SAVE_LEN(2) + 20] = 9; /* hart 1's HSM state */
	assert_int_equal(rv_machine_load_clint(e->m, bad, sc.len, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "HSM"));
	ferry_error_clear(&err);
	memcpy(bad, sc.data, sc.len);
	bad[RV_CLINT_SAVE_LEN(2) + 20] = RV_HSM_SUSPENDED; /* resume at 0 */
	assert_int_equal(rv_machine_load_clint(e->m, bad, sc.len, &err),
			 -EINVAL);
	ferry_error_clear(&err);
	assert_int_equal(rv_machine_load_uart(e->m, sc.data, 3, &err), -EINVAL);
	ferry_error_clear(&err);
	assert_int_equal(rv_machine_load_plic(e->m, sc.data, sc.len, &err),
			 -EINVAL);
	/* and a start twice is refused */
	start(e, true);
	ferry_error_clear(&err);
	assert_int_equal(rv_machine_start(e->m, true, &err), -EBUSY);
	free(bad);
	ferry_buf_free(&sc);
	env_free(e);
}

static void test_config_refused(void **state)
{
	struct rv_machine_config cfg = { .nharts = 0 };
	struct ferry_error err = { 0 };
	struct rv_machine *m = NULL;
	uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)state;
	cfg.ram = ram;
	cfg.ram_size = RAM_SIZE;
	assert_int_equal(rv_machine_new(&cfg, &m, &err), -EINVAL);
	cfg.nharts = RV_MAX_HARTS + 1;
	assert_int_equal(rv_machine_new(&cfg, &m, &err), -EINVAL);
	cfg.nharts = 1;
	cfg.ram_size = 4096;
	assert_int_equal(rv_machine_new(&cfg, &m, &err), -EINVAL);
	assert_null(m);
	/* destroyed without ever starting */
	cfg.ram_size = RAM_SIZE;
	assert_int_equal(rv_machine_new(&cfg, &m, &err), 0);
	rv_machine_destroy(m);
	munmap(ram, RAM_SIZE);
}

/*
 * Debian's riscv64 kernel with the guest's initramfs, when
 * scripts/riscv-guest.sh has put them in guest/riscv/cache/ (or
 * $FERRY_RISCV_CACHE names another folder): booted to the init's marker
 * line on 1 and 2 harts.
 */
static double secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void linux_boot(unsigned nharts)
{
	static const char me[] = "tests/machine/riscv/test_machine.c";
	const char *dir = getenv("FERRY_RISCV_CACHE");
	char root[512], kp[600], ip[600];
	struct env *e = calloc(1, sizeof(*e));
	struct rv_machine_config cfg = {
		.nharts = nharts,
		.ram_size = 256ull << 20,
		.cmdline = "console=ttyS0",
		.console = console,
	};
	struct ferry_error err = { 0 };
	double t0;

	/* the source tree is where this file was compiled from (meson
	 * runs tests in the build directory it named it from) */
	snprintf(root, sizeof(root), "%s", __FILE__);
	if (strlen(root) >= sizeof(me) - 1 &&
	    !strcmp(root + strlen(root) - (sizeof(me) - 1), me))
		root[strlen(root) - (sizeof(me) - 1)] = 0;
	else
		strcpy(root, "./");
	if (!dir) {
		strncat(root, "guest/riscv/cache",
			sizeof(root) - strlen(root) - 1);
		dir = root;
	}
	snprintf(kp, sizeof(kp), "%.500s/Image", dir);
	snprintf(ip, sizeof(ip), "%.500s/initramfs.cpio.gz", dir);
	if (access(kp, R_OK) || access(ip, R_OK)) {
		/* passes with the reason, as the project's other
		 * tests do where the host lacks what they need */
		printf("# skipped: no %s or %s (scripts/riscv-guest.sh makes them)\n",
		       kp, ip);
		free(e);
		return;
	}
	pthread_mutex_init(&e->lock, NULL);
	e->ram = mmap(NULL, cfg.ram_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cfg.ram = e->ram;
	cfg.kernel = kp;
	cfg.initrd = ip;
	cfg.console_opaque = e;
	if (rv_machine_new(&cfg, &e->m, &err))
		fail_msg("rv_machine_new: %s", ferry_error_msg(&err));
	t0 = secs();
	start(e, false);
	if (!wait_for(e, c_output, "ferry-guest: init"))
		fail_msg("no init marker; console:\n%s", e->out);
	printf("# linux on %u hart(s): init's marker after %.1f s\n", nharts,
	       secs() - t0);
	rv_machine_destroy(e->m);
	munmap(e->ram, cfg.ram_size);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static void test_linux_one_hart(void **state)
{
	(void)state;
	linux_boot(1);
}

static void test_linux_two_harts(void **state)
{
	(void)state;
	linux_boot(2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_hart),
		cmocka_unit_test(test_two_harts),
		cmocka_unit_test(test_stop_resume),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_load_rejects),
		cmocka_unit_test(test_config_refused),
		cmocka_unit_test(test_linux_one_hart),
		cmocka_unit_test(test_linux_two_harts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
