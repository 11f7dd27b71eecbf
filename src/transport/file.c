/*
 * file.c - the "file:PATH[,offset=N]" transport: the stream into a file
 * (migrate: save) and out of it (migrate-incoming: restore), with QEMU's
 * URI.  A file has no peer: nothing answers on it (no TRANSPORT_RETURN),
 * so the source's end is the file written and synced, and the digest in
 * it is what a restore checks.  With offset=N the stream starts N bytes
 * into the file, and what lies before is kept.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport.h"

/* PATH and offset out of "PATH[,offset=N]". */
static int parse(const char *addr, char *path, size_t len, uint64_t *offset,
		 struct ferry_error *err)
{
	const char *comma = strrchr(addr, ',');
	size_t n = comma ? (size_t)(comma - addr) : strlen(addr);
	char *end;

	*offset = 0;
	if (comma) {
		if (strncmp(comma + 1, "offset=", 7))
			return ferry_error_set(err, -EINVAL,
					       "file:%s: unknown option '%s' "
					       "(file:PATH[,offset=N])",
					       addr, comma + 1);
		errno = 0;
		*offset = strtoull(comma + 8, &end, 0);
		if (!comma[8] || *end || errno || comma[8] == '-' ||
		    *offset > INT64_MAX)
			return ferry_error_set(err, -EINVAL,
					       "file:%s: offset '%s' is not a "
					       "number of bytes",
					       addr, comma + 8);
	}
	if (!n || n >= len)
		return ferry_error_set(err, -ENAMETOOLONG,
				       "file:%s: a path has 1 to %zu bytes",
				       addr, len - 1);
	memcpy(path, addr, n);
	path[n] = '\0';
	return 0;
}

static int file_check(const char *addr, struct ferry_error *err)
{
	char path[4096];
	uint64_t off;

	return parse(addr, path, sizeof(path), &off, err);
}

/* Restore: the file to read the stream from, at its offset. */
static int file_listen(const char *addr, int *out, char *bound, size_t len,
		       struct ferry_error *err)
{
	char path[4096];
	struct stat st;
	uint64_t off;
	int fd, rc = parse(addr, path, sizeof(path), &off, err);

	if (rc)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ferry_error_set(err, -errno, "file:%s: %s", path,
				       strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ferry_error_set(err, -EINVAL,
				       "file:%s: not a regular file", path);
	}
	if ((uint64_t)st.st_size <= off ||
	    lseek(fd, (off_t)off, SEEK_SET) < 0) {
		close(fd);
		return ferry_error_set(err, -ENODATA,
				       "file:%s: %" PRIu64 " bytes, nothing at "
				       "offset %" PRIu64,
				       path, (uint64_t)st.st_size, off);
	}
	/* read once, front to back: the kernel may read ahead further, and
	 * starts reading it all now, in large requests, while the decoder
	 * takes the stream in 128 KiB reads */
	(void)posix_fadvise(fd, (off_t)off, 0, POSIX_FADV_SEQUENTIAL);
	(void)posix_fadvise(fd, (off_t)off, 0, POSIX_FADV_WILLNEED);
	snprintf(bound, len, "file:%s", addr);
	*out = fd;
	return 0;
}

/* Save: the file the stream goes into, created (mode 0600) or cut to the
 * offset. */
static int file_connect(const char *addr, int *out, struct ferry_error *err)
{
	char path[4096];
	uint64_t off;
	int fd, rc = parse(addr, path, sizeof(path), &off, err);

	if (rc)
		return rc;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (off ? 0 : O_TRUNC),
		  0600);
	if (fd < 0)
		return ferry_error_set(err, -errno, "file:%s: %s", path,
				       strerror(errno));
	if ((off && ftruncate(fd, (off_t)off) < 0) ||
	    lseek(fd, (off_t)off, SEEK_SET) < 0) {
		rc = -errno;
		close(fd);
		return ferry_error_set(err, rc,
				       "file:%s: at offset %" PRIu64 ": %s",
				       path, off, strerror(-rc));
	}
	*out = fd;
	return 0;
}

const struct transport_ops transport_file = {
	.scheme = "file",
	.caps = TRANSPORT_CODECS | TRANSPORT_MAPPED,
	.limits = "a file is one stream with nobody on the other side: no "
		  "connections beside it, no page requests, no TLS",
	.connected = true,
	.listen = file_listen,
	.connect = file_connect,
	.check = file_check,
};
