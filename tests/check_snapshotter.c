/*
 * Unit tests for tools/snapshotter: the snapshot catalogue and its
 * directories, the mounts containerd's overlayfs snapshotter would give,
 * chain IDs and the remote layers under ROOT/layers (their trees and their
 * EROFS images, mounted for real: the suite runs as root), the bounds on
 * input, the catalogue of an older version, and the protobuf side of the gRPC service
 * (snapshotter_rpc.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <check.h>
#include <linux/capability.h>
#include <grpc/status.h>

#include "snapshotter.h"
#include "snapshotter_erofs.h"
#include "snapshotter_meta.h"
#include "snapshotter_rpc.h"
#include "snapshots.pb-c.h"
#include "snap_fixture.h"
#include "testutil.h"

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B64 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
/* sha256("sha256:" A64 " sha256:" B64), by Python's hashlib */
#define CHAIN_AB "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c"

/* The one mount of M, as "type source opt,opt,..." */
static char *mount_string(const struct snap_mounts *m)
{
	static char buf[8192];
	size_t i, n;

	ck_assert_uint_eq(m->len, 1);
	n = (size_t)snprintf(buf, sizeof(buf), "%s %s ", m->items[0].type, m->items[0].source);
	for (i = 0; i < m->items[0].n_options; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "",
				      m->items[0].options[i]);
	return buf;
}

static void expect_mount(const char *key, const char *want)
{
	struct snap_mounts m;
	char expanded[8192];

	size_t n = 0;

	/* WANT says @ for the state directory */
	for (; *want && n + strlen(state) + 1 < sizeof(expanded); want++) {
		if (*want == '@') {
			memcpy(expanded + n, state, strlen(state));
			n += strlen(state);
		} else {
			expanded[n++] = *want;
		}
	}
	expanded[n] = '\0';
	ck_assert_int_eq(snap_mounts(s, key, &m), 0);
	ck_assert_str_eq(mount_string(&m), expanded);
	snap_mounts_release(&m);
}

static struct snap_labels one_label(struct snap_label *l, const char *key, const char *value)
{
	struct snap_labels labels = {.items = l, .len = 1};

	l->key = (char *)key;
	l->value = (char *)value;
	return labels;
}

START_TEST(test_chain_id)
{
	char id[DIGEST_STRING_SIZE];

	ck_assert_int_eq(snap_chain_id(NULL, "sha256:" A64, id), 0);
	ck_assert_str_eq(id, "sha256:" A64);
	ck_assert_int_eq(snap_chain_id("sha256:" A64, "sha256:" B64, id), 0);
	ck_assert_str_eq(id, CHAIN_AB);
	ck_assert_int_eq(snap_chain_id(NULL, "sha256:" A64 "x", id), -EINVAL);
	ck_assert_int_eq(snap_chain_id("sha512:" A64, "sha256:" B64, id), -EINVAL);
}
END_TEST

START_TEST(test_find_layer)
{
	char id[DIGEST_STRING_SIZE], path[1200];

	make_layer(A64, "a.txt");
	make_layer(B64, "b.txt");
	ck_assert_int_eq(snap_find_layer(root, NULL, "sha256:" A64, id), 0);
	ck_assert_str_eq(id, "sha256:" A64);
	ck_assert_int_eq(snap_find_layer(root, "sha256:" A64, CHAIN_AB, id), 0);
	ck_assert_str_eq(id, "sha256:" B64);
	/* B on no parent, or A's chain on B: not these trees */
	ck_assert_int_eq(snap_find_layer(root, "sha256:" B64, CHAIN_AB, id), -ENOENT);
	ck_assert_int_eq(snap_find_layer(root, NULL, CHAIN_AB, id), -ENOENT);
	/* a file with a layer's name is no layer */
	snprintf(path, sizeof(path), "%s/layers/%s", root, CHAIN_AB);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	ck_assert_int_eq(snap_find_layer(root, NULL, CHAIN_AB, id), -ENOENT);
	ck_assert_int_eq(snap_find_layer(root, NULL, "../etc", id), -EINVAL);
}
END_TEST

