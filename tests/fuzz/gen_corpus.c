/*
 * gen_corpus.c - writes the seed corpus of the stream decoder's fuzz target
 * (tests/fuzz/fuzz_stream.c): gen-stream-corpus DIR.
 *
 * Each seed is the target's mode byte (odd: RAM attached, even: decode
 * only) followed by a valid stream for the target's fixed RAM layout, so
 * that the fuzzer starts from inputs that reach every record type.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "ferry/stream.h"

#define PS	 4096u
#define RAM0_LEN (64u * 1024)
#define RAM1_LEN (16u * 1024)

/* The source guest: the fuzz target's layout, with some content. */
static uint8_t ram0[RAM0_LEN], ram1[RAM1_LEN];
static const struct ferry_ramblock layout[2] = {
	{ .id = 0, .name = "ram0", .host = ram0, .length = RAM0_LEN },
	{ .id = 1, .name = "ram1", .host = ram1, .length = RAM1_LEN },
};

struct seed {
	struct ferry_buf buf;
	struct ferry_stream_encoder *e;
	int rc; /* the first failure */
};

static void seed_rc(struct seed *s, int rc)
{
	if (!s->rc)
		s->rc = rc;
}

/* The mode byte and the stream header with these flags. */
static void seed_open(struct seed *s, uint8_t mode, uint32_t flags)
{
	memset(s, 0, sizeof(*s));
	seed_rc(s, ferry_buf_put(&s->buf, &mode, 1));
	seed_rc(s, ferry_stream_encoder_new(ferry_stream_sink_buf(&s->buf),
					    &s->e));
	if (s->rc)
		return;
	seed_rc(s, ferry_stream_put_header(s->e, flags));
}

/* The mode byte, the stream header and the configuration. */
static void seed_start(struct seed *s, uint8_t mode)
{
	seed_open(s, mode, 0);
	if (s->e)
		seed_rc(s, ferry_stream_put_config(s->e, PS, layout, 2));
}

static void raw(struct seed *s, uint32_t block, uint64_t off)
{
	const uint8_t *host = layout[block].host + off;

	if (s->e)
		seed_rc(s, ferry_stream_put_page(s->e, block, off,
						 FERRY_PAGE_RAW, host, PS));
}

static void zero(struct seed *s, uint32_t block, uint64_t off)
{
	if (s->e)
		seed_rc(s, ferry_stream_put_page(s->e, block, off,
						 FERRY_PAGE_ZERO, NULL, 0));
}

static void device(struct seed *s, const char *name, uint32_t instance,
		   const void *data, uint32_t len)
{
	if (s->e)
		seed_rc(s, ferry_stream_put_device(s->e, name, instance, 1,
						   data, len));
}

static void iter_end(struct seed *s, uint64_t iteration)
{
	if (s->e)
		seed_rc(s, ferry_stream_put_iter_end(s->e, iteration));
}

static void end(struct seed *s, const uint8_t *digest)
{
	if (s->e)
		seed_rc(s, ferry_stream_put_end(s->e, digest));
}

/* Flush the seed and write it to dir/name. */
static int seed_write(struct seed *s, const char *dir, const char *name)
{
	char path[4096];
	FILE *f;
	int rc = s->rc;

	if (!rc && s->e)
		rc = ferry_stream_flush(s->e);
	ferry_stream_encoder_free(s->e);
	if (rc) {
		fprintf(stderr, "gen-stream-corpus: encoding %s: %s\n", name,
			strerror(-rc));
		ferry_buf_free(&s->buf);
		return rc;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f) {
		rc = -errno;
		fprintf(stderr, "gen-stream-corpus: %s: %s\n", path,
			strerror(errno));
		ferry_buf_free(&s->buf);
		return rc;
	}
	if (fwrite(s->buf.data, 1, s->buf.len, f) != s->buf.len)
		rc = -EIO;
	if (fclose(f) && !rc)
		rc = -errno;
	if (rc)
		fprintf(stderr, "gen-stream-corpus: writing %s: %s\n", path,
			strerror(-rc));
	ferry_buf_free(&s->buf);
	return rc;
}

