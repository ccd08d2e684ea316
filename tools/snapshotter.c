/*
 * snapshotter: snapshots with the semantics of containerd's overlayfs
 * snapshotter, and remote snapshots over the mount's layers/ (see
 * snapshotter.h). The catalogue is snapshotter_meta.c; this file owns the
 * directories, the mounts and the chain-ID match.
 */
#include "snapshotter.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapshotter_content.h"
#include "snapshotter_erofs.h"
#include "snapshotter_meta.h"

struct snap {
	sqlite3 *db;
	char *state;		      /* STATE, absolute */
	char *root;		      /* the mount, or NULL */
	struct snap_content *content; /* links to the mount's blobs, or NULL */
	struct snap_erofs erofs;      /* whether the layers' images mount here */
};

#define PATH_SIZE 4096

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool snap_key_valid(const char *key)
{
	size_t len;

	if (!key)
		return false;
	len = strnlen(key, SNAP_KEY_MAX + 1);
	return len > 0 && len <= SNAP_KEY_MAX;
}

int snap_labels_check(const struct snap_labels *labels)
{
	size_t i, j;

	if (!labels)
		return 0;
	if (labels->len > SNAP_LABELS_MAX)
		return -EINVAL;
	for (i = 0; i < labels->len; i++) {
		const struct snap_label *l = &labels->items[i];

		if (!l->key || !l->value || !*l->key ||
		    strlen(l->key) + strlen(l->value) > SNAP_LABEL_PAIR_MAX)
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (!strcmp(labels->items[j].key, l->key))
				return -EINVAL;
	}
	return 0;
}

const char *snap_labels_get(const struct snap_labels *labels, const char *key)
{
	size_t i;

	for (i = 0; labels && i < labels->len; i++)
		if (!strcmp(labels->items[i].key, key))
			return labels->items[i].value;
	return NULL;
}

void snap_labels_release(struct snap_labels *labels)
{
	size_t i;

	for (i = 0; i < labels->len; i++) {
		free(labels->items[i].key);
		free(labels->items[i].value);
	}
	free(labels->items);
	labels->items = NULL;
	labels->len = 0;
}

void snap_info_release(struct snap_info *info)
{
	free(info->name);
	free(info->parent);
	snap_labels_release(&info->labels);
	memset(info, 0, sizeof(*info));
}

void snap_mounts_release(struct snap_mounts *mounts)
{
	size_t i, j;

	for (i = 0; i < mounts->len; i++) {
		struct snap_mount *m = &mounts->items[i];

		free(m->type);
		free(m->source);
		for (j = 0; j < m->n_options; j++)
			free(m->options[j]);
		free(m->options);
	}
	free(mounts->items);
	mounts->items = NULL;
	mounts->len = 0;
}

int snap_chain_id(const char *parent_chain, const char *diff_id, char ret[DIGEST_STRING_SIZE])
{
	struct digest d;
	char buf[2 * DIGEST_STRING_SIZE + 1];
	int r, n;

	r = digest_parse(diff_id, &d);
	if (r < 0)
		return r;
	if (!parent_chain) {
		digest_format(&d, ret);
		return 0;
	}
	r = digest_parse(parent_chain, &d);
	if (r < 0)
		return r;
	n = snprintf(buf, sizeof(buf), "%s %s", parent_chain, diff_id);
	r = digest_of_buffer(buf, (size_t)n, &d);
	if (r < 0)
		return r;
	digest_format(&d, ret);
	return 0;
}

