/*
 * auth_config: credentials from docker's config.json ("auths", "credsStore",
 * "credHelpers"), the hosts it names, and the Basic encoding of a
 * credential (see auth.h). JSON goes through jansson and base64 through
 * OpenSSL; buffers that held secrets are wiped with explicit_bzero() before
 * they are freed or go out of scope.
 */
#include "auth.h"
#include "auth_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

void auth_credentials_wipe(struct auth_credentials *c)
{
	explicit_bzero(c, sizeof(*c));
}

static const char *const docker_hub_hosts[] = {"docker.io", "index.docker.io",
					       "registry-1.docker.io"};

static bool is_docker_hub(const char *registry)
{
	size_t i;

	for (i = 0; i < sizeof(docker_hub_hosts) / sizeof(docker_hub_hosts[0]); i++)
		if (strcasecmp(registry, docker_hub_hosts[i]) == 0)
			return true;
	return false;
}

/* host[:port], or an IPv6 literal in brackets: what a reference's registry can be. */
static bool registry_name_valid(const char *registry)
{
	size_t n = strnlen(registry, AUTH_REGISTRY_MAX + 1), i;

	if (n == 0 || n > AUTH_REGISTRY_MAX)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)registry[i];

		if (!auth_is_alnum(c) && !strchr(".-_:[]", c))
			return false;
	}
	return true;
}

/*
 * The host part of an "auths" or "credHelpers" key, as docker's
 * ConvertToHostname: drop "http://" or "https://", stop at the first '/'.
 */
static void key_host(const char *key, const char **ret_host, size_t *ret_len)
{
	if (strncasecmp(key, "https://", 8) == 0)
		key += 8;
	else if (strncasecmp(key, "http://", 7) == 0)
		key += 7;
	*ret_host = key;
	*ret_len = strcspn(key, "/");
}

static bool span_equals(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

static bool key_matches(const char *key, const char *registry)
{
	const char *host;
	size_t n, i;

	key_host(key, &host, &n);
	if (!is_docker_hub(registry))
		return span_equals(host, n, registry);
	for (i = 0; i < sizeof(docker_hub_hosts) / sizeof(docker_hub_hosts[0]); i++)
		if (span_equals(host, n, docker_hub_hosts[i]))
			return true;
	return false;
}

/* The key the docker CLI uses for registry, and the URL its helpers get. */
static const char *server_key(const char *registry)
{
	return is_docker_hub(registry) ? AUTH_DOCKER_HUB_KEY : registry;
}

/* The member of obj for registry: the exact key, else the first whose host matches. */
static json_t *find_registry_member(json_t *obj, const char *registry)
{
	json_t *v = json_object_get(obj, server_key(registry));
	void *it;

	if (v)
		return v;
	for (it = json_object_iter(obj); it; it = json_object_iter_next(obj, it))
		if (key_matches(json_object_iter_key(it), registry))
			return json_object_iter_value(it);
	return NULL;
}

static bool is_base64_char(unsigned char c)
{
	return auth_is_alnum(c) || c == '+' || c == '/';
}

/* Longest "auth" value: base64 of the longest "user:secret". */
#define AUTH_FIELD_MAX (AUTH_BASIC_SIZE - 1)

/*
 * Decode an "auth" field, standard base64 with padding, of "user:password"
 * into c. As docker: split at the first ':', refuse an empty user, and trim
 * NULs off the password's ends (old clients padded it); other NULs are
 * refused, since C strings could not carry them.
 */
static int decode_auth_field(const char *auth, size_t n, struct auth_credentials *c)
{
	unsigned char plain[AUTH_FIELD_MAX / 4 * 3 + 1];
	size_t i, pad = 0, plain_len, user_len, start, end;
	unsigned char *colon;
	int decoded, r = -EINVAL;

	if (n > AUTH_FIELD_MAX)
		return -E2BIG;
	if (n % 4 != 0)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)auth[i];

		if (ch == '=' && i >= n - 2) {
			pad++;
			continue;
		}
		if (pad > 0 || !is_base64_char(ch))
			return -EINVAL;
	}
	decoded = EVP_DecodeBlock(plain, (const unsigned char *)auth, (int)n);
	if (decoded < 0 || (size_t)decoded < pad)
		goto out;
	plain_len = (size_t)decoded - pad;
	colon = memchr(plain, ':', plain_len);
	if (!colon || colon == plain)
		goto out;
	user_len = (size_t)(colon - plain);
	start = user_len + 1;
	end = plain_len;
	while (start < end && plain[start] == '\0')
		start++;
	while (end > start && plain[end - 1] == '\0')
		end--;
	if (memchr(plain, '\0', user_len) || memchr(plain + start, '\0', end - start))
		goto out;
	r = auth_copy_bounded(c->username, sizeof(c->username), (const char *)plain, user_len);
	if (r == 0)
		r = auth_copy_bounded(c->secret, sizeof(c->secret), (const char *)plain + start,
				      end - start);
