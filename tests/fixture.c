/*
 * fixture: images made straight in a store (see fixture.h).
 */
#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void fixture_random_bytes(unsigned char *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed ? seed : 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (unsigned char)x;
	}
}

/* Not a real manifest: the store and GC only care about its bytes and edges. */
static int put_manifest(struct store *s, const char *repository, const char *tag,
			const struct digest *children, int n, struct digest *ret)
{
	char body[(FIXTURE_MAX_LAYERS + 2) * (DIGEST_HEX_LEN + 4) + 600];
	size_t used;
	int i, k;

	k = snprintf(body, sizeof(body), "{\"image\":\"%s:%s\",\"blobs\":[", repository, tag);
	if (k < 0 || (size_t)k >= sizeof(body))
		return -ENAMETOOLONG;
	used = (size_t)k;
	for (i = 0; i < n; i++) {
		k = snprintf(body + used, sizeof(body) - used, "%s\"%s\"", i ? "," : "",
			     children[i].hex);
		if (k < 0 || (size_t)k >= sizeof(body) - used)
			return -ENAMETOOLONG;
		used += (size_t)k;
	}
	k = snprintf(body + used, sizeof(body) - used, "]}");
	if (k < 0 || (size_t)k >= sizeof(body) - used)
		return -ENAMETOOLONG;
	used += (size_t)k;
	return store_put(s, body, used, NULL, "application/vnd.oci.image.manifest.v1+json", ret);
}

int fixture_make_image(struct store *s, const char *repository, const char *tag, int n_layers,
		       size_t layer_size, uint32_t seed, const struct digest *shared_layer,
		       struct digest *ret_layers, struct digest *ret_manifest)
{
	struct digest children[FIXTURE_MAX_LAYERS + 2], manifest;
	unsigned char *bytes;
	int i, n = 0, r = 0;

	if (n_layers < 0 || n_layers > FIXTURE_MAX_LAYERS)
		return -EINVAL;
	bytes = malloc(layer_size ? layer_size : 1);
	if (!bytes)
		return -ENOMEM;
	/* the layers, then the config */
	for (i = 0; i <= n_layers && r == 0; i++) {
		fixture_random_bytes(bytes, layer_size, seed * 131 + (uint32_t)i);
		r = store_put(s, bytes, layer_size, NULL, NULL, &children[n]);
		if (r == 0 && ret_layers && i < n_layers)
			ret_layers[i] = children[n];
		n++;
	}
	free(bytes);
	if (r < 0)
		return r;
	if (shared_layer)
		children[n++] = *shared_layer;
	r = put_manifest(s, repository, tag, children, n, &manifest);
	if (r == 0)
		r = index_add_edges(store_index(s), &manifest, children, (size_t)n);
	if (r == 0)
		r = index_put_tag(store_index(s), "docker.io", repository, tag, &manifest,
				  time(NULL));
	if (r == 0 && ret_manifest)
		*ret_manifest = manifest;
	return r;
}
