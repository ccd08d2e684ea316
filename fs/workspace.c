/*
 * workspace: the --workspace directory, passed through read-write.
 *
 * The shape is libfuse's passthrough_ll. An inode holds an O_PATH|O_NOFOLLOW
 * descriptor of its file, opened by one name relative to its parent's
 * descriptor; the table maps (st_dev, st_ino) to the one inode of a file,
 * counts the lookups the kernel holds and frees an inode at its last
 * forget. The kernel keeps every inode it ever looked up while memory
 * lasts, far more than a process may hold descriptors, so an inode also
 * keeps a file handle (name_to_handle_at) and its descriptor is closed
 * when the least recently used ones exceed the budget, to be reopened by
 * handle (open_by_handle_at) at its next use.
 *
 * Every operation is an *at() call on such a descriptor and one name that the kernel checked (no
 * '/', never "." or ".." but in lookup), so a request cannot name a path, the daemon never follows
 * a symlink of the workspace, and a directory renamed or replaced by a symlink behind our back is
 * still the directory the inode was (inside the workspace). Files are reopened through
 * /proc/self/fd/N of their own O_PATH descriptor, which names exactly that inode.
 *
 * Permissions are the kernel's (the mount has default_permissions): it
 * checks the caller against the attributes we report, which are the
 * backing file's. The daemon acts as root on the backing side, and gives
 * whatever it creates to the workspace's owner, so no root-owned file
 * appears in a user's project; with --workspace-owner preserve, to the
 * caller, as any POSIX file system would. An explicit chown is done as asked (the
 * kernel lets only a privileged caller give a file away): overlayfs copy-up
 * and tar rely on it.
 *
 * Privilege stays out of the host's directory (setid_strip below): a
 * level's create, chmod, chown, truncate or write-open leaves no
 * set-user-ID bit on anything and no set-group-ID bit on anything but a
 * directory (there it only picks the group of new files), silently, as the
 * kernel clears S_ISGID for a chmod by a non-member; a setxattr of
 * security.capability fails with ENOTSUP, and so does one of
 * trusted.overlay.* unless the mount was asked to allow them
 * (--workspace-overlay-xattrs, for a nested overlayfs's upper dir).
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

/* Most inodes the table holds, whatever the descriptors (memory: ~200 bytes each). */
#define MAX_INODES (1u << 22)
/* Descriptors closed at once when the budget is exceeded. */
#define EVICT_BATCH 64

struct ws_inode {
	uint32_t family; /* FS_FAMILY_WORKSPACE: first, as in struct fs_node */
	dev_t dev;
	ino_t ino;
	/* to reopen fd; NULL when the file system has none: fd stays open */
	struct file_handle *handle;

	/* all guarded by ws->lock */
	uint64_t nlookup;
	int fd;		/* O_PATH|O_NOFOLLOW, or -1 while closed (handle set) */
	unsigned users; /* operations using fd now: it stays open */
	unsigned opens; /* files open on it: it stays open (an unlinked file has no handle) */
	struct fs_backing backing; /* the passthrough id its open files share */
	struct ws_inode *hash_next;
	struct ws_inode *lru_prev, *lru_next; /* on ws->lru while fd is open; newest first */
};

struct ws_file {
	struct ws_inode *inode;
	int fd;
	bool append; /* fd has O_APPEND now; only its writer (one at a time) changes it */
	bool backed; /* counted in inode->backing */
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
	bool overlay_xattrs; /* trusted.overlay.* may be set */
	bool preserve;	     /* what is created is its creator's (plain POSIX) */

	int mount_fd; /* of the workspace's file system, for open_by_handle_at() */

