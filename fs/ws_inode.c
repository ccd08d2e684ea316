/*
 * ws_inode.c: the workspace's inode table, and the descriptors it keeps.
 *
 * The shape is libfuse's passthrough_ll. An inode holds an O_PATH|O_NOFOLLOW
 * descriptor of its file, opened by one name relative to its parent's
 * descriptor; the table maps (st_dev, st_ino) to the one inode of a file,
 * counts the lookups the kernel holds and frees an inode at its last
 * forget. The kernel keeps every inode it ever looked up while memory
 * lasts, far more than a process may hold descriptors, so an inode also
 * keeps a file handle (name_to_handle_at) and its descriptor is closed
 * when the least recently used ones exceed the budget, to be reopened by
 * handle (open_by_handle_at) at its next use. ws->lock guards it all; no
 * descriptor is opened or closed while it is held.
 */
#include "ws_internal.h"

#include <stdlib.h>
#include <unistd.h>

/* Most inodes the table holds, whatever the descriptors (memory: ~200 bytes each). */
#define MAX_INODES (1u << 22)
/* Descriptors closed at once when the budget is exceeded. */
#define EVICT_BATCH 64

static size_t hash_id(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15u ^ (uint64_t)dev;

	return (size_t)(h ^ h >> 29);
}

/* What every inode starts with: the file it stands for, held by fd. */
void ws_inode_init(struct ws_inode *inode, int fd, const struct stat *st)
{
	inode->family = FS_FAMILY_WORKSPACE;
	inode->fd = fd;
	inode->dev = st->st_dev;
	inode->ino = st->st_ino;
	inode->mark = NULL;
}

static struct ws_inode *table_find(struct fs_ws *ws, dev_t dev, ino_t ino)
{
	size_t hash = hash_id(dev, ino);
	struct fs_hash_link *link;

	for (link = fs_hash_chain(&ws->inodes, hash); link; link = link->next) {
		struct ws_inode *inode = fs_hash_entry(link, struct ws_inode, link);

		if (inode->dev == dev && inode->ino == ino)
			return inode;
	}
	return NULL;
}

/* The LRU of open inode descriptors. Called with ws->lock held. */
static void lru_unlink(struct ws_inode *inode)
{
	inode->lru_prev->lru_next = inode->lru_next;
	inode->lru_next->lru_prev = inode->lru_prev;
	inode->lru_prev = inode->lru_next = NULL;
}

static void lru_push(struct fs_ws *ws, struct ws_inode *inode)
{
	inode->lru_next = ws->lru.lru_next;
	inode->lru_prev = &ws->lru;
	ws->lru.lru_next->lru_prev = inode;
	ws->lru.lru_next = inode;
}

static void lru_touch(struct fs_ws *ws, struct ws_inode *inode)
{
	if (inode->lru_next && ws->lru.lru_next != inode) {
		lru_unlink(inode);
		lru_push(ws, inode);
	}
}

/*
 * Past the budget, take the descriptors of the least recently used inodes
 * that can be reopened and that nobody uses; fds[] gets them, to close
 * once the lock is dropped. Called with ws->lock held. Returns how many.
 */
static size_t evict(struct fs_ws *ws, int *fds, size_t max)
{
	struct ws_inode *inode = ws->lru.lru_prev, *prev;
	size_t n = 0;

	for (; inode != &ws->lru && n < max && ws->n_fds > ws->max_fds; inode = prev) {
		prev = inode->lru_prev;
		if (!inode->handle || inode->users || inode->opens)
			continue;
		fds[n++] = inode->fd;
		inode->fd = -1;
		lru_unlink(inode);
		ws->n_fds--;
	}
	ws->fd_evictions += n;
	return n;
}

static void close_all(const int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

/* A handle for fd, so that it can be closed and reopened; NULL when there is none. */
static struct file_handle *handle_of_fd(struct fs_ws *ws, int fd, const struct stat *st)
{
	struct file_handle *fh;
	int mount_id;

	if (st->st_dev != ws->root.dev || ws->mount_fd < 0)
		return NULL; /* another file system mounted below: keep its fd open */
	fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
	if (!fh)
		return NULL;
	fh->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) < 0) {
		free(fh);
		return NULL;
	}
	return realloc(fh, sizeof(*fh) + fh->handle_bytes) ?: fh;
}

