/*
 * Unit tests for cache/registry: where requests go (--upstream overrides,
 * docker.io's endpoint and its aliases), which upstreams are refused, which
 * registries are served (and that an unserved one is refused without a
 * connection), and the request engine against a scripted in-process
 * registry (tests/fake_registry.c) making the faults a real registry does
 * not make on demand: 5xx and 429 retries, Retry-After, deadlines and
 * cancellable backoff, the 401 challenge -> token -> retry round, a body
 * cut short and resumed, 416, redirects, and the size limits. Pulls against
 * a real registry are tested by the integration scripts (tests/pull*.sh).
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

#include "fake_registry.h"
#include "hosts.h"
#include "manifest.h"
#include "registry.h"
#include "store.h"
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

/* ---- the retry engine, against a registry that always says 503 ---------- */

static struct fake_registry *fake;
static char retry_after_header[32];

/*
 * reg, with options opts (backoff_ms 10 unless set), sends fake.test to a
 * fresh fake registry.
 */
static void start_fake(struct registry_options opts)
{
	char spec[96];

	fake = fake_registry_start();
	ck_assert_ptr_nonnull(fake);
	if (!opts.backoff_ms)
		opts.backoff_ms = 10;
	registry_free(reg);
	ck_assert_int_eq(registry_new(&opts, &reg), 0);
	snprintf(spec, sizeof(spec), "fake.test=%s", fake_registry_url(fake));
	ck_assert_int_eq(registry_add_upstream_spec(reg, spec), 0);
}

static void stop_fake(void)
{
	fake_registry_stop(fake);
	fake = NULL;
}

