/*
 * Unit tests for cache/ref: docker's reference grammar and normalisation,
 * mostly the cases of distribution/reference's own tests (normalize_test.go,
 * reference_test.go), plus dindfs's "local" registry and the limits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "ref.h"
#include "testutil.h"

#define HEX    "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
#define DIGEST "sha256:" HEX
#define FFS    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
/* A bare image ID: 64 lowercase hex digits. */
#define IMAGE_ID "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"

#define LOWERCASE   "repository name must be lowercase"
#define EMPTY	    "repository name must have at least one component"
#define EMPTY_COMP  "repository name has an empty path component"
#define DOT_COMP    "repository path component must not be '.' or '..'"
#define EDGE	    "repository path component must start and end with a letter or digit"
#define SEPARATOR   "repository name has an invalid separator"
#define BAD_CHAR    "repository name contains an invalid character"
#define BAD_HOST    "invalid registry host name"
#define BAD_PORT    "invalid registry port"
#define BAD_IPV6    "invalid IPv6 address in registry host name"
#define SPACE	    "reference contains whitespace or a control character"
#define IDENTIFIER  "repository name must not be a 64-byte hexadecimal string"
#define BAD_SHA256  "invalid digest: sha256 needs 64 lowercase hexadecimal digits"
#define UNSUPPORTED "unsupported digest algorithm (only sha256)"
#define BAD_DIGEST  "invalid digest format"
#define TAG_EMPTY   "tag is empty"
#define TAG_START   "tag must start with a letter, digit or underscore"
#define TAG_CHAR    "tag contains an invalid character"
#define REPO_LONG   "repository name must not be more than 255 characters"
#define TAG_LONG    "tag must not be more than 128 characters"
#define HOST_LONG   "registry host name must not be more than 255 characters"
#define INPUT_LONG  "reference is too long"

struct valid_case {
	const char *input;
	const char *registry;
	const char *repository;
	const char *tag;    /* NULL: no tag */
	const char *digest; /* NULL: no digest */
	const char *full;
	const char *familiar;
};

