/*
 * pull: an image from its registry into the store.
 *
 * The manifest is resolved first (a tag already in the index costs one
 * HEAD; it is downloaded again only when upstream's digest changed), an
 * index is narrowed to one platform, the manifest -> blob edges and the tag
 * are recorded, and then the config and layers that the store lacks are
 * downloaded, a few at a time, each verified against its digest before it
 * is committed. Recording the edges before the downloads keeps GC from
 * taking a layer that has just arrived.
 */
#ifndef DINDFS_PULL_H
#define DINDFS_PULL_H

#include <stdint.h>

#include "manifest.h"
#include "pull_set.h"
#include "ref.h"
#include "registry.h"
#include "store.h"

struct pull_options {
	const struct manifest_platform *platform; /* NULL: this machine's */
	int concurrency;			  /* 0: PULL_DEFAULT_CONCURRENCY */
	const struct pull_observer *observer;	  /* may be NULL */
};

struct pull_result {
	struct digest manifest; /* what the reference names: the index for a multi-platform tag */
	struct digest image;	/* the platform's image manifest */
	int manifests_fetched;	/* manifest GETs it took */
	int blobs_fetched;
	int64_t bytes_fetched;
};

/*
 * Pull ref into s. Returns 0, or -errno with err describing the failure
 * (-ENOENT: not found upstream; -ENOENT with a platform message when an
 * index has no image for the platform; -EBADMSG: a blob or manifest did not
 * match its digest, and nothing of it was kept).
 */
int pull_image(struct registry *reg, struct store *s, const struct ref *ref,
	       const struct pull_options *opts, struct pull_result *ret,
	       struct registry_error *err);

/*
 * Where a pull gets its manifests and blobs: the registry (pull_image), or
 * the files of a dindfs mount (tools/pull_mount.c). Both run the same steps
 * in pull_from(): the root manifest, one platform's image of an index, then
 * its config and layers through a pull_set.
 */
struct pull_source {
	/*
	 * The manifest ref names (d NULL), or the image manifest d of ref's
	 * repository: parsed into *ret, with the digest it has. *ret_fetched
	 * says it took a manifest GET. -errno with err->message set on failure.
	 */
	int (*manifest)(void *ctx, const struct ref *ref, const struct digest *d,
			struct manifest **ret, struct digest *ret_digest, bool *ret_fetched,
			struct registry_error *err);
	pull_get_fn blob;    /* one config or layer */
	struct store *store; /* blobs already here count as cached; NULL: none */
};

/*
 * Pull ref from src, as pull_image describes. With ret_image, the image
 * manifest is handed to the caller (manifest_free it) on success.
 */
int pull_from(const struct pull_source *src, void *ctx, const struct ref *ref,
	      const struct pull_options *opts, struct pull_result *ret, struct manifest **ret_image,
	      struct registry_error *err);

#endif
