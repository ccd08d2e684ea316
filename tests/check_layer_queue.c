/*
 * Unit tests for cache/layer_queue and the layers in the index, GC and
 * fsck: an image of real tar layers put into a store is unpacked by the
 * worker whatever order its blobs arrive in, a restart resumes, a bad
 * diff-id fails for good, GC counts and removes trees with their blobs,
 * fsck repairs what disagrees with the index.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "fsck.h"
#include "gc.h"
#include "layer_image.h"
#include "layer_queue.h"
#include "manifest.h"
#include "testutil.h"

#define N_LAYERS 2
#define BUF_MAX	 (1 << 20)

static char *dir;
static struct store *store;

/* An image of N_LAYERS gzipped tar layers, each one file. */
struct image {
	unsigned char *blobs[N_LAYERS];
	size_t blob_len[N_LAYERS];
	struct digest blob[N_LAYERS], diffid[N_LAYERS];
	size_t tar_len[N_LAYERS];
	char config[1024], manifest[2048];
	struct digest config_digest, manifest_digest;
};

static struct image img;

/* A tar of one file, file<i>, holding "layer <i>". */
static unsigned char *make_tar(int i, size_t *ret_len)
{
	unsigned char *tar = malloc(BUF_MAX);
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	char name[32], data[32];
	size_t used = 0;

	snprintf(name, sizeof(name), "file%d", i);
	snprintf(data, sizeof(data), "layer %d\n", i);
	archive_write_set_format_pax_restricted(a);
	ck_assert_int_eq(archive_write_open_memory(a, tar, BUF_MAX, &used), ARCHIVE_OK);
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)strlen(data));
	ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_data(a, data, strlen(data)), (la_ssize_t)strlen(data));
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	archive_entry_free(e);
	*ret_len = used;
	return tar;
}

static unsigned char *make_layer(int i, size_t *ret_len, size_t *ret_tar_len,
				 struct digest *ret_diffid)
{
	size_t used;
	unsigned char *tar = make_tar(i, &used), *z;

	*ret_diffid = test_digest_of(tar, used);
	*ret_tar_len = used;
	z = test_gzip(tar, used, ret_len);
	free(tar);
	return z;
}

/*
 * A gzip bomb: layer i's tar, then BOMB_MIB MiB of zeros after its end (a
 * concatenation of gzip members, each 1 MiB of zeros), about 1 KiB each.
 * Unpacking it means decompressing all of it (what follows the tar counts
 * for the diff-id), so it runs for seconds while writing one small file.
 */
#define BOMB_MIB 16384
static void make_bomb(int i)
{
	size_t tar_len, head_len, zeros_len, k;
	unsigned char *tar = make_tar(i, &tar_len), *head, *zeros, *bomb;
	void *mib = calloc(1, 1 << 20);

	head = test_gzip(tar, tar_len, &head_len);
	zeros = test_gzip(mib, 1 << 20, &zeros_len);
	bomb = malloc(head_len + BOMB_MIB * zeros_len);
	memcpy(bomb, head, head_len);
	for (k = 0; k < BOMB_MIB; k++)
		memcpy(bomb + head_len + k * zeros_len, zeros, zeros_len);
	free(img.blobs[i]);
	img.blobs[i] = bomb;
	img.blob_len[i] = head_len + BOMB_MIB * zeros_len;
	img.blob[i] = test_digest_of(bomb, img.blob_len[i]);
	img.diffid[i] = test_digest_of(tar, tar_len); /* not the stream's: it never gets there */
	img.tar_len[i] = tar_len + ((size_t)BOMB_MIB << 20);
	free(mib);
	free(zeros);
	free(head);
	free(tar);
}

static void make_layers(void)
{
	for (int i = 0; i < N_LAYERS; i++) {
		img.blobs[i] = make_layer(i, &img.blob_len[i], &img.tar_len[i], &img.diffid[i]);
		img.blob[i] = test_digest_of(img.blobs[i], img.blob_len[i]);
	}
}

