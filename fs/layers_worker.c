/*
 * layers_worker: the layers family's side of the unpack worker
 * (cache/layer_queue.h): its limits and the cap of all trees, how it shares
 * each EROFS image with the levels, and the stats.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "layer_image.h"
#include "layers_internal.h"

/*
 * The cap of all trees: --max-layers-size, else the trees and images
 * already there plus half of what is free on the store's file system now, so that trees
 * alone never take more than half the room that was left for everything
 * else (blobs, the workspace, the host).
 */
static uint64_t default_max_total(struct fs *fs)
{
	uint64_t used = 0;
	struct statvfs sv;

	if (statvfs(store_dir(fs->store), &sv) < 0)
		return 0; /* cannot tell: unpack nothing rather than fill the disk */
	layer_queue_capped_bytes(fs->store, &used); /* on an error, what it could count */
	return used + (uint64_t)sv.f_bavail * sv.f_frsize / 2;
}

/* The unpacker's limits: layer.h's defaults, the cap, and the tests' shorter deadline. */
static void queue_limits(struct fs *fs, struct layer_limits *ret)
{
	const char *ms = getenv(FS_LAYER_TIMEOUT_ENV);

	layer_limits_default(ret);
	ret->max_total_bytes = fs->cfg->max_layers_size >= 0 ? (uint64_t)fs->cfg->max_layers_size
							     : default_max_total(fs);
	if (ms && *ms) {
		char *end;
		unsigned long long v = strtoull(ms, &end, 10);

		if (!*end && v > 0)
			ret->max_ms = v;
	}
}

/* One warm: the layers, and the image's inode once found. */
struct warm {
	struct fs_layers *l;
	struct layer_inode *inode;
};

/* layer_image_push_fn: the bytes into the kernel's page cache of the image's inode. */
static int push_image(void *ctx, const char *image, const void *buf, size_t len, off_t off)
{
	struct warm *w = ctx;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);
	struct stat st;

	if (!w->inode) {
		if (stat(image, &st) < 0)
			return -errno;
		w->inode = fs_layers_hold(w->l, st.st_dev, st.st_ino);
		if (!w->inode)
			return -ENOENT; /* the kernel forgot it already */
	}
	bv.buf[0].mem = (void *)buf;
	return fuse_lowlevel_notify_store(w->l->fs->session, (fuse_ino_t)(uintptr_t)w->inode, off,
					  &bv, 0);
}

/*
 * Put the image into the mount's page cache (layer_image_warm: the kernel
 * looks it up, then the daemon stores its bytes there with
 * FUSE_NOTIFY_STORE, no READ and no open file of the mount), so that the
 * first level to mount it finds every page there (opens keep_cache: they
 * stay), as every later level does. 0 or -errno.
 */
static int warm_image(struct fs_layers *l, const struct digest *diffid,
		      const struct layer_limits *limits)
{
	struct fs *fs = l->fs;
	struct warm w = {.l = l};
	char through[4096];
	int r;

	/* the mount's layers/ is the store's, so the image's path under either root is the same */
	r = layer_image_path(fs->cfg->mountpoint, diffid, through, sizeof(through));
	if (r == 0)
		r = layer_image_warm(store_dir(fs->store), diffid, through, limits, push_image, &w);
	fs_layers_unhold(l, w.inode);
	if (r == 0)
		atomic_fetch_add(&l->warmed, 1);
	return r;
}

/*
 * The worker has a layer's image: share it (layer_image_share: mounted over
 * the tree on the mount, read once), so that every level started after
 * reads the layer from the host's one EROFS and its page cache, through no
 * FUSE request, and mounts nothing of its own. Where the daemon may not
 * mount (no CAP_SYS_ADMIN, no EROFS), every level mounts the image itself:
 * then warm it into the mount's page cache instead, unless the mount
 * negotiated passthrough (no level can mount a file of it).
 */
static void share_image(const struct digest *diffid, const struct layer_limits *limits, void *ctx)
{
	struct fs_layers *l = ctx;
	struct fs *fs = l->fs;
	char tree[4096];
	int r;

	if (!fs->session)
		return;
	if (!atomic_load(&l->no_sharing) &&
	    layer_path(fs->cfg->mountpoint, diffid, tree, sizeof(tree)) == 0) {
		r = layer_image_share(store_dir(fs->store), diffid, tree, limits);
		if (r == 0 || r == -EALREADY) {
			atomic_fetch_add(&l->shared, 1);
			return;
		}
		if (layer_image_mount_refused(-r)) {
			fs_log(fs, "cannot share the layers' EROFS images (mount: %s): %s",
			       strerror(-r),
			       atomic_load(&fs->passthrough)
				       ? "none made, as no level could mount them"
				       : "levels mount them");
			atomic_store(&l->no_sharing, true);
		}
	}
	/* a level cannot mount an image from a mount with passthrough (ENOTBLK) */
	if (atomic_load(&fs->passthrough) && atomic_load(&l->no_sharing))
		layer_queue_want_images(l->queue, false);
	else if (!atomic_load(&fs->passthrough))
		warm_image(l, diffid, limits);
}

int fs_layers_start_worker(struct fs_layers *l)
{
	struct layer_limits limits;
	int r;

	queue_limits(l->fs, &limits);
	l->max_total = limits.max_total_bytes;
	r = layer_queue_new(l->fs->store, &limits, LAYER_QUEUE_DEFAULT_CAPACITY, &l->queue);
	if (r == 0)
		layer_queue_set_image_hook(l->queue, share_image, l);
	return r;
}

void fs_layers_stop(struct fs_layers *l)
{
	if (!l || !l->queue)
		return;
	layer_queue_free(l->queue); /* an unpack in progress stops; it resumes next time */
	l->queue = NULL;
}

void fs_layers_rescan(struct fs_layers *l)
{
	if (l && l->queue)
		layer_queue_rescan(l->queue);
}

int fs_layers_stats(struct fs_layers *l, struct fs_layers_stats *ret)
{
	struct layer_queue_stats qs = {0};

	memset(ret, 0, sizeof(*ret));
	if (!l)
		return 0;
	if (l->queue)
		layer_queue_get_stats(l->queue, &qs);
	ret->pending = qs.pending;
	ret->unpacking = qs.busy;
	ret->unpacked_now = qs.unpacked;
	ret->failed_now = qs.failed;
	ret->over_cap_now = qs.over_cap;
	ret->images_failed_now = qs.images_failed;
	ret->images_warmed_now = atomic_load(&l->warmed);
	ret->images_shared_now = atomic_load(&l->shared);
	ret->max_bytes = l->max_total == UINT64_MAX ? -1 : (int64_t)l->max_total;
	pthread_mutex_lock(&l->lock);
	ret->inodes = (int64_t)l->n_inodes;
	pthread_mutex_unlock(&l->lock);
	return 0;
}
