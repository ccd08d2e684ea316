/*
 * Unit tests for cache/fetch's table: downloads keyed by registry and
 * digest, the share of one registry (FETCH_MAX_PER_HOST, then -EBUSY) and
 * the global bound (FETCH_MAX_IN_FLIGHT, then -EAGAIN). The registries
 * are a tarpit: a loopback socket that listens and never accepts, so every
 * download stays in flight until the test cancels it (a fault no real
 * registry makes on demand). Streaming and verification are tested against
 * a real registry by tests/mount*.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>

#include "fetch.h"
#include "testutil.h"

static char *dir;
static int tarpit = -1;
static struct store *store;
static struct registry *reg;
static struct fetcher *fetcher;

/* Map host to the tarpit. */
static void add_host(const char *host)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	char spec[128];

	ck_assert_int_eq(getsockname(tarpit, (struct sockaddr *)&sa, &len), 0);
	snprintf(spec, sizeof(spec), "%s=http://127.0.0.1:%u", host, (unsigned)ntohs(sa.sin_port));
	ck_assert_int_eq(registry_add_upstream_spec(reg, spec), 0);
}

static void setup(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	dir = test_mkdtemp();
	tarpit = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(tarpit, 0);
	ck_assert_int_eq(bind(tarpit, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(tarpit, 256), 0);
	ck_assert_int_eq(store_open(dir, &store), 0);
	ck_assert_int_eq(registry_new(NULL, &reg), 0);
	ck_assert_int_eq(fetcher_new(reg, store, NULL, NULL, &fetcher), 0);
}

static void teardown(void)
{
	registry_cancel_all(reg); /* every download ends at once */
	fetcher_free(fetcher);
	registry_free(reg);
	store_close(store);
	close(tarpit);
	test_rmdir(dir);
}

static struct digest digest_n(unsigned n)
{
	char text[32];

	snprintf(text, sizeof(text), "blob %u", n);
	return test_digest_of(text, strlen(text));
}

START_TEST(test_keyed_by_registry_and_digest)
{
	struct digest d = digest_n(0);
	struct fetch *a, *a2, *b;

	add_host("a.test");
	add_host("b.test");
	ck_assert_int_eq(fetch_start(fetcher, "a.test", "x", &d, 100, &a), 0);
	ck_assert_int_eq(fetch_start(fetcher, "a.test", "y", &d, 100, &a2), 0);
	ck_assert_ptr_eq(a, a2); /* one download per registry and digest */
	ck_assert_int_eq(fetch_start(fetcher, "b.test", "x", &d, 100, &b), 0);
	ck_assert_ptr_ne(a, b); /* another registry: a download of its own */
	ck_assert_str_eq(fetch_registry(a), "a.test");
	ck_assert_str_eq(fetch_registry(b), "b.test");
	ck_assert_uint_eq(fetcher_in_flight(fetcher), 2);
	fetch_release(a);
	fetch_release(a2);
	fetch_release(b);
}
END_TEST

START_TEST(test_one_registrys_share)
{
	struct fetch *held[FETCH_MAX_PER_HOST + 1], *fx;
	struct digest d;
	unsigned i;

	add_host("a.test");
	add_host("b.test");
	for (i = 0; i < FETCH_MAX_PER_HOST; i++) {
		d = digest_n(i);
		ck_assert_int_eq(fetch_start(fetcher, "a.test", "x", &d, 100, &held[i]), 0);
	}
	d = digest_n(i);
	ck_assert_int_eq(fetch_start(fetcher, "a.test", "x", &d, 100, &fx), -EBUSY);
	/* joining one that runs is no new download */
	d = digest_n(0);
	ck_assert_int_eq(fetch_start(fetcher, "a.test", "x", &d, 100, &fx), 0);
	fetch_release(fx);
	/* another registry still gets its downloads, the same digest too */
	ck_assert_int_eq(fetch_start(fetcher, "b.test", "x", &d, 100, &held[i]), 0);
	ck_assert_uint_eq(fetcher_in_flight(fetcher), FETCH_MAX_PER_HOST + 1);
	for (i = 0; i <= FETCH_MAX_PER_HOST; i++)
		fetch_release(held[i]);
}
END_TEST

START_TEST(test_the_global_bound)
{
	struct fetch *held[FETCH_MAX_IN_FLIGHT], *fx;
	char host[32];
	struct digest d;
	unsigned i;

	for (i = 0; i < FETCH_MAX_IN_FLIGHT; i++) {
		snprintf(host, sizeof(host), "h%u.test", i / FETCH_MAX_PER_HOST);
		if (i % FETCH_MAX_PER_HOST == 0)
			add_host(host);
		d = digest_n(i);
		ck_assert_int_eq(fetch_start(fetcher, host, "x", &d, 100, &held[i]), 0);
	}
	add_host("last.test");
	d = digest_n(i);
	ck_assert_int_eq(fetch_start(fetcher, "last.test", "x", &d, 100, &fx), -EAGAIN);
	for (i = 0; i < FETCH_MAX_IN_FLIGHT; i++)
		fetch_release(held[i]);
}
END_TEST

START_TEST(test_a_stalled_read_times_out_and_cancel_ends_it)
{
	struct digest d = digest_n(0);
	struct fetch *fx;
	char buf[16];

	add_host("a.test");
	ck_assert_int_eq(fetch_start(fetcher, "a.test", "x", &d, 100, &fx), 0);
	ck_assert_int_eq(fetch_read(fx, buf, sizeof(buf), 0, 0), -ETIMEDOUT);
	ck_assert_int_eq(fetch_read(fx, buf, sizeof(buf), 0, 100), -ETIMEDOUT);
	registry_cancel_all(reg);
	/* the download ends (cancelled): the reader's own wakeup says so */
	ck_assert_int_eq(fetch_read(fx, buf, sizeof(buf), 0, 5000), -EIO);
	fetch_release(fx);
}
END_TEST

static Suite *fetch_suite(void)
{
	Suite *s = suite_create("fetch");
	TCase *tc = tcase_create("table");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60); /* 64 download threads, under ASan on a busy machine */
	tcase_add_test(tc, test_keyed_by_registry_and_digest);
	tcase_add_test(tc, test_one_registrys_share);
	tcase_add_test(tc, test_the_global_bound);
	tcase_add_test(tc, test_a_stalled_read_times_out_and_cancel_ends_it);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(fetch_suite());
}
