/* size.h - parsing and printing byte sizes ("512M", "1.5G"). */
#ifndef FERRY_SIZE_H
#define FERRY_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Binary suffixes K, M, G, T (optionally followed by "iB" or "B"); a
 * decimal fraction is allowed if the result is a whole number of bytes.
 * Returns 0 or -EINVAL (not a size) or -ERANGE (over 2^63). */
int ferry_parse_size(const char *s, uint64_t *out);

/* "1.50 GiB" style, into buf. */
const char *ferry_format_size(uint64_t bytes, char *buf, size_t len);

#endif
