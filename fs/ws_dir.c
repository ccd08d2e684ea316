/*
 * ws_dir.c: the workspace's names and directories: lookup, mknod, mkdir,
 * symlink, link, unlink, rmdir, rename, the directory listing, statfs and
 * xattrs.
 *
 * Every operation is an *at() call on an inode's descriptor and one name
 * that the kernel checked (no '/', never "." or ".." but in lookup), so a
 * request cannot name a path, the daemon never follows a symlink of the
 * workspace, and a directory renamed or replaced by a symlink behind our
 * back is still the directory the inode was (inside the workspace).
 *
 * Every level of Docker-in-Docker bind-mounts this one mount, so all of
 * them share one kernel inode, page cache and dentry cache: they never
 * disagree. Timeouts only bound how long a change made to the directory
 * directly on the host takes to show, and ws_watch.c tells the kernel of
 * those as they happen.
 */
#include "ws_internal.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

struct ws_dir {
	DIR *dp;
	struct dirent *entry; /* read but not yet given to the kernel */
	off_t offset;
};

static struct ws_dir *dir_of(struct fuse_file_info *fi)
{
	return (struct ws_dir *)(uintptr_t)fi->fh;
}

/* ---- names ---------------------------------------------------------------- */

void ws_entry_init(struct fs_ws *ws, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->entry_timeout = ws_timeout(ws);
	e->attr_timeout = e->entry_timeout;
}

/*
 * Give fd (O_PATH, its attributes in e->attr) to the table, counting one
 * lookup, and fill e->ino; r is how getting them went: fd is closed when
 * it is an error.
 */
static int entry_take(struct fs_ws *ws, int fd, int r, struct fuse_entry_param *e)
{
	struct ws_inode *inode;

	if (r < 0) {
		close(fd);
		return r;
	}
	r = ws_inode_get(ws, fd, &e->attr, &inode);
	if (r < 0)
		return r;
	e->ino = ws_ino_of(inode);
	return 0;
}

/* The entry of fd (O_PATH, given to the table), counting one lookup. */
static int entry_of_fd(struct fs_ws *ws, int fd, struct fuse_entry_param *e)
{
	ws_entry_init(ws, e);
	return entry_take(ws, fd, ws_stat_shown(fd, &e->attr), e);
}

/* name in parent (whose descriptor is dirfd), as an entry (one lookup counted). */
static int do_lookup(struct fs_ws *ws, struct ws_inode *parent, int dirfd, const char *name,
		     struct fuse_entry_param *e)
{
	int fd;

	if (strcmp(name, ".") == 0 || (strcmp(name, "..") == 0 && parent == &ws->root))
		name = "."; /* ".." at the workspace's root stays there */
	if (!*name || strchr(name, '/'))
		return -EINVAL;
	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return entry_of_fd(ws, fd, e);
}

static void reply_entry(struct fs_ws *ws, fuse_req_t req, struct fuse_entry_param *e)
{
	if (!fs_reply_entry(req, e)) /* the caller went away: nobody holds it */
		fs_ws_forget(ws, e->ino, 1);
}

/*
 * A name just made in the directory parent: its entry, or the error. Made
 * on the disk either way, so when the kernel does not get the entry, the
 * watch tells it the name it holds there is stale (it skips the daemon's
 * own events).
 */
static void reply_made(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name, int r,
		       struct fuse_entry_param *e)
{
	if (r < 0) {
		ws_watch_stale(ws, parent, name);
		return (void)fuse_reply_err(req, -r);
	}
	ws_inode_ref(ws, ws_inode_of(ws, parent)); /* the kernel may forget it once replied to */
	if (!fs_reply_entry(req, e)) {
		fs_ws_forget(ws, e->ino, 1);
		ws_watch_stale(ws, parent, name);
	}
	fs_ws_forget(ws, parent, 1);
}

void fs_ws_lookup_root(struct fs_ws *ws, fuse_req_t req)
{
	struct fuse_entry_param e;
	int r;

	ws_watch_start(ws); /* the session is up: the thread may notify it */
	ws_entry_init(ws, &e);
	r = ws_stat_shown(ws->root.fd, &e.attr);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	ws_inode_ref(ws, &ws->root);
	e.ino = ws_ino_of(&ws->root);
	reply_entry(ws, req, &e);
}

