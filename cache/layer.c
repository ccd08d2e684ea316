/*
 * layer: unpack a layer blob into a verified tree under layers/ (see layer.h).
 *
 * Two libarchive readers in a pipe: reader A (every filter, format "raw")
 * turns the blob into its uncompressed stream; pump_read() hashes that
 * stream as it flows into reader B (format tar only), whose entries
 * archive_write_disk extracts below a temp dir. Entry names are checked
 * and normalised here (no absolute path, no `..`, the limits), and
 * libarchive's SECURE flags refuse anything through a symlink as well.
 * Extraction works relative to the working directory, so this thread gets
 * one of its own (unshare(CLONE_FS)) set to the temp dir.
 */
#include "layer.h"
#include "layer_image.h"
#include "store.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#define PUMP_CHUNK   (128 * 1024)
#define WHITEOUT     ".wh."
#define OPAQUE	     ".wh..wh..opq"
#define OPAQUE_XATTR "trusted.overlay.opaque"
#define LAYER_PREFIX "sha256:"

void (*layer_fault_hook)(const char *tmp_dir);

void layer_limits_default(struct layer_limits *ret)
{
	ret->max_bytes = LAYER_DEFAULT_MAX_BYTES;
	ret->max_entries = LAYER_DEFAULT_MAX_ENTRIES;
	ret->max_path = LAYER_DEFAULT_MAX_PATH;
	ret->max_depth = LAYER_DEFAULT_MAX_DEPTH;
	ret->max_ms = LAYER_DEFAULT_MAX_MS;
	ret->max_total_bytes = UINT64_MAX;
	ret->room_bytes = UINT64_MAX;
	ret->stop = NULL;
}

static int path_in(const char *store_dir, const char *name, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/layers%s%s", store_dir, *name ? "/" : "", name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int layer_path(const char *store_dir, const struct digest *diffid, char *buf, size_t size)
{
	char name[DIGEST_STRING_SIZE];

	digest_format(diffid, name);
	return path_in(store_dir, name, buf, size);
}

bool layer_present(const char *store_dir, const struct digest *diffid)
{
	char path[4096];
	struct stat st;

	return layer_path(store_dir, diffid, path, sizeof(path)) == 0 && lstat(path, &st) == 0 &&
	       S_ISDIR(st.st_mode);
}

/* layers/ 0700 whatever it was, and layers/tmp/. */
static int ensure_dirs(const char *store_dir)
{
	char path[4096];
	int r = path_in(store_dir, "", path, sizeof(path));

	if (r < 0)
		return r;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (chmod(path, 0700) < 0)
		return -errno;
	r = path_in(store_dir, "tmp", path, sizeof(path));
	if (r < 0)
		return r;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP ? rmdir(path) : unlink(path))
		return errno == ENOENT ? 0 : -errno;
	return 0;
}

/* Delete a tree, not following symlinks nor crossing mounts. */
static int remove_tree(const char *path)
{
	int r = nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);

	if (r < 0)
		return errno == ENOENT ? 0 : -errno;
	return r; /* a callback's -errno */
}

/*
 * Reader B's input: reader A's output, hashed and counted on the way.
 */
struct pump {
	struct archive *a;
	struct digest_hasher *hasher;
	uint64_t bytes, max_bytes, room_bytes;
	const _Atomic bool *stop;
	uint64_t deadline_ms; /* CLOCK_MONOTONIC, or 0 */
	int err;	      /* why the stream stopped early */
	char *buf;
};

uint64_t layer_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Has the unpack run past its time? Checked per chunk, and once at the end. */
static bool pump_late(const struct pump *p)
{
	return p->deadline_ms && layer_now_ms() >= p->deadline_ms;
}

static ssize_t pump_read(struct archive *b, void *ctx, const void **ret_buf)
{
	struct pump *p = ctx;
	la_ssize_t n = archive_read_data(p->a, p->buf, PUMP_CHUNK);

	(void)b;
	if (p->stop && atomic_load(p->stop)) {
		p->err = -ECANCELED;
		return -1;
	}
	if (pump_late(p)) {
		p->err = -ETIMEDOUT;
		return -1;
	}
	if (n < 0) {
		int e = archive_errno(p->a);

		p->err = e > 0 && e != EINVAL ? -e : -EINVAL;
		return -1;
	}
	p->bytes += (uint64_t)n;
	if (p->bytes > p->max_bytes) {
		p->err = -EFBIG;
		return -1;
	}
	if (p->bytes > p->room_bytes) {
		p->err = -EDQUOT;
		return -1;
	}
	digest_hasher_update(p->hasher, p->buf, (size_t)n);
	*ret_buf = p->buf;
	return n;
}

