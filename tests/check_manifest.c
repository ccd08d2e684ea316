/*
 * Unit tests for cache/manifest: the four manifest types as registries
 * serve them, the refusals, children lists, and platform selection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <check.h>

#include "manifest.h"
#include "testutil.h"

#define H_CONFIG "b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910"
#define H_L1	 "2804bad6fe94a55f18b2b37e300919a5fd517b95aa81e95db574c0ba069a3740"
#define H_L2	 "8a1cee436cbac1489a1883c9d886fcfc46f302c55ed4106ae31729e4f4eb9041"
#define H_L3	 "10dacdccfe877dc064d57442e6fa7a4e3085dc94e11a29819c2290fc3d788724"
#define H_AMD64	 "5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51"
#define H_ARM64	 "f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265"
#define H_ARMV7	 "5ba6c8710dd1369ce61603ab9b7a81b25f92d4a9f74956ab72a7ea75884f07ee"
#define H_ATT1	 "35143e7a5239313ee73b81f2f99b785aaed42d9572d1f797dc19fa14aa6b081f"
#define H_ATT2	 "dd86e2310bdf3ab45816029e264c4745a2a028961719031597877887a8f6f1df"
#define H_ARMV6	 "50b8c3e55c3365d624e7e10ae6a783d525e02b16924d4dcff0611f3e2544efaf"
#define H_PPC	 "6ff39ad64fc78addfe205e809111bee54caf0f35447e077658ed3c9b7025c3af"
#define H_S390X	 "77d3a5496288a2cd8724282d24f862ab1ea470f3aba13cadb9e3c105aaacf20b"
#define H_WIN	 "823a3180dad3c9c3c4dea43ab2baf9f04bac9c3a7711745ff5f702551496d735"

/* What `docker push` of a two-layer image on Docker 20.10 sends. */
#define DOCKER_MANIFEST                                                                            \
	"{\n"                                                                                      \
	"   \"schemaVersion\": 2,\n"                                                               \
	"   \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n"            \
	"   \"config\": {\n"                                                                       \
	"      \"mediaType\": \"application/vnd.docker.container.image.v1+json\",\n"               \
	"      \"size\": 1472,\n"                                                                  \
	"      \"digest\": \"sha256:" H_CONFIG "\"\n"                                              \
	"   },\n"                                                                                  \
	"   \"layers\": [\n"                                                                       \
	"      {\n"                                                                                \
	"         \"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\",\n"         \
	"         \"size\": 29124181,\n"                                                           \
	"         \"digest\": \"sha256:" H_L1 "\"\n"                                               \
	"      },\n"                                                                               \
	"      {\n"                                                                                \
	"         \"mediaType\": \"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\",\n" \
	"         \"size\": 1654613376,\n"                                                         \
	"         \"digest\": \"sha256:" H_L2 "\",\n"                                              \
	"         \"urls\": [\"https://mcr.microsoft.com/v2/windows/blobs/sha256:" H_L2 "\"]\n"    \
	"      }\n"                                                                                \
	"   ]\n"                                                                                   \
	"}"

/* A Docker Hub manifest list, as for an official image. */
#define DOCKER_LIST                                                                                \
	"{\"manifests\":[{\"digest\":\"sha256:" H_AMD64 "\","                                      \
	"\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","                  \
	"\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"},\"size\":529},"                \
	"{\"digest\":\"sha256:" H_ARMV6 "\","                                                      \
	"\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","                  \
	"\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v6\"},"             \
	"\"size\":529},"                                                                           \
	"{\"digest\":\"sha256:" H_ARMV7 "\","                                                      \
	"\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","                  \
	"\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\"},"             \
	"\"size\":529},"                                                                           \
	"{\"digest\":\"sha256:" H_ARM64 "\","                                                      \
	"\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","                  \
	"\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"},"           \
	"\"size\":529},"                                                                           \
	"{\"digest\":\"sha256:" H_PPC "\","                                                        \
	"\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","                  \
	"\"platform\":{\"architecture\":\"ppc64le\",\"os\":\"linux\"},\"size\":529},"              \
	"{\"digest\":\"sha256:" H_WIN "\","                                                        \
	"\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","                  \
	"\"platform\":{\"architecture\":\"amd64\",\"os\":\"windows\","                             \
	"\"os.version\":\"10.0.17763.5458\",\"features\":[\"win32k\"]},\"size\":1125}],"           \
	"\"mediaType\":\"application/vnd.docker.distribution.manifest.list.v2+json\","             \
	"\"schemaVersion\":2}"

/* What BuildKit pushes: gzip and zstd layers, annotations, no urls. */
#define OCI_MANIFEST                                                                               \
	"{\n"                                                                                      \
	"  \"schemaVersion\": 2,\n"                                                                \
	"  \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"                       \
	"  \"config\": {\n"                                                                        \
	"    \"mediaType\": \"application/vnd.oci.image.config.v1+json\",\n"                       \
	"    \"digest\": \"sha256:" H_CONFIG "\",\n"                                               \
	"    \"size\": 2297\n"                                                                     \
	"  },\n"                                                                                   \
	"  \"layers\": [\n"                                                                        \
	"    {\n"                                                                                  \
	"      \"mediaType\": \"application/vnd.oci.image.layer.v1.tar+gzip\",\n"                  \
	"      \"digest\": \"sha256:" H_L1 "\",\n"                                                 \
	"      \"size\": 29150525\n"                                                               \
	"    },\n"                                                                                 \
	"    {\n"                                                                                  \
	"      \"mediaType\": \"application/vnd.oci.image.layer.v1.tar+zstd\",\n"                  \
	"      \"digest\": \"sha256:" H_L2 "\",\n"                                                 \
	"      \"size\": 0,\n"                                                                     \
	"      \"annotations\": {\"io.containerd.image.name\": \"x\"}\n"                           \
	"    },\n"                                                                                 \
	"    {\n"                                                                                  \
	"      \"mediaType\": \"application/vnd.oci.image.layer.v1.tar\",\n"                       \
	"      \"digest\": \"sha256:" H_L1 "\",\n"                                                 \
	"      \"size\": 29150525\n"                                                               \
	"    }\n"                                                                                  \
	"  ],\n"                                                                                   \
	"  \"annotations\": {\n"                                                                   \
	"    \"org.opencontainers.image.created\": \"2024-05-01T00:00:00Z\"\n"                     \
	"  }\n"                                                                                    \
	"}\n"

