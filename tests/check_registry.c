/*
 * Unit tests for cache/registry that need no server: where requests go
 * (--upstream overrides, docker.io's endpoint) and which upstreams are
 * refused. Requests themselves are tested against a real registry by the
 * integration scripts (tests/pull*.sh).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "registry.h"
#include "testutil.h"

static struct registry *reg;

static void setup(void)
{
	ck_assert_int_eq(registry_new(NULL, &reg), 0);
}

static void teardown(void)
{
	registry_free(reg);
	reg = NULL;
}

static const char *base_url(const char *host)
{
	static char buf[REGISTRY_URL_MAX + 1];

	ck_assert_int_eq(registry_base_url(reg, host, buf, sizeof(buf)), 0);
	return buf;
}

START_TEST(test_default_endpoints)
{
	ck_assert_str_eq(base_url("docker.io"), "https://registry-1.docker.io");
	ck_assert_str_eq(base_url("ghcr.io"), "https://ghcr.io");
	ck_assert_str_eq(base_url("localhost:5000"), "https://localhost:5000");
	ck_assert_str_eq(base_url("[::1]:5000"), "https://[::1]:5000");
}
END_TEST

START_TEST(test_upstream_overrides)
{
	ck_assert_int_eq(registry_add_upstream_spec(reg, "docker.io=http://127.0.0.1:5001"), 0);
	ck_assert_str_eq(base_url("docker.io"), "http://127.0.0.1:5001");
	/* trailing slashes go; a second spec for the host replaces the first */
	ck_assert_int_eq(registry_add_upstream_spec(reg, "docker.io=https://mirror.example/"), 0);
	ck_assert_str_eq(base_url("docker.io"), "https://mirror.example");
	ck_assert_int_eq(registry_set_upstream(reg, "ghcr.io", "http://[::1]:5002"), 0);
	ck_assert_str_eq(base_url("ghcr.io"), "http://[::1]:5002");
	/* others are untouched */
	ck_assert_str_eq(base_url("quay.io"), "https://quay.io");
}
END_TEST

static const char *const bad_specs[] = {
	"",
	"docker.io",			   /* no URL */
	"=http://127.0.0.1:5001",	   /* no host */
	"docker.io=",			   /* empty URL */
	"docker.io=ftp://127.0.0.1",	   /* not http(s) */
	"docker.io=127.0.0.1:5001",	   /* no scheme */
	"docker.io=http://h/path",	   /* a path */
	"docker.io=http://h/?q=1",	   /* a query */
	"docker.io=http://user:pw@h/",	   /* credentials in the URL */
	"docker.io=http://h/#frag",	   /* a fragment */
	"docker io=http://127.0.0.1:5001", /* a space in the host */
	"a/b=http://127.0.0.1:5001",	   /* a slash in the host */
};

START_TEST(test_bad_upstreams_refused)
{
	ck_assert_int_eq(registry_add_upstream_spec(reg, bad_specs[_i]), -EINVAL);
	ck_assert_str_eq(base_url("docker.io"), "https://registry-1.docker.io");
}
END_TEST

START_TEST(test_bad_hosts_refused)
{
	char buf[64];

	ck_assert_int_eq(registry_base_url(reg, "", buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(registry_base_url(reg, "a/b", buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(registry_base_url(reg, "user@host", buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(registry_base_url(reg, "host?x", buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(registry_base_url(reg, "docker.io", buf, 8), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_unreachable_is_a_transport_error)
{
	struct registry_error err;
	int r;

	/* port 1 on loopback: nothing listens there */
	ck_assert_int_eq(registry_add_upstream_spec(reg, "down.test=http://127.0.0.1:1"), 0);
	r = registry_ping(reg, "down.test", &err);
	ck_assert_int_eq(r, -ECONNREFUSED);
	ck_assert_int_eq(err.http_status, 0);
	ck_assert_msg(strstr(err.message, "down.test") != NULL, "message names the registry: %s",
		      err.message);
}
END_TEST

static Suite *registry_suite(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_default_endpoints);
	tcase_add_test(tc, test_upstream_overrides);
	tcase_add_loop_test(tc, test_bad_upstreams_refused, 0,
			    (int)(sizeof(bad_specs) / sizeof(bad_specs[0])));
	tcase_add_test(tc, test_bad_hosts_refused);
	tcase_add_test(tc, test_unreachable_is_a_transport_error);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(registry_suite());
}
