/*
 * stats: .dindfs/stats, the daemon's counters as one JSON object.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fs_internal.h"
#include "layer_image.h"
#include "layers.h"
#include "workspace.h"

int fs_stats_json(struct fs *fs, char **ret, size_t *ret_len)
{
	uint64_t requests, bytes;
	int64_t count = 0, store_bytes = 0;
	struct fs_ws_counters ws = {0};
	struct fs_layers_stats ls;
	int64_t layers = 0, layer_bytes = 0, images = 0, image_bytes = 0;
	json_t *obj, *more;
	char *text;

	registry_counters(fs->registry, &requests, &bytes);
	index_blob_totals(store_index(fs->store), &count, &store_bytes);
	if (fs->ws)
		fs_ws_counters(fs->ws, &ws);
	obj = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I, "
		"s:I, s:I}",
		"upstream_requests", (json_int_t)requests, "upstream_bytes", (json_int_t)bytes,
		"bytes_served", (json_int_t)atomic_load(&fs->stats.bytes_served), "blob_hits",
		(json_int_t)atomic_load(&fs->stats.blob_hits), "blob_misses",
		(json_int_t)atomic_load(&fs->stats.blob_misses), "fetches_in_flight",
		(json_int_t)fetcher_in_flight(fs->fetcher), "store_blobs", (json_int_t)count,
		"store_bytes", (json_int_t)store_bytes, "passthrough",
		(int)atomic_load(&fs->passthrough), "passthrough_opens",
		(json_int_t)atomic_load(&fs->stats.passthrough_opens), "workspace_lookups",
		(json_int_t)ws.lookups, "workspace_getattrs", (json_int_t)ws.getattrs,
		"workspace_fds", (json_int_t)ws.fds, "workspace_fd_budget",
		(json_int_t)ws.fd_budget, "workspace_fd_evictions", (json_int_t)ws.fd_evictions,
		"workspace_fd_reopens", (json_int_t)ws.fd_reopens, "pid", (json_int_t)getpid());
	if (!obj)
		return -ENOMEM;
	/* 0: no workspace */
	if (json_object_set_new(obj, "workspace_timeout_s",
				json_integer((json_int_t)ws.timeout_s)) < 0) {
		json_decref(obj);
		return -ENOMEM;
	}
	/* the unpacked layers (layers.h): in the store, and this daemon's worker */
	index_layer_totals(store_index(fs->store), &layers, &layer_bytes);
	fs_layers_stats(fs->layers, &ls);
	more = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "layers", (json_int_t)layers,
			 "layer_bytes", (json_int_t)layer_bytes, "layers_max_bytes",
			 (json_int_t)ls.max_bytes, "layers_pending", (json_int_t)ls.pending,
			 "layers_unpacking", (json_int_t)ls.unpacking, "layers_unpacked",
			 (json_int_t)ls.unpacked_now, "layers_failed", (json_int_t)ls.failed_now,
			 "layers_over_cap", (json_int_t)ls.over_cap_now);
	if (!more || json_object_update(obj, more) < 0) {
		json_decref(more);
		json_decref(obj);
		return -ENOMEM;
	}
	json_decref(more);
	/* the layers' EROFS images (layer_image.h) */
	layer_image_totals(store_dir(fs->store), &images, &image_bytes);
	more = json_pack("{s:I, s:I, s:I, s:I, s:I}", "layer_images", (json_int_t)images,
			 "layer_image_bytes", (json_int_t)image_bytes, "layer_images_failed",
			 (json_int_t)ls.images_failed_now, "layer_images_warmed",
			 (json_int_t)ls.images_warmed_now, "layer_images_shared",
			 (json_int_t)ls.images_shared_now);
	if (!more || json_object_update(obj, more) < 0) {
		json_decref(more);
		json_decref(obj);
		return -ENOMEM;
	}
	json_decref(more);
	/* what the connection took at init (ops.c) */
	more = json_pack("{s:b, s:b, s:I}", "killpriv_v2", (int)fs->negotiated.killpriv_v2,
			 "parallel_dirops", (int)fs->negotiated.parallel_dirops, "max_write",
			 (json_int_t)fs->negotiated.max_write);
	if (!more || json_object_update(obj, more) < 0) {
		json_decref(more);
		json_decref(obj);
		return -ENOMEM;
	}
	json_decref(more);
	/*
	 * Every request the kernel sent, by kind: what its caches did not
	 * answer; and those of them the workspace and the layer trees served.
	 */
	if (json_object_set_new(obj, "requests", fs_opcount_json(&fs->stats.requests)) < 0 ||
	    json_object_set_new(obj, "workspace_requests",
				fs_opcount_json(&fs->stats.family_requests[FS_SLOT_WORKSPACE])) <
		    0 ||
	    json_object_set_new(obj, "layers_requests",
				fs_opcount_json(&fs->stats.family_requests[FS_SLOT_LAYERS])) < 0) {
		json_decref(obj);
		return -ENOMEM;
	}
	text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (!text)
		return -ENOMEM;
	*ret_len = strlen(text) + 1;
	text[*ret_len - 1] = '\n'; /* json_dumps leaves no newline; the NUL becomes one */
	*ret = text;
	return 0;
}