#define OCI_ATTESTATION(hex, ref)                                                                  \
	"    {\n"                                                                                  \
	"      \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"                   \
	"      \"digest\": \"sha256:" hex "\",\n"                                                  \
	"      \"size\": 839,\n"                                                                   \
	"      \"annotations\": {\n"                                                               \
	"        \"vnd.docker.reference.digest\": \"sha256:" ref "\",\n"                           \
	"        \"vnd.docker.reference.type\": \"attestation-manifest\"\n"                        \
	"      },\n"                                                                               \
	"      \"platform\": {\"architecture\": \"unknown\", \"os\": \"unknown\"}\n"               \
	"    }"

#define OCI_CHILD(hex, platform)                                                                   \
	"    {\n"                                                                                  \
	"      \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"                   \
	"      \"digest\": \"sha256:" hex "\",\n"                                                  \
	"      \"size\": 1058,\n"                                                                  \
	"      \"platform\": " platform "\n"                                                       \
	"    }"

#define OCI_INDEX_AMD64 OCI_CHILD(H_AMD64, "{\"architecture\": \"amd64\", \"os\": \"linux\"}")
#define OCI_INDEX_ARM64                                                                            \
	OCI_CHILD(H_ARM64, "{\"architecture\": \"arm64\", \"os\": \"linux\", \"variant\": "        \
			   "\"v8\"}")
#define OCI_INDEX_ARMV7                                                                            \
	OCI_CHILD(H_ARMV7, "{\"architecture\": \"arm\", \"os\": \"linux\", \"variant\": \"v7\"}")
#define OCI_INDEX_ATT1 OCI_ATTESTATION(H_ATT1, H_AMD64)
#define OCI_INDEX_ATT2 OCI_ATTESTATION(H_ATT2, H_ARM64)

/* What `docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 --push` makes. */
#define OCI_INDEX                                                                                  \
	"{\n"                                                                                      \
	"  \"schemaVersion\": 2,\n"                                                                \
	"  \"mediaType\": \"application/vnd.oci.image.index.v1+json\",\n"                          \
	"  \"manifests\": [\n" OCI_INDEX_AMD64 ",\n" OCI_INDEX_ARM64 ",\n" OCI_INDEX_ARMV7         \
	",\n" OCI_INDEX_ATT1 ",\n" OCI_INDEX_ATT2 "\n  ],\n"                                       \
	"  \"annotations\": {\"org.opencontainers.image.created\": \"2024-05-01T00:00:00Z\"}\n"    \
	"}\n"

static struct manifest *parse_ok(const char *doc, const char *content_type)
{
	struct manifest *m = NULL;

	ck_assert_int_eq(manifest_parse(doc, strlen(doc), content_type, &m), 0);
	ck_assert_ptr_nonnull(m);
	return m;
}

static void assert_digest(const struct digest *d, const char *hex)
{
	ck_assert_str_eq(d->hex, hex);
}

START_TEST(test_docker_manifest)
{
	struct manifest *m = parse_ok(DOCKER_MANIFEST, MANIFEST_MEDIA_DOCKER_MANIFEST);

	ck_assert_int_eq(m->kind, MANIFEST_IMAGE);
	ck_assert_str_eq(m->media_type, MANIFEST_MEDIA_DOCKER_MANIFEST);
	ck_assert_str_eq(m->config.media_type, MANIFEST_MEDIA_DOCKER_CONFIG);
	assert_digest(&m->config.digest, H_CONFIG);
	ck_assert_int_eq(m->config.size, 1472);
	ck_assert(!m->config.has_platform);
	ck_assert_uint_eq(m->n_layers, 2);
	ck_assert_str_eq(m->layers[0].media_type, MANIFEST_MEDIA_DOCKER_LAYER);
	assert_digest(&m->layers[0].digest, H_L1);
	ck_assert_int_eq(m->layers[0].size, 29124181);
	ck_assert_str_eq(m->layers[1].media_type, MANIFEST_MEDIA_DOCKER_FOREIGN_LAYER);
	assert_digest(&m->layers[1].digest, H_L2);
	ck_assert_int_eq(m->layers[1].size, 1654613376);
	ck_assert_uint_eq(m->n_manifests, 0);
	ck_assert_ptr_null(m->manifests);
	manifest_free(m);
}
END_TEST

START_TEST(test_docker_list)
{
	struct manifest *m = parse_ok(DOCKER_LIST, MANIFEST_MEDIA_DOCKER_LIST);

	ck_assert_int_eq(m->kind, MANIFEST_INDEX);
	ck_assert_str_eq(m->media_type, MANIFEST_MEDIA_DOCKER_LIST);
	ck_assert_uint_eq(m->n_layers, 0);
	ck_assert_uint_eq(m->n_manifests, 6);
	ck_assert_str_eq(m->manifests[0].media_type, MANIFEST_MEDIA_DOCKER_MANIFEST);
	assert_digest(&m->manifests[0].digest, H_AMD64);
	ck_assert_int_eq(m->manifests[0].size, 529);
	ck_assert(m->manifests[0].has_platform);
	ck_assert_str_eq(m->manifests[0].platform.os, "linux");
	ck_assert_str_eq(m->manifests[0].platform.architecture, "amd64");
	ck_assert_str_eq(m->manifests[0].platform.variant, "");
	ck_assert_str_eq(m->manifests[2].platform.variant, "v7");
	ck_assert_str_eq(m->manifests[3].platform.architecture, "arm64");
	ck_assert_str_eq(m->manifests[3].platform.variant, "v8");
	ck_assert_str_eq(m->manifests[5].platform.os, "windows");
	ck_assert_str_eq(m->manifests[5].platform.os_version, "10.0.17763.5458");
	ck_assert_int_eq(m->manifests[5].size, 1125);
	manifest_free(m);
}
END_TEST

