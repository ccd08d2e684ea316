/*
 * layer_image: an EROFS image of each unpacked layer tree (layer.h), so a
 * level can mount the layer with the kernel's own file system instead of
 * reading every file through FUSE.
 *
 * Layout under the store directory, beside the trees:
 *   layers/sha256:<diffid>.erofs        the image of layers/sha256:<diffid>/
 *   layers/tmp/<hex>.erofs.XXXXXX/      a build in progress, flock()ed by its builder
 *
 * The image is made by erofs-utils' mkfs.erofs from the tree (owners,
 * modes, times, xattrs such as trusted.overlay.opaque, whiteouts as 0:0
 * character devices, symlinks and hard links as they are), written in a
 * locked temp dir, synced, and renamed into place: an image is there only
 * complete, and only while its tree is (layer_remove() takes the image
 * first; layer_recover() deletes an image without a tree).
 *
 * A level mounts it file-backed: mount(2) with the image's path as the
 * source and type "erofs" (Linux 6.12+ CONFIG_EROFS_FS_BACKED_BY_FILE).
 * The image is an optimisation only: without mkfs.erofs, or past the cap
 * of all trees, a layer has its tree alone and levels use that.
 *
 * Functions return 0 or a negative errno and never print.
 */
#ifndef DINDFS_LAYER_IMAGE_H
#define DINDFS_LAYER_IMAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "digest.h"
#include "layer.h"

#define LAYER_IMAGE_SUFFIX ".erofs"
/* The program that builds images, found on PATH; tests point it elsewhere. */
#define LAYER_IMAGE_MKFS_ENV "DINDFS_MKFS_EROFS"
#define LAYER_IMAGE_MKFS     "mkfs.erofs"

/* Path of the image of diffid under store_dir, whether or not it exists. */
int layer_image_path(const char *store_dir, const struct digest *diffid, char *buf, size_t size);
/* Is name "sha256:<hex>.erofs"? ret gets the digest. */
bool layer_image_name_parse(const char *name, struct digest *ret);
/* Is the image of diffid in place (complete: nothing else ever is)? */
bool layer_image_present(const char *store_dir, const struct digest *diffid);

/*
 * Build the image of the tree of diffid. 0 when it is there already or
 * now; ret_bytes (may be NULL) gets its size. Errors, and nothing is kept
 * after any of them:
 *   -ENOENT      the tree is not there (or went while the image was built)
 *   -ENOEXEC     mkfs.erofs is not installed
 *   -EIO         mkfs.erofs failed (its exit status is not 0)
 *   -EDQUOT      the image is larger than room_bytes (limits->room_bytes)
 *   -ETIMEDOUT   it ran past limits->max_ms (it is killed)
 *   -ECANCELED   limits->stop was set (it is killed)
 * limits may be NULL: no deadline, no room cap.
 */
int layer_image_build(const char *store_dir, const struct digest *diffid,
		      const struct layer_limits *limits, uint64_t *ret_bytes);

/* Bytes of an image layer_image_warm() hands to push at a time. */
#define LAYER_IMAGE_PUSH_CHUNK (1u << 20)

/*
 * Put LEN bytes of the image (the store's file IMAGE) at OFF into the
 * mount's page cache. 0 or -errno (which ends the warm).
 */
typedef int (*layer_image_push_fn)(void *ctx, const char *image, const void *buf, size_t len,
				   off_t off);

/*
 * Fill the mount's page cache, which every level shares, with the image of
 * diffid, so that a level that mounts it reads no page of it through the
 * daemon: a child process looks up `through`, its path on the mount (so
 * the kernel knows the file; the child holds nothing of the mount once it
 * exits, so an unmount meanwhile is not made busy), then push gets the
 * image's bytes, chunk by chunk, from the store's file, whose own cached
 * pages are dropped after (they would be a second copy). The child is
 * killed, and the pushes stop, at limits' deadline or stop (limits may be
 * NULL). 0, -ENOENT without the image, -EIO when the lookup failed,
 * -ETIMEDOUT, -ECANCELED, or push's error.
 */
int layer_image_warm(const char *store_dir, const struct digest *diffid, const char *through,
		     const struct layer_limits *limits, layer_image_push_fn push, void *ctx);

/*
 * Does mount(2) of an image failing with err (positive) say that no image
 * will mount there, whatever the image: no right to mount (EPERM, EACCES),
 * no EROFS in the kernel (ENODEV, ENOSYS), or a backing file on a FUSE
 * mount with passthrough (ENOTBLK)? Any other errno is that image's.
 */
bool layer_image_mount_refused(int err);

/*
 * Share the image of diffid with every level: mount it (the store's file,
 * read-only, nosuid, nodev) over tree, the layer's tree on the mount
 * (<mountpoint>/layers/sha256:<hex>), then read every file of it once. A
 * level that binds the mount afterwards finds the layer there as this one
 * EROFS, its page cache already full, and mounts nothing of its own; a
 * read asks FUSE nothing. Done in a child (see layer_image_warm), killed
 * at limits' deadline or stop. 0; -EALREADY when an EROFS is mounted there
 * already; -ENOENT without the image; mount(2)'s errno (-EPERM without
 * CAP_SYS_ADMIN, -ENODEV without EROFS ...); -ETIMEDOUT, -ECANCELED.
 */
int layer_image_share(const char *store_dir, const struct digest *diffid, const char *tree,
		      const struct layer_limits *limits);

/*
 * Detach, lazily (a level using it keeps its copy until it is done), every
 * EROFS mount whose source is the image path source (NULL: any) and whose
 * mount point is under the directory under (NULL: anywhere). The number
 * detached, or the first -errno (the others are detached all the same).
 */
int layer_image_detach(const char *source, const char *under);

/* Remove the image of diffid, detaching the host's mounts of it first. -ENOENT if there is none. */
int layer_image_remove(const char *store_dir, const struct digest *diffid);

/* How many images there are and their bytes together (what they add to the trees). */
int layer_image_totals(const char *store_dir, int64_t *ret_count, int64_t *ret_bytes);

/*
 * Delete every image whose tree is not there (a tree removed by hand, or
 * by GC during a build). ret_removed (may be NULL) counts them.
 */
int layer_image_prune(const char *store_dir, int64_t *ret_removed);

#endif
