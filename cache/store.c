/*
 * store: content-addressed blob files with crash-safe commits (see store.h).
 *
 * Directory handles are opened once; every file operation is relative to
 * them (openat, renameat), so no path built from a digest is resolved
 * against anything but the store.
 */
#include "store.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void (*store_fault_hook)(enum store_stage stage);

struct store {
	char *dir;
	int dir_fd;	   /* the store directory */
	int blobs_fd;	   /* blobs/sha256 */
	int tmp_fd;	   /* tmp */
	int quarantine_fd; /* quarantine */
	struct index *index;
	uint64_t max_writer_bytes;   /* one writer's cap (EFBIG past it) */
	uint64_t max_tmp_bytes;	     /* all writers' cap together (ENOSPC past it) */
	_Atomic uint64_t tmp_bytes;  /* what this process's writers hold in tmp/ */
	store_commit_fn commit_hook; /* set before threads start */
	void *commit_ctx;
};

struct store_writer {
	struct store *store;
	struct digest_hasher *hasher;
	struct digest expected;
	bool has_expected;
	int fd;
	char tmp_name[DIGEST_HEX_LEN + 32];
	uint64_t size; /* bytes written, all hashed: writes only append */
};

/* The two-hex-digit fan-out directory and the file name of a blob. */
#define FANOUT_LEN 2

static void fault(enum store_stage stage)
{
	if (store_fault_hook)
		store_fault_hook(stage);
}

static int mkdir_p(const char *path)
{
	char *copy = strdup(path);
	char *p;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0755) < 0 && errno != EEXIST)
			r = -errno;
		*p = '/';
		if (r < 0)
			goto out;
	}
	if (mkdir(copy, 0755) < 0 && errno != EEXIST)
		r = -errno;
out:
	free(copy);
	return r;
}