START_TEST(test_oci_manifest)
{
	struct manifest *m = parse_ok(OCI_MANIFEST, MANIFEST_MEDIA_OCI_MANIFEST);

	ck_assert_int_eq(m->kind, MANIFEST_IMAGE);
	ck_assert_str_eq(m->media_type, MANIFEST_MEDIA_OCI_MANIFEST);
	ck_assert_str_eq(m->config.media_type, MANIFEST_MEDIA_OCI_CONFIG);
	ck_assert_int_eq(m->config.size, 2297);
	ck_assert_uint_eq(m->n_layers, 3);
	ck_assert_str_eq(m->layers[0].media_type, MANIFEST_MEDIA_OCI_LAYER_GZIP);
	ck_assert_str_eq(m->layers[1].media_type, MANIFEST_MEDIA_OCI_LAYER_ZSTD);
	ck_assert_int_eq(m->layers[1].size, 0);
	ck_assert_str_eq(m->layers[2].media_type, MANIFEST_MEDIA_OCI_LAYER);
	assert_digest(&m->layers[2].digest, H_L1);
	manifest_free(m);
}
END_TEST

START_TEST(test_oci_index)
{
	struct manifest *m = parse_ok(OCI_INDEX, MANIFEST_MEDIA_OCI_INDEX);

	ck_assert_int_eq(m->kind, MANIFEST_INDEX);
	ck_assert_str_eq(m->media_type, MANIFEST_MEDIA_OCI_INDEX);
	ck_assert_uint_eq(m->n_manifests, 5);
	assert_digest(&m->manifests[1].digest, H_ARM64);
	ck_assert_str_eq(m->manifests[1].platform.variant, "v8");
	assert_digest(&m->manifests[3].digest, H_ATT1);
	ck_assert_str_eq(m->manifests[3].platform.os, "unknown");
	ck_assert_str_eq(m->manifests[3].platform.architecture, "unknown");
	ck_assert_int_eq(m->manifests[3].size, 839);
	manifest_free(m);
}
END_TEST

/* The content type is optional, may carry parameters, and is case-blind. */
START_TEST(test_content_type_forms)
{
	static const char *const image_types[] = {
		NULL,
		"",
		"application/json",
		"application/json; charset=utf-8",
		"text/plain",
		"application/octet-stream",
		MANIFEST_MEDIA_OCI_MANIFEST,
		" " MANIFEST_MEDIA_OCI_MANIFEST " ; charset=utf-8",
		"APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON",
		/* Docker against OCI of the same kind: the body wins */
		MANIFEST_MEDIA_DOCKER_MANIFEST,
	};
	size_t i;

	for (i = 0; i < sizeof(image_types) / sizeof(image_types[0]); i++) {
		struct manifest *m = parse_ok(OCI_MANIFEST, image_types[i]);

		ck_assert_int_eq(m->kind, MANIFEST_IMAGE);
		ck_assert_str_eq(m->media_type, MANIFEST_MEDIA_OCI_MANIFEST);
		manifest_free(m);
	}
}
END_TEST

#define OCI_MANIFEST_NO_TYPE                                                                       \
	"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/"                            \
	"vnd.oci.image.config.v1+json\","                                                          \
	"\"digest\":\"sha256:" H_CONFIG "\",\"size\":7023},\"layers\":[{\"mediaType\":"            \
	"\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:" H_L1 "\","          \
	"\"size\":32654}]}"
#define OCI_INDEX_NO_TYPE                                                                          \
	"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"                                      \
	"\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" H_AMD64 "\","        \
	"\"size\":7143,\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}"

/* Without mediaType in the body, the header decides, else the fields do. */
START_TEST(test_type_from_header_or_fields)
{
	struct manifest *m;

	m = parse_ok(OCI_MANIFEST_NO_TYPE, NULL);
	ck_assert_int_eq(m->kind, MANIFEST_IMAGE);
	ck_assert_str_eq(m->media_type, MANIFEST_MEDIA_OCI_MANIFEST);
	manifest_free(m);

	m = parse_ok(OCI_MANIFEST_NO_TYPE, "application/json");
	ck_assert_str_eq(m->media_type, MANIFEST_MEDIA_OCI_MANIFEST);
	manifest_free(m);

	m = parse_ok(OCI_MANIFEST_NO_TYPE, MANIFEST_MEDIA_DOCKER_MANIFEST);
	ck_assert_str_eq(m->media_type, MANIFEST_MEDIA_DOCKER_MANIFEST);
	manifest_free(m);

	m = parse_ok(OCI_INDEX_NO_TYPE, "");
	ck_assert_int_eq(m->kind, MANIFEST_INDEX);
	ck_assert_str_eq(m->media_type, MANIFEST_MEDIA_OCI_INDEX);
	ck_assert_uint_eq(m->n_manifests, 1);
	manifest_free(m);

	m = parse_ok(OCI_INDEX_NO_TYPE, MANIFEST_MEDIA_DOCKER_LIST "; charset=utf-8");
	ck_assert_str_eq(m->media_type, MANIFEST_MEDIA_DOCKER_LIST);
	manifest_free(m);
}
END_TEST

/* An image manifest with no layers (FROM scratch plus metadata) and an empty index. */
START_TEST(test_empty_lists)
{
	struct digest_list children = {0};
	const struct manifest_descriptor *d;
	struct manifest *m;

	m = parse_ok("{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_MEDIA_OCI_MANIFEST "\","
		     "\"config\":{\"mediaType\":\"" MANIFEST_MEDIA_OCI_EMPTY "\","
		     "\"digest\":\"sha256:" H_CONFIG "\",\"size\":2},\"layers\":[]}",
		     NULL);
	ck_assert_uint_eq(m->n_layers, 0);
	ck_assert_int_eq(manifest_children(m, &children), 0);
	ck_assert_uint_eq(children.len, 1);
	manifest_free(m);
	digest_list_free(&children);

	m = parse_ok("{\"schemaVersion\":2,\"manifests\":[]}", MANIFEST_MEDIA_OCI_INDEX);
	ck_assert_uint_eq(m->n_manifests, 0);
	ck_assert_int_eq(manifest_children(m, &children), 0);
	ck_assert_uint_eq(children.len, 0);
	ck_assert_int_eq(manifest_select_platform(m, NULL, &d), -ENOENT);
	manifest_free(m);
}
END_TEST