/*
 * The inode of the file fd (O_PATH) refers to, st its attributes: found,
 * or made from fd. Either way one more lookup is counted and fd is the
 * table's (closed when the file already had an inode). -ENFILE when the
 * table is full.
 */
int ws_inode_get(struct fs_ws *ws, int fd, const struct stat *st, struct ws_inode **ret)
{
	struct ws_inode *inode;
	struct file_handle *handle = NULL;
	int evicted[EVICT_BATCH];
	size_t n_evicted = 0;
	int r = 0;

	if (st->st_dev == ws->root.dev && st->st_ino == ws->root.ino) {
		inode = &ws->root; /* the workspace reached again, e.g. through a link */
		pthread_mutex_lock(&ws->lock);
		goto out_found;
	}
	pthread_mutex_lock(&ws->lock);
	inode = table_find(ws, st->st_dev, st->st_ino);
	if (inode)
		goto out_found;
	pthread_mutex_unlock(&ws->lock);
	/* new: make its handle without the lock, then look again */
	handle = handle_of_fd(ws, fd, st);
	pthread_mutex_lock(&ws->lock);
	inode = table_find(ws, st->st_dev, st->st_ino);
	if (inode)
		goto out_found;
	if (ws->inodes.n >= MAX_INODES || (!handle && ws->n_fds >= ws->max_fds)) {
		r = -ENFILE;
		goto out_unlock;
	}
	inode = calloc(1, sizeof(*inode));
	if (!inode) {
		r = -ENOMEM;
		goto out_unlock;
	}
	ws_inode_init(inode, fd, st);
	inode->handle = handle;
	handle = NULL;
	fd = -1;
	fs_hash_add(&ws->inodes, &inode->link, hash_id(st->st_dev, st->st_ino));
	ws->n_fds++;
	lru_push(ws, inode);
	if (S_ISDIR(st->st_mode))
		ws_watch_add(ws, inode);
	n_evicted = evict(ws, evicted, EVICT_BATCH);
out_found:
	if (inode->fd < 0 && fd >= 0) { /* its descriptor was closed: take this one */
		inode->fd = fd;
		fd = -1;
		ws->n_fds++;
		lru_push(ws, inode);
		n_evicted = evict(ws, evicted, EVICT_BATCH);
	}
	inode->nlookup++;
	*ret = inode;
out_unlock:
	pthread_mutex_unlock(&ws->lock);
	close_all(evicted, n_evicted);
	free(handle);
	if (fd >= 0)
		close(fd);
	if (r == -ENFILE && !atomic_exchange(&ws->full_logged, true))
		fs_log(ws->fs,
		       "workspace: %zu inodes held, %zu descriptors of them open, the most we may;"
		       " lookups fail with ENFILE until the kernel forgets some",
		       ws->inodes.n, ws->n_fds);
	return r;
}

fuse_ino_t ws_inode_find(struct fs_ws *ws, dev_t dev, ino_t ino)
{
	struct ws_inode *inode;

	if (dev == ws->root.dev && ino == ws->root.ino)
		return ws_ino_of(&ws->root);
	pthread_mutex_lock(&ws->lock);
	inode = table_find(ws, dev, ino);
	pthread_mutex_unlock(&ws->lock);
	return inode ? ws_ino_of(inode) : 0;
}

int ws_inode_hold_all(struct fs_ws *ws, fuse_ino_t **ret, size_t *ret_n)
{
	fuse_ino_t *inos;
	size_t n = 0, b;

	pthread_mutex_lock(&ws->lock);
	inos = malloc((ws->inodes.n + 1) * sizeof(*inos));
	if (!inos) {
		pthread_mutex_unlock(&ws->lock);
		return -ENOMEM;
	}
	ws->root.nlookup++;
	inos[n++] = ws_ino_of(&ws->root);
	for (b = 0; b < ws->inodes.n_buckets; b++) {
		struct fs_hash_link *link;

		for (link = ws->inodes.buckets[b]; link; link = link->next) {
			struct ws_inode *inode = fs_hash_entry(link, struct ws_inode, link);

			inode->nlookup++;
			inos[n++] = ws_ino_of(inode);
		}
	}
	pthread_mutex_unlock(&ws->lock);
	*ret = inos;
	*ret_n = n;
	return 0;
}

