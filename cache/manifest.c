/*
 * manifest: parsing and checking of Docker schema2 and OCI manifests and
 * indexes with jansson, and containerd-style platform selection (see
 * manifest.h).
 */
#include "manifest.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#include <jansson.h>

struct known_type {
	const char *name;
	enum manifest_kind kind;
};

static const struct known_type known_types[] = {
	{MANIFEST_MEDIA_DOCKER_MANIFEST, MANIFEST_IMAGE},
	{MANIFEST_MEDIA_DOCKER_LIST, MANIFEST_INDEX},
	{MANIFEST_MEDIA_OCI_MANIFEST, MANIFEST_IMAGE},
	{MANIFEST_MEDIA_OCI_INDEX, MANIFEST_INDEX},
};

/* Content types that say nothing about which kind of manifest this is. */
static const char *const generic_types[] = {
	"application/json",
	"text/plain",
	"application/octet-stream",
};

static bool is_restricted_name_char(char c)
{
	/* RFC 6838 section 4.2, restricted-name-chars */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$&-^_.+", c));
}

/* type "/" subtype, each 1 to 127 restricted-name characters. */
static bool valid_media_type(const char *s, size_t len)
{
	const char *slash = memchr(s, '/', len);
	size_t i, type_len;

	if (!slash)
		return false;
	type_len = (size_t)(slash - s);
	if (type_len == 0 || type_len > 127 || len - type_len - 1 == 0 || len - type_len - 1 > 127)
		return false;
	for (i = 0; i < len; i++)
		if (i != type_len && !is_restricted_name_char(s[i]))
			return false;
	return true;
}

static bool equal_ignoring_case(const char *s, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

/*
 * Which of the four types s (len bytes, no parameters, any case) names;
 * -EPROTONOSUPPORT for anything else, schema1 included.
 */
static int classify(const char *s, size_t len, const struct known_type **ret)
{
	size_t i;

	for (i = 0; i < sizeof(known_types) / sizeof(known_types[0]); i++)
		if (equal_ignoring_case(s, len, known_types[i].name)) {
			*ret = &known_types[i];
			return 0;
		}
	return -EPROTONOSUPPORT;
}

/*
 * What a Content-Type header says: *ret is one of the four types, or NULL
 * when the header is absent or generic. -EPROTONOSUPPORT for any other type.
 */
static int classify_content_type(const char *content_type, const struct known_type **ret)
{
	const char *s = content_type ? content_type : "";
	size_t len, i;

	s += strspn(s, " \t");
	len = strcspn(s, ";");
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0) {
		*ret = NULL;
		return 0;
	}
	for (i = 0; i < sizeof(generic_types) / sizeof(generic_types[0]); i++)
		if (equal_ignoring_case(s, len, generic_types[i])) {
			*ret = NULL;
			return 0;
		}
	return classify(s, len, ret);
}

/* Printable ASCII without spaces, so that a kept field is safe to print. */
static bool printable_word(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

/*
 * Copy the string member key of obj into buf (size bytes). -ENOENT when
 * absent (buf untouched), -EINVAL when it is not a string, does not fit,
 * or holds anything but printable ASCII.
 */
static int get_word(json_t *obj, const char *key, char *buf, size_t size)
{
	json_t *v = json_object_get(obj, key);
	const char *s;
	size_t len;

	if (!v)
		return -ENOENT;
	if (!json_is_string(v))
		return -EINVAL;
	s = json_string_value(v);
	len = json_string_length(v);
	if (len >= size || !printable_word(s, len))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return 0;
}

static int parse_platform(json_t *obj, struct manifest_platform *ret)
{
	static const struct {
		const char *key;
		size_t offset;
	} fields[] = {
		{"os", offsetof(struct manifest_platform, os)},
		{"architecture", offsetof(struct manifest_platform, architecture)},
		{"variant", offsetof(struct manifest_platform, variant)},
		{"os.version", offsetof(struct manifest_platform, os_version)},
	};
	size_t i;

	if (!json_is_object(obj))
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		int r = get_word(obj, fields[i].key, (char *)ret + fields[i].offset,
				 MANIFEST_PLATFORM_FIELD_MAX + 1);

		if (r < 0 && r != -ENOENT)
			return r;
	}
	return 0;
}

/*
 * One descriptor: mediaType (optional), digest and size (required), and
 * for the children of an index, platform (optional).
 */