START_TEST(test_mounts_like_overlayfs_snapshotter)
{
	struct snap_mounts m;
	struct snap_info info;

	ck_assert_int_eq(snap_prepare(s, "k1", NULL, NULL, false, &m), 0);
	snap_mounts_release(&m);
	expect_mount("k1", "bind @/snapshots/1/fs rw,rbind");
	ck_assert_int_eq(snap_commit(s, "c1", "k1", NULL), 0);
	ck_assert_int_eq(snap_stat(s, "k1", &info), -ENOENT);
	ck_assert_int_eq(snap_stat(s, "c1", &info), 0);
	ck_assert_int_eq(info.kind, SNAP_KIND_COMMITTED);
	ck_assert_ptr_null(info.parent);
	snap_info_release(&info);

	ck_assert_int_eq(snap_prepare(s, "k2", "c1", NULL, false, &m), 0);
	snap_mounts_release(&m);
	expect_mount("k2", "overlay overlay index=off,workdir=@/snapshots/2/work,"
			   "upperdir=@/snapshots/2/fs,lowerdir=@/snapshots/1/fs");
	ck_assert_int_eq(snap_prepare(s, "v1", "c1", NULL, true, &m), 0);
	snap_mounts_release(&m);
	expect_mount("v1", "bind @/snapshots/1/fs ro,rbind");
	ck_assert_int_eq(snap_commit(s, "c2", "k2", NULL), 0);
	ck_assert_int_eq(snap_prepare(s, "v2", "c2", NULL, true, &m), 0);
	snap_mounts_release(&m);
	expect_mount("v2", "overlay overlay index=off,lowerdir=@/snapshots/2/fs:@/snapshots/1/fs");
	ck_assert_int_eq(snap_stat(s, "v2", &info), 0);
	ck_assert_int_eq(info.kind, SNAP_KIND_VIEW);
	ck_assert_str_eq(info.parent, "c2");
	ck_assert_int_ge(info.created_ns, 1);
	snap_info_release(&info);
	/* a view of nothing is its own empty directory, read-only */
	ck_assert_int_eq(snap_prepare(s, "v0", NULL, NULL, true, &m), 0);
	snap_mounts_release(&m);
	expect_mount("v0", "bind @/snapshots/5/fs ro,rbind");
}
END_TEST

START_TEST(test_errors_of_each_call)
{
	struct snap_mounts m;
	char path[1200];

	ck_assert_int_eq(snap_prepare(s, "k1", NULL, NULL, false, &m), 0);
	snap_mounts_release(&m);
	ck_assert_int_eq(snap_prepare(s, "k1", NULL, NULL, false, &m), -EEXIST);
	ck_assert_int_eq(snap_prepare(s, "k2", "nothing", NULL, false, &m), -ENOENT);
	/* the parent must be committed */
	ck_assert_int_eq(snap_prepare(s, "k2", "k1", NULL, false, &m), -EPERM);
	ck_assert_int_eq(snap_prepare(s, "", NULL, NULL, false, &m), -EINVAL);
	ck_assert_int_eq(snap_commit(s, "c1", "k1", NULL), 0);
	ck_assert_int_eq(snap_commit(s, "c1", "k1", NULL), -ENOENT);
	ck_assert_int_eq(snap_prepare(s, "k2", "c1", NULL, false, &m), 0);
	snap_mounts_release(&m);
	/* names and keys share one namespace */
	ck_assert_int_eq(snap_commit(s, "c1", "k2", NULL), -EEXIST);
	ck_assert_int_eq(snap_prepare(s, "v1", "c1", NULL, true, &m), 0);
	snap_mounts_release(&m);
	ck_assert_int_eq(snap_commit(s, "c3", "v1", NULL), -EPERM);
	ck_assert_int_eq(snap_remove(s, "c1"), -ENOTEMPTY);
	ck_assert_int_eq(snap_remove(s, "v1"), 0);
	ck_assert_int_eq(snap_remove(s, "k2"), 0);
	snprintf(path, sizeof(path), "%s/snapshots/2", state);
	ck_assert(!test_path_exists(path));
	ck_assert_int_eq(snap_remove(s, "c1"), 0);
	ck_assert_int_eq(snap_remove(s, "c1"), -ENOENT);
	ck_assert_int_eq(test_count_entries(strcat(strcpy(path, state), "/snapshots")), 0);
}
END_TEST

START_TEST(test_bounds)
{
	static struct snap_label many[SNAP_LABELS_MAX + 1];
	struct snap_labels labels = {.items = many, .len = SNAP_LABELS_MAX + 1};
	static char big[SNAP_LABEL_PAIR_MAX + 2], key[SNAP_KEY_MAX + 2];
	struct snap_label l[2];
	struct snap_mounts m;
	size_t i;

	for (i = 0; i < SNAP_LABELS_MAX + 1; i++) {
		many[i].key = malloc(16);
		snprintf(many[i].key, 16, "l%zu", i);
		many[i].value = (char *)"v";
	}
	ck_assert_int_eq(snap_prepare(s, "k", NULL, &labels, false, &m), -EINVAL);
	labels.len = SNAP_LABELS_MAX;
	ck_assert_int_eq(snap_prepare(s, "k", NULL, &labels, false, &m), 0);
	snap_mounts_release(&m);
	for (i = 0; i < SNAP_LABELS_MAX + 1; i++)
		free(many[i].key);

	memset(big, 'x', SNAP_LABEL_PAIR_MAX);
	labels = one_label(l, "k", big + 1); /* 1 + 4095 bytes: the most allowed */
	ck_assert_int_eq(snap_prepare(s, "k2", NULL, &labels, false, &m), 0);
	snap_mounts_release(&m);
	labels = one_label(l, "k", big); /* one more */
	ck_assert_int_eq(snap_prepare(s, "k3", NULL, &labels, false, &m), -EINVAL);
	l[0] = (struct snap_label){(char *)"a", (char *)"1"};
	l[1] = (struct snap_label){(char *)"a", (char *)"2"};
	labels = (struct snap_labels){.items = l, .len = 2};
	ck_assert_int_eq(snap_prepare(s, "k3", NULL, &labels, false, &m), -EINVAL);

	memset(key, 'k', SNAP_KEY_MAX);
	ck_assert_int_eq(snap_prepare(s, key, NULL, NULL, false, &m), 0);
	snap_mounts_release(&m);
	key[SNAP_KEY_MAX] = 'k';
	ck_assert_int_eq(snap_prepare(s, key, NULL, NULL, false, &m), -EINVAL);
	ck_assert_int_eq(snap_remove(s, key), -EINVAL);
}
END_TEST

