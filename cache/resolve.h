/*
 * resolve: manifests from upstream into the store, by tag or by digest.
 *
 * Both `dindfs pull` and the mount resolve manifests here. Every manifest
 * that comes from upstream is verified, committed to the store, and
 * recorded in the index with what it needs (edges, for GC) and what its
 * repository therefore holds (links, so the mount serves a blob under a
 * repository's path only when that repository is known to hold it).
 */
#ifndef DINDFS_RESOLVE_H
#define DINDFS_RESOLVE_H

#include <stdbool.h>
#include <stdint.h>

#include "manifest.h"
#include "registry.h"
#include "store.h"

struct resolved {
	struct digest digest;
	char media_type[MANIFEST_MEDIA_TYPE_MAX + 1];
	int64_t size;
	bool fetched; /* a GET brought it */
	bool stale;   /* upstream could not be asked: this is the cached copy */
};

/*
 * Resolve registry/repository:tag. A tag upstream confirmed less than ttl
 * seconds ago is answered from the index alone; otherwise upstream gets a
 * HEAD, and a GET only when the digest changed or the tag is new. With
 * allow_stale, a tag whose upstream cannot be reached (transport error or
 * 5xx) is answered from the cache with stale set and err saying why.
 * -ENOENT when upstream has no such tag.
 */
int resolve_tag(struct registry *reg, struct store *s, const char *registry, const char *repository,
		const char *tag, int64_t ttl, bool allow_stale, struct resolved *ret,
		struct registry_error *err);

/* How resolve_tag_with() treats a tag. */
struct resolve_tag_options {
	int64_t ttl;	  /* seconds a confirmed tag is answered from the index alone */
	bool allow_stale; /* serve the cached tag when upstream is down */
	/* the wall clock in seconds, for the age of a tag; NULL: time(NULL) */
	int64_t (*clock)(void);
};

/* resolve_tag, with its options in o (the unit tests set the clock). */
int resolve_tag_with(struct registry *reg, struct store *s, const char *registry,
		     const char *repository, const char *tag, const struct resolve_tag_options *o,
		     struct resolved *ret, struct registry_error *err);

/*
 * Resolve a manifest by digest: from the store when the repository is known
 * to hold it, else from upstream (a HEAD when the store has the bytes, a
 * GET otherwise; the body must hash to d). -ENOENT when the repository does
 * not hold it.
 */
int resolve_digest(struct registry *reg, struct store *s, const char *registry,
		   const char *repository, const struct digest *d, struct resolved *ret,
		   struct registry_error *err);

/*
 * Record what manifest d (size bytes, parsed as m) of registry/repository
 * needs (edges) and what the repository therefore holds (links).
 */
int resolve_record(struct store *s, const char *registry, const char *repository,
		   const struct digest *d, int64_t size, const struct manifest *m);

/* Parse a manifest that is in the store. */
int resolve_load(struct store *s, const struct digest *d, struct manifest **ret);

/*
 * Is blob d in registry/repository? Known links answer at once; otherwise
 * upstream gets a HEAD, and a yes is recorded. ret_size gets its size.
 */
int resolve_blob(struct registry *reg, struct store *s, const char *registry,
		 const char *repository, const struct digest *d, int64_t *ret_size,
		 struct registry_error *err);

/*
 * A short memory of what upstream said is not there (a 404 for a tag, a
 * manifest digest or a blob), so a level that asks for absent names again
 * and again costs upstream one request per name and TTL. Bounded: a table
 * of RESOLVE_ABSENT_SLOTS entries, a newer name taking an older one's slot
 * (that name is then asked again). Thread-safe. Times are the caller's
 * clock in seconds (a monotonic one).
 */
#define RESOLVE_ABSENT_SLOTS 4096

struct resolve_absent;

/* ttl_s 0: remember nothing. */
int resolve_absent_new(int64_t ttl_s, struct resolve_absent **ret);
/* Accepts NULL. */
void resolve_absent_free(struct resolve_absent *a);
/* Did upstream say, less than ttl seconds before now, that this is not there? */
bool resolve_absent_check(struct resolve_absent *a, const char *registry, const char *repository,
			  const char *name, int64_t now);
/* Upstream says so now. */
void resolve_absent_put(struct resolve_absent *a, const char *registry, const char *repository,
			const char *name, int64_t now);

#endif