START_TEST(test_children)
{
	struct digest_list children = {0};
	struct manifest *image = parse_ok(OCI_MANIFEST, NULL);
	struct manifest *index = parse_ok(OCI_INDEX, NULL);

	ck_assert_int_eq(manifest_children(image, &children), 0);
	ck_assert_uint_eq(children.len, 4);
	assert_digest(&children.items[0], H_CONFIG);
	assert_digest(&children.items[1], H_L1);
	assert_digest(&children.items[2], H_L2);
	assert_digest(&children.items[3], H_L1); /* a repeated layer stays repeated */

	/* appends */
	ck_assert_int_eq(manifest_children(index, &children), 0);
	ck_assert_uint_eq(children.len, 9);
	assert_digest(&children.items[4], H_AMD64);
	assert_digest(&children.items[5], H_ARM64);
	assert_digest(&children.items[6], H_ARMV7);
	assert_digest(&children.items[7], H_ATT1);
	assert_digest(&children.items[8], H_ATT2);

	digest_list_free(&children);
	manifest_free(image);
	manifest_free(index);
	manifest_free(NULL);
}
END_TEST

#define X10	"abcdefghij"
#define X130	X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
#define X64	X10 X10 X10 X10 X10 X10 "abcd"
#define DIGEST1 "\"digest\":\"sha256:" H_L1 "\""
#define CONFIG	"\"config\":{\"digest\":\"sha256:" H_CONFIG "\",\"size\":1}"
/* An OCI manifest with one layer whose fields are `layer`. */
#define WITH_LAYER(layer) "{\"schemaVersion\":2," CONFIG ",\"layers\":[{" layer "}]}"
/* An OCI index with one child whose fields are `child`. */
#define WITH_CHILD(child) "{\"schemaVersion\":2,\"manifests\":[{" child "}]}"

#define SCHEMA1_SIGNED                                                                             \
	"{\n   \"schemaVersion\": 1,\n   \"name\": \"library/hello-world\",\n"                     \
	"   \"tag\": \"latest\",\n   \"architecture\": \"amd64\",\n"                               \
	"   \"fsLayers\": [{\"blobSum\": \"sha256:" H_L1 "\"}],\n"                                 \
	"   \"history\": [{\"v1Compatibility\": \"{\\\"id\\\":\\\"1\\\"}\"}],\n"                   \
	"   \"signatures\": [{\"header\": {\"jwk\": {\"crv\": \"P-256\", \"kty\": \"EC\"},"        \
	" \"alg\": \"ES256\"}, \"signature\": \"abc\", \"protected\": \"def\"}]\n}"

