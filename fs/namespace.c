/*
 * namespace: the tree the mount shows, name by name.
 *
 *   blobs/sha256/<hex>                              every blob in the store
 *   registry/<host>/<repo…>/manifests/<tag>         resolved upstream (tag TTL)
 *   registry/<host>/<repo…>/manifests/sha256:<hex>  immutable
 *   registry/<host>/<repo…>/blobs/sha256:<hex>      if the repository holds it
 *   registry/local/<repo…>/manifests/<tag>          writable: images saved from a level
 *   ingest/sha256:<hex>                             create + write: a level adds a blob
 *   .dindfs/stats                                   counters, JSON
 *   .dindfs/whoami                                  the caller's pid and depth, JSON
 *   .dindfs/registries                              the registries served, one a line
 *
 * Every file that holds a blob is the one node of its digest, whatever
 * path reached it, so the page cache holds each blob once. Names are
 * checked with the reference grammar before anything is asked of the
 * index or upstream: nothing a path says reaches outside the store.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_internal.h"
#include "mount_layout.h"
#include "ref.h"
#include "resolve.h"
#include "workspace.h"

/* Seconds the kernel may trust what never changes, and what rarely does. */
#define TIMEOUT_FOREVER 3600.0
#define TIMEOUT_DIR	60.0

bool fs_kind_is_dir(enum fs_kind kind)
{
	return kind != FS_BLOB && kind != FS_LOCAL_TAG && kind != FS_INGEST_FILE &&
	       kind != FS_STATS && kind != FS_WHOAMI && kind != FS_REGISTRIES && kind != FS_ALIAS;
}

static bool is_local(const struct fs_node *dir)
{
	return strcmp(dir->registry, REF_LOCAL_REGISTRY) == 0;
}

/* "sha256:<hex>" as a file name. */
static int parse_digest_name(const char *name, struct digest *ret)
{
	return digest_parse(name, ret) < 0 ? -ENOENT : 0;
}

/*
 * An upstream failure as the caller sees it: absent is ENOENT, refused is
 * EACCES, interrupted is EINTR, anything else (down, broken, lying, too
 * slow for the deadline) is EIO and is logged, since
 * the caller must be able to tell "down" from "absent".
 */
static int upstream_errno(struct fs *fs, int r, const struct registry_error *err)
{
	switch (r) {
	case -ENOENT:
		return -ENOENT;
	case -EACCES:
		fs_log_upstream(fs, err->message);
		return -EACCES;
	case -ENOMEM:
		return -ENOMEM;
	case -EINTR: /* the caller gave up: nothing to log */
		return -EINTR;
	default:
		fs_log_upstream(fs, *err->message ? err->message : strerror(-r));
		return -EIO;
	}
}

/* Seconds on a clock that does not jump, for the record of absent names. */
static int64_t now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* Upstream's answer r about name: a "not there" is remembered for the negative TTL. */
static int note_absent(struct fs *fs, const struct fs_node *dir, const char *name, int r)
{
	if (r == -ENOENT)
		resolve_absent_put(fs->absent, dir->registry, dir->repository, name, now_mono());
	return r;
}

static bool known_absent(struct fs *fs, const struct fs_node *dir, const char *name)
{
	return resolve_absent_check(fs->absent, dir->registry, dir->repository, name, now_mono());
}

static void blob_proto(struct fs_node *proto, const struct digest *d, int64_t size)
{
	memset(proto, 0, sizeof(*proto));
	proto->kind = FS_BLOB;
	proto->digest = *d;
	proto->size = size;
}

static int blob_key(const struct digest *d, char *key, size_t size)
{
	return snprintf(key, size, "B:%s", d->hex) < (int)size ? 0 : -ENAMETOOLONG;
}

static int lookup_store_blob(struct fs *fs, const char *name, struct fs_node *proto, char *key,
			     size_t key_size)
{
	struct index_blob row;
	struct digest d;

	if (digest_parse_hex(name, &d) < 0)
		return -ENOENT;
	if (index_get_blob(store_index(fs->store), &d, &row) < 0 || !store_has_blob(fs->store, &d))
		return -ENOENT;
	blob_proto(proto, &d, row.size);
	return blob_key(&d, key, key_size);
}

