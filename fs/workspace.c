/*
 * workspace: the --workspace directory, passed through read-write.
 *
 * The shape is libfuse's passthrough_ll. An inode holds an O_PATH|O_NOFOLLOW
 * descriptor of its file, opened by one name relative to its parent's
 * descriptor; the table maps (st_dev, st_ino) to the one inode of a file,
 * counts the lookups the kernel holds and frees an inode at its last
 * forget. Every operation is an *at() call on such a descriptor and one
 * name that the kernel checked (no '/', never "." or ".." but in lookup),
 * so a request cannot name a path, the daemon never follows a symlink of
 * the workspace, and a directory renamed or replaced by a symlink behind
 * our back is still the directory the inode was (inside the workspace).
 * Files are reopened through /proc/self/fd/N of their own O_PATH
 * descriptor, which names exactly that inode.
 *
 * Permissions are the kernel's (the mount has default_permissions): it
 * checks the caller against the attributes we report, which are the
 * backing file's. The daemon acts as root on the backing side, and gives
 * whatever it creates to the workspace's owner, so no root-owned file
 * appears in a user's project. An explicit chown is done as asked (the
 * kernel lets only a privileged caller give a file away): overlayfs copy-up
 * and tar rely on it.
 *
 * Every level of Docker-in-Docker bind-mounts this one mount, so all of
 * them share one kernel inode, page cache and dentry cache: they never
 * disagree. Timeouts only bound how long a change made to the directory
 * directly on the host takes to show (ENTRY_TIMEOUT).
 *
 * Appends: a file opened with O_APPEND is opened with O_APPEND on the
 * backing side too and written without an offset, so each write lands at
 * the true end even while others append to the directory directly; the
 * kernel does no caching for it (direct_io) since it would place the bytes
 * where it guessed the end was. The writeback cache stays off: with it the
 * kernel, not the file, decides where an append goes.
 *
 * Locks: flock() is passed through (a lock taken through the mount holds
 * against the host too); POSIX locks stay in the kernel, which every level
 * shares, since the daemon is one process and the backing file's POSIX
 * locks could not tell callers apart.
 */
#include "workspace.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

/*
 * Seconds the kernel trusts a name or attributes without asking again: how
 * stale a change made directly to the directory on the host can look.
 */
#define ENTRY_TIMEOUT 1.0
/* Descriptors kept back from the inode table for open files and the cache. */
#define FD_RESERVE_MIN 1024
/* Most threads blocked in a flock() at once: the loop must keep some free. */
#define FLOCK_WAITERS_MAX 16
#define FLOCK_WAIT_MAX_NS 50000000L

struct ws_inode {
	uint32_t family; /* FS_FAMILY_WORKSPACE: first, as in struct fs_node */
	int fd;		 /* O_PATH|O_NOFOLLOW, never re-resolved */
	dev_t dev;
	ino_t ino;
	uint64_t nlookup;	    /* guarded by ws->lock */
	struct ws_inode *hash_next; /* guarded by ws->lock */
};

struct ws_file {
	int fd;
	bool append; /* fd has O_APPEND now; only its writer (one at a time) changes it */
};

struct ws_dir {
	DIR *dp;
	struct dirent *entry; /* read but not yet given to the kernel */
	off_t offset;
};

struct fs_ws {
	struct fs *fs;
	struct ws_inode root; /* the workspace directory: never freed */
	uid_t uid;	      /* who owns what is created */
	gid_t gid;
	mode_t umask; /* the daemon's, which the backing side applies to new files */

	pthread_mutex_t lock;
	struct ws_inode **buckets;
	size_t n_buckets;
	size_t n_inodes;
	size_t max_inodes;
	atomic_bool full_logged; /* the log said the table is full */

	atomic_int flock_waiters;
};

#define INITIAL_BUCKETS 4096

static struct ws_inode *inode_of(struct fs_ws *ws, fuse_ino_t ino)
{
	struct ws_inode *inode = (struct ws_inode *)(uintptr_t)ino;