/* The config and manifest of the layers; bad_diffid puts a wrong diff-id in the config. */
static void make_documents(bool bad_diffid)
{
	char d[N_LAYERS][DIGEST_STRING_SIZE], c[DIGEST_STRING_SIZE], wrong[DIGEST_STRING_SIZE];

	digest_format(&img.diffid[0], d[0]);
	digest_format(&img.diffid[1], d[1]);
	digest_format(&img.blob[1], wrong);
	snprintf(img.config, sizeof(img.config),
		 "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
		 "\"diff_ids\":[\"%s\",\"%s\"]}}",
		 d[0], bad_diffid ? wrong : d[1]);
	img.config_digest = test_digest_of(img.config, strlen(img.config));
	digest_format(&img.config_digest, c);
	digest_format(&img.blob[0], d[0]);
	digest_format(&img.blob[1], d[1]);
	snprintf(img.manifest, sizeof(img.manifest),
		 "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_MEDIA_DOCKER_MANIFEST "\","
		 "\"config\":{\"mediaType\":\"" MANIFEST_MEDIA_DOCKER_CONFIG
		 "\",\"size\":%zu,\"digest\":\"%s\"},"
		 "\"layers\":[{\"mediaType\":\"" MANIFEST_MEDIA_DOCKER_LAYER
		 "\",\"size\":%zu,\"digest\":\"%s\"},"
		 "{\"mediaType\":\"" MANIFEST_MEDIA_DOCKER_LAYER
		 "\",\"size\":%zu,\"digest\":\"%s\"}]}",
		 strlen(img.config), c, img.blob_len[0], d[0], img.blob_len[1], d[1]);
	img.manifest_digest = test_digest_of(img.manifest, strlen(img.manifest));
}

/* The image's layers and documents; bad_diffid puts a wrong diff-id in the config. */
static void make_image(bool bad_diffid)
{
	make_layers();
	make_documents(bad_diffid);
}

static void put_manifest(void)
{
	struct digest children[N_LAYERS + 1] = {img.config_digest, img.blob[0], img.blob[1]};

	ck_assert_int_eq(store_put(store, img.manifest, strlen(img.manifest), NULL,
				   MANIFEST_MEDIA_DOCKER_MANIFEST, NULL),
			 0);
	ck_assert_int_eq(index_add_edges(store_index(store), &img.manifest_digest, children, 3), 0);
	ck_assert_int_eq(index_put_tag(store_index(store), "docker.io", "library/t", "latest",
				       &img.manifest_digest, 1),
			 0);
}

static void put_blobs(void)
{
	int i;

	ck_assert_int_eq(store_put(store, img.config, strlen(img.config), NULL, NULL, NULL), 0);
	for (i = 0; i < N_LAYERS; i++)
		ck_assert_int_eq(store_put(store, img.blobs[i], img.blob_len[i], NULL, NULL, NULL),
				 0);
}

static void setup(void)
{
	dir = test_mkdtemp();
	ck_assert_int_eq(store_open(dir, &store), 0);
	memset(&img, 0, sizeof(img));
}

static void teardown(void)
{
	for (int i = 0; i < N_LAYERS; i++)
		free(img.blobs[i]);
	store_close(store);
	test_rmdir(dir);
}

/* A worker with these limits (NULL: the defaults) and room for capacity events. */
static struct layer_queue *start_queue_with(const struct layer_limits *limits, size_t capacity)
{
	struct layer_queue *q;

	ck_assert_int_eq(layer_queue_new(store, limits, capacity, &q), 0);
	store_set_commit_hook(store, layer_queue_commit_hook, q);
	return q;
}

static struct layer_queue *start_queue(void)
{
	return start_queue_with(NULL, 16);
}

/* A worker whose trees together may hold max_total bytes. */
static struct layer_queue *start_capped_queue(uint64_t max_total)
{
	struct layer_limits limits;

