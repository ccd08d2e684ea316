/*
 * workspace: the --workspace directory, passed through read-write.
 *
 * This file sets the workspace up, and holds its policy: who owns what a
 * level makes, which set-id bits it may leave, and attributes. The rest
 * is ws_inode.c (the inode table: an O_PATH descriptor per file the
 * kernel holds, within a descriptor budget), ws_dir.c (names, directories
 * and xattrs) and ws_file.c (open files); ws_internal.h is what they
 * share. Files are reopened through /proc/self/fd/N of their own O_PATH
 * descriptor, which names exactly that inode, and nothing a request says
 * is resolved as a path.
 *
 * Permissions are the kernel's (the mount has default_permissions): it
 * checks the caller against the attributes we report, the backing file's
 * with its override (ws_owner.c). The daemon acts as root on the backing
 * side, and gives whatever it creates to the workspace's owner on disk, so
 * no root-owned file appears in a user's project, while the mount shows
 * the creator as owner; with --workspace-owner preserve the disk is the
 * caller's too, as any POSIX file system's would be. An explicit chown (the
 * kernel lets only a privileged caller give a file away) changes what is
 * shown, and with preserve the disk: overlayfs copy-up and tar rely on it.
 * Device nodes are empty regular files shown as devices (ws_owner.c).
 *
 * Privilege stays out of the host's directory (ws_setid_strip below): a
 * level's create, chmod, chown, truncate or write-open leaves no
 * set-user-ID bit on anything and no set-group-ID bit on anything but a
 * directory (there it only picks the group of new files). The bits a
 * level asks for are shown through the mount instead, which is nosuid
 * (ws_owner.c), so chmod 4755 reads back 4755 as on any file system. A
 * setxattr of security.capability fails with ENOTSUP, and so does one of
 * trusted.overlay.* unless the mount was asked to allow them
 * (--workspace-overlay-xattrs, for a nested overlayfs's upper dir).
 */
#include "ws_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

/* Descriptors kept back from the inode table for open files and the cache. */
#define FD_RESERVE_MIN	1024
#define INITIAL_BUCKETS 4096

/* ---- policy ---------------------------------------------------------------- */

/*
 * The mode bits a level may leave on the disk's file of type S_IFMT(mode):
 * no set-user-ID bit, and set-group-ID on directories only.
 */
mode_t ws_setid_strip(mode_t mode)
{
	return mode & ~(mode_t)(S_ISDIR(mode) ? S_ISUID : S_ISUID | S_ISGID);
}

/* Clear what ws_setid_strip() forbids; st is updated. */
static int setid_clear(const char *path, struct stat *st)
{
	mode_t want = ws_setid_strip(st->st_mode);

	if (S_ISLNK(st->st_mode) || want == st->st_mode)
		return 0;
	if (chmod(path, want & 07777) < 0)
		return -errno;
	st->st_mode = want;
	return 0;
}

/*
 * Remove the file capability of the regular file fd (open) or path names,
 * if it has one. The kernel would do it at each write, truncate and chown
 * of the file, asking for security.capability before every write; with
 * FUSE_HANDLE_KILLPRIV_V2 (ops.c) it leaves it to us. A level cannot set
 * one (xattr_refused), so only a file the host gave one has it.
 */
static int caps_clear(int fd, const char *path, const struct stat *st)
{
	int r;

	if (!S_ISREG(st->st_mode))
		return 0;
	r = fd >= 0 ? fremovexattr(fd, "security.capability")
		    : removexattr(path, "security.capability");
	return r == 0 || errno == ENODATA || errno == EOPNOTSUPP ? 0 : -errno;
}

int ws_privilege_clear(int fd, const char *path, struct stat *st)
{
	int r = setid_clear(path, st);

	return r < 0 ? r : caps_clear(fd, path, st);
}

/*
 * Who owns what req makes: the workspace's owner, or with --workspace-owner
 * preserve the caller (its fsuid and fsgid, as the kernel sent them).
 */
void ws_owner_for(const struct fs_ws *ws, fuse_req_t req, uid_t *ret_uid, gid_t *ret_gid)
{
	const struct fuse_ctx *ctx = ws->preserve ? fuse_req_ctx(req) : NULL;

	*ret_uid = ctx ? ctx->uid : ws->uid;
	*ret_gid = ctx ? ctx->gid : ws->gid;
}

/*
 * What req just made (fd, O_PATH or open; st its attributes) goes to its
 * owner (ws_owner_for), and gets the mode asked for: the daemon's umask, and
 * a chown clearing set-id bits, may have taken some away; the set-id bits
 * the disk may not have are shown only (ws_owner_new). A group inherited
 * from a set-group-ID parent is kept.
 */
int ws_give_to_owner(struct fs_ws *ws, fuse_req_t req, int fd, const struct stat *parent,
		     struct stat *st, mode_t mode)
{
	mode_t want = ws_setid_strip(mode) & 07777;
	char path[64];
	uid_t uid;
	gid_t gid;