	assert(inode->family == FS_FAMILY_WORKSPACE);
	(void)ws;
	return inode;
}

static fuse_ino_t ino_of(const struct ws_inode *inode)
{
	return (fuse_ino_t)(uintptr_t)inode;
}

static struct ws_file *file_of(struct fuse_file_info *fi)
{
	return (struct ws_file *)(uintptr_t)fi->fh;
}

static struct ws_dir *dir_of(struct fuse_file_info *fi)
{
	return (struct ws_dir *)(uintptr_t)fi->fh;
}

/* /proc/self/fd/N: reopens exactly the inode fd stands for, follows nothing else. */
static void proc_path(char *buf, size_t size, int fd)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

static int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* A name a create, unlink or rename may use: one component, not "." or "..". */
static bool name_ok(const char *name)
{
	return *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* ---- the inode table ------------------------------------------------------ */

static size_t hash_id(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15u ^ (uint64_t)dev;

	return (size_t)(h ^ h >> 29);
}

/* Double the buckets when chains get long. Called with ws->lock held. */
static void maybe_grow(struct fs_ws *ws)
{
	struct ws_inode **buckets;
	size_t i, n = ws->n_buckets * 2;

	if (ws->n_inodes < ws->n_buckets * 2)
		return;
	buckets = calloc(n, sizeof(*buckets));
	if (!buckets)
		return; /* a longer chain is slower, not wrong */
	for (i = 0; i < ws->n_buckets; i++) {
		struct ws_inode *inode = ws->buckets[i];

		while (inode) {
			struct ws_inode *next = inode->hash_next;
			size_t b = hash_id(inode->dev, inode->ino) % n;

			inode->hash_next = buckets[b];
			buckets[b] = inode;
			inode = next;
		}
	}
	free(ws->buckets);
	ws->buckets = buckets;
	ws->n_buckets = n;
}

/*
 * The inode of the file fd (O_PATH) refers to, st its attributes: found,
 * or made from fd. Either way one more lookup is counted and fd is the
 * table's (closed when the file already had an inode). -ENFILE when the
 * table is full: each inode holds a descriptor.
 */
static int inode_get(struct fs_ws *ws, int fd, const struct stat *st, struct ws_inode **ret)
{
	struct ws_inode *inode;
	size_t b;
	int r = 0;

	if (st->st_dev == ws->root.dev && st->st_ino == ws->root.ino) {
		inode = &ws->root; /* the workspace reached again, e.g. through a link */
		pthread_mutex_lock(&ws->lock);
		goto out_found;
	}
	pthread_mutex_lock(&ws->lock);
	b = hash_id(st->st_dev, st->st_ino) % ws->n_buckets;
	for (inode = ws->buckets[b]; inode; inode = inode->hash_next)
		if (inode->dev == st->st_dev && inode->ino == st->st_ino)
			goto out_found;
	if (ws->n_inodes >= ws->max_inodes) {
		r = -ENFILE;
		goto out_unlock;
	}
	inode = calloc(1, sizeof(*inode));
	if (!inode) {
		r = -ENOMEM;
		goto out_unlock;
	}
	inode->family = FS_FAMILY_WORKSPACE;
	inode->fd = fd;
	inode->dev = st->st_dev;
	inode->ino = st->st_ino;
	inode->hash_next = ws->buckets[b];
	ws->buckets[b] = inode;
	ws->n_inodes++;
	maybe_grow(ws);
	fd = -1;
out_found:
	inode->nlookup++;
	*ret = inode;
out_unlock:
	pthread_mutex_unlock(&ws->lock);
	if (fd >= 0)
		close(fd);
	if (r == -ENFILE && !atomic_exchange(&ws->full_logged, true))
		fs_log(ws->fs,
		       "workspace: %zu inodes held, the most this process's descriptors allow;"
		       " lookups fail with ENFILE until the kernel forgets some",
		       ws->max_inodes);
	return r;
}

static void inode_forget(struct fs_ws *ws, struct ws_inode *inode, uint64_t n)
{
	struct ws_inode **p;

	pthread_mutex_lock(&ws->lock);
	assert(inode->nlookup >= n);
	inode->nlookup -= n;
	if (inode->nlookup > 0 || inode == &ws->root) {
		pthread_mutex_unlock(&ws->lock);
		return;
	}
	for (p = &ws->buckets[hash_id(inode->dev, inode->ino) % ws->n_buckets]; *p;
	     p = &(*p)->hash_next) {
		if (*p == inode) {
			*p = inode->hash_next;
			ws->n_inodes--;
			break;
		}
	}
	pthread_mutex_unlock(&ws->lock);
	close(inode->fd);
	free(inode);
}

void fs_ws_forget(struct fs_ws *ws, fuse_ino_t ino, uint64_t n)
{
	inode_forget(ws, inode_of(ws, ino), n);
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
	ws->root.family = FS_FAMILY_WORKSPACE;
	ws->root.fd = fd;
	ws->root.dev = st.st_dev;
	ws->root.ino = st.st_ino;
	ws->uid = cfg->workspace_uid >= 0 ? (uid_t)cfg->workspace_uid : st.st_uid;
	ws->gid = cfg->workspace_gid >= 0 ? (gid_t)cfg->workspace_gid : st.st_gid;
	ws->umask = umask(0);
	umask(ws->umask);
	limit = raise_fd_limit();
	reserve = limit / 4 > FD_RESERVE_MIN ? limit / 4 : FD_RESERVE_MIN;
	ws->max_inodes = limit > 2 * reserve ? limit - reserve : limit / 2;
	pthread_mutex_init(&ws->lock, NULL);
	ws->n_buckets = INITIAL_BUCKETS;
	ws->buckets = calloc(ws->n_buckets, sizeof(*ws->buckets));
	if (!ws->buckets) {
		pthread_mutex_destroy(&ws->lock);
		free(ws);
		r = -ENOMEM;
		goto out_close;
	}
	*ret = ws;
	return 0;
out_close:
	close(fd);
	return r;
}

void fs_ws_free(struct fs_ws *ws)
{
	size_t i;

	if (!ws)
		return;
	for (i = 0; i < ws->n_buckets; i++) {
		struct ws_inode *inode = ws->buckets[i];

		while (inode) {
			struct ws_inode *next = inode->hash_next;

			close(inode->fd);
			free(inode);
			inode = next;
		}
	}
	free(ws->buckets);
	close(ws->root.fd);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
}

/* ---- names ---------------------------------------------------------------- */

static void entry_init(struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->entry_timeout = ENTRY_TIMEOUT;
	e->attr_timeout = ENTRY_TIMEOUT;
}

/* The entry of fd (O_PATH, given to the table), counting one lookup. */
static int entry_of_fd(struct fs_ws *ws, int fd, struct fuse_entry_param *e)
{
	struct ws_inode *inode;
	int r;

	entry_init(e);
	r = stat_fd(fd, &e->attr);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = inode_get(ws, fd, &e->attr, &inode);
	if (r < 0)
		return r;
	e->ino = ino_of(inode);
	return 0;
}

/* name in parent, as an entry (one lookup counted). */
static int do_lookup(struct fs_ws *ws, struct ws_inode *parent, const char *name,
		     struct fuse_entry_param *e)
{
	int fd;

	if (strcmp(name, ".") == 0 || (strcmp(name, "..") == 0 && parent == &ws->root))
		name = "."; /* ".." at the workspace's root stays there */
	if (!*name || strchr(name, '/'))
		return -EINVAL;
	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return entry_of_fd(ws, fd, e);
}

static void reply_entry(struct fs_ws *ws, fuse_req_t req, struct fuse_entry_param *e)
{
	if (fuse_reply_entry(req, e) == -ENOENT) /* the caller went away: nobody holds it */
		fs_ws_forget(ws, e->ino, 1);
}

void fs_ws_lookup_root(struct fs_ws *ws, fuse_req_t req)
{
	struct fuse_entry_param e;
	int r;

	entry_init(&e);
	r = stat_fd(ws->root.fd, &e.attr);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	pthread_mutex_lock(&ws->lock);
	ws->root.nlookup++;
	pthread_mutex_unlock(&ws->lock);
	e.ino = ino_of(&ws->root);
	reply_entry(ws, req, &e);
}

void fs_ws_lookup(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int r = do_lookup(ws, inode_of(ws, parent), name, &e);

	if (r == -ENOENT) {
		/* absent, and the kernel may remember that as long as it trusts names */
		entry_init(&e);
		return (void)fuse_reply_entry(req, &e);
	}
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	reply_entry(ws, req, &e);
}

/* ---- attributes ----------------------------------------------------------- */

void fs_ws_getattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int r = stat_fd(inode_of(ws, ino)->fd, &st);

	(void)fi;
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fuse_reply_attr(req, &st, ENTRY_TIMEOUT);
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
	proc_path(path, sizeof(path), inode_fd);
	return utimensat(AT_FDCWD, path, tv, 0) < 0 ? -errno : 0;
}

