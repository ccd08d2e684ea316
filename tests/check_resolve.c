/*
 * Unit tests for cache/resolve's record of absent names (resolve_absent_*):
 * what the mount asks before it sends a lookup upstream. Resolving tags and
 * digests against a registry is tested by the integration scripts
 * (tests/mount.sh, tests/hostile_upstream.sh).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <check.h>

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
	return s;
}

int main(void)
{
	return test_run(resolve_suite());
}