	layer_limits_default(&limits);
	limits.max_total_bytes = max_total;
	return start_queue_with(&limits, 16);
}

static void assert_row(int i, enum index_layer_state state, int error, int64_t size)
{
	struct index_layer row;

	ck_assert_int_eq(index_get_layer(store_index(store), &img.diffid[i], &row), 0);
	ck_assert_int_eq(row.state, state);
	ck_assert_int_eq(row.error, error);
	ck_assert_int_eq(row.size, size);
}

static void assert_tmp_empty(void)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/layers/tmp", dir);
	ck_assert_int_eq(test_count_entries(path), 0);
}

/* Let the worker finish, then rescan the store, and let it finish that too. */
static void drain_rescan_drain(struct layer_queue *q)
{
	layer_queue_drain(q);
	layer_queue_rescan(q);
	layer_queue_drain(q);
}

static void stop_queue(struct layer_queue *q)
{
	store_set_commit_hook(store, NULL, NULL);
	layer_queue_free(q);
}

static void assert_unpacked(void)
{
	struct index_layer row;
	char path[4096];
	int i;

	for (i = 0; i < N_LAYERS; i++) {
		ck_assert(layer_present(dir, &img.diffid[i]));
		ck_assert_int_eq(index_get_layer(store_index(store), &img.diffid[i], &row), 0);
		ck_assert_int_eq(row.state, INDEX_LAYER_UNPACKED);
		ck_assert_int_eq(row.size, (int64_t)img.tar_len[i]);
		ck_assert(digest_equal(&row.blob, &img.blob[i]));
		ck_assert_int_eq(layer_path(dir, &img.diffid[i], path, sizeof(path)), 0);
		snprintf(path + strlen(path), sizeof(path) - strlen(path), "/file%d", i);
		ck_assert(test_path_exists(path));
	}
}

/* Every tree has its EROFS image (when there is room for it under a cap). */
static void assert_images(void)
{
	int i;

	for (i = 0; i < N_LAYERS; i++)
		ck_assert(layer_image_present(dir, &img.diffid[i]));
}

START_TEST(test_pull_order_manifest_first)
{
	struct layer_queue *q = start_queue();
	struct layer_queue_stats st;

	make_image(false);
	put_manifest();
	put_blobs();
	layer_queue_drain(q);
	assert_unpacked();
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.unpacked, 2);
	ck_assert_int_eq(st.failed, 0);
	ck_assert_int_eq(st.pending, 0);
	stop_queue(q);
}
END_TEST

START_TEST(test_push_order_manifest_last)
{
	struct layer_queue *q = start_queue();

	make_image(false);
	put_blobs();
	layer_queue_drain(q);
	ck_assert(!layer_present(dir, &img.diffid[0])); /* no image names them yet */
	put_manifest();
	layer_queue_drain(q);
	assert_unpacked();
	stop_queue(q);
}
END_TEST

START_TEST(test_start_rescans_and_resumes)
{
	struct index_layer row = {.state = INDEX_LAYER_QUEUED};
	struct layer_queue *q;
	struct layer_queue_stats st;
	char stray[4096];

	make_image(false);
	put_manifest(); /* no queue yet: nothing unpacks */
	put_blobs();
	/* a crash mid-unpack: a QUEUED row and a temp dir */
	row.diffid = img.diffid[1];
	row.blob = img.blob[1];
	ck_assert_int_eq(index_put_layer(store_index(store), &row), 0);
	snprintf(stray, sizeof(stray), "%s/layers", dir);
	ck_assert_int_eq(mkdir(stray, 0700), 0);
	snprintf(stray, sizeof(stray), "%s/layers/tmp", dir);
	ck_assert_int_eq(mkdir(stray, 0700), 0);
	snprintf(stray, sizeof(stray), "%s/layers/tmp/%s.abcdef", dir, img.diffid[1].hex);
	ck_assert_int_eq(mkdir(stray, 0700), 0);
	q = start_queue();
	layer_queue_drain(q);
	assert_unpacked();
	ck_assert(!test_path_exists(stray));
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.unpacked, 2);
	stop_queue(q);
	/* and once more: nothing to do */
	q = start_queue();
	layer_queue_drain(q);
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.unpacked, 0);
	stop_queue(q);
}
END_TEST