void fs_ws_setattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		   struct fuse_file_info *fi)
{
	struct ws_inode *inode = inode_of(ws, ino);
	int file_fd = fi ? file_of(fi)->fd : -1;
	char path[64];
	struct stat st;
	int r = 0;

	proc_path(path, sizeof(path), inode->fd);
	if (to_set & FUSE_SET_ATTR_MODE) {
		r = file_fd >= 0 ? fchmod(file_fd, attr->st_mode) : chmod(path, attr->st_mode);
		r = r < 0 ? -errno : 0;
	}
	if (r == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t uid = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1;
		gid_t gid = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1;

		if (fchownat(inode->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
	}
	if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
		r = file_fd >= 0 ? ftruncate(file_fd, attr->st_size)
				 : truncate(path, attr->st_size);
		r = r < 0 ? -errno : 0;
	}
	if (r == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
				 FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)))
		r = set_times(inode->fd, file_fd, attr, to_set);
	if (r == 0)
		r = stat_fd(inode->fd, &st);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fuse_reply_attr(req, &st, ENTRY_TIMEOUT);
}

void fs_ws_readlink(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(inode_of(ws, ino)->fd, "", buf, sizeof(buf));

	if (n < 0)
		return (void)fuse_reply_err(req, errno);
	if ((size_t)n == sizeof(buf))
		return (void)fuse_reply_err(req, ENAMETOOLONG);
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/* ---- making files ----------------------------------------------------------- */

/*
 * What was just made (fd, O_PATH or open; st its attributes) goes to the
 * workspace's owner, and gets the mode asked for: the daemon's umask, and
 * a chown clearing set-id bits, may have taken some away. A group
 * inherited from a set-group-ID parent is kept.
 */
static int give_to_owner(struct fs_ws *ws, int fd, const struct stat *parent, struct stat *st,
			 mode_t mode)
{
	gid_t gid = parent->st_mode & S_ISGID ? (gid_t)-1 : ws->gid;
	mode_t want = mode & 07777;
	char path[64];

	if (st->st_uid != ws->uid || (gid != (gid_t)-1 && st->st_gid != gid)) {
		if (fchownat(fd, "", ws->uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		st->st_uid = ws->uid;
		if (gid != (gid_t)-1)
			st->st_gid = gid;
	}
	if (S_ISLNK(st->st_mode))
		return 0;
	if (S_ISDIR(st->st_mode))
		want |= st->st_mode & S_ISGID;
	if ((st->st_mode & 07777) == want)
		return 0;
	proc_path(path, sizeof(path), fd);
	if (chmod(path, want) < 0)
		return -errno;
	st->st_mode = (st->st_mode & S_IFMT) | want;
	return 0;
}

/*
 * After name was made in parent as type (S_IFMT bits of mode): open it,
 * check it is what we made, hand it over, and fill the entry.
 */
static int finish_new(struct fs_ws *ws, struct ws_inode *parent, const char *name, mode_t mode,
		      struct fuse_entry_param *e)
{
	struct ws_inode *inode;
	struct stat pst;
	int fd, r;

	entry_init(e);
	r = stat_fd(parent->fd, &pst);
	if (r < 0)
		return r;
	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = stat_fd(fd, &e->attr);
	if (r == 0 && (e->attr.st_mode & S_IFMT) != (mode & S_IFMT))
		r = -EIO; /* replaced on the host in between: not ours to change */
	if (r == 0)
		r = give_to_owner(ws, fd, &pst, &e->attr, mode);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = inode_get(ws, fd, &e->attr, &inode);
	if (r < 0)
		return r;
	e->ino = ino_of(inode);
	return 0;
}

/* mknod, mkdir and symlink: make name, then reply with its entry. */
static void make_node(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent_ino, const char *name,
		      mode_t mode, dev_t rdev, const char *target)
{
	struct ws_inode *parent = inode_of(ws, parent_ino);
	struct fuse_entry_param e;
	int r;

	if (!name_ok(name))
		return (void)fuse_reply_err(req, EINVAL);
	if (S_ISDIR(mode))
		r = mkdirat(parent->fd, name, mode & 07777);
	else if (S_ISLNK(mode))
		r = symlinkat(target, parent->fd, name);
	else
		r = mknodat(parent->fd, name, mode, rdev);
	if (r < 0)
		return (void)fuse_reply_err(req, errno);
	r = finish_new(ws, parent, name, mode, &e);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	reply_entry(ws, req, &e);
}

void fs_ws_mknod(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		 dev_t rdev)
{
	/*
	 * Fifos, sockets, and the 0/0 character device that overlayfs uses
	 * as a whiteout; no other device: given to the workspace's owner,
	 * it would hand them the hardware.
	 */
	if (S_ISBLK(mode) || (S_ISCHR(mode) && rdev != 0))
		return (void)fuse_reply_err(req, EPERM);
	if (!S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISCHR(mode) && !S_ISREG(mode))
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
	struct ws_inode *inode = inode_of(ws, ino);
	struct fuse_entry_param e;
	int r;

	if (!name_ok(newname))
		return (void)fuse_reply_err(req, EINVAL);
	if (linkat(inode->fd, "", inode_of(ws, newparent)->fd, newname, AT_EMPTY_PATH) < 0)
		return (void)fuse_reply_err(req, errno);
	entry_init(&e);
	r = stat_fd(inode->fd, &e.attr);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	pthread_mutex_lock(&ws->lock);
	inode->nlookup++;
	pthread_mutex_unlock(&ws->lock);
	e.ino = ino;
	reply_entry(ws, req, &e);
}

void fs_ws_unlink(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (!name_ok(name))
		return (void)fuse_reply_err(req, EINVAL);
	if (unlinkat(inode_of(ws, parent)->fd, name, 0) < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_err(req, 0);
}

void fs_ws_rmdir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (!name_ok(name))
		return (void)fuse_reply_err(req, EINVAL);
	if (unlinkat(inode_of(ws, parent)->fd, name, AT_REMOVEDIR) < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_err(req, 0);
}

/* The whiteout a RENAME_WHITEOUT left at name is the owner's too. */
static void give_whiteout(struct fs_ws *ws, int dirfd, const char *name)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISCHR(st.st_mode) &&
	    st.st_rdev == 0 && (st.st_uid != ws->uid || st.st_gid != ws->gid))
		fchownat(dirfd, name, ws->uid, ws->gid, AT_SYMLINK_NOFOLLOW);
}

void fs_ws_rename(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	int olddir = inode_of(ws, parent)->fd;

	if (!name_ok(name) || !name_ok(newname) ||
	    (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)))
		return (void)fuse_reply_err(req, EINVAL);
	if (renameat2(olddir, name, inode_of(ws, newparent)->fd, newname, flags) < 0)
		return (void)fuse_reply_err(req, errno);
	if (flags & RENAME_WHITEOUT)
		give_whiteout(ws, olddir, name);
	fuse_reply_err(req, 0);
}

/* ---- open files ------------------------------------------------------------- */

static int file_new(int fd, int flags, struct fuse_file_info *fi)
{
	struct ws_file *f = malloc(sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->fd = fd;
	f->append = flags & O_APPEND;
	fi->fh = (uintptr_t)f;
	if (f->append)
		fi->direct_io =
			1; /* the kernel would cache the bytes where it guessed the end was */
	else
		fi->keep_cache = 1; /* every level shares this page cache; host edits show
				       through the mtime check (auto_inval_data) */
	fi->noflush = (flags & O_ACCMODE) == O_RDONLY;
	return 0;
}

static void file_free(struct ws_file *f)
{
	close(f->fd);
	free(f);
}

/* Open flags for the backing file: never follow, never create here. */
static int open_flags(int flags)
{
	return (flags & ~(O_NOFOLLOW | O_CREAT | O_EXCL | O_NOCTTY)) | O_CLOEXEC;
}

void fs_ws_open(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char path[64];
	int fd, r;

	proc_path(path, sizeof(path), inode_of(ws, ino)->fd);
	fd = open(path, open_flags(fi->flags));
	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	r = file_new(fd, fi->flags, fi);
	if (r < 0) {
		close(fd);
		return (void)fuse_reply_err(req, -r);
	}
	if (fuse_reply_open(req, fi) == -ENOENT) /* the opener was interrupted */
		file_free(file_of(fi));
}

void fs_ws_create(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent_ino, const char *name,
		  mode_t mode, struct fuse_file_info *fi)
{
	struct ws_inode *parent = inode_of(ws, parent_ino);
	struct ws_inode *inode;
	struct fuse_entry_param e;
	struct stat pst;
	char path[64];
	int fd, pfd, r;

	if (!name_ok(name))
		return (void)fuse_reply_err(req, EINVAL);
	entry_init(&e);
	r = stat_fd(parent->fd, &pst);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	/* O_NOFOLLOW: a symlink put there on the host is not followed out */
	fd = openat(parent->fd, name, open_flags(fi->flags) | O_CREAT | O_NOFOLLOW, mode & 07777);
	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	r = fstat(fd, &e.attr) < 0 ? -errno : 0;
	if (r == 0)
		r = give_to_owner(ws, fd, &pst, &e.attr, S_IFREG | (mode & 07777));
	if (r < 0)
		goto out_close;
	/* the inode's own descriptor, of exactly the file just opened */
	proc_path(path, sizeof(path), fd);
	pfd = open(path, O_PATH | O_CLOEXEC);
	if (pfd < 0) {
		r = -errno;
		goto out_close;
	}
	r = inode_get(ws, pfd, &e.attr, &inode);
	if (r < 0)
		goto out_close;
	e.ino = ino_of(inode);
	r = file_new(fd, fi->flags, fi);
	if (r < 0) {
		fs_ws_forget(ws, e.ino, 1);
		goto out_close;
	}
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		file_free(file_of(fi));
		fs_ws_forget(ws, e.ino, 1);
	}
	return;
out_close:
	close(fd);
	fuse_reply_err(req, -r);
}

void fs_ws_read(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)ws;
	(void)ino;
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = file_of(fi)->fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void fs_ws_write_buf(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
		     off_t off, struct fuse_file_info *fi)
{
	struct ws_file *f = file_of(fi);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	bool append = fi->flags & O_APPEND;
	enum fuse_buf_copy_flags copy = 0;
	ssize_t n;

	(void)ws;
	(void)ino;
	/* follow fcntl(F_SETFL) on the caller's file: the kernel tells us its flags */
	if (append != f->append) {
		int flags = fcntl(f->fd, F_GETFL);

		if (flags < 0 ||
		    fcntl(f->fd, F_SETFL, append ? flags | O_APPEND : flags & ~O_APPEND) < 0)
			return (void)fuse_reply_err(req, errno);
		f->append = append;
	}
	out.buf[0].flags = FUSE_BUF_IS_FD;
	out.buf[0].fd = f->fd;
	if (append) {
		copy = FUSE_BUF_NO_SPLICE; /* splice refuses O_APPEND files; write() lands at the
					      end */
	} else {
		out.buf[0].flags |= FUSE_BUF_FD_SEEK;
		out.buf[0].pos = off;
	}
	n = fuse_buf_copy(&out, in, copy);
	if (n < 0)
		return (void)fuse_reply_err(req, (int)-n);
	fuse_reply_write(req, (size_t)n);
}

void fs_ws_flush(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* a close of a duplicate reports what the backing file system kept back */
	int fd = dup(file_of(fi)->fd);

	(void)ws;
	(void)ino;
	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_err(req, close(fd) < 0 ? errno : 0);
}

void fs_ws_release(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ws;
	(void)ino;
	file_free(file_of(fi)); /* and with it any flock() it held */
	fuse_reply_err(req, 0);
}

void fs_ws_fsync(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi)
{
	int fd = file_of(fi)->fd;

	(void)ws;
	(void)ino;
	fuse_reply_err(req, (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0);
}

void fs_ws_fallocate(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
		     off_t len, struct fuse_file_info *fi)
{
	(void)ws;
	(void)ino;
	fuse_reply_err(req, fallocate(file_of(fi)->fd, mode, off, len) < 0 ? errno : 0);
}

void fs_ws_lseek(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		 struct fuse_file_info *fi)
{
	off_t r = lseek(file_of(fi)->fd, off, whence);

	(void)ws;
	(void)ino;
	if (r < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_lseek(req, r);
}

void fs_ws_copy_file_range(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			   struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			   struct fuse_file_info *fi_out, size_t len, int flags)
{
	ssize_t n;

	(void)ws;
	(void)ino_in;
	(void)ino_out;
	n = copy_file_range(file_of(fi_in)->fd, &off_in, file_of(fi_out)->fd, &off_out, len,
			    (unsigned int)flags);
	if (n < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_write(req, (size_t)n);
}

/*
 * flock() on the backing file, so it holds against the host as well. A
 * blocking lock is waited for here in short naps, so an interrupted caller
 * or an unmount ends the wait, and only so many threads wait at once:
 * past that the caller gets ENOLCK rather than a loop with no thread left
 * to serve the unlock it waits for.
 */
void fs_ws_flock(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		 int op)
{
	struct timespec nap = {0, 1000000L};
	int fd = file_of(fi)->fd, r = 0;
	bool waiting = false;

	(void)ino;
	while (flock(fd, op | LOCK_NB) < 0) {
		r = errno;
		if (r != EWOULDBLOCK || (op & LOCK_NB))
			break;
		if (!waiting) {
			waiting = true;
			if (atomic_fetch_add(&ws->flock_waiters, 1) >= FLOCK_WAITERS_MAX) {
				r = ENOLCK;
				break;
			}
		}
		if (fuse_req_interrupted(req) || fuse_session_exited(ws->fs->session)) {
			r = EINTR;
			break;
		}
		nanosleep(&nap, NULL);
		if (nap.tv_nsec < FLOCK_WAIT_MAX_NS)
			nap.tv_nsec *= 2;
		r = 0;
	}
	if (waiting)
		atomic_fetch_sub(&ws->flock_waiters, 1);
	fuse_reply_err(req, r);
}

/* ---- directories ------------------------------------------------------------ */

void fs_ws_opendir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ws_dir *d = calloc(1, sizeof(*d));
	int fd, r;

	if (!d)
		return (void)fuse_reply_err(req, ENOMEM);
	fd = openat(inode_of(ws, ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = errno;
		goto out_free;
	}
	d->dp = fdopendir(fd);
	if (!d->dp) {
		r = errno;
		close(fd);
		goto out_free;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		closedir(d->dp);
		free(d);
	}
	return;
out_free:
	free(d);
	fuse_reply_err(req, r);
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/*
 * One buffer of entries from where the kernel left off. With plus, each
 * entry but . and .. is looked up (and counted) as it goes in; one that
 * does not fit is forgotten again. An error after some entries were added
 * ends the buffer early instead: the kernel asks again from there.
 */
void fs_ws_readdir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi, bool plus)
{
	struct ws_inode *dir = inode_of(ws, ino);
	struct ws_dir *d = dir_of(fi);
	char *buf = malloc(size ? size : 1);
	size_t used = 0;
	int r = 0;

	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
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
			if (!is_dot_or_dotdot(name)) {
				r = do_lookup(ws, dir, name, &e);
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
		d->offset = d->entry->d_off;
		d->entry = NULL;
	}
	if (r < 0 && used == 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

void fs_ws_releasedir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ws_dir *d = dir_of(fi);

	(void)ws;
	(void)ino;
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

void fs_ws_fsyncdir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, int datasync,
		    struct fuse_file_info *fi)
{
	int fd = dirfd(dir_of(fi)->dp);

	(void)ws;
	(void)ino;
	fuse_reply_err(req, (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0);
}

/* ---- the file system, and xattrs -------------------------------------------- */

void fs_ws_statfs(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;

	if (fstatvfs(inode_of(ws, ino)->fd, &st) < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_statfs(req, &st);
}

/*
 * xattrs go through /proc/self/fd/N: the O_PATH descriptor cannot carry
 * them, and opening the file could block (a fifo) or wake a device.
 * Every namespace passes, trusted.* and security.* included: the kernel
 * already checked the caller may use it, and overlayfs needs trusted.*.
 */
void fs_ws_setxattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, const char *name,
		    const char *value, size_t size, int flags)
{
	char path[64];

	proc_path(path, sizeof(path), inode_of(ws, ino)->fd);
	fuse_reply_err(req, setxattr(path, name, value, size, flags) < 0 ? errno : 0);
}

void fs_ws_getxattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char path[64], *value = NULL;
	ssize_t n;

	proc_path(path, sizeof(path), inode_of(ws, ino)->fd);
	if (size == 0) {
		n = getxattr(path, name, NULL, 0);
		if (n < 0)
			return (void)fuse_reply_err(req, errno);
		return (void)fuse_reply_xattr(req, (size_t)n);
	}
	value = malloc(size); /* at most XATTR_SIZE_MAX: the kernel bounds it */
	if (!value)
		return (void)fuse_reply_err(req, ENOMEM);
	n = getxattr(path, name, value, size);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, value, (size_t)n);
	free(value);
}

void fs_ws_listxattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char path[64], *names = NULL;
	ssize_t n;

	proc_path(path, sizeof(path), inode_of(ws, ino)->fd);
	if (size == 0) {
		n = listxattr(path, NULL, 0);
		if (n < 0)
			return (void)fuse_reply_err(req, errno);
		return (void)fuse_reply_xattr(req, (size_t)n);
	}
	names = malloc(size);
	if (!names)
		return (void)fuse_reply_err(req, ENOMEM);
	n = listxattr(path, names, size);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, names, (size_t)n);
	free(names);
}

void fs_ws_removexattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, const char *name)
{
	char path[64];

	proc_path(path, sizeof(path), inode_of(ws, ino)->fd);
	fuse_reply_err(req, removexattr(path, name) < 0 ? errno : 0);
}
