/*
 * fsck: rehash every blob and quarantine the damaged ones (see fsck.h).
 *
 * Hashing runs without the store lock, so the mount keeps working; a blob
 * found bad is hashed again under the exclusive lock before it moves, in
 * case a good copy was committed over it meanwhile.
 */
#include "fsck.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

/* Hash one blob file. Sets *ret_ok; returns -errno only when it cannot be read. */
static int check_blob(struct store *s, const struct digest *d, int64_t *ret_size, bool *ret_ok)
{
	struct digest actual;
	struct stat st;
	int fd, r;

	r = store_open_blob(s, d, &fd);
	if (r < 0)
		return r;
	r = fstat(fd, &st) < 0 ? -errno : digest_of_fd(fd, &actual);
	close(fd);
	if (r < 0)
		return r;
	*ret_size = st.st_size;
	*ret_ok = digest_equal(&actual, d);
	return 0;
}

static int quarantine_if_still_bad(struct store *s, const struct digest *d, bool *ret_moved)
{
	int64_t size;
	bool ok;
	int lock = -1, r = store_lock(s, true, &lock);

	if (r < 0)
		return r;
	*ret_moved = false;
	r = check_blob(s, d, &size, &ok);
	if (r == 0 && !ok) {
		r = store_quarantine_blob(s, d);
		*ret_moved = r == 0;
	}
	store_unlock(lock);
	return r == -ENOENT ? 0 : r;
}

int fsck_run(struct store *s, fsck_report_fn report, void *ctx, struct fsck_result *ret)
{
	struct digest_list all = {0};
	struct fsck_result res = {0};
	size_t i;
	int r;

	r = index_foreach_digest(store_index(s), digest_list_collect, &all);
	for (i = 0; r == 0 && i < all.len; i++) {
		const struct digest *d = &all.items[i];
		int64_t size = 0;
		bool ok, moved;

		r = check_blob(s, d, &size, &ok);
		if (r == -ENOENT) { /* removed by GC since the listing */
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		res.checked++;
		res.bytes += size;
		if (ok)
			continue;
		r = quarantine_if_still_bad(s, d, &moved);
		if (r == 0 && moved) {
			res.bad++;
			report(d, "content does not match its digest", ctx);
		}
	}
	digest_list_free(&all);
	*ret = res;
	return r;
}
