/*
 * snapshotter_rpc: the Snapshots service's methods (see snapshotter_rpc.h).
 * Each handler unpacks its request with protobuf-c (which refuses malformed
 * bytes), borrows the strings for the snapshot call, and packs the answer.
 * Errors become the gRPC codes containerd's errdefs read: -ENOENT NOT_FOUND,
 * -EEXIST ALREADY_EXISTS, -EINVAL INVALID_ARGUMENT, -ENOTEMPTY and -EPERM
 * FAILED_PRECONDITION, anything else INTERNAL.
 */
#include "snapshotter_rpc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>

#include "google/protobuf/empty.pb-c.h"
#include "snapshots.pb-c.h"

typedef Containerd__Services__Snapshots__V1__Info pb_info;
typedef Containerd__Services__Snapshots__V1__Info__LabelsEntry pb_label;
typedef Containerd__Types__Mount pb_mount;

static void reply_status(struct snap_rpc_reply *reply, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_status(struct snap_rpc_reply *reply, int status, const char *fmt, ...)
{
	va_list ap;

	reply->status = status;
	va_start(ap, fmt);
	vsnprintf(reply->message, sizeof(reply->message), fmt, ap);
	va_end(ap);
}

static void reply_errno(struct snap_rpc_reply *reply, int r, const char *what, const char *key)
{
	int status;

	switch (r) {
	case -ENOENT:
		status = GRPC_STATUS_NOT_FOUND;
		break;
	case -EEXIST:
		status = GRPC_STATUS_ALREADY_EXISTS;
		break;
	case -EINVAL:
	case -ENAMETOOLONG:
		status = GRPC_STATUS_INVALID_ARGUMENT;
		break;
	case -ENOTEMPTY:
	case -EPERM:
	case -ELOOP:
		status = GRPC_STATUS_FAILED_PRECONDITION;
		break;
	default:
		status = GRPC_STATUS_INTERNAL;
		break;
	}
	reply_status(reply, status, "%s '%.256s': %s", what, key ? key : "",
		     r == -EPERM ? "wrong kind of snapshot" : strerror(-r));
}

/* Pack MSG as the reply's next message. */
static int reply_add(struct snap_rpc_reply *reply, const ProtobufCMessage *msg)
{
	struct snap_rpc_message *grown;
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *data = malloc(len ? len : 1);

	if (!data)
		goto out_nomem;
	grown = realloc(reply->messages, (reply->n_messages + 1) * sizeof(*grown));
	if (!grown) {
		free(data);
		goto out_nomem;
	}
	reply->messages = grown;
	grown[reply->n_messages].len = protobuf_c_message_pack(msg, data);
	grown[reply->n_messages].data = data;
	reply->n_messages++;
	return 0;
out_nomem:
	reply_status(reply, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	return -ENOMEM;
}

void snap_rpc_reply_release(struct snap_rpc_reply *reply)
{
	size_t i;

	for (i = 0; i < reply->n_messages; i++)
		free(reply->messages[i].data);
	free(reply->messages);
	reply->messages = NULL;
	reply->n_messages = 0;
}

/*
 * Borrow a request's map<string, string> labels (every generated entry
 * type has this layout: base, key, value).
 */
#define LABELS_IN(req, out)                                                                        \
	labels_in((out), (req)->n_labels, (req)->n_labels ? (void *)(req)->labels : NULL)

static int labels_in(struct snap_labels *out, size_t n, void *entries)
{
	pb_label **in = entries;
	size_t i;

	out->items = NULL;
	out->len = 0;
	if (n > SNAP_LABELS_MAX)
		return -EINVAL;
	if (n == 0)
		return 0;
	out->items = calloc(n, sizeof(*out->items));
	if (!out->items)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		out->items[i].key = in[i]->key;
		out->items[i].value = in[i]->value;
	}
	out->len = n;
	return snap_labels_check(out);
}

static void labels_borrowed_release(struct snap_labels *labels)
{
	free(labels->items);
	labels->items = NULL;
	labels->len = 0;
}

static const char *or_null(const char *s)
{
	return s && *s ? s : NULL;
}

/* The reply's Mount messages, pointing into M (which outlives the packing). */
static int mounts_out(const struct snap_mounts *m, pb_mount **ret_storage, pb_mount ***ret_ptrs)
{
	pb_mount *storage = calloc(m->len ? m->len : 1, sizeof(*storage));
	pb_mount **ptrs = calloc(m->len ? m->len : 1, sizeof(*ptrs));
	size_t i;

	if (!storage || !ptrs) {
		free(storage);
		free(ptrs);
		return -ENOMEM;
	}
	for (i = 0; i < m->len; i++) {
		containerd__types__mount__init(&storage[i]);
		storage[i].type = m->items[i].type;
		storage[i].source = m->items[i].source;
		storage[i].n_options = m->items[i].n_options;
		storage[i].options = m->items[i].options;
		ptrs[i] = &storage[i];
	}
	*ret_storage = storage;
	*ret_ptrs = ptrs;
	return 0;
}

/* Prepare, View and Mounts all answer with repeated Mount mounts = 1. */
static void reply_mounts(struct snap_rpc_reply *reply, const struct snap_mounts *m)
{
	Containerd__Services__Snapshots__V1__MountsResponse resp =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__MOUNTS_RESPONSE__INIT;
	pb_mount *storage, **ptrs;

	if (mounts_out(m, &storage, &ptrs) < 0) {
		reply_status(reply, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	resp.n_mounts = m->len;
	resp.mounts = ptrs;
	reply_add(reply, &resp.base);
	free(storage);
	free(ptrs);
}

static void reply_empty(struct snap_rpc_reply *reply)
{
	Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;

	reply_add(reply, &empty.base);
}

/* An Info message for INFO, borrowing its strings; free with info_out_free. */
struct info_out {
	pb_info info;
	Google__Protobuf__Timestamp created, updated;
	pb_label *labels;
	pb_label **label_ptrs;
};

static int info_out(const struct snap_info *in, struct info_out *out)
{
	size_t i;

	containerd__services__snapshots__v1__info__init(&out->info);
	google__protobuf__timestamp__init(&out->created);
	google__protobuf__timestamp__init(&out->updated);
	out->labels = calloc(in->labels.len ? in->labels.len : 1, sizeof(*out->labels));
	out->label_ptrs = calloc(in->labels.len ? in->labels.len : 1, sizeof(*out->label_ptrs));
	if (!out->labels || !out->label_ptrs) {
		free(out->labels);
		free(out->label_ptrs);
		return -ENOMEM;
	}
	for (i = 0; i < in->labels.len; i++) {
		containerd__services__snapshots__v1__info__labels_entry__init(&out->labels[i]);
		out->labels[i].key = in->labels.items[i].key;
		out->labels[i].value = in->labels.items[i].value;
		out->label_ptrs[i] = &out->labels[i];
	}
	out->info.name = in->name;
	out->info.parent = in->parent ? in->parent : (char *)"";
	out->info.kind = (Containerd__Services__Snapshots__V1__Kind)in->kind;
	out->created.seconds = in->created_ns / 1000000000;
	out->created.nanos = (int32_t)(in->created_ns % 1000000000);
	out->updated.seconds = in->updated_ns / 1000000000;
	out->updated.nanos = (int32_t)(in->updated_ns % 1000000000);
	out->info.created_at = &out->created;
	out->info.updated_at = &out->updated;
	out->info.n_labels = in->labels.len;
	out->info.labels = out->label_ptrs;
	return 0;
}

static void info_out_free(struct info_out *out)
{
	free(out->labels);
	free(out->label_ptrs);
}

/* Stat and Update answer with Info info = 1. */
static void reply_info(struct snap_rpc_reply *reply, const struct snap_info *info)
{
	Containerd__Services__Snapshots__V1__StatSnapshotResponse resp =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_RESPONSE__INIT;
	struct info_out out;

	if (info_out(info, &out) < 0) {
		reply_status(reply, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	resp.info = &out.info;
	reply_add(reply, &resp.base);
	info_out_free(&out);
}

#define UNPACK(type, req, len) containerd__services__snapshots__v1__##type##__unpack(NULL, len, req)
#define FREE(type, msg)	       containerd__services__snapshots__v1__##type##__free_unpacked(msg, NULL)

static void do_prepare(struct snap *s, const uint8_t *req, size_t len, bool view,
		       struct snap_rpc_reply *reply)
{
	/* the two requests have the same fields, in the same order */
	Containerd__Services__Snapshots__V1__PrepareSnapshotRequest *p =
		view ? NULL : UNPACK(prepare_snapshot_request, req, len);
	Containerd__Services__Snapshots__V1__ViewSnapshotRequest *v =
		view ? UNPACK(view_snapshot_request, req, len) : NULL;
	struct snap_mounts m = {0};
	struct snap_labels labels;
	const char *key, *parent;
	int r;

	if (!p && !v) {
		reply_status(reply, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		return;
	}
	key = view ? v->key : p->key;
	parent = view ? v->parent : p->parent;
	r = view ? LABELS_IN(v, &labels) : LABELS_IN(p, &labels);
	if (r == 0)
		r = snap_prepare(s, key, or_null(parent), &labels, view, &m);
	if (r < 0) {
		reply_errno(reply, r, view ? "view" : "prepare", key);
	} else {
		reply_mounts(reply, &m);
		snap_mounts_release(&m);
	}
	labels_borrowed_release(&labels);
	if (view)
		FREE(view_snapshot_request, v);
	else
		FREE(prepare_snapshot_request, p);
}

static void do_mounts(struct snap *s, const uint8_t *req, size_t len, struct snap_rpc_reply *reply)
{
	Containerd__Services__Snapshots__V1__MountsRequest *q = UNPACK(mounts_request, req, len);
	struct snap_mounts m = {0};
	int r;

	if (!q) {
		reply_status(reply, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		return;
	}
	r = snap_mounts(s, q->key, &m);
	if (r < 0) {
		reply_errno(reply, r, "mounts", q->key);
	} else {
		reply_mounts(reply, &m);
		snap_mounts_release(&m);
	}
	FREE(mounts_request, q);
}

static void do_commit(struct snap *s, const uint8_t *req, size_t len, struct snap_rpc_reply *reply)
{
	Containerd__Services__Snapshots__V1__CommitSnapshotRequest *q =
		UNPACK(commit_snapshot_request, req, len);
	struct snap_labels labels;
	int r;

	if (!q) {
		reply_status(reply, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		return;
	}
	r = LABELS_IN(q, &labels);
	if (r == 0)
		r = snap_commit(s, q->name, q->key, &labels);
	if (r < 0)
		reply_errno(reply, r, "commit", q->key);
	else
		reply_empty(reply);
	labels_borrowed_release(&labels);
	FREE(commit_snapshot_request, q);
}

static void do_remove(struct snap *s, const uint8_t *req, size_t len, struct snap_rpc_reply *reply)
{
	Containerd__Services__Snapshots__V1__RemoveSnapshotRequest *q =
		UNPACK(remove_snapshot_request, req, len);
	int r;

	if (!q) {
		reply_status(reply, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		return;
	}
	r = snap_remove(s, q->key);
	if (r < 0)
		reply_errno(reply, r, "remove", q->key);
	else
		reply_empty(reply);
	FREE(remove_snapshot_request, q);
}

static void do_stat(struct snap *s, const uint8_t *req, size_t len, struct snap_rpc_reply *reply)
{
	Containerd__Services__Snapshots__V1__StatSnapshotRequest *q =
		UNPACK(stat_snapshot_request, req, len);
	struct snap_info info;
	int r;

	if (!q) {
		reply_status(reply, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		return;
	}
	r = snap_stat(s, q->key, &info);
	if (r < 0) {
		reply_errno(reply, r, "stat", q->key);
	} else {
		reply_info(reply, &info);
		snap_info_release(&info);
	}
	FREE(stat_snapshot_request, q);
}

static void do_update(struct snap *s, const uint8_t *req, size_t len, struct snap_rpc_reply *reply)
{
	Containerd__Services__Snapshots__V1__UpdateSnapshotRequest *q =
		UNPACK(update_snapshot_request, req, len);
	struct snap_info in = {0}, out;
	int r = -EINVAL;

	if (!q || !q->info) {
		reply_status(reply, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		goto out;
	}
	in.name = q->info->name;
	if (!q->update_mask || q->update_mask->n_paths <= SNAP_LABELS_MAX)
		r = LABELS_IN(q->info, &in.labels);
	if (r == 0)
		r = snap_update(s, &in, q->update_mask ? q->update_mask->paths : NULL,
				q->update_mask ? q->update_mask->n_paths : 0, &out);
	if (r < 0) {
		reply_errno(reply, r, "update", q->info->name);
	} else {
		reply_info(reply, &out);
		snap_info_release(&out);
	}
	labels_borrowed_release(&in.labels);
out:
	if (q)
		FREE(update_snapshot_request, q);
}

struct list_ctx {
	struct snap_rpc_reply *reply;
	struct info_out infos[SNAP_RPC_LIST_BATCH];
	pb_info *ptrs[SNAP_RPC_LIST_BATCH];
	struct snap_info kept[SNAP_RPC_LIST_BATCH];
	size_t n;
};

static int list_flush(struct list_ctx *c)
{
	Containerd__Services__Snapshots__V1__ListSnapshotsResponse resp =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_RESPONSE__INIT;
	size_t i;
	int r;

	resp.n_info = c->n;
	resp.info = c->ptrs;
	r = c->n ? reply_add(c->reply, &resp.base) : 0;
	for (i = 0; i < c->n; i++) {
		info_out_free(&c->infos[i]);
		snap_info_release(&c->kept[i]);
	}
	c->n = 0;
	return r;
}

static int list_one(const struct snap_info *info, void *ctx)
{
	struct list_ctx *c = ctx;

	/* the walk frees INFO when this returns: keep it until the batch is packed */
	c->kept[c->n] = *info;
	memset((void *)info, 0, sizeof(*info));
	if (info_out(&c->kept[c->n], &c->infos[c->n]) < 0) {
		snap_info_release(&c->kept[c->n]);
		return -ENOMEM;
	}
	c->ptrs[c->n] = &c->infos[c->n].info;
	c->n++;
	return c->n == SNAP_RPC_LIST_BATCH ? list_flush(c) : 0;
}

/*
 * Every snapshot, SNAP_RPC_LIST_BATCH to a message. Filters are not
 * applied: containerd checks what it asked for in each Info (its
 * metadata store says so: "Walk did not respect filter").
 */
static void do_list(struct snap *s, const uint8_t *req, size_t len, struct snap_rpc_reply *reply)
{
	Containerd__Services__Snapshots__V1__ListSnapshotsRequest *q =
		UNPACK(list_snapshots_request, req, len);
	struct list_ctx *c;
	int r;

	if (!q) {
		reply_status(reply, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		return;
	}
	FREE(list_snapshots_request, q);
	c = calloc(1, sizeof(*c));
	if (!c) {
		reply_status(reply, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	c->reply = reply;
	r = snap_walk(s, list_one, c);
	if (r == 0)
		r = list_flush(c);
	else
		list_flush(c);
	if (r < 0)
		reply_errno(reply, r, "list", "");
	free(c);
}

static void do_usage(struct snap *s, const uint8_t *req, size_t len, struct snap_rpc_reply *reply)
{
	Containerd__Services__Snapshots__V1__UsageRequest *q = UNPACK(usage_request, req, len);
	Containerd__Services__Snapshots__V1__UsageResponse resp =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__USAGE_RESPONSE__INIT;
	int r;

	if (!q) {
		reply_status(reply, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		return;
	}
	r = snap_usage(s, q->key, &resp.size, &resp.inodes);
	if (r < 0)
		reply_errno(reply, r, "usage", q->key);
	else
		reply_add(reply, &resp.base);
	FREE(usage_request, q);
}

static void do_cleanup(struct snap *s, const uint8_t *req, size_t len, struct snap_rpc_reply *reply)
{
	Containerd__Services__Snapshots__V1__CleanupRequest *q = UNPACK(cleanup_request, req, len);
	int r;

	if (!q) {
		reply_status(reply, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		return;
	}
	FREE(cleanup_request, q);
	r = snap_cleanup(s);
	if (r < 0)
		reply_errno(reply, r, "cleanup", "");
	else
		reply_empty(reply);
}

void snap_rpc_handle(struct snap *s, const char *method, const uint8_t *req, size_t len,
		     struct snap_rpc_reply *reply)
{
	size_t prefix = strlen(SNAP_RPC_SERVICE);
	const char *name;

	memset(reply, 0, sizeof(*reply));
	reply->status = GRPC_STATUS_OK;
	if (strncmp(method, SNAP_RPC_SERVICE, prefix)) {
		reply_status(reply, GRPC_STATUS_UNIMPLEMENTED, "unknown service");
		return;
	}
	if (len > SNAP_RPC_REQUEST_MAX) {
		reply_status(reply, GRPC_STATUS_INVALID_ARGUMENT, "request of %zu bytes is too big",
			     len);
		return;
	}
	name = method + prefix;
	if (!strcmp(name, "Prepare"))
		do_prepare(s, req, len, false, reply);
	else if (!strcmp(name, "View"))
		do_prepare(s, req, len, true, reply);
	else if (!strcmp(name, "Mounts"))
		do_mounts(s, req, len, reply);
	else if (!strcmp(name, "Commit"))
		do_commit(s, req, len, reply);
	else if (!strcmp(name, "Remove"))
		do_remove(s, req, len, reply);
	else if (!strcmp(name, "Stat"))
		do_stat(s, req, len, reply);
	else if (!strcmp(name, "Update"))
		do_update(s, req, len, reply);
	else if (!strcmp(name, "List"))
		do_list(s, req, len, reply);
	else if (!strcmp(name, "Usage"))
		do_usage(s, req, len, reply);
	else if (!strcmp(name, "Cleanup"))
		do_cleanup(s, req, len, reply);
	else
		reply_status(reply, GRPC_STATUS_UNIMPLEMENTED, "unknown method '%.64s'", name);
	if (reply->status != GRPC_STATUS_OK)
		snap_rpc_reply_release(reply);
}
