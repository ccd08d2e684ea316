/*
 * ops: the FUSE low-level operations and the session.
 *
 * Every operation sends exactly one reply. Blob reads splice from the blob
 * file (fuse_reply_data with an fd buffer); reads of a blob that is still
 * downloading wait for its bytes in short slices, so a shutdown is never
 * held up by a slow upstream.
 *
 * An inode of the workspace goes to workspace.c before anything here looks
 * at it (is_ws()); so does the root's "workspace" entry. What the cache
 * namespace cannot do (mkdir, rename, links...) is EACCES for its inodes,
 * and EXDEV between the two families. No operation answers ENOSYS: the
 * kernel would take that as "never again" for the whole mount, the
 * workspace included.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fs_internal.h"
#include "manifest.h"
#include "ref.h"
#include "resolve.h"
#include "workspace.h"

#define XATTR_MEDIA_TYPE "user.dindfs.media_type"
#define XATTR_DIGEST	 "user.dindfs.digest"
/* How long a read of a downloading blob waits before it checks for shutdown. */
#define FETCH_WAIT_MS 200
#define MAX_THREADS   64

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Whether ino belongs to the workspace: its operations are workspace.c's. */
static bool is_ws(struct fs *fs, fuse_ino_t ino)
{
	return fs->ws && fs_ws_owns(fs->ws, ino);
}

static struct fs_handle *handle_of(struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

static struct fs_handle *handle_new(enum fs_handle_kind kind, struct fs_node *node)
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

static void handle_free(struct fs *fs, struct fs_handle *h)
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

/* Reply with the entry of node, counting the lookup the kernel now holds. */
static int fill_entry(struct fs *fs, struct fs_node *node, double timeout,
		      struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = fs_node_ino(fs, node);
	e->entry_timeout = timeout;
	e->attr_timeout =
		node->kind == FS_STATS || node->kind == FS_WHOAMI || node->kind == FS_LOCAL_TAG
			? 0
			: timeout;
	return fs_node_stat(fs, node, &e->attr);
}

/* Resolve name in parent and reply; on a FUSE thread, or a worker when upstream is asked. */
static void lookup_reply(struct fs *fs, fuse_req_t req, struct fs_node *parent, const char *name)
{
	struct fs_node *node, proto;
	struct fuse_entry_param e;
	char key[3 * FS_NAME_MAX + 16];
	double timeout;
	int r;

	r = fs_lookup_child(fs, parent, name, &proto, key, sizeof(key), &timeout);
	if (r == 0)
		r = fs_node_get(fs, fuse_req_ctx(req)->pid, key, &proto, &node);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	if (node->kind == FS_BLOB && parent->kind == FS_REPO_BLOBS_DIR &&
	    strcmp(parent->registry, REF_LOCAL_REGISTRY) != 0)
		fs_node_set_origin(fs, node, parent->registry, parent->repository);
	r = fill_entry(fs, node, timeout, &e);
	if (r < 0) {
		fs_node_forget(fs, node, 1);
		return (void)fuse_reply_err(req, -r);
	}
	if (fuse_reply_entry(req, &e) == -ENOENT) /* the caller was interrupted */
		fs_node_forget(fs, node, 1);
}

/* A lookup that waits for upstream, on a worker. */
struct upstream_lookup {
	struct fs_node *parent; /* the kernel keeps it while the lookup runs */
	char name[];
};

static void upstream_lookup(struct fs *fs, fuse_req_t req, void *arg)
{
	struct upstream_lookup *l = arg;

	if (fuse_req_interrupted(req))
		fuse_reply_err(req, EINTR);
	else
		lookup_reply(fs, req, l->parent, l->name);
	free(l);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct upstream_lookup *l;
	struct fs_node *parent;
	int r;

	if (is_ws(fs, parent_ino))
		return fs_ws_lookup(fs->ws, req, parent_ino, name);
	if (fs->ws && parent_ino == FUSE_ROOT_ID && strcmp(name, FS_WS_NAME) == 0)
		return fs_ws_lookup_root(fs->ws, req);
	parent = fs_node_of(fs, parent_ino);
	if (!fs_lookup_needs_upstream(fs, parent, name))
		return lookup_reply(fs, req, parent, name);
	l = malloc(sizeof(*l) + strlen(name) + 1);
	if (!l)
		return (void)fuse_reply_err(req, ENOMEM);
	l->parent = parent;
	memcpy(l->name, name, strlen(name) + 1);
	r = fs_upstream_submit(fs->upstream, req, parent->registry, upstream_lookup, l);
	if (r < 0) {
		free(l);
		fuse_reply_err(req, -r);
	}
}

static void forget_one(struct fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	if (is_ws(fs, ino))
		fs_ws_forget(fs->ws, ino, nlookup);
	else
		fs_node_forget(fs, fs_node_of(fs, ino), nlookup);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);
	size_t i;

	for (i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *node;
	struct stat st;
	int r;

	if (is_ws(fs, ino))
		return fs_ws_getattr(fs->ws, req, ino, fi);
	node = fs_node_of(fs, ino);
	r = fs_node_stat(fs, node, &st);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	/*
	 * A directory's attributes never change; the kernel checks them on
	 * every path walked through it (default_permissions), so it keeps them.
	 */
	fuse_reply_attr(req, &st,
			node->kind == FS_BLOB	     ? 3600.0
			: fs_kind_is_dir(node->kind) ? 60.0
						     : 0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *node;
	struct fs_handle *h = fi ? handle_of(fi) : NULL;
	struct stat st;
	int r = 0;

	if (is_ws(fs, ino))
		return fs_ws_setattr(fs->ws, req, ino, attr, to_set, fi);
	node = fs_node_of(fs, ino);
	if (node->kind != FS_INGEST_FILE && node->kind != FS_LOCAL_TAG)
		return (void)fuse_reply_err(req, EACCES);
	/* modes and times mean nothing here (cp -p sets them); a size of 0 starts over */
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size != 0 || !h || !h->writable)
			return (void)fuse_reply_err(req, EINVAL);
		pthread_mutex_lock(&h->lock);
		if (h->writer)
			r = store_writer_reset(h->writer);
		h->len = 0;
		pthread_mutex_unlock(&h->lock);
	}
	if (r == 0)
		r = fs_node_stat(fs, node, &st);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fuse_reply_attr(req, &st, 0);
}

