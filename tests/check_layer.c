/*
 * Unit tests for cache/layer: layer blobs made with libarchive's writer
 * unpack into trees with the tar's metadata and overlayfs whiteouts; a
 * hostile layer gets the documented errno and leaves nothing behind.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <check.h>

#include "layer.h"
#include "testutil.h"

static char *dir;
static struct layer_limits limits;

static void setup(void)
{
	dir = test_mkdtemp();
	layer_limits_default(&limits);
}

static void teardown(void)
{
	test_rmdir(dir);
}

/* One tar entry to make. */
struct spec {
	mode_t type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, or 0 for a hard link */
	const char *path;
	mode_t perm;
	uid_t uid;
	gid_t gid;
	const char *data; /* content, or the target of a link */
	const char *xattr_name, *xattr_value;
};

#define TAR_MAX (4 << 20)

/* A tar of the entries into a malloc'ed buffer; *ret_len gets its size. */
static unsigned char *make_tar(const struct spec *specs, size_t n, size_t *ret_len)
{
	unsigned char *buf = malloc(TAR_MAX);
	struct archive *a = archive_write_new();
	size_t used = 0, i;

	ck_assert_ptr_nonnull(buf);
	archive_write_set_format_pax_restricted(a);
	ck_assert_int_eq(archive_write_open_memory(a, buf, TAR_MAX, &used), ARCHIVE_OK);
	for (i = 0; i < n; i++) {
		const struct spec *sp = &specs[i];
		struct archive_entry *e = archive_entry_new();
		size_t len = sp->data && sp->type == AE_IFREG ? strlen(sp->data) : 0;

		archive_entry_set_pathname(e, sp->path);
		archive_entry_set_mtime(e, 1700000000 + (time_t)i, 0);
		archive_entry_set_uid(e, sp->uid);
		archive_entry_set_gid(e, sp->gid);
		archive_entry_set_perm(e, sp->perm);
		if (sp->type == 0) {
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_hardlink(e, sp->data);
		} else {
			archive_entry_set_filetype(e, sp->type);
		}
		if (sp->type == AE_IFLNK)
			archive_entry_set_symlink(e, sp->data);
		archive_entry_set_size(e, (la_int64_t)len);
		if (sp->xattr_name)
			archive_entry_xattr_add_entry(e, sp->xattr_name, sp->xattr_value,
						      strlen(sp->xattr_value));
		ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
		if (len)
			ck_assert_int_eq(archive_write_data(a, sp->data, len), (la_ssize_t)len);
		archive_entry_free(e);
	}
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*ret_len = used;
	return buf;
}

/* Write a blob to a file under dir and open it. */
static int blob_fd(const void *data, size_t len)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/blob", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* Unpack the tar of specs (gzipped if asked) against its own diff-id. */
static int unpack_specs(const struct spec *specs, size_t n, bool gzipped, struct digest *ret_diffid)
{
	size_t len, zlen;
	unsigned char *tar = make_tar(specs, n, &len), *z = NULL;
	struct digest diffid = test_digest_of(tar, len);
	int fd, r;

	if (gzipped)
		z = test_gzip(tar, len, &zlen);
	fd = gzipped ? blob_fd(z, zlen) : blob_fd(tar, len);
	r = layer_unpack(dir, fd, &diffid, &limits, NULL);
	close(fd);
	free(tar);
	free(z);
	*ret_diffid = diffid;
	return r;
}

static void tree_path(const struct digest *diffid, const char *rel, char *buf, size_t size)
{
	char root[2048];

	ck_assert_int_eq(layer_path(dir, diffid, root, sizeof(root)), 0);
	snprintf(buf, size, "%s/%s", root, rel);
}

/* Nothing under layers/ but an empty tmp/ and n trees. */
static void assert_nothing_kept_but(int n)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/layers", dir);
	ck_assert_int_eq(test_count_entries(path), 1 + n);
	snprintf(path, sizeof(path), "%s/layers/tmp", dir);
	ck_assert_int_eq(test_count_entries(path), 0);
}

static void assert_nothing_kept(void)
{
	assert_nothing_kept_but(0);
}

