/*
 * ops: the fuse_lowlevel_ops table the session serves. Each operation
 * finds the family of its inode (struct fs_family) once, from the tag the
 * inode starts with, and calls that family's table; an operation on two
 * inodes of different families is EXDEV; the root's entries of the other
 * families (workspace/) are theirs. Forgets and the connection's options
 * are the same for every family, and are here.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "cache_ops.h"
#include "workspace.h"

/* The slot of ino's family; an inode of none is a broken invariant. */
static size_t slot_of(struct fs *fs, fuse_ino_t ino)
{
	uint32_t tag = ino == FUSE_ROOT_ID ? FS_FAMILY_CACHE : *(const uint32_t *)(uintptr_t)ino;
	size_t i;

	for (i = 0; i < FS_SLOTS; i++)
		if (fs->families[i] && fs->families[i]->tag == tag)
			return i;
	fs_internal_error("inode %#" PRIx64 " is of no family (tag %#" PRIx32 ")", (uint64_t)ino,
			  tag);
}

/* One more request of kind (opcount.h), served by the family in slot. */
static void count(struct fs *fs, size_t slot, enum fs_op kind)
{
	fs_opcount_add(&fs->stats.requests, kind);
	fs_opcount_add(&fs->stats.family_requests[slot], kind);
}

/* The family of ino, the request counted as kind for it. */
static const struct fs_family *counted(fuse_req_t req, fuse_ino_t ino, enum fs_op kind)
{
	struct fs *fs = fs_of(req);
	size_t slot = slot_of(fs, ino);

	count(fs, slot, kind);
	return fs->families[slot];
}

/*
 * The family of a and b (the request counted as kind for a's), or NULL
 * after replying EXDEV when they are of two.
 */
static const struct fs_family *family_of_both(fuse_req_t req, fuse_ino_t a, fuse_ino_t b,
					      enum fs_op kind)
{
	struct fs *fs = fs_of(req);
	const struct fs_family *f = counted(req, a, kind);

	if (f == fs->families[slot_of(fs, b)])
		return f;
	fuse_reply_err(req, EXDEV);
	return NULL;
}

/* Call op of family f, or answer EACCES when it has none (never ENOSYS). */
#define CALL(f, op, req, ...)                                                                      \
	((f)->ops->op ? (f)->ops->op(req, __VA_ARGS__) : (void)fuse_reply_err(req, EACCES))

/* Count op for ino's family and call it there. */
#define DISPATCH(op, ino, req, ...)                                                                \
	do {                                                                                       \
		const struct fs_family *f_ = counted(req, ino, FS_OP_##op);                        \
                                                                                                   \
		CALL(f_, op, req, __VA_ARGS__);                                                    \
	} while (0)

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	counted(req, ino, FS_OP_forget)->forget(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t n, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);
	bool seen[FS_SLOTS] = {false};
	size_t i, slot;

	fs_opcount_add(&fs->stats.requests, FS_OP_forget_multi);
	for (i = 0; i < n; i++) {
		slot = slot_of(fs, forgets[i].ino);
		if (!seen[slot]) /* once for each family it has inodes of */
			fs_opcount_add(&fs->stats.family_requests[slot], FS_OP_forget_multi);
		seen[slot] = true;
		fs->families[slot]->forget(fs, forgets[i].ino, forgets[i].nlookup);
	}
	fuse_reply_none(req);
}

/*
 * What the kernel offers for speed, each measured with bench/workspace.sh
 * (README) before it was kept; what the connection took goes to
 * fs->negotiated for .dindfs/stats.
 */
static void want_speed(struct fs *fs, struct fuse_conn_info *conn)
{
	/*
	 * Lookups and listings of one directory at once (libfuse 3.14 asks
	 * by default, 3.17 does not): every request here is an *at() call on
	 * descriptors, and the inode table has its own lock.
	 */
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
#ifdef FUSE_CAP_HANDLE_KILLPRIV_V2
	/*
	 * The daemon clears set-id bits and file capabilities itself (at
	 * write-open, truncate and chown: workspace.c), so the kernel need not
	 * ask for security.capability before every write: with this it marks
	 * the mount SB_NOSEC and remembers a file has none. libfuse 3.14 cannot
	 * ask for it.
	 */
	if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV_V2) {
		conn->want |= FUSE_CAP_HANDLE_KILLPRIV_V2;
		fs->negotiated.killpriv_v2 = true;
	}