/* ---- directories ---------------------------------------------------------- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *node;
	struct fs_handle *h;
	int r;

	if (is_ws(fs, ino))
		return fs_ws_opendir(fs->ws, req, ino, fi);
	node = fs_node_of(fs, ino);
	if (!fs_kind_is_dir(node->kind))
		return (void)fuse_reply_err(req, ENOTDIR);
	h = handle_new(FS_HANDLE_DIR, node);
	if (!h)
		return (void)fuse_reply_err(req, ENOMEM);
	r = fs_list_dir(fs, node, &h->entries, &h->n_entries);
	if (r < 0) {
		handle_free(fs, h);
		return (void)fuse_reply_err(req, -r);
	}
	fi->fh = (uintptr_t)h;
	fuse_reply_open(req, fi);
}

static mode_t dirent_type(enum fs_kind kind)
{
	return fs_kind_is_dir(kind) ? S_IFDIR : S_IFREG;
}

/*
 * A listing of the cache namespace. Its readdirplus entries carry no inode
 * (ino 0): the kernel takes them as names only and looks up what it needs.
 */
static void list_cache_dir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
			   bool plus)
{
	struct fs_handle *h = handle_of(fi);
	char *buf = malloc(size);
	size_t used = 0;
	off_t i;

	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	for (i = off; i >= 0 && (size_t)i < h->n_entries; i++) {
		struct fuse_entry_param e = {.attr = {.st_ino = (ino_t)i + 2,
						      .st_mode = dirent_type(h->entries[i].kind)}};
		const char *name = h->entries[i].name;
		size_t n =
			plus ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e, i + 1)
			     : fuse_add_direntry(req, buf + used, size - used, name, &e.attr,
						 i + 1);

		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, ino))
		return fs_ws_readdir(fs->ws, req, ino, size, off, fi, false);
	list_cache_dir(req, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, ino))
		return fs_ws_readdir(fs->ws, req, ino, size, off, fi, true);
	list_cache_dir(req, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, ino))
		return fs_ws_releasedir(fs->ws, req, ino, fi);
	handle_free(fs, handle_of(fi));
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, ino))
		return fs_ws_fsyncdir(fs->ws, req, ino, datasync, fi);
	fuse_reply_err(req, 0); /* nothing of the cache's waits to be written */
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
	h = handle_new(FS_HANDLE_FD, node);
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
		h = handle_new(FS_HANDLE_FETCH, node);
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

/*
 * A handle that writes, counted in the budgets of its level (fs_level):
 * -EMFILE when the level has all the writers it may have open.
 */
static int writable_handle(struct fs *fs, int level, enum fs_handle_kind kind, struct fs_node *node,
			   struct fs_handle **ret)
{
	struct fs_level *lv = &fs->levels[level];
	struct fs_handle *h;

	if (atomic_fetch_add(&lv->writers, 1) >= fs->limits.level_writers) {
		atomic_fetch_sub(&lv->writers, 1);
		return -EMFILE;
	}
	h = handle_new(kind, node);
	if (!h) {
		atomic_fetch_sub(&lv->writers, 1);
		return -ENOMEM;
	}
	h->writable = true;
	h->level = level;
	*ret = h;
	return 0;
}