	pthread_mutex_t lock; /* the table, and each inode's fields it says */
	struct ws_inode **buckets;
	size_t n_buckets;
	size_t n_inodes;
	struct ws_inode lru;	 /* list head: inodes whose fd is open, newest first */
	size_t n_fds;		 /* inode descriptors open */
	size_t max_fds;		 /* the budget: the rest is for open files and the cache */
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

/*
 * The mode bits a level may leave on a file of type S_IFMT(mode): no
 * set-user-ID bit, and set-group-ID on directories only.
 */
static mode_t setid_strip(mode_t mode)
{
	return mode & ~(mode_t)(S_ISDIR(mode) ? S_ISUID : S_ISUID | S_ISGID);
}

/*
 * Clear what setid_strip() forbids from the file st describes (path names
 * it: /proc/self/fd/N). st is updated. Returns 0 or -errno.
 */
static int setid_clear(const char *path, struct stat *st)
{
	mode_t want = setid_strip(st->st_mode);

	if (S_ISLNK(st->st_mode) || want == st->st_mode)
		return 0;
	if (chmod(path, want & 07777) < 0)
		return -errno;
	st->st_mode = want;
	return 0;
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

/* What every inode starts with: the file it stands for, held by fd. */
static void inode_init(struct ws_inode *inode, int fd, const struct stat *st)
{
	inode->family = FS_FAMILY_WORKSPACE;
	inode->fd = fd;
	inode->dev = st->st_dev;
	inode->ino = st->st_ino;
}

static struct ws_inode *table_find(struct fs_ws *ws, dev_t dev, ino_t ino)
{
	struct ws_inode *inode;

	for (inode = ws->buckets[hash_id(dev, ino) % ws->n_buckets]; inode;
	     inode = inode->hash_next)
		if (inode->dev == dev && inode->ino == ino)
			return inode;
	return NULL;
}

/* The LRU of open inode descriptors. Called with ws->lock held. */
static void lru_unlink(struct ws_inode *inode)
{
	inode->lru_prev->lru_next = inode->lru_next;
	inode->lru_next->lru_prev = inode->lru_prev;
	inode->lru_prev = inode->lru_next = NULL;
}

static void lru_push(struct fs_ws *ws, struct ws_inode *inode)
{
	inode->lru_next = ws->lru.lru_next;
	inode->lru_prev = &ws->lru;
	ws->lru.lru_next->lru_prev = inode;
	ws->lru.lru_next = inode;
}

static void lru_touch(struct fs_ws *ws, struct ws_inode *inode)
{
	if (inode->lru_next && ws->lru.lru_next != inode) {
		lru_unlink(inode);
		lru_push(ws, inode);
	}
}

/*
 * Past the budget, take the descriptors of the least recently used inodes
 * that can be reopened and that nobody uses; fds[] gets them, to close
 * once the lock is dropped. Called with ws->lock held. Returns how many.
 */
static size_t evict(struct fs_ws *ws, int *fds, size_t max)
{
	struct ws_inode *inode = ws->lru.lru_prev, *prev;
	size_t n = 0;

	for (; inode != &ws->lru && n < max && ws->n_fds > ws->max_fds; inode = prev) {
		prev = inode->lru_prev;
		if (!inode->handle || inode->users || inode->opens)
			continue;
		fds[n++] = inode->fd;
		inode->fd = -1;
		lru_unlink(inode);
		ws->n_fds--;
	}
	return n;
}

static void close_all(const int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

/* A handle for fd, so that it can be closed and reopened; NULL when there is none. */
static struct file_handle *handle_of_fd(struct fs_ws *ws, int fd, const struct stat *st)
{
	struct file_handle *fh;
	int mount_id;

	if (st->st_dev != ws->root.dev || ws->mount_fd < 0)
		return NULL; /* another file system mounted below: keep its fd open */
	fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
	if (!fh)
		return NULL;
	fh->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) < 0) {
		free(fh);
		return NULL;
	}
	return realloc(fh, sizeof(*fh) + fh->handle_bytes) ?: fh;
}

/*
 * The inode of the file fd (O_PATH) refers to, st its attributes: found,
 * or made from fd. Either way one more lookup is counted and fd is the
 * table's (closed when the file already had an inode). -ENFILE when the
 * table is full.
 */
static int inode_get(struct fs_ws *ws, int fd, const struct stat *st, struct ws_inode **ret)
{
	struct ws_inode *inode;
	struct file_handle *handle = NULL;
	int evicted[EVICT_BATCH];
	size_t n_evicted = 0;
	int r = 0;

	if (st->st_dev == ws->root.dev && st->st_ino == ws->root.ino) {
		inode = &ws->root; /* the workspace reached again, e.g. through a link */
		pthread_mutex_lock(&ws->lock);
		goto out_found;
	}
	pthread_mutex_lock(&ws->lock);
	inode = table_find(ws, st->st_dev, st->st_ino);
	if (inode)
		goto out_found;
	pthread_mutex_unlock(&ws->lock);
	/* new: make its handle without the lock, then look again */
	handle = handle_of_fd(ws, fd, st);
	pthread_mutex_lock(&ws->lock);
	inode = table_find(ws, st->st_dev, st->st_ino);
	if (inode)
		goto out_found;
	if (ws->n_inodes >= MAX_INODES || (!handle && ws->n_fds >= ws->max_fds)) {
		r = -ENFILE;
		goto out_unlock;
	}
	inode = calloc(1, sizeof(*inode));
	if (!inode) {
		r = -ENOMEM;
		goto out_unlock;
	}
	inode_init(inode, fd, st);
	inode->handle = handle;
	handle = NULL;
	fd = -1;
	inode->hash_next = ws->buckets[hash_id(st->st_dev, st->st_ino) % ws->n_buckets];
	ws->buckets[hash_id(st->st_dev, st->st_ino) % ws->n_buckets] = inode;
	ws->n_inodes++;
	ws->n_fds++;
	lru_push(ws, inode);
	maybe_grow(ws);
	n_evicted = evict(ws, evicted, EVICT_BATCH);
out_found:
	if (inode->fd < 0 && fd >= 0) { /* its descriptor was closed: take this one */
		inode->fd = fd;
		fd = -1;
		ws->n_fds++;
		lru_push(ws, inode);
		n_evicted = evict(ws, evicted, EVICT_BATCH);
	}
	inode->nlookup++;
	*ret = inode;
out_unlock:
	pthread_mutex_unlock(&ws->lock);
	close_all(evicted, n_evicted);
	free(handle);
	if (fd >= 0)
		close(fd);
	if (r == -ENFILE && !atomic_exchange(&ws->full_logged, true))
		fs_log(ws->fs,
		       "workspace: %zu inodes held, %zu descriptors of them open, the most we may;"
		       " lookups fail with ENFILE until the kernel forgets some",
		       ws->n_inodes, ws->n_fds);
	return r;
}

/* One more lookup of an inode the kernel already holds. */
static void inode_ref(struct fs_ws *ws, struct ws_inode *inode)
{
	pthread_mutex_lock(&ws->lock);
	inode->nlookup++;
	pthread_mutex_unlock(&ws->lock);
}

static void inode_forget(struct fs_ws *ws, struct ws_inode *inode, uint64_t n)
{
	struct ws_inode **p;
	int fd;

	pthread_mutex_lock(&ws->lock);
	assert(inode->nlookup >= n);
	inode->nlookup -= n;
	if (inode->nlookup > 0 || inode == &ws->root) {
		pthread_mutex_unlock(&ws->lock);
		return;
	}
	/* nlookup 0: the kernel has no way left to name it, so nobody uses it */
	assert(inode->users == 0 && inode->opens == 0);
	for (p = &ws->buckets[hash_id(inode->dev, inode->ino) % ws->n_buckets]; *p;
	     p = &(*p)->hash_next) {
		if (*p == inode) {
			*p = inode->hash_next;
			ws->n_inodes--;
			break;
		}
	}
	fd = inode->fd;
	if (fd >= 0) {
		lru_unlink(inode);
		ws->n_fds--;
	}
	pthread_mutex_unlock(&ws->lock);
	if (fd >= 0)
		close(fd);
	free(inode->handle);
	free(inode);
}

void fs_ws_forget(struct fs_ws *ws, fuse_ino_t ino, uint64_t n)
{
	inode_forget(ws, inode_of(ws, ino), n);
}

/*
 * The O_PATH descriptor of inode, reopened by its handle if it was closed;
 * it stays open until fd_put(). Returns it or -errno (-ESTALE: the file is
 * gone from the backing file system).
 */
static int fd_get(struct fs_ws *ws, struct ws_inode *inode)
{
	int evicted[EVICT_BATCH];
	size_t n_evicted = 0;
	int fd;

	if (inode == &ws->root)
		return ws->root.fd; /* never closed */
	pthread_mutex_lock(&ws->lock);
	if (inode->fd >= 0) {
		inode->users++;
		lru_touch(ws, inode);
		pthread_mutex_unlock(&ws->lock);
		return inode->fd;
	}
	pthread_mutex_unlock(&ws->lock);
	fd = open_by_handle_at(ws->mount_fd, inode->handle, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&ws->lock);
	if (inode->fd >= 0) { /* another thread reopened it meanwhile */
		evicted[n_evicted++] = fd;
	} else {
		inode->fd = fd;
		ws->n_fds++;
		lru_push(ws, inode);
		n_evicted = evict(ws, evicted, EVICT_BATCH);
	}
	inode->users++;
	fd = inode->fd;
	pthread_mutex_unlock(&ws->lock);
	close_all(evicted, n_evicted);
	return fd;
}

static void fd_put(struct fs_ws *ws, struct ws_inode *inode)
{
	if (inode == &ws->root)
		return;
	pthread_mutex_lock(&ws->lock);
	assert(inode->users > 0);
	inode->users--;
	pthread_mutex_unlock(&ws->lock);
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
	inode_init(&ws->root, fd, &st);
	ws->uid = cfg->workspace_uid >= 0 ? (uid_t)cfg->workspace_uid : st.st_uid;
	ws->gid = cfg->workspace_gid >= 0 ? (gid_t)cfg->workspace_gid : st.st_gid;
	ws->overlay_xattrs = cfg->workspace_overlay_xattrs;
	ws->preserve = cfg->workspace_preserve;
	ws->mount_fd = open_mount_fd(fd, &st);
	limit = raise_fd_limit();
	reserve = limit / 4 > FD_RESERVE_MIN ? limit / 4 : FD_RESERVE_MIN;
	ws->max_fds = limit > 2 * reserve ? limit - reserve : limit / 2;
	ws->lru.lru_next = ws->lru.lru_prev = &ws->lru;
	pthread_mutex_init(&ws->lock, NULL);
	ws->n_buckets = INITIAL_BUCKETS;
	ws->buckets = calloc(ws->n_buckets, sizeof(*ws->buckets));
	if (!ws->buckets) {
		pthread_mutex_destroy(&ws->lock);
		if (ws->mount_fd >= 0)
			close(ws->mount_fd);
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

			if (inode->fd >= 0)
				close(inode->fd);
			free(inode->handle);
			free(inode);
			inode = next;
		}
	}
	free(ws->buckets);
	close(ws->root.fd);
	if (ws->mount_fd >= 0)
		close(ws->mount_fd);
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
	inode_ref(ws, &ws->root);
	e.ino = ino_of(&ws->root);
	reply_entry(ws, req, &e);
}

