/*
 * resolve: tags and digests to verified manifests in the store (see
 * resolve.h).
 */
#include "resolve.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Transport errors and 5xx mean "down", not "absent": a cached copy may serve. */
static bool upstream_down(int r, const struct registry_error *err)
{
	if (r == -ENOENT || r == -EACCES || r == -EBADMSG || r == -ENOMEM)
		return false;
	return err->http_status == 0 || err->http_status >= 500 || err->http_status == 429;
}

int resolve_load(struct store *s, const struct digest *d, struct manifest **ret)
{
	struct index_blob row;
	struct stat st;
	char *buf;
	ssize_t n;
	int fd, r = store_open_blob(s, d, &fd);

	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	if (st.st_size > (off_t)MANIFEST_MAX_SIZE) {
		r = -EFBIG;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out_close;
	}
	n = pread(fd, buf, (size_t)st.st_size, 0);
	if (n != st.st_size) {
		r = n < 0 ? -errno : -EIO;
	} else {
		bool known = index_get_blob(store_index(s), d, &row) == 0;

		r = manifest_parse(buf, (size_t)n, known ? row.media_type : NULL, ret);
	}
	free(buf);
out_close:
	close(fd);
	return r;
}

/* What a manifest of this repository names, the repository holds. */
int resolve_record(struct store *s, const char *registry, const char *repository,
		   const struct digest *d, int64_t size, const struct manifest *m)
{
	struct index *idx = store_index(s);
	const struct manifest_descriptor *descs;
	struct digest_list children = {0};
	size_t i, n;
	int r = manifest_children(m, &children);

	if (r == 0)
		r = index_add_edges(idx, d, children.items, children.len);
	digest_list_free(&children);
	if (r == 0)
		r = index_add_link(idx, registry, repository, d, size);
	if (r < 0)
		return r;
	if (m->kind == MANIFEST_IMAGE) {
		r = index_add_link(idx, registry, repository, &m->config.digest, m->config.size);
		descs = m->layers;
		n = m->n_layers;
	} else {
		descs = m->manifests;
		n = m->n_manifests;
	}
	for (i = 0; r == 0 && i < n; i++)
		r = index_add_link(idx, registry, repository, &descs[i].digest, descs[i].size);
	return r;
}

/* GET a manifest (by tag or digest string), verify, store and record it. */
static int fetch(struct registry *reg, struct store *s, const char *registry,
		 const char *repository, const char *reference, struct resolved *ret,
		 struct registry_error *err)
{
	struct registry_manifest got = {0};
	struct manifest *m = NULL;
	int r = registry_get_manifest(reg, registry, repository, reference, &got, err);

	if (r < 0)
		return r;
	r = manifest_parse(got.body, got.len, got.media_type, &m);
	if (r < 0) {
		snprintf(err->message, sizeof(err->message),
			 "%s: manifest '%s' of '%s' is not one we can use (%s)", registry,
			 reference, repository,
			 r == -EFBIG		 ? "over 4 MiB"
			 : r == -EPROTONOSUPPORT ? "unsupported manifest type"
			 : r == -E2BIG		 ? "too many descriptors"
						 : "malformed");
		goto out;
	}
	r = store_put(s, got.body, got.len, &got.digest, m->media_type, NULL);
	if (r == 0)
		r = resolve_record(s, registry, repository, &got.digest, (int64_t)got.len, m);
	if (r < 0) {
		snprintf(err->message, sizeof(err->message), "cannot store manifest '%s': %s",
			 reference, strerror(-r));
		goto out;
	}
	ret->digest = got.digest;
	snprintf(ret->media_type, sizeof(ret->media_type), "%s", m->media_type);
	ret->size = (int64_t)got.len;
	ret->fetched = true;
out:
	manifest_free(m);
	registry_manifest_release(&got);
	return r;
}

/* Fill ret from a manifest already in the store. */
static int from_store(struct store *s, const struct digest *d, struct resolved *ret)
{
	struct index_blob row;
	int r = index_get_blob(store_index(s), d, &row);

	if (r < 0)
		return r;
	if (!store_has_blob(s, d))
		return -ENOENT;
	ret->digest = *d;
	snprintf(ret->media_type, sizeof(ret->media_type), "%s", row.media_type);
	ret->size = row.size;
	index_touch_blob(store_index(s), d, time(NULL));
	return 0;
}

int resolve_tag(struct registry *reg, struct store *s, const char *registry, const char *repository,
		const char *tag, int64_t ttl, bool allow_stale, struct resolved *ret,
		struct registry_error *err)
{
	const struct resolve_tag_options o = {.ttl = ttl, .allow_stale = allow_stale};

	return resolve_tag_with(reg, s, registry, repository, tag, &o, ret, err);
}

int resolve_tag_with(struct registry *reg, struct store *s, const char *registry,
		     const char *repository, const char *tag, const struct resolve_tag_options *o,
		     struct resolved *ret, struct registry_error *err)
{
	struct index *idx = store_index(s);
	struct index_tag known;
	struct digest current;
	int64_t now = o->clock ? o->clock() : time(NULL), ttl = o->ttl;
	bool allow_stale = o->allow_stale, cached;
	int r;