static int parse_descriptor(json_t *obj, bool in_index, struct manifest_descriptor *ret)
{
	json_t *v;
	int r;

	if (!json_is_object(obj))
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));

	r = get_word(obj, "mediaType", ret->media_type, sizeof(ret->media_type));
	if (r == 0 && !valid_media_type(ret->media_type, strlen(ret->media_type)))
		return -EINVAL;
	if (r < 0 && r != -ENOENT)
		return r;

	v = json_object_get(obj, "digest");
	if (!json_is_string(v) || digest_parse(json_string_value(v), &ret->digest) < 0)
		return -EINVAL;

	v = json_object_get(obj, "size");
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EINVAL;
	ret->size = json_integer_value(v);

	v = json_object_get(obj, "platform");
	if (in_index && v) {
		r = parse_platform(v, &ret->platform);
		if (r < 0)
			return r;
		ret->has_platform = true;
	}
	return 0;
}

/* Parse an array of descriptors into a new array (NULL when empty). */
static int parse_descriptors(json_t *array, bool in_index, struct manifest_descriptor **ret_items,
			     size_t *ret_n)
{
	struct manifest_descriptor *items = NULL;
	size_t i, n;
	int r;

	if (!json_is_array(array))
		return -EINVAL;
	n = json_array_size(array);
	if (n > MANIFEST_MAX_DESCRIPTORS)
		return -E2BIG;
	if (n > 0) {
		items = calloc(n, sizeof(*items));
		if (!items)
			return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		r = parse_descriptor(json_array_get(array, i), in_index, &items[i]);
		if (r < 0) {
			free(items);
			return r;
		}
	}
	*ret_items = items;
	*ret_n = n;
	return 0;
}

/*
 * Decide which of the four types the document is, from its mediaType,
 * the Content-Type, or its fields, in that order.
 */
static int resolve_type(json_t *root, const struct known_type *from_header,
			const struct known_type **ret)
{
	static const struct known_type guessed_index = {MANIFEST_MEDIA_OCI_INDEX, MANIFEST_INDEX};
	static const struct known_type guessed_image = {MANIFEST_MEDIA_OCI_MANIFEST,
							MANIFEST_IMAGE};
	const struct known_type *type = NULL;
	json_t *v = json_object_get(root, "mediaType");
	bool has_manifests = json_object_get(root, "manifests") != NULL;
	bool has_image_fields = json_object_get(root, "config") || json_object_get(root, "layers");
	int r;

	if (v) {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);

		if (!json_is_string(v) || !valid_media_type(s, len))
			return -EINVAL;
		r = classify(s, len, &type);
		if (r < 0)
			return r;
		/* Docker against OCI does not matter; manifest against index does. */
		if (from_header && from_header->kind != type->kind)
			return -EINVAL;
	} else if (from_header) {
		type = from_header;
	} else if (has_manifests && !has_image_fields) {
		type = &guessed_index;
	} else if (!has_manifests && json_object_get(root, "config") &&
		   json_object_get(root, "layers")) {
		type = &guessed_image;
	} else {
		return -EINVAL;
	}

	/* The fields must fit the kind, whatever named it (containerd checks the same). */
	if (type->kind == MANIFEST_INDEX && has_image_fields)
		return -EINVAL;
	if (type->kind == MANIFEST_IMAGE && has_manifests)
		return -EINVAL;
	*ret = type;
	return 0;
}

static int parse_root(json_t *root, const struct known_type *from_header, struct manifest *m)
{
	const struct known_type *type;
	json_t *v;
	int r;

	if (!json_is_object(root))
		return -EINVAL;
	/* schema1 has "schemaVersion": 1 and "fsLayers"; anything not 2 is not ours. */
	v = json_object_get(root, "schemaVersion");
	if (!json_is_integer(v))
		return -EINVAL;
	if (json_integer_value(v) != 2)
		return -EPROTONOSUPPORT;
	if (json_object_get(root, "fsLayers"))
		return -EPROTONOSUPPORT;

	r = resolve_type(root, from_header, &type);
	if (r < 0)
		return r;
	m->kind = type->kind;
	assert(strlen(type->name) < sizeof(m->media_type));
	memcpy(m->media_type, type->name, strlen(type->name) + 1);

	if (m->kind == MANIFEST_INDEX)
		return parse_descriptors(json_object_get(root, "manifests"), true, &m->manifests,
					 &m->n_manifests);

	r = parse_descriptor(json_object_get(root, "config"), false, &m->config);
	if (r < 0)
		return r;
	return parse_descriptors(json_object_get(root, "layers"), false, &m->layers, &m->n_layers);
}

