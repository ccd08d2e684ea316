/*
 * layers: MOUNTPOINT/layers, the unpacked layer trees of the store
 * (cache/layer.h), read-only, as a family of inodes of its own.
 *
 * layers/ lists only complete trees (sha256:<diffid>; never tmp/) and
 * their EROFS images (sha256:<diffid>.erofs, layer_image.h), and
 * everything below is served from the store's files with their on-disk
 * metadata: owners, modes, device numbers (whiteouts are 0:0 character
 * devices), times, xattrs (trusted.overlay.opaque), symlinks and link
 * counts, so a level can hand the paths to overlayfs as lower dirs. Once
 * the daemon shares a tree's image (fs/layers_worker.c), that EROFS mount
 * covers the tree's directory and reads of it no longer come here.
 *
 * The shape is libfuse's passthrough_ll: an inode holds a descriptor of its
 * file, opened O_PATH|O_NOFOLLOW by one name relative to its parent's (then,
 * for a directory or regular file, reopened for reading through that
 * descriptor), and the table maps (st_dev, st_ino) to it; nothing a
 * request names is resolved as a path, "." and ".." are refused, so nothing above a tree is
 * reachable. A tree never changes once it is there, so entries and
 * attributes are cached a long time and opens keep the page cache (or go
 * through FUSE passthrough where the build and kernel have it). Only
 * layers/ itself changes, as trees appear and GC removes them: its
 * attributes are cached for a second and its listing not at all.
 * Everything that would write is EROFS.
 *
 * The family also runs the unpack worker (cache/layer_queue.h) over the
 * daemon's store (fs/layers_worker.c).
 *
 * Locking: l->lock guards the table and every inode's nlookup and backing;
 * no descriptor is opened or closed while it is held.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cache_ops.h"
#include "layer_image.h"
#include "layer_queue.h"
#include "layers.h"

/* A tree never changes: the kernel may keep what it learnt for a day. */
#define TREE_TIMEOUT 86400.0
/* layers/ gains and loses trees. */
#define TOP_TIMEOUT 1.0
#include "layers_internal.h"

/* An open directory: the listing is read through it. */
struct layer_dir {
	DIR *dir;
	off_t offset; /* where the next readdir continues */
	struct dirent *entry;
};

/* fi->fh of an open file counted in its inode's backing (passthrough); else 0 */
#define OPEN_BACKED 1

static struct fs_layers *layers_of(fuse_req_t req)
{
	return fs_of(req)->layers;
}

static struct layer_inode *inode_of(struct fs_layers *l, fuse_ino_t ino)
{
	struct layer_inode *inode = (struct layer_inode *)(uintptr_t)ino;

	(void)l;
	fs_check(inode->family == FS_FAMILY_LAYERS, "inode %p is not a layer inode", (void *)inode);
	return inode;
}

static size_t bucket_of(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15u ^ (uint64_t)dev;

	return (size_t)(h ^ h >> 29) % N_BUCKETS;
}