void fs_ws_lookup(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct ws_inode *parent = inode_of(ws, parent_ino);
	struct fuse_entry_param e;
	int fd = fd_get(ws, parent), r = fd;

	if (fd >= 0) {
		r = do_lookup(ws, parent, fd, name, &e);
		fd_put(ws, parent);
	}
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
	struct ws_inode *inode = inode_of(ws, ino);
	struct stat st;
	int fd, r;

	if (fi) /* an open file: it may be unlinked, and have no handle left */
		return fstat(file_of(fi)->fd, &st) < 0
			       ? (void)fuse_reply_err(req, errno)
			       : (void)fuse_reply_attr(req, &st, ENTRY_TIMEOUT);
	fd = fd_get(ws, inode);
	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	r = stat_fd(fd, &st);
	fd_put(ws, inode);
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
	int fd = fd_get(ws, inode), r = 0;
	char path[64];
	struct stat st;

	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	proc_path(path, sizeof(path), fd);
	if (to_set & FUSE_SET_ATTR_MODE) {
		/* the type from the file itself: no set-user-ID ever, set-group-ID on directories
		 */
		r = stat_fd(fd, &st);
		if (r == 0) {
			mode_t mode = setid_strip((st.st_mode & S_IFMT) | (attr->st_mode & 07777));

			r = file_fd >= 0 ? fchmod(file_fd, mode & 07777)
					 : chmod(path, mode & 07777);
			r = r < 0 ? -errno : 0;
		}
	}
	if (r == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t uid = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1;
		gid_t gid = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1;

		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
	}
	if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
		r = file_fd >= 0 ? ftruncate(file_fd, attr->st_size)
				 : truncate(path, attr->st_size);
		r = r < 0 ? -errno : 0;
	}
	if (r == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
				 FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)))
		r = set_times(fd, file_fd, attr, to_set);
	if (r == 0)
		r = stat_fd(fd, &st);
	/* a set-id bit the host had, on a file a level now gives away or rewrites */
	if (r == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE)))
		r = setid_clear(path, &st);
	fd_put(ws, inode);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fuse_reply_attr(req, &st, ENTRY_TIMEOUT);
}

