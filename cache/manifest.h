/*
 * manifest: parse and check image manifests as registries serve them.
 *
 * Four kinds of document are understood: the Docker schema2 manifest and
 * manifest list, and the OCI image manifest and image index. An image
 * manifest names a config blob and its layers; a list or index names one
 * manifest per platform. Everything else (schema1, OCI artifact manifests,
 * unknown vendor types) is refused, so that whatever this module accepts
 * the rest of dindfs can store, serve and walk.
 *
 * The bytes are outside input: the document is bounded (MANIFEST_MAX_SIZE),
 * as are the number of descriptors and every string kept, JSON is parsed by
 * jansson with duplicate keys refused, and every digest is checked with
 * digest_parse(). Fields that dindfs has no use for (annotations, urls,
 * subject, artifactType, platform features) are ignored.
 *
 * Functions return 0 or a negative errno and never print. Output parameters
 * are untouched on failure.
 */
#ifndef DINDFS_MANIFEST_H
#define DINDFS_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

/* The four manifest media types. */
#define MANIFEST_MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MANIFEST_MEDIA_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define MANIFEST_MEDIA_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define MANIFEST_MEDIA_OCI_INDEX       "application/vnd.oci.image.index.v1+json"

/* Schema1, refused with -EPROTONOSUPPORT. Named so that callers can spot it. */
#define MANIFEST_MEDIA_DOCKER_SCHEMA1 "application/vnd.docker.distribution.manifest.v1+json"
#define MANIFEST_MEDIA_DOCKER_SCHEMA1_SIGNED                                                       \
	"application/vnd.docker.distribution.manifest.v1+prettyjws"

/* Config and layer media types commonly seen in image manifests. */
#define MANIFEST_MEDIA_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MANIFEST_MEDIA_DOCKER_LAYER  "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MANIFEST_MEDIA_DOCKER_FOREIGN_LAYER                                                        \
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
#define MANIFEST_MEDIA_OCI_CONFIG     "application/vnd.oci.image.config.v1+json"
#define MANIFEST_MEDIA_OCI_LAYER      "application/vnd.oci.image.layer.v1.tar"
#define MANIFEST_MEDIA_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MANIFEST_MEDIA_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define MANIFEST_MEDIA_OCI_EMPTY      "application/vnd.oci.empty.v1+json"

/*
 * The Accept header value for manifest requests: the four types above and
 * nothing else, so that a registry never down-converts to schema1.
 */
#define MANIFEST_ACCEPT                                                                            \
	MANIFEST_MEDIA_DOCKER_MANIFEST ", " MANIFEST_MEDIA_DOCKER_LIST                             \
				       ", " MANIFEST_MEDIA_OCI_MANIFEST                            \
				       ", " MANIFEST_MEDIA_OCI_INDEX

/* Largest document manifest_parse() accepts; registries use the same bound. */
#define MANIFEST_MAX_SIZE (4u << 20)
/* Most descriptors (layers, or children of an index) one document may hold. */
#define MANIFEST_MAX_DESCRIPTORS 10000
/* Longest media type kept (RFC 6838: 127 + "/" + 127). */
#define MANIFEST_MEDIA_TYPE_MAX 255
/* Longest platform field kept (os, architecture, variant, os.version). */
#define MANIFEST_PLATFORM_FIELD_MAX 63
/* Room for "os/architecture/variant" and its NUL. */
#define MANIFEST_PLATFORM_STRING_SIZE (3 * (MANIFEST_PLATFORM_FIELD_MAX + 1))

enum manifest_kind {
	MANIFEST_IMAGE, /* Docker schema2 manifest or OCI image manifest */
	MANIFEST_INDEX, /* Docker manifest list or OCI image index */
};

/*
 * A platform as an index names it, with Go's GOOS/GOARCH spelling
 * ("linux", "arm64", "v8"). Empty strings for fields not given.
 */
struct manifest_platform {
	char os[MANIFEST_PLATFORM_FIELD_MAX + 1];
	char architecture[MANIFEST_PLATFORM_FIELD_MAX + 1];
	char variant[MANIFEST_PLATFORM_FIELD_MAX + 1];
	char os_version[MANIFEST_PLATFORM_FIELD_MAX + 1]; /* kept, not used for matching */
};

