/*
 * index: the SQLite catalogue of the store.
 *
 * It records every committed blob (size, media type, when it was created
 * and last used, whether it is pinned), every tag (registry, repository,
 * tag -> manifest digest, and when upstream was last asked), and the
 * manifest -> blob edges that tell GC what each image needs, and the
 * repository links that say which repository is known to hold which blob
 * (so that what one repository cached does not leak through another's
 * path on the mount).
 *
 * The database runs in WAL mode so that the mount daemon and host-side
 * commands can use one store at once. The schema is versioned with
 * PRAGMA user_version and migrated forward on open; a database from a
 * newer dindfs is refused. One connection is safe to share between
 * threads (SQLite's serialized mode); a transaction is its thread's alone
 * (index_begin below).
 *
 * All functions return 0 or a negative errno.
 */
#ifndef DINDFS_INDEX_H
#define DINDFS_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "digest.h"

#define INDEX_SCHEMA_VERSION 5
/* Longest media type, registry, repository or tag the index stores. */
#define INDEX_NAME_MAX 255

struct index;

struct index_blob {
	struct digest digest;
	int64_t size;
	char media_type[INDEX_NAME_MAX + 1]; /* "" when unknown */
	int64_t created;		     /* seconds since the epoch */
	int64_t last_access;
	bool pinned;
};

struct index_tag {
	char registry[INDEX_NAME_MAX + 1];
	char repository[INDEX_NAME_MAX + 1];
	char tag[INDEX_NAME_MAX + 1];
	struct digest manifest;
	int64_t fetched; /* when upstream last confirmed the tag */
};

/* Callbacks return 0 to go on; anything else stops the walk and is returned. */
typedef int (*index_blob_fn)(const struct index_blob *blob, void *ctx);
typedef int (*index_tag_fn)(const struct index_tag *tag, void *ctx);

/*
 * The one mapping of an SQLite result code to 0 or a negative errno,
 * for the index and for every other SQLite catalogue (the snapshotter's).
 */
int index_sqlite_errno(int rc);

/*
 * Open (creating if needed) the index at path and migrate it to
 * INDEX_SCHEMA_VERSION. -EPROTONOSUPPORT if it is from a newer dindfs.
 */
int index_open(const char *path, struct index **ret);
/* Accepts NULL. */
void index_close(struct index *idx);
int index_schema_version(struct index *idx, int *ret_version);

/*
 * Transactions, for callers that batch several changes. Not nestable.
 * From index_begin() to index_commit() or index_rollback() the calling
 * thread holds the connection: other threads' calls wait until it ends,
 * so none of their statements becomes part of it. A failed commit rolls
 * back; either way the connection is released.
 */
int index_begin(struct index *idx);
int index_commit(struct index *idx);
void index_rollback(struct index *idx);

/*
 * Record a committed blob. If it is already known, only last_access moves
 * and a missing media type is filled in.
 */
int index_put_blob(struct index *idx, const struct digest *d, int64_t size, const char *media_type,
		   int64_t now);
int index_get_blob(struct index *idx, const struct digest *d, struct index_blob *ret);
int index_touch_blob(struct index *idx, const struct digest *d, int64_t now);
int index_set_pinned(struct index *idx, const struct digest *d, bool pinned);
/*
 * Pin (or unpin) manifest and every blob it reaches through edges: for an
 * image its config and layers, for an index its images too. -ENOENT when
 * manifest is not in the index.
 */
int index_set_image_pinned(struct index *idx, const struct digest *manifest, bool pinned);
/*
 * Forget a blob: its row, the tags that name it and the edges that start
 * from it. The file itself is the caller's business.
 */
int index_remove_blob(struct index *idx, const struct digest *d);
/* Every blob, oldest access first. */
int index_foreach_blob(struct index *idx, index_blob_fn fn, void *ctx);
/* Every blob's digest, in digest order (for merging with a directory scan). */
typedef int (*index_digest_fn)(const struct digest *d, void *ctx);
int index_foreach_digest(struct index *idx, index_digest_fn fn, void *ctx);
int index_blob_totals(struct index *idx, int64_t *ret_count, int64_t *ret_bytes);

int index_put_tag(struct index *idx, const char *registry, const char *repository, const char *tag,
		  const struct digest *manifest, int64_t fetched);
int index_get_tag(struct index *idx, const char *registry, const char *repository, const char *tag,
		  struct index_tag *ret);