static int lookup_in_repo(const struct fs_node *dir, const char *name, struct fs_node *proto,
			  char *key, size_t key_size)
{
	char repository[FS_NAME_MAX + 2];
	enum fs_kind kind = FS_REPO_DIR;
	int n;

	if (*dir->repository && strcmp(name, FS_LAYOUT_MANIFESTS) == 0) {
		kind = FS_MANIFESTS_DIR;
		snprintf(repository, sizeof(repository), "%s", dir->repository);
	} else if (*dir->repository && strcmp(name, FS_LAYOUT_BLOBS) == 0) {
		kind = FS_REPO_BLOBS_DIR;
		snprintf(repository, sizeof(repository), "%s", dir->repository);
	} else {
		n = snprintf(repository, sizeof(repository), "%s%s%s", dir->repository,
			     *dir->repository ? "/" : "", name);
		if (n < 0 || (size_t)n > FS_NAME_MAX)
			return -ENAMETOOLONG;
		if (ref_validate_repository(repository) < 0)
			return -ENOENT;
	}
	memset(proto, 0, sizeof(*proto));
	proto->kind = kind;
	snprintf(proto->registry, sizeof(proto->registry), "%s", dir->registry);
	if (strlen(repository) > FS_NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(proto->repository, repository, strlen(repository) + 1);
	n = snprintf(key, key_size, "%c:%s/%s",
		     kind == FS_REPO_DIR	? 'r'
		     : kind == FS_MANIFESTS_DIR ? 'm'
						: 'b',
		     proto->registry, proto->repository);
	return n < (int)key_size ? 0 : -ENAMETOOLONG;
}

static int lookup_local_tag(struct fs *fs, const struct fs_node *dir, const char *name,
			    struct fs_node *proto, char *key, size_t key_size)
{
	struct index_tag tag;

	if (ref_validate_tag(name) < 0)
		return -ENOENT;
	if (index_get_tag(store_index(fs->store), REF_LOCAL_REGISTRY, dir->repository, name, &tag) <
	    0)
		return -ENOENT;
	memset(proto, 0, sizeof(*proto));
	proto->kind = FS_LOCAL_TAG;
	snprintf(proto->registry, sizeof(proto->registry), "%s", REF_LOCAL_REGISTRY);
	snprintf(proto->repository, sizeof(proto->repository), "%s", dir->repository);
	snprintf(proto->tag, sizeof(proto->tag), "%s", name);
	return snprintf(key, key_size, "t:%s:%s", dir->repository, name) < (int)key_size
		       ? 0
		       : -ENAMETOOLONG;
}

static int lookup_manifest(struct fs *fs, const struct fs_node *dir, const char *name,
			   struct fs_node *proto, char *key, size_t key_size, double *ret_timeout)
{
	struct registry_error err;
	struct resolved res;
	struct digest d;
	int r;

	if (strncmp(name, "sha256:", 7) == 0) {
		if (parse_digest_name(name, &d) < 0)
			return -ENOENT;
		if (is_local(dir)) {
			int64_t size;

			if (index_get_link(store_index(fs->store), REF_LOCAL_REGISTRY,
					   dir->repository, &d, &size) < 0 ||
			    !store_has_blob(fs->store, &d))
				return -ENOENT;
			blob_proto(proto, &d, size);
			return blob_key(&d, key, key_size);
		}
		if (known_absent(fs, dir, name))
			return -ENOENT;
		r = note_absent(fs, dir, name,
				resolve_digest(fs->registry, fs->store, dir->registry,
					       dir->repository, &d, &res, &err));
		*ret_timeout = TIMEOUT_FOREVER;
	} else {
		if (ref_validate_tag(name) < 0)
			return -ENOENT;
		if (is_local(dir))
			return lookup_local_tag(fs, dir, name, proto, key, key_size);
		if (known_absent(fs, dir, name))
			return -ENOENT;
		r = note_absent(fs, dir, name,
				resolve_tag(fs->registry, fs->store, dir->registry, dir->repository,
					    name, fs->cfg->tag_ttl, true, &res, &err));
		if (r == 0 && res.stale)
			fs_log_upstream(fs, err.message);
		/* ask again soon: within the TTL that costs an index lookup, no more */
		*ret_timeout = fs->cfg->tag_ttl < 1 ? 0 : 1.0;
	}
	if (r < 0)
		return upstream_errno(fs, r, &err);
	blob_proto(proto, &res.digest, res.size);
	return blob_key(&res.digest, key, key_size);
}

/*
 * A blob not in the store yet is a node of its registry's: its size is
 * what that registry said and its reads come from there, so another
 * registry serving the same digest (a stalling one, one that lies about
 * the size) cannot hold up or spoil this one. Once committed, the next
 * lookup finds the one node of the digest.
 */
static int fetched_blob(const struct fs_node *dir, const struct digest *d, int64_t size,
			struct fs_node *proto, char *key, size_t key_size)
{
	blob_proto(proto, d, size);
	return snprintf(key, key_size, "F:%s:%s", dir->registry, d->hex) < (int)key_size
		       ? 0
		       : -ENAMETOOLONG;
}

static int lookup_repo_blob(struct fs *fs, const struct fs_node *dir, const char *name,
			    struct fs_node *proto, char *key, size_t key_size)
{
	struct index_blob row;
	struct registry_error err;
	struct digest d;
	int64_t size;
	int r;

	if (parse_digest_name(name, &d) < 0)
		return -ENOENT;
	if (is_local(dir)) {
		r = index_get_link(store_index(fs->store), REF_LOCAL_REGISTRY, dir->repository, &d,
				   &size);
		if (r < 0 || !store_has_blob(fs->store, &d))
			return -ENOENT;
	} else {
		if (known_absent(fs, dir, name))
			return -ENOENT;
		r = note_absent(fs, dir, name,
				resolve_blob(fs->registry, fs->store, dir->registry,
					     dir->repository, &d, &size, &err));
		if (r < 0)
			return upstream_errno(fs, r, &err);
		if (!store_has_blob(fs->store, &d))
			return fetched_blob(dir, &d, size, proto, key, key_size);
		if (index_get_blob(store_index(fs->store), &d, &row) == 0)
			size = row.size; /* the store's, not what a registry claims */
	}
	blob_proto(proto, &d, size);
	return blob_key(&d, key, key_size);
}

bool fs_lookup_needs_upstream(struct fs *fs, const struct fs_node *parent, const char *name)
{
	struct index *idx = store_index(fs->store);
	struct index_tag tag;
	struct digest d;
	int64_t size;

	if ((parent->kind != FS_MANIFESTS_DIR && parent->kind != FS_REPO_BLOBS_DIR) ||
	    is_local(parent) || known_absent(fs, parent, name))
		return false;
	if (parent->kind == FS_REPO_BLOBS_DIR || strncmp(name, "sha256:", 7) == 0) {
		if (parse_digest_name(name, &d) < 0)
			return false; /* ENOENT, from here */
		if (index_get_link(idx, parent->registry, parent->repository, &d, &size) < 0)
			return true;
		return parent->kind == FS_MANIFESTS_DIR && !store_has_blob(fs->store, &d);
	}
	if (ref_validate_tag(name) < 0)
		return false;
	/* as resolve_tag: a tag confirmed within the TTL and in the store is local */
	if (index_get_tag(idx, parent->registry, parent->repository, name, &tag) < 0 ||
	    !store_has_blob(fs->store, &tag.manifest))
		return true;
	return time(NULL) - tag.fetched >= fs->cfg->tag_ttl;
}

static int static_dir(enum fs_kind kind, const char *path, struct fs_node *proto, char *key,
		      size_t key_size)
{
	memset(proto, 0, sizeof(*proto));
	proto->kind = kind;
	proto->permanent = true;
	proto->size = -1;
	return snprintf(key, key_size, "/%s", path) < (int)key_size ? 0 : -ENAMETOOLONG;
}

int fs_lookup_child(struct fs *fs, const struct fs_node *parent, const char *name,
		    struct fs_node *proto, char *key, size_t key_size, double *ret_timeout)
{
	int r;

	*ret_timeout = TIMEOUT_FOREVER;
	switch (parent->kind) {
	case FS_ROOT:
		if (strcmp(name, FS_LAYOUT_BLOBS) == 0)
			return static_dir(FS_BLOBS_DIR, name, proto, key, key_size);
		if (strcmp(name, FS_LAYOUT_REGISTRY) == 0)
			return static_dir(FS_REGISTRY_DIR, name, proto, key, key_size);
		if (strcmp(name, FS_LAYOUT_INGEST) == 0)
			return static_dir(FS_INGEST_DIR, name, proto, key, key_size);
		if (strcmp(name, FS_LAYOUT_META) == 0)
			return static_dir(FS_META_DIR, name, proto, key, key_size);
		return -ENOENT;
	case FS_BLOBS_DIR:
		if (strcmp(name, FS_LAYOUT_SHA256) == 0)
			return static_dir(FS_BLOBS_SHA256_DIR, FS_LAYOUT_BLOBS_SHA256, proto, key,
					  key_size);
		return -ENOENT;
	case FS_META_DIR:
		if (strcmp(name, FS_LAYOUT_STATS) == 0) {
			r = static_dir(FS_STATS, FS_LAYOUT_STATS_PATH, proto, key, key_size);
			*ret_timeout = 0;
			return r;
		}
		if (strcmp(name, FS_LAYOUT_WHOAMI) == 0) {
			r = static_dir(FS_WHOAMI, FS_LAYOUT_WHOAMI_PATH, proto, key, key_size);
			*ret_timeout = 0;
			return r;
		}
		if (strcmp(name, FS_LAYOUT_REGISTRIES) == 0)
			return static_dir(FS_REGISTRIES, FS_LAYOUT_REGISTRIES_PATH, proto, key,
					  key_size);
		return -ENOENT;
	case FS_BLOBS_SHA256_DIR:
		return lookup_store_blob(fs, name, proto, key, key_size);
	case FS_REGISTRY_DIR:
		*ret_timeout = TIMEOUT_DIR;
		return fs_registries_lookup(fs, name, proto, key, key_size);
	case FS_REPO_DIR:
		*ret_timeout = TIMEOUT_DIR;
		return lookup_in_repo(parent, name, proto, key, key_size);
	case FS_MANIFESTS_DIR:
		r = lookup_manifest(fs, parent, name, proto, key, key_size, ret_timeout);
		if (r == 0 && proto->kind == FS_LOCAL_TAG)
			*ret_timeout = 0; /* rewritten at any time */
		return r;
	case FS_REPO_BLOBS_DIR:
		return lookup_repo_blob(fs, parent, name, proto, key, key_size);
	case FS_INGEST_DIR:
		return -ENOENT; /* ingests are created, never looked up */
	default:
		return -ENOTDIR;
	}
}

/* ---- listings ---------------------------------------------------------- */

struct listing {
	struct fs_dirent *entries;
	size_t n, cap;
	int error;
};

static void add(struct listing *l, const char *name, enum fs_kind kind)
{
	if (l->error)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct fs_dirent *e = reallocarray(l->entries, cap, sizeof(*e));

		if (!e) {
			l->error = -ENOMEM;
			return;
		}
		l->entries = e;
		l->cap = cap;
	}
	l->entries[l->n].name = strdup(name);
	l->entries[l->n].kind = kind;
	if (!l->entries[l->n].name)
		l->error = -ENOMEM;
	else
		l->n++;
}

