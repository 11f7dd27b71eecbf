/*
 * hart_state.h - a hart's architectural state as a device section
 * ("riscv-hart", one instance per hart), for migration.
 */
#ifndef FERRY_RV_HART_STATE_H
#define FERRY_RV_HART_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/error.h"
#include "ferry/vm.h"
#include "riscv.h"

#define RV_HART_SECTION		"riscv-hart"
#define RV_HART_SECTION_VERSION 1

/* Append hart h's state to out; the hart must be parked. */
int rv_hart_save(const struct rv_hart *h, struct ferry_buf *out);
/*
 * Load state saved by rv_hart_save() on the source into the parked hart
 * h, after checking every field: a length that is not the section's, a
 * misa other than this hart's, a privilege level, satp mode, rounding
 * mode or pc the hart cannot have are refused with err naming the field.
 * A reservation does not travel: the first SC after the move fails, as
 * the ISA allows any SC to.
 */
int rv_hart_load(struct rv_hart *h, uint32_t version, const uint8_t *data,
		 size_t len, struct ferry_error *err);

#endif
