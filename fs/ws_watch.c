/*
 * ws_watch.c: what is changed in the workspace directly on the host,
 * told to the kernel, so that it may trust names and attributes long.
 *
 * Every directory inode the kernel holds has a fanotify mark (added when
 * the table makes the inode, removed at its last forget). Each event names
 * the directory by its file handle, the entry in it, and the process that
 * made the change. A thread of its own reads the events and tells the
 * kernel what the host's changes make stale: a name made, removed or
 * renamed in a directory (fuse_lowlevel_notify_inval_entry, and the
 * directory's attributes and the listing the kernel keeps), the attributes
 * or the data of a file in it (fuse_lowlevel_notify_inval_inode). It holds
 * no lock while it notifies: a notification may wait for the kernel, which
 * may wait for a request a FUSE thread serves.
 *
 * What a level changes through the mount, this daemon does, and the
 * kernel's caches are already right: those events (the daemon's own pid)
 * are skipped. Told of them, the kernel would drop the very names and
 * attributes a level has just made, and a find after an untar would look
 * every one of them up again (inotify, which cannot tell who made a change,
 * cost that). A request that changed the disk but could not tell the
 * kernel (it failed half way, or its reply was lost) hands the change to
 * the thread (ws_watch_stale). Events are taken in batches, and each
 * directory's listing is dropped once per batch.
 *
 * Where fanotify cannot mark the workspace's root (no fanotify, a file
 * system without file handles or fsid, a btrfs subvolume before Linux
 * 6.8), inotify watches instead, as it did before: its events carry a
 * watch, not a handle, and no process, so the daemon's own are told too.
 *
 * When a mark cannot be added (fs.fanotify.max_user_marks reached, a file
 * system without file handles, or no fanotify at all) or events were lost
 * (the queue overflowed), the workspace goes back to short timeouts
 * (WS_SHORT_TIMEOUT) for good, logged once, and the thread drops what the
 * kernel was told to trust long: every name (FUSE_NOTIFY_INC_EPOCH) and
 * every inode's attributes, data and listing. A host change then shows
 * within that many seconds. A kernel without INC_EPOCH (before 6.16) cannot
 * drop its names at once, so the long timeout is then a minute
 * (WS_MINUTE_TIMEOUT), how long a name may stay stale after such a failure.
 */
#include "ws_internal.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

/* FUSE_NOTIFY_INC_EPOCH (protocol 7.44; libfuse 3.17 has no call for it) */
#define NOTIFY_INC_EPOCH 8

#define ENTRY_EVENTS (FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO)
#define DATA_EVENTS  (FAN_MODIFY | FAN_CLOSE_WRITE)
/* of the directory itself, and (FAN_EVENT_ON_CHILD) of every entry in it */
#define MARK_MASK (ENTRY_EVENTS | DATA_EVENTS | FAN_ATTRIB | FAN_EVENT_ON_CHILD | FAN_ONDIR)
/* the same for inotify (whose IN_* bits are fanotify's FAN_* ones) */
#define WATCH_MASK (ENTRY_EVENTS | DATA_EVENTS | IN_ATTRIB | IN_ONLYDIR | IN_EXCL_UNLINK)
/* Bytes of events read at once, and told to the kernel as one batch. */
#define BATCH_BYTES 16384
/* The shortest event of both kinds: inotify's, without a name. */
#define MIN_EVENT_BYTES sizeof(struct inotify_event)
/* How long the thread gathers events before it notifies (ms). */
#define BATCH_MS 5
/* How long the daemon waits for the thread to end at unmount (s). */
#define STOP_WAIT_S 2
/* A mark's key: the file system's id, the handle's type, the handle's bytes (inotify: its wd). */
#define KEY_MAX (sizeof(__kernel_fsid_t) + sizeof(int) + MAX_HANDLE_SZ)

/* A watched directory, found by the key its events carry. */
struct ws_mark {
	struct fs_hash_link link; /* in watch->marks */
	struct ws_inode *inode;
	int wd; /* inotify's watch, or -1 */
	size_t key_len;
	unsigned char key[];
};

