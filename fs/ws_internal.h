/*
 * ws_internal.h: what the files of the workspace share, and nothing else
 * includes. workspace.c sets the workspace up and holds its policy (who
 * owns what a level makes, which set-id bits it may leave, attributes);
 * ws_inode.c the inode table and its descriptor budget; ws_dir.c names,
 * directories and xattrs; ws_file.c open files; ws_owner.c what the
 * mount shows over the disk (owners, device nodes). workspace.c's opening
 * comment tells how it all works.
 */
#ifndef DINDFS_WS_INTERNAL_H
#define DINDFS_WS_INTERNAL_H

#include "hash.h"
#include "workspace.h"

#include <inttypes.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/*
 * Seconds the kernel trusts a name or attributes without asking again:
 * long while every directory it holds is watched for host changes
 * (ws_watch.c), short once a watch could not be added or events were lost.
 * A day when the kernel can be told to drop every name it holds at once
 * (FUSE_NOTIFY_INC_EPOCH, Linux 6.16+), which a failing watch must do;
 * without that, a minute bounds how long a name may stay stale.
 */
#define WS_LONG_TIMEOUT	  86400.0
#define WS_MINUTE_TIMEOUT 60.0
#define WS_SHORT_TIMEOUT  1.0

struct ws_mark;

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
	struct fs_backing backing;	      /* the passthrough id its open files share */
	struct fs_hash_link link;	      /* in ws->inodes */
	struct ws_inode *lru_prev, *lru_next; /* on ws->lru while fd is open; newest first */
	struct ws_mark *mark; /* a directory's fanotify mark, or NULL (ws_watch.c) */
};

struct ws_file {
	struct ws_inode *inode;
	int fd;
	bool append; /* fd has O_APPEND now; only its writer (one at a time) changes it */
	bool backed; /* counted in inode->backing */
};

struct fs_ws {
	struct fs *fs;
	struct ws_inode root; /* the workspace directory: never freed */
	uid_t uid;	      /* who owns what is created */
	gid_t gid;
	bool overlay_xattrs; /* trusted.overlay.* may be set */
	bool preserve;	     /* what is created is its creator's (plain POSIX) */

	int mount_fd; /* of the workspace's file system, for open_by_handle_at() */

	pthread_mutex_t lock;	 /* the table, and each inode's fields it says */
	struct fs_hash inodes;	 /* the inode table (ws_inode.c), root not in it */
	struct ws_inode lru;	 /* list head: inodes whose fd is open, newest first */
	size_t n_fds;		 /* inode descriptors open */
	size_t max_fds;		 /* the budget: the rest is for open files and the cache */
	atomic_bool full_logged; /* the log said the table is full */

	atomic_int flock_waiters;

	struct ws_watch *watch;			/* host changes (ws_watch.c), or NULL */
	atomic_bool watching;			/* every directory the kernel holds is watched */
	atomic_uint_fast64_t lookups, getattrs; /* requests served: .dindfs/stats */
	uint64_t fd_evictions, fd_reopens;	/* under lock: .dindfs/stats */
};

static inline struct ws_inode *ws_inode_of(struct fs_ws *ws, fuse_ino_t ino)
{
	struct ws_inode *inode = (struct ws_inode *)(uintptr_t)ino;

	fs_check(inode->family == FS_FAMILY_WORKSPACE, "inode %#" PRIx64 " is not the workspace's",
		 (uint64_t)ino);
	(void)ws;
	return inode;
}

static inline fuse_ino_t ws_ino_of(const struct ws_inode *inode)
{
	return (fuse_ino_t)(uintptr_t)inode;
}

static inline struct ws_file *ws_file_of(struct fuse_file_info *fi)
{
	return (struct ws_file *)(uintptr_t)fi->fh;
}

/* /proc/self/fd/N: reopens exactly the inode fd stands for, follows nothing else. */
static inline void ws_proc_path(char *buf, size_t size, int fd)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

