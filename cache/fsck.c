/*
 * fsck: rehash every blob and quarantine the damaged ones (see fsck.h).
 *
 * Hashing runs without the store lock, so the mount keeps working; a blob
 * found bad is hashed again under the exclusive lock before it moves, in
 * case a good copy was committed over it meanwhile.
 */
#include "fsck.h"

#include "layer.h"

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

struct layer_check {
	struct store *store;
	fsck_report_fn report;
	void *ctx;
	struct fsck_layer_result res;
	struct digest_list missing;
};

static int check_layer_row(const struct index_layer *layer, void *ctx)
{
	struct layer_check *c = ctx;

	if (layer->state != INDEX_LAYER_UNPACKED)
		return 0;
	c->res.checked++;
	if (layer_present(store_dir(c->store), &layer->diffid))
		return 0;
	return digest_list_append(&c->missing, &layer->diffid);
}

static int check_layer_tree(const struct digest *diffid, void *ctx)
{
	struct layer_check *c = ctx;
	struct index_layer row;
	int r = index_get_layer(store_index(c->store), diffid, &row);

	if (r != -ENOENT)
		return r; /* a row (or a failure to read it) */
	r = layer_remove(store_dir(c->store), diffid);
	if (r < 0 && r != -ENOENT)
		return r;
	c->res.unindexed++;
	c->report(diffid, "layer tree without an index row; removed", c->ctx);
	return 0;
}

int fsck_run_layers(struct store *s, fsck_report_fn report, void *ctx,
		    struct fsck_layer_result *ret)
{
	struct layer_check c = {.store = s, .report = report, .ctx = ctx};
	size_t i;
	int r = layer_recover(store_dir(s), &c.res.stray);

	if (r == 0)
		r = index_foreach_layer(store_index(s), NULL, check_layer_row, &c);
	for (i = 0; r == 0 && i < c.missing.len; i++) {
		r = index_remove_layer(store_index(s), &c.missing.items[i]);
		if (r == -ENOENT)
			r = 0;
		c.res.missing++;
		report(&c.missing.items[i], "unpacked layer tree is missing; its row dropped", ctx);
	}
	/* a tree always gets its row before it appears (layer_queue.c) */
	if (r == 0)
		r = layer_foreach(store_dir(s), check_layer_tree, &c);
	digest_list_free(&c.missing);
	*ret = c.res;
	return r;
}