/* Read reader A to its end (what follows the tar's end counts for the diff-id too). */
static int pump_drain(struct pump *p)
{
	const void *buf;
	ssize_t n;

	while ((n = pump_read(NULL, p, &buf)) > 0)
		;
	return n < 0 ? p->err : 0;
}

/*
 * Normalise a tar name into out: no leading "./" or "/", no empty or "."
 * components. Absolute names and `..` are refused (-EPERM); *ret_depth
 * gets the number of components.
 */
static int normalise(const char *name, const struct layer_limits *lim, char *out, size_t size,
		     unsigned *ret_depth)
{
	size_t len = 0;
	unsigned depth = 0;
	const char *p = name;

	if (!name)
		return -EINVAL;
	if (*name == '/')
		return -EPERM;
	if (strlen(name) > lim->max_path)
		return -ENAMETOOLONG;
	while (*p) {
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return -EPERM;
		if (n > NAME_MAX)
			return -ENAMETOOLONG;
		if (n && !(n == 1 && p[0] == '.')) {
			if (++depth > lim->max_depth)
				return -ELOOP;
			if (len + n + 2 > size)
				return -ENAMETOOLONG;
			if (len)
				out[len++] = '/';
			memcpy(out + len, p, n);
			len += n;
		}
		p = *end ? end + 1 : end;
	}
	out[len] = '\0';
	*ret_depth = depth;
	return 0;
}

/*
 * Drop the tar's own trusted.overlay.* and user.overlay.* xattrs (the latter
 * are overlayfs's under -o userxattr, as in a user namespace): only
 * whiteouts we make may say overlay things.
 */
static int drop_overlay_xattrs(struct archive_entry *e)
{
	struct {
		char *name;
		void *value;
		size_t size;
	} keep[64];
	size_t n = 0, i;
	const char *name;
	const void *value;
	size_t size;
	bool dropped = false;
	int r = 0;

	if (archive_entry_xattr_reset(e) == 0)
		return 0;
	while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
		if (strncmp(name, "trusted.overlay.", 16) == 0 ||
		    strncmp(name, "user.overlay.", 13) == 0) {
			dropped = true;
			continue;
		}
		if (n == sizeof(keep) / sizeof(keep[0])) {
			r = -E2BIG;
			goto out;
		}
		keep[n].name = strdup(name);
		keep[n].value = malloc(size ? size : 1);
		if (!keep[n].name || !keep[n].value) {
			free(keep[n].name);
			free(keep[n].value);
			r = -ENOMEM;
			goto out;
		}
		memcpy(keep[n].value, value, size);
		keep[n++].size = size;
	}
	if (dropped) {
		archive_entry_xattr_clear(e);
		for (i = 0; i < n; i++)
			archive_entry_xattr_add_entry(e, keep[i].name, keep[i].value, keep[i].size);
	}
out:
	for (i = 0; i < n; i++) {
		free(keep[i].name);
		free(keep[i].value);
	}
	return r;
}

/* Map a failed archive_write_* call to an errno: libarchive's own refusals are -EPERM. */
static int write_errno(struct archive *w)
{
	int e = archive_errno(w);

	return e > 0 ? -e : -EPERM;
}

/* Directories that `.wh..wh..opq` marked, set opaque once everything is written. */
struct opaque_list {
	char **paths;
	size_t len, cap;
};

