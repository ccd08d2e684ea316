/*
 * Unit tests for cache/gc: LRU order, pinning, the size limit, shared
 * layers, and blobs being ingested.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "gc.h"
#include "testutil.h"

#define LAYER 10000 /* bytes per layer in these tests */

static char *dir;
static struct store *store;

static void setup(void)
{
	dir = test_mkdtemp();
	ck_assert_int_eq(store_open(dir, &store), 0);
}

static void teardown(void)
{
	store_close(store);
	test_rmdir(dir);
}

static int64_t store_bytes(void)
{
	int64_t count, bytes;

	ck_assert_int_eq(index_blob_totals(store_index(store), &count, &bytes), 0);
	return bytes;
}

static bool has_tag(const char *repository)
{
	struct index_tag tag;

	return index_get_tag(store_index(store), "docker.io", repository, "1", &tag) == 0;
}

static void used_at(const struct digest *manifest, int64_t when)
{
	ck_assert_int_eq(index_touch_blob(store_index(store), manifest, when), 0);
}

/* Three images of 2 layers each; "old" least recently used, "new" most. */
static void three_images(struct digest m[3], struct digest layers[3][2])
{
	m[0] = test_make_image(store, "old", "1", 2, LAYER, 1, NULL, layers[0]);
	m[1] = test_make_image(store, "mid", "1", 2, LAYER, 2, NULL, layers[1]);
	m[2] = test_make_image(store, "new", "1", 2, LAYER, 3, NULL, layers[2]);
	used_at(&m[0], 4000000000);
	used_at(&m[1], 4000000100);
	used_at(&m[2], 4000000200);
}

START_TEST(test_under_limit_removes_nothing)
{
	struct digest m[3], layers[3][2];
	struct gc_result res;
	int64_t before;

	three_images(m, layers);
	before = store_bytes();
	ck_assert_int_eq(gc_run(store, before, &res), 0);
	ck_assert_int_eq(res.removed_blobs, 0);
	ck_assert_int_eq(res.removed_tags, 0);
	ck_assert_int_eq(res.remaining_bytes, before);
	ck_assert(has_tag("old") && has_tag("mid") && has_tag("new"));
}
END_TEST

START_TEST(test_lru_image_goes_first)
{
	struct digest m[3], layers[3][2];
	struct gc_result res;
	int64_t before;

	three_images(m, layers);
	before = store_bytes();
	/* room for two images but not three */
	ck_assert_int_eq(gc_run(store, before - LAYER, &res), 0);
	ck_assert(!has_tag("old"));
	ck_assert(has_tag("mid") && has_tag("new"));
	ck_assert(!store_has_blob(store, &m[0]));
	ck_assert(!store_has_blob(store, &layers[0][0]));
	ck_assert(!store_has_blob(store, &layers[0][1]));
	ck_assert(store_has_blob(store, &layers[1][0]));
	ck_assert_int_eq(res.removed_tags, 1);
	/* the whole image went: 2 layers, a config and the manifest */
	ck_assert_int_eq(res.removed_blobs, 4);
	ck_assert_int_le(res.remaining_bytes, before - LAYER);
	ck_assert_int_eq(res.remaining_bytes, store_bytes());
}
END_TEST

START_TEST(test_lru_follows_access_not_age)
{
	struct digest m[3], layers[3][2];
	struct gc_result res;

	three_images(m, layers);
	/* "old" was used most recently after all */
	used_at(&m[0], 4000000300);
	ck_assert_int_eq(gc_run(store, store_bytes() - LAYER, &res), 0);
	ck_assert(has_tag("old") && has_tag("new"));
	ck_assert(!has_tag("mid"));
}
END_TEST

START_TEST(test_same_second_oldest_tag_goes_first)
{
	struct digest first, second;
	struct gc_result res;

	/* two images used in the same second: the one tagged first goes, whatever its name */
	first = test_make_image(store, "zeta", "1", 2, LAYER, 21, NULL, NULL);
	second = test_make_image(store, "alpha", "1", 2, LAYER, 22, NULL, NULL);
	used_at(&first, 4000000000);
	used_at(&second, 4000000000);
	ck_assert_int_eq(gc_run(store, store_bytes() - LAYER, &res), 0);
	ck_assert(!has_tag("zeta"));
	ck_assert(has_tag("alpha"));
}
END_TEST

START_TEST(test_pinned_image_stays)
{
	struct digest m[3], layers[3][2];
	struct gc_result res;

	three_images(m, layers);
	ck_assert_int_eq(index_set_pinned(store_index(store), &m[0], true), 0);
	ck_assert_int_eq(gc_run(store, store_bytes() - LAYER, &res), 0);
	ck_assert(has_tag("old"));
	ck_assert(!has_tag("mid"));
	ck_assert(store_has_blob(store, &layers[0][0]));
}
END_TEST

