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
 *	UID:GID:SETID		 the owner shown, and the set-id bits (octal,
 *				 S_ISUID and S_ISGID only) shown over the disk's
 *				 mode, which may not have them (workspace.c)
 *	UID:GID:MODE:MAJOR:MINOR a device node: MODE (octal, with its S_IFCHR or
 *				 S_IFBLK type) and its numbers, over a regular file
 *
 * A file without it (made on the host) shows as it is on disk. A
 * set-user-ID or set-group-ID bit a level sets that the host's directory
 * may not have (workspace.c) is kept here too: the mount shows it, as
 * POSIX says, and grants nothing by it (the mount is nosuid). It goes when
 * the kernel would take it from a file of its own: at a chown, even
 * root's, and at a truncate or write by a caller without CAP_FSETID
 * (setid_killed). The kernel checks permissions against what we show
 * (default_permissions), so a service that checks its data directory is
 * its own sees it so. The mount is nodev (libfuse's default), so a device
 * shown there opens nothing (the kernel answers EACCES before we hear of
 * it).
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

/* The bits an override's SETID may hold. */
#define SETID_BITS (S_ISUID | S_ISGID)

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
 * it has none (or one we did not write: anything but the three forms above
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
	} else if (sscanf(buf, "%u:%u:%o%n", &uid, &gid, &mode, &used) == 3 && used == n) {
		if (!mode || (mode & ~(mode_t)SETID_BITS))
			return -ENODATA;
		ret->setid = mode;
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
	else if (ov->setid)
		n = snprintf(buf, sizeof(buf), "%u:%u:0%o", (unsigned)ov->uid, (unsigned)ov->gid,
			     (unsigned)ov->setid);
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
	} else if (!ov->mode && !S_ISLNK(st->st_mode)) {
		st->st_mode |= ov->setid;
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
 * Write what fd's file shows (st: uid, gid, the set-id bits, and mode and
 * rdev for a device, over disk, the backing attributes) as its override,
 * or remove the override when st shows nothing the disk does not say.
 */
static int override_store(int fd, const struct stat *disk, const struct stat *st)
{
	struct ws_override ov = {.uid = st->st_uid, .gid = st->st_gid};
	bool device = S_ISREG(disk->st_mode) && (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode));

	if (device) {
		ov.mode = st->st_mode;
		ov.rdev = st->st_rdev;
	} else {
		if (!S_ISLNK(disk->st_mode))
			ov.setid = st->st_mode & SETID_BITS & ~disk->st_mode;
		if (!ov.setid && st->st_uid == disk->st_uid && st->st_gid == disk->st_gid)
			return ws_override_set(fd, NULL);
	}
	return ws_override_set(fd, &ov);
}

/*
 * Whether req's caller may keep a set-group-ID bit of group gid: it is
 * root (for CAP_FSETID, which a request does not carry) or in that group,
 * as its fsgid or a supplementary group (the kernel's in_group_or_capable).
 */
