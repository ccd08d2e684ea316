/*
 * Unit tests for cache/index: schema creation and migration, the rows it
 * keeps, and (through store_open) recovery from files that went missing
 * or appeared behind its back.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <sqlite3.h>

#include "index.h"
#include "store.h"
#include "testutil.h"

static char *dir;
static char *db_path;

static void setup(void)
{
	dir = test_mkdtemp();
	ck_assert_int_ge(asprintf(&db_path, "%s/index.db", dir), 0);
}

static void teardown(void)
{
	free(db_path);
	db_path = NULL;
	test_rmdir(dir);
	dir = NULL;
}

static struct digest digest_of_string(const char *s)
{
	return test_digest_of(s, strlen(s));
}

static void sql(sqlite3 *db, const char *statement)
{
	char *err = NULL;

	ck_assert_msg(sqlite3_exec(db, statement, NULL, NULL, &err) == SQLITE_OK, "%s: %s",
		      statement, err ? err : "?");
}

START_TEST(test_create_fresh)
{
	struct index *idx;
	int version;

	ck_assert_int_eq(index_open(db_path, &idx), 0);
	ck_assert_int_eq(index_schema_version(idx, &version), 0);
	ck_assert_int_eq(version, INDEX_SCHEMA_VERSION);
	index_close(idx);
	/* opening again is a no-op */
	ck_assert_int_eq(index_open(db_path, &idx), 0);
	ck_assert_int_eq(index_schema_version(idx, &version), 0);
	ck_assert_int_eq(version, INDEX_SCHEMA_VERSION);
	index_close(idx);
	index_close(NULL);
}
END_TEST

START_TEST(test_blob_rows)
{
	struct digest a = digest_of_string("a"), b = digest_of_string("b");
	struct index_blob row;
	struct index *idx;
	int64_t count, bytes;

	ck_assert_int_eq(index_open(db_path, &idx), 0);
	ck_assert_int_eq(index_put_blob(idx, &a, 10, NULL, 100), 0);
	ck_assert_int_eq(index_put_blob(idx, &b, 20, "application/x", 200), 0);
	ck_assert_int_eq(index_get_blob(idx, &a, &row), 0);
	ck_assert_int_eq(row.size, 10);
	ck_assert_str_eq(row.media_type, "");
	ck_assert_int_eq(row.created, 100);
	ck_assert(!row.pinned);
	/* a second put fills the media type in and moves last_access forward only */
	ck_assert_int_eq(index_put_blob(idx, &a, 10, "application/y", 300), 0);
	ck_assert_int_eq(index_put_blob(idx, &a, 10, "application/z", 50), 0);
	ck_assert_int_eq(index_get_blob(idx, &a, &row), 0);
	ck_assert_str_eq(row.media_type, "application/y");
	ck_assert_int_eq(row.created, 100);
	ck_assert_int_eq(row.last_access, 300);
	ck_assert_int_eq(index_set_pinned(idx, &b, true), 0);
	ck_assert_int_eq(index_get_blob(idx, &b, &row), 0);
	ck_assert(row.pinned);
	ck_assert_int_eq(index_blob_totals(idx, &count, &bytes), 0);
	ck_assert_int_eq(count, 2);
	ck_assert_int_eq(bytes, 30);
	ck_assert_int_eq(index_remove_blob(idx, &a), 0);
	ck_assert_int_eq(index_get_blob(idx, &a, &row), -ENOENT);
	ck_assert_int_eq(index_remove_blob(idx, &a), -ENOENT);
	ck_assert_int_eq(index_touch_blob(idx, &a, 5), -ENOENT);
	index_close(idx);
}
END_TEST