static int opaque_add(struct opaque_list *l, const char *path)
{
	if (l->len == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		char **p = realloc(l->paths, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->paths = p;
		l->cap = cap;
	}
	l->paths[l->len] = strdup(path);
	return l->paths[l->len++] ? 0 : -ENOMEM;
}

static void opaque_free(struct opaque_list *l)
{
	for (size_t i = 0; i < l->len; i++)
		free(l->paths[i]);
	free(l->paths);
}

/* Set the opaque xattr on root_fd/path, a directory reached through no symlink. */
static int opaque_apply(int root_fd, const char *path)
{
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, root_fd, *path ? path : ".", &how, sizeof(how)), r = 0;

	if (fd < 0)
		return errno == ELOOP || errno == EXDEV ? -EPERM : -errno;
	if (fsetxattr(fd, OPAQUE_XATTR, "y", 1, 0) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* Write one made-up entry (a whiteout, or a directory an opaque marker needs). */
static int write_synthetic(struct archive *w, const char *path, mode_t type, time_t mtime)
{
	struct archive_entry *e = archive_entry_new();
	int r = 0;

	if (!e)
		return -ENOMEM;
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0);
	archive_entry_set_rdev(e, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_mtime(e, mtime, 0);
	if (archive_write_header(w, e) < ARCHIVE_WARN ||
	    archive_write_finish_entry(w) < ARCHIVE_WARN)
		r = write_errno(w);
	archive_entry_free(e);
	return r;
}

struct unpack {
	const struct layer_limits *lim;
	struct archive *b, *w;
	struct pump *pump;
	struct opaque_list opaque;
	int root_fd;
	uint64_t entries, file_bytes;
	char path[PATH_MAX], link[PATH_MAX];
};

static int copy_data(struct unpack *u)
{
	const void *buf;
	size_t size;
	la_int64_t offset;
	int r;

	while ((r = archive_read_data_block(u->b, &buf, &size, &offset)) == ARCHIVE_OK) {
		if (archive_write_data_block(u->w, buf, size, offset) < ARCHIVE_OK)
			return write_errno(u->w);
	}
	if (r != ARCHIVE_EOF)
		return u->pump->err ? u->pump->err : -EINVAL;
	return 0;
}

/* One tar entry: checked, renamed for whiteouts, extracted. */
static int unpack_entry(struct unpack *u, struct archive_entry *e)
{
	const char *base;
	unsigned depth;
	int r;

	if (++u->entries > u->lim->max_entries)
		return -E2BIG;
	r = normalise(archive_entry_pathname(e), u->lim, u->path, sizeof(u->path), &depth);
	if (r < 0)
		return r;
	if (depth == 0)
		return 0; /* the root itself: the tree's root stays 0755 root:root */
	if (archive_entry_hardlink(e)) {
		unsigned link_depth;

		r = normalise(archive_entry_hardlink(e), u->lim, u->link, sizeof(u->link),
			      &link_depth);
		if (r < 0)
			return r;
		if (link_depth == 0)
			return -EPERM;
		archive_entry_set_hardlink(e, u->link);
	}
	if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0) {
		u->file_bytes += (uint64_t)archive_entry_size(e);
		if (u->file_bytes > u->lim->max_bytes)
			return -EFBIG;
		if (u->file_bytes > u->lim->room_bytes)
			return -EDQUOT; /* before a byte of it is written */
	}
	base = strrchr(u->path, '/');
	base = base ? base + 1 : u->path;
	if (strcmp(base, OPAQUE) == 0) {
		u->path[base == u->path ? 0 : base - u->path - 1] = '\0';
		r = opaque_add(&u->opaque, u->path);
		if (r == 0 && *u->path && faccessat(u->root_fd, u->path, F_OK, AT_SYMLINK_NOFOLLOW))
			r = write_synthetic(u->w, u->path, AE_IFDIR, archive_entry_mtime(e));
		return r;
	}
	if (strncmp(base, WHITEOUT, strlen(WHITEOUT)) == 0) {
		const char *name = base + strlen(WHITEOUT);

		if (strncmp(name, WHITEOUT, strlen(WHITEOUT)) == 0)
			return 0; /* other aufs metadata (.wh..wh.plnk ...): nothing for overlayfs
				   */
		if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			return -EPERM;
		memmove(u->path + (base - u->path), name, strlen(name) + 1);
		return write_synthetic(u->w, u->path, AE_IFCHR, archive_entry_mtime(e));
	}
	archive_entry_set_pathname(e, u->path);
	r = drop_overlay_xattrs(e);
	if (r < 0)
		return r;
	if (archive_write_header(u->w, e) < ARCHIVE_WARN)
		return write_errno(u->w);
	r = copy_data(u);
	if (r < 0)
		return r;
	return archive_write_finish_entry(u->w) < ARCHIVE_WARN ? write_errno(u->w) : 0;
}

#define EXTRACT_FLAGS                                                                              \
	(ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |                     \
	 ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_NODOTDOT |                                 \
	 ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS)

/* Extract the stream of reader A below root_fd, the current directory. */
static int extract(struct pump *pump, int root_fd, const struct layer_limits *lim)
{
	struct unpack *u = calloc(1, sizeof(*u));
	struct archive_entry *e;
	int r = 0, ar;
	size_t i;

	if (!u)
		return -ENOMEM;
	u->lim = lim;
	u->pump = pump;
	u->root_fd = root_fd;
	u->b = archive_read_new();
	u->w = archive_write_disk_new();
	if (!u->b || !u->w) {
		r = -ENOMEM;
		goto out;
	}
	archive_read_support_format_tar(u->b);
	archive_write_disk_set_options(u->w, EXTRACT_FLAGS);
	if (archive_read_open(u->b, pump, NULL, pump_read, NULL) != ARCHIVE_OK) {
		r = pump->err ? pump->err : -EINVAL;
		goto out;
	}
	while ((ar = archive_read_next_header(u->b, &e)) != ARCHIVE_EOF) {
		if (ar < ARCHIVE_WARN) {
			r = pump->err ? pump->err : -EINVAL;
			goto out;
		}
		r = unpack_entry(u, e);
		if (r < 0)
			goto out;
	}
	if (archive_write_close(u->w) < ARCHIVE_WARN) {
		r = write_errno(u->w);
		goto out;
	}
	for (i = 0; r == 0 && i < u->opaque.len; i++)
		r = opaque_apply(root_fd, u->opaque.paths[i]);
out:
	archive_write_free(u->w);
	archive_read_free(u->b);
	opaque_free(&u->opaque);
	free(u);
	return r;
}

/* Open reader A over the blob and step to its one raw entry. */
static int open_stream(int blob_fd, struct archive **ret)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;

	if (!a)
		return -ENOMEM;
	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	if (archive_read_open_fd(a, blob_fd, PUMP_CHUNK) != ARCHIVE_OK ||
	    archive_read_next_header(a, &e) != ARCHIVE_OK) {
		archive_read_free(a);
		return -EINVAL;
	}
	*ret = a;
	return 0;
}

