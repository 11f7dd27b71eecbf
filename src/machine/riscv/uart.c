/*
 * uart.c - the ns16550a at 0x10000000, as QEMU's serial.c: eight byte
 * registers, the divisor latch behind LCR.DLAB, a receive FIFO fed by
 * the console, and an interrupt line to the PLIC (source 10) for
 * received data, an emptied transmitter and modem status changes.
 *
 * Transmission is instant: a byte written to THR goes to the console
 * callback at once and THR is empty again, so LSR always shows THRE and
 * TEMT and a THR-empty interrupt follows every write while IER asks for
 * one.  In loopback (MCR.LOOP) the byte comes back on the receive side
 * instead and the modem outputs show up as MSR's inputs, which is what
 * Linux's probe of an 8250 looks for.
 */
#include <errno.h>
#include <string.h>

#include "devices.h"
#include "le.h"

enum {
	REG_RBR_THR = 0,
	REG_IER = 1,
	REG_IIR_FCR = 2,
	REG_LCR = 3,
	REG_MCR = 4,
	REG_LSR = 5,
	REG_MSR = 6,
	REG_SCR = 7,
};

#define IER_RDI	     0x01
#define IER_THRI     0x02
#define IER_RLSI     0x04
#define IER_MSI	     0x08
#define IIR_NO_INT   0x01
#define IIR_THRI     0x02
#define IIR_RDI	     0x04
#define IIR_MSI	     0x00
#define IIR_FIFO     0xc0
#define FCR_FE	     0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define LCR_DLAB     0x80
#define MCR_LOOP     0x10
#define LSR_DR	     0x01
#define LSR_THRE     0x20
#define LSR_TEMT     0x40
#define MSR_DELTA    0x0f
#define MSR_CTS	     0x10
#define MSR_DSR	     0x20
#define MSR_RI	     0x40
#define MSR_DCD	     0x80

