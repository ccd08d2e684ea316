/*
 * snapshotter: the snapshots of `dindfs snapshotter`, with the semantics of
 * containerd's overlayfs snapshotter, and the shared layers of the mount.
 *
 * A snapshot is a row in SQLite (snapshotter_meta.c) and a directory
 * STATE/snapshots/<id>/ with fs/ (its files, the overlay upper) and work/
 * (overlayfs's workdir). Keys of active snapshots and views and names of
 * committed ones share one namespace, as in containerd.
 *
 * A remote snapshot is one the host daemon unpacked: Prepare with the label
 * containerd.io/snapshot.ref = CHAINID finds ROOT/layers/sha256:<d> whose
 * chain ID, over the parent's, is CHAINID, commits a snapshot named CHAINID
 * whose fs is a symlink to that tree and answers -EEXIST, so containerd
 * neither fetches nor unpacks the layer (as stargz, nydus and SOCI do).
 * The symlink keeps ':' out of overlayfs's lowerdir list and lets
 * containerd shorten long lists by their common prefix. When the host keeps
 * an EROFS image of the tree beside it (ROOT/layers/sha256:<d>.erofs), fs
 * is instead a directory with that image mounted on it, file-backed, so
 * overlayfs reads the layer from the kernel's EROFS, not file by file
 * through FUSE (snapshotter_erofs.h: the mount, and the fallback to the
 * symlink when it fails). The catalogue records the image of such a
 * snapshot; Mounts and Prepare mount it again on a parent whose mount a
 * restart took. Remove and Cleanup unmount what they remove; the mounts
 * stay when the process exits (containers may run on them), as with
 * containerd's own snapshotters.
 *
 * Every call returns 0 or -errno: -ENOENT no such snapshot, -EEXIST the key
 * or name is taken (or the remote layer was committed), -EINVAL bad input,
 * -ENOTEMPTY a snapshot with children, -EPERM the wrong kind for the call.
 * One struct snap serves one thread at a time.
 */
#ifndef DINDFS_SNAPSHOTTER_H
#define DINDFS_SNAPSHOTTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

/* The values of containerd.services.snapshots.v1.Kind. */
enum snap_kind {
	SNAP_KIND_UNKNOWN = 0,
	SNAP_KIND_VIEW = 1,
	SNAP_KIND_ACTIVE = 2,
	SNAP_KIND_COMMITTED = 3,
};

/* Bounds on what a client sends (containerd's own keys are far shorter). */
#define SNAP_KEY_MAX	    1024 /* bytes of a key, name or parent */
#define SNAP_LABELS_MAX	    64	 /* labels on one snapshot */
#define SNAP_LABEL_PAIR_MAX 4096 /* key + value, containerd's own limit */
#define SNAP_DEPTH_MAX	    500	 /* ancestors: overlayfs's limit on lower layers */

#define SNAP_LABEL_REF "containerd.io/snapshot.ref"

struct snap_label {
	char *key, *value;
};

struct snap_labels {
	struct snap_label *items;
	size_t len;
};

struct snap_info {
	char *name;
	char *parent; /* NULL: none */
	enum snap_kind kind;
	int64_t created_ns, updated_ns; /* since the epoch */
	struct snap_labels labels;
};

struct snap_mount {
	char *type, *source;
	char **options;
	size_t n_options;
};

struct snap_mounts {
	struct snap_mount *items;
	size_t len;
};

struct snap;

/*
 * Open (creating) the state directory and its database, for the layers
 * under ROOT/layers (ROOT may be NULL: no shared layers).
 */
int snap_open(const char *state_dir, const char *root, struct snap **ret);
/* Accepts NULL. */
void snap_free(struct snap *s);

struct snap_content;
/*
 * Link the layer blob of every remote snapshot Prepare makes or finds into
 * containerd's content store (snapshotter_content.h); S does not own
 * CONTENT, which must outlive it. NULL: no links.
 */
void snap_set_content(struct snap *s, struct snap_content *content);

/*
 * A new active snapshot (view false) or view KEY on PARENT (NULL or ""
 * for none), and the mounts to use it. -EEXIST when KEY exists, or when a
 * remote layer matched the label containerd.io/snapshot.ref (then the
 * snapshot named by that label exists and nothing was made for KEY).
 */
int snap_prepare(struct snap *s, const char *key, const char *parent,
		 const struct snap_labels *labels, bool view, struct snap_mounts *ret);
int snap_mounts(struct snap *s, const char *key, struct snap_mounts *ret);
/* Active KEY becomes committed NAME, its labels replaced by LABELS. */
int snap_commit(struct snap *s, const char *name, const char *key,
		const struct snap_labels *labels);
int snap_remove(struct snap *s, const char *key);
int snap_stat(struct snap *s, const char *key, struct snap_info *ret);
/*
 * Change the labels of INFO->name: with no paths all of them become
 * INFO's; "labels" does the same; "labels.K" sets K to INFO's value of K,
 * or removes it when INFO has none. Other paths are -EINVAL.
 */
int snap_update(struct snap *s, const struct snap_info *info, char *const *paths, size_t n_paths,
		struct snap_info *ret);
/* Bytes and inodes of the snapshot's own fs (0 for a remote one: it is shared). */
int snap_usage(struct snap *s, const char *key, int64_t *ret_size, int64_t *ret_inodes);
/* Call FN for every snapshot, stopping at the first non-zero return (returned). */
int snap_walk(struct snap *s, int (*fn)(const struct snap_info *info, void *ctx), void *ctx);
/* Remove directories under STATE/snapshots that no snapshot owns. */
int snap_cleanup(struct snap *s);

/* Key, name and label checks that every call makes (bounds above). */
bool snap_key_valid(const char *key);
int snap_labels_check(const struct snap_labels *labels);
const char *snap_labels_get(const struct snap_labels *labels, const char *key);

/*
 * The OCI chain ID of a layer DIFF_ID ("sha256:<hex>") on a parent chain
 * PARENT_CHAIN (NULL for the first layer: the chain ID is the diff ID):
 * sha256(PARENT_CHAIN + " " + DIFF_ID).
 */
int snap_chain_id(const char *parent_chain, const char *diff_id, char ret[DIGEST_STRING_SIZE]);
/*
 * The diff ID of the tree under ROOT/layers whose chain ID over
 * PARENT_CHAIN is CHAIN, or -ENOENT.
 */
int snap_find_layer(const char *root, const char *parent_chain, const char *chain,
		    char ret_diff_id[DIGEST_STRING_SIZE]);

void snap_info_release(struct snap_info *info);
void snap_labels_release(struct snap_labels *labels);
void snap_mounts_release(struct snap_mounts *mounts);

#endif
