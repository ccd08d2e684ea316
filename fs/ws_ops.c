/*
 * ws_ops: the workspace as a family of inodes (fs_family): its table of
 * operations, each handing the request to workspace.c's fs_ws_<op>() with
 * the workspace first.
 */
#include "workspace.h"

static void ws_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_ws_lookup(fs_of(req)->ws, req, parent, name);
}

static void ws_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_ws_getattr(fs_of(req)->ws, req, ino, fi);
}

static void ws_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	fs_ws_setattr(fs_of(req)->ws, req, ino, attr, to_set, fi);
}

static void ws_readlink(fuse_req_t req, fuse_ino_t ino)
{
	fs_ws_readlink(fs_of(req)->ws, req, ino);
}

static void ws_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fs_ws_mknod(fs_of(req)->ws, req, parent, name, mode, rdev);
}

static void ws_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fs_ws_mkdir(fs_of(req)->ws, req, parent, name, mode);
}

static void ws_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	fs_ws_symlink(fs_of(req)->ws, req, target, parent, name);
}

static void ws_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fs_ws_link(fs_of(req)->ws, req, ino, newparent, newname);
}

static void ws_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_ws_unlink(fs_of(req)->ws, req, parent, name);
}

static void ws_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_ws_rmdir(fs_of(req)->ws, req, parent, name);
}

static void ws_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	fs_ws_rename(fs_of(req)->ws, req, parent, name, newparent, newname, flags);
}

static void ws_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_ws_open(fs_of(req)->ws, req, ino, fi);
}

static void ws_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	fs_ws_create(fs_of(req)->ws, req, parent, name, mode, fi);
}

static void ws_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	fs_ws_read(fs_of(req)->ws, req, ino, size, off, fi);
}

static void ws_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	fs_ws_write_buf(fs_of(req)->ws, req, ino, in, off, fi);
}

static void ws_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_ws_flush(fs_of(req)->ws, req, ino, fi);
}

static void ws_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_ws_release(fs_of(req)->ws, req, ino, fi);
}

static void ws_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fs_ws_fsync(fs_of(req)->ws, req, ino, datasync, fi);
}

static void ws_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	fs_ws_fallocate(fs_of(req)->ws, req, ino, mode, off, len, fi);
}

static void ws_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	fs_ws_lseek(fs_of(req)->ws, req, ino, off, whence, fi);
}

static void ws_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	fs_ws_copy_file_range(fs_of(req)->ws, req, ino_in, off_in, fi_in, ino_out, off_out, fi_out,
			      len, flags);
}

static void ws_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	fs_ws_flock(fs_of(req)->ws, req, ino, fi, op);
}

static void ws_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_ws_opendir(fs_of(req)->ws, req, ino, fi);
}

static void ws_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	fs_ws_readdir(fs_of(req)->ws, req, ino, size, off, fi, false);
}

static void ws_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	fs_ws_readdir(fs_of(req)->ws, req, ino, size, off, fi, true);
}

static void ws_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_ws_releasedir(fs_of(req)->ws, req, ino, fi);
}

static void ws_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fs_ws_fsyncdir(fs_of(req)->ws, req, ino, datasync, fi);
}

static void ws_statfs(fuse_req_t req, fuse_ino_t ino)
{
	fs_ws_statfs(fs_of(req)->ws, req, ino);
}

static void ws_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	fs_ws_setxattr(fs_of(req)->ws, req, ino, name, value, size, flags);
}

static void ws_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	fs_ws_getxattr(fs_of(req)->ws, req, ino, name, size);
}

static void ws_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	fs_ws_listxattr(fs_of(req)->ws, req, ino, size);
}

static void ws_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fs_ws_removexattr(fs_of(req)->ws, req, ino, name);
}

static const struct fuse_lowlevel_ops ws_ops = {
	.lookup = ws_lookup,
	.getattr = ws_getattr,
	.setattr = ws_setattr,
	.readlink = ws_readlink,
	.mknod = ws_mknod,
	.mkdir = ws_mkdir,
	.symlink = ws_symlink,
	.link = ws_link,
	.unlink = ws_unlink,
	.rmdir = ws_rmdir,
	.rename = ws_rename,
	.open = ws_open,
	.create = ws_create,
	.read = ws_read,
	.write_buf = ws_write_buf,
	.flush = ws_flush,
	.release = ws_release,
	.fsync = ws_fsync,
	.fallocate = ws_fallocate,
	.lseek = ws_lseek,
	.copy_file_range = ws_copy_file_range,
	.flock = ws_flock,
	.opendir = ws_opendir,
	.readdir = ws_readdir,
	.readdirplus = ws_readdirplus,
	.releasedir = ws_releasedir,
	.fsyncdir = ws_fsyncdir,
	.statfs = ws_statfs,
	.setxattr = ws_setxattr,
	.getxattr = ws_getxattr,
	.listxattr = ws_listxattr,
	.removexattr = ws_removexattr,
};

static void ws_lookup_root(struct fs *fs, fuse_req_t req)
{
	fs_ws_lookup_root(fs->ws, req);
}

static void ws_forget(struct fs *fs, fuse_ino_t ino, uint64_t n)
{
	fs_ws_forget(fs->ws, ino, n);
}

/* Listings the kernel keeps are told stale by the watch, while it watches everything. */
static bool ws_keeps_listing(struct fs *fs, fuse_ino_t ino)
{
	(void)ino;
	return fs_ws_watching(fs->ws);
}

const struct fs_family fs_ws_family = {
	.tag = FS_FAMILY_WORKSPACE,
	.root_name = FS_WS_NAME,
	.lookup_root = ws_lookup_root,
	.forget = ws_forget,
	.ops = &ws_ops,
	.keeps_listing = ws_keeps_listing,
};