static const struct refusal {
	const char *what;
	const char *doc;
	const char *content_type;
	int error;
} refusals[] = {
	{"garbage", "this is not JSON at all", NULL, -EINVAL},
	{"empty", "", NULL, -EINVAL},
	{"html error page", "<html><body>502 Bad Gateway</body></html>", "text/html",
	 -EPROTONOSUPPORT},
	{"top-level array", "[]", NULL, -EINVAL},
	{"top-level string", "\"x\"", NULL, -EINVAL},
	{"trailing bytes", OCI_MANIFEST_NO_TYPE "{}", NULL, -EINVAL},
	{"schema1 signed", SCHEMA1_SIGNED, MANIFEST_MEDIA_DOCKER_SCHEMA1_SIGNED, -EPROTONOSUPPORT},
	{"schema1 without content type", SCHEMA1_SIGNED, NULL, -EPROTONOSUPPORT},
	{"schema1 content type", OCI_MANIFEST, MANIFEST_MEDIA_DOCKER_SCHEMA1, -EPROTONOSUPPORT},
	{"fsLayers with version 2", "{\"schemaVersion\":2,\"fsLayers\":[]}", NULL,
	 -EPROTONOSUPPORT},
	{"schemaVersion 1", "{\"schemaVersion\":1," CONFIG ",\"layers\":[]}", NULL,
	 -EPROTONOSUPPORT},
	{"schemaVersion 3", "{\"schemaVersion\":3," CONFIG ",\"layers\":[]}", NULL,
	 -EPROTONOSUPPORT},
	{"schemaVersion missing", "{" CONFIG ",\"layers\":[]}", NULL, -EINVAL},
	{"schemaVersion string", "{\"schemaVersion\":\"2\"," CONFIG ",\"layers\":[]}", NULL,
	 -EINVAL},
	{"schemaVersion real", "{\"schemaVersion\":2.0," CONFIG ",\"layers\":[]}", NULL, -EINVAL},
	{"artifact manifest",
	 "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.artifact.manifest.v1+json\","
	 "\"blobs\":[]}",
	 NULL, -EPROTONOSUPPORT},
	{"artifact content type", OCI_MANIFEST_NO_TYPE,
	 "application/vnd.oci.artifact.manifest.v1+json", -EPROTONOSUPPORT},
	{"mediaType a number", "{\"schemaVersion\":2,\"mediaType\":42," CONFIG ",\"layers\":[]}",
	 NULL, -EINVAL},
	{"mediaType with CRLF",
	 "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_MEDIA_OCI_MANIFEST
	 "\\r\\nX-Evil: 1\"," CONFIG ",\"layers\":[]}",
	 NULL, -EINVAL},
	{"header index, body manifest", DOCKER_MANIFEST, MANIFEST_MEDIA_OCI_INDEX, -EINVAL},
	{"header manifest, body list", DOCKER_LIST, MANIFEST_MEDIA_OCI_MANIFEST, -EINVAL},
	{"header manifest, fields of an index", OCI_INDEX_NO_TYPE, MANIFEST_MEDIA_OCI_MANIFEST,
	 -EINVAL},
	{"index with layers",
	 "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_MEDIA_OCI_INDEX "\",\"manifests\":[],"
	 "\"layers\":[]}",
	 NULL, -EINVAL},
	{"manifest with manifests",
	 "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_MEDIA_OCI_MANIFEST "\"," CONFIG
	 ",\"layers\":[],\"manifests\":[]}",
	 NULL, -EINVAL},
	{"no way to tell", "{\"schemaVersion\":2}", NULL, -EINVAL},
	{"config without layers", "{\"schemaVersion\":2," CONFIG "}", NULL, -EINVAL},
	{"both kinds of fields", "{\"schemaVersion\":2," CONFIG ",\"layers\":[],\"manifests\":[]}",
	 NULL, -EINVAL},
	{"duplicate key",
	 "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_MEDIA_OCI_MANIFEST
	 "\",\"mediaType\":\"" MANIFEST_MEDIA_OCI_INDEX "\"," CONFIG ",\"layers\":[]}",
	 NULL, -EINVAL},
	{"NUL escape", WITH_LAYER("\"mediaType\":\"a/b\\u0000c\"," DIGEST1 ",\"size\":1"), NULL,
	 -EINVAL},
	{"config missing",
	 "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_MEDIA_OCI_MANIFEST "\",\"layers\":[]}",
	 NULL, -EINVAL},
	{"config not an object", "{\"schemaVersion\":2,\"config\":[],\"layers\":[]}", NULL,
	 -EINVAL},
	{"config digest malformed",
	 "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:abc\",\"size\":1},\"layers\":[]}",
	 NULL, -EINVAL},
	{"layers missing",
	 "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_MEDIA_OCI_MANIFEST "\"," CONFIG "}", NULL,
	 -EINVAL},
	{"layers an object", "{\"schemaVersion\":2," CONFIG ",\"layers\":{}}", NULL, -EINVAL},
	{"layer a string", "{\"schemaVersion\":2," CONFIG ",\"layers\":[\"sha256:" H_L1 "\"]}",
	 NULL, -EINVAL},
	{"layer digest missing", WITH_LAYER("\"size\":1"), NULL, -EINVAL},
	{"layer digest upper case",
	 WITH_LAYER("\"digest\":\"sha256:2804BAD6FE94A55F18B2B37E300919A5FD517B95AA81E95DB574C0BA0"
		    "69A3740\",\"size\":1"),
	 NULL, -EINVAL},
	{"layer digest sha512", WITH_LAYER("\"digest\":\"sha512:" H_L1 H_L1 "\",\"size\":1"), NULL,
	 -EINVAL},
	{"layer digest path", WITH_LAYER("\"digest\":\"sha256:../../../../etc/passwd\",\"size\":1"),
	 NULL, -EINVAL},
	{"layer digest a number", WITH_LAYER("\"digest\":256,\"size\":1"), NULL, -EINVAL},
	{"layer size missing", WITH_LAYER(DIGEST1), NULL, -EINVAL},
	{"layer size negative", WITH_LAYER(DIGEST1 ",\"size\":-1"), NULL, -EINVAL},
	{"layer size real", WITH_LAYER(DIGEST1 ",\"size\":1.5"), NULL, -EINVAL},
	{"layer size string", WITH_LAYER(DIGEST1 ",\"size\":\"1\""), NULL, -EINVAL},
	{"layer size null", WITH_LAYER(DIGEST1 ",\"size\":null"), NULL, -EINVAL},
	{"layer size overflows", WITH_LAYER(DIGEST1 ",\"size\":100000000000000000000000"), NULL,
	 -EINVAL},
	{"layer media type too long",
	 WITH_LAYER("\"mediaType\":\"application/" X130 "\"," DIGEST1 ",\"size\":1"), NULL,
	 -EINVAL},
	{"layer media type without slash",
	 WITH_LAYER("\"mediaType\":\"tar\"," DIGEST1 ",\"size\":1"), NULL, -EINVAL},
	{"layer media type with space",
	 WITH_LAYER("\"mediaType\":\"application/x tar\"," DIGEST1 ",\"size\":1"), NULL, -EINVAL},
	{"manifests not an array", "{\"schemaVersion\":2,\"manifests\":{}}", NULL, -EINVAL},
	{"child size missing", WITH_CHILD("\"digest\":\"sha256:" H_AMD64 "\""), NULL, -EINVAL},
	{"child platform a string",
	 WITH_CHILD("\"digest\":\"sha256:" H_AMD64 "\",\"size\":1,\"platform\":\"linux/amd64\""),
	 NULL, -EINVAL},
	{"child platform os too long",
	 WITH_CHILD("\"digest\":\"sha256:" H_AMD64 "\",\"size\":1,\"platform\":{\"os\":\"" X64
		    "\",\"architecture\":\"amd64\"}"),
	 NULL, -EINVAL},
	{"child platform arch a number",
	 WITH_CHILD("\"digest\":\"sha256:" H_AMD64 "\",\"size\":1,\"platform\":{\"os\":\"linux\","
		    "\"architecture\":64}"),
	 NULL, -EINVAL},
	{"child platform with newline",
	 WITH_CHILD("\"digest\":\"sha256:" H_AMD64 "\",\"size\":1,\"platform\":{\"os\":\"linux\","
		    "\"architecture\":\"amd64\\n\"}"),
	 NULL, -EINVAL},
};

START_TEST(test_refusals)
{
	const struct refusal *t = &refusals[_i];
	struct manifest *m = (struct manifest *)&m; /* a sentinel that must stay */
	int r = manifest_parse(t->doc, strlen(t->doc), t->content_type, &m);

	ck_assert_msg(r == t->error, "%s: got %d (%s), want %d", t->what, r, strerror(-r),
		      t->error);
	ck_assert_ptr_eq(m, (struct manifest *)&m);
}
END_TEST

START_TEST(test_truncated)
{
	static const char *const docs[] = {DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX};
	struct manifest *m = NULL;
	size_t i, len;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		/* every prefix that stops short of the closing brace */
		size_t end = (size_t)(strrchr(docs[i], '}') - docs[i]);

		for (len = 0; len <= end; len++)
			ck_assert_int_eq(manifest_parse(docs[i], len, NULL, &m), -EINVAL);
		ck_assert_int_eq(manifest_parse(docs[i], end + 1, NULL, &m), 0);
		manifest_free(m);
		m = NULL;
	}
	ck_assert_ptr_null(m);
}
END_TEST

