/*
 * Unit tests for tools/snapshotter_content: which digests and namespaces
 * are accepted, links from containerd's content store that never lead
 * outside ROOT/blobs, the links a shared Prepare makes, and the one
 * Content/Write call that records a blob, against a fake content service
 * that answers as containerd 1.7 does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/status.h>
#include <grpc/support/alloc.h>
#include <pthread.h>

#include "content.pb-c.h"
#include "snapshotter.h"
#include "snapshotter_content.h"
#include "snap_fixture.h"
#include "testutil.h"

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B64 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define C64 "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define D64 "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define E64 "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"

START_TEST(test_content_digest_valid)
{
	ck_assert(snap_content_digest_valid("sha256:" A64));
	ck_assert(snap_content_digest_valid(
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
	ck_assert(!snap_content_digest_valid(NULL));
	ck_assert(!snap_content_digest_valid(""));
	ck_assert(!snap_content_digest_valid(A64));
	ck_assert(!snap_content_digest_valid("sha512:" A64));
	ck_assert(!snap_content_digest_valid("SHA256:" A64));
	/* uppercase hex would name another file than containerd's */
	ck_assert(!snap_content_digest_valid(
		"sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
	ck_assert(!snap_content_digest_valid("sha256:" A64 "a"));
	ck_assert(!snap_content_digest_valid(
		"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	ck_assert(!snap_content_digest_valid("sha256:" A64 "/"));
	ck_assert(!snap_content_digest_valid(
		"sha256:../../../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}
END_TEST

START_TEST(test_content_namespace)
{
	char ns[SNAP_NAMESPACE_MAX + 1], key[200];

	ck_assert_int_eq(snap_content_namespace("moby/12/extract-1 sha256:" A64, ns), 0);
	ck_assert_str_eq(ns, "moby");
	ck_assert_int_eq(snap_content_namespace("k8s.io/1/x", ns), 0);
	ck_assert_str_eq(ns, "k8s.io");
	ck_assert_int_eq(snap_content_namespace("a_b-c/1/x", ns), 0);
	ck_assert_str_eq(ns, "a_b-c");
	ck_assert_int_eq(snap_content_namespace(NULL, ns), -EINVAL);
	ck_assert_int_eq(snap_content_namespace("moby", ns), -EINVAL);
	ck_assert_int_eq(snap_content_namespace("/1/x", ns), -EINVAL);
	ck_assert_int_eq(snap_content_namespace("../1/x", ns), -EINVAL);
	ck_assert_int_eq(snap_content_namespace(".moby/1/x", ns), -EINVAL);
	ck_assert_int_eq(snap_content_namespace("moby-/1/x", ns), -EINVAL);
	ck_assert_int_eq(snap_content_namespace("mo..by/1/x", ns), -EINVAL);
	ck_assert_int_eq(snap_content_namespace("mo by/1/x", ns), -EINVAL);
	/* containerd's bound: 76 characters */
	memset(key, 'n', 76);
	strcpy(key + 76, "/1/x");
	ck_assert_int_eq(snap_content_namespace(key, ns), 0);
	ck_assert_uint_eq(strlen(ns), 76);
	memset(key, 'n', 77);
	strcpy(key + 77, "/1/x");
	ck_assert_int_eq(snap_content_namespace(key, ns), -EINVAL);
}
END_TEST

/* ROOT/blobs/sha256/HEX holding BODY, as the host's store keeps a blob. */
static void make_blob(const char *hex, const char *body)
{
	char path[1300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/blobs", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/blobs/sha256", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", root, hex);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(body, f);
	fclose(f);
}

/* What CONTENT/blobs/sha256/HEX links to, or "" when it is no link. */
static const char *content_link(const char *content, const char *hex)
{
	static char target[1300];
	char path[1300];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", content, hex);
	n = readlink(path, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	return target;
}

static bool content_exists(const char *content, const char *hex)
{
	struct stat st;
	char path[1300];

	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", content, hex);
	return lstat(path, &st) == 0;
}

START_TEST(test_content_link)
{
	char content[1100], blob[1300], path[1300];
	int64_t size = -1;

	snprintf(content, sizeof(content), "%s/content", dir);
	/* containerd's content directory before its first blob */
	ck_assert_int_eq(mkdir(content, 0755), 0);
	make_blob(A64, "three");
	ck_assert_int_eq(snap_content_link(content, root, "sha256:" A64, &size), 0);
	ck_assert_int_eq(size, 5);
	snprintf(blob, sizeof(blob), "%s/blobs/sha256/%s", root, A64);
	ck_assert_str_eq(content_link(content, A64), blob);
	/* again: kept, with its size */
	size = -1;
	ck_assert_int_eq(snap_content_link(content, root, "sha256:" A64, &size), -EEXIST);
	ck_assert_int_eq(size, 5);
	ck_assert_str_eq(content_link(content, A64), blob);

	/* a blob the host does not hold */
	ck_assert_int_eq(snap_content_link(content, root, "sha256:" B64, &size), -ENOENT);
	ck_assert(!content_exists(content, B64));
	/* a link or a directory in the host's store is never linked to */
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", root, C64);
	ck_assert_int_eq(symlink("/etc/passwd", path), 0);
	ck_assert_int_eq(snap_content_link(content, root, "sha256:" C64, &size), -ENOENT);
	ck_assert(!content_exists(content, C64));
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", root, D64);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	ck_assert_int_eq(snap_content_link(content, root, "sha256:" D64, &size), -ENOENT);
	ck_assert(!content_exists(content, D64));
	/* a digest that is not one: nothing is looked at */
	ck_assert_int_eq(snap_content_link(content, root, "sha256:../../../etc/passwd", &size),
			 -EINVAL);
	ck_assert_int_eq(snap_content_link(content, root, "sha256:" A64 "/x", &size), -EINVAL);
}
END_TEST

/* Labels of a Prepare from containerd's unpacker: the chain ID and the blob's digest. */
static struct snap_labels two_labels(struct snap_label l[2], const char *chain, const char *blob)
{
	l[0].key = (char *)SNAP_LABEL_REF;
	l[0].value = (char *)chain;
	l[1].key = (char *)SNAP_LABEL_LAYER_DIGEST;
	l[1].value = (char *)blob;
	return (struct snap_labels){.items = l, .len = 2};
}

START_TEST(test_content_prepare_links)
{
	struct snap_content *c;
	struct snap_mounts m = {0};
	struct snap_label l[2];
	struct snap_labels labels;
	char content[1100], blob[1300];

	snprintf(content, sizeof(content), "%s/content", dir);
	ck_assert_int_eq(mkdir(content, 0755), 0);
	ck_assert_int_eq(snap_content_new(content, root, NULL, &c), 0);
	snap_set_content(s, c);
	make_layer(A64, "a.txt");
	make_blob(D64, "gzip of a");
	make_blob(E64, "gzip of c");

	/* a shared layer: its blob is linked */
	labels = two_labels(l, "sha256:" A64, "sha256:" D64);
	ck_assert_int_eq(snap_prepare(s, "moby/1/extract-1 a", NULL, &labels, false, &m), -EEXIST);
	snprintf(blob, sizeof(blob), "%s/blobs/sha256/%s", root, D64);
	ck_assert_str_eq(content_link(content, D64), blob);
	/* found again after containerd's GC removed the link: linked again */
	snprintf(blob, sizeof(blob), "%s/blobs/sha256/%s", content, D64);
	ck_assert_int_eq(unlink(blob), 0);
	ck_assert_int_eq(snap_prepare(s, "moby/2/extract-2 a", NULL, &labels, false, &m), -EEXIST);
	ck_assert(content_exists(content, D64));

	/* a layer the mount does not hold: containerd fetches its blob, no link */
	labels = two_labels(l, "sha256:" C64, "sha256:" E64);
	ck_assert_int_eq(snap_prepare(s, "moby/3/extract-3 c", NULL, &labels, false, &m), 0);
	snap_mounts_release(&m);
	ck_assert(!content_exists(content, E64));

	/* a label that names no digest, or a key without a namespace: the layer is still shared */
	ck_assert_int_eq(snap_remove(s, "sha256:" A64), 0);
	labels = two_labels(l, "sha256:" A64, "sha256:../../blobs/sha256/" D64);
	ck_assert_int_eq(snap_prepare(s, "moby/4/extract-4 a", NULL, &labels, false, &m), -EEXIST);
	ck_assert_int_eq(snap_remove(s, "sha256:" A64), 0);
	labels = two_labels(l, "sha256:" A64, "sha256:" E64);
	ck_assert_int_eq(snap_prepare(s, "no-namespace", NULL, &labels, false, &m), -EEXIST);
	ck_assert(!content_exists(content, E64));
	snap_set_content(s, NULL);
	snap_content_free(c);
}
END_TEST

/*
 * A containerd content service of one Write call on a unix socket: what
 * the snapshotter sent, and the status it answers.
 */
struct fake_content {
	char address[1200];
	grpc_status_code answer;
	pthread_t thread;
	/* what it saw */
	char method[200], ns[100], ref[200], expected[100];
	int action;
	int64_t total, offset;
	size_t data_len;
};

static void *fake_content_serve(void *arg)
{
	struct fake_content *f = arg;
	grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server *server = grpc_server_create(NULL, NULL);
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
	Containerd__Services__Content__V1__WriteContentRequest *req;
	grpc_byte_buffer *request = NULL;
	grpc_metadata_array metadata;
	grpc_call_details details;
	grpc_byte_buffer_reader reader;
	grpc_slice slice, status_details = grpc_slice_from_static_string("fake");
	grpc_call *call = NULL;
	grpc_op ops[3];
	int cancelled = 0;
	size_t i;
	char *text;

	grpc_server_register_completion_queue(server, cq, NULL);
	ck_assert(grpc_server_add_http2_port(server, f->address, creds));
	grpc_server_credentials_release(creds);
	grpc_server_start(server);
	grpc_call_details_init(&details);
	grpc_metadata_array_init(&metadata);
	grpc_server_request_call(server, &call, &details, &metadata, cq, cq, (void *)1);
	ck_assert(
		grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).success);
	text = grpc_slice_to_c_string(details.method);
	snprintf(f->method, sizeof(f->method), "%s", text);
	gpr_free(text);
	for (i = 0; i < metadata.count; i++) {
		if (!grpc_slice_str_cmp(metadata.metadata[i].key, "containerd-namespace")) {
			text = grpc_slice_to_c_string(metadata.metadata[i].value);
			snprintf(f->ns, sizeof(f->ns), "%s", text);
			gpr_free(text);
		}
	}
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_MESSAGE;
	ops[1].data.recv_message.recv_message = &request;
	grpc_call_start_batch(call, ops, 2, (void *)2, NULL);
	ck_assert(
		grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).success);
	ck_assert_ptr_nonnull(request);
	grpc_byte_buffer_reader_init(&reader, request);
	slice = grpc_byte_buffer_reader_readall(&reader);
	req = containerd__services__content__v1__write_content_request__unpack(
		NULL, GRPC_SLICE_LENGTH(slice), GRPC_SLICE_START_PTR(slice));
	ck_assert_ptr_nonnull(req);
	f->action = req->action;
	snprintf(f->ref, sizeof(f->ref), "%s", req->ref);
	snprintf(f->expected, sizeof(f->expected), "%s", req->expected);
	f->total = req->total;
	f->offset = req->offset;
	f->data_len = req->data.len;
	containerd__services__content__v1__write_content_request__free_unpacked(req, NULL);
	grpc_slice_unref(slice);
	grpc_byte_buffer_reader_destroy(&reader);
	grpc_byte_buffer_destroy(request);
	/* containerd answers a COMMIT with the same message twice (contentserver.go) */
	for (i = 0; i < 2 && f->answer == GRPC_STATUS_OK; i++) {
		grpc_slice empty = grpc_empty_slice();
		grpc_byte_buffer *answer = grpc_raw_byte_buffer_create(&empty, 1);

		memset(ops, 0, sizeof(ops));
		ops[0].op = GRPC_OP_SEND_MESSAGE;
		ops[0].data.send_message.send_message = answer;
		grpc_call_start_batch(call, ops, 1, (void *)5, NULL);
		ck_assert(grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL)
				  .success);
		grpc_byte_buffer_destroy(answer);
	}
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[0].data.send_status_from_server.status = f->answer;
	ops[0].data.send_status_from_server.status_details = &status_details;
	ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[1].data.recv_close_on_server.cancelled = &cancelled;
	grpc_call_start_batch(call, ops, 2, (void *)3, NULL);
	grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	grpc_call_unref(call);
	grpc_call_details_destroy(&details);
	grpc_metadata_array_destroy(&metadata);
	grpc_server_shutdown_and_notify(server, cq, (void *)4);
	grpc_server_cancel_all_calls(server);
	while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).tag !=
	       (void *)4)
		;
	grpc_server_destroy(server);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	return NULL;
}

/* One linked blob recorded through a fake containerd answering ANSWER. */
static void record_through(grpc_status_code answer, struct fake_content *f, uint64_t *ret_recorded,
			   uint64_t *ret_failed)
{
	struct snap_content *c;
	struct snap_label l[2];
	struct snap_labels labels = two_labels(l, "sha256:" A64, "sha256:" D64);
	char content[1100], sock[1100];

	snprintf(content, sizeof(content), "%s/content", dir);
	snprintf(sock, sizeof(sock), "%s/containerd.sock", dir);
	snprintf(f->address, sizeof(f->address), "unix:%s", sock);
	f->answer = answer;
	mkdir(content, 0755);
	make_blob(D64, "gzip of a");
	grpc_init();
	ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_content_serve, f), 0);
	ck_assert_int_eq(snap_content_new(content, root, sock, &c), 0);
	/* Prepare waits for the record: counted when snap_content_add returns */
	ck_assert_int_eq(snap_content_add(c, "moby/7/extract-7 a", &labels), 0);
	snap_content_counts(c, ret_recorded, ret_failed);
	ck_assert(snap_content_drain(c, 1000));
	pthread_join(f->thread, NULL);
	snap_content_free(c);
	grpc_shutdown();
}

START_TEST(test_content_record)
{
	struct fake_content f = {0};
	uint64_t recorded = 9, failed = 9;

	record_through(GRPC_STATUS_OK, &f, &recorded, &failed);
	ck_assert_uint_eq(recorded, 1);
	ck_assert_uint_eq(failed, 0);
	ck_assert_str_eq(f.method, "/containerd.services.content.v1.Content/Write");
	ck_assert_str_eq(f.ns, "moby");
	/* one COMMIT of the expected digest and size, no data: containerd shares the blob */
	ck_assert_int_eq(f.action, CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__COMMIT);
	ck_assert_str_eq(f.expected, "sha256:" D64);
	ck_assert_int_eq(f.total, 9);
	/* the blob's own size: an offset of 0 would make containerd truncate it */
	ck_assert_int_eq(f.offset, 9);
	ck_assert_uint_eq(f.data_len, 0);
	ck_assert_str_eq(f.ref, "dindfs-shared-sha256:" D64);
}
END_TEST

START_TEST(test_content_record_answers)
{
	struct fake_content f = {0};
	uint64_t recorded = 9, failed = 9;

	/* recorded before: as good as recorded now */
	record_through(GRPC_STATUS_ALREADY_EXISTS, &f, &recorded, &failed);
	ck_assert_uint_eq(recorded, 1);
	ck_assert_uint_eq(failed, 0);
}
END_TEST

START_TEST(test_content_record_refused)
{
	struct fake_content f = {0};
	uint64_t recorded = 9, failed = 9;

	record_through(GRPC_STATUS_FAILED_PRECONDITION, &f, &recorded, &failed);
	ck_assert_uint_eq(recorded, 0);
	ck_assert_uint_eq(failed, 1);
}
END_TEST

static Suite *snapshotter_content_suite(void)
{
	Suite *suite = suite_create("snapshotter_content");
	TCase *tc = tcase_create("content");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_unchecked_fixture(tc, NULL, sweep_failed_mounts);
	tcase_add_test(tc, test_content_digest_valid);
	tcase_add_test(tc, test_content_namespace);
	tcase_add_test(tc, test_content_link);
	tcase_add_test(tc, test_content_prepare_links);
	tcase_add_test(tc, test_content_record);
	tcase_add_test(tc, test_content_record_answers);
	tcase_add_test(tc, test_content_record_refused);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	return test_run(snapshotter_content_suite());
}
