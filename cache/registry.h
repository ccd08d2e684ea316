/*
 * registry: the client for the registry HTTP API v2, on libcurl.
 *
 * Only the host daemon talks to registries, through one struct registry
 * shared by all its threads: one connection cache (HTTP/2 where offered,
 * the system CA bundle), one token cache. Each call:
 *   - sends the request to the registry's endpoint: an --upstream override,
 *     or https://registry-1.docker.io for docker.io, or https://<host>;
 *   - on 401 reads WWW-Authenticate, gets a Bearer token (cached per
 *     registry and scope until it expires) or uses Basic, with credentials
 *     from the user's docker config.json, and tries again once;
 *   - on 429 and 5xx, and on transport errors, tries again with exponential
 *     backoff, honouring Retry-After, all within the call's deadline;
 *   - follows redirects (blob downloads go to CDNs) without sending
 *     credentials to another host;
 *   - bounds every response: manifests to MANIFEST_MAX_SIZE, blobs to their
 *     expected size, connects and stalls by timeouts.
 *
 * Which registries it talks to is a list (registry_serve): with
 * served_only set, a request for any other host fails with -EPERM before
 * any connection is made.
 *
 * Functions return 0 or a negative errno: -ENOENT when the registry says
 * the thing does not exist, -EACCES when it refuses us, -EBADMSG when the
 * bytes do not match their digest, a transport error (-ECONNREFUSED,
 * -EHOSTUNREACH, -ETIMEDOUT, -EIO...) when it could not be reached,
 * -ETIMEDOUT as well when the call's deadline passed, -EINTR when its
 * thread's stop switch was set. When
 * err is not NULL it gets a one-line description naming the registry.
 */
#ifndef DINDFS_REGISTRY_H
#define DINDFS_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "hosts.h"
#include "store.h"

#define REGISTRY_URL_MAX	1024
#define REGISTRY_MEDIA_TYPE_MAX 255
/* The endpoint of docker.io when no --upstream names another. */
#define REGISTRY_DOCKER_HUB_URL "https://registry-1.docker.io"

struct registry;

struct registry_options {
	long connect_timeout_s; /* 0: 15 s */
	/* abort a transfer slower than min_rate bytes/s over this long; 0: 30 s */
	long stall_timeout_s;
	int max_attempts; /* per request, for 429, 5xx and transport errors; 0: 5 */
	long backoff_ms;  /* first backoff, doubled each time; 0: 500 ms */
	long max_wait_s;  /* cap on any single wait, Retry-After included; 0: 60 s */
	/*
	 * Total time for one call, retries, waits and its token request
	 * included; a blob download gets it anew whenever bytes arrive. The
	 * stall window is never longer. 0: REGISTRY_DEADLINE_S.
	 */
	long deadline_s;
	long min_rate; /* bytes/s a transfer must keep up over the stall window; 0: 1024 */
	/*
	 * Contact only the registries given to registry_serve or
	 * registry_set_upstream: any other fails with -EPERM, unconnected.
	 * The mount sets it (a level names the hosts); tools that fetch what
	 * the person running them names leave it off.
	 */
	bool served_only;
};

#define REGISTRY_DEADLINE_S 30

/* Most registry names one struct registry serves. */
#define REGISTRY_SERVED_MAX HOSTS_SERVED_MAX

/*
 * The public registries every mount serves: Docker Hub (docker.io), GitHub
 * (ghcr.io), Quay, Microsoft (mcr.microsoft.com), Kubernetes
 * (registry.k8s.io), Google (gcr.io with its regional us., eu. and asia.
 * names, and Artifact Registry's multi-regional us-, europe- and
 * asia-docker.pkg.dev), Amazon ECR Public (public.ecr.aws), GitLab
 * (registry.gitlab.com) and NVIDIA (nvcr.io). NULL-terminated.
 */
extern const char *const registry_public_names[];

struct registry_error {
	int http_status; /* 0 when no response came */
	char message[512];
};

int registry_new(const struct registry_options *opts, struct registry **ret);
/* Accepts NULL. */
void registry_free(struct registry *reg);

/*
 * Send host's traffic to url instead (--upstream HOST=URL): an http:// or
 * https:// base URL without a path beyond "/", and serve host. A Docker
 * Hub alias means docker.io. -EINVAL when host is not a registry name or
 * url is not such a URL.
 */
int registry_set_upstream(struct registry *reg, const char *host, const char *url);
/*
 * Serve name: the registry host a request may name. Docker Hub's aliases
 * are docker.io (ref_canonical_registry); "local" is no registry. Adding a
 * name twice is no error. Returns 0, -EINVAL if name is not a registry
 * name (ref_validate_registry), -ENOSPC past REGISTRY_SERVED_MAX names.
 */
