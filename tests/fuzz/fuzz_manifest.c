/*
 * fuzz_manifest: manifest_parse() on arbitrary bytes, with no Content-Type
 * and with one picked by the input's length, then on success the
 * invariants the rest of dindfs relies on: children lists that match the
 * kind, selection that returns a child of the index, bounded strings.
 * The same bytes, cut short, also go to manifest_platform_parse() and
 * manifest_platform_from_machine().
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

static const char *const content_types[] = {
	NULL,
	"",
	"application/json",
	MANIFEST_MEDIA_DOCKER_MANIFEST,
	MANIFEST_MEDIA_DOCKER_LIST,
	MANIFEST_MEDIA_OCI_MANIFEST,
	MANIFEST_MEDIA_OCI_INDEX "; charset=utf-8",
	MANIFEST_MEDIA_DOCKER_SCHEMA1_SIGNED,
};

static const char *const platforms[] = {
	"linux/amd64",	  "linux/arm64/v8", "linux/arm/v7",  "linux/arm/v5",
	"linux/amd64/v3", "linux/riscv64",  "windows/amd64", "unknown/unknown",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void check_string(const char *s, size_t size)
{
	if (strnlen(s, size) == size)
		abort();
}

static void check_descriptor(const struct manifest_descriptor *d)
{
	check_string(d->media_type, sizeof(d->media_type));
	check_string(d->platform.os, sizeof(d->platform.os));
	check_string(d->platform.architecture, sizeof(d->platform.architecture));
	check_string(d->platform.variant, sizeof(d->platform.variant));
	check_string(d->platform.os_version, sizeof(d->platform.os_version));
	if (d->size < 0 || strlen(d->digest.hex) != DIGEST_HEX_LEN)
		abort();
}

static void check_manifest(const struct manifest *m)
{
	struct digest_list children = {0};
	const struct manifest_descriptor *d;
	struct manifest_platform want;
	size_t i, expect;

	check_string(m->media_type, sizeof(m->media_type));
	if (m->n_layers + m->n_manifests > MANIFEST_MAX_DESCRIPTORS)
		abort();
	if (m->kind == MANIFEST_IMAGE) {
		if (m->n_manifests != 0)
			abort();
		check_descriptor(&m->config);
		expect = 1 + m->n_layers;
	} else {
		if (m->n_layers != 0)
			abort();
		expect = m->n_manifests;
	}
	for (i = 0; i < m->n_layers; i++)
		check_descriptor(&m->layers[i]);
	for (i = 0; i < m->n_manifests; i++)
		check_descriptor(&m->manifests[i]);

	if (manifest_children(m, &children) == 0 && children.len != expect)
		abort();
	digest_list_free(&children);

	for (i = 0; i <= COUNT(platforms); i++) {
		int r;

		/* the last round asks for the host */
		if (i < COUNT(platforms) && manifest_platform_parse(platforms[i], &want) < 0)
			abort();
		r = manifest_select_platform(m, i < COUNT(platforms) ? &want : NULL, &d);
		if (m->kind == MANIFEST_IMAGE) {
			if (r != -EINVAL)
				abort();
			continue;
		}
		if (r == 0 &&
		    (d < m->manifests || d >= m->manifests + m->n_manifests || !d->has_platform))
			abort();
		if (r != 0 && r != -ENOENT)
			abort();
	}
}

static void parse_and_check(const uint8_t *data, size_t size, const char *content_type)
{
	struct manifest *m = NULL;

	if (manifest_parse(data, size, content_type, &m) == 0) {
		check_manifest(m);
		manifest_free(m);
	} else if (m) {
		abort(); /* untouched on failure */
	}
}

static void fuzz_platform(const uint8_t *data, size_t size)
{
	char s[MANIFEST_PLATFORM_STRING_SIZE + 8], out[MANIFEST_PLATFORM_STRING_SIZE];
	struct manifest_platform p, again;

	if (size >= sizeof(s))
		size = sizeof(s) - 1;
	memcpy(s, data, size);
	s[size] = '\0';
	manifest_platform_from_machine(s, &p);
	check_string(p.architecture, sizeof(p.architecture));
	if (manifest_platform_parse(s, &p) < 0)
		return;
	/* what parses, formats and parses back the same */
	manifest_platform_format(&p, out);
	if (manifest_platform_parse(out, &again) < 0 || strcmp(p.os, again.os) ||
	    strcmp(p.architecture, again.architecture) || strcmp(p.variant, again.variant))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_and_check(data, size, NULL);
	parse_and_check(data, size, content_types[size % COUNT(content_types)]);
	fuzz_platform(data, size);
	return 0;
}