static const char serial[] = "serial state: lcr=3 ier=1";
static const uint8_t cpu[64] = { 0x0f, 0x1f, 0x44, 0x00, 0x00, 0xff };

static void config_only(struct seed *s, uint8_t mode)
{
	seed_start(s, mode);
}

static void raw_pages(struct seed *s, uint8_t mode)
{
	seed_start(s, mode);
	raw(s, 0, 0);
	raw(s, 0, 5 * PS);
	raw(s, 1, RAM1_LEN - PS);
}

static void zero_pages(struct seed *s, uint8_t mode)
{
	uint64_t off;

	seed_start(s, mode);
	for (off = 0; off < RAM1_LEN; off += PS)
		zero(s, 1, off);
	zero(s, 0, RAM0_LEN - PS);
}

static void devices(struct seed *s, uint8_t mode)
{
	char longname[FERRY_NAME_MAX + 1];

	memset(longname, 'n', FERRY_NAME_MAX);
	longname[FERRY_NAME_MAX] = '\0';
	seed_start(s, mode);
	device(s, "serial", 0, serial, sizeof(serial) - 1);
	device(s, "serial", 1, serial, 6);
	device(s, "cpu", 0, cpu, sizeof(cpu));
	device(s, "empty", 0, cpu, 0);
	device(s, longname, 7, "x", 1);
}

static void iterations(struct seed *s, uint8_t mode)
{
	seed_start(s, mode);
	raw(s, 0, PS);
	iter_end(s, 0);
	zero(s, 0, PS);
	iter_end(s, 1);
	iter_end(s, 2);
}

/*
 * Every page, the sections, and the digest of what the destination then
 * holds: the raw pages as the source has them, the rest zero.
 */
static void end_digest(struct seed *s, uint8_t mode)
{
	static uint8_t img0[RAM0_LEN], img1[RAM1_LEN];
	struct ferry_digest *g = NULL;
	uint8_t digest[16];
	uint64_t off;
	int rc;

	memset(img0, 0, sizeof(img0));
	memset(img1, 0, sizeof(img1));
	seed_start(s, mode);
	for (off = 0; off < RAM0_LEN; off += PS) {
		if (off == 2 * PS) {
			raw(s, 0, off);
			memcpy(img0 + off, ram0 + off, PS);
		} else {
			zero(s, 0, off);
		}
	}
	for (off = 0; off < RAM1_LEN; off += PS) {
		if (off == PS) {
			raw(s, 1, off);
			memcpy(img1 + off, ram1 + off, PS);
		} else {
			zero(s, 1, off);
		}
	}
	iter_end(s, 0);
	device(s, "cpu", 0, cpu, sizeof(cpu));
	device(s, "serial", 0, serial, sizeof(serial) - 1);

	/* blocks by name, sections by name then instance */
	rc = ferry_digest_new(&g);
	if (rc) {
		seed_rc(s, rc);
		return;
	}
	ferry_digest_block(g, "ram0", img0, RAM0_LEN, PS);
	ferry_digest_block(g, "ram1", img1, RAM1_LEN, PS);
	ferry_digest_section(g, "cpu", 0, 1, cpu, sizeof(cpu));
	ferry_digest_section(g, "serial", 0, 1, serial, sizeof(serial) - 1);
	ferry_digest_final(g, digest);
	ferry_digest_free(g);
	end(s, digest);
}

static void end_no_digest(struct seed *s, uint8_t mode)
{
	seed_start(s, mode);
	raw(s, 1, 0);
	iter_end(s, 0);
	end(s, NULL);
}

static void mixed(struct seed *s, uint8_t mode)
{
	seed_start(s, mode);
	raw(s, 0, 0);
	zero(s, 1, 0);
	raw(s, 1, 2 * PS);
	iter_end(s, 0);
	raw(s, 0, 0); /* dirtied again */
	zero(s, 0, 9 * PS);
	iter_end(s, 1);
	device(s, "serial", 0, serial, sizeof(serial) - 1);
	device(s, "cpu", 3, cpu, 16);
	zero(s, 1, 2 * PS);
	iter_end(s, 5);
	end(s, NULL);
}

