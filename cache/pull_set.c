/*
 * pull_set: an image's blobs and the pool that gets them (see pull_set.h).
 */
#include "pull_set.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_blob(struct pull_set *set, const struct manifest_descriptor *desc, bool is_config,
		     struct store *s)
{
	struct pull_blob_status *b;
	size_t i;

	for (i = 0; i < set->n_blobs; i++)
		if (digest_equal(&set->blobs[i].digest, &desc->digest))
			return; /* a layer repeated in one image is got once */
	b = &set->blobs[set->n_blobs++];
	b->digest = desc->digest;
	b->size = desc->size;
	b->is_config = is_config;
	b->state = s && store_has_blob(s, &desc->digest) ? PULL_BLOB_CACHED : PULL_BLOB_WAITING;
	snprintf(b->media_type, sizeof(b->media_type), "%s", desc->media_type);
}

int pull_set_init(struct pull_set *set, const struct manifest *m, struct store *s,
		  const struct pull_observer *observer)
{
	size_t i;

	memset(set, 0, sizeof(*set));
	set->observer = observer;
	set->blobs = calloc(m->n_layers + 1, sizeof(*set->blobs));
	if (!set->blobs)
		return -ENOMEM;
	pthread_mutex_init(&set->lock, NULL);
	add_blob(set, &m->config, true, s);
	for (i = 0; i < m->n_layers; i++)
		add_blob(set, &m->layers[i], false, s);
	return 0;
}

void pull_set_release(struct pull_set *set)
{
	if (!set->blobs)
		return;
	free(set->blobs);
	set->blobs = NULL;
	pthread_mutex_destroy(&set->lock);
}

/* Called with the lock held. */
static void notify(struct pull_set *set, size_t i)
{
	if (set->observer && set->observer->blob)
		set->observer->blob(i, &set->blobs[i], set->observer->ctx);
}

void pull_set_update(struct pull_set *set, size_t i, enum pull_blob_state state, int64_t done)
{
	pthread_mutex_lock(&set->lock);
	set->blobs[i].state = state;
	if (done >= 0)
		set->blobs[i].done = (uint64_t)done;
	notify(set, i);
	pthread_mutex_unlock(&set->lock);
}

struct pool {
	struct pull_set *set;
	pull_get_fn get;
	void *ctx;
};

static void *worker(void *arg)
{
	struct pool *pool = arg;
	struct pull_set *set = pool->set;
	struct registry_error err;

	for (;;) {
		size_t i;
		int r;

		pthread_mutex_lock(&set->lock);
		while (set->next < set->n_blobs && set->blobs[set->next].state != PULL_BLOB_WAITING)
			set->next++;
		if (set->error || set->next == set->n_blobs) {
			pthread_mutex_unlock(&set->lock);
			return NULL;
		}
		i = set->next++;
		pthread_mutex_unlock(&set->lock);

		memset(&err, 0, sizeof(err));
		r = pool->get(set, i, pool->ctx, &err);
		pthread_mutex_lock(&set->lock);
		set->blobs[i].state = r == 0 ? PULL_BLOB_DONE : PULL_BLOB_FAILED;
		notify(set, i);
		if (r == 0) {
			set->gotten++;
			set->bytes_gotten += set->blobs[i].size;
		} else if (!set->error) {
			set->error = r;
			set->err = err;
		}
		pthread_mutex_unlock(&set->lock);
	}
}

int pull_set_run(struct pull_set *set, const struct digest *manifest, int concurrency,
		 pull_get_fn get, void *ctx)
{
	pthread_t threads[PULL_MAX_CONCURRENCY];
	struct pool pool = {set, get, ctx};
	int i, started = 0, r = 0;

	if (concurrency <= 0)
		concurrency = PULL_DEFAULT_CONCURRENCY;
	if (concurrency > PULL_MAX_CONCURRENCY)
		concurrency = PULL_MAX_CONCURRENCY;
	if (set->observer && set->observer->resolved)
		set->observer->resolved(manifest, set->blobs, set->n_blobs, set->observer->ctx);
	for (i = 0; i < concurrency; i++) {
		r = -pthread_create(&threads[i], NULL, worker, &pool);
		if (r < 0)
			break;
		started++;
	}
	if (started == 0)
		return r;
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	return set->error;
}