START_TEST(test_remote_layers)
{
	char path[1300], link[1300];
	struct snap_mounts m = {0};
	struct snap_label l;
	struct snap_labels labels;
	struct snap_info info;
	int64_t size = -1, inodes = -1;
	ssize_t n;

	make_layer(A64, "a.txt");
	make_layer(B64, "b.txt");
	/* the first layer: its chain ID is its diff ID */
	labels = one_label(&l, SNAP_LABEL_REF, "sha256:" A64);
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-1 a", NULL, &labels, false, &m), -EEXIST);
	ck_assert_uint_eq(m.len, 0);
	ck_assert_int_eq(snap_stat(s, "ns/1/extract-1 a", &info), -ENOENT);
	ck_assert_int_eq(snap_stat(s, "sha256:" A64, &info), 0);
	ck_assert_int_eq(info.kind, SNAP_KIND_COMMITTED);
	ck_assert_str_eq(snap_labels_get(&info.labels, SNAP_LABEL_REF), "sha256:" A64);
	snap_info_release(&info);
	snprintf(path, sizeof(path), "%s/snapshots/1/fs", state);
	n = readlink(path, link, sizeof(link) - 1);
	ck_assert_int_gt(n, 0);
	link[n] = '\0';
	snprintf(path, sizeof(path), "%s/layers/sha256:%s", root, A64);
	ck_assert_str_eq(link, path);
	/* again: already there */
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-2 a", NULL, &labels, false, &m), -EEXIST);

	/* the second, on the first */
	labels = one_label(&l, SNAP_LABEL_REF, CHAIN_AB);
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-3 b", "sha256:" A64, &labels, false, &m),
			 -EEXIST);
	ck_assert_int_eq(snap_stat(s, CHAIN_AB, &info), 0);
	ck_assert_str_eq(info.parent, "sha256:" A64);
	snap_info_release(&info);

	/* a container on both: overlay over the shared trees, an upper of its own */
	ck_assert_int_eq(snap_prepare(s, "ctr", CHAIN_AB, NULL, false, &m), 0);
	snap_mounts_release(&m);
	expect_mount("ctr", "overlay overlay index=off,workdir=@/snapshots/3/work,"
			    "upperdir=@/snapshots/3/fs,"
			    "lowerdir=@/snapshots/2/fs:@/snapshots/1/fs");
	ck_assert_int_eq(snap_usage(s, CHAIN_AB, &size, &inodes), 0);
	ck_assert_int_eq(size, 0);
	ck_assert_int_eq(inodes, 0);

	/* a chain the mount does not hold unpacks locally */
	labels = one_label(
		&l, SNAP_LABEL_REF,
		"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-4 b", NULL, &labels, false, &m), 0);
	snap_mounts_release(&m);
	expect_mount("ns/1/extract-4 b", "bind @/snapshots/4/fs rw,rbind");

	/* removing remote snapshots leaves the shared trees alone */
	ck_assert_int_eq(snap_remove(s, "ctr"), 0);
	ck_assert_int_eq(snap_remove(s, CHAIN_AB), 0);
	ck_assert_int_eq(snap_remove(s, "sha256:" A64), 0);
	snprintf(path, sizeof(path), "%s/layers/sha256:%s/a.txt", root, A64);
	ck_assert(test_path_exists(path));
	snprintf(path, sizeof(path), "%s/layers/sha256:%s/b.txt", root, B64);
	ck_assert(test_path_exists(path));
}
END_TEST

START_TEST(test_remote_needs_the_parent_chain)
{
	struct snap_mounts m;
	struct snap_label l;
	struct snap_labels labels;

	make_layer(B64, "b.txt");
	/* a parent without a chain-ID label cannot be matched: unpack locally */
	ck_assert_int_eq(snap_prepare(s, "k", NULL, NULL, false, &m), 0);
	snap_mounts_release(&m);
	ck_assert_int_eq(snap_commit(s, "sha256:" A64, "k", NULL), 0);
	labels = one_label(&l, SNAP_LABEL_REF, CHAIN_AB);
	ck_assert_int_eq(snap_prepare(s, "x", "sha256:" A64, &labels, false, &m), 0);
	snap_mounts_release(&m);
	/* a view is never made remote */
	labels = one_label(&l, SNAP_LABEL_REF, "sha256:" B64);
	ck_assert_int_eq(snap_prepare(s, "v", NULL, &labels, true, &m), 0);
	snap_mounts_release(&m);
}
END_TEST

/* STATE/snapshots/ID/fs */
static const char *fs_of(int id)
{
	static char path[1200];

	snprintf(path, sizeof(path), "%s/snapshots/%d/fs", state, id);
	return path;
}

