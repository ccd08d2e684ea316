/*
 * snapshotter_content: links from containerd's content store to the
 * host's blobs for shared layers, and the worker that records them in the
 * snapshot's namespace over containerd's content API (see
 * snapshotter_content.h).
 */
#include "snapshotter_content.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "clock.h"
#include "content.pb-c.h"

#define PATH_SIZE     4096
#define SHA256_PREFIX "sha256:"
#define HEX_LEN	      64

#define CONTENT_WRITE	 "/containerd.services.content.v1.Content/Write"
#define NAMESPACE_HEADER "containerd-namespace"
/* One record call, including the wait for containerd's metadata lock. */
#define RECORD_TIMEOUT_MS 30000
/* Messages read from one call before it is cancelled. */
#define RECORD_MESSAGES_MAX 8
#define TAG_RECORD	    ((void *)1)
#define TAG_READ	    ((void *)2)

struct pending {
	struct pending *next;
	char ns[SNAP_NAMESPACE_MAX + 1];
	char digest[DIGEST_STRING_SIZE];
	int64_t size;
};

struct snap_content {
	char *content_dir, *root;
	grpc_channel *channel; /* NULL: link only */
	pthread_t worker;
	bool started;

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t wake, idle;
	struct pending *head, *tail;
	size_t queued;
	bool stop, busy;
	uint64_t recorded, failed;
	bool log; /* set before the first add */
};