	memset(ret, 0, sizeof(*ret));
	memset(err, 0, sizeof(*err));
	cached = index_get_tag(idx, registry, repository, tag, &known) == 0 &&
		 store_has_blob(s, &known.manifest);
	if (cached && now - known.fetched < ttl)
		return from_store(s, &known.manifest, ret);
	if (cached) {
		r = registry_head_manifest(reg, registry, repository, tag, &current, NULL, 0, err);
		if (r == 0 && digest_equal(&current, &known.manifest)) {
			index_touch_tag(idx, registry, repository, tag, now);
			return from_store(s, &known.manifest, ret);
		}
		if (r < 0 && r != -EPROTO) { /* -EPROTO: no digest in the HEAD; try a GET */
			if (allow_stale && upstream_down(r, err)) {
				ret->stale = true;
				return from_store(s, &known.manifest, ret);
			}
			return r;
		}
	}
	r = fetch(reg, s, registry, repository, tag, ret, err);
	if (r < 0 && cached && allow_stale && upstream_down(r, err)) {
		ret->stale = true;
		return from_store(s, &known.manifest, ret);
	}
	if (r == 0)
		r = index_put_tag(idx, registry, repository, tag, &ret->digest, now);
	return r;
}

int resolve_digest(struct registry *reg, struct store *s, const char *registry,
		   const char *repository, const struct digest *d, struct resolved *ret,
		   struct registry_error *err)
{
	char reference[DIGEST_STRING_SIZE];
	struct digest confirmed;
	int64_t size;
	int r;

	memset(ret, 0, sizeof(*ret));
	memset(err, 0, sizeof(*err));
	digest_format(d, reference);
	if (store_has_blob(s, d)) {
		if (index_get_link(store_index(s), registry, repository, d, &size) == 0)
			return from_store(s, d, ret);
		/* we hold the bytes, but does this repository? */
		r = registry_head_manifest(reg, registry, repository, reference, &confirmed, NULL,
					   0, err);
		if (r == 0 && !digest_equal(&confirmed, d))
			r = -EBADMSG;
		if (r < 0)
			return r;
		r = from_store(s, d, ret);
		if (r == 0)
			r = index_add_link(store_index(s), registry, repository, d, ret->size);
		return r;
	}
	return fetch(reg, s, registry, repository, reference, ret, err);
}

int resolve_blob(struct registry *reg, struct store *s, const char *registry,
		 const char *repository, const struct digest *d, int64_t *ret_size,
		 struct registry_error *err)
{
	int64_t size;
	int r;

	memset(err, 0, sizeof(*err));
	if (index_get_link(store_index(s), registry, repository, d, ret_size) == 0)
		return 0;
	r = registry_head_blob(reg, registry, repository, d, &size, err);
	if (r < 0)
		return r;
	if (size < 0) {
		snprintf(err->message, sizeof(err->message),
			 "%s: HEAD of blob sha256:%s gave no size", registry, d->hex);
		return -EPROTO;
	}
	*ret_size = size;
	return index_add_link(store_index(s), registry, repository, d, size);
}

/* ---- what upstream said is absent ----------------------------------------- */

struct absent_slot {
	struct digest key; /* of "registry\0repository\0name" */
	int64_t until;	   /* 0: empty */
};

struct resolve_absent {
	int64_t ttl;
	pthread_mutex_t lock; /* guards slots */
	struct absent_slot slots[RESOLVE_ABSENT_SLOTS];
};

int resolve_absent_new(int64_t ttl_s, struct resolve_absent **ret)
{
	struct resolve_absent *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->ttl = ttl_s < 0 ? 0 : ttl_s;
	pthread_mutex_init(&a->lock, NULL);
	*ret = a;
	return 0;
}

void resolve_absent_free(struct resolve_absent *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* A slot from the key's first 8 hex digits: the key is a hash already. */
static size_t slot_of(const struct digest *key)
{
	char first[9];

	memcpy(first, key->hex, 8);
	first[8] = '\0';
	return (size_t)(strtoul(first, NULL, 16) % RESOLVE_ABSENT_SLOTS);
}

/* The key of a name and its slot; NULL when the name is too long to be one. */
static struct absent_slot *absent_slot(struct resolve_absent *a, const char *registry,
				       const char *repository, const char *name, struct digest *key)
{
	char buf[3 * (INDEX_NAME_MAX + 1)];
	size_t lr = strlen(registry), lp = strlen(repository), ln = strlen(name);

	if (lr > INDEX_NAME_MAX || lp > INDEX_NAME_MAX || ln > INDEX_NAME_MAX)
		return NULL;
	memcpy(buf, registry, lr + 1);
	memcpy(buf + lr + 1, repository, lp + 1);
	memcpy(buf + lr + lp + 2, name, ln + 1);
	if (digest_of_buffer(buf, lr + lp + ln + 3, key) < 0)
		return NULL;
	return &a->slots[slot_of(key)];
}

bool resolve_absent_check(struct resolve_absent *a, const char *registry, const char *repository,
			  const char *name, int64_t now)
{
	struct absent_slot *slot;
	struct digest key;
	bool absent;

	if (!a || a->ttl == 0)
		return false;
	slot = absent_slot(a, registry, repository, name, &key);
	if (!slot)
		return false;
	pthread_mutex_lock(&a->lock);
	absent = slot->until > now && digest_equal(&slot->key, &key);
	pthread_mutex_unlock(&a->lock);
	return absent;
}

void resolve_absent_put(struct resolve_absent *a, const char *registry, const char *repository,
			const char *name, int64_t now)
{
	struct absent_slot *slot;
	struct digest key;

	if (!a || a->ttl == 0)
		return;
	slot = absent_slot(a, registry, repository, name, &key);
	if (!slot)
		return;
	pthread_mutex_lock(&a->lock);
	slot->key = key;
	slot->until = now + a->ttl;
	pthread_mutex_unlock(&a->lock);
}