/* The catalogue's image of snapshot NAME, read on a connection of its own. */
static char *image_of(const char *name)
{
	char path[1200];
	struct snap_row row;
	sqlite3 *db;
	char *image;

	snprintf(path, sizeof(path), "%s/metadata.db", state);
	ck_assert_int_eq(snap_meta_open(path, &db), 0);
	ck_assert_int_eq(snap_meta_get(db, name, 0, &row, NULL), 0);
	image = row.image ? strdup(row.image) : NULL;
	snap_row_release(&row);
	snap_meta_close(db);
	return image;
}

/* Where fs is the symlink to the tree of layer HEX. */
static void expect_symlink_to_tree(int id, const char *hex)
{
	char link[1300], tree[1300];
	ssize_t n = readlink(fs_of(id), link, sizeof(link) - 1);

	ck_assert_int_gt(n, 0);
	link[n] = '\0';
	snprintf(tree, sizeof(tree), "%s/layers/sha256:%s", root, hex);
	ck_assert_str_eq(link, tree);
}

/* EROFS mounts at MOUNT_POINT, in this process's namespace. */
static int count_erofs_mounts(const char *mount_point)
{
	char line[4096], point[2048], type[64];
	int n = 0;
	FILE *f = fopen("/proc/self/mounts", "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*s %2047s %63s", point, type) == 2 &&
		    strcmp(point, mount_point) == 0 && strcmp(type, "erofs") == 0)
			n++;
	fclose(f);
	return n;
}

/* Does MOUNT_POINT.id name IMAGE's device and inode (the mount is of that file)? */
static int id_is(const char *mount_point, const char *image)
{
	unsigned long long dev, ino;
	char path[1400];
	struct stat st;
	FILE *f;
	int same;

	snprintf(path, sizeof(path), "%s.id", mount_point);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%llu %llu", &dev, &ino), 2);
	fclose(f);
	ck_assert_int_eq(stat(image, &st), 0);
	same = dev == (unsigned long long)st.st_dev && ino == (unsigned long long)st.st_ino;
	return same;
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	size_t n;
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");

	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	ck_assert_int_eq(fclose(out), 0);
}

START_TEST(test_remote_erofs_images)
{
	char path[1300], image_path[1400], buf[16] = {0}, *image;
	struct snap_mounts m = {0};
	struct snap_label l;
	struct snap_labels labels;
	FILE *f;

	make_layer(A64, "a.txt");
	make_image(A64);
	labels = one_label(&l, SNAP_LABEL_REF, "sha256:" A64);
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-1 a", NULL, &labels, false, &m), -EEXIST);
	/* fs is the image, mounted: the tree's file, read from EROFS */
	ck_assert_int_eq(snap_erofs_is_mounted(fs_of(1)), 1);
	snprintf(path, sizeof(path), "%s/a.txt", fs_of(1));
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(buf, 1, sizeof(buf) - 1, f), 5);
	fclose(f);
	ck_assert_str_eq(buf, "a.txt");
	ck_assert_int_eq(open(path, O_WRONLY), -1);
	ck_assert_int_eq(errno, EROFS);
	image = image_of("sha256:" A64);
	snprintf(path, sizeof(path), "%s/layers/sha256:%s.erofs", root, A64);
	ck_assert_str_eq(image, path);
	free(image);

	/* a container on it: the mount is its lowerdir */
	ck_assert_int_eq(snap_prepare(s, "ctr", "sha256:" A64, NULL, false, &m), 0);
	snap_mounts_release(&m);
	expect_mount("ctr", "overlay overlay index=off,workdir=@/snapshots/2/work,"
			    "upperdir=@/snapshots/2/fs,lowerdir=@/snapshots/1/fs");

	/* a restart took the mount: Mounts mounts it again */
	ck_assert_int_eq(umount2(fs_of(1), MNT_DETACH), 0);
	ck_assert_int_eq(snap_erofs_is_mounted(fs_of(1)), 0);
	snap_free(s);
	ck_assert_int_eq(snap_open(state, root, &s), 0);
	expect_mount("ctr", "overlay overlay index=off,workdir=@/snapshots/2/work,"
			    "upperdir=@/snapshots/2/fs,lowerdir=@/snapshots/1/fs");
	ck_assert_int_eq(snap_erofs_is_mounted(fs_of(1)), 1);
	/*
	 * A host daemon's restart: a new mount serves the image (another inode)
	 * while the old mount stays on the dead one. Mounts mounts the new one.
	 */
	snprintf(image_path, sizeof(image_path), "%s.new", path);
	ck_assert_int_eq(link(path, image_path), 0);
	ck_assert_int_eq(rename(image_path, path), 0); /* the same inode: still the same */
	ck_assert_int_eq(unlink(image_path), 0);
	expect_mount("ctr", "overlay overlay index=off,workdir=@/snapshots/2/work,"
			    "upperdir=@/snapshots/2/fs,lowerdir=@/snapshots/1/fs");
	ck_assert_int_eq(count_erofs_mounts(fs_of(1)), 1);
	ck_assert_int_eq(id_is(fs_of(1), path), 1);
	copy_file(path, image_path);
	ck_assert_int_eq(rename(image_path, path), 0); /* another inode */
	ck_assert_int_eq(id_is(fs_of(1), path), 0);
	expect_mount("ctr", "overlay overlay index=off,workdir=@/snapshots/2/work,"
			    "upperdir=@/snapshots/2/fs,lowerdir=@/snapshots/1/fs");
	ck_assert_int_eq(count_erofs_mounts(fs_of(1)), 1); /* the old one detached */
	ck_assert_int_eq(id_is(fs_of(1), path), 1);
	/* ... and once the image is gone, the tree's symlink for good */
	ck_assert_int_eq(umount2(fs_of(1), MNT_DETACH), 0);
	ck_assert_int_eq(unlink(path), 0);
	expect_mount("sha256:" A64, "bind @/snapshots/1/fs ro,rbind");
	expect_symlink_to_tree(1, A64);
	ck_assert_ptr_null(image_of("sha256:" A64));

	/* Remove unmounts before it removes */
	make_layer(B64, "b.txt");
	make_image(B64);
	labels = one_label(&l, SNAP_LABEL_REF, "sha256:" B64);
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-2 b", NULL, &labels, false, &m), -EEXIST);
	ck_assert_int_eq(snap_erofs_is_mounted(fs_of(3)), 1);
	ck_assert_int_eq(snap_remove(s, "sha256:" B64), 0);
	ck_assert_int_eq(snap_erofs_is_mounted(fs_of(3)), 0);
	ck_assert(!test_path_exists(fs_of(3)));
	snprintf(path, sizeof(path), "%s/layers/sha256:%s/b.txt", root, B64);
	ck_assert(test_path_exists(path));

	/* Cleanup unmounts what it removes */
	snprintf(path, sizeof(path), "%s/snapshots/77", state);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/snapshots/77/fs", state);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(image_path, sizeof(image_path), "%s/layers/sha256:%s.erofs", root, B64);
	ck_assert_int_eq(snap_erofs_mount(image_path, path), 0);
	ck_assert_int_eq(snap_cleanup(s), 0);
	ck_assert_int_eq(snap_erofs_is_mounted(path), 0);
	snprintf(path, sizeof(path), "%s/snapshots/77", state);
	ck_assert(!test_path_exists(path));
}
END_TEST