START_TEST(test_an_image_is_pinned_whole)
{
	struct digest idx_m = digest_of_string("index"), m = digest_of_string("manifest"), l[2];
	struct digest other = digest_of_string("other");
	struct index_blob row;
	struct index *idx;
	int i;

	l[0] = digest_of_string("layer");
	l[1] = digest_of_string("config");
	ck_assert_int_eq(index_open(db_path, &idx), 0);
	ck_assert_int_eq(index_put_blob(idx, &idx_m, 10, NULL, 1), 0);
	ck_assert_int_eq(index_put_blob(idx, &m, 100, NULL, 1), 0);
	ck_assert_int_eq(index_put_blob(idx, &l[0], 1000, NULL, 1), 0);
	ck_assert_int_eq(index_put_blob(idx, &l[1], 10, NULL, 1), 0);
	ck_assert_int_eq(index_put_blob(idx, &other, 5, NULL, 1), 0);
	ck_assert_int_eq(index_add_edges(idx, &idx_m, &m, 1), 0);
	ck_assert_int_eq(index_add_edges(idx, &m, l, 2), 0);

	/* an index pins its image, and the image its config and layers */
	ck_assert_int_eq(index_set_image_pinned(idx, &idx_m, true), 0);
	const struct digest *pinned[] = {&idx_m, &m, &l[0], &l[1]};
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(index_get_blob(idx, pinned[i], &row), 0);
		ck_assert(row.pinned);
	}
	ck_assert_int_eq(index_get_blob(idx, &other, &row), 0);
	ck_assert(!row.pinned);
	ck_assert_int_eq(index_set_image_pinned(idx, &idx_m, false), 0);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(index_get_blob(idx, pinned[i], &row), 0);
		ck_assert(!row.pinned);
	}
	ck_assert_int_eq(index_set_image_pinned(idx, &(struct digest){0}, true), -ENOENT);
	index_close(idx);
}
END_TEST

START_TEST(test_tags_and_edges)
{
	struct digest m = digest_of_string("manifest"), l[3], other = digest_of_string("x");
	struct index_tag tag;
	struct index *idx;
	int64_t size;
	bool referenced;
	char name[300];

	l[0] = digest_of_string("layer0");
	l[1] = digest_of_string("layer1");
	l[2] = digest_of_string("config");
	ck_assert_int_eq(index_open(db_path, &idx), 0);
	ck_assert_int_eq(index_put_blob(idx, &m, 100, NULL, 1), 0);
	ck_assert_int_eq(index_put_blob(idx, &l[0], 1000, NULL, 1), 0);
	ck_assert_int_eq(index_put_blob(idx, &l[1], 2000, NULL, 1), 0);
	ck_assert_int_eq(index_put_blob(idx, &l[2], 10, NULL, 1), 0);
	ck_assert_int_eq(index_put_blob(idx, &other, 5, NULL, 1), 0);
	ck_assert_int_eq(index_add_edges(idx, &m, l, 3), 0);
	ck_assert_int_eq(index_add_edges(idx, &m, l, 3), 0); /* idempotent */
	ck_assert_int_eq(index_image_size(idx, &m, &size), 0);
	ck_assert_int_eq(size, 3110);

	ck_assert_int_eq(index_is_referenced(idx, &l[0], &referenced), 0);
	ck_assert(!referenced);
	ck_assert_int_eq(index_put_tag(idx, "docker.io", "library/debian", "12", &m, 42), 0);
	ck_assert_int_eq(index_is_referenced(idx, &l[0], &referenced), 0);
	ck_assert(referenced);
	ck_assert_int_eq(index_is_referenced(idx, &other, &referenced), 0);
	ck_assert(!referenced);

	ck_assert_int_eq(index_get_tag(idx, "docker.io", "library/debian", "12", &tag), 0);
	ck_assert(digest_equal(&tag.manifest, &m));
	ck_assert_int_eq(tag.fetched, 42);
	ck_assert_str_eq(tag.repository, "library/debian");
	ck_assert_int_eq(index_put_tag(idx, "docker.io", "library/debian", "12", &other, 43), 0);
	ck_assert_int_eq(index_get_tag(idx, "docker.io", "library/debian", "12", &tag), 0);
	ck_assert(digest_equal(&tag.manifest, &other));
	ck_assert_int_eq(index_get_tag(idx, "docker.io", "library/debian", "13", &tag), -ENOENT);

	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ck_assert_int_eq(index_put_tag(idx, "docker.io", name, "1", &m, 1), -ENAMETOOLONG);

	/* removing the manifest blob takes its tags and edges with it */
	ck_assert_int_eq(index_put_tag(idx, "docker.io", "library/debian", "12", &m, 44), 0);
	ck_assert_int_eq(index_remove_blob(idx, &m), 0);
	ck_assert_int_eq(index_get_tag(idx, "docker.io", "library/debian", "12", &tag), -ENOENT);
	ck_assert_int_eq(index_image_size(idx, &m, &size), 0);
	ck_assert_int_eq(size, 0);
	ck_assert_int_eq(index_remove_tag(idx, "docker.io", "library/debian", "12"), -ENOENT);
	index_close(idx);
}
END_TEST