START_TEST(test_wrong_diffid_fails_for_good)
{
	struct index_layer row;
	struct layer_queue *q = start_queue();
	struct layer_queue_stats st;

	make_image(true);
	put_manifest();
	put_blobs();
	layer_queue_drain(q);
	ck_assert(layer_present(dir, &img.diffid[0]));
	ck_assert_int_eq(index_get_layer(store_index(store), &img.blob[1], &row), 0);
	ck_assert_int_eq(row.state, INDEX_LAYER_FAILED);
	ck_assert_int_eq(row.error, -EBADMSG);
	ck_assert(!layer_present(dir, &img.blob[1]));
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.failed, 1);
	stop_queue(q);
	q = start_queue(); /* not tried again */
	layer_queue_drain(q);
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.failed, 0);
	ck_assert_int_eq(st.unpacked, 0);
	stop_queue(q);
}
END_TEST

static void unpack_image(void)
{
	struct layer_queue *q = start_queue();

	make_image(false);
	put_manifest();
	put_blobs();
	layer_queue_drain(q);
	stop_queue(q);
	assert_unpacked();
	assert_images();
}

START_TEST(test_trees_come_before_images)
{
	char script[4096], seen[4096], text[8192], line[4096];
	int trees = 0;
	FILE *f;

	/* the real mkfs.erofs, after noting how many trees are there when it starts */
	snprintf(seen, sizeof(seen), "%s/seen", dir);
	snprintf(script, sizeof(script), "%s/mkfs", dir);
	snprintf(text, sizeof(text),
		 "#!/bin/sh\nls -d \"$(dirname \"$4\")\"/sha256:* | grep -vc erofs >>'%s'\n"
		 "exec mkfs.erofs \"$@\"\n",
		 seen);
	f = fopen(script, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(chmod(script, 0755), 0);
	setenv(LAYER_IMAGE_MKFS_ENV, script, 1);
	unpack_image(); /* every tree and its image */
	unsetenv(LAYER_IMAGE_MKFS_ENV);
	/* both trees were there when the first image was built */
	f = fopen(seen, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	fclose(f);
	trees = (int)strtol(line, NULL, 10);
	ck_assert_int_eq(trees, N_LAYERS);
}
END_TEST

START_TEST(test_a_tree_without_an_image_gets_one_at_the_next_start)
{
	struct layer_queue_stats st;
	struct layer_queue *q;
	char path[4096];

	snprintf(path, sizeof(path), "%s/no-mkfs.erofs", dir);
	setenv(LAYER_IMAGE_MKFS_ENV, path, 1);
	q = start_queue();
	make_image(false);
	put_manifest();
	put_blobs();
	drain_rescan_drain(q);
	layer_queue_get_stats(q, &st);
	stop_queue(q);
	ck_assert_int_eq(st.unpacked, N_LAYERS);
	ck_assert_int_eq(st.failed, 0);
	/* without mkfs.erofs: one failure, then no more tries, the trees serve alone */
	ck_assert_int_eq(st.images_failed, 1);
	ck_assert(!layer_image_present(dir, &img.diffid[0]));
	ck_assert(!layer_image_present(dir, &img.diffid[1]));
	unsetenv(LAYER_IMAGE_MKFS_ENV);
	q = start_queue();
	layer_queue_drain(q);
	layer_queue_get_stats(q, &st);
	stop_queue(q);
	ck_assert_int_eq(st.unpacked, 0);
	ck_assert_int_eq(st.images_failed, 0);
	assert_unpacked();
	assert_images();
	assert_tmp_empty();
}
END_TEST

static _Atomic int images_handed;

static void count_handed(const struct digest *diffid, const struct layer_limits *limits, void *ctx)
{
	(void)limits;
	ck_assert(layer_image_present(ctx, diffid));
	images_handed++;
}

/* Each start hands every image to the hook once: those it built, and those it found. */
START_TEST(test_each_image_is_handed_to_the_hook_once_per_start)
{
	struct layer_queue *q = start_queue();

	images_handed = 0;
	layer_queue_set_image_hook(q, count_handed, dir);
	make_image(false);
	put_manifest();
	put_blobs();
	drain_rescan_drain(q);
	stop_queue(q);
	assert_images();
	ck_assert_int_eq(images_handed, N_LAYERS); /* built, then found by the rescan: once */
	images_handed = 0;
	q = start_queue();
	layer_queue_set_image_hook(q, count_handed, dir);
	drain_rescan_drain(q);
	stop_queue(q);
	ck_assert_int_eq(images_handed, N_LAYERS); /* found at the start, and by the rescan: once */
}
END_TEST

START_TEST(test_gc_removes_layers_with_their_blobs)
{
	struct gc_result res;
	int64_t count, blob_bytes, layer_bytes;
	char path[4096];

	unpack_image();
	ck_assert_int_eq(index_blob_totals(store_index(store), &count, &blob_bytes), 0);
	ck_assert_int_eq(index_layer_totals(store_index(store), &count, &layer_bytes), 0);
	ck_assert_int_eq(count, 2);
	ck_assert_int_eq(layer_bytes, (int64_t)(img.tar_len[0] + img.tar_len[1]));
	ck_assert_int_eq(gc_run(store, INT64_MAX, &res), 0);
	ck_assert_int_eq(res.remaining_bytes, blob_bytes); /* the size is the blobs' */
	ck_assert_int_eq(res.removed_layers, 0);
	ck_assert_int_eq(gc_run(store, blob_bytes, &res), 0); /* the trees do not push it over */
	ck_assert_int_eq(res.removed_tags, 0);
	ck_assert(layer_present(dir, &img.diffid[0]));
	/* just under: the one image goes, its trees with it */
	ck_assert_int_eq(gc_run(store, blob_bytes - 1, &res), 0);
	ck_assert_int_eq(res.removed_tags, 1);
	ck_assert_int_eq(res.removed_layers, 2);
	ck_assert_int_eq(res.removed_bytes, blob_bytes);
	ck_assert_int_eq(res.remaining_bytes, 0);
	ck_assert(!layer_present(dir, &img.diffid[0]));
	ck_assert(!layer_present(dir, &img.diffid[1]));
	ck_assert(!layer_image_present(dir, &img.diffid[0]));
	ck_assert(!layer_image_present(dir, &img.diffid[1]));
	snprintf(path, sizeof(path), "%s/layers/tmp", dir);
	ck_assert_int_eq(test_count_entries(path), 0); /* detached under the lock, deleted after */
	ck_assert_int_eq(index_layer_totals(store_index(store), &count, &layer_bytes), 0);
	ck_assert_int_eq(count, 0);
}
END_TEST

START_TEST(test_gc_drops_trees_whose_blob_is_gone)
{
	struct gc_result res;
	int lock;

	unpack_image();
	ck_assert_int_eq(store_lock(store, true, &lock), 0);
	ck_assert_int_eq(store_remove_blob(store, &img.blob[0]), 0);
	store_unlock(lock);
	ck_assert_int_eq(gc_run(store, INT64_MAX, &res), 0);
	ck_assert_int_eq(res.removed_layers, 1);
	ck_assert(!layer_present(dir, &img.diffid[0]));
	ck_assert(layer_present(dir, &img.diffid[1]));
}
END_TEST

static int n_reports;

static void count_report(const struct digest *d, const char *problem, void *ctx)
{
	(void)d;
	(void)problem;
	(void)ctx;
	n_reports++;
}

START_TEST(test_fsck_repairs_layers)
{
	struct fsck_layer_result res;
	struct digest unknown = test_digest_of("x", 1);
	char path[4096];

	unpack_image();
	n_reports = 0;
	ck_assert_int_eq(fsck_run_layers(store, count_report, NULL, &res), 0);
	ck_assert_int_eq(res.checked, 2);
	ck_assert_int_eq(res.missing + res.unindexed + res.stray, 0);
	ck_assert_int_eq(n_reports, 0);
	ck_assert_int_eq(layer_remove(dir, &img.diffid[0]), 0); /* behind the index's back */
	ck_assert_int_eq(layer_path(dir, &unknown, path, sizeof(path)), 0);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/layers/tmp/crashed.XXXXXX", dir);
	ck_assert_ptr_nonnull(mkdtemp(path));
	ck_assert_int_eq(fsck_run_layers(store, count_report, NULL, &res), 0);
	ck_assert_int_eq(res.checked, 2);
	ck_assert_int_eq(res.missing, 1);
	ck_assert_int_eq(res.unindexed, 1);
	ck_assert_int_eq(res.stray, 1);
	ck_assert_int_eq(n_reports, 2);
	ck_assert(!layer_present(dir, &unknown));
	ck_assert_int_eq(
		index_get_layer(store_index(store), &img.diffid[0], &(struct index_layer){0}),
		-ENOENT);
	ck_assert_int_eq(fsck_run_layers(store, count_report, NULL, &res), 0);
	ck_assert_int_eq(res.checked, 1);
	ck_assert_int_eq(res.missing + res.unindexed + res.stray, 0);
}
END_TEST

START_TEST(test_cap_refuses_the_layer_that_would_pass_it)
{
	struct layer_queue *q;
	struct layer_queue_stats st;
	int64_t count, bytes;
	uint64_t cap;

	make_image(false);
	cap = img.tar_len[0] + img.tar_len[1] - 1; /* one byte short of both */
	q = start_capped_queue(cap);
	put_manifest();
	put_blobs();
	layer_queue_drain(q);
	ck_assert(layer_present(dir, &img.diffid[0]));
	ck_assert(!layer_present(dir, &img.diffid[1]));
	assert_tmp_empty(); /* nothing of the refused tree is kept */
	/* why, and the least it needs: the room it had (tar_len[1] - 1), plus one */
	assert_row(1, INDEX_LAYER_FAILED, -EDQUOT, (int64_t)img.tar_len[1]);
	ck_assert_int_eq(index_layer_totals(store_index(store), &count, &bytes), 0);
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(bytes, (int64_t)img.tar_len[0]);
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.unpacked, 1);
	ck_assert_int_eq(st.failed, 1);
	ck_assert_int_eq(st.over_cap, 1);
	stop_queue(q);

	q = start_capped_queue(cap); /* still no room: not tried again */
	layer_queue_drain(q);
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.unpacked + st.failed, 0);
	stop_queue(q);

	q = start_capped_queue(cap + 1); /* exactly both: it fits */
	layer_queue_drain(q);
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.unpacked, 1);
	ck_assert_int_eq(st.over_cap, 0);
	stop_queue(q);
	assert_unpacked();
	ck_assert_int_eq(index_layer_totals(store_index(store), &count, &bytes), 0);
	ck_assert_int_eq(bytes, (int64_t)cap + 1);
}
END_TEST