START_TEST(test_limit_met_when_everything_may_go)
{
	struct digest m[3], layers[3][2];
	struct gc_result res;

	three_images(m, layers);
	ck_assert_int_eq(gc_run(store, 0, &res), 0);
	ck_assert_int_eq(res.remaining_bytes, 0);
	ck_assert_int_eq(store_bytes(), 0);
	ck_assert_int_eq(res.removed_tags, 3);
	ck_assert_int_eq(res.removed_blobs, 12);
}
END_TEST

START_TEST(test_limit_unreachable_reports_enospc)
{
	struct digest m[3], layers[3][2];
	struct gc_result res;
	int i;

	three_images(m, layers);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(index_set_pinned(store_index(store), &m[i], true), 0);
	ck_assert_int_eq(gc_run(store, LAYER, &res), -ENOSPC);
	ck_assert_int_eq(res.removed_blobs, 0);
	ck_assert(has_tag("old") && has_tag("mid") && has_tag("new"));
}
END_TEST

START_TEST(test_shared_layer_kept_while_one_image_stays)
{
	unsigned char *shared_bytes = test_random_bytes(LAYER, 99);
	struct digest shared, a, b;
	struct gc_result res;

	ck_assert_int_eq(store_put(store, shared_bytes, LAYER, NULL, NULL, &shared), 0);
	a = test_make_image(store, "a", "1", 1, LAYER, 10, &shared, NULL);
	b = test_make_image(store, "b", "1", 1, LAYER, 11, &shared, NULL);
	used_at(&a, 4000000000);
	used_at(&b, 4000000100);
	ck_assert_int_eq(gc_run(store, store_bytes() - 1, &res), 0);
	ck_assert(!has_tag("a"));
	ck_assert(has_tag("b"));
	ck_assert(store_has_blob(store, &shared));
	ck_assert(store_has_blob(store, &b));
	free(shared_bytes);
}
END_TEST

START_TEST(test_unreferenced_blobs_go_before_images)
{
	struct digest m[3], layers[3][2], loose;
	unsigned char *bytes = test_random_bytes(3 * LAYER, 50);
	struct gc_result res;

	three_images(m, layers);
	ck_assert_int_eq(store_put(store, bytes, 3 * LAYER, NULL, NULL, &loose), 0);
	ck_assert_int_eq(gc_run(store, store_bytes() - LAYER, &res), 0);
	ck_assert(!store_has_blob(store, &loose));
	ck_assert(has_tag("old") && has_tag("mid") && has_tag("new"));
	ck_assert_int_eq(res.removed_blobs, 1);
	ck_assert_int_eq(res.removed_tags, 0);
	free(bytes);
}
END_TEST

START_TEST(test_blob_being_ingested_stays)
{
	unsigned char *bytes = test_random_bytes(LAYER, 60);
	struct digest loose;
	struct store_writer *w;
	struct gc_result res;

	ck_assert_int_eq(store_put(store, bytes, LAYER, NULL, NULL, &loose), 0);
	/* the same digest is being ingested again right now */
	ck_assert_int_eq(store_writer_new(store, &loose, &w), 0);
	ck_assert_int_eq(store_writer_write(w, bytes, LAYER / 2), 0);
	ck_assert_int_eq(gc_run(store, 0, &res), -ENOSPC);
	ck_assert(store_has_blob(store, &loose));
	ck_assert_int_eq(store_writer_write(w, bytes + LAYER / 2, LAYER - LAYER / 2), 0);
	ck_assert_int_eq(store_writer_commit(w, NULL, NULL), 0);
	/* once done, it may go */
	ck_assert_int_eq(gc_run(store, 0, &res), 0);
	ck_assert(!store_has_blob(store, &loose));
	free(bytes);
}
END_TEST

static Suite *gc_suite(void)
{
	Suite *s = suite_create("gc");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_under_limit_removes_nothing);
	tcase_add_test(tc, test_lru_image_goes_first);
	tcase_add_test(tc, test_lru_follows_access_not_age);
	tcase_add_test(tc, test_same_second_oldest_tag_goes_first);
	tcase_add_test(tc, test_pinned_image_stays);
	tcase_add_test(tc, test_limit_met_when_everything_may_go);
	tcase_add_test(tc, test_limit_unreachable_reports_enospc);
	tcase_add_test(tc, test_shared_layer_kept_while_one_image_stays);
	tcase_add_test(tc, test_unreferenced_blobs_go_before_images);
	tcase_add_test(tc, test_blob_being_ingested_stays);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(gc_suite());
}
