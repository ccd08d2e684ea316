/*
 * layer_queue: one worker thread that unpacks the layers of complete
 * images (see layer_queue.h).
 *
 * The ring of events and the flags are guarded by q->lock; the worker
 * drops it for everything it does with an event, so layer_queue_blob()
 * only ever waits for a few instructions.
 */
#include "layer_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "layer_image.h"
#include "manifest.h"

struct layer_queue {
	struct store *store;
	struct layer_limits limits;
	_Atomic bool stop;
	_Atomic bool no_images; /* layer_queue_want_images(q, false) */
	pthread_t thread;

	pthread_mutex_t lock;
	pthread_cond_t wake; /* an event, or stop */
	pthread_cond_t idle; /* the worker has nothing left to do */
	/* guarded by lock: */
	struct digest *ring;
	size_t cap, head, len;
	bool resume, rescan, busy;
	int64_t dropped, unpacked, failed, over_cap, unpacking, images_failed;
	layer_image_fn image_hook;
	void *image_hook_ctx;
	struct digest_list images; /* trees waiting for an image, built when all else is done */
	/* the worker's alone: */
	bool no_mkfs;			   /* mkfs.erofs is not installed: no images */
	struct digest_list image_failures; /* layers whose image failed: not tried again */
	struct digest_list images_handed;  /* images given to image_hook since the start */
};

/*
 * Images that failed, remembered so that a rescan does not build them
 * again and again; a restart tries them all once more.
 */
#define MAX_IMAGE_FAILURES 4096
/* Trees queued for their image (want_image) at most. */
#define MAX_IMAGES_WAITING 4096
/* Images remembered as handed to the hook; past it, the hook may see one again. */
#define MAX_IMAGES_HANDED 8192

int layer_config_diffids(const void *data, size_t len, struct digest_list *ret)
{
	json_t *root, *rootfs, *type, *ids, *id;
	size_t old_len = ret->len, i;
	json_error_t error;
	int r = 0;

	if (len > LAYER_CONFIG_MAX_SIZE)
		return -EFBIG;
	root = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &error);
	if (!root)
		return -EINVAL;
	rootfs = json_object_get(root, "rootfs");
	type = json_object_get(rootfs, "type");
	ids = json_object_get(rootfs, "diff_ids");
	if (!json_is_object(root) || !json_is_string(type) ||
	    strcmp(json_string_value(type), "layers") != 0 || !json_is_array(ids)) {
		r = -EINVAL;
		goto out;
	}
	if (json_array_size(ids) > MANIFEST_MAX_DESCRIPTORS) {
		r = -E2BIG;
		goto out;
	}
	json_array_foreach(ids, i, id)
	{
		struct digest d;

		r = json_is_string(id) ? digest_parse(json_string_value(id), &d) : -EINVAL;
		if (r == 0)
			r = digest_list_append(ret, &d);
		if (r < 0)
			break;
	}
out:
	if (r < 0)
		ret->len = old_len;
	json_decref(root);
	return r;
}

/* Read a whole blob of at most max bytes. -EFBIG past it. */
static int read_blob(struct store *s, const struct digest *d, size_t max, char **ret_buf,
		     size_t *ret_len)
{
	struct stat st;
	size_t got = 0;
	char *buf;
	int fd, r = store_open_blob(s, d, &fd);

	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	if ((uint64_t)st.st_size > max) {
		r = -EFBIG;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			free(buf);
			goto out_close;
		}
		got += (size_t)n;
	}
	*ret_buf = buf;
	*ret_len = got;
out_close:
	close(fd);
	return r;
}

static void count(struct layer_queue *q, int64_t *counter, int64_t delta)
{
	pthread_mutex_lock(&q->lock);
	*counter += delta;
	pthread_mutex_unlock(&q->lock);
}

/* A verdict on the layer's content: trying again would fail the same way. */
static bool permanent(int err)
{
	return err == -EBADMSG || err == -EINVAL || err == -EPERM || err == -EFBIG ||
	       err == -E2BIG || err == -ENAMETOOLONG || err == -ELOOP || err == -ETIMEDOUT;
}

int layer_queue_capped_bytes(struct store *store, uint64_t *ret_bytes)
{
	int64_t count = 0, bytes = 0, images = 0, image_bytes = 0;
	int r = index_layer_totals(store_index(store), &count, &bytes);
	int r_images = layer_image_totals(store_dir(store), &images, &image_bytes);

	*ret_bytes = (uint64_t)bytes + (uint64_t)image_bytes;
	return r < 0 ? r : r_images;
}

/*
 * What the next tree or image may add under the cap of all trees: the cap
 * less the bytes of the UNPACKED rows and of the images. Only this worker
 * adds trees and images, so the room cannot shrink under an unpack (GC
 * only frees).
 */