START_TEST(test_cap_room_back_after_a_rescan)
{
	struct digest other = test_digest_of("other", 5);
	struct index_layer big = {
		.diffid = other, .blob = other, .state = INDEX_LAYER_UNPACKED, .size = 1 << 20};
	struct layer_queue *q;
	struct layer_queue_stats st;
	char path[4096];

	make_image(false);
	/* another image's tree takes all the room */
	ck_assert_int_eq(index_put_layer(store_index(store), &big), 0);
	ck_assert_int_eq(layer_recover(dir, NULL), 0); /* makes layers/ */
	ck_assert_int_eq(layer_path(dir, &other, path, sizeof(path)), 0);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	q = start_capped_queue(1 << 20);
	put_manifest();
	put_blobs();
	layer_queue_drain(q);
	assert_row(0, INDEX_LAYER_FAILED, -EDQUOT, 1);
	assert_row(1, INDEX_LAYER_FAILED, -EDQUOT, 1);
	/* GC takes it away and asks for a rescan (fs/gc_thread.c) */
	ck_assert_int_eq(layer_remove(dir, &other), 0);
	ck_assert_int_eq(index_remove_layer(store_index(store), &other), 0);
	layer_queue_rescan(q);
	layer_queue_drain(q);
	assert_unpacked();
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.unpacked, 2);
	ck_assert_int_eq(st.over_cap, 2);
	stop_queue(q);
}
END_TEST

