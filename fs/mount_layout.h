/*
 * mount_layout: the names of the mount's tree and of its xattrs, the
 * contract between the daemon (fs/) and what reads the mount at any
 * Docker-in-Docker level (tools/: mirror, pull, image, stats, doctor).
 *
 *   blobs/sha256/<hex>                               every blob and manifest
 *   registry/<host>/<repo>/manifests/<tag|digest>    manifests, by reference
 *   registry/<host>/<repo>/blobs/sha256:<hex>        blobs, fetched on a miss
 *   registry/local/<repo>/manifests/<tag>            local tags: writable
 *   ingest/sha256:<hex>                              write-only: a blob to add
 *   .dindfs/stats, .dindfs/whoami, .dindfs/registries
 *   workspace/                                       the --workspace directory
 *   layers/                                          (reserved: read-only layers)
 *
 * A blob or manifest file carries FS_LAYOUT_XATTR_DIGEST and, when known,
 * FS_LAYOUT_XATTR_MEDIA_TYPE.
 */
#ifndef DINDFS_MOUNT_LAYOUT_H
#define DINDFS_MOUNT_LAYOUT_H

/* Names of the entries, one path component each. */
#define FS_LAYOUT_BLOBS	     "blobs"
#define FS_LAYOUT_SHA256     "sha256"
#define FS_LAYOUT_REGISTRY   "registry"
#define FS_LAYOUT_MANIFESTS  "manifests"
#define FS_LAYOUT_INGEST     "ingest"
#define FS_LAYOUT_META	     ".dindfs"
#define FS_LAYOUT_STATS	     "stats"
#define FS_LAYOUT_WHOAMI     "whoami"
#define FS_LAYOUT_REGISTRIES "registries"
#define FS_LAYOUT_WORKSPACE  "workspace"
#define FS_LAYOUT_LAYERS     "layers"

/* Paths from the mount's root. */
#define FS_LAYOUT_BLOBS_SHA256	  FS_LAYOUT_BLOBS "/" FS_LAYOUT_SHA256 /* + "/<hex>" */
#define FS_LAYOUT_INGEST_PREFIX	  FS_LAYOUT_INGEST "/sha256:"	       /* + "<hex>" */
#define FS_LAYOUT_STATS_PATH	  FS_LAYOUT_META "/" FS_LAYOUT_STATS
#define FS_LAYOUT_WHOAMI_PATH	  FS_LAYOUT_META "/" FS_LAYOUT_WHOAMI
#define FS_LAYOUT_REGISTRIES_PATH FS_LAYOUT_META "/" FS_LAYOUT_REGISTRIES

/* A repository's blobs by digest: registry/<host>/<repo>/ + this + "<hex>". */
#define FS_LAYOUT_REPO_BLOB_PREFIX FS_LAYOUT_BLOBS "/sha256:"

#define FS_LAYOUT_XATTR_MEDIA_TYPE "user.dindfs.media_type"
#define FS_LAYOUT_XATTR_DIGEST	   "user.dindfs.digest"

#endif
