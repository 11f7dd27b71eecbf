/* unix.c - the "unix:PATH" transport. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "transport.h"

static int make_addr(const char *path, struct sockaddr_un *sa,
		     struct ferry_error *err)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!*path || strlen(path) >= sizeof(sa->sun_path))
		return ferry_error_set(err, -ENAMETOOLONG,
				       "unix:%s: a socket path has 1 to %zu "
				       "bytes",
				       path, sizeof(sa->sun_path) - 1);
	strcpy(sa->sun_path, path);
	return 0;
}

static int unix_listen(const char *path, int *out, char *bound, size_t len,
		       struct ferry_error *err)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, rc, probe;

	rc = make_addr(path, &sa, err);
	if (rc)
		return rc;
	/* A leftover socket file is removed; a live one is not stolen. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return ferry_error_set(err, -EEXIST,
					       "unix:%s: exists and is not a "
					       "socket",
					       path);
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 &&
		    connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			return ferry_error_set(err, -EADDRINUSE,
					       "unix:%s: another process is "
					       "listening on this socket",
					       path);
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ferry_error_set(err, -errno, "unix:%s: socket: %s", path,
				       strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0600) < 0 || listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		close(fd);
		return ferry_error_set(err, rc, "unix:%s: cannot listen: %s",
				       path, strerror(-rc));
	}
	snprintf(bound, len, "unix:%s", path);
	*out = fd;
	return 0;
}

static int unix_connect(const char *path, int *out, struct ferry_error *err)
{
	struct sockaddr_un sa;
	int fd, rc;

	rc = make_addr(path, &sa, err);
	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ferry_error_set(err, -errno, "unix:%s: socket: %s", path,
				       strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		close(fd);
		return ferry_error_set(err, rc, "unix:%s: cannot connect: %s",
				       path, strerror(-rc));
	}
	*out = fd;
	return 0;
}

static int unix_check(const char *path, struct ferry_error *err)
{
	struct sockaddr_un sa;

	return make_addr(path, &sa, err);
}

const struct transport_ops transport_unix = {
	.check = unix_check,
	.scheme = "unix",
	.caps = TRANSPORT_CHANNELS | TRANSPORT_POSTCOPY | TRANSPORT_CODECS |
		TRANSPORT_TLS | TRANSPORT_RETURN,
	.listen = unix_listen,
	.connect = unix_connect,
};