/* The host daemon shares an image over its tree: the level mounts nothing, its fs is the tree. */
START_TEST(test_remote_erofs_shared_by_the_host)
{
	char tree[1300], image[1400], path[1400];
	struct snap_mounts m = {0};
	struct snap_label l;
	struct snap_labels labels;

	make_layer(A64, "a.txt");
	make_image(A64);
	snprintf(tree, sizeof(tree), "%s/layers/sha256:%s", root, A64);
	snprintf(image, sizeof(image), "%s.erofs", tree);
	ck_assert_int_eq(snap_erofs_mount(image, tree), 0); /* what layer_image_share does */
	labels = one_label(&l, SNAP_LABEL_REF, "sha256:" A64);
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-1 a", NULL, &labels, false, &m), -EEXIST);
	expect_symlink_to_tree(1, A64);
	ck_assert_ptr_null(image_of("sha256:" A64));
	ck_assert_int_eq(count_erofs_mounts(tree), 1);
	ck_assert_int_eq(snap_erofs_is_mounted(fs_of(1)), 0); /* the symlink is no mount of ours */
	snprintf(path, sizeof(path), "%s/a.txt", fs_of(1));
	ck_assert(test_path_exists(path));
	/* a restart keeps it so, and Remove leaves the host's mount alone */
	snap_free(s);
	ck_assert_int_eq(snap_open(state, root, &s), 0);
	expect_mount("sha256:" A64, "bind @/snapshots/1/fs ro,rbind");
	expect_symlink_to_tree(1, A64);
	ck_assert_int_eq(snap_remove(s, "sha256:" A64), 0);
	ck_assert_int_eq(count_erofs_mounts(tree), 1);
	ck_assert_int_eq(umount2(tree, MNT_DETACH), 0);
}
END_TEST

/* CAP_SYS_ADMIN in this process's effective set on or off (it stays permitted). */
static void sys_admin(bool on)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];

	ck_assert_int_eq(syscall(SYS_capget, &hdr, data), 0);
	if (on)
		data[0].effective |= 1u << CAP_SYS_ADMIN;
	else
		data[0].effective &= ~(1u << CAP_SYS_ADMIN);
	ck_assert_int_eq(syscall(SYS_capset, &hdr, data), 0);
}

