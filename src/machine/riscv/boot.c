/*
 * boot.c - what firmware does before Linux runs: the kernel Image at
 * RAM base + text_offset (0x200000, 2 MiB aligned as rv64 Linux wants),
 * the initramfs high in RAM with the device tree above it, and hart 0
 * handed to the kernel in S mode with a0 = its id, a1 = the device
 * tree, translation off, and the M-mode set-up OpenSBI leaves behind:
 * the traps S mode handles delegated, the counters readable.
 *
 * The Image header (Documentation/arch/riscv/boot-image-header.rst):
 * code0, code1, text_offset, image_size, flags, version, res1, res2,
 * magic "RISCV\0\0\0" (deprecated), magic2 "RSC\x05" at 0x38, res3.
 * A gzip'd Image is read through zlib, which passes a plain file as it
 * is.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "devices.h"
#include "le.h"

#define HDR_LEN	    64
#define FDT_RESERVE 0x10000ull /* room for the device tree at RAM's top */

/* Exceptions OpenSBI delegates, and those it would handle for S mode
 * (misaligned and access faults, illegal instructions) that have no M
 * mode here to handle them: everything but ecalls from S and M. */
#define DELEG_EXC                                                           \
	((1ull << RV_EXC_INSN_MISALIGNED) | (1ull << RV_EXC_INSN_FAULT) |   \
	 (1ull << RV_EXC_ILLEGAL) | (1ull << RV_EXC_BREAKPOINT) |           \
	 (1ull << RV_EXC_LOAD_MISALIGNED) | (1ull << RV_EXC_LOAD_FAULT) |   \
	 (1ull << RV_EXC_STORE_MISALIGNED) | (1ull << RV_EXC_STORE_FAULT) | \
	 (1ull << RV_EXC_ECALL_U) | (1ull << RV_EXC_INSN_PAGE) |            \
	 (1ull << RV_EXC_LOAD_PAGE) | (1ull << RV_EXC_STORE_PAGE))
#define DELEG_IRQ \
	((1ull << RV_IRQ_SSI) | (1ull << RV_IRQ_STI) | (1ull << RV_IRQ_SEI))

int rv_boot_place_image(uint8_t *ram, uint64_t ram_base, uint64_t ram_size,
			const uint8_t *img, size_t len, uint64_t *entry,
			uint64_t *end, struct ferry_error *err)
{
	uint64_t text_offset, image_size;

	if (len < HDR_LEN)
		return ferry_error_set(
			err, -ENOEXEC,
			"%zu bytes is too short for a RISC-V Linux Image", len);
	if (le32_load(img + 0x38) != RV_IMAGE_MAGIC2)
		return ferry_error_set(
			err, -ENOEXEC,
			"no \"RSC\\x05\" at offset 0x38: not a RISC-V Linux Image");
	text_offset = le64_load(img + 8);
	image_size = le64_load(img + 16);
	if (image_size < len)
		image_size = len; /* 0 in old headers: the file is all */
	if (text_offset & (RV_PAGE_SIZE - 1))
		return ferry_error_set(err, -ENOEXEC,
				       "text_offset 0x%llx is not page aligned",
				       (unsigned long long)text_offset);
	if (text_offset > ram_size || image_size > ram_size - text_offset)
		return ferry_error_set(
			err, -ENOSPC,
			"an Image of 0x%llx bytes at 0x%llx does not fit %llu MiB of RAM",
			(unsigned long long)image_size,
			(unsigned long long)text_offset,
			(unsigned long long)(ram_size >> 20));
	memcpy(ram + text_offset, img, len);
	memset(ram + text_offset + len, 0, image_size - len);
	*entry = ram_base + text_offset;
	*end = ram_base + text_offset + image_size;
	return 0;
}

/* The kernel file, inflated when gzip'd, into a malloc'd buffer. */
static int read_kernel(const char *path, uint64_t max, uint8_t **out,
		       size_t *len, struct ferry_error *err)
{
	size_t cap = 1 << 24, n = 0;
	uint8_t *buf, *nb;
	gzFile gz;
	int r, e;

	gz = gzopen(path, "rb");
	if (!gz)
		return ferry_error_set(err, errno ? -errno : -ENOMEM,
				       "boot: open kernel %s: %s", path,
				       strerror(errno ? errno : ENOMEM));
	buf = malloc(cap);
	if (!buf) {
		r = ferry_error_set(err, -ENOMEM, "boot: no memory to read %s",
				    path);
		goto fail;
	}
	for (;;) {
		if (n == cap) {
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb) {
				r = ferry_error_set(
					err, -ENOMEM,
					"boot: no memory to read %s", path);
				goto fail;
			}
			buf = nb;
		}
		r = gzread(gz, buf + n, (unsigned)(cap - n));
		if (r < 0) {
			r = ferry_error_set(err, -EIO,
					    "boot: read kernel %s: %s", path,
					    gzerror(gz, &e));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			r = ferry_error_set(
				err, -EFBIG,
				"boot: kernel %s is larger than RAM", path);
			goto fail;
		}
	}
	gzclose(gz);
	*out = buf;
	*len = n;
	return 0;
