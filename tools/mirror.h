/*
 * mirror: the read side of the registry HTTP API v2, served from a dindfs
 * mount, so that every client in a level pulls through the host's cache:
 * dockerd ("registry-mirrors" for docker.io, and any registry name that
 * resolves to this level's loopback), containerd (hosts.toml), podman and
 * skopeo (registries.conf).
 *
 *   GET /v2/                                   200 {}
 *   GET|HEAD /v2/<name>/manifests/<reference>  from registry/<host>/<repo>/manifests/
 *   GET|HEAD /v2/<name>/blobs/<digest>         from registry/<host>/<repo>/blobs/, with Range
 *
 * Which registry a request is for, first that applies:
 *   1. "?ns=<registry>" (what containerd sends a mirror);
 *   2. the Host header, when it is a name and not an address or
 *      "localhost" (a registry name that resolves here: "ghcr.io", the
 *      port dropped when it is 80 or 443);
 *   3. the name's first component, when it has a '.' or a ':' or is
 *      localhost ("ghcr.io/o/r");
 *   4. docker.io (its official images under library/).
 * index.docker.io and registry-1.docker.io are docker.io.
 *
 * Range on blobs follows RFC 9110 §14: "bytes=A-B", "bytes=A-" and the
 * suffix "bytes=-N"; 416 with the unsatisfied Content-Range form ("bytes",
 * an asterisk, "/SIZE") when no range is satisfiable; several ranges are sorted and those that
 * overlap or touch are merged: one range is a single-part 206, up to MIRROR_RANGE_PARTS a
 * multipart/byteranges 206, more (or a header that does not parse) the
 * whole blob with 200, as §14.2 allows. Manifests ignore Range.
 *
 * Errors are OCI error bodies: NAME_INVALID, MANIFEST_UNKNOWN,
 * BLOB_UNKNOWN, DENIED (403, a registry the host daemon does not serve),
 * and 502 when the host daemon could not reach upstream. Idle and slow
 * connections are bounded (mirror_guard.h).
 */
#ifndef DINDFS_MIRROR_H
#define DINDFS_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIRROR_LISTEN_MAX  8
#define MIRROR_RANGE_PARTS 16

struct mirror;

struct mirror_listen {
	char address[64]; /* IPv4 */
	uint16_t port;
	bool tls;
};

struct mirror_options {
	const char *root; /* a dindfs mount */
	const struct mirror_listen *listen;
	size_t n_listen; /* 1 to MIRROR_LISTEN_MAX */
	/* PEM text of the certificate (chain) and its key, for the TLS listeners */
	const char *cert_pem, *key_pem;
	/* one line on stderr per request: when, method, path, status, milliseconds */
	bool log_requests;
};

/*
 * Start serving. Returns 0, or -errno with *ret_failed the index of the
 * listener that could not start: -EINVAL (not an IPv4 address),
 * -EADDRINUSE (could not listen, or the certificate was refused), -ENOTSUP
 * (TLS asked of a libmicrohttpd without it). The server runs in its own
 * threads until mirror_stop.
 */
int mirror_start(const struct mirror_options *o, struct mirror **ret, size_t *ret_failed);
/* Accepts NULL. */
void mirror_stop(struct mirror *m);

#endif