START_TEST(test_tree_keeps_the_tar_metadata)
{
	const struct spec specs[] = {
		{AE_IFDIR, "./usr/", 0755, 0, 0, NULL, NULL, NULL},
		{AE_IFDIR, "./usr/bin/", 0750, 0, 10, NULL, NULL, NULL},
		{AE_IFREG, "./usr/bin/tool", 04755, 1000, 1001, "#!/bin/sh\necho hi\n", "user.note",
		 "kept"},
		{0, "./usr/bin/tool-link", 04755, 1000, 1001, "usr/bin/tool", NULL, NULL},
		{AE_IFLNK, "./usr/bin/sh", 0777, 0, 0, "/bin/../etc/elsewhere", NULL, NULL},
		{AE_IFDIR, "./locked", 0000, 7, 8, NULL, NULL, NULL},
	};
	struct digest diffid;
	char path[4096], link[4096], buf[64];
	struct stat st, st2;
	ssize_t n;
	int fd;

	ck_assert_int_eq(unpack_specs(specs, 6, true, &diffid), 0);
	ck_assert(layer_present(dir, &diffid));
	tree_path(&diffid, "usr/bin/tool", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_mode, S_IFREG | 04755);
	ck_assert_int_eq(st.st_uid, 1000);
	ck_assert_int_eq(st.st_gid, 1001);
	ck_assert_int_eq(st.st_mtime, 1700000002);
	ck_assert_int_eq(st.st_nlink, 2);
	fd = open(path, O_RDONLY);
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 18);
	close(fd);
	ck_assert_int_eq(memcmp(buf, "#!/bin/sh\necho hi\n", 18), 0);
	n = lgetxattr(path, "user.note", buf, sizeof(buf));
	ck_assert_int_eq(n, 4);
	ck_assert_int_eq(memcmp(buf, "kept", 4), 0);
	tree_path(&diffid, "usr/bin/tool-link", link, sizeof(link));
	ck_assert_int_eq(lstat(link, &st2), 0);
	ck_assert_int_eq(st2.st_ino, st.st_ino);
	tree_path(&diffid, "usr/bin", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_mode, S_IFDIR | 0750);
	ck_assert_int_eq(st.st_gid, 10);
	ck_assert_int_eq(st.st_mtime, 1700000001);
	tree_path(&diffid, "usr/bin/sh", path, sizeof(path));
	n = readlink(path, link, sizeof(link));
	ck_assert_int_eq(n, 21);
	ck_assert_int_eq(memcmp(link, "/bin/../etc/elsewhere", 21), 0);
	tree_path(&diffid, "locked", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_mode, S_IFDIR | 0000);
	ck_assert_int_eq(st.st_uid, 7);
	tree_path(&diffid, "", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_mode, S_IFDIR | 0755);
	snprintf(path, sizeof(path), "%s/layers", dir);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_mode, S_IFDIR | 0700);
}
END_TEST

START_TEST(test_whiteouts_become_overlayfs_ones)
{
	const struct spec specs[] = {
		{AE_IFDIR, "etc/", 0755, 0, 0, NULL, NULL, NULL},
		{AE_IFREG, "etc/.wh.gone.conf", 0644, 0, 0, "", NULL, NULL},
		{AE_IFDIR, "var/cache/", 0755, 0, 0, NULL, NULL, NULL},
		{AE_IFREG, "var/cache/.wh..wh..opq", 0644, 0, 0, "", NULL, NULL},
		{AE_IFREG, "var/cache/fresh", 0644, 0, 0, "new\n", NULL, NULL},
		{AE_IFREG, "opt/made/.wh..wh..opq", 0644, 0, 0, "", NULL, NULL},
		{AE_IFREG, ".wh.toplevel", 0644, 0, 0, "", NULL, NULL},
		{AE_IFREG, "etc/forged", 0644, 0, 0, "x", "trusted.overlay.redirect", "/etc"},
	};
	struct digest diffid;
	char path[4096], buf[8];
	struct stat st;

	ck_assert_int_eq(unpack_specs(specs, 8, false, &diffid), 0);
	tree_path(&diffid, "etc/gone.conf", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISCHR(st.st_mode));
	ck_assert_int_eq(st.st_rdev, makedev(0, 0));
	tree_path(&diffid, "etc/.wh.gone.conf", path, sizeof(path));
	ck_assert(!test_path_exists(path));
	tree_path(&diffid, "toplevel", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISCHR(st.st_mode));
	tree_path(&diffid, "var/cache", path, sizeof(path));
	ck_assert_int_eq(lgetxattr(path, "trusted.overlay.opaque", buf, sizeof(buf)), 1);
	ck_assert_int_eq(buf[0], 'y');
	ck_assert_int_eq(test_count_entries(path), 1); /* fresh, no marker */
	tree_path(&diffid, "opt/made", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_mode, S_IFDIR | 0755);
	ck_assert_int_eq(lgetxattr(path, "trusted.overlay.opaque", buf, sizeof(buf)), 1);
	tree_path(&diffid, "etc", path, sizeof(path));
	ck_assert_int_eq(lgetxattr(path, "trusted.overlay.opaque", buf, sizeof(buf)), -1);
	ck_assert_int_eq(errno, ENODATA);
	tree_path(&diffid, "etc/forged", path, sizeof(path));
	ck_assert_int_eq(lgetxattr(path, "trusted.overlay.redirect", buf, sizeof(buf)), -1);
	ck_assert_int_eq(errno, ENODATA);
}
END_TEST