/* Extract into the temp dir tmp_fd (this thread's cwd meanwhile) and verify the diff-id. */
static int unpack_into(int blob_fd, int tmp_fd, const struct digest *diffid,
		       const struct layer_limits *lim, uint64_t *ret_bytes)
{
	struct pump pump = {.max_bytes = lim->max_bytes,
			    .room_bytes = lim->room_bytes,
			    .stop = lim->stop,
			    .deadline_ms = lim->max_ms ? layer_now_ms() + lim->max_ms : 0};
	struct digest actual;
	int cwd_fd, r;

	if (unshare(CLONE_FS) < 0)
		return -errno;
	cwd_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd_fd < 0)
		return -errno;
	if (fchdir(tmp_fd) < 0) {
		r = -errno;
		goto out_cwd;
	}
	pump.buf = malloc(PUMP_CHUNK);
	r = pump.buf ? digest_hasher_new(&pump.hasher) : -ENOMEM;
	if (r == 0)
		r = open_stream(blob_fd, &pump.a);
	if (r == 0) {
		r = extract(&pump, tmp_fd, lim);
		if (r == 0)
			r = pump_drain(&pump);
		if (r == 0 && pump_late(&pump))
			r = -ETIMEDOUT;
		archive_read_free(pump.a);
	}
	if (r == 0) {
		digest_hasher_final(pump.hasher, &actual);
		r = digest_equal(&actual, diffid) ? 0 : -EBADMSG;
		*ret_bytes = pump.bytes;
	}
	digest_hasher_free(pump.hasher);
	free(pump.buf);
	if (fchdir(cwd_fd) < 0 && r == 0)
		r = -errno;
out_cwd:
	close(cwd_fd);
	return r;
}

int layer_unpack(const char *store_dir, int blob_fd, const struct digest *diffid,
		 const struct layer_limits *limits, uint64_t *ret_bytes)
{
	char tmp[4096], final[4096], layers[4096];
	uint64_t bytes = 0;
	int tmp_fd, r;

	if (layer_present(store_dir, diffid))
		return ret_bytes ? (*ret_bytes = 0, 0) : 0;
	r = ensure_dirs(store_dir);
	if (r < 0)
		return r;
	r = path_in(store_dir, "", layers, sizeof(layers));
	if (r == 0)
		r = layer_path(store_dir, diffid, final, sizeof(final));
	if (r == 0)
		r = layer_tmp_create(store_dir, diffid->hex, tmp, sizeof(tmp), &tmp_fd);
	if (r < 0)
		return r;
	if (fchmod(tmp_fd, 0755) < 0) {
		r = -errno;
		goto out_remove;
	}
	r = unpack_into(blob_fd, tmp_fd, diffid, limits, &bytes);
	if (r < 0)
		goto out_remove;
	if (layer_fault_hook)
		layer_fault_hook(tmp);
	if (syncfs(tmp_fd) < 0) {
		r = -errno;
		goto out_remove;
	}
	if (rename(tmp, final) < 0) {
		r = errno == EEXIST || errno == ENOTEMPTY ? 0 : -errno; /* someone else's won */
		goto out_remove;
	}
	close(tmp_fd);
	r = store_fsync_dir_at(AT_FDCWD, layers);
	if (r < 0)
		return r;
	if (ret_bytes)
		*ret_bytes = bytes;
	return 0;
out_remove:
	close(tmp_fd);
	remove_tree(tmp);
	return r;
}

