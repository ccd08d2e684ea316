/*
 * make_store: fill a store with made-up images, for the integration
 * scripts. Each argument after the store is REPOSITORY:TAG:LAYERS:BYTES,
 * optionally :LAST_USED (seconds since the epoch). Prints each manifest
 * digest.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

static int make_one(struct store *s, char *spec, uint32_t seed)
{
	char *fields[5] = {0}, *p;
	struct digest manifest;
	int n = 0, r;

	while (n < 5 && (p = strsep(&spec, ":")))
		fields[n++] = p;
	if (n < 4) {
		fprintf(stderr, "make_store: bad spec (want REPO:TAG:LAYERS:BYTES[:WHEN])\n");
		return -EINVAL;
	}
	r = fixture_make_image(s, fields[0], fields[1], (int)strtol(fields[2], NULL, 10),
			       strtoull(fields[3], NULL, 10), seed, NULL, NULL, &manifest);
	if (r == 0 && n == 5)
		r = index_touch_blob(store_index(s), &manifest, strtoll(fields[4], NULL, 10));
	if (r == 0)
		printf("sha256:%s\n", manifest.hex);
	return r;
}

int main(int argc, char **argv)
{
	struct store *s;
	int i, r;

	if (argc < 2) {
		fprintf(stderr, "usage: make_store STORE [REPO:TAG:LAYERS:BYTES[:WHEN]]...\n");
		return 2;
	}
	r = store_open(argv[1], &s);
	if (r < 0) {
		fprintf(stderr, "make_store: cannot open '%s': %s\n", argv[1], strerror(-r));
		return 1;
	}
	for (i = 2; i < argc && r == 0; i++)
		r = make_one(s, argv[i], (uint32_t)i);
	store_close(s);
	if (r < 0)
		fprintf(stderr, "make_store: %s\n", strerror(-r));
	return r < 0 ? 1 : 0;
}
