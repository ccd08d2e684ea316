/*
 * ws_owner.c: what the mount shows over what the disk keeps.
 *
 * The disk keeps what the host's safety needs: in the default mode what a
 * level makes is the workspace owner's, and in both modes a device node is
 * an empty regular file (mode 0600), never a device in the host's
 * directory. The mount shows what POSIX expects: the creator as the owner,
 * the owner a privileged chown gave, a device's type and numbers. The
 * difference lives in one xattr on the backing file, WS_OVERRIDE_XATTR
 * (the idea of fuse-overlayfs's user.containers.override_stat), as text:
 *
 *	UID:GID			 the owner shown (default mode)
 *	UID:GID:MODE:MAJOR:MINOR a device node: MODE (octal, with its S_IFCHR or
 *				 S_IFBLK type) and its numbers, over a regular file
 *
 * A file without it (made on the host) shows as it is on disk. The kernel
 * checks permissions against what we show (default_permissions), so a
 * service that checks its data directory is its own sees it so. The
 * mount is nodev (libfuse's default), so a device shown there opens
 * nothing (the kernel answers EACCES before we hear of it).
 *
 * The xattr is the daemon's alone: through the mount it is never listed,
 * reads as absent (ENODATA) and cannot be set or removed (EPERM), so a
 * level cannot forge an owner. It is on the inode, so renames and links
 * keep it.
 *
 * Descriptors here are the inodes' O_PATH ones or open files'. The
 * *xattrat() calls (kernel 6.13+, no glibc wrapper yet) would read them
 * with AT_EMPTY_PATH, but refuse O_PATH descriptors (EBADF, seen on 6.18):
 * then, and on older kernels, /proc/self/fd/N names the inode itself (a
 * symlink's too: the magic link is not followed further).
 */
#include "ws_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef __NR_setxattrat
#define __NR_setxattrat 463
#endif
#ifndef __NR_getxattrat
#define __NR_getxattrat 464
#endif
#ifndef __NR_removexattrat
#define __NR_removexattrat 466
#endif

/* The kernel's struct xattr_args (include/uapi/linux/xattr.h, 6.13). */
struct xattr_at_args {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

/* Longest value we write: "4294967295:4294967295:0170777:4294967295:4294967295". */
#define OVERRIDE_MAX 64

/*
 * Set once the kernel answered an *xattrat() call ENOSYS (before 6.13) or
 * EBADF (6.13 to at least 6.18 take no O_PATH descriptor, and the inodes'
 * are): from then on every call goes through /proc/self/fd/N.
 */
static atomic_bool no_xattrat;

/* After an *xattrat() call failed: whether that was the kernel refusing the call itself. */
static bool xattrat_unusable(void)
{
	return errno == ENOSYS || errno == EBADF;
}

static ssize_t fd_getxattr(int fd, const char *name, void *value, size_t size)
{
	char path[64];
	ssize_t n;

	if (!atomic_load(&no_xattrat)) {
		struct xattr_at_args args = {.value = (uintptr_t)value, .size = (uint32_t)size};
		n = syscall(__NR_getxattrat, fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, name,
			    &args, sizeof(args));
		if (n >= 0 || !xattrat_unusable())
			return n < 0 ? -errno : n;
		atomic_store(&no_xattrat, true);
	}
	ws_proc_path(path, sizeof(path), fd);
	n = getxattr(path, name, value, size);
	return n < 0 ? -errno : n;
}

static int fd_setxattr(int fd, const char *name, const char *value, size_t size)
{
	char path[64];

	if (!atomic_load(&no_xattrat)) {
		struct xattr_at_args args = {.value = (uintptr_t)value, .size = (uint32_t)size};
		long n = syscall(__NR_setxattrat, fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, name,
				 &args, sizeof(args));

		if (n == 0 || !xattrat_unusable())
			return n < 0 ? -errno : 0;
		atomic_store(&no_xattrat, true);
	}
	ws_proc_path(path, sizeof(path), fd);
	return setxattr(path, name, value, size, 0) < 0 ? -errno : 0;
}

static int fd_removexattr(int fd, const char *name)
{
	char path[64];
	long n;

	if (!atomic_load(&no_xattrat)) {
		n = syscall(__NR_removexattrat, fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, name);
		if (n == 0 || !xattrat_unusable())
			return n < 0 && errno != ENODATA ? -errno : 0;
		atomic_store(&no_xattrat, true);
	}
	ws_proc_path(path, sizeof(path), fd);
	return removexattr(path, name) < 0 && errno != ENODATA ? -errno : 0;
}

/*
 * The override of the file fd stands for: 0 and *ret filled, -ENODATA when
 * it has none (or one we did not write: anything but the two forms above
 * is ignored), else -errno.
 */
int ws_override_get(int fd, struct ws_override *ret)
{
	char buf[OVERRIDE_MAX + 1];
	unsigned uid, gid, mode, major, minor;
	int used = -1;
	ssize_t n = fd_getxattr(fd, WS_OVERRIDE_XATTR, buf, OVERRIDE_MAX);

	if (n == -ERANGE)
		return -ENODATA; /* too long to be ours */
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	memset(ret, 0, sizeof(*ret));
	if (sscanf(buf, "%u:%u:%o:%u:%u%n", &uid, &gid, &mode, &major, &minor, &used) == 5 &&
	    used == n && (S_ISCHR(mode) || S_ISBLK(mode)) && !(mode & ~(S_IFMT | 07777))) {
		ret->mode = mode;
		ret->rdev = makedev(major, minor);
	} else if (!(sscanf(buf, "%u:%u%n", &uid, &gid, &used) == 2 && used == n)) {
		return -ENODATA;
	}
	ret->uid = uid;
	ret->gid = gid;
	return 0;
}

/*
 * Make ov the override of fd's file, or remove it when ov is NULL (none is
 * not an error). Returns 0 or -errno.
 */
int ws_override_set(int fd, const struct ws_override *ov)
{
	char buf[OVERRIDE_MAX + 1];
	int n;

	if (!ov)
		return fd_removexattr(fd, WS_OVERRIDE_XATTR);
	if (ov->mode)
		n = snprintf(buf, sizeof(buf), "%u:%u:0%o:%u:%u", (unsigned)ov->uid,
			     (unsigned)ov->gid, (unsigned)ov->mode, major(ov->rdev),
			     minor(ov->rdev));
	else
		n = snprintf(buf, sizeof(buf), "%u:%u", (unsigned)ov->uid, (unsigned)ov->gid);
	fs_check(n > 0 && n <= OVERRIDE_MAX, "override of %d bytes", n);
	return fd_setxattr(fd, WS_OVERRIDE_XATTR, buf, (size_t)n);
}

/* st, the backing file's, as the override ov shows it. */
static void override_apply(const struct ws_override *ov, struct stat *st)
{
	st->st_uid = ov->uid;
	st->st_gid = ov->gid;
	/* a device only over the empty regular file we made for it */
	if (ov->mode && S_ISREG(st->st_mode)) {
		st->st_mode = ov->mode;
		st->st_rdev = ov->rdev;
	}
}

void ws_show(int fd, struct stat *st)
{
	struct ws_override ov;

	if (ws_override_get(fd, &ov) == 0)
		override_apply(&ov, st);
}

int ws_stat_shown(int fd, struct stat *st)
{
	int r = ws_stat_fd(fd, st);

	if (r == 0)
		ws_show(fd, st);
	return r;
}

/*
 * Write what fd's file shows (st: uid, gid, and mode and rdev for a
 * device over disk, the backing attributes) as its override, or remove
 * the override when st shows nothing the disk does not say.
 */
static int override_store(int fd, const struct stat *disk, const struct stat *st)
{
	struct ws_override ov = {.uid = st->st_uid, .gid = st->st_gid};
	bool device = S_ISREG(disk->st_mode) && (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode));

