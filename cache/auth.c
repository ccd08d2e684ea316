/*
 * auth: WWW-Authenticate challenges, token requests and responses, docker
 * config.json credentials and credential helpers, and a token cache (see
 * auth.h).
 *
 * The challenge parser is a hand-written scanner over RFC 7235's grammar,
 * which is small and which no library here implements; JSON goes through
 * jansson and base64 through OpenSSL. Buffers that held secrets are wiped
 * with explicit_bzero() before they are freed or go out of scope.
 */
#include "auth.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

/* ------------------------------------------------------------------ */
/* WWW-Authenticate                                                    */
/* ------------------------------------------------------------------ */

static bool is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 7230 tchar. */
static bool is_tchar(unsigned char c)
{
	return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 7235 token68, without its trailing '='s. */
static bool is_token68_char(unsigned char c)
{
	return is_alnum(c) || (c && strchr("-._~+/", c));
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_ows(const char *p)
{
	while (is_ows(*p))
		p++;
	return p;
}

/* Skip whitespace and the empty list elements RFC 7230 #rule allows. */
static const char *skip_separators(const char *p)
{
	while (is_ows(*p) || *p == ',')
		p++;
	return p;
}

static size_t token_len(const char *p)
{
	size_t n = 0;

	while (is_tchar((unsigned char)p[n]))
		n++;
	return n;
}

static bool token_is(const char *p, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(p, word, n) == 0;
}

/* True if p starts an auth-param (token BWS "="), not the next challenge. */
static bool starts_param(const char *p)
{
	size_t n = token_len(p);

	return n > 0 && *skip_ows(p + n) == '=';
}

/*
 * Skip a token68 at *pp if that is what follows the scheme: token68 chars,
 * '='s, then only whitespace before a comma or the end. Anything else is
 * left for the auth-param parser.
 */
static bool skip_token68(const char **pp)
{
	const char *p = *pp;

	if (!is_token68_char((unsigned char)*p))
		return false;
	while (is_token68_char((unsigned char)*p))
		p++;
	while (*p == '=')
		p++;
	p = skip_ows(p);
	if (*p != '\0' && *p != ',')
		return false;
	*pp = p;
	return true;
}

/*
 * Copy one byte of a value into out (size bytes, or NULL to discard),
 * counting with *n.
 */
static int put_value_byte(char *out, size_t size, size_t *n, char c)
{
	if (out) {
		if (*n + 1 >= size)
			return -E2BIG;
		out[*n] = c;
	}
	(*n)++;
	return 0;
}

/*
 * Read a quoted-string at *pp (which points at its opening quote) into out,
 * undoing backslash escapes; *pp ends past the closing quote. Controls other
 * than HTAB are refused, as is a missing closing quote.
 */
static int read_quoted(const char **pp, char *out, size_t size)
{
	const char *p = *pp + 1;
	size_t n = 0;
	int r;

	for (;;) {
		unsigned char c = (unsigned char)*p++;

		if (c == '"')
			break;
		if (c == '\\')
			c = (unsigned char)*p++;
		/* qdtext and quoted-pair: HTAB, SP, VCHAR, obs-text; never NUL. */
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -EINVAL;
		r = put_value_byte(out, size, &n, (char)c);
		if (r < 0)
			return r;
	}
	if (out)
		out[n] = '\0';
	*pp = p;
	return 0;
}

struct challenge_parser {
	struct auth_challenge *c; /* NULL values are parsed and dropped */
	bool seen_realm, seen_service, seen_scope;
};

/* Where a parameter's value goes: NULL for one we ignore. */
static int param_target(struct challenge_parser *cp, const char *name, size_t n, char **ret_out,
			size_t *ret_size)
{
	struct auth_challenge *c = cp->c;
	bool *seen = NULL;

	*ret_out = NULL;
	*ret_size = 0;
	if (token_is(name, n, "realm")) {
		seen = &cp->seen_realm;
		*ret_out = c->realm;
		*ret_size = sizeof(c->realm);
	} else if (token_is(name, n, "service")) {
		seen = &cp->seen_service;
		*ret_out = c->service;
		*ret_size = sizeof(c->service);
	} else if (token_is(name, n, "scope")) {
		seen = &cp->seen_scope;
		*ret_out = c->scope;
		*ret_size = sizeof(c->scope);
	}
	if (!seen)
		return 0;
	/* RFC 7235 §2.1: each parameter name occurs once per challenge. */
	if (*seen)
		return -EINVAL;
	*seen = true;
	if (c->scheme == AUTH_SCHEME_NONE)
		*ret_out = NULL;
	return 0;
}

/* One auth-param: token BWS "=" BWS ( token / quoted-string ). */
static int parse_param(struct challenge_parser *cp, const char **pp)
{
	const char *p = *pp, *name = p;
	size_t n = token_len(p), size, i;
	char *out;
	int r;

	if (n == 0)
		return -EINVAL;
	p = skip_ows(p + n);
	if (*p != '=')
		return -EINVAL;
	p = skip_ows(p + 1);
	r = param_target(cp, name, n, &out, &size);
	if (r < 0)
		return r;
	if (*p == '"') {
		r = read_quoted(&p, out, size);
		if (r < 0)
			return r;
	} else {
		n = token_len(p);
		if (n == 0)
			return -EINVAL;
		if (out) {
			if (n >= size)
				return -E2BIG;
			for (i = 0; i < n; i++)
				out[i] = p[i];
			out[n] = '\0';
		}
		p += n;
	}
	*pp = p;
	return 0;
}

/*
 * Parse one challenge at *pp into c: scheme [ 1*SP ( token68 / #auth-param ) ].
 * *pp ends at the comma before the next challenge, or at the end.
 */
static int parse_one_challenge(const char **pp, struct auth_challenge *c)
{
	struct challenge_parser cp = {.c = c};
	const char *p = *pp, *q;
	size_t n = token_len(p);
	int r;

	if (n == 0)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	if (token_is(p, n, "Bearer"))
		c->scheme = AUTH_SCHEME_BEARER;
	else if (token_is(p, n, "Basic"))
		c->scheme = AUTH_SCHEME_BASIC;
	p += n;
	if (*p != '\0' && *p != ',' && !is_ows(*p))
		return -EINVAL;
	p = skip_ows(p);
	if (*p == '\0' || *p == ',' || skip_token68(&p))
		goto out;
	for (;;) {
		r = parse_param(&cp, &p);
		if (r < 0)
			return r;
		p = skip_ows(p);
		if (*p == '\0')
			break;
		if (*p != ',')
			return -EINVAL;
		/* After the comma: another parameter, or the next challenge. */
		q = skip_separators(p);
		if (*q == '\0') {
			p = q;
			break;
		}
		if (!starts_param(q))
			break;
		p = q;
	}
out:
	*pp = p;
	return 0;
}

int auth_parse_challenge(const char *header, struct auth_challenge *ret)
{
	struct auth_challenge cur, bearer, basic;
	bool have_bearer = false, have_basic = false, bearer_without_realm = false;
	const char *p = header;
	int r;

	if (strnlen(header, AUTH_HEADER_MAX + 1) > AUTH_HEADER_MAX)
		return -E2BIG;
	p = skip_separators(p);
	if (*p == '\0')
		return -EINVAL;
	while (*p != '\0') {
		r = parse_one_challenge(&p, &cur);
		if (r < 0)
			return r;
		if (cur.scheme == AUTH_SCHEME_BEARER && !cur.realm[0]) {
			bearer_without_realm = true;
		} else if (cur.scheme == AUTH_SCHEME_BEARER && !have_bearer) {
			bearer = cur;
			have_bearer = true;
		} else if (cur.scheme == AUTH_SCHEME_BASIC && !have_basic) {
			basic = cur;
			have_basic = true;
		}
		p = skip_separators(p);
	}
	if (have_bearer)
		*ret = bearer;
	else if (have_basic)
		*ret = basic;
	else
		return bearer_without_realm ? -EINVAL : -EOPNOTSUPP;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Token request and response                                          */
/* ------------------------------------------------------------------ */

/* A bounded string builder: appends stop, and overflow is set, at size. */
struct strbuf_bounded {
	char *buf;
	size_t size, len;
	bool overflow;
};

static void sb_append(struct strbuf_bounded *sb, const char *s, size_t n)
{
	if (sb->overflow || sb->size - sb->len <= n) {
		sb->overflow = true;
		return;
	}
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

/* Append s percent-encoded: everything but RFC 3986 unreserved characters. */
static void sb_append_escaped(struct strbuf_bounded *sb, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[3] = {'%', hex[c >> 4], hex[c & 0xf]};

		if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			sb_append(sb, &s[i], 1);
		else
			sb_append(sb, esc, sizeof(esc));
	}
}

/* An absolute http or https URL with a host, no whitespace, controls or fragment. */
static bool is_plain_http_url(const char *s)
{
	const char *host, *p;

	if (strncasecmp(s, "https://", 8) == 0)
		host = s + 8;
	else if (strncasecmp(s, "http://", 7) == 0)
		host = s + 7;
	else
		return false;
	if (*host == '\0' || *host == '/' || *host == '?')
		return false;
	for (p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
			return false;
	return true;
}

int auth_token_url(const struct auth_challenge *c, const char *scope, char *buf, size_t size)
{
	struct strbuf_bounded sb = {.buf = buf, .size = size};
	const char *sep = strchr(c->realm, '?') ? "&" : "?";
	const char *p;

	if (size > 0)
		buf[0] = '\0';
	if (c->scheme != AUTH_SCHEME_BEARER || !is_plain_http_url(c->realm))
		return -EINVAL;
	if (!scope)
		scope = c->scope;
	if (strnlen(scope, AUTH_SCOPE_MAX + 1) > AUTH_SCOPE_MAX)
		return -EINVAL;
	sb_append(&sb, c->realm, strlen(c->realm));
	if (c->service[0]) {
		sb_append(&sb, sep, 1);
		sb_append(&sb, "service=", 8);
		sb_append_escaped(&sb, c->service, strlen(c->service));
		sep = "&";
	}
	/* Several scopes are space-separated in a challenge, one parameter each here. */
	for (p = scope; *p;) {
		size_t n = strcspn(p, " ");

		if (n > 0) {
			sb_append(&sb, sep, 1);
			sb_append(&sb, "scope=", 6);
			sb_append_escaped(&sb, p, n);
			sep = "&";
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	if (sb.overflow) {
		if (size > 0)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}

/* The errno for a failed json_loadb(). */
static int json_load_errno(const json_error_t *err)
{
	return json_error_code(err) == json_error_out_of_memory ? -ENOMEM : -EINVAL;
}

/*
 * Look up an optional string member: *ret is NULL when it is absent or
 * null, and -EINVAL comes back when it is anything but a string.
 */
static int get_optional_string(json_t *obj, const char *key, const char **ret, size_t *ret_len)
{
	json_t *v = json_object_get(obj, key);

	*ret = NULL;
	if (ret_len)
		*ret_len = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -EINVAL;
	*ret = json_string_value(v);
	if (ret_len)
		*ret_len = json_string_length(v);
	return 0;
}

static int parse_digits(const char *s, int n, int *ret)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/*
 * RFC 3339 date-time, "2009-11-10T23:00:00Z" or with fractional seconds and
 * a "+hh:mm" offset, to seconds since the epoch.
 */
static int parse_rfc3339(const char *s, int64_t *ret)
{
	int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0;
	const char *p;

	if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':')
		return -EINVAL;
	if (parse_digits(s, 4, &year) || parse_digits(s + 5, 2, &mon) ||
	    parse_digits(s + 8, 2, &day) || parse_digits(s + 11, 2, &hour) ||
	    parse_digits(s + 14, 2, &min) || parse_digits(s + 17, 2, &sec))
		return -EINVAL;
	if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 ||
	    min > 59 || sec > 60)
		return -EINVAL;
	p = s + 19;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return -EINVAL;
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
		sign = 0;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		sign = *p == '+' ? 1 : -1;
		if (parse_digits(p + 1, 2, &oh) || parse_digits(p + 4, 2, &om) || oh > 23 ||
		    om > 59)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	*ret = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec -
	       sign * (oh * 3600 + om * 60);
	return 0;
}

/* A token goes into "Authorization: Bearer <token>": visible ASCII only. */
static bool is_header_safe(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

int auth_parse_token_response(const char *json, size_t len, struct auth_token *ret)
{
	const char *token, *access_token, *issued;
	size_t n, access_n;
	int64_t expires_in = AUTH_TOKEN_DEFAULT_LIFETIME, issued_at = 0;
	json_error_t err;
	json_t *root, *v;
	int r;

	if (len > AUTH_TOKEN_RESPONSE_MAX)
		return -E2BIG;
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
	if (!root)
		return json_load_errno(&err);
	r = -EINVAL;
	if (!json_is_object(root))
		goto out;
	if (get_optional_string(root, "token", &token, &n) < 0 ||
	    get_optional_string(root, "access_token", &access_token, &access_n) < 0 ||
	    get_optional_string(root, "issued_at", &issued, NULL) < 0)
		goto out;
	/* "access_token" is the OAuth 2 name; docker prefers it when both are set. */
	if (access_token && access_n > 0) {
		token = access_token;
		n = access_n;
	}
	if (!token || n == 0 || !is_header_safe(token, n))
		goto out;
	if (n > AUTH_TOKEN_MAX) {
		r = -E2BIG;
		goto out;
	}
	v = json_object_get(root, "expires_in");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v))
			goto out;
		expires_in = json_integer_value(v);
	}
	/* As docker: a token lives at least the default, however short it claims. */
	if (expires_in < AUTH_TOKEN_DEFAULT_LIFETIME)
		expires_in = AUTH_TOKEN_DEFAULT_LIFETIME;
	if (expires_in > AUTH_TOKEN_MAX_LIFETIME)
		expires_in = AUTH_TOKEN_MAX_LIFETIME;
	if (issued && parse_rfc3339(issued, &issued_at) < 0)
		goto out;
	memcpy(ret->token, token, n);
	ret->token[n] = '\0';
	ret->expires_in = expires_in;
	ret->issued_at = issued_at;
	r = 0;
out:
	json_decref(root);
	return r;
}

void auth_token_wipe(struct auth_token *t)
{
	explicit_bzero(t, sizeof(*t));
}

/* ------------------------------------------------------------------ */
/* Credentials                                                          */
/* ------------------------------------------------------------------ */

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

		if (!is_alnum(c) && !strchr(".-_:[]", c))
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

static int copy_bounded(char *dst, size_t size, const char *src, size_t n)
{
	if (n >= size)
		return -E2BIG;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

static bool is_base64_char(unsigned char c)
{
	return is_alnum(c) || c == '+' || c == '/';
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
	r = copy_bounded(c->username, sizeof(c->username), (const char *)plain, user_len);
	if (r == 0)
		r = copy_bounded(c->secret, sizeof(c->secret), (const char *)plain + start,
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
	if (get_optional_string(entry, "auth", &auth, &auth_n) < 0 ||
	    get_optional_string(entry, "username", &username, &username_n) < 0 ||
	    get_optional_string(entry, "password", &password, &password_n) < 0 ||
	    get_optional_string(entry, "identitytoken", &identity, &identity_n) < 0)
		return -EINVAL;
	if (auth_n > 0) {
		r = decode_auth_field(auth, auth_n, &c);
	} else {
		r = copy_bounded(c.username, sizeof(c.username), username ? username : "",
				 username_n);
		if (r == 0)
			r = copy_bounded(c.secret, sizeof(c.secret), password ? password : "",
					 password_n);
	}
	if (r == 0 && identity_n > 0) {
		r = copy_bounded(c.secret, sizeof(c.secret), identity, identity_n);
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
		return json_load_errno(&err);
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
	} else if (get_optional_string(root, "credsStore", &helper, NULL) < 0) {
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
		return json_load_errno(&err);
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

/* ------------------------------------------------------------------ */
/* Credential helpers                                                   */
/* ------------------------------------------------------------------ */

#define HELPER_PREFIX	"docker-credential-"
#define HELPER_NAME_MAX 64
/* What docker-credential-helpers prints when it has nothing for a server. */
#define HELPER_NOT_FOUND "credentials not found in native keychain"

static bool helper_name_valid(const char *name)
{
	size_t n = strnlen(name, HELPER_NAME_MAX + 1), i;

	if (n == 0 || n > HELPER_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!is_alnum((unsigned char)name[i]) && !strchr("._-", name[i]))
			return false;
	return true;
}

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Start "<prog> get" with stdin and stdout on the given fds, stderr on
 * /dev/null, every other fd closed, default signal dispositions, an empty
 * signal mask, and a process group of its own.
 */
static int spawn_helper(const char *prog, int in_fd, int out_fd, pid_t *ret_pid)
{
	char *const argv[] = {(char *)prog, (char *)"get", NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int r;

	sigemptyset(&none);
	sigfillset(&all);
	r = posix_spawn_file_actions_init(&fa);
	if (r)
		return -r;
	r = posix_spawnattr_init(&attr);
	if (r)
		goto out_fa;
	if ((r = posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO)) ||
	    (r = posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO)) ||
	    (r = posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0)) ||
	    (r = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1)) ||
	    (r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
							 POSIX_SPAWN_SETSIGDEF)) ||
	    (r = posix_spawnattr_setpgroup(&attr, 0)) ||
	    (r = posix_spawnattr_setsigmask(&attr, &none)) ||
	    (r = posix_spawnattr_setsigdefault(&attr, &all)))
		goto out_attr;
	r = posix_spawnp(ret_pid, prog, &fa, &attr, argv, environ);
out_attr:
	posix_spawnattr_destroy(&attr);
out_fa:
	posix_spawn_file_actions_destroy(&fa);
	if (r == ENOENT)
		return -ENOPKG;
	return -r;
}

/* Wait for pid until deadline; -ETIMEDOUT if it is still running then. */
static int wait_until(pid_t pid, int64_t deadline, int *ret_status)
{
	struct timespec nap = {0, 1000000};

	for (;;) {
		pid_t w = waitpid(pid, ret_status, WNOHANG);

		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (monotonic_ms() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&nap, NULL);
		if (nap.tv_nsec < 32000000)
			nap.tv_nsec *= 2;
	}
}

/* Read the helper's stdout to EOF into buf (max bytes), until deadline. */
static int read_until(int fd, int64_t deadline, char *buf, size_t max, size_t *ret_len)
{
	size_t len = 0;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - monotonic_ms();
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return -E2BIG;
	}
	*ret_len = len;
	return 0;
}

/* Parse a helper's {"Username":..., "Secret":...} answer. */
static int parse_helper_output(const char *out, size_t len, struct auth_credentials *ret)
{
	struct auth_credentials c = {0};
	const char *username, *secret;
	size_t username_n, secret_n;
	json_error_t err;
	json_t *root;
	int r = -EINVAL;

	root = json_loadb(out, len, 0, &err);
	if (!root)
		return json_load_errno(&err);
	if (!json_is_object(root) ||
	    get_optional_string(root, "Username", &username, &username_n) < 0 ||
	    get_optional_string(root, "Secret", &secret, &secret_n) < 0)
		goto out;
	/* As docker: the user name "<token>" marks an identity token. */
	if (username && strcmp(username, "<token>") == 0) {
		c.identity_token = true;
		username_n = 0;
	}
	r = copy_bounded(c.username, sizeof(c.username), username_n ? username : "", username_n);
	if (r == 0)
		r = copy_bounded(c.secret, sizeof(c.secret), secret ? secret : "", secret_n);
	if (r == 0 && !c.username[0] && !c.secret[0])
		r = -ENOENT;
	if (r == 0)
		*ret = c;
	auth_credentials_wipe(&c);
out:
	json_decref(root);
	return r;
}

/* Close *fd if open, and mark it closed. */
static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * Move a child's end off 0-2. A daemon that closed its stdio gets those
 * numbers back from socketpair() and pipe2(); kept there, an end could be
 * overwritten by the dup2()s that set up the child's stdio before its own
 * turn, whatever order the kernel handed them out in.
 */
static int move_above_stdio(int *fd)
{
	int moved;

	if (*fd > STDERR_FILENO)
		return 0;
	moved = fcntl(*fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	if (moved < 0)
		return -errno;
	close(*fd);
	*fd = moved;
	return 0;
}

int auth_run_helper(const char *helper, const char *server_url, int timeout_ms,
		    struct auth_credentials *ret)
{
	char prog[sizeof(HELPER_PREFIX) + HELPER_NAME_MAX];
	size_t url_len = strnlen(server_url, AUTH_REALM_MAX + 1), len = 0;
	int64_t deadline = monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int in[2] = {-1, -1}, out[2] = {-1, -1}, status = 0, r;
	char *buf;
	pid_t pid;

	if (!helper_name_valid(helper) || url_len > AUTH_REALM_MAX)
		return -EINVAL;
	snprintf(prog, sizeof(prog), "%s%s", HELPER_PREFIX, helper);
	buf = malloc(AUTH_HELPER_OUTPUT_MAX + 1);
	if (!buf)
		return -ENOMEM;
	/* stdin is a socket so that send(MSG_NOSIGNAL) cannot raise SIGPIPE. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0) {
		r = -errno;
		in[0] = in[1] = -1;
		goto out_close;
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		r = -errno;
		out[0] = out[1] = -1;
		goto out_close;
	}
	r = move_above_stdio(&in[1]);
	if (r == 0)
		r = move_above_stdio(&out[1]);
	if (r == 0)
		r = spawn_helper(prog, in[1], out[1], &pid);
	close_fd(&in[1]);
	close_fd(&out[1]);
	if (r < 0)
		goto out_close;

	/* As docker: the URL alone, no newline. A helper that does not read is fine. */
	if (send(in[0], server_url, url_len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EPIPE) {
		r = -errno;
		goto out_kill;
	}
	close_fd(&in[0]);
	r = read_until(out[0], deadline, buf, AUTH_HELPER_OUTPUT_MAX, &len);
	if (r < 0)
		goto out_kill;
	r = wait_until(pid, deadline, &status);
	if (r == -ETIMEDOUT)
		goto out_kill;
	/* Any other failure: someone else reaped it, and its pid is not ours to signal. */
	if (r < 0)
		goto out_close;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		r = parse_helper_output(buf, len, ret);
	else if (WIFEXITED(status) && memmem(buf, len, HELPER_NOT_FOUND, strlen(HELPER_NOT_FOUND)))
		r = -ENOENT;
	else
		r = -EIO;
	goto out_close;

out_kill:
	/* Its process group is its pid; this reaches what it started, too. */
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
out_close:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
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

/* ------------------------------------------------------------------ */
/* Token cache                                                          */
/* ------------------------------------------------------------------ */

struct auth_cache_entry {
	char registry[AUTH_REGISTRY_MAX + 1];
	char scope[AUTH_SCOPE_MAX + 1];
	char *token; /* malloc()ed, wiped before free; NULL for a free slot */
	size_t token_len;
	int64_t issued_at;
	int64_t expires; /* handed out while now < expires */
};

struct auth_cache {
	pthread_mutex_t lock;
	size_t max;
	struct auth_cache_entry entries[]; /* guarded by lock */
};

int auth_cache_new(size_t max_entries, struct auth_cache **ret)
{
	struct auth_cache *c;

	if (max_entries == 0)
		max_entries = AUTH_CACHE_DEFAULT_ENTRIES;
	if (max_entries > (SIZE_MAX - sizeof(*c)) / sizeof(c->entries[0]))
		return -ENOMEM;
	c = calloc(1, sizeof(*c) + max_entries * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c);
		return -ENOMEM;
	}
	c->max = max_entries;
	*ret = c;
	return 0;
}

static void entry_release(struct auth_cache_entry *e)
{
	if (e->token) {
		explicit_bzero(e->token, e->token_len);
		free(e->token);
	}
	memset(e, 0, sizeof(*e));
}

void auth_cache_free(struct auth_cache *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->max; i++)
		entry_release(&c->entries[i]);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* The entry for (registry, scope), or NULL. Called with c->lock held. */
static struct auth_cache_entry *cache_find(struct auth_cache *c, const char *registry,
					   const char *scope)
{
	size_t i;

	for (i = 0; i < c->max; i++) {
		struct auth_cache_entry *e = &c->entries[i];

		if (e->token && strcmp(e->registry, registry) == 0 && strcmp(e->scope, scope) == 0)
			return e;
	}
	return NULL;
}

/*
 * A slot for a new key: a free one, else an expired one, else the one that
 * expires first. Called with c->lock held.
 */
static struct auth_cache_entry *cache_victim(struct auth_cache *c, int64_t now)
{
	struct auth_cache_entry *victim = &c->entries[0];
	size_t i;

	for (i = 0; i < c->max; i++) {
		struct auth_cache_entry *e = &c->entries[i];

		if (!e->token || e->expires <= now)
			return e;
		if (e->expires < victim->expires)
			victim = e;
	}
	return victim;
}

int auth_cache_get(struct auth_cache *c, const char *registry, const char *scope, int64_t now,
		   struct auth_token *ret)
{
	struct auth_cache_entry *e;
	int r = -ENOENT;

	pthread_mutex_lock(&c->lock);
	e = cache_find(c, registry, scope);
	if (e && e->expires <= now) {
		entry_release(e);
	} else if (e) {
		assert(e->token_len <= AUTH_TOKEN_MAX);
		memcpy(ret->token, e->token, e->token_len + 1);
		ret->expires_in = e->expires - now;
		ret->issued_at = e->issued_at;
		r = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

int auth_cache_put(struct auth_cache *c, const char *registry, const char *scope,
		   const struct auth_token *token, int64_t now)
{
	size_t n = strnlen(token->token, sizeof(token->token));
	int64_t lifetime = token->expires_in, margin;
	struct auth_cache_entry *e;
	char *copy;

	if (strnlen(registry, AUTH_REGISTRY_MAX + 1) > AUTH_REGISTRY_MAX ||
	    strnlen(scope, AUTH_SCOPE_MAX + 1) > AUTH_SCOPE_MAX || n == 0 || n > AUTH_TOKEN_MAX)
		return -EINVAL;
	if (lifetime < 0)
		lifetime = 0;
	if (lifetime > AUTH_TOKEN_MAX_LIFETIME)
		lifetime = AUTH_TOKEN_MAX_LIFETIME;
	margin = lifetime >= 2 * AUTH_CACHE_MARGIN ? AUTH_CACHE_MARGIN : lifetime / 2;
	copy = malloc(n + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, token->token, n);
	copy[n] = '\0';

	pthread_mutex_lock(&c->lock);
	e = cache_find(c, registry, scope);
	if (!e)
		e = cache_victim(c, now);
	entry_release(e);
	/* Both fit: checked above against the same bounds as the buffers. */
	memcpy(e->registry, registry, strlen(registry) + 1);
	memcpy(e->scope, scope, strlen(scope) + 1);
	e->token = copy;
	e->token_len = n;
	e->issued_at = token->issued_at;
	e->expires = now + lifetime - margin;
	pthread_mutex_unlock(&c->lock);
	return 0;
}
