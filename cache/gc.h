/*
 * gc: keep the store under a size limit.
 *
 * First blobs that nothing references go, least recently used first; then
 * whole images (tags), least recently used first, each with every blob that
 * no remaining image or pinned blob needs. Pinned blobs, everything a kept
 * image needs, and blobs being ingested stay.
 *
 * The size is the blobs' (as before unpacked layers existed). An unpacked
 * layer (layer.h) goes with the blob it was made from, and a tree whose
 * blob is gone already goes at every run, whatever the size.
 */
#ifndef DINDFS_GC_H
#define DINDFS_GC_H

#include <stdint.h>

#include "store.h"

struct gc_result {
	int64_t removed_blobs;
	int64_t removed_bytes;
	int64_t removed_tags;
	int64_t removed_layers; /* unpacked trees, gone with their blobs (not in the bytes) */
	int64_t remaining_bytes;
};

/*
 * Remove what it takes to bring the store to at most max_bytes. Returns 0
 * when the limit is met, -ENOSPC when everything left must stay (ret is
 * filled in either way), or another negative errno.
 */
int gc_run(struct store *s, int64_t max_bytes, struct gc_result *ret);

#endif
