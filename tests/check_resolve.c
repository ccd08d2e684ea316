/*
 * Unit tests for cache/resolve: the record of absent names
 * (resolve_absent_*) that the mount asks before it sends a lookup upstream,
 * and the tag TTL of resolve_tag_with() against a scripted registry
 * (tests/fake_registry.c) on an injected clock: answered from the index
 * within the TTL, a HEAD after it, a GET only when the digest moved, the
 * cached tag when upstream is down. Through a real mount and registry:
 * tests/mount.sh, tests/hostile_upstream.sh.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <check.h>

#include "fake_registry.h"
#include "index.h"
#include "resolve.h"
#include "testutil.h"

static struct resolve_absent *a;

static void setup(void)
{
	ck_assert_int_eq(resolve_absent_new(15, &a), 0);
}

static void teardown(void)
{
	resolve_absent_free(a);
	a = NULL;
}

START_TEST(test_absent_for_the_ttl)
{
	ck_assert(!resolve_absent_check(a, "evil.test", "absent", "nope", 100));
	resolve_absent_put(a, "evil.test", "absent", "nope", 100);
	ck_assert(resolve_absent_check(a, "evil.test", "absent", "nope", 100));
	ck_assert(resolve_absent_check(a, "evil.test", "absent", "nope", 114));
	ck_assert(!resolve_absent_check(a, "evil.test", "absent", "nope", 115));
}
END_TEST

START_TEST(test_only_that_name)
{
	resolve_absent_put(a, "evil.test", "a/b", "c", 100);
	ck_assert(!resolve_absent_check(a, "evil.test", "a", "b/c", 100));
	ck_assert(!resolve_absent_check(a, "other.test", "a/b", "c", 100));
	ck_assert(!resolve_absent_check(a, "evil.test", "a/b", "d", 100));
	ck_assert(!resolve_absent_check(a, "evil.test", "a/bc", "", 100));
}
END_TEST

START_TEST(test_ttl_zero_remembers_nothing)
{
	struct resolve_absent *none;

	ck_assert_int_eq(resolve_absent_new(0, &none), 0);
	resolve_absent_put(none, "evil.test", "absent", "nope", 100);
	ck_assert(!resolve_absent_check(none, "evil.test", "absent", "nope", 100));
	resolve_absent_free(none);
	resolve_absent_free(NULL);
	ck_assert(!resolve_absent_check(NULL, "evil.test", "absent", "nope", 100));
}
END_TEST

START_TEST(test_too_long_is_never_absent)
{
	char name[INDEX_NAME_MAX + 2];

	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	resolve_absent_put(a, "evil.test", "absent", name, 100);
	ck_assert(!resolve_absent_check(a, "evil.test", "absent", name, 100));
}
END_TEST

START_TEST(test_bounded)
{
	char name[32];
	unsigned i, remembered = 0;

	for (i = 0; i < 4 * RESOLVE_ABSENT_SLOTS; i++) {
		snprintf(name, sizeof(name), "t%u", i);
		resolve_absent_put(a, "evil.test", "absent", name, 100);
	}
	for (i = 0; i < 4 * RESOLVE_ABSENT_SLOTS; i++) {
		snprintf(name, sizeof(name), "t%u", i);
		remembered += resolve_absent_check(a, "evil.test", "absent", name, 100);
	}
	ck_assert_uint_le(remembered, RESOLVE_ABSENT_SLOTS);
	/* the last one put is always there */
	snprintf(name, sizeof(name), "t%u", 4 * RESOLVE_ABSENT_SLOTS - 1);
	ck_assert(resolve_absent_check(a, "evil.test", "absent", name, 100));
}
END_TEST

/* ---- the tag TTL, on an injected clock ---------------------------------- */

#define OCI_MANIFEST  "application/vnd.oci.image.manifest.v1+json"
#define MANIFEST_PATH "/v2/x/manifests/t"
#define TTL	      30

/* Two versions of one tag. */
static const char v1[] =
	"{\"schemaVersion\":2,\"mediaType\":\"" OCI_MANIFEST "\",\"config\":{\"mediaType\":"
	"\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:"
	"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\",\"size\":2},"
	"\"layers\":[],\"annotations\":{\"v\":\"1\"}}";