static const struct valid_case valid[] = {
	/* docker.io and its official "library/" images */
	{"debian", "docker.io", "library/debian", "latest", NULL, "docker.io/library/debian:latest",
	 "debian:latest"},
	{"debian:bookworm", "docker.io", "library/debian", "bookworm", NULL,
	 "docker.io/library/debian:bookworm", "debian:bookworm"},
	{"library/debian", "docker.io", "library/debian", "latest", NULL,
	 "docker.io/library/debian:latest", "debian:latest"},
	{"docker.io/debian", "docker.io", "library/debian", "latest", NULL,
	 "docker.io/library/debian:latest", "debian:latest"},
	{"docker.io/library/debian", "docker.io", "library/debian", "latest", NULL,
	 "docker.io/library/debian:latest", "debian:latest"},
	{"index.docker.io/debian", "docker.io", "library/debian", "latest", NULL,
	 "docker.io/library/debian:latest", "debian:latest"},
	{"index.docker.io/library/debian:12", "docker.io", "library/debian", "12", NULL,
	 "docker.io/library/debian:12", "debian:12"},
	{"docker/docker", "docker.io", "docker/docker", "latest", NULL,
	 "docker.io/docker/docker:latest", "docker/docker:latest"},
	{"index.docker.io/docker/docker", "docker.io", "docker/docker", "latest", NULL,
	 "docker.io/docker/docker:latest", "docker/docker:latest"},
	{"user/img", "docker.io", "user/img", "latest", NULL, "docker.io/user/img:latest",
	 "user/img:latest"},
	{"index.docker.io/fooo/bar", "docker.io", "fooo/bar", "latest", NULL,
	 "docker.io/fooo/bar:latest", "fooo/bar:latest"},
	{"nonlibrary/ubuntu", "docker.io", "nonlibrary/ubuntu", "latest", NULL,
	 "docker.io/nonlibrary/ubuntu:latest", "nonlibrary/ubuntu:latest"},
	{"other/library", "docker.io", "other/library", "latest", NULL,
	 "docker.io/other/library:latest", "other/library:latest"},
	{"library/foo/bar", "docker.io", "library/foo/bar", "latest", NULL,
	 "docker.io/library/foo/bar:latest", "library/foo/bar:latest"},
	{"docker.io/library/foo/bar", "docker.io", "library/foo/bar", "latest", NULL,
	 "docker.io/library/foo/bar:latest", "library/foo/bar:latest"},
	{"store/foo/bar", "docker.io", "store/foo/bar", "latest", NULL,
	 "docker.io/store/foo/bar:latest", "store/foo/bar:latest"},
	{"ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base", "latest", NULL,
	 "docker.io/library/ubuntu-12.04-base:latest", "ubuntu-12.04-base:latest"},
	/* dindfs spells Docker Hub's endpoint docker.io too (docker does not) */
	{"registry-1.docker.io/library/debian", "docker.io", "library/debian", "latest", NULL,
	 "docker.io/library/debian:latest", "debian:latest"},
	{"registry-1.docker.io/debian", "docker.io", "library/debian", "latest", NULL,
	 "docker.io/library/debian:latest", "debian:latest"},
	/* other registries: '.', ':' or localhost */
	{"127.0.0.1:8000/private/moonbase", "127.0.0.1:8000", "private/moonbase", "latest", NULL,
	 "127.0.0.1:8000/private/moonbase:latest", "127.0.0.1:8000/private/moonbase:latest"},
	{"127.0.0.1:8000/privatebase", "127.0.0.1:8000", "privatebase", "latest", NULL,
	 "127.0.0.1:8000/privatebase:latest", "127.0.0.1:8000/privatebase:latest"},
	{"example.com/private/moonbase", "example.com", "private/moonbase", "latest", NULL,
	 "example.com/private/moonbase:latest", "example.com/private/moonbase:latest"},
	{"example.com:8000/privatebasee", "example.com:8000", "privatebasee", "latest", NULL,
	 "example.com:8000/privatebasee:latest", "example.com:8000/privatebasee:latest"},
	{"localhost:5000/a/b:tag", "localhost:5000", "a/b", "tag", NULL, "localhost:5000/a/b:tag",
	 "localhost:5000/a/b:tag"},
	{"localhost/foo", "localhost", "foo", "latest", NULL, "localhost/foo:latest",
	 "localhost/foo:latest"},
	{"ghcr.io/o/r", "ghcr.io", "o/r", "latest", NULL, "ghcr.io/o/r:latest",
	 "ghcr.io/o/r:latest"},
	{"127.0.0.1:5001/x", "127.0.0.1:5001", "x", "latest", NULL, "127.0.0.1:5001/x:latest",
	 "127.0.0.1:5001/x:latest"},
	{"192.168.0.1:8/debian", "192.168.0.1:8", "debian", "latest", NULL,
	 "192.168.0.1:8/debian:latest", "192.168.0.1:8/debian:latest"},
	{"test:5000/repo:tag", "test:5000", "repo", "tag", NULL, "test:5000/repo:tag",
	 "test:5000/repo:tag"},
	{"test-com:8080/foo", "test-com:8080", "foo", "latest", NULL, "test-com:8080/foo:latest",
	 "test-com:8080/foo:latest"},
	{"xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", NULL,
	 "xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage:xn--n3h.com"},
	{"sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux",
	 "some-long-tag", NULL, "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
	 "sub-dom1.foo.com/bar/baz/quux:some-long-tag"},
	{"b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app",
	 "test.example.com", NULL, "b.gcr.io/test.example.com/my-app:test.example.com",
	 "b.gcr.io/test.example.com/my-app:test.example.com"},
	{"Example.COM/x", "Example.COM", "x", "latest", NULL, "Example.COM/x:latest",
	 "Example.COM/x:latest"},
	{"example.com:0/x", "example.com:0", "x", "latest", NULL, "example.com:0/x:latest",
	 "example.com:0/x:latest"},
	/* IPv6 in brackets, with or without a port */
	{"[::1]:5000/x", "[::1]:5000", "x", "latest", NULL, "[::1]:5000/x:latest",
	 "[::1]:5000/x:latest"},
	{"[2001:db8::1]/repo", "[2001:db8::1]", "repo", "latest", NULL, "[2001:db8::1]/repo:latest",
	 "[2001:db8::1]/repo:latest"},
	{"[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag", NULL,
	 "[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]/repo:tag"},
	{"[2001:db8::]:5000/repo", "[2001:db8::]:5000", "repo", "latest", NULL,
	 "[2001:db8::]:5000/repo:latest", "[2001:db8::]:5000/repo:latest"},
	{"[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000", "library/debian",
	 "latest", NULL, "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest",
	 "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest"},
	/* a lone component is a repository, whatever it looks like */
	{"localhost", "docker.io", "library/localhost", "latest", NULL,
	 "docker.io/library/localhost:latest", "localhost:latest"},
	{"localhost:5000", "docker.io", "library/localhost", "5000", NULL,
	 "docker.io/library/localhost:5000", "localhost:5000"},
	{"192.168.0.1", "docker.io", "library/192.168.0.1", "latest", NULL,
	 "docker.io/library/192.168.0.1:latest", "192.168.0.1:latest"},
	{"192.168.0.1:80", "docker.io", "library/192.168.0.1", "80", NULL,
	 "docker.io/library/192.168.0.1:80", "192.168.0.1:80"},
	{"test_com", "docker.io", "library/test_com", "latest", NULL,
	 "docker.io/library/test_com:latest", "test_com:latest"},
	{"test.com:tag", "docker.io", "library/test.com", "tag", NULL,
	 "docker.io/library/test.com:tag", "test.com:tag"},
	{"test.com:5000", "docker.io", "library/test.com", "5000", NULL,
	 "docker.io/library/test.com:5000", "test.com:5000"},
	{"foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080", NULL,
	 "docker.io/library/foo_bar.com:8080", "foo_bar.com:8080"},
	{"foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080", NULL,
	 "docker.io/foo/foo_bar.com:8080", "foo/foo_bar.com:8080"},
	/* path components and separators */
	{"docker-rules/docker", "docker.io", "docker-rules/docker", "latest", NULL,
	 "docker.io/docker-rules/docker:latest", "docker-rules/docker:latest"},
	{"docker---rules/docker", "docker.io", "docker---rules/docker", "latest", NULL,
	 "docker.io/docker---rules/docker:latest", "docker---rules/docker:latest"},
	{"dock__er/docker", "docker.io", "dock__er/docker", "latest", NULL,
	 "docker.io/dock__er/docker:latest", "dock__er/docker:latest"},
	{"d/docker", "docker.io", "d/docker", "latest", NULL, "docker.io/d/docker:latest",
	 "d/docker:latest"},
	{"jess/t", "docker.io", "jess/t", "latest", NULL, "docker.io/jess/t:latest",
	 "jess/t:latest"},
	{"a.b_c__d-e--f", "docker.io", "library/a.b_c__d-e--f", "latest", NULL,
	 "docker.io/library/a.b_c__d-e--f:latest", "a.b_c__d-e--f:latest"},
	{"x/a.b_c__d-e--f", "docker.io", "x/a.b_c__d-e--f", "latest", NULL,
	 "docker.io/x/a.b_c__d-e--f:latest", "x/a.b_c__d-e--f:latest"},
	{"thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "docker.io",
	 "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "latest", NULL,
	 "docker.io/library/"
	 "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest",
	 "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest"},
	/* an image ID is refused only when bare */
	{"docker.io/" IMAGE_ID, "docker.io", "library/" IMAGE_ID, "latest", NULL,
	 "docker.io/library/" IMAGE_ID ":latest", IMAGE_ID ":latest"},
	{IMAGE_ID ":v1", "docker.io", "library/" IMAGE_ID, "v1", NULL,
	 "docker.io/library/" IMAGE_ID ":v1", IMAGE_ID ":v1"},
	{"dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9", "docker.io",
	 "library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9", "latest", NULL,
	 "docker.io/library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9:latest",
	 "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9:latest"},
	/* tags */
	{"lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", NULL,
	 "docker.io/library/lowercase:Uppercase", "lowercase:Uppercase"},
	{"a:_x", "docker.io", "library/a", "_x", NULL, "docker.io/library/a:_x", "a:_x"},
	{"a:1.0-rc_1", "docker.io", "library/a", "1.0-rc_1", NULL, "docker.io/library/a:1.0-rc_1",
	 "a:1.0-rc_1"},
	/* digests: with a digest and no tag there is no default tag */
	{"redis@" DIGEST, "docker.io", "library/redis", NULL, DIGEST,
	 "docker.io/library/redis@" DIGEST, "redis@" DIGEST},
	{"busybox:latest@" DIGEST, "docker.io", "library/busybox", "latest", DIGEST,
	 "docker.io/library/busybox:latest@" DIGEST, "busybox:latest@" DIGEST},
	{"dmcgowan/myapp@" DIGEST, "docker.io", "dmcgowan/myapp", NULL, DIGEST,
	 "docker.io/dmcgowan/myapp@" DIGEST, "dmcgowan/myapp@" DIGEST},
	{"test:5000/repo@" DIGEST, "test:5000", "repo", NULL, DIGEST, "test:5000/repo@" DIGEST,
	 "test:5000/repo@" DIGEST},
	{"test:5000/repo:tag@" DIGEST, "test:5000", "repo", "tag", DIGEST,
	 "test:5000/repo:tag@" DIGEST, "test:5000/repo:tag@" DIGEST},
	{"[2001:db8::1]:5000/repo:tag@" DIGEST, "[2001:db8::1]:5000", "repo", "tag", DIGEST,
	 "[2001:db8::1]:5000/repo:tag@" DIGEST, "[2001:db8::1]:5000/repo:tag@" DIGEST},
	/* dindfs's "local" registry */
	{"local/myapp:v1", "local", "myapp", "v1", NULL, "local/myapp:v1", "local/myapp:v1"},
	{"local/a/b", "local", "a/b", "latest", NULL, "local/a/b:latest", "local/a/b:latest"},
	{"local/app@" DIGEST, "local", "app", NULL, DIGEST, "local/app@" DIGEST,
	 "local/app@" DIGEST},
	{"local", "docker.io", "library/local", "latest", NULL, "docker.io/library/local:latest",
	 "local:latest"},
	{"local:5000/x", "local:5000", "x", "latest", NULL, "local:5000/x:latest",
	 "local:5000/x:latest"},
	/* familiar form keeps docker.io/ where the first component would read as a registry */
	{"docker.io/local/x", "docker.io", "local/x", "latest", NULL, "docker.io/local/x:latest",
	 "docker.io/local/x:latest"},
	{"docker.io/localhost/x", "docker.io", "localhost/x", "latest", NULL,
	 "docker.io/localhost/x:latest", "docker.io/localhost/x:latest"},
	{"docker.io/foo.bar/baz", "docker.io", "foo.bar/baz", "latest", NULL,
	 "docker.io/foo.bar/baz:latest", "docker.io/foo.bar/baz:latest"},
	{"docker.io/index.docker.io/x", "docker.io", "index.docker.io/x", "latest", NULL,
	 "docker.io/index.docker.io/x:latest", "docker.io/index.docker.io/x:latest"},
	{"docker.io/library/local", "docker.io", "library/local", "latest", NULL,
	 "docker.io/library/local:latest", "local:latest"},
};