/*
 * A change the daemon made that the kernel was not told of (an operation
 * that failed after changing the disk, or whose reply did not arrive). Its
 * own events are skipped, so the thread tells the kernel of it instead: a
 * request's thread may not, the kernel holding the directory's lock for it.
 */
struct ws_stale {
	struct ws_stale *next;
	struct ws_inode *inode; /* held by one lookup */
	bool entry;		/* name in the directory inode, else inode itself */
	char name[];
};

struct ws_watch {
	int fd;		      /* fanotify, or inotify */
	bool inotify;	      /* fanotify cannot watch the workspace: inotify does */
	int wake;	      /* eventfd: stop, or flush */
	atomic_bool stopping; /* what wake says: stop the thread */
	atomic_bool flush;    /* or: drop what the kernel holds (a watch failed) */
	atomic_bool epoch;    /* the kernel takes NOTIFY_INC_EPOCH */
	pthread_t thread;
	bool started;
	bool stuck;		   /* the thread did not end: it may still use the table */
	struct fs_hash marks;	   /* guarded by ws->lock */
	struct ws_stale *stale;	   /* guarded by ws->lock */
	atomic_bool stale_pending; /* what wake says: tell the kernel of them */
};

double ws_timeout(struct fs_ws *ws)
{
	if (!atomic_load(&ws->watching))
		return WS_SHORT_TIMEOUT;
	return atomic_load(&ws->watch->epoch) ? WS_LONG_TIMEOUT : WS_MINUTE_TIMEOUT;
}

bool fs_ws_watching(struct fs_ws *ws)
{
	return atomic_load(&ws->watching);
}

/*
 * The watch no longer sees every host change: short timeouts from now on,
 * and the thread (once started) drops what the kernel holds. Any thread,
 * ws->lock held or not: nothing here notifies the kernel.
 */
static void watch_failed(struct fs_ws *ws, int err)
{
	struct ws_watch *w = ws->watch;
	uint64_t one = 1;

	if (!atomic_exchange(&ws->watching, false))
		return;
	fs_log(ws->fs,
	       "workspace: cannot watch for host changes (%s%s); names and attributes are"
	       " trusted %g s from now on",
	       err == EOVERFLOW ? "events lost" : strerror(err),
	       err != ENOSPC && err != EOVERFLOW ? ""
	       : !w || !w->inotify ? (err == ENOSPC ? ": raise fs.fanotify.max_user_marks"
						    : ": raise fs.fanotify.max_queued_events")
	       : err == ENOSPC	   ? ": raise fs.inotify.max_user_watches"
				   : ": raise fs.inotify.max_queued_events",
	       (double)WS_SHORT_TIMEOUT);
	if (w) {
		atomic_store(&w->flush, true);
		if (write(w->wake, &one, sizeof(one)) != sizeof(one))
			fs_log(ws->fs, "workspace: cannot wake the watch thread: %s",
			       strerror(errno));
	}
}

/* Tell the kernel that every name it holds of the mount is stale: 0 or -errno. */
static int drop_names(struct fuse_session *se)
{
	struct {
		uint32_t len;
		int32_t error; /* the notification's code */
		uint64_t unique;
	} header = {sizeof(header), NOTIFY_INC_EPOCH, 0};

	return write(fuse_session_fd(se), &header, sizeof(header)) == sizeof(header) ? 0 : -errno;
}

/* After a failed watch: nothing the kernel was told may be trusted long. No lock held. */
static void drop_everything(struct fs_ws *ws)
{
	struct fuse_session *se = ws->fs->session;
	fuse_ino_t *inos;
	size_t n, i;

	if (atomic_load(&ws->watch->epoch) && drop_names(se) < 0)
		fs_log(ws->fs, "workspace: cannot drop the kernel's names: %s", strerror(errno));
	if (ws_inode_hold_all(ws, &inos, &n) < 0) {
		fs_log(ws->fs, "workspace: out of memory dropping the kernel's attributes");
		return;
	}
	for (i = 0; i < n; i++) {
		fuse_lowlevel_notify_inval_inode(se, inos[i], 0, 0); /* attributes, data, listing */
		fs_ws_forget(ws, inos[i], 1);
	}
	free(inos);
}

