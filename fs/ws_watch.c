/*
 * ws_watch.c: what is changed in the workspace directly on the host,
 * told to the kernel, so that it may trust names and attributes long.
 *
 * Every directory inode the kernel holds has an inotify watch (added when
 * the table makes the inode, removed at its last forget). A thread of its
 * own reads the events and tells the kernel what they make stale: a name
 * made, removed or renamed in a directory (fuse_lowlevel_notify_inval_entry,
 * and the directory's attributes and the listing the kernel keeps), the
 * attributes or the data of a file in it (fuse_lowlevel_notify_inval_inode).
 * It holds no lock while it notifies: a notification may wait for the
 * kernel, which may wait for a request a FUSE thread serves.
 *
 * What a level changes through the mount raises the same events (inotify
 * cannot tell who made them); the kernel's caches are already right then,
 * and an invalidation only costs the next access a lookup. Events are
 * taken in batches and each (inode, kind) notified once per batch.
 *
 * When a watch cannot be added (fs.inotify.max_user_watches reached, or no
 * inotify at all) or events were lost (the queue overflowed), the
 * workspace goes back to short timeouts (WS_SHORT_TIMEOUT) for good, logged
 * once, and the thread drops what the kernel was told to trust long: every
 * name (FUSE_NOTIFY_INC_EPOCH) and every inode's attributes, data and
 * listing. A host change then shows within that many seconds. A kernel
 * without INC_EPOCH (before 6.16) cannot drop its names at once, so the long
 * timeout is then a minute (WS_MINUTE_TIMEOUT), how long a name may stay
 * stale after such a failure.
 */
#include "ws_internal.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <sys/inotify.h>
#include <unistd.h>

/* FUSE_NOTIFY_INC_EPOCH (protocol 7.44; libfuse 3.17 has no call for it) */
#define NOTIFY_INC_EPOCH 8

#define WATCH_MASK                                                                                 \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_MODIFY |             \
	 IN_CLOSE_WRITE | IN_ONLYDIR | IN_EXCL_UNLINK)
#define ENTRY_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)
#define DATA_EVENTS  (IN_MODIFY | IN_CLOSE_WRITE)
/* Events read at once (their longest names), and told to the kernel as one batch. */
#define BATCH_EVENTS 64
/* How long the thread gathers events before it notifies (ms). */
#define BATCH_MS 5
/* How long the daemon waits for the thread to end at unmount (s). */
#define STOP_WAIT_S 2

struct ws_watch {
	int fd;		      /* inotify */
	int wake;	      /* eventfd: stop, or flush */
	atomic_bool stopping; /* what wake says: stop the thread */
	atomic_bool flush;    /* or: drop what the kernel holds (a watch failed) */
	atomic_bool epoch;    /* the kernel takes NOTIFY_INC_EPOCH */
	pthread_t thread;
	bool started;
	bool stuck; /* the thread did not end: it may still use the table */
	/* wd -> inode, guarded by ws->lock */
	struct ws_inode **by_wd;
	size_t n_by_wd;
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
	       err == ENOSPC	  ? ": raise fs.inotify.max_user_watches"
	       : err == EOVERFLOW ? ": raise fs.inotify.max_queued_events"
				  : "",
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

/* Map wd to inode. Called with ws->lock held. Returns 0 or -ENOMEM. */
static int by_wd_set(struct ws_watch *w, int wd, struct ws_inode *inode)
{
	if ((size_t)wd >= w->n_by_wd) {
		size_t n = w->n_by_wd ? w->n_by_wd : 256;
		struct ws_inode **p;

		while (n <= (size_t)wd)
			n *= 2;
		p = realloc(w->by_wd, n * sizeof(*p));
		if (!p)
			return -ENOMEM;
		memset(p + w->n_by_wd, 0, (n - w->n_by_wd) * sizeof(*p));
		w->by_wd = p;
		w->n_by_wd = n;
	}
	w->by_wd[wd] = inode;
	return 0;
}

void ws_watch_add(struct fs_ws *ws, struct ws_inode *inode)
{
	char path[64];
	int wd;

	if (!ws->watch || !atomic_load(&ws->watching))
		return;
	ws_proc_path(path, sizeof(path), inode->fd);
	wd = inotify_add_watch(ws->watch->fd, path, WATCH_MASK);
	if (wd < 0)
		return watch_failed(ws, errno);
	if (by_wd_set(ws->watch, wd, inode) < 0) {
		inotify_rm_watch(ws->watch->fd, wd);
		return watch_failed(ws, ENOMEM);
	}
	inode->wd = wd;
}

int ws_watch_drop(struct fs_ws *ws, struct ws_inode *inode)
{
	int wd = inode->wd;

	if (wd < 0)
		return -1;
	if ((size_t)wd < ws->watch->n_by_wd && ws->watch->by_wd[wd] == inode)
		ws->watch->by_wd[wd] = NULL;
	inode->wd = -1;
	return wd;
}

void ws_watch_remove(struct fs_ws *ws, int wd)
{
	if (wd >= 0)
		inotify_rm_watch(ws->watch->fd, wd); /* EINVAL when it went with its directory */
}

/* The inode watched by wd, with one lookup counted for us; NULL if none. */
static struct ws_inode *dir_of_wd(struct fs_ws *ws, int wd)
{
	struct ws_inode *dir = NULL;

