/*
 * cache_io: opening and reading the cache namespace's files, and the
 * handles of its open files.
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

struct fs_handle *fs_handle_new(enum fs_handle_kind kind, struct fs_node *node)
{
	struct fs_handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->kind = kind;
	h->node = node;
	h->fd = -1;
	pthread_mutex_init(&h->lock, NULL);
	return h;
}

void fs_handle_free(struct fs *fs, struct fs_handle *h)
{
	if (h->backed) /* an open whose reply failed: no request to close the id with */
		fs_backing_put(fs, NULL, &fs->nodes_lock, &h->node->backing);
	if (h->fd >= 0)
		close(h->fd);
	fetch_release(h->fetch);
	if (h->writer)
		store_writer_abort(h->writer);
	if (h->writable) {
		struct fs_level *lv = &fs->levels[h->level];

		atomic_fetch_sub(&lv->writers, 1);
		atomic_fetch_sub(&lv->buffer_bytes, (int_fast64_t)h->cap);
		atomic_fetch_sub(&lv->tmp_bytes, (int_fast64_t)h->ingest_bytes);
	}
	fs_free_dirents(h->entries, h->n_entries);
	free(h->data);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* ---- opening files -------------------------------------------------------- */

static bool wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

/* A handle on a committed blob file (it takes fd); its size is read once. */
static int fd_handle(struct fs_node *node, int fd, struct fs_handle **ret)
{
	struct fs_handle *h;
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	h = fs_handle_new(FS_HANDLE_FD, node);
	if (!h) {
		close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	h->file_size = (uint64_t)st.st_size;
	*ret = h;
	return 0;
}

/* A blob: spliced from the store, or followed while it downloads. */
static int open_blob(struct fs *fs, fuse_req_t req, struct fs_node *node, struct fuse_file_info *fi,
		     struct fs_handle **ret)
{
	char registry[FS_NAME_MAX + 1], repository[FS_NAME_MAX + 1];
	struct fs_handle *h;
	struct fetch *fx;
	int fd, r;

	if (wants_write(fi->flags))
		return -EACCES;
	for (;;) {
		r = store_open_blob(fs->store, &node->digest, &fd);
		if (r == 0) {
			r = fd_handle(node, fd, &h);
			if (r < 0)
				return r;
			fi->keep_cache = 1; /* a blob never changes */
			/* or the kernel reads the store's file itself */
			h->backed =
				fs_backing_get(fs, req, &fs->nodes_lock, &node->backing, h->fd, fi);
			atomic_fetch_add(&fs->stats.blob_hits, 1);
			*ret = h;
			return 0;
		}
		if (!fs_node_origin(fs, node, registry, repository) || node->size < 0)
			return -ENOENT;
		r = fetch_start(fs->fetcher, registry, repository, &node->digest, node->size, &fx);
		if (r == -EEXIST)
			continue; /* committed just now: open it from the store */
		if (r < 0)
			return r == -EAGAIN || r == -EBUSY ? r : -EIO; /* a limit, or broken */
		h = fs_handle_new(FS_HANDLE_FETCH, node);
		if (!h) {
			fetch_release(fx);
			return -ENOMEM;
		}
		h->fetch = fx;
		/* nothing unverified may stay in the page cache */
		fi->direct_io = 1;
		atomic_fetch_add(&fs->stats.blob_misses, 1);
		*ret = h;
		return 0;
	}
}

static int open_local_tag(struct fs *fs, fuse_req_t req, struct fs_node *node,
			  struct fuse_file_info *fi, struct fs_handle **ret)
{
	struct index_tag tag;
	int fd, r;

	if (wants_write(fi->flags)) {
		fi->direct_io = 1;
		return fs_handle_new_writable(fs, fs_level_of(fuse_req_ctx(req)->pid),
					      FS_HANDLE_BUFFER, node, ret);
	}
	r = index_get_tag(store_index(fs->store), REF_LOCAL_REGISTRY, node->repository, node->tag,
			  &tag);
	if (r == 0)
		r = store_open_blob(fs->store, &tag.manifest, &fd);
	return r < 0 ? r : fd_handle(node, fd, ret);
}

/* .dindfs/stats, or .dindfs/whoami for the caller of req: made now, read as it is. */
static int open_generated(struct fs *fs, fuse_req_t req, struct fs_node *node,
			  struct fuse_file_info *fi, struct fs_handle **ret)
{
	struct fs_handle *h;
	int r;

	if (wants_write(fi->flags))
		return -EACCES;
	h = fs_handle_new(FS_HANDLE_BUFFER, node);
	if (!h)
		return -ENOMEM;
	if (node->kind == FS_WHOAMI)
		r = fs_whoami_json(fuse_req_ctx(req)->pid, &h->data, &h->len);
	else if (node->kind == FS_REGISTRIES)
		r = fs_registries_text(fs, &h->data, &h->len);
	else
		r = fs_stats_json(fs, &h->data, &h->len);
	if (r < 0) {
		fs_handle_free(fs, h);
		return r;
	}
	fi->direct_io = 1;
	*ret = h;
	return 0;
}

void fs_cache_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *node;
	struct fs_handle *h = NULL;
	int r;

	node = fs_node_of(fs, ino);
	switch (node->kind) {
	case FS_BLOB:
		r = open_blob(fs, req, node, fi, &h);
		break;
	case FS_LOCAL_TAG:
		r = open_local_tag(fs, req, node, fi, &h);
		break;
	case FS_STATS:
	case FS_WHOAMI:
	case FS_REGISTRIES:
		r = open_generated(fs, req, node, fi, &h);
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
	fi->fh = (uintptr_t)h;
	if (fuse_reply_open(req, fi) == -ENOENT) /* the opener was interrupted */
		fs_handle_free(fs, h);
}

/* ---- reading -------------------------------------------------------------- */

static void read_fd(struct fs *fs, fuse_req_t req, struct fs_handle *h, size_t size, off_t off)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = h->fd;
	buf.buf[0].pos = off;
	if (off >= 0 && (uint64_t)off < h->file_size)
		atomic_fetch_add(&fs->stats.bytes_served, h->file_size - (uint64_t)off < size
								  ? h->file_size - (uint64_t)off
								  : size);
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/* A read of a downloading blob that waits for its bytes, on a worker. */
struct fetch_read_job {
	struct fs_handle *h; /* the kernel keeps the file open while it reads */
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
		n = fetch_read(j->h->fetch, j->buf, j->size, j->off, FETCH_WAIT_MS);
	} while (n == -ETIMEDOUT && !fuse_session_exited(fs->session) &&
		 !fuse_req_interrupted(req));
	if (n == -ETIMEDOUT)
		n = fuse_req_interrupted(req) ? -EINTR : -EIO;
	fetch_reply(fs, req, j->buf, n);
	free(j);
}

