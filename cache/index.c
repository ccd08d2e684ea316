/*
 * index: the store's SQLite catalogue (see index.h).
 *
 * Each call prepares its statement, runs it and finalizes it; SQLite's
 * serialized mode makes one connection safe across threads. A transaction
 * holds the connection's own (recursive) mutex from BEGIN to COMMIT or
 * ROLLBACK, so the statements of other threads wait for it to end instead
 * of joining it. SQLite result codes become errno values in index_sqlite_errno()
 * and nowhere else.
 */
#include "index.h"
#include "index_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

/* Wait this long for another process's write transaction. */
#define BUSY_TIMEOUT_MS 10000

/*
 * Migrations, in order: migrations[i] takes a database from version i to
 * version i + 1. Never edit one that has shipped; append a new one.
 */
static const char *const migrations[] = {
	/* 0 -> 1: blobs and tags. */
	"CREATE TABLE blobs ("
	"  digest TEXT PRIMARY KEY,"
	"  size INTEGER NOT NULL,"
	"  media_type TEXT NOT NULL DEFAULT '',"
	"  created INTEGER NOT NULL,"
	"  last_access INTEGER NOT NULL);"
	"CREATE TABLE tags ("
	"  registry TEXT NOT NULL,"
	"  repository TEXT NOT NULL,"
	"  tag TEXT NOT NULL,"
	"  manifest TEXT NOT NULL,"
	"  fetched INTEGER NOT NULL,"
	"  PRIMARY KEY (registry, repository, tag));",
	/* 1 -> 2: pinning and manifest -> blob edges, for GC. */
	"ALTER TABLE blobs ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE edges ("
	"  parent TEXT NOT NULL,"
	"  child TEXT NOT NULL,"
	"  PRIMARY KEY (parent, child)) WITHOUT ROWID;"
	"CREATE INDEX edges_by_child ON edges(child);"
	"CREATE INDEX tags_by_manifest ON tags(manifest);",
	/* 2 -> 3: which repository holds which blob, for the mount's registry/ paths. */
	"CREATE TABLE links ("
	"  registry TEXT NOT NULL,"
	"  repository TEXT NOT NULL,"
	"  digest TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  PRIMARY KEY (registry, repository, digest)) WITHOUT ROWID;",
	/* 3 -> 4: whose budget a saved tag counts in (-1: nobody's, as upstream tags). */
	"ALTER TABLE tags ADD COLUMN level INTEGER NOT NULL DEFAULT -1;"
	"CREATE INDEX tags_by_level ON tags(registry, level);",
	/* 4 -> 5: layers unpacked under layers/ (cache/layer.h), by diff-id. */
	"CREATE TABLE layers ("
	"  diffid TEXT PRIMARY KEY,"
	"  blob TEXT NOT NULL,"
	"  size INTEGER NOT NULL DEFAULT 0,"
	"  state INTEGER NOT NULL,"
	"  error INTEGER NOT NULL DEFAULT 0,"
	"  updated INTEGER NOT NULL);"
	"CREATE INDEX layers_by_blob ON layers(blob);",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == INDEX_SCHEMA_VERSION,
	       "one migration per schema version");

/* Every blob reachable from a tag or a pinned blob. */
#define LIVE_CTE                                                                                   \
	"WITH RECURSIVE live(d) AS ("                                                              \
	"  SELECT manifest FROM tags"                                                              \
	"  UNION SELECT digest FROM blobs WHERE pinned"                                            \
	"  UNION SELECT e.child FROM edges e JOIN live ON e.parent = live.d) "

#define BLOB_COLUMNS "digest, size, media_type, created, last_access, pinned"

int index_sqlite_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	default:
		return -EIO;
	}
}

int index_prepare(struct index *idx, const char *sql, sqlite3_stmt **ret)
{
	return index_sqlite_errno(sqlite3_prepare_v2(idx->db, sql, -1, ret, NULL));
}

static int exec(struct index *idx, const char *sql)
{
	return index_sqlite_errno(sqlite3_exec(idx->db, sql, NULL, NULL, NULL));
}

/* Step a statement that returns no rows, then finalize it. */
int index_run(sqlite3_stmt *stmt)
{
	int rc = sqlite3_step(stmt);

	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : index_sqlite_errno(rc);
}

void index_bind_digest(sqlite3_stmt *stmt, int column, const struct digest *d)
{
	sqlite3_bind_text(stmt, column, d->hex, DIGEST_HEX_LEN, SQLITE_STATIC);
}