void fs_ws_readlink(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino)
{
	struct ws_inode *inode = inode_of(ws, ino);
	char buf[PATH_MAX + 1];
	int fd = fd_get(ws, inode);
	ssize_t n;

	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	n = readlinkat(fd, "", buf, sizeof(buf));
	n = n < 0 ? -errno : n;
	fd_put(ws, inode);
	if (n < 0)
		return (void)fuse_reply_err(req, (int)-n);
	if ((size_t)n == sizeof(buf))
		return (void)fuse_reply_err(req, ENAMETOOLONG);
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/* ---- making files ----------------------------------------------------------- */

/*
 * Who owns what req makes: the workspace's owner, or with --workspace-owner
 * preserve the caller (its fsuid and fsgid, as the kernel sent them).
 */
static void owner_for(const struct fs_ws *ws, fuse_req_t req, uid_t *ret_uid, gid_t *ret_gid)
{
	const struct fuse_ctx *ctx = ws->preserve ? fuse_req_ctx(req) : NULL;

	*ret_uid = ctx ? ctx->uid : ws->uid;
	*ret_gid = ctx ? ctx->gid : ws->gid;
}

/*
 * What req just made (fd, O_PATH or open; st its attributes) goes to its
 * owner (owner_for), and gets the mode asked for: the daemon's umask, and
 * a chown clearing set-id bits, may have taken some away. A group
 * inherited from a set-group-ID parent is kept.
 */
static int give_to_owner(struct fs_ws *ws, fuse_req_t req, int fd, const struct stat *parent,
			 struct stat *st, mode_t mode)
{
	mode_t want = setid_strip(mode) & 07777;
	char path[64];
	uid_t uid;
	gid_t gid;

	owner_for(ws, req, &uid, &gid);
	if (parent->st_mode & S_ISGID)
		gid = (gid_t)-1;
	if (st->st_uid != uid || (gid != (gid_t)-1 && st->st_gid != gid)) {
		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		st->st_uid = uid;
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
static int finish_new(struct fs_ws *ws, fuse_req_t req, int dirfd, const char *name, mode_t mode,
		      struct fuse_entry_param *e)
{
	struct ws_inode *inode;
	struct stat pst;
	int fd, r;

	entry_init(e);
	r = stat_fd(dirfd, &pst);
	if (r < 0)
		return r;
	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = stat_fd(fd, &e->attr);
	if (r == 0 && (e->attr.st_mode & S_IFMT) != (mode & S_IFMT))
		r = -EIO; /* replaced on the host in between: not ours to change */
	if (r == 0)
		r = give_to_owner(ws, req, fd, &pst, &e->attr, mode);
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
	int dirfd, r;

	if (!name_ok(name))
		return (void)fuse_reply_err(req, EINVAL);
	mode = setid_strip(mode); /* never there, not even for a moment */
	dirfd = fd_get(ws, parent);
	if (dirfd < 0)
		return (void)fuse_reply_err(req, -dirfd);
	if (S_ISDIR(mode))
		r = mkdirat(dirfd, name, mode & 07777);
	else if (S_ISLNK(mode))
		r = symlinkat(target, dirfd, name);
	else
		r = mknodat(dirfd, name, mode, rdev);
	r = r < 0 ? -errno : finish_new(ws, req, dirfd, name, mode, &e);
	fd_put(ws, parent);
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
	struct ws_inode *inode = inode_of(ws, ino), *dir = inode_of(ws, newparent);
	struct fuse_entry_param e;
	int fd, dirfd, r;

	if (!name_ok(newname))
		return (void)fuse_reply_err(req, EINVAL);
	fd = fd_get(ws, inode);
	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	dirfd = fd_get(ws, dir);
	r = dirfd;
	if (dirfd >= 0) {
		r = linkat(fd, "", dirfd, newname, AT_EMPTY_PATH) < 0 ? -errno : 0;
		fd_put(ws, dir);
	}
	entry_init(&e);
	if (r == 0)
		r = stat_fd(fd, &e.attr);
	fd_put(ws, inode);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	inode_ref(ws, inode);
	e.ino = ino;
	reply_entry(ws, req, &e);
}

/*
 * The file st was is gone: close its inode's descriptor now, if nothing
 * uses it, rather than at the kernel's forget. Until then the backing
 * dentry stays referenced, and each rmdir of its directory walks it.
 */
static void drop_removed(struct fs_ws *ws, const struct stat *st)
{
	struct ws_inode *inode;
	int fd = -1;

	pthread_mutex_lock(&ws->lock);
	inode = table_find(ws, st->st_dev, st->st_ino);
	if (inode && inode->fd >= 0 && inode->handle && !inode->users && !inode->opens) {
		fd = inode->fd;
		inode->fd = -1;
		lru_unlink(inode);
		ws->n_fds--;
	}
	pthread_mutex_unlock(&ws->lock);
	if (fd >= 0)
		close(fd);
}

static void remove_name(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent_ino, const char *name,
			int flags)
{
	struct ws_inode *parent = inode_of(ws, parent_ino);
	struct stat st;
	bool known;
	int dirfd, r;

	if (!name_ok(name))
		return (void)fuse_reply_err(req, EINVAL);
	dirfd = fd_get(ws, parent);
	if (dirfd < 0)
		return (void)fuse_reply_err(req, -dirfd);
	known = fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	r = unlinkat(dirfd, name, flags) < 0 ? errno : 0;
	fd_put(ws, parent);
	/* its last name: it cannot be reopened by handle anyway */
	if (r == 0 && known && (S_ISDIR(st.st_mode) || st.st_nlink <= 1))
		drop_removed(ws, &st);
	fuse_reply_err(req, r);
}

void fs_ws_unlink(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(ws, req, parent, name, 0);
}

void fs_ws_rmdir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(ws, req, parent, name, AT_REMOVEDIR);
}

/* The whiteout a RENAME_WHITEOUT left at name is the owner's too (owner_for). */
static void give_whiteout(struct fs_ws *ws, fuse_req_t req, int dirfd, const char *name)
{
	struct stat st;
	uid_t uid;
	gid_t gid;

	owner_for(ws, req, &uid, &gid);
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISCHR(st.st_mode) &&
	    st.st_rdev == 0 && (st.st_uid != uid || st.st_gid != gid))
		fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
}

void fs_ws_rename(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct ws_inode *from = inode_of(ws, parent), *to = inode_of(ws, newparent);
	int olddir, newdir, r;

	if (!name_ok(name) || !name_ok(newname) ||
	    (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)))
		return (void)fuse_reply_err(req, EINVAL);
	olddir = fd_get(ws, from);
	if (olddir < 0)
		return (void)fuse_reply_err(req, -olddir);
	newdir = fd_get(ws, to);
	r = newdir;
	if (newdir >= 0) {
		r = renameat2(olddir, name, newdir, newname, flags) < 0 ? -errno : 0;
		fd_put(ws, to);
	}
	if (r == 0 && (flags & RENAME_WHITEOUT))
		give_whiteout(ws, req, olddir, name);
	fd_put(ws, from);
	fuse_reply_err(req, -r);
}