START_TEST(test_remote_erofs_fallback)
{
	char path[1300];
	struct snap_mounts m = {0};
	struct snap_label l;
	struct snap_labels labels;
	FILE *f;

	/* random bytes for an image: that layer alone gets its tree */
	make_layer(A64, "a.txt");
	snprintf(path, sizeof(path), "%s/layers/sha256:%s.erofs", root, A64);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("not an EROFS image, only some bytes that look like none", f);
	fclose(f);
	labels = one_label(&l, SNAP_LABEL_REF, "sha256:" A64);
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-1 a", NULL, &labels, false, &m), -EEXIST);
	expect_symlink_to_tree(1, A64);
	ck_assert_ptr_null(image_of("sha256:" A64));
	/* ... the next layer's good image still mounts */
	make_layer(B64, "b.txt");
	make_image(B64);
	labels = one_label(&l, SNAP_LABEL_REF, CHAIN_AB);
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-2 b", "sha256:" A64, &labels, false, &m),
			 -EEXIST);
	ck_assert_int_eq(snap_erofs_is_mounted(fs_of(2)), 1);
	ck_assert_int_eq(snap_remove(s, CHAIN_AB), 0);

	/* without CAP_SYS_ADMIN (EPERM) the images are off for the process */
	sys_admin(false);
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-3 b", "sha256:" A64, &labels, false, &m),
			 -EEXIST);
	sys_admin(true);
	expect_symlink_to_tree(3, B64);
	ck_assert_ptr_null(image_of(CHAIN_AB));
	ck_assert_int_eq(snap_remove(s, CHAIN_AB), 0);
	/* ... also once the mount would work again, until the process restarts */
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-4 b", "sha256:" A64, &labels, false, &m),
			 -EEXIST);
	expect_symlink_to_tree(4, B64);
	ck_assert_int_eq(snap_remove(s, CHAIN_AB), 0);
	snap_free(s);
	ck_assert_int_eq(snap_open(state, root, &s), 0);
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-5 b", "sha256:" A64, &labels, false, &m),
			 -EEXIST);
	ck_assert_int_eq(snap_erofs_is_mounted(fs_of(5)), 1);
}
END_TEST

/* The catalogue of the version before the images: it opens, and gains their column. */
START_TEST(test_catalogue_before_images)
{
	static const char old[] =
		"CREATE TABLE snapshots (id INTEGER PRIMARY KEY AUTOINCREMENT,"
		" name TEXT NOT NULL UNIQUE, parent INTEGER REFERENCES snapshots(id),"
		" kind INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,"
		" lower TEXT);"
		"CREATE INDEX snapshots_by_parent ON snapshots(parent);"
		"CREATE TABLE labels (snapshot INTEGER NOT NULL REFERENCES snapshots(id)"
		" ON DELETE CASCADE, key TEXT NOT NULL, value TEXT NOT NULL,"
		" PRIMARY KEY (snapshot, key)) WITHOUT ROWID;";
	char path[1300], tree[1300], *sql, *image;
	struct snap_mounts m = {0};
	struct snap_label l;
	struct snap_labels labels;
	sqlite3 *db;

	make_layer(A64, "a.txt");
	make_layer(B64, "b.txt");
	make_image(B64);
	snap_free(s);
	s = NULL;
	snprintf(path, sizeof(path), "%s/metadata.db", state);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, old, NULL, NULL, NULL), SQLITE_OK);
	snprintf(tree, sizeof(tree), "%s/layers/sha256:%s", root, A64);
	sql = sqlite3_mprintf("INSERT INTO snapshots VALUES (1, 'sha256:%s', NULL, 3, 1, 1, %Q);"
			      "INSERT INTO labels VALUES (1, '%s', 'sha256:%s');",
			      A64, tree, SNAP_LABEL_REF, A64);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_free(sql);
	sqlite3_close(db);
	snprintf(path, sizeof(path), "%s/snapshots/1", state);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(symlink(tree, fs_of(1)), 0);

	ck_assert_int_eq(snap_open(state, root, &s), 0);
	/* its remote snapshot stays the symlink to the tree */
	ck_assert_ptr_null(image_of("sha256:" A64));
	expect_mount("sha256:" A64, "bind @/snapshots/1/fs ro,rbind");
	expect_symlink_to_tree(1, A64);
	/* a layer with an image, on it: recorded with its image, mounted */
	labels = one_label(&l, SNAP_LABEL_REF, CHAIN_AB);
	ck_assert_int_eq(snap_prepare(s, "ns/1/extract-1 b", "sha256:" A64, &labels, false, &m),
			 -EEXIST);
	ck_assert_int_eq(snap_erofs_is_mounted(fs_of(2)), 1);
	image = image_of(CHAIN_AB);
	snprintf(path, sizeof(path), "%s/layers/sha256:%s.erofs", root, B64);
	ck_assert_str_eq(image, path);
	free(image);
}
END_TEST

START_TEST(test_update_labels)
{
	struct snap_label l[2] = {{(char *)"a", (char *)"1"}, {(char *)"b", (char *)"2"}};
	struct snap_labels labels = {.items = l, .len = 2};
	struct snap_info in = {.name = (char *)"k"}, out;
	char *set_c[] = {(char *)"labels.c"}, *del_a[] = {(char *)"labels.a"},
	     *bad[] = {(char *)"parent"};
	struct snap_mounts m;

	ck_assert_int_eq(snap_prepare(s, "k", NULL, &labels, false, &m), 0);
	snap_mounts_release(&m);
	in.labels = (struct snap_labels){.items = (struct snap_label[]){{(char *)"c", (char *)"3"}},
					 .len = 1};
	ck_assert_int_eq(snap_update(s, &in, set_c, 1, &out), 0);
	ck_assert_uint_eq(out.labels.len, 3);
	ck_assert_str_eq(snap_labels_get(&out.labels, "c"), "3");
	ck_assert_int_gt(out.updated_ns, out.created_ns);
	snap_info_release(&out);
	ck_assert_int_eq(snap_update(s, &in, del_a, 1, &out), 0);
	ck_assert_ptr_null(snap_labels_get(&out.labels, "a"));
	ck_assert_uint_eq(out.labels.len, 2);
	snap_info_release(&out);
	/* no paths: the labels become INFO's */
	ck_assert_int_eq(snap_update(s, &in, NULL, 0, &out), 0);
	ck_assert_uint_eq(out.labels.len, 1);
	snap_info_release(&out);
	ck_assert_int_eq(snap_update(s, &in, bad, 1, &out), -EINVAL);
	in.name = (char *)"none";
	ck_assert_int_eq(snap_update(s, &in, NULL, 0, &out), -ENOENT);
}
END_TEST