static bool name_fits(const char *s)
{
	return strlen(s) <= INDEX_NAME_MAX;
}

static void copy_text(char *dst, sqlite3_stmt *stmt, int column)
{
	const unsigned char *text = sqlite3_column_text(stmt, column);
	size_t len = text ? strlen((const char *)text) : 0;

	if (len > INDEX_NAME_MAX)
		len = INDEX_NAME_MAX;
	memcpy(dst, text ? (const char *)text : "", len);
	dst[len] = '\0';
}

/* Read a hex digest column; a malformed one means a damaged database. */
int index_column_digest(sqlite3_stmt *stmt, int column, struct digest *ret)
{
	const unsigned char *text = sqlite3_column_text(stmt, column);

	if (!text || digest_parse_hex((const char *)text, ret) < 0)
		return -EBADMSG;
	return 0;
}

static int row_to_blob(sqlite3_stmt *stmt, struct index_blob *ret)
{
	int r = index_column_digest(stmt, 0, &ret->digest);

	if (r < 0)
		return r;
	ret->size = sqlite3_column_int64(stmt, 1);
	copy_text(ret->media_type, stmt, 2);
	ret->created = sqlite3_column_int64(stmt, 3);
	ret->last_access = sqlite3_column_int64(stmt, 4);
	ret->pinned = sqlite3_column_int(stmt, 5) != 0;
	return 0;
}

static int row_to_tag(sqlite3_stmt *stmt, struct index_tag *ret)
{
	copy_text(ret->registry, stmt, 0);
	copy_text(ret->repository, stmt, 1);
	copy_text(ret->tag, stmt, 2);
	ret->fetched = sqlite3_column_int64(stmt, 4);
	return index_column_digest(stmt, 3, &ret->manifest);
}

int index_schema_version(struct index *idx, int *ret_version)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(idx, "PRAGMA user_version", &stmt);

	if (r < 0)
		return r;
	if (sqlite3_step(stmt) != SQLITE_ROW) {
		r = index_sqlite_errno(sqlite3_errcode(idx->db));
		sqlite3_finalize(stmt);
		return r < 0 ? r : -EIO;
	}
	*ret_version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return 0;
}

/* Bring the schema to INDEX_SCHEMA_VERSION, each step in its own transaction. */
static int migrate(struct index *idx)
{
	char sql[64];
	int version, r;

	r = index_schema_version(idx, &version);
	if (r < 0)
		return r;
	if (version > INDEX_SCHEMA_VERSION)
		return -EPROTONOSUPPORT;
	while (version < INDEX_SCHEMA_VERSION) {
		r = index_begin(idx);
		if (r < 0)
			return r;
		/* Another process may have migrated while we waited. */
		r = index_schema_version(idx, &version);
		if (r == 0 && version < INDEX_SCHEMA_VERSION) {
			r = exec(idx, migrations[version]);
			snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version + 1);
			if (r == 0)
				r = exec(idx, sql);
		}
		if (r < 0) {
			index_rollback(idx);
			return r;
		}
		r = index_commit(idx);
		if (r < 0)
			return r;
		r = index_schema_version(idx, &version);
		if (r < 0)
			return r;
	}
	return 0;
}

int index_open(const char *path, struct index **ret)
{
	struct index *idx = calloc(1, sizeof(*idx));
	int r;

	if (!idx)
		return -ENOMEM;
	r = index_sqlite_errno(sqlite3_open_v2(
		path, &idx->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
		NULL));
	if (r < 0)
		goto out_close;
	sqlite3_busy_timeout(idx->db, BUSY_TIMEOUT_MS);
	/*
	 * WAL lets readers run beside a writer; synchronous=NORMAL is durable
	 * enough for an index that open-time recovery can rebuild from files.
	 */
	r = exec(idx, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
		      "PRAGMA foreign_keys = OFF;");
	if (r < 0)
		goto out_close;
	r = migrate(idx);
	if (r < 0)
		goto out_close;
	*ret = idx;
	return 0;
out_close:
	index_close(idx);
	return r;
}

void index_close(struct index *idx)
{
	if (!idx)
		return;
	sqlite3_close(idx->db);
	free(idx);
}

int index_begin(struct index *idx)
{
	int r;

	sqlite3_mutex_enter(sqlite3_db_mutex(idx->db));
	r = exec(idx, "BEGIN IMMEDIATE");
	if (r < 0)
		sqlite3_mutex_leave(sqlite3_db_mutex(idx->db));
	return r;
}

