/*
 * passthrough: FUSE passthrough of open files (kernel 6.9+, libfuse 3.17+).
 *
 * With it the kernel reads, writes and maps an open file through its
 * backing file itself: no request reaches the daemon for the data. The
 * daemon registers an open descriptor of the backing file
 * (fuse_passthrough_open(), an ioctl on /dev/fuse that needs CAP_SYS_ADMIN
 * in the initial user namespace) and names the id it got in the open reply;
 * the kernel then opens the backing file for each such open, with the
 * opener's flags and the daemon's credentials. The kernel takes one id per
 * inode at a time and refuses an open without passthrough of an inode open
 * with it, so each inode keeps a struct fs_backing: the id its opens share,
 * closed at the last release.
 *
 * It needs no writeback cache (off anyway: ops.c) and no keep_cache on
 * those opens: the pages are the backing file's. The mount counts as one
 * stacking level (max_backing_stack_depth 0: backing files may not be on
 * overlayfs, an overlayfs may be mounted over this), as before.
 *
 * Built against libfuse 3.14 (no FUSE_CAP_PASSTHROUGH), or where the kernel
 * does not offer it, nothing here does anything and opens are served by the
 * daemon as before. FUSE over io_uring (kernel 6.14+, libfuse 3.18's
 * FUSE_CAP_OVER_IO_URING, not in Debian yet) would plug in beside this, at
 * op_init (ops.c) and the session loop of fs_run() (session.c), not per open.
 */
#include <errno.h>
#include <stdlib.h>

#include "fs_internal.h"

void fs_passthrough_init(struct fs *fs, struct fuse_conn_info *conn)
{
#ifdef FUSE_CAP_PASSTHROUGH
	if (!fs->cfg->no_passthrough && (conn->capable & FUSE_CAP_PASSTHROUGH)) {
		conn->want |= FUSE_CAP_PASSTHROUGH;
		conn->max_backing_stack_depth = 0;
		atomic_store(&fs->passthrough, true);
	}
#else
	(void)conn;
	(void)fs;
#endif
}

bool fs_backing_get(struct fs *fs, fuse_req_t req, pthread_mutex_t *lock, struct fs_backing *b,
		    int fd, struct fuse_file_info *fi)
{
#ifdef FUSE_CAP_PASSTHROUGH
	int id, r = 0;

	if (!atomic_load(&fs->passthrough))
		return false;
	pthread_mutex_lock(lock);
	if (b->id == 0 && b->opens == 0) {
		/* the first open: an ioctl, under the lock so two first opens make one id */
		errno = 0;
		id = fuse_passthrough_open(req, fd);
		r = errno;
		b->id = id > 0 ? id : -1;
	}
	b->opens++;
	if (b->id > 0) {
		fi->backing_id = b->id;
		fi->keep_cache = 0;
		fi->direct_io = 0;
		atomic_fetch_add(&fs->stats.passthrough_opens, 1);
	}
	pthread_mutex_unlock(lock);
	if (r == EPERM && atomic_exchange(&fs->passthrough, false))
		fs_log(fs, "passthrough: refused (no CAP_SYS_ADMIN in the initial user namespace?);"
			   " files are served by the daemon");
	return true;
#else
	(void)fs;
	(void)req;
	(void)lock;
	(void)b;
	(void)fd;
	(void)fi;
	return false;
#endif
}

void fs_backing_put(struct fs *fs, fuse_req_t req, pthread_mutex_t *lock, struct fs_backing *b)
{
#ifdef FUSE_CAP_PASSTHROUGH
	int id = 0;

	pthread_mutex_lock(lock);
	if (b->opens == 0) { /* in every build: the kernel would be handed a closed id */
		fs_log(fs, "INTERNAL ERROR: passthrough: more releases than opens");
		abort();
	}
	if (--b->opens == 0) {
		if (b->id < 0)
			b->id = 0; /* refused for these opens: the next may try again */
		else if (b->id > 0 && req) {
			id = b->id;
			b->id = 0;
		}
		/* without req (an open whose reply failed) the id stays, for the next open */
	}
	pthread_mutex_unlock(lock);
	if (id > 0 && fuse_passthrough_close(req, id) < 0)
		fs_log(fs, "passthrough: cannot close backing id %d", id);
#else
	(void)fs;
	(void)req;
	(void)lock;
	(void)b;
#endif
}