bool snap_content_digest_valid(const char *digest)
{
	size_t i;

	if (!digest || strncmp(digest, SHA256_PREFIX, strlen(SHA256_PREFIX)))
		return false;
	digest += strlen(SHA256_PREFIX);
	for (i = 0; i < HEX_LEN; i++)
		if (!((digest[i] >= '0' && digest[i] <= '9') ||
		      (digest[i] >= 'a' && digest[i] <= 'f')))
			return false;
	return digest[HEX_LEN] == '\0';
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int snap_content_namespace(const char *key, char ret[SNAP_NAMESPACE_MAX + 1])
{
	const char *slash = key ? strchr(key, '/') : NULL;
	size_t len, i;

	if (!slash)
		return -EINVAL;
	len = (size_t)(slash - key);
	if (len == 0 || len > SNAP_NAMESPACE_MAX || !is_alnum(key[0]) || !is_alnum(key[len - 1]))
		return -EINVAL;
	for (i = 1; i < len; i++) {
		bool sep = key[i] == '.' || key[i] == '_' || key[i] == '-';

		/* a separator only between letters or digits, as containerd's identifiers */
		if (!is_alnum(key[i]) && !(sep && is_alnum(key[i - 1])))
			return -EINVAL;
	}
	memcpy(ret, key, len);
	ret[len] = '\0';
	return 0;
}

static int mkdir_if_missing(const char *path)
{
	return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

int snap_content_link(const char *content_dir, const char *root, const char *digest,
		      int64_t *ret_size)
{
	char blob[PATH_SIZE], link[PATH_SIZE];
	struct stat st;
	const char *hex;
	int r;

	if (!snap_content_digest_valid(digest))
		return -EINVAL;
	hex = digest + strlen(SHA256_PREFIX);
	if ((size_t)snprintf(blob, sizeof(blob), "%s/blobs/sha256/%s", root, hex) >= sizeof(blob))
		return -ENAMETOOLONG;
	/* the host's blob itself: a link or a directory there is never followed */
	if (lstat(blob, &st) < 0 || !S_ISREG(st.st_mode))
		return -ENOENT;
	if ((size_t)snprintf(link, sizeof(link), "%s/blobs/sha256/%s", content_dir, hex) >=
	    sizeof(link))
		return -ENAMETOOLONG;
	/* containerd makes blobs/sha256 with its first blob: make it when missing */
	snprintf(link, sizeof(link), "%s/blobs", content_dir);
	r = mkdir_if_missing(link);
	snprintf(link, sizeof(link), "%s/blobs/sha256", content_dir);
	if (r == 0)
		r = mkdir_if_missing(link);
	if (r < 0)
		return r;
	snprintf(link, sizeof(link), "%s/blobs/sha256/%s", content_dir, hex);
	r = symlink(blob, link) < 0 ? -errno : 0;
	if (r < 0 && r != -EEXIST)
		return r;
	*ret_size = (int64_t)st.st_size;
	return r;
}

static gpr_timespec after_ms(int ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/*
 * One Content/Write call in namespace P->ns: COMMIT of P->digest with its
 * size as total and offset and no data. containerd's metadata store adds
 * the namespace's record of content its backend holds (shared content);
 * ALREADY_EXISTS means it was recorded before. 0 or -EIO, WHY says why.
 */
static int record(grpc_channel *channel, const struct pending *p, char *why, size_t why_size)
{
	Containerd__Services__Content__V1__WriteContentRequest req =
		CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
	grpc_metadata_array initial, trailing;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice(), body;
	grpc_byte_buffer *request, *response = NULL;
	grpc_completion_queue *cq;
	grpc_metadata header;
	grpc_call *call;
	grpc_event ev;
	grpc_op ops[5], read;
	char ref[sizeof("dindfs-shared-") + DIGEST_STRING_SIZE];
	uint8_t *data;
	size_t len, n;
	int r = -EIO;

	snprintf(ref, sizeof(ref), "dindfs-shared-%s", p->digest);
	req.action = CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__COMMIT;
	req.ref = ref;
	req.total = p->size;
	req.offset = p->size; /* an offset of 0 would truncate the shared blob */
	req.expected = (char *)p->digest;
	len = containerd__services__content__v1__write_content_request__get_packed_size(&req);
	data = malloc(len);
	if (!data) {
		snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	containerd__services__content__v1__write_content_request__pack(&req, data);
	body = grpc_slice_from_copied_buffer((const char *)data, len);
	free(data);
	request = grpc_raw_byte_buffer_create(&body, 1);
	grpc_slice_unref(body);

	cq = grpc_completion_queue_create_for_pluck(NULL);
	call = grpc_channel_create_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
					grpc_slice_from_static_string(CONTENT_WRITE), NULL,
					after_ms(RECORD_TIMEOUT_MS), NULL);
	header.key = grpc_slice_from_static_string(NAMESPACE_HEADER);
	header.value = grpc_slice_from_copied_string(p->ns);
	grpc_metadata_array_init(&initial);
	grpc_metadata_array_init(&trailing);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	/* a containerd that restarts: wait for it, up to the deadline */
	ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
	ops[0].data.send_initial_metadata.count = 1;
	ops[0].data.send_initial_metadata.metadata = &header;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = request;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
	ops[4].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[4].data.recv_status_on_client.trailing_metadata = &trailing;
	ops[4].data.recv_status_on_client.status = &status;
	ops[4].data.recv_status_on_client.status_details = &details;
	if (grpc_call_start_batch(call, ops, 5, TAG_RECORD, NULL) != GRPC_CALL_OK) {
		snprintf(why, why_size, "cannot start the call");
		goto out_unref;
	}
	/*
	 * The status arrives only once every message is read, and containerd
	 * answers a COMMIT with two (contentserver.go sends it, then its
	 * deferred send again): read until the stream ends (the deadline bounds it).
	 */
	for (n = 0; n < RECORD_MESSAGES_MAX; n++) {
		memset(&read, 0, sizeof(read));
		read.op = GRPC_OP_RECV_MESSAGE;
		read.data.recv_message.recv_message = &response;
		if (grpc_call_start_batch(call, &read, 1, TAG_READ, NULL) != GRPC_CALL_OK)
			break;
		grpc_completion_queue_pluck(cq, TAG_READ, gpr_inf_future(GPR_CLOCK_MONOTONIC),
					    NULL);
		if (!response)
			break;
		grpc_byte_buffer_destroy(response);
		response = NULL;
	}
	if (n == RECORD_MESSAGES_MAX)
		grpc_call_cancel(call, NULL);
	/* the call's deadline ends the wait */
	ev = grpc_completion_queue_pluck(cq, TAG_RECORD, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	if (ev.type == GRPC_OP_COMPLETE &&
	    (status == GRPC_STATUS_OK || status == GRPC_STATUS_ALREADY_EXISTS)) {
		r = 0;
	} else {
		char *text = grpc_slice_to_c_string(details);

		snprintf(why, why_size, "gRPC status %d: %s", (int)status, text ? text : "");
		gpr_free(text);
	}
out_unref:
	grpc_call_unref(call);
	if (response)
		grpc_byte_buffer_destroy(response);
	grpc_byte_buffer_destroy(request);
	grpc_slice_unref(details);
	grpc_slice_unref(header.value);
	grpc_metadata_array_destroy(&initial);
	grpc_metadata_array_destroy(&trailing);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL)
		       .type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	return r;
}

static void *worker_main(void *arg)
{
	struct snap_content *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		struct pending *p = c->head;
		char why[512];
		double start;
		int r;

		if (!p) {
			c->busy = false;
			pthread_cond_broadcast(&c->idle);
			pthread_cond_wait(&c->wake, &c->lock);
			continue;
		}
		c->head = p->next;
		if (!c->head)
			c->tail = NULL;
		c->queued--;
		c->busy = true;
		pthread_mutex_unlock(&c->lock);
		start = c->log ? tool_monotonic_ms() : 0;
		r = record(c->channel, p, why, sizeof(why));
		if (c->log)
			fprintf(stderr,
				"dindfs snapshotter: recorded '%s' in '%s': %s in %.2f ms\n",
				p->digest, p->ns, r < 0 ? "failed" : "ok",
				tool_monotonic_ms() - start);
		if (r < 0)
			fprintf(stderr,
				"dindfs snapshotter: cannot record '%s' in containerd namespace "
				"'%s': %s\n",
				p->digest, p->ns, why);
		free(p);
		pthread_mutex_lock(&c->lock);
		if (r < 0)
			c->failed++;
		else
			c->recorded++;
	}
	c->busy = false;
	pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int snap_content_new(const char *content_dir, const char *root, const char *containerd,
		     struct snap_content **ret)
{
	struct snap_content *c = calloc(1, sizeof(*c));
	char *target = NULL;

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	pthread_cond_init(&c->idle, NULL);
	c->content_dir = strdup(content_dir);
	c->root = strdup(root);
	if (!c->content_dir || !c->root)
		goto out_free;
	if (containerd) {
		grpc_channel_credentials *creds;

		if (asprintf(&target, "unix:%s", containerd) < 0)
			goto out_free;
		grpc_init();
		creds = grpc_insecure_credentials_create();
		c->channel = grpc_channel_create(target, creds, NULL);
		grpc_channel_credentials_release(creds);
		free(target);
		if (pthread_create(&c->worker, NULL, worker_main, c) != 0)
			goto out_free;
		c->started = true;
	}
	*ret = c;
	return 0;
out_free:
	snap_content_free(c);
	return -ENOMEM;
}

void snap_content_free(struct snap_content *c)
{
	struct pending *p;

	if (!c)
		return;
	if (c->started) {
		pthread_mutex_lock(&c->lock);
		c->stop = true;
		pthread_cond_broadcast(&c->wake);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->worker, NULL);
	}
	while ((p = c->head)) {
		c->head = p->next;
		free(p);
	}
	if (c->channel) {
		grpc_channel_destroy(c->channel);
		grpc_shutdown();
	}
	pthread_cond_destroy(&c->wake);
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->lock);
	free(c->content_dir);
	free(c->root);
	free(c);
}

int snap_content_add(struct snap_content *c, const char *key, const struct snap_labels *labels)
{
	const char *digest = snap_labels_get(labels, SNAP_LABEL_LAYER_DIGEST);
	char ns[SNAP_NAMESPACE_MAX + 1];
	struct pending *p;
	int64_t size;
	double start;
	bool done;
	int r;

	if (!digest)
		return -ENOENT;
	if (!snap_content_digest_valid(digest) || snap_content_namespace(key, ns) < 0)
		return -EINVAL;
	r = snap_content_link(c->content_dir, c->root, digest, &size);
	if (r < 0 && r != -EEXIST)
		return r;
	if (!c->channel)
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	memcpy(p->ns, ns, sizeof(ns));
	memcpy(p->digest, digest, DIGEST_STRING_SIZE);
	p->size = size;
	pthread_mutex_lock(&c->lock);
	if (c->queued >= SNAP_CONTENT_QUEUE_MAX) {
		pthread_mutex_unlock(&c->lock);
		free(p);
		return -EAGAIN;
	}
	if (c->tail)
		c->tail->next = p;
	else
		c->head = p;
	c->tail = p;
	c->queued++;
	c->busy = true; /* the worker owes this one: drain waits for it */
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	/* one worker, first in first out: an empty queue means this one is done */
	start = c->log ? tool_monotonic_ms() : 0;
	done = snap_content_drain(c, SNAP_CONTENT_WAIT_MS);
	if (c->log)
		fprintf(stderr, "dindfs snapshotter: Prepare waited %.2f ms for '%s'%s\n",
			tool_monotonic_ms() - start, digest, done ? "" : " (timed out)");
	return 0;
}

void snap_content_log_requests(struct snap_content *c, bool on)
{
	c->log = on;
}

void snap_content_counts(struct snap_content *c, uint64_t *ret_recorded, uint64_t *ret_failed)
{
	pthread_mutex_lock(&c->lock);
	*ret_recorded = c->recorded;
	*ret_failed = c->failed;
	pthread_mutex_unlock(&c->lock);
}

bool snap_content_drain(struct snap_content *c, int timeout_ms)
{
	struct timespec until;
	bool done;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&c->lock);
	while ((c->head || c->busy) && c->started)
		if (pthread_cond_timedwait(&c->idle, &c->lock, &until) != 0)
			break;
	done = !c->head && !c->busy;
	pthread_mutex_unlock(&c->lock);
	return done || !c->started;
}
