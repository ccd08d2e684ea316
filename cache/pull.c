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
	struct registry_error *err;
};

static void fail(struct registry_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Say why the pull failed in err, if there is one. */
static void fail(struct registry_error *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* Parse a resolved manifest from the store, saying so in err when it cannot be. */
static int load(struct pull *p, const struct resolved *res, struct manifest **ret)
{
	char name[DIGEST_STRING_SIZE];
	int r = resolve_load(p->store, &res->digest, ret);

	if (r < 0) {
		digest_format(&res->digest, name);
		fail(p->err, "cannot read manifest %s from the store: %s", name, strerror(-r));
	}
	return r;
}

/*
 * A pull_source's manifest(): the root by digest, or by tag (a HEAD when
 * cached); a child of an index by digest.
 */
static int resolve_manifest(void *ctx, const struct ref *ref, const struct digest *d,
			    struct manifest **ret, struct digest *ret_digest, bool *ret_fetched,
			    struct registry_error *err)
{
	struct pull *p = ctx;
	struct resolved res;
	int r;

	if (d || ref->has_digest)
		r = resolve_digest(p->reg, p->store, ref->registry, ref->repository,
				   d ? d : &ref->digest, &res, err);
	else
		r = resolve_tag(p->reg, p->store, ref->registry, ref->repository, ref->tag, 0,
				false, &res, err);
	if (r == -ENOENT && !d && err && err->http_status == 404) {
		char name[REF_STRING_SIZE];

		ref_format(ref, name, sizeof(name));
		fail(p->err, "'%s': not found upstream", name);
	}
	if (r < 0)
		return r;
	*ret_digest = res.digest;
	*ret_fetched = res.fetched;
	return load(p, &res, ret);
}

struct progress_ctx {
	struct pull_set *set;
	size_t i;
};

static int on_progress(uint64_t done, int64_t total, void *ctx)
{
	struct progress_ctx *pc = ctx;

	(void)total;
	pull_set_update(pc->set, pc->i, PULL_BLOB_DOWNLOADING, (int64_t)done);
	return 0;
}

/* Download blob i into the store (a pull_get_fn). */
static int fetch_blob(struct pull_set *set, size_t i, void *ctx, struct registry_error *err)
{
	struct pull *p = ctx;
	struct pull_blob_status *b = &set->blobs[i];
	struct progress_ctx pc = {set, i};
	struct store_writer *w;
	int r = store_writer_new(p->store, &b->digest, &w);

	if (r < 0) {
		snprintf(err->message, sizeof(err->message), "cannot store blob sha256:%s: %s",
			 b->digest.hex, strerror(-r));
		return r;
	}
	pull_set_update(set, i, PULL_BLOB_DOWNLOADING, 0);
	r = registry_fetch_blob(p->reg, p->ref->registry, p->ref->repository, &b->digest, b->size,
				w, on_progress, &pc, err);
	if (r < 0) {
		store_writer_abort(w);
		return r;
	}
	pull_set_update(set, i, PULL_BLOB_VERIFYING, -1);
	r = store_writer_commit(w, b->media_type, NULL);
	if (r == -EBADMSG)
		snprintf(err->message, sizeof(err->message),
			 "%s: blob sha256:%s does not match its digest; nothing was kept",
			 p->ref->registry, b->digest.hex);
	else if (r < 0)
		snprintf(err->message, sizeof(err->message), "cannot store blob sha256:%s: %s",
			 b->digest.hex, strerror(-r));
	return r;
}

int pull_from(const struct pull_source *src, void *ctx, const struct ref *ref,
	      const struct pull_options *opts, struct pull_result *ret, struct manifest **ret_image,
	      struct registry_error *err)
{
	static const struct pull_options defaults;
	struct pull_set set = {0};
	struct manifest *root = NULL, *image = NULL, **kept;
	const struct manifest_descriptor *child;
	char reference[DIGEST_STRING_SIZE], platform[MANIFEST_PLATFORM_STRING_SIZE];
	struct manifest_platform host;
	bool fetched = false;
	int r;

	if (!opts)
		opts = &defaults;
	memset(ret, 0, sizeof(*ret));

	r = src->manifest(ctx, ref, NULL, &root, &ret->manifest, &fetched, err);
	ret->manifests_fetched += fetched;
	if (r < 0)
		goto out;
	ret->image = ret->manifest;
	if (root->kind == MANIFEST_INDEX) {
		r = manifest_select_platform(root, opts->platform, &child);
		if (r < 0) {
			if (!opts->platform)
				manifest_platform_host(&host);
			manifest_platform_format(opts->platform ? opts->platform : &host, platform);
			fail(err, "%s: no image for platform %s in '%s'", ref->registry, platform,
			     ref->repository);
			goto out;
		}
		fetched = false;
		r = src->manifest(ctx, ref, &child->digest, &image, &ret->image, &fetched, err);
		ret->manifests_fetched += fetched;
		if (r < 0)
			goto out;
		if (image->kind != MANIFEST_IMAGE) {
			digest_format(&child->digest, reference);
			fail(err, "%s: index '%s' nests another index", ref->registry, reference);
			r = -EPROTONOSUPPORT;
			goto out;
		}
	}
	r = pull_set_init(&set, image ? image : root, src->store, opts->observer);
	if (r < 0)
		goto out;
	r = pull_set_run(&set, &ret->image, opts->concurrency, src->blob, ctx);
	ret->blobs_fetched = set.gotten;
	ret->bytes_fetched = set.bytes_gotten;
	if (r < 0 && err)
		*err = set.err;
	if (r == 0 && ret_image) {
		kept = image ? &image : &root;
		*ret_image = *kept;
		*kept = NULL;
	}
out:
	pull_set_release(&set);
	manifest_free(root);
	manifest_free(image);
	return r;
}

int pull_image(struct registry *reg, struct store *s, const struct ref *ref,
	       const struct pull_options *opts, struct pull_result *ret, struct registry_error *err)
{
	const struct pull_source src = {
		.manifest = resolve_manifest, .blob = fetch_blob, .store = s};
	struct pull p = {.reg = reg, .store = s, .ref = ref, .err = err};

	return pull_from(&src, &p, ref, opts, ret, NULL, err);
}