static inline int ws_stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* A name a create, unlink or rename may use: one component, not "." or "..". */
static inline bool ws_name_ok(const char *name)
{
	return *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* ---- the inode table (ws_inode.c) ----------------------------------------- */

/* What every inode starts with: the file it stands for, held by fd. */
void ws_inode_init(struct ws_inode *inode, int fd, const struct stat *st);
/*
 * The inode of the file fd (O_PATH) refers to, st its attributes: found,
 * or made from fd. Either way one more lookup is counted and fd is the
 * table's (closed when the file already had an inode). -ENFILE when the
 * table is full.
 */
int ws_inode_get(struct fs_ws *ws, int fd, const struct stat *st, struct ws_inode **ret);
/* The kernel's number of the inode of (dev, ino), if the table has one; 0 if not. */
fuse_ino_t ws_inode_find(struct fs_ws *ws, dev_t dev, ino_t ino);
/*
 * Every inode the kernel holds, the root too, each with one more lookup
 * counted (give it back with fs_ws_forget(ino, 1)): *ret (malloc'd) and
 * *ret_n. -ENOMEM, and nothing held, when the array cannot be had.
 */
int ws_inode_hold_all(struct fs_ws *ws, fuse_ino_t **ret, size_t *ret_n);
/* One more lookup of an inode the kernel already holds. */
void ws_inode_ref(struct fs_ws *ws, struct ws_inode *inode);
/*
 * The file st was is gone: close its inode's descriptor now, if nothing
 * uses it, rather than at the kernel's forget.
 */
void ws_inode_drop_removed(struct fs_ws *ws, const struct stat *st);
/*
 * The O_PATH descriptor of inode, reopened by its handle if it was closed;
 * it stays open until ws_fd_put(). Returns it or -errno (-ESTALE: the file
 * is gone from the backing file system).
 */
int ws_fd_get(struct fs_ws *ws, struct ws_inode *inode);
void ws_fd_put(struct fs_ws *ws, struct ws_inode *inode);

/* ---- policy (workspace.c) -------------------------------------------------- */

/*
 * The mode bits a level may leave on the disk's file of type S_IFMT(mode):
 * no set-user-ID bit, and set-group-ID on directories only. The mount
 * shows the others (ws_owner.c).
 */
mode_t ws_setid_strip(mode_t mode);
/*
 * Clear what a level may not leave on a file it now gives away or rewrites
 * (chown, truncate, write-open): the set-id bits ws_setid_strip() forbids
 * and a file capability. st describes the file, path names it
 * (/proc/self/fd/N), fd is an open descriptor of it or -1; st is updated.
 * Returns 0 or -errno.
 */
int ws_privilege_clear(int fd, const char *path, struct stat *st);
/*
 * Who owns what req makes: the workspace's owner, or with --workspace-owner
 * preserve the caller (its fsuid and fsgid, as the kernel sent them).
 */
void ws_owner_for(const struct fs_ws *ws, fuse_req_t req, uid_t *ret_uid, gid_t *ret_gid);
/*
 * What req just made (fd, O_PATH or open; st its attributes) goes to its
 * owner (ws_owner_for) on disk, shows its creator (ws_owner_new; st then
 * says what is shown), and gets the mode asked for. Returns 0 or -errno.
 */
int ws_give_to_owner(struct fs_ws *ws, fuse_req_t req, int fd, const struct stat *parent,
		     struct stat *st, mode_t mode);

/* ---- what the mount shows over the disk (ws_owner.c) ----------------------- */

/* The xattr on a backing file that holds what the mount shows instead of the disk. */
#define WS_OVERRIDE_PREFIX "trusted.dindfs."
#define WS_OVERRIDE_XATTR  WS_OVERRIDE_PREFIX "stat"

struct ws_override {
	uid_t uid; /* the owner shown */
	gid_t gid;
	mode_t mode;  /* a device's S_IFCHR/S_IFBLK and permissions, or 0: the disk's */
	dev_t rdev;   /* a device's numbers */
	mode_t setid; /* not a device: S_ISUID, S_ISGID shown over the disk's mode */
};

/* fd's override: 0, or -ENODATA when it has none (or one not ours), or -errno. */
int ws_override_get(int fd, struct ws_override *ret);
/* Write ov as fd's override, or remove it (ov NULL; none is not an error). 0 or -errno. */
int ws_override_set(int fd, const struct ws_override *ov);
/* st, the attributes of fd's backing file, as the mount shows them. */
void ws_show(int fd, struct stat *st);
/* ws_stat_fd() and ws_show(): what a reply to the kernel says of fd's file. */
int ws_stat_shown(int fd, struct stat *st);
/*
 * What req just made (fd; st its attributes on disk, after ws_give_to_owner)
 * shows its creator as owner in the default mode: its fsuid, and its fsgid
 * or parent's (shown) group when parent is set-group-ID; and in both modes
 * the set-id bits of mode, the one asked for, that the disk may not have.
 * st becomes what is shown. Returns 0 or -errno.
 */
int ws_owner_new(struct fs_ws *ws, fuse_req_t req, int fd, const struct stat *parent,
		 struct stat *st, mode_t mode);
/*
 * fd's file (an empty regular file, st as shown) is the device mode/rdev
 * asked for: recorded in its override, and st shows it. 0 or -errno.
 */
int ws_owner_device(int fd, struct stat *st, mode_t mode, dev_t rdev);
/*
 * A chown by req's caller the kernel allowed: in the default mode only
 * what is shown changes (the override, removed when it equals the disk),
 * with preserve the disk too; the ctime changes either way. uid or gid
 * -1: unchanged (both: the kernel's chown(-1, -1)). As Linux does at every
 * chown, even root's, a non-directory's shown S_ISUID goes, and S_ISGID if
 * it is group-executable or the caller is not in its group. Returns 0 or
 * -errno.
 */
int ws_owner_chown(struct fs_ws *ws, fuse_req_t req, int fd, uid_t uid, gid_t gid);
/*
 * A chmod the kernel allowed, to mode's permission bits: the disk gets
 * them but for the set-id bits ws_setid_strip() forbids, which are shown
 * only (the override); an emulated device's mode is its override's alone.
 * file_fd is an open descriptor of the file or -1. Returns 0 or -errno.
 */
int ws_owner_chmod(int fd, int file_fd, mode_t mode);
/*
 * fd's file is truncated, or opened for writing, by req's caller: unless it
 * is root (taken for CAP_FSETID), the set-id bits shown only go as at
 * ws_owner_chown(). Returns 1 when some went (the attributes the kernel
 * holds are stale), 0 when none did, or -errno.
 */
int ws_owner_setid_kill(fuse_req_t req, int fd);
/* Whether name is the daemon's own xattr: hidden from and refused to the mount. */
bool ws_owner_xattr(const char *name);
/* Drop the daemon's own names from a listxattr list of size bytes; returns the new size. */
size_t ws_owner_xattr_hide(char *list, size_t size);

/* ---- names (ws_dir.c) ------------------------------------------------------ */

/* A fuse_entry_param with nothing in it but the timeouts. */
void ws_entry_init(struct fs_ws *ws, struct fuse_entry_param *e);

/* ---- host changes (ws_watch.c) --------------------------------------------- */

/* How long the kernel may trust what we reply now (one of the WS_*_TIMEOUTs). */
double ws_timeout(struct fs_ws *ws);
/* Set up fanotify (no thread yet). A failure only leaves the timeouts short. */
void ws_watch_new(struct fs_ws *ws);
/* Start the thread, once: called when the kernel first looks the workspace up. */
void ws_watch_start(struct fs_ws *ws);
/* Stop the thread and free the watches; not when the thread is stuck (ws_watch_stuck). */
void ws_watch_free(struct fs_ws *ws);
/* The thread did not end at fs_ws_stop_watching(): nothing it may use can be freed. */
bool ws_watch_stuck(const struct fs_ws *ws);
/* Watch the directory inode (its fd open). Called with ws->lock held. */
void ws_watch_add(struct fs_ws *ws, struct ws_inode *inode);
/*
 * Remove inode's mark, if it has one, before its descriptor is closed.
 * Called with ws->lock held, so that no mark of the same directory is
 * added meanwhile (the kernel keeps one mark per directory and group).
 */
void ws_watch_drop(struct fs_ws *ws, struct ws_inode *inode);
/*
 * The daemon changed the disk but the kernel did not hear of it (a request
 * that failed half way, or whose reply was lost): name in the directory
 * ino, or (name NULL) the inode ino itself. The watch thread tells the
 * kernel. The caller holds a lookup of ino; no lock held.
 */
void ws_watch_stale(struct fs_ws *ws, fuse_ino_t ino, const char *name);

#endif
