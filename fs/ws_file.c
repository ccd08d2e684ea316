/*
 * ws_file.c: the workspace's open files: create, open, read, write,
 * flush, release, fsync, fallocate, lseek, copy_file_range and flock.
 * Each open file holds a descriptor of its own, reopened through the
 * inode's O_PATH descriptor (/proc/self/fd/N), and passes through to the
 * kernel where it can (passthrough.c).
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
#include "ws_internal.h"

#include <stdlib.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* Most threads blocked in a flock() at once: the loop must keep some free. */
#define FLOCK_WAITERS_MAX 16
#define FLOCK_WAIT_MAX_NS 50000000L

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
	fs_check(f->inode->opens > 0, "negative open count on workspace inode %" PRIu64,
		 (uint64_t)f->inode->ino);
	f->inode->opens--;
	pthread_mutex_unlock(&ws->lock);
	close(f->fd);
	free(f);
}

/* ws_privilege_clear() for an open file; *changed when its mode did (the kernel's is stale). */
static int setid_drop(int fd, bool *changed)
{
	struct stat st;
	char path[64];
	mode_t before;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	before = st.st_mode;
	ws_proc_path(path, sizeof(path), fd);
	r = ws_privilege_clear(fd, path, &st); /* may fail after the mode changed */
	*changed = st.st_mode != before;
	return r;
}

/* Open flags for the backing file: never follow, never create here. */
static int open_flags(int flags)
{
	return (flags & ~(O_NOFOLLOW | O_CREAT | O_EXCL | O_NOCTTY)) | O_CLOEXEC;
}

void fs_ws_open(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ws_inode *inode = ws_inode_of(ws, ino);
	int pfd = ws_fd_get(ws, inode), fd, r;
	char path[64];

	if (pfd < 0)
		return (void)fuse_reply_err(req, -pfd);
	ws_proc_path(path, sizeof(path), pfd);
	fd = open(path, open_flags(fi->flags));
	r = fd < 0 ? -errno : 0;
	if (r == 0 && (fi->flags & O_ACCMODE) != O_RDONLY) {
		bool changed = false;

		r = setid_drop(fd,
			       &changed); /* a privileged program a level rewrites is one no more */
		/*
		 * and the set-id bits shown only: the kernel asks for that
		 * before a cached write, but not before a direct (O_APPEND)
		 * or passthrough one, nor at a truncating open
		 */
		if (r == 0)
			r = ws_owner_setid_kill(req, pfd);
		if (r > 0) {
			changed = true;
			r = 0;
		}
		/* the kernel's copy of the mode goes (it holds no lock for it), even on failure */
		if (changed)
			fuse_lowlevel_notify_inval_inode(ws->fs->session, ino, -1, 0);
	}
	if (r == 0)
		r = file_new(ws, req, inode, fd, fi->flags, fi);
	ws_fd_put(ws, inode);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return (void)fuse_reply_err(req, -r);
	}
	if (!fs_reply_open(req, fi)) /* the opener was interrupted */
		file_free(ws, NULL, ws_file_of(fi));
}