	pthread_mutex_lock(&ws->lock);
	if (wd >= 0 && (size_t)wd < ws->watch->n_by_wd)
		dir = ws->watch->by_wd[wd];
	if (dir)
		dir->nlookup++;
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
 * One event: what it makes stale, told to the kernel. No lock is held. A
 * name made or removed also makes the directory's attributes and listing
 * stale: that is told once for the batch, by notify_dir(), and *dir_wd is
 * set to the watch of the directory to tell it of (else left as it is).
 */
static void notify_event(struct fs_ws *ws, const struct inotify_event *ev, int *dir_wd)
{
	struct fuse_session *se = ws->fs->session;
	struct ws_inode *dir;
	fuse_ino_t ino;

	if (ev->mask & IN_IGNORED) { /* the directory is gone, or its watch dropped */
		pthread_mutex_lock(&ws->lock);
		if (ev->wd >= 0 && (size_t)ev->wd < ws->watch->n_by_wd &&
		    ws->watch->by_wd[ev->wd]) {
			ws->watch->by_wd[ev->wd]->wd = -1;
			ws->watch->by_wd[ev->wd] = NULL;
		}
		pthread_mutex_unlock(&ws->lock);
		return;
	}
	if (ev->mask & IN_Q_OVERFLOW) { /* events lost: nothing cached can be trusted long */
		watch_failed(ws, EOVERFLOW);
		return;
	}
	dir = dir_of_wd(ws, ev->wd);
	if (!dir)
		return;
	if (!ev->len) {
		if (ev->mask & IN_ATTRIB)
			fuse_lowlevel_notify_inval_inode(se, ws_ino_of(dir), -1, 0);
	} else if (ev->mask & ENTRY_EVENTS) {
		fuse_lowlevel_notify_inval_entry(se, ws_ino_of(dir), ev->name, strlen(ev->name));
		*dir_wd = ev->wd;
	} else if ((ino = child_ino(ws, dir, ev->name))) {
		/* attributes only (-1), or the data too */
		fuse_lowlevel_notify_inval_inode(se, ino, ev->mask & DATA_EVENTS ? 0 : -1, 0);
	}
	fs_ws_forget(ws, ws_ino_of(dir), 1);
}

/*
 * The directory of watch wd has names made or removed: its attributes and
 * (offset 0) the listing the kernel keeps (cache_readdir) are stale. Once a
 * batch for each directory: a burst (rm -rf, an untar) changes many names
 * of one directory, and each notification takes the directory's lock in
 * the kernel, against the very operations making the burst.
 */
static void notify_dir(struct fs_ws *ws, int wd)
{
	struct ws_inode *dir = dir_of_wd(ws, wd);

	if (!dir)
		return;
	fuse_lowlevel_notify_inval_inode(ws->fs->session, ws_ino_of(dir), 0, 0);
	fs_ws_forget(ws, ws_ino_of(dir), 1);
}

/* Whether a and b (events of one batch) tell the kernel the same thing. */
static bool same_event(const struct inotify_event *a, const struct inotify_event *b)
{
	uint32_t kinds = ENTRY_EVENTS | DATA_EVENTS | IN_ATTRIB;

	return a->wd == b->wd && (a->mask & kinds) == (b->mask & kinds) && a->len == b->len &&
	       (!a->len || strcmp(a->name, b->name) == 0);
}

static void *watch_thread(void *arg)
{
	struct fs_ws *ws = arg;
	struct pollfd pfd[2] = {{.fd = ws->watch->fd, .events = POLLIN},
				{.fd = ws->watch->wake, .events = POLLIN}};
	static const size_t size = BATCH_EVENTS * (sizeof(struct inotify_event) + NAME_MAX + 1);
	/* an event takes sizeof(struct inotify_event) at least: so many fit in buf */
	int dirs[BATCH_EVENTS * (NAME_MAX + 1) / sizeof(struct inotify_event) + BATCH_EVENTS];
	size_t n_dirs, i;
	char *buf = malloc(size);

	if (!buf) {
		watch_failed(ws, ENOMEM);
		return NULL;
	}
	for (;;) {
		ssize_t n, off, prev;
		uint64_t count;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents) {
			if (atomic_load(&ws->watch->stopping))
				break;
			if (read(ws->watch->wake, &count, sizeof(count)) < 0 && errno != EAGAIN)
				break;
			if (atomic_exchange(&ws->watch->flush, false))
				drop_everything(ws);
			continue;
		}
		poll(pfd + 1, 1, BATCH_MS); /* let a burst gather: one notification each */
		n = read(ws->watch->fd, buf, size);
		if (n <= 0)
			continue;
		n_dirs = 0;
		for (off = 0; off < n;) {
			const struct inotify_event *ev = (const void *)(buf + off);
			bool seen = false;
			int dir_wd = -1;

			for (prev = 0; prev < off && !seen;) {
				const struct inotify_event *p = (const void *)(buf + prev);

				seen = same_event(p, ev);
				prev += (ssize_t)(sizeof(*p) + p->len);
			}
			if (!seen)
				notify_event(ws, ev, &dir_wd);
			for (i = 0; dir_wd >= 0 && i < n_dirs; i++)
				if (dirs[i] == dir_wd)
					dir_wd = -1;
			if (dir_wd >= 0)
				dirs[n_dirs++] = dir_wd; /* as many as events in buf at most */
			off += (ssize_t)(sizeof(*ev) + ev->len);
		}
		for (i = 0; i < n_dirs; i++)
			notify_dir(ws, dirs[i]);
	}
	free(buf);
	return NULL;
}

void ws_watch_new(struct fs_ws *ws)
{
	struct ws_watch *w = calloc(1, sizeof(*w));

	atomic_store(&ws->watching, true); /* so that watch_failed() logs a failure */
	if (!w)
		return watch_failed(ws, ENOMEM);
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	w->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->fd < 0 || w->wake < 0) {
		int err = errno;

		if (w->fd >= 0)
			close(w->fd);
		if (w->wake >= 0)
			close(w->wake);
		free(w);
		return watch_failed(ws, err);
	}
	ws->watch = w;
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

void ws_watch_free(struct fs_ws *ws)
{
	struct ws_watch *w = ws->watch;

	if (!w)
		return;
	fs_ws_stop_watching(ws);
	if (w->stuck)
		return;
	close(w->fd);
	close(w->wake);
	free(w->by_wd);
	free(w);
	ws->watch = NULL;
}
