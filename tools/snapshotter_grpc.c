/*
 * snapshotter_grpc: the gRPC C core server of `dindfs snapshotter` (see
 * snapshotter_rpc.h). One thread: it asks for the next call on a "next"
 * queue, runs that call's batches on a "pluck" queue (receive the request,
 * snapshot_rpc_handle, send the messages and the status), then asks for the
 * next. Every wait on a client has a deadline; a client that stalls is
 * cancelled. grpc.max_receive_message_length bounds a request.
 */
#include "snapshotter_rpc.h"

#include "clock.h"
#include "snapshots.pb-c.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

/* How long one call may take to send its request or read its answer. */
#define CALL_TIMEOUT_MS 30000
/* How often the loop looks at the stop flag. */
#define POLL_MS 200

#define TAG_NEW	     ((void *)1)
#define TAG_CALL     ((void *)2)
#define TAG_SHUTDOWN ((void *)3)

static gpr_timespec after_ms(int ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Start a batch on the call and wait for it; a stalled client is cancelled. */
static bool call_batch(grpc_call *call, grpc_completion_queue *cq, const grpc_op *ops, size_t n)
{
	grpc_event ev;

	if (grpc_call_start_batch(call, ops, n, TAG_CALL, NULL) != GRPC_CALL_OK)
		return false;
	ev = grpc_completion_queue_pluck(cq, TAG_CALL, after_ms(CALL_TIMEOUT_MS), NULL);
	if (ev.type == GRPC_QUEUE_TIMEOUT) {
		grpc_call_cancel(call, NULL);
		ev = grpc_completion_queue_pluck(cq, TAG_CALL, gpr_inf_future(GPR_CLOCK_MONOTONIC),
						 NULL);
	}
	return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* The request's bytes, flattened (NULL with *len 0 when it sent none). */
static uint8_t *flatten(grpc_byte_buffer *bb, size_t *len)
{
	grpc_byte_buffer_reader reader;
	grpc_slice slice;
	uint8_t *data;

	*len = 0;
	if (!bb || !grpc_byte_buffer_reader_init(&reader, bb))
		return NULL;
	slice = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	*len = GRPC_SLICE_LENGTH(slice);
	data = malloc(*len ? *len : 1);
	if (data)
		memcpy(data, GRPC_SLICE_START_PTR(slice), *len);
	grpc_slice_unref(slice);
	return data;
}

/* --log-requests: when (the wall clock, to set beside containerd's log), what, how long. */
static void log_call(const char *method, int status, double wait_ms, double handle_ms,
		     double total_ms)
{
	const char *name = strrchr(method, '/');
	char when[32];

	tool_wall_clock(when, sizeof(when));
	fprintf(stderr,
		"dindfs snapshotter: %s %s: status %d in %.2f ms (request %.2f, handling %.2f)\n",
		when, name ? name + 1 : method, status, total_ms, wait_ms, handle_ms);
}

static void serve_call(struct snap *s, grpc_call *call, grpc_completion_queue *cq,
		       const grpc_call_details *details, bool log_requests)
{
	double start = log_requests ? tool_monotonic_ms() : 0, received = 0, handled = 0;
	struct snap_rpc_reply reply = {0};
	grpc_byte_buffer *request = NULL, *response = NULL;
	grpc_slice status_details, body;
	grpc_op ops[3];
	char *method = NULL;
	uint8_t *data;
	int cancelled = 0;
	size_t len, i;

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_MESSAGE;
	ops[1].data.recv_message.recv_message = &request;
	if (!call_batch(call, cq, ops, 2))
		goto out_close;
	if (log_requests)
		received = tool_monotonic_ms();
	method = grpc_slice_to_c_string(details->method);
	data = flatten(request, &len);
	if (!method || (!data && request)) {
		reply.status = GRPC_STATUS_RESOURCE_EXHAUSTED;
		snprintf(reply.message, sizeof(reply.message), "out of memory");
	} else if (!request) {
		reply.status = GRPC_STATUS_INVALID_ARGUMENT;
		snprintf(reply.message, sizeof(reply.message), "no request message");
	} else {
		snap_rpc_handle(s, method, data, len, &reply);
	}
	if (log_requests)
		handled = tool_monotonic_ms();
	free(data);
	/* every message but the last on its own; the last with the status */
	for (i = 0; i < reply.n_messages; i++) {
		size_t n = 0;

		body = grpc_slice_from_copied_buffer((const char *)reply.messages[i].data,
						     reply.messages[i].len);
		response = grpc_raw_byte_buffer_create(&body, 1);
		grpc_slice_unref(body);
		memset(ops, 0, sizeof(ops));
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = response;
		if (i + 1 < reply.n_messages) {
			bool sent = call_batch(call, cq, ops, n);

			grpc_byte_buffer_destroy(response);
			response = NULL;
			if (!sent)
				goto out_close;
		}
	}
	status_details = grpc_slice_from_copied_string(reply.message);
	i = response ? 1 : 0;
	if (!response)
		memset(ops, 0, sizeof(ops));
	ops[i].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[i].data.send_status_from_server.status = reply.status;
	ops[i].data.send_status_from_server.status_details = &status_details;
	ops[i + 1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[i + 1].data.recv_close_on_server.cancelled = &cancelled;
	call_batch(call, cq, ops, i + 2);
	grpc_slice_unref(status_details);
	if (log_requests && method)
		log_call(method, reply.status, received - start, handled - received,
			 tool_monotonic_ms() - start);
out_close:
	gpr_free(method);
	if (response)
		grpc_byte_buffer_destroy(response);
	if (request)
		grpc_byte_buffer_destroy(request);
	snap_rpc_reply_release(&reply);
	grpc_call_unref(call);
}

int snap_grpc_serve(struct snap *s, const char *path, bool log_requests,
		    volatile sig_atomic_t *stop)
{
	grpc_arg arg = {
		.type = GRPC_ARG_INTEGER,
		.key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		.value.integer = SNAP_RPC_REQUEST_MAX,
	};
	grpc_channel_args args = {.num_args = 1, .args = &arg};
	grpc_completion_queue *cq_new, *cq_call;
	grpc_server_credentials *creds;
	grpc_server *server;
	char address[4200];
	struct stat st;
	int r = 0;

	if ((size_t)snprintf(address, sizeof(address), "unix:%s", path) >= sizeof(address) ||
	    strlen(path) >= 108) {
		fprintf(stderr, "dindfs: socket path '%s' is too long\n", path);
		return -ENAMETOOLONG;
	}
	/* a socket left by a previous run; never remove anything else */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "dindfs: cannot listen on '%s': not a socket\n", path);
			return -EEXIST;
		}
		unlink(path);
	}
	grpc_init();
	cq_new = grpc_completion_queue_create_for_next(NULL);
	cq_call = grpc_completion_queue_create_for_pluck(NULL);
	server = grpc_server_create(&args, NULL);
	grpc_server_register_completion_queue(server, cq_new, NULL);
	creds = grpc_insecure_server_credentials_create();
	if (!grpc_server_add_http2_port(server, address, creds)) {
		fprintf(stderr, "dindfs: cannot listen on '%s'\n", path);
		r = -EADDRINUSE;
	}
	grpc_server_credentials_release(creds);
	if (r == 0) {
		chmod(path, 0600);
		grpc_server_start(server);
	}
	while (r == 0 && !*stop) {
		grpc_call_details details;
		grpc_metadata_array metadata;
		grpc_call *call = NULL;
		grpc_event ev = {.type = GRPC_QUEUE_TIMEOUT};

		grpc_call_details_init(&details);
		grpc_metadata_array_init(&metadata);
		if (grpc_server_request_call(server, &call, &details, &metadata, cq_call, cq_new,
					     TAG_NEW) != GRPC_CALL_OK) {
			fprintf(stderr, "dindfs: cannot take gRPC calls\n");
			r = -EIO;
		}
		while (r == 0) {
			ev = grpc_completion_queue_next(cq_new, after_ms(POLL_MS), NULL);
			if (ev.type != GRPC_QUEUE_TIMEOUT || *stop)
				break;
		}
		if (r == 0 && ev.type == GRPC_OP_COMPLETE && ev.tag == TAG_NEW && ev.success)
			serve_call(s, call, cq_call, &details, log_requests);
		grpc_call_details_destroy(&details);
		grpc_metadata_array_destroy(&metadata);
		if (r == 0 && *stop)
			break;
	}
	/* the outstanding request_call completes (unsuccessfully) on shutdown */
	grpc_server_shutdown_and_notify(server, cq_new, TAG_SHUTDOWN);
	grpc_server_cancel_all_calls(server);
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(
			cq_new, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);

		if (ev.type == GRPC_OP_COMPLETE && ev.tag == TAG_SHUTDOWN)
			break;
	}
	grpc_server_destroy(server);
	grpc_completion_queue_shutdown(cq_new);
	while (grpc_completion_queue_next(cq_new, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_shutdown(cq_call);
	while (grpc_completion_queue_pluck(cq_call, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL)
		       .type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq_new);
	grpc_completion_queue_destroy(cq_call);
	grpc_shutdown();
	unlink(path);
	return r;
}

/* connect(2) to PATH: whether anything listens there, as an errno. */
static int socket_listens(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = -errno;
	close(fd);
	return r;
}

int snap_grpc_probe(const char *path, int timeout_ms)
{
	Containerd__Services__Snapshots__V1__StatSnapshotRequest req =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_REQUEST__INIT;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice(), body;
	grpc_metadata_array initial, trailing;
	grpc_byte_buffer *request, *response = NULL;
	grpc_channel_credentials *creds;
	grpc_completion_queue *cq;
	grpc_channel *channel;
	grpc_call *call;
	grpc_event ev;
	grpc_op ops[6];
	char target[200];
	uint8_t buf[128];
	size_t len;
	int r = socket_listens(path);

	if (r < 0)
		return r;
	snprintf(target, sizeof(target), "unix:%s", path);
	req.snapshotter = (char *)"dindfs";
	req.key = (char *)"dindfs-doctor/0/no-such-snapshot";
	len = containerd__services__snapshots__v1__stat_snapshot_request__pack(&req, buf);
	body = grpc_slice_from_copied_buffer((const char *)buf, len);
	request = grpc_raw_byte_buffer_create(&body, 1);
	grpc_slice_unref(body);
	grpc_init();
	creds = grpc_insecure_credentials_create();
	channel = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	cq = grpc_completion_queue_create_for_pluck(NULL);
	call = grpc_channel_create_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
					grpc_slice_from_static_string(SNAP_RPC_SERVICE "Stat"),
					NULL, after_ms(timeout_ms), NULL);
	grpc_metadata_array_init(&initial);
	grpc_metadata_array_init(&trailing);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = request;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &response;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;
	r = -EIO;
	if (grpc_call_start_batch(call, ops, 6, TAG_CALL, NULL) == GRPC_CALL_OK) {
		/* the call's deadline ends the wait */
		ev = grpc_completion_queue_pluck(cq, TAG_CALL, gpr_inf_future(GPR_CLOCK_MONOTONIC),
						 NULL);
		if (ev.type != GRPC_OP_COMPLETE || status == GRPC_STATUS_DEADLINE_EXCEEDED ||
		    status == GRPC_STATUS_UNAVAILABLE)
			r = -ETIMEDOUT;
		else if (status == GRPC_STATUS_UNIMPLEMENTED)
			r = -EPROTO;
		else
			r = 0;
	}
	grpc_call_unref(call);
	if (response)
		grpc_byte_buffer_destroy(response);
	grpc_byte_buffer_destroy(request);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&initial);
	grpc_metadata_array_destroy(&trailing);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL)
		       .type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	grpc_channel_destroy(channel);
	grpc_shutdown();
	return r;
}
