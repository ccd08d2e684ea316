/*
 * cache_ops: the cache namespace's names, attributes, directory listings
 * and xattrs, and the operations it refuses.
 *
 * What the cache namespace cannot do (mkdir, rename, links...) is EACCES
 * for its inodes, and EXDEV between the two families. No operation answers
 * ENOSYS: the kernel would take that as "never again" for the whole mount,
 * the workspace included.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cache_ops.h"
#include "mount_layout.h"
#include "ref.h"

/* Reply with the entry of node, counting the lookup the kernel now holds. */
int fs_fill_entry(struct fs *fs, struct fs_node *node, double timeout, struct fuse_entry_param *e)
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
	r = fs_fill_entry(fs, node, timeout, &e);
	if (r < 0) {
		fs_node_forget(fs, node, 1);
		return (void)fuse_reply_err(req, -r);
	}
	if (!fs_reply_entry(req, &e)) /* the caller was interrupted */
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

void fs_cache_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fs_node *parent = fs_node_of(fs, parent_ino);
	struct upstream_lookup *l;
	int r;

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

void fs_cache_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *node;
	struct stat st;
	int r;

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

/* ---- directories ---------------------------------------------------------- */

void fs_cache_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *node = fs_node_of(fs, ino);
	struct fs_file *f;
	int r;

	if (!fs_kind_is_dir(node->kind))
		return (void)fuse_reply_err(req, ENOTDIR);
	f = fs_file_new(FS_FILE_DIR, node);
	if (!f)
		return (void)fuse_reply_err(req, ENOMEM);
	r = fs_list_dir(fs, node, &f->entries, &f->n_entries);
	if (r < 0) {
		fs_file_free(fs, f);
		return (void)fuse_reply_err(req, -r);
	}
	fi->fh = (uintptr_t)f;
	if (!fs_reply_open(req, fi)) /* the caller was interrupted: nobody lists it */
		fs_file_free(fs, f);
}

static mode_t dirent_type(enum fs_kind kind)
{
	return fs_kind_is_dir(kind) ? S_IFDIR : S_IFREG;
}

/*
 * A listing of the cache namespace. Its readdirplus entries carry no inode
 * (ino 0): the kernel takes them as names only and looks up what it needs.
 */
static void list_cache_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi, bool plus)
{
	struct fs *fs = fs_of(req);
	struct fs_dirent *entries;
	size_t n_entries, used = 0;
	char *buf;
	off_t i;
	int r;

	/* the listing of the open directory, or without opendir (ops.c) one made now */
	if (fi->fh) {
		entries = fs_file_of(fi)->entries;
		n_entries = fs_file_of(fi)->n_entries;
	} else {
		r = fs_list_dir(fs, fs_node_of(fs, ino), &entries, &n_entries);
		if (r < 0)
			return (void)fuse_reply_err(req, -r);
	}
	buf = malloc(size);
	for (i = off; buf && i >= 0 && (size_t)i < n_entries; i++) {
		struct fuse_entry_param e = {
			.attr = {.st_ino = (ino_t)i + 2, .st_mode = dirent_type(entries[i].kind)}};
		const char *name = entries[i].name;
		size_t n =
			plus ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e, i + 1)
			     : fuse_add_direntry(req, buf + used, size - used, name, &e.attr,
						 i + 1);

		if (n > size - used)
			break;
		used += n;
	}
	if (buf)
		fuse_reply_buf(req, buf, used);
	else
		fuse_reply_err(req, ENOMEM);
	free(buf);
	if (!fi->fh)
		fs_free_dirents(entries, n_entries);
}

void fs_cache_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	list_cache_dir(req, ino, size, off, fi, false);
}

void fs_cache_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	list_cache_dir(req, ino, size, off, fi, true);
}

void fs_cache_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_file_free(fs_of(req), fs_file_of(fi));
	fuse_reply_err(req, 0);
}

void fs_cache_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0); /* nothing of the cache's waits to be written */
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