static void check_round_trip(const struct ref *r, const char *text)
{
	struct ref again;

	ck_assert_msg(ref_parse(text, &again, NULL) == 0, "'%s' does not parse back", text);
	ck_assert_msg(ref_equal(r, &again), "'%s' parses back to something else", text);
}

START_TEST(test_valid)
{
	const struct valid_case *c = &valid[_i];
	const char *reason = "untouched";
	char buf[REF_STRING_SIZE], digest[DIGEST_STRING_SIZE];
	struct ref r;

	ck_assert_msg(ref_parse(c->input, &r, &reason) == 0, "'%s' refused: %s", c->input, reason);
	ck_assert_str_eq(reason, "untouched");
	ck_assert_str_eq(r.registry, c->registry);
	ck_assert_str_eq(r.repository, c->repository);
	ck_assert_int_eq(r.has_tag, c->tag != NULL);
	ck_assert_str_eq(r.tag, c->tag ? c->tag : "");
	ck_assert_int_eq(r.has_digest, c->digest != NULL);
	if (c->digest) {
		digest_format(&r.digest, digest);
		ck_assert_str_eq(digest, c->digest);
	}

	ref_format(&r, buf, sizeof(buf));
	ck_assert_str_eq(buf, c->full);
	check_round_trip(&r, buf);
	ref_format_familiar(&r, buf, sizeof(buf));
	ck_assert_str_eq(buf, c->familiar);
	check_round_trip(&r, buf);

	/* what comes out passes the validators the FUSE layer will use */
	ck_assert_int_eq(ref_validate_registry(r.registry), 0);
	ck_assert_int_eq(ref_validate_repository(r.repository), 0);
	if (r.has_tag)
		ck_assert_int_eq(ref_validate_tag(r.tag), 0);
}
END_TEST

