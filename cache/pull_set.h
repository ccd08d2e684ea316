/*
 * pull_set: the blobs of one image and the threads that bring them in.
 *
 * A pull (from a registry into the store, or through a mount) lists the
 * config and layers of the image once, then gets the ones still waiting a
 * few at a time with a get function of its own, reporting progress to an
 * observer. This is that list and that pool.
 */
#ifndef DINDFS_PULL_SET_H
#define DINDFS_PULL_SET_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "manifest.h"
#include "registry.h"
#include "store.h"

#define PULL_DEFAULT_CONCURRENCY 3
#define PULL_MAX_CONCURRENCY	 16

enum pull_blob_state {
	PULL_BLOB_CACHED,      /* already in the store */
	PULL_BLOB_WAITING,     /* queued */
	PULL_BLOB_DOWNLOADING, /* bytes arriving: done/size */
	PULL_BLOB_VERIFYING,   /* all bytes in, digest being checked and committed */
	PULL_BLOB_DONE,	       /* committed */
	PULL_BLOB_FAILED,
};

struct pull_blob_status {
	struct digest digest;
	int64_t size;
	uint64_t done;
	bool is_config;
	enum pull_blob_state state;
	char media_type[MANIFEST_MEDIA_TYPE_MAX + 1];
};

/*
 * Progress reports. resolved is called once the image manifest is known,
 * with its blobs (config first); blob is called on every change of one of
 * them, from the threads that get them, one call at a time.
 */
struct pull_observer {
	void (*resolved)(const struct digest *manifest, const struct pull_blob_status *blobs,
			 size_t n_blobs, void *ctx);
	void (*blob)(size_t i, const struct pull_blob_status *status, void *ctx);
	void *ctx;
};

struct pull_set {
	const struct pull_observer *observer; /* may be NULL */
	pthread_mutex_t lock;		      /* guards everything below once threads run */
	struct pull_blob_status *blobs;
	size_t n_blobs;
	size_t next; /* next blob a thread takes */
	int error;   /* the first failure: no more blobs are started */
	struct registry_error err;
	int gotten; /* blobs brought in */
	int64_t bytes_gotten;
};

/*
 * Get blob i of set; report progress with pull_set_update. Returns 0 or
 * -errno with err saying why.
 */
typedef int (*pull_get_fn)(struct pull_set *set, size_t i, void *ctx, struct registry_error *err);

/*
 * List the config and the layers of image manifest m (each digest once).
 * With s, blobs already in the store are CACHED, the others WAITING; with
 * NULL, all are WAITING.
 */
int pull_set_init(struct pull_set *set, const struct manifest *m, struct store *s,
		  const struct pull_observer *observer);
void pull_set_release(struct pull_set *set);

/* Tell the observer that blob i is now in state, with done bytes (-1: unchanged). */
void pull_set_update(struct pull_set *set, size_t i, enum pull_blob_state state, int64_t done);

/*
 * Report the list (observer's resolved, with manifest), then get every
 * WAITING blob with get, concurrency at a time. Returns 0, or the first
 * failure (set->err says why).
 */
int pull_set_run(struct pull_set *set, const struct digest *manifest, int concurrency,
		 pull_get_fn get, void *ctx);

#endif
