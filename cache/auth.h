/*
 * auth: the registry client's authentication pieces, without the network.
 *
 * A registry answers an unauthenticated request with 401 and a
 * WWW-Authenticate header. auth_parse_challenge() reads that header (RFC
 * 7235 syntax, as Docker Hub, distribution, GHCR and others send it).
 * For a Bearer challenge, auth_token_url() builds the GET request for the
 * token server and auth_parse_token_response() reads its JSON answer. The
 * credentials for either scheme come from the user's Docker config.json
 * (auth_lookup_credentials()), inline or from a docker-credential-* helper,
 * matched to a registry the way the docker CLI matches them. Tokens are
 * kept until shortly before they expire in an auth_cache, which the mount
 * daemon's threads share.
 *
 * Everything that comes from outside (the header, the token response, the
 * config file, a helper's output) has a size limit: -E2BIG when it is
 * exceeded, -EINVAL when the input is malformed. Functions return 0 or a
 * negative errno, never print, and leave ret_* untouched on failure.
 *
 * Secrets (struct auth_credentials, struct auth_token) live in fixed
 * buffers; wipe them with auth_credentials_wipe() / auth_token_wipe() when
 * done. The module wipes its own copies and temporary buffers, but jansson
 * keeps private copies of parsed strings that are freed without wiping.
 */
#ifndef DINDFS_AUTH_H
#define DINDFS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest WWW-Authenticate header accepted. */
#define AUTH_HEADER_MAX 8192
/* Longest realm (a URL), service and scope kept from a challenge. */
#define AUTH_REALM_MAX	 1024
#define AUTH_SERVICE_MAX 255
#define AUTH_SCOPE_MAX	 1024
/* Room for any URL auth_token_url() builds from a challenge. */
#define AUTH_TOKEN_URL_SIZE 8192

/* Longest bearer token, and longest token-server response body. */
#define AUTH_TOKEN_MAX		16384
#define AUTH_TOKEN_RESPONSE_MAX 65536
/* expires_in when the response has none; also its floor, as in docker. */
#define AUTH_TOKEN_DEFAULT_LIFETIME 60
/* expires_in is clamped to this (one day), so lifetimes never overflow. */
#define AUTH_TOKEN_MAX_LIFETIME 86400

/* Registry names as the reference module gives them: host[:port]. */
#define AUTH_REGISTRY_MAX 255
#define AUTH_USERNAME_MAX 255
#define AUTH_SECRET_MAX	  8192
/* Base64 of "username:secret", plus NUL: what auth_basic_encode() writes. */
#define AUTH_BASIC_SIZE (4 * ((AUTH_USERNAME_MAX + 1 + AUTH_SECRET_MAX + 2) / 3) + 1)

/* Largest config.json read, and largest output read from a helper. */
#define AUTH_CONFIG_MAX	       (1 << 20)
#define AUTH_HELPER_OUTPUT_MAX 65536
/* How long auth_lookup_credentials() lets a credential helper run. */
#define AUTH_HELPER_TIMEOUT_MS 30000
/* docker's key for Docker Hub in config.json, and the URL its helpers see. */
#define AUTH_DOCKER_HUB_KEY "https://index.docker.io/v1/"

enum auth_scheme {
	AUTH_SCHEME_NONE = 0,
	AUTH_SCHEME_BASIC,
	AUTH_SCHEME_BEARER,
};

struct auth_challenge {
	enum auth_scheme scheme;
	char realm[AUTH_REALM_MAX + 1];	    /* "" when absent (Basic may omit it) */
	char service[AUTH_SERVICE_MAX + 1]; /* "" when absent */
	char scope[AUTH_SCOPE_MAX + 1];	    /* "" when absent; may hold several, space-separated */
};

/*
 * Parse a WWW-Authenticate header value (NUL-terminated, without the
 * "WWW-Authenticate:" name). It may hold several challenges separated by
 * commas; a Bearer challenge is chosen over a Basic one, whatever the order.
 * Scheme and parameter names are case-insensitive; values are tokens or
 * quoted-strings with backslash escapes; unknown parameters, unknown
 * schemes and token68 blobs are skipped. A parameter given twice in one
 * challenge is refused.
 *
 * Returns 0; -EINVAL if the header is malformed or the chosen Bearer
 * challenge has no realm; -E2BIG if it is longer than AUTH_HEADER_MAX or a
 * kept value does not fit; -EOPNOTSUPP if it is well-formed but offers
 * neither Basic nor Bearer.
 */
int auth_parse_challenge(const char *header, struct auth_challenge *ret);