struct invalid_case {
	const char *input;
	int err;
	const char *reason;
};

static const struct invalid_case invalid[] = {
	{"", -EINVAL, EMPTY},
	{":justtag", -EINVAL, EMPTY},
	{"@" DIGEST, -EINVAL, EMPTY},
	{"docker.io/", -EINVAL, EMPTY},
	{"local/", -EINVAL, EMPTY},
	/* upper case in the repository, wherever it is */
	{"docker/Docker", -EINVAL, LOWERCASE},
	{"docker.io/docker/Docker", -EINVAL, LOWERCASE},
	{"Uppercase:tag", -EINVAL, LOWERCASE},
	{"test:5000/Uppercase/lowercase:tag", -EINVAL, LOWERCASE},
	/* docker 20.10 refuses these; later releases read "Docker" as a host */
	{"Docker/docker", -EINVAL, LOWERCASE},
	{"DOCKER/docker", -EINVAL, LOWERCASE},
	{"Foo_Bar.com/x", -EINVAL, LOWERCASE},
	{"Foo.com:x/y", -EINVAL, BAD_PORT},
	/* components and separators */
	{"-docker", -EINVAL, EDGE},
	{"-docker/docker", -EINVAL, EDGE},
	{"docker-/docker", -EINVAL, EDGE},
	{"-docker-/docker", -EINVAL, EDGE},
	{"____/____", -EINVAL, EDGE},
	{"_docker/_docker", -EINVAL, EDGE},
	{"a/.b", -EINVAL, EDGE},
	{"[fc00::1]", -EINVAL, EDGE},
	{"[fc00::1]:5000", -EINVAL, EDGE},
	{"[2001:db8::1]:tag", -EINVAL, EDGE},
	{"[fe80::1%@invalidzone]:5000/repo", -EINVAL, EDGE},
	{"x/dock..er/docker", -EINVAL, SEPARATOR},
	{"x/dock_.er/docker", -EINVAL, SEPARATOR},
	{"x/dock-.er/docker", -EINVAL, SEPARATOR},
	/* docker's own cases: the '.' makes the first component a host */
	{"dock..er/docker", -EINVAL, BAD_HOST},
	{"dock_.er/docker", -EINVAL, BAD_HOST},
	{"dock-.er/docker", -EINVAL, BAD_HOST},
	{"a___b", -EINVAL, SEPARATOR},
	{"a._b", -EINVAL, SEPARATOR},
	{"a.-b", -EINVAL, SEPARATOR},
	{"docker///docker", -EINVAL, EMPTY_COMP},
	{"docker.io/docker///docker", -EINVAL, EMPTY_COMP},
	{"docker/", -EINVAL, EMPTY_COMP},
	{"/debian", -EINVAL, EMPTY_COMP},
	{"debian//x", -EINVAL, EMPTY_COMP},
	{".", -EINVAL, DOT_COMP},
	{"..", -EINVAL, DOT_COMP},
	{"debian/./x", -EINVAL, DOT_COMP},
	{"debian/../x", -EINVAL, DOT_COMP},
	{"a/..", -EINVAL, DOT_COMP},
	{"example.com/../x", -EINVAL, DOT_COMP},
	{"example.com/./x", -EINVAL, DOT_COMP},
	{"local/../x", -EINVAL, DOT_COMP},
	{"aa/asdf$$^/aa", -EINVAL, EDGE},
	{"aa/as$df/aa", -EINVAL, BAD_CHAR},
	{"debian#x", -EINVAL, BAD_CHAR},
	{"d\xc3\xa9"
	 "bian",
	 -EINVAL, BAD_CHAR},
	/* registries */
	{"https://github.com/docker/docker", -EINVAL, BAD_PORT},
	{"fc00::1:5000/debian", -EINVAL, BAD_PORT},
	{"example.com:/x", -EINVAL, BAD_PORT},
	{"example.com:80a/x", -EINVAL, BAD_PORT},
	{"example.com:5000:5000/x", -EINVAL, BAD_PORT},
	{"debian:a/b", -EINVAL, BAD_PORT},
	{"-docker.io/docker/docker", -EINVAL, BAD_HOST},
	{"example-.com/x", -EINVAL, BAD_HOST},
	{"example..com/x", -EINVAL, BAD_HOST},
	{"example.com./x", -EINVAL, BAD_HOST},
	{"./debian", -EINVAL, BAD_HOST},
	{"../debian", -EINVAL, BAD_HOST},
	{"[::1]x/x", -EINVAL, BAD_HOST},
	/* docker reads these as registry-less names; there is nowhere to fetch them from */
	{"exa_mple.com/x", -EINVAL, BAD_HOST},
	{"a__b.c-d/e", -EINVAL, BAD_HOST},
	{"[fe80::1%eth0]:5000/debian", -EINVAL, BAD_IPV6},
	{"[2001:db8:3:4::192.0.2.33]:5000/debian", -EINVAL, BAD_IPV6},
	{"[]/x", -EINVAL, EDGE}, /* no '.' or ':': a repository, and a bad one */
	{"[::1/x", -EINVAL, BAD_IPV6},
	{"[::g]/x", -EINVAL, BAD_IPV6},
	/* whitespace and control bytes, anywhere */
	{"debian ", -EINVAL, SPACE},
	{" debian", -EINVAL, SPACE},
	{"deb ian", -EINVAL, SPACE},
	{"debian\t", -EINVAL, SPACE},
	{"debian\n", -EINVAL, SPACE},
	{"debian\r", -EINVAL, SPACE},
	{"debian:lat est", -EINVAL, SPACE},
	{"\x01"
	 "debian",
	 -EINVAL, SPACE},
	{"debian\x7f", -EINVAL, SPACE},
	{"debian@" DIGEST " ", -EINVAL, SPACE},
	/* a bare image ID */
	{IMAGE_ID, -EINVAL, IDENTIFIER},
	{HEX, -EINVAL, IDENTIFIER},
	/* tags */
	{"debian:", -EINVAL, TAG_EMPTY},
	{"debian:-x", -EINVAL, TAG_START},
	{"debian:.x", -EINVAL, TAG_START},
	{"debian:\xc3\xa9", -EINVAL, TAG_START},
	{"debian:latest:extra", -EINVAL, TAG_CHAR},
	{"debian:a+b", -EINVAL, TAG_CHAR},
	/* digests */
	{"repo@sha256:ffffffffffffffffffffffffffffffffff", -EINVAL, BAD_SHA256},
	{"debian@sha256:DBCC1C35AC38DF41FD2F5E4130B32FFDB93EBAE8B3DBE638C23575912276FC9C", -EINVAL,
	 BAD_SHA256},
	{"debian@" DIGEST "0", -EINVAL, BAD_SHA256},
	{"debian@" DIGEST "@" DIGEST, -EINVAL, BAD_SHA256},
	{"debian@sha256:", -EINVAL, BAD_SHA256},
	{"validname@invaliddigest:" FFS, -EINVAL, UNSUPPORTED},
	{"x@sha512:" FFS FFS, -EINVAL, UNSUPPORTED},
	{"debian@", -EINVAL, BAD_DIGEST},
	{"debian@latest", -EINVAL, BAD_DIGEST},
	{"user@host/x", -EINVAL, BAD_DIGEST},
};

