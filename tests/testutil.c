/*
 * testutil: helpers shared by the Check suites (see testutil.h).
 */
#include "testutil.h"

#include "fixture.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <time.h>

char *test_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char *dir;

	ck_assert_int_ge(asprintf(&dir, "%s/dindfs-test.XXXXXX", base ? base : "/tmp"), 0);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void test_rmdir(char *dir)
{
	if (!dir)
		return;
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

unsigned char *test_random_bytes(size_t len, uint32_t seed)
{
	unsigned char *buf = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(buf);
	fixture_random_bytes(buf, len, seed);
	return buf;
}

struct digest test_digest_of(const void *data, size_t len)
{
	struct digest d;

	ck_assert_int_eq(digest_of_buffer(data, len, &d), 0);
	return d;
}

bool test_path_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

int test_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

int test_run(Suite *suite)
{
	SRunner *sr = srunner_create(suite);
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

struct digest test_make_image(struct store *s, const char *repository, const char *tag,
			      int n_layers, size_t layer_size, uint32_t seed,
			      const struct digest *shared_layer, struct digest *ret_layers)
{
	struct digest manifest;

	ck_assert_int_eq(fixture_make_image(s, repository, tag, n_layers, layer_size, seed,
					    shared_layer, ret_layers, &manifest),
			 0);
	return manifest;
}

unsigned char *test_gzip(const void *data, size_t len, size_t *ret_len)
{
	/* gzip grows incompressible data by a few bytes per 16 KiB block. */
	size_t cap = len + len / 64 + 4096, used = 0;
	unsigned char *buf = malloc(cap);
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();

	ck_assert_ptr_nonnull(buf);
	archive_write_add_filter_gzip(a);
	archive_write_set_format_raw(a);
	ck_assert_int_eq(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
	archive_entry_set_filetype(e, AE_IFREG);
	ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_data(a, data, len), (la_ssize_t)len);
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_entry_free(e);
	archive_write_free(a);
	*ret_len = used;
	return buf;
}