int registry_serve(struct registry *reg, const char *name);
/* registry_serve each of registry_public_names. */
int registry_serve_public(struct registry *reg);
/* Is name (or the registry its alias means) served? */
bool registry_serves(struct registry *reg, const char *name);
/*
 * Call fn with every name a client may use for a served registry: in the
 * order they were served, each followed by its aliases (docker.io by
 * index.docker.io and registry-1.docker.io). fn runs under the registry's
 * lock and must not call back into reg; a non-zero return stops the walk
 * and is returned.
 */
int registry_foreach_served(struct registry *reg, int (*fn)(const char *name, void *ctx),
			    void *ctx);

/*
 * Let redirects and token realms reach url's origin (scheme://host:port of
 * a base URL) although it is plain http or on a private address
 * (--allow-origin). Every --upstream URL's origin is allowed this way too.
 * Any other redirect or realm must be https on a public address (see
 * hosts.h). -EINVAL when url is not a base URL, -ENOSPC when full.
 */
int registry_allow_origin(struct registry *reg, const char *url);

/* Parse "HOST=URL" and call registry_set_upstream. */
int registry_add_upstream_spec(struct registry *reg, const char *spec);
/* The base URL requests for host (or the registry its alias means) go to, without a trailing slash.
 */
int registry_base_url(struct registry *reg, const char *host, char *buf, size_t size);

/*
 * Make every transfer in progress, and every later one, fail at once with
 * -ECANCELED: the daemon is shutting down.
 */
void registry_cancel_all(struct registry *reg);

/*
 * A stop switch for the calls of one thread (a FUSE request whose caller
 * gave up). A thread binds one with registry_bind_stop(); registry_stop()
 * makes that thread's transfer and backoff sleep end at once, the call
 * returning -EINTR.
 */
struct registry_stop {
	atomic_bool stopped;
};

/* This thread's registry calls obey s from now on; NULL: none. */
void registry_bind_stop(struct registry_stop *s);
/* Set s and wake every backoff sleep to look at it. Safe from any thread. */
void registry_stop(struct registry *reg, struct registry_stop *s);

/* Requests sent upstream and body bytes received so far, token requests included. */
void registry_counters(struct registry *reg, uint64_t *ret_requests, uint64_t *ret_bytes);

/* GET /v2/, authenticating if asked: is the registry there and are we let in? */
int registry_ping(struct registry *reg, const char *host, struct registry_error *err);

struct registry_manifest {
	void *body;
	size_t len;
	char media_type[REGISTRY_MEDIA_TYPE_MAX + 1]; /* Content-Type, "" when absent */
	struct digest digest;			      /* of body */
};

/*
 * GET a manifest by tag or by "sha256:<hex>" digest, accepting Docker
 * schema2 manifests and manifest lists, OCI manifests and OCI indexes. By
 * digest the body must hash to it; a Docker-Content-Digest header must
 * agree with the body. Release ret with registry_manifest_release.
 */
int registry_get_manifest(struct registry *reg, const char *host, const char *repository,
			  const char *reference, struct registry_manifest *ret,
			  struct registry_error *err);
void registry_manifest_release(struct registry_manifest *m);

/*
 * HEAD a manifest: what its digest is now, without downloading it (Docker
 * Hub does not count HEADs against its rate limit). media_type may be NULL.
 */
int registry_head_manifest(struct registry *reg, const char *host, const char *repository,
			   const char *reference, struct digest *ret_digest, char *media_type,
			   size_t media_type_size, struct registry_error *err);

/* HEAD a blob: does the repository hold it, and how big is it? */
int registry_head_blob(struct registry *reg, const char *host, const char *repository,
		       const struct digest *d, int64_t *ret_size, struct registry_error *err);

/*
 * Called as blob bytes arrive: bytes written so far, and the size when
 * known (else -1). A non-zero return stops the download with -ECANCELED.
 */
typedef int (*registry_progress_fn)(uint64_t done, int64_t total, void *ctx);

/*
 * Download a blob into w, which was started for d. A dropped connection
 * resumes with a Range request from what w holds; a server that ignores
 * Range starts w over. More than expected_size bytes (when >= 0) is
 * -EBADMSG. The caller commits w, which verifies the digest.
 */
int registry_fetch_blob(struct registry *reg, const char *host, const char *repository,
			const struct digest *d, int64_t expected_size, struct store_writer *w,
			registry_progress_fn progress, void *progress_ctx,
			struct registry_error *err);

#endif
