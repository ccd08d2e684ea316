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
#include "ref.h"
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
};

/*
 * Progress reports. resolved is called once the image manifest is known,
 * with its blobs (config first); blob is called on every change of one of
 * them, from the downloading threads, one call at a time.
 */
struct pull_observer {
	void (*resolved)(const struct digest *manifest, const struct pull_blob_status *blobs,
			 size_t n_blobs, void *ctx);
	void (*blob)(size_t i, const struct pull_blob_status *status, void *ctx);
	void *ctx;
};

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

#endif
