/*
 * layer_queue: the host daemon's background unpacker of image layers.
 *
 * The store tells it of every committed blob (store_set_commit_hook). One
 * worker thread, never a caller's, takes each from a bounded queue and
 * looks for images it completes: the blob itself when it is an image
 * manifest, or the manifests with an edge to it. For an image whose
 * config and layers are all in the store, each layer gets an index row
 * (QUEUED, then UNPACKED or FAILED) and is unpacked by layer_unpack()
 * into layers/sha256:<diffid>, its diff-id taken from the config's
 * rootfs.diff_ids, and then, once no event, resume or rescan waits (the
 * trees come first), gets its EROFS image (layer_image.h) unless
 * mkfs.erofs is missing or the image failed before in this process (the
 * tree alone serves then). Layers already unpacked are skipped, and so are those
 * that failed for a reason in the content (-EBADMSG, -EINVAL, -EPERM and
 * the limits' errnos: layer.h); others (-ENOSPC ...) are tried again.
 *
 * All trees together stay under limits->max_total_bytes: each unpack may
 * add only the room left (the cap less the index's layer_bytes and the
 * images' bytes; an image that would pass it is not kept), and a
 * layer that needs more fails with -EDQUOT, nothing of it kept. Its row
 * then holds the least it needs (size: the room it was given, plus one),
 * and it is tried again only once there is that much room (GC freed
 * trees, or a larger cap at the next start). Until then a level finds no
 * tree for it and unpacks that layer itself.
 *
 * The queue never blocks its callers: when it is full the event is
 * dropped and the worker rescans every manifest once it has drained, so
 * nothing is lost. At start the worker resumes what a crash interrupted
 * (QUEUED rows, UNPACKED rows whose tree is gone) and rescans.
 */
#ifndef DINDFS_LAYER_QUEUE_H
#define DINDFS_LAYER_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "layer.h"
#include "store.h"

#define LAYER_QUEUE_DEFAULT_CAPACITY 4096
/* Largest image config read for its diff-ids. */
#define LAYER_CONFIG_MAX_SIZE (4u << 20)

struct layer_queue;

struct layer_queue_stats {
	int64_t pending;       /* events waiting */
	int64_t dropped;       /* events dropped on a full queue (each forces a rescan) */
	int64_t unpacked;      /* layers this process unpacked */
	int64_t failed;	       /* layers this process failed to unpack */
	int64_t over_cap;      /* of those, refused for the cap of all trees (-EDQUOT) */
	int64_t busy;	       /* 1 while a layer is being unpacked */
	int64_t images_failed; /* EROFS images (layer_image.h) this process failed to build */
};

/*
 * Start the worker over s with these limits (copied; NULL for the
 * defaults) and room for capacity events. It resumes and rescans first.
 */
int layer_queue_new(struct store *s, const struct layer_limits *limits, size_t capacity,
		    struct layer_queue **ret);
/* Stop the worker (an unpack in progress is cancelled and stays QUEUED) and free. Accepts NULL. */
void layer_queue_free(struct layer_queue *q);

/* Note that blob d was committed. Never blocks; -EAGAIN when the queue is full. */
int layer_queue_blob(struct layer_queue *q, const struct digest *d);
/* A store commit hook (store_set_commit_hook) that calls layer_queue_blob; ctx is the queue. */
void layer_queue_commit_hook(const struct digest *d, void *ctx);

/*
 * What counts under the cap of all trees in store: the bytes of the
 * index's UNPACKED rows (their uncompressed streams) and of the images.
 * On an error, *ret_bytes is what could be counted, and the first -errno
 * is returned.
 */
int layer_queue_capped_bytes(struct store *store, uint64_t *ret_bytes);

/* Look at every manifest again soon (room came back: GC removed trees). Never blocks. */
void layer_queue_rescan(struct layer_queue *q);

/*
 * Called by the worker with each layer's EROFS image, once per start: right
 * after it built one, and for those an earlier start built when it finds
 * them. With the worker's limits (their stop flag is the queue's): what
 * the mount does with an image (fs/layers_worker.c shares it with every
 * level).
 */
typedef void (*layer_image_fn)(const struct digest *diffid, const struct layer_limits *limits,
			       void *ctx);
void layer_queue_set_image_hook(struct layer_queue *q, layer_image_fn fn, void *ctx);
/*
 * Whether the worker makes EROFS images from now on (on at start): off where
 * no level could mount them, so they would only take disk.
 */
void layer_queue_want_images(struct layer_queue *q, bool on);

/* Wait until the queue is empty and the worker idle (tests, and `dindfs` commands). */
void layer_queue_drain(struct layer_queue *q);
void layer_queue_get_stats(struct layer_queue *q, struct layer_queue_stats *ret);

/*
 * The diff-ids of an image config: its rootfs.diff_ids, in order, appended
 * to ret. -EINVAL unless it is a JSON object whose rootfs.type is "layers"
 * and whose diff_ids are all digests; -EFBIG past LAYER_CONFIG_MAX_SIZE,
 * -E2BIG past MANIFEST_MAX_DESCRIPTORS.
 */
int layer_config_diffids(const void *data, size_t len, struct digest_list *ret);

#endif