static int by_name_then_place(const void *a, const void *b, void *ctx)
{
	const struct fs_dirent *entries = ctx;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int cmp = strcmp(entries[i].name, entries[j].name);

	return cmp ? cmp : (i > j) - (i < j);
}

/*
 * Drop repeated names after "." and "..", keeping the first of each, and
 * leave the rest sorted: a sort, not a search per name, so a listing of n
 * tags costs n log n however many repeat (registry/local with 20k repositories).
 */
static void unique(struct listing *l)
{
	struct fs_dirent *out;
	size_t *order, i, n = 2;

	if (l->error || l->n <= 3)
		return;
	order = reallocarray(NULL, l->n, sizeof(*order));
	out = reallocarray(NULL, l->n, sizeof(*out));
	if (!order || !out) {
		free(order);
		free(out);
		l->error = -ENOMEM;
		return;
	}
	for (i = 2; i < l->n; i++)
		order[i] = i;
	qsort_r(order + 2, l->n - 2, sizeof(*order), by_name_then_place, l->entries);
	out[0] = l->entries[0];
	out[1] = l->entries[1];
	for (i = 2; i < l->n; i++) {
		struct fs_dirent *e = &l->entries[order[i]];

		if (n > 2 && strcmp(out[n - 1].name, e->name) == 0)
			free(e->name);
		else
			out[n++] = *e;
	}
	free(order);
	free(l->entries);
	l->entries = out;
	l->n = n;
	l->cap = l->n;
}