START_TEST(test_links)
{
	struct digest a = digest_of_string("a"), b = digest_of_string("b");
	struct digest_list listed = {0};
	struct index *idx;
	int64_t size;

	ck_assert_int_eq(index_open(db_path, &idx), 0);
	ck_assert_int_eq(index_get_link(idx, "docker.io", "library/x", &a, &size), -ENOENT);
	ck_assert_int_eq(index_add_link(idx, "docker.io", "library/x", &a, 10), 0);
	ck_assert_int_eq(index_add_link(idx, "docker.io", "library/x", &b, 20), 0);
	ck_assert_int_eq(index_add_link(idx, "docker.io", "library/x", &a, 11), 0);
	ck_assert_int_eq(index_get_link(idx, "docker.io", "library/x", &a, &size), 0);
	ck_assert_int_eq(size, 11);
	/* another repository, or another registry, does not see it */
	ck_assert_int_eq(index_get_link(idx, "docker.io", "library/y", &a, &size), -ENOENT);
	ck_assert_int_eq(index_get_link(idx, "ghcr.io", "library/x", &a, &size), -ENOENT);
	ck_assert_int_eq(
		index_foreach_link(idx, "docker.io", "library/x", digest_list_collect, &listed), 0);
	ck_assert_uint_eq(listed.len, 2);
	digest_list_free(&listed);
	ck_assert_int_eq(index_add_link(idx, "docker.io", "library/x", &a, -1), -EINVAL);
	index_close(idx);
}
END_TEST

/* The schema as version 1 shipped it. */
static const char v1_schema[] =
	"CREATE TABLE blobs (digest TEXT PRIMARY KEY, size INTEGER NOT NULL,"
	" media_type TEXT NOT NULL DEFAULT '', created INTEGER NOT NULL,"
	" last_access INTEGER NOT NULL);"
	"CREATE TABLE tags (registry TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL,"
	" manifest TEXT NOT NULL, fetched INTEGER NOT NULL,"
	" PRIMARY KEY (registry, repository, tag));"
	"PRAGMA user_version = 1;";

struct other_writer {
	struct index *idx;
	struct digest d;
	int result;
};

static void *put_from_other_thread(void *arg)
{
	struct other_writer *o = arg;

	o->result = index_put_blob(o->idx, &o->d, 2, NULL, 100);
	return NULL;
}

/*
 * A transaction is its thread's: another thread's statement, issued while
 * it runs, neither joins it (and goes with its rollback) nor lands inside.
 */
START_TEST(test_transaction_is_its_threads)
{
	struct digest mine = digest_of_string("mine"), other = digest_of_string("other");
	struct other_writer o = {.d = other, .result = 1};
	struct index_blob row;
	struct index *idx;
	pthread_t thread;

	ck_assert_int_eq(index_open(db_path, &idx), 0);
	o.idx = idx;
	ck_assert_int_eq(index_begin(idx), 0);
	ck_assert_int_eq(index_put_blob(idx, &mine, 1, NULL, 100), 0);
	ck_assert_int_eq(pthread_create(&thread, NULL, put_from_other_thread, &o), 0);
	usleep(200 * 1000); /* time for the other thread's insert to run, if it could */
	ck_assert_int_eq(index_get_blob(idx, &other, &row), -ENOENT);
	index_rollback(idx);
	ck_assert_int_eq(pthread_join(thread, NULL), 0);
	ck_assert_int_eq(o.result, 0);
	ck_assert_int_eq(index_get_blob(idx, &mine, &row), -ENOENT);
	ck_assert_int_eq(index_get_blob(idx, &other, &row), 0);
	ck_assert_int_eq(row.size, 2);

	/* and after a commit, the connection is free again */
	ck_assert_int_eq(index_begin(idx), 0);
	ck_assert_int_eq(index_put_blob(idx, &mine, 1, NULL, 100), 0);
	ck_assert_int_eq(index_commit(idx), 0);
	o.d = digest_of_string("third");
	ck_assert_int_eq(pthread_create(&thread, NULL, put_from_other_thread, &o), 0);
	ck_assert_int_eq(pthread_join(thread, NULL), 0);
	ck_assert_int_eq(o.result, 0);
	ck_assert_int_eq(index_get_blob(idx, &mine, &row), 0);
	index_close(idx);
}
END_TEST