static int stat_of(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* The attributes the kernel sees: the file's own; layers/ itself read-only for all. */
static int attr_of(struct fs_layers *l, struct layer_inode *inode, struct stat *st)
{
	int r = stat_of(inode->fd, st);

	if (r == 0 && inode == &l->top) {
		st->st_mode = S_IFDIR | 0555;
		st->st_uid = st->st_gid = 0;
	}
	if (r == 0)
		st->st_ino = (ino_t)(uintptr_t)inode;
	return r;
}

/* A real descriptor (not O_PATH) of fd's file, for reading. Regular files and directories only. */
static int reopen(int fd, int flags)
{
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = open(path, flags | O_CLOEXEC); /* the magic link: the file itself */
	return r < 0 ? -errno : r;
}

/*
 * What name in layers/ may be: S_IFDIR for a tree (sha256:<hex>), S_IFREG
 * for an image (sha256:<hex>.erofs), 0 for nothing shown (tmp/ ...).
 */
static mode_t top_type(const char *name)
{
	struct digest d;

	if (digest_parse(name, &d) == 0)
		return S_IFDIR;
	return layer_image_name_parse(name, &d) ? S_IFREG : 0;
}

/*
 * Find or make the inode of name in parent and count one lookup; fill e.
 * In layers/ only complete trees and their images are there.
 */
static int lookup_child(struct fs_layers *l, struct layer_inode *parent, const char *name,
			struct fuse_entry_param *e)
{
	struct layer_inode *inode, *fresh;
	struct stat st;
	bool readable;
	size_t b;
	int fd, r;

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -ENOENT;
	if (parent == &l->top && !top_type(name))
		return -ENOENT;
	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = stat_of(fd, &st);
	if (r == 0 && parent == &l->top && (st.st_mode & S_IFMT) != top_type(name))
		r = -ENOENT;
	if (r < 0) {
		close(fd);
		return r;
	}
	/*
	 * Opened for reading once, here: opens and xattrs of the file then
	 * cost no system call of their own, and reads need no open (no_open).
	 */
	readable = false;
	if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
		int rfd = reopen(fd, O_RDONLY | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));

		if (rfd >= 0) {
			close(fd);
			fd = rfd;
			readable = true;
		} else if (rfd != -EACCES && rfd != -EPERM) { /* out of descriptors, or memory */
			close(fd);
			return rfd;
		} /* else unreadable to the daemon: opens are EACCES, xattrs none */
	}
	fresh = calloc(1, sizeof(*fresh));
	if (!fresh) {
		close(fd);
		return -ENOMEM;
	}
	fresh->family = FS_FAMILY_LAYERS;
	fresh->fd = fd;
	fresh->readable = readable;
	fresh->dev = st.st_dev;
	fresh->ino = st.st_ino;
	b = bucket_of(st.st_dev, st.st_ino);
	pthread_mutex_lock(&l->lock);
	for (inode = l->buckets[b]; inode; inode = inode->hash_next)
		if (inode->dev == st.st_dev && inode->ino == st.st_ino)
			break;
	if (!inode && l->n_inodes >= MAX_INODES) {
		pthread_mutex_unlock(&l->lock);
		close(fd);
		free(fresh);
		return -ENFILE;
	}
	if (!inode) {
		inode = fresh;
		inode->hash_next = l->buckets[b];
		l->buckets[b] = inode;
		l->n_inodes++;
		fresh = NULL;
	}
	inode->nlookup++;
	pthread_mutex_unlock(&l->lock);
	if (fresh) { /* known already (a hard link, or a lookup race) */
		close(fresh->fd);
		free(fresh);
	}
	memset(e, 0, sizeof(*e));
	e->ino = (fuse_ino_t)(uintptr_t)inode;
	e->attr = st;
	e->attr.st_ino = e->ino;
	e->entry_timeout = e->attr_timeout = TREE_TIMEOUT;
	return 0;
}

static void forget_inode(struct fs_layers *l, struct layer_inode *inode, uint64_t n)
{
	struct layer_inode **p;

	if (inode == &l->top)
		return; /* pinned */
	pthread_mutex_lock(&l->lock);
	fs_check(inode->nlookup >= n, "layer inode %p: forget %llu of %llu lookups", (void *)inode,
		 (unsigned long long)n, (unsigned long long)inode->nlookup);
	inode->nlookup -= n;
	if (inode->nlookup > 0) { /* the kernel forgets an inode only after its last release */
		pthread_mutex_unlock(&l->lock);
		return;
	}
	for (p = &l->buckets[bucket_of(inode->dev, inode->ino)]; *p != inode; p = &(*p)->hash_next)
		;
	*p = inode->hash_next;
	l->n_inodes--;
	pthread_mutex_unlock(&l->lock);
	close(inode->fd);
	free(inode);
}

struct layer_inode *fs_layers_hold(struct fs_layers *l, dev_t dev, ino_t ino)
{
	struct layer_inode *inode;

	pthread_mutex_lock(&l->lock);
	for (inode = l->buckets[bucket_of(dev, ino)]; inode; inode = inode->hash_next)
		if (inode->dev == dev && inode->ino == ino)
			break;
	if (inode)
		inode->nlookup++; /* not freed at the kernel's FORGET while held */
	pthread_mutex_unlock(&l->lock);
	return inode;
}

void fs_layers_unhold(struct fs_layers *l, struct layer_inode *inode)
{
	if (inode)
		forget_inode(l, inode, 1);
}

static void layers_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_layers *l = layers_of(req);
	struct fuse_entry_param e;
	int r = lookup_child(l, inode_of(l, parent), name, &e);

	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	if (fuse_reply_entry(req, &e) == -ENOENT) /* the caller went away: nobody holds it */
		forget_inode(l, inode_of(l, e.ino), 1);
}