/* The key of a file system's id and a handle in it: its length, at most KEY_MAX. */
static size_t make_key(unsigned char *key, const __kernel_fsid_t *fsid,
		       const struct file_handle *fh)
{
	memcpy(key, fsid, sizeof(*fsid));
	memcpy(key + sizeof(*fsid), &fh->handle_type, sizeof(int));
	memcpy(key + sizeof(*fsid) + sizeof(int), fh->f_handle, fh->handle_bytes);
	return sizeof(*fsid) + sizeof(int) + fh->handle_bytes;
}

/* A mark of key (n bytes), not in the table yet; NULL if out of memory. */
static struct ws_mark *mark_new(const void *key, size_t n, int wd)
{
	struct ws_mark *mark = malloc(sizeof(*mark) + n);

	if (!mark)
		return NULL;
	mark->wd = wd;
	mark->key_len = n;
	memcpy(mark->key, key, n);
	return mark;
}

/*
 * A fanotify mark for the directory inode (its events' key), not in the
 * table yet; NULL and *err. Its handle is the table's (ws_inode.c) where it
 * has one: the same name_to_handle_at() of the same descriptor.
 */
static struct ws_mark *mark_of_inode(const struct ws_inode *inode, int *err)
{
	unsigned char fh_buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	const struct file_handle *fh = inode->handle;
	unsigned char key[KEY_MAX];
	struct statfs sfs;
	__kernel_fsid_t fsid;
	struct ws_mark *mark;
	size_t n;
	int mount_id;

	if (!fh) { /* the root, or a directory of another file system below it */
		struct file_handle *made = (struct file_handle *)fh_buf;

		made->handle_bytes = MAX_HANDLE_SZ;
		if (name_to_handle_at(inode->fd, "", made, &mount_id, AT_EMPTY_PATH) < 0) {
			*err = errno;
			return NULL;
		}
		fh = made;
	}
	if (fstatfs(inode->fd, &sfs) < 0) {
		*err = errno;
		return NULL;
	}
	memcpy(&fsid, &sfs.f_fsid, sizeof(fsid)); /* what fanotify reports as the fsid */
	n = make_key(key, &fsid, fh);
	mark = mark_new(key, n, -1);
	if (!mark)
		*err = ENOMEM;
	return mark;
}

/* Mark the directory inode (path names it) with fanotify: the mark, or NULL and *err. */
static struct ws_mark *fanotify_add(struct ws_watch *w, const struct ws_inode *inode,
				    const char *path, int *err)
{
	struct ws_mark *mark = mark_of_inode(inode, err);

	if (mark &&
	    fanotify_mark(w->fd, FAN_MARK_ADD | FAN_MARK_ONLYDIR, MARK_MASK, AT_FDCWD, path) < 0) {
		*err = errno;
		free(mark);
		mark = NULL;
	}
	return mark;
}

/* Watch the directory path with inotify: the mark, or NULL and *err. */
static struct ws_mark *inotify_add(struct ws_watch *w, const char *path, int *err)
{
	int wd = inotify_add_watch(w->fd, path, WATCH_MASK);
	struct ws_mark *mark;

	if (wd < 0) {
		*err = errno;
		return NULL;
	}
	mark = mark_new(&wd, sizeof(wd), wd);
	if (!mark) {
		inotify_rm_watch(w->fd, wd);
		*err = ENOMEM;
	}
	return mark;
}

/*
 * fanotify cannot watch the workspace (no fanotify, a file system without
 * file handles or fsid, a btrfs subvolume before Linux 6.8): inotify, which
 * cannot tell the daemon's own events from the host's, so a level's change
 * costs the kernel its next lookup or getattr. Returns 0 or -errno.
 */
static int use_inotify(struct fs_ws *ws, int why)
{
	struct ws_watch *w = ws->watch;
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (w->fd >= 0)
		close(w->fd);
	w->fd = fd;
	w->inotify = true;
	fs_log(ws->fs, "workspace: fanotify cannot watch it (%s): inotify does", strerror(why));
	return 0;
}