out:
	explicit_bzero(plain, sizeof(plain));
	return r;
}

/* Credentials from an "auths" entry; -ENOENT when it holds none. */
static int credentials_from_entry(json_t *entry, struct auth_credentials *ret)
{
	struct auth_credentials c = {0};
	const char *auth, *username, *password, *identity;
	size_t auth_n, username_n, password_n, identity_n;
	int r;

	if (!json_is_object(entry))
		return -EINVAL;
	if (auth_json_string(entry, "auth", &auth, &auth_n) < 0 ||
	    auth_json_string(entry, "username", &username, &username_n) < 0 ||
	    auth_json_string(entry, "password", &password, &password_n) < 0 ||
	    auth_json_string(entry, "identitytoken", &identity, &identity_n) < 0)
		return -EINVAL;
	if (auth_n > 0) {
		r = decode_auth_field(auth, auth_n, &c);
	} else {
		r = auth_copy_bounded(c.username, sizeof(c.username), username ? username : "",
				      username_n);
		if (r == 0)
			r = auth_copy_bounded(c.secret, sizeof(c.secret), password ? password : "",
					      password_n);
	}
	if (r == 0 && identity_n > 0) {
		r = auth_copy_bounded(c.secret, sizeof(c.secret), identity, identity_n);
		c.identity_token = true;
	}
	if (r == 0 && !c.username[0] && !c.secret[0])
		r = -ENOENT;
	if (r == 0)
		*ret = c;
	auth_credentials_wipe(&c);
	return r;
}

int auth_credentials_from_config(const char *json, size_t len, const char *registry,
				 struct auth_credentials *ret)
{
	const char *helper = NULL;
	json_error_t err;
	json_t *root, *v;
	int r;

	if (!registry_name_valid(registry))
		return -EINVAL;
	if (len > AUTH_CONFIG_MAX)
		return -E2BIG;
	root = json_loadb(json, len, 0, &err);
	if (!root)
		return auth_json_errno(&err);
	r = -EINVAL;
	if (!json_is_object(root))
		goto out;

	/*
	 * As docker's GetCredentialsStore: a credHelpers entry for the
	 * registry, even an empty one, overrides credsStore; a non-empty
	 * helper is then the only source.
	 */
	v = json_object_get(root, "credHelpers");
	if (v && !json_is_null(v)) {
		if (!json_is_object(v))
			goto out;
		v = find_registry_member(v, registry);
		if (v && !json_is_string(v))
			goto out;
	} else {
		v = NULL;
	}
	if (v) {
		helper = json_string_value(v);
	} else if (auth_json_string(root, "credsStore", &helper, NULL) < 0) {
		goto out;
	}
	if (helper && helper[0]) {
		r = auth_run_helper(helper, server_key(registry), AUTH_HELPER_TIMEOUT_MS, ret);
		goto out;
	}

	v = json_object_get(root, "auths");
	if (!v || json_is_null(v)) {
		r = -ENOENT;
		goto out;
	}
	if (!json_is_object(v))
		goto out;
	v = find_registry_member(v, registry);
	r = v ? credentials_from_entry(v, ret) : -ENOENT;
out:
	json_decref(root);
	return r;
}

/*
 * Read a whole regular file of at most max bytes into a malloc()ed buffer.
 * The caller wipes and frees it.
 */
