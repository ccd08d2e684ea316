/*
 * cache_write: what clients write into the cache — blobs through ingest/,
 * manifests as tags of registry/local — and the policy that commits them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache_ops.h"
#include "manifest.h"
#include "ref.h"
#include "resolve.h"

/*
 * An open file that writes, counted in the budgets of its level (fs_level):
 * -EMFILE when the level has all the writers it may have open.
 */
int fs_file_new_writable(struct fs *fs, int level, enum fs_file_kind kind, struct fs_node *node,
			 struct fs_file **ret)
{
	struct fs_level *lv = &fs->levels[level];
	struct fs_file *f;

	if (atomic_fetch_add(&lv->writers, 1) >= fs->limits.level_writers) {
		atomic_fetch_sub(&lv->writers, 1);
		return -EMFILE;
	}
	f = fs_file_new(kind, node);
	if (!f) {
		atomic_fetch_sub(&lv->writers, 1);
		return -ENOMEM;
	}
	f->writable = true;
	f->level = level;
	*ret = f;
	return 0;
}

/*
 * An open file of kind that writes the node under key (made from proto if
 * new): both, with one lookup counted on the node, or neither.
 */
static int open_writer(struct fs *fs, pid_t pid, enum fs_file_kind kind, const char *key,
		       const struct fs_node *proto, struct fs_file **ret)
{
	struct fs_file *f;
	int r = fs_file_new_writable(fs, fs_level_of(pid), kind, NULL, &f);

	if (r < 0)
		return r;
	r = fs_node_get(fs, pid, key, proto, &f->node);
	if (r < 0) {
		fs_file_free(fs, f);
		return r;
	}
	*ret = f;
	return 0;
}

static int create_ingest(struct fs *fs, pid_t pid, const char *name, struct fs_file **ret)
{
	static atomic_uint counter;
	struct fs_node proto = {.kind = FS_INGEST_FILE, .size = -1};
	struct fs_file *f = NULL;
	char key[64];
	int r;

	if (digest_parse(name, &proto.digest) < 0)
		return -EINVAL;
	snprintf(key, sizeof(key), "i:%u", atomic_fetch_add(&counter, 1));
	r = open_writer(fs, pid, FS_FILE_INGEST, key, &proto, &f);
	if (r == 0)
		r = store_writer_new(fs->store, &proto.digest, &f->writer);
	if (r < 0 && f) {
		fs_node_forget(fs, f->node, 1);
		fs_file_free(fs, f);
	}
	if (r == 0)
		*ret = f;
	return r;
}

static int create_local_tag(struct fs *fs, pid_t pid, const struct fs_node *dir, const char *name,
			    struct fs_file **ret)
{
	struct fs_node proto = {.kind = FS_LOCAL_TAG, .size = -1};
	char key[2 * FS_NAME_MAX + 8];

	if (ref_validate_tag(name) < 0)
		return -EINVAL;
	snprintf(proto.registry, sizeof(proto.registry), "%s", REF_LOCAL_REGISTRY);
	snprintf(proto.repository, sizeof(proto.repository), "%s", dir->repository);
	snprintf(proto.tag, sizeof(proto.tag), "%s", name);
	snprintf(key, sizeof(key), "t:%s:%s", dir->repository, name);
	return open_writer(fs, pid, FS_FILE_BUFFER, key, &proto, ret);
}

void fs_cache_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		     struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *parent = fs_node_of(fs, parent_ino);
	struct fs_file *f = NULL;
	struct fuse_entry_param e;
	int r;

	if (parent->kind == FS_INGEST_DIR)
		r = create_ingest(fs, fuse_req_ctx(req)->pid, name, &f);
	else if (parent->kind == FS_MANIFESTS_DIR &&
		 strcmp(parent->registry, REF_LOCAL_REGISTRY) == 0)
		r = create_local_tag(fs, fuse_req_ctx(req)->pid, parent, name, &f);
	else
		r = -EACCES;
	if (r == 0)
		r = fs_fill_entry(fs, f->node, 0, &e);
	if (r == 0) {
		fi->fh = (uintptr_t)f;
		fi->direct_io = 1;
		if (fs_reply_create(req, &e, fi))
			return;
	} else {
		fuse_reply_err(req, -r);
	}
	if (f) { /* refused, or the creator was interrupted: it holds nothing */
		fs_node_forget(fs, f->node, 1);
		fs_file_free(fs, f);
	}
}