	if (device) {
		ov.mode = st->st_mode;
		ov.rdev = st->st_rdev;
	} else if (st->st_uid == disk->st_uid && st->st_gid == disk->st_gid) {
		return ws_override_set(fd, NULL);
	}
	return ws_override_set(fd, &ov);
}

int ws_owner_new(struct fs_ws *ws, fuse_req_t req, int fd, const struct stat *parent,
		 struct stat *st)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat disk = *st;

	if (ws->preserve)
		return 0; /* the disk has the creator already */
	st->st_uid = ctx->uid;
	/* a set-group-ID directory gives its group, the one the mount shows */
	st->st_gid = parent->st_mode & S_ISGID ? parent->st_gid : ctx->gid;
	if (st->st_uid == disk.st_uid && st->st_gid == disk.st_gid)
		return 0; /* nothing to show that the disk does not say */
	return override_store(fd, &disk, st);
}

int ws_owner_device(int fd, struct stat *st, mode_t mode, dev_t rdev)
{
	struct ws_override ov = {.uid = st->st_uid, .gid = st->st_gid, .mode = mode, .rdev = rdev};
	int r = ws_override_set(fd, &ov);

	if (r == 0)
		override_apply(&ov, st);
	return r;
}

bool ws_is_device(const struct stat *disk, int fd, struct ws_override *ret)
{
	return S_ISREG(disk->st_mode) && ws_override_get(fd, ret) == 0 && ret->mode != 0;
}

int ws_owner_chown(struct fs_ws *ws, int fd, uid_t uid, gid_t gid)
{
	struct stat disk, shown;
	int r = ws_stat_fd(fd, &disk);

	if (r < 0)
		return r;
	shown = disk;
	ws_show(fd, &shown);
	if (ws->preserve) { /* the disk is as asked, as on any file system */
		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		r = ws_stat_fd(fd, &disk);
		if (r < 0)
			return r;
	}
	if (uid != (uid_t)-1)
		shown.st_uid = uid;
	if (gid != (gid_t)-1)
		shown.st_gid = gid;
	return override_store(fd, &disk, &shown);
}

int ws_owner_chmod(int fd, const struct ws_override *device, mode_t mode)
{
	struct ws_override ov = *device;

	ov.mode = (device->mode & S_IFMT) | (mode & 07777);
	return ws_override_set(fd, &ov);
}

bool ws_owner_xattr(const char *name)
{
	return strncmp(name, WS_OVERRIDE_PREFIX, sizeof(WS_OVERRIDE_PREFIX) - 1) == 0;
}

size_t ws_owner_xattr_hide(char *list, size_t size)
{
	size_t in = 0, out = 0;

	while (in < size) {
		size_t len = strnlen(list + in, size - in) + 1;

		if (!ws_owner_xattr(list + in)) {
			memmove(list + out, list + in, len < size - in ? len : size - in);
			out += len;
		}
		in += len;
	}
	return out < size ? out : size;
}