void fs_ws_lookup(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct ws_inode *parent = ws_inode_of(ws, parent_ino);
	struct fuse_entry_param e;
	int fd = ws_fd_get(ws, parent), r = fd;

	atomic_fetch_add(&ws->lookups, 1);
	if (fd >= 0) {
		r = do_lookup(ws, parent, fd, name, &e);
		ws_fd_put(ws, parent);
	}
	if (r == -ENOENT) {
		/* absent, and the kernel may remember that as long as it trusts names */
		ws_entry_init(ws, &e);
		return (void)fs_reply_entry(req, &e); /* ino 0: nothing to take back */
	}
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	reply_entry(ws, req, &e);
}

/* ---- making and removing names ------------------------------------------- */

/*
 * A device node is an empty regular file on disk, its type and numbers in
 * its override (ws_owner.c); overlayfs's 0/0 whiteout stays a real one
 * (an overlayfs on the host reads the directory itself).
 */
static bool emulated_device(mode_t mode, dev_t rdev)
{
	return S_ISBLK(mode) || (S_ISCHR(mode) && rdev != 0);
}

/*
 * After name was made in parent as type (S_IFMT bits of mode, the mode
 * asked for; a regular file for an emulated device): open it, check it is
 * what we made, hand it over, and fill the entry.
 */
static int finish_new(struct fs_ws *ws, fuse_req_t req, int dirfd, const char *name, mode_t mode,
		      dev_t rdev, struct fuse_entry_param *e)
{
	bool device = emulated_device(mode, rdev);
	mode_t disk_mode = device ? S_IFREG | 0600 : mode;
	struct stat pst;
	int fd, r;

	ws_entry_init(ws, e);
	r = ws_stat_shown(dirfd, &pst);
	if (r < 0)
		return r;
	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = ws_stat_fd(fd, &e->attr);
	if (r == 0 && (e->attr.st_mode & S_IFMT) != (disk_mode & S_IFMT))
		r = -EIO; /* replaced on the host in between: not ours to change */
	if (r == 0)
		r = ws_give_to_owner(ws, req, fd, &pst, &e->attr, disk_mode);
	if (r == 0 && device)
		r = ws_owner_device(fd, &e->attr, mode, rdev);
	return entry_take(ws, fd, r, e);
}

/* mknod, mkdir and symlink: make name, then reply with its entry. */
static void make_node(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent_ino, const char *name,
		      mode_t mode, dev_t rdev, const char *target)
{
	struct ws_inode *parent = ws_inode_of(ws, parent_ino);
	/* the set-id bits the disk may not have: never there, not even for a moment */
	mode_t disk_mode = ws_setid_strip(mode);
	struct fuse_entry_param e;
	int dirfd, r;

	if (!ws_name_ok(name))
		return (void)fuse_reply_err(req, EINVAL);
	dirfd = ws_fd_get(ws, parent);
	if (dirfd < 0)
		return (void)fuse_reply_err(req, -dirfd);
	if (S_ISDIR(mode))
		r = mkdirat(dirfd, name, disk_mode & 07777);
	else if (S_ISLNK(mode))
		r = symlinkat(target, dirfd, name);
	else if (emulated_device(mode, rdev))
		r = mknodat(dirfd, name, S_IFREG | 0600, 0);
	else
		r = mknodat(dirfd, name, disk_mode, rdev);
	if (r < 0) {
		r = -errno;
		ws_fd_put(ws, parent);
		return (void)fuse_reply_err(req, -r);
	}
	r = finish_new(ws, req, dirfd, name, mode, rdev, &e);
	ws_fd_put(ws, parent);
	reply_made(ws, req, parent_ino, name, r, &e);
}

void fs_ws_mknod(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		 dev_t rdev)
{
	/*
	 * Fifos, sockets, and the 0/0 character device that overlayfs uses
	 * as a whiteout are real; any other device is emulated (finish_new):
	 * a real one, given to the workspace's owner, would hand them the
	 * hardware.
	 */
	if (!S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISCHR(mode) && !S_ISBLK(mode) &&
	    !S_ISREG(mode))
		return (void)fuse_reply_err(req, EINVAL);
	make_node(ws, req, parent, name, mode, rdev, NULL);
}