static uint64_t room_left(struct layer_queue *q)
{
	uint64_t used;

	if (q->limits.max_total_bytes == UINT64_MAX)
		return UINT64_MAX;
	if (layer_queue_capped_bytes(q->store, &used) < 0)
		return 0; /* cannot count: add nothing */
	return used >= q->limits.max_total_bytes ? 0 : q->limits.max_total_bytes - used;
}

/*
 * Nothing to do for this row: done, failed for good, or refused for the
 * cap (its size then the least it needs) while the room is still short.
 */
static bool settled(const struct index_layer *row, const char *dir, uint64_t room)
{
	if (row->state == INDEX_LAYER_UNPACKED)
		return layer_present(dir, &row->diffid);
	if (row->state != INDEX_LAYER_FAILED)
		return false;
	if (row->error == -EDQUOT)
		return (uint64_t)row->size > room;
	return permanent(row->error);
}

/* Hand the image of diffid to the hook (the mount shares it), once per start. */
static void hand_image(struct layer_queue *q, const struct digest *diffid,
		       const struct layer_limits *limits)
{
	layer_image_fn hook;
	void *ctx;

	pthread_mutex_lock(&q->lock);
	hook = q->image_hook;
	ctx = q->image_hook_ctx;
	pthread_mutex_unlock(&q->lock);
	if (!hook || digest_list_contains(&q->images_handed, diffid))
		return;
	if (q->images_handed.len < MAX_IMAGES_HANDED)
		digest_list_append(&q->images_handed, diffid);
	hook(diffid, limits, ctx);
}

/*
 * Give an unpacked layer its EROFS image (layer_image.h) if it has none and
 * there is room under the cap, and hand it to the hook (an image built
 * before this start too). A failure costs the image alone: the tree
 * serves the levels as before.
 */
static void image_one(struct layer_queue *q, const struct digest *diffid)
{
	const char *dir = store_dir(q->store);
	struct layer_limits limits = q->limits;
	int r;

	if (layer_image_present(dir, diffid)) {
		hand_image(q, diffid, &limits);
		return;
	}
	if (q->no_mkfs || atomic_load(&q->no_images) ||
	    digest_list_contains(&q->image_failures, diffid))
		return;
	limits.room_bytes = room_left(q);
	if (limits.room_bytes == 0)
		return; /* the cap is reached: no build to throw away */
	r = layer_image_build(dir, diffid, &limits, NULL);
	if (r == 0) {
		digest_list_remove(&q->images_handed, diffid); /* a new image: hand it again */
		hand_image(q, diffid, &limits);
	}
	if (r == 0 || r == -ECANCELED || r == -ENOENT)
		return;
	if (r == -ENOEXEC)
		q->no_mkfs = true;
	/* the layer's own verdicts, until the next start (not ENOMEM, ENOSPC ...: those pass) */
	else if ((r == -EIO || r == -ETIMEDOUT || r == -EDQUOT) &&
		 q->image_failures.len < MAX_IMAGE_FAILURES)
		digest_list_append(&q->image_failures, diffid);
	count(q, &q->images_failed, 1);
}

/*
 * Queue an unpacked layer for its image (or, when it has one, for handing
 * it to the hook once). The images wait until no event, resume or rescan
 * does: a level needs the trees first, the images only make them faster.
 * Past MAX_IMAGES_WAITING, the next rescan finds the rest.
 */
static void want_image(struct layer_queue *q, const struct digest *diffid)
{
	if (layer_image_present(store_dir(q->store), diffid)
		    ? digest_list_contains(&q->images_handed, diffid)
		    : q->no_mkfs || atomic_load(&q->no_images))
		return;
	pthread_mutex_lock(&q->lock);
	if (q->images.len < MAX_IMAGES_WAITING && !digest_list_contains(&q->images, diffid))
		digest_list_append(&q->images, diffid);
	pthread_mutex_unlock(&q->lock);
}