START_TEST(test_embedded_nul)
{
	static const char doc[] = OCI_MANIFEST_NO_TYPE;
	struct manifest *m = NULL;

	/* the terminating NUL counts as a trailing byte */
	ck_assert_int_eq(manifest_parse(doc, sizeof(doc), NULL, &m), -EINVAL);
	ck_assert_int_eq(manifest_parse(NULL, 0, NULL, &m), -EINVAL);
	ck_assert_int_eq(manifest_parse(NULL, 5, NULL, &m), -EINVAL);
	ck_assert_ptr_null(m);
}
END_TEST

/* A valid manifest padded with spaces to len bytes. Caller frees. */
static char *padded_manifest(size_t len)
{
	size_t doc_len = strlen(OCI_MANIFEST);
	char *buf = malloc(len);

	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_ge(len, doc_len);
	memcpy(buf, OCI_MANIFEST, doc_len);
	memset(buf + doc_len, ' ', len - doc_len);
	return buf;
}

START_TEST(test_size_limit)
{
	char *at_limit = padded_manifest(MANIFEST_MAX_SIZE);
	char *over_limit = padded_manifest(MANIFEST_MAX_SIZE + 1);
	struct manifest *m = NULL;

	ck_assert_int_eq(manifest_parse(over_limit, MANIFEST_MAX_SIZE + 1, NULL, &m), -EFBIG);
	ck_assert_ptr_null(m);
	ck_assert_int_eq(manifest_parse(at_limit, MANIFEST_MAX_SIZE, NULL, &m), 0);
	ck_assert_uint_eq(m->n_layers, 3);
	manifest_free(m);
	free(at_limit);
	free(over_limit);
}
END_TEST

/* An image manifest with n layers, or an index with n children. Caller frees. */
static char *many_descriptors(size_t n, bool index, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	fputs(index ? "{\"schemaVersion\":2,\"manifests\":["
		    : "{\"schemaVersion\":2," CONFIG ",\"layers\":[",
	      f);
	for (i = 0; i < n; i++)
		fprintf(f, "%s{\"digest\":\"sha256:%s\",\"size\":%zu%s}", i ? "," : "",
			i % 2 ? H_L1 : H_L2, i,
			index ? ",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}" : "");
	fputs("]}", f);
	ck_assert_int_eq(fclose(f), 0);
	*ret_len = len;
	return buf;
}

START_TEST(test_descriptor_limit)
{
	struct digest_list children = {0};
	const struct manifest_descriptor *d;
	struct manifest_platform want;
	struct manifest *m = NULL;
	size_t len;
	char *doc;

	doc = many_descriptors(MANIFEST_MAX_DESCRIPTORS, false, &len);
	ck_assert_uint_le(len, MANIFEST_MAX_SIZE);
	ck_assert_int_eq(manifest_parse(doc, len, NULL, &m), 0);
	ck_assert_uint_eq(m->n_layers, MANIFEST_MAX_DESCRIPTORS);
	ck_assert_int_eq(m->layers[MANIFEST_MAX_DESCRIPTORS - 1].size,
			 MANIFEST_MAX_DESCRIPTORS - 1);
	ck_assert_int_eq(manifest_children(m, &children), 0);
	ck_assert_uint_eq(children.len, MANIFEST_MAX_DESCRIPTORS + 1);
	digest_list_free(&children);
	manifest_free(m);
	free(doc);

	m = NULL;
	doc = many_descriptors(MANIFEST_MAX_DESCRIPTORS + 1, false, &len);
	ck_assert_int_eq(manifest_parse(doc, len, NULL, &m), -E2BIG);
	ck_assert_ptr_null(m);
	free(doc);

	doc = many_descriptors(MANIFEST_MAX_DESCRIPTORS, true, &len);
	ck_assert_int_eq(manifest_parse(doc, len, NULL, &m), 0);
	ck_assert_uint_eq(m->n_manifests, MANIFEST_MAX_DESCRIPTORS);
	/* all children are linux/amd64: the first wins */
	ck_assert_int_eq(manifest_platform_parse("linux/amd64", &want), 0);
	ck_assert_int_eq(manifest_select_platform(m, &want, &d), 0);
	ck_assert_ptr_eq(d, &m->manifests[0]);
	manifest_free(m);
	free(doc);

	m = NULL;
	doc = many_descriptors(MANIFEST_MAX_DESCRIPTORS + 1, true, &len);
	ck_assert_int_eq(manifest_parse(doc, len, NULL, &m), -E2BIG);
	ck_assert_ptr_null(m);
	free(doc);
}
END_TEST

static const struct {
	const char *s, *os, *arch, *variant;
} good_platforms[] = {
	{"linux/amd64", "linux", "amd64", ""},
	{"linux/arm64/v8", "linux", "arm64", "v8"},
	{"linux/arm/v7", "linux", "arm", "v7"},
	{"linux/386", "linux", "386", ""},
	{"windows/amd64", "windows", "amd64", ""},
	{"Linux/X86_64", "linux", "x86_64", ""},
	{"linux/ppc64le", "linux", "ppc64le", ""},
	{"linux/amd64/v3", "linux", "amd64", "v3"},
	{"linux/" X10 X10 X10 X10 X10 X10 "abc", "linux", X10 X10 X10 X10 X10 X10 "abc", ""},
};

START_TEST(test_platform_parse)
{
	char buf[MANIFEST_PLATFORM_STRING_SIZE];
	struct manifest_platform p;
	char expect[MANIFEST_PLATFORM_STRING_SIZE];
	size_t i;

	for (i = 0; i < sizeof(good_platforms) / sizeof(good_platforms[0]); i++) {
		memset(&p, 'x', sizeof(p));
		ck_assert_int_eq(manifest_platform_parse(good_platforms[i].s, &p), 0);
		ck_assert_str_eq(p.os, good_platforms[i].os);
		ck_assert_str_eq(p.architecture, good_platforms[i].arch);
		ck_assert_str_eq(p.variant, good_platforms[i].variant);
		ck_assert_str_eq(p.os_version, "");
		manifest_platform_format(&p, buf);
		snprintf(expect, sizeof(expect), "%s/%s%s%s", good_platforms[i].os,
			 good_platforms[i].arch, good_platforms[i].variant[0] ? "/" : "",
			 good_platforms[i].variant);
		ck_assert_str_eq(buf, expect);
	}
}
END_TEST