START_TEST(test_cap_zero_unpacks_nothing)
{
	struct layer_queue *q = start_capped_queue(0);
	struct layer_queue_stats st;

	make_image(false);
	put_manifest();
	put_blobs();
	layer_queue_drain(q);
	ck_assert(!layer_present(dir, &img.diffid[0]));
	ck_assert(!layer_present(dir, &img.diffid[1]));
	assert_row(0, INDEX_LAYER_FAILED, -EDQUOT, 1);
	assert_row(1, INDEX_LAYER_FAILED, -EDQUOT, 1);
	assert_tmp_empty();
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.over_cap, 2);
	stop_queue(q);
}
END_TEST

START_TEST(test_timeout_through_the_queue)
{
	struct layer_limits limits;
	struct layer_queue *q;
	struct layer_queue_stats st;

	make_layers();
	make_bomb(0); /* BOMB_MIB MiB to decompress: seconds, far past the deadline */
	make_documents(false);
	layer_limits_default(&limits);
	limits.max_ms =
		1000; /* the small layer after it needs far less, even on a loaded machine */
	q = start_queue_with(&limits, 16);
	put_manifest();
	put_blobs();
	layer_queue_drain(q);
	assert_row(0, INDEX_LAYER_FAILED, -ETIMEDOUT, 0);
	ck_assert(!layer_present(dir, &img.diffid[0]));
	assert_tmp_empty();
	/* the worker went on to the next layer */
	ck_assert(layer_present(dir, &img.diffid[1]));
	assert_row(1, INDEX_LAYER_UNPACKED, 0, (int64_t)img.tar_len[1]);
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.failed, 1);
	ck_assert_int_eq(st.unpacked, 1);
	stop_queue(q);
	q = start_queue_with(&limits, 16); /* for good: not tried again */
	layer_queue_drain(q);
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.failed + st.unpacked, 0);
	stop_queue(q);
}
END_TEST

