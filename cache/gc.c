/*
 * gc: size-limited, LRU garbage collection of the store (see gc.h).
 *
 * It holds the store's exclusive lock throughout, so no commit lands
 * between deciding a blob is unreferenced and deleting it.
 */
#include "gc.h"

#include "layer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct sweep {
	struct store *store;
	struct gc_result *result;
	int64_t max_bytes;
	bool to_the_end; /* remove every unreferenced blob, not just down to the limit */
	struct index_blob *victims;
	size_t n_victims, cap;
};

static int collect_victim(const struct index_blob *blob, void *ctx)
{
	struct sweep *sw = ctx;

	if (sw->n_victims == sw->cap) {
		size_t cap = sw->cap ? sw->cap * 2 : 64;
		struct index_blob *v = reallocarray(sw->victims, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		sw->victims = v;
		sw->cap = cap;
	}
	sw->victims[sw->n_victims++] = *blob;
	return 0;
}

/* Remove one unpacked tree and its row. */
static int drop_layer(struct sweep *sw, const struct index_layer *layer)
{
	/* renamed away now, deleted once the lock is released (a tree may be big) */
	int r = layer_detach(store_dir(sw->store), &layer->diffid);

	if (r < 0 && r != -ENOENT)
		return r;
	r = index_remove_layer(store_index(sw->store), &layer->diffid);
	if (r < 0 && r != -ENOENT)
		return r;
	sw->result->removed_layers++;
	return 0;
}

/* Remove the trees unpacked from blob, or (blob NULL) those whose blob is gone. */
static int drop_layers(struct sweep *sw, const struct digest *blob)
{
	struct index *idx = store_index(sw->store);
	struct index_layer_list l = {0};
	size_t i;
	int r = blob ? index_foreach_layer(idx, blob, index_layer_list_add, &l)
		     : index_foreach_orphan_layer(idx, index_layer_list_add, &l);

	for (i = 0; r == 0 && i < l.len; i++)
		r = drop_layer(sw, &l.rows[i]);
	index_layer_list_release(&l);
	return r;
}

/* Delete unreferenced blobs, least recently used first. */
static int sweep_unreferenced(struct sweep *sw)
{
	struct gc_result *res = sw->result;
	size_t i;
	int r;

	sw->n_victims = 0;
	r = index_foreach_unreferenced(store_index(sw->store), collect_victim, sw);
	for (i = 0; r == 0 && i < sw->n_victims; i++) {
		const struct index_blob *blob = &sw->victims[i];

		if (!sw->to_the_end && res->remaining_bytes <= sw->max_bytes)
			break;
		r = store_remove_blob(sw->store, &blob->digest);
		if (r == -EBUSY) { /* being ingested right now: it stays */
			r = 0;
			continue;
		}
		if (r == 0) {
			res->removed_blobs++;
			res->removed_bytes += blob->size;
			res->remaining_bytes -= blob->size;
			r = drop_layers(sw, &blob->digest);
		}
	}
	return r;
}

struct tag_pick {
	struct index *index;
	struct index_tag tag;
};

/* Walk callback: stop (returning 1) at the first tag whose manifest is not pinned. */
static int first_unpinned_tag(const struct index_tag *tag, void *ctx)
{
	struct tag_pick *pick = ctx;
	struct index_blob manifest;

	if (index_get_blob(pick->index, &tag->manifest, &manifest) == 0 && manifest.pinned)
		return 0;
	pick->tag = *tag;
	return 1;
}

int gc_run(struct store *s, int64_t max_bytes, struct gc_result *ret)
{
	struct gc_result res = {0};
	struct sweep sw = {.store = s, .result = &res, .max_bytes = max_bytes};
	struct index *idx = store_index(s);
	int64_t count;
	int lock = -1, r;

	r = store_lock(s, true, &lock);
	if (r < 0)
		return r;
	r = index_blob_totals(idx, &count, &res.remaining_bytes);
	if (r == 0) /* trees whose blob is gone: nothing can need them */
		r = drop_layers(&sw, NULL);
	if (r == 0 && res.remaining_bytes > max_bytes)
		r = sweep_unreferenced(&sw);

	sw.to_the_end = true; /* an image goes whole, never half */
	while (r == 0 && res.remaining_bytes > max_bytes) {
		struct tag_pick pick = {.index = idx};

		r = index_foreach_tag(idx, first_unpinned_tag, &pick);
		if (r == 0) {
			r = -ENOSPC; /* no image left that may go */
			break;
		}
		if (r != 1)
			break;
		r = index_remove_tag(idx, pick.tag.registry, pick.tag.repository, pick.tag.tag);
		if (r == 0) {
			res.removed_tags++;
			r = sweep_unreferenced(&sw);
		}
	}
	store_unlock(lock);
	if (res.removed_layers > 0)
		layer_recover(store_dir(s), NULL); /* delete what was detached */
	free(sw.victims);
	*ret = res;
	return r;
}
