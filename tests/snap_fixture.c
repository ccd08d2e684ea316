/* The snapshotter suites' shared fixture: see snap_fixture.h. */
#include <stdio.h>
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

void teardown(void)
{
	snap_free(s);
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
