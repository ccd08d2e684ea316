/*
 * workspace: MOUNTPOINT/workspace, a read-write passthrough of the
 * --workspace directory, the same at every Docker-in-Docker level.
 *
 * Its inodes are its own (struct ws_inode in workspace.c): each holds an
 * O_PATH descriptor of the file it stands for, as in libfuse's
 * passthrough_ll, and every operation works from such a descriptor and one
 * name, so nothing a request says is resolved as a path and the daemon
 * never follows a symlink. ops.c hands an operation to this module when its
 * inode number belongs here (fs_ws_family, ws_ops.c), and the root's
 * "workspace" entry.
 *
 * The operations below take the same arguments as their fuse_lowlevel_ops
 * counterparts, with the workspace first, and each sends exactly one reply
 * (forget sends none: ops.c replies once for a whole batch).
 */
#ifndef DINDFS_WORKSPACE_H
#define DINDFS_WORKSPACE_H

#include "fs_internal.h"

#include "mount_layout.h"

/* The name of the workspace in the mount's root. */
#define FS_WS_NAME FS_LAYOUT_WORKSPACE

struct fs_ws;

/*
 * Open the workspace of fs->cfg (cfg->workspace; its owner, or
 * cfg->workspace_uid/gid when set). Returns 0 or -errno; a directory that
 * cannot be opened, or is not a directory, is an error for the caller to
 * report.
 */
int fs_ws_new(struct fs *fs, struct fs_ws **ret);
/*
 * Stop telling the kernel of host changes (the thread that does ends);
 * before the session goes. Accepts NULL.
 */
void fs_ws_stop_watching(struct fs_ws *ws);
/* Whether every directory the kernel holds is watched now (ws_watch.c). */
bool fs_ws_watching(struct fs_ws *ws);
/* What .dindfs/stats says of the workspace. */
struct fs_ws_counters {
	uint64_t lookups, getattrs; /* requests served */
	uint64_t fds;		    /* inode descriptors open now */
	uint64_t fd_budget;	    /* the most it keeps open */
	uint64_t fd_evictions;	    /* closed to stay within the budget */
	uint64_t fd_reopens;	    /* reopened by file handle when used again */
	double timeout_s;	    /* how long the kernel trusts names and attributes now */
};
void fs_ws_counters(struct fs_ws *ws, struct fs_ws_counters *ret);
/*
 * From the session's init: learn whether the kernel can drop every name at
 * once (ws_watch.c), which decides how long it may trust them. Accepts NULL.
 */
void fs_ws_init(struct fs_ws *ws);
/* Close every descriptor the workspace holds. Accepts NULL. */
void fs_ws_free(struct fs_ws *ws);

/* The workspace's family of inodes (ws_ops.c), for fs->families. */
extern const struct fs_family fs_ws_family;

/* The root's "workspace" entry: the workspace directory itself. */
void fs_ws_lookup_root(struct fs_ws *ws, fuse_req_t req);
/* Count n fewer lookups on ino; no reply. */
void fs_ws_forget(struct fs_ws *ws, fuse_ino_t ino, uint64_t n);

void fs_ws_lookup(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_ws_getattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_ws_setattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		   struct fuse_file_info *fi);
void fs_ws_readlink(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino);
void fs_ws_mknod(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		 dev_t rdev);
void fs_ws_mkdir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode);
void fs_ws_symlink(struct fs_ws *ws, fuse_req_t req, const char *target, fuse_ino_t parent,
		   const char *name);
void fs_ws_link(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		const char *newname);
void fs_ws_unlink(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_ws_rmdir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_ws_rename(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname, unsigned int flags);

void fs_ws_open(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_ws_create(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, struct fuse_file_info *fi);
void fs_ws_read(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_ws_write_buf(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
		     off_t off, struct fuse_file_info *fi);
void fs_ws_flush(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_ws_release(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_ws_fsync(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi);
void fs_ws_fallocate(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
		     off_t len, struct fuse_file_info *fi);
void fs_ws_lseek(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		 struct fuse_file_info *fi);
void fs_ws_copy_file_range(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			   struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			   struct fuse_file_info *fi_out, size_t len, int flags);
void fs_ws_flock(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		 int op);

void fs_ws_opendir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_ws_readdir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi, bool plus);
void fs_ws_releasedir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_ws_fsyncdir(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, int datasync,
		    struct fuse_file_info *fi);

void fs_ws_statfs(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino);
void fs_ws_setxattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, const char *name,
		    const char *value, size_t size, int flags);
void fs_ws_getxattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, const char *name,
		    size_t size);
void fs_ws_listxattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_ws_removexattr(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, const char *name);

#endif