/* Open (creating if needed) a directory under parent_fd. */
static int open_subdir(int parent_fd, const char *name, int *ret_fd)
{
	int fd;

	if (mkdirat(parent_fd, name, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

int store_fsync_dir_at(int parent_fd, const char *name)
{
	int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

static void blob_relpath(const struct digest *d, char buf[FANOUT_LEN + 1 + DIGEST_HEX_LEN + 1])
{
	memcpy(buf, d->hex, FANOUT_LEN);
	buf[FANOUT_LEN] = '/';
	memcpy(buf + FANOUT_LEN + 1, d->hex, DIGEST_HEX_LEN + 1);
}

int store_blob_path(const struct store *s, const struct digest *d, char *buf, size_t size)
{
	char rel[FANOUT_LEN + 1 + DIGEST_HEX_LEN + 1];
	int n;

	blob_relpath(d, rel);
	n = snprintf(buf, size, "%s/blobs/sha256/%s", s->dir, rel);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int store_open_blob(struct store *s, const struct digest *d, int *ret_fd)
{
	char rel[FANOUT_LEN + 1 + DIGEST_HEX_LEN + 1];
	int fd;

	blob_relpath(d, rel);
	fd = openat(s->blobs_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

bool store_has_blob(struct store *s, const struct digest *d)
{
	char rel[FANOUT_LEN + 1 + DIGEST_HEX_LEN + 1];

	blob_relpath(d, rel);
	return faccessat(s->blobs_fd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

void store_set_limits(struct store *s, uint64_t max_writer_bytes, uint64_t max_tmp_bytes)
{
	s->max_writer_bytes = max_writer_bytes;
	s->max_tmp_bytes = max_tmp_bytes;
}

uint64_t store_tmp_bytes(struct store *s)
{
	return atomic_load(&s->tmp_bytes);
}

const char *store_dir(const struct store *s)
{
	return s->dir;
}

struct index *store_index(struct store *s)
{
	return s->index;
}

int store_lock(struct store *s, bool exclusive, int *ret_handle)
{
	/* A fresh open file description per holder, so threads exclude each other too. */
	int fd = openat(s->dir_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
		if (errno != EINTR) {
			int r = -errno;

			close(fd);
			return r;
		}
	}
	*ret_handle = fd;
	return 0;
}

void store_unlock(int handle)
{
	if (handle >= 0)
		close(handle); /* releases the flock */
}

/*
 * Ingests in progress hold an flock on their temp file, so a temp file that
 * can be locked belongs to a writer that died.
 */
static bool temp_file_is_live(int tmp_fd, const char *name)
{
	int fd = openat(tmp_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	bool live;

	if (fd < 0)
		return false;
	live = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
	return live;
}

bool store_ingest_active(struct store *s, const struct digest *d)
{
	DIR *dir;
	struct dirent *entry;
	bool active = false;
	int fd = dup(s->tmp_fd);

	if (fd < 0)
		return false;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return false;
	}
	rewinddir(dir);
	while (!active && (entry = readdir(dir))) {
		if (strncmp(entry->d_name, d->hex, DIGEST_HEX_LEN) == 0 &&
		    entry->d_name[DIGEST_HEX_LEN] == '.')
			active = temp_file_is_live(s->tmp_fd, entry->d_name);
	}
	closedir(dir);
	return active;
}

int store_writer_new(struct store *s, const struct digest *expected, struct store_writer **ret)
{
	static atomic_uint counter;
	struct store_writer *w = calloc(1, sizeof(*w));
	int attempt, r;

	if (!w)
		return -ENOMEM;
	w->store = s;
	w->fd = -1;
	if (expected) {
		w->expected = *expected;
		w->has_expected = true;
	}
	r = digest_hasher_new(&w->hasher);
	if (r < 0)
		goto out_free;
	/* The name starts with the digest so that store_ingest_active() can find it. */
	for (attempt = 0; attempt < 100 && w->fd < 0; attempt++) {
		snprintf(w->tmp_name, sizeof(w->tmp_name), "%s.%d.%u",
			 expected ? expected->hex : "any", (int)getpid(),
			 atomic_fetch_add(&counter, 1));
		w->fd = openat(s->tmp_fd, w->tmp_name,
			       O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (w->fd < 0 && errno != EEXIST) {
			r = -errno;
			goto out_free;
		}
	}
	if (w->fd < 0) {
		r = -EEXIST;
		goto out_free;
	}
	/* Marks the ingest as live for store_ingest_active() and recovery. */
	if (flock(w->fd, LOCK_EX) < 0) {
		r = -errno;
		goto out_unlink;
	}
	*ret = w;
	return 0;
out_unlink:
	unlinkat(s->tmp_fd, w->tmp_name, 0);
	close(w->fd);
out_free:
	digest_hasher_free(w->hasher);
	free(w);
	return r;
}

/* Count len more bytes in tmp/ against both caps; nothing is counted on failure. */
static int writer_reserve(struct store_writer *w, size_t len)
{
	struct store *s = w->store;
	uint64_t before;

	if (len > s->max_writer_bytes || w->size > s->max_writer_bytes - len)
		return -EFBIG;
	before = atomic_fetch_add(&s->tmp_bytes, len);
	if (before + len > s->max_tmp_bytes || before + len < before) {
		atomic_fetch_sub(&s->tmp_bytes, len);
		return -ENOSPC;
	}
	return 0;
}

/* Give back what w holds in tmp/ (it is renamed, truncated or gone). */
static void writer_unreserve(struct store_writer *w)
{
	atomic_fetch_sub(&w->store->tmp_bytes, w->size);
	w->size = 0;
}

int store_writer_pwrite(struct store_writer *w, const void *data, size_t len, uint64_t offset)
{
	const char *p = data;
	size_t left = len;
	off_t at = (off_t)offset;
	int r;

	if (offset != w->size)
		return -EINVAL; /* only appends: the hash is taken as the bytes come, once */
	r = writer_reserve(w, len);
	if (r < 0)
		return r;
	while (left > 0) {
		ssize_t n = pwrite(w->fd, p, left, at);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		p += n;
		at += n;
		left -= (size_t)n;
	}
	if (r < 0) {
		/* cut off what part of it landed, so the file is what was hashed */
		atomic_fetch_sub(&w->store->tmp_bytes, len);
		if (ftruncate(w->fd, (off_t)w->size) < 0)
			return -errno;
		return r;
	}
	digest_hasher_update(w->hasher, data, len);
	w->size += len;
	return 0;
}

int store_writer_write(struct store_writer *w, const void *data, size_t len)
{
	return store_writer_pwrite(w, data, len, w->size);
}

int store_writer_verify(struct store_writer *w)
{
	struct digest now;
	int r;

	if (!w->has_expected)
		return -EBADMSG;
	r = digest_hasher_peek(w->hasher, &now);
	if (r < 0)
		return r;
	return digest_equal(&now, &w->expected) ? 0 : -EBADMSG;
}

int store_writer_reset(struct store_writer *w)
{
	if (ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0)
		return -errno;
	digest_hasher_reset(w->hasher);
	writer_unreserve(w);
	return 0;
}

uint64_t store_writer_size(const struct store_writer *w)
{
	return w->size;
}

int store_writer_fd(const struct store_writer *w)
{
	return w->fd;
}

static void writer_free(struct store_writer *w)
{
	writer_unreserve(w);
	if (w->fd >= 0)
		close(w->fd);
	digest_hasher_free(w->hasher);
	free(w);
}

void store_writer_abort(struct store_writer *w)
{
	if (!w)
		return;
	unlinkat(w->store->tmp_fd, w->tmp_name, 0);
	writer_free(w);
}

/* Create the fan-out directory of d if needed, making its creation durable. */
static int ensure_fanout(struct store *s, const struct digest *d)
{
	char name[FANOUT_LEN + 1];

	memcpy(name, d->hex, FANOUT_LEN);
	name[FANOUT_LEN] = '\0';
	if (mkdirat(s->blobs_fd, name, 0755) == 0)
		return fsync(s->blobs_fd) < 0 ? -errno : 0;
	return errno == EEXIST ? 0 : -errno;
}

int store_writer_commit(struct store_writer *w, const char *media_type, struct digest *ret_digest)
{
	struct store *s = w->store;
	char rel[FANOUT_LEN + 1 + DIGEST_HEX_LEN + 1];
	char fanout[FANOUT_LEN + 1];
	struct digest actual;
	int lock = -1, r;

	digest_hasher_final(w->hasher, &actual);
	if (w->has_expected && !digest_equal(&actual, &w->expected)) {
		r = -EBADMSG;
		goto out_abort;
	}
	if (fsync(w->fd) < 0) {
		r = -errno;
		goto out_abort;
	}
	fault(STORE_STAGE_SYNCED);

	r = store_lock(s, false, &lock);
	if (r < 0)
		goto out_abort;
	r = ensure_fanout(s, &actual);
	if (r < 0)
		goto out_abort;
	blob_relpath(&actual, rel);
	/* Replacing an existing copy is harmless: both hold the same bytes. */
	if (renameat(s->tmp_fd, w->tmp_name, s->blobs_fd, rel) < 0) {
		r = -errno;
		goto out_abort;
	}
	fault(STORE_STAGE_RENAMED);
	memcpy(fanout, actual.hex, FANOUT_LEN);
	fanout[FANOUT_LEN] = '\0';
	r = store_fsync_dir_at(s->blobs_fd, fanout);
	if (r == 0)
		r = index_put_blob(s->index, &actual, (int64_t)w->size, media_type, time(NULL));
	/* writer_free() gives the bytes back to tmp/'s count: they are in blobs/ now */
	/*
	 * On failure here the blob is in place and verified; recovery indexes
	 * it on the next open. Report the error all the same.
	 */
	if (r == 0)
		fault(STORE_STAGE_INDEXED);
	store_unlock(lock);
	if (r == 0 && ret_digest)
		*ret_digest = actual;
	writer_free(w);
	if (r == 0 && s->commit_hook)
		s->commit_hook(&actual, s->commit_ctx);
	return r;
out_abort:
	store_unlock(lock);
	store_writer_abort(w);
	return r;
}

void store_set_commit_hook(struct store *s, store_commit_fn fn, void *ctx)
{
	s->commit_hook = fn;
	s->commit_ctx = ctx;
}

int store_put(struct store *s, const void *data, size_t len, const struct digest *expected,
	      const char *media_type, struct digest *ret_digest)
{
	struct store_writer *w;
	int r = store_writer_new(s, expected, &w);

	if (r < 0)
		return r;
	r = store_writer_write(w, data, len);
	if (r < 0) {
		store_writer_abort(w);
		return r;
	}
	return store_writer_commit(w, media_type, ret_digest);
}

int store_remove_blob(struct store *s, const struct digest *d)
{
	char rel[FANOUT_LEN + 1 + DIGEST_HEX_LEN + 1];
	int r;

	if (store_ingest_active(s, d))
		return -EBUSY;
	/* Row first: a crash between leaves a file that recovery indexes again. */
	r = index_remove_blob(s->index, d);
	if (r < 0 && r != -ENOENT)
		return r;
	blob_relpath(d, rel);
	if (unlinkat(s->blobs_fd, rel, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int store_quarantine_blob(struct store *s, const struct digest *d)
{
	char rel[FANOUT_LEN + 1 + DIGEST_HEX_LEN + 1];
	int r;

	blob_relpath(d, rel);
	if (renameat(s->blobs_fd, rel, s->quarantine_fd, d->hex) < 0)
		return -errno;
	if (fsync(s->quarantine_fd) < 0)
		return -errno;
	r = index_remove_blob(s->index, d);
	return r == -ENOENT ? 0 : r;
}

/* Call fn for each entry of the directory fd (which stays open), skipping dot files. */
static int scan_dir(int fd, int (*fn)(int dir_fd, const char *name, void *ctx), void *ctx)
{
	DIR *dir;
	struct dirent *entry;
	int dup_fd = dup(fd), r = 0;

	if (dup_fd < 0)
		return -errno;
	dir = fdopendir(dup_fd);
	if (!dir) {
		close(dup_fd);
		return -errno;
	}
	rewinddir(dir);
	while (r == 0 && (entry = readdir(dir)))
		if (entry->d_name[0] != '.')
			r = fn(fd, entry->d_name, ctx);
	closedir(dir);
	return r;
}

static int remove_if_stale(int tmp_fd, const char *name, void *ctx)
{
	(void)ctx;
	if (!temp_file_is_live(tmp_fd, name))
		unlinkat(tmp_fd, name, 0);
	return 0;
}

static int collect_blob_file(int fanout_fd, const char *name, void *ctx)
{
	struct digest d;

	if (digest_parse_hex(name, &d) < 0)
		return 0; /* not ours: never served, left for a human */
	return digest_list_append(ctx, &d);
}

static int collect_fanout(int blobs_fd, const char *name, void *ctx)
{
	int fd, r;

	if (strlen(name) != FANOUT_LEN)
		return 0;
	fd = openat(blobs_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	r = scan_dir(fd, collect_blob_file, ctx);
	close(fd);
	return r;
}

/* Index a committed file that has no row (its writer died after rename). */
static int index_orphan_file(struct store *s, const struct digest *d)
{
	char rel[FANOUT_LEN + 1 + DIGEST_HEX_LEN + 1];
	struct stat st;

	blob_relpath(d, rel);
	if (fstatat(s->blobs_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return 0;
	return index_put_blob(s->index, d, st.st_size, NULL, st.st_mtime);
}

/* Make the index and the blob files agree, by merging two sorted lists. */
static int reconcile(struct store *s)
{
	struct digest_list files = {0}, rows = {0};
	size_t i = 0, j = 0;
	int r;

	r = scan_dir(s->blobs_fd, collect_fanout, &files);
	if (r == 0)
		r = index_foreach_digest(s->index, digest_list_collect, &rows);
	if (r < 0)
		goto out;
	digest_list_sort(&files);
	while (r == 0 && (i < files.len || j < rows.len)) {
		int cmp = i == files.len ? 1
			  : j == rows.len
				  ? -1
				  : memcmp(files.items[i].hex, rows.items[j].hex, DIGEST_HEX_LEN);

		if (cmp < 0) {
			r = index_orphan_file(s, &files.items[i++]);
		} else if (cmp > 0) {
			r = index_remove_blob(s->index, &rows.items[j++]);
			if (r == -ENOENT)
				r = 0;
		} else {
			i++;
			j++;
		}
	}
out:
	digest_list_free(&files);
	digest_list_free(&rows);
	return r;
}

static int recover(struct store *s)
{
	int lock = -1, r = store_lock(s, true, &lock);

	if (r < 0)
		return r;
	r = scan_dir(s->tmp_fd, remove_if_stale, NULL);
	if (r == 0)
		r = reconcile(s);
	store_unlock(lock);
	return r;
}

int store_open(const char *dir, struct store **ret)
{
	struct store *s = calloc(1, sizeof(*s));
	char *index_path = NULL;
	int blobs_root = -1, r;

	if (!s)
		return -ENOMEM;
	s->dir_fd = s->blobs_fd = s->tmp_fd = s->quarantine_fd = -1;
	s->max_writer_bytes = STORE_DEFAULT_MAX_WRITER_BYTES;
	s->max_tmp_bytes = STORE_DEFAULT_MAX_TMP_BYTES;
	s->dir = strdup(dir);
	if (!s->dir) {
		r = -ENOMEM;
		goto out_close;
	}
	r = mkdir_p(dir);
	if (r < 0)
		goto out_close;
	s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dir_fd < 0) {
		r = -errno;
		goto out_close;
	}
	r = open_subdir(s->dir_fd, "blobs", &blobs_root);
	if (r == 0)
		r = open_subdir(blobs_root, "sha256", &s->blobs_fd);
	if (blobs_root >= 0)
		close(blobs_root);
	if (r == 0)
		r = open_subdir(s->dir_fd, "tmp", &s->tmp_fd);
	if (r == 0)
		r = open_subdir(s->dir_fd, "quarantine", &s->quarantine_fd);
	if (r < 0)
		goto out_close;
	if (asprintf(&index_path, "%s/index.db", dir) < 0) {
		r = -ENOMEM;
		goto out_close;
	}
	r = index_open(index_path, &s->index);
	free(index_path);
	if (r < 0)
		goto out_close;
	r = recover(s);
	if (r < 0)
		goto out_close;
	*ret = s;
	return 0;
out_close:
	store_close(s);
	return r;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	index_close(s->index);
	if (s->quarantine_fd >= 0)
		close(s->quarantine_fd);
	if (s->tmp_fd >= 0)
		close(s->tmp_fd);
	if (s->blobs_fd >= 0)
		close(s->blobs_fd);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	free(s->dir);
	free(s);
}