START_TEST(test_invalid)
{
	const struct invalid_case *c = &invalid[_i];
	const char *reason = NULL;
	struct ref r, before;

	memset(&r, 'x', sizeof(r));
	before = r;
	ck_assert_msg(ref_parse(c->input, &r, &reason) == c->err, "'%s' not refused with %d",
		      c->input, c->err);
	ck_assert_ptr_nonnull(reason);
	ck_assert_msg(strcmp(reason, c->reason) == 0, "'%s': reason '%s', expected '%s'", c->input,
		      reason, c->reason);
	/* untouched on failure */
	ck_assert(memcmp(&r, &before, sizeof(r)) == 0);
	/* and ret_reason is optional */
	ck_assert_int_eq(ref_parse(c->input, &r, NULL), c->err);
}
END_TEST

/* prefix, n copies of unit, suffix: a fresh string the caller frees. */
static char *repeat(const char *prefix, const char *unit, size_t n, const char *suffix)
{
	size_t plen = strlen(prefix), ulen = strlen(unit), slen = strlen(suffix), i;
	char *s = malloc(plen + n * ulen + slen + 1), *p;

	ck_assert_ptr_nonnull(s);
	memcpy(s, prefix, plen);
	p = s + plen;
	for (i = 0; i < n; i++, p += ulen)
		memcpy(p, unit, ulen);
	memcpy(p, suffix, slen + 1);
	return s;
}

