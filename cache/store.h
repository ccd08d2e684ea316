/*
 * store: the content-addressed blob store.
 *
 * Layout under the store directory:
 *   blobs/sha256/<first 2 hex>/<hex>   committed blobs, exactly their digest's bytes
 *   tmp/<hex or "any">.XXXXXX          ingests in progress, each flock()ed by its writer
 *   quarantine/<hex>                   blobs fsck found damaged
 *   index.db                           the SQLite index (index.h)
 *   lock                               flock(): writers commit shared, GC deletes exclusive
 *
 * A blob becomes visible only by rename() from tmp/ after it was hashed,
 * compared with its expected digest and fsync()ed, so nothing partial or
 * unverified is ever under blobs/, whatever crashes. Opening the store
 * recovers from a crash: stale temp files go, index rows whose file is gone
 * go, committed files without a row are indexed again.
 *
 * A struct store may be shared between threads. Functions return 0 or a
 * negative errno and never print.
 */
#ifndef DINDFS_STORE_H
#define DINDFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "index.h"

struct store;
struct store_writer;

/* Open the store at dir, creating it (and its parents) if needed, then recover. */
int store_open(const char *dir, struct store **ret);
/* Accepts NULL. */
void store_close(struct store *s);

const char *store_dir(const struct store *s);
struct index *store_index(struct store *s);

/* Path of d's blob file, whether or not it exists. -ENAMETOOLONG if size is short. */
int store_blob_path(const struct store *s, const struct digest *d, char *buf, size_t size);
/* Open a committed blob read-only. -ENOENT when absent. */
int store_open_blob(struct store *s, const struct digest *d, int *ret_fd);
bool store_has_blob(struct store *s, const struct digest *d);

/*
 * Limits on tmp/: one writer holds at most max_writer_bytes (a write past
 * it fails with -EFBIG), and this process's writers together at most
 * max_tmp_bytes (-ENOSPC). Set them before writers start.
 */
#define STORE_DEFAULT_MAX_WRITER_BYTES (32ull << 30) /* 32 GiB */
#define STORE_DEFAULT_MAX_TMP_BYTES    (64ull << 30) /* 64 GiB */
void store_set_limits(struct store *s, uint64_t max_writer_bytes, uint64_t max_tmp_bytes);
/* Bytes this process's writers hold in tmp/ now. */
uint64_t store_tmp_bytes(struct store *s);

/*
 * Start an ingest. With expected set, the commit succeeds only if the bytes
 * hash to it; with NULL, whatever the bytes hash to is committed.
 */
int store_writer_new(struct store *s, const struct digest *expected, struct store_writer **ret);
/*
 * Append len bytes. They are hashed as they come, once: no call ever reads
 * the file back to hash it. -EFBIG or -ENOSPC past the limits above; on any
 * failure nothing of this write is kept and the writer can go on.
 */
int store_writer_write(struct store_writer *w, const void *data, size_t len);
/*
 * The same, for a write that says where it goes (through a filesystem):
 * offset must be the current end, else -EINVAL and nothing changes.
 */
int store_writer_pwrite(struct store_writer *w, const void *data, size_t len, uint64_t offset);
/*
 * Do the bytes written so far hash to the expected digest? 0 if so,
 * -EBADMSG if not (or no digest was expected). It costs the same whatever
 * the size (a copy of the hash state). The writer goes on either way.
 */
int store_writer_verify(struct store_writer *w);
/* Throw away what was written and start from empty (a download restarting). */
int store_writer_reset(struct store_writer *w);
/* Bytes written so far. */
uint64_t store_writer_size(const struct store_writer *w);
/* The temp file, for readers that follow a download while it runs. */
int store_writer_fd(const struct store_writer *w);
/*
 * Verify, fsync, rename into place, fsync the directory, index. Consumes w
 * whatever happens. -EBADMSG when the bytes do not match the expected
 * digest; nothing is kept then. ret_digest (may be NULL) gets the digest.
 */
int store_writer_commit(struct store_writer *w, const char *media_type, struct digest *ret_digest);
/* Drop an ingest and its temp file. Accepts NULL. */
void store_writer_abort(struct store_writer *w);

/* Ingest a whole buffer; the arguments are as for the writer. */
int store_put(struct store *s, const void *data, size_t len, const struct digest *expected,
	      const char *media_type, struct digest *ret_digest);

/* Is some process (this one or another) ingesting d right now? */
bool store_ingest_active(struct store *s, const struct digest *d);

/*
 * The store-wide lock. Commits take it shared; GC and fsck take it
 * exclusive while they delete, so a blob cannot be committed and removed
 * at once. Returns a lock handle (an fd) for store_unlock.
 */
int store_lock(struct store *s, bool exclusive, int *ret_handle);
void store_unlock(int handle);

/*
 * Remove a blob's file and its index row. The caller holds the exclusive
 * lock. -EBUSY when it is being ingested.
 */
int store_remove_blob(struct store *s, const struct digest *d);
/* Move a blob to quarantine/ and drop its row. The caller holds the exclusive lock. */
int store_quarantine_blob(struct store *s, const struct digest *d);

/*
 * Called after each commit (store_writer_commit, store_put) with the
 * committed digest, in the committing thread, outside the store's locks:
 * it must not block. Set it before other threads use the store; NULL to unset.
 */
typedef void (*store_commit_fn)(const struct digest *d, void *ctx);
void store_set_commit_hook(struct store *s, store_commit_fn fn, void *ctx);

/* For crash tests: called at each step of a commit. NULL in normal use. */
enum store_stage {
	STORE_STAGE_SYNCED,  /* temp file verified and fsync()ed */
	STORE_STAGE_RENAMED, /* renamed into blobs/, directory not yet synced */
	STORE_STAGE_INDEXED, /* in the index */
};
extern void (*store_fault_hook)(enum store_stage stage);

/*
 * fsync the directory name under parent_fd (AT_FDCWD, or a directory), so a
 * rename into it is durable. The store's and the layer trees' one way to do it.
 */
int store_fsync_dir_at(int parent_fd, const char *name);

#endif
