/*
 * stress - the seed experiments' `stress --vm 1 --vm-bytes B --vm-keep`
 * inside the RISC-V guest: allocate B bytes once and keep rewriting them,
 * one byte per page per round, so every page of the buffer is dirty again
 * each round and a pre-copy migration has to chase it.
 *
 *   stress [BYTES]        BYTES like 64M (the default), 512K, 1G
 */
#include "guest.h"

#define STRIDE 4096

int guest_main(int argc, char **argv)
{
	uint64_t bytes = argc > 1 ? parse_size(argv[1]) : 64ull << 20;
	volatile unsigned char *buf;
	struct line l = { .len = 0 };
	unsigned char round = 0;
	uint64_t i;

	if (!bytes) {
		put_str(&l, "ferry-stress: bad size ");
		put_str(&l, argv[1]);
		line_end(&l);
		return 2;
	}
	buf = map_anon(bytes);
	if (!buf) {
		put_str(&l, "ferry-stress: cannot map ");
		put_u64(&l, bytes, 10);
		put_str(&l, " bytes");
		line_end(&l);
		return 1;
	}
	put_str(&l, "ferry-stress: start ");
	put_u64(&l, bytes, 10);
	put_str(&l, " bytes");
	line_end(&l);
	/* Like stress --vm-keep: the mapping stays, its contents change.
	 * Each round writes a different value so a page is never rewritten
	 * with what it already holds. */
	for (;;) {
		round++;
		for (i = 0; i < bytes; i += STRIDE)
			buf[i] = round;
	}
}