static void expect_ok(char *s)
{
	const char *reason = "";
	struct ref r;

	ck_assert_msg(ref_parse(s, &r, &reason) == 0, "refused (%s): %s", reason, s);
	free(s);
}

static void expect_fail(char *s, int err, const char *why)
{
	const char *reason = NULL;
	struct ref r;

	ck_assert_int_eq(ref_parse(s, &r, &reason), err);
	ck_assert_str_eq(reason, why);
	free(s);
}

START_TEST(test_repository_length)
{
	/* 255 characters, counted without the registry: ok */
	expect_ok(repeat("example.com/", "a/", 127, "a"));
	expect_fail(repeat("example.com/", "a/", 127, "aa"), -ENAMETOOLONG, REPO_LONG);
	/* docker.io's "library/" counts: 8 + 247 */
	expect_ok(repeat("", "a", 247, ""));
	expect_fail(repeat("", "a", 248, ""), -ENAMETOOLONG, REPO_LONG);
	expect_fail(repeat("", "a", 248, ":tag"), -ENAMETOOLONG, REPO_LONG);
	/* distribution/reference's own case */
	expect_fail(repeat("", "a/", 128, "a:tag"), -ENAMETOOLONG, REPO_LONG);
	expect_ok(repeat("", "a/", 127, "a:tag-puts-this-over-max"));
}
END_TEST

START_TEST(test_tag_and_registry_length)
{
	expect_ok(repeat("debian:", "t", REF_TAG_MAX, ""));
	expect_fail(repeat("debian:", "t", REF_TAG_MAX + 1, ""), -ENAMETOOLONG, TAG_LONG);
	/* 251 + ".com" = 255 */
	expect_ok(repeat("", "a", 251, ".com/x"));
	expect_fail(repeat("", "a", 252, ".com/x"), -ENAMETOOLONG, HOST_LONG);
}
END_TEST

