/* size.c - byte sizes as people write them. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "size.h"

int ferry_parse_size(const char *s, uint64_t *out)
{
	uint64_t whole = 0, mult = 1, frac_num = 0, frac_den = 1;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	while (isdigit((unsigned char)*p)) {
		if (whole > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		whole = whole * 10 + (uint64_t)(*p++ - '0');
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p)) {
			if (frac_den > UINT64_MAX / 100)
				return -ERANGE;
			frac_num = frac_num * 10 + (uint64_t)(*p++ - '0');
			frac_den *= 10;
		}
	}
	switch (toupper((unsigned char)*p)) {
	case 'K':
		mult = 1ull << 10;
		p++;
		break;
	case 'M':
		mult = 1ull << 20;
		p++;
		break;
	case 'G':
		mult = 1ull << 30;
		p++;
		break;
	case 'T':
		mult = 1ull << 40;
		p++;
		break;
	default:
		break;
	}
	if (mult > 1 && (!strcasecmp(p, "iB") || !strcasecmp(p, "B")))
		p += strlen(p);
	else if (mult == 1 && !strcasecmp(p, "B"))
		p++;
	if (*p)
		return -EINVAL;
	if (whole > (UINT64_MAX >> 1) / mult)
		return -ERANGE;
	{
		unsigned __int128 f = (unsigned __int128)frac_num * mult;

		if (f % frac_den)
			return -EINVAL; /* not a whole number of bytes */
		*out = whole * mult + (uint64_t)(f / frac_den);
	}
	if (*out > (UINT64_MAX >> 1))
		return -ERANGE;
	return 0;
}

const char *ferry_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.2f %s", v, unit[u]);
	return buf;
}
