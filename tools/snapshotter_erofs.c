/*
 * snapshotter_erofs: mounting the layers' EROFS images as remote
 * snapshots' fs, and falling back to the trees (see snapshotter_erofs.h).
 */
#include "snapshotter_erofs.h"

#include <errno.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "layer_image.h"

#define UMOUNT_MAX 16 /* stacked mounts one call detaches */

int snap_erofs_mount(const char *image, const char *dir)
{
	return mount(image, dir, "erofs", MS_RDONLY, NULL) < 0 ? -errno : 0;
}

int snap_erofs_is_mounted(const char *dir)
{
	struct statfs st;
	struct stat lst;

	/* a symlink to a tree is no mount of ours, even to a tree the host shares as an EROFS */
	if (lstat(dir, &lst) == 0 && S_ISLNK(lst.st_mode))
		return 0;
	if (statfs(dir, &st) < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	return (unsigned long)st.f_type == EROFS_SUPER_MAGIC_V1;
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

/*
 * The image at IMAGE did not mount (err): the tree serves, for this layer
 * alone when the cause is the image's (a bad one, one GC removed, a dead
 * mount), for every layer when no image would mount here.
 */
static void fall_back(struct snap_erofs *e, const char *image, int err)
{
	if (!layer_image_mount_refused(err)) {
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

/*
 * FS.id beside FS: the image's device and inode when it was mounted, so a
 * mount over a host mount that is gone since (its FUSE connection dead;
 * a new mount of the same path serves the image now) is told apart.
 */
static int id_path(const char *fs, char *buf, size_t size)
{
	return (size_t)snprintf(buf, size, "%s.id", fs) >= size ? -ENAMETOOLONG : 0;
}

static void save_id(const char *image, const char *fs)
{
	char path[4096];
	struct stat st;
	FILE *f;

	if (id_path(fs, path, sizeof(path)) < 0 || stat(image, &st) < 0 || !(f = fopen(path, "we")))
		return;
	fprintf(f, "%llu %llu\n", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	fclose(f);
}

/* Is the image at IMAGE still the one mounted at FS? */
static bool same_id(const char *image, const char *fs)
{
	unsigned long long dev, ino;
	char path[4096];
	struct stat st;
	bool same = false;
	FILE *f;

	if (id_path(fs, path, sizeof(path)) < 0 || stat(image, &st) < 0 || !(f = fopen(path, "re")))
		return false;
	same = fscanf(f, "%llu %llu", &dev, &ino) == 2 && dev == (unsigned long long)st.st_dev &&
	       ino == (unsigned long long)st.st_ino;
	fclose(f);
	return same;
}

static bool is_regular(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int snap_erofs_make_fs(struct snap_erofs *e, const char *image, const char *tree, const char *fs)
{
	int r;

	/* not when the host daemon shares the image over the tree: every level reads that one */
	if (!e->off_errno && is_regular(image) && snap_erofs_is_mounted(tree) != 1) {
		if (mkdir(fs, 0755) < 0)
			return -errno;
		r = snap_erofs_mount(image, fs);
		if (r == 0) {
			save_id(image, fs);
			return 1;
		}
		rmdir(fs);
		fall_back(e, image, -r);
	}
	return symlink(tree, fs) < 0 ? -errno : 0;
}

int snap_erofs_ensure(struct snap_erofs *e, const char *image, const char *tree, const char *fs)
{
	struct stat st;
	int r = snap_erofs_is_mounted(fs);

	if (r == 1 && same_id(image, fs))
		return 1;
	/* over a host mount gone since (a restart of the host daemon): mount the live one */
	if (r == 1)
		r = snap_erofs_umount(fs);
	if (r < 0)
		return r;
	/* gone with a restart: an empty directory is left (a symlink, after a crash) */
	if (lstat(fs, &st) == 0 && (S_ISDIR(st.st_mode) ? rmdir(fs) : unlink(fs)) < 0)
		return -errno;
	return snap_erofs_make_fs(e, image, tree, fs);
}