#endif
	fs->negotiated.parallel_dirops = conn->want & FUSE_CAP_PARALLEL_DIROPS;
	fs->negotiated.max_write = conn->max_write;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	fs_passthrough_init(userdata, conn);
	fs_ws_init(fs->ws);
	/*
	 * Workspace writes splice into the backing file: the kernel hands
	 * over its page-cache pages instead of copying them to us (the
	 * cache's writes are copied out of the pipe). libfuse does so only
	 * when it can grow a pipe past fs.pipe-max-size (CAP_SYS_RESOURCE).
	 * A max_write of 1 MiB - 4 KiB would fit the default 1 MiB pipe, but
	 * measured here (libfuse 3.14) it made 1 GiB writes 23% faster and
	 * 10,000 create+unlink 17% and rm -rf 46% slower: every small request
	 * then costs a splice and a read. So max_write stays 1 MiB.
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
	/*
	 * No opendir: a directory open costs no request, nor its release
	 * (git status opens every directory of the tree each time). The
	 * first opendir is answered ENOSYS, and the kernel sends none again
	 * on this connection, for any family: each lists without a handle,
	 * and says whether the kernel may keep its listings (keeps_listing).
	 */
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
		fs->no_opendir = true;
	/* POSIX locks stay in the kernel that all levels share (workspace.c) */
	conn->want &= ~(unsigned)FUSE_CAP_POSIX_LOCKS;
	want_speed(fs, conn);
}

/* ---- dispatch ---------------------------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs *fs = fs_of(req);
	size_t i;

	for (i = 0; parent_ino == FUSE_ROOT_ID && i < FS_SLOTS; i++) {
		const struct fs_family *f = fs->families[i];

		if (f && f->root_name && strcmp(name, f->root_name) == 0) {
			count(fs, i, FS_OP_lookup);
			return f->lookup_root(fs, req);
		}
	}
	DISPATCH(lookup, parent_ino, req, parent_ino, name);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	DISPATCH(getattr, ino, req, ino, fi);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fs_of(req)->no_opendir) { /* the first, and the last (op_init) */
		counted(req, ino, FS_OP_opendir);
		return (void)fuse_reply_err(req, ENOSYS);
	}
	DISPATCH(opendir, ino, req, ino, fi);
}

/*
 * Without opendir the kernel keeps whatever listing it reads. What a
 * family does not track stays fresh thus: its pages go at each readdir,
 * so the one at the end of a listing leaves the kernel's copy without
 * them, and the next listing (from offset 0) asks again. Told before the
 * reply, from the request's own thread: the kernel holds no page lock
 * while it waits for a reply.
 */
static void drop_listing(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	const struct fs_family *f = fs->families[slot_of(fs, ino)];

	if (fs->no_opendir && !(f->keeps_listing && f->keeps_listing(fs, ino)))
		fuse_lowlevel_notify_inval_inode(fs->session, ino, 0, 0);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	drop_listing(req, ino);
	DISPATCH(readdir, ino, req, ino, size, off, fi);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	drop_listing(req, ino);
	DISPATCH(readdirplus, ino, req, ino, size, off, fi);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	DISPATCH(releasedir, ino, req, ino, fi);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	DISPATCH(fsyncdir, ino, req, ino, datasync, fi);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	DISPATCH(getxattr, ino, req, ino, name, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	DISPATCH(listxattr, ino, req, ino, size);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	DISPATCH(statfs, ino, req, ino);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	DISPATCH(readlink, ino, req, ino);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	DISPATCH(mknod, parent, req, parent, name, mode, rdev);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	DISPATCH(mkdir, parent, req, parent, name, mode);
}

static void op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	DISPATCH(symlink, parent, req, target, parent, name);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	const struct fs_family *f = family_of_both(req, ino, newparent, FS_OP_link);

	if (f)
		CALL(f, link, req, ino, newparent, newname);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	DISPATCH(rmdir, parent, req, parent, name);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	const struct fs_family *f = family_of_both(req, parent, newparent, FS_OP_rename);

	if (f)
		CALL(f, rename, req, parent, name, newparent, newname, flags);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	DISPATCH(fsync, ino, req, ino, datasync, fi);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	DISPATCH(setxattr, ino, req, ino, name, value, size, flags);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	DISPATCH(removexattr, ino, req, ino, name);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	DISPATCH(fallocate, ino, req, ino, mode, off, len, fi);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	const struct fs_family *f = family_of_both(req, ino_in, ino_out, FS_OP_copy_file_range);

	if (f)
		CALL(f, copy_file_range, req, ino_in, off_in, fi_in, ino_out, off_out, fi_out, len,
		     flags);
}

static void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	DISPATCH(flock, ino, req, ino, fi, op);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	DISPATCH(open, ino, req, ino, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	DISPATCH(read, ino, req, ino, size, off, fi);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	DISPATCH(lseek, ino, req, ino, off, whence, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	DISPATCH(create, parent_ino, req, parent_ino, name, mode, fi);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	DISPATCH(setattr, ino, req, ino, attr, to_set, fi);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	DISPATCH(write_buf, ino, req, ino, in, off, fi);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	DISPATCH(flush, ino, req, ino, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	DISPATCH(release, ino, req, ino, fi);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	DISPATCH(unlink, parent_ino, req, parent_ino, name);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.statfs = op_statfs,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.fsync = op_fsync,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
	.copy_file_range = op_copy_file_range,
	.flock = op_flock,
	.open = op_open,
	.read = op_read,
	.lseek = op_lseek,
	.create = op_create,
	.setattr = op_setattr,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.release = op_release,
	.unlink = op_unlink,
};