void ws_watch_add(struct fs_ws *ws, struct ws_inode *inode)
{
	struct ws_mark *mark;
	char path[64];
	int err;

	if (!ws->watch || !atomic_load(&ws->watching))
		return;
	ws_proc_path(path, sizeof(path), inode->fd);
	if (ws->watch->inotify) {
		mark = inotify_add(ws->watch, path, &err);
	} else {
		mark = fanotify_add(ws->watch, inode, path, &err);
		/* the first mark, the root's, decides: fanotify, or inotify for all */
		if (!mark && inode == &ws->root && err != ENOMEM && use_inotify(ws, err) == 0)
			mark = inotify_add(ws->watch, path, &err);
	}
	if (!mark)
		return watch_failed(ws, err);
	mark->inode = inode;
	fs_hash_add(&ws->watch->marks, &mark->link, fs_hash_bytes(mark->key, mark->key_len));
	inode->mark = mark;
}

void ws_watch_drop(struct fs_ws *ws, struct ws_inode *inode)
{
	struct ws_mark *mark = inode->mark;
	char path[64];
	int fd = inode->fd;

	if (!mark)
		return;
	fs_hash_remove(&ws->watch->marks, &mark->link);
	inode->mark = NULL;
	if (mark->wd >= 0) { /* EINVAL when it went with its directory */
		inotify_rm_watch(ws->watch->fd, mark->wd);
		free(mark);
		return;
	}
	free(mark);
	/*
	 * Its descriptor closed for the budget: reopened, under the lock, so
	 * that no mark of the same directory is added in between (rare: the
	 * budget is thousands of descriptors).
	 */
	if (fd < 0 && inode->handle) {
		fd = open_by_handle_at(ws->mount_fd, inode->handle, O_PATH | O_CLOEXEC);
		if (fd < 0 && errno != ESTALE) /* ESTALE: gone from the disk, its mark with it */
			fs_log(ws->fs, "workspace: cannot reopen a directory to unmark it: %s",
			       strerror(errno));
	}
	if (fd < 0)
		return;
	ws_proc_path(path, sizeof(path), fd);
	/* ENOENT when the directory was removed: its mark went with it */
	if (fanotify_mark(ws->watch->fd, FAN_MARK_REMOVE, MARK_MASK, AT_FDCWD, path) < 0 &&
	    errno != ENOENT)
		fs_log(ws->fs, "workspace: cannot unmark a directory: %s", strerror(errno));
	if (fd != inode->fd)
		close(fd);
}

/* The mark of key (n bytes), or NULL. Called with ws->lock held. */
static struct ws_mark *mark_find(struct ws_watch *w, const void *key, size_t n)
{
	size_t hash = fs_hash_bytes(key, n);
	struct fs_hash_link *link;

	for (link = fs_hash_chain(&w->marks, hash); link; link = link->next) {
		struct ws_mark *mark = fs_hash_entry(link, struct ws_mark, link);

		if (link->hash == hash && mark->key_len == n && memcmp(mark->key, key, n) == 0)
			return mark;
	}
	return NULL;
}

/* The directory an event's key names, with one lookup counted for us; NULL if none. */
static struct ws_inode *hold_dir(struct fs_ws *ws, const unsigned char *key, size_t n)
{
	struct ws_inode *dir = NULL;
	struct ws_mark *mark;

	pthread_mutex_lock(&ws->lock);
	mark = mark_find(ws->watch, key, n);
	if (mark) {
		dir = mark->inode;
		dir->nlookup++;
	}
	pthread_mutex_unlock(&ws->lock);
	return dir;
}

/* The kernel's number of the inode called name in dir, if the table has one: 0 if not. */
static fuse_ino_t child_ino(struct fs_ws *ws, struct ws_inode *dir, const char *name)
{
	int fd = ws_fd_get(ws, dir);
	struct stat st;
	fuse_ino_t ino = 0;

	if (fd < 0)
		return 0;
	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		ino = ws_inode_find(ws, st.st_dev, st.st_ino);
	ws_fd_put(ws, dir);
	return ino;
}

/*
 * The directory record of an event (FAN_REPORT_DFID_NAME): its key in
 * key[] and the entry's name ("." for the directory itself). Returns the
 * key's length, or 0 when the event has no such record.
 */