/*
 * Build the token request URL for a Bearer challenge into buf:
 * realm?service=<service>&scope=<scope>, each value percent-encoded, one
 * scope= parameter per space-separated scope, "&" instead of "?" when the
 * realm already has a query, and parameters left out when empty. scope
 * overrides the challenge's scope when not NULL (a ping of /v2/ gets a
 * challenge without one, and the client knows which repository it wants).
 *
 * Returns 0; -EINVAL if c is not Bearer or its realm is not a plain http or
 * https URL (no spaces, controls or fragment), or the scope is too long;
 * -ENAMETOOLONG if buf is too small (AUTH_TOKEN_URL_SIZE always suffices
 * without an override scope longer than AUTH_SCOPE_MAX).
 */
int auth_token_url(const struct auth_challenge *c, const char *scope, char *buf, size_t size);

struct auth_token {
	char token[AUTH_TOKEN_MAX + 1]; /* printable ASCII, no spaces */
	int64_t expires_in;		/* seconds, in [DEFAULT_LIFETIME, MAX_LIFETIME] */
	int64_t issued_at;		/* seconds since the epoch; 0 when not given */
};

/*
 * Parse a token server's JSON answer of len bytes (need not be
 * NUL-terminated): "token" or "access_token" (the latter wins when both are
 * there, as in docker), optional "expires_in" (an integer number of
 * seconds; as docker, absent or below AUTH_TOKEN_DEFAULT_LIFETIME means
 * that, and it is clamped to AUTH_TOKEN_MAX_LIFETIME) and optional
 * "issued_at" (RFC 3339). Other members are ignored.
 *
 * Returns 0; -EINVAL if it is not a JSON object, a member has the wrong
 * type, the token is missing, empty or holds bytes that cannot go in an
 * HTTP header, or issued_at is not a date;
 * -E2BIG if len exceeds AUTH_TOKEN_RESPONSE_MAX or the token AUTH_TOKEN_MAX.
 */
int auth_parse_token_response(const char *json, size_t len, struct auth_token *ret);

/* Overwrite a token with zeros, in a way the compiler will not drop. */
void auth_token_wipe(struct auth_token *t);

struct auth_credentials {
	char username[AUTH_USERNAME_MAX + 1]; /* may be "" with an identity token */
	char secret[AUTH_SECRET_MAX + 1];     /* password, or identity token */
	/*
	 * The secret is an identity (OAuth refresh) token, to be exchanged at
	 * the token server with grant_type=refresh_token, not a password.
	 */
	bool identity_token;
};

/*
 * Find the credentials for registry (host[:port]; "docker.io",
 * "index.docker.io" and "registry-1.docker.io" all mean Docker Hub) in the
 * docker config.json at $DOCKER_CONFIG/config.json, or else at
 * $HOME/.docker/config.json. Follows auth_credentials_from_config().
 *
 * Returns 0; -ENOENT if there is no config file or it holds no credentials
 * for registry; otherwise as auth_credentials_from_config(), or -errno from
 * reading the file (-E2BIG past AUTH_CONFIG_MAX).
 */
int auth_lookup_credentials(const char *registry, struct auth_credentials *ret);

/*
 * Where the user's docker config.json is: $DOCKER_CONFIG/config.json, or
 * else $HOME/.docker/config.json. Returns 0, -ENOENT when neither variable
 * is set, -ENAMETOOLONG when the path does not fit in size bytes.
 */
int auth_config_path(char *buf, size_t size);

/* Called with one registry host; a non-zero return stops the walk and is returned. */
typedef int (*auth_host_fn)(const char *host, void *ctx);

/*
 * Call fn with the registry host of every key of "auths" and then of
 * "credHelpers" in the config.json text json (len bytes): the key as
 * docker's ConvertToHostname reads it ("https://ghcr.io/v2/" is "ghcr.io"),
 * in lower case. Keys whose host is empty or over AUTH_REGISTRY_MAX bytes
 * are left out. These are the registries the user has credentials for.
 *
 * Returns 0, fn's non-zero return, -EINVAL if the JSON is malformed or
 * "auths" or "credHelpers" is not an object, -E2BIG past AUTH_CONFIG_MAX.
 */
int auth_config_hosts(const char *json, size_t len, auth_host_fn fn, void *ctx);

/*
 * auth_config_hosts over the user's config.json (auth_config_path).
 * Returns 0 as well when there is no config file.
 */
int auth_lookup_config_hosts(auth_host_fn fn, void *ctx);