	ws_owner_for(ws, req, &uid, &gid);
	if (parent->st_mode & S_ISGID)
		gid = (gid_t)-1;
	if (st->st_uid != uid || (gid != (gid_t)-1 && st->st_gid != gid)) {
		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		st->st_uid = uid;
		if (gid != (gid_t)-1)
			st->st_gid = gid;
	}
	if (S_ISDIR(st->st_mode))
		want |= st->st_mode & S_ISGID;
	if (!S_ISLNK(st->st_mode) && (st->st_mode & 07777) != want) {
		ws_proc_path(path, sizeof(path), fd);
		if (chmod(path, want) < 0)
			return -errno;
		st->st_mode = (st->st_mode & S_IFMT) | want;
	}
	/* the creator, and the set-id bits asked for, as the mount shows them */
	return ws_owner_new(ws, req, fd, parent, st, mode);
}

/* ---- setting up ----------------------------------------------------------- */

/* Use every descriptor we may: each inode the kernel holds keeps one open. */
static size_t raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 4096;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur == RLIM_INFINITY ? (size_t)1 << 20 : (size_t)rl.rlim_cur;
}

/*
 * A descriptor of the workspace's file system for open_by_handle_at(), or
 * -1 when handles cannot be used there (no support, or no
 * CAP_DAC_READ_SEARCH): then every inode keeps its descriptor open.
 */
static int open_mount_fd(int root_fd, const struct stat *root)
{
	struct file_handle *fh = NULL;
	struct stat st;
	int mount_fd, mount_id, fd = -1;

	mount_fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mount_fd < 0)
		return -1;
	fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
	if (fh) {
		fh->handle_bytes = MAX_HANDLE_SZ;
		if (name_to_handle_at(root_fd, "", fh, &mount_id, AT_EMPTY_PATH) == 0)
			fd = open_by_handle_at(mount_fd, fh, O_PATH | O_CLOEXEC);
	}
	free(fh);
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == root->st_dev &&
	    st.st_ino == root->st_ino) {
		close(fd);
		return mount_fd;
	}
	if (fd >= 0)
		close(fd);
	close(mount_fd);
	return -1;
}

int fs_ws_new(struct fs *fs, struct fs_ws **ret)
{
	const struct fs_config *cfg = fs->cfg;
	struct fs_ws *ws;
	struct stat st;
	size_t limit, reserve;
	int fd, r;

	/* reopening by /proc/self/fd is how files are opened: it must be there */
	if (access("/proc/self/fd", X_OK) < 0)
		return -errno;
	fd = open(cfg->workspace, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	ws = calloc(1, sizeof(*ws));
	if (!ws) {
		r = -ENOMEM;
		goto out_close;
	}
	ws->fs = fs;
	ws_inode_init(&ws->root, fd, &st);
	ws->uid = cfg->workspace_uid >= 0 ? (uid_t)cfg->workspace_uid : st.st_uid;
	ws->gid = cfg->workspace_gid >= 0 ? (gid_t)cfg->workspace_gid : st.st_gid;
	ws->overlay_xattrs = cfg->workspace_overlay_xattrs;
	ws->preserve = cfg->workspace_preserve;
	ws->mount_fd = open_mount_fd(fd, &st);
	ws_watch_new(ws);
	limit = raise_fd_limit();
	reserve = limit / 4 > FD_RESERVE_MIN ? limit / 4 : FD_RESERVE_MIN;
	ws->max_fds = limit > 2 * reserve ? limit - reserve : limit / 2;
	ws->lru.lru_next = ws->lru.lru_prev = &ws->lru;
	pthread_mutex_init(&ws->lock, NULL);
	if (fs_hash_init(&ws->inodes, INITIAL_BUCKETS) < 0) {
		ws_watch_free(ws);
		pthread_mutex_destroy(&ws->lock);
		if (ws->mount_fd >= 0)
			close(ws->mount_fd);
		free(ws);
		r = -ENOMEM;
		goto out_close;
	}
	ws_watch_add(ws, &ws->root);
	*ret = ws;
	return 0;
out_close:
	close(fd);
	return r;
}

void fs_ws_counters(struct fs_ws *ws, struct fs_ws_counters *ret)
{
	ret->lookups = atomic_load(&ws->lookups);
	ret->getattrs = atomic_load(&ws->getattrs);
	ret->timeout_s = ws_timeout(ws);
	pthread_mutex_lock(&ws->lock);
	ret->fds = ws->n_fds;
	ret->fd_budget = ws->max_fds;
	ret->fd_evictions = ws->fd_evictions;
	ret->fd_reopens = ws->fd_reopens;
	pthread_mutex_unlock(&ws->lock);
}

static void free_inode(struct fs_hash_link *link, void *ctx)
{
	struct ws_inode *inode = fs_hash_entry(link, struct ws_inode, link);

	if (inode->fd >= 0)
		close(inode->fd);
	free(inode->handle);
	free(inode);
}

void fs_ws_free(struct fs_ws *ws)
{
	if (!ws)
		return;
	ws_watch_free(ws);
	if (ws_watch_stuck(ws))
		return; /* the process is ending: leave it all to exit */
	fs_hash_drain(&ws->inodes, free_inode, NULL);
	fs_hash_release(&ws->inodes);
	close(ws->root.fd);
	if (ws->mount_fd >= 0)
		close(ws->mount_fd);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
}

/* ---- attributes ----------------------------------------------------------- */

void fs_ws_getattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ws_inode *inode = ws_inode_of(ws, ino);
	struct stat st;
	int fd, r;

	atomic_fetch_add(&ws->getattrs, 1);
	if (fi) /* an open file: it may be unlinked, and have no handle left */
		return (r = ws_stat_shown(ws_file_of(fi)->fd, &st)) < 0
			       ? (void)fuse_reply_err(req, -r)
			       : (void)fuse_reply_attr(req, &st, ws_timeout(ws));
	fd = ws_fd_get(ws, inode);
	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	r = ws_stat_shown(fd, &st);
	ws_fd_put(ws, inode);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fuse_reply_attr(req, &st, ws_timeout(ws));
}