static int add_store_blob(const struct digest *d, void *ctx)
{
	add(ctx, d->hex, FS_BLOB);
	return 0;
}

static int add_linked_blob(const struct digest *d, void *ctx)
{
	char name[DIGEST_STRING_SIZE];

	digest_format(d, name);
	add(ctx, name, FS_BLOB);
	return 0;
}

struct tag_walk {
	struct listing *listing;
	const struct fs_node *dir;
};

/* A tag's place in the directory being listed, if it has one there. */
static int add_from_tag(const struct index_tag *tag, void *ctx)
{
	struct tag_walk *w = ctx;
	const struct fs_node *dir = w->dir;
	size_t len = strlen(dir->repository);
	char component[FS_NAME_MAX + 1];
	const char *rest, *slash;

	if (dir->kind == FS_REGISTRY_DIR) {
		add(w->listing, tag->registry, FS_REPO_DIR);
		return 0;
	}
	if (strcmp(tag->registry, dir->registry) != 0)
		return 0;
	if (dir->kind == FS_MANIFESTS_DIR) {
		if (strcmp(tag->repository, dir->repository) == 0)
			add(w->listing, tag->tag, is_local(dir) ? FS_LOCAL_TAG : FS_BLOB);
		return 0;
	}
	/* FS_REPO_DIR: the next component of the repositories below it */
	if (len > 0 &&
	    (strncmp(tag->repository, dir->repository, len) != 0 || tag->repository[len] != '/'))
		return 0;
	rest = tag->repository + len + (len > 0);
	slash = strchr(rest, '/');
	len = slash ? (size_t)(slash - rest) : strlen(rest);
	memcpy(component, rest, len);
	component[len] = '\0';
	add(w->listing, component, FS_REPO_DIR);
	return 0;
}