/*
 * index_put_tag for a tag a client saved, counted for level (whoever's
 * budget it is, >= 0): a new tag is refused with -EDQUOT when level has
 * max_tags of registry's tags already; overwriting a tag always goes, and
 * the tag stays counted for the level that made it. One statement, so
 * concurrent savers cannot pass the limit together.
 */
int index_put_counted_tag(struct index *idx, const char *registry, const char *repository,
			  const char *tag, const struct digest *manifest, int64_t fetched,
			  int level, int64_t max_tags);
/* How many of registry's tags are counted for level. */
int index_count_tags(struct index *idx, const char *registry, int level, int64_t *ret_count);
int index_remove_tag(struct index *idx, const char *registry, const char *repository,
		     const char *tag);
/* Every tag, least recently used manifest first; within one second, oldest tag first. */
int index_foreach_tag(struct index *idx, index_tag_fn fn, void *ctx);

/* Record that manifest `parent` needs each of `children`. Idempotent. */
int index_add_edges(struct index *idx, const struct digest *parent, const struct digest *children,
		    size_t n_children);

/*
 * Record that registry/repository holds blob d of the given size (a
 * manifest fetched for the repository names it, or upstream confirmed it).
 * Idempotent; a later size replaces an earlier one.
 */
int index_add_link(struct index *idx, const char *registry, const char *repository,
		   const struct digest *d, int64_t size);
/* Is d known to be in registry/repository? Its size then. -ENOENT if not. */
int index_get_link(struct index *idx, const char *registry, const char *repository,
		   const struct digest *d, int64_t *ret_size);
/* Every blob linked to registry/repository, in digest order. */
int index_foreach_link(struct index *idx, const char *registry, const char *repository,
		       index_digest_fn fn, void *ctx);
/* Update a tag's fetched time (upstream confirmed it). -ENOENT if unknown. */
int index_touch_tag(struct index *idx, const char *registry, const char *repository,
		    const char *tag, int64_t fetched);

/*
 * Blobs that no tag and no pinned blob reaches through edges, oldest
 * access first.
 */
int index_foreach_unreferenced(struct index *idx, index_blob_fn fn, void *ctx);
/* Is d reachable from a tag or a pinned blob? */
int index_is_referenced(struct index *idx, const struct digest *d, bool *ret);
/* Sum of the sizes of the blobs reachable from manifest (itself included). */
int index_image_size(struct index *idx, const struct digest *manifest, int64_t *ret_bytes);
/* Every manifest with an edge to child (NULL: every manifest with edges), in digest order. */
int index_foreach_parent(struct index *idx, const struct digest *child, index_digest_fn fn,
			 void *ctx);

/*
 * Layers unpacked under layers/ (cache/layer.h), one row per diff-id:
 * which blob it came from, its unpacked size, and how far it got. A row
 * is QUEUED before the unpack starts, so a crash leaves a row to redo.
 */
enum index_layer_state {
	INDEX_LAYER_QUEUED = 0,
	INDEX_LAYER_UNPACKED = 1,
	INDEX_LAYER_FAILED = 2, /* error holds the negative errno; not retried */
};

struct index_layer {
	struct digest diffid;
	struct digest blob; /* the compressed blob it is unpacked from */
	int64_t size;	    /* uncompressed bytes, once unpacked */
	enum index_layer_state state;
	int error;
	int64_t updated; /* seconds since the epoch */
};

typedef int (*index_layer_fn)(const struct index_layer *layer, void *ctx);

/* Layer rows collected by a walk: index_layer_list_add is the walk's callback. */
struct index_layer_list {
	struct index_layer *rows;
	size_t len, cap;
};

/* An index_layer_fn appending a copy of layer to the list ctx; -ENOMEM. */
int index_layer_list_add(const struct index_layer *layer, void *ctx);
/* Frees the rows and empties l. */
void index_layer_list_release(struct index_layer_list *l);

/* Insert or replace the row of layer->diffid. */
int index_put_layer(struct index *idx, const struct index_layer *layer);
/* -ENOENT when there is no row. */
int index_get_layer(struct index *idx, const struct digest *diffid, struct index_layer *ret);
int index_remove_layer(struct index *idx, const struct digest *diffid);
/* Every row, or (blob not NULL) those unpacked from blob; in diff-id order. */
int index_foreach_layer(struct index *idx, const struct digest *blob, index_layer_fn fn, void *ctx);
/* Rows whose blob is no longer in the store. */
int index_foreach_orphan_layer(struct index *idx, index_layer_fn fn, void *ctx);
/* Unpacked layers: how many, and their bytes. */
int index_layer_totals(struct index *idx, int64_t *ret_count, int64_t *ret_bytes);

#endif
