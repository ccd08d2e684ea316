/*
 * What both snapshotter suites start from: a scratch directory with a
 * catalogue (state) and a mount root holding layers/, opened as `s`, and
 * layer trees made as the host daemon leaves them.
 */
#ifndef DINDFS_TESTS_SNAP_FIXTURE_H
#define DINDFS_TESTS_SNAP_FIXTURE_H

#include "snapshotter.h"

extern char *dir;
extern char state[1024], root[1024];
extern struct snap *s;

/* Check fixtures: make the directories and open `s`; close, unmount what
 * is mounted under them, and remove. */
void setup(void);
void teardown(void);
/*
 * An unchecked fixture (it runs in the suite's own process): detach the
 * snapshot mounts a failed test left (Check does not run a checked
 * teardown after a failure in fork mode), those under
 * TMPDIR/dindfs-test.XXXXXX/state/snapshots/ of this process's children.
 */
void sweep_failed_mounts(void);

/* ROOT/layers/sha256:HEX/ with one file FILE holding its own name. */
void make_layer(const char *hex, const char *file);
/* ROOT/layers/sha256:HEX.erofs, the EROFS image of that tree (mkfs.erofs). */
void make_image(const char *hex);

#endif
