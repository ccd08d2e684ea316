/*
 * pull: one image from a registry into the store (see pull.h).
 */
#include "pull.h"

#include "resolve.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pull {
	struct registry *reg;
	struct store *store;
	const struct ref *ref;
	const struct pull_observer *observer;
	struct pull_result *result;
	struct registry_error *err;

	/* the blobs of the image; guarded by lock once the workers run */
	pthread_mutex_t lock;
	struct pull_blob_status *blobs;
	char (*media_types)[MANIFEST_MEDIA_TYPE_MAX + 1];
	size_t n_blobs;
	size_t next; /* next blob a worker takes */
	int error;   /* first failure; workers stop taking blobs */
};

static void fail(struct pull *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct pull *p, const char *fmt, ...)
{
	va_list ap;

	if (!p->err)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
	va_end(ap);
}

/* Parse a resolved manifest from the store, saying so in err when it cannot be. */
static int load(struct pull *p, const struct resolved *res, struct manifest **ret)
{
	char name[DIGEST_STRING_SIZE];
	int r = resolve_load(p->store, &res->digest, ret);

	if (r < 0) {
		digest_format(&res->digest, name);
		fail(p, "cannot read manifest %s from the store: %s", name, strerror(-r));
	}
	if (res->fetched)
		p->result->manifests_fetched++;
	return r;
}

/* The root manifest of the reference: by digest, or by tag (a HEAD when cached). */
static int resolve_root(struct pull *p, struct digest *ret_digest, struct manifest **ret)
{
	struct resolved res;
	int r;

	if (p->ref->has_digest)
		r = resolve_digest(p->reg, p->store, p->ref->registry, p->ref->repository,
				   &p->ref->digest, &res, p->err);
	else
		r = resolve_tag(p->reg, p->store, p->ref->registry, p->ref->repository, p->ref->tag,
				0, false, &res, p->err);
	if (r < 0)
		return r;
	*ret_digest = res.digest;
	return load(p, &res, ret);
}

static void notify_blob(struct pull *p, size_t i)
{
	if (p->observer && p->observer->blob)
		p->observer->blob(i, &p->blobs[i], p->observer->ctx);
}

static int add_blob(struct pull *p, const struct manifest_descriptor *desc, bool is_config)
{
	size_t i;

	for (i = 0; i < p->n_blobs; i++)
		if (digest_equal(&p->blobs[i].digest, &desc->digest))
			return 0; /* a layer repeated in one image is fetched once */
	p->blobs[p->n_blobs] = (struct pull_blob_status){
		.digest = desc->digest,
		.size = desc->size,
		.is_config = is_config,
		.state = store_has_blob(p->store, &desc->digest) ? PULL_BLOB_CACHED
								 : PULL_BLOB_WAITING,
	};
	snprintf(p->media_types[p->n_blobs], sizeof(p->media_types[0]), "%s", desc->media_type);
	p->n_blobs++;
	return 0;
}

static int list_blobs(struct pull *p, const struct manifest *m)
{
	size_t i, n = m->n_layers + 1;

	p->blobs = calloc(n, sizeof(*p->blobs));
	p->media_types = calloc(n, sizeof(*p->media_types));
	if (!p->blobs || !p->media_types)
		return -ENOMEM;
	add_blob(p, &m->config, true);
	for (i = 0; i < m->n_layers; i++)
		add_blob(p, &m->layers[i], false);
	return 0;
}

struct progress_ctx {
	struct pull *pull;
	size_t i;
};

