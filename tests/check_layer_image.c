/*
 * Unit tests for cache/layer_image: a tree's EROFS image is made by the
 * real mkfs.erofs and appears complete or not at all; a missing, failing,
 * slow or stopped mkfs.erofs, or an image past the room, has its errno and
 * leaves nothing; the image goes with its tree; a warm pushes every byte
 * after its lookup, and stops at the deadline or on stop; a share mounts
 * the image over a directory, once, until the image is removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "layer.h"
#include "layer_image.h"
#include "testutil.h"

static char *dir;
static struct layer_limits limits;
static struct digest diffid;

static void write_file(const char *path, const char *data, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

/* layers/ as layer_unpack leaves it, with one small tree. */
static void setup(void)
{
	char path[4096];

	dir = test_mkdtemp();
	layer_limits_default(&limits);
	diffid = test_digest_of("tree", 4);
	ck_assert_int_eq(layer_recover(dir, NULL), 0);
	ck_assert_int_eq(layer_path(dir, &diffid, path, sizeof(path)), 0);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	strcat(path, "/etc");
	ck_assert_int_eq(mkdir(path, 0755), 0);
	strcat(path, "/conf");
	write_file(path, "conf\n", 0644);
	unsetenv(LAYER_IMAGE_MKFS_ENV);
}

static void teardown(void)
{
	layer_image_detach(NULL, dir); /* what a failed share test left */
	test_rmdir(dir);
}

/* A stand-in for mkfs.erofs: a shell script of one line, under dir. */
static void fake_mkfs(const char *line)
{
	char path[4096], text[512];

	snprintf(path, sizeof(path), "%s/fake-mkfs", dir);
	snprintf(text, sizeof(text), "#!/bin/sh\n%s\n", line);
	write_file(path, text, 0755);
	setenv(LAYER_IMAGE_MKFS_ENV, path, 1);
}

static void image_path(char *buf, size_t size)
{
	ck_assert_int_eq(layer_image_path(dir, &diffid, buf, size), 0);
}

/* Nothing under layers/ but tmp/ (empty) and the tree: no image, no build left. */
static void assert_no_image(void)
{
	char path[4096];

	ck_assert(!layer_image_present(dir, &diffid));
	snprintf(path, sizeof(path), "%s/layers", dir);
	ck_assert_int_eq(test_count_entries(path), 2);
	snprintf(path, sizeof(path), "%s/layers/tmp", dir);
	ck_assert_int_eq(test_count_entries(path), 0);
}

START_TEST(test_build_makes_an_erofs_image)
{
	char path[4096];
	uint64_t bytes = 0, again = 0;
	unsigned char magic[4];
	struct stat st;
	int64_t count, total;
	int fd;

	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, &bytes), 0);
	ck_assert(layer_image_present(dir, &diffid));
	image_path(path, sizeof(path));
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(bytes, (uint64_t)st.st_size);
	ck_assert_int_eq(st.st_mode & 07777, 0444);
	/* EROFS_SUPER_MAGIC_V1 at byte 1024, little-endian */
	fd = open(path, O_RDONLY);
	ck_assert_int_eq(pread(fd, magic, 4, 1024), 4);
	close(fd);
	ck_assert_int_eq(magic[0] | magic[1] << 8 | magic[2] << 16 | (uint32_t)magic[3] << 24,
			 0xE0F5E1E2);
	/* there already: 0 and its size, without running mkfs.erofs */
	fake_mkfs("exit 1");
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, &again), 0);
	ck_assert_uint_eq(again, bytes);
	ck_assert_int_eq(layer_image_totals(dir, &count, &total), 0);
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(total, st.st_size);
	snprintf(path, sizeof(path), "%s/layers/tmp", dir);
	ck_assert_int_eq(test_count_entries(path), 0);
}
END_TEST

START_TEST(test_no_tree_is_enoent)
{
	struct digest other = test_digest_of("other", 5);

	ck_assert_int_eq(layer_image_build(dir, &other, &limits, NULL), -ENOENT);
	ck_assert(!layer_image_present(dir, &other));
}
END_TEST

START_TEST(test_missing_mkfs_is_enoexec)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/no-such-mkfs", dir);
	setenv(LAYER_IMAGE_MKFS_ENV, path, 1);
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), -ENOEXEC);
	assert_no_image();
}
END_TEST

START_TEST(test_failing_mkfs_is_eio)
{
	/* a partial image written, then a failure: nothing of it is kept */
	fake_mkfs("echo partial > \"$3\"; exit 1");
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), -EIO);
	assert_no_image();
	fake_mkfs("exit 0"); /* says it worked, wrote nothing */
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), -EIO);
	assert_no_image();
}
END_TEST