static void layers_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_layers *l = layers_of(req);
	struct layer_inode *inode = inode_of(l, ino);
	struct stat st;
	int r = attr_of(l, inode, &st);

	(void)fi;
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fuse_reply_attr(req, &st, inode == &l->top ? TOP_TIMEOUT : TREE_TIMEOUT);
}

static void layers_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct layer_inode *inode = inode_of(layers_of(req), ino);
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(inode->fd, "", buf, sizeof(buf));

	if (n < 0)
		return (void)fuse_reply_err(req, errno);
	if ((size_t)n >= sizeof(buf))
		return (void)fuse_reply_err(req, ENAMETOOLONG);
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

static void layers_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct layer_inode *inode = inode_of(layers_of(req), ino);
	struct layer_dir *d = calloc(1, sizeof(*d));
	int fd = d ? openat(inode->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;

	if (!d)
		return (void)fuse_reply_err(req, ENOMEM);
	if (fd < 0 || !(d->dir = fdopendir(fd))) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		free(d);
		return (void)fuse_reply_err(req, e);
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->cache_readdir = inode != &layers_of(req)->top;
	fi->keep_cache = fi->cache_readdir;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		closedir(d->dir);
		free(d);
	}
}

/* Is this entry of layers/ shown? Complete trees and images only. */
static bool top_shows(const char *name)
{
	return top_type(name) != 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct fs_layers *l = layers_of(req);
	struct layer_inode *inode = inode_of(l, ino);
	struct layer_dir own = {0}, *d = (struct layer_dir *)(uintptr_t)fi->fh;
	char *buf = calloc(1, size), *p = buf;
	size_t left = size;
	int err = 0, fd;

	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	if (!d) { /* no opendir (ops.c): a stream of this request's own, sought to off */
		fd = openat(inode->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || !(own.dir = fdopendir(fd))) {
			err = errno;
			if (fd >= 0)
				close(fd);
			free(buf);
			return (void)fuse_reply_err(req, err);
		}
		d = &own;
	}
	if (off != d->offset) {
		seekdir(d->dir, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		struct fuse_entry_param e = {0};
		bool dots;
		size_t n;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dir);
			if (!d->entry) {
				err = errno;
				break;
			}
		}
		/*
		 * . and .. are listed: a listing is then never empty, so the
		 * kernel's copy of one always has a page to drop (ops.c).
		 */
		dots = strcmp(d->entry->d_name, ".") == 0 || strcmp(d->entry->d_name, "..") == 0;
		if (!dots && inode == &l->top && !top_shows(d->entry->d_name)) {
			d->offset = d->entry->d_off;
			d->entry = NULL;
			continue;
		}
		if (plus && dots) { /* a name only (ino 0): the kernel has them */
			e.attr.st_ino = d->entry->d_ino;
			e.attr.st_mode = S_IFDIR;
			n = fuse_add_direntry_plus(req, p, left, d->entry->d_name, &e,
						   d->entry->d_off);
			if (n > left)
				break;
		} else if (plus) {
			int r = lookup_child(l, inode, d->entry->d_name, &e);

			if (r == -ENOENT) { /* gone since (GC): skip it */
				d->offset = d->entry->d_off;
				d->entry = NULL;
				continue;
			}
			if (r < 0) {
				err = -r;
				break;
			}
			n = fuse_add_direntry_plus(req, p, left, d->entry->d_name, &e,
						   d->entry->d_off);
			if (n > left) {
				forget_inode(l, inode_of(l, e.ino), 1);
				break;
			}
		} else {
			e.attr.st_ino = d->entry->d_ino;
			e.attr.st_mode = (mode_t)(d->entry->d_type << 12);
			n = fuse_add_direntry(req, p, left, d->entry->d_name, &e.attr,
					      d->entry->d_off);
			if (n > left)
				break;
		}
		p += n;
		left -= n;
		d->offset = d->entry->d_off;
		d->entry = NULL;
	}
	if (err && left == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - left);
	free(buf);
	if (own.dir)
		closedir(own.dir);
}

static void layers_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void layers_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void layers_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct layer_dir *d = (struct layer_dir *)(uintptr_t)fi->fh;

	(void)ino;
	closedir(d->dir);
	free(d);
	fuse_reply_err(req, 0);
}