START_TEST(test_counted_tags)
{
	struct digest m = digest_of_string("m"), other = digest_of_string("other");
	struct index_tag tag;
	struct index *idx;
	int64_t n;

	ck_assert_int_eq(index_open(db_path, &idx), 0);
	/* level 1 may have two local tags, level 2 has its own two */
	ck_assert_int_eq(index_put_counted_tag(idx, "local", "app", "a", &m, 1, 1, 2), 0);
	ck_assert_int_eq(index_put_counted_tag(idx, "local", "app", "b", &m, 1, 1, 2), 0);
	ck_assert_int_eq(index_put_counted_tag(idx, "local", "app", "c", &m, 1, 1, 2), -EDQUOT);
	ck_assert_int_eq(index_get_tag(idx, "local", "app", "c", &tag), -ENOENT);
	ck_assert_int_eq(index_put_counted_tag(idx, "local", "app", "c", &m, 1, 2, 2), 0);
	/* tags of other registries, and uncounted ones, count for nobody */
	ck_assert_int_eq(index_put_tag(idx, "local", "app", "d", &m, 1), 0);
	ck_assert_int_eq(index_put_counted_tag(idx, "docker.io", "x", "e", &m, 1, 1, 2), 0);
	ck_assert_int_eq(index_count_tags(idx, "local", 1, &n), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(index_count_tags(idx, "local", 2, &n), 0);
	ck_assert_int_eq(n, 1);
	/* an overwrite always goes (level 2 rewrites level 1's tag), and stays level 1's */
	ck_assert_int_eq(index_put_counted_tag(idx, "local", "app", "a", &other, 5, 2, 1), 0);
	ck_assert_int_eq(index_get_tag(idx, "local", "app", "a", &tag), 0);
	ck_assert(digest_equal(&tag.manifest, &other));
	ck_assert_int_eq(index_count_tags(idx, "local", 1, &n), 0);
	ck_assert_int_eq(n, 2);
	/* a removed tag frees its place */
	ck_assert_int_eq(index_remove_tag(idx, "local", "app", "b"), 0);
	ck_assert_int_eq(index_put_counted_tag(idx, "local", "app", "f", &m, 1, 1, 2), 0);
	ck_assert_int_eq(index_put_counted_tag(idx, "local", "app", "g", &m, 1, -1, 2), -EINVAL);
	index_close(idx);
}
END_TEST

START_TEST(test_migrate_from_v1)
{
	struct digest m = digest_of_string("m"), layer = digest_of_string("l");
	char insert[512];
	struct index_blob row;
	struct index_tag tag;
	struct index *idx;
	sqlite3 *db;
	int version;
	bool referenced;

	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	sql(db, v1_schema);
	snprintf(insert, sizeof(insert),
		 "INSERT INTO blobs VALUES ('%s', 7, 'application/json', 1, 2);"
		 "INSERT INTO blobs VALUES ('%s', 9, '', 1, 3);"
		 "INSERT INTO tags VALUES ('docker.io', 'library/debian', 'old', '%s', 5);",
		 m.hex, layer.hex, m.hex);
	sql(db, insert);
	sqlite3_close(db);

	ck_assert_int_eq(index_open(db_path, &idx), 0);
	ck_assert_int_eq(index_schema_version(idx, &version), 0);
	ck_assert_int_eq(version, INDEX_SCHEMA_VERSION);
	/* the old rows are all there, with the new column's default */
	ck_assert_int_eq(index_get_blob(idx, &m, &row), 0);
	ck_assert_int_eq(row.size, 7);
	ck_assert_str_eq(row.media_type, "application/json");
	ck_assert(!row.pinned);
	ck_assert_int_eq(index_get_tag(idx, "docker.io", "library/debian", "old", &tag), 0);
	ck_assert(digest_equal(&tag.manifest, &m));
	/* and the new table works */
	ck_assert_int_eq(index_add_edges(idx, &m, &layer, 1), 0);
	ck_assert_int_eq(index_is_referenced(idx, &layer, &referenced), 0);
	ck_assert(referenced);
	index_close(idx);
}
END_TEST

START_TEST(test_newer_schema_refused)
{
	struct index *idx = NULL;
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	sql(db, "PRAGMA user_version = 99");
	sqlite3_close(db);
	ck_assert_int_eq(index_open(db_path, &idx), -EPROTONOSUPPORT);
	ck_assert_ptr_null(idx);
}
END_TEST

START_TEST(test_not_a_database)
{
	struct index *idx = NULL;
	int fd = open(db_path, O_CREAT | O_WRONLY, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "this is not sqlite, just text long enough to matter......", 56),
			 56);
	close(fd);
	ck_assert_int_eq(index_open(db_path, &idx), -EBADMSG);
}
END_TEST

