/*
 * fs: the dindfs FUSE filesystem (libfuse3 low-level API).
 *
 * One daemon on the host serves the tree of mount_layout.h over the cache:
 * blobs/, registry/, ingest/ and .dindfs/, and the --workspace directory at
 * workspace/ (workspace.c). fs_run() mounts, serves until unmounted or
 * signalled, and cleans up: downloads stop and nothing partial is
 * committed. docs/architecture.md maps the modules, threads and locks.
 */
#ifndef DINDFS_FS_H
#define DINDFS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What a client of the mount can make the daemon hold (docs/security.md).
 * A level is a pid-namespace depth below the daemon (fs/whoami.c). Zero
 * means the default.
 */
struct fs_limits {
	int64_t ingest_bytes;	    /* one ingest file: writes past it fail with EFBIG */
	int64_t tmp_bytes;	    /* all of the store's tmp/: ENOSPC */
	int64_t level_tmp_bytes;    /* one level's ingests in tmp/: EDQUOT */
	int64_t level_writers;	    /* one level's open ingest and local tag writers: EMFILE */
	int64_t level_buffer_bytes; /* one level's local tag writers' memory: ENOBUFS */
	int64_t level_node_bytes;   /* the inodes one level makes the daemon hold: ENFILE */
	int64_t level_local_tags;   /* registry/local tags one level has made: EDQUOT */
};

struct fs_config {
	const char *store_dir;
	const char *mountpoint;
	const char *const *upstreams; /* "HOST=URL" */
	size_t n_upstreams;
	const char *const *registries; /* --registry NAME: served besides the built-in ones */
	size_t n_registries;
	const char *const
		*allow_origins; /* --allow-origin URL: redirects and realms may go there */
	size_t n_allow_origins;
	int64_t tag_ttl;  /* seconds a tag is trusted before upstream is asked again */
	int64_t max_size; /* run GC past this many store bytes; -1: never */
	/* all unpacked layer trees together (bytes); -1: the default (fs/layers.c) */
	int64_t max_layers_size;
	bool allow_other;
	const char *workspace;	 /* served at MOUNTPOINT/workspace; NULL: none */
	int64_t workspace_uid;	 /* who owns what is created there; -1: the directory's owner */
	int64_t workspace_gid;	 /* -1: the directory's group */
	bool workspace_preserve; /* what is created is its creator's: uid and gid above unused */
	/* let levels set trusted.overlay.* xattrs there (nested overlayfs upper dirs) */
	bool workspace_overlay_xattrs;
	bool no_passthrough; /* serve every open file's data through the daemon */
	int log_fd;	     /* where the daemon logs; -1: nowhere */
	struct fs_limits limits;

	/* upstream limits (docs/security.md) */
	int64_t negative_ttl;	  /* seconds "upstream has no such tag" is trusted */
	int64_t upstream_timeout; /* seconds one upstream call may take, retries included */
};

/* Set a limit by its name in docs/security.md ("ingest-size", "level-writers"...). */
int fs_limits_set(struct fs_limits *limits, const char *name, int64_t value);

/*
 * Mount and serve. ready_fd (or -1) gets "ok\n" once the mount answers, or
 * one error line if it could not be set up. Returns 0 after a clean
 * unmount, or -errno.
 */
int fs_run(const struct fs_config *cfg, int ready_fd);

#endif