static int set_times(int inode_fd, int file_fd, const struct stat *attr, int to_set)
{
	struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
	char path[64];

	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	if (file_fd >= 0)
		return futimens(file_fd, tv) < 0 ? -errno : 0;
	if (utimensat(inode_fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	/* a kernel without AT_EMPTY_PATH here */
	ws_proc_path(path, sizeof(path), inode_fd);
	return utimensat(AT_FDCWD, path, tv, 0) < 0 ? -errno : 0;
}

void fs_ws_setattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		   struct fuse_file_info *fi)
{
	struct ws_inode *inode = ws_inode_of(ws, ino);
	int file_fd = fi ? ws_file_of(fi)->fd : -1;
	/*
	 * Nothing to set at all is the kernel's chown(-1, -1), or its asking
	 * to drop set-id bits before a write by a caller without CAP_FSETID
	 * (FUSE_HANDLE_KILLPRIV: it leaves that to us): both are a chown
	 * that changes no owner (ws_owner_chown).
	 */
	bool is_chown = !to_set || (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID));
	int fd = ws_fd_get(ws, inode), r = 0;
	char path[64];
	struct stat st;

	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	ws_proc_path(path, sizeof(path), fd);
	if (is_chown) { /* the owner first, so that a mode set with it is the one asked for */
		uid_t uid = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1;
		gid_t gid = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1;

		r = ws_owner_chown(ws, req, fd, uid, gid);
	}
	if (r == 0 && (to_set & FUSE_SET_ATTR_MODE))
		r = ws_owner_chmod(fd, file_fd, attr->st_mode);
	if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
		if ((file_fd >= 0 ? ftruncate(file_fd, attr->st_size)
				  : truncate(path, attr->st_size)) < 0)
			r = -errno;
		if (r == 0)
			r = ws_owner_setid_kill(req, fd);
		r = r > 0 ? 0 : r; /* the reply says what went */
	}
	if (r == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
				 FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)))
		r = set_times(fd, file_fd, attr, to_set);
	if (r == 0)
		r = ws_stat_fd(fd, &st);
	/* a set-id bit or capability the host gave a file a level now gives away or rewrites */
	if (r == 0 && (is_chown || (to_set & FUSE_SET_ATTR_SIZE)))
		r = ws_privilege_clear(file_fd, path, &st);
	if (r == 0)
		ws_show(fd, &st);
	ws_fd_put(ws, inode);
	if (r < 0) {
		ws_watch_stale(ws, ino, NULL); /* some of it may be done: the kernel's copy goes */
		return (void)fuse_reply_err(req, -r);
	}
	ws_inode_ref(ws, inode); /* the kernel may forget it once it has the reply */
	if (fuse_reply_attr(req, &st, ws_timeout(ws)) < 0)
		ws_watch_stale(ws, ino, NULL);
	fs_ws_forget(ws, ino, 1);
}

void fs_ws_readlink(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino)
{
	struct ws_inode *inode = ws_inode_of(ws, ino);
	char buf[PATH_MAX + 1];
	int fd = ws_fd_get(ws, inode);
	ssize_t n;

	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	n = readlinkat(fd, "", buf, sizeof(buf));
	n = n < 0 ? -errno : n;
	ws_fd_put(ws, inode);
	if (n < 0)
		return (void)fuse_reply_err(req, (int)-n);
	if ((size_t)n == sizeof(buf))
		return (void)fuse_reply_err(req, ENAMETOOLONG);
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}