static const char *const bad_platforms[] = {
	"",
	"linux",
	"linux/",
	"/amd64",
	"linux//v7",
	"linux/arm/",
	"linux/arm/v7/extra",
	"linux/amd 64",
	"linux/amd64\n",
	"linux\\amd64",
	"linux/amd64:latest",
	"linux/" X64,
	"//",
};

START_TEST(test_platform_parse_refusals)
{
	struct manifest_platform p;

	memset(&p, 'x', sizeof(p));
	ck_assert_msg(manifest_platform_parse(bad_platforms[_i], &p) == -EINVAL, "accepted '%s'",
		      bad_platforms[_i]);
	ck_assert_int_eq(p.os[0], 'x');
}
END_TEST

START_TEST(test_platform_format_full_width)
{
	char buf[MANIFEST_PLATFORM_STRING_SIZE];
	struct manifest_platform p;

	memset(&p, 'a', sizeof(p));
	p.os[MANIFEST_PLATFORM_FIELD_MAX] = '\0';
	p.architecture[MANIFEST_PLATFORM_FIELD_MAX] = '\0';
	p.variant[MANIFEST_PLATFORM_FIELD_MAX] = '\0';
	manifest_platform_format(&p, buf);
	ck_assert_uint_eq(strlen(buf), 3 * MANIFEST_PLATFORM_FIELD_MAX + 2);
}
END_TEST

static const struct {
	const char *machine, *arch, *variant;
} machines[] = {
	{"x86_64", "amd64", ""},
	{"aarch64", "arm64", "v8"},
	{"armv7l", "arm", "v7"},
	{"armv6l", "arm", "v6"},
	{"i686", "386", ""},
	{"i386", "386", ""},
	{"ppc64le", "ppc64le", ""},
	{"s390x", "s390x", ""},
	{"riscv64", "riscv64", ""},
	{"loongarch64", "loong64", ""},
	{"sparc64", "sparc64", ""}, /* unknown: kept */
	{"", "", ""},
};

START_TEST(test_platform_from_machine)
{
	struct manifest_platform p;
	size_t i;

	for (i = 0; i < sizeof(machines) / sizeof(machines[0]); i++) {
		manifest_platform_from_machine(machines[i].machine, &p);
		ck_assert_str_eq(p.os, "linux");
		ck_assert_str_eq(p.architecture, machines[i].arch);
		ck_assert_str_eq(p.variant, machines[i].variant);
		ck_assert_str_eq(p.os_version, "");
	}
	/* a long unknown name is cut to the field */
	manifest_platform_from_machine(X130, &p);
	ck_assert_uint_eq(strlen(p.architecture), MANIFEST_PLATFORM_FIELD_MAX);
}
END_TEST

START_TEST(test_platform_host)
{
	struct manifest_platform host, expect;
	struct utsname u;

	ck_assert_int_eq(uname(&u), 0);
	manifest_platform_host(&host);
	manifest_platform_from_machine(u.machine, &expect);
	ck_assert_str_eq(host.os, "linux");
	ck_assert_str_eq(host.architecture, expect.architecture);
	ck_assert_str_eq(host.variant, expect.variant);
	if (strcmp(u.machine, "x86_64") == 0) {
		ck_assert_str_eq(host.architecture, "amd64");
		ck_assert_str_eq(host.variant, "");
	}
	ck_assert_str_ne(host.architecture, "");
}
END_TEST

/* What containerd's platforms.Only picks from OCI_INDEX. NULL: nothing. */
static const struct {
	const char *want, *hex;
} oci_index_picks[] = {
	{"linux/amd64", H_AMD64},    {"linux/x86_64", H_AMD64},
	{"linux/amd64/v1", H_AMD64}, {"linux/amd64/v3", H_AMD64}, /* a v1 image runs on v3 */
	{"linux/arm64", H_ARM64},				  /* arm64 v8 == arm64 */
	{"linux/arm64/v8", H_ARM64}, {"linux/aarch64", H_ARM64},
	{"linux/arm/v7", H_ARMV7},   {"linux/arm", H_ARMV7}, /* arm is arm v7 */
	{"linux/arm/7", H_ARMV7},    {"linux/armhf", H_ARMV7},
	{"linux/arm/v8", H_ARMV7},			  /* v7 runs on v8 */
	{"linux/arm/v6", NULL},				  /* but not on v6 */
	{"linux/armel", NULL},	     {"linux/386", NULL}, /* architecture must match */
	{"linux/s390x", NULL},	     {"windows/amd64", NULL},
	{"unknown/unknown", NULL}, /* attestations are never picked */
	{"linux/unknown", NULL},
};

START_TEST(test_select_oci_index)
{
	struct manifest *m = parse_ok(OCI_INDEX, NULL);
	const struct manifest_descriptor *d = NULL;
	struct manifest_platform want;
	size_t i;

	for (i = 0; i < sizeof(oci_index_picks) / sizeof(oci_index_picks[0]); i++) {
		ck_assert_int_eq(manifest_platform_parse(oci_index_picks[i].want, &want), 0);
		d = NULL;
		if (!oci_index_picks[i].hex) {
			ck_assert_msg(manifest_select_platform(m, &want, &d) == -ENOENT,
				      "%s: picked something", oci_index_picks[i].want);
			ck_assert_ptr_null(d);
			continue;
		}
		ck_assert_msg(manifest_select_platform(m, &want, &d) == 0, "%s: nothing picked",
			      oci_index_picks[i].want);
		ck_assert_msg(strcmp(d->digest.hex, oci_index_picks[i].hex) == 0,
			      "%s: picked the wrong child", oci_index_picks[i].want);
	}
	manifest_free(m);
}
END_TEST

#define CHILD(hex, platform)                                                                       \
	"{\"mediaType\":\"" MANIFEST_MEDIA_OCI_MANIFEST "\",\"digest\":\"sha256:" hex "\","        \
	"\"size\":1,\"platform\":" platform "}"
#define H_V5  "5555555555555555555555555555555555555555555555555555555555555555"
#define H_V3  "3333333333333333333333333333333333333333333333333333333333333333"
#define H_NOP "0000000000000000000000000000000000000000000000000000000000000000"
#define H_DUP "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

