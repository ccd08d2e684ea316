/*
 * snapshotter_content: the layer blobs of shared layers in the level's
 * containerd content store, at no disk cost.
 *
 * When Prepare finds a layer among the host's unpacked trees, containerd
 * skips the layer's fetch, so its blob never reaches the content store and
 * moby 26.1 hides the image from `docker images` and leaves the layers out
 * of `docker save`. The blob is in the host's store, under ROOT/blobs. For
 * a Prepare labelled containerd.io/snapshot/cri.layer-digest (moby pulls
 * with containerd's AppendInfoHandlerWrapper), snap_content_add:
 *
 *  1. links CONTENT/blobs/sha256/<hex> -> ROOT/blobs/sha256/<hex>: the
 *     content store's backend (containerd's local store) stats and opens
 *     through the link, and its GC's delete removes the link alone;
 *  2. queues the digest for a worker thread that records it in the
 *     snapshot's containerd namespace with one Content/Write call (COMMIT
 *     with the expected digest and size, no data): containerd's metadata
 *     store shares content the backend holds, so nothing is copied.
 *
 * Prepare waits for step 2, up to SNAP_CONTENT_WAIT_MS, so that
 * `docker images` right after `docker pull` lists the image. That is safe
 * because containerd (1.6, 1.7 and 2.x, metadata/snapshot.go
 * createSnapshot) calls a snapshotter's Prepare between its metadata
 * transactions, not inside one, and the Write takes none of the locks
 * Prepare's caller holds. The call runs on a worker thread with its own
 * deadline, so a containerd that did hold a transaction across Prepare
 * would cost the wait, not a deadlock, and the record would land after.
 */
#ifndef DINDFS_SNAPSHOTTER_CONTENT_H
#define DINDFS_SNAPSHOTTER_CONTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshotter.h"

#define SNAP_LABEL_LAYER_DIGEST "containerd.io/snapshot/cri.layer-digest"
/* containerd's bound on a namespace name (identifiers.Validate) */
#define SNAP_NAMESPACE_MAX 76
/* blobs waiting for the worker; more are linked but not recorded */
#define SNAP_CONTENT_QUEUE_MAX 4096
/* how long Prepare waits for its blob's record */
#define SNAP_CONTENT_WAIT_MS 5000

struct snap_content;

/*
 * Links into CONTENT_DIR (containerd's io.containerd.content.v1.content)
 * to blobs under ROOT/blobs, recorded through the containerd socket
 * CONTAINERD (NULL: link only, never record).
 */
int snap_content_new(const char *content_dir, const char *root, const char *containerd,
		     struct snap_content **ret);
/* Stops the worker (after the call it is sending); accepts NULL. */
void snap_content_free(struct snap_content *c);
/* One line on stderr per record: how long the call took, and Prepare's wait. */
void snap_content_log_requests(struct snap_content *c, bool on);

/*
 * For a Prepare of KEY ("NAMESPACE/ID/NAME", as containerd names keys to a
 * proxy snapshotter) with LABELS that a shared layer answered: link the
 * blob named by the cri.layer-digest label and record it (waiting up to
 * SNAP_CONTENT_WAIT_MS). 0 when linked or already present and recorded or
 * still being recorded, -ENOENT no such label or no such
 * blob under ROOT/blobs, -EINVAL a malformed digest or namespace (nothing
 * is made), -EAGAIN the queue is full (linked, not recorded).
 */
int snap_content_add(struct snap_content *c, const char *key, const struct snap_labels *labels);

/* Blobs recorded and failed so far (for logs and tests). */
void snap_content_counts(struct snap_content *c, uint64_t *ret_recorded, uint64_t *ret_failed);
/* Wait until the queue is empty and the worker idle, up to TIMEOUT_MS; false on timeout. */
bool snap_content_drain(struct snap_content *c, int timeout_ms);

/* "sha256:" and 64 lowercase hex digits: the only digest a link is made for. */
bool snap_content_digest_valid(const char *digest);
/*
 * The namespace of a proxy snapshotter key "NAMESPACE/ID/NAME": a
 * containerd identifier (letters, digits, '.', '_', '-' between them, up
 * to SNAP_NAMESPACE_MAX), or -EINVAL.
 */
int snap_content_namespace(const char *key, char ret[SNAP_NAMESPACE_MAX + 1]);
/*
 * Link CONTENT_DIR/blobs/sha256/<hex> to ROOT/blobs/sha256/<hex>, a
 * regular file (a link or anything else there is refused: -ENOENT). 0
 * linked, -EEXIST something is there already (kept), -EINVAL bad digest.
 * *ret_size is the blob's size in both of the first two cases.
 */
int snap_content_link(const char *content_dir, const char *root, const char *digest,
		      int64_t *ret_size);

#endif