static void layers_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_layers *l = fs->layers;
	struct layer_inode *inode = inode_of(l, ino);
	struct stat st;
	int r;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return (void)fuse_reply_err(req, EROFS);
	r = stat_of(inode->fd, &st);
	if (r == 0 && (!S_ISREG(st.st_mode) || !inode->readable))
		r = -EACCES; /* devices and fifos never open here (the mount is nodev) */
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	/* reads go through the inode's own descriptor: nothing to open */
	fi->keep_cache = 1; /* immutable: the pages stay valid */
	fi->noflush = 1;    /* nothing is written: a close sends no FLUSH */
	fi->fh =
		fs_backing_get(fs, req, &l->lock, &inode->backing, inode->fd, fi) ? OPEN_BACKED : 0;
	if (fuse_reply_open(req, fi) == -ENOENT && fi->fh == OPEN_BACKED)
		fs_backing_put(fs, NULL, &l->lock, &inode->backing);
}

static void layers_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)fi; /* opened or not (no_open): the inode's descriptor reads */
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = inode_of(layers_of(req), ino)->fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void layers_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	if (fi->fh == OPEN_BACKED)
		fs_backing_put(fs, req, &fs->layers->lock, &inode_of(fs->layers, ino)->backing);
	fuse_reply_err(req, 0);
}

static void layers_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, 0); /* nothing was written */
}

static void layers_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino, (void)datasync, (void)fi;
	fuse_reply_err(req, 0); /* the trees were synced before they appeared */
}

static void layers_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
			 struct fuse_file_info *fi)
{
	off_t at;

	(void)fi;
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return (void)fuse_reply_err(req, EINVAL); /* the kernel seeks the rest itself */
	/* the shared descriptor's offset moves, but every read names its own */
	at = lseek(inode_of(layers_of(req), ino)->fd, off, whence);
	if (at < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_lseek(req, at);
}

static void layers_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	(void)ino, (void)fi, (void)op;
	fuse_reply_err(req, ENOLCK); /* as the cache's files: nothing to lock against */
}

/* xattrs: of a directory or regular file through its descriptor; other kinds have none. */
static int xattr_fd(struct layer_inode *inode)
{
	return inode->readable ? inode->fd : -ENODATA;
}

static void reply_xattr(fuse_req_t req, size_t size, ssize_t n, const char *buf)
{
	if (n < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void layers_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	int fd = xattr_fd(inode_of(layers_of(req), ino));
	ssize_t n;

	if (size && !buf)
		return (void)fuse_reply_err(req, ENOMEM);
	if (fd < 0) {
		free(buf);
		return (void)fuse_reply_err(req, -fd);
	}
	n = fgetxattr(fd, name, buf, size);
	reply_xattr(req, size, n, buf);
	free(buf);
}

static void layers_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	int fd = xattr_fd(inode_of(layers_of(req), ino));
	ssize_t n;

	if (size && !buf)
		return (void)fuse_reply_err(req, ENOMEM);
	if (fd < 0) { /* no xattrs */
		free(buf);
		return size ? (void)fuse_reply_buf(req, "", 0) : (void)fuse_reply_xattr(req, 0);
	}
	n = flistxattr(fd, buf, size);
	reply_xattr(req, size, n, buf);
	free(buf);
}

static void layers_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	if (fstatvfs(inode_of(layers_of(req), ino)->fd, &sv) < 0)
		return (void)fuse_reply_err(req, errno);
	sv.f_flag |= ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* Everything that would change a tree. */
static void erofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void layers_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			   struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	erofs(req);
}

static void layers_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			 dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	erofs(req);
}

static void layers_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	erofs(req);
}

static void layers_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	(void)target, (void)parent, (void)name;
	erofs(req);
}

static void layers_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char *name)
{
	(void)ino, (void)parent, (void)name;
	erofs(req);
}

static void layers_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	erofs(req);
}

static void layers_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
			  const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	erofs(req);
}

static void layers_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			  struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	erofs(req);
}

static void layers_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			    size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	erofs(req);
}

static void layers_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	erofs(req);
}

static void layers_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			     struct fuse_file_info *fi)
{
	(void)ino, (void)mode, (void)off, (void)len, (void)fi;
	erofs(req);
}

static void layers_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
				   struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
				   struct fuse_file_info *fi_out, size_t len, int flags)
{
	(void)ino_in, (void)off_in, (void)fi_in, (void)ino_out, (void)off_out, (void)fi_out;
	(void)len, (void)flags;
	erofs(req); /* the destination is a tree's file: never writable */
}