static int read_small_file(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	struct stat st;
	size_t len = 0;
	char *buf;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out_close;
	}
	if ((uint64_t)st.st_size > max) {
		r = -E2BIG;
		goto out_close;
	}
	buf = malloc(max + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out_close;
	}
	/* Read to EOF rather than st_size: the file may change under us. */
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			r = -E2BIG;
			goto out_free;
		}
	}
	*ret_buf = buf;
	*ret_len = len;
	close(fd);
	return 0;
out_free:
	explicit_bzero(buf, len);
	free(buf);
out_close:
	close(fd);
	return r;
}

int auth_config_path(char *buf, size_t size)
{
	const char *dir = secure_getenv("DOCKER_CONFIG");
	const char *home = secure_getenv("HOME");
	int n;

	if (dir && dir[0])
		n = snprintf(buf, size, "%s/config.json", dir);
	else if (home && home[0])
		n = snprintf(buf, size, "%s/.docker/config.json", home);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int auth_lookup_credentials(const char *registry, struct auth_credentials *ret)
{
	char path[PATH_MAX], *buf = NULL;
	size_t len = 0;
	int r;

	if (!registry_name_valid(registry))
		return -EINVAL;
	r = auth_config_path(path, sizeof(path));
	if (r < 0)
		return r;
	r = read_small_file(path, AUTH_CONFIG_MAX, &buf, &len);
	if (r < 0)
		return r;
	r = auth_credentials_from_config(buf, len, registry, ret);
	explicit_bzero(buf, len);
	free(buf);
	return r;
}

/* fn for the host of each key of root's member name, an object or absent. */
static int walk_key_hosts(json_t *root, const char *name, auth_host_fn fn, void *ctx)
{
	json_t *obj = json_object_get(root, name);
	char host[AUTH_REGISTRY_MAX + 1];
	const char *start;
	size_t n, i;
	void *it;
	int r;

	if (!obj || json_is_null(obj))
		return 0;
	if (!json_is_object(obj))
		return -EINVAL;
	for (it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
		key_host(json_object_iter_key(it), &start, &n);
		if (n == 0 || n > AUTH_REGISTRY_MAX)
			continue;
		for (i = 0; i < n; i++)
			host[i] = (start[i] >= 'A' && start[i] <= 'Z')
					  ? (char)(start[i] - 'A' + 'a')
					  : start[i];
		host[n] = '\0';
		r = fn(host, ctx);
		if (r != 0)
			return r;
	}
	return 0;
}

int auth_config_hosts(const char *json, size_t len, auth_host_fn fn, void *ctx)
{
	json_error_t err;
	json_t *root;
	int r;

	if (len > AUTH_CONFIG_MAX)
		return -E2BIG;
	root = json_loadb(json, len, 0, &err);
	if (!root)
		return auth_json_errno(&err);
	r = -EINVAL;
	if (json_is_object(root)) {
		r = walk_key_hosts(root, "auths", fn, ctx);
		if (r == 0)
			r = walk_key_hosts(root, "credHelpers", fn, ctx);
	}
	json_decref(root);
	return r;
}

int auth_lookup_config_hosts(auth_host_fn fn, void *ctx)
{
	char path[PATH_MAX], *buf = NULL;
	size_t len = 0;
	int r;

	r = auth_config_path(path, sizeof(path));
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = read_small_file(path, AUTH_CONFIG_MAX, &buf, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = auth_config_hosts(buf, len, fn, ctx);
	explicit_bzero(buf, len);
	free(buf);
	return r;
}

int auth_basic_encode(const struct auth_credentials *c, char *buf, size_t size)
{
	unsigned char plain[AUTH_USERNAME_MAX + 1 + AUTH_SECRET_MAX];
	size_t user_n = strnlen(c->username, sizeof(c->username) - 1);
	size_t secret_n = strnlen(c->secret, sizeof(c->secret) - 1);
	size_t n = user_n + 1 + secret_n;

	if (size < 4 * ((n + 2) / 3) + 1) {
		if (size > 0)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(plain, c->username, user_n);
	plain[user_n] = ':';
	memcpy(plain + user_n + 1, c->secret, secret_n);
	EVP_EncodeBlock((unsigned char *)buf, plain, (int)n);
	explicit_bzero(plain, n);
	return 0;
}