/* ---- open files ------------------------------------------------------------- */

static int file_new(struct fs_ws *ws, fuse_req_t req, struct ws_inode *inode, int fd, int flags,
		    struct fuse_file_info *fi)
{
	struct ws_file *f = malloc(sizeof(*f));

	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&ws->lock);
	inode->opens++;
	pthread_mutex_unlock(&ws->lock);
	f->inode = inode;
	f->fd = fd;
	f->append = flags & O_APPEND;
	fi->fh = (uintptr_t)f;
	/*
	 * Passthrough, where there is: the kernel reads and writes the backing
	 * file itself, appends included (it opens the backing file with the
	 * opener's flags, so O_APPEND lands at the true end). Every open of
	 * an inode must then go through, which is why appends do too.
	 */
	f->backed = fs_backing_get(ws->fs, req, &ws->lock, &inode->backing, fd, fi);
	/*
	 * Else an append goes uncached: the kernel would cache the bytes where
	 * it guessed the end was. Other files keep their pages across opens:
	 * every level shares them, and a change made on the host shows once
	 * the attributes are asked again (auto_inval_data compares mtimes).
	 */
	if (fs_passes_through(fi))
		; /* the kernel has the backing file's own pages */
	else if (f->append)
		fi->direct_io = 1;
	else
		fi->keep_cache = 1;
	/*
	 * No flush at close: every write has already had its answer (there
	 * is no writeback cache), and POSIX locks are the kernel's.
	 */
	fi->noflush = 1;
	return 0;
}