/* One hostile entry after a harmless one: errno, nothing kept, nothing outside. */
static void assert_refused(const struct spec *bad, int expected)
{
	struct spec specs[2] = {{AE_IFREG, "fine", 0644, 0, 0, "ok", NULL, NULL}, *bad};
	struct digest diffid;

	ck_assert_int_eq(unpack_specs(specs, 2, true, &diffid), expected);
	ck_assert(!layer_present(dir, &diffid));
	assert_nothing_kept();
}

START_TEST(test_dotdot_is_refused)
{
	struct spec bad = {AE_IFREG, "a/../../escaped", 0644, 0, 0, "x", NULL, NULL};
	char path[4096];

	assert_refused(&bad, -EPERM);
	snprintf(path, sizeof(path), "%s/escaped", dir);
	ck_assert(!test_path_exists(path));
}
END_TEST

START_TEST(test_absolute_path_is_refused)
{
	struct spec bad = {AE_IFREG, "/abs-escaped", 0644, 0, 0, "x", NULL, NULL};

	assert_refused(&bad, -EPERM);
	ck_assert(!test_path_exists("/abs-escaped"));
}
END_TEST

START_TEST(test_hardlink_out_is_refused)
{
	struct spec bad = {0, "link", 0644, 0, 0, "../../blob", NULL, NULL};
	struct spec abs = {0, "link", 0644, 0, 0, "/etc/passwd", NULL, NULL};

	assert_refused(&bad, -EPERM);
	assert_refused(&abs, -EPERM);
}
END_TEST

START_TEST(test_symlink_escape_is_refused)
{
	char outside[2048], target[4096];
	struct spec specs[] = {
		{AE_IFLNK, "sneaky", 0777, 0, 0, outside, NULL, NULL},
		{AE_IFREG, "sneaky/pwned", 0644, 0, 0, "x", NULL, NULL},
	};
	struct spec wh[] = {
		{AE_IFLNK, "sneaky", 0777, 0, 0, outside, NULL, NULL},
		{AE_IFREG, "sneaky/.wh.victim", 0644, 0, 0, "", NULL, NULL},
	};
	struct spec opq[] = {
		{AE_IFLNK, "sneaky", 0777, 0, 0, outside, NULL, NULL},
		{AE_IFREG, "sneaky/.wh..wh..opq", 0644, 0, 0, "", NULL, NULL},
	};
	struct digest diffid;

	snprintf(outside, sizeof(outside), "%s/outside", dir);
	ck_assert_int_eq(mkdir(outside, 0755), 0);
	ck_assert_int_eq(unpack_specs(specs, 2, false, &diffid), -EPERM);
	snprintf(target, sizeof(target), "%s/pwned", outside);
	ck_assert(!test_path_exists(target));
	ck_assert_int_eq(unpack_specs(wh, 2, false, &diffid), -EPERM);
	snprintf(target, sizeof(target), "%s/victim", outside);
	ck_assert(!test_path_exists(target));
	ck_assert_int_eq(unpack_specs(opq, 2, false, &diffid), -EPERM);
	ck_assert_int_eq(lgetxattr(outside, "trusted.overlay.opaque", target, 1), -1);
	ck_assert_int_eq(errno, ENODATA);
	assert_nothing_kept();
}
END_TEST

/* A hard link through a symlink to a file outside, or to a directory: -EPERM, the outside file
 * untouched. */