static int on_progress(uint64_t done, int64_t total, void *ctx)
{
	struct progress_ctx *pc = ctx;
	struct pull *p = pc->pull;

	(void)total;
	pthread_mutex_lock(&p->lock);
	p->blobs[pc->i].done = done;
	p->blobs[pc->i].state = PULL_BLOB_DOWNLOADING;
	notify_blob(p, pc->i);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void set_state(struct pull *p, size_t i, enum pull_blob_state state)
{
	pthread_mutex_lock(&p->lock);
	p->blobs[i].state = state;
	notify_blob(p, i);
	pthread_mutex_unlock(&p->lock);
}

/* Download blob i into the store. Returns 0 or -errno with p->err set. */
static int fetch_blob(struct pull *p, size_t i, struct registry_error *err)
{
	struct pull_blob_status *b = &p->blobs[i];
	struct progress_ctx pc = {p, i};
	struct store_writer *w;
	int r = store_writer_new(p->store, &b->digest, &w);

	if (r < 0) {
		snprintf(err->message, sizeof(err->message), "cannot store blob sha256:%s: %s",
			 b->digest.hex, strerror(-r));
		return r;
	}
	set_state(p, i, PULL_BLOB_DOWNLOADING);
	r = registry_fetch_blob(p->reg, p->ref->registry, p->ref->repository, &b->digest, b->size,
				w, on_progress, &pc, err);
	if (r < 0) {
		store_writer_abort(w);
		return r;
	}
	set_state(p, i, PULL_BLOB_VERIFYING);
	r = store_writer_commit(w, p->media_types[i], NULL);
	if (r == -EBADMSG)
		snprintf(err->message, sizeof(err->message),
			 "%s: blob sha256:%s does not match its digest; nothing was kept",
			 p->ref->registry, b->digest.hex);
	else if (r < 0)
		snprintf(err->message, sizeof(err->message), "cannot store blob sha256:%s: %s",
			 b->digest.hex, strerror(-r));
	return r;
}

static void *worker(void *arg)
{
	struct pull *p = arg;
	struct registry_error err = {0};

	for (;;) {
		size_t i;
		int r;

		pthread_mutex_lock(&p->lock);
		while (p->next < p->n_blobs && p->blobs[p->next].state != PULL_BLOB_WAITING)
			p->next++;
		if (p->error || p->next == p->n_blobs) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		i = p->next++;
		pthread_mutex_unlock(&p->lock);

		r = fetch_blob(p, i, &err);
		pthread_mutex_lock(&p->lock);
		p->blobs[i].state = r == 0 ? PULL_BLOB_DONE : PULL_BLOB_FAILED;
		notify_blob(p, i);
		if (r == 0) {
			p->result->blobs_fetched++;
			p->result->bytes_fetched += p->blobs[i].size;
		} else if (!p->error) {
			p->error = r;
			if (p->err)
				*p->err = err;
		}
		pthread_mutex_unlock(&p->lock);
	}
}

static int fetch_missing(struct pull *p, int concurrency)
{
	pthread_t threads[PULL_MAX_CONCURRENCY];
	int i, started = 0, r = 0;

	for (i = 0; i < concurrency; i++) {
		r = -pthread_create(&threads[i], NULL, worker, p);
		if (r < 0)
			break;
		started++;
	}
	if (started == 0)
		return r;
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	return p->error;
}

int pull_image(struct registry *reg, struct store *s, const struct ref *ref,
	       const struct pull_options *opts, struct pull_result *ret, struct registry_error *err)
{
	static const struct pull_options defaults;
	struct pull p = {.reg = reg, .store = s, .ref = ref, .result = ret, .err = err};
	struct manifest *root = NULL, *image = NULL;
	const struct manifest_descriptor *child;
	char reference[DIGEST_STRING_SIZE], platform[MANIFEST_PLATFORM_STRING_SIZE];
	struct resolved child_res;
	struct manifest_platform host;
	int concurrency, r;

	if (!opts)
		opts = &defaults;
	p.observer = opts->observer;
	concurrency = opts->concurrency > 0 ? opts->concurrency : PULL_DEFAULT_CONCURRENCY;
	if (concurrency > PULL_MAX_CONCURRENCY)
		concurrency = PULL_MAX_CONCURRENCY;
	memset(ret, 0, sizeof(*ret));
	pthread_mutex_init(&p.lock, NULL);

	r = resolve_root(&p, &ret->manifest, &root);
	if (r == -ENOENT && err && err->http_status == 404) {
		char name[REF_STRING_SIZE];

		ref_format(ref, name, sizeof(name));
		fail(&p, "'%s': not found upstream", name);
	}
	if (r < 0)
		goto out;
	ret->image = ret->manifest;
	if (root->kind == MANIFEST_INDEX) {
		r = manifest_select_platform(root, opts->platform, &child);
		if (r < 0) {
			if (!opts->platform)
				manifest_platform_host(&host);
			manifest_platform_format(opts->platform ? opts->platform : &host, platform);
			fail(&p, "%s: no image for platform %s in '%s'", ref->registry, platform,
			     ref->repository);
			goto out;
		}
		r = resolve_digest(reg, s, ref->registry, ref->repository, &child->digest,
				   &child_res, err);
		if (r == 0)
			r = load(&p, &child_res, &image);
		if (r < 0)
			goto out;
		ret->image = child_res.digest;
		if (image->kind != MANIFEST_IMAGE) {
			digest_format(&child->digest, reference);
			fail(&p, "%s: index '%s' nests another index", ref->registry, reference);
			r = -EPROTONOSUPPORT;
			goto out;
		}
	}
	r = list_blobs(&p, image ? image : root);
	if (r < 0)
		goto out;
	if (p.observer && p.observer->resolved)
		p.observer->resolved(&ret->image, p.blobs, p.n_blobs, p.observer->ctx);
	r = fetch_missing(&p, concurrency);
out:
	manifest_free(root);
	manifest_free(image);
	free(p.blobs);
	free(p.media_types);
	pthread_mutex_destroy(&p.lock);
	return r;
}