START_TEST(test_tree_gone_during_the_build_is_enoent)
{
	char path[4096];

	/* GC renames the tree away while mkfs.erofs reads it: no image without its tree */
	fake_mkfs("mv \"$4\" \"$4.gone\" && echo image >\"$3\"");
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), -ENOENT);
	ck_assert(!layer_image_present(dir, &diffid));
	ck_assert_int_eq(layer_path(dir, &diffid, path, sizeof(path)), 0);
	strcat(path, ".gone");
	ck_assert(test_path_exists(path));
	snprintf(path, sizeof(path), "%s/layers/tmp", dir);
	ck_assert_int_eq(test_count_entries(path), 0);
}
END_TEST

START_TEST(test_slow_mkfs_is_killed_at_the_deadline)
{
	struct timespec t0, t1;
	double s;

	fake_mkfs("exec sleep 30");
	limits.max_ms = 300;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_msg(s < 5, "the build took %.1f s past a 0.3 s deadline", s);
	assert_no_image();
}
END_TEST

START_TEST(test_stop_cancels_the_build)
{
	_Atomic bool stop = true;

	fake_mkfs("exec sleep 30");
	limits.stop = &stop;
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), -ECANCELED);
	assert_no_image();
}
END_TEST

START_TEST(test_image_past_the_room_is_edquot)
{
	limits.room_bytes = 100; /* an image is at least a few KiB */
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), -EDQUOT);
	assert_no_image();
	limits.room_bytes = UINT64_MAX;
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), 0);
}
END_TEST

START_TEST(test_image_goes_with_its_tree)
{
	char path[4096];
	int64_t removed = -1;

	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), 0);
	ck_assert_int_eq(layer_remove(dir, &diffid), 0);
	ck_assert(!layer_image_present(dir, &diffid));
	/* a tree removed by hand: layer_recover drops its image */
	ck_assert_int_eq(layer_path(dir, &diffid, path, sizeof(path)), 0);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), 0);
	ck_assert_int_eq(rmdir(path), 0);
	ck_assert_int_eq(layer_recover(dir, &removed), 0);
	ck_assert_int_eq(removed, 1);
	ck_assert(!layer_image_present(dir, &diffid));
	ck_assert_int_eq(layer_image_remove(dir, &diffid), -ENOENT);
}
END_TEST

static int count_tree(const struct digest *d, void *ctx)
{
	ck_assert(digest_equal(d, &diffid));
	++*(int *)ctx;
	return 0;
}

START_TEST(test_crashed_build_is_recovered)
{
	char path[4096];
	int64_t removed = -1;
	int n = 0;

	/* what a build killed with the daemon leaves: an unlocked temp dir with a part */
	snprintf(path, sizeof(path), "%s/layers/tmp/%s" LAYER_IMAGE_SUFFIX ".abcdef", dir,
		 diffid.hex);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	strcat(path, "/image");
	write_file(path, "part", 0644);
	ck_assert_int_eq(layer_recover(dir, &removed), 0);
	ck_assert_int_eq(removed, 1);
	snprintf(path, sizeof(path), "%s/layers/tmp", dir);
	ck_assert_int_eq(test_count_entries(path), 0);
	/* and an image's name is not a tree's */
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), 0);
	ck_assert_int_eq(layer_foreach(dir, count_tree, &n), 0);
	ck_assert_int_eq(n, 1);
}
END_TEST

/* layer_image_push_fn of the tests: counts the bytes, checks they are the image's. */
struct pushed {
	uint64_t bytes;
	int calls, sleep_ms;
};

static int count_push(void *ctx, const char *image, const void *buf, size_t len, off_t off)
{
	struct pushed *p = ctx;
	char *want = malloc(len);
	int fd = open(image, O_RDONLY);

	ck_assert_ptr_nonnull(want);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, want, len, off), (ssize_t)len);
	ck_assert_int_eq(memcmp(want, buf, len), 0);
	close(fd);
	free(want);
	ck_assert_uint_eq((uint64_t)off, p->bytes);
	p->bytes += len;
	p->calls++;
	if (p->sleep_ms)
		usleep((useconds_t)p->sleep_ms * 1000);
	return 0;
}

