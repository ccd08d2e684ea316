/* The snapshotter suites' shared fixture: see snap_fixture.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <check.h>

#include "snap_fixture.h"
#include "testutil.h"

char *dir;
char state[1024], root[1024];
struct snap *s;

void setup(void)
{
	char path[1100];

	dir = test_mkdtemp();
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(path, sizeof(path), "%s/layers", root);
	ck_assert_int_eq(mkdir(root, 0755), 0);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	ck_assert_int_eq(snap_open(state, root, &s), 0);
}

/* Detach every mount under the scratch directory (EROFS images, overlays). */
static void umount_under_dir(void)
{
	char line[4096], point[4096];
	size_t len = strlen(dir);
	FILE *f = fopen("/proc/mounts", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*s %4095s", point) == 1 && !strncmp(point, dir, len))
			umount2(point, MNT_DETACH);
	if (f)
		fclose(f);
}

void sweep_failed_mounts(void)
{
	const char *base = getenv("TMPDIR");
	char prefix[1100], line[4096], point[4096];
	FILE *f = fopen("/proc/mounts", "r");

	snprintf(prefix, sizeof(prefix), "%s/dindfs-test.", base ? base : "/tmp");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*s %4095s", point) == 1 &&
		    !strncmp(point, prefix, strlen(prefix)) && strstr(point, "/state/snapshots/"))
			umount2(point, MNT_DETACH);
	if (f)
		fclose(f);
}

void teardown(void)
{
	snap_free(s);
	umount_under_dir();
	test_rmdir(dir);
}

void make_layer(const char *hex, const char *file)
{
	char path[1300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/layers/sha256:%s", root, hex);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/layers/sha256:%s/%s", root, hex, file);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(file, f);
	fclose(f);
}

void make_image(const char *hex)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd),
		 "mkfs.erofs --quiet --preserve-mtime '%s/layers/sha256:%s.erofs' "
		 "'%s/layers/sha256:%s'",
		 root, hex, root, hex);
	ck_assert_int_eq(system(cmd), 0);
}