/* req: the release, or NULL when an open's reply failed (passthrough.c). */
static void file_free(struct fs_ws *ws, fuse_req_t req, struct ws_file *f)
{
	if (f->backed)
		fs_backing_put(ws->fs, req, &ws->lock, &f->inode->backing);
	pthread_mutex_lock(&ws->lock);
	assert(f->inode->opens > 0);
	f->inode->opens--;
	pthread_mutex_unlock(&ws->lock);
	close(f->fd);
	free(f);
}

/* setid_clear() for an open file. */
static int setid_drop(int fd)
{
	struct stat st;
	char path[64];

	if (fstat(fd, &st) < 0)
		return -errno;
	proc_path(path, sizeof(path), fd);
	return setid_clear(path, &st);
}

/* Open flags for the backing file: never follow, never create here. */
static int open_flags(int flags)
{
	return (flags & ~(O_NOFOLLOW | O_CREAT | O_EXCL | O_NOCTTY)) | O_CLOEXEC;
}

void fs_ws_open(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ws_inode *inode = inode_of(ws, ino);
	int pfd = fd_get(ws, inode), fd, r;
	char path[64];

	if (pfd < 0)
		return (void)fuse_reply_err(req, -pfd);
	proc_path(path, sizeof(path), pfd);
	fd = open(path, open_flags(fi->flags));
	r = fd < 0 ? -errno : 0;
	if (r == 0 && (fi->flags & O_ACCMODE) != O_RDONLY)
		r = setid_drop(fd); /* a set-id program a level rewrites is one no more */
	if (r == 0)
		r = file_new(ws, req, inode, fd, fi->flags, fi);
	fd_put(ws, inode);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return (void)fuse_reply_err(req, -r);
	}
	if (fuse_reply_open(req, fi) == -ENOENT) /* the opener was interrupted */
		file_free(ws, NULL, file_of(fi));
}