int fs_list_dir(struct fs *fs, const struct fs_node *dir, struct fs_dirent **ret, size_t *ret_n)
{
	struct index *idx = store_index(fs->store);
	struct listing l = {0};
	struct tag_walk walk = {&l, dir};
	size_t i;
	int r = 0;

	add(&l, ".", dir->kind);
	add(&l, "..", FS_ROOT);
	switch (dir->kind) {
	case FS_ROOT:
		add(&l, FS_LAYOUT_BLOBS, FS_BLOBS_DIR);
		add(&l, FS_LAYOUT_REGISTRY, FS_REGISTRY_DIR);
		add(&l, FS_LAYOUT_INGEST, FS_INGEST_DIR);
		add(&l, FS_LAYOUT_META, FS_META_DIR);
		for (i = 0; i < FS_SLOTS; i++) /* directories other families serve */
			if (fs->families[i] && fs->families[i]->root_name)
				add(&l, fs->families[i]->root_name, FS_META_DIR);
		break;
	case FS_BLOBS_DIR:
		add(&l, FS_LAYOUT_SHA256, FS_BLOBS_SHA256_DIR);
		break;
	case FS_META_DIR:
		add(&l, FS_LAYOUT_STATS, FS_STATS);
		add(&l, FS_LAYOUT_WHOAMI, FS_WHOAMI);
		add(&l, FS_LAYOUT_REGISTRIES, FS_REGISTRIES);
		break;
	case FS_BLOBS_SHA256_DIR:
		r = index_foreach_digest(idx, add_store_blob, &l);
		break;
	case FS_REPO_BLOBS_DIR:
		r = index_foreach_link(idx, dir->registry, dir->repository, add_linked_blob, &l);
		break;
	case FS_REGISTRY_DIR:
	case FS_REPO_DIR:
	case FS_MANIFESTS_DIR:
		if (dir->kind == FS_REPO_DIR && *dir->repository) {
			add(&l, FS_LAYOUT_MANIFESTS, FS_MANIFESTS_DIR);
			add(&l, FS_LAYOUT_BLOBS, FS_REPO_BLOBS_DIR);
		}
		r = index_foreach_tag(idx, add_from_tag, &walk);
		unique(&l);
		break;
	default:
		break;
	}
	if (r == 0)
		r = l.error;
	if (r < 0) {
		fs_free_dirents(l.entries, l.n);
		return r;
	}
	*ret = l.entries;
	*ret_n = l.n;
	return 0;
}