/* Holds the worker inside an unpack until the test lets it go. */
static int hook_entered[2], hook_release[2];

static void hold_worker(const char *tmp_dir)
{
	char c = 0;

	(void)tmp_dir;
	ck_assert_int_eq(write(hook_entered[1], &c, 1), 1);
	ck_assert_int_eq(read(hook_release[0], &c, 1), 1);
}

START_TEST(test_full_queue_never_blocks_a_committer)
{
	struct layer_queue *q;
	struct layer_queue_stats st;
	struct digest other[5];
	unsigned char *junk = test_random_bytes(100, 7);
	char c = 0;
	int i;

	ck_assert_int_eq(pipe(hook_entered), 0);
	ck_assert_int_eq(pipe(hook_release), 0);
	make_image(false);
	q = start_queue_with(NULL, 2);
	put_blobs();
	layer_queue_drain(q); /* no image yet: nothing held, nothing dropped */
	layer_fault_hook = hold_worker;
	put_manifest();
	ck_assert_int_eq(read(hook_entered[0], &c, 1), 1); /* the worker is inside layer 0 */
	for (i = 0; i < 5; i++) {
		other[i] = test_digest_of(&i, sizeof(i));
		ck_assert_int_eq(layer_queue_blob(q, &other[i]), i < 2 ? 0 : -EAGAIN);
	}
	/* a commit while the queue is full and the worker busy returns at once */
	ck_assert_int_eq(store_put(store, junk, 100, NULL, NULL, NULL), 0);
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.pending, 2);
	ck_assert_int_eq(st.dropped, 4);
	ck_assert_int_eq(st.busy, 1);
	layer_fault_hook = NULL; /* layer 1 goes straight on */
	ck_assert_int_eq(write(hook_release[1], &c, 1), 1);
	layer_queue_drain(q); /* the events, then the rescan the drops asked for */
	assert_unpacked();
	layer_queue_get_stats(q, &st);
	ck_assert_int_eq(st.pending, 0);
	ck_assert_int_eq(st.unpacked, 2);
	stop_queue(q);
	free(junk);
}
END_TEST

