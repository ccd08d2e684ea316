/*
 * Unit tests for cache/registry: where requests go (--upstream overrides,
 * docker.io's endpoint), which upstreams are refused, and the retry
 * engine's deadline and cancellable backoff against an in-process fake
 * registry (libmicrohttpd) that answers 503 with a Retry-After, a fault a
 * real registry does not make on demand. Requests themselves are tested
 * against a real registry by the integration scripts (tests/pull*.sh).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <microhttpd.h>

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

/* ---- the retry engine, against a registry that always says 503 ---------- */

static struct MHD_Daemon *busy;
static atomic_int busy_requests;
static char busy_retry_after[16];
static char busy_spec[64];

static enum MHD_Result answer_busy(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version, const char *upload_data,
				   size_t *upload_data_size, void **ctx)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	(void)cls, (void)url, (void)method, (void)version, (void)upload_data;
	(void)upload_data_size, (void)ctx;
	atomic_fetch_add(&busy_requests, 1);
	resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, "Retry-After", busy_retry_after);
	r = MHD_queue_response(conn, 503, resp);
	MHD_destroy_response(resp);
	return r;
}

/* A registry answering 503, Retry-After: seconds; reg (deadline_s) maps busy.test to it. */
static void start_busy(int retry_after, long deadline_s)
{
	struct registry_options opts = {.deadline_s = deadline_s};
	struct sockaddr_in loopback = {.sin_family = AF_INET,
				       .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	const union MHD_DaemonInfo *info;

	busy = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
				NULL, NULL, answer_busy, NULL, MHD_OPTION_SOCK_ADDR,
				(struct sockaddr *)&loopback, MHD_OPTION_END);
	ck_assert_ptr_nonnull(busy);
	info = MHD_get_daemon_info(busy, MHD_DAEMON_INFO_BIND_PORT);
	ck_assert_ptr_nonnull(info);
	atomic_store(&busy_requests, 0);
	snprintf(busy_retry_after, sizeof(busy_retry_after), "%d", retry_after);
	snprintf(busy_spec, sizeof(busy_spec), "busy.test=http://127.0.0.1:%u",
		 (unsigned)info->port);
	registry_free(reg);
	ck_assert_int_eq(registry_new(&opts, &reg), 0);
	ck_assert_int_eq(registry_add_upstream_spec(reg, busy_spec), 0);
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

	return registry_head_manifest(reg, "busy.test", "x", "latest", &d, NULL, 0, err);
}

START_TEST(test_retry_after_past_the_deadline_fails_at_once)
{
	struct registry_error err;
	double t0;

	start_busy(60, 2);
	t0 = now_s();
	ck_assert_int_eq(head_busy(&err), -EIO);
	ck_assert_msg(now_s() - t0 < 1.0, "took %.2f s", now_s() - t0);
	ck_assert_int_eq(atomic_load(&busy_requests), 1);
	ck_assert_int_eq(err.http_status, 503);
	MHD_stop_daemon(busy);
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
	ck_assert_int_eq(atomic_load(&busy_requests), 2);
	MHD_stop_daemon(busy);
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
	ck_assert_int_eq(atomic_load(&busy_requests), 1);
	MHD_stop_daemon(busy);
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

	tc = tcase_create("retries");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_retry_after_past_the_deadline_fails_at_once);
	tcase_add_test(tc, test_retries_stay_within_the_deadline);
	tcase_add_test(tc, test_cancel_all_ends_a_backoff_sleep);
	tcase_add_test(tc, test_a_stop_ends_its_threads_backoff_sleep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(registry_suite());
}