static int count_one(const struct snap_info *info, void *ctx)
{
	(*(int *)ctx)++;
	return 0;
}

START_TEST(test_walk_cleanup_and_reopen)
{
	struct snap_mounts m;
	struct snap_info info;
	char path[1200];
	int n = 0;

	ck_assert_int_eq(snap_prepare(s, "k1", NULL, NULL, false, &m), 0);
	snap_mounts_release(&m);
	ck_assert_int_eq(snap_prepare(s, "k2", NULL, NULL, true, &m), 0);
	snap_mounts_release(&m);
	ck_assert_int_eq(snap_walk(s, count_one, &n), 0);
	ck_assert_int_eq(n, 2);
	/* what a crash between the row and the directory leaves */
	snprintf(path, sizeof(path), "%s/snapshots/77", state);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(snap_cleanup(s), 0);
	ck_assert(!test_path_exists(path));
	snprintf(path, sizeof(path), "%s/snapshots/1/fs", state);
	ck_assert(test_path_exists(path));
	snap_free(s);
	ck_assert_int_eq(snap_open(state, root, &s), 0);
	ck_assert_int_eq(snap_stat(s, "k2", &info), 0);
	ck_assert_int_eq(info.kind, SNAP_KIND_VIEW);
	snap_info_release(&info);
}
END_TEST

/* ---- the protobuf side ------------------------------------------------ */

static void call(const char *method, const ProtobufCMessage *msg, struct snap_rpc_reply *reply)
{
	uint8_t buf[16384];
	size_t len = protobuf_c_message_pack(msg, buf);

	snap_rpc_handle(s, method, buf, len, reply);
}

START_TEST(test_rpc_prepare_stat_list)
{
	Containerd__Services__Snapshots__V1__PrepareSnapshotRequest prep =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__INIT;
	Containerd__Services__Snapshots__V1__StatSnapshotRequest stat =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_REQUEST__INIT;
	Containerd__Services__Snapshots__V1__ListSnapshotsRequest list =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_REQUEST__INIT;
	Containerd__Services__Snapshots__V1__PrepareSnapshotResponse *pr;
	Containerd__Services__Snapshots__V1__StatSnapshotResponse *sr;
	Containerd__Services__Snapshots__V1__ListSnapshotsResponse *lr;
	Containerd__Services__Snapshots__V1__PrepareSnapshotRequest__LabelsEntry
		e = CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__LABELS_ENTRY__INIT,
		*ep = &e;
	struct snap_rpc_reply reply;
	char key[32], want[1200];
	int i;

	e.key = (char *)"x";
	e.value = (char *)"y";
	prep.key = (char *)"k";
	prep.n_labels = 1;
	prep.labels = &ep;
	call(SNAP_RPC_SERVICE "Prepare", &prep.base, &reply);
	ck_assert_int_eq(reply.status, GRPC_STATUS_OK);
	ck_assert_uint_eq(reply.n_messages, 1);
	pr = containerd__services__snapshots__v1__prepare_snapshot_response__unpack(
		NULL, reply.messages[0].len, reply.messages[0].data);
	ck_assert_ptr_nonnull(pr);
	ck_assert_uint_eq(pr->n_mounts, 1);
	ck_assert_str_eq(pr->mounts[0]->type, "bind");
	snprintf(want, sizeof(want), "%s/snapshots/1/fs", state);
	ck_assert_str_eq(pr->mounts[0]->source, want);
	ck_assert_uint_eq(pr->mounts[0]->n_options, 2);
	ck_assert_str_eq(pr->mounts[0]->options[0], "rw");
	containerd__services__snapshots__v1__prepare_snapshot_response__free_unpacked(pr, NULL);
	snap_rpc_reply_release(&reply);

	call(SNAP_RPC_SERVICE "Prepare", &prep.base, &reply);
	ck_assert_int_eq(reply.status, GRPC_STATUS_ALREADY_EXISTS);
	ck_assert_str_eq(reply.message, "prepare 'k': File exists");
	ck_assert_uint_eq(reply.n_messages, 0);

	stat.key = (char *)"k";
	call(SNAP_RPC_SERVICE "Stat", &stat.base, &reply);
	ck_assert_int_eq(reply.status, GRPC_STATUS_OK);
	sr = containerd__services__snapshots__v1__stat_snapshot_response__unpack(
		NULL, reply.messages[0].len, reply.messages[0].data);
	ck_assert_ptr_nonnull(sr);
	ck_assert_str_eq(sr->info->name, "k");
	ck_assert_int_eq(sr->info->kind, CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__ACTIVE);
	ck_assert_uint_eq(sr->info->n_labels, 1);
	ck_assert_str_eq(sr->info->labels[0]->value, "y");
	ck_assert_int_gt(sr->info->created_at->seconds, 1700000000);
	containerd__services__snapshots__v1__stat_snapshot_response__free_unpacked(sr, NULL);
	snap_rpc_reply_release(&reply);
	stat.key = (char *)"none";
	call(SNAP_RPC_SERVICE "Stat", &stat.base, &reply);
	ck_assert_int_eq(reply.status, GRPC_STATUS_NOT_FOUND);

	/* List streams: 150 snapshots are two messages, 100 and 50 */
	prep.n_labels = 0;
	for (i = 1; i < 150; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		prep.key = key;
		call(SNAP_RPC_SERVICE "Prepare", &prep.base, &reply);
		ck_assert_int_eq(reply.status, GRPC_STATUS_OK);
		snap_rpc_reply_release(&reply);
	}
	call(SNAP_RPC_SERVICE "List", &list.base, &reply);
	ck_assert_int_eq(reply.status, GRPC_STATUS_OK);
	ck_assert_uint_eq(reply.n_messages, 2);
	lr = containerd__services__snapshots__v1__list_snapshots_response__unpack(
		NULL, reply.messages[1].len, reply.messages[1].data);
	ck_assert_ptr_nonnull(lr);
	ck_assert_uint_eq(lr->n_info, 50);
	ck_assert_str_eq(lr->info[49]->name, "k149");
	containerd__services__snapshots__v1__list_snapshots_response__free_unpacked(lr, NULL);
	snap_rpc_reply_release(&reply);
}
END_TEST

