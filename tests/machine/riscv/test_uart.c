/*
 * test_uart.c - the ns16550a as the Linux 8250 driver drives it: output
 * to the console, the divisor latch, received bytes and their interrupt,
 * the THR-empty interrupt and its acknowledgement by reading IIR,
 * loopback, the FIFO's bound, and save/load with every field checked.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices.h"

enum {
	RBR = 0,
	THR = 0,
	IER = 1,
	IIR = 2,
	FCR = 2,
	LCR = 3,
	MCR = 4,
	LSR = 5,
	MSR = 6,
	SCR = 7
};

struct env {
	struct rv_uart u;
	uint8_t out[256];
	size_t nout;
	bool level;
	int edges; /* times the line was driven */
};

static void console(void *opaque, const uint8_t *buf, size_t len)
{
	struct env *e = opaque;

	assert_true(e->nout + len <= sizeof(e->out));
	memcpy(e->out + e->nout, buf, len);
	e->nout += len;
}

static void irq(void *opaque, bool level)
{
	struct env *e = opaque;

	e->level = level;
	e->edges++;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	rv_uart_init(&e->u, console, e, irq, e);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	rv_uart_destroy(&e->u);
	free(e);
	return 0;
}

static uint8_t rd(struct env *e, unsigned reg)
{
	return (uint8_t)rv_uart_read(&e->u, reg, 1);
}

static void wr(struct env *e, unsigned reg, uint8_t v)
{
	rv_uart_write(&e->u, reg, v, 1);
}

static void test_output_and_divisor(void **state)
{
	struct env *e = *state;

	assert_int_equal(rd(e, LSR) & 0x60, 0x60); /* THRE, TEMT */
	assert_int_equal(rd(e, IIR) & 0x0f, 0x01); /* nothing pending */
	wr(e, THR, 'h');
	wr(e, THR, 'i');
	assert_int_equal(e->nout, 2);
	assert_memory_equal(e->out, "hi", 2);
	/* with DLAB the first two registers are the divisor latch */
	wr(e, LCR, 0x83);
	wr(e, 0, 0x01);
	wr(e, 1, 0x02);
	assert_int_equal(rd(e, 0), 0x01);
	assert_int_equal(rd(e, 1), 0x02);
	assert_int_equal(e->nout, 2); /* nothing sent meanwhile */
	wr(e, LCR, 0x03);
	assert_int_equal(rd(e, IER), 0);
	assert_int_equal(rd(e, LCR), 0x03);
	wr(e, SCR, 0x5a);
	assert_int_equal(rd(e, SCR), 0x5a);
	assert_int_equal(rd(e, LSR) & 0x60, 0x60);
	assert_false(e->level);
}

static void test_receive_interrupt(void **state)
{
	struct env *e = *state;
	const uint8_t in[] = "abc";

	wr(e, FCR, 0x07); /* FIFO on, both cleared */
	wr(e, IER, 0x01); /* received data */
	assert_false(e->level);
	assert_int_equal(rv_uart_input(&e->u, in, 3), 3);
	assert_true(e->level);
	assert_int_equal(rd(e, IIR), 0xc4); /* FIFO on, data available */
	assert_int_equal(rd(e, LSR) & 1, 1);
	assert_int_equal(rd(e, RBR), 'a');
	assert_int_equal(rd(e, RBR), 'b');
	assert_true(e->level);
	assert_int_equal(rd(e, RBR), 'c');
	assert_int_equal(rd(e, LSR) & 1, 0);
	assert_false(e->level);
	assert_int_equal(rd(e, IIR), 0xc1);
	/* no data: RBR reads 0 and nothing changes */
	assert_int_equal(rd(e, RBR), 0);
	/* with the interrupt off, data comes without the line */
	wr(e, IER, 0);
	rv_uart_input(&e->u, in, 1);
	assert_false(e->level);
	assert_int_equal(rv_uart_getc(&e->u), 'a');
	assert_int_equal(rv_uart_getc(&e->u), -1);
}

static void test_thr_empty_interrupt(void **state)
{
	struct env *e = *state;

	wr(e, IER, 0x02);
	assert_true(e->level); /* THR is empty at once */
	assert_int_equal(rd(e, IIR) & 0x0f, 0x02);
	/* reading IIR acknowledged it */
	assert_false(e->level);
	assert_int_equal(rd(e, IIR) & 0x0f, 0x01);
	wr(e, THR, 'x');
	assert_true(e->level);
	/* received data goes before THR empty */
	rv_uart_input(&e->u, (const uint8_t *)"y", 1);
	wr(e, IER, 0x03);
	assert_int_equal(rd(e, IIR) & 0x0f, 0x04);
	assert_int_equal(rd(e, RBR), 'y');
	assert_int_equal(rd(e, IIR) & 0x0f, 0x02);
	assert_int_equal(rd(e, IIR) & 0x0f, 0x01);
	assert_false(e->level);
	wr(e, IER, 0);
	wr(e, THR, 'z');
	assert_false(e->level);
}

