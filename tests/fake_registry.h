/*
 * fake_registry: an in-process HTTP server (libmicrohttpd) on a loopback
 * port that answers from a script, for the unit suites of the registry
 * client. It makes the faults a real registry does not make on demand
 * (503 with Retry-After, a body cut short, a 416, a redirect, a 401 with a
 * challenge) and records what each request carried.
 *
 * A request gets the first answer whose method, path and Authorization
 * match and that has uses left; with none, it gets 404.
 */
#ifndef DINDFS_FAKE_REGISTRY_H
#define DINDFS_FAKE_REGISTRY_H

#include <stddef.h>

#define FAKE_ANSWERS_MAX  32
#define FAKE_REQUESTS_MAX 64
#define FAKE_HEADERS_MAX  4

struct fake_answer {
	const char *method; /* "GET", "HEAD", "POST"; NULL: any */
	const char *path;   /* the URL path, exactly; NULL: any */
	const char *auth;   /* the Authorization the request must carry; NULL: any */
	int status;
	/* response headers, each "Name: value" */
	const char *headers[FAKE_HEADERS_MAX];
	const void *body; /* NULL: empty */
	size_t len;	  /* of body; 0 with a body: strlen(body) */
	size_t cut;	  /* > 0: send this many bytes of body, then break the connection */
	int times;	  /* 0: every time; n: the next n matching requests only */
};

/* What one request carried ("" for a header it lacked). */
struct fake_request {
	char method[8];
	char path[256];
	char auth[512];
	char range[64];
	char scope[256]; /* the query's scope argument */
};

struct fake_registry;

/* Start on 127.0.0.1, an unused port. NULL when it cannot. */
struct fake_registry *fake_registry_start(void);
/* Stop the server and free it. Accepts NULL. */
void fake_registry_stop(struct fake_registry *f);

unsigned fake_registry_port(const struct fake_registry *f);
/* "http://127.0.0.1:<port>" */
const char *fake_registry_url(const struct fake_registry *f);

/*
 * Append an answer to the script; its body is copied, the other strings
 * must outlive the server. -1 when full.
 */
int fake_registry_add(struct fake_registry *f, const struct fake_answer *a);

/* Requests seen so far for path (NULL: all). */
int fake_registry_count(struct fake_registry *f, const char *path);
/* A copy of request i (0 is the first); -1 when there was no such request. */
int fake_registry_request(struct fake_registry *f, int i, struct fake_request *ret);

#endif
