/*
 * fetch: one download per blob and registry, however many readers wait for it.
 *
 * The mount opens a blob that is not in the store with fetch_start(): the
 * first opener starts a download thread that streams the blob into a store
 * writer; later openers of the same digest from the same registry, from
 * any level, join it. The same digest asked of another registry is another
 * download: a registry that stalls cannot hold up another's readers. Each
 * reader reads the bytes that have arrived and waits only for the ones that
 * have not. The blob is committed once complete and verified; if it fails
 * to verify, every reader gets -EIO and nothing is kept.
 *
 * All functions are thread-safe.
 */
#ifndef DINDFS_FETCH_H
#define DINDFS_FETCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "registry.h"
#include "store.h"

/* Most downloads the fetcher runs at once; past it, fetch_start is -EAGAIN. */
#define FETCH_MAX_IN_FLIGHT 64
/* Most of them from one registry; past it, fetch_start is -EBUSY for that registry. */
#define FETCH_MAX_PER_HOST 16

struct fetcher;
struct fetch;

/* Called once when a download ends: 0 (committed) or -errno, and why. */
typedef void (*fetch_done_fn)(const struct digest *d, int result, const struct registry_error *err,
			      void *ctx);

int fetcher_new(struct registry *reg, struct store *s, fetch_done_fn done, void *done_ctx,
		struct fetcher **ret);
/* Stop every download (nothing partial is committed), wait for them, free. Accepts NULL. */
void fetcher_free(struct fetcher *f);
/* Downloads running now. */
unsigned fetcher_in_flight(struct fetcher *f);

/*
 * Join the download of d from registry (size bytes, from a manifest or a
 * HEAD), starting it from registry/repository if none runs. -EEXIST when
 * the blob is already in the store: open it there instead. -EBUSY when
 * FETCH_MAX_PER_HOST downloads from registry run, -EAGAIN when
 * FETCH_MAX_IN_FLIGHT do.
 */
int fetch_start(struct fetcher *f, const char *registry, const char *repository,
		const struct digest *d, int64_t size, struct fetch **ret);

/*
 * Read up to len bytes at offset into buf, waiting until they have arrived
 * (or the blob ends before), at most timeout_ms (-1: as long as it takes).
 * A read that reaches the blob's end waits for the download to be verified
 * and committed, so no reader sees a whole blob that did not verify.
 * Returns the byte count (0 past the end); -ETIMEDOUT when they have not
 * arrived in time (call again); -EIO when the download failed or the blob
 * did not verify.
 */
ssize_t fetch_read(struct fetch *fx, void *buf, size_t len, off_t offset, int timeout_ms);

/* The registry it downloads from. */
const char *fetch_registry(const struct fetch *fx);

/* Leave a download; the last reader out does not stop it. Accepts NULL. */
void fetch_release(struct fetch *fx);

#endif