/* One more lookup of an inode the kernel already holds. */
void ws_inode_ref(struct fs_ws *ws, struct ws_inode *inode)
{
	pthread_mutex_lock(&ws->lock);
	inode->nlookup++;
	pthread_mutex_unlock(&ws->lock);
}

static void inode_forget(struct fs_ws *ws, struct ws_inode *inode, uint64_t n)
{
	int fd;

	pthread_mutex_lock(&ws->lock);
	fs_check(inode->nlookup >= n, "negative lookup count on workspace inode %" PRIu64,
		 (uint64_t)inode->ino);
	inode->nlookup -= n;
	if (inode->nlookup > 0 || inode == &ws->root) {
		pthread_mutex_unlock(&ws->lock);
		return;
	}
	/* nlookup 0: the kernel has no way left to name it, so nobody uses it */
	fs_check(inode->users == 0 && inode->opens == 0,
		 "forgotten workspace inode %" PRIu64 " in use", (uint64_t)inode->ino);
	fs_hash_remove(&ws->inodes, &inode->link);
	fd = inode->fd;
	if (fd >= 0) {
		lru_unlink(inode);
		ws->n_fds--;
	}
	ws_watch_drop(ws, inode);
	pthread_mutex_unlock(&ws->lock);
	if (fd >= 0)
		close(fd);
	free(inode->handle);
	free(inode);
}

void fs_ws_forget(struct fs_ws *ws, fuse_ino_t ino, uint64_t n)
{
	inode_forget(ws, ws_inode_of(ws, ino), n);
}

/*
 * The O_PATH descriptor of inode, reopened by its handle if it was closed;
 * it stays open until ws_fd_put(). Returns it or -errno (-ESTALE: the file is
 * gone from the backing file system).
 */
int ws_fd_get(struct fs_ws *ws, struct ws_inode *inode)
{
	int evicted[EVICT_BATCH];
	size_t n_evicted = 0;
	int fd;

	if (inode == &ws->root)
		return ws->root.fd; /* never closed */
	pthread_mutex_lock(&ws->lock);
	if (inode->fd >= 0) {
		inode->users++;
		lru_touch(ws, inode);
		pthread_mutex_unlock(&ws->lock);
		return inode->fd;
	}
	pthread_mutex_unlock(&ws->lock);
	fd = open_by_handle_at(ws->mount_fd, inode->handle, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&ws->lock);
	if (inode->fd >= 0) { /* another thread reopened it meanwhile */
		evicted[n_evicted++] = fd;
	} else {
		inode->fd = fd;
		ws->n_fds++;
		ws->fd_reopens++;
		lru_push(ws, inode);
		n_evicted = evict(ws, evicted, EVICT_BATCH);
	}
	inode->users++;
	fd = inode->fd;
	pthread_mutex_unlock(&ws->lock);
	close_all(evicted, n_evicted);
	return fd;
}

void ws_fd_put(struct fs_ws *ws, struct ws_inode *inode)
{
	if (inode == &ws->root)
		return;
	pthread_mutex_lock(&ws->lock);
	fs_check(inode->users > 0, "negative use count on workspace inode %" PRIu64,
		 (uint64_t)inode->ino);
	inode->users--;
	pthread_mutex_unlock(&ws->lock);
}

/*
 * The file st was is gone: close its inode's descriptor now, if nothing
 * uses it, rather than at the kernel's forget. Until then the backing
 * dentry stays referenced, and each rmdir of its directory walks it.
 */
void ws_inode_drop_removed(struct fs_ws *ws, const struct stat *st)
{
	struct ws_inode *inode;
	int fd = -1;

	pthread_mutex_lock(&ws->lock);
	inode = table_find(ws, st->st_dev, st->st_ino);
	if (inode && inode->fd >= 0 && inode->handle && !inode->users && !inode->opens) {
		fd = inode->fd;
		inode->fd = -1;
		lru_unlink(inode);
		ws->n_fds--;
	}
	pthread_mutex_unlock(&ws->lock);
	if (fd >= 0)
		close(fd);
}