/* Bytes that have arrived are read here; waiting for the rest is a worker's. */
static void read_fetch(struct fs *fs, fuse_req_t req, struct fs_handle *h, size_t size, off_t off)
{
	struct fetch_read_job *j = malloc(sizeof(*j) + (size ? size : 1));
	ssize_t n;
	int r;

	if (!j)
		return (void)fuse_reply_err(req, ENOMEM);
	n = fetch_read(h->fetch, j->buf, size, off, 0);
	if (n != -ETIMEDOUT) {
		fetch_reply(fs, req, j->buf, n);
		free(j);
		return;
	}
	j->h = h;
	j->size = size;
	j->off = off;
	r = fs_upstream_submit(fs->upstream, req, fetch_registry(h->fetch), upstream_read, j);
	if (r < 0) {
		free(j);
		fuse_reply_err(req, -r);
	}
}

void fs_cache_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *h;

	h = fs_handle_of(fi);
	switch (h->kind) {
	case FS_HANDLE_FD:
		return read_fd(fs, req, h, size, off);
	case FS_HANDLE_FETCH:
		return read_fetch(fs, req, h, size, off);
	case FS_HANDLE_BUFFER:
		pthread_mutex_lock(&h->lock);
		if (off < 0 || (size_t)off >= h->len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, h->data + off,
				       h->len - (size_t)off < size ? h->len - (size_t)off : size);
		pthread_mutex_unlock(&h->lock);
		return;
	default:
		fuse_reply_err(req, EBADF);
	}
}

/* SEEK_DATA and SEEK_HOLE (the kernel does the rest): a cache file has no holes. */
void fs_cache_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		    struct fuse_file_info *fi)
{
	struct fs_handle *h = fs_handle_of(fi);
	off_t size;

	if (h->kind == FS_HANDLE_FD) {
		size = lseek(h->fd, off, whence);
		return size < 0 ? (void)fuse_reply_err(req, errno)
				: (void)fuse_reply_lseek(req, size);
	}
	size = h->kind == FS_HANDLE_FETCH ? h->node->size : (off_t)h->len;
	if ((whence != SEEK_DATA && whence != SEEK_HOLE) || off < 0)
		return (void)fuse_reply_err(req, EINVAL);
	if (off >= size)
		return (void)fuse_reply_err(req, ENXIO);
	fuse_reply_lseek(req, whence == SEEK_DATA ? off : size);
}