static int open_local_tag(struct fs *fs, fuse_req_t req, struct fs_node *node,
			  struct fuse_file_info *fi, struct fs_handle **ret)
{
	struct index_tag tag;
	int fd, r;

	if (wants_write(fi->flags)) {
		fi->direct_io = 1;
		return writable_handle(fs, fs_level_of(fuse_req_ctx(req)->pid), FS_HANDLE_BUFFER,
				       node, ret);
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
	h = handle_new(FS_HANDLE_BUFFER, node);
	if (!h)
		return -ENOMEM;
	if (node->kind == FS_WHOAMI)
		r = fs_whoami_json(fuse_req_ctx(req)->pid, &h->data, &h->len);
	else if (node->kind == FS_REGISTRIES)
		r = fs_registries_text(fs, &h->data, &h->len);
	else
		r = fs_stats_json(fs, &h->data, &h->len);
	if (r < 0) {
		handle_free(fs, h);
		return r;
	}
	fi->direct_io = 1;
	*ret = h;
	return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *node;
	struct fs_handle *h = NULL;
	int r;

	if (is_ws(fs, ino))
		return fs_ws_open(fs->ws, req, ino, fi);
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
		handle_free(fs, h);
}

static int create_ingest(struct fs *fs, pid_t pid, const char *name, struct fs_node **ret_node,
			 struct fs_handle **ret)
{
	static atomic_uint counter;
	struct fs_node proto = {.kind = FS_INGEST_FILE, .size = -1}, *node;
	struct fs_handle *h;
	struct digest d;
	char key[64];
	int r;

	if (digest_parse(name, &d) < 0)
		return -EINVAL;
	r = writable_handle(fs, fs_level_of(pid), FS_HANDLE_INGEST, NULL, &h);
	if (r < 0)
		return r;
	r = store_writer_new(fs->store, &d, &h->writer);
	if (r == 0) {
		proto.digest = d;
		snprintf(key, sizeof(key), "i:%u", atomic_fetch_add(&counter, 1));
		r = fs_node_get(fs, pid, key, &proto, &node);
	}
	if (r < 0) {
		handle_free(fs, h);
		return r;
	}
	h->node = node;
	*ret_node = node;
	*ret = h;
	return 0;
}

static int create_local_tag(struct fs *fs, pid_t pid, const struct fs_node *dir, const char *name,
			    struct fs_node **ret_node, struct fs_handle **ret)
{
	struct fs_node proto = {.kind = FS_LOCAL_TAG, .size = -1}, *node;
	struct fs_handle *h;
	char key[2 * FS_NAME_MAX + 8];
	int r;

	if (ref_validate_tag(name) < 0)
		return -EINVAL;
	snprintf(proto.registry, sizeof(proto.registry), "%s", REF_LOCAL_REGISTRY);
	snprintf(proto.repository, sizeof(proto.repository), "%s", dir->repository);
	snprintf(proto.tag, sizeof(proto.tag), "%s", name);
	snprintf(key, sizeof(key), "t:%s:%s", dir->repository, name);
	r = writable_handle(fs, fs_level_of(pid), FS_HANDLE_BUFFER, NULL, &h);
	if (r < 0)
		return r;
	r = fs_node_get(fs, pid, key, &proto, &node);
	if (r < 0) {
		handle_free(fs, h);
		return r;
	}
	h->node = node;
	*ret_node = node;
	*ret = h;
	return 0;
}

static void op_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *parent, *node = NULL;
	struct fs_handle *h = NULL;
	struct fuse_entry_param e;
	int r;

	if (is_ws(fs, parent_ino))
		return fs_ws_create(fs->ws, req, parent_ino, name, mode, fi);
	parent = fs_node_of(fs, parent_ino);
	if (parent->kind == FS_INGEST_DIR)
		r = create_ingest(fs, fuse_req_ctx(req)->pid, name, &node, &h);
	else if (parent->kind == FS_MANIFESTS_DIR &&
		 strcmp(parent->registry, REF_LOCAL_REGISTRY) == 0)
		r = create_local_tag(fs, fuse_req_ctx(req)->pid, parent, name, &node, &h);
	else
		r = -EACCES;
	if (r == 0)
		r = fill_entry(fs, node, 0, &e);
	if (r < 0) {
		if (h)
			handle_free(fs, h);
		if (node)
			fs_node_forget(fs, node, 1);
		return (void)fuse_reply_err(req, -r);
	}
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		handle_free(fs, h);
		fs_node_forget(fs, node, 1);
	}
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

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *h;

	if (is_ws(fs, ino))
		return fs_ws_read(fs->ws, req, ino, size, off, fi);
	h = handle_of(fi);
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