/*
 * Find the credentials for registry in the config.json text json (len
 * bytes), as the docker CLI does:
 *
 *  - A credential helper configured for the registry, in "credHelpers",
 *    or else the default "credsStore", is the only source: it is run as
 *    auth_run_helper() would, with the registry's server URL (the key the
 *    docker CLI uses: AUTH_DOCKER_HUB_KEY for Docker Hub, else host[:port]).
 *  - Otherwise the "auths" entry is used: "auth" (base64 "user:password")
 *    wins over "username"/"password"; "identitytoken" wins over both as
 *    the secret. An entry with none of them (docker login with a
 *    credsStore leaves those) counts as absent.
 *
 * Keys match exactly first (AUTH_DOCKER_HUB_KEY for Docker Hub, host[:port]
 * otherwise), then by host: "https://host/", "http://host:5000" and
 * "host/v2/" all match host, compared without case, first in file order.
 *
 * Returns 0; -ENOENT if there are none for registry (or the helper says it
 * has none); -EINVAL if the registry name is invalid, the JSON is malformed
 * or a field we use has the wrong type, or "auth" is not base64 of
 * "user:password"; -E2BIG if json is larger than AUTH_CONFIG_MAX or a
 * credential does not fit; else as auth_run_helper().
 */
int auth_credentials_from_config(const char *json, size_t len, const char *registry,
				 struct auth_credentials *ret);

/*
 * Run "docker-credential-<helper> get" (looked up in $PATH, no shell) with
 * server_url on its stdin and parse its {"Username":..., "Secret":...}
 * answer. A Username of "<token>" marks the secret as an identity token.
 * The helper runs in its own process group, with stderr discarded and no
 * file descriptors of ours but its stdin and stdout; after timeout_ms it is
 * killed, group and all. Safe to call from any thread, provided nothing
 * else in the process reaps children it did not start (waitpid(-1, ...) or
 * SIGCHLD set to SIG_IGN): the exit status is needed, and a reaped pid
 * could be reused.
 *
 * Returns 0; -EINVAL if helper is not a plain name ([A-Za-z0-9._-], at most
 * 64 bytes), server_url is longer than AUTH_REALM_MAX, or the output is
 * malformed; -ENOENT if it reports
 * "credentials not found" or gives an empty username and secret;
 * -ENOPKG if there is no such program in $PATH; -EIO if it exits non-zero
 * or is killed by a signal; -ETIMEDOUT; -E2BIG if it writes more than
 * AUTH_HELPER_OUTPUT_MAX bytes or a credential does not fit; -errno from
 * spawning or waiting for it (-ECHILD if it was reaped elsewhere).
 */
int auth_run_helper(const char *helper, const char *server_url, int timeout_ms,
		    struct auth_credentials *ret);

/*
 * Base64 of "username:secret", for an "Authorization: Basic" header, into
 * buf (AUTH_BASIC_SIZE bytes always suffice). Returns 0, or -ENAMETOOLONG
 * if buf is too small.
 */
int auth_basic_encode(const struct auth_credentials *c, char *buf, size_t size);

/* Overwrite credentials with zeros, in a way the compiler will not drop. */
void auth_credentials_wipe(struct auth_credentials *c);

/*
 * A cache of bearer tokens keyed by (registry, scope), shared by threads
 * (all calls take its mutex). Times are seconds since the epoch passed in
 * by the caller. A token put at now with expires_in E is handed out until
 * now + E - AUTH_CACHE_MARGIN (or now + E/2 for tokens shorter than twice
 * the margin), so it does not expire in flight; the token server's
 * issued_at is not used, so clock skew cannot make a fresh token look old.
 * When the cache is full, putting a new key evicts an expired entry or
 * else the one that expires first. Tokens are wiped when they leave.
 */
#define AUTH_CACHE_MARGIN 10
/* Default entry limit for auth_cache_new(0, ...). */
#define AUTH_CACHE_DEFAULT_ENTRIES 64

struct auth_cache;

/* A cache of at most max_entries tokens (0: AUTH_CACHE_DEFAULT_ENTRIES). -ENOMEM. */
int auth_cache_new(size_t max_entries, struct auth_cache **ret);
/* Wipes and frees every token. Accepts NULL. */
void auth_cache_free(struct auth_cache *c);

/*
 * Copy the token for (registry, scope) into ret, with expires_in set to the
 * seconds it has left before the margin. -ENOENT if there is none or it has
 * expired (and then it is dropped).
 */
int auth_cache_get(struct auth_cache *c, const char *registry, const char *scope, int64_t now,
		   struct auth_token *ret);

/*
 * Keep a copy of token for (registry, scope), replacing any older one.
 * Returns 0; -EINVAL if registry is longer than AUTH_REGISTRY_MAX, scope
 * longer than AUTH_SCOPE_MAX, or the token empty; -ENOMEM.
 */
int auth_cache_put(struct auth_cache *c, const char *registry, const char *scope,
		   const struct auth_token *token, int64_t now);

#endif
