/*
 * version.c - the library's version, from meson's project version.
 */
#include "ferry/version.h"

const char *ferry_version(void)
{
	return FERRY_VERSION;
}
