/*
 * fetch: single-flight streaming downloads (see fetch.h).
 *
 * A struct fetch lives in the fetcher's table while its download runs and
 * is reference-counted by the download thread and by each reader. Readers
 * wait on the fetch's own condition variable until the bytes they want are
 * written (available grows), or the download ends: a download wakes only
 * its readers.
 *
 * The table is keyed by where a download comes from (registry and digest),
 * not by digest alone: a registry that stalls holds up its own readers
 * only, and the same digest from another registry downloads on its own.
 * Each registry gets at most FETCH_MAX_PER_HOST of the downloads.
 *
 * A server that ignores a Range request makes the writer start over from
 * zero, so the available byte count can shrink; a reader whose pread raced
 * with that (the generation changed meanwhile) reads again.
 */
#include "fetch.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fetch {
	struct fetcher *fetcher;
	char registry[INDEX_NAME_MAX + 1];
	char repository[INDEX_NAME_MAX + 1];
	struct digest digest;
	int64_t size;
	int fd; /* our own handle on the writer's temp file, for reads */

	/* guarded by fetcher->lock */
	pthread_cond_t changed; /* bytes arrived, the writer started over, or it ended */
	unsigned refs;
	uint64_t available;  /* bytes written so far */
	unsigned generation; /* bumped when the writer starts over */
	bool done;
	int result;	    /* when done: 0 committed, or -errno */
	struct fetch *next; /* in the fetcher's table */
};

struct fetcher {
	struct registry *reg;
	struct store *store;
	fetch_done_fn done;
	void *done_ctx;

	pthread_mutex_t lock;
	pthread_cond_t ended;  /* a download left the table (fetcher_free waits) */
	struct fetch *running; /* downloads in flight */
	unsigned n_running;
	bool stopping;
};

/* Drop a reference; the caller holds the fetcher's lock. */
static void unref_locked(struct fetch *fx)
{
	assert(fx->refs > 0);
	if (--fx->refs > 0)
		return;
	if (fx->fd >= 0)
		close(fx->fd);
	pthread_cond_destroy(&fx->changed);
	free(fx);
}

static int on_progress(uint64_t done, int64_t total, void *ctx)
{
	struct fetch *fx = ctx;
	struct fetcher *f = fx->fetcher;
	int stop;

	(void)total;
	pthread_mutex_lock(&f->lock);
	if (done < fx->available)
		fx->generation++;
	fx->available = done;
	stop = f->stopping;
	pthread_cond_broadcast(&fx->changed);
	pthread_mutex_unlock(&f->lock);
	return stop;
}

static void unlink_running(struct fetcher *f, struct fetch *fx)
{
	struct fetch **p;

	for (p = &f->running; *p; p = &(*p)->next) {
		if (*p == fx) {
			*p = fx->next;
			f->n_running--;
			return;
		}
	}
}

static void *download(void *arg)
{
	struct fetch *fx = arg;
	struct fetcher *f = fx->fetcher;
	struct registry_error err = {0};
	struct store_writer *w = NULL;
	int r;

	r = store_writer_new(f->store, &fx->digest, &w);
	if (r == 0) {
		fx->fd = dup(store_writer_fd(w));
		if (fx->fd < 0)
			r = -errno;
	}
	if (r == 0)
		r = registry_fetch_blob(f->reg, fx->registry, fx->repository, &fx->digest, fx->size,
					w, on_progress, fx, &err);
	if (r == 0) {
		r = store_writer_commit(w, NULL, NULL);
		w = NULL;
		if (r == -EBADMSG)
			snprintf(err.message, sizeof(err.message),
				 "%s: blob sha256:%s does not match its digest; nothing was kept",
				 fx->registry, fx->digest.hex);
	}
	store_writer_abort(w);
	if (r < 0 && !*err.message)
		snprintf(err.message, sizeof(err.message), "blob sha256:%s: %s", fx->digest.hex,
			 strerror(-r));
	if (f->done)
		f->done(&fx->digest, r, &err, f->done_ctx);

	pthread_mutex_lock(&f->lock);
	fx->done = true;
	fx->result = r;
	if (r == 0)
		fx->available = (uint64_t)fx->size;
	unlink_running(f, fx);
	pthread_cond_broadcast(&fx->changed);
	pthread_cond_broadcast(&f->ended);
	unref_locked(fx);
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

int fetch_start(struct fetcher *f, const char *registry, const char *repository,
		const struct digest *d, int64_t size, struct fetch **ret)
{
	struct fetch *fx;
	pthread_attr_t attr;
	pthread_t thread;
	unsigned from_host = 0;
	int r;

	if (size < 0 || strlen(registry) > INDEX_NAME_MAX || strlen(repository) > INDEX_NAME_MAX)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	if (f->stopping) {
		r = -ESHUTDOWN;
		goto out_unlock;
	}
	for (fx = f->running; fx; fx = fx->next) {
		if (strcmp(fx->registry, registry) != 0)
			continue;
		if (digest_equal(&fx->digest, d)) {
			fx->refs++;
			*ret = fx;
			r = 0;
			goto out_unlock;
		}
		from_host++;
	}
	/* checked under the lock: a download that just committed is out of the table */
	if (store_has_blob(f->store, d)) {
		r = -EEXIST;
		goto out_unlock;
	}
	if (from_host >= FETCH_MAX_PER_HOST) {
		r = -EBUSY;
		goto out_unlock;
	}
	if (f->n_running >= FETCH_MAX_IN_FLIGHT) {
		r = -EAGAIN;
		goto out_unlock;
	}
	fx = calloc(1, sizeof(*fx));
	if (!fx) {
		r = -ENOMEM;
		goto out_unlock;
	}
	fx->fetcher = f;
	fx->fd = -1;
	fx->digest = *d;
	fx->size = size;
	fx->refs = 2; /* the download thread's and the caller's */
	pthread_cond_init(&fx->changed, NULL);
	snprintf(fx->registry, sizeof(fx->registry), "%s", registry);
	snprintf(fx->repository, sizeof(fx->repository), "%s", repository);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&thread, &attr, download, fx);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		pthread_cond_destroy(&fx->changed);
		free(fx);
		goto out_unlock;
	}
	fx->next = f->running;
	f->running = fx;
	f->n_running++;
	*ret = fx;