int index_commit(struct index *idx)
{
	int r = exec(idx, "COMMIT");

	if (r < 0)
		sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_mutex_leave(sqlite3_db_mutex(idx->db));
	return r;
}

void index_rollback(struct index *idx)
{
	sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_mutex_leave(sqlite3_db_mutex(idx->db));
}

int index_put_blob(struct index *idx, const struct digest *d, int64_t size, const char *media_type,
		   int64_t now)
{
	sqlite3_stmt *stmt;
	int r;

	if (!media_type)
		media_type = "";
	if (!name_fits(media_type) || size < 0)
		return -EINVAL;
	r = index_prepare(idx,
			  "INSERT INTO blobs (digest, size, media_type, created, last_access)"
			  " VALUES (?1, ?2, ?3, ?4, ?4)"
			  " ON CONFLICT (digest) DO UPDATE SET"
			  "  last_access = max(last_access, excluded.last_access),"
			  "  size = excluded.size,"
			  "  media_type = CASE WHEN media_type = '' THEN excluded.media_type"
			  "               ELSE media_type END",
			  &stmt);
	if (r < 0)
		return r;
	index_bind_digest(stmt, 1, d);
	sqlite3_bind_int64(stmt, 2, size);
	sqlite3_bind_text(stmt, 3, media_type, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, now);
	return index_run(stmt);
}

int index_get_blob(struct index *idx, const struct digest *d, struct index_blob *ret)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(idx, "SELECT " BLOB_COLUMNS " FROM blobs WHERE digest = ?1", &stmt);

	if (r < 0)
		return r;
	index_bind_digest(stmt, 1, d);
	r = sqlite3_step(stmt);
	if (r == SQLITE_ROW)
		r = row_to_blob(stmt, ret);
	else if (r == SQLITE_DONE)
		r = -ENOENT;
	else
		r = index_sqlite_errno(r);
	sqlite3_finalize(stmt);
	return r;
}

/* Run an UPDATE or DELETE on one blob; -ENOENT when no row matched. */
static int change_blob(struct index *idx, const char *sql, const struct digest *d, int64_t value)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(idx, sql, &stmt);

	if (r < 0)
		return r;
	index_bind_digest(stmt, 1, d);
	sqlite3_bind_int64(stmt, 2, value);
	r = index_run(stmt);
	if (r == 0 && sqlite3_changes(idx->db) == 0)
		r = -ENOENT;
	return r;
}

int index_touch_blob(struct index *idx, const struct digest *d, int64_t now)
{
	return change_blob(idx,
			   "UPDATE blobs SET last_access = max(last_access, ?2) WHERE digest = ?1",
			   d, now);
}

int index_set_pinned(struct index *idx, const struct digest *d, bool pinned)
{
	return change_blob(idx, "UPDATE blobs SET pinned = ?2 WHERE digest = ?1", d, pinned);
}

int index_set_image_pinned(struct index *idx, const struct digest *manifest, bool pinned)
{
	return change_blob(idx,
			   "WITH RECURSIVE needs(d) AS (SELECT ?1"
			   "  UNION SELECT e.child FROM edges e JOIN needs ON e.parent = needs.d)"
			   " UPDATE blobs SET pinned = ?2 WHERE digest IN (SELECT d FROM needs)",
			   manifest, pinned);
}

int index_remove_blob(struct index *idx, const struct digest *d)
{
	static const char *const statements[] = {
		"DELETE FROM tags WHERE manifest = ?1",
		"DELETE FROM edges WHERE parent = ?1",
		"DELETE FROM blobs WHERE digest = ?1",
	};
	size_t i;
	int r = index_begin(idx);

	if (r < 0)
		return r;
	for (i = 0; i < sizeof(statements) / sizeof(statements[0]); i++) {
		r = change_blob(idx, statements[i], d, 0);
		if (r < 0 && r != -ENOENT)
			goto out_rollback;
	}
	/* r is the result of deleting the blob row itself. */
	if (r == -ENOENT)
		goto out_rollback;
	return index_commit(idx);
out_rollback:
	index_rollback(idx);
	return r;
}

int index_walk(sqlite3_stmt *stmt, index_row_fn row, void *ctx)
{
	int rc, r = 0;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && (r = row(stmt, ctx)) == 0)
		;
	if (r == 0 && rc != SQLITE_DONE)
		r = index_sqlite_errno(rc);
	sqlite3_finalize(stmt);
	return r;
}

