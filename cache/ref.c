/*
 * ref: a hand-written scanner for docker's image reference grammar
 * (distribution/reference, regexp.go) with docker's normalisation
 * (normalize.go, splitDockerDomain) on top, and the formatters back.
 *
 * The input is bounded first (REF_STRING_MAX), then cut at the first '@'
 * (digest) and the first '/' (maybe a registry), then at the first ':' of
 * what is left (tag). Each piece is scanned by its own small function, so
 * the grammar reads top-down; nothing is copied into *ret until all of it
 * has been checked.
 */
#include "ref.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define LOCALHOST	    "localhost"
#define OFFICIAL_PREFIX	    "library/"
#define OFFICIAL_PREFIX_LEN (sizeof(OFFICIAL_PREFIX) - 1)
#define IDENTIFIER_LEN	    64

#define REASON_EMPTY "repository name must have at least one component"

const char *const ref_docker_hub_aliases[REF_N_DOCKER_HUB_ALIASES] = {
	"index.docker.io",
	"registry-1.docker.io",
};

/* Which alias of Docker Hub the n bytes at p spell, or NULL. */
static const char *hub_alias(const char *p, size_t n);

const char *ref_canonical_registry(const char *host)
{
	return hub_alias(host, strlen(host)) ? REF_DEFAULT_REGISTRY : host;
}

/* Report err with a static reason; ret_reason may be NULL. */
static int fail(const char **ret_reason, int err, const char *reason)
{
	if (ret_reason)
		*ret_reason = reason;
	return err;
}

/* ASCII classes, independent of the locale and of the sign of char. */
static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

static bool is_lower_alnum(char c)
{
	return is_lower(c) || is_digit(c);
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || is_upper(c);
}

static bool is_word(char c)
{
	return is_alnum(c) || c == '_';
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool slice_is(const char *p, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(p, word, n) == 0;
}

static const char *hub_alias(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < REF_N_DOCKER_HUB_ALIASES; i++)
		if (slice_is(p, n, ref_docker_hub_aliases[i]))
			return ref_docker_hub_aliases[i];
	return NULL;
}

static bool has_upper(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (is_upper(p[i]))
			return true;
	return false;
}

/*
 * Would docker take this first path component for a registry? Only with a
 * '.' or ':' (a domain, an address, a port) or as "localhost". Plus
 * dindfs's own "local".
 */
static bool looks_like_registry(const char *p, size_t n)
{
	return memchr(p, '.', n) || memchr(p, ':', n) || slice_is(p, n, LOCALHOST) ||
	       slice_is(p, n, REF_LOCAL_REGISTRY);
}

/*
 * host [':' port], where host is a domain name (components of
 * [a-zA-Z0-9-], neither starting nor ending with '-', joined by '.') or
 * '[' [a-fA-F0-9:]+ ']', and port is [0-9]+.
 */
static int check_host(const char *p, size_t n, const char **ret_reason)
{
	size_t i = 0, start;

	if (n == 0)
		return fail(ret_reason, -EINVAL, "registry host name is empty");
	if (p[0] == '[') {
		for (i = 1; i < n && (is_hex(p[i]) || p[i] == ':'); i++)
			;
		if (i == 1 || i == n || p[i] != ']')
			return fail(ret_reason, -EINVAL,
				    "invalid IPv6 address in registry host name");
		i++;
	} else {
		for (;;) {
			start = i;
			while (i < n && (is_alnum(p[i]) || p[i] == '-'))
				i++;
			if (i == start || p[start] == '-' || p[i - 1] == '-')
				return fail(ret_reason, -EINVAL, "invalid registry host name");
			if (i == n || p[i] != '.')
				break;
			i++;
		}
	}
	if (i < n && p[i] == ':') {
		start = ++i;
		while (i < n && is_digit(p[i]))
			i++;
		if (i == start || i != n)
			return fail(ret_reason, -EINVAL, "invalid registry port");
	}
	if (i != n)
		return fail(ret_reason, -EINVAL, "invalid registry host name");
	if (n > REF_NAME_MAX)
		return fail(ret_reason, -ENAMETOOLONG,
			    "registry host name must not be more than 255 characters");
	return 0;
}

/*
 * One path component: [a-z0-9]+ ((. | _ | __ | -+) [a-z0-9]+)*. Upper case
 * has been refused before, with docker's own message.
 */
