/*
 * hosts: which hosts the registry client may reach, and on what terms.
 *
 * A level names registries (registry/<host>/... on the mount), and a
 * registry names more hosts: redirects (Location) and token servers (the
 * realm of a WWW-Authenticate challenge). This module holds the rules for
 * both, so that neither can make the host daemon reach what it should not:
 *
 *   - the served names: the registries a request may name at all
 *     (hosts_serve). Docker Hub's aliases are docker.io
 *     (ref_canonical_registry); names compare exactly.
 *   - the trusted origins: scheme://host:port of every --upstream URL, and
 *     of every --allow-origin, which redirects and token realms may reach
 *     whatever they are (plain http, loopback, a private network).
 *   - everything else a redirect or a realm names must be https, on an
 *     address that is public (hosts_address_is_public: not loopback,
 *     RFC 1918, CGNAT, link-local, ULA, unspecified, multicast, broadcast,
 *     nor any of those v4-mapped or NAT64-embedded). The address checked is
 *     the one the connection actually went to, so DNS cannot smuggle a
 *     private address past a public-looking name (hosts_may_follow is
 *     called from curl's CURLOPT_PREREQFUNCTION).
 *
 * An origin here is "scheme://host:port" in lower case, the port always
 * written ("https://ghcr.io:443", "http://[::1]:5000"). All functions are
 * safe from any thread; they return 0 or a negative errno and never print.
 */
#ifndef DINDFS_HOSTS_H
#define DINDFS_HOSTS_H

#include <stdbool.h>
#include <stddef.h>

/* Most registry names, and most trusted origins, one struct hosts holds. */
#define HOSTS_SERVED_MAX  256
#define HOSTS_ORIGINS_MAX 128
/* Longest origin: scheme, "://", a registry name, ':', a port. */
#define HOSTS_ORIGIN_MAX 300

struct hosts;

int hosts_new(struct hosts **ret);
/* Accepts NULL. */
void hosts_free(struct hosts *h);

/*
 * Serve name. Returns 0 (also when it was served already), -EINVAL if name
 * (after ref_canonical_registry) is not a registry name or is "local",
 * -ENOSPC past HOSTS_SERVED_MAX names.
 */
int hosts_serve(struct hosts *h, const char *name);
bool hosts_serves(struct hosts *h, const char *name);
/*
 * fn for each served name in the order served, docker.io followed by its
 * aliases; under the lock, so fn must not call back. A non-zero return
 * stops the walk and is returned.
 */
int hosts_foreach_served(struct hosts *h, int (*fn)(const char *name, void *ctx), void *ctx);

/* The parts of an absolute http(s) URL that the checks here look at. */
struct hosts_url {
	char *scheme; /* "http" or "https", lower case */
	char *host;   /* lower case, never empty */
	char *port;   /* the scheme's default when the URL names none */
	bool has_user, has_fragment;
	bool is_base; /* no path beyond "/", no query */
};

/*
 * Parse url with curl's URL parser into *ret (release it with
 * hosts_url_release). -EINVAL when url is not an absolute http(s) URL with
 * a host, -ENOMEM; *ret is then empty (and safe to release).
 */
int hosts_parse_url(const char *url, struct hosts_url *ret);
void hosts_url_release(struct hosts_url *u);

/*
 * The origin of an absolute http(s) URL, into buf. -EINVAL when url is not
 * one (another scheme, no host, user info), -ENAMETOOLONG when it does not
 * fit.
 */
int hosts_origin(const char *url, char *buf, size_t size);
/* The same for a base URL: no path beyond "/", no query; else -EINVAL. */
int hosts_base_origin(const char *url, char *buf, size_t size);

/*
 * Trust url's origin: redirects and token realms may go there over http
 * and on private addresses. url is a base URL ("http://127.0.0.1:5000",
 * an optional "/" and nothing more). -EINVAL otherwise, -ENOSPC past
 * HOSTS_ORIGINS_MAX.
 */
int hosts_trust_origin(struct hosts *h, const char *url);
/* Is origin (as hosts_origin writes it) trusted? */
bool hosts_origin_trusted(struct hosts *h, const char *origin);

/* Is ip (a numeric IPv4 or IPv6 address, as curl reports it) public? */
bool hosts_address_is_public(const char *ip);

/*
 * May a redirect, or a request to a token server, go to url over a
 * connection to ip? Yes when url's origin is own_origin (the registry's
 * own base URL, which already is where the request goes) or trusted;
 * else only when url is https and ip is public.
 */
bool hosts_may_follow(struct hosts *h, const char *url, const char *ip, const char *own_origin);

#endif