void fs_ws_mkdir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(ws, req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

void fs_ws_symlink(struct fs_ws *ws, fuse_req_t req, const char *target, fuse_ino_t parent,
		   const char *name)
{
	make_node(ws, req, parent, name, S_IFLNK | 0777, 0, target);
}

void fs_ws_link(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		const char *newname)
{
	struct ws_inode *inode = ws_inode_of(ws, ino), *dir = ws_inode_of(ws, newparent);
	struct fuse_entry_param e;
	int fd, dirfd, r;

	if (!ws_name_ok(newname))
		return (void)fuse_reply_err(req, EINVAL);
	fd = ws_fd_get(ws, inode);
	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	dirfd = ws_fd_get(ws, dir);
	r = dirfd;
	if (dirfd >= 0) {
		r = linkat(fd, "", dirfd, newname, AT_EMPTY_PATH) < 0 ? -errno : 0;
		ws_fd_put(ws, dir);
	}
	ws_entry_init(ws, &e);
	if (r < 0) {
		ws_fd_put(ws, inode);
		return (void)fuse_reply_err(req, -r);
	}
	r = ws_stat_shown(fd, &e.attr);
	ws_fd_put(ws, inode);
	if (r == 0) {
		ws_inode_ref(ws, inode);
		e.ino = ino;
	}
	reply_made(ws, req, newparent, newname, r, &e);
}

static void remove_name(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent_ino, const char *name,
			int flags)
{
	struct ws_inode *parent = ws_inode_of(ws, parent_ino);
	struct stat st;
	bool known;
	int dirfd, r;

	if (!ws_name_ok(name))
		return (void)fuse_reply_err(req, EINVAL);
	dirfd = ws_fd_get(ws, parent);
	if (dirfd < 0)
		return (void)fuse_reply_err(req, -dirfd);
	known = fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	r = unlinkat(dirfd, name, flags) < 0 ? -errno : 0;
	ws_fd_put(ws, parent);
	/* its last name: it cannot be reopened by handle anyway */
	if (r == 0 && known && (S_ISDIR(st.st_mode) || st.st_nlink <= 1))
		ws_inode_drop_removed(ws, &st);
	fuse_reply_err(req, -r);
}

void fs_ws_unlink(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(ws, req, parent, name, 0);
}

void fs_ws_rmdir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(ws, req, parent, name, AT_REMOVEDIR);
}

/* The whiteout a RENAME_WHITEOUT left at name is the owner's too (ws_owner_for). */
static void give_whiteout(struct fs_ws *ws, fuse_req_t req, int dirfd, const char *name)
{
	struct stat st;
	uid_t uid;
	gid_t gid;

	ws_owner_for(ws, req, &uid, &gid);
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISCHR(st.st_mode) &&
	    st.st_rdev == 0 && (st.st_uid != uid || st.st_gid != gid))
		fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
}

void fs_ws_rename(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct ws_inode *from = ws_inode_of(ws, parent), *to = ws_inode_of(ws, newparent);
	int olddir, newdir, r;

	if (!ws_name_ok(name) || !ws_name_ok(newname) ||
	    (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)))
		return (void)fuse_reply_err(req, EINVAL);
	olddir = ws_fd_get(ws, from);
	if (olddir < 0)
		return (void)fuse_reply_err(req, -olddir);
	newdir = ws_fd_get(ws, to);
	r = newdir;
	if (newdir >= 0) {
		r = renameat2(olddir, name, newdir, newname, flags) < 0 ? -errno : 0;
		ws_fd_put(ws, to);
	}
	if (r == 0 && (flags & RENAME_WHITEOUT))
		give_whiteout(ws, req, olddir, name);
	ws_fd_put(ws, from);
	fuse_reply_err(req, -r);
}

/* ---- directories ------------------------------------------------------------ */

/*
 * The directory's stream, opened at its first readdir: with the listing
 * kept in the kernel (cache_readdir), most opens of a directory never
 * read it, and cost the daemon only this reply and the release.
 */
static int dir_stream(struct fs_ws *ws, struct ws_inode *inode, struct ws_dir *d)
{
	int pfd, fd;

	if (d->dp)
		return 0;
	pfd = ws_fd_get(ws, inode);
	if (pfd < 0)
		return pfd;
	fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ws_fd_put(ws, inode);
	if (fd < 0)
		return -errno;
	d->dp = fdopendir(fd);
	if (!d->dp) {
		int r = -errno;

		close(fd);
		return r;
	}
	return 0;
}

