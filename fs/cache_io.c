/*
 * cache_io: opening and reading the cache namespace's files, and the
 * state of its open files (struct fs_file).
 *
 * Blob reads splice from the blob file (fuse_reply_data with an fd
 * buffer); reads of a blob that is still downloading wait for its bytes in
 * short slices, so a shutdown is never held up by a slow upstream.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_ops.h"
#include "ref.h"

/* How long a read of a downloading blob waits before it checks for shutdown. */
#define FETCH_WAIT_MS 200

struct fs_file *fs_file_new(enum fs_file_kind kind, struct fs_node *node)
{
	struct fs_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->kind = kind;
	f->node = node;
	f->fd = -1;
	pthread_mutex_init(&f->lock, NULL);
	return f;
}

void fs_file_free(struct fs *fs, struct fs_file *f)
{
	if (f->backed) /* an open whose reply failed: no request to close the id with */
		fs_backing_put(fs, NULL, &fs->nodes_lock, &f->node->backing);
	if (f->fd >= 0)
		close(f->fd);
	fetch_release(f->fetch);
	if (f->writer)
		store_writer_abort(f->writer);
	if (f->writable) {
		struct fs_level *lv = &fs->levels[f->level];

		atomic_fetch_sub(&lv->writers, 1);
		atomic_fetch_sub(&lv->buffer_bytes, (int_fast64_t)f->cap);
		atomic_fetch_sub(&lv->tmp_bytes, (int_fast64_t)f->ingest_bytes);
	}
	fs_free_dirents(f->entries, f->n_entries);
	free(f->data);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* ---- opening files -------------------------------------------------------- */

static bool wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

/* An open committed blob (it takes fd); its size is read once. */
static int fd_file(struct fs_node *node, int fd, struct fs_file **ret)
{
	struct fs_file *f;
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	f = fs_file_new(FS_FILE_FD, node);
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	f->fd = fd;
	f->file_size = (uint64_t)st.st_size;
	*ret = f;
	return 0;
}

/* A blob: spliced from the store, or followed while it downloads. */
static int open_blob(struct fs *fs, fuse_req_t req, struct fs_node *node, struct fuse_file_info *fi,
		     struct fs_file **ret)
{
	char registry[FS_NAME_MAX + 1], repository[FS_NAME_MAX + 1];
	struct fs_file *f;
	struct fetch *fx;
	int64_t size;
	int fd, r;

	if (wants_write(fi->flags))
		return -EACCES;
	for (;;) {
		r = store_open_blob(fs->store, &node->digest, &fd);
		if (r == 0) {
			r = fd_file(node, fd, &f);
			if (r < 0)
				return r;
			fi->keep_cache = 1; /* a blob never changes */
			/* or the kernel reads the store's file itself */
			f->backed =
				fs_backing_get(fs, req, &fs->nodes_lock, &node->backing, f->fd, fi);
			atomic_fetch_add(&fs->stats.blob_hits, 1);
			*ret = f;
			return 0;
		}
		size = fs_node_size(fs, node);
		if (!fs_node_origin(fs, node, registry, repository) || size < 0)
			return -ENOENT;
		r = fetch_start(fs->fetcher, registry, repository, &node->digest, size, &fx);
		if (r == -EEXIST)
			continue; /* committed just now: open it from the store */
		if (r < 0)
			return r == -EAGAIN || r == -EBUSY ? r : -EIO; /* a limit, or broken */
		f = fs_file_new(FS_FILE_FETCH, node);
		if (!f) {
			fetch_release(fx);
			return -ENOMEM;
		}
		f->fetch = fx;
		/* nothing unverified may stay in the page cache */
		fi->direct_io = 1;
		atomic_fetch_add(&fs->stats.blob_misses, 1);
		*ret = f;
		return 0;
	}
}

static int open_local_tag(struct fs *fs, fuse_req_t req, struct fs_node *node,
			  struct fuse_file_info *fi, struct fs_file **ret)
{
	struct index_tag tag;
	int fd, r;

	if (wants_write(fi->flags)) {
		fi->direct_io = 1;
		return fs_file_new_writable(fs, fs_level_of(fuse_req_ctx(req)->pid), FS_FILE_BUFFER,
					    node, ret);
	}
	r = index_get_tag(store_index(fs->store), REF_LOCAL_REGISTRY, node->repository, node->tag,
			  &tag);
	if (r == 0)
		r = store_open_blob(fs->store, &tag.manifest, &fd);
	return r < 0 ? r : fd_file(node, fd, ret);
}

/* .dindfs/stats, or .dindfs/whoami for the caller of req: made now, read as it is. */
static int open_generated(struct fs *fs, fuse_req_t req, struct fs_node *node,
			  struct fuse_file_info *fi, struct fs_file **ret)
{
	struct fs_file *f;
	int r;

	if (wants_write(fi->flags))
		return -EACCES;
	f = fs_file_new(FS_FILE_BUFFER, node);
	if (!f)
		return -ENOMEM;
	if (node->kind == FS_WHOAMI)
		r = fs_whoami_json(fuse_req_ctx(req)->pid, &f->data, &f->len);
	else if (node->kind == FS_REGISTRIES)
		r = fs_registries_text(fs, &f->data, &f->len);
	else
		r = fs_stats_json(fs, &f->data, &f->len);
	if (r < 0) {
		fs_file_free(fs, f);
		return r;
	}
	fi->direct_io = 1;
	*ret = f;
	return 0;
}

void fs_cache_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *node;
	struct fs_file *f = NULL;
	int r;

	node = fs_node_of(fs, ino);
	switch (node->kind) {
	case FS_BLOB:
		r = open_blob(fs, req, node, fi, &f);
		break;
	case FS_LOCAL_TAG:
		r = open_local_tag(fs, req, node, fi, &f);
		break;
	case FS_STATS:
	case FS_WHOAMI:
	case FS_REGISTRIES:
		r = open_generated(fs, req, node, fi, &f);
		break;
	case FS_INGEST_FILE:
		r = -ENOENT; /* only its creator writes it */
		break;
	default:
		r = -EISDIR;
		break;
	}
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fi->fh = (uintptr_t)f;
	if (!fs_reply_open(req, fi)) /* the opener was interrupted */
		fs_file_free(fs, f);
}