void fs_cache_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		      struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *node;
	struct fs_file *f = fi ? fs_file_of(fi) : NULL;
	struct stat st;
	int r = 0;

	node = fs_node_of(fs, ino);
	if (node->kind != FS_INGEST_FILE && node->kind != FS_LOCAL_TAG)
		return (void)fuse_reply_err(req, EACCES);
	/* modes and times mean nothing here (cp -p sets them); a size of 0 starts over */
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size != 0 || !f || !f->writable)
			return (void)fuse_reply_err(req, EINVAL);
		pthread_mutex_lock(&f->lock);
		if (f->writer)
			r = store_writer_reset(f->writer);
		f->len = 0;
		pthread_mutex_unlock(&f->lock);
	}
	if (r == 0)
		r = fs_node_stat(fs, node, &st);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fuse_reply_attr(req, &st, 0);
}

/* ---- writing -------------------------------------------------------------- */

/* A local manifest's bytes, in memory: its level's buffer budget grows with it (ENOBUFS). */
static int buffer_write(struct fs *fs, struct fs_file *f, const char *data, size_t size, off_t off)
{
	struct fs_level *lv = &fs->levels[f->level];
	size_t end;

	if (off < 0 || (uint64_t)off + size > MANIFEST_MAX_SIZE)
		return -EFBIG;
	end = (size_t)off + size;
	if (end > f->cap) {
		size_t cap = f->cap ? f->cap : 4096, more;
		char *p;

		while (cap < end)
			cap *= 2;
		more = cap - f->cap;
		if (atomic_fetch_add(&lv->buffer_bytes, (int_fast64_t)more) + (int64_t)more >
		    fs->limits.level_buffer_bytes) {
			atomic_fetch_sub(&lv->buffer_bytes, (int_fast64_t)more);
			return -ENOBUFS;
		}
		p = realloc(f->data, cap);
		if (!p) {
			atomic_fetch_sub(&lv->buffer_bytes, (int_fast64_t)more);
			return -ENOMEM;
		}
		f->data = p;
		f->cap = cap;
	}
	if ((size_t)off > f->len)
		memset(f->data + f->len, 0, (size_t)off - f->len);
	memcpy(f->data + off, data, size);
	if (end > f->len)
		f->len = end;
	return 0;
}

/*
 * An ingest only appends (store_writer_pwrite: EINVAL elsewhere), within
 * its level's share of tmp/ (EDQUOT) and the store's caps (EFBIG, ENOSPC).
 */
static int ingest_write(struct fs *fs, struct fs_file *f, const char *data, size_t size, off_t off)
{
	struct fs_level *lv = &fs->levels[f->level];
	int r;

	if (off < 0 || (uint64_t)off != store_writer_size(f->writer))
		return -EINVAL;
	if (atomic_fetch_add(&lv->tmp_bytes, (int_fast64_t)size) + (int64_t)size >
	    fs->limits.level_tmp_bytes) {
		atomic_fetch_sub(&lv->tmp_bytes, (int_fast64_t)size);
		return -EDQUOT;
	}
	r = store_writer_pwrite(f->writer, data, size, (uint64_t)off);
	if (r < 0)
		atomic_fetch_sub(&lv->tmp_bytes, (int_fast64_t)size);
	else
		f->ingest_bytes += size;
	return r;
}

static int cache_write(struct fs *fs, struct fs_file *f, const char *data, size_t size, off_t off)
{
	int r;

	if (!f->writable)
		return -EBADF;
	pthread_mutex_lock(&f->lock);
	if (f->done)
		r = -EIO; /* already committed at a flush: a blob never changes */
	else if (f->kind == FS_FILE_INGEST)
		r = ingest_write(fs, f, data, size, off);
	else
		r = buffer_write(fs, f, data, size, off);
	pthread_mutex_unlock(&f->lock);
	return r;
}

/* Workspace writes go on as they came (spliced); the cache's want the bytes in memory. */
void fs_cache_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	size_t size = fuse_buf_size(in);
	struct fuse_bufvec mem = FUSE_BUFVEC_INIT(size);
	char *copy = NULL;
	ssize_t n;
	int r;

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
	r = cache_write(fs, fs_file_of(fi), mem.buf[0].mem, size, off);
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
static int commit_ingest(struct fs *fs, struct fs_file *f)
{
	struct store_writer *w = f->writer;
	int r = store_writer_verify(w);

	if (r < 0)
		return -EIO;
	f->writer = NULL;
	r = store_writer_commit(w, NULL, NULL);
	/* committed or dropped, its bytes are out of tmp/ */
	atomic_fetch_sub(&fs->levels[f->level].tmp_bytes, (int_fast64_t)f->ingest_bytes);
	f->ingest_bytes = 0;
	if (r < 0)
		fs_log(fs, "ingest of sha256:%s failed: %s", f->node->digest.hex, strerror(-r));
	return r < 0 ? -EIO : 0;
}