/* Unpack one layer unless it is settled already; its row says how it went. */
static void unpack_one(struct layer_queue *q, const struct digest *blob,
		       const struct digest *diffid)
{
	struct index *idx = store_index(q->store);
	const char *dir = store_dir(q->store);
	struct layer_limits limits = q->limits;
	struct index_layer row;
	uint64_t bytes = 0;
	int fd, r;

	limits.room_bytes = room_left(q);
	if (index_get_layer(idx, diffid, &row) == 0) {
		if (settled(&row, dir, limits.room_bytes)) {
			if (row.state == INDEX_LAYER_UNPACKED)
				want_image(q, diffid);
			return;
		}
		/* an UNPACKED row whose tree is gone counts no more */
		if (row.state == INDEX_LAYER_UNPACKED && limits.room_bytes != UINT64_MAX)
			limits.room_bytes += (uint64_t)row.size;
	}
	r = store_open_blob(q->store, blob, &fd);
	if (r < 0) { /* gone since: nothing to unpack from */
		index_remove_layer(idx, diffid);
		return;
	}
	row = (struct index_layer){.diffid = *diffid, .blob = *blob, .updated = time(NULL)};
	if (!layer_present(dir, diffid) && index_put_layer(idx, &row) < 0) {
		close(fd);
		return;
	}
	count(q, &q->unpacking, 1);
	r = layer_unpack(dir, fd, diffid, &limits, &bytes);
	count(q, &q->unpacking, -1);
	close(fd);
	if (r == -ECANCELED)
		return;		    /* stays QUEUED: resumed on the next start */
	if (r == 0 && bytes == 0) { /* the tree was there already */
		struct index_layer old;

		if (index_get_layer(idx, diffid, &old) == 0)
			bytes = (uint64_t)old.size;
	}
	if (r == -EDQUOT) /* it needs more than the room: tried again once there is more */
		bytes = limits.room_bytes + 1;
	row.state = r == 0 ? INDEX_LAYER_UNPACKED : INDEX_LAYER_FAILED;
	row.error = r;
	row.size = (int64_t)bytes;
	row.updated = time(NULL);
	index_put_layer(idx, &row);
	count(q, r == 0 ? &q->unpacked : &q->failed, 1);
	if (r == -EDQUOT)
		count(q, &q->over_cap, 1);
	if (r == 0)
		want_image(q, diffid);
}

/* If m is an image manifest whose config and layers are all here, unpack its layers. */
static void plan_image(struct layer_queue *q, const struct digest *m)
{
	struct digest_list diffids = {0};
	struct manifest *man = NULL;
	struct index_blob b;
	char *data = NULL, *config = NULL;
	size_t len, config_len, i;

	if (index_get_blob(store_index(q->store), m, &b) < 0 || b.size > MANIFEST_MAX_SIZE)
		return;
	if (read_blob(q->store, m, MANIFEST_MAX_SIZE, &data, &len) < 0)
		return;
	if (manifest_parse(data, len, b.media_type, &man) < 0 || man->kind != MANIFEST_IMAGE)
		goto out;
	if (!store_has_blob(q->store, &man->config.digest))
		goto out;
	for (i = 0; i < man->n_layers; i++)
		if (!store_has_blob(q->store, &man->layers[i].digest))
			goto out;
	if (read_blob(q->store, &man->config.digest, LAYER_CONFIG_MAX_SIZE, &config, &config_len) <
		    0 ||
	    layer_config_diffids(config, config_len, &diffids) < 0 || diffids.len != man->n_layers)
		goto out;
	for (i = 0; i < man->n_layers && !atomic_load(&q->stop); i++)
		unpack_one(q, &man->layers[i].digest, &diffids.items[i]);
out:
	digest_list_free(&diffids);
	manifest_free(man);
	free(config);
	free(data);
}

static void handle_blob(struct layer_queue *q, const struct digest *d)
{
	struct digest_list parents = {0};
	size_t i;

	plan_image(q, d);
	if (index_foreach_parent(store_index(q->store), d, digest_list_collect, &parents) == 0)
		for (i = 0; i < parents.len && !atomic_load(&q->stop); i++)
			plan_image(q, &parents.items[i]);
	digest_list_free(&parents);
}

static void rescan(struct layer_queue *q)
{
	struct digest_list manifests = {0};
	size_t i;

	if (index_foreach_parent(store_index(q->store), NULL, digest_list_collect, &manifests) == 0)
		for (i = 0; i < manifests.len && !atomic_load(&q->stop); i++)
			plan_image(q, &manifests.items[i]);
	digest_list_free(&manifests);
}

/* Rows to redo: all but those that failed for good (unpack_one judges the cap's). */
static int collect_unfinished(const struct index_layer *layer, void *ctx)
{
	if (layer->state == INDEX_LAYER_FAILED && permanent(layer->error))
		return 0;
	return index_layer_list_add(layer, ctx);
}

/* Redo QUEUED rows (a crash or a stop) and UNPACKED rows whose tree is gone. */
static void resume(struct layer_queue *q)
{
	struct index_layer_list l = {0};
	size_t i;

	layer_recover(store_dir(q->store), NULL);
	if (index_foreach_layer(store_index(q->store), NULL, collect_unfinished, &l) == 0)
		for (i = 0; i < l.len && !atomic_load(&q->stop); i++)
			unpack_one(q, &l.rows[i].blob, &l.rows[i].diffid);
	index_layer_list_release(&l);
}

