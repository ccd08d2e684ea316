/*
 * fsck: check that every blob holds exactly the bytes of its digest.
 *
 * Every indexed blob is hashed again. A blob whose bytes do not match is
 * moved to <store>/quarantine/<hex> and leaves the index, so it is never
 * served again and a later pull fetches it anew.
 */
#ifndef DINDFS_FSCK_H
#define DINDFS_FSCK_H

#include <stdint.h>

#include "store.h"

struct fsck_result {
	int64_t checked;
	int64_t bytes;
	int64_t bad;
};

/* Called once for each damaged blob, with what was found wrong. */
typedef void (*fsck_report_fn)(const struct digest *d, const char *problem, void *ctx);

/*
 * Check the whole store. Returns 0 when the check ran (ret->bad counts the
 * quarantined blobs) or a negative errno when it could not.
 */
int fsck_run(struct store *s, fsck_report_fn report, void *ctx, struct fsck_result *ret);

struct fsck_layer_result {
	int64_t checked;   /* rows of unpacked layers */
	int64_t missing;   /* UNPACKED rows whose tree was gone: row dropped (it unpacks again) */
	int64_t unindexed; /* trees under layers/ without a row: removed */
	int64_t stray;	   /* leftovers of crashed unpacks in layers/tmp/: removed */
};

/*
 * Check the unpacked layers (layer.h) against the index: every UNPACKED
 * row has its tree, every tree has a row, and layers/tmp/ holds only live
 * unpacks. What is wrong is repaired and reported (d is the diff-id). The
 * trees' contents were verified when they were made and are not re-read.
 */
int fsck_run_layers(struct store *s, fsck_report_fn report, void *ctx,
		    struct fsck_layer_result *ret);

#endif