void fs_cache_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fs_of(req);
	struct index_blob row;
	struct digest d;
	char value[INDEX_NAME_MAX + 1];

	if (node_digest(fs, fs_node_of(fs, ino), &d) < 0)
		return (void)fuse_reply_err(req, ENODATA);
	if (strcmp(name, FS_LAYOUT_XATTR_DIGEST) == 0) {
		digest_format(&d, value);
	} else if (strcmp(name, FS_LAYOUT_XATTR_MEDIA_TYPE) == 0) {
		if (index_get_blob(store_index(fs->store), &d, &row) < 0 || !*row.media_type)
			return (void)fuse_reply_err(req, ENODATA);
		snprintf(value, sizeof(value), "%s", row.media_type);
	} else {
		return (void)fuse_reply_err(req, ENODATA);
	}
	reply_xattr_value(req, value, size);
}

void fs_cache_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char names[] = FS_LAYOUT_XATTR_MEDIA_TYPE "\0" FS_LAYOUT_XATTR_DIGEST;
	struct fs *fs = fs_of(req);
	struct digest d;

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

void fs_cache_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs st;

	if (statvfs(store_dir(fs->store), &st) < 0)
		return (void)fuse_reply_err(req, errno);
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

/* ---- what only the workspace does ------------------------------------------ */

void fs_cache_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_node *node = fs_node_of(fs_of(req), ino);

	if (node->kind == FS_ALIAS)
		return (void)fuse_reply_readlink(req, node->registry);
	fuse_reply_err(req, EINVAL); /* the cache's one kind of symlink is above */
}

void fs_cache_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EACCES);
}

void fs_cache_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, EACCES);
}

void fs_cache_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EACCES);
}

/* Between the cache and another family it is EXDEV (ops.c). */
void fs_cache_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EACCES);
}

void fs_cache_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EACCES);
}

void fs_cache_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		     const char *newname, unsigned int flags)
{
	fuse_reply_err(req, EACCES);
}

void fs_cache_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0); /* a flush commits; the store syncs what it commits */
}

void fs_cache_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		       size_t size, int flags)
{
	fuse_reply_err(req, ENOTSUP); /* the cache's xattrs say what it holds */
}

void fs_cache_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, ENOTSUP);
}

void fs_cache_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	fuse_reply_err(req, EOPNOTSUPP);
}

void fs_cache_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			      struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			      struct fuse_file_info *fi_out, size_t len, int flags)
{
	fuse_reply_err(req, EXDEV); /* the kernel copies it itself */
}

void fs_cache_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	fuse_reply_err(req, ENOLCK); /* the cache's files are not locked */
}

/* ---- the family --------------------------------------------------------------- */

static void cache_forget(struct fs *fs, fuse_ino_t ino, uint64_t n)
{
	fs_node_forget(fs, fs_node_of(fs, ino), n);
}

static const struct fuse_lowlevel_ops cache_ops = {
	/* cache_ops.c */
	.lookup = fs_cache_lookup,
	.getattr = fs_cache_getattr,
	.opendir = fs_cache_opendir,
	.readdir = fs_cache_readdir,
	.readdirplus = fs_cache_readdirplus,
	.releasedir = fs_cache_releasedir,
	.fsyncdir = fs_cache_fsyncdir,
	.fsync = fs_cache_fsync,
	.getxattr = fs_cache_getxattr,
	.listxattr = fs_cache_listxattr,
	.statfs = fs_cache_statfs,
	.readlink = fs_cache_readlink,
	.mknod = fs_cache_mknod,
	.mkdir = fs_cache_mkdir,
	.symlink = fs_cache_symlink,
	.link = fs_cache_link,
	.rmdir = fs_cache_rmdir,
	.rename = fs_cache_rename,
	.setxattr = fs_cache_setxattr,
	.removexattr = fs_cache_removexattr,
	.fallocate = fs_cache_fallocate,
	.copy_file_range = fs_cache_copy_file_range,
	.flock = fs_cache_flock,
	/* cache_io.c */
	.open = fs_cache_open,
	.read = fs_cache_read,
	.lseek = fs_cache_lseek,
	/* cache_write.c */
	.create = fs_cache_create,
	.setattr = fs_cache_setattr,
	.write_buf = fs_cache_write_buf,
	.flush = fs_cache_flush,
	.release = fs_cache_release,
	.unlink = fs_cache_unlink,
};

const struct fs_family fs_cache_family = {
	.tag = FS_FAMILY_CACHE,
	.forget = cache_forget,
	.ops = &cache_ops,
};