static bool caller_in_group(fuse_req_t req, gid_t gid)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t groups[256];
	int n;

	if (ctx->uid == 0 || ctx->gid == gid)
		return true;
	n = fuse_req_getgroups(req, (int)(sizeof(groups) / sizeof(groups[0])), groups);
	for (int i = 0; i < n && i < (int)(sizeof(groups) / sizeof(groups[0])); i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/*
 * What Linux leaves of st's shown set-id bits when req's caller chowns the
 * file, or truncates or writes it without CAP_FSETID: a non-directory
 * loses S_ISUID, and S_ISGID when it is group-executable or the caller is
 * not in its group (without group-execute, S_ISGID marks mandatory
 * locking, not privilege). Returns the mode.
 */
static mode_t setid_killed(fuse_req_t req, const struct stat *st)
{
	mode_t mode = st->st_mode;

	if (S_ISDIR(mode))
		return mode;
	mode &= ~(mode_t)S_ISUID;
	if ((mode & S_ISGID) && ((mode & S_IXGRP) || !caller_in_group(req, st->st_gid)))
		mode &= ~(mode_t)S_ISGID;
	return mode;
}

int ws_owner_new(struct fs_ws *ws, fuse_req_t req, int fd, const struct stat *parent,
		 struct stat *st, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat disk = *st;

	if (!ws->preserve) { /* with preserve the disk has the creator already */
		st->st_uid = ctx->uid;
		/* a set-group-ID directory gives its group, the one the mount shows */
		st->st_gid = parent->st_mode & S_ISGID ? parent->st_gid : ctx->gid;
	}
	if (!S_ISLNK(st->st_mode))
		st->st_mode |= mode & SETID_BITS;
	if (st->st_uid == disk.st_uid && st->st_gid == disk.st_gid && st->st_mode == disk.st_mode)
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

int ws_owner_chown(struct fs_ws *ws, fuse_req_t req, int fd, uid_t uid, gid_t gid)
{
	struct ws_override ov;
	struct stat disk, shown;
	bool had;
	int r = ws_stat_fd(fd, &disk);

	if (r < 0)
		return r;
	had = ws_override_get(fd, &ov) == 0;
	shown = disk;
	if (had)
		override_apply(&ov, &shown);
	/*
	 * With preserve the disk is as asked, as on any file system; else
	 * it stays the owner's, and chown(-1, -1) there changes its ctime
	 * only, as a chown anywhere does.
	 */
	if (fchownat(fd, "", ws->preserve ? uid : (uid_t)-1, ws->preserve ? gid : (gid_t)-1,
		     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	r = ws_stat_fd(fd, &disk);
	if (r < 0)
		return r;
	shown.st_mode = setid_killed(req, &shown); /* decided on the group it had */
	if (uid != (uid_t)-1)
		shown.st_uid = uid;
	if (gid != (gid_t)-1)
		shown.st_gid = gid;
	if (!had && shown.st_uid == disk.st_uid && shown.st_gid == disk.st_gid)
		return 0; /* nothing shown over the disk, before or now */
	return override_store(fd, &disk, &shown);
}

int ws_owner_setid_kill(fuse_req_t req, int fd)
{
	struct ws_override ov;
	struct stat disk, shown;
	mode_t setid;
	int r;

	if (fuse_req_ctx(req)->uid == 0)
		return 0; /* taken for CAP_FSETID, as in caller_in_group() */
	r = ws_override_get(fd, &ov);
	if (r < 0)
		return r == -ENODATA ? 0 : r;
	if (!ov.setid)
		return 0; /* none, or a device's, in its mode: never opened nor truncated here */
	r = ws_stat_fd(fd, &disk);
	if (r < 0)
		return r;
	shown = disk;
	override_apply(&ov, &shown);
	setid = setid_killed(req, &shown) & SETID_BITS & ~disk.st_mode;
	if (setid == ov.setid)
		return 0;
	ov.setid = setid;
	if (!setid && ov.uid == disk.st_uid && ov.gid == disk.st_gid)
		r = ws_override_set(fd, NULL); /* nothing shown over the disk any more */
	else
		r = ws_override_set(fd, &ov);
	return r < 0 ? r : 1;
}

int ws_owner_chmod(int fd, int file_fd, mode_t mode)
{
	struct ws_override ov;
	struct stat disk, shown;
	mode_t on_disk;
	char path[64];
	bool had;
	int r = ws_stat_fd(fd, &disk);

	if (r < 0)
		return r;
	had = ws_override_get(fd, &ov) == 0;
	if (had && ov.mode && S_ISREG(disk.st_mode)) { /* a device: its mode is its override's */
		ov.mode = (ov.mode & S_IFMT) | (mode & 07777);
		return ws_override_set(fd, &ov);
	}
	mode = (disk.st_mode & S_IFMT) | (mode & 07777);
	if (S_ISLNK(mode))
		mode &= ~(mode_t)SETID_BITS;
	on_disk = ws_setid_strip(mode);
	ws_proc_path(path, sizeof(path), fd);
	if ((file_fd >= 0 ? fchmod(file_fd, on_disk & 07777) : chmod(path, on_disk & 07777)) < 0)
		return -errno;
	if (!had && mode == on_disk)
		return 0; /* nothing shown over the disk, before or now */
	disk.st_mode = on_disk;
	shown = disk;
	if (had)
		override_apply(&ov, &shown);
	shown.st_mode = mode;
	return override_store(fd, &disk, &shown);
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