struct blob_walk {
	index_blob_fn fn;
	void *ctx;
};

static int blob_row(sqlite3_stmt *stmt, void *ctx)
{
	struct blob_walk *w = ctx;
	struct index_blob blob;
	int r = row_to_blob(stmt, &blob);

	return r < 0 ? r : w->fn(&blob, w->ctx);
}

/* Walk the rows of a prepared SELECT of BLOB_COLUMNS; finalizes stmt. */
static int walk_blobs(sqlite3_stmt *stmt, index_blob_fn fn, void *ctx)
{
	struct blob_walk w = {fn, ctx};

	return index_walk(stmt, blob_row, &w);
}

int index_foreach_blob(struct index *idx, index_blob_fn fn, void *ctx)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(
		idx, "SELECT " BLOB_COLUMNS " FROM blobs ORDER BY last_access, digest", &stmt);

	return r < 0 ? r : walk_blobs(stmt, fn, ctx);
}

struct digest_walk {
	index_digest_fn fn;
	void *ctx;
};

static int digest_row(sqlite3_stmt *stmt, void *ctx)
{
	struct digest_walk *w = ctx;
	struct digest d;
	int r = index_column_digest(stmt, 0, &d);

	return r < 0 ? r : w->fn(&d, w->ctx);
}

/* Walk the digests in column 0 of a prepared SELECT; finalizes stmt. */
static int walk_digests(sqlite3_stmt *stmt, index_digest_fn fn, void *ctx)
{
	struct digest_walk w = {fn, ctx};

	return index_walk(stmt, digest_row, &w);
}

int index_foreach_digest(struct index *idx, index_digest_fn fn, void *ctx)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(idx, "SELECT digest FROM blobs ORDER BY digest", &stmt);

	return r < 0 ? r : walk_digests(stmt, fn, ctx);
}

int index_foreach_unreferenced(struct index *idx, index_blob_fn fn, void *ctx)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(idx,
			      LIVE_CTE "SELECT " BLOB_COLUMNS " FROM blobs"
				       " WHERE digest NOT IN (SELECT d FROM live)"
				       " ORDER BY last_access, digest",
			      &stmt);

	return r < 0 ? r : walk_blobs(stmt, fn, ctx);
}

/* Run a SELECT that yields one row of one or two integers. */
int index_select_integers(sqlite3_stmt *stmt, int64_t *ret_a, int64_t *ret_b)
{
	int rc = sqlite3_step(stmt);
	int r = 0;

	if (rc == SQLITE_ROW) {
		*ret_a = sqlite3_column_int64(stmt, 0);
		if (ret_b)
			*ret_b = sqlite3_column_int64(stmt, 1);
	} else {
		r = rc == SQLITE_DONE ? -ENOENT : index_sqlite_errno(rc);
	}
	sqlite3_finalize(stmt);
	return r;
}

int index_is_referenced(struct index *idx, const struct digest *d, bool *ret)
{
	sqlite3_stmt *stmt;
	int64_t found = 0;
	int r = index_prepare(idx, LIVE_CTE "SELECT EXISTS (SELECT 1 FROM live WHERE d = ?1)",
			      &stmt);

	if (r < 0)
		return r;
	index_bind_digest(stmt, 1, d);
	r = index_select_integers(stmt, &found, NULL);
	if (r == 0)
		*ret = found != 0;
	return r;
}

int index_image_size(struct index *idx, const struct digest *manifest, int64_t *ret_bytes)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(
		idx,
		"WITH RECURSIVE needs(d) AS (SELECT ?1"
		"  UNION SELECT e.child FROM edges e JOIN needs ON e.parent = needs.d)"
		" SELECT coalesce(sum(b.size), 0) FROM blobs b JOIN needs ON b.digest = needs.d",
		&stmt);

	if (r < 0)
		return r;
	index_bind_digest(stmt, 1, manifest);
	return index_select_integers(stmt, ret_bytes, NULL);
}

int index_blob_totals(struct index *idx, int64_t *ret_count, int64_t *ret_bytes)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(idx, "SELECT count(*), coalesce(sum(size), 0) FROM blobs", &stmt);

	return r < 0 ? r : index_select_integers(stmt, ret_count, ret_bytes);
}