void fs_ws_create(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent_ino, const char *name,
		  mode_t mode, struct fuse_file_info *fi)
{
	struct ws_inode *parent = inode_of(ws, parent_ino);
	struct ws_inode *inode;
	struct fuse_entry_param e;
	struct stat pst;
	char path[64];
	int dirfd, fd, pfd, r;

	if (!name_ok(name))
		return (void)fuse_reply_err(req, EINVAL);
	mode = setid_strip(S_IFREG | (mode & 07777));
	entry_init(&e);
	dirfd = fd_get(ws, parent);
	if (dirfd < 0)
		return (void)fuse_reply_err(req, -dirfd);
	fd = -1;
	r = stat_fd(dirfd, &pst);
	if (r == 0) {
		/* O_NOFOLLOW: a symlink put there on the host is not followed out */
		fd = openat(dirfd, name, open_flags(fi->flags) | O_CREAT | O_NOFOLLOW,
			    mode & 07777);
		r = fd < 0 ? -errno : 0;
	}
	fd_put(ws, parent);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	r = fstat(fd, &e.attr) < 0 ? -errno : 0;
	if (r == 0)
		r = give_to_owner(ws, req, fd, &pst, &e.attr, S_IFREG | (mode & 07777));
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
	r = file_new(ws, req, inode, fd, fi->flags, fi);
	if (r < 0) {
		fs_ws_forget(ws, e.ino, 1);
		goto out_close;
	}
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		file_free(ws, NULL, file_of(fi));
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

/*
 * Give the backing descriptor O_APPEND exactly when a write to it must
 * append: the caller's file has it now (the kernel tells its flags with
 * each write, fcntl(F_SETFL) included), and this is not the write-back of
 * a page, which belongs at its offset whatever file the kernel sends it
 * through. (A pwrite() to an O_APPEND descriptor appends.)
 */
static int set_append(struct ws_file *f, bool append)
{
	int flags;

	if (append == f->append)
		return 0;
	flags = fcntl(f->fd, F_GETFL);
	if (flags < 0 || fcntl(f->fd, F_SETFL, append ? flags | O_APPEND : flags & ~O_APPEND) < 0)
		return -errno;
	f->append = append;
	return 0;
}

/*
 * An append is one write() of the whole request, so that an appender on
 * the host cannot land inside it: what the kernel spliced to us is read
 * out of the pipe first (splice() refuses O_APPEND files, and libfuse
 * would copy it across in pages, one write() each).
 */
static void append_buf(fuse_req_t req, struct ws_file *f, struct fuse_bufvec *in)
{
	size_t size = fuse_buf_size(in);
	struct fuse_bufvec mem = FUSE_BUFVEC_INIT(size);
	char *copy = NULL;
	ssize_t n;

	if (in->count == 1 && !(in->buf[0].flags & FUSE_BUF_IS_FD)) {
		mem.buf[0].mem = in->buf[0].mem;
	} else {
		copy = malloc(size ? size : 1); /* at most max_write: the kernel bounds it */
		if (!copy)
			return (void)fuse_reply_err(req, ENOMEM);
		mem.buf[0].mem = copy;
		n = fuse_buf_copy(&mem, in, 0);
		if (n >= 0 && (size_t)n != size)
			n = -EIO;
		if (n < 0)
			goto out_free;
	}
	n = write(f->fd, mem.buf[0].mem, size);
	if (n < 0)
		n = -errno;
out_free:
	free(copy);
	if (n < 0)
		return (void)fuse_reply_err(req, (int)-n);
	fuse_reply_write(req, (size_t)n);
}

void fs_ws_write_buf(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
		     off_t off, struct fuse_file_info *fi)
{
	struct ws_file *f = file_of(fi);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	bool append = (fi->flags & O_APPEND) && !fi->writepage;
	ssize_t n;
	int r;

	(void)ws;
	(void)ino;
	r = set_append(f, append);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	if (append)
		return append_buf(req, f, in);
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = f->fd;
	out.buf[0].pos = off;
	n = fuse_buf_copy(&out, in, 0);
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
	(void)ino;
	file_free(ws, req, file_of(fi)); /* and with it any flock() it held */
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
	/* the kernel refuses O_APPEND targets: ours may still have it from before */
	n = set_append(file_of(fi_out), false);
	if (n < 0)
		return (void)fuse_reply_err(req, (int)-n);
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
	struct ws_inode *inode = inode_of(ws, ino);
	struct ws_dir *d = calloc(1, sizeof(*d));
	int pfd, fd, r;

	if (!d)
		return (void)fuse_reply_err(req, ENOMEM);
	pfd = fd_get(ws, inode);
	if (pfd < 0) {
		r = -pfd;
		goto out_free;
	}
	fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	r = errno;
	fd_put(ws, inode);
	if (fd < 0)
		goto out_free;
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
	struct ws_inode *inode = inode_of(ws, ino);
	struct statvfs st;
	int fd = fd_get(ws, inode), r;

	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	r = fstatvfs(fd, &st) < 0 ? errno : 0;
	fd_put(ws, inode);
	if (r)
		return (void)fuse_reply_err(req, r);
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
	struct ws_inode *inode = inode_of(ws, ino);
	int fd = fd_get(ws, inode);
	char path[64];
	ssize_t n = 0;

	if (fd < 0)
		return fd;
	proc_path(path, sizeof(path), fd);
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
	fd_put(ws, inode);
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

	if (xattr_refused(ws, name))
		return (void)fuse_reply_err(req, ENOTSUP);
	n = do_xattr(ws, ino, XATTR_SET, name, (void *)value, size, flags);

	fuse_reply_err(req, n < 0 ? (int)-n : 0);
}

void fs_ws_removexattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, const char *name)
{
	ssize_t n = do_xattr(ws, ino, XATTR_REMOVE, name, NULL, 0, 0);

	fuse_reply_err(req, n < 0 ? (int)-n : 0);
}

/* getxattr and listxattr: the size wanted when size is 0, else the bytes. */
static void reply_xattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, enum xattr_op op,
			const char *name, size_t size)
{
	char *value = NULL;
	ssize_t n;

	/* at most XATTR_SIZE_MAX: the kernel bounds size */
	if (size > 0 && !(value = malloc(size)))
		return (void)fuse_reply_err(req, ENOMEM);
	n = do_xattr(ws, ino, op, name, value, size, 0);
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