static int check_path_component(const char *p, size_t n, const char **ret_reason)
{
	size_t i = 0;

	if (n == 0)
		return fail(ret_reason, -EINVAL, "repository name has an empty path component");
	if (slice_is(p, n, ".") || slice_is(p, n, ".."))
		return fail(ret_reason, -EINVAL,
			    "repository path component must not be '.' or '..'");
	if (!is_lower_alnum(p[0]) || !is_lower_alnum(p[n - 1]))
		return fail(ret_reason, -EINVAL,
			    "repository path component must start and end with a letter or digit");
	/* p[n - 1] is alphanumeric, so no separator run reaches the end. */
	while (i < n) {
		if (is_lower_alnum(p[i])) {
			i++;
			continue;
		}
		if (p[i] == '.') {
			i++;
		} else if (p[i] == '_') {
			i++;
			if (p[i] == '_')
				i++;
		} else if (p[i] == '-') {
			while (p[i] == '-')
				i++;
		} else {
			return fail(ret_reason, -EINVAL,
				    "repository name contains an invalid character");
		}
		if (!is_lower_alnum(p[i]))
			return fail(ret_reason, -EINVAL,
				    "repository name has an invalid separator");
	}
	return 0;
}

/* component ('/' component)*, lowercase. The caller checks the length. */
static int check_path(const char *p, size_t n, const char **ret_reason)
{
	size_t i, start = 0;
	int r;

	if (n == 0)
		return fail(ret_reason, -EINVAL, REASON_EMPTY);
	if (has_upper(p, n))
		return fail(ret_reason, -EINVAL, "repository name must be lowercase");
	for (i = 0; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		r = check_path_component(p + start, i - start, ret_reason);
		if (r < 0)
			return r;
		start = i + 1;
	}
	return 0;
}

static int check_repository_length(size_t n, const char **ret_reason)
{
	if (n > REF_NAME_MAX)
		return fail(ret_reason, -ENAMETOOLONG,
			    "repository name must not be more than 255 characters");
	return 0;
}

/* [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} */
static int check_tag(const char *p, size_t n, const char **ret_reason)
{
	size_t i;

	if (n == 0)
		return fail(ret_reason, -EINVAL, "tag is empty");
	if (!is_word(p[0]))
		return fail(ret_reason, -EINVAL,
			    "tag must start with a letter, digit or underscore");
	for (i = 1; i < n; i++)
		if (!is_word(p[i]) && p[i] != '.' && p[i] != '-')
			return fail(ret_reason, -EINVAL, "tag contains an invalid character");
	if (n > REF_TAG_MAX)
		return fail(ret_reason, -ENAMETOOLONG, "tag must not be more than 128 characters");
	return 0;
}

/* s is NUL-terminated and runs to the end of the reference. */
static int parse_digest(const char *s, struct digest *ret, const char **ret_reason)
{
	if (digest_parse(s, ret) == 0)
		return 0;
	if (strncmp(s, DIGEST_ALGORITHM ":", sizeof(DIGEST_ALGORITHM)) == 0)
		return fail(ret_reason, -EINVAL,
			    "invalid digest: sha256 needs 64 lowercase hexadecimal digits");
	if (strchr(s, ':'))
		return fail(ret_reason, -EINVAL, "unsupported digest algorithm (only sha256)");
	return fail(ret_reason, -EINVAL, "invalid digest format");
}