/* A layout that only decodes without RAM: more blocks, larger pages. */
static void other_layout(struct seed *s, uint8_t mode)
{
	static uint8_t page[8192];
	const struct ferry_ramblock blocks[3] = {
		{ .id = 10, .name = "pc.ram", .length = 4 * 8192 },
		{ .id = 3, .name = "vga.vram", .length = 8192 },
		{ .id = 0xffffffffu, .name = "pc.bios", .length = 2 * 8192 },
	};

	memset(s, 0, sizeof(*s));
	seed_rc(s, ferry_buf_put(&s->buf, &mode, 1));
	seed_rc(s, ferry_stream_encoder_new(ferry_stream_sink_buf(&s->buf),
					    &s->e));
	if (s->rc)
		return;
	memset(page, 0x5a, sizeof(page));
	seed_rc(s, ferry_stream_put_header(s->e, 0));
	seed_rc(s, ferry_stream_put_config(s->e, 8192, blocks, 3));
	seed_rc(s, ferry_stream_put_page(s->e, 3, 0, FERRY_PAGE_RAW, page,
					 sizeof(page)));
	seed_rc(s, ferry_stream_put_page(s->e, 0xffffffffu, 8192,
					 FERRY_PAGE_ZERO, NULL, 0));
	iter_end(s, 0);
	end(s, NULL);
}

/* A page channel's stream: the multifd flag, the channel record with its
 * token, then pages and the channel's end. */
static void channel(struct seed *s, uint8_t mode)
{
	static const uint8_t token[FERRY_STREAM_TOKEN_LEN] = {
		0x8e, 0x21, 0x5c, 0x07, 0xd3, 0x9a, 0x44, 0xf0,
		0x16, 0xbb, 0x60, 0x3d, 0xe2, 0x75, 0x0c, 0xa9,
	};

	seed_open(s, mode, FERRY_STREAM_F_MULTIFD);
	if (!s->e)
		return;
	seed_rc(s, ferry_stream_put_channel(s->e, 0x123456789abcdef0ull, token,
					    2, 4));
	seed_rc(s, ferry_stream_put_config(s->e, PS, layout, 2));
	raw(s, 0, 4 * PS);
	zero(s, 1, PS);
	end(s, NULL);
}

static const struct {
	const char *name;
	void (*build)(struct seed *s, uint8_t mode);
	uint8_t mode;
} seeds[] = {
	{ "config-only", config_only, 1 },
	{ "raw-pages", raw_pages, 1 },
	{ "zero-pages", zero_pages, 1 },
	{ "devices", devices, 1 },
	{ "iterations", iterations, 1 },
	{ "end-digest", end_digest, 1 },
	{ "end-no-digest", end_no_digest, 1 },
	{ "mixed", mixed, 1 },
	{ "noram-config-only", config_only, 0 },
	{ "noram-mixed", mixed, 0 },
	{ "noram-end-digest", end_digest, 0 },
	{ "noram-other-layout", other_layout, 0 },
	{ "channel", channel, 1 },
	{ "noram-channel", channel, 0 },
};

/* Header flags for compressed, unchanged, checked and XBZRLE pages, one
 * page of each, and a sync record. */
