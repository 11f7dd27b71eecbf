/*
 * ram.c - the reference guest's RAM: blocks mapped anonymous (or from a
 * memfd) and filled with content chosen by --fill, in parallel.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest_internal.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * Back all of RAM now rather than on first touch: a destination does this
 * before the migration starts, so the kernel's (and, in a VM, the
 * hypervisor's) cost of first touch is not paid inside the migration.
 */
static void prealloc(uint8_t *p, uint64_t len, uint32_t page_size)
{
	uint64_t off;

	if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
		return;
	for (off = 0; off < len; off += page_size) /* kernels before 5.14 */
		__atomic_fetch_add(p + off, 0, __ATOMIC_RELAXED);
}

int guest_ram_alloc(struct ferry_guest *g, struct ferry_error *err)
{
	uint64_t gpn = 0;
	unsigned i;

	for (i = 0; i < g->cfg.nblocks; i++) {
		struct ferry_ramblock *b = &g->blocks[i];
		uint64_t len = g->cfg.block_sizes[i];
		void *p;

		if (!len || len % g->page_size)
			return ferry_error_set(err, -EINVAL,
					       "RAM block %u: size %llu is not "
					       "a positive multiple of the %u-"
					       "byte page size",
					       i, (unsigned long long)len,
					       g->page_size);
		if (g->cfg.memfd) {
			char name[32];
			int fd;

			snprintf(name, sizeof(name), "ferry-ram%u", i);
			fd = memfd_create(name, MFD_CLOEXEC);
			if (fd < 0)
				return ferry_error_set(err, -errno,
						       "memfd_create: %s",
						       strerror(errno));
			if (ftruncate(fd, (off_t)len) < 0) {
				int e = errno;

				close(fd);
				return ferry_error_set(
					err, -e,
					"ftruncate memfd to %llu "
					"bytes: %s",
					(unsigned long long)len, strerror(e));
			}
			p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
				 fd, 0);
			close(fd);
		} else {
			p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				 -1, 0);
		}
		if (p == MAP_FAILED)
			return ferry_error_set(err, -errno,
					       "mmap %llu bytes of guest RAM: "
					       "%s",
					       (unsigned long long)len,
					       strerror(errno));
		/* Huge pages where the host allows them, as VMMs do for guest
		 * RAM: fewer TLB misses, and a dirty sync skips a clean 2 MiB
		 * range in one step. */
		madvise(p, len, MADV_HUGEPAGE);
		if (g->cfg.prealloc)
			prealloc(p, len, g->page_size);
		b->id = i;
		snprintf(b->name, sizeof(b->name), "ram%u", i);
		b->host = p;
		b->length = len;
		g->nblocks = i + 1;
		g->mem.first_page[i] = gpn;
		gpn += len / g->page_size;
	}
	g->mem.blocks = g->blocks;
	g->mem.nblocks = (uint32_t)g->nblocks;
	g->mem.npages = gpn;
	g->mem.page_shift = (unsigned)__builtin_ctz(g->page_size);
	return 0;
}

void guest_ram_free(struct ferry_guest *g)
{
	size_t i;

	for (i = 0; i < g->nblocks; i++)
		munmap(g->blocks[i].host, g->blocks[i].length);
	g->nblocks = 0;
}

struct fill_job {
	struct ferry_guest *g;
	uint64_t first, end; /* guest page numbers */
};

/* English-like text: common words, spaces, now and then a full stop. */
static void fill_text(uint8_t *p, size_t len, uint64_t s[4])
{
	static const char *const words[] = {
		"the",	 "of",	  "and",   "to",     "a",	"in",
		"is",	 "that",  "for",   "it",     "as",	"was",
		"with",	 "be",	  "by",	   "on",     "not",	"he",
		"this",	 "are",	  "or",	   "his",    "from",	"at",
		"which", "but",	  "have",  "an",     "had",	"they",
		"you",	 "were",  "their", "one",    "all",	"we",
		"can",	 "her",	  "has",   "there",  "been",	"if",
		"more",	 "when",  "will",  "would",  "who",	"so",
		"no",	 "guest", "page",  "memory", "migrate", "host",
		"state", "time",  "over",  "after",  "before",	"while",
		"under", "again", "still", "moving",
	};
	size_t off = 0;

	while (off < len) {
		uint64_t r = xoshiro_next(s);
		const char *w = words[r % 64];
		size_t n = strlen(w);

		if (off + n + 2 > len)
			break;
		memcpy(p + off, w, n);
		off += n;
		p[off++] = (r >> 8) % 12 == 0 ? '.' : ' ';
		if (p[off - 1] == '.' && off < len)
			p[off++] = ' ';
	}
	memset(p + off, ' ', len - off);
}

static void fill_page(const struct ferry_guest *g, uint64_t gpn, uint8_t *p)
{
	uint64_t seed = g->cfg.seed ^ (gpn * 0xd1b54a32d192ed03ull), s[4];
	uint64_t *w = (uint64_t *)(void *)p;
	size_t i, n = g->page_size / 8;

	if (g->cfg.fill == FERRY_FILL_MIXED) {
		uint64_t t = seed;

		if (splitmix64(&t) % 100 < g->cfg.zero_percent)
			return; /* stays a zero page */
	}
	xoshiro_seed(s, seed);
	if (g->cfg.fill == FERRY_FILL_TEXT) {
		fill_text(p, g->page_size, s);
		return;
	}
	for (i = 0; i < n; i++)
		w[i] = xoshiro_next(s);
}

static void *fill_main(void *arg)
{
	struct fill_job *j = arg;
	uint64_t gpn;

	for (gpn = j->first; gpn < j->end; gpn++) {
		uint32_t block;

		fill_page(j->g, gpn, gmem_page(&j->g->mem, gpn, &block));
	}
	return NULL;
}

void guest_ram_fill(struct ferry_guest *g)
{
	struct fill_job jobs[8];
	pthread_t th[8];
	bool started[8] = { false };
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (unsigned)ncpu, i;

	if (g->cfg.fill == FERRY_FILL_ZERO)
		return;
	for (i = 0; i < n; i++) {
		jobs[i].g = g;
		jobs[i].first = g->mem.npages * i / n;
		jobs[i].end = g->mem.npages * (i + 1) / n;
		if (i > 0)
			started[i] = !pthread_create(&th[i], NULL, fill_main,
						     &jobs[i]);
	}
	fill_main(&jobs[0]);
	for (i = 1; i < n; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		else
			fill_main(&jobs[i]);
	}
}