/* ---- writing -------------------------------------------------------------- */

/* A local manifest's bytes, in memory: its level's buffer budget grows with it (ENOBUFS). */
static int buffer_write(struct fs *fs, struct fs_handle *h, const char *data, size_t size,
			off_t off)
{
	struct fs_level *lv = &fs->levels[h->level];
	size_t end;

	if (off < 0 || (uint64_t)off + size > MANIFEST_MAX_SIZE)
		return -EFBIG;
	end = (size_t)off + size;
	if (end > h->cap) {
		size_t cap = h->cap ? h->cap : 4096, more;
		char *p;

		while (cap < end)
			cap *= 2;
		more = cap - h->cap;
		if (atomic_fetch_add(&lv->buffer_bytes, (int_fast64_t)more) + (int64_t)more >
		    fs->limits.level_buffer_bytes) {
			atomic_fetch_sub(&lv->buffer_bytes, (int_fast64_t)more);
			return -ENOBUFS;
		}
		p = realloc(h->data, cap);
		if (!p) {
			atomic_fetch_sub(&lv->buffer_bytes, (int_fast64_t)more);
			return -ENOMEM;
		}
		h->data = p;
		h->cap = cap;
	}
	if ((size_t)off > h->len)
		memset(h->data + h->len, 0, (size_t)off - h->len);
	memcpy(h->data + off, data, size);
	if (end > h->len)
		h->len = end;
	return 0;
}

/*
 * An ingest only appends (store_writer_pwrite: EINVAL elsewhere), within
 * its level's share of tmp/ (EDQUOT) and the store's caps (EFBIG, ENOSPC).
 */
static int ingest_write(struct fs *fs, struct fs_handle *h, const char *data, size_t size,
			off_t off)
{
	struct fs_level *lv = &fs->levels[h->level];
	int r;

	if (off < 0 || (uint64_t)off != store_writer_size(h->writer))
		return -EINVAL;
	if (atomic_fetch_add(&lv->tmp_bytes, (int_fast64_t)size) + (int64_t)size >
	    fs->limits.level_tmp_bytes) {
		atomic_fetch_sub(&lv->tmp_bytes, (int_fast64_t)size);
		return -EDQUOT;
	}
	r = store_writer_pwrite(h->writer, data, size, (uint64_t)off);
	if (r < 0)
		atomic_fetch_sub(&lv->tmp_bytes, (int_fast64_t)size);
	else
		h->ingest_bytes += size;
	return r;
}

static int cache_write(struct fs *fs, struct fs_handle *h, const char *data, size_t size, off_t off)
{
	int r;

	if (!h->writable)
		return -EBADF;
	pthread_mutex_lock(&h->lock);
	if (h->done)
		r = -EIO; /* already committed at a flush: a blob never changes */
	else if (h->kind == FS_HANDLE_INGEST)
		r = ingest_write(fs, h, data, size, off);
	else
		r = buffer_write(fs, h, data, size, off);
	pthread_mutex_unlock(&h->lock);
	return r;
}

/* Workspace writes go on as they came (spliced); the cache's want the bytes in memory. */
static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	size_t size = fuse_buf_size(in);
	struct fuse_bufvec mem = FUSE_BUFVEC_INIT(size);
	char *copy = NULL;
	ssize_t n;
	int r;

	if (is_ws(fs, ino))
		return fs_ws_write_buf(fs->ws, req, ino, in, off, fi);
	if (in->count == 1 && !(in->buf[0].flags & FUSE_BUF_IS_FD)) {
		mem.buf[0].mem = in->buf[0].mem;
	} else {
		copy = malloc(size ? size : 1);
		if (!copy)
			return (void)fuse_reply_err(req, ENOMEM);
		mem.buf[0].mem = copy;
		n = fuse_buf_copy(&mem, in, 0);
		if (n < 0 || (size_t)n != size) {
			free(copy);
			return (void)fuse_reply_err(req, n < 0 ? (int)-n : EIO);
		}
	}
	r = cache_write(fs, handle_of(fi), mem.buf[0].mem, size, off);
	free(copy);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fuse_reply_write(req, size);
}

/*
 * A descriptor can be closed, and so flushed, several times (a shell dups
 * it before cat writes), so a flush commits only content that is whole:
 * bytes that match their digest, a manifest whose blobs are all here. Until
 * then each flush reports what is wrong and writing goes on; release drops
 * whatever was never committed.
 */