/* The modem inputs: a line always ready, or what MCR loops back. */
static uint8_t modem_status(const struct rv_uart *u)
{
	uint8_t s = 0;

	if (!(u->mcr & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS;
	if (u->mcr & 0x01)
		s |= MSR_DSR;
	if (u->mcr & 0x02)
		s |= MSR_CTS;
	if (u->mcr & 0x04)
		s |= MSR_RI;
	if (u->mcr & 0x08)
		s |= MSR_DCD;
	return s;
}

/* New modem inputs, with the delta bits of those that changed. */
static void set_modem_status(struct rv_uart *u, uint8_t s)
{
	uint8_t old = u->msr & 0xf0, d = u->msr & MSR_DELTA;

	if ((old ^ s) & MSR_CTS)
		d |= 0x01;
	if ((old ^ s) & MSR_DSR)
		d |= 0x02;
	if ((old & MSR_RI) && !(s & MSR_RI))
		d |= 0x04; /* trailing edge of ring */
	if ((old ^ s) & MSR_DCD)
		d |= 0x08;
	u->msr = s | d;
}

/* Recompute IIR and drive the line; u->lock held. */
static void update(struct rv_uart *u, bool force)
{
	uint8_t iir = IIR_NO_INT;
	bool level;

	if ((u->ier & IER_RDI) && u->rx_len)
		iir = IIR_RDI;
	else if ((u->ier & IER_THRI) && u->thr_ipending)
		iir = IIR_THRI;
	else if ((u->ier & IER_MSI) && (u->msr & MSR_DELTA))
		iir = IIR_MSI;
	u->iir = iir | ((u->fcr & FCR_FE) ? IIR_FIFO : 0);
	level = iir != IIR_NO_INT;
	if ((level != u->level || force) && u->irq) {
		u->level = level;
		u->irq(u->irq_opaque, level);
	}
	u->level = level;
}

static bool rx_push(struct rv_uart *u, uint8_t c)
{
	if (u->rx_len == RV_UART_RX_MAX)
		return false;
	u->rx[(u->rx_head + u->rx_len) % RV_UART_RX_MAX] = c;
	u->rx_len++;
	return true;
}

static int rx_pop(struct rv_uart *u)
{
	uint8_t c;

	if (!u->rx_len)
		return -1;
	c = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % RV_UART_RX_MAX;
	u->rx_len--;
	return c;
}

static void reset(struct rv_uart *u)
{
	u->ier = 0;
	u->fcr = 0;
	u->lcr = 0;
	u->mcr = 0x08; /* OUT2, as QEMU resets it */
	u->lsr = LSR_TEMT | LSR_THRE;
	u->msr = modem_status(u);
	u->scr = 0;
	u->dll = 0x0c; /* 9600 baud at 1.8432 MHz, a conventional reset */
	u->dlm = 0;
	u->thr_ipending = false;
	u->rx_head = 0;
	u->rx_len = 0;
	u->iir = IIR_NO_INT;
	u->level = false;
}

void rv_uart_init(struct rv_uart *u,
		  void (*console)(void *, const uint8_t *, size_t),
		  void *console_opaque, void (*irq)(void *, bool),
		  void *irq_opaque)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	u->console = console;
	u->console_opaque = console_opaque;
	u->irq = irq;
	u->irq_opaque = irq_opaque;
	reset(u);
}

void rv_uart_destroy(struct rv_uart *u)
{
	pthread_mutex_destroy(&u->lock);
}

uint64_t rv_uart_read(void *opaque, uint64_t off, unsigned size)
{
	struct rv_uart *u = opaque;
	uint64_t v = 0;
	int c;

	(void)size;
	pthread_mutex_lock(&u->lock);
	switch (off) {
	case REG_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			v = u->dll;
			break;
		}
		c = rx_pop(u);
		v = c < 0 ? 0 : (uint64_t)c;
		update(u, false);
		break;
	case REG_IER:
		v = (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
		break;
	case REG_IIR_FCR:
		v = u->iir;
		/* reading IIR while it shows THR empty acknowledges that */
		if ((u->iir & 0x0f) == IIR_THRI) {
			u->thr_ipending = false;
			update(u, false);
		}
		break;
	case REG_LCR:
		v = u->lcr;
		break;
	case REG_MCR:
		v = u->mcr;
		break;
	case REG_LSR:
		v = u->lsr | (u->rx_len ? LSR_DR : 0);
		break;
	case REG_MSR:
		v = u->msr;
		u->msr &= ~MSR_DELTA;
		update(u, false);
		break;
	case REG_SCR:
		v = u->scr;
		break;
	}
	pthread_mutex_unlock(&u->lock);
	return v;
}

void rv_uart_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct rv_uart *u = opaque;
	uint8_t b = (uint8_t)val, changed;

	(void)size;
	pthread_mutex_lock(&u->lock);
	switch (off) {
	case REG_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			u->dll = b;
			break;
		}
		if (u->mcr & MCR_LOOP)
			rx_push(u, b);
		else if (u->console)
			u->console(u->console_opaque, &b, 1);
		u->thr_ipending = true; /* sent at once: THR is empty again */
		update(u, false);
		break;
	case REG_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = b;
			break;
		}
		changed = (u->ier ^ b) & 0x0f;
		u->ier = b & 0x0f;
		if (changed & IER_THRI)
			u->thr_ipending = !!(u->ier & IER_THRI);
		update(u, false);
		break;
	case REG_IIR_FCR:
		if ((b ^ u->fcr) & FCR_FE)
			b |= FCR_CLEAR_RX | FCR_CLEAR_TX;
		if (b & FCR_CLEAR_RX) {
			u->rx_head = 0;
			u->rx_len = 0;
		}
		u->fcr = b & 0xc9; /* FE, DMA mode, trigger level */
		update(u, false);
		break;
	case REG_LCR:
		u->lcr = b;
		break;
	case REG_MCR:
		u->mcr = b & 0x1f;
		set_modem_status(u, modem_status(u));
		update(u, false);
		break;
	case REG_SCR:
		u->scr = b;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
	pthread_mutex_unlock(&u->lock);
}