static int seed_codecs(const char *dir)
{
	const struct page_codec *codecs[2] = { &codec_zstd, &codec_lz4 };
	uint8_t z[PS], mode = 1;
	struct seed s = { 0 };
	size_t i, n;

	seed_rc(&s, ferry_buf_put(&s.buf, &mode, 1));
	seed_rc(&s,
		ferry_stream_encoder_new(ferry_stream_sink_buf(&s.buf), &s.e));
	if (s.rc)
		return s.rc;
	seed_rc(&s,
		ferry_stream_put_header(s.e, FERRY_STREAM_F_UNCHANGED |
						     FERRY_STREAM_F_COMPRESS |
						     FERRY_STREAM_F_CHECK |
						     FERRY_STREAM_F_XBZRLE));
	seed_rc(&s, ferry_stream_put_config(s.e, PS, layout, 2));
	for (i = 0; i < 2; i++) {
		void *ctx = codecs[i]->ctx_new(1);
		const uint8_t *copy;

		n = ctx ? codecs[i]->compress(ctx, ram1, PS, z, PS) : 0;
		if (n)
			seed_rc(&s, ferry_stream_put_page_copy(
					    s.e, 1, i * PS,
					    (enum ferry_page_encoding)codecs[i]
						    ->encoding,
					    z, (uint32_t)n, &copy));
		if (ctx)
			codecs[i]->ctx_free(ctx);
	}
	seed_rc(&s, ferry_stream_put_page(s.e, 1, 0, FERRY_PAGE_UNCHANGED, NULL,
					  0));
	{
		static const uint8_t delta[] = { 10,   3,    7, 8, 9,
						 0xa0, 0x1f, 1, 5 };
		uint8_t le[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
		const uint8_t *copy;

		seed_rc(&s, ferry_stream_put_page_copy(s.e, 1, PS,
						       FERRY_PAGE_XBZRLE, delta,
						       sizeof(delta), &copy));
		seed_rc(&s, ferry_stream_put_page_copy(
				    s.e, 1, 0, FERRY_PAGE_CHECK, le, 8, &copy));
		le[0] = 2, le[1] = le[2] = le[3] = 0;
		seed_rc(&s, ferry_stream_put_page_copy(s.e, 1, 0,
						       FERRY_PAGE_UNCHANGED_RUN,
						       le, 4, &copy));
		seed_rc(&s, ferry_stream_put_sync(s.e, 1));
	}
	end(&s, NULL);
	return seed_write(&s, dir, "ram-codecs");
}

/* The zlib flag with a zlib page, and the landed flag with a landed
 * record (rdma's: pages written beside the stream). */
static int seed_zlib_landed(const char *dir)
{
	static const uint32_t ids[2] = { 0, 1 };
	static const uint64_t first[2] = { 0, 1 }, count[2] = { 2, 1 };
	uint8_t z[PS], mode = 1;
	struct seed s = { 0 };
	void *ctx = codec_zlib.ctx_new(1);
	size_t n = ctx ? codec_zlib.compress(ctx, ram1, PS, z, PS) : 0;
	const uint8_t *copy;

	if (ctx)
		codec_zlib.ctx_free(ctx);
	seed_rc(&s, ferry_buf_put(&s.buf, &mode, 1));
	seed_rc(&s,
		ferry_stream_encoder_new(ferry_stream_sink_buf(&s.buf), &s.e));
	if (s.rc)
		return s.rc;
	seed_rc(&s, ferry_stream_put_header(
			    s.e, FERRY_STREAM_F_ZLIB | FERRY_STREAM_F_LANDED));
	seed_rc(&s, ferry_stream_put_config(s.e, PS, layout, 2));
	if (n)
		seed_rc(&s,
			ferry_stream_put_page_copy(s.e, 1, 0, FERRY_PAGE_ZLIB,
						   z, (uint32_t)n, &copy));
	seed_rc(&s, ferry_stream_put_landed(s.e, ids, first, count, 2));
	iter_end(&s, 0);
	end(&s, NULL);
	return seed_write(&s, dir, "ram-zlib-landed");
}

int main(int argc, char **argv)
{
	struct stat st;
	size_t i, k;

	if (argc != 2) {
		fprintf(stderr, "usage: gen-stream-corpus DIR\n");
		return 2;
	}
	if (stat(argv[1], &st) || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "gen-stream-corpus: %s: not a directory\n",
			argv[1]);
		return 1;
	}
	/* guest RAM with recognisable, non-zero content */
	for (k = 0; k < RAM0_LEN; k++)
		ram0[k] = (uint8_t)(k * 31 + (k >> 12));
	for (k = 0; k < RAM1_LEN; k++)
		ram1[k] = (uint8_t)(k ^ (k >> 8));

	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		struct seed s;

		seeds[i].build(&s, seeds[i].mode);
		if (seed_write(&s, argv[1], seeds[i].name))
			return 1;
	}
	return seed_codecs(argv[1]) || seed_zlib_landed(argv[1]) ? 1 : 0;
}
