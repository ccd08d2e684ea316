/*
 * Unit tests for cache/fetch's table: downloads keyed by registry and
 * digest, the share of one registry (FETCH_MAX_PER_HOST, then -EBUSY) and
 * the global bound (FETCH_MAX_IN_FLIGHT, then -EAGAIN). Those registries
 * are a tarpit: a loopback socket that listens and never accepts, so every
 * download stays in flight until the test cancels it (a fault no real
 * registry makes on demand). Streaming, single flight, resume and
 * verification run against a scripted registry (tests/fake_registry.c);
 * through a real mount and registry: tests/mount*.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>

#include "fake_registry.h"
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

/* ---- downloads from a scripted registry --------------------------------- */

#define BLOB_SIZE 300000
#define BLOB_CUT  120000

static struct fake_registry *fake;
static unsigned char *blob;
static struct digest blob_digest;
static char blob_path[128];
static int done_calls, done_result;
static char done_message[sizeof(((struct registry_error *)0)->message)];

static void on_done(const struct digest *d, int result, const struct registry_error *err, void *ctx)
{
	(void)d, (void)ctx;
	done_calls++;
	done_result = result;
	snprintf(done_message, sizeof(done_message), "%s", err->message);
}

static void fake_setup(void)
{
	struct registry_options ro = {.backoff_ms = 10};
	char spec[96];

	dir = test_mkdtemp();
	ck_assert_int_eq(store_open(dir, &store), 0);
	fake = fake_registry_start();
	ck_assert_ptr_nonnull(fake);
	ck_assert_int_eq(registry_new(&ro, &reg), 0);
	snprintf(spec, sizeof(spec), "fake.test=%s", fake_registry_url(fake));
	ck_assert_int_eq(registry_add_upstream_spec(reg, spec), 0);
	ck_assert_int_eq(fetcher_new(reg, store, on_done, NULL, &fetcher), 0);
	blob = test_random_bytes(BLOB_SIZE, 11);
	blob_digest = test_digest_of(blob, BLOB_SIZE);
	snprintf(blob_path, sizeof(blob_path), "/v2/x/blobs/sha256:%s", blob_digest.hex);
	done_calls = 0;
}

static void fake_teardown(void)
{
	fetcher_free(fetcher);
	registry_free(reg);
	fake_registry_stop(fake);
	store_close(store);
	test_rmdir(dir);
	free(blob);
}

static void serve(const void *body, size_t cut, int times)
{
	ck_assert_int_eq(fake_registry_add(fake, &(struct fake_answer){.path = blob_path,
								       .status = 200,
								       .body = body,
								       .len = BLOB_SIZE,
								       .cut = cut,
								       .times = times}),
			 0);
}

/* Read the whole blob through fx in chunks of 64 KiB; the byte count, or -errno. */
static ssize_t read_all(struct fetch *fx, unsigned char *out)
{
	size_t got = 0;
	ssize_t n;

	while ((n = fetch_read(fx, out + got, 65536, (off_t)got, 10000)) > 0)
		got += (size_t)n;
	return n < 0 ? n : (ssize_t)got;
}

START_TEST(test_two_readers_one_download)
{
	unsigned char *a = malloc(BLOB_SIZE), *b = malloc(BLOB_SIZE);
	struct fetch *fa, *fb;

	serve(blob, 0, 0);
	ck_assert_int_eq(fetch_start(fetcher, "fake.test", "x", &blob_digest, BLOB_SIZE, &fa), 0);
	ck_assert_int_eq(fetch_start(fetcher, "fake.test", "x", &blob_digest, BLOB_SIZE, &fb), 0);
	ck_assert_int_eq(read_all(fa, a), BLOB_SIZE);
	ck_assert_int_eq(read_all(fb, b), BLOB_SIZE);
	ck_assert_mem_eq(a, blob, BLOB_SIZE);
	ck_assert_mem_eq(b, blob, BLOB_SIZE);
	fetch_release(fa);
	fetch_release(fb);
	ck_assert_int_eq(fake_registry_count(fake, blob_path), 1);
	ck_assert(store_has_blob(store, &blob_digest));
	ck_assert_int_eq(done_calls, 1);
	ck_assert_int_eq(done_result, 0);
	/* now it is in the store: no download */
	ck_assert_int_eq(fetch_start(fetcher, "fake.test", "x", &blob_digest, BLOB_SIZE, &fa),
			 -EEXIST);
	ck_assert_int_eq(fake_registry_count(fake, blob_path), 1);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_a_cut_download_resumes_under_its_reader)
{
	static char content_range[64];
	unsigned char *out = malloc(BLOB_SIZE);
	struct fake_request rq;
	struct fetch *fx;

	snprintf(content_range, sizeof(content_range), "Content-Range: bytes %d-%d/%d", BLOB_CUT,
		 BLOB_SIZE - 1, BLOB_SIZE);
	serve(blob, BLOB_CUT, 1);
	ck_assert_int_eq(
		fake_registry_add(fake, &(struct fake_answer){.path = blob_path,
							      .status = 206,
							      .headers = {content_range},
							      .body = blob + BLOB_CUT,
							      .len = BLOB_SIZE - BLOB_CUT}),
		0);
	ck_assert_int_eq(fetch_start(fetcher, "fake.test", "x", &blob_digest, BLOB_SIZE, &fx), 0);
	ck_assert_int_eq(read_all(fx, out), BLOB_SIZE);
	ck_assert_mem_eq(out, blob, BLOB_SIZE);
	fetch_release(fx);
	ck_assert_int_eq(fake_registry_count(fake, blob_path), 2);
	ck_assert_int_eq(fake_registry_request(fake, 1, &rq), 0);
	ck_assert_str_eq(rq.range, "bytes=120000-");
	ck_assert_int_eq(done_result, 0);
	free(out);
}
END_TEST

START_TEST(test_bytes_that_do_not_verify_are_eio_and_not_kept)
{
	unsigned char *wrong = test_random_bytes(BLOB_SIZE, 12);
	unsigned char *out = malloc(BLOB_SIZE);
	char want[256];
	struct fetch *fx;

	serve(wrong, 0, 0);
	ck_assert_int_eq(fetch_start(fetcher, "fake.test", "x", &blob_digest, BLOB_SIZE, &fx), 0);
	ck_assert_int_eq(read_all(fx, out), -EIO);
	fetch_release(fx);
	ck_assert(!store_has_blob(store, &blob_digest));
	ck_assert_int_eq(done_calls, 1);
	ck_assert_int_eq(done_result, -EBADMSG);
	snprintf(want, sizeof(want),
		 "fake.test: blob sha256:%s does not match its digest; nothing was kept",
		 blob_digest.hex);
	ck_assert_str_eq(done_message, want);
	free(wrong);
	free(out);
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

	tc = tcase_create("downloads");
	tcase_add_checked_fixture(tc, fake_setup, fake_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_two_readers_one_download);
	tcase_add_test(tc, test_a_cut_download_resumes_under_its_reader);
	tcase_add_test(tc, test_bytes_that_do_not_verify_are_eio_and_not_kept);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(fetch_suite());
}