int layer_tmp_create(const char *store_dir, const char *name, char *buf, size_t size, int *ret_fd)
{
	int n = snprintf(buf, size, "%s/layers/tmp/%s.XXXXXX", store_dir, name), fd, r, tries;
	struct stat st;

	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	/* a layer_recover() between mkdtemp and flock deletes the dir: make another */
	for (tries = 0; tries < 8; tries++) {
		snprintf(buf, size, "%s/layers/tmp/%s.XXXXXX", store_dir, name);
		if (!mkdtemp(buf))
			return -errno;
		fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		/* held by the caller until it is done: layer_recover() leaves a live one alone */
		if (fd < 0 || flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0) {
			r = -errno;
			if (fd >= 0)
				close(fd);
			rmdir(buf);
			return r;
		}
		if (st.st_nlink > 0) {
			*ret_fd = fd;
			return 0;
		}
		close(fd);
	}
	return -EAGAIN;
}

/* Rename the tree into a fresh dir name under tmp/, which *tmp gets. */
static int detach(const char *store_dir, const struct digest *diffid, char *tmp, size_t size)
{
	char final[4096];
	int r = layer_path(store_dir, diffid, final, sizeof(final));

	if (r == 0)
		r = ensure_dirs(store_dir);
	if (r == 0) { /* the image first: it never outlives its tree */
		r = layer_image_remove(store_dir, diffid);
		if (r == -ENOENT)
			r = 0;
	}
	if (r == 0)
		r = path_in(store_dir, "tmp/gone.XXXXXX", tmp, size);
	if (r < 0)
		return r;
	if (!mkdtemp(tmp))
		return -errno;
	/* rename over the empty temp dir: the tree vanishes from layers/ at once */
	if (rename(final, tmp) < 0) {
		r = -errno;
		rmdir(tmp);
		return r;
	}
	return 0;
}

int layer_detach(const char *store_dir, const struct digest *diffid)
{
	char tmp[4096];

	return detach(store_dir, diffid, tmp, sizeof(tmp));
}

int layer_remove(const char *store_dir, const struct digest *diffid)
{
	char tmp[4096];
	int r = detach(store_dir, diffid, tmp, sizeof(tmp));

	return r < 0 ? r : remove_tree(tmp);
}

int layer_foreach(const char *store_dir, layer_fn fn, void *ctx)
{
	char path[4096];
	struct dirent *de;
	DIR *dir;
	int r = path_in(store_dir, "", path, sizeof(path));

	if (r < 0)
		return r;
	dir = opendir(path);
	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	while (r == 0 && (de = readdir(dir))) {
		struct digest d;

		if (strncmp(de->d_name, LAYER_PREFIX, strlen(LAYER_PREFIX)) == 0 &&
		    digest_parse(de->d_name, &d) == 0)
			r = fn(&d, ctx);
	}
	closedir(dir);
	return r;
}

int layer_recover(const char *store_dir, int64_t *ret_removed)
{
	char path[4096], entry[4096 + 256];
	struct dirent *de;
	int64_t removed = 0;
	DIR *dir;
	int r = ensure_dirs(store_dir);

	if (r == 0)
		r = path_in(store_dir, "tmp", path, sizeof(path));
	if (r < 0)
		return r;
	dir = opendir(path);
	if (!dir)
		return -errno;
	while (r == 0 && (de = readdir(dir))) {
		int fd;
		bool live;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(entry, sizeof(entry), "%s/%s", path, de->d_name);
		fd = open(entry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		live = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
		if (fd >= 0)
			close(fd);
		if (live)
			continue;
		r = fd < 0 && errno != ENOTDIR && errno != ELOOP ? -errno : 0;
		if (r == 0)
			r = fd >= 0 ? remove_tree(entry) : (unlink(entry) < 0 ? -errno : 0);
		if (r == 0)
			removed++;
	}
	closedir(dir);
	if (r == 0) {
		int64_t images = 0;

		r = layer_image_prune(store_dir, &images);
		removed += images;
	}
	if (ret_removed)
		*ret_removed = removed;
	return r;
}
