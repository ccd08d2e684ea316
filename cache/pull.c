/*
 * pull: one image from a registry into the store (see pull.h).
 */
#include "pull.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* Read a whole (small) blob from the store: a manifest we already hold. */
static int read_stored(struct store *s, const struct digest *d, void **ret, size_t *ret_len)
{
	struct stat st;
	char *buf;
	ssize_t n;
	int fd, r = store_open_blob(s, d, &fd);

	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0 || st.st_size > (off_t)MANIFEST_MAX_SIZE) {
		r = st.st_size > (off_t)MANIFEST_MAX_SIZE ? -EFBIG : -errno;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out_close;
	}
	n = pread(fd, buf, (size_t)st.st_size, 0);
	if (n != st.st_size) {
		free(buf);
		r = n < 0 ? -errno : -EIO;
		goto out_close;
	}
	*ret = buf;
	*ret_len = (size_t)n;
	r = 0;
out_close:
	close(fd);
	return r;
}

/*
 * Get a manifest into the store and parse it. reference is a tag or a
 * digest string; known, when not NULL, is a digest we hold for it that is
 * still current, so no GET is needed.
 */
static int resolve_manifest(struct pull *p, const char *reference, const struct digest *known,
			    struct digest *ret_digest, struct manifest **ret)
{
	struct registry_manifest fetched = {0};
	struct index_blob row;
	void *body = NULL;
	size_t len = 0;
	const char *media_type = NULL;
	int r;

	if (known && read_stored(p->store, known, &body, &len) == 0) {
		*ret_digest = *known;
		if (index_get_blob(store_index(p->store), known, &row) == 0)
			media_type = row.media_type;
		index_touch_blob(store_index(p->store), known, time(NULL));
		r = manifest_parse(body, len, media_type, ret);
		free(body);
		if (r == 0)
			return 0;
		/* a stored manifest we cannot read: fetch it again */
	}
	r = registry_get_manifest(p->reg, p->ref->registry, p->ref->repository, reference, &fetched,
				  p->err);
	if (r < 0)
		return r;
	p->result->manifests_fetched++;
	r = manifest_parse(fetched.body, fetched.len, fetched.media_type, ret);
	if (r < 0) {
		fail(p, "%s: manifest '%s' of '%s' is not one we can use (%s)", p->ref->registry,
		     reference, p->ref->repository,
		     r == -EFBIG	     ? "over 4 MiB"
		     : r == -EPROTONOSUPPORT ? "unsupported manifest type"
		     : r == -E2BIG	     ? "too many descriptors"
					     : "malformed");
		goto out;
	}
	r = store_put(p->store, fetched.body, fetched.len, &fetched.digest, (*ret)->media_type,
		      NULL);
	if (r < 0) {
		fail(p, "cannot store manifest %s: %s", reference, strerror(-r));
		manifest_free(*ret);
		*ret = NULL;
		goto out;
	}
	*ret_digest = fetched.digest;
out:
	registry_manifest_release(&fetched);
	return r;
}

/* The root manifest of the reference: by digest, or by tag with a HEAD first. */
static int resolve_root(struct pull *p, struct digest *ret_digest, struct manifest **ret)
{
	char reference[DIGEST_STRING_SIZE];
	struct index_tag tag;
	struct digest current;
	int r;

	if (p->ref->has_digest) {
		digest_format(&p->ref->digest, reference);
		return resolve_manifest(p, reference,
					store_has_blob(p->store, &p->ref->digest) ? &p->ref->digest
										  : NULL,
					ret_digest, ret);
	}
	if (index_get_tag(store_index(p->store), p->ref->registry, p->ref->repository, p->ref->tag,
			  &tag) == 0 &&
	    store_has_blob(p->store, &tag.manifest)) {
		/* known tag: a HEAD tells whether it moved */
		r = registry_head_manifest(p->reg, p->ref->registry, p->ref->repository,
					   p->ref->tag, &current, NULL, 0, p->err);
		if (r < 0 && r != -EPROTO)
			return r;
		if (r == 0 && digest_equal(&current, &tag.manifest))
			return resolve_manifest(p, p->ref->tag, &tag.manifest, ret_digest, ret);
	}
	return resolve_manifest(p, p->ref->tag, NULL, ret_digest, ret);
}

static int record_edges(struct pull *p, const struct digest *parent, const struct manifest *m)
{
	struct digest_list children = {0};
	int r = manifest_children(m, &children);

	if (r == 0)
		r = index_add_edges(store_index(p->store), parent, children.items, children.len);
	digest_list_free(&children);
	return r;
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

static void on_progress(uint64_t done, int64_t total, void *ctx)
{
	struct progress_ctx *pc = ctx;
	struct pull *p = pc->pull;

	(void)total;
	pthread_mutex_lock(&p->lock);
	p->blobs[pc->i].done = done;
	p->blobs[pc->i].state = PULL_BLOB_DOWNLOADING;
	notify_blob(p, pc->i);
	pthread_mutex_unlock(&p->lock);
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
		r = index_add_edges(store_index(s), &ret->manifest, &child->digest, 1);
		if (r < 0)
			goto out_index;
		digest_format(&child->digest, reference);
		r = resolve_manifest(&p, reference,
				     store_has_blob(s, &child->digest) ? &child->digest : NULL,
				     &ret->image, &image);
		if (r < 0)
			goto out;
		if (image->kind != MANIFEST_IMAGE) {
			fail(&p, "%s: index '%s' nests another index", ref->registry, reference);
			r = -EPROTONOSUPPORT;
			goto out;
		}
	}
	r = record_edges(&p, &ret->image, image ? image : root);
	if (r == 0 && !ref->has_digest)
		r = index_put_tag(store_index(s), ref->registry, ref->repository, ref->tag,
				  &ret->manifest, time(NULL));
	if (r < 0)
		goto out_index;
	r = list_blobs(&p, image ? image : root);
	if (r < 0)
		goto out;
	if (p.observer && p.observer->resolved)
		p.observer->resolved(&ret->image, p.blobs, p.n_blobs, p.observer->ctx);
	r = fetch_missing(&p, concurrency);
	goto out;
out_index:
	fail(&p, "cannot record the image in the index: %s", strerror(-r));
out:
	manifest_free(root);
	manifest_free(image);
	free(p.blobs);
	free(p.media_types);
	pthread_mutex_destroy(&p.lock);
	return r;
}