START_TEST(test_recover_from_deleted_blob_file)
{
	struct digest manifest, layers[2];
	char path[4096];
	struct index_blob row;
	struct index_tag tag;
	struct store *s;

	ck_assert_int_eq(store_open(dir, &s), 0);
	manifest = test_make_image(s, "library/app", "1", 2, 1000, 7, NULL, layers);
	ck_assert_int_eq(store_blob_path(s, &layers[0], path, sizeof(path)), 0);
	store_close(s);
	ck_assert_int_eq(unlink(path), 0);

	ck_assert_int_eq(store_open(dir, &s), 0);
	ck_assert_int_eq(index_get_blob(store_index(s), &layers[0], &row), -ENOENT);
	ck_assert_int_eq(index_get_blob(store_index(s), &layers[1], &row), 0);
	/* the image still knows it needs the layer, so a pull fetches it again */
	ck_assert_int_eq(index_get_tag(store_index(s), "docker.io", "library/app", "1", &tag), 0);
	store_close(s);

	/* a missing manifest takes its tag with it */
	ck_assert_int_eq(store_open(dir, &s), 0);
	ck_assert_int_eq(store_blob_path(s, &manifest, path, sizeof(path)), 0);
	store_close(s);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(store_open(dir, &s), 0);
	ck_assert_int_eq(index_get_tag(store_index(s), "docker.io", "library/app", "1", &tag),
			 -ENOENT);
	store_close(s);
}
END_TEST

START_TEST(test_recover_stray_blob_file)
{
	const char content[] = "a blob committed just before a crash";
	struct digest d = test_digest_of(content, sizeof(content) - 1), junk_digest;
	char path[4096];
	struct index_blob row;
	struct store *s;
	int fd;

	ck_assert_int_eq(store_open(dir, &s), 0);
	ck_assert_int_eq(store_blob_path(s, &d, path, sizeof(path)), 0);
	store_close(s);
	/* the fan-out directory and the file, as a rename would leave them */
	*strrchr(path, '/') = '\0';
	ck_assert_int_eq(mkdir(path, 0755), 0);
	path[strlen(path)] = '/';
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, sizeof(content) - 1), (ssize_t)sizeof(content) - 1);
	close(fd);
	/* and a file whose name is not a digest: never indexed */
	snprintf(strrchr(path, '/') + 1, 64, "not-a-digest");
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);

	ck_assert_int_eq(store_open(dir, &s), 0);
	ck_assert_int_eq(index_get_blob(store_index(s), &d, &row), 0);
	ck_assert_int_eq(row.size, sizeof(content) - 1);
	junk_digest = digest_of_string("not-a-digest");
	ck_assert_int_eq(index_get_blob(store_index(s), &junk_digest, &row), -ENOENT);
	store_close(s);
}
END_TEST

static Suite *index_suite(void)
{
	Suite *s = suite_create("index");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_create_fresh);
	tcase_add_test(tc, test_blob_rows);
	tcase_add_test(tc, test_tags_and_edges);
	tcase_add_test(tc, test_an_image_is_pinned_whole);
	tcase_add_test(tc, test_links);
	tcase_add_test(tc, test_transaction_is_its_threads);
	tcase_add_test(tc, test_counted_tags);
	tcase_add_test(tc, test_migrate_from_v1);
	tcase_add_test(tc, test_newer_schema_refused);
	tcase_add_test(tc, test_not_a_database);
	tcase_add_test(tc, test_recover_from_deleted_blob_file);
	tcase_add_test(tc, test_recover_stray_blob_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(index_suite());
}
