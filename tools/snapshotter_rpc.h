/*
 * snapshotter_rpc: containerd.services.snapshots.v1.Snapshots over a
 * struct snap — protobuf-c messages in, snapshot calls, messages and a
 * gRPC status out (snapshotter_rpc.c); and the gRPC C core server on a
 * unix socket that feeds it (snapshotter_grpc.c).
 */
#ifndef DINDFS_SNAPSHOTTER_RPC_H
#define DINDFS_SNAPSHOTTER_RPC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshotter.h"

/* Bounds of one call: the request's bytes, and infos per List message. */
#define SNAP_RPC_REQUEST_MAX  (1 << 20)
#define SNAP_RPC_LIST_BATCH   100
#define SNAP_RPC_MESSAGE_SIZE 512

#define SNAP_RPC_SERVICE "/containerd.services.snapshots.v1.Snapshots/"
/* Where the DinD entrypoint serves it, and `dindfs snapshotter` by default. */
#define SNAP_RPC_DEFAULT_SOCKET "/run/dindfs/snapshotter.sock"

struct snap_rpc_message {
	uint8_t *data;
	size_t len;
};

/*
 * A call's answer: a grpc_status_code with its message, and the response
 * messages to send (one for a unary call, any number for List).
 */
struct snap_rpc_reply {
	int status;
	char message[SNAP_RPC_MESSAGE_SIZE];
	struct snap_rpc_message *messages;
	size_t n_messages;
};

/*
 * Run the method (a full path, "/containerd...Snapshots/Prepare") on the
 * serialized request REQ. Always fills *reply (release it after): bad
 * input is INVALID_ARGUMENT, an unknown method UNIMPLEMENTED.
 */
void snap_rpc_handle(struct snap *s, const char *method, const uint8_t *req, size_t len,
		     struct snap_rpc_reply *reply);
void snap_rpc_reply_release(struct snap_rpc_reply *reply);

/*
 * Serve S on the unix socket PATH (replacing a stale one) until *stop is
 * set; calls are served one at a time. LOG_REQUESTS: one line on stderr
 * per call (the time, the method, its status, milliseconds). Returns 0, or
 * -errno when the socket cannot be served (the reason on stderr).
 */
int snap_grpc_serve(struct snap *s, const char *path, bool log_requests,
		    volatile sig_atomic_t *stop);

/*
 * Whether a snapshots service answers on the unix socket PATH: one Stat of
 * a key no snapshotter holds, within TIMEOUT_MS. 0 when the service
 * answered it (NOT_FOUND, or any status of its own), -ENOENT no socket
 * there, -ECONNREFUSED nothing listens, -ETIMEDOUT no answer in time,
 * -EPROTO something else answered (UNIMPLEMENTED: not a snapshotter).
 */
int snap_grpc_probe(const char *path, int timeout_ms);

#endif
