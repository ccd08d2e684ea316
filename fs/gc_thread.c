/*
 * gc_thread: past the store limit (--max-size), GC, so the mount never
 * grows the store without bound. It runs on a thread of its own: a flush
 * or the end of a download only wakes it (fs_gc_kick), and never waits for
 * it; a wakeup while it runs makes it look once more when it is done.
 */
#include <errno.h>
#include <string.h>

#include "fs_internal.h"
#include "gc.h"
#include "layers.h"

static void gc_once(struct fs *fs)
{
	struct gc_result res = {0};
	int64_t count, bytes;

	if (index_blob_totals(store_index(fs->store), &count, &bytes) < 0 ||
	    bytes <= fs->cfg->max_size)
		return;
	if (gc_run(fs->store, fs->cfg->max_size, &res) < 0)
		fs_log(fs, "gc: the store stays at %lld bytes, over the limit",
		       (long long)res.remaining_bytes);
	if (res.removed_layers > 0)
		fs_layers_rescan(fs->layers); /* what the cap refused may fit now */
}

static void *gc_main(void *arg)
{
	struct fs *fs = arg;

	pthread_mutex_lock(&fs->gc_lock);
	for (;;) {
		while (!fs->gc_wanted && !fs->gc_stop)
			pthread_cond_wait(&fs->gc_wake, &fs->gc_lock);
		if (fs->gc_stop)
			break;
		fs->gc_wanted = false;
		pthread_mutex_unlock(&fs->gc_lock);
		gc_once(fs);
		pthread_mutex_lock(&fs->gc_lock);
	}
	pthread_mutex_unlock(&fs->gc_lock);
	return NULL;
}

void fs_gc_kick(struct fs *fs)
{
	if (fs->cfg->max_size < 0)
		return;
	pthread_mutex_lock(&fs->gc_lock);
	fs->gc_wanted = true;
	pthread_cond_signal(&fs->gc_wake);
	pthread_mutex_unlock(&fs->gc_lock);
}

int fs_gc_start(struct fs *fs)
{
	int r;

	if (fs->cfg->max_size < 0)
		return 0;
	r = -pthread_create(&fs->gc_thread, NULL, gc_main, fs);
	fs->gc_started = r == 0;
	return r;
}

/* After the fetcher is gone (nothing wakes GC any more), before the store closes. */
void fs_gc_stop(struct fs *fs)
{
	if (!fs->gc_started)
		return;
	pthread_mutex_lock(&fs->gc_lock);
	fs->gc_stop = true;
	pthread_cond_signal(&fs->gc_wake);
	pthread_mutex_unlock(&fs->gc_lock);
	pthread_join(fs->gc_thread, NULL);
	fs->gc_started = false;
}