static int config(const char *json, struct digest_list *l)
{
	return layer_config_diffids(json, strlen(json), l);
}

START_TEST(test_config_diffids)
{
	struct digest_list l = {0};
	const char *good = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:"
			   "0000000000000000000000000000000000000000000000000000000000000000\"]}}";

	ck_assert_int_eq(layer_config_diffids(good, strlen(good), &l), 0);
	ck_assert_int_eq(l.len, 1);
	ck_assert_int_eq(config("{\"rootfs\":{\"type\":\"other\",\"diff_ids\":[]}}", &l), -EINVAL);
	ck_assert_int_eq(config("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[1]}}", &l),
			 -EINVAL);
	ck_assert_int_eq(
		config("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:0\"]}}", &l),
		-EINVAL);
	ck_assert_int_eq(config("{\"rootfs\":{\"type\":\"layers\"},\"rootfs\":{}}", &l), -EINVAL);
	ck_assert_int_eq(config("[]", &l), -EINVAL);
	ck_assert_int_eq(config("{", &l), -EINVAL);
	ck_assert_int_eq(layer_config_diffids(good, LAYER_CONFIG_MAX_SIZE + 1, &l), -EFBIG);
	ck_assert_int_eq(l.len, 1); /* failures append nothing */
	digest_list_free(&l);
}
END_TEST

static Suite *layer_queue_suite(void)
{
	Suite *s = suite_create("layer_queue");
	TCase *tc = tcase_create("queue");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_pull_order_manifest_first);
	tcase_add_test(tc, test_push_order_manifest_last);
	tcase_add_test(tc, test_trees_come_before_images);
	tcase_add_test(tc, test_start_rescans_and_resumes);
	tcase_add_test(tc, test_a_tree_without_an_image_gets_one_at_the_next_start);
	tcase_add_test(tc, test_each_image_is_handed_to_the_hook_once_per_start);
	tcase_add_test(tc, test_wrong_diffid_fails_for_good);
	tcase_add_test(tc, test_gc_removes_layers_with_their_blobs);
	tcase_add_test(tc, test_gc_drops_trees_whose_blob_is_gone);
	tcase_add_test(tc, test_fsck_repairs_layers);
	tcase_add_test(tc, test_config_diffids);
	tcase_add_test(tc, test_cap_refuses_the_layer_that_would_pass_it);
	tcase_add_test(tc, test_cap_room_back_after_a_rescan);
	tcase_add_test(tc, test_cap_zero_unpacks_nothing);
	tcase_add_test(tc, test_timeout_through_the_queue);
	tcase_add_test(tc, test_full_queue_never_blocks_a_committer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(layer_queue_suite());
}