static int commit_ingest(struct fs *fs, struct fs_handle *h)
{
	struct store_writer *w = h->writer;
	int r = store_writer_verify(w);

	if (r < 0)
		return -EIO;
	h->writer = NULL;
	r = store_writer_commit(w, NULL, NULL);
	/* committed or dropped, its bytes are out of tmp/ */
	atomic_fetch_sub(&fs->levels[h->level].tmp_bytes, (int_fast64_t)h->ingest_bytes);
	h->ingest_bytes = 0;
	if (r < 0)
		fs_log(fs, "ingest of sha256:%s failed: %s", h->node->digest.hex, strerror(-r));
	return r < 0 ? -EIO : 0;
}

/* Why a local manifest cannot be committed, or 0; *ret gets it parsed. */
static int check_local_manifest(struct fs *fs, struct fs_handle *h, struct manifest **ret,
				char *why, size_t why_size)
{
	struct digest_list children = {0};
	size_t i;
	int r = manifest_parse(h->data, h->len, NULL, ret);

	if (r < 0) {
		snprintf(why, why_size, "not a manifest we can use");
		return -EINVAL;
	}
	r = manifest_children(*ret, &children);
	for (i = 0; r == 0 && i < children.len; i++) {
		if (!store_has_blob(fs->store, &children.items[i])) {
			snprintf(why, why_size, "blob sha256:%s is not in the store",
				 children.items[i].hex);
			r = -EINVAL;
		}
	}
	digest_list_free(&children);
	if (r < 0) {
		manifest_free(*ret);
		*ret = NULL;
	}
	return r;
}

/*
 * A new local tag needs room in its level's count (-EDQUOT); looked at
 * before the manifest goes into the store, so that a refused one leaves
 * nothing. index_put_counted_tag() decides for certain.
 */
static int local_tag_fits(struct fs *fs, struct fs_handle *h)
{
	struct index *idx = store_index(fs->store);
	struct index_tag tag;
	int64_t n;

	if (index_get_tag(idx, REF_LOCAL_REGISTRY, h->node->repository, h->node->tag, &tag) == 0)
		return 0; /* an overwrite */
	if (index_count_tags(idx, REF_LOCAL_REGISTRY, h->level, &n) == 0 &&
	    n >= fs->limits.level_local_tags)
		return -EDQUOT;
	return 0;
}

/* A manifest written to registry/local/<repo>/manifests/<tag>: all its blobs must be here. */
static int commit_local_manifest(struct fs *fs, struct fs_handle *h)
{
	const struct fs_node *node = h->node;
	struct manifest *m = NULL;
	struct digest d;
	char why[128];
	int r = check_local_manifest(fs, h, &m, why, sizeof(why));

	if (r < 0)
		return r;
	r = local_tag_fits(fs, h);
	if (r == 0)
		r = store_put(fs->store, h->data, h->len, NULL, m->media_type, &d);
	if (r == 0)
		r = resolve_record(fs->store, REF_LOCAL_REGISTRY, node->repository, &d,
				   (int64_t)h->len, m);
	if (r == 0)
		r = index_put_counted_tag(store_index(fs->store), REF_LOCAL_REGISTRY,
					  node->repository, node->tag, &d, time(NULL), h->level,
					  fs->limits.level_local_tags);
	manifest_free(m);
	if (r == -EDQUOT) {
		fs_log(fs, "local/%s:%s refused: level %d has %lld local tags, its limit",
		       node->repository, node->tag, h->level,
		       (long long)fs->limits.level_local_tags);
		return r;
	}
	if (r < 0)
		fs_log(fs, "local/%s:%s: cannot record it: %s", node->repository, node->tag,
		       strerror(-r));
	return r < 0 ? -EIO : 0;
}