/* A registry answering 503, Retry-After: seconds; reg (deadline_s) maps fake.test to it. */
static void start_busy(int retry_after, long deadline_s)
{
	start_fake((struct registry_options){.deadline_s = deadline_s, .backoff_ms = 500});
	snprintf(retry_after_header, sizeof(retry_after_header), "Retry-After: %d", retry_after);
	ck_assert_int_eq(fake_registry_add(fake,
					   &(struct fake_answer){
						   .status = 503,
						   .headers = {retry_after_header},
					   }),
			 0);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int head_busy(struct registry_error *err)
{
	struct digest d;

	return registry_head_manifest(reg, "fake.test", "x", "latest", &d, NULL, 0, err);
}

START_TEST(test_retry_after_past_the_deadline_fails_at_once)
{
	struct registry_error err;
	double t0;

	start_busy(60, 2);
	t0 = now_s();
	ck_assert_int_eq(head_busy(&err), -EIO);
	ck_assert_msg(now_s() - t0 < 1.0, "took %.2f s", now_s() - t0);
	ck_assert_int_eq(fake_registry_count(fake, NULL), 1);
	ck_assert_int_eq(err.http_status, 503);
	stop_fake();
}
END_TEST

START_TEST(test_retries_stay_within_the_deadline)
{
	struct registry_error err;
	double t0, took;

	/* 503 at 0 s, Retry-After: 1; 503 at 1 s; another 1 s wait would reach the deadline */
	start_busy(1, 2);
	t0 = now_s();
	ck_assert_int_eq(head_busy(&err), -EIO);
	took = now_s() - t0;
	ck_assert_msg(took >= 0.9 && took < 2.5, "took %.2f s", took);
	ck_assert_int_eq(fake_registry_count(fake, NULL), 2);
	stop_fake();
}
END_TEST

static void *cancel_soon(void *arg)
{
	usleep(300 * 1000);
	if (arg)
		registry_stop(reg, arg);
	else
		registry_cancel_all(reg);
	return NULL;
}

/* A call sleeping out a Retry-After of 30 s; the other thread ends it (stop, or cancel_all). */
static int sleep_then_end(struct registry_stop *stop, double *ret_took)
{
	struct registry_error err;
	pthread_t t;
	double t0;
	int r;

	start_busy(30, 60);
	registry_bind_stop(stop);
	ck_assert_int_eq(pthread_create(&t, NULL, cancel_soon, stop), 0);
	t0 = now_s();
	r = head_busy(&err);
	*ret_took = now_s() - t0;
	pthread_join(t, NULL);
	registry_bind_stop(NULL);
	ck_assert_int_eq(fake_registry_count(fake, NULL), 1);
	stop_fake();
	return r;
}

START_TEST(test_cancel_all_ends_a_backoff_sleep)
{
	double took;

	ck_assert_int_eq(sleep_then_end(NULL, &took), -ECANCELED);
	ck_assert_msg(took < 1.5, "took %.2f s", took);
}
END_TEST

START_TEST(test_a_stop_ends_its_threads_backoff_sleep)
{
	struct registry_stop stop = {0};
	double took;

	ck_assert_int_eq(sleep_then_end(&stop, &took), -EINTR);
	ck_assert_msg(took < 1.5, "took %.2f s", took);
}
END_TEST

/* ---- the request engine against scripted answers ---------------------- */

static const char manifest_json[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	"\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":"
	"\"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\",\"size\":2},"
	"\"layers\":[]}";
#define MANIFEST_PATH "/v2/x/manifests/t"
#define BLOB_SIZE     200000
#define BLOB_CUT      100000

static void add(const struct fake_answer *a)
{
	ck_assert_int_eq(fake_registry_add(fake, a), 0);
}

static void add_manifest(const char *auth)
{
	add(&(struct fake_answer){
		.method = "GET",
		.path = MANIFEST_PATH,
		.auth = auth,
		.status = 200,
		.headers = {"Content-Type: application/vnd.oci.image.manifest.v1+json"},
		.body = manifest_json,
	});
}

static int get_manifest(struct registry_manifest *m, struct registry_error *err)
{
	return registry_get_manifest(reg, "fake.test", "x", "t", m, err);
}

static struct fake_request request_no(int i)
{
	struct fake_request rq;

	ck_assert_int_eq(fake_registry_request(fake, i, &rq), 0);
	return rq;
}

START_TEST(test_5xx_is_retried)
{
	struct registry_manifest m;
	struct registry_error err;
	struct digest want = test_digest_of(manifest_json, strlen(manifest_json));

	start_fake((struct registry_options){0});
	add(&(struct fake_answer){.path = MANIFEST_PATH, .status = 503, .times = 1});
	add(&(struct fake_answer){.path = MANIFEST_PATH, .status = 502, .times = 1});
	add_manifest(NULL);
	ck_assert_int_eq(get_manifest(&m, &err), 0);
	ck_assert_int_eq(fake_registry_count(fake, MANIFEST_PATH), 3);
	ck_assert_uint_eq(m.len, strlen(manifest_json));
	ck_assert_mem_eq(m.body, manifest_json, m.len);
	ck_assert_str_eq(m.media_type, "application/vnd.oci.image.manifest.v1+json");
	ck_assert(digest_equal(&m.digest, &want));
	registry_manifest_release(&m);
	stop_fake();
}
END_TEST

START_TEST(test_attempts_are_bounded)
{
	struct registry_manifest m;
	struct registry_error err;

	start_fake((struct registry_options){.max_attempts = 3});
	add(&(struct fake_answer){.path = MANIFEST_PATH, .status = 500});
	ck_assert_int_eq(get_manifest(&m, &err), -EIO);
	ck_assert_int_eq(fake_registry_count(fake, MANIFEST_PATH), 3);
	ck_assert_int_eq(err.http_status, 500);
	ck_assert_str_eq(err.message, "fake.test: unexpected HTTP status 500");
	stop_fake();
}
END_TEST

START_TEST(test_retry_after_is_waited_out)
{
	struct registry_manifest m;
	struct registry_error err;
	double t0, took;

	start_fake((struct registry_options){0});
	add(&(struct fake_answer){
		.path = MANIFEST_PATH, .status = 429, .headers = {"Retry-After: 1"}, .times = 1});
	add_manifest(NULL);
	t0 = now_s();
	ck_assert_int_eq(get_manifest(&m, &err), 0);
	took = now_s() - t0;
	ck_assert_msg(took >= 0.95, "the second try came %.2f s after the 429", took);
	ck_assert_int_eq(fake_registry_count(fake, MANIFEST_PATH), 2);
	registry_manifest_release(&m);
	stop_fake();
}
END_TEST

START_TEST(test_404_is_enoent_at_once)
{
	struct registry_manifest m;
	struct registry_error err;

	start_fake((struct registry_options){0});
	ck_assert_int_eq(get_manifest(&m, &err), -ENOENT);
	ck_assert_int_eq(fake_registry_count(fake, NULL), 1);
	ck_assert_int_eq(err.http_status, 404);
	stop_fake();
}
END_TEST

static char challenge[256], *docker_config;

/* 401 with a Bearer challenge whose realm is the fake's /token. */
static void add_challenge(void)
{
	snprintf(challenge, sizeof(challenge),
		 "WWW-Authenticate: Bearer realm=\"%s/token\",service=\"fake\"",
		 fake_registry_url(fake));
	add(&(struct fake_answer){.path = MANIFEST_PATH, .status = 401, .headers = {challenge}});
}

static void no_credentials(void)
{
	docker_config = test_mkdtemp();
	setenv("DOCKER_CONFIG", docker_config, 1);
}

START_TEST(test_401_gets_a_token_and_tries_again)
{
	struct registry_manifest m;
	struct registry_error err;
	struct fake_request rq;

	no_credentials();
	start_fake((struct registry_options){0});
	add_manifest("Bearer tok-1");
	add_challenge();
	add(&(struct fake_answer){
		.path = "/token", .status = 200, .body = "{\"token\":\"tok-1\"}"});
	ck_assert_int_eq(get_manifest(&m, &err), 0);
	registry_manifest_release(&m);
	ck_assert_int_eq(fake_registry_count(fake, NULL), 3);
	rq = request_no(0);
	ck_assert_str_eq(rq.path, MANIFEST_PATH);
	ck_assert_str_eq(rq.auth, "");
	rq = request_no(1);
	ck_assert_str_eq(rq.path, "/token");
	ck_assert_str_eq(rq.scope, "repository:x:pull");
	ck_assert_str_eq(rq.auth, "");
	rq = request_no(2);
	ck_assert_str_eq(rq.path, MANIFEST_PATH);
	ck_assert_str_eq(rq.auth, "Bearer tok-1");

	/* the token is cached: the next call sends it up front */
	ck_assert_int_eq(get_manifest(&m, &err), 0);
	registry_manifest_release(&m);
	ck_assert_int_eq(fake_registry_count(fake, NULL), 4);
	ck_assert_int_eq(fake_registry_count(fake, "/token"), 1);
	ck_assert_str_eq(request_no(3).auth, "Bearer tok-1");
	stop_fake();
	test_rmdir(docker_config);
}
END_TEST

START_TEST(test_a_token_refused_again_is_eacces)
{
	struct registry_manifest m;
	struct registry_error err;

	no_credentials();
	start_fake((struct registry_options){0});
	add_challenge();
	add(&(struct fake_answer){
		.path = "/token", .status = 200, .body = "{\"token\":\"tok-1\"}"});
	ck_assert_int_eq(get_manifest(&m, &err), -EACCES);
	ck_assert_int_eq(err.http_status, 401);
	ck_assert_str_eq(err.message, "fake.test: access denied (HTTP 401)");
	/* one authentication round, no more */
	ck_assert_int_eq(fake_registry_count(fake, MANIFEST_PATH), 2);
	ck_assert_int_eq(fake_registry_count(fake, "/token"), 1);
	stop_fake();
	test_rmdir(docker_config);
}
END_TEST

START_TEST(test_a_token_server_refusing_is_eacces)
{
	struct registry_manifest m;
	struct registry_error err;

	no_credentials();
	start_fake((struct registry_options){0});
	add_challenge();
	add(&(struct fake_answer){.path = "/token", .status = 401});
	ck_assert_int_eq(get_manifest(&m, &err), -EACCES);
	ck_assert_str_eq(err.message, "fake.test: authentication required, and no credentials for "
				      "it in the docker config");
	ck_assert_int_eq(fake_registry_count(fake, MANIFEST_PATH), 1);
	stop_fake();
	test_rmdir(docker_config);
}
END_TEST

START_TEST(test_a_manifest_past_the_limit_is_efbig)
{
	struct registry_manifest m;
	struct registry_error err;
	char *big = malloc(MANIFEST_MAX_SIZE + 1);

	ck_assert_ptr_nonnull(big);
	memset(big, ' ', MANIFEST_MAX_SIZE + 1);
	start_fake((struct registry_options){0});
	add(&(struct fake_answer){
		.path = MANIFEST_PATH, .status = 200, .body = big, .len = MANIFEST_MAX_SIZE + 1});
	ck_assert_int_eq(get_manifest(&m, &err), -EFBIG);
	ck_assert_str_eq(err.message, "fake.test: response too large");
	ck_assert_int_eq(fake_registry_count(fake, NULL), 1);
	stop_fake();
	free(big);
}
END_TEST

/* ---- blob downloads: resume, 416, redirects, sizes ---------------------- */

static char *blob_store_dir, blob_path[128];
static struct store *store;
static unsigned char *blob;
static struct digest blob_digest;

static void blob_setup(void)
{
	setup();
	blob_store_dir = test_mkdtemp();
	ck_assert_int_eq(store_open(blob_store_dir, &store), 0);
	blob = test_random_bytes(BLOB_SIZE, 7);
	blob_digest = test_digest_of(blob, BLOB_SIZE);
	snprintf(blob_path, sizeof(blob_path), "/v2/x/blobs/sha256:%s", blob_digest.hex);
}

static void blob_teardown(void)
{
	store_close(store);
	test_rmdir(blob_store_dir);
	free(blob);
	teardown();
}

/* Download the blob into the store; 0 when it arrived and verified. */
static int fetch(int64_t size, struct registry_error *err)
{
	struct store_writer *w;
	int r;

	ck_assert_int_eq(store_writer_new(store, &blob_digest, &w), 0);
	r = registry_fetch_blob(reg, "fake.test", "x", &blob_digest, size, w, NULL, NULL, err);
	if (r == 0)
		return store_writer_commit(w, NULL, NULL);
	store_writer_abort(w);
	return r;
}

/* The first GET sends BLOB_CUT bytes of the blob, then the connection breaks. */
static void add_cut_blob(void)
{
	add(&(struct fake_answer){.path = blob_path,
				  .status = 200,
				  .body = blob,
				  .len = BLOB_SIZE,
				  .cut = BLOB_CUT,
				  .times = 1});
}

START_TEST(test_a_broken_download_resumes_with_a_range)
{
	static char content_range[64];
	struct registry_error err;

	snprintf(content_range, sizeof(content_range), "Content-Range: bytes %d-%d/%d", BLOB_CUT,
		 BLOB_SIZE - 1, BLOB_SIZE);
	start_fake((struct registry_options){0});
	add_cut_blob();
	add(&(struct fake_answer){.path = blob_path,
				  .status = 206,
				  .headers = {content_range},
				  .body = blob + BLOB_CUT,
				  .len = BLOB_SIZE - BLOB_CUT});
	ck_assert_int_eq(fetch(BLOB_SIZE, &err), 0);
	ck_assert(store_has_blob(store, &blob_digest));
	ck_assert_int_eq(fake_registry_count(fake, NULL), 2);
	ck_assert_str_eq(request_no(0).range, "");
	ck_assert_str_eq(request_no(1).range, "bytes=100000-");
	stop_fake();
}
END_TEST

START_TEST(test_416_starts_the_download_over)
{
	struct registry_error err;

	start_fake((struct registry_options){0});
	add_cut_blob();
	add(&(struct fake_answer){.path = blob_path, .status = 416, .times = 1});
	add(&(struct fake_answer){
		.path = blob_path, .status = 200, .body = blob, .len = BLOB_SIZE});
	ck_assert_int_eq(fetch(BLOB_SIZE, &err), 0);
	ck_assert(store_has_blob(store, &blob_digest));
	ck_assert_int_eq(fake_registry_count(fake, NULL), 3);
	ck_assert_str_eq(request_no(0).range, "");
	ck_assert_str_eq(request_no(1).range, "bytes=100000-");
	ck_assert_str_eq(request_no(2).range, "");
	stop_fake();
}
END_TEST

START_TEST(test_a_wrong_range_is_eproto)
{
	struct registry_error err;

	start_fake((struct registry_options){.max_attempts = 2});
	add_cut_blob();
	add(&(struct fake_answer){.path = blob_path,
				  .status = 206,
				  .headers = {"Content-Range: bytes 0-199999/200000"},
				  .body = blob,
				  .len = BLOB_SIZE});
	ck_assert_int_eq(fetch(BLOB_SIZE, &err), -EPROTO);
	ck_assert_str_eq(err.message, "fake.test: answered a range request with the wrong range");
	ck_assert_int_eq(fake_registry_count(fake, NULL), 2);
	stop_fake();
}
END_TEST

START_TEST(test_more_bytes_than_the_size_is_ebadmsg)
{
	struct registry_error err;

	start_fake((struct registry_options){0});
	add(&(struct fake_answer){
		.path = blob_path, .status = 200, .body = blob, .len = BLOB_SIZE});
	ck_assert_int_eq(fetch(BLOB_SIZE - 1, &err), -EBADMSG);
	ck_assert_str_eq(err.message, "fake.test: sent more bytes than the blob has");
	ck_assert(!store_has_blob(store, &blob_digest));
	ck_assert_int_eq(fake_registry_count(fake, NULL), 1);
	stop_fake();
}
END_TEST

START_TEST(test_a_redirect_on_the_registry_is_followed)
{
	static char location[128];
	struct registry_error err;

	start_fake((struct registry_options){0});
	snprintf(location, sizeof(location), "Location: %s/storage/blob", fake_registry_url(fake));
	add(&(struct fake_answer){.path = blob_path, .status = 307, .headers = {location}});
	add(&(struct fake_answer){
		.path = "/storage/blob", .status = 200, .body = blob, .len = BLOB_SIZE});
	ck_assert_int_eq(fetch(BLOB_SIZE, &err), 0);
	ck_assert(store_has_blob(store, &blob_digest));
	ck_assert_int_eq(fake_registry_count(fake, blob_path), 1);
	ck_assert_int_eq(fake_registry_count(fake, "/storage/blob"), 1);
	stop_fake();
}
END_TEST

START_TEST(test_a_redirect_elsewhere_is_refused_unconnected)
{
	static char location[128];
	struct fake_registry *other = fake_registry_start();
	struct registry_error err;

	ck_assert_ptr_nonnull(other);
	start_fake((struct registry_options){0});
	snprintf(location, sizeof(location), "Location: %s/storage/blob", fake_registry_url(other));
	add(&(struct fake_answer){.path = blob_path, .status = 307, .headers = {location}});
	ck_assert_int_eq(fake_registry_add(other, &(struct fake_answer){.status = 200,
									.body = blob,
									.len = BLOB_SIZE}),
			 0);
	ck_assert_int_eq(fetch(BLOB_SIZE, &err), -EPERM);
	ck_assert_int_eq(fake_registry_count(other, NULL), 0);
	ck_assert_int_eq(fake_registry_count(fake, blob_path), 1);
	ck_assert(!store_has_blob(store, &blob_digest));
	fake_registry_stop(other);
	stop_fake();
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

	tc = tcase_create("retries");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_retry_after_past_the_deadline_fails_at_once);
	tcase_add_test(tc, test_retries_stay_within_the_deadline);
	tcase_add_test(tc, test_cancel_all_ends_a_backoff_sleep);
	tcase_add_test(tc, test_a_stop_ends_its_threads_backoff_sleep);
	tcase_add_test(tc, test_5xx_is_retried);
	tcase_add_test(tc, test_attempts_are_bounded);
	tcase_add_test(tc, test_retry_after_is_waited_out);
	tcase_add_test(tc, test_404_is_enoent_at_once);
	tcase_add_test(tc, test_401_gets_a_token_and_tries_again);
	tcase_add_test(tc, test_a_token_refused_again_is_eacces);
	tcase_add_test(tc, test_a_token_server_refusing_is_eacces);
	tcase_add_test(tc, test_a_manifest_past_the_limit_is_efbig);
	suite_add_tcase(s, tc);

	tc = tcase_create("blobs");
	tcase_add_checked_fixture(tc, blob_setup, blob_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_a_broken_download_resumes_with_a_range);
	tcase_add_test(tc, test_416_starts_the_download_over);
	tcase_add_test(tc, test_a_wrong_range_is_eproto);
	tcase_add_test(tc, test_more_bytes_than_the_size_is_ebadmsg);
	tcase_add_test(tc, test_a_redirect_on_the_registry_is_followed);
	tcase_add_test(tc, test_a_redirect_elsewhere_is_refused_unconnected);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(registry_suite());
}
