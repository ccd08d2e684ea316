/*
 * Unit tests for cache/registry: where requests go (--upstream overrides,
 * docker.io's endpoint and its aliases), which upstreams are refused, which
 * registries are served (and that an unserved one is refused without a
 * connection), and what a redirect may reach. The request engine is
 * tested in check_registry_request.c; pulls against a real registry by the
 * integration scripts (tests/pull*.sh).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "hosts.h"
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

START_TEST(test_hub_aliases_follow_upstream)
{
	ck_assert_str_eq(base_url("index.docker.io"), "https://registry-1.docker.io");
	ck_assert_int_eq(registry_add_upstream_spec(reg, "docker.io=http://127.0.0.1:5001"), 0);
	ck_assert_str_eq(base_url("index.docker.io"), "http://127.0.0.1:5001");
	ck_assert_str_eq(base_url("registry-1.docker.io"), "http://127.0.0.1:5001");
	/* an upstream given for an alias is docker.io's */
	ck_assert_int_eq(registry_add_upstream_spec(reg, "registry-1.docker.io=http://h:1"), 0);
	ck_assert_str_eq(base_url("docker.io"), "http://h:1");
	ck_assert_str_eq(base_url("index.docker.io"), "http://h:1");
	/* no other name is an alias */
	ck_assert_str_eq(base_url("Registry-1.docker.io"), "https://Registry-1.docker.io");
}
END_TEST

static int collect(const char *name, void *ctx)
{
	char *buf = ctx;

	strcat(buf, name);
	strcat(buf, "\n");
	return 0;
}

static int stop_at_second(const char *name, void *ctx)
{
	int *n = ctx;

	(void)name;
	return ++*n == 2 ? 42 : 0;
}

START_TEST(test_served_names)
{
	char list[8192] = "", name[32];
	int i, n = 0;

	/* nothing is served until it is given */
	ck_assert(!registry_serves(reg, "docker.io"));
	ck_assert_int_eq(registry_foreach_served(reg, collect, list), 0);
	ck_assert_str_eq(list, "");

	ck_assert_int_eq(registry_serve_public(reg), 0);
	ck_assert_int_eq(registry_serve(reg, "reg.example:5000"), 0);
	ck_assert_int_eq(registry_serve(reg, "ghcr.io"), 0); /* twice is once */
	ck_assert_int_eq(registry_set_upstream(reg, "127.0.0.1:5001", "http://127.0.0.1:5001"), 0);
	ck_assert_int_eq(registry_foreach_served(reg, collect, list), 0);
	ck_assert_str_eq(list, "docker.io\nindex.docker.io\nregistry-1.docker.io\nghcr.io\n"
			       "quay.io\nmcr.microsoft.com\nregistry.k8s.io\ngcr.io\nus.gcr.io\n"
			       "eu.gcr.io\nasia.gcr.io\nus-docker.pkg.dev\neurope-docker.pkg.dev\n"
			       "asia-docker.pkg.dev\npublic.ecr.aws\nregistry.gitlab.com\nnvcr.io\n"
			       "reg.example:5000\n127.0.0.1:5001\n");
	ck_assert(registry_serves(reg, "index.docker.io"));
	ck_assert(registry_serves(reg, "registry-1.docker.io"));
	ck_assert(registry_serves(reg, "127.0.0.1:5001"));
	ck_assert(!registry_serves(reg, "127.0.0.1:5002"));
	ck_assert(!registry_serves(reg, "reg.example"));
	ck_assert(!registry_serves(reg, "GHCR.io"));
	ck_assert(!registry_serves(reg, "evil.ghcr.io"));
	ck_assert(!registry_serves(reg, "local"));

	/* names that are not registries */
	ck_assert_int_eq(registry_serve(reg, "local"), -EINVAL);
	ck_assert_int_eq(registry_serve(reg, "debian"), -EINVAL);
	ck_assert_int_eq(registry_serve(reg, ""), -EINVAL);
	ck_assert_int_eq(registry_serve(reg, "a.b/c"), -EINVAL);
	ck_assert_int_eq(registry_serve(reg, "http://a.b"), -EINVAL);
	ck_assert_int_eq(registry_set_upstream(reg, "local", "http://127.0.0.1:1"), -EINVAL);
	ck_assert_int_eq(registry_set_upstream(reg, "debian", "http://127.0.0.1:1"), -EINVAL);

	/* a walk stops where fn says, with what it says */
	ck_assert_int_eq(registry_foreach_served(reg, stop_at_second, &n), 42);
	ck_assert_int_eq(n, 2);

	/* bounded */
	for (i = 0; i < REGISTRY_SERVED_MAX; i++) {
		snprintf(name, sizeof(name), "r%d.example", i);
		if (registry_serve(reg, name) < 0)
			break;
	}
	ck_assert_int_eq(registry_serve(reg, "one-more.example"), -ENOSPC);
	ck_assert(!registry_serves(reg, "one-more.example"));
}
END_TEST