static int bind_tag_key(sqlite3_stmt *stmt, const char *registry, const char *repository,
			const char *tag)
{
	if (!name_fits(registry) || !name_fits(repository) || !name_fits(tag))
		return -ENAMETOOLONG;
	sqlite3_bind_text(stmt, 1, registry, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, repository, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, tag, -1, SQLITE_STATIC);
	return 0;
}

/* Prepare a statement keyed by ?1 registry, ?2 repository, ?3 tag. */
static int prepare_keyed(struct index *idx, const char *sql, const char *registry,
			 const char *repository, const char *tag, sqlite3_stmt **ret)
{
	int r = index_prepare(idx, sql, ret);

	if (r < 0)
		return r;
	r = bind_tag_key(*ret, registry, repository, tag);
	if (r < 0)
		sqlite3_finalize(*ret);
	return r;
}

/*
 * Insert or update a tag, counted for level (-1: nobody's); a new tag is
 * refused with -EDQUOT once level already has max_tags in registry.
 */
static int put_tag(struct index *idx, const char *registry, const char *repository, const char *tag,
		   const struct digest *manifest, int64_t fetched, int level, int64_t max_tags)
{
	sqlite3_stmt *stmt;
	int r = prepare_keyed(
		idx,
		"INSERT INTO tags (registry, repository, tag, manifest, fetched, level)"
		" SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE"
		"  (SELECT count(*) FROM tags WHERE registry = ?1 AND level = ?6) < ?7"
		"  OR EXISTS (SELECT 1 FROM tags WHERE registry = ?1 AND repository = ?2"
		"             AND tag = ?3)"
		" ON CONFLICT (registry, repository, tag) DO UPDATE SET"
		"  manifest = excluded.manifest, fetched = excluded.fetched",
		registry, repository, tag, &stmt);

	if (r < 0)
		return r;
	index_bind_digest(stmt, 4, manifest);
	sqlite3_bind_int64(stmt, 5, fetched);
	sqlite3_bind_int(stmt, 6, level);
	sqlite3_bind_int64(stmt, 7, max_tags);
	r = index_change(idx, stmt);
	return r == -ENOENT ? -EDQUOT : r;
}

int index_put_tag(struct index *idx, const char *registry, const char *repository, const char *tag,
		  const struct digest *manifest, int64_t fetched)
{
	return put_tag(idx, registry, repository, tag, manifest, fetched, -1, INT64_MAX);
}

int index_put_counted_tag(struct index *idx, const char *registry, const char *repository,
			  const char *tag, const struct digest *manifest, int64_t fetched,
			  int level, int64_t max_tags)
{
	if (level < 0)
		return -EINVAL;
	return put_tag(idx, registry, repository, tag, manifest, fetched, level, max_tags);
}

int index_count_tags(struct index *idx, const char *registry, int level, int64_t *ret_count)
{
	sqlite3_stmt *stmt;
	int r = prepare_keyed(idx, "SELECT count(*) FROM tags WHERE registry = ?1 AND level = ?4",
			      registry, "", "", &stmt);

	if (r < 0)
		return r;
	sqlite3_bind_int(stmt, 4, level);
	return index_select_integers(stmt, ret_count, NULL);
}

int index_get_tag(struct index *idx, const char *registry, const char *repository, const char *tag,
		  struct index_tag *ret)
{
	sqlite3_stmt *stmt;
	int r = prepare_keyed(idx,
			      "SELECT registry, repository, tag, manifest, fetched FROM tags"
			      " WHERE registry = ?1 AND repository = ?2 AND tag = ?3",
			      registry, repository, tag, &stmt);

	if (r < 0)
		return r;
	r = sqlite3_step(stmt);
	if (r == SQLITE_ROW)
		r = row_to_tag(stmt, ret);
	else
		r = r == SQLITE_DONE ? -ENOENT : index_sqlite_errno(r);
	sqlite3_finalize(stmt);
	return r;
}

/* Run a keyed UPDATE or DELETE; -ENOENT when no row matched. */
int index_change(struct index *idx, sqlite3_stmt *stmt)
{
	int r = index_run(stmt);

	if (r == 0 && sqlite3_changes(idx->db) == 0)
		r = -ENOENT;
	return r;
}

int index_remove_tag(struct index *idx, const char *registry, const char *repository,
		     const char *tag)
{
	sqlite3_stmt *stmt;
	int r = prepare_keyed(
		idx, "DELETE FROM tags WHERE registry = ?1 AND repository = ?2 AND tag = ?3",
		registry, repository, tag, &stmt);

	return r < 0 ? r : index_change(idx, stmt);
}