/* docker refuses a bare image ID where a name is expected. */
static bool is_identifier(const char *p, size_t n)
{
	size_t i;

	if (n != IDENTIFIER_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (!is_digit(p[i]) && !(p[i] >= 'a' && p[i] <= 'f'))
			return false;
	return true;
}

/*
 * Not a host, but a good path component once lowercased ("Foo_Bar.com")?
 * Then docker's complaint, and ours, is the upper case.
 */
static bool fine_in_lowercase(const char *p, size_t n)
{
	char lower[REF_STRING_MAX];
	size_t i;

	if (!has_upper(p, n) || n > sizeof(lower))
		return false;
	for (i = 0; i < n; i++)
		lower[i] = is_upper(p[i]) ? (char)(p[i] - 'A' + 'a') : p[i];
	return check_path_component(lower, n, NULL) == 0;
}

static void copy_slice(char *dst, const char *p, size_t n)
{
	memcpy(dst, p, n);
	dst[n] = '\0';
}

int ref_parse(const char *s, struct ref *ret, const char **ret_reason)
{
	const char *at, *slash, *rest, *colon;
	size_t len, i, name_len, rest_len, path_len, prefix_len = 0;
	struct ref r;
	int err;

	len = strnlen(s, REF_STRING_MAX + 1);
	if (len == 0)
		return fail(ret_reason, -EINVAL, REASON_EMPTY);
	if (len > REF_STRING_MAX)
		return fail(ret_reason, -ENAMETOOLONG, "reference is too long");
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return fail(ret_reason, -EINVAL,
				    "reference contains whitespace or a control character");
	if (is_identifier(s, len))
		return fail(ret_reason, -EINVAL,
			    "repository name must not be a 64-byte hexadecimal string");

	memset(&r, 0, sizeof(r));
	at = memchr(s, '@', len);
	name_len = at ? (size_t)(at - s) : len;

	/* The registry, as docker's splitDockerDomain decides it. */
	memcpy(r.registry, REF_DEFAULT_REGISTRY, sizeof(REF_DEFAULT_REGISTRY));
	rest = s;
	rest_len = name_len;
	slash = memchr(s, '/', name_len);
	if (slash) {
		size_t host_len = (size_t)(slash - s);

		if (hub_alias(s, host_len)) {
			rest = slash + 1;
		} else if (looks_like_registry(s, host_len)) {
			err = check_host(s, host_len, ret_reason);
			if (err == -EINVAL && fine_in_lowercase(s, host_len))
				return fail(ret_reason, err, "repository name must be lowercase");
			if (err < 0)
				return err;
			copy_slice(r.registry, s, host_len);
			rest = slash + 1;
		}
		rest_len = name_len - (size_t)(rest - s);
	}

	/* The repository, and docker.io's "library/" for official images. */
	colon = memchr(rest, ':', rest_len);
	path_len = colon ? (size_t)(colon - rest) : rest_len;
	err = check_path(rest, path_len, ret_reason);
	if (err < 0)
		return err;
	if (strcmp(r.registry, REF_DEFAULT_REGISTRY) == 0 && !memchr(rest, '/', path_len))
		prefix_len = OFFICIAL_PREFIX_LEN;
	err = check_repository_length(prefix_len + path_len, ret_reason);
	if (err < 0)
		return err;
	memcpy(r.repository, OFFICIAL_PREFIX, prefix_len);
	copy_slice(r.repository + prefix_len, rest, path_len);

	if (colon) {
		size_t tag_len = rest_len - path_len - 1;

		err = check_tag(colon + 1, tag_len, ret_reason);
		if (err < 0)
			return err;
		copy_slice(r.tag, colon + 1, tag_len);
		r.has_tag = true;
	}
	if (at) {
		err = parse_digest(at + 1, &r.digest, ret_reason);
		if (err < 0)
			return err;
		r.has_digest = true;
	}
	if (!r.has_tag && !r.has_digest) {
		memcpy(r.tag, REF_DEFAULT_TAG, sizeof(REF_DEFAULT_TAG));
		r.has_tag = true;
	}
	*ret = r;
	return 0;
}

static void format(const struct ref *r, const char *registry, const char *repository, char *buf,
		   size_t size)
{
	char digest[DIGEST_STRING_SIZE] = "";

	if (r->has_digest)
		digest_format(&r->digest, digest);
	snprintf(buf, size, "%s%s%s%s%s%s%s", registry, *registry ? "/" : "", repository,
		 r->has_tag ? ":" : "", r->has_tag ? r->tag : "", r->has_digest ? "@" : "", digest);
}

void ref_format(const struct ref *r, char *buf, size_t size)
{
	format(r, r->registry, r->repository, buf, size);
}

void ref_format_familiar(const struct ref *r, char *buf, size_t size)
{
	const char *registry = r->registry, *repository = r->repository, *slash, *short_name;

	if (strcmp(registry, REF_DEFAULT_REGISTRY) == 0) {
		slash = strchr(repository, '/');
		if (!slash || !looks_like_registry(repository, (size_t)(slash - repository)))
			registry = "";
	}
	if (!*registry && strncmp(repository, OFFICIAL_PREFIX, OFFICIAL_PREFIX_LEN) == 0) {
		short_name = repository + OFFICIAL_PREFIX_LEN;
		/* A bare 64-hex name would read back as an image ID. */
		if (!strchr(short_name, '/') &&
		    (r->has_tag || r->has_digest || !is_identifier(short_name, strlen(short_name))))
			repository = short_name;
	}
	format(r, registry, repository, buf, size);
}

bool ref_equal(const struct ref *a, const struct ref *b)
{
	return strcmp(a->registry, b->registry) == 0 && strcmp(a->repository, b->repository) == 0 &&
	       a->has_tag == b->has_tag && (!a->has_tag || strcmp(a->tag, b->tag) == 0) &&
	       a->has_digest == b->has_digest &&
	       (!a->has_digest || digest_equal(&a->digest, &b->digest));
}

int ref_validate_registry(const char *host)
{
	size_t n = strnlen(host, REF_NAME_MAX + 1);
	int r;

	if (n > REF_NAME_MAX)
		return -ENAMETOOLONG;
	r = check_host(host, n, NULL);
	if (r < 0)
		return r;
	if (!looks_like_registry(host, n) || hub_alias(host, n))
		return -EINVAL;
	return 0;
}

int ref_validate_repository(const char *repo)
{
	size_t n = strnlen(repo, REF_NAME_MAX + 1);

	if (n > REF_NAME_MAX)
		return -ENAMETOOLONG;
	return check_path(repo, n, NULL);
}

int ref_validate_tag(const char *tag)
{
	size_t n = strnlen(tag, REF_TAG_MAX + 1);

	if (n > REF_TAG_MAX)
		return -ENAMETOOLONG;
	return check_tag(tag, n, NULL);
}