void fs_ws_opendir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ws_dir *d = calloc(1, sizeof(*d));

	(void)ws_inode_of(ws, ino);
	if (!d)
		return (void)fuse_reply_err(req, ENOMEM);
	fi->fh = (uintptr_t)d;
	/*
	 * The kernel keeps the listing (in the directory's page cache) across
	 * opens while the directory is watched: a change through the mount
	 * drops it in the kernel itself, one on the host through ws_watch.c.
	 */
	if (atomic_load(&ws->watching)) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	if (!fs_reply_open(req, fi))
		free(d);
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/*
 * One buffer of entries from where the kernel left off: from the open
 * directory's stream, or without opendir (fi->fh 0) from one of the
 * request's own, sought to off (a cookie the file system keeps valid
 * across opens, as telldir's are for NFS). With plus, each
 * entry but . and .. is looked up (and counted) as it goes in; one that
 * does not fit is forgotten again. An error after some entries were added
 * ends the buffer early instead: the kernel asks again from there.
 */
void fs_ws_readdir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi, bool plus)
{
	struct ws_inode *dir = ws_inode_of(ws, ino);
	struct ws_dir own = {0}, *d = fi->fh ? dir_of(fi) : &own;
	char *buf = malloc(size ? size : 1);
	/*
	 * readdirplus counts a lookup for each entry: taken back if the reply
	 * does not reach the kernel. An entry takes more than the 128 bytes of
	 * a struct fuse_entry_out of the buffer.
	 */
	size_t used = 0, n_counted = 0, max_counted = plus ? size / 128 + 1 : 0;
	fuse_ino_t *counted = plus ? malloc(max_counted * sizeof(*counted)) : NULL;
	int r = 0;

	if (!buf || (plus && !counted)) {
		free(buf);
		free(counted);
		return (void)fuse_reply_err(req, ENOMEM);
	}
	r = dir_stream(ws, dir, d);
	if (r < 0) {
		free(buf);
		free(counted);
		return (void)fuse_reply_err(req, -r);
	}
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		struct fuse_entry_param e;
		const char *name;
		size_t n;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				r = -errno;
				break;
			}
		}
		name = d->entry->d_name;
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = d->entry->d_ino;
		e.attr.st_mode = (mode_t)d->entry->d_type << 12;
		if (!plus) {
			n = fuse_add_direntry(req, buf + used, size - used, name, &e.attr,
					      d->entry->d_off);
		} else {
			if (n_counted == max_counted)
				break;
			if (!is_dot_or_dotdot(name)) {
				r = do_lookup(ws, dir, dirfd(d->dp), name, &e);
				if (r == -ENOENT) { /* gone since: a name without attributes */
					memset(&e, 0, sizeof(e));
					e.attr.st_ino = d->entry->d_ino;
					e.attr.st_mode = (mode_t)d->entry->d_type << 12;
					r = 0;
				}
				if (r < 0)
					break;
			}
			n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
						   d->entry->d_off);
		}
		if (n > size - used) {
			if (e.ino)
				fs_ws_forget(ws, e.ino, 1);
			break;
		}
		used += n;
		if (e.ino)
			counted[n_counted++] = e.ino;
		d->offset = d->entry->d_off;
		d->entry = NULL;
	}
	if (r < 0 && used == 0)
		fuse_reply_err(req, -r);
	else if (fuse_reply_buf(req, buf, used) != 0) /* the caller was interrupted */
		while (n_counted > 0)
			fs_ws_forget(ws, counted[--n_counted], 1);
	free(counted);
	free(buf);
	if (own.dp)
		closedir(own.dp);
}

void fs_ws_releasedir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ws_dir *d = dir_of(fi);

	(void)ws;
	(void)ino;
	if (d->dp)
		closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

