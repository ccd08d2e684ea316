/*
 * cache_ops: the FUSE operations of the cache namespace (blobs/,
 * registry/, ingest/, .dindfs/), and the open files (struct fs_file) they share.
 * Its family's table (fs_cache_family) points at them.
 *
 * Each takes the arguments of its fuse_lowlevel_ops counterpart and sends
 * exactly one reply. Nothing outside fs/ sees this header.
 */
#ifndef DINDFS_CACHE_OPS_H
#define DINDFS_CACHE_OPS_H

#include "fs_internal.h"

static inline struct fs_file *fs_file_of(struct fuse_file_info *fi)
{
	return (struct fs_file *)(uintptr_t)fi->fh;
}

/* ops.c: the table the session serves. */
extern const struct fuse_lowlevel_ops fs_ops;
/* cache_ops.c: the cache namespace's family of inodes, for fs->families. */
extern const struct fs_family fs_cache_family;

/* cache_io.c: open files */
struct fs_file *fs_file_new(enum fs_file_kind kind, struct fs_node *node);
/* Free f and what it holds: what it never committed is dropped. */
void fs_file_free(struct fs *fs, struct fs_file *f);
/* cache_write.c: an open file that writes, counted in level's budgets (-EMFILE: full). */
int fs_file_new_writable(struct fs *fs, int level, enum fs_file_kind kind, struct fs_node *node,
			 struct fs_file **ret);
/* cache_ops.c: fill e with node's entry (the caller holds a lookup on it). */
int fs_fill_entry(struct fs *fs, struct fs_node *node, double timeout, struct fuse_entry_param *e);

/* cache_ops.c: names, attributes, listings, xattrs; what the namespace refuses */
void fs_cache_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name);
void fs_cache_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_cache_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_cache_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi);
void fs_cache_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi);
void fs_cache_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_cache_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fs_cache_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_cache_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_cache_statfs(fuse_req_t req, fuse_ino_t ino);
void fs_cache_readlink(fuse_req_t req, fuse_ino_t ino);
void fs_cache_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void fs_cache_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_cache_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name);
void fs_cache_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void fs_cache_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_cache_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		     const char *newname, unsigned int flags);
void fs_cache_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fs_cache_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		       size_t size, int flags);
void fs_cache_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void fs_cache_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			struct fuse_file_info *fi);
void fs_cache_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			      struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			      struct fuse_file_info *fi_out, size_t len, int flags);
void fs_cache_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op);

/* cache_io.c: opening and reading */
void fs_cache_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_cache_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void fs_cache_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		    struct fuse_file_info *fi);

/* cache_write.c: creating, writing, committing */
void fs_cache_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		     struct fuse_file_info *fi);
void fs_cache_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		      struct fuse_file_info *fi);
void fs_cache_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			struct fuse_file_info *fi);
void fs_cache_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_cache_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_cache_unlink(fuse_req_t req, fuse_ino_t parent_ino, const char *name);

#endif