void fs_free_dirents(struct fs_dirent *entries, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(entries[i].name);
	free(entries);
}

/* ---- attributes --------------------------------------------------------- */

static int64_t local_tag_size(struct fs *fs, const struct fs_node *node)
{
	struct index_tag tag;
	struct index_blob row;

	if (index_get_tag(store_index(fs->store), REF_LOCAL_REGISTRY, node->repository, node->tag,
			  &tag) < 0 ||
	    index_get_blob(store_index(fs->store), &tag.manifest, &row) < 0)
		return 0;
	return row.size;
}

int fs_node_stat(struct fs *fs, const struct fs_node *node, struct stat *st)
{
	struct index_blob row;
	char *json;
	size_t len;

	memset(st, 0, sizeof(*st));
	st->st_ino = fs_node_ino(fs, node);
	st->st_atime = st->st_mtime = st->st_ctime = time(NULL);
	if (fs_kind_is_dir(node->kind)) {
		bool writable = node->kind == FS_INGEST_DIR ||
				(node->kind == FS_MANIFESTS_DIR && is_local(node));

		st->st_mode = S_IFDIR | (writable ? 0755 : 0555);
		st->st_nlink = 2;
		return 0;
	}
	st->st_nlink = 1;
	switch (node->kind) {
	case FS_BLOB:
		st->st_mode = S_IFREG | 0444;
		st->st_size = fs_node_size(fs, node);
		if (index_get_blob(store_index(fs->store), &node->digest, &row) == 0) {
			st->st_size = row.size;
			st->st_mtime = st->st_ctime = row.created;
		}
		break;
	case FS_LOCAL_TAG:
		st->st_mode = S_IFREG | 0644;
		st->st_size = local_tag_size(fs, node);
		break;
	case FS_INGEST_FILE:
		st->st_mode = S_IFREG | 0644;
		break;
	case FS_STATS:
		st->st_mode = S_IFREG | 0444;
		if (fs_stats_json(fs, &json, &len) == 0) {
			st->st_size = (off_t)len;
			free(json);
		}
		break;
	case FS_WHOAMI:
		st->st_mode = S_IFREG | 0444; /* size 0, as /proc's files: it differs per reader */
		break;
	case FS_REGISTRIES:
		st->st_mode = S_IFREG | 0444;
		if (fs_registries_text(fs, &json, &len) == 0) {
			st->st_size = (off_t)len;
			free(json);
		}
		break;
	case FS_ALIAS:
		st->st_mode = S_IFLNK | 0777;
		st->st_size = (off_t)strlen(node->registry);
		break;
	default:
		return -EIO;
	}
	st->st_blocks = (st->st_size + 511) / 512;
	return 0;
}