/* At release: say why what was written never became a blob or an image. */
static void log_refusal(struct fs *fs, struct fs_handle *h)
{
	struct manifest *m = NULL;
	char why[128];

	if (h->kind == FS_HANDLE_INGEST) {
		if (h->writer && store_writer_size(h->writer) > 0)
			fs_log(fs, "ingest of sha256:%s refused: the bytes do not match the digest",
			       h->node->digest.hex);
	} else if (h->len > 0 && check_local_manifest(fs, h, &m, why, sizeof(why)) < 0) {
		fs_log(fs, "local/%s:%s refused: %s", h->node->repository, h->node->tag, why);
	}
	manifest_free(m);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *h;
	bool committed = false;
	int r = 0;

	if (is_ws(fs, ino))
		return fs_ws_flush(fs->ws, req, ino, fi);
	h = handle_of(fi);
	if (!h->writable)
		return (void)fuse_reply_err(req, 0);
	pthread_mutex_lock(&h->lock);
	if (!h->done) {
		r = h->kind == FS_HANDLE_INGEST ? commit_ingest(fs, h)
						: commit_local_manifest(fs, h);
		h->done = committed = r == 0;
	}
	pthread_mutex_unlock(&h->lock);
	if (committed)
		fs_gc_kick(fs);
	fuse_reply_err(req, -r);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *h;

	if (is_ws(fs, ino))
		return fs_ws_release(fs->ws, req, ino, fi);
	h = handle_of(fi);
	if (h->writable && !h->done)
		log_refusal(fs, h);
	if (h->backed) {
		fs_backing_put(fs, req, &fs->nodes_lock, &h->node->backing);
		h->backed = false;
	}
	handle_free(fs, h); /* what was never committed is dropped */
	fuse_reply_err(req, 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fs_node *parent;
	int r = -EACCES;

	if (is_ws(fs, parent_ino))
		return fs_ws_unlink(fs->ws, req, parent_ino, name);
	parent = fs_node_of(fs, parent_ino);
	/* a saved image can be forgotten; the cache itself only shrinks through GC */
	if (parent->kind == FS_MANIFESTS_DIR && strcmp(parent->registry, REF_LOCAL_REGISTRY) == 0)
		r = index_remove_tag(store_index(fs->store), REF_LOCAL_REGISTRY, parent->repository,
				     name);
	fuse_reply_err(req, -r);
}

/* ---- xattrs and statfs ---------------------------------------------------- */

/* The digest a file shows: its own, or a local tag's current manifest. */
static int node_digest(struct fs *fs, const struct fs_node *node, struct digest *ret)
{
	struct index_tag tag;

	if (node->kind == FS_BLOB) {
		*ret = node->digest;
		return 0;
	}
	if (node->kind == FS_LOCAL_TAG && index_get_tag(store_index(fs->store), REF_LOCAL_REGISTRY,
							node->repository, node->tag, &tag) == 0) {
		*ret = tag.manifest;
		return 0;
	}
	return -ENODATA;
}

static void reply_xattr_value(fuse_req_t req, const char *value, size_t size)
{
	size_t len = strlen(value);

	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fs_of(req);
	struct index_blob row;
	struct digest d;
	char value[INDEX_NAME_MAX + 1];

	if (is_ws(fs, ino))
		return fs_ws_getxattr(fs->ws, req, ino, name, size);
	if (node_digest(fs, fs_node_of(fs, ino), &d) < 0)
		return (void)fuse_reply_err(req, ENODATA);
	if (strcmp(name, XATTR_DIGEST) == 0) {
		digest_format(&d, value);
	} else if (strcmp(name, XATTR_MEDIA_TYPE) == 0) {
		if (index_get_blob(store_index(fs->store), &d, &row) < 0 || !*row.media_type)
			return (void)fuse_reply_err(req, ENODATA);
		snprintf(value, sizeof(value), "%s", row.media_type);
	} else {
		return (void)fuse_reply_err(req, ENODATA);
	}
	reply_xattr_value(req, value, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char names[] = XATTR_MEDIA_TYPE "\0" XATTR_DIGEST;
	struct fs *fs = fs_of(req);
	struct digest d;

	if (is_ws(fs, ino))
		return fs_ws_listxattr(fs->ws, req, ino, size);
	if (node_digest(fs, fs_node_of(fs, ino), &d) < 0) {
		if (size == 0)
			return (void)fuse_reply_xattr(req, 0);
		return (void)fuse_reply_buf(req, NULL, 0);
	}
	if (size == 0)
		fuse_reply_xattr(req, sizeof(names));
	else if (size < sizeof(names))
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names, sizeof(names));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs st;

	if (is_ws(fs, ino))
		return fs_ws_statfs(fs->ws, req, ino);
	if (statvfs(store_dir(fs->store), &st) < 0)
		return (void)fuse_reply_err(req, errno);
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

/* ---- what only the workspace does ------------------------------------------ */

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);

	struct fs_node *node;

	if (is_ws(fs, ino))
		return fs_ws_readlink(fs->ws, req, ino);
	node = fs_node_of(fs, ino);
	if (node->kind == FS_ALIAS)
		return (void)fuse_reply_readlink(req, node->registry);
	fuse_reply_err(req, EINVAL); /* the cache's one kind of symlink is above */
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, parent))
		return fs_ws_mknod(fs->ws, req, parent, name, mode, rdev);
	fuse_reply_err(req, EACCES);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, parent))
		return fs_ws_mkdir(fs->ws, req, parent, name, mode);
	fuse_reply_err(req, EACCES);
}