static void layers_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			     struct fuse_file_info *fi)
{
	(void)ino, (void)in, (void)off, (void)fi;
	erofs(req); /* no open is writable: never reached */
}

static const struct fuse_lowlevel_ops layers_ops = {
	.lookup = layers_lookup,
	.getattr = layers_getattr,
	.setattr = layers_setattr,
	.readlink = layers_readlink,
	.mknod = layers_mknod,
	.mkdir = layers_mkdir,
	.symlink = layers_symlink,
	.link = layers_link,
	.unlink = layers_unlink,
	.rmdir = layers_unlink,
	.rename = layers_rename,
	.open = layers_open,
	.create = layers_create,
	.read = layers_read,
	.write_buf = layers_write_buf,
	.flush = layers_flush,
	.release = layers_release,
	.fsync = layers_fsync,
	.fallocate = layers_fallocate,
	.lseek = layers_lseek,
	.copy_file_range = layers_copy_file_range,
	.flock = layers_flock,
	.opendir = layers_opendir,
	.readdir = layers_readdir,
	.readdirplus = layers_readdirplus,
	.releasedir = layers_releasedir,
	.fsyncdir = layers_fsync,
	.statfs = layers_statfs,
	.setxattr = layers_setxattr,
	.getxattr = layers_getxattr,
	.listxattr = layers_listxattr,
	.removexattr = layers_removexattr,
};

static void layers_lookup_root(struct fs *fs, fuse_req_t req)
{
	struct fs_layers *l = fs->layers;
	struct fuse_entry_param e = {0};
	int r = attr_of(l, &l->top, &e.attr);

	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	e.ino = (fuse_ino_t)(uintptr_t)&l->top;
	e.entry_timeout = TREE_TIMEOUT; /* the name stays */
	e.attr_timeout = TOP_TIMEOUT;
	fuse_reply_entry(req, &e); /* the top is pinned: no count to undo */
}

static void layers_forget(struct fs *fs, fuse_ino_t ino, uint64_t n)
{
	forget_inode(fs->layers, inode_of(fs->layers, ino), n);
}

/* A tree's directories never change once it is in place; layers/ itself does. */
static bool layers_keeps_listing(struct fs *fs, fuse_ino_t ino)
{
	return inode_of(fs->layers, ino) != &fs->layers->top;
}

const struct fs_family fs_layers_family = {
	.tag = FS_FAMILY_LAYERS,
	.root_name = FS_LAYERS_NAME,
	.lookup_root = layers_lookup_root,
	.forget = layers_forget,
	.ops = &layers_ops,
	.keeps_listing = layers_keeps_listing,
};

int fs_layers_new(struct fs *fs, struct fs_layers **ret)
{
	struct fs_layers *l = calloc(1, sizeof(*l));
	char path[4096];
	int r;

	if (!l)
		return -ENOMEM;
	l->fs = fs;
	l->buckets = calloc(N_BUCKETS, sizeof(*l->buckets));
	r = l->buckets ? layer_recover(store_dir(fs->store), NULL) : -ENOMEM;
	if (r == 0)
		r = snprintf(path, sizeof(path), "%s/layers", store_dir(fs->store)) <
				    (int)sizeof(path)
			    ? 0
			    : -ENAMETOOLONG;
	if (r == 0) {
		l->top.family = FS_FAMILY_LAYERS;
		l->top.fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = l->top.fd < 0 ? -errno : 0;
	}
	if (r == 0)
		r = fs_layers_start_worker(l);
	if (r < 0) {
		if (l->top.fd > 0)
			close(l->top.fd);
		free(l->buckets);
		free(l);
		return r;
	}
	pthread_mutex_init(&l->lock, NULL);
	store_set_commit_hook(fs->store, layer_queue_commit_hook, l->queue);
	*ret = l;
	return 0;
}

void fs_layers_free(struct fs_layers *l)
{
	size_t i;

	if (!l)
		return;
	fs_layers_stop(l);
	for (i = 0; i < N_BUCKETS; i++) {
		struct layer_inode *inode = l->buckets[i];

		while (inode) {
			struct layer_inode *next = inode->hash_next;

			close(inode->fd);
			free(inode);
			inode = next;
		}
	}
	free(l->buckets);
	close(l->top.fd);
	pthread_mutex_destroy(&l->lock);
	free(l);
}
