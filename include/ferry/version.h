/*
 * version.h - which libferry this is.
 *
 * The library's version ("MAJOR.MINOR.MICRO"), not the stream format's:
 * two sides with different library versions migrate as long as their
 * stream formats agree (docs/stream.md, "Versioning").
 */
#ifndef FERRY_VERSION_H
#define FERRY_VERSION_H

const char *ferry_version(void);

#endif
