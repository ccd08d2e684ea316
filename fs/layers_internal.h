/*
 * layers_internal: what fs/layers.c (the family's requests) and
 * fs/layers_worker.c (the unpack worker, its images, the cap, the stats)
 * share of the layers family.
 */
#ifndef DINDFS_FS_LAYERS_INTERNAL_H
#define DINDFS_FS_LAYERS_INTERNAL_H

#include "layer_queue.h"
#include "layers.h"

/* Most inodes (each holds a descriptor) the table keeps; past it, ENFILE. */
#define MAX_INODES (1u << 19)
#define N_BUCKETS  (1u << 16)

struct layer_inode {
	uint32_t family; /* FS_FAMILY_LAYERS: first, as in every family's inodes */
	int fd;		 /* O_RDONLY for directories and regular files, else O_PATH */
	bool readable;	 /* fd is O_RDONLY: reads and xattrs go through it */
	dev_t dev;
	ino_t ino;
	uint64_t nlookup;	   /* guarded by l->lock */
	struct fs_backing backing; /* regular files; guarded by l->lock */
	struct layer_inode *hash_next;
};

struct fs_layers {
	struct layer_inode top; /* layers/ itself: never freed */
	struct fs *fs;
	struct layer_queue *queue;
	uint64_t max_total;	 /* the cap of all trees (layer_limits.max_total_bytes) */
	_Atomic int64_t warmed;	 /* images stored into the mount's page cache (warm_image) */
	_Atomic int64_t shared;	 /* images mounted over their trees (share_image) */
	_Atomic bool no_sharing; /* a share failed for want of privilege or EROFS: none again */
	pthread_mutex_t lock;
	struct layer_inode **buckets;
	size_t n_inodes;
};

/*
 * The inode of the store's file (dev, ino), if the kernel has looked it up,
 * held: not freed, whatever the kernel forgets, until fs_layers_unhold.
 */
struct layer_inode *fs_layers_hold(struct fs_layers *l, dev_t dev, ino_t ino);
/* Let go of fs_layers_hold's inode (NULL: nothing). */
void fs_layers_unhold(struct fs_layers *l, struct layer_inode *inode);

/* Start the unpack worker over l->fs's store (its cap into l->max_total). */
int fs_layers_start_worker(struct fs_layers *l);

#endif