struct manifest_descriptor {
	char media_type[MANIFEST_MEDIA_TYPE_MAX + 1]; /* "" when the descriptor has none */
	struct digest digest;
	int64_t size;			   /* >= 0 */
	bool has_platform;		   /* children of an index only */
	struct manifest_platform platform; /* zeroed unless has_platform */
};

struct manifest {
	enum manifest_kind kind;
	/* One of the four MANIFEST_MEDIA_* manifest types, spelled as above. */
	char media_type[MANIFEST_MEDIA_TYPE_MAX + 1];
	/* MANIFEST_IMAGE: the config blob and the layers, base layer first. */
	struct manifest_descriptor config;
	struct manifest_descriptor *layers;
	size_t n_layers;
	/* MANIFEST_INDEX: one manifest per platform, in document order. */
	struct manifest_descriptor *manifests;
	size_t n_manifests;
};

/*
 * Parse and check len bytes of a manifest. content_type is the Content-Type
 * the registry (or an xattr) gave, parameters allowed; NULL or "" when
 * unknown. "application/json", "text/plain" and "application/octet-stream"
 * count as unknown.
 *
 * The type is the body's mediaType when present, else content_type, else
 * guessed from the fields: "manifests" means an OCI index, "config" and
 * "layers" an OCI image manifest. A body and content_type that disagree on
 * the kind (manifest against index) are refused; Docker against OCI of the
 * same kind is not, and the body wins.
 *
 * Returns 0 and a manifest to free with manifest_free(), or
 *   -EFBIG            len > MANIFEST_MAX_SIZE
 *   -EPROTONOSUPPORT  schema1, a schemaVersion other than 2, or a media type
 *                     (body or content_type) that is not one of the four
 *   -E2BIG            more than MANIFEST_MAX_DESCRIPTORS descriptors
 *   -EINVAL           anything else malformed: bad JSON, duplicate keys, a
 *                     missing or mistyped field, a bad digest, a missing or
 *                     negative size, an over-long string, kinds that disagree
 *   -ENOMEM
 */
int manifest_parse(const void *data, size_t len, const char *content_type, struct manifest **ret);

/* Accepts NULL. */
void manifest_free(struct manifest *m);

/*
 * Append to ret (initialised by the caller, empty or not) what m needs:
 * the config then the layers of an image manifest, or the child manifests
 * of an index. These are the edges for index_add_edges(). A digest may
 * appear twice (an image can repeat a layer). On failure (-ENOMEM) ret
 * holds what it held before.
 */
int manifest_children(const struct manifest *m, struct digest_list *ret);

/*
 * Parse "os/arch[/variant]" ("linux/amd64", "linux/arm64/v8"). Fields are
 * lowercased and may hold [a-z0-9._-]; aliases such as "x86_64" are kept
 * as written and understood when matching. -EINVAL otherwise.
 */
int manifest_platform_parse(const char *s, struct manifest_platform *ret);

/* Write "os/arch[/variant]" into buf. */
void manifest_platform_format(const struct manifest_platform *p,
			      char buf[MANIFEST_PLATFORM_STRING_SIZE]);

/*
 * The platform this process runs on: "linux" and uname()'s machine mapped
 * by manifest_platform_from_machine().
 */
void manifest_platform_host(struct manifest_platform *ret);

/*
 * Map a uname() machine name to Go's spelling, os "linux": x86_64 is amd64,
 * aarch64 is arm64 variant v8, armv7l is arm v7, i686 is 386; ppc64le,
 * s390x and riscv64 stay. An unknown name is kept, lowercased and cut to
 * MANIFEST_PLATFORM_FIELD_MAX.
 */
void manifest_platform_from_machine(const char *machine, struct manifest_platform *ret);

/*
 * Pick the child of an index that suits want (NULL for the host), as
 * containerd's platform matcher does: both sides are normalised (amd64 v1
 * is amd64, arm64 v8 is arm64, arm is arm v7, x86_64 is amd64, ...); os and
 * architecture must be equal; an equal variant is preferred, then the
 * nearest older one that still runs (arm v7 takes v6, amd64 v3 takes v2).
 * Children without a platform, or whose os or architecture is "unknown"
 * (attestations), are never picked. Ties go to the first in the index.
 *
 * *ret points into index. -EINVAL if index is not an index, -ENOENT when
 * no child fits.
 */
int manifest_select_platform(const struct manifest *index, const struct manifest_platform *want,
			     const struct manifest_descriptor **ret);

#endif
