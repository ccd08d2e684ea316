/*
 * ref: image references, parsed and normalised as docker does.
 *
 * "debian", "user/img:tag", "ghcr.io/o/r@sha256:<hex>": this module turns
 * what a person types after `docker pull` into a registry, a repository,
 * a tag and a digest, following docker's ParseNormalizedNamed
 * (distribution/reference), so that a name means the same here as it does
 * to dockerd:
 *
 *   debian                   -> docker.io/library/debian:latest
 *   user/img                 -> docker.io/user/img:latest
 *   index.docker.io/debian   -> docker.io/library/debian:latest
 *   localhost:5000/a/b:tag   -> registry "localhost:5000", repository "a/b"
 *   [::1]:5000/x@sha256:...  -> registry "[::1]:5000", digest only
 *
 * The first of several path components names a registry only when it
 * contains '.' or ':' or is "localhost". Otherwise the reference is on
 * docker.io, where a single-component name lives under "library/".
 * Docker Hub's other names, "index.docker.io" and "registry-1.docker.io",
 * are spelled "docker.io" (ref_canonical_registry, the one place that
 * knows them); no other host is rewritten. docker itself rewrites only
 * "index.docker.io": dindfs rewrites both, so that "registry-1.docker.io/x"
 * goes wherever docker.io goes (its --upstream). A lone component is always
 * a repository: "localhost:5000" is docker.io/library/localhost, tag 5000.
 *
 * dindfs adds one rule: a first component that is exactly "local" is the
 * registry "local", where images saved from a level live
 * (registry/local/<repo>/manifests/<tag> on the mount). So "local/app:v1"
 * is registry "local", repository "app"; docker would read it as
 * docker.io/local/app, which must be written out in full here.
 *
 * Docker's releases differ in two corners; this follows the older rule
 * where it is stricter and the newer where it is looser:
 * - upper case in the first component is refused ("repository name must
 *   be lowercase"), as docker 20.10 does; newer releases read "Foo/bar"
 *   as registry "Foo";
 * - the repository (counted with docker.io's "library/", without the
 *   registry) is at most REF_NAME_MAX characters, as in current
 *   distribution/reference; older releases counted the registry too.
 * Where dindfs is stricter than docker, on purpose:
 * - digests are sha256 only (the store knows no other), parsed by
 *   digest_parse;
 * - a first component with '.' or ':' must be a valid host; docker falls
 *   back to a registry-less name for a few of those ("a_b.c/x"), which has
 *   no registry to fetch from;
 * - a registry is at most REF_NAME_MAX characters (docker has no limit).
 *
 * Nothing here allocates or prints. Every name that comes out of ref_parse
 * is safe as a path component sequence: no empty, "." or ".." components,
 * no leading or trailing '/', no bytes outside [A-Za-z0-9._:/[]-].
 */
#ifndef DINDFS_REF_H
#define DINDFS_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "digest.h"

/* Longest repository (docker's NameTotalLengthMax) and longest registry. */
#define REF_NAME_MAX 255
/* Longest tag: docker's [\w][\w.-]{0,127}. */
#define REF_TAG_MAX 128
/*
 * Longest reference ref_parse accepts, and longest ref_format writes:
 * registry '/' repository ':' tag '@' digest (DIGEST_STRING_SIZE counts
 * the '@' in place of its NUL).
 */
#define REF_STRING_MAX (REF_NAME_MAX + 1 + REF_NAME_MAX + 1 + REF_TAG_MAX + DIGEST_STRING_SIZE)
/* A buffer that holds any formatted reference, NUL included. */
#define REF_STRING_SIZE (REF_STRING_MAX + 1)

#define REF_DEFAULT_REGISTRY "docker.io"
#define REF_LOCAL_REGISTRY   "local"
#define REF_DEFAULT_TAG	     "latest"

/* Docker Hub's other names, which mean REF_DEFAULT_REGISTRY. */
#define REF_N_DOCKER_HUB_ALIASES 2
extern const char *const ref_docker_hub_aliases[REF_N_DOCKER_HUB_ALIASES];

/*
 * The registry host means: "docker.io" for "index.docker.io" and
 * "registry-1.docker.io" (exactly, in lower case), else host itself. The
 * result is a static string or host.
 */
const char *ref_canonical_registry(const char *host);

struct ref {
	char registry[REF_NAME_MAX + 1];   /* "docker.io", "localhost:5000", "local" */
	char repository[REF_NAME_MAX + 1]; /* "library/debian" */
	char tag[REF_TAG_MAX + 1];	   /* "" unless has_tag */
	bool has_tag;
	struct digest digest; /* meaningful only if has_digest */
	bool has_digest;
};

/*
 * Parse and normalise s. A reference with neither tag nor digest gets the
 * tag "latest" (has_tag set), as `docker pull` does; one with a digest and
 * no tag has no tag. When both are given both are kept, and the digest is
 * what to fetch: the tag is then only a label.
 *
 * Returns 0 and fills *ret, or:
 *   -EINVAL        not a reference (bad grammar, upper case in the
 *                  repository, a bare 64-hex identifier, a bad digest,
 *                  whitespace or control bytes, trailing garbage);
 *   -ENAMETOOLONG  the repository, registry, tag or whole string is over
 *                  its limit.
 * On failure *ret is untouched and, if ret_reason is not NULL, *ret_reason
 * points to a static lowercase message ("repository name must be
 * lowercase") fit to follow "invalid reference 'x': ". *ret_reason is not
 * touched on success.
 */
int ref_parse(const char *s, struct ref *ret, const char **ret_reason);

/*
 * Write the full normalised reference, "registry/repository[:tag][@digest]"
 * ("docker.io/library/debian:latest"). A buffer of REF_STRING_SIZE bytes
 * always holds it; a smaller one gets a truncated, NUL-terminated string.
 * For a reference from ref_parse, ref_parse of the result gives it back.
 */
void ref_format(const struct ref *r, char *buf, size_t size);

/*
 * Like ref_format, but docker's short "familiar" form: without
 * "docker.io/", and without "library/" for a one-component official name
 * ("debian:latest", "user/img:v1", "ghcr.io/o/r:tag"). "docker.io/" stays
 * where leaving it out would make the first component read as a registry
 * ("docker.io/local/x", "docker.io/foo.bar/x"), so the familiar form too
 * parses back to r.
 */
void ref_format_familiar(const struct ref *r, char *buf, size_t size);

/* Same registry, repository, tag (if any) and digest (if any)? */
bool ref_equal(const struct ref *a, const struct ref *b);

/*
 * Check one part of a reference on its own, as it appears in a struct ref
 * or in a path on the mount. Each returns 0, -EINVAL, or -ENAMETOOLONG.
 *
 * ref_validate_registry accepts exactly the registry names ref_parse can
 * return: docker's host grammar (domain name or [IPv6], optional :port)
 * that also reads as a registry (has '.' or ':', or is "localhost" or
 * "local"), and not one of Docker Hub's aliases (that is "docker.io").
 *
 * ref_validate_repository checks docker's path grammar: lowercase
 * components [a-z0-9]+ joined by '.', '_', "__" or runs of '-', separated
 * by single '/', at most REF_NAME_MAX characters. It knows no registry, so
 * it cannot tell that docker.io spells "debian" as "library/debian".
 *
 * ref_validate_tag checks [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
 */
int ref_validate_registry(const char *host);
int ref_validate_repository(const char *repo);
int ref_validate_tag(const char *tag);

#endif
