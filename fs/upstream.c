/*
 * upstream: the bounded share of threads that upstream work runs on.
 *
 * A FUSE thread that would wait for a registry (a tag to resolve, a HEAD
 * of a blob, a read of a blob still downloading) hands the request to this
 * pool and goes back to the kernel; a worker does the waiting and sends
 * the reply (fuse_reply_* may come from any thread). So however slow or
 * hostile a registry is, the FUSE threads stay free for the workspace,
 * cached blobs and .dindfs/: the pool has FS_UPSTREAM_WORKERS workers, at
 * most FS_UPSTREAM_PER_HOST of them for one registry, and a request that
 * finds either share full fails at once with EAGAIN.
 *
 * A request whose caller is interrupted (a signal, the process killed)
 * stops waiting: the interrupt sets the job's registry_stop, which ends
 * its transfer and any backoff sleep; reads look at fuse_req_interrupted.
 *
 * Locking: u->lock guards the queue, the counts and the running list. The
 * interrupt callback finds its job in the running list by request under
 * that lock, so it never touches a job that has already finished.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_internal.h"

struct job {
	fuse_req_t req;
	char host[FS_NAME_MAX + 1];
	fs_upstream_fn fn;
	void *arg;
	struct registry_stop stop;
	struct job *next;
};

struct host_share {
	char name[FS_NAME_MAX + 1];
	unsigned jobs; /* queued or running; 0: a free entry */
};

struct fs_upstream {
	struct fs *fs;
	pthread_t threads[FS_UPSTREAM_WORKERS];
	unsigned n_threads;

	pthread_mutex_t lock;
	pthread_cond_t queued;
	struct job *head, *tail; /* waiting for a worker */
	struct job *running;	 /* being worked on */
	unsigned jobs;		 /* queued or running */
	struct host_share hosts[FS_UPSTREAM_WORKERS];
	bool stopping;
};

/* The share entry of host, or a free one to take; the caller holds u->lock. */
static struct host_share *share_of(struct fs_upstream *u, const char *host)
{
	struct host_share *free_entry = NULL;
	size_t i;

	for (i = 0; i < FS_UPSTREAM_WORKERS; i++) {
		if (u->hosts[i].jobs == 0) {
			if (!free_entry)
				free_entry = &u->hosts[i];
		} else if (strcmp(u->hosts[i].name, host) == 0) {
			return &u->hosts[i];
		}
	}
	return free_entry; /* never NULL: fewer jobs than entries */
}

static void unlink_running(struct fs_upstream *u, struct job *job)
{
	struct job **p;

	for (p = &u->running; *p; p = &(*p)->next) {
		if (*p == job) {
			*p = job->next;
			return;
		}
	}
}

/* The kernel interrupted req: stop its job, if it still runs. */
static void on_interrupt(fuse_req_t req, void *ctx)
{
	struct fs_upstream *u = ctx;
	struct job *job;

	pthread_mutex_lock(&u->lock);
	for (job = u->running; job; job = job->next)
		if (job->req == req)
			registry_stop(u->fs->registry, &job->stop);
	pthread_mutex_unlock(&u->lock);
}

static void *worker(void *arg)
{
	struct fs_upstream *u = arg;
	struct job *job;
	bool stopping;

	pthread_mutex_lock(&u->lock);
	for (;;) {
		while (!u->head && !u->stopping)
			pthread_cond_wait(&u->queued, &u->lock);
		job = u->head;
		if (!job)
			break; /* stopping, and nothing left to answer */
		u->head = job->next;
		if (!u->head)
			u->tail = NULL;
		job->next = u->running;
		u->running = job;
		stopping = u->stopping;
		pthread_mutex_unlock(&u->lock);

		fuse_req_interrupt_func(job->req, on_interrupt, u);
		registry_bind_stop(&job->stop);
		if (stopping) /* answer what was queued, without asking upstream */
			registry_stop(u->fs->registry, &job->stop);
		job->fn(u->fs, job->req, job->arg); /* replies */
		registry_bind_stop(NULL);

		pthread_mutex_lock(&u->lock);
		unlink_running(u, job);
		share_of(u, job->host)->jobs--;
		u->jobs--;
		free(job);
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

int fs_upstream_submit(struct fs_upstream *u, fuse_req_t req, const char *host, fs_upstream_fn fn,
		       void *arg)
{
	struct host_share *share;
	struct job *job;
	int r = 0;

	job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	job->req = req;
	job->fn = fn;
	job->arg = arg;
	snprintf(job->host, sizeof(job->host), "%s", host);
	pthread_mutex_lock(&u->lock);
	share = share_of(u, job->host);
	if (u->stopping) {
		r = -ESHUTDOWN;
	} else if (u->jobs >= u->n_threads || share->jobs >= FS_UPSTREAM_PER_HOST) {
		r = -EAGAIN;
	} else {
		if (share->jobs++ == 0)
			memcpy(share->name, job->host, sizeof(share->name));
		u->jobs++;
		if (u->tail)
			u->tail->next = job;
		else
			u->head = job;
		u->tail = job;
		pthread_cond_signal(&u->queued);
	}
	pthread_mutex_unlock(&u->lock);
	if (r < 0)
		free(job);
	return r;
}

int fs_upstream_new(struct fs *fs, struct fs_upstream **ret)
{
	struct fs_upstream *u = calloc(1, sizeof(*u));
	int r = 0;

	if (!u)
		return -ENOMEM;
	u->fs = fs;
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->queued, NULL);
	while (u->n_threads < FS_UPSTREAM_WORKERS) {
		r = -pthread_create(&u->threads[u->n_threads], NULL, worker, u);
		if (r < 0)
			break;
		u->n_threads++;
	}
	if (u->n_threads == 0) {
		fs_upstream_free(u);
		return r;
	}
	*ret = u;
	return 0;
}

void fs_upstream_free(struct fs_upstream *u)
{
	struct job *job;
	unsigned i;

	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	u->stopping = true;
	for (job = u->running; job; job = job->next)
		registry_stop(u->fs->registry, &job->stop);
	pthread_cond_broadcast(&u->queued);
	pthread_mutex_unlock(&u->lock);
	for (i = 0; i < u->n_threads; i++)
		pthread_join(u->threads[i], NULL);
	pthread_cond_destroy(&u->queued);
	pthread_mutex_destroy(&u->lock);
	free(u);
}