START_TEST(test_warm_pushes_the_image_after_a_lookup)
{
	char path[4096], big[4096];
	struct pushed p = {0};
	_Atomic bool stop = true;
	struct stat st;
	char *data = malloc(3 << 20);

	ck_assert_int_eq(layer_image_warm(dir, &diffid, "/", &limits, count_push, &p), -ENOENT);
	/* a tree with a 3 MiB file: an image of more than one chunk */
	ck_assert_int_eq(layer_path(dir, &diffid, big, sizeof(big)), 0);
	strcat(big, "/big");
	ck_assert_ptr_nonnull(data);
	memset(data, 'x', 3 << 20);
	data[(3 << 20) - 1] = '\0';
	write_file(big, data, 0644);
	free(data);
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), 0);
	image_path(path, sizeof(path));
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(layer_image_warm(dir, &diffid, path, &limits, count_push, &p), 0);
	ck_assert_uint_eq(p.bytes, (uint64_t)st.st_size);
	ck_assert_int_ge(p.calls, 3);
	/* the lookup failed (no such path on the mount): nothing pushed */
	p = (struct pushed){0};
	ck_assert_int_eq(layer_image_warm(dir, &diffid, "/nonexistent", &limits, count_push, &p),
			 -EIO);
	ck_assert_int_eq(p.calls, 0);
	/* slow pushes stop at the deadline, and a stop stops them */
	p = (struct pushed){.sleep_ms = 400};
	limits.max_ms = 300;
	ck_assert_int_eq(layer_image_warm(dir, &diffid, path, &limits, count_push, &p), -ETIMEDOUT);
	ck_assert_int_eq(p.calls, 1);
	limits.max_ms = 0;
	limits.stop = &stop;
	p = (struct pushed){0};
	ck_assert_int_eq(layer_image_warm(dir, &diffid, path, &limits, count_push, &p), -ECANCELED);
	ck_assert_int_eq(p.calls, 0);
}
END_TEST

static bool is_erofs(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && sf.f_type == EROFS_SUPER_MAGIC_V1;
}

START_TEST(test_share_mounts_the_image_until_it_is_removed)
{
	char over[4096], conf[4096 + 16], image[4096], buf[16] = "";
	int fd;

	snprintf(over, sizeof(over), "%s/over", dir);
	ck_assert_int_eq(mkdir(over, 0755), 0);
	ck_assert_int_eq(layer_image_share(dir, &diffid, over, &limits),
			 -ENOENT); /* no image yet */
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), 0);
	ck_assert_int_eq(layer_image_share(dir, &diffid, over, &limits), 0);
	ck_assert(is_erofs(over));
	snprintf(conf, sizeof(conf), "%s/etc/conf", over);
	fd = open(conf, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, buf, sizeof(buf) - 1), 5);
	close(fd);
	ck_assert_str_eq(buf, "conf\n");
	ck_assert_int_eq(open(conf, O_WRONLY), -1);
	ck_assert_int_eq(errno, EROFS);
	/* once: a second share finds it there */
	ck_assert_int_eq(layer_image_share(dir, &diffid, over, &limits), -EALREADY);
	/* the image goes, and its mount before it */
	ck_assert_int_eq(layer_image_remove(dir, &diffid), 0);
	ck_assert(!is_erofs(over));
	image_path(image, sizeof(image));
	ck_assert_int_eq(access(image, F_OK), -1);
	ck_assert_int_eq(layer_image_detach(NULL, dir), 0);
}
END_TEST

START_TEST(test_share_over_nothing_is_its_errno)
{
	char over[4096];

	snprintf(over, sizeof(over), "%s/absent", dir);
	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), 0);
	ck_assert_int_eq(layer_image_share(dir, &diffid, over, &limits), -ENOENT);
}
END_TEST

START_TEST(test_detach_takes_every_share_under_a_dir)
{
	char over[4096];

	ck_assert_int_eq(layer_image_build(dir, &diffid, &limits, NULL), 0);
	for (int i = 0; i < 2; i++) {
		snprintf(over, sizeof(over), "%s/over-%d", dir, i);
		ck_assert_int_eq(mkdir(over, 0755), 0);
		ck_assert_int_eq(layer_image_share(dir, &diffid, over, &limits), 0);
	}
	ck_assert_int_eq(layer_image_detach(NULL, dir), 2);
	ck_assert(!is_erofs(over));
	ck_assert_int_eq(layer_image_detach(NULL, dir), 0);
}
END_TEST

static Suite *layer_image_suite(void)
{
	Suite *s = suite_create("layer_image");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_build_makes_an_erofs_image);
	tcase_add_test(tc, test_no_tree_is_enoent);
	tcase_add_test(tc, test_missing_mkfs_is_enoexec);
	tcase_add_test(tc, test_failing_mkfs_is_eio);
	tcase_add_test(tc, test_tree_gone_during_the_build_is_enoent);
	tcase_add_test(tc, test_slow_mkfs_is_killed_at_the_deadline);
	tcase_add_test(tc, test_stop_cancels_the_build);
	tcase_add_test(tc, test_image_past_the_room_is_edquot);
	tcase_add_test(tc, test_image_goes_with_its_tree);
	tcase_add_test(tc, test_crashed_build_is_recovered);
	tcase_add_test(tc, test_warm_pushes_the_image_after_a_lookup);
	tcase_add_test(tc, test_share_mounts_the_image_until_it_is_removed);
	tcase_add_test(tc, test_share_over_nothing_is_its_errno);
	tcase_add_test(tc, test_detach_takes_every_share_under_a_dir);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(layer_image_suite());
}