out_unlock:
	pthread_mutex_unlock(&f->lock);
	return r;
}

/* Wait for fx to change, at most until deadline (NULL: forever); the fetcher's lock is held. */
static int wait_changed(struct fetch *fx, const struct timespec *deadline)
{
	if (!deadline)
		return -pthread_cond_wait(&fx->changed, &fx->fetcher->lock);
	return -pthread_cond_timedwait(&fx->changed, &fx->fetcher->lock, deadline);
}

ssize_t fetch_read(struct fetch *fx, void *buf, size_t len, off_t offset, int timeout_ms)
{
	struct fetcher *f = fx->fetcher;
	uint64_t want, end = (uint64_t)fx->size;
	struct timespec deadline;
	unsigned generation;
	ssize_t n;

	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	if (offset < 0)
		return -EINVAL;
	if ((uint64_t)offset >= end)
		return 0;
	want = (uint64_t)offset + len < end ? (uint64_t)offset + len : end;
	for (;;) {
		pthread_mutex_lock(&f->lock);
		/* the last bytes wait for the verdict: no reader completes an unverified blob */
		while (!fx->done && (fx->available < want || want == end)) {
			if (wait_changed(fx, timeout_ms >= 0 ? &deadline : NULL) == -ETIMEDOUT &&
			    !fx->done && (fx->available < want || want == end)) {
				pthread_mutex_unlock(&f->lock);
				return -ETIMEDOUT;
			}
		}
		if (fx->done && fx->result < 0) {
			pthread_mutex_unlock(&f->lock);
			return -EIO;
		}
		generation = fx->generation;
		pthread_mutex_unlock(&f->lock);

		n = pread(fx->fd, buf, (size_t)(want - (uint64_t)offset), offset);
		if (n < 0)
			return -errno;
		pthread_mutex_lock(&f->lock);
		if (fx->generation == generation) {
			pthread_mutex_unlock(&f->lock);
			return n;
		}
		pthread_mutex_unlock(&f->lock); /* the writer started over under us */
	}
}

const char *fetch_registry(const struct fetch *fx)
{
	return fx->registry;
}

void fetch_release(struct fetch *fx)
{
	struct fetcher *f;

	if (!fx)
		return;
	f = fx->fetcher;
	pthread_mutex_lock(&f->lock);
	unref_locked(fx);
	pthread_mutex_unlock(&f->lock);
}

unsigned fetcher_in_flight(struct fetcher *f)
{
	unsigned n;

	pthread_mutex_lock(&f->lock);
	n = f->n_running;
	pthread_mutex_unlock(&f->lock);
	return n;
}

int fetcher_new(struct registry *reg, struct store *s, fetch_done_fn done, void *done_ctx,
		struct fetcher **ret)
{
	struct fetcher *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->reg = reg;
	f->store = s;
	f->done = done;
	f->done_ctx = done_ctx;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->ended, NULL);
	*ret = f;
	return 0;
}

void fetcher_free(struct fetcher *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stopping = true; /* the next progress call cancels each download */
	while (f->n_running > 0)
		pthread_cond_wait(&f->ended, &f->lock);
	pthread_mutex_unlock(&f->lock);
	pthread_cond_destroy(&f->ended);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