static const char v2[] =
	"{\"schemaVersion\":2,\"mediaType\":\"" OCI_MANIFEST "\",\"config\":{\"mediaType\":"
	"\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:"
	"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\",\"size\":2},"
	"\"layers\":[],\"annotations\":{\"v\":\"2\"}}";

static struct fake_registry *fake;
static struct registry *reg;
static struct store *store;
static char *dir;
static int64_t clock_now = 1000000;
static char head_digest[2][96];

static int64_t test_clock(void)
{
	return clock_now;
}

static void tag_setup(void)
{
	struct registry_options ro = {.backoff_ms = 10, .max_attempts = 2};
	char spec[96];

	fake = fake_registry_start();
	ck_assert_ptr_nonnull(fake);
	ck_assert_int_eq(registry_new(&ro, &reg), 0);
	snprintf(spec, sizeof(spec), "fake.test=%s", fake_registry_url(fake));
	ck_assert_int_eq(registry_add_upstream_spec(reg, spec), 0);
	dir = test_mkdtemp();
	ck_assert_int_eq(store_open(dir, &store), 0);
	clock_now = 1000000;
}

static void tag_teardown(void)
{
	store_close(store);
	test_rmdir(dir);
	registry_free(reg);
	fake_registry_stop(fake);
}

static void add_head(const char *body, int slot)
{
	struct digest d = test_digest_of(body, strlen(body));

	snprintf(head_digest[slot], sizeof(head_digest[slot]), "Docker-Content-Digest: sha256:%s",
		 d.hex);
	ck_assert_int_eq(fake_registry_add(fake,
					   &(struct fake_answer){
						   .method = "HEAD",
						   .path = MANIFEST_PATH,
						   .status = 200,
						   .headers = {"Content-Type: " OCI_MANIFEST,
							       head_digest[slot]},
						   .body = body,
					   }),
			 0);
}

/* The next `times` GETs of the tag answer body (0: every one). */
static void add_get(const char *body, int times)
{
	ck_assert_int_eq(fake_registry_add(fake,
					   &(struct fake_answer){
						   .method = "GET",
						   .path = MANIFEST_PATH,
						   .status = 200,
						   .headers = {"Content-Type: " OCI_MANIFEST},
						   .body = body,
						   .times = times,
					   }),
			 0);
}

/* Upstream's tag is body, from now on (HEAD and GET; slot: 0 or 1). */
static void tag_is(const char *body, int slot)
{
	add_head(body, slot);
	add_get(body, 0);
}

static int resolve(bool allow_stale, struct resolved *ret, struct registry_error *err)
{
	const struct resolve_tag_options o = {
		.ttl = TTL, .allow_stale = allow_stale, .clock = test_clock};

	return resolve_tag_with(reg, store, "fake.test", "x", "t", &o, ret, err);
}

static int requests(const char *method)
{
	struct fake_request rq;
	int i, n = 0;

	for (i = 0; fake_registry_request(fake, i, &rq) == 0; i++)
		n += strcmp(rq.method, method) == 0;
	return n;
}

static void expect_digest(const struct resolved *res, const char *body)
{
	struct digest want = test_digest_of(body, strlen(body));

	ck_assert_str_eq(res->digest.hex, want.hex);
}

static int64_t tag_fetched(void)
{
	struct index_tag t;

	ck_assert_int_eq(index_get_tag(store_index(store), "fake.test", "x", "t", &t), 0);
	return t.fetched;
}

START_TEST(test_a_new_tag_is_fetched_and_dated)
{
	struct registry_error err;
	struct resolved res;

	tag_is(v1, 0);
	ck_assert_int_eq(resolve(false, &res, &err), 0);
	expect_digest(&res, v1);
	ck_assert(res.fetched);
	ck_assert(!res.stale);
	ck_assert_int_eq(requests("GET"), 1);
	ck_assert_int_eq(requests("HEAD"), 0);
	ck_assert_int_eq(tag_fetched(), 1000000);
}
END_TEST