static void op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, parent))
		return fs_ws_symlink(fs->ws, req, target, parent, name);
	fuse_reply_err(req, EACCES);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, ino) && is_ws(fs, newparent))
		return fs_ws_link(fs->ws, req, ino, newparent, newname);
	fuse_reply_err(req, is_ws(fs, ino) || is_ws(fs, newparent) ? EXDEV : EACCES);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, parent))
		return fs_ws_rmdir(fs->ws, req, parent, name);
	fuse_reply_err(req, EACCES);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, parent) && is_ws(fs, newparent))
		return fs_ws_rename(fs->ws, req, parent, name, newparent, newname, flags);
	fuse_reply_err(req, is_ws(fs, parent) || is_ws(fs, newparent) ? EXDEV : EACCES);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, ino))
		return fs_ws_fsync(fs->ws, req, ino, datasync, fi);
	fuse_reply_err(req, 0); /* a flush commits; the store syncs what it commits */
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, ino))
		return fs_ws_setxattr(fs->ws, req, ino, name, value, size, flags);
	fuse_reply_err(req, ENOTSUP); /* the cache's xattrs say what it holds */
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, ino))
		return fs_ws_removexattr(fs->ws, req, ino, name);
	fuse_reply_err(req, ENOTSUP);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, ino))
		return fs_ws_fallocate(fs->ws, req, ino, mode, off, len, fi);
	fuse_reply_err(req, EOPNOTSUPP);
}

/* SEEK_DATA and SEEK_HOLE (the kernel does the rest): a cache file has no holes. */
static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *h;
	off_t size;

	if (is_ws(fs, ino))
		return fs_ws_lseek(fs->ws, req, ino, off, whence, fi);
	h = handle_of(fi);
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

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, ino_in) && is_ws(fs, ino_out))
		return fs_ws_copy_file_range(fs->ws, req, ino_in, off_in, fi_in, ino_out, off_out,
					     fi_out, len, flags);
	fuse_reply_err(req, EXDEV); /* the kernel copies it itself */
}

static void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	struct fs *fs = fs_of(req);

	if (is_ws(fs, ino))
		return fs_ws_flock(fs->ws, req, ino, fi, op);
	fuse_reply_err(req, ENOLCK); /* the cache's files are not locked */
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	fs_passthrough_init(userdata, conn);
	/*
	 * Workspace writes splice into the backing file: the kernel hands
	 * over its page-cache pages instead of copying them to us (the
	 * cache's writes are copied out of the pipe). libfuse does so only
	 * when it can grow a pipe past fs.pipe-max-size (CAP_SYS_RESOURCE);
	 * small requests cost a second system call for it.
	 */
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want |= FUSE_CAP_SPLICE_READ;
	/* blob reads splice from the store's files */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	/* O_TRUNC comes with open, so a rewrite of a local tag needs no setattr */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/*
	 * No writeback cache: the kernel would decide where an append lands,
	 * and appends from several writers would overwrite each other.
	 */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* POSIX locks stay in the kernel that all levels share (workspace.c) */
	conn->want &= ~(unsigned)FUSE_CAP_POSIX_LOCKS;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.unlink = op_unlink,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.statfs = op_statfs,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.copy_file_range = op_copy_file_range,
	.flock = op_flock,
};

/* ---- the session ------------------------------------------------------------ */

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A start-up line: to the waiting `dindfs mount` through fd, or, in the
 * foreground (fd < 0), straight to stderr as the command's one error line.
 */
static void say(int fd, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;

	if (fd < 0) {
		fd = STDERR_FILENO;
		if (write(fd, "dindfs: ", 8) < 0)
			return;
	}
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(fd, line, (size_t)n) < 0)
		return;
}

static void on_fetch_done(const struct digest *d, int result, const struct registry_error *err,
			  void *ctx)
{
	struct fs *fs = ctx;

	if (result == 0) {
		fs_gc_kick(fs);
	} else if (result != -ECANCELED) {
		fs_log(fs, "fetch of sha256:%s failed: %s", d->hex, err->message);
	}
}

static int open_cache(struct fs *fs, int ready_fd)
{
	const struct fs_config *cfg = fs->cfg;
	char why[600];
	/* a level names the hosts: only those the mount serves are contacted */
	struct registry_options opts = {.deadline_s = (long)cfg->upstream_timeout,
					.served_only = true};
	size_t i;
	int r;

	r = store_open(cfg->store_dir, &fs->store);
	if (r < 0) {
		say(ready_fd, "cannot open store '%s': %s", cfg->store_dir, strerror(-r));
		return r;
	}
	store_set_limits(fs->store, (uint64_t)fs->limits.ingest_bytes,
			 (uint64_t)fs->limits.tmp_bytes);
	r = registry_new(&opts, &fs->registry);
	for (i = 0; r == 0 && i < cfg->n_upstreams; i++) {
		r = registry_add_upstream_spec(fs->registry, cfg->upstreams[i]);
		if (r < 0)
			say(ready_fd, "bad --upstream '%s'", cfg->upstreams[i]);
	}
	if (r == 0) {
		r = fs_registries_init(fs, why, sizeof(why));
		if (r < 0)
			say(ready_fd, "%s", why);
	}
	if (r == 0)
		r = fs_gc_start(fs);
	if (r == 0)
		r = fetcher_new(fs->registry, fs->store, on_fetch_done, fs, &fs->fetcher);
	if (r == 0)
		r = fs_nodes_init(fs);
	if (r == 0)
		r = resolve_absent_new(cfg->negative_ttl, &fs->absent);
	if (r == 0)
		r = fs_upstream_new(fs, &fs->upstream);
	return r;
}

