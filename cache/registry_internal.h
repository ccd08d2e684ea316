/*
 * registry_internal: what the registry_*.c files share: the registry object,
 * a request and its sinks, and the request engine's entry points. Not part
 * of registry.h's contract; nothing outside cache/registry*.c includes it.
 */
#ifndef DINDFS_REGISTRY_INTERNAL_H
#define DINDFS_REGISTRY_INTERNAL_H

#include "registry.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>

#include <curl/curl.h>

#include "auth.h"
#include "hosts.h"

#define MAX_UPSTREAMS	64
#define MAX_BASIC_HOSTS 64

struct upstream {
	char host[AUTH_REGISTRY_MAX + 1];
	char url[REGISTRY_URL_MAX + 1];
};

struct registry {
	struct registry_options opts;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	struct auth_cache *tokens;
	atomic_uint_fast64_t requests; /* sent upstream */
	atomic_uint_fast64_t bytes;    /* body bytes received */
	atomic_bool cancelled;
	/* backoff sleeps wait here, so a cancel or a stop ends them at once */
	pthread_mutex_t sleep_lock;
	pthread_cond_t sleep_cond; /* CLOCK_MONOTONIC */

	struct hosts *hosts; /* what requests, redirects and realms may reach */

	pthread_mutex_t lock; /* guards upstreams and basic_hosts */
	struct upstream upstreams[MAX_UPSTREAMS];
	size_t n_upstreams;
	/* registries that asked for Basic auth: send it up front next time */
	char basic_hosts[MAX_BASIC_HOSTS][AUTH_REGISTRY_MAX + 1];
	size_t n_basic_hosts;
};

struct buffer {
	char *data;
	size_t len, cap, max;
};

struct response_headers {
	char content_type[REGISTRY_MEDIA_TYPE_MAX + 1];
	char docker_digest[DIGEST_STRING_SIZE + 8];
	char www_authenticate[AUTH_HEADER_MAX + 1];
	bool www_authenticate_too_long;
	char retry_after[64];
	char content_range[128];
};

enum sink {
	SINK_BUFFER,
	SINK_WRITER,
	SINK_NONE, /* HEAD */
};

struct request {
	struct registry *reg;
	const char *host;	/* the registry, for messages, auth and caches */
	const char *repository; /* for the pull scope; NULL for /v2/ */
	char url[REGISTRY_URL_MAX + 1024];
	const char *accept;
	enum sink sink;
	bool no_auth_flow; /* a token request: a 401 is final */
	/* the registry's own origin: where redirects and realms may always go */
	char own_origin[HOSTS_ORIGIN_MAX + 1];
	/* where the host policy stopped this request ("" if it did not) */
	char refused[HOSTS_ORIGIN_MAX + 64];
	const char *post;		/* form body for a POST, else GET/HEAD */
	char missing[REGISTRY_URL_MAX]; /* what a 404 says is not there; \"\" for the host */

	/* authorization sent with this request */
	enum auth_scheme auth;
	struct auth_token token;
	struct auth_credentials creds;

	/* what came back */
	CURL *curl;
	long status;
	struct response_headers hdr;
	struct buffer body;
	char curl_error[CURL_ERROR_SIZE];

	/* SINK_WRITER */
	struct store_writer *writer;
	int64_t expected_size;
	bool body_started;
	registry_progress_fn progress;
	void *progress_ctx;

	int sink_error; /* why a body callback stopped the transfer */
	struct registry_error *err;

	int64_t deadline_ms;	    /* CLOCK_MONOTONIC: the call ends by then */
	struct registry_stop *stop; /* the calling thread's, or NULL */
};

/* registry_request.c: the engine */

/* CLOCK_MONOTONIC in milliseconds. */
int64_t registry_now_ms(void);

/* Record why req failed in req->err (its HTTP status, and the message). */
void registry_request_error(struct request *req, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Fill in the common fields and the URL: the registry's base URL, then fmt.
 * 0, or -EPERM (a registry not served), -ENAMETOOLONG, -ENOMEM.
 */
int registry_request_init(struct request *req, struct registry *reg, const char *host,
			  const char *repository, struct registry_error *err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/*
 * Run a request to completion: retries on 429, 5xx and broken transfers,
 * one authentication round on 401, resumes for blob downloads.
 */
int registry_request_run(struct request *req);

/* Requests carry 25 KiB of secrets and headers: keep them off thread stacks. */
struct request *registry_request_new(void);
void registry_request_free(struct request *req); /* NULL is fine */

static inline bool registry_request_stopped(const struct request *req)
{
	return atomic_load(&req->reg->cancelled) || (req->stop && atomic_load(&req->stop->stopped));
}

/* registry_body.c: curl's callbacks into a request's sink */

size_t registry_on_header(char *line, size_t size, size_t n, void *ctx);
size_t registry_on_body(char *data, size_t size, size_t n, void *ctx);
int registry_on_xferinfo(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			 curl_off_t ulnow);
void registry_buffer_free(struct buffer *b);

/* registry_auth.c: the auth flow */

/* Before the first try: a cached token, or Basic for a registry that wants it. */
void registry_auth_apply_known(struct request *req);
/* Answer a 401: read the challenge and get what it asks for (0 means try again). */
int registry_auth_answer(struct request *req);

#endif