#define V_NONE                                                                                     \
	"{\"mediaType\":\"" MANIFEST_MEDIA_OCI_MANIFEST "\",\"digest\":\"sha256:" H_NOP            \
	"\",\"size\":1}"
#define V_ARMV5	  CHILD(H_V5, "{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v5\"}")
#define V_ARMV6	  CHILD(H_ARMV6, "{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}")
#define V_ARMV7	  CHILD(H_ARMV7, "{\"os\":\"Linux\",\"architecture\":\"ARM\",\"variant\":\"v7\"}")
#define V_ARM64	  CHILD(H_ARM64, "{\"os\":\"linux\",\"architecture\":\"arm64\"}")
#define V_ARM64V8 CHILD(H_DUP, "{\"os\":\"linux\",\"architecture\":\"aarch64\",\"variant\":\"v8\"}")
#define V_AMD64V3 CHILD(H_V3, "{\"os\":\"linux\",\"architecture\":\"amd64\",\"variant\":\"v3\"}")
#define V_AMD64	  CHILD(H_AMD64, "{\"os\":\"linux\",\"architecture\":\"x86_64\"}")
#define V_WINDOWS                                                                                  \
	CHILD(H_WIN, "{\"os\":\"windows\",\"architecture\":\"amd64\",\"os.version\":\"10.0.20348." \
		     "2031\"}")

/* Older variants first, so that a first-match rule would pick wrongly. */
#define VARIANTS_INDEX                                                                             \
	"{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_MEDIA_OCI_INDEX                           \
	"\",\"manifests\":[" V_NONE "," V_ARMV5 "," V_ARMV6 "," V_ARMV7 "," V_ARM64 "," V_ARM64V8  \
	"," V_AMD64V3 "," V_AMD64 "," V_WINDOWS "]}"

static const struct {
	const char *want, *hex;
} variant_picks[] = {
	{"linux/arm/v7", H_ARMV7}, /* exact, though v5 and v6 come first */
	{"linux/arm/v6", H_ARMV6},   {"linux/arm/v5", H_V5},
	{"linux/arm/v8", H_ARMV7},			       /* the nearest older one */
	{"linux/arm64/v8", H_ARM64},			       /* "" == v8; the first of equals */
	{"linux/arm64", H_ARM64},    {"linux/amd64", H_AMD64}, /* v3 does not run on v1 */
	{"linux/amd64/v2", H_AMD64}, {"linux/amd64/v3", H_V3},
	{"linux/amd64/v4", H_V3},    {"windows/amd64", H_WIN},
};

START_TEST(test_select_prefers_exact_variant)
{
	struct manifest *m = parse_ok(VARIANTS_INDEX, NULL);
	const struct manifest_descriptor *d;
	struct manifest_platform want;
	size_t i;

	ck_assert_uint_eq(m->n_manifests, 9);
	ck_assert(!m->manifests[0].has_platform);
	for (i = 0; i < sizeof(variant_picks) / sizeof(variant_picks[0]); i++) {
		ck_assert_int_eq(manifest_platform_parse(variant_picks[i].want, &want), 0);
		ck_assert_msg(manifest_select_platform(m, &want, &d) == 0, "%s: nothing picked",
			      variant_picks[i].want);
		ck_assert_msg(strcmp(d->digest.hex, variant_picks[i].hex) == 0, "%s: picked %s",
			      variant_picks[i].want, d->digest.hex);
	}
	manifest_free(m);
}
END_TEST

START_TEST(test_select_host_and_misuse)
{
	struct manifest *index = parse_ok(DOCKER_LIST, NULL);
	struct manifest *image = parse_ok(DOCKER_MANIFEST, NULL);
	const struct manifest_descriptor *by_null = NULL, *by_host = NULL, *d = NULL;
	struct manifest_platform host;
	int r;

	manifest_platform_host(&host);
	r = manifest_select_platform(index, NULL, &by_null);
	ck_assert_int_eq(manifest_select_platform(index, &host, &by_host), r);
	ck_assert_ptr_eq(by_null, by_host);
	if (strcmp(host.architecture, "amd64") == 0) {
		ck_assert_int_eq(r, 0);
		assert_digest(&by_null->digest, H_AMD64);
	}

	ck_assert_int_eq(manifest_select_platform(image, &host, &d), -EINVAL);
	ck_assert_ptr_null(d);
	manifest_free(index);
	manifest_free(image);
}
END_TEST

START_TEST(test_accept_header)
{
	ck_assert_str_eq(MANIFEST_ACCEPT,
			 "application/vnd.docker.distribution.manifest.v2+json, "
			 "application/vnd.docker.distribution.manifest.list.v2+json, "
			 "application/vnd.oci.image.manifest.v1+json, "
			 "application/vnd.oci.image.index.v1+json");
}
END_TEST

static Suite *manifest_suite(void)
{
	Suite *s = suite_create("manifest");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_accept_header);
	tcase_add_test(tc, test_docker_manifest);
	tcase_add_test(tc, test_docker_list);
	tcase_add_test(tc, test_oci_manifest);
	tcase_add_test(tc, test_oci_index);
	tcase_add_test(tc, test_content_type_forms);
	tcase_add_test(tc, test_type_from_header_or_fields);
	tcase_add_test(tc, test_empty_lists);
	tcase_add_test(tc, test_children);
	tcase_add_loop_test(tc, test_refusals, 0, (int)(sizeof(refusals) / sizeof(refusals[0])));
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_embedded_nul);
	tcase_add_test(tc, test_size_limit);
	tcase_add_test(tc, test_descriptor_limit);
	tcase_add_test(tc, test_platform_parse);
	tcase_add_loop_test(tc, test_platform_parse_refusals, 0,
			    (int)(sizeof(bad_platforms) / sizeof(bad_platforms[0])));
	tcase_add_test(tc, test_platform_format_full_width);
	tcase_add_test(tc, test_platform_from_machine);
	tcase_add_test(tc, test_platform_host);
	tcase_add_test(tc, test_select_oci_index);
	tcase_add_test(tc, test_select_prefers_exact_variant);
	tcase_add_test(tc, test_select_host_and_misuse);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(manifest_suite());
}
