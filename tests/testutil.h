/*
 * testutil: helpers shared by the Check suites — temp directories that
 * clean themselves up, reproducible random bytes, file checks.
 */
#ifndef DINDFS_TESTUTIL_H
#define DINDFS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "store.h"

/* A fresh directory under $TMPDIR; removed (recursively) by test_rmdir. */
char *test_mkdtemp(void);
void test_rmdir(char *dir);

/* len bytes from a fixed-seed generator, so failures reproduce. Caller frees. */
unsigned char *test_random_bytes(size_t len, uint32_t seed);

/* The digest of a buffer, or a test failure. */
struct digest test_digest_of(const void *data, size_t len);

bool test_path_exists(const char *path);
/* Number of entries (not . or ..) in a directory; -1 when it cannot be read. */
int test_count_entries(const char *dir);

/*
 * Put a small image into a store: n_layers random layers of layer_size
 * bytes (seeded by seed), a config, and a manifest that names them, with
 * the edges and the tag registry/repository:tag. shared_layer, when not
 * NULL, is added as one more layer. Returns the manifest's digest.
 */
struct digest test_make_image(struct store *s, const char *repository, const char *tag,
			      int n_layers, size_t layer_size, uint32_t seed,
			      const struct digest *shared_layer, struct digest *ret_layers);

/*
 * data as one gzip member (libarchive's raw format, gzip filter), in a
 * malloc'd buffer of *ret_len bytes, or a test failure. Caller frees.
 */
unsigned char *test_gzip(const void *data, size_t len, size_t *ret_len);

/* Run a Check suite (fork mode) and return main()'s exit status. */
struct Suite;
int test_run(struct Suite *suite);

#endif
