/*
 * layers: MOUNTPOINT/layers, the store's unpacked layer trees read-only
 * (a family of inodes: fs_layers_family), and the worker that unpacks
 * the layers of every image the store completes (cache/layer_queue.h).
 */
#ifndef DINDFS_FS_LAYERS_H
#define DINDFS_FS_LAYERS_H

#include "fs_internal.h"

/* The name of the layer trees in the mount's root. */
#define FS_LAYERS_NAME "layers"

struct fs_layers;

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

struct fs_layers_stats {
	int64_t pending;      /* events waiting for the worker */
	int64_t unpacking;    /* 1 while a layer is being unpacked */
	int64_t unpacked_now; /* layers this daemon unpacked */
	int64_t failed_now;   /* layers this daemon failed to unpack */
	int64_t inodes;	      /* layer inodes the kernel holds */
};

int fs_layers_stats(struct fs_layers *l, struct fs_layers_stats *ret);

#endif
