/*
 * layer: image layers unpacked once into the store, as overlayfs lower dirs.
 *
 * Layout under the store directory:
 *   layers/                        0700 root: the trees hold setuid files and device nodes
 *   layers/sha256:<diffid>/        one complete, verified layer
 *   layers/sha256:<diffid>.erofs   its EROFS image, if built (layer_image.h)
 *   layers/tmp/<hex>.XXXXXX/       an unpack in progress, flock()ed by its worker
 *
 * A layer blob (gzip, zstd, xz, bzip2 or plain tar: libarchive finds out)
 * is decompressed, hashed as it flows and extracted by libarchive into a
 * temp dir; only when the uncompressed stream hashes to the expected
 * diff-id is the tree synced and renamed into place. So a directory under
 * layers/ is always complete and verified, whatever crashes; a crash
 * leaves only layers/tmp/, which layer_recover() empties.
 *
 * Whiteouts become overlayfs's: `.wh.<name>` is a character device 0:0 at
 * <name>, `.wh..wh..opq` sets xattr trusted.overlay.opaque = "y" on its
 * directory. trusted.overlay.* xattrs in the tar itself are dropped, so a
 * layer cannot forge redirects; so are user.overlay.*, which overlayfs
 * reads instead under -o userxattr (in a user namespace). Owners
 * (numeric), modes, times, xattrs, symlinks and hard links are as in the
 * tar.
 *
 * Functions return 0 or a negative errno and never print. They may run in
 * any thread: extraction works relative to a per-thread working directory
 * (unshare(CLONE_FS)), never the process's.
 */
#ifndef DINDFS_LAYER_H
#define DINDFS_LAYER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

/* Milliseconds of CLOCK_MONOTONIC: the clock of layer_limits.max_ms's deadlines. */
uint64_t layer_now_ms(void);

/* What a hostile layer cannot pass, and the errno it gets when it tries. */
struct layer_limits {
	uint64_t max_bytes;   /* uncompressed stream, and file sizes summed: -EFBIG */
	uint64_t max_entries; /* tar entries: -E2BIG */
	size_t max_path;      /* bytes of a path (or hard link target): -ENAMETOOLONG */
	unsigned max_depth;   /* components of a path: -ELOOP */
	uint64_t max_ms;      /* wall time of one unpack, so no layer holds a worker: -ETIMEDOUT (0:
				 none) */
	/*
	 * All trees together, counted by their uncompressed streams (the
	 * index's layer_bytes): layer_queue keeps the count and refuses a layer
	 * that would pass it with -EDQUOT. UINT64_MAX: no cap.
	 */
	uint64_t max_total_bytes;
	/*
	 * What this one unpack may add under max_total_bytes (the stream, and
	 * file sizes summed): -EDQUOT past it. Set by layer_queue per layer;
	 * UINT64_MAX: no cap.
	 */
	uint64_t room_bytes;
	/* Not a limit: when set (may be NULL), an unpack stops with -ECANCELED. */
	const _Atomic bool *stop;
};

#define LAYER_DEFAULT_MAX_BYTES	  (64ull << 30) /* 64 GiB */
#define LAYER_DEFAULT_MAX_ENTRIES 1000000
#define LAYER_DEFAULT_MAX_PATH	  4095
#define LAYER_DEFAULT_MAX_DEPTH	  128
#define LAYER_DEFAULT_MAX_MS	  (15 * 60 * 1000) /* 15 min: 64 GiB at ~75 MB/s */

void layer_limits_default(struct layer_limits *ret);

/* Path of the tree of diffid under store_dir, whether or not it exists. */
int layer_path(const char *store_dir, const struct digest *diffid, char *buf, size_t size);
/* Is the tree of diffid in place (complete: nothing else ever is)? */
bool layer_present(const char *store_dir, const struct digest *diffid);

/*
 * Unpack the layer blob read from blob_fd (from its current offset) into
 * layers/sha256:<diffid>. Errors, and nothing is kept after any of them:
 *   -EBADMSG       the uncompressed stream does not hash to diffid
 *   -EINVAL        the blob is not a (compressed) tar, or is cut short
 *   -EPERM         an entry names an absolute path, `..`, or goes through a symlink
 *   -EFBIG, -E2BIG, -ENAMETOOLONG, -ELOOP, -ETIMEDOUT   a limit above
 *   -EDQUOT        the tree would pass limits->room_bytes (the cap of all trees)
 *   -ECANCELED     limits->stop was set
 *   others         from the filesystem (-ENOSPC, -EIO ...)
 * When the tree is already there, 0 without reading. ret_bytes (may be
 * NULL) gets the uncompressed size.
 */
int layer_unpack(const char *store_dir, int blob_fd, const struct digest *diffid,
		 const struct layer_limits *limits, uint64_t *ret_bytes);

/*
 * Remove a tree and its image: the image unlinked, the tree renamed away
 * (it vanishes at once), then deleted. -ENOENT if the tree is absent.
 */
int layer_remove(const char *store_dir, const struct digest *diffid);
/*
 * Only the first half: unlink the image, rename the tree into layers/tmp/, where the next
 * layer_recover() deletes it. For callers holding a lock that deleting a
 * big tree would hold too long (GC).
 */
int layer_detach(const char *store_dir, const struct digest *diffid);

/* Callback for layer_foreach; return non-zero to stop (it is returned). */
typedef int (*layer_fn)(const struct digest *diffid, void *ctx);
/* Every complete tree under layers/, in no order. */
int layer_foreach(const char *store_dir, layer_fn fn, void *ctx);

/*
 * Create layers/ (0700) and layers/tmp/ if needed, and delete what crashed
 * unpacks and image builds left in tmp/ (those still locked by a live
 * worker stay), and images whose tree is gone. ret_removed (may be NULL)
 * counts the leftovers removed.
 */
int layer_recover(const char *store_dir, int64_t *ret_removed);

/*
 * Make layers/tmp/NAME.XXXXXX (buf gets its path) and hold it locked
 * (flock, through *ret_fd): layer_recover() leaves it alone while the
 * descriptor is open, and deletes it once its maker died.
 */
int layer_tmp_create(const char *store_dir, const char *name, char *buf, size_t size, int *ret_fd);

/* For crash tests: called once the tree is extracted and verified, before its rename. */
extern void (*layer_fault_hook)(const char *tmp_dir);

#endif
