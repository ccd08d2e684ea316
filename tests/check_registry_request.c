/*
 * Unit tests for the registry client's request engine
 * (cache/registry_request.c, registry_body.c, registry_auth.c) against a
 * scripted in-process registry (tests/fake_registry.c) making the faults a
 * real registry does not make on demand: 5xx and 429 retries, Retry-After,
 * deadlines and cancellable backoff, the 401 challenge -> token -> retry
 * round, a body cut short and resumed, 416, redirects, and the size limits.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "fake_registry.h"
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
	static const char *const wait_1 = "Retry-After: 1", *const wait_60 = "Retry-After: 60";
	struct registry_error err;
	double t0, took;

	/*
	 * 503 at 0 s, Retry-After: 1, waited out; 503 at 1 s, Retry-After: 60,
	 * past the 30 s deadline: the call ends at once with upstream's error.
	 * (The deadline is far from both tries, so a stalled machine cannot turn
	 * the second into -ETIMEDOUT, as it did with 1 s and then 2 s left.)
	 */
	start_fake((struct registry_options){.deadline_s = 30, .backoff_ms = 500});
	ck_assert_int_eq(fake_registry_add(fake, &(struct fake_answer){.status = 503,
								       .headers = {wait_1},
								       .times = 1}),
			 0);
	ck_assert_int_eq(
		fake_registry_add(fake, &(struct fake_answer){.status = 503, .headers = {wait_60}}),
		0);
	t0 = now_s();
	ck_assert_int_eq(head_busy(&err), -EIO);
	took = now_s() - t0;
	ck_assert_msg(took >= 0.9 && took < 20, "took %.2f s", took);
	ck_assert_int_eq(fake_registry_count(fake, NULL), 2);
	ck_assert_int_eq(err.http_status, 503);
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

static Suite *registry_request_suite(void)
{
	Suite *s = suite_create("registry_request");
	TCase *tc;

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
	return test_run(registry_request_suite());
}
