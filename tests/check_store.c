/*
 * Unit tests for cache/store: verified commits, crash safety, concurrency.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "store.h"
#include "testutil.h"

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
	store = NULL;
	test_rmdir(dir);
	dir = NULL;
}

static char *path_in_store(const char *rel)
{
	char *path;

	ck_assert_int_ge(asprintf(&path, "%s/%s", dir, rel), 0);
	return path;
}

static int tmp_entries(void)
{
	char *tmp = path_in_store("tmp");
	int n = test_count_entries(tmp);

	free(tmp);
	return n;
}

/* Read a whole committed blob back through the store. */
static unsigned char *read_blob(const struct digest *d, size_t *ret_len)
{
	unsigned char *buf;
	struct stat st;
	int fd;

	ck_assert_int_eq(store_open_blob(store, d, &fd), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_int_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*ret_len = (size_t)st.st_size;
	return buf;
}

/*
 * The invariant every test ends on: each file under blobs/ hashes to its
 * name, each indexed blob has its file with the indexed size, and the
 * counts agree.
 */
struct consistency {
	int64_t rows;
};

static int check_row(const struct index_blob *blob, void *ctx)
{
	struct consistency *c = ctx;
	struct digest actual;
	struct stat st;
	int fd;

	ck_assert_msg(store_open_blob(store, &blob->digest, &fd) == 0, "row without file: %s",
		      blob->digest.hex);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(st.st_size, blob->size);
	ck_assert_int_eq(digest_of_fd(fd, &actual), 0);
	ck_assert_msg(digest_equal(&actual, &blob->digest), "blob %s holds other bytes",
		      blob->digest.hex);
	close(fd);
	c->rows++;
	return 0;
}

static int count_blob_files(void)
{
	char *blobs = path_in_store("blobs/sha256");
	char sub[4096];
	int fanout, n = 0;

	for (fanout = 0; fanout < 256; fanout++) {
		int k;

		snprintf(sub, sizeof(sub), "%s/%02x", blobs, fanout);
		k = test_count_entries(sub);
		if (k > 0)
			n += k;
	}
	free(blobs);
	return n;
}

static void assert_store_consistent(void)
{
	struct consistency c = {0};
	int64_t count, bytes;

	ck_assert_int_eq(index_foreach_blob(store_index(store), check_row, &c), 0);
	ck_assert_int_eq(index_blob_totals(store_index(store), &count, &bytes), 0);
	ck_assert_int_eq(count, c.rows);
	ck_assert_int_eq(count_blob_files(), c.rows);
}

START_TEST(test_good_digest_is_committed)
{
	unsigned char *data = test_random_bytes(100000, 1), *back;
	struct digest expected = test_digest_of(data, 100000), got;
	struct index_blob row;
	char path[4096], want[4096];
	size_t len;

	ck_assert(!store_has_blob(store, &expected));
	ck_assert_int_eq(
		store_put(store, data, 100000, &expected, "application/octet-stream", &got), 0);
	ck_assert(digest_equal(&got, &expected));
	ck_assert(store_has_blob(store, &expected));

	/* at the documented path, with the same bytes */
	ck_assert_int_eq(store_blob_path(store, &expected, path, sizeof(path)), 0);
	snprintf(want, sizeof(want), "%s/blobs/sha256/%.2s/%s", dir, expected.hex, expected.hex);
	ck_assert_str_eq(path, want);
	back = read_blob(&expected, &len);
	ck_assert_uint_eq(len, 100000);
	ck_assert_mem_eq(back, data, len);

	ck_assert_int_eq(index_get_blob(store_index(store), &expected, &row), 0);
	ck_assert_int_eq(row.size, 100000);
	ck_assert_str_eq(row.media_type, "application/octet-stream");
	ck_assert_int_eq(tmp_entries(), 0);
	assert_store_consistent();
	free(data);
	free(back);
}
END_TEST

START_TEST(test_bad_digest_keeps_nothing)
{
	unsigned char *data = test_random_bytes(50000, 2);
	struct digest wrong = test_digest_of("something else", 14), real;
	struct index_blob row;

	real = test_digest_of(data, 50000);
	ck_assert_int_eq(store_put(store, data, 50000, &wrong, NULL, NULL), -EBADMSG);
	ck_assert(!store_has_blob(store, &wrong));
	ck_assert(!store_has_blob(store, &real));
	ck_assert_int_eq(index_get_blob(store_index(store), &wrong, &row), -ENOENT);
	ck_assert_int_eq(index_get_blob(store_index(store), &real, &row), -ENOENT);
	ck_assert_int_eq(tmp_entries(), 0);
	ck_assert_int_eq(count_blob_files(), 0);
	free(data);
}
END_TEST

START_TEST(test_unexpected_digest_is_computed)
{
	struct digest got;

	ck_assert_int_eq(store_put(store, "abc", 3, NULL, NULL, &got), 0);
	ck_assert_str_eq(got.hex,
			 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ck_assert(store_has_blob(store, &got));
	/* the same bytes again: one blob, still right */
	ck_assert_int_eq(store_put(store, "abc", 3, &got, NULL, NULL), 0);
	assert_store_consistent();
}
END_TEST

START_TEST(test_streaming_writer)
{
	unsigned char *data = test_random_bytes(3 << 20, 3);
	struct digest expected = test_digest_of(data, 3 << 20), got;
	struct store_writer *w;
	size_t off;

	ck_assert_int_eq(store_writer_new(store, &expected, &w), 0);
	ck_assert_int_eq(tmp_entries(), 1);
	ck_assert(store_ingest_active(store, &expected));
	for (off = 0; off < (3u << 20); off += 65536) {
		ck_assert_int_eq(store_writer_verify(w), -EBADMSG); /* not all there yet */
		ck_assert_int_eq(store_writer_write(w, data + off, 65536), 0);
	}
	ck_assert_int_eq(store_writer_verify(w), 0);
	ck_assert_uint_eq(store_writer_size(w), 3u << 20);
	/* nothing visible before commit */
	ck_assert(!store_has_blob(store, &expected));
	ck_assert_int_eq(store_writer_commit(w, NULL, &got), 0);
	ck_assert(store_has_blob(store, &expected));
	ck_assert(!store_ingest_active(store, &expected));
	ck_assert_int_eq(tmp_entries(), 0);
	free(data);
}
END_TEST

START_TEST(test_writes_only_append)
{
	unsigned char *data = test_random_bytes(300000, 5);
	struct digest expected = test_digest_of(data, 300000), wrong;
	struct store_writer *w;

	ck_assert_int_eq(store_writer_new(store, &expected, &w), 0);
	/* a hole, a write past the end, a rewrite: refused, and nothing changes */
	ck_assert_int_eq(store_writer_pwrite(w, data + 200000, 100000, 200000), -EINVAL);
	ck_assert_int_eq(store_writer_pwrite(w, "x", 1, (uint64_t)16 << 30), -EINVAL);
	ck_assert_uint_eq(store_writer_size(w), 0);
	ck_assert_uint_eq(store_tmp_bytes(store), 0);
	ck_assert_int_eq(store_writer_pwrite(w, data, 100000, 0), 0);
	ck_assert_int_eq(store_writer_pwrite(w, "junk", 4, 5), -EINVAL);
	ck_assert_int_eq(store_writer_pwrite(w, "junk", 4, 100001), -EINVAL);
	ck_assert_uint_eq(store_writer_size(w), 100000);
	ck_assert_int_eq(store_writer_pwrite(w, data + 100000, 200000, 100000), 0);
	ck_assert_uint_eq(store_writer_size(w), 300000);
	ck_assert_uint_eq(store_tmp_bytes(store), 300000);
	ck_assert_int_eq(store_writer_verify(w), 0);
	ck_assert_int_eq(store_writer_verify(w), 0); /* as often as a client flushes */
	ck_assert_int_eq(store_writer_commit(w, NULL, NULL), 0);
	ck_assert(store_has_blob(store, &expected));
	ck_assert_uint_eq(store_tmp_bytes(store), 0);

	/* the wrong bytes, appended: the commit refuses them */
	data[5] ^= 1;
	wrong = test_digest_of(data, 300000);
	ck_assert_int_eq(store_writer_new(store, &expected, &w), 0);
	ck_assert_int_eq(store_writer_write(w, data, 300000), 0);
	ck_assert_int_eq(store_writer_verify(w), -EBADMSG);
	ck_assert_int_eq(store_writer_commit(w, NULL, NULL), -EBADMSG);
	ck_assert(!store_has_blob(store, &wrong));
	ck_assert_int_eq(tmp_entries(), 0);
	ck_assert_uint_eq(store_tmp_bytes(store), 0);
	free(data);
}
END_TEST

START_TEST(test_writer_limits)
{
	unsigned char *data = test_random_bytes(4096, 7);
	struct digest expected = test_digest_of(data, 3000);
	struct store_writer *a, *b;

	/* one writer 3000 bytes at most, all writers 5000 together */
	store_set_limits(store, 3000, 5000);
	ck_assert_int_eq(store_writer_new(store, &expected, &a), 0);
	ck_assert_int_eq(store_writer_new(store, NULL, &b), 0);
	ck_assert_int_eq(store_writer_write(a, data, 2000), 0);
	ck_assert_int_eq(store_writer_write(a, data + 2000, 1001), -EFBIG);
	ck_assert_int_eq(store_writer_write(a, data, 4096), -EFBIG);
	ck_assert_uint_eq(store_writer_size(a), 2000);
	ck_assert_int_eq(store_writer_write(b, data, 2500), 0);
	/* a may grow to 3000 alone, but tmp/ holds 4500 of 5000 */
	ck_assert_int_eq(store_writer_write(a, data + 2000, 1000), -ENOSPC);
	ck_assert_uint_eq(store_writer_size(a), 2000);
	ck_assert_uint_eq(store_tmp_bytes(store), 4500);
	/* what was refused is not in the file either: the rest still commits */
	store_writer_abort(b);
	ck_assert_uint_eq(store_tmp_bytes(store), 2000);
	ck_assert_int_eq(store_writer_write(a, data + 2000, 1000), 0);
	ck_assert_int_eq(store_writer_commit(a, NULL, NULL), 0);
	ck_assert(store_has_blob(store, &expected));
	ck_assert_uint_eq(store_tmp_bytes(store), 0);
	assert_store_consistent();

	/* a reset gives its bytes back */
	ck_assert_int_eq(store_writer_new(store, NULL, &a), 0);
	ck_assert_int_eq(store_writer_write(a, data, 3000), 0);
	ck_assert_int_eq(store_writer_reset(a), 0);
	ck_assert_uint_eq(store_tmp_bytes(store), 0);
	ck_assert_int_eq(store_writer_write(a, data, 3000), 0);
	store_writer_abort(a);
	ck_assert_uint_eq(store_tmp_bytes(store), 0);
	free(data);
}
END_TEST

START_TEST(test_abort_removes_temp)
{
	struct store_writer *w;

	ck_assert_int_eq(store_writer_new(store, NULL, &w), 0);
	ck_assert_int_eq(store_writer_write(w, "partial", 7), 0);
	store_writer_abort(w);
	ck_assert_int_eq(tmp_entries(), 0);
	ck_assert_int_eq(count_blob_files(), 0);
	store_writer_abort(NULL);
}
END_TEST

START_TEST(test_live_ingest_survives_reopen)
{
	struct digest expected = test_digest_of("hello", 5);
	struct store_writer *w;
	struct store *second;

	ck_assert_int_eq(store_writer_new(store, &expected, &w), 0);
	ck_assert_int_eq(store_writer_write(w, "hel", 3), 0);
	/* Another opener (another process, in real life) recovers the store. */
	ck_assert_int_eq(store_open(dir, &second), 0);
	ck_assert_int_eq(tmp_entries(), 1);
	ck_assert(store_ingest_active(second, &expected));
	store_close(second);
	ck_assert_int_eq(store_writer_write(w, "lo", 2), 0);
	ck_assert_int_eq(store_writer_commit(w, NULL, NULL), 0);
	ck_assert(store_has_blob(store, &expected));
}
END_TEST

/* Crash tests: a child ingests a large blob and dies at one point. */
#define CRASH_SIZE (32u << 20)

static void die_now(enum store_stage stage)
{
	(void)stage;
	raise(SIGKILL);
}

static enum store_stage crash_stage;

static void die_at_stage(enum store_stage stage)
{
	if (stage == crash_stage)
		die_now(stage);
}

enum crash_point {
	CRASH_MID_WRITE,
	CRASH_AFTER_FSYNC,
	CRASH_AFTER_RENAME,
	CRASH_AFTER_INDEX,
	CRASH_POINTS,
};

static void child_ingest(int ready_fd, enum crash_point point, const unsigned char *data,
			 const struct digest *expected)
{
	struct store_writer *w;
	struct store *s;
	size_t off;

	if (store_open(dir, &s) < 0 || store_writer_new(s, expected, &w) < 0)
		_exit(2);
	for (off = 0; off < CRASH_SIZE; off += 1u << 20) {
		if (store_writer_write(w, data + off, 1u << 20) < 0)
			_exit(2);
		if (point == CRASH_MID_WRITE && off == CRASH_SIZE / 2) {
			/* tell the parent, then wait to be killed */
			if (write(ready_fd, "x", 1) != 1)
				_exit(2);
			pause();
		}
	}
	crash_stage = point == CRASH_AFTER_FSYNC    ? STORE_STAGE_SYNCED
		      : point == CRASH_AFTER_RENAME ? STORE_STAGE_RENAMED
						    : STORE_STAGE_INDEXED;
	store_fault_hook = die_at_stage;
	store_writer_commit(w, NULL, NULL);
	_exit(3); /* not reached when the hook fires */
}

START_TEST(test_crash_leaves_nothing_partial)
{
	enum crash_point point = (enum crash_point)_i;
	unsigned char *data = test_random_bytes(CRASH_SIZE, 4);
	struct digest expected = test_digest_of(data, CRASH_SIZE);
	int pipefd[2], status;
	pid_t pid;
	char c;

	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(pipefd[0]);
		child_ingest(pipefd[1], point, data, &expected);
	}
	close(pipefd[1]);
	if (point == CRASH_MID_WRITE) {
		ck_assert_int_eq(read(pipefd[0], &c, 1), 1);
		/* the half-written temp file is there, invisible */
		ck_assert_int_eq(tmp_entries(), 1);
		ck_assert(!store_has_blob(store, &expected));
		kill(pid, SIGKILL);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "child did not die at crash point %d (status %d)", point, status);
	close(pipefd[0]);

	/* Reopen as the next daemon start would. */
	store_close(store);
	ck_assert_int_eq(store_open(dir, &store), 0);
	ck_assert_int_eq(tmp_entries(), 0);
	assert_store_consistent();
	if (point == CRASH_MID_WRITE || point == CRASH_AFTER_FSYNC) {
		ck_assert(!store_has_blob(store, &expected));
	} else {
		/* renamed means verified: recovery indexes it */
		struct index_blob row;

		ck_assert(store_has_blob(store, &expected));
		ck_assert_int_eq(index_get_blob(store_index(store), &expected, &row), 0);
		ck_assert_int_eq(row.size, CRASH_SIZE);
	}
	free(data);
}
END_TEST

/* Concurrency: threads ingest overlapping sets of digests. */
#define N_THREADS  8
#define N_CONTENTS 6
#define ROUNDS	   5

static unsigned char *contents[N_CONTENTS];
static size_t content_len[N_CONTENTS];
static struct digest content_digest[N_CONTENTS];

static void *ingest_worker(void *arg)
{
	long id = (long)arg;
	int round, i;

	for (round = 0; round < ROUNDS; round++) {
		for (i = 0; i < N_CONTENTS; i++) {
			int k = (int)((i + id + round) % N_CONTENTS);
			size_t half = content_len[k] / 2;
			struct store_writer *w;

			/* some threads send wrong bytes at times: that must not disturb the rest */
			bool corrupt = id % 4 == 3 && round % 2 == 0;
			int r;

			if (store_writer_new(store, &content_digest[k], &w) < 0)
				return (void *)1;
			if (store_writer_write(w, contents[k], half) < 0 ||
			    store_writer_write(w,
					       corrupt ? contents[(k + 1) % N_CONTENTS] + half
						       : contents[k] + half,
					       content_len[k] - half) < 0)
				return (void *)1;
			r = store_writer_commit(w, NULL, NULL);
			if (r != (corrupt ? -EBADMSG : 0))
				return (void *)1;
		}
	}
	return NULL;
}

START_TEST(test_concurrent_overlapping_ingests)
{
	pthread_t threads[N_THREADS];
	long i;

	for (i = 0; i < N_CONTENTS; i++) {
		content_len[i] = 200000 + (size_t)i * 1000;
		contents[i] = test_random_bytes(content_len[i] + 10000, (uint32_t)(100 + i));
		content_digest[i] = test_digest_of(contents[i], content_len[i]);
	}
	for (i = 0; i < N_THREADS; i++)
		ck_assert_int_eq(pthread_create(&threads[i], NULL, ingest_worker, (void *)i), 0);
	for (i = 0; i < N_THREADS; i++) {
		void *result;

		ck_assert_int_eq(pthread_join(threads[i], &result), 0);
		ck_assert_msg(result == NULL, "thread %ld saw an unexpected result", i);
	}
	for (i = 0; i < N_CONTENTS; i++) {
		ck_assert(store_has_blob(store, &content_digest[i]));
		free(contents[i]);
	}
	ck_assert_int_eq(tmp_entries(), 0);
	ck_assert_int_eq(count_blob_files(), N_CONTENTS);
	assert_store_consistent();
}
END_TEST

START_TEST(test_remove_and_quarantine)
{
	struct digest a, b;
	char *q;
	int lock;

	ck_assert_int_eq(store_put(store, "aaa", 3, NULL, NULL, &a), 0);
	ck_assert_int_eq(store_put(store, "bbb", 3, NULL, NULL, &b), 0);
	ck_assert_int_eq(store_lock(store, true, &lock), 0);
	ck_assert_int_eq(store_remove_blob(store, &a), 0);
	ck_assert_int_eq(store_quarantine_blob(store, &b), 0);
	store_unlock(lock);
	ck_assert(!store_has_blob(store, &a));
	ck_assert(!store_has_blob(store, &b));
	ck_assert_int_ge(asprintf(&q, "%s/quarantine/%s", dir, b.hex), 0);
	ck_assert(test_path_exists(q));
	free(q);
	assert_store_consistent();
}
END_TEST

START_TEST(test_open_fails_cleanly)
{
	struct store *s = (struct store *)0x1;

	/* a file where the store directory should be */
	char *file = path_in_store("not-a-dir");
	int fd = open(file, O_CREAT | O_WRONLY, 0600);

	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(store_open(file, &s), -ENOTDIR);
	ck_assert_ptr_eq(s, (struct store *)0x1);
	free(file);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("core");
	TCase *crash = tcase_create("crash");
	TCase *conc = tcase_create("concurrency");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_good_digest_is_committed);
	tcase_add_test(tc, test_bad_digest_keeps_nothing);
	tcase_add_test(tc, test_unexpected_digest_is_computed);
	tcase_add_test(tc, test_streaming_writer);
	tcase_add_test(tc, test_writes_only_append);
	tcase_add_test(tc, test_writer_limits);
	tcase_add_test(tc, test_abort_removes_temp);
	tcase_add_test(tc, test_live_ingest_survives_reopen);
	tcase_add_test(tc, test_remove_and_quarantine);
	tcase_add_test(tc, test_open_fails_cleanly);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(crash, setup, teardown);
	tcase_set_timeout(crash, 120);
	tcase_add_loop_test(crash, test_crash_leaves_nothing_partial, 0, CRASH_POINTS);
	suite_add_tcase(s, crash);

	tcase_add_checked_fixture(conc, setup, teardown);
	tcase_set_timeout(conc, 120);
	tcase_add_test(conc, test_concurrent_overlapping_ingests);
	suite_add_tcase(s, conc);
	return s;
}

int main(void)
{
	return test_run(store_suite());
}