size_t rv_uart_input(struct rv_uart *u, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&u->lock);
	/* in loopback the line is cut from the outside world */
	if (!(u->mcr & MCR_LOOP))
		while (n < len && rx_push(u, buf[n]))
			n++;
	update(u, false);
	pthread_mutex_unlock(&u->lock);
	return n;
}

int rv_uart_getc(struct rv_uart *u)
{
	int c;

	pthread_mutex_lock(&u->lock);
	c = rx_pop(u);
	update(u, false);
	pthread_mutex_unlock(&u->lock);
	return c;
}

void rv_uart_output(struct rv_uart *u, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&u->lock);
	if (u->console && len)
		u->console(u->console_opaque, buf, len);
	pthread_mutex_unlock(&u->lock);
}

/*
 * Saved: the ten registers, thr_ipending, then the receive FIFO as a
 * le32 count and that many bytes, oldest first.
 */
#define SAVE_HEAD 15

int rv_uart_save(struct rv_uart *u, struct ferry_buf *out)
{
	uint8_t regs[11];
	unsigned i;
	int rc;

	pthread_mutex_lock(&u->lock);
	regs[0] = u->ier;
	regs[1] = u->iir;
	regs[2] = u->fcr;
	regs[3] = u->lcr;
	regs[4] = u->mcr;
	regs[5] = u->lsr;
	regs[6] = u->msr;
	regs[7] = u->scr;
	regs[8] = u->dll;
	regs[9] = u->dlm;
	regs[10] = u->thr_ipending;
	rc = ferry_buf_put(out, regs, sizeof(regs));
	if (!rc)
		rc = ferry_buf_put_le32(out, u->rx_len);
	if (!rc)
		rc = ferry_buf_reserve(out, u->rx_len);
	for (i = 0; !rc && i < u->rx_len; i++)
		out->data[out->len++] =
			u->rx[(u->rx_head + i) % RV_UART_RX_MAX];
	pthread_mutex_unlock(&u->lock);
	return rc;
}

int rv_uart_load(struct rv_uart *u, const uint8_t *data, size_t len,
		 struct ferry_error *err)
{
	uint32_t n;

	if (len < SAVE_HEAD)
		return ferry_error_set(err, -EINVAL,
				       "uart: state of %zu bytes, need %d", len,
				       SAVE_HEAD);
	n = le32_load(data + 11);
	if (n > RV_UART_RX_MAX)
		return ferry_error_set(
			err, -EINVAL,
			"uart: %u bytes in the receive FIFO, at most %d", n,
			RV_UART_RX_MAX);
	if (len != SAVE_HEAD + (size_t)n)
		return ferry_error_set(
			err, -EINVAL,
			"uart: state of %zu bytes, %u bytes of FIFO want %zu",
			len, n, SAVE_HEAD + (size_t)n);
	if (data[0] & ~0x0f)
		return ferry_error_set(err, -EINVAL,
				       "uart: IER 0x%02x has reserved bits",
				       data[0]);
	if (data[4] & ~0x1f)
		return ferry_error_set(err, -EINVAL,
				       "uart: MCR 0x%02x has reserved bits",
				       data[4]);
	if (data[10] > 1)
		return ferry_error_set(err, -EINVAL,
				       "uart: THR-empty flag %u is not 0 or 1",
				       data[10]);
	pthread_mutex_lock(&u->lock);
	u->ier = data[0];
	u->fcr = data[2] & 0xc9;
	u->lcr = data[3];
	u->mcr = data[4];
	u->lsr = (data[5] & ~LSR_DR) | LSR_TEMT | LSR_THRE; /* DR: the FIFO */
	u->msr = data[6];
	u->scr = data[7];
	u->dll = data[8];
	u->dlm = data[9];
	u->thr_ipending = data[10];
	u->rx_head = 0;
	u->rx_len = n;
	memcpy(u->rx, data + SAVE_HEAD, n);
	/* IIR follows from the rest; drive the line whatever it was */
	update(u, true);
	pthread_mutex_unlock(&u->lock);
	return 0;
}
