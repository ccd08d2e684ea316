/*
 * auth_helper: runs a docker credential helper ("docker-credential-<name>
 * get") with a deadline and reads its JSON answer (see auth.h). The child
 * gets a clean environment of descriptors and signals; its output, which
 * holds a secret, is wiped once parsed.
 */
#include "auth.h"
#include "auth_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define HELPER_PREFIX	"docker-credential-"
#define HELPER_NAME_MAX 64
/* What docker-credential-helpers prints when it has nothing for a server. */
#define HELPER_NOT_FOUND "credentials not found in native keychain"

static bool helper_name_valid(const char *name)
{
	size_t n = strnlen(name, HELPER_NAME_MAX + 1), i;

	if (n == 0 || n > HELPER_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!auth_is_alnum((unsigned char)name[i]) && !strchr("._-", name[i]))
			return false;
	return true;
}

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Start "<prog> get" with stdin and stdout on the given fds, stderr on
 * /dev/null, every other fd closed, default signal dispositions, an empty
 * signal mask, and a process group of its own.
 */
static int spawn_helper(const char *prog, int in_fd, int out_fd, pid_t *ret_pid)
{
	char *const argv[] = {(char *)prog, (char *)"get", NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int r;

	sigemptyset(&none);
	sigfillset(&all);
	r = posix_spawn_file_actions_init(&fa);
	if (r)
		return -r;
	r = posix_spawnattr_init(&attr);
	if (r)
		goto out_fa;
	if ((r = posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO)) ||
	    (r = posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO)) ||
	    (r = posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0)) ||
	    (r = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1)) ||
	    (r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
							 POSIX_SPAWN_SETSIGDEF)) ||
	    (r = posix_spawnattr_setpgroup(&attr, 0)) ||
	    (r = posix_spawnattr_setsigmask(&attr, &none)) ||
	    (r = posix_spawnattr_setsigdefault(&attr, &all)))
		goto out_attr;
	r = posix_spawnp(ret_pid, prog, &fa, &attr, argv, environ);
out_attr:
	posix_spawnattr_destroy(&attr);
out_fa:
	posix_spawn_file_actions_destroy(&fa);
	if (r == ENOENT)
		return -ENOPKG;
	return -r;
}

/* Wait for pid until deadline; -ETIMEDOUT if it is still running then. */
static int wait_until(pid_t pid, int64_t deadline, int *ret_status)
{
	struct timespec nap = {0, 1000000};

	for (;;) {
		pid_t w = waitpid(pid, ret_status, WNOHANG);

		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (monotonic_ms() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&nap, NULL);
		if (nap.tv_nsec < 32000000)
			nap.tv_nsec *= 2;
	}
}

/* Read the helper's stdout to EOF into buf (max bytes), until deadline. */
static int read_until(int fd, int64_t deadline, char *buf, size_t max, size_t *ret_len)
{
	size_t len = 0;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - monotonic_ms();
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return -E2BIG;
	}
	*ret_len = len;
	return 0;
}

/* Parse a helper's {"Username":..., "Secret":...} answer. */
static int parse_helper_output(const char *out, size_t len, struct auth_credentials *ret)
{
	struct auth_credentials c = {0};
	const char *username, *secret;
	size_t username_n, secret_n;
	json_error_t err;
	json_t *root;
	int r = -EINVAL;

	root = json_loadb(out, len, 0, &err);
	if (!root)
		return auth_json_errno(&err);
	if (!json_is_object(root) ||
	    auth_json_string(root, "Username", &username, &username_n) < 0 ||
	    auth_json_string(root, "Secret", &secret, &secret_n) < 0)
		goto out;
	/* As docker: the user name "<token>" marks an identity token. */
	if (username && strcmp(username, "<token>") == 0) {
		c.identity_token = true;
		username_n = 0;
	}
	r = auth_copy_bounded(c.username, sizeof(c.username), username_n ? username : "",
			      username_n);
	if (r == 0)
		r = auth_copy_bounded(c.secret, sizeof(c.secret), secret ? secret : "", secret_n);
	if (r == 0 && !c.username[0] && !c.secret[0])
		r = -ENOENT;
	if (r == 0)
		*ret = c;
	auth_credentials_wipe(&c);
out:
	json_decref(root);
	return r;
}

/* Close *fd if open, and mark it closed. */
static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * Move a child's end off 0-2. A daemon that closed its stdio gets those
 * numbers back from socketpair() and pipe2(); kept there, an end could be
 * overwritten by the dup2()s that set up the child's stdio before its own
 * turn, whatever order the kernel handed them out in.
 */
static int move_above_stdio(int *fd)
{
	int moved;

	if (*fd > STDERR_FILENO)
		return 0;
	moved = fcntl(*fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	if (moved < 0)
		return -errno;
	close(*fd);
	*fd = moved;
	return 0;
}

int auth_run_helper(const char *helper, const char *server_url, int timeout_ms,
		    struct auth_credentials *ret)
{
	char prog[sizeof(HELPER_PREFIX) + HELPER_NAME_MAX];
	size_t url_len = strnlen(server_url, AUTH_REALM_MAX + 1), len = 0;
	int64_t deadline = monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int in[2] = {-1, -1}, out[2] = {-1, -1}, status = 0, r;
	char *buf;
	pid_t pid;

	if (!helper_name_valid(helper) || url_len > AUTH_REALM_MAX)
		return -EINVAL;
	snprintf(prog, sizeof(prog), "%s%s", HELPER_PREFIX, helper);
	buf = malloc(AUTH_HELPER_OUTPUT_MAX + 1);
	if (!buf)
		return -ENOMEM;
	/* stdin is a socket so that send(MSG_NOSIGNAL) cannot raise SIGPIPE. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0) {
		r = -errno;
		in[0] = in[1] = -1;
		goto out_close;
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		r = -errno;
		out[0] = out[1] = -1;
		goto out_close;
	}
	r = move_above_stdio(&in[1]);
	if (r == 0)
		r = move_above_stdio(&out[1]);
	if (r == 0)
		r = spawn_helper(prog, in[1], out[1], &pid);
	close_fd(&in[1]);
	close_fd(&out[1]);
	if (r < 0)
		goto out_close;

	/* As docker: the URL alone, no newline. A helper that does not read is fine. */
	if (send(in[0], server_url, url_len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EPIPE) {
		r = -errno;
		goto out_kill;
	}
	close_fd(&in[0]);
	r = read_until(out[0], deadline, buf, AUTH_HELPER_OUTPUT_MAX, &len);
	if (r < 0)
		goto out_kill;
	r = wait_until(pid, deadline, &status);
	if (r == -ETIMEDOUT)
		goto out_kill;
	/* Any other failure: someone else reaped it, and its pid is not ours to signal. */
	if (r < 0)
		goto out_close;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		r = parse_helper_output(buf, len, ret);
	else if (WIFEXITED(status) && memmem(buf, len, HELPER_NOT_FOUND, strlen(HELPER_NOT_FOUND)))
		r = -ENOENT;
	else
		r = -EIO;
	goto out_close;

out_kill:
	/* Its process group is its pid; this reaches what it started, too. */
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
out_close:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	explicit_bzero(buf, len);
	free(buf);
	return r;
}