static size_t event_dir(const struct fanotify_event_metadata *ev, unsigned char *key,
			const char **name)
{
	size_t off = ev->metadata_len;

	while (off + sizeof(struct fanotify_event_info_fid) <= ev->event_len) {
		const struct fanotify_event_info_fid *info = (const void *)((const char *)ev + off);
		const struct file_handle *fh = (const void *)info->handle;
		size_t room = info->hdr.len;

		if (room < sizeof(*info) + sizeof(*fh) || room > ev->event_len - off)
			return 0;
		room -= sizeof(*info) + sizeof(*fh);
		if ((info->hdr.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME ||
		     info->hdr.info_type == FAN_EVENT_INFO_TYPE_DFID) &&
		    fh->handle_bytes <= MAX_HANDLE_SZ && fh->handle_bytes <= room) {
			const char *s = (const char *)fh->f_handle + fh->handle_bytes;

			*name = ".";
			if (info->hdr.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME) {
				if (!memchr(s, '\0', room - fh->handle_bytes))
					return 0;
				*name = s;
			}
			return make_key(key, &info->fsid, fh);
		}
		off += info->hdr.len;
	}
	return 0;
}

/*
 * One event of the host's: what it makes stale, told to the kernel. No
 * lock is held. A name made or removed also makes the directory's
 * attributes and listing stale: that is told once for the batch, by
 * notify_dirs(), and the directory is then added to dirs[] with the lookup
 * it was held by (else that is given back here).
 */
static void notify_event(struct fs_ws *ws, const unsigned char *key, size_t n, const char *name,
			 uint64_t mask, struct ws_inode **dirs, size_t *n_dirs)
{
	struct fuse_session *se = ws->fs->session;
	struct ws_inode *dir;
	fuse_ino_t ino;
	size_t i;

	if (!n || !(dir = hold_dir(ws, key, n)))
		return;
	if (strcmp(name, ".") == 0) {
		if (mask & FAN_ATTRIB)
			fuse_lowlevel_notify_inval_inode(se, ws_ino_of(dir), -1, 0);
	} else if (mask & ENTRY_EVENTS) {
		fuse_lowlevel_notify_inval_entry(se, ws_ino_of(dir), name, strlen(name));
		for (i = 0; i < *n_dirs && dirs[i] != dir; i++)
			;
		if (i == *n_dirs) {
			dirs[(*n_dirs)++] = dir; /* as many as events in a batch at most */
			return;
		}
	} else if ((ino = child_ino(ws, dir, name))) {
		/* attributes only (-1), or the data too */
		fuse_lowlevel_notify_inval_inode(se, ino, mask & DATA_EVENTS ? 0 : -1, 0);
	}
	fs_ws_forget(ws, ws_ino_of(dir), 1);
}

/*
 * Directories that had names made or removed: their attributes and (offset
 * 0) the listings the kernel keeps (cache_readdir) are stale. Once a batch
 * for each: a burst (rm -rf, an untar) changes many names of one directory,
 * and each notification takes the directory's lock in the kernel, against
 * the very operations making the burst.
 */
static void notify_dirs(struct fs_ws *ws, struct ws_inode **dirs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		fuse_lowlevel_notify_inval_inode(ws->fs->session, ws_ino_of(dirs[i]), 0, 0);
		fs_ws_forget(ws, ws_ino_of(dirs[i]), 1);
	}
}

/* Tell the kernel of one batch of fanotify events (n bytes of buf). */
static void fanotify_batch(struct fs_ws *ws, const char *buf, ssize_t n, struct ws_inode **dirs)
{
	const struct fanotify_event_metadata *ev = (const void *)buf;
	unsigned char key[KEY_MAX];
	pid_t self = getpid();
	const char *name = ".";
	size_t n_dirs = 0;

	for (; FAN_EVENT_OK(ev, n); ev = FAN_EVENT_NEXT(ev, n)) {
		if (ev->vers != FANOTIFY_METADATA_VERSION) {
			watch_failed(ws, EPROTO);
			break;
		}
		if (ev->mask &
		    FAN_Q_OVERFLOW) { /* events lost: nothing cached can be trusted long */
			watch_failed(ws, EOVERFLOW);
		} else if (ev->pid != self) { /* the daemon's own: the kernel's caches are right */
			size_t key_len = event_dir(ev, key, &name);

			notify_event(ws, key, key_len, name, ev->mask, dirs, &n_dirs);
		}
	}
	notify_dirs(ws, dirs, n_dirs);
}

