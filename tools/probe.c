/*
 * probe: reads with a time limit (see probe.h).
 *
 * The child writes what it read into a pipe and exits with the errno it
 * met (0 when none). The parent takes the bytes as they come until the
 * pipe closes or the time is up; a child still stuck then gets SIGKILL,
 * which a FUSE request waiting for its daemon gives way to.
 */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum probe_op { PROBE_READ, PROBE_STAT };

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t k = write(fd, p, len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

/* In the child: do op on path, copy a file's bytes into out; the exit status is an errno. */
static void child(enum probe_op op, const char *path, int out)
{
	char buf[16384];
	struct stat st;
	ssize_t n;
	int fd;

	if (op == PROBE_STAT)
		_exit(stat(path, &st) < 0 ? errno : 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		_exit(errno);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			_exit(errno);
		if (write_all(out, buf, (size_t)n) < 0)
			_exit(EPIPE);
	}
	_exit(0);
}

/* Take the child's bytes until EOF or the deadline; -ETIMEDOUT, -EFBIG or 0. */
static int collect(int fd, int64_t deadline, char *buf, size_t *len)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	for (;;) {
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!p.revents)
			continue;
		n = read(fd, buf + *len, TOOL_PROBE_MAX + 1 - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		*len += (size_t)n;
		if (*len > TOOL_PROBE_MAX)
			return -EFBIG;
	}
}

/*
 * SIGKILL and reap the child; one stuck where even that cannot reach it is
 * left to init after a second rather than holding us.
 */
static void kill_child(pid_t pid)
{
	int i;

	kill(pid, SIGKILL);
	for (i = 0; i < 500; i++) {
		if (waitpid(pid, NULL, WNOHANG) != 0)
			return;
		usleep(2000);
	}
}

/* The child's exit status as 0 or -errno, waiting until the deadline. */
static int reap(pid_t pid, int64_t deadline)
{
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (now_ms() >= deadline) {
			kill_child(pid);
			return -ETIMEDOUT;
		}
		usleep(2000);
	}
	if (!WIFEXITED(status))
		return -EIO;
	return -WEXITSTATUS(status);
}

static int probe(enum probe_op op, const char *path, int timeout_ms, char **ret, size_t *ret_len)
{
	int64_t deadline = now_ms() + timeout_ms;
	char *buf = NULL;
	size_t len = 0;
	int fds[2], r;
	pid_t pid;

	if (ret) {
		buf = malloc(TOOL_PROBE_MAX + 1);
		if (!buf)
			return -ENOMEM;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		free(buf);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(fds[0]);
		close(fds[1]);
		free(buf);
		return r;
	}
	if (pid == 0) {
		close(fds[0]);
		child(op, path, fds[1]);
	}
	close(fds[1]);
	r = buf ? collect(fds[0], deadline, buf, &len) : 0;
	close(fds[0]);
	if (r < 0)
		kill_child(pid);
	else
		r = reap(pid, deadline);
	if (r < 0) {
		free(buf);
		return r;
	}
	if (ret) {
		buf[len] = '\0';
		*ret = buf;
		*ret_len = len;
	}
	return 0;
}

int tool_probe_read(const char *path, int timeout_ms, char **ret, size_t *ret_len)
{
	return probe(PROBE_READ, path, timeout_ms, ret, ret_len);
}

int tool_probe_stat(const char *path, int timeout_ms)
{
	return probe(PROBE_STAT, path, timeout_ms, NULL, NULL);
}
