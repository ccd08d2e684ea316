/*
 * pull_mount: pull an image through a dindfs mount, at any level.
 *
 * Reading registry/<host>/<repo>/manifests/<ref> and .../blobs/sha256:<hex>
 * makes the host daemon fetch and verify them; this side needs no network
 * and no credentials. Progress is reported as pull_image() reports it.
 */
#ifndef DINDFS_PULL_MOUNT_H
#define DINDFS_PULL_MOUNT_H

#include <stddef.h>

#include "pull.h"

/*
 * Pull ref through the mount at root. Returns 0, or -errno with one line in
 * err (-ENOENT: not found upstream). ret_image, when not NULL, gets the
 * platform's image manifest (free it with manifest_free).
 */
int tool_pull_through_mount(const char *root, const struct ref *ref,
			    const struct pull_options *opts, struct pull_result *ret,
			    struct manifest **ret_image, char *err, size_t err_size);

/* Is path the root of a dindfs mount? */
bool tool_is_dindfs_mount(const char *path);

#endif