static void close_cache(struct fs *fs)
{
	if (fs->registry)
		registry_cancel_all(fs->registry); /* downloads stop; nothing partial is kept */
	fs_upstream_free(fs->upstream);
	fetcher_free(fs->fetcher);
	fs_gc_stop(fs);
	resolve_absent_free(fs->absent);
	fs_nodes_release(fs);
	registry_free(fs->registry);
	store_close(fs->store);
}

/*
 * Every level's writers hold descriptors (fs_limits): take the whole
 * descriptor budget the hard limit allows, so they fit beside the readers'.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int fs_run(const struct fs_config *cfg, int ready_fd)
{
	struct fs fs = {.cfg = cfg, .limits = cfg->limits};
	char *argv[] = {"dindfs", "-o", NULL, NULL};
	char options[128];
	struct fuse_args args;
	struct fuse_loop_config *loop;
	int r;

	fs_limits_fill(&fs.limits);
	raise_fd_limit();
	pthread_mutex_init(&fs.log_lock, NULL);
	pthread_mutex_init(&fs.gc_lock, NULL);
	pthread_cond_init(&fs.gc_wake, NULL);
	/*
	 * default_permissions: the kernel checks every caller against the
	 * modes and owners we report, the workspace's being the backing
	 * files' own (the daemon acts as root behind it).
	 */
	snprintf(options, sizeof(options), "fsname=dindfs,subtype=dindfs,default_permissions%s",
		 cfg->allow_other ? ",allow_other" : "");
	argv[2] = options;
	args = (struct fuse_args)FUSE_ARGS_INIT(3, argv);
	r = open_cache(&fs, ready_fd);
	if (r < 0)
		goto out_cache;
	if (cfg->workspace) {
		r = fs_ws_new(&fs, &fs.ws);
		if (r < 0) {
			say(ready_fd, "cannot open workspace '%s': %s", cfg->workspace,
			    strerror(-r));
			goto out_cache;
		}
		fs_log(&fs, "serving workspace %s", cfg->workspace);
	}
	fs.session = fuse_session_new(&args, &ops, sizeof(ops), &fs);
	if (!fs.session) {
		say(ready_fd, "cannot start a FUSE session");
		r = -EIO;
		goto out_cache;
	}
	if (fuse_set_signal_handlers(fs.session) < 0) {
		r = -EIO;
		goto out_session;
	}
	if (fuse_session_mount(fs.session, cfg->mountpoint) < 0) {
		say(ready_fd, "cannot mount on '%s' (is /dev/fuse there, and are we root?)",
		    cfg->mountpoint);
		r = -EIO;
		goto out_signals;
	}
	fs_log(&fs, "mounted %s (store %s)", cfg->mountpoint, cfg->store_dir);
	if (ready_fd >= 0)
		say(ready_fd, "ok");
	loop = fuse_loop_cfg_create();
	if (!loop) {
		r = -ENOMEM;
		goto out_unmount;
	}
	fuse_loop_cfg_set_max_threads(loop, MAX_THREADS);
	fuse_loop_cfg_set_clone_fd(loop, 0);
	r = fuse_session_loop_mt(fs.session, loop);
	fuse_loop_cfg_destroy(loop);
	fs_upstream_free(fs.upstream); /* its jobs stop and reply */
	fs.upstream = NULL;
	r = r < 0 ? r : 0;
out_unmount:
	fuse_session_unmount(fs.session);
	fs_log(&fs, "unmounted %s", cfg->mountpoint);
out_signals:
	fuse_remove_signal_handlers(fs.session);
out_session:
	fs_ws_stop_watching(fs.ws); /* its thread notifies the session */
	fuse_session_destroy(fs.session);
out_cache:
	fuse_opt_free_args(&args); /* fuse_session_new() may have added to them */
	fs_ws_free(fs.ws);
	close_cache(&fs);
	pthread_mutex_destroy(&fs.log_lock);
	pthread_cond_destroy(&fs.gc_wake);
	pthread_mutex_destroy(&fs.gc_lock);
	return r;
}