/* The watch wd is gone (its directory removed): so is its mark. */
static void inotify_ignored(struct fs_ws *ws, int wd)
{
	struct ws_mark *mark;

	pthread_mutex_lock(&ws->lock);
	mark = mark_find(ws->watch, &wd, sizeof(wd)); /* an inotify mark's key is its wd */
	if (mark) {
		fs_hash_remove(&ws->watch->marks, &mark->link);
		mark->inode->mark = NULL;
		free(mark);
	}
	pthread_mutex_unlock(&ws->lock);
}

/* Tell the kernel of one batch of inotify events (n bytes of buf): all, the daemon's too. */
static void inotify_batch(struct fs_ws *ws, const char *buf, ssize_t n, struct ws_inode **dirs)
{
	size_t n_dirs = 0;
	ssize_t off;

	for (off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
		const struct inotify_event *ev = (const void *)(buf + off);

		if (ev->mask & IN_Q_OVERFLOW)
			watch_failed(ws, EOVERFLOW);
		else if (ev->mask & IN_IGNORED)
			inotify_ignored(ws, ev->wd);
		else
			notify_event(ws, (const void *)&ev->wd, sizeof(ev->wd),
				     ev->len ? ev->name : ".", ev->mask, dirs, &n_dirs);
		off += (ssize_t)(sizeof(*ev) + ev->len);
	}
	notify_dirs(ws, dirs, n_dirs);
}

void ws_watch_stale(struct fs_ws *ws, fuse_ino_t ino, const char *name)
{
	struct ws_watch *w = ws->watch;
	size_t len = name ? strlen(name) + 1 : 1;
	struct ws_stale *stale;
	uint64_t one = 1;

	if (!w || !atomic_load(&ws->watching))
		return; /* the kernel trusts nothing long: it asks again soon */
	stale = malloc(sizeof(*stale) + len);
	if (!stale)
		return watch_failed(ws, ENOMEM);
	stale->entry = name != NULL;
	memcpy(stale->name, name ? name : "", len);
	stale->inode = ws_inode_of(ws, ino);
	pthread_mutex_lock(&ws->lock);
	stale->inode->nlookup++;
	stale->next = w->stale;
	w->stale = stale;
	pthread_mutex_unlock(&ws->lock);
	atomic_store(&w->stale_pending, true);
	if (write(w->wake, &one, sizeof(one)) != sizeof(one))
		watch_failed(ws, errno);
}

/* Tell the kernel of the changes ws_watch_stale() was given. No lock held. */
static void notify_stale(struct fs_ws *ws)
{
	struct fuse_session *se = ws->fs->session;
	struct ws_stale *stale, *next;

	pthread_mutex_lock(&ws->lock);
	stale = ws->watch->stale;
	ws->watch->stale = NULL;
	pthread_mutex_unlock(&ws->lock);
	for (; stale; stale = next) {
		fuse_ino_t ino = ws_ino_of(stale->inode);

		next = stale->next;
		if (stale->entry)
			fuse_lowlevel_notify_inval_entry(se, ino, stale->name, strlen(stale->name));
		fuse_lowlevel_notify_inval_inode(se, ino, 0, 0); /* attributes, data, listing */
		fs_ws_forget(ws, ino, 1);
		free(stale);
	}
}