int index_touch_tag(struct index *idx, const char *registry, const char *repository,
		    const char *tag, int64_t fetched)
{
	sqlite3_stmt *stmt;
	int r = prepare_keyed(idx,
			      "UPDATE tags SET fetched = ?4 WHERE registry = ?1 AND repository = ?2"
			      " AND tag = ?3",
			      registry, repository, tag, &stmt);

	if (r < 0)
		return r;
	sqlite3_bind_int64(stmt, 4, fetched);
	return index_change(idx, stmt);
}

int index_foreach_tag(struct index *idx, index_tag_fn fn, void *ctx)
{
	struct index_tag tag;
	sqlite3_stmt *stmt;
	int rc, r = index_prepare(idx,
				  "SELECT t.registry, t.repository, t.tag, t.manifest, t.fetched"
				  " FROM tags t LEFT JOIN blobs b ON b.digest = t.manifest"
				  " ORDER BY coalesce(b.last_access, 0), t.rowid",
				  &stmt);

	if (r < 0)
		return r;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		r = row_to_tag(stmt, &tag);
		if (r == 0)
			r = fn(&tag, ctx);
		if (r != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = index_sqlite_errno(rc);
	sqlite3_finalize(stmt);
	return r;
}

/* Links are keyed like tags, with an empty tag (?3). */
int index_add_link(struct index *idx, const char *registry, const char *repository,
		   const struct digest *d, int64_t size)
{
	sqlite3_stmt *stmt;
	int r;

	if (size < 0)
		return -EINVAL;
	r = prepare_keyed(
		idx,
		"INSERT INTO links (registry, repository, digest, size)"
		" SELECT ?1, ?2, ?4, ?5 WHERE ?3 = ''"
		" ON CONFLICT (registry, repository, digest) DO UPDATE SET size = excluded.size",
		registry, repository, "", &stmt);
	if (r < 0)
		return r;
	index_bind_digest(stmt, 4, d);
	sqlite3_bind_int64(stmt, 5, size);
	return index_run(stmt);
}

int index_get_link(struct index *idx, const char *registry, const char *repository,
		   const struct digest *d, int64_t *ret_size)
{
	sqlite3_stmt *stmt;
	int r = prepare_keyed(idx,
			      "SELECT size FROM links WHERE registry = ?1 AND repository = ?2"
			      " AND digest = ?4 AND ?3 = ''",
			      registry, repository, "", &stmt);

	if (r < 0)
		return r;
	index_bind_digest(stmt, 4, d);
	return index_select_integers(stmt, ret_size, NULL);
}

int index_foreach_link(struct index *idx, const char *registry, const char *repository,
		       index_digest_fn fn, void *ctx)
{
	sqlite3_stmt *stmt;
	int r = prepare_keyed(idx,
			      "SELECT digest FROM links WHERE registry = ?1 AND repository = ?2"
			      " AND ?3 = '' ORDER BY digest",
			      registry, repository, "", &stmt);

	return r < 0 ? r : walk_digests(stmt, fn, ctx);
}

int index_add_edges(struct index *idx, const struct digest *parent, const struct digest *children,
		    size_t n_children)
{
	sqlite3_stmt *stmt;
	size_t i;
	int r = index_prepare(idx, "INSERT OR IGNORE INTO edges (parent, child) VALUES (?1, ?2)",
			      &stmt);

	if (r < 0)
		return r;
	index_bind_digest(stmt, 1, parent);
	for (i = 0; i < n_children && r == 0; i++) {
		index_bind_digest(stmt, 2, &children[i]);
		r = sqlite3_step(stmt) == SQLITE_DONE
			    ? 0
			    : index_sqlite_errno(sqlite3_errcode(idx->db));
		sqlite3_reset(stmt);
	}
	sqlite3_finalize(stmt);
	return r;
}

int index_foreach_parent(struct index *idx, const struct digest *child, index_digest_fn fn,
			 void *ctx)
{
	sqlite3_stmt *stmt;
	int r = index_prepare(idx,
			      child ? "SELECT parent FROM edges WHERE child = ?1 ORDER BY parent"
				    : "SELECT DISTINCT parent FROM edges ORDER BY parent",
			      &stmt);

	if (r < 0)
		return r;
	if (child)
		index_bind_digest(stmt, 1, child);
	return walk_digests(stmt, fn, ctx);
}
