/*
 * snapshotter_meta: the snapshotter's SQLite catalogue — one row per
 * snapshot (name, parent, kind, times, the shared tree of a remote one and
 * its EROFS image when fs is that image's mount) and its labels. Used by snapshotter.c only;
 * returns 0 or -errno (SQLite codes become errno in one function). A UNIQUE name makes a taken key
 * -EEXIST.
 */
#ifndef DINDFS_SNAPSHOTTER_META_H
#define DINDFS_SNAPSHOTTER_META_H

#include <sqlite3.h>

#include "snapshotter.h"

struct snap_row {
	int64_t id;
	int64_t parent_id; /* 0: none */
	enum snap_kind kind;
	char *lower; /* the shared tree of a remote snapshot, else NULL */
	char *image; /* its EROFS image, when fs is a mount of it; else NULL */
};

int snap_meta_open(const char *path, sqlite3 **ret);
void snap_meta_close(sqlite3 *db);

/* The row of NAME, or of ID (name NULL); ret_info may be NULL. -ENOENT. */
int snap_meta_get(sqlite3 *db, const char *name, int64_t id, struct snap_row *ret_row,
		  struct snap_info *ret_info);
/* A new row; -EEXIST when NAME is taken. */
int snap_meta_insert(sqlite3 *db, const char *name, int64_t parent_id, enum snap_kind kind,
		     const char *lower, const char *image, const struct snap_labels *labels,
		     int64_t now, int64_t *ret_id);
/* Row ID's fs is no longer its image's mount (the symlink to its tree). */
int snap_meta_clear_image(sqlite3 *db, int64_t id);
/* Row ID becomes committed NAME with LABELS (its own replaced); -EEXIST. */
int snap_meta_commit(sqlite3 *db, int64_t id, const char *name, const struct snap_labels *labels,
		     int64_t now);
/* -ENOTEMPTY when another row has ID as its parent. */
int snap_meta_delete(sqlite3 *db, int64_t id);
int snap_meta_set_labels(sqlite3 *db, int64_t id, const struct snap_labels *labels, int64_t now);
int snap_meta_walk(sqlite3 *db, int (*fn)(const struct snap_info *info, void *ctx), void *ctx);
/* 1 when a row has ID, 0 when none, or -errno. */
int snap_meta_exists(sqlite3 *db, int64_t id);

void snap_row_release(struct snap_row *row);

#endif
