/*
 * Unit tests for cache/fsck: damaged blobs are found, named and
 * quarantined; healthy ones are left alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "fsck.h"
#include "testutil.h"

static char *dir;
static struct store *store;

static struct digest_list reported;

static void setup(void)
{
	dir = test_mkdtemp();
	ck_assert_int_eq(store_open(dir, &store), 0);
}

static void teardown(void)
{
	store_close(store);
	test_rmdir(dir);
	digest_list_free(&reported);
}

static void record(const struct digest *d, const char *problem, void *ctx)
{
	(void)ctx;
	ck_assert_ptr_nonnull(problem);
	ck_assert_int_eq(digest_list_append(&reported, d), 0);
}

static void flip_byte(const struct digest *d, off_t offset)
{
	char path[4096];
	unsigned char c;
	int fd;

	ck_assert_int_eq(store_blob_path(store, d, path, sizeof(path)), 0);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, offset), 1);
	c ^= 0x01;
	ck_assert_int_eq(pwrite(fd, &c, 1, offset), 1);
	close(fd);
}

START_TEST(test_clean_store)
{
	struct fsck_result res;

	test_make_image(store, "app", "1", 3, 5000, 1, NULL, NULL);
	ck_assert_int_eq(fsck_run(store, record, NULL, &res), 0);
	ck_assert_int_eq(res.checked, 5);
	ck_assert_int_eq(res.bad, 0);
	ck_assert_uint_eq(reported.len, 0);
}
END_TEST

START_TEST(test_flipped_byte_is_quarantined)
{
	struct digest layers[3];
	struct index_blob row;
	struct fsck_result res;
	char quarantined[4096];

	test_make_image(store, "app", "1", 3, 5000, 2, NULL, layers);
	flip_byte(&layers[1], 4321);
	ck_assert_int_eq(fsck_run(store, record, NULL, &res), 0);
	ck_assert_int_eq(res.bad, 1);
	ck_assert_int_eq(res.checked, 5);
	ck_assert_uint_eq(reported.len, 1);
	ck_assert(digest_equal(&reported.items[0], &layers[1]));
	/* gone from blobs/ and the index, kept in quarantine/ for a human */
	ck_assert(!store_has_blob(store, &layers[1]));
	ck_assert_int_eq(index_get_blob(store_index(store), &layers[1], &row), -ENOENT);
	snprintf(quarantined, sizeof(quarantined), "%s/quarantine/%s", dir, layers[1].hex);
	ck_assert(test_path_exists(quarantined));
	/* the others are untouched */
	ck_assert(store_has_blob(store, &layers[0]));
	ck_assert(store_has_blob(store, &layers[2]));
	/* a second run is clean */
	ck_assert_int_eq(fsck_run(store, record, NULL, &res), 0);
	ck_assert_int_eq(res.bad, 0);
	ck_assert_int_eq(res.checked, 4);
}
END_TEST

START_TEST(test_truncated_blob_is_quarantined)
{
	struct digest layers[1];
	struct fsck_result res;
	char path[4096];

	test_make_image(store, "app", "1", 1, 5000, 3, NULL, layers);
	ck_assert_int_eq(store_blob_path(store, &layers[0], path, sizeof(path)), 0);
	ck_assert_int_eq(truncate(path, 100), 0);
	ck_assert_int_eq(fsck_run(store, record, NULL, &res), 0);
	ck_assert_int_eq(res.bad, 1);
	ck_assert(!store_has_blob(store, &layers[0]));
}
END_TEST

static Suite *fsck_suite(void)
{
	Suite *s = suite_create("fsck");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_clean_store);
	tcase_add_test(tc, test_flipped_byte_is_quarantined);
	tcase_add_test(tc, test_truncated_blob_is_quarantined);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(fsck_suite());
}
