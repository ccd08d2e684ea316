/*
 * snapshotter_erofs: the EROFS images of remote snapshots. For a layer the
 * host keeps ROOT/layers/sha256:<d>.erofs (an image of the tree beside it),
 * a remote snapshot's fs is a directory with the image mounted on it by the
 * kernel, file-backed (mount(2) on the file, no loop device), so overlayfs
 * reads the layer without a FUSE round trip per file; where that mount
 * fails, fs is the symlink to the tree, as without an image.
 *
 * A failure that is the level's or the host mount's (ENOTBLK on a dindfs
 * mount with FUSE passthrough, ENODEV without EROFS, EPERM or EACCES
 * without CAP_SYS_ADMIN) turns the images off for the process, with one
 * line on stderr; any other (a bad image, one GC removed, a dead mount, no
 * memory) falls back for that layer alone, with a line naming it. Beside
 * each mount FS, FS.id keeps the image's device and inode: a mount over a
 * host mount gone since (the host daemon restarted) is detached and made
 * again over the live one. Mounts stay when the process exits: containers may run
 * on them. Every call returns 0 (or 1, below) or -errno.
 */
#ifndef DINDFS_SNAPSHOTTER_EROFS_H
#define DINDFS_SNAPSHOTTER_EROFS_H

#include <stdbool.h>

#define SNAP_EROFS_SUFFIX ".erofs"

/* The images' state in one process: zero-initialise it. */
struct snap_erofs {
	int off_errno; /* the mount's errno that turned the images off, or 0 */
};

/* Mount the EROFS image IMAGE read-only at DIR, file-backed. */
int snap_erofs_mount(const char *image, const char *dir);
/* 1 when DIR is an EROFS mount, 0 when it is not (or is absent). */
int snap_erofs_is_mounted(const char *dir);
/* Detach every EROFS mount at DIR; none there is 0. */
int snap_erofs_umount(const char *dir);

/*
 * Make FS, a remote snapshot's fs: a directory with IMAGE mounted on it
 * when IMAGE is a regular file and the mount works, else a symlink to TREE.
 * 1: the image is mounted; 0: the symlink.
 */
int snap_erofs_make_fs(struct snap_erofs *e, const char *image, const char *tree, const char *fs);
/*
 * FS, made with IMAGE mounted before, after a restart of the process or
 * the level: mount IMAGE again where it is gone, or make FS the symlink to
 * TREE. 1: mounted; 0: the symlink.
 */
int snap_erofs_ensure(struct snap_erofs *e, const char *image, const char *tree, const char *fs);

#endif
