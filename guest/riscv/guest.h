/*
 * guest.h - the little runtime the guest programs (stress, timer,
 * memcheck) share: an entry point, Linux system calls made with ecall,
 * and line output to the console.  They are built freestanding
 * (-nostdlib -ffreestanding) so they need no riscv64 C library to build,
 * stay a few KiB each, and start in a handful of instructions on a slow
 * emulated hart.  Each program includes this once and defines
 * guest_main().
 */
#ifndef FERRY_GUEST_H
#define FERRY_GUEST_H

#include <stddef.h>
#include <stdint.h>

/* Linux's generic system call numbers, which riscv64 uses */
#define NR_WRITE	   64
#define NR_EXIT		   93
#define NR_CLOCK_NANOSLEEP 115
#define NR_GETTIMEOFDAY	   169
#define NR_MMAP		   222

#define PROT_READ	1
#define PROT_WRITE	2
#define MAP_PRIVATE	0x02
#define MAP_ANONYMOUS	0x20
#define CLOCK_MONOTONIC 1

struct timeval_k {
	int64_t tv_sec;
	int64_t tv_usec;
};

struct timespec_k {
	int64_t tv_sec;
	int64_t tv_nsec;
};

static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long a0 __asm__("a0") = a;
	register long a1 __asm__("a1") = b;
	register long a2 __asm__("a2") = c;
	register long a3 __asm__("a3") = d;
	register long a4 __asm__("a4") = e;
	register long a5 __asm__("a5") = f;
	register long a7 __asm__("a7") = n;

	__asm__ volatile("ecall"
			 : "+r"(a0)
			 : "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5), "r"(a7)
			 : "memory");
	return a0;
}

static inline long sys3(long n, long a, long b, long c)
{
	return sys6(n, a, b, c, 0, 0, 0);
}

static inline __attribute__((noreturn)) void sys_exit(int code)
{
	for (;;)
		sys3(NR_EXIT, code, 0, 0);
}

/* Microseconds of the wall clock (gettimeofday, as the seed's guests
 * measured their stalls). */
static inline int64_t now_us(void)
{
	struct timeval_k tv;

	sys3(NR_GETTIMEOFDAY, (long)&tv, 0, 0);
	return tv.tv_sec * 1000000 + tv.tv_usec;
}

static inline void sleep_ms(long ms)
{
	struct timespec_k ts = { ms / 1000, (ms % 1000) * 1000000 };

	/* An interrupted sleep is only a shorter one: the timer measures
	 * the real gap, not the asked one. */
	sys6(NR_CLOCK_NANOSLEEP, CLOCK_MONOTONIC, 0, (long)&ts, 0, 0, 0);
}

/* Anonymous memory, or NULL. */
static inline void *map_anon(size_t len)
{
	long p = sys6(NR_MMAP, 0, (long)len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p < 0 && p > -4096 ? NULL : (void *)p;
}

/*
 * A line is built in a buffer and written with one write(2), so lines of
 * two programs sharing the console do not interleave within a line.
 */
struct line {
	char buf[160];
	size_t len;
};

static inline void put_str(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
}

static inline void put_u64(struct line *l, uint64_t v, unsigned base)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (base == 16)
		put_str(l, "0x");
	while (n && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = tmp[--n];
}

static inline void line_end(struct line *l)
{
	size_t off = 0;

	l->buf[l->len++] = '\n';
	while (off < l->len) {
		long n = sys3(NR_WRITE, 1, (long)(l->buf + off),
			      (long)(l->len - off));

		if (n <= 0)
			break;
		off += n;
	}
	l->len = 0;
}

/* "64M", "512K", "1G" or plain bytes; 0 when it does not parse. */
static inline uint64_t parse_size(const char *s)
{
	uint64_t v = 0;

	if (!s || !*s)
		return 0;
	for (; *s >= '0' && *s <= '9'; s++)
		v = v * 10 + (uint64_t)(*s - '0');
	switch (*s) {
	case 'k':
	case 'K':
		v <<= 10;
		s++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		s++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		s++;
		break;
	}
	return *s ? 0 : v;
}

/* A 64-bit mix (splitmix64's finaliser): the patterns depend on every
 * bit of seed and offset, so a page landing at the wrong place is seen. */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/*
 * The compiler may turn loops into calls to these even freestanding;
 * there is no C library to provide them.
 */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);

void *memset(void *d, int c, size_t n)
{
	volatile unsigned char *p = d;

	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	volatile unsigned char *p = d;
	const unsigned char *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

int guest_main(int argc, char **argv);

/*
 * The kernel starts us with sp at argc, then argv[], NULL, envp[].  gp
 * must hold the linker's __global_pointer$ before any code it relaxed to
 * gp-relative addressing runs, and its own load must not be relaxed.
 */
__asm__(".section .text._start\n"
	".global _start\n"
	"_start:\n"
	".option push\n"
	".option norelax\n"
	"	la gp, __global_pointer$\n"
	".option pop\n"
	"	mv a0, sp\n"
	"	andi sp, sp, -16\n"
	"	call guest_start\n"
	"1:	j 1b\n");

__attribute__((used, noreturn)) void guest_start(long *sp);
__attribute__((used, noreturn)) void guest_start(long *sp)
{
	int argc = (int)sp[0];

	sys_exit(guest_main(argc, (char **)(sp + 1)));
}

#endif