static void *watch_thread(void *arg)
{
	struct fs_ws *ws = arg;
	struct pollfd pfd[2] = {{.fd = ws->watch->fd, .events = POLLIN},
				{.fd = ws->watch->wake, .events = POLLIN}};
	char *buf = malloc(BATCH_BYTES);
	struct ws_inode **dirs = malloc(BATCH_BYTES / MIN_EVENT_BYTES * sizeof(*dirs));

	if (!buf || !dirs) {
		watch_failed(ws, ENOMEM);
		goto out;
	}
	for (;;) {
		uint64_t count;
		ssize_t n;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents) {
			if (atomic_load(&ws->watch->stopping))
				break;
			if (read(ws->watch->wake, &count, sizeof(count)) < 0 && errno != EAGAIN)
				break;
			if (atomic_exchange(&ws->watch->stale_pending, false))
				notify_stale(ws);
			if (atomic_exchange(&ws->watch->flush, false))
				drop_everything(ws);
			continue;
		}
		poll(pfd + 1, 1, BATCH_MS); /* let a burst gather: one notification each */
		n = read(ws->watch->fd, buf, BATCH_BYTES);
		if (n > 0 && ws->watch->inotify)
			inotify_batch(ws, buf, n, dirs);
		else if (n > 0)
			fanotify_batch(ws, buf, n, dirs);
	}
out:
	free(dirs);
	free(buf);
	return NULL;
}

void ws_watch_new(struct fs_ws *ws)
{
	struct ws_watch *w = calloc(1, sizeof(*w));

	atomic_store(&ws->watching, true); /* so that watch_failed() logs a failure */
	if (!w)
		return watch_failed(ws, ENOMEM);
	w->fd = -1;
	w->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->wake < 0 || fs_hash_init(&w->marks, 256) < 0) {
		int err = w->wake < 0 ? errno : ENOMEM;

		if (w->wake >= 0)
			close(w->wake);
		free(w);
		return watch_failed(ws, err);
	}
	ws->watch = w;
	w->fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME,
			      O_RDONLY | O_CLOEXEC);
	if (w->fd < 0) {
		int r = use_inotify(ws, errno);

		if (r < 0) {
			ws->watch = NULL;
			fs_hash_release(&w->marks);
			close(w->wake);
			free(w);
			return watch_failed(ws, -r);
		}
	}
}

void fs_ws_init(struct fs_ws *ws)
{
	/* the kernel holds no name of the mount yet: the probe drops nothing */
	if (ws && ws->watch)
		atomic_store(&ws->watch->epoch, drop_names(ws->fs->session) == 0);
}

void ws_watch_start(struct fs_ws *ws)
{
	struct ws_watch *w = ws->watch;
	bool start;

	if (!w)
		return;
	pthread_mutex_lock(&ws->lock);
	start = !w->started;
	w->started = true;
	pthread_mutex_unlock(&ws->lock);
	if (start && pthread_create(&w->thread, NULL, watch_thread, ws) != 0) {
		pthread_mutex_lock(&ws->lock);
		w->started = false;
		pthread_mutex_unlock(&ws->lock);
		watch_failed(ws, EAGAIN);
	}
}

void fs_ws_stop_watching(struct fs_ws *ws)
{
	struct ws_watch *w = ws ? ws->watch : NULL;
	uint64_t one = 1;
	if (!w || !w->started || w->stuck)
		return;
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += STOP_WAIT_S;
	atomic_store(&w->stopping, true);
	/* a notification can wait on a request nobody serves any more */
	if (write(w->wake, &one, sizeof(one)) != sizeof(one) ||
	    pthread_timedjoin_np(w->thread, NULL, &deadline) != 0) {
		fs_log(ws->fs, "workspace: the watch thread did not end; its memory is left");
		w->stuck = true;
		return;
	}
	w->started = false;
}

bool ws_watch_stuck(const struct fs_ws *ws)
{
	return ws->watch && ws->watch->stuck;
}

static void free_mark(struct fs_hash_link *link, void *ctx)
{
	struct ws_mark *mark = fs_hash_entry(link, struct ws_mark, link);

	mark->inode->mark = NULL;
	free(mark);
	(void)ctx;
}

void ws_watch_free(struct fs_ws *ws)
{
	struct ws_watch *w = ws->watch;

	if (!w)
		return;
	fs_ws_stop_watching(ws);
	if (w->stuck)
		return;
	while (w->stale) { /* the inodes go with the table */
		struct ws_stale *next = w->stale->next;

		free(w->stale);
		w->stale = next;
	}
	fs_hash_drain(&w->marks, free_mark, NULL);
	fs_hash_release(&w->marks);
	close(w->fd); /* and the kernel's marks with it */
	close(w->wake);
	free(w);
	ws->watch = NULL;
}
