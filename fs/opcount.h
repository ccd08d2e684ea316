/*
 * opcount: how many requests of each kind the kernel sent the daemon, for
 * .dindfs/stats's "requests" object (op name -> count). Tests and benches
 * read it to check what the kernel's caches answer alone: a warm `stat`
 * or `git status` that asks the daemon nothing leaves every count as it
 * was. Counted once per request, in ops.c, before the family's table.
 */
#ifndef DINDFS_OPCOUNT_H
#define DINDFS_OPCOUNT_H

#include <jansson.h>
#include <stdatomic.h>

/* The kinds counted, named as libfuse's fuse_lowlevel_ops. */
/* clang-format off */
#define FS_OPCOUNT_KINDS(X) \
	X(lookup) X(forget) X(forget_multi) X(getattr) X(setattr) X(readlink) \
	X(mknod) X(mkdir) X(symlink) X(link) X(unlink) X(rmdir) X(rename) \
	X(open) X(create) X(read) X(write_buf) X(flush) X(release) X(fsync) \
	X(fallocate) X(lseek) X(copy_file_range) X(flock) \
	X(opendir) X(readdir) X(readdirplus) X(releasedir) X(fsyncdir) \
	X(statfs) X(setxattr) X(getxattr) X(listxattr) X(removexattr)
/* clang-format on */

enum fs_op {
#define FS_OPCOUNT_ENUM(name) FS_OP_##name,
	FS_OPCOUNT_KINDS(FS_OPCOUNT_ENUM)
#undef FS_OPCOUNT_ENUM
		FS_OP_COUNT
};

struct fs_opcount {
	atomic_uint_fast64_t n[FS_OP_COUNT];
};

/* One more request of kind op (relaxed: a counter, not a barrier). */
static inline void fs_opcount_add(struct fs_opcount *c, enum fs_op op)
{
	atomic_fetch_add_explicit(&c->n[op], 1, memory_order_relaxed);
}

/* A new JSON object of every kind's count (all of them, zeros too), or NULL. */
json_t *fs_opcount_json(struct fs_opcount *c);

#endif