static bool is_dir_at(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

int snap_find_layer(const char *root, const char *parent_chain, const char *chain,
		    char ret_diff_id[DIGEST_STRING_SIZE])
{
	char path[PATH_SIZE], id[DIGEST_STRING_SIZE];
	struct digest d;
	struct dirent *e;
	DIR *dir;
	int r = -ENOENT;

	if (digest_parse(chain, &d) < 0 || (parent_chain && digest_parse(parent_chain, &d) < 0))
		return -EINVAL;
	if ((size_t)snprintf(path, sizeof(path), "%s/layers", root) >= sizeof(path))
		return -ENAMETOOLONG;
	dir = opendir(path);
	if (!dir)
		return errno == ENOTDIR ? -ENOENT : -errno;
	if (!parent_chain) {
		/* the first layer: its chain ID is its diff ID */
		if (is_dir_at(dirfd(dir), chain)) {
			memcpy(ret_diff_id, chain, DIGEST_STRING_SIZE);
			r = 0;
		}
		goto out_close;
	}
	while ((e = readdir(dir))) {
		if (digest_parse(e->d_name, &d) < 0 ||
		    snap_chain_id(parent_chain, e->d_name, id) < 0)
			continue;
		if (strcmp(id, chain) == 0 && is_dir_at(dirfd(dir), e->d_name)) {
			memcpy(ret_diff_id, e->d_name, DIGEST_STRING_SIZE);
			r = 0;
			break;
		}
	}
out_close:
	closedir(dir);
	return r;
}

static int snap_path(const struct snap *s, int64_t id, const char *leaf, char buf[PATH_SIZE])
{
	int n = snprintf(buf, PATH_SIZE, "%s/snapshots/%lld%s%s", s->state, (long long)id,
			 leaf ? "/" : "", leaf ? leaf : "");

	return n < 0 || n >= PATH_SIZE ? -ENAMETOOLONG : 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_SIZE];
	size_t i, len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		buf[i] = path[i];
	}
	return 0;
}

int snap_open(const char *state_dir, const char *root, struct snap **ret)
{
	struct snap *s = calloc(1, sizeof(*s));
	char path[PATH_SIZE];
	int r = -ENOMEM;

	if (!s)
		return -ENOMEM;
	s->state = realpath(state_dir, NULL);
	if (!s->state) {
		r = mkdir_p(state_dir, 0700);
		if (r < 0)
			goto out_free;
		s->state = realpath(state_dir, NULL);
		r = -errno;
		if (!s->state)
			goto out_free;
	}
	if (root && !(s->root = strdup(root)))
		goto out_free;
	r = -ENAMETOOLONG;
	if ((size_t)snprintf(path, sizeof(path), "%s/snapshots", s->state) >= sizeof(path))
		goto out_free;
	r = mkdir_p(path, 0700);
	if (r < 0)
		goto out_free;
	snprintf(path, sizeof(path), "%s/metadata.db", s->state);
	r = snap_meta_open(path, &s->db);
	if (r < 0)
		goto out_free;
	*ret = s;
	return 0;
out_free:
	snap_free(s);
	return r;
}

void snap_set_content(struct snap *s, struct snap_content *content)
{
	s->content = content;
}