/* A loopback listener nobody answers on; *ret_port gets its port. */
static int listen_loopback(int *ret_port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

START_TEST(test_unserved_refused_unconnected)
{
	struct registry_options opts = {
		.served_only = true, .stall_timeout_s = 1, .max_attempts = 1};
	struct registry *strict;
	struct registry_error err;
	char host[64];
	int fd, port, conn, status;
	pid_t child;

	fd = listen_loopback(&port);
	snprintf(host, sizeof(host), "127.0.0.1:%d", port);
	ck_assert_int_eq(registry_new(&opts, &strict), 0);
	ck_assert_int_eq(registry_serve_public(strict), 0);

	ck_assert_int_eq(registry_ping(strict, host, &err), -EPERM);
	ck_assert_int_eq(err.http_status, 0);
	ck_assert_msg(strstr(err.message, host) && strstr(err.message, "--registry"),
		      "names the registry and --registry: %s", err.message);
	conn = accept(fd, NULL, NULL);
	ck_assert_int_eq(conn, -1);
	ck_assert_int_eq(errno, EAGAIN);

	/* served, the same request connects: a child takes it and hangs up */
	ck_assert_int_eq(registry_serve(strict, host), 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, 0), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		conn = accept(fd, NULL, NULL);
		_exit(conn >= 0 ? 0 : 1);
	}
	ck_assert_int_ne(registry_ping(strict, host, &err), -EPERM);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
	registry_free(strict);
}
END_TEST

/* ---- hosts: the address check, origins, what a redirect may reach -------- */

static const struct {
	const char *ip;
	bool public;
} addresses[] = {
	{"8.8.8.8", true},
	{"140.82.112.33", true}, /* ghcr.io */
	{"100.63.255.255", true},
	{"100.128.0.0", true},
	{"172.15.255.255", true},
	{"172.32.0.0", true},
	{"2606:4700::6810:84e5", true},
	{"::ffff:8.8.8.8", true},
	{"2002:808:808::1", true},
	{"127.0.0.1", false},
	{"127.255.255.254", false},
	{"0.0.0.0", false},
	{"0.1.2.3", false},
	{"10.0.0.1", false},
	{"172.16.0.1", false},
	{"172.31.255.255", false},
	{"192.168.1.1", false},
	{"169.254.169.254", false}, /* cloud metadata */
	{"100.64.0.1", false},
	{"224.0.0.1", false},
	{"255.255.255.255", false},
	{"::1", false},
	{"::", false},
	{"fe80::1", false},
	{"fd00::1", false},
	{"fc12:3456::1", false},
	{"ff02::1", false},
	{"::ffff:127.0.0.1", false}, /* v4-mapped */
	{"::ffff:10.1.2.3", false},
	{"::ffff:169.254.169.254", false},
	{"64:ff9b::7f00:1", false}, /* NAT64 of 127.0.0.1 */
	{"::127.0.0.1", false},	    /* v4-compatible */
	{"2002:7f00:1::1", false},  /* 6to4 of 127.0.0.1 */
	{"2002:a00:1::1", false},   /* 6to4 of 10.0.0.1 */
	{"localhost", false},	    /* not an address at all */
	{"", false},
	{"1.2.3", false},
};

START_TEST(test_public_addresses)
{
	ck_assert_msg(hosts_address_is_public(addresses[_i].ip) == addresses[_i].public,
		      "%s should be %s", addresses[_i].ip,
		      addresses[_i].public ? "public" : "private");
}
END_TEST