/* ---- reading -------------------------------------------------------------- */

static void read_fd(struct fs *fs, fuse_req_t req, struct fs_file *f, size_t size, off_t off)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = f->fd;
	buf.buf[0].pos = off;
	if (off >= 0 && (uint64_t)off < f->file_size)
		atomic_fetch_add(&fs->stats.bytes_served, f->file_size - (uint64_t)off < size
								  ? f->file_size - (uint64_t)off
								  : size);
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/* A read of a downloading blob that waits for its bytes, on a worker. */
struct fetch_read_job {
	struct fs_file *f; /* the kernel keeps the file open while it reads */
	size_t size;
	off_t off;
	char buf[];
};

/* Reply with what fetch_read said (n bytes of buf, or -errno). */
static void fetch_reply(struct fs *fs, fuse_req_t req, const char *buf, ssize_t n)
{
	if (n < 0)
		return (void)fuse_reply_err(req, (int)-n);
	atomic_fetch_add(&fs->stats.bytes_served, (uint64_t)n);
	fuse_reply_buf(req, buf, (size_t)n);
}

static void upstream_read(struct fs *fs, fuse_req_t req, void *arg)
{
	struct fetch_read_job *j = arg;
	ssize_t n;

	do {
		n = fetch_read(j->f->fetch, j->buf, j->size, j->off, FETCH_WAIT_MS);
	} while (n == -ETIMEDOUT && !fuse_session_exited(fs->session) &&
		 !fuse_req_interrupted(req));
	if (n == -ETIMEDOUT)
		n = fuse_req_interrupted(req) ? -EINTR : -EIO;
	fetch_reply(fs, req, j->buf, n);
	free(j);
}

/* Bytes that have arrived are read here; waiting for the rest is a worker's. */
static void read_fetch(struct fs *fs, fuse_req_t req, struct fs_file *f, size_t size, off_t off)
{
	struct fetch_read_job *j = malloc(sizeof(*j) + (size ? size : 1));
	ssize_t n;
	int r;

	if (!j)
		return (void)fuse_reply_err(req, ENOMEM);
	n = fetch_read(f->fetch, j->buf, size, off, 0);
	if (n != -ETIMEDOUT) {
		fetch_reply(fs, req, j->buf, n);
		free(j);
		return;
	}
	j->f = f;
	j->size = size;
	j->off = off;
	r = fs_upstream_submit(fs->upstream, req, fetch_registry(f->fetch), upstream_read, j);
	if (r < 0) {
		free(j);
		fuse_reply_err(req, -r);
	}
}

void fs_cache_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_file *f;

	f = fs_file_of(fi);
	switch (f->kind) {
	case FS_FILE_FD:
		return read_fd(fs, req, f, size, off);
	case FS_FILE_FETCH:
		return read_fetch(fs, req, f, size, off);
	case FS_FILE_BUFFER:
		pthread_mutex_lock(&f->lock);
		if (off < 0 || (size_t)off >= f->len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, f->data + off,
				       f->len - (size_t)off < size ? f->len - (size_t)off : size);
		pthread_mutex_unlock(&f->lock);
		return;
	default:
		fuse_reply_err(req, EBADF);
	}
}

/* SEEK_DATA and SEEK_HOLE (the kernel does the rest): a cache file has no holes. */
void fs_cache_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		    struct fuse_file_info *fi)
{
	struct fs_file *f = fs_file_of(fi);
	off_t size;

	if (f->kind == FS_FILE_FD) {
		size = lseek(f->fd, off, whence);
		return size < 0 ? (void)fuse_reply_err(req, errno)
				: (void)fuse_reply_lseek(req, size);
	}
	if (f->kind == FS_FILE_FETCH) {
		size = fs_node_size(fs_of(req), f->node);
	} else {
		pthread_mutex_lock(&f->lock); /* a local manifest being written */
		size = (off_t)f->len;
		pthread_mutex_unlock(&f->lock);
	}
	if ((whence != SEEK_DATA && whence != SEEK_HOLE) || off < 0)
		return (void)fuse_reply_err(req, EINVAL);
	if (off >= size)
		return (void)fuse_reply_err(req, ENXIO);
	fuse_reply_lseek(req, whence == SEEK_DATA ? off : size);
}