int manifest_parse(const void *data, size_t len, const char *content_type, struct manifest **ret)
{
	const struct known_type *from_header;
	struct manifest *m;
	json_error_t error;
	json_t *root;
	int r;

	if (len > MANIFEST_MAX_SIZE)
		return -EFBIG;
	if (!data && len > 0)
		return -EINVAL;
	r = classify_content_type(content_type, &from_header);
	if (r < 0)
		return r;

	root = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &error);
	if (!root)
		return json_error_code(&error) == json_error_out_of_memory ? -ENOMEM : -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m) {
		r = -ENOMEM;
		goto out_root;
	}
	r = parse_root(root, from_header, m);
	if (r < 0) {
		manifest_free(m);
		goto out_root;
	}
	*ret = m;
out_root:
	json_decref(root);
	return r;
}

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	free(m->layers);
	free(m->manifests);
	free(m);
}

int manifest_children(const struct manifest *m, struct digest_list *ret)
{
	size_t before = ret->len, i;
	int r = 0;

	if (m->kind == MANIFEST_IMAGE) {
		r = digest_list_append(ret, &m->config.digest);
		for (i = 0; r == 0 && i < m->n_layers; i++)
			r = digest_list_append(ret, &m->layers[i].digest);
	} else {
		for (i = 0; r == 0 && i < m->n_manifests; i++)
			r = digest_list_append(ret, &m->manifests[i].digest);
	}
	if (r < 0)
		ret->len = before;
	return r;
}

/* Copy s, lowercased and cut to the field size. */
static void set_field(char dst[MANIFEST_PLATFORM_FIELD_MAX + 1], const char *s)
{
	size_t i;

	for (i = 0; i < MANIFEST_PLATFORM_FIELD_MAX && s[i]; i++)
		dst[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	dst[i] = '\0';
}

static bool valid_platform_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int manifest_platform_parse(const char *s, struct manifest_platform *ret)
{
	struct manifest_platform p = {0};
	char *fields[] = {p.os, p.architecture, p.variant};
	size_t n = 0, len = 0;
	const char *c;

	for (c = s;; c++) {
		char lower = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;

		if (lower == '/' || lower == '\0') {
			if (len == 0)
				return -EINVAL;
			fields[n++][len] = '\0';
			len = 0;
			if (lower == '\0')
				break;
			if (n == sizeof(fields) / sizeof(fields[0]))
				return -EINVAL;
			continue;
		}
		if (!valid_platform_char(lower) || len == MANIFEST_PLATFORM_FIELD_MAX)
			return -EINVAL;
		fields[n][len++] = lower;
	}
	if (n < 2)
		return -EINVAL;
	*ret = p;
	return 0;
}

void manifest_platform_format(const struct manifest_platform *p,
			      char buf[MANIFEST_PLATFORM_STRING_SIZE])
{
	/* Each field is shorter than a third of the buffer, so this never truncates. */
	snprintf(buf, MANIFEST_PLATFORM_STRING_SIZE, "%s/%s%s%s", p->os, p->architecture,
		 p->variant[0] ? "/" : "", p->variant);
}

void manifest_platform_from_machine(const char *machine, struct manifest_platform *ret)
{
	static const struct {
		const char *machine, *architecture, *variant;
	} map[] = {
		{"x86_64", "amd64", ""},    {"amd64", "amd64", ""},
		{"aarch64", "arm64", "v8"}, {"arm64", "arm64", "v8"},
		{"armv8l", "arm", "v8"},    {"armv7l", "arm", "v7"},
		{"armv7", "arm", "v7"},	    {"armv6l", "arm", "v6"},
		{"armv5tel", "arm", "v5"},  {"armv5tejl", "arm", "v5"},
		{"i386", "386", ""},	    {"i486", "386", ""},
		{"i586", "386", ""},	    {"i686", "386", ""},
		{"ppc64le", "ppc64le", ""}, {"ppc64", "ppc64", ""},
		{"s390x", "s390x", ""},	    {"riscv64", "riscv64", ""},
		{"mips64", "mips64", ""},   {"loongarch64", "loong64", ""},
	};
	struct manifest_platform p = {0};
	size_t i;

	set_field(p.os, "linux");
	set_field(p.architecture, machine);
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(p.architecture, map[i].machine) == 0) {
			set_field(p.architecture, map[i].architecture);
			set_field(p.variant, map[i].variant);
			break;
		}
	*ret = p;
}

void manifest_platform_host(struct manifest_platform *ret)
{
	struct utsname u;

	/* uname() fails only for a bad pointer; an empty machine matches nothing. */
	if (uname(&u) < 0)
		u.machine[0] = '\0';
	manifest_platform_from_machine(u.machine, ret);
}