START_TEST(test_rpc_hostile_input)
{
	Containerd__Services__Snapshots__V1__PrepareSnapshotRequest prep =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__INIT;
	Containerd__Services__Snapshots__V1__RemoveSnapshotRequest rm =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__REMOVE_SNAPSHOT_REQUEST__INIT;
	static const uint8_t garbage[] = {0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 'k'};
	struct snap_rpc_reply reply;
	static uint8_t big[SNAP_RPC_REQUEST_MAX + 1];

	snap_rpc_handle(s, SNAP_RPC_SERVICE "Prepare", garbage, sizeof(garbage), &reply);
	ck_assert_int_eq(reply.status, GRPC_STATUS_INVALID_ARGUMENT);
	ck_assert_str_eq(reply.message, "malformed request");
	snap_rpc_handle(s, SNAP_RPC_SERVICE "Prepare", big, sizeof(big), &reply);
	ck_assert_int_eq(reply.status, GRPC_STATUS_INVALID_ARGUMENT);
	snap_rpc_handle(s, SNAP_RPC_SERVICE "Destroy", garbage, 0, &reply);
	ck_assert_int_eq(reply.status, GRPC_STATUS_UNIMPLEMENTED);
	snap_rpc_handle(s, "/containerd.services.content.v1.Content/Info", garbage, 0, &reply);
	ck_assert_int_eq(reply.status, GRPC_STATUS_UNIMPLEMENTED);
	/* an empty key, a parent with .. in it that names nothing */
	call(SNAP_RPC_SERVICE "Prepare", &prep.base, &reply);
	ck_assert_int_eq(reply.status, GRPC_STATUS_INVALID_ARGUMENT);
	prep.key = (char *)"k";
	prep.parent = (char *)"../../etc";
	call(SNAP_RPC_SERVICE "Prepare", &prep.base, &reply);
	ck_assert_int_eq(reply.status, GRPC_STATUS_NOT_FOUND);
	rm.key = (char *)"k";
	call(SNAP_RPC_SERVICE "Remove", &rm.base, &reply);
	ck_assert_int_eq(reply.status, GRPC_STATUS_NOT_FOUND);
}
END_TEST

static Suite *snapshotter_suite(void)
{
	Suite *suite = suite_create("snapshotter");
	TCase *tc = tcase_create("snapshots");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_unchecked_fixture(tc, NULL, sweep_failed_mounts);
	tcase_add_test(tc, test_chain_id);
	tcase_add_test(tc, test_find_layer);
	tcase_add_test(tc, test_mounts_like_overlayfs_snapshotter);
	tcase_add_test(tc, test_errors_of_each_call);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_remote_layers);
	tcase_add_test(tc, test_remote_needs_the_parent_chain);
	tcase_add_test(tc, test_remote_erofs_images);
	tcase_add_test(tc, test_remote_erofs_fallback);
	tcase_add_test(tc, test_remote_erofs_shared_by_the_host);
	tcase_add_test(tc, test_catalogue_before_images);
	tcase_add_test(tc, test_update_labels);
	tcase_add_test(tc, test_walk_cleanup_and_reopen);
	tcase_add_test(tc, test_rpc_prepare_stat_list);
	tcase_add_test(tc, test_rpc_hostile_input);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	return test_run(snapshotter_suite());
}