void fs_ws_create(struct fs_ws *ws, fuse_req_t req, fuse_ino_t parent_ino, const char *name,
		  mode_t mode, struct fuse_file_info *fi)
{
	struct ws_inode *parent = ws_inode_of(ws, parent_ino);
	struct ws_inode *inode;
	struct fuse_entry_param e;
	struct stat pst;
	char path[64];
	int dirfd, fd, pfd, r;

	if (!ws_name_ok(name))
		return (void)fuse_reply_err(req, EINVAL);
	mode = S_IFREG | (mode & 07777);
	ws_entry_init(ws, &e);
	dirfd = ws_fd_get(ws, parent);
	if (dirfd < 0)
		return (void)fuse_reply_err(req, -dirfd);
	fd = -1;
	r = ws_stat_shown(dirfd, &pst);
	if (r == 0) {
		/* O_NOFOLLOW: a symlink put there on the host is not followed out */
		fd = openat(dirfd, name, open_flags(fi->flags) | O_CREAT | O_NOFOLLOW,
			    ws_setid_strip(mode) & 07777);
		r = fd < 0 ? -errno : 0;
	}
	ws_fd_put(ws, parent);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	r = fstat(fd, &e.attr) < 0 ? -errno : 0;
	if (r == 0)
		r = ws_give_to_owner(ws, req, fd, &pst, &e.attr, mode);
	if (r < 0)
		goto out_close;
	/* the inode's own descriptor, of exactly the file just opened */
	ws_proc_path(path, sizeof(path), fd);
	pfd = open(path, O_PATH | O_CLOEXEC);
	if (pfd < 0) {
		r = -errno;
		goto out_close;
	}
	r = ws_inode_get(ws, pfd, &e.attr, &inode);
	if (r < 0)
		goto out_close;
	e.ino = ws_ino_of(inode);
	r = file_new(ws, req, inode, fd, fi->flags, fi);
	if (r < 0) {
		fs_ws_forget(ws, e.ino, 1);
		goto out_close;
	}
	ws_inode_ref(ws, parent);	     /* the kernel may forget it once replied to */
	if (!fs_reply_create(req, &e, fi)) { /* the caller went away: the kernel has no entry */
		file_free(ws, NULL, ws_file_of(fi));
		fs_ws_forget(ws, e.ino, 1);
		ws_watch_stale(ws, parent_ino, name);
	}
	fs_ws_forget(ws, parent_ino, 1);
	return;
out_close:
	close(fd);
	/* made on the disk, but the kernel is told it failed: its name there is stale */
	ws_watch_stale(ws, parent_ino, name);
	fuse_reply_err(req, -r);
}

void fs_ws_read(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)ws;
	(void)ino;
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = ws_file_of(fi)->fd;
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
	struct ws_file *f = ws_file_of(fi);
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
	int fd = dup(ws_file_of(fi)->fd);

	(void)ws;
	(void)ino;
	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_err(req, close(fd) < 0 ? errno : 0);
}

void fs_ws_release(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	file_free(ws, req, ws_file_of(fi)); /* and with it any flock() it held */
	fuse_reply_err(req, 0);
}

void fs_ws_fsync(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi)
{
	int fd = ws_file_of(fi)->fd;

	(void)ws;
	(void)ino;
	fuse_reply_err(req, (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0);
}

void fs_ws_fallocate(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
		     off_t len, struct fuse_file_info *fi)
{
	(void)ws;
	(void)ino;
	fuse_reply_err(req, fallocate(ws_file_of(fi)->fd, mode, off, len) < 0 ? errno : 0);
}

void fs_ws_lseek(struct fs_ws *ws, fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		 struct fuse_file_info *fi)
{
	off_t r = lseek(ws_file_of(fi)->fd, off, whence);

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
	n = set_append(ws_file_of(fi_out), false);
	if (n < 0)
		return (void)fuse_reply_err(req, (int)-n);
	n = copy_file_range(ws_file_of(fi_in)->fd, &off_in, ws_file_of(fi_out)->fd, &off_out, len,
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
	int fd = ws_file_of(fi)->fd, r = 0;
	bool waiting = false;

	(void)ino;
	while (flock(fd, op | LOCK_NB) < 0) {
		r = -errno;
		if (r != -EWOULDBLOCK || (op & LOCK_NB))
			break;
		if (!waiting) {
			waiting = true;
			if (atomic_fetch_add(&ws->flock_waiters, 1) >= FLOCK_WAITERS_MAX) {
				r = -ENOLCK;
				break;
			}
		}
		if (fuse_req_interrupted(req) || fuse_session_exited(ws->fs->session)) {
			r = -EINTR;
			break;
		}
		nanosleep(&nap, NULL);
		if (nap.tv_nsec < FLOCK_WAIT_MAX_NS)
			nap.tv_nsec *= 2;
		r = 0;
	}
	if (waiting)
		atomic_fetch_sub(&ws->flock_waiters, 1);
	fuse_reply_err(req, -r);
}