START_TEST(test_hardlink_through_symlink_is_refused)
{
	char outside[2048], secret[4096];
	struct spec specs[] = {
		{AE_IFLNK, "a", 0777, 0, 0, outside, NULL, NULL},
		{0, "h", 0644, 0, 0, "a/secret", NULL, NULL},
	};
	struct spec to_dir[] = {
		{AE_IFDIR, "d", 0755, 0, 0, NULL, NULL, NULL},
		{0, "h", 0644, 0, 0, "d", NULL, NULL},
	};
	struct digest diffid;
	struct stat st;
	int fd;

	snprintf(outside, sizeof(outside), "%s/outside", dir);
	ck_assert_int_eq(mkdir(outside, 0755), 0);
	snprintf(secret, sizeof(secret), "%s/secret", outside);
	fd = open(secret, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(unpack_specs(specs, 2, false, &diffid), -EPERM);
	ck_assert_int_eq(stat(secret, &st), 0);
	ck_assert_int_eq(st.st_nlink, 1);
	ck_assert_int_eq(unpack_specs(to_dir, 2, false, &diffid), -EPERM);
	assert_nothing_kept();
}
END_TEST

/* A hard link to a symlink links the symlink itself (never what it points at). */
START_TEST(test_hardlink_to_symlink_links_the_symlink)
{
	const struct spec specs[] = {
		{AE_IFLNK, "s", 0777, 0, 0, "/etc/passwd", NULL, NULL},
		{0, "h", 0644, 0, 0, "s", NULL, NULL},
	};
	struct digest diffid;
	char path[4096], target[64];
	struct stat st, before;

	ck_assert_int_eq(stat("/etc/passwd", &before), 0);
	ck_assert_int_eq(unpack_specs(specs, 2, false, &diffid), 0);
	tree_path(&diffid, "h", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
	ck_assert_int_eq(st.st_nlink, 2);
	ck_assert_int_eq(readlink(path, target, sizeof(target)), 11);
	ck_assert_int_eq(memcmp(target, "/etc/passwd", 11), 0);
	ck_assert_int_eq(stat("/etc/passwd", &st), 0);
	ck_assert_int_eq(st.st_nlink, before.st_nlink);
}
END_TEST

/* Whiteouts naming nothing (`.wh.`, `.wh..`, `.wh...`): -EPERM. */
START_TEST(test_empty_whiteout_names_are_refused)
{
	struct spec empty = {AE_IFREG, "d/.wh.", 0644, 0, 0, "", NULL, NULL};
	struct spec dot = {AE_IFREG, ".wh..", 0644, 0, 0, "", NULL, NULL};
	struct spec dotdot = {AE_IFREG, "d/.wh...", 0644, 0, 0, "", NULL, NULL};

	assert_refused(&empty, -EPERM);
	assert_refused(&dot, -EPERM);
	assert_refused(&dotdot, -EPERM);
}
END_TEST

/* A whiteout then a file of the same name: the later entry wins, as in the tar's order. */
START_TEST(test_whiteout_then_file_keeps_the_file)
{
	const struct spec specs[] = {
		{AE_IFREG, ".wh.x", 0644, 0, 0, "", NULL, NULL},
		{AE_IFREG, "x", 0644, 0, 0, "data", NULL, NULL},
		{AE_IFREG, "y", 0644, 0, 0, "data", NULL, NULL},
		{AE_IFREG, ".wh.y", 0644, 0, 0, "", NULL, NULL},
	};
	struct digest diffid;
	char path[4096];
	struct stat st;

	ck_assert_int_eq(unpack_specs(specs, 4, false, &diffid), 0);
	tree_path(&diffid, "x", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_size, 4);
	tree_path(&diffid, "y", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISCHR(st.st_mode));
	ck_assert_int_eq(st.st_rdev, makedev(0, 0));
}
END_TEST

/* Opaque markers in the root, at depth and twice: each directory opaque once, nothing else. */
START_TEST(test_opaque_markers_anywhere)
{
	const struct spec specs[] = {
		{AE_IFREG, ".wh..wh..opq", 0644, 0, 0, "", NULL, NULL},
		{AE_IFREG, "a/b/c/.wh..wh..opq", 0644, 0, 0, "", NULL, NULL},
		{AE_IFREG, "a/b/c/.wh..wh..opq", 0644, 0, 0, "", NULL, NULL},
	};
	struct digest diffid;
	char path[4096], value[4];

	ck_assert_int_eq(unpack_specs(specs, 3, false, &diffid), 0);
	tree_path(&diffid, "", path, sizeof(path));
	ck_assert_int_eq(lgetxattr(path, "trusted.overlay.opaque", value, sizeof(value)), 1);
	ck_assert_int_eq(value[0], 'y');
	tree_path(&diffid, "a/b/c", path, sizeof(path));
	ck_assert_int_eq(lgetxattr(path, "trusted.overlay.opaque", value, sizeof(value)), 1);
	ck_assert_int_eq(test_count_entries(path), 0);
	tree_path(&diffid, "a/b", path, sizeof(path));
	ck_assert_int_eq(lgetxattr(path, "trusted.overlay.opaque", value, sizeof(value)), -1);
	ck_assert_int_eq(errno, ENODATA);
}
END_TEST

/* A layer's own user.overlay.* xattrs (overlayfs -o userxattr) are dropped like trusted.overlay.*.
 */
START_TEST(test_user_overlay_xattrs_are_dropped)
{
	const struct spec specs[] = {
		{AE_IFDIR, "d", 0755, 0, 0, NULL, "user.overlay.opaque", "y"},
		{AE_IFREG, "f", 0644, 0, 0, "x", "user.overlay.redirect", "/etc"},
		{AE_IFREG, "g", 0644, 0, 0, "x", "user.kept", "v"},
	};
	struct digest diffid;
	char path[4096], value[8];

	ck_assert_int_eq(unpack_specs(specs, 3, false, &diffid), 0);
	tree_path(&diffid, "d", path, sizeof(path));
	ck_assert_int_eq(lgetxattr(path, "user.overlay.opaque", value, sizeof(value)), -1);
	ck_assert_int_eq(errno, ENODATA);
	tree_path(&diffid, "f", path, sizeof(path));
	ck_assert_int_eq(lgetxattr(path, "user.overlay.redirect", value, sizeof(value)), -1);
	ck_assert_int_eq(errno, ENODATA);
	tree_path(&diffid, "g", path, sizeof(path));
	ck_assert_int_eq(lgetxattr(path, "user.kept", value, sizeof(value)), 1);
}
END_TEST

/* A file, then a dir of the same name, then a file again: the last one stands. */
START_TEST(test_duplicate_entries_last_wins)
{
	const struct spec specs[] = {
		{AE_IFREG, "n", 0644, 0, 0, "one", NULL, NULL},
		{AE_IFDIR, "n", 0755, 0, 0, NULL, NULL, NULL},
		{AE_IFREG, "n/inner", 0644, 0, 0, "x", NULL, NULL},
		{AE_IFDIR, "m", 0755, 0, 0, NULL, NULL, NULL},
		{AE_IFREG, "m", 0644, 0, 0, "three", NULL, NULL},
	};
	struct digest diffid;
	char path[4096];
	struct stat st;

	ck_assert_int_eq(unpack_specs(specs, 5, false, &diffid), 0);
	tree_path(&diffid, "n/inner", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	tree_path(&diffid, "m", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_size, 5);
}
END_TEST

/* A mode 0000 directory with files below: the unpack finishes and the tree can be removed. */
START_TEST(test_mode_0000_dir_unpacks_and_removes)
{
	const struct spec specs[] = {
		{AE_IFDIR, "locked", 0000, 0, 0, NULL, NULL, NULL},
		{AE_IFREG, "locked/f", 0000, 0, 0, "x", NULL, NULL},
	};
	struct digest diffid;
	char path[4096];
	struct stat st;

	ck_assert_int_eq(unpack_specs(specs, 2, false, &diffid), 0);
	tree_path(&diffid, "locked", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0);
	ck_assert_int_eq(layer_remove(dir, &diffid), 0);
	assert_nothing_kept();
}
END_TEST

START_TEST(test_diffid_mismatch_keeps_nothing)
{
	const struct spec specs[] = {{AE_IFREG, "file", 0644, 0, 0, "content", NULL, NULL}};
	size_t len, zlen;
	unsigned char *tar = make_tar(specs, 1, &len), *z = test_gzip(tar, len, &zlen);
	struct digest compressed = test_digest_of(z, zlen);
	int fd = blob_fd(z, zlen);

	/* the blob's own digest is not its diff-id */
	ck_assert_int_eq(layer_unpack(dir, fd, &compressed, &limits, NULL), -EBADMSG);
	close(fd);
	ck_assert(!layer_present(dir, &compressed));
	assert_nothing_kept();
	free(tar);
	free(z);
}
END_TEST

START_TEST(test_trailing_bytes_count_for_the_diffid)
{
	const struct spec specs[] = {{AE_IFREG, "file", 0644, 0, 0, "content", NULL, NULL}};
	size_t len;
	unsigned char *tar = make_tar(specs, 1, &len);
	struct digest diffid;
	uint64_t bytes = 0;
	int fd;

	memset(tar + len, 0, 10240); /* more zero blocks after the end marker */
	len += 10240;
	diffid = test_digest_of(tar, len);
	fd = blob_fd(tar, len);
	ck_assert_int_eq(layer_unpack(dir, fd, &diffid, &limits, &bytes), 0);
	ck_assert_int_eq(bytes, len);
	close(fd);
	free(tar);
}
END_TEST

START_TEST(test_limits_have_their_errno)
{
	static char big[10001];
	struct spec file = {AE_IFREG, "big", 0644, 0, 0, big, NULL, NULL};
	struct spec deep = {AE_IFREG, "a/b/c/d/e", 0644, 0, 0, "x", NULL, NULL};
	struct spec longname = {AE_IFREG, "", 0644, 0, 0, "x", NULL, NULL};
	struct spec more = {AE_IFREG, "second", 0644, 0, 0, "x", NULL, NULL};
	char name[300];

	memset(big, 'b', 10000);
	limits.max_bytes = 8192; /* the stream: 3 headers + 10000 bytes */
	assert_refused(&file, -EFBIG);
	layer_limits_default(&limits);
	limits.max_depth = 4;
	assert_refused(&deep, -ELOOP);
	layer_limits_default(&limits);
	limits.max_path = 100;
	memset(name, 'n', 101);
	name[101] = '\0';
	longname.path = name;
	assert_refused(&longname, -ENAMETOOLONG);
	layer_limits_default(&limits);
	memset(name, 'n', 256); /* one component past NAME_MAX */
	name[256] = '\0';
	assert_refused(&longname, -ENAMETOOLONG);
	limits.max_entries = 1;
	assert_refused(&more, -E2BIG);
	limits.max_entries = 2;
	{
		struct spec two[2] = {{AE_IFREG, "fine", 0644, 0, 0, "ok", NULL, NULL}, more};
		struct digest diffid;

		ck_assert_int_eq(unpack_specs(two, 2, false, &diffid), 0);
	}
}
END_TEST

/* A layer that takes longer than max_ms (a bomb, a huge layer) lets its worker go: -ETIMEDOUT. */
START_TEST(test_slow_layer_times_out)
{
	static char big[3 << 20];
	struct spec file = {AE_IFREG, "big", 0644, 0, 0, big, NULL, NULL};

	memset(big, 'b', sizeof(big) - 1); /* 3 MiB: well over 1 ms to gunzip, hash and write */
	limits.max_ms = 1;
	assert_refused(&file, -ETIMEDOUT);
	layer_limits_default(&limits);
	ck_assert_uint_eq(limits.max_ms, 15 * 60 * 1000);
}
END_TEST

/* One file of the given size in a pax tar: sparse with one 4-byte extent, or a header that lies. */
static unsigned char *make_big_tar(la_int64_t size, bool sparse, size_t *ret_len)
{
	unsigned char *buf = calloc(1, TAR_MAX);
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	size_t used = 0;

	ck_assert_ptr_nonnull(buf);
	archive_write_set_format_pax(a);
	ck_assert_int_eq(archive_write_open_memory(a, buf, TAR_MAX, &used), ARCHIVE_OK);
	archive_entry_set_pathname(e, "big");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, size);
	if (sparse)
		archive_entry_sparse_add_entry(e, 0, 4);
	ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
	if (sparse) {
		ck_assert_int_eq(archive_write_data(a, "data", 4), 4);
		ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	} else {
		archive_write_close(a); /* fails: the buffer ends long before the claimed data */
		used = TAR_MAX;
	}
	archive_entry_free(e);
	archive_write_free(a);
	*ret_len = used;
	return buf;
}

/* A 1 TiB sparse file, and a header claiming 1 TiB over 4 MiB: both count their full size, -EFBIG.
 */
START_TEST(test_sparse_and_lying_sizes_count_in_full)
{
	for (int sparse = 1; sparse >= 0; sparse--) {
		size_t len;
		unsigned char *tar = make_big_tar((la_int64_t)1 << 40, sparse, &len);
		struct digest diffid = test_digest_of(tar, len);
		int fd = blob_fd(tar, len);

		if (sparse)
			ck_assert_uint_lt(len, 64 * 1024);
		ck_assert_int_eq(layer_unpack(dir, fd, &diffid, &limits, NULL), -EFBIG);
		close(fd);
		free(tar);
		ck_assert(!layer_present(dir, &diffid));
		assert_nothing_kept();
	}
}
END_TEST

/* The room left under the cap of all trees: past it -EDQUOT, at it the tree is kept. */
START_TEST(test_room_under_the_cap_is_edquot)
{
	static char big[10001];
	struct spec specs[1] = {{AE_IFREG, "big", 0644, 0, 0, big, NULL, NULL}};
	size_t len, sparse_len;
	unsigned char *tar, *sparse;
	struct digest diffid;
	int fd;

	memset(big, 'b', 10000);
	tar = make_tar(specs, 1, &len);
	diffid = test_digest_of(tar, len);
	limits.room_bytes = len - 1; /* the stream is one byte too long */
	fd = blob_fd(tar, len);
	ck_assert_int_eq(layer_unpack(dir, fd, &diffid, &limits, NULL), -EDQUOT);
	close(fd);
	ck_assert(!layer_present(dir, &diffid));
	assert_nothing_kept();
	/* a header's size counts before a byte is written: a 1 TiB sparse file */
	limits.max_bytes = (uint64_t)1 << 41;
	limits.room_bytes = (uint64_t)1 << 30;
	sparse = make_big_tar((la_int64_t)1 << 40, true, &sparse_len);
	fd = blob_fd(sparse, sparse_len);
	ck_assert_int_eq(layer_unpack(dir, fd, &(struct digest){0}, &limits, NULL), -EDQUOT);
	close(fd);
	assert_nothing_kept();
	limits.room_bytes = len; /* exactly the room */
	fd = blob_fd(tar, len);
	ck_assert_int_eq(layer_unpack(dir, fd, &diffid, &limits, NULL), 0);
	close(fd);
	ck_assert(layer_present(dir, &diffid));
	layer_limits_default(&limits);
	ck_assert_uint_eq(limits.room_bytes, UINT64_MAX);
	ck_assert_uint_eq(limits.max_total_bytes, UINT64_MAX);
	free(sparse);
	free(tar);
}
END_TEST

START_TEST(test_not_a_layer_is_einval)
{
	const struct spec specs[] = {{AE_IFREG, "file", 0644, 0, 0, "content", NULL, NULL}};
	unsigned char *junk = test_random_bytes(4096, 7), *tar, *z;
	struct digest d = test_digest_of(junk, 4096);
	size_t len, zlen;
	int fd = blob_fd(junk, 4096);

	ck_assert_int_eq(layer_unpack(dir, fd, &d, &limits, NULL), -EINVAL);
	close(fd);
	tar = make_tar(specs, 1, &len);
	z = test_gzip(tar, len, &zlen);
	d = test_digest_of(tar, len);
	fd = blob_fd(z, zlen / 2); /* cut short */
	ck_assert_int_eq(layer_unpack(dir, fd, &d, &limits, NULL), -EINVAL);
	close(fd);
	assert_nothing_kept();
	free(junk);
	free(tar);
	free(z);
}
END_TEST

static int count_layer(const struct digest *d, void *ctx)
{
	(void)d;
	++*(int *)ctx;
	return 0;
}

START_TEST(test_present_remove_and_foreach)
{
	const struct spec a[] = {{AE_IFREG, "a", 0644, 0, 0, "a", NULL, NULL}};
	const struct spec b[] = {{AE_IFDIR, "d", 0000, 0, 0, NULL, NULL, NULL},
				 {AE_IFREG, "d/b", 0000, 0, 0, "b", NULL, NULL}};
	struct digest da, db;
	int n = 0, fd;

	ck_assert_int_eq(unpack_specs(a, 1, false, &da), 0);
	ck_assert_int_eq(unpack_specs(b, 2, true, &db), 0);
	ck_assert_int_eq(layer_foreach(dir, count_layer, &n), 0);
	ck_assert_int_eq(n, 2);
	/* already there: 0 without reading the blob */
	fd = open("/dev/null", O_RDONLY);
	ck_assert_int_eq(layer_unpack(dir, fd, &da, &limits, NULL), 0);
	close(fd);
	ck_assert_int_eq(layer_remove(dir, &db), 0);
	ck_assert(!layer_present(dir, &db));
	ck_assert_int_eq(layer_remove(dir, &db), -ENOENT);
	n = 0;
	ck_assert_int_eq(layer_foreach(dir, count_layer, &n), 0);
	ck_assert_int_eq(n, 1);
	assert_nothing_kept_but(1);
}
END_TEST

static void crash(const char *tmp_dir)
{
	(void)tmp_dir;
	_exit(7);
}

START_TEST(test_crash_before_rename_leaves_only_tmp)
{
	const struct spec specs[] = {{AE_IFDIR, "d", 0755, 0, 0, NULL, NULL, NULL},
				     {AE_IFREG, "d/f", 0644, 0, 0, "data", NULL, NULL}};
	struct digest diffid;
	char path[4096], live[4096];
	int64_t removed = -1;
	int status, live_fd;
	pid_t pid = fork();

	if (pid == 0) {
		layer_fault_hook = crash;
		unpack_specs(specs, 2, true, &diffid);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(status), 7);
	snprintf(path, sizeof(path), "%s/layers/tmp", dir);
	ck_assert_int_eq(test_count_entries(path), 1);
	snprintf(path, sizeof(path), "%s/layers", dir);
	ck_assert_int_eq(test_count_entries(path), 1); /* tmp only: no tree */
	/* a live unpack (its lock held) stays */
	snprintf(live, sizeof(live), "%s/layers/tmp/live.x", dir);
	ck_assert_int_eq(mkdir(live, 0700), 0);
	live_fd = open(live, O_RDONLY | O_DIRECTORY);
	ck_assert_int_eq(flock(live_fd, LOCK_EX), 0);
	ck_assert_int_eq(layer_recover(dir, &removed), 0);
	ck_assert_int_eq(removed, 1);
	ck_assert(test_path_exists(live));
	close(live_fd);
	ck_assert_int_eq(layer_recover(dir, &removed), 0);
	ck_assert_int_eq(removed, 1);
	assert_nothing_kept();
	ck_assert_int_eq(unpack_specs(specs, 2, true, &diffid), 0);
	tree_path(&diffid, "d/f", path, sizeof(path));
	ck_assert(test_path_exists(path));
}
END_TEST

static Suite *layer_suite(void)
{
	Suite *s = suite_create("layer");
	TCase *tc = tcase_create("unpack");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_tree_keeps_the_tar_metadata);
	tcase_add_test(tc, test_whiteouts_become_overlayfs_ones);
	tcase_add_test(tc, test_dotdot_is_refused);
	tcase_add_test(tc, test_absolute_path_is_refused);
	tcase_add_test(tc, test_hardlink_out_is_refused);
	tcase_add_test(tc, test_symlink_escape_is_refused);
	tcase_add_test(tc, test_hardlink_through_symlink_is_refused);
	tcase_add_test(tc, test_hardlink_to_symlink_links_the_symlink);
	tcase_add_test(tc, test_empty_whiteout_names_are_refused);
	tcase_add_test(tc, test_whiteout_then_file_keeps_the_file);
	tcase_add_test(tc, test_opaque_markers_anywhere);
	tcase_add_test(tc, test_user_overlay_xattrs_are_dropped);
	tcase_add_test(tc, test_duplicate_entries_last_wins);
	tcase_add_test(tc, test_mode_0000_dir_unpacks_and_removes);
	tcase_add_test(tc, test_diffid_mismatch_keeps_nothing);
	tcase_add_test(tc, test_trailing_bytes_count_for_the_diffid);
	tcase_add_test(tc, test_limits_have_their_errno);
	tcase_add_test(tc, test_slow_layer_times_out);
	tcase_add_test(tc, test_sparse_and_lying_sizes_count_in_full);
	tcase_add_test(tc, test_room_under_the_cap_is_edquot);
	tcase_add_test(tc, test_not_a_layer_is_einval);
	tcase_add_test(tc, test_present_remove_and_foreach);
	tcase_add_test(tc, test_crash_before_rename_leaves_only_tmp);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(layer_suite());
}
