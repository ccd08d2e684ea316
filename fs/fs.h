/*
 * fs: the dindfs FUSE filesystem (libfuse3 low-level API).
 *
 * One daemon on the host serves the namespace of design.md over the cache:
 * blobs/, registry/, ingest/ and .dindfs/, and the --workspace directory at
 * workspace/ (workspace.c). fs_run() mounts, serves until unmounted or signalled, and cleans
 * up: downloads stop and nothing partial is committed.
 */
#ifndef DINDFS_FS_H
#define DINDFS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fs_config {
	const char *store_dir;
	const char *mountpoint;
	const char *const *upstreams; /* "HOST=URL" */
	size_t n_upstreams;
	int64_t tag_ttl;  /* seconds a tag is trusted before upstream is asked again */
	int64_t max_size; /* run GC past this many store bytes; -1: never */
	bool allow_other;
	const char *workspace; /* served at MOUNTPOINT/workspace; NULL: none */
	int64_t workspace_uid; /* who owns what is created there; -1: the directory's owner */
	int64_t workspace_gid; /* -1: the directory's group */
	int log_fd;	       /* where the daemon logs; -1: nowhere */

	/* upstream limits (docs/security.md) */
	int64_t negative_ttl;	  /* seconds "upstream has no such tag" is trusted */
	int64_t upstream_timeout; /* seconds one upstream call may take, retries included */
};

/*
 * Mount and serve. ready_fd (or -1) gets "ok\n" once the mount answers, or
 * one error line if it could not be set up. Returns 0 after a clean
 * unmount, or -errno.
 */
int fs_run(const struct fs_config *cfg, int ready_fd);

#endif