/* Why a local manifest cannot be committed, or 0; *ret gets it parsed. */
static int check_local_manifest(struct fs *fs, struct fs_file *f, struct manifest **ret, char *why,
				size_t why_size)
{
	struct digest_list children = {0};
	size_t i;
	int r = manifest_parse(f->data, f->len, NULL, ret);

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
static int local_tag_fits(struct fs *fs, struct fs_file *f)
{
	struct index *idx = store_index(fs->store);
	struct index_tag tag;
	int64_t n;

	if (index_get_tag(idx, REF_LOCAL_REGISTRY, f->node->repository, f->node->tag, &tag) == 0)
		return 0; /* an overwrite */
	if (index_count_tags(idx, REF_LOCAL_REGISTRY, f->level, &n) == 0 &&
	    n >= fs->limits.level_local_tags)
		return -EDQUOT;
	return 0;
}

/* A manifest written to registry/local/<repo>/manifests/<tag>: all its blobs must be here. */
static int commit_local_manifest(struct fs *fs, struct fs_file *f)
{
	const struct fs_node *node = f->node;
	struct manifest *m = NULL;
	struct digest d;
	char why[128];
	int r = check_local_manifest(fs, f, &m, why, sizeof(why));

	if (r < 0)
		return r;
	r = local_tag_fits(fs, f);
	if (r == 0)
		r = store_put(fs->store, f->data, f->len, NULL, m->media_type, &d);
	if (r == 0)
		r = resolve_record(fs->store, REF_LOCAL_REGISTRY, node->repository, &d,
				   (int64_t)f->len, m);
	if (r == 0)
		r = index_put_counted_tag(store_index(fs->store), REF_LOCAL_REGISTRY,
					  node->repository, node->tag, &d, time(NULL), f->level,
					  fs->limits.level_local_tags);
	manifest_free(m);
	if (r == -EDQUOT) {
		fs_log(fs, "local/%s:%s refused: level %d has %lld local tags, its limit",
		       node->repository, node->tag, f->level,
		       (long long)fs->limits.level_local_tags);
		return r;
	}
	if (r < 0)
		fs_log(fs, "local/%s:%s: cannot record it: %s", node->repository, node->tag,
		       strerror(-r));
	return r < 0 ? -EIO : 0;
}

/* At release: say why what was written never became a blob or an image. */
static void log_refusal(struct fs *fs, struct fs_file *f)
{
	struct manifest *m = NULL;
	char why[128];

	if (f->kind == FS_FILE_INGEST) {
		if (f->writer && store_writer_size(f->writer) > 0)
			fs_log(fs, "ingest of sha256:%s refused: the bytes do not match the digest",
			       f->node->digest.hex);
	} else if (f->len > 0 && check_local_manifest(fs, f, &m, why, sizeof(why)) < 0) {
		fs_log(fs, "local/%s:%s refused: %s", f->node->repository, f->node->tag, why);
	}
	manifest_free(m);
}

void fs_cache_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_file *f;
	bool committed = false;
	int r = 0;

	f = fs_file_of(fi);
	if (!f->writable)
		return (void)fuse_reply_err(req, 0);
	pthread_mutex_lock(&f->lock);
	if (!f->done) {
		r = f->kind == FS_FILE_INGEST ? commit_ingest(fs, f) : commit_local_manifest(fs, f);
		f->done = committed = r == 0;
	}
	pthread_mutex_unlock(&f->lock);
	if (committed)
		fs_gc_kick(fs);
	fuse_reply_err(req, -r);
}

void fs_cache_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_file *f;

	f = fs_file_of(fi);
	if (f->writable && !f->done)
		log_refusal(fs, f);
	if (f->backed) {
		fs_backing_put(fs, req, &fs->nodes_lock, &f->node->backing);
		f->backed = false;
	}
	fs_file_free(fs, f); /* what was never committed is dropped */
	fuse_reply_err(req, 0);
}

void fs_cache_unlink(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fs_node *parent;
	int r = -EACCES;

	parent = fs_node_of(fs, parent_ino);
	/* a saved image can be forgotten; the cache itself only shrinks through GC */
	if (parent->kind == FS_MANIFESTS_DIR && strcmp(parent->registry, REF_LOCAL_REGISTRY) == 0)
		r = index_remove_tag(store_index(fs->store), REF_LOCAL_REGISTRY, parent->repository,
				     name);
	fuse_reply_err(req, -r);
}
