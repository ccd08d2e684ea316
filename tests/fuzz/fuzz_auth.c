/*
 * fuzz_auth: the auth module's parsers of outside input, all fed the same
 * bytes: a WWW-Authenticate header (NUL-terminated copy), the token URL
 * built from a Bearer challenge, a token server's response, and a docker
 * config.json (its credentials, and the registry hosts its keys name). Beyond "no crash", it checks
 * what callers rely on: kept values are terminated within their fields, and the URL and the token
 * hold nothing that could break an HTTP request line or header.
 *
 * $PATH is pointed at a directory that does not exist, so a config naming
 * a credsStore or credHelper spawns nothing (the lookup fails with -ENOPKG).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_auth: %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static bool visible_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static void fuzz_challenge(const char *header)
{
	static char url[AUTH_TOKEN_URL_SIZE];
	struct auth_challenge c;

	if (auth_parse_challenge(header, &c) != 0)
		return;
	check(c.scheme == AUTH_SCHEME_BASIC || c.scheme == AUTH_SCHEME_BEARER);
	check(strnlen(c.realm, sizeof(c.realm)) < sizeof(c.realm));
	check(strnlen(c.service, sizeof(c.service)) < sizeof(c.service));
	check(strnlen(c.scope, sizeof(c.scope)) < sizeof(c.scope));
	if (c.scheme != AUTH_SCHEME_BEARER)
		return;
	check(c.realm[0] != '\0');
	if (auth_token_url(&c, NULL, url, sizeof(url)) == 0) {
		check(strncmp(url, c.realm, strlen(c.realm)) == 0);
		check(visible_ascii(url));
		check(strchr(url, '#') == NULL);
	}
}

static void fuzz_token_response(const uint8_t *data, size_t size)
{
	static struct auth_token t;

	if (auth_parse_token_response((const char *)data, size, &t) != 0)
		return;
	check(t.token[0] != '\0');
	check(strnlen(t.token, sizeof(t.token)) <= AUTH_TOKEN_MAX);
	check(visible_ascii(t.token));
	check(t.expires_in >= AUTH_TOKEN_DEFAULT_LIFETIME);
	check(t.expires_in <= AUTH_TOKEN_MAX_LIFETIME);
}

static void fuzz_config(const uint8_t *data, size_t size, const char *registry)
{
	static struct auth_credentials creds;
	static char basic[AUTH_BASIC_SIZE];

	if (auth_credentials_from_config((const char *)data, size, registry, &creds) != 0)
		return;
	check(strnlen(creds.username, sizeof(creds.username)) < sizeof(creds.username));
	check(strnlen(creds.secret, sizeof(creds.secret)) < sizeof(creds.secret));
	check(creds.username[0] || creds.secret[0]);
	check(auth_basic_encode(&creds, basic, sizeof(basic)) == 0);
	auth_credentials_wipe(&creds);
}

/* Each host a config.json names: terminated, bounded, lower case, no '/'. */
static int check_host(const char *host, void *ctx)
{
	size_t n = strnlen(host, AUTH_REGISTRY_MAX + 1);

	(void)ctx;
	check(n > 0 && n <= AUTH_REGISTRY_MAX);
	check(strchr(host, '/') == NULL);
	for (; *host; host++)
		check(!(*host >= 'A' && *host <= 'Z'));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool path_set;
	char *header;

	if (!path_set) {
		setenv("PATH", "/nonexistent/dindfs-fuzz", 1);
		path_set = true;
	}
	header = malloc(size + 1);
	if (!header)
		return 0;
	memcpy(header, data, size);
	header[size] = '\0';
	fuzz_challenge(header);
	free(header);

	fuzz_token_response(data, size);
	fuzz_config(data, size, "docker.io");
	fuzz_config(data, size, "localhost:5000");
	auth_config_hosts((const char *)data, size, check_host, NULL);
	return 0;
}