START_TEST(test_whole_length)
{
	char *reg = repeat("", "r", REF_NAME_MAX - 4, ".com");
	char *repo = repeat("", "p", REF_NAME_MAX, "");
	char *tag = repeat("", "t", REF_TAG_MAX, "");
	char *longest, buf[REF_STRING_SIZE];
	size_t len;
	struct ref r;

	/* every part at its limit: exactly REF_STRING_MAX, and it formats back whole */
	len = strlen(reg) + 1 + strlen(repo) + 1 + strlen(tag) + 1 + strlen(DIGEST);
	ck_assert_uint_eq(len, REF_STRING_MAX);
	longest = malloc(len + 1);
	ck_assert_ptr_nonnull(longest);
	ck_assert_int_eq(snprintf(longest, len + 1, "%s/%s:%s@%s", reg, repo, tag, DIGEST),
			 (int)len);
	ck_assert_int_eq(ref_parse(longest, &r, NULL), 0);
	ref_format(&r, buf, sizeof(buf));
	ck_assert_str_eq(buf, longest);
	ref_format_familiar(&r, buf, sizeof(buf));
	ck_assert_str_eq(buf, longest);
	free(longest);
	free(reg);
	free(repo);
	free(tag);

	expect_fail(repeat("", "a", REF_STRING_MAX + 1, ""), -ENAMETOOLONG, INPUT_LONG);
	/* a long input is refused without being read to its end */
	expect_fail(repeat("", "a", 1 << 20, ""), -ENAMETOOLONG, INPUT_LONG);
}
END_TEST

START_TEST(test_format_truncates)
{
	char buf[8];
	struct ref r;

	ck_assert_int_eq(ref_parse("debian", &r, NULL), 0);
	memset(buf, 'x', sizeof(buf));
	ref_format(&r, buf, sizeof(buf));
	ck_assert_str_eq(buf, "docker.");
	ref_format_familiar(&r, buf, 4);
	ck_assert_str_eq(buf, "deb");
	ref_format(&r, buf, 0);
	ck_assert_str_eq(buf, "deb");
}
END_TEST

START_TEST(test_equal)
{
	struct ref a, b;

	ck_assert_int_eq(ref_parse("debian", &a, NULL), 0);
	ck_assert_int_eq(ref_parse("docker.io/library/debian:latest", &b, NULL), 0);
	ck_assert(ref_equal(&a, &b));
	ck_assert_int_eq(ref_parse("debian:12", &b, NULL), 0);
	ck_assert(!ref_equal(&a, &b));
	ck_assert_int_eq(ref_parse("debian:latest@" DIGEST, &b, NULL), 0);
	ck_assert(!ref_equal(&a, &b));
	ck_assert_int_eq(ref_parse("debian@" DIGEST, &a, NULL), 0);
	ck_assert(!ref_equal(&a, &b));
	ck_assert_int_eq(ref_parse("debian@sha256:" FFS, &b, NULL), 0);
	ck_assert(!ref_equal(&a, &b));
	ck_assert_int_eq(ref_parse("local/debian@" DIGEST, &b, NULL), 0);
	ck_assert(!ref_equal(&a, &b));
}
END_TEST

START_TEST(test_familiar_of_bare_image_id)
{
	struct ref r;
	char buf[REF_STRING_SIZE];

	/* Not something ref_parse returns, but the familiar form must not turn it into an ID. */
	ck_assert_int_eq(ref_parse("docker.io/" IMAGE_ID, &r, NULL), 0);
	r.has_tag = false;
	r.tag[0] = '\0';
	ref_format_familiar(&r, buf, sizeof(buf));
	ck_assert_str_eq(buf, "library/" IMAGE_ID);
}
END_TEST

struct validate_case {
	const char *s;
	int err;
};

static const struct validate_case registries[] = {
	{"docker.io", 0},
	{"local", 0},
	{"localhost", 0},
	{"localhost:5000", 0},
	{"ghcr.io", 0},
	{"127.0.0.1:5001", 0},
	{"[::1]:5000", 0},
	{"[::1]", 0},
	{"registry:5000", 0},
	{"Example.COM", 0},
	{"", -EINVAL},
	{"foo", -EINVAL}, /* would read as a docker.io namespace */
	{"Docker", -EINVAL},
	{"index.docker.io", -EINVAL},	   /* spelled docker.io */
	{"registry-1.docker.io", -EINVAL}, /* spelled docker.io */
	{".", -EINVAL},
	{"..", -EINVAL},
	{"a/b.c", -EINVAL},
	{"exa_mple.com", -EINVAL},
	{"example.com:", -EINVAL},
	{"[::1]:", -EINVAL},
	{"-a.b", -EINVAL},
	{"a.b ", -EINVAL},
};

