/*
 * exec.c - the "exec:COMMAND" transport, as QEMU's: the stream through a
 * pipe to or from `/bin/sh -c COMMAND` (a source writes the command's
 * standard input, a destination reads its standard output), for example
 * `exec:zstd > guest.zst` and `exec:zstd -dc guest.zst`, or ssh to
 * another host.  Nobody answers on a pipe (no TRANSPORT_RETURN): a save
 * ends when the command, its input closed, exits with status 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"

extern char **environ;

static int exec_check(const char *addr, struct ferry_error *err)
{
	if (!*addr)
		return ferry_error_set(err, -EINVAL,
				       "exec: needs a command (exec:COMMAND)");
	return 0;
}

static int exec_spawn(const char *cmd, bool out, int *fd, pid_t *pid,
		      struct ferry_error *err)
{
	char *const argv[] = { "sh", "-c", (char *)cmd, NULL };
	posix_spawn_file_actions_t fa;
	int p[2], rc;

	if (pipe2(p, O_CLOEXEC) < 0)
		return ferry_error_set(err, -errno, "exec:%s: pipe: %s", cmd,
				       strerror(errno));
	/* the child's end becomes its standard input (a save) or output */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out ? p[0] : p[1],
					 out ? STDIN_FILENO : STDOUT_FILENO);
	rc = posix_spawn(pid, "/bin/sh", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out ? p[0] : p[1]);
	if (rc) {
		close(out ? p[1] : p[0]);
		return ferry_error_set(err, -rc, "exec:%s: cannot start: %s",
				       cmd, strerror(rc));
	}
	*fd = out ? p[1] : p[0];
	return 0;
}

const struct transport_ops transport_exec = {
	.scheme = "exec",
	.caps = TRANSPORT_CODECS,
	.limits = "a pipe to a command is one stream with nobody answering: "
		  "no connections beside it, no page requests, no TLS",
	.spawn = exec_spawn,
	.check = exec_check,
};

int transport_reap(pid_t pid, const char *uri, int timeout_ms,
		   struct ferry_error *err)
{
	struct timespec nap = { 0, 10000000 };
	int status, waited = 0;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, timeout_ms < 0 ? 0 : WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			break;
		if (r == 0 && waited >= timeout_ms) {
			kill(pid, SIGKILL); /* it outstayed the stream */
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return ferry_error_set(err, -ETIMEDOUT,
					       "%s: still running %d ms after "
					       "the stream ended: killed",
					       uri, timeout_ms);
		}
		if (r == 0) {
			nanosleep(&nap, NULL);
			waited += 10;
		}
	}
	if (r < 0)
		return ferry_error_set(err, -errno, "%s: waitpid: %s", uri,
				       strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return ferry_error_set(err, -EIO,
				       "%s: the command exited "
				       "with status %d",
				       uri, WEXITSTATUS(status));
	return ferry_error_set(err, -EIO,
			       "%s: the command was killed by "
			       "signal %d",
			       uri, WTERMSIG(status));
}
