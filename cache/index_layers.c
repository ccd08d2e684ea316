/*
 * index_layers: the layers table of the index (index.h), one row per
 * unpacked (or queued, or failed) layer, keyed by diff-id. The statement
 * helpers are the index's own (index_internal.h).
 */
#include "index.h"
#include "index_internal.h"

#include <errno.h>
#include <stdlib.h>

#include <sqlite3.h>

#define LAYER_COLUMNS "diffid, blob, size, state, error, updated"

static int row_to_layer(sqlite3_stmt *stmt, struct index_layer *ret)
{
	int r = index_column_digest(stmt, 0, &ret->diffid);

	if (r == 0)
		r = index_column_digest(stmt, 1, &ret->blob);
	if (r < 0)
		return r;
	ret->size = sqlite3_column_int64(stmt, 2);
	ret->state = (enum index_layer_state)sqlite3_column_int(stmt, 3);
	ret->error = sqlite3_column_int(stmt, 4);
	ret->updated = sqlite3_column_int64(stmt, 5);
	return 0;
}

int index_put_layer(struct index *idx, const struct index_layer *layer)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(idx,
			      "INSERT OR REPLACE INTO layers (" LAYER_COLUMNS ")"
			      " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			      &stmt);

	if (r < 0)
		return r;
	index_bind_digest(stmt, 1, &layer->diffid);
	index_bind_digest(stmt, 2, &layer->blob);
	sqlite3_bind_int64(stmt, 3, layer->size);
	sqlite3_bind_int(stmt, 4, (int)layer->state);
	sqlite3_bind_int(stmt, 5, layer->error);
	sqlite3_bind_int64(stmt, 6, layer->updated);
	return index_run(stmt);
}

int index_get_layer(struct index *idx, const struct digest *diffid, struct index_layer *ret)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(idx, "SELECT " LAYER_COLUMNS " FROM layers WHERE diffid = ?1", &stmt);

	if (r < 0)
		return r;
	index_bind_digest(stmt, 1, diffid);
	r = sqlite3_step(stmt);
	if (r == SQLITE_ROW)
		r = row_to_layer(stmt, ret);
	else
		r = r == SQLITE_DONE ? -ENOENT : index_sqlite_errno(r);
	sqlite3_finalize(stmt);
	return r;
}

int index_remove_layer(struct index *idx, const struct digest *diffid)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(idx, "DELETE FROM layers WHERE diffid = ?1", &stmt);

	if (r < 0)
		return r;
	index_bind_digest(stmt, 1, diffid);
	return index_change(idx, stmt);
}

struct layer_walk {
	index_layer_fn fn;
	void *ctx;
};

static int layer_row(sqlite3_stmt *stmt, void *ctx)
{
	struct layer_walk *w = ctx;
	struct index_layer layer;
	int r = row_to_layer(stmt, &layer);

	return r < 0 ? r : w->fn(&layer, w->ctx);
}

/* Walk the rows of a prepared SELECT of LAYER_COLUMNS; finalizes stmt. */
static int walk_layers(sqlite3_stmt *stmt, index_layer_fn fn, void *ctx)
{
	struct layer_walk w = {fn, ctx};

	return index_walk(stmt, layer_row, &w);
}

int index_layer_list_add(const struct index_layer *layer, void *ctx)
{
	struct index_layer_list *l = ctx;

	if (l->len == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct index_layer *rows = reallocarray(l->rows, cap, sizeof(*rows));

		if (!rows)
			return -ENOMEM;
		l->rows = rows;
		l->cap = cap;
	}
	l->rows[l->len++] = *layer;
	return 0;
}

void index_layer_list_release(struct index_layer_list *l)
{
	free(l->rows);
	*l = (struct index_layer_list){0};
}

int index_foreach_layer(struct index *idx, const struct digest *blob, index_layer_fn fn, void *ctx)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(idx,
			      blob ? "SELECT " LAYER_COLUMNS
				     " FROM layers WHERE blob = ?1 ORDER BY diffid"
				   : "SELECT " LAYER_COLUMNS " FROM layers ORDER BY diffid",
			      &stmt);

	if (r < 0)
		return r;
	if (blob)
		index_bind_digest(stmt, 1, blob);
	return walk_layers(stmt, fn, ctx);
}

int index_foreach_orphan_layer(struct index *idx, index_layer_fn fn, void *ctx)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(idx,
			      "SELECT " LAYER_COLUMNS " FROM layers"
			      " WHERE blob NOT IN (SELECT digest FROM blobs) ORDER BY diffid",
			      &stmt);

	return r < 0 ? r : walk_layers(stmt, fn, ctx);
}

int index_layer_totals(struct index *idx, int64_t *ret_count, int64_t *ret_bytes)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(
		idx, "SELECT count(*), coalesce(sum(size), 0) FROM layers WHERE state = 1", &stmt);

	return r < 0 ? r : index_select_integers(stmt, ret_count, ret_bytes);
}