static void test_loopback(void **state)
{
	struct env *e = *state;

	/* not in loopback the modem lines read as a ready peer */
	assert_int_equal(rd(e, MSR) & 0xf0, 0xb0);
	wr(e, MCR, 0x10 | 0x0a); /* loop, RTS, OUT2: what 8250 probes */
	assert_int_equal(rd(e, MSR) & 0xf0, 0x90);
	wr(e, MCR, 0x1f);
	assert_int_equal(rd(e, MSR) & 0xf0, 0xf0);
	wr(e, THR, 'q');
	assert_int_equal(e->nout, 0); /* not out on the line */
	assert_int_equal(rd(e, LSR) & 1, 1);
	assert_int_equal(rd(e, RBR), 'q');
	/* the outside world is cut off */
	assert_int_equal(rv_uart_input(&e->u, (const uint8_t *)"w", 1), 0);
	wr(e, MCR, 0x08);
	assert_int_equal(rv_uart_input(&e->u, (const uint8_t *)"w", 1), 1);
	wr(e, THR, 'p');
	assert_int_equal(e->nout, 1);
}

static void test_fifo_bound(void **state)
{
	struct env *e = *state;
	uint8_t *big = malloc(RV_UART_RX_MAX + 10);
	unsigned i;

	for (i = 0; i < RV_UART_RX_MAX + 10; i++)
		big[i] = (uint8_t)i;
	assert_int_equal(rv_uart_input(&e->u, big, RV_UART_RX_MAX + 10),
			 RV_UART_RX_MAX);
	for (i = 0; i < 100; i++)
		assert_int_equal(rd(e, RBR), (uint8_t)i);
	assert_int_equal(rv_uart_input(&e->u, big, 200), 100);
	wr(e, FCR, 0x03); /* FIFO on and receive cleared */
	assert_int_equal(rd(e, LSR) & 1, 0);
	free(big);
}

static void test_save_load(void **state)
{
	struct env *e = *state, f = { 0 };
	struct ferry_buf b = { 0 };
	struct ferry_error err = { 0 };

	wr(e, FCR, 0x01);
	wr(e, LCR, 0x83);
	wr(e, 0, 0x22);
	wr(e, LCR, 0x1b);
	wr(e, SCR, 0x77);
	wr(e, IER, 0x05);
	rv_uart_input(&e->u, (const uint8_t *)"xyz", 3);
	assert_int_equal(rd(e, RBR), 'x');
	assert_int_equal(rv_uart_save(&e->u, &b), 0);
	assert_int_equal(b.len, 15 + 2);

	rv_uart_init(&f.u, console, &f, irq, &f);
	assert_int_equal(rv_uart_load(&f.u, b.data, b.len, &err), 0);
	assert_true(f.level); /* data pending with RDI on: driven at load */
	assert_int_equal(rd(&f, IER), 0x05);
	assert_int_equal(rd(&f, LCR), 0x1b);
	assert_int_equal(rd(&f, SCR), 0x77);
	assert_int_equal(rd(&f, IIR), 0xc4);
	assert_int_equal(rd(&f, RBR), 'y');
	assert_int_equal(rd(&f, RBR), 'z');
	assert_false(f.level);
	wr(&f, LCR, 0x9b);
	assert_int_equal(rd(&f, 0), 0x22);
	rv_uart_destroy(&f.u);
	ferry_buf_free(&b);
}

static void test_load_rejects(void **state)
{
	struct env *e = *state;
	struct ferry_buf b = { 0 };
	struct ferry_error err = { 0 };
	uint8_t bad[32];

	rv_uart_input(&e->u, (const uint8_t *)"ab", 2);
	assert_int_equal(rv_uart_save(&e->u, &b), 0);
	assert_int_equal(b.len, 17);
	assert_int_equal(rv_uart_load(&e->u, b.data, 14, &err), -EINVAL);
	ferry_error_clear(&err);
	assert_int_equal(rv_uart_load(&e->u, b.data, 16, &err), -EINVAL);
	ferry_error_clear(&err);
	memcpy(bad, b.data, b.len);
	bad[11] = 0xff;
	bad[12] = 0xff; /* a FIFO count past its size */
	assert_int_equal(rv_uart_load(&e->u, bad, b.len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "FIFO"));
	ferry_error_clear(&err);
	memcpy(bad, b.data, b.len);
	bad[0] = 0x10; /* IER reserved bit */
	assert_int_equal(rv_uart_load(&e->u, bad, b.len, &err), -EINVAL);
	ferry_error_clear(&err);
	memcpy(bad, b.data, b.len);
	bad[10] = 2;
	assert_int_equal(rv_uart_load(&e->u, bad, b.len, &err), -EINVAL);
	/* nothing was taken: the FIFO is as it was */
	assert_int_equal(rd(e, RBR), 'a');
	ferry_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_output_and_divisor),  T(test_receive_interrupt),
		T(test_thr_empty_interrupt), T(test_loopback),
		T(test_fifo_bound),	     T(test_save_load),
		T(test_load_rejects),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