START_TEST(test_within_the_ttl_upstream_is_not_asked)
{
	struct registry_error err;
	struct resolved res;

	add_get(v1, 1);
	tag_is(v2, 1); /* the tag moves upstream at once */
	ck_assert_int_eq(resolve(false, &res, &err), 0);
	clock_now += TTL - 1;
	ck_assert_int_eq(resolve(false, &res, &err), 0);
	expect_digest(&res, v1);
	ck_assert(!res.fetched);
	ck_assert_int_eq(fake_registry_count(fake, NULL), 1);
}
END_TEST

START_TEST(test_after_the_ttl_a_head_confirms_it)
{
	struct registry_error err;
	struct resolved res;

	tag_is(v1, 0);
	ck_assert_int_eq(resolve(false, &res, &err), 0);
	clock_now += TTL;
	ck_assert_int_eq(resolve(false, &res, &err), 0);
	expect_digest(&res, v1);
	ck_assert(!res.fetched);
	ck_assert_int_eq(requests("HEAD"), 1);
	ck_assert_int_eq(requests("GET"), 1); /* the first one only */
	ck_assert_int_eq(tag_fetched(), 1000000 + TTL);
	/* confirmed: another TTL from now */
	clock_now += TTL - 1;
	ck_assert_int_eq(resolve(false, &res, &err), 0);
	ck_assert_int_eq(fake_registry_count(fake, NULL), 2);
}
END_TEST

START_TEST(test_after_the_ttl_a_moved_tag_is_fetched)
{
	struct registry_error err;
	struct resolved res;

	add_get(v1, 1);
	tag_is(v2, 1);
	ck_assert_int_eq(resolve(false, &res, &err), 0);
	clock_now += TTL;
	ck_assert_int_eq(resolve(false, &res, &err), 0);
	expect_digest(&res, v2);
	ck_assert(res.fetched);
	ck_assert_int_eq(requests("HEAD"), 1);
	ck_assert_int_eq(requests("GET"), 2);
	ck_assert_int_eq(tag_fetched(), 1000000 + TTL);
}
END_TEST

START_TEST(test_upstream_down_the_cached_tag_is_stale)
{
	struct registry_error err;
	struct resolved res;

	add_get(v1, 1);
	ck_assert_int_eq(fake_registry_add(fake, &(struct fake_answer){.status = 503}), 0);
	ck_assert_int_eq(resolve(true, &res, &err), 0);
	clock_now += TTL;
	ck_assert_int_eq(resolve(false, &res, &err), -EIO);
	ck_assert_int_eq(err.http_status, 503);
	ck_assert_int_eq(resolve(true, &res, &err), 0);
	expect_digest(&res, v1);
	ck_assert(res.stale);
	ck_assert_int_eq(err.http_status, 503);
	ck_assert_int_eq(tag_fetched(), 1000000); /* not confirmed */
}
END_TEST

START_TEST(test_a_tag_upstream_lacks_is_enoent)
{
	struct registry_error err;
	struct resolved res;

	ck_assert_int_eq(resolve(true, &res, &err), -ENOENT);
	ck_assert_int_eq(err.http_status, 404);
	ck_assert_int_eq(
		index_get_tag(store_index(store), "fake.test", "x", "t", &(struct index_tag){0}),
		-ENOENT);
}
END_TEST

static Suite *resolve_suite(void)
{
	Suite *s = suite_create("resolve");
	TCase *tc = tcase_create("absent");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_absent_for_the_ttl);
	tcase_add_test(tc, test_only_that_name);
	tcase_add_test(tc, test_ttl_zero_remembers_nothing);
	tcase_add_test(tc, test_too_long_is_never_absent);
	tcase_add_test(tc, test_bounded);
	suite_add_tcase(s, tc);

	tc = tcase_create("tag ttl");
	tcase_add_checked_fixture(tc, tag_setup, tag_teardown);
	tcase_add_test(tc, test_a_new_tag_is_fetched_and_dated);
	tcase_add_test(tc, test_within_the_ttl_upstream_is_not_asked);
	tcase_add_test(tc, test_after_the_ttl_a_head_confirms_it);
	tcase_add_test(tc, test_after_the_ttl_a_moved_tag_is_fetched);
	tcase_add_test(tc, test_upstream_down_the_cached_tag_is_stale);
	tcase_add_test(tc, test_a_tag_upstream_lacks_is_enoent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(resolve_suite());
}
