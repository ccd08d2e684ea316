/*
 * fixture: build small images straight into a store, for tests that need
 * a populated store before the registry client is in play. Used by the
 * Check suites (through testutil) and by the make_store tool that the
 * integration scripts call.
 */
#ifndef DINDFS_FIXTURE_H
#define DINDFS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define FIXTURE_MAX_LAYERS 60

/* len bytes from a fixed-seed generator (xorshift32), into buf. */
void fixture_random_bytes(unsigned char *buf, size_t len, uint32_t seed);

/*
 * Put an image into the store: n_layers random layers of layer_size bytes
 * and a config (all seeded by seed), shared_layer (when not NULL) as one
 * more layer, and a manifest naming them; record the edges and the tag
 * docker.io/<repository>:<tag>. Returns 0 or -errno.
 */
int fixture_make_image(struct store *s, const char *repository, const char *tag, int n_layers,
		       size_t layer_size, uint32_t seed, const struct digest *shared_layer,
		       struct digest *ret_layers, struct digest *ret_manifest);

#endif
