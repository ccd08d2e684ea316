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
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
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
/* How long a detach may wait for the mount to answer its lookups. */
#define DETACH_MAX_MS 10000

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
 * *stop (-ETIMEDOUT, -ECANCELED); 0 once it is reaped, its status in *ret_status.
 */
static int wait_child(pid_t pid, uint64_t deadline, const _Atomic bool *stop, int *ret_status)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), r = 0;
	pid_t reaped = 0;

	*ret_status = 0;
	/* without a pidfd (out of descriptors), a look every POLL_MS */
	while (reaped == 0) {
		struct pollfd p = {.fd = pidfd, .events = POLLIN};

		if (pidfd >= 0 && poll(&p, 1, POLL_MS) > 0)
			break;
		if (pidfd < 0 && (reaped = waitpid(pid, ret_status, WNOHANG)) != 0)
			break;
		if (pidfd < 0)
			nanosleep(&(struct timespec){0, POLL_MS * 1000000L}, NULL);
		if (stop && atomic_load(stop))
			r = -ECANCELED;
		else if (deadline && layer_now_ms() >= deadline)
			r = -ETIMEDOUT;
		if (r < 0) {
			kill(pid, SIGKILL);
			break;
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	while (reaped <= 0 && (reaped = waitpid(pid, ret_status, 0)) < 0)
		if (errno != EINTR)
			return -errno;
	return r;
}

/* mkfs.erofs's status: -ENOEXEC when it exited 127 (no program), -EIO for another than 0. */
static int mkfs_verdict(int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return -ENOEXEC;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ)
		return -EDQUOT; /* it wrote past the room (RLIMIT_FSIZE) */
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* A child of ours that exits with an errno (0: done): that, negated; -EIO when it was killed. */
static int errno_verdict(int status)
{
	return WIFEXITED(status) ? -WEXITSTATUS(status) : -EIO;
}

static int run_mkfs(const char *image, const char *tree, const struct layer_limits *lim)
{
	const char *program = getenv(LAYER_IMAGE_MKFS_ENV);
	uint64_t deadline = lim && lim->max_ms ? layer_now_ms() + lim->max_ms : 0;
	int r, status;
	pid_t pid;

	if (!program || !*program)
		program = LAYER_IMAGE_MKFS;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		exec_mkfs(program, image, tree, lim ? lim->room_bytes : UINT64_MAX);
	r = wait_child(pid, deadline, lim ? lim->stop : NULL, &status);
	return r < 0 ? r : mkfs_verdict(status);
}

/*
 * In a child: let go of every descriptor of the parent's (not the daemon's
 * /dev/fuse: a child blocked on the mount must not keep the connection
 * alive once the daemon is gone), and die with the thread that waits.
 */
static void child_alone(void)
{
	closefrom(0);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
		_exit(EIO);
}

/* In the child: look path up (the kernel then knows its inode), holding nothing after. */
static void look_up(const char *path, const char *unused)
{
	struct stat st;

	(void)unused;
	child_alone();
	_exit(stat(path, &st) == 0 && S_ISREG(st.st_mode) ? 0 : EIO);
}

/* Fork a child that runs fn(a, b) and wait for it: its errno_verdict, or wait_child's error. */
static int run_child(void (*fn)(const char *, const char *), const char *a, const char *b,
		     uint64_t max_ms, const _Atomic bool *stop)
{
	uint64_t deadline = max_ms ? layer_now_ms() + max_ms : 0;
	int r, status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		fn(a, b);
	r = wait_child(pid, deadline, stop, &status);
	return r < 0 ? r : errno_verdict(status);
}

int layer_image_warm(const char *store_dir, const struct digest *diffid, const char *through,
		     const struct layer_limits *limits, layer_image_push_fn push, void *ctx)
{
	uint64_t deadline = limits && limits->max_ms ? layer_now_ms() + limits->max_ms : 0;
	const _Atomic bool *stop = limits ? limits->stop : NULL;
	char path[4096];
	char *buf = NULL;
	off_t off = 0;
	ssize_t n = 0;
	int fd = -1, r;

	r = layer_image_path(store_dir, diffid, path, sizeof(path));
	if (r == 0 && (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		r = errno == ENOENT ? -ENOENT : -errno;
	if (r == 0 && !(buf = malloc(LAYER_IMAGE_PUSH_CHUNK)))
		r = -ENOMEM;
	if (r == 0) {
		r = run_child(look_up, through, NULL, limits ? limits->max_ms : 0, stop);
		if (r < 0 && r != -ETIMEDOUT && r != -ECANCELED)
			r = -EIO;
	}
	while (r == 0 && (n = pread(fd, buf, LAYER_IMAGE_PUSH_CHUNK, off)) > 0) {
		if (stop && atomic_load(stop))
			r = -ECANCELED;
		else if (deadline && layer_now_ms() >= deadline)
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

/* The deepest directory the warm walks into (a hostile tree may go deeper: not warmed). */
#define WARM_MAX_DEPTH 64

/*
 * In the child: read every regular file under the directory dir_fd, which
 * is depth levels below the top, so that the page cache holds them; close
 * dir_fd. getdents64 and one static buffer: nothing that allocates (a
 * child of a threaded process).
 */
static void read_tree(int dir_fd, int depth)
{
	static char data[1 << 16];
	char entries[4096];
	ssize_t n;

	while ((n = getdents64(dir_fd, entries, sizeof(entries))) > 0) {
		for (ssize_t at = 0; at < n;) {
			struct dirent64 *de = (struct dirent64 *)(entries + at);
			int fd;

			at += de->d_reclen;
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (de->d_type == DT_DIR && depth < WARM_MAX_DEPTH) {
				fd = openat(dir_fd, de->d_name,
					    O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
				if (fd >= 0)
					read_tree(fd, depth + 1);
			} else if (de->d_type == DT_REG) {
				fd = openat(dir_fd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
				if (fd >= 0) {
					while (read(fd, data, sizeof(data)) > 0)
						;
					close(fd);
				}
			}
		}
	}
	close(dir_fd);
}

/*
 * In the child: mount image over tree unless an EROFS is there already,
 * then read it all. Exits with 0 or the errno (EALREADY: it was there).
 * Nothing of the parent's is kept open (child_alone).
 */
static void share(const char *image, const char *tree)
{
	struct statfs sf;
	int fd;

	child_alone();
	if (statfs(tree, &sf) < 0)
		_exit(errno);
	if (sf.f_type == EROFS_SUPER_MAGIC_V1)
		_exit(EALREADY);
	if (mount(image, tree, "erofs", MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		_exit(errno);
	fd = open(tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	if (fd >= 0)
		read_tree(fd, 0);
	_exit(0);
}

bool layer_image_mount_refused(int err)
{
	return err == EPERM || err == EACCES || err == ENODEV || err == ENOSYS || err == ENOTBLK;
}

int layer_image_share(const char *store_dir, const struct digest *diffid, const char *tree,
		      const struct layer_limits *limits)
{
	char path[4096], image[PATH_MAX];
	int r = layer_image_path(store_dir, diffid, path, sizeof(path));

	/* the canonical path: what layer_image_remove() finds it by in mountinfo */
	if (r == 0 && (!layer_image_present(store_dir, diffid) || !realpath(path, image)))
		r = -ENOENT;
	if (r == 0)
		r = run_child(share, image, tree, limits ? limits->max_ms : 0,
			      limits ? limits->stop : NULL);
	return r;
}

/* In the child: detach the mount at mountpoint (through the mount: see share). */
static void detach(const char *mountpoint, const char *unused)
{
	(void)unused;
	child_alone();
	_exit(umount2(mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 ? errno : 0);
}

/* Undo mountinfo's octal escapes (\040 for a space ...) of s, in place. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

int layer_image_detach(const char *source, const char *under)
{
	size_t under_len = under ? strlen(under) : 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int detached = 0, r = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char mountpoint[4096], type[64], src[4096];
		char *dash = strstr(line, " - ");

		/* "id parent dev root MOUNTPOINT opts [optional...] - TYPE SOURCE superopts" */
		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mountpoint) != 1 ||
		    sscanf(dash + 3, "%63s %4095s", type, src) != 2 || strcmp(type, "erofs"))
			continue;
		unescape(mountpoint);
		unescape(src);
		if (source && strcmp(src, source))
			continue;
		if (under &&
		    (strncmp(mountpoint, under, under_len) || mountpoint[under_len] != '/'))
			continue;
		/* one that fails does not keep the others (EINVAL, ENOENT: gone meanwhile) */
		int err = run_child(detach, mountpoint, NULL, DETACH_MAX_MS, NULL);

		if (err == 0)
			detached++;
		else if (err != -EINVAL && err != -ENOENT && r == 0)
			r = err;
	}
	free(line);
	fclose(f);
	return r < 0 ? r : detached;
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
	char path[4096], image[PATH_MAX];
	int r = layer_image_path(store_dir, diffid, path, sizeof(path));

	/* a level that uses the host's mount of it keeps it until it is done */
	if (r == 0 && realpath(path, image))
		layer_image_detach(image, NULL);
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
