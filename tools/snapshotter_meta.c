/*
 * snapshotter_meta: the snapshotter's SQLite catalogue (see
 * snapshotter_meta.h). Each call prepares, runs and finalizes its
 * statements; writes that touch two tables run in one transaction.
 */
#include "snapshotter_meta.h"

#include "index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BUSY_TIMEOUT_MS 10000

static const char schema[] =
	"PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
	"CREATE TABLE IF NOT EXISTS snapshots ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  parent INTEGER REFERENCES snapshots(id),"
	"  kind INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  lower TEXT,"
	"  image TEXT);"
	"CREATE INDEX IF NOT EXISTS snapshots_by_parent ON snapshots(parent);"
	"CREATE TABLE IF NOT EXISTS labels ("
	"  snapshot INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY (snapshot, key)) WITHOUT ROWID;";

/*
 * A database made before the images: add their column (NULL: a remote
 * snapshot's fs is the symlink to its tree, as it was then).
 */
static const char migrate_image[] = "ALTER TABLE snapshots ADD COLUMN image TEXT";

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **ret)
{
	return index_sqlite_errno(sqlite3_prepare_v2(db, sql, -1, ret, NULL));
}

static int exec(sqlite3 *db, const char *sql)
{
	return index_sqlite_errno(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

/* Step a statement that returns no rows, then finalize it. */
static int run(sqlite3_stmt *stmt)
{
	int rc = sqlite3_step(stmt);

	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : index_sqlite_errno(rc);
}

/* 1 when TABLE has COLUMN, 0 when not, or -errno. */
static int has_column(sqlite3 *db, const char *table, const char *column)
{
	sqlite3_stmt *stmt;
	int rc, r;

	r = prepare(db, "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", &stmt);
	if (r < 0)
		return r;
	sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, column, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	r = rc == SQLITE_ROW ? sqlite3_column_int(stmt, 0) > 0 : index_sqlite_errno(rc);
	sqlite3_finalize(stmt);
	return r;
}

int snap_meta_open(const char *path, sqlite3 **ret)
{
	sqlite3 *db = NULL;
	int r;

	r = index_sqlite_errno(
		sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL));
	if (r < 0)
		goto out_close;
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	r = exec(db, schema);
	if (r < 0)
		goto out_close;
	r = has_column(db, "snapshots", "image");
	if (r == 0)
		r = exec(db, migrate_image);
	if (r < 0)
		goto out_close;
	*ret = db;
	return 0;
out_close:
	sqlite3_close(db);
	return r;
}

void snap_meta_close(sqlite3 *db)
{
	sqlite3_close(db);
}

void snap_row_release(struct snap_row *row)
{
	free(row->lower);
	free(row->image);
	row->lower = row->image = NULL;
}

static char *dup_column(sqlite3_stmt *stmt, int column)
{
	const unsigned char *text = sqlite3_column_text(stmt, column);

	return text ? strdup((const char *)text) : NULL;
}

static int read_labels(sqlite3 *db, int64_t id, struct snap_labels *ret)
{
	struct snap_labels labels = {0};
	sqlite3_stmt *stmt;
	int rc, r;

	r = prepare(db, "SELECT key, value FROM labels WHERE snapshot = ? ORDER BY key", &stmt);
	if (r < 0)
		return r;
	sqlite3_bind_int64(stmt, 1, id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct snap_label *grown;

		grown = realloc(labels.items, (labels.len + 1) * sizeof(*grown));
		if (!grown) {
			r = -ENOMEM;
			goto out;
		}
		labels.items = grown;
		grown[labels.len].key = dup_column(stmt, 0);
		grown[labels.len].value = dup_column(stmt, 1);
		labels.len++;
		if (!grown[labels.len - 1].key || !grown[labels.len - 1].value) {
			r = -ENOMEM;
			goto out;
		}
	}
	r = rc == SQLITE_DONE ? 0 : index_sqlite_errno(rc);
out:
	sqlite3_finalize(stmt);
	if (r < 0)
		snap_labels_release(&labels);
	else
		*ret = labels;
	return r;
}

#define ROW_COLUMNS                                                                                \
	"s.id, s.parent, s.kind, s.lower, s.name, p.name, s.created, s.updated, s.image "          \
	"FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent "

/* Fill a row and, when asked, an info from a ROW_COLUMNS result. */
static int read_row(sqlite3 *db, sqlite3_stmt *stmt, struct snap_row *ret_row,
		    struct snap_info *ret_info)
{
	struct snap_row row = {0};
	struct snap_info info = {0};
	int r = -ENOMEM;

	row.id = sqlite3_column_int64(stmt, 0);
	row.parent_id = sqlite3_column_int64(stmt, 1);
	row.kind = sqlite3_column_int(stmt, 2);
	if ((sqlite3_column_type(stmt, 3) != SQLITE_NULL && !(row.lower = dup_column(stmt, 3))) ||
	    (sqlite3_column_type(stmt, 8) != SQLITE_NULL && !(row.image = dup_column(stmt, 8)))) {
		snap_row_release(&row);
		return -ENOMEM;
	}
	if (ret_info) {
		info.name = dup_column(stmt, 4);
		if (!info.name)
			goto out_release;
		if (sqlite3_column_type(stmt, 5) != SQLITE_NULL &&
		    !(info.parent = dup_column(stmt, 5)))
			goto out_release;
		info.kind = row.kind;
		info.created_ns = sqlite3_column_int64(stmt, 6);
		info.updated_ns = sqlite3_column_int64(stmt, 7);
		r = read_labels(db, row.id, &info.labels);
		if (r < 0)
			goto out_release;
		*ret_info = info;
	}
	if (ret_row)
		*ret_row = row;
	else
		snap_row_release(&row);
	return 0;
out_release:
	snap_info_release(&info);
	snap_row_release(&row);
	return r;
}

int snap_meta_get(sqlite3 *db, const char *name, int64_t id, struct snap_row *ret_row,
		  struct snap_info *ret_info)
{
	sqlite3_stmt *stmt;
	int rc, r;

	r = prepare(db,
		    name ? "SELECT " ROW_COLUMNS "WHERE s.name = ?"
			 : "SELECT " ROW_COLUMNS "WHERE s.id = ?",
		    &stmt);
	if (r < 0)
		return r;
	if (name)
		sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(stmt, 1, id);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		r = read_row(db, stmt, ret_row, ret_info);
	else
		r = rc == SQLITE_DONE ? -ENOENT : index_sqlite_errno(rc);
	sqlite3_finalize(stmt);
	return r;
}

static int write_labels(sqlite3 *db, int64_t id, const struct snap_labels *labels)
{
	sqlite3_stmt *stmt;
	size_t i;
	int r;

	r = prepare(db, "DELETE FROM labels WHERE snapshot = ?", &stmt);
	if (r < 0)
		return r;
	sqlite3_bind_int64(stmt, 1, id);
	r = run(stmt);
	for (i = 0; r == 0 && labels && i < labels->len; i++) {
		r = prepare(db,
			    "INSERT OR REPLACE INTO labels (snapshot, key, value) VALUES (?, ?, ?)",
			    &stmt);
		if (r < 0)
			break;
		sqlite3_bind_int64(stmt, 1, id);
		sqlite3_bind_text(stmt, 2, labels->items[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 3, labels->items[i].value, -1, SQLITE_STATIC);
		r = run(stmt);
	}
	return r;
}

/* Run FN inside one transaction: commit when it returns 0, else roll back. */
static int in_transaction(sqlite3 *db, int (*fn)(sqlite3 *db, void *ctx), void *ctx)
{
	int r = exec(db, "BEGIN IMMEDIATE");

	if (r < 0)
		return r;
	r = fn(db, ctx);
	if (r == 0)
		r = exec(db, "COMMIT");
	if (r < 0)
		exec(db, "ROLLBACK");
	return r;
}

struct insert_args {
	const char *name, *lower, *image;
	int64_t parent_id, now, id;
	enum snap_kind kind;
	const struct snap_labels *labels;
};

static int do_insert(sqlite3 *db, void *ctx)
{
	struct insert_args *a = ctx;
	sqlite3_stmt *stmt;
	int r;

	r = prepare(db,
		    "INSERT INTO snapshots (name, parent, kind, created, updated, lower, image)"
		    " VALUES (?, ?, ?, ?, ?, ?, ?)",
		    &stmt);
	if (r < 0)
		return r;
	sqlite3_bind_text(stmt, 1, a->name, -1, SQLITE_STATIC);
	if (a->parent_id)
		sqlite3_bind_int64(stmt, 2, a->parent_id);
	else
		sqlite3_bind_null(stmt, 2);
	sqlite3_bind_int(stmt, 3, a->kind);
	sqlite3_bind_int64(stmt, 4, a->now);
	sqlite3_bind_int64(stmt, 5, a->now);
	if (a->lower)
		sqlite3_bind_text(stmt, 6, a->lower, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, 6);
	if (a->image)
		sqlite3_bind_text(stmt, 7, a->image, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, 7);
	r = run(stmt);
	if (r < 0)
		return r;
	a->id = sqlite3_last_insert_rowid(db);
	return write_labels(db, a->id, a->labels);
}

int snap_meta_insert(sqlite3 *db, const char *name, int64_t parent_id, enum snap_kind kind,
		     const char *lower, const char *image, const struct snap_labels *labels,
		     int64_t now, int64_t *ret_id)
{
	struct insert_args a = {
		.name = name,
		.lower = lower,
		.image = image,
		.parent_id = parent_id,
		.now = now,
		.kind = kind,
		.labels = labels,
	};
	int r = in_transaction(db, do_insert, &a);

	if (r == 0)
		*ret_id = a.id;
	return r;
}

static int do_commit(sqlite3 *db, void *ctx)
{
	struct insert_args *a = ctx;
	sqlite3_stmt *stmt;
	int r;

	r = prepare(db, "UPDATE snapshots SET name = ?, kind = ?, updated = ? WHERE id = ?", &stmt);
	if (r < 0)
		return r;
	sqlite3_bind_text(stmt, 1, a->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 2, SNAP_KIND_COMMITTED);
	sqlite3_bind_int64(stmt, 3, a->now);
	sqlite3_bind_int64(stmt, 4, a->id);
	r = run(stmt);
	return r < 0 ? r : write_labels(db, a->id, a->labels);
}

int snap_meta_commit(sqlite3 *db, int64_t id, const char *name, const struct snap_labels *labels,
		     int64_t now)
{
	struct insert_args a = {.name = name, .id = id, .now = now, .labels = labels};

	return in_transaction(db, do_commit, &a);
}

static int do_set_labels(sqlite3 *db, void *ctx)
{
	struct insert_args *a = ctx;
	sqlite3_stmt *stmt;
	int r;

	r = prepare(db, "UPDATE snapshots SET updated = ? WHERE id = ?", &stmt);
	if (r < 0)
		return r;
	sqlite3_bind_int64(stmt, 1, a->now);
	sqlite3_bind_int64(stmt, 2, a->id);
	r = run(stmt);
	return r < 0 ? r : write_labels(db, a->id, a->labels);
}

int snap_meta_set_labels(sqlite3 *db, int64_t id, const struct snap_labels *labels, int64_t now)
{
	struct insert_args a = {.id = id, .now = now, .labels = labels};

	return in_transaction(db, do_set_labels, &a);
}

int snap_meta_clear_image(sqlite3 *db, int64_t id)
{
	sqlite3_stmt *stmt;
	int r;

	r = prepare(db, "UPDATE snapshots SET image = NULL WHERE id = ?", &stmt);
	if (r < 0)
		return r;
	sqlite3_bind_int64(stmt, 1, id);
	return run(stmt);
}

static int count_where(sqlite3 *db, const char *sql, int64_t id)
{
	sqlite3_stmt *stmt;
	int rc, r;

	r = prepare(db, sql, &stmt);
	if (r < 0)
		return r;
	sqlite3_bind_int64(stmt, 1, id);
	rc = sqlite3_step(stmt);
	r = rc == SQLITE_ROW ? sqlite3_column_int(stmt, 0) : index_sqlite_errno(rc);
	sqlite3_finalize(stmt);
	return r;
}

int snap_meta_delete(sqlite3 *db, int64_t id)
{
	sqlite3_stmt *stmt;
	int r;

	r = count_where(db, "SELECT count(*) FROM snapshots WHERE parent = ?", id);
	if (r != 0)
		return r < 0 ? r : -ENOTEMPTY;
	r = prepare(db, "DELETE FROM snapshots WHERE id = ?", &stmt);
	if (r < 0)
		return r;
	sqlite3_bind_int64(stmt, 1, id);
	return run(stmt);
}

int snap_meta_exists(sqlite3 *db, int64_t id)
{
	return count_where(db, "SELECT count(*) FROM snapshots WHERE id = ?", id);
}

int snap_meta_walk(sqlite3 *db, int (*fn)(const struct snap_info *info, void *ctx), void *ctx)
{
	sqlite3_stmt *stmt;
	int rc, r;

	r = prepare(db, "SELECT " ROW_COLUMNS "ORDER BY s.id", &stmt);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct snap_info info;

		r = read_row(db, stmt, NULL, &info);
		if (r < 0)
			break;
		r = fn(&info, ctx);
		snap_info_release(&info);
		if (r != 0)
			break;
	}
	if (rc != SQLITE_ROW)
		r = rc == SQLITE_DONE ? 0 : index_sqlite_errno(rc);
	sqlite3_finalize(stmt);
	return r;
}
