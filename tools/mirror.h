/*
 * mirror: the read side of the registry HTTP API v2, served from a dindfs
 * mount, so that a nested dockerd pulls through the host's cache with
 * plain `docker pull` (its "registry-mirrors" pointing here).
 *
 *   GET /v2/                                   200 {}
 *   GET|HEAD /v2/<name>/manifests/<reference>  from registry/<host>/<repo>/manifests/
 *   GET|HEAD /v2/<name>/blobs/<digest>         from registry/<host>/<repo>/blobs/, with Range
 *
 * A name whose first component has a '.' or a ':' (or is localhost) names
 * its registry ("ghcr.io/o/r"); any other is on docker.io; "?ns=<registry>"
 * (what containerd sends a mirror) names the registry outright. Errors are
 * OCI error bodies: NAME_INVALID, MANIFEST_UNKNOWN, BLOB_UNKNOWN, and 502
 * when the host daemon could not reach upstream.
 */
#ifndef DINDFS_MIRROR_H
#define DINDFS_MIRROR_H

#include <stdint.h>

struct mirror;

/*
 * Start serving root (a dindfs mount) on address:port. Returns 0 or
 * -errno. The server runs in its own threads until mirror_stop.
 */
int mirror_start(const char *root, const char *address, uint16_t port, struct mirror **ret);
/* Accepts NULL. */
void mirror_stop(struct mirror *m);

#endif
