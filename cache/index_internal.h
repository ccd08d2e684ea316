/*
 * index_internal: what the files of the index (index.c, index_layers.c)
 * share and nothing else sees: the connection and the statement helpers.
 * Each helper that takes a statement finalizes it, whatever happens.
 */
#ifndef DINDFS_INDEX_INTERNAL_H
#define DINDFS_INDEX_INTERNAL_H

#include <stdint.h>

#include <sqlite3.h>

#include "digest.h"
#include "index.h"

struct index {
	sqlite3 *db;
};

int index_prepare(struct index *idx, const char *sql, sqlite3_stmt **ret);
/* Step a statement that returns no rows, then finalize it. */
int index_run(sqlite3_stmt *stmt);
/* index_run for a keyed UPDATE or DELETE; -ENOENT when no row matched. */
int index_change(struct index *idx, sqlite3_stmt *stmt);
/* Run a SELECT that yields one row of one or two integers (ret_b may be NULL); -ENOENT: no row. */
int index_select_integers(sqlite3_stmt *stmt, int64_t *ret_a, int64_t *ret_b);

void index_bind_digest(sqlite3_stmt *stmt, int column, const struct digest *d);
/* Read a hex digest column; a malformed one means a damaged database (-EBADMSG). */
int index_column_digest(sqlite3_stmt *stmt, int column, struct digest *ret);

/* Called for each row of a walk; non-zero stops it and is returned. */
typedef int (*index_row_fn)(sqlite3_stmt *stmt, void *ctx);
/* Step stmt through its rows, calling row on each; then finalize it. */
int index_walk(sqlite3_stmt *stmt, index_row_fn row, void *ctx);

#endif