static bool is_one_of(const char *s, const char *const *names)
{
	for (; *names; names++)
		if (strcmp(s, *names) == 0)
			return true;
	return false;
}

/*
 * Lowercase, and spell os, architecture and variant as containerd's
 * Normalize does, so that equal platforms compare equal with strcmp().
 */
static void normalize(const struct manifest_platform *in, struct manifest_platform *out)
{
	static const char *const x86[] = {"i386", "i486", "i586", "i686", NULL};
	static const char *const amd64[] = {"x86_64", "x86-64", "amd64", NULL};
	static const char *const arm64[] = {"aarch64", "arm64", NULL};
	static const char *const arm64_v8[] = {"8", "v8", "v8.0", NULL};
	char *arch = out->architecture, *variant = out->variant;

	memset(out, 0, sizeof(*out));
	set_field(out->os, in->os);
	set_field(arch, in->architecture);
	set_field(variant, in->variant);
	if (strcmp(out->os, "macos") == 0)
		set_field(out->os, "darwin");

	if (is_one_of(arch, x86)) {
		set_field(arch, "386");
		set_field(variant, "");
	} else if (is_one_of(arch, amd64)) {
		set_field(arch, "amd64");
		if (strcmp(variant, "v1") == 0)
			set_field(variant, "");
	} else if (is_one_of(arch, arm64)) {
		set_field(arch, "arm64");
		if (is_one_of(variant, arm64_v8))
			set_field(variant, "");
	} else if (strcmp(arch, "armhf") == 0) {
		set_field(arch, "arm");
		set_field(variant, "v7");
	} else if (strcmp(arch, "armel") == 0) {
		set_field(arch, "arm");
		set_field(variant, "v6");
	} else if (strcmp(arch, "arm") == 0) {
		/* "" and "7" are v7; a bare digit gets its "v". */
		static const char *const digits[] = {"5", "6", "7", "8", NULL};

		if (variant[0] == '\0' || is_one_of(variant, digits)) {
			char digit = variant[0] ? variant[0] : '7';

			variant[0] = 'v';
			variant[1] = digit;
			variant[2] = '\0';
		}
	}
}

/* N for "vN" (N of one or two digits), else -1. */
static int variant_number(const char *v)
{
	int n = 0;
	size_t i;

	if (v[0] != 'v' || !v[1] || strlen(v) > 3)
		return -1;
	for (i = 1; v[i]; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

/*
 * How far have (normalised) is from want: 0 for the same variant, k for
 * one k versions older that still runs there, -1 when it does not run.
 * This is containerd's platformVector for arm (down to v5) and amd64
 * (down to v1, spelled "").
 */
static int variant_distance(const char *arch, const char *want, const char *have)
{
	int w, h;

	if (strcmp(want, have) == 0)
		return 0;
	if (strcmp(arch, "arm") == 0) {
		w = variant_number(want);
		h = variant_number(have);
		return w > 5 && h >= 5 && h < w ? w - h : -1;
	}
	if (strcmp(arch, "amd64") == 0) {
		w = want[0] ? variant_number(want) : 1;
		h = have[0] ? variant_number(have) : 1;
		return w > 1 && h >= 1 && h < w ? w - h : -1;
	}
	return -1;
}

int manifest_select_platform(const struct manifest *index, const struct manifest_platform *want,
			     const struct manifest_descriptor **ret)
{
	const struct manifest_descriptor *best = NULL;
	struct manifest_platform host, w;
	int best_distance = -1;
	size_t i;

	if (index->kind != MANIFEST_INDEX)
		return -EINVAL;
	if (!want) {
		manifest_platform_host(&host);
		want = &host;
	}
	normalize(want, &w);

	for (i = 0; i < index->n_manifests; i++) {
		const struct manifest_descriptor *d = &index->manifests[i];
		struct manifest_platform p;
		int distance;

		if (!d->has_platform)
			continue;
		normalize(&d->platform, &p);
		if (!strcmp(p.os, "unknown") || !strcmp(p.architecture, "unknown") || !p.os[0] ||
		    !p.architecture[0])
			continue;
		if (strcmp(p.os, w.os) != 0 || strcmp(p.architecture, w.architecture) != 0)
			continue;
		distance = variant_distance(w.architecture, w.variant, p.variant);
		if (distance < 0)
			continue;
		if (!best || distance < best_distance) {
			best = d;
			best_distance = distance;
		}
	}
	if (!best)
		return -ENOENT;
	*ret = best;
	return 0;
}
