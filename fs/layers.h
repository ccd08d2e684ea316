/*
 * layers: MOUNTPOINT/layers, the store's unpacked layer trees read-only
 * (a family of inodes: fs_layers_family), and the worker that unpacks
 * the layers of every image the store completes (cache/layer_queue.h).
 */
#ifndef DINDFS_FS_LAYERS_H
#define DINDFS_FS_LAYERS_H

#include "fs_internal.h"
#include "mount_layout.h"

/* The name of the layer trees in the mount's root. */
#define FS_LAYERS_NAME FS_LAYOUT_LAYERS

struct fs_layers;

/*
 * Milliseconds one unpack may take, instead of layer.h's 15 minutes: for
 * tests, which cannot wait that long for ETIMEDOUT.
 */
#define FS_LAYER_TIMEOUT_ENV "DINDFS_LAYER_TIMEOUT_MS"

/* The family, for fs->families[FS_SLOT_LAYERS]. */
extern const struct fs_family fs_layers_family;

/*
 * Open layers/ of fs->store (created 0700 if needed, leftovers of crashed
 * unpacks removed) and start the unpack worker, fed by the store's
 * commits. Returns 0 or -errno.
 */
int fs_layers_new(struct fs *fs, struct fs_layers **ret);
/* Stop the worker (no more unpacks; an unpack in progress resumes at the next start). Accepts NULL.
 */
void fs_layers_stop(struct fs_layers *l);
/* Stop, and close every descriptor. Accepts NULL. */
void fs_layers_free(struct fs_layers *l);

/* GC removed trees: layers refused for the cap may fit now. Accepts NULL. */
void fs_layers_rescan(struct fs_layers *l);

struct fs_layers_stats {
	int64_t pending;	   /* events waiting for the worker */
	int64_t unpacking;	   /* 1 while a layer is being unpacked */
	int64_t unpacked_now;	   /* layers this daemon unpacked */
	int64_t failed_now;	   /* layers this daemon failed to unpack */
	int64_t over_cap_now;	   /* of those, refused for the cap of all trees (EDQUOT) */
	int64_t images_failed_now; /* EROFS images this daemon failed to build */
	int64_t images_warmed_now; /* images it stored into the mount's page cache */
	int64_t images_shared_now; /* images it mounted over their trees (layer_image_share) */
	int64_t max_bytes;	   /* that cap (--max-layers-size or its default) */
	int64_t inodes;		   /* layer inodes the kernel holds */
};

int fs_layers_stats(struct fs_layers *l, struct fs_layers_stats *ret);

#endif