static const char *origin_of(const char *url)
{
	static char buf[HOSTS_ORIGIN_MAX + 1];

	if (hosts_origin(url, buf, sizeof(buf)) < 0)
		return "-";
	return buf;
}

START_TEST(test_origins)
{
	char buf[HOSTS_ORIGIN_MAX + 1];

	ck_assert_str_eq(origin_of("https://ghcr.io/v2/x?y=1"), "https://ghcr.io:443");
	ck_assert_str_eq(origin_of("HTTP://Example.COM"), "http://example.com:80");
	ck_assert_str_eq(origin_of("http://127.0.0.1:5000/token"), "http://127.0.0.1:5000");
	ck_assert_str_eq(origin_of("http://[::1]:5000/"), "http://[::1]:5000");
	ck_assert_str_eq(origin_of("https://h:443"), "https://h:443");
	ck_assert_str_eq(origin_of("ftp://h/"), "-");
	ck_assert_str_eq(origin_of("https://user:pw@h/"), "-");
	ck_assert_str_eq(origin_of("/v2/x"), "-");
	ck_assert_str_eq(origin_of(""), "-");
	ck_assert_int_eq(hosts_base_origin("http://127.0.0.1:5000/", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "http://127.0.0.1:5000");
	ck_assert_int_eq(hosts_base_origin("http://127.0.0.1:5000/token", buf, sizeof(buf)),
			 -EINVAL);
	ck_assert_int_eq(hosts_base_origin("http://h/?q", buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(hosts_origin("https://ghcr.io/", buf, 10), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_what_a_redirect_may_reach)
{
	struct hosts *h;

	ck_assert_int_eq(hosts_new(&h), 0);
	/* https on a public address: yes; anything else: no */
	ck_assert(hosts_may_follow(h, "https://cdn.example/blob?sig=1", "8.8.8.8", NULL));
	ck_assert(!hosts_may_follow(h, "http://cdn.example/blob", "8.8.8.8", NULL));
	ck_assert(!hosts_may_follow(h, "https://cdn.example/blob", "127.0.0.1", NULL));
	ck_assert(!hosts_may_follow(h, "https://cdn.example/blob", "::ffff:192.168.0.1", NULL));
	ck_assert(!hosts_may_follow(h, "https://cdn.example/blob", NULL, NULL));
	ck_assert(!hosts_may_follow(h, "file:///etc/passwd", "8.8.8.8", NULL));
	/* the registry's own origin: yes, whatever it is */
	ck_assert(hosts_may_follow(h, "http://10.0.0.5:5000/v2/x", "10.0.0.5",
				   "http://10.0.0.5:5000"));
	ck_assert(!hosts_may_follow(h, "http://10.0.0.5:5001/v2/x", "10.0.0.5",
				    "http://10.0.0.5:5000"));
	/* a trusted origin: yes, scheme, host and port exactly */
	ck_assert_int_eq(hosts_trust_origin(h, "http://127.0.0.1:5002/"), 0);
	ck_assert(hosts_origin_trusted(h, "http://127.0.0.1:5002"));
	ck_assert(hosts_may_follow(h, "http://127.0.0.1:5002/token?x", "127.0.0.1", NULL));
	ck_assert(!hosts_may_follow(h, "http://127.0.0.1:5003/token", "127.0.0.1", NULL));
	ck_assert(!hosts_may_follow(h, "https://127.0.0.1:5002/token", "127.0.0.1", NULL));
	ck_assert(!hosts_may_follow(h, "http://localhost:5002/token", "127.0.0.1", NULL));
	ck_assert_int_eq(hosts_trust_origin(h, "http://127.0.0.1:5002/token"), -EINVAL);
	ck_assert_int_eq(hosts_trust_origin(h, "gopher://h"), -EINVAL);
	hosts_free(h);
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
	tcase_add_test(tc, test_hub_aliases_follow_upstream);
	tcase_add_test(tc, test_served_names);
	tcase_add_test(tc, test_unserved_refused_unconnected);
	tcase_add_loop_test(tc, test_public_addresses, 0,
			    (int)(sizeof(addresses) / sizeof(addresses[0])));
	tcase_add_test(tc, test_origins);
	tcase_add_test(tc, test_what_a_redirect_may_reach);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	return test_run(registry_suite());
}
