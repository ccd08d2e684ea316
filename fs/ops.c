/*
 * ops: the fuse_lowlevel_ops table the session serves, and what is the
 * same for every family of inodes (forgets, the connection's options).
 *
 * An inode of the workspace goes to workspace.c before anything of the
 * cache namespace looks at it (fs_is_ws()); so does the root's "workspace"
 * entry.
 */
#include "cache_ops.h"

static void forget_one(struct fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	if (fs_is_ws(fs, ino))
		fs_ws_forget(fs->ws, ino, nlookup);
	else
		fs_node_forget(fs, fs_node_of(fs, ino), nlookup);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);
	size_t i;

	for (i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	fs_passthrough_init(userdata, conn);
	/*
	 * Workspace writes splice into the backing file: the kernel hands
	 * over its page-cache pages instead of copying them to us (the
	 * cache's writes are copied out of the pipe). libfuse does so only
	 * when it can grow a pipe past fs.pipe-max-size (CAP_SYS_RESOURCE);
	 * small requests cost a second system call for it.
	 */
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want |= FUSE_CAP_SPLICE_READ;
	/* blob reads splice from the store's files */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	/* O_TRUNC comes with open, so a rewrite of a local tag needs no setattr */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/*
	 * No writeback cache: the kernel would decide where an append lands,
	 * and appends from several writers would overwrite each other.
	 */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* POSIX locks stay in the kernel that all levels share (workspace.c) */
	conn->want &= ~(unsigned)FUSE_CAP_POSIX_LOCKS;
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = fs_cache_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = fs_cache_getattr,
	.setattr = fs_cache_setattr,
	.opendir = fs_cache_opendir,
	.readdir = fs_cache_readdir,
	.readdirplus = fs_cache_readdirplus,
	.releasedir = fs_cache_releasedir,
	.fsyncdir = fs_cache_fsyncdir,
	.open = fs_cache_open,
	.create = fs_cache_create,
	.read = fs_cache_read,
	.write_buf = fs_cache_write_buf,
	.flush = fs_cache_flush,
	.release = fs_cache_release,
	.fsync = fs_cache_fsync,
	.unlink = fs_cache_unlink,
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
	.lseek = fs_cache_lseek,
	.copy_file_range = fs_cache_copy_file_range,
	.flock = fs_cache_flock,
};