void fs_ws_fsyncdir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, int datasync,
		    struct fuse_file_info *fi)
{
	struct ws_dir own = {0}, *d = fi->fh ? dir_of(fi) : &own; /* none without opendir */
	int r = dir_stream(ws, ws_inode_of(ws, ino), d), fd;

	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fd = dirfd(d->dp);
	r = (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0;
	if (own.dp)
		closedir(own.dp);
	fuse_reply_err(req, r);
}

/* ---- the file system, and xattrs -------------------------------------------- */

void fs_ws_statfs(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino)
{
	struct ws_inode *inode = ws_inode_of(ws, ino);
	struct statvfs st;
	int fd = ws_fd_get(ws, inode), r;

	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	r = fstatvfs(fd, &st) < 0 ? -errno : 0;
	ws_fd_put(ws, inode);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fuse_reply_statfs(req, &st);
}

/*
 * xattrs go through /proc/self/fd/N: the O_PATH descriptor cannot carry
 * them, and opening the file could block (a fifo) or wake a device.
 * Every namespace passes, trusted.* and security.* included (the kernel
 * already checked the caller may use it, and overlayfs needs trusted.*),
 * but for setting the two that grant privilege on the host (xattr_refused).
 */
enum xattr_op { XATTR_SET, XATTR_GET, XATTR_LIST, XATTR_REMOVE };

static ssize_t do_xattr(struct fs_ws *ws, fuse_ino_t ino, enum xattr_op op, const char *name,
			void *value, size_t size, int flags)
{
	struct ws_inode *inode = ws_inode_of(ws, ino);
	int fd = ws_fd_get(ws, inode);
	char path[64];
	ssize_t n = 0;

	if (fd < 0)
		return fd;
	ws_proc_path(path, sizeof(path), fd);
	switch (op) {
	case XATTR_SET:
		n = setxattr(path, name, value, size, flags);
		break;
	case XATTR_GET:
		n = getxattr(path, name, value, size);
		break;
	case XATTR_LIST:
		n = listxattr(path, value, size);
		break;
	case XATTR_REMOVE:
		n = removexattr(path, name);
		break;
	}
	n = n < 0 ? -errno : n;
	ws_fd_put(ws, inode);
	return n;
}

/*
 * Whether a level may not set name: a file capability (the privilege a
 * program gets when the host runs it), or overlayfs's own trusted.overlay.*
 * (redirects and metacopy that an overlayfs the host mounts over the
 * directory would follow) unless the mount allows them. Reading and
 * removing them stay allowed: neither grants anything.
 */
static bool xattr_refused(const struct fs_ws *ws, const char *name)
{
	return strcmp(name, "security.capability") == 0 ||
	       (!ws->overlay_xattrs && strncmp(name, "trusted.overlay.", 16) == 0);
}

void fs_ws_setxattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, const char *name,
		    const char *value, size_t size, int flags)
{
	ssize_t n;

	if (ws_owner_xattr(name)) /* the daemon's own (ws_owner.c) */
		return (void)fuse_reply_err(req, EPERM);
	if (xattr_refused(ws, name))
		return (void)fuse_reply_err(req, ENOTSUP);
	n = do_xattr(ws, ino, XATTR_SET, name, (void *)value, size, flags);

	fuse_reply_err(req, n < 0 ? (int)-n : 0);
}

void fs_ws_removexattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, const char *name)
{
	ssize_t n =
		ws_owner_xattr(name) ? -EPERM : do_xattr(ws, ino, XATTR_REMOVE, name, NULL, 0, 0);

	fuse_reply_err(req, n < 0 ? (int)-n : 0);
}

/* getxattr and listxattr: the size wanted when size is 0, else the bytes. */
static void reply_xattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, enum xattr_op op,
			const char *name, size_t size)
{
	/* a list is read whole, to leave the daemon's own names out (ws_owner.c) */
	size_t want = op == XATTR_LIST ? XATTR_LIST_MAX : size;
	char *value = NULL;
	ssize_t n;

	if (op == XATTR_GET && ws_owner_xattr(name))
		return (void)fuse_reply_err(req, ENODATA); /* as if absent */
	/* at most XATTR_SIZE_MAX: the kernel bounds size */
	if (want > 0 && !(value = malloc(want)))
		return (void)fuse_reply_err(req, ENOMEM);
	n = do_xattr(ws, ino, op, name, value, want, 0);
	if (n > 0 && op == XATTR_LIST)
		n = (ssize_t)ws_owner_xattr_hide(value, (size_t)n);
	if (n >= 0 && size > 0 && (size_t)n > size)
		n = -ERANGE;
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, value, (size_t)n);
	free(value);
}

void fs_ws_getxattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	reply_xattr(ws, req, ino, XATTR_GET, name, size);
}

void fs_ws_listxattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, size_t size)
{
	reply_xattr(ws, req, ino, XATTR_LIST, NULL, size);
}
