/*
 * layer_image: EROFS images of the unpacked layer trees (see layer_image.h).
 *
 * mkfs.erofs runs as a child with nothing on its standard streams, an
 * address-space cap, and the unpack's own deadline and stop flag: a tree
 * of a hostile layer can make it slow or large, never hold the worker.
 */
#include "layer_image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

/*
 * mkfs.erofs keeps an inode per file in memory (erofs-utils 1.5: with a
 * PATH_MAX path in each, a few KiB): past the cap it fails, -EIO, and the
 * layer has its tree alone.
 */
#define MKFS_MAX_ADDRESS_SPACE (4ull << 30)
/* How often a running build looks at the stop flag. */
#define POLL_MS 100

int layer_image_path(const char *store_dir, const struct digest *diffid, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/layers/" DIGEST_ALGORITHM ":%s" LAYER_IMAGE_SUFFIX,
			 store_dir, diffid->hex);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

bool layer_image_present(const char *store_dir, const struct digest *diffid)
{
	char path[4096];
	struct stat st;

	return layer_image_path(store_dir, diffid, path, sizeof(path)) == 0 &&
	       lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool layer_image_name_parse(const char *name, struct digest *ret)
{
	size_t len = strlen(name), suffix = strlen(LAYER_IMAGE_SUFFIX);
	char digest[DIGEST_STRING_SIZE];

	if (len != DIGEST_STRING_SIZE - 1 + suffix ||
	    strcmp(name + len - suffix, LAYER_IMAGE_SUFFIX))
		return false;
	memcpy(digest, name, len - suffix);
	digest[len - suffix] = '\0';
	return digest_parse(digest, ret) == 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* In the child: only async-signal-safe calls until exec. */
static void exec_mkfs(const char *program, const char *image, const char *tree, uint64_t room)
{
	struct rlimit as = {MKFS_MAX_ADDRESS_SPACE, MKFS_MAX_ADDRESS_SPACE};
	struct rlimit fsize = {room, room};
	sigset_t none;
	int null = open("/dev/null", O_RDWR);

	/* killed with the worker thread that waits for it, whatever kills that */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
		_exit(126);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
		_exit(126);
	closefrom(3);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setrlimit(RLIMIT_AS, &as);
	if (room < RLIM_INFINITY) /* the image cannot pass the room, even for a moment */
		setrlimit(RLIMIT_FSIZE, &fsize);
	execlp(program, program, "--quiet", "--preserve-mtime", image, tree, (char *)NULL);
	_exit(errno == ENOENT ? 127 : 126);
}

/*
 * Wait for the child pid, killing it at the deadline (ms, 0: none) or on
 * *stop. -ENOEXEC when it exited 127 (no program), -EIO for another status.
 */
static int wait_child(pid_t pid, uint64_t deadline, const _Atomic bool *stop)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), status = 0, r = 0;
	pid_t reaped = 0;

	/* without a pidfd (out of descriptors), a look every POLL_MS */
	while (reaped == 0) {
		struct pollfd p = {.fd = pidfd, .events = POLLIN};

		if (pidfd >= 0 && poll(&p, 1, POLL_MS) > 0)
			break;
		if (pidfd < 0 && (reaped = waitpid(pid, &status, WNOHANG)) != 0)
			break;
		if (pidfd < 0)
			nanosleep(&(struct timespec){0, POLL_MS * 1000000L}, NULL);
		if (stop && atomic_load(stop))
			r = -ECANCELED;
		else if (deadline && now_ms() >= deadline)
			r = -ETIMEDOUT;
		if (r < 0) {
			kill(pid, SIGKILL);
			break;
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	while (reaped <= 0 && (reaped = waitpid(pid, &status, 0)) < 0)
		if (errno != EINTR)
			return -errno;
	if (r < 0)
		return r;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return -ENOEXEC;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ)
		return -EDQUOT; /* it wrote past the room (RLIMIT_FSIZE) */
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static int run_mkfs(const char *image, const char *tree, const struct layer_limits *lim)
{
	const char *program = getenv(LAYER_IMAGE_MKFS_ENV);
	uint64_t deadline = lim && lim->max_ms ? now_ms() + lim->max_ms : 0;
	pid_t pid;

	if (!program || !*program)
		program = LAYER_IMAGE_MKFS;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		exec_mkfs(program, image, tree, lim ? lim->room_bytes : UINT64_MAX);
	return wait_child(pid, deadline, lim ? lim->stop : NULL);
}

/*
 * In the child: look path up (the kernel then knows its inode), with no
 * descriptor of the parent's kept (not the daemon's /dev/fuse: a child
 * blocked on the mount must not keep the connection alive once the daemon
 * is gone), and hold nothing of the mount once it exits.
 */
static void look_up(const char *path)
{
	struct stat st;

	closefrom(0);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
		_exit(1);
	_exit(stat(path, &st) == 0 && S_ISREG(st.st_mode) ? 0 : 1);
}

int layer_image_warm(const char *store_dir, const struct digest *diffid, const char *through,
		     const struct layer_limits *limits, layer_image_push_fn push, void *ctx)
{
	uint64_t deadline = limits && limits->max_ms ? now_ms() + limits->max_ms : 0;
	const _Atomic bool *stop = limits ? limits->stop : NULL;
	char path[4096];
	char *buf = NULL;
	off_t off = 0;
	ssize_t n = 0;
	pid_t pid;
	int fd = -1, r;

	r = layer_image_path(store_dir, diffid, path, sizeof(path));
	if (r == 0 && (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		r = errno == ENOENT ? -ENOENT : -errno;
	if (r == 0 && !(buf = malloc(LAYER_IMAGE_PUSH_CHUNK)))
		r = -ENOMEM;
	if (r == 0) {
		pid = fork();
		if (pid < 0)
			r = -errno;
		else if (pid == 0)
			look_up(through);
		else
			r = wait_child(pid, deadline, stop);
	}
	while (r == 0 && (n = pread(fd, buf, LAYER_IMAGE_PUSH_CHUNK, off)) > 0) {
		if (stop && atomic_load(stop))
			r = -ECANCELED;
		else if (deadline && now_ms() >= deadline)
			r = -ETIMEDOUT;
		else
			r = push(ctx, path, buf, (size_t)n, off);
		off += n;
	}
	if (r == 0 && n < 0)
		r = -errno;
	if (r == 0)
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* the mount's cache holds it now */
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

/* Sync the image at path and give its size; it must fit in room. */
static int seal(const char *path, uint64_t room, uint64_t *ret_bytes)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), r = 0;

	if (fd < 0)
		return errno == ENOENT ? -EIO : -errno; /* mkfs.erofs said 0 and wrote nothing */
	if (fstat(fd, &st) < 0 || fchmod(fd, 0444) < 0 || fsync(fd) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = -EIO;
	else if ((uint64_t)st.st_size > room)
		r = -EDQUOT;
	close(fd);
	if (r == 0)
		*ret_bytes = (uint64_t)st.st_size;
	return r;
}

int layer_image_build(const char *store_dir, const struct digest *diffid,
		      const struct layer_limits *limits, uint64_t *ret_bytes)
{
	char tree[4096], final[4096], tmp[4096], image[4096 + 16];
	uint64_t room = limits ? limits->room_bytes : UINT64_MAX, bytes = 0;
	struct stat st;
	int tmp_fd, r = layer_image_path(store_dir, diffid, final, sizeof(final));

	if (r == 0)
		r = layer_path(store_dir, diffid, tree, sizeof(tree));
	if (r < 0)
		return r;
	if (lstat(final, &st) == 0 && S_ISREG(st.st_mode)) {
		if (ret_bytes)
			*ret_bytes = (uint64_t)st.st_size;
		return 0;
	}
	if (!layer_present(store_dir, diffid))
		return -ENOENT;
	snprintf(image, sizeof(image), "%s" LAYER_IMAGE_SUFFIX, diffid->hex);
	r = layer_tmp_create(store_dir, image, tmp, sizeof(tmp), &tmp_fd);
	if (r < 0)
		return r;
	snprintf(image, sizeof(image), "%s/image", tmp);
	r = run_mkfs(image, tree, limits);
	if (r == 0)
		r = seal(image, room, &bytes);
	if (r == 0 && rename(image, final) < 0)
		r = -errno;
	unlink(image);
	rmdir(tmp);
	close(tmp_fd);
	if (r == 0) {
		snprintf(tmp, sizeof(tmp), "%s/layers", store_dir);
		r = store_fsync_dir_at(AT_FDCWD, tmp);
		if (r < 0)
			unlink(final); /* nothing kept after an error */
	}
	/* GC took the tree meanwhile (mkfs.erofs may have failed for it): no image without it */
	if (!layer_present(store_dir, diffid)) {
		unlink(final);
		r = -ENOENT;
	}
	if (r == 0 && ret_bytes)
		*ret_bytes = bytes;
	return r;
}

int layer_image_remove(const char *store_dir, const struct digest *diffid)
{
	char path[4096];
	int r = layer_image_path(store_dir, diffid, path, sizeof(path));

	if (r == 0 && unlink(path) < 0)
		r = -errno;
	return r;
}

/* Call fn on every image's digest (name "sha256:<hex>.erofs" in layers/) with its stat. */
static int foreach_image(const char *store_dir,
			 int (*fn)(const char *store_dir, const struct digest *d,
				   const struct stat *st, void *ctx),
			 void *ctx)
{
	char path[4096];
	struct dirent *de;
	DIR *dir;
	int r = 0;

	if (snprintf(path, sizeof(path), "%s/layers", store_dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	dir = opendir(path);
	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	while (r == 0 && (de = readdir(dir))) {
		struct digest d;
		struct stat st;

		if (!layer_image_name_parse(de->d_name, &d) ||
		    fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		r = fn(store_dir, &d, &st, ctx);
	}
	closedir(dir);
	return r;
}

struct image_totals {
	int64_t count, bytes;
};

static int add_image(const char *store_dir, const struct digest *d, const struct stat *st,
		     void *ctx)
{
	struct image_totals *t = ctx;

	(void)store_dir;
	(void)d;
	t->count++;
	t->bytes += st->st_size;
	return 0;
}

int layer_image_totals(const char *store_dir, int64_t *ret_count, int64_t *ret_bytes)
{
	struct image_totals t = {0};
	int r = foreach_image(store_dir, add_image, &t);

	if (r == 0) {
		*ret_count = t.count;
		*ret_bytes = t.bytes;
	}
	return r;
}

static int prune_image(const char *store_dir, const struct digest *d, const struct stat *st,
		       void *ctx)
{
	int64_t *removed = ctx;
	int r;

	(void)st;
	if (layer_present(store_dir, d))
		return 0;
	r = layer_image_remove(store_dir, d);
	if (r == 0)
		(*removed)++;
	return r == -ENOENT ? 0 : r;
}

int layer_image_prune(const char *store_dir, int64_t *ret_removed)
{
	int64_t removed = 0;
	int r = foreach_image(store_dir, prune_image, &removed);

	if (ret_removed)
		*ret_removed = removed;
	return r;
}
