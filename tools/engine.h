/*
 * engine: the few calls of the Docker Engine API that dindfs makes, over
 * the daemon's unix socket (libcurl): load an image archive, save one.
 */
#ifndef DINDFS_ENGINE_H
#define DINDFS_ENGINE_H

#include <stddef.h>

#include <jansson.h>

#define ENGINE_DEFAULT_HOST "unix:///var/run/docker.sock"

struct engine;

/* Writes an image archive into fd; returns 0 or -errno. */
typedef int (*engine_produce_fn)(int fd, void *ctx);

/*
 * host is "unix:///path/to/docker.sock" (as DOCKER_HOST spells it).
 * -EINVAL for anything else.
 */
int engine_open(const char *host, struct engine **ret);
/* Accepts NULL. */
void engine_close(struct engine *e);

/*
 * POST /images/load with the archive produce writes, streamed as it is
 * written. Returns 0, or -errno with one line in msg (what dockerd or the
 * producer said).
 */
int engine_load(struct engine *e, engine_produce_fn produce, void *ctx, char *msg, size_t msg_size);

/* GET /images/get?names=<name>: the image's archive into out_fd. */
int engine_save(struct engine *e, const char *name, int out_fd, char *msg, size_t msg_size);

/*
 * GET /info within timeout_s: the daemon's description (version, storage
 * driver, DockerRootDir, RegistryConfig...) into *ret (json_decref it).
 * -ECONNREFUSED or -ENOENT when nothing listens on the socket.
 */
int engine_info(struct engine *e, long timeout_s, json_t **ret, char *msg, size_t msg_size);

#endif
