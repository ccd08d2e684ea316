/*
 * Unit tests for cache/digest: strict parsing and SHA-256 vectors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "digest.h"
#include "testutil.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_SHA256   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/* FIPS 180-2 two-block message */
#define LONG_MSG    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define LONG_SHA256 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
/* One million 'a' */
#define MILLION_A_SHA256 "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

START_TEST(test_known_vectors)
{
	struct digest d;

	ck_assert_int_eq(digest_of_buffer("", 0, &d), 0);
	ck_assert_str_eq(d.hex, EMPTY_SHA256);
	ck_assert_int_eq(digest_of_buffer("abc", 3, &d), 0);
	ck_assert_str_eq(d.hex, ABC_SHA256);
	ck_assert_int_eq(digest_of_buffer(LONG_MSG, strlen(LONG_MSG), &d), 0);
	ck_assert_str_eq(d.hex, LONG_SHA256);
}
END_TEST

START_TEST(test_streaming_matches_one_shot)
{
	struct digest_hasher *h;
	struct digest d;
	char chunk[1000];
	int i;

	memset(chunk, 'a', sizeof(chunk));
	ck_assert_int_eq(digest_hasher_new(&h), 0);
	for (i = 0; i < 1000; i++)
		digest_hasher_update(h, chunk, sizeof(chunk));
	digest_hasher_final(h, &d);
	ck_assert_str_eq(d.hex, MILLION_A_SHA256);

	digest_hasher_reset(h);
	digest_hasher_update(h, "ab", 2);
	digest_hasher_update(h, "c", 1);
	digest_hasher_final(h, &d);
	ck_assert_str_eq(d.hex, ABC_SHA256);
	digest_hasher_free(h);
	digest_hasher_free(NULL);
}
END_TEST

START_TEST(test_of_fd)
{
	char *dir = test_mkdtemp(), *path;
	struct digest d;
	int fd;

	ck_assert_int_ge(asprintf(&path, "%s/f", dir), 0);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "abc", 3), 3);
	ck_assert_int_eq(digest_of_fd(fd, &d), 0);
	ck_assert_str_eq(d.hex, ABC_SHA256);
	close(fd);
	free(path);
	test_rmdir(dir);
}
END_TEST

START_TEST(test_parse_and_format_round_trip)
{
	char buf[DIGEST_STRING_SIZE];
	struct digest d;

	ck_assert_int_eq(digest_parse("sha256:" ABC_SHA256, &d), 0);
	ck_assert_str_eq(d.hex, ABC_SHA256);
	digest_format(&d, buf);
	ck_assert_str_eq(buf, "sha256:" ABC_SHA256);
	ck_assert_int_eq(digest_parse_hex(EMPTY_SHA256, &d), 0);
	ck_assert_str_eq(d.hex, EMPTY_SHA256);
}
END_TEST

static const char *const malformed[] = {
	"",
	"sha256:",
	"sha256",
	ABC_SHA256,	      /* no algorithm */
	"sha512:" ABC_SHA256, /* another algorithm */
	"SHA256:" ABC_SHA256, /* upper-case algorithm */
	"sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
	"sha256:" ABC_SHA256 "0",  /* 65 hex digits */
	"sha256:" ABC_SHA256 "\n", /* trailing byte */
	"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",  /* 63 */
	"sha256:ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", /* 'g' */
	"sha256: a7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	"sha256:../../../../../../../../../../../../../../../../../etc/passwd",
	" sha256:" ABC_SHA256,
};

START_TEST(test_malformed_rejected)
{
	struct digest d;

	memset(&d, 'x', sizeof(d));
	ck_assert_int_eq(digest_parse(malformed[_i], &d), -EINVAL);
	/* untouched on failure */
	ck_assert_int_eq(d.hex[0], 'x');
}
END_TEST

START_TEST(test_bare_hex_rejects_prefix)
{
	struct digest d;

	ck_assert_int_eq(digest_parse_hex("sha256:" ABC_SHA256, &d), -EINVAL);
	ck_assert_int_eq(digest_parse_hex("", &d), -EINVAL);
}
END_TEST

START_TEST(test_equal_and_list)
{
	struct digest_list list = {0};
	struct digest a, b;
	int i;

	ck_assert_int_eq(digest_parse_hex(ABC_SHA256, &a), 0);
	ck_assert_int_eq(digest_parse_hex(EMPTY_SHA256, &b), 0);
	ck_assert(digest_equal(&a, &a));
	ck_assert(!digest_equal(&a, &b));
	ck_assert(!digest_list_contains(&list, &a));
	ck_assert_int_eq(digest_list_append(&list, &b), 0);
	ck_assert(digest_list_contains(&list, &b));
	ck_assert(!digest_list_contains(&list, &a));
	list.len = 0;
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(digest_list_append(&list, i % 2 ? &a : &b), 0);
	digest_list_sort(&list);
	ck_assert_uint_eq(list.len, 100);
	ck_assert(digest_equal(&list.items[0], &a)); /* "ba78..." < "e3b0..." */
	ck_assert(digest_equal(&list.items[99], &b));
	digest_list_free(&list);
	ck_assert_ptr_null(list.items);
}
END_TEST

static Suite *digest_suite(void)
{
	Suite *s = suite_create("digest");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_known_vectors);
	tcase_add_test(tc, test_streaming_matches_one_shot);
	tcase_add_test(tc, test_of_fd);
	tcase_add_test(tc, test_parse_and_format_round_trip);
	tcase_add_loop_test(tc, test_malformed_rejected, 0,
			    (int)(sizeof(malformed) / sizeof(malformed[0])));
	tcase_add_test(tc, test_bare_hex_rejects_prefix);
	tcase_add_test(tc, test_equal_and_list);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(digest_suite());
}