fail:
	gzclose(gz);
	free(buf);
	return r;
}

/* The initramfs as it is (the kernel inflates it) at ram + off. */
static int read_file(const char *path, uint8_t *dst, size_t len,
		     struct ferry_error *err)
{
	size_t n = 0;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return ferry_error_set(err, -errno, "boot: open initrd %s: %s",
				       path, strerror(errno));
	while (n < len) {
		r = read(fd, dst + n, len - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			r = r < 0 ? -errno : -EIO;
			close(fd);
			return ferry_error_set(
				err, (int)r, "boot: read initrd %s: %s", path,
				r == -EIO ? "short file" : strerror((int)-r));
		}
		n += (size_t)r;
	}
	close(fd);
	return 0;
}

void rv_boot_enter_s(struct rv_hart *h, uint64_t pc, uint64_t a1)
{
	h->pc = pc;
	h->x[10] = h->id;
	h->x[11] = a1;
	h->priv = RV_PRIV_S;
	h->satp = 0;
	h->mstatus &= ~(RV_MSTATUS_SIE | RV_MSTATUS_SPIE | RV_MSTATUS_SPP |
			RV_MSTATUS_MPRV);
	h->medeleg = DELEG_EXC;
	h->mideleg = DELEG_IRQ;
	h->mcounteren = 7; /* cycle, time, instret */
	h->menvcfg = 0;	   /* no Sstc, Svpbmt or Zicbo* to turn on */
	h->wfi = false;
	h->lr_valid = false;
	h->exc_pending = false;
	rv_tlb_flush(h);
}

int rv_boot_linux(struct rv_machine *m, const char *kernel, const char *initrd,
		  const char *cmdline, struct rv_boot_layout *lay,
		  struct ferry_error *err)
{
	struct rv_fdt_params fp = {
		.nharts = m->nharts,
		.ram_base = m->bus.ram_base,
		.ram_size = m->bus.ram_size,
		.cmdline = cmdline,
	};
	uint64_t base = m->bus.ram_base, top = base + m->bus.ram_size;
	uint8_t *img = NULL;
	size_t len = 0, fdt_len = 0;
	struct stat st;
	void *fdt = NULL;
	int rc;

	memset(lay, 0, sizeof(*lay));
	if (m->bus.ram_size < 2 * FDT_RESERVE)
		return ferry_error_set(err, -ENOSPC, "boot: RAM too small");
	rc = read_kernel(kernel, m->bus.ram_size, &img, &len, err);
	if (rc)
		return rc;
	rc = rv_boot_place_image(m->bus.ram, base, m->bus.ram_size, img, len,
				 &lay->entry, &lay->kernel_end, err);
	free(img);
	if (rc) { /* which file it was */
		char why[sizeof(err->msg)];

		strcpy(why, ferry_error_msg(err));
		ferry_error_clear(err);
		return ferry_error_set(err, rc, "boot: kernel %s: %s", kernel,
				       why);
	}

	lay->fdt_addr = top - FDT_RESERVE;
	if (initrd) {
		if (stat(initrd, &st))
			return ferry_error_set(err, -errno,
					       "boot: initrd %s: %s", initrd,
					       strerror(errno));
		if ((uint64_t)st.st_size > lay->fdt_addr - lay->kernel_end)
			return ferry_error_set(
				err, -ENOSPC,
				"boot: initrd %s (%lld bytes) does not fit between the kernel and the top of RAM",
				initrd, (long long)st.st_size);
		lay->initrd_end = lay->fdt_addr;
		lay->initrd_start = (lay->initrd_end - (uint64_t)st.st_size) &
				    ~(RV_PAGE_SIZE - 1);
		lay->initrd_end = lay->initrd_start + (uint64_t)st.st_size;
		if (lay->initrd_start < lay->kernel_end)
			return ferry_error_set(
				err, -ENOSPC,
				"boot: initrd %s overlaps the kernel", initrd);
		rc = read_file(initrd, m->bus.ram + (lay->initrd_start - base),
			       (size_t)st.st_size, err);
		if (rc)
			return rc;
		fp.initrd_start = lay->initrd_start;
		fp.initrd_end = lay->initrd_end;
	}

	rc = rv_fdt_build(&fp, &fdt, &fdt_len, err);
	if (rc)
		return rc;
	if (fdt_len > FDT_RESERVE) {
		free(fdt);
		return ferry_error_set(
			err, -ENOSPC,
			"boot: device tree of %zu bytes, room for %llu",
			fdt_len, FDT_RESERVE);
	}
	memcpy(m->bus.ram + (lay->fdt_addr - base), fdt, fdt_len);
	lay->fdt_size = fdt_len;
	free(fdt);

	rv_boot_enter_s(&m->harts[0]->hart, lay->entry, lay->fdt_addr);
	return 0;
}