static void *worker(void *arg)
{
	struct layer_queue *q = arg;

	pthread_mutex_lock(&q->lock);
	while (!atomic_load(&q->stop)) {
		struct digest d;

		if (!q->resume && !q->rescan && q->len == 0 && q->images.len > 0) {
			d = q->images.items[--q->images.len];
			q->busy = true;
			pthread_mutex_unlock(&q->lock);
			image_one(q, &d);
			pthread_mutex_lock(&q->lock);
			continue;
		}
		if (!q->resume && !q->rescan && q->len == 0) {
			q->busy = false;
			pthread_cond_broadcast(&q->idle);
			pthread_cond_wait(&q->wake, &q->lock);
			continue;
		}
		q->busy = true;
		if (q->resume) {
			q->resume = false;
			pthread_mutex_unlock(&q->lock);
			resume(q);
		} else if (q->rescan) {
			q->rescan = false;
			pthread_mutex_unlock(&q->lock);
			rescan(q);
		} else {
			d = q->ring[q->head];
			q->head = (q->head + 1) % q->cap;
			q->len--;
			pthread_mutex_unlock(&q->lock);
			handle_blob(q, &d);
		}
		pthread_mutex_lock(&q->lock);
	}
	q->busy = false;
	pthread_cond_broadcast(&q->idle);
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int layer_queue_new(struct store *s, const struct layer_limits *limits, size_t capacity,
		    struct layer_queue **ret)
{
	struct layer_queue *q = calloc(1, sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	q->store = s;
	if (limits)
		q->limits = *limits;
	else
		layer_limits_default(&q->limits);
	q->limits.stop = &q->stop;
	q->cap = capacity ? capacity : 1;
	q->ring = calloc(q->cap, sizeof(*q->ring));
	q->resume = q->rescan = q->busy = true;
	if (!q->ring) {
		free(q);
		return -ENOMEM;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->wake, NULL);
	pthread_cond_init(&q->idle, NULL);
	r = -pthread_create(&q->thread, NULL, worker, q);
	if (r < 0) {
		pthread_cond_destroy(&q->idle);
		pthread_cond_destroy(&q->wake);
		pthread_mutex_destroy(&q->lock);
		free(q->ring);
		free(q);
		return r;
	}
	*ret = q;
	return 0;
}

void layer_queue_free(struct layer_queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	atomic_store(&q->stop, true);
	pthread_cond_broadcast(&q->wake);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	pthread_cond_destroy(&q->idle);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->lock);
	digest_list_free(&q->image_failures);
	digest_list_free(&q->images_handed);
	digest_list_free(&q->images);
	free(q->ring);
	free(q);
}

int layer_queue_blob(struct layer_queue *q, const struct digest *d)
{
	int r = 0;

	pthread_mutex_lock(&q->lock);
	if (q->len == q->cap) {
		q->dropped++;
		q->rescan = true; /* what was dropped is found again */
		r = -EAGAIN;
	} else {
		q->ring[(q->head + q->len) % q->cap] = *d;
		q->len++;
	}
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	return r;
}

void layer_queue_commit_hook(const struct digest *d, void *ctx)
{
	layer_queue_blob(ctx, d);
}

void layer_queue_rescan(struct layer_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->rescan = true;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
}

void layer_queue_set_image_hook(struct layer_queue *q, layer_image_fn fn, void *ctx)
{
	pthread_mutex_lock(&q->lock);
	q->image_hook = fn;
	q->image_hook_ctx = ctx;
	/* the images the start's rescan found before there was a hook: handed now */
	if (fn) {
		q->rescan = true;
		pthread_cond_signal(&q->wake);
	}
	pthread_mutex_unlock(&q->lock);
}

void layer_queue_want_images(struct layer_queue *q, bool on)
{
	atomic_store(&q->no_images, !on);
}

void layer_queue_drain(struct layer_queue *q)
{
	pthread_mutex_lock(&q->lock);
	while (!atomic_load(&q->stop) &&
	       (q->busy || q->len || q->resume || q->rescan || q->images.len))
		pthread_cond_wait(&q->idle, &q->lock);
	pthread_mutex_unlock(&q->lock);
}

void layer_queue_get_stats(struct layer_queue *q, struct layer_queue_stats *ret)
{
	pthread_mutex_lock(&q->lock);
	ret->pending = (int64_t)q->len;
	ret->dropped = q->dropped;
	ret->unpacked = q->unpacked;
	ret->failed = q->failed;
	ret->over_cap = q->over_cap;
	ret->busy = q->unpacking;
	ret->images_failed = q->images_failed;
	pthread_mutex_unlock(&q->lock);
}