static const struct validate_case repositories[] = {
	{"library/debian", 0}, {"debian", 0},	  {"a/b/c", 0},	       {"a.b_c__d-e--f", 0},
	{"", -EINVAL},	       {"/a", -EINVAL},	  {"a/", -EINVAL},     {"a//b", -EINVAL},
	{".", -EINVAL},	       {"..", -EINVAL},	  {"a/../b", -EINVAL}, {"a/./b", -EINVAL},
	{"A", -EINVAL},	       {"a:b", -EINVAL},  {"a@b", -EINVAL},    {"a b", -EINVAL},
	{"-a", -EINVAL},       {"a..b", -EINVAL},
};

static const struct validate_case tags[] = {
	{"latest", 0},	 {"V1.0-rc_2", 0}, {"_", 0},	     {"", -EINVAL},   {".a", -EINVAL},
	{"-a", -EINVAL}, {"a/b", -EINVAL}, {"a:b", -EINVAL}, {"..", -EINVAL}, {"a b", -EINVAL},
};

START_TEST(test_validate_registry)
{
	ck_assert_msg(ref_validate_registry(registries[_i].s) == registries[_i].err, "'%s'",
		      registries[_i].s);
}
END_TEST

START_TEST(test_validate_repository)
{
	ck_assert_msg(ref_validate_repository(repositories[_i].s) == repositories[_i].err, "'%s'",
		      repositories[_i].s);
}
END_TEST

START_TEST(test_validate_tag)
{
	ck_assert_msg(ref_validate_tag(tags[_i].s) == tags[_i].err, "'%s'", tags[_i].s);
}
END_TEST

START_TEST(test_canonical_registry)
{
	char host[32];

	ck_assert_str_eq(ref_canonical_registry("index.docker.io"), "docker.io");
	ck_assert_str_eq(ref_canonical_registry("registry-1.docker.io"), "docker.io");
	ck_assert_str_eq(ref_canonical_registry("docker.io"), "docker.io");
	/* anything else is itself, the very string */
	snprintf(host, sizeof(host), "ghcr.io");
	ck_assert_ptr_eq(ref_canonical_registry(host), host);
	/* exact names only: no case folding, no suffix or prefix match */
	ck_assert_str_eq(ref_canonical_registry("Registry-1.docker.io"), "Registry-1.docker.io");
	ck_assert_str_eq(ref_canonical_registry("registry-1.docker.io:443"),
			 "registry-1.docker.io:443");
	ck_assert_str_eq(ref_canonical_registry("evil-index.docker.io"), "evil-index.docker.io");
	ck_assert_str_eq(ref_canonical_registry("index.docker.i"), "index.docker.i");
}
END_TEST

START_TEST(test_validate_lengths)
{
	char *s;

	s = repeat("", "a", REF_NAME_MAX - 4, ".com");
	ck_assert_int_eq(ref_validate_registry(s), 0);
	free(s);
	s = repeat("", "a", REF_NAME_MAX - 3, ".com");
	ck_assert_int_eq(ref_validate_registry(s), -ENAMETOOLONG);
	free(s);
	s = repeat("", "a/", 127, "a");
	ck_assert_int_eq(ref_validate_repository(s), 0);
	free(s);
	s = repeat("", "a/", 128, "");
	ck_assert_int_eq(ref_validate_repository(s), -ENAMETOOLONG);
	free(s);
	s = repeat("", "t", REF_TAG_MAX, "");
	ck_assert_int_eq(ref_validate_tag(s), 0);
	free(s);
	s = repeat("", "t", REF_TAG_MAX + 1, "");
	ck_assert_int_eq(ref_validate_tag(s), -ENAMETOOLONG);
	free(s);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *ref_suite(void)
{
	Suite *s = suite_create("ref");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_valid, 0, N(valid));
	tcase_add_loop_test(tc, test_invalid, 0, N(invalid));
	tcase_add_test(tc, test_repository_length);
	tcase_add_test(tc, test_tag_and_registry_length);
	tcase_add_test(tc, test_whole_length);
	tcase_add_test(tc, test_format_truncates);
	tcase_add_test(tc, test_equal);
	tcase_add_test(tc, test_familiar_of_bare_image_id);
	tcase_add_loop_test(tc, test_validate_registry, 0, N(registries));
	tcase_add_loop_test(tc, test_validate_repository, 0, N(repositories));
	tcase_add_loop_test(tc, test_validate_tag, 0, N(tags));
	tcase_add_test(tc, test_validate_lengths);
	tcase_add_test(tc, test_canonical_registry);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(ref_suite());
}