void snap_free(struct snap *s)
{
	if (!s)
		return;
	if (s->db)
		snap_meta_close(s->db);
	free(s->state);
	free(s->root);
	free(s);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return (type == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf, never following a symlink (a remote snapshot's fs is one). */
static int remove_tree(const char *path)
{
	if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/*
 * STATE/snapshots/ID/{fs,work}, or for a remote snapshot fs alone: IMAGE
 * mounted (1) or a symlink to LOWER (0).
 */
static int make_dirs(struct snap *s, int64_t id, const char *lower, const char *image)
{
	char path[PATH_SIZE];
	int r;

	r = snap_path(s, id, NULL, path);
	if (r < 0)
		return r;
	if (mkdir(path, 0700) < 0)
		return -errno;
	snap_path(s, id, "fs", path);
	if (lower)
		return snap_erofs_make_fs(&s->erofs, image, lower, path);
	if (mkdir(path, 0755) < 0)
		return -errno;
	snap_path(s, id, "work", path);
	return mkdir(path, 0711) < 0 ? -errno : 0;
}

static int mount_add(struct snap_mounts *m, const char *type, const char *source, char **options,
		     size_t n_options)
{
	struct snap_mount *grown = realloc(m->items, (m->len + 1) * sizeof(*grown));
	struct snap_mount *one;
	size_t i;

	if (!grown)
		goto out_options;
	m->items = grown;
	one = &grown[m->len];
	one->type = strdup(type);
	one->source = strdup(source);
	one->options = options;
	one->n_options = n_options;
	m->len++;
	return one->type && one->source ? 0 : -ENOMEM;
out_options:
	for (i = 0; i < n_options; i++)
		free(options[i]);
	free(options);
	return -ENOMEM;
}

/* An option array of up to 4 strings (NULL ends it early). */
static int options_of(char ***ret, size_t *ret_n, const char *a, const char *b, const char *c,
		      const char *d)
{
	const char *in[] = {a, b, c, d};
	char **out = calloc(4, sizeof(*out));
	size_t n;

	if (!out)
		return -ENOMEM;
	for (n = 0; n < 4 && in[n]; n++) {
		out[n] = strdup(in[n]);
		if (!out[n]) {
			while (n--)
				free(out[n]);
			free(out);
			return -ENOMEM;
		}
	}
	*ret = out;
	*ret_n = n;
	return 0;
}

/*
 * An ancestor's fs that was its image's mount: mounted again when a restart
 * took the mount, or the symlink to its tree from now on.
 */
static int remount(struct snap *s, const struct snap_row *up, const char *fs)
{
	int r = snap_erofs_ensure(&s->erofs, up->image, up->lower, fs);

	return r == 0 ? snap_meta_clear_image(s->db, up->id) : r < 0 ? r : 0;
}

/* The fs paths of ROW's ancestors, nearest first, ':'-joined into BUF. */
static int lower_dirs(struct snap *s, const struct snap_row *row, char **ret, size_t *ret_count)
{
	size_t len = 0, cap = 0, count = 0;
	char *buf = NULL, path[PATH_SIZE];
	int64_t id = row->parent_id;
	int r = 0;

	while (id) {
		struct snap_row up;
		size_t plen;
		char *grown;

		if (count == SNAP_DEPTH_MAX) {
			r = -ELOOP;
			break;
		}
		r = snap_meta_get(s->db, NULL, id, &up, NULL);
		if (r < 0)
			break;
		snap_path(s, up.id, "fs", path);
		if (up.image && up.lower && (r = remount(s, &up, path)) < 0) {
			snap_row_release(&up);
			break;
		}
		plen = strlen(path);
		if (len + plen + 2 > cap) {
			cap = (len + plen + 2) * 2;
			grown = realloc(buf, cap);
			if (!grown) {
				snap_row_release(&up);
				r = -ENOMEM;
				break;
			}
			buf = grown;
		}
		if (len)
			buf[len++] = ':';
		memcpy(buf + len, path, plen + 1);
		len += plen;
		count++;
		id = up.parent_id;
		snap_row_release(&up);
	}
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	*ret_count = count;
	return 0;
}

/*
 * The mounts of a snapshot, as containerd's overlayfs snapshotter makes
 * them: no parent, a bind of fs (rw when active); a view of one parent, a
 * read-only bind of it; else overlay, with an upper and a workdir when
 * active, lowerdir alone for a view.
 */
static int mounts_of(struct snap *s, const struct snap_row *row, struct snap_mounts *ret)
{
	struct snap_mounts m = {0};
	char fs[PATH_SIZE], work[PATH_SIZE], *lowers = NULL, *lowerdir = NULL, *upper = NULL,
					     *workdir = NULL;
	bool active = row->kind == SNAP_KIND_ACTIVE;
	size_t count, n_options;
	char **options;
	int r;

	r = lower_dirs(s, row, &lowers, &count);
	if (r < 0)
		return r;
	snap_path(s, row->id, "fs", fs);
	snap_path(s, row->id, "work", work);
	if (count == 0 || (!active && count == 1)) {
		r = options_of(&options, &n_options, active ? "rw" : "ro", "rbind", NULL, NULL);
		if (r == 0)
			r = mount_add(&m, "bind", count ? lowers : fs, options, n_options);
		goto out;
	}
	r = -ENOMEM;
	if (asprintf(&lowerdir, "lowerdir=%s", lowers) < 0) {
		lowerdir = NULL;
		goto out;
	}
	if (active &&
	    (asprintf(&upper, "upperdir=%s", fs) < 0 || asprintf(&workdir, "workdir=%s", work) < 0))
		goto out;
	r = active ? options_of(&options, &n_options, "index=off", workdir, upper, lowerdir)
		   : options_of(&options, &n_options, "index=off", lowerdir, NULL, NULL);
	if (r == 0)
		r = mount_add(&m, "overlay", "overlay", options, n_options);
out:
	free(lowers);
	free(lowerdir);
	free(upper);
	free(workdir);
	if (r < 0)
		snap_mounts_release(&m);
	else
		*ret = m;
	return r;
}

/*
 * A remote layer for a Prepare labelled with its chain ID TARGET on the
 * committed PARENT (or none): commit it as TARGET and return -EEXIST, or
 * return 0 when the mount holds no such tree (unpack locally).
 */
static int prepare_remote(struct snap *s, const char *key, const char *target,
			  const struct snap_row *parent, const struct snap_info *parent_info,
			  const struct snap_labels *labels)
{
	char diff_id[DIGEST_STRING_SIZE], lower[PATH_SIZE], image[PATH_SIZE];
	const char *parent_chain = NULL;
	struct digest d;
	int64_t id;
	int r;

	if (!s->root || digest_parse(target, &d) < 0)
		return 0;
	if (parent) {
		parent_chain = snap_labels_get(&parent_info->labels, SNAP_LABEL_REF);
		if (!parent_chain || digest_parse(parent_chain, &d) < 0)
			return 0;
	}
	r = snap_find_layer(s->root, parent_chain, target, diff_id);
	if (r == -ENOENT || r == -EINVAL)
		return 0;
	if (r < 0)
		return r;
	/*
	 * containerd will not fetch this layer's blob: link it from the host's
	 * store and record it (also when the snapshot exists: a GC may have
	 * removed the link). Without it only docker images, save and push miss
	 * the layer, so a blob that cannot be linked does not fail the Prepare.
	 */
	if (s->content)
		snap_content_add(s->content, key, labels);
	if ((size_t)snprintf(lower, sizeof(lower), "%s/layers/%s", s->root, diff_id) >=
		    sizeof(lower) ||
	    (size_t)snprintf(image, sizeof(image), "%s" SNAP_EROFS_SUFFIX, lower) >= sizeof(image))
		return 0;
	/* recorded with the image first: a crash before its mount is one Mounts remounts */
	r = snap_meta_insert(s->db, target, parent ? parent->id : 0, SNAP_KIND_COMMITTED, lower,
			     image, labels, now_ns(), &id);
	if (r < 0)
		return r; /* -EEXIST: committed already */
	r = make_dirs(s, id, lower, image);
	if (r == 0)
		r = snap_meta_clear_image(s->db, id);
	if (r < 0) {
		snap_meta_delete(s->db, id);
		return r;
	}
	return -EEXIST;
}

int snap_prepare(struct snap *s, const char *key, const char *parent,
		 const struct snap_labels *labels, bool view, struct snap_mounts *ret)
{
	struct snap_row prow = {0}, row = {0};
	struct snap_info pinfo = {0};
	const char *target;
	bool has_parent = parent && *parent;
	int r;

	if (!snap_key_valid(key) || (has_parent && !snap_key_valid(parent)))
		return -EINVAL;
	r = snap_labels_check(labels);
	if (r < 0)
		return r;
	if (has_parent) {
		r = snap_meta_get(s->db, parent, 0, &prow, &pinfo);
		if (r < 0)
			return r;
		if (prow.kind != SNAP_KIND_COMMITTED) {
			r = -EPERM;
			goto out;
		}
	}
	r = snap_meta_get(s->db, key, 0, NULL, NULL);
	if (r != -ENOENT) {
		r = r == 0 ? -EEXIST : r;
		goto out;
	}
	target = snap_labels_get(labels, SNAP_LABEL_REF);
	if (!view && target) {
		r = prepare_remote(s, key, target, has_parent ? &prow : NULL, &pinfo, labels);
		if (r < 0)
			goto out;
	}
	r = snap_meta_insert(s->db, key, prow.id, view ? SNAP_KIND_VIEW : SNAP_KIND_ACTIVE, NULL,
			     NULL, labels, now_ns(), &row.id);
	if (r < 0)
		goto out;
	row.parent_id = prow.id;
	row.kind = view ? SNAP_KIND_VIEW : SNAP_KIND_ACTIVE;
	r = make_dirs(s, row.id, NULL, NULL);
	if (r == 0)
		r = mounts_of(s, &row, ret);
	if (r < 0) {
		char path[PATH_SIZE];

		snap_meta_delete(s->db, row.id);
		if (snap_path(s, row.id, NULL, path) == 0)
			remove_tree(path);
	}
out:
	snap_row_release(&prow);
	snap_info_release(&pinfo);
	return r;
}

int snap_mounts(struct snap *s, const char *key, struct snap_mounts *ret)
{
	struct snap_row row;
	int r;

	if (!snap_key_valid(key))
		return -EINVAL;
	r = snap_meta_get(s->db, key, 0, &row, NULL);
	if (r < 0)
		return r;
	if (row.kind == SNAP_KIND_COMMITTED) {
		/* a committed snapshot mounts read-only, as a view of itself would */
		struct snap_row as_view = {
			.id = row.id, .parent_id = row.id, .kind = SNAP_KIND_VIEW};

		r = mounts_of(s, &as_view, ret);
	} else {
		r = mounts_of(s, &row, ret);
	}
	snap_row_release(&row);
	return r;
}

int snap_commit(struct snap *s, const char *name, const char *key, const struct snap_labels *labels)
{
	struct snap_row row;
	int r;

	if (!snap_key_valid(name) || !snap_key_valid(key))
		return -EINVAL;
	r = snap_labels_check(labels);
	if (r < 0)
		return r;
	r = snap_meta_get(s->db, key, 0, &row, NULL);
	if (r < 0)
		return r;
	if (row.kind != SNAP_KIND_ACTIVE)
		r = -EPERM;
	else
		r = snap_meta_commit(s->db, row.id, name, labels, now_ns());
	snap_row_release(&row);
	return r;
}

/* STATE/snapshots/ID, its image unmounted first (nftw would go inside). */
static int remove_dirs(const struct snap *s, int64_t id)
{
	char path[PATH_SIZE];
	int r = snap_path(s, id, "fs", path);

	if (r == 0)
		r = snap_erofs_umount(path);
	if (r == 0)
		r = snap_path(s, id, NULL, path);
	return r < 0 ? r : remove_tree(path);
}

int snap_remove(struct snap *s, const char *key)
{
	struct snap_row row;
	int r;

	if (!snap_key_valid(key))
		return -EINVAL;
	r = snap_meta_get(s->db, key, 0, &row, NULL);
	if (r < 0)
		return r;
	r = snap_meta_delete(s->db, row.id);
	/* a crash before the tree is gone leaves what Cleanup removes */
	if (r == 0)
		r = remove_dirs(s, row.id);
	snap_row_release(&row);
	return r;
}

int snap_stat(struct snap *s, const char *key, struct snap_info *ret)
{
	if (!snap_key_valid(key))
		return -EINVAL;
	return snap_meta_get(s->db, key, 0, NULL, ret);
}

static int label_set(struct snap_labels *labels, const char *key, const char *value)
{
	struct snap_label *grown;
	size_t i;

	for (i = 0; i < labels->len; i++) {
		if (strcmp(labels->items[i].key, key))
			continue;
		free(labels->items[i].value);
		labels->items[i].value = NULL;
		if (!value) {
			free(labels->items[i].key);
			labels->items[i] = labels->items[--labels->len];
			return 0;
		}
		return (labels->items[i].value = strdup(value)) ? 0 : -ENOMEM;
	}
	if (!value)
		return 0;
	grown = realloc(labels->items, (labels->len + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	labels->items = grown;
	grown[labels->len].key = strdup(key);
	grown[labels->len].value = strdup(value);
	labels->len++;
	return grown[labels->len - 1].key && grown[labels->len - 1].value ? 0 : -ENOMEM;
}

int snap_update(struct snap *s, const struct snap_info *info, char *const *paths, size_t n_paths,
		struct snap_info *ret)
{
	struct snap_info cur = {0};
	struct snap_row row;
	size_t i, j;
	int r;

	if (!info || !snap_key_valid(info->name))
		return -EINVAL;
	r = snap_labels_check(&info->labels);
	if (r < 0)
		return r;
	r = snap_meta_get(s->db, info->name, 0, &row, &cur);
	if (r < 0)
		return r;
	for (i = 0; r == 0 && i < n_paths; i++) {
		if (!strcmp(paths[i], "labels")) {
			snap_labels_release(&cur.labels);
			for (j = 0; r == 0 && j < info->labels.len; j++)
				r = label_set(&cur.labels, info->labels.items[j].key,
					      info->labels.items[j].value);
		} else if (!strncmp(paths[i], "labels.", 7) && paths[i][7]) {
			r = label_set(&cur.labels, paths[i] + 7,
				      snap_labels_get(&info->labels, paths[i] + 7));
		} else {
			r = -EINVAL;
		}
	}
	if (r == 0 && n_paths == 0) {
		snap_labels_release(&cur.labels);
		for (j = 0; r == 0 && j < info->labels.len; j++)
			r = label_set(&cur.labels, info->labels.items[j].key,
				      info->labels.items[j].value);
	}
	if (r == 0)
		r = snap_labels_check(&cur.labels);
	if (r == 0)
		r = snap_meta_set_labels(s->db, row.id, &cur.labels, now_ns());
	snap_info_release(&cur);
	if (r == 0)
		r = snap_meta_get(s->db, NULL, row.id, NULL, ret);
	snap_row_release(&row);
	return r;
}

static __thread int64_t usage_size, usage_inodes;

static int usage_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	usage_size += (int64_t)st->st_blocks * 512;
	usage_inodes++;
	return 0;
}

int snap_usage(struct snap *s, const char *key, int64_t *ret_size, int64_t *ret_inodes)
{
	char path[PATH_SIZE];
	struct snap_row row;
	int r;

	if (!snap_key_valid(key))
		return -EINVAL;
	r = snap_meta_get(s->db, key, 0, &row, NULL);
	if (r < 0)
		return r;
	usage_size = usage_inodes = 0;
	if (!row.lower) {
		snap_path(s, row.id, "fs", path);
		if (nftw(path, usage_entry, 16, FTW_PHYS) < 0)
			r = -errno;
	}
	snap_row_release(&row);
	if (r == 0) {
		*ret_size = usage_size;
		*ret_inodes = usage_inodes;
	}
	return r;
}

int snap_walk(struct snap *s, int (*fn)(const struct snap_info *info, void *ctx), void *ctx)
{
	return snap_meta_walk(s->db, fn, ctx);
}

int snap_cleanup(struct snap *s)
{
	char path[PATH_SIZE];
	struct dirent *e;
	DIR *dir;
	int r = 0;

	snprintf(path, sizeof(path), "%s/snapshots", s->state);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((e = readdir(dir))) {
		char *end;
		long long id = strtoll(e->d_name, &end, 10);
		int known;

		if (*end || id <= 0)
			continue;
		known = snap_meta_exists(s->db, id);
		if (known < 0) {
			r = known;
			break;
		}
		if (!known) {
			r = remove_dirs(s, id);
			if (r < 0)
				break;
		}
	}
	closedir(dir);
	return r;
}
