/*
 * snapshotter_erofs: mounting the layers' EROFS images as remote
 * snapshots' fs, and falling back to the trees (see snapshotter_erofs.h).
 */
#include "snapshotter_erofs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define EROFS_MAGIC 0xE0F5E1E2 /* EROFS_SUPER_MAGIC_V1, linux/magic.h */
#define UMOUNT_MAX  16	       /* stacked mounts one call detaches */

int snap_erofs_mount(const char *image, const char *dir)
{
	return mount(image, dir, "erofs", MS_RDONLY, NULL) < 0 ? -errno : 0;
}

int snap_erofs_is_mounted(const char *dir)
{
	struct statfs st;

	if (statfs(dir, &st) < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	return (unsigned long)st.f_type == EROFS_MAGIC;
}

int snap_erofs_umount(const char *dir)
{
	int i, r;

	for (i = 0; i < UMOUNT_MAX; i++) {
		r = snap_erofs_is_mounted(dir);
		if (r <= 0)
			return r;
		if (umount2(dir, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
			return errno == EINVAL || errno == ENOENT ? 0 : -errno;
	}
	return -EBUSY;
}

/* The image's own fault: other layers' images may still mount. */
static bool bad_image(int err)
{
	return err == EINVAL || err == EUCLEAN || err == EIO;
}

static void fall_back(struct snap_erofs *e, const char *image, int err)
{
	if (bad_image(err)) {
		fprintf(stderr,
			"dindfs snapshotter: cannot mount the EROFS image %s (%s: %s): that "
			"layer's tree is shared instead\n",
			image, strerrorname_np(err), strerror(err));
		return;
	}
	e->off_errno = err;
	fprintf(stderr,
		"dindfs snapshotter: cannot mount EROFS layer images (%s: %s): the layer "
		"trees are shared instead, for every layer until the snapshotter restarts\n",
		strerrorname_np(err), strerror(err));
}

static bool is_regular(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int snap_erofs_make_fs(struct snap_erofs *e, const char *image, const char *tree, const char *fs)
{
	int r;

	if (!e->off_errno && is_regular(image)) {
		if (mkdir(fs, 0755) < 0)
			return -errno;
		r = snap_erofs_mount(image, fs);
		if (r == 0)
			return 1;
		rmdir(fs);
		fall_back(e, image, -r);
	}
	return symlink(tree, fs) < 0 ? -errno : 0;
}

int snap_erofs_ensure(struct snap_erofs *e, const char *image, const char *tree, const char *fs)
{
	struct stat st;
	int r = snap_erofs_is_mounted(fs);

	if (r != 0)
		return r;
	/* gone with a restart: an empty directory is left (a symlink, after a crash) */
	if (lstat(fs, &st) == 0 && (S_ISDIR(st.st_mode) ? rmdir(fs) : unlink(fs)) < 0)
		return -errno;
	return snap_erofs_make_fs(e, image, tree, fs);
}
