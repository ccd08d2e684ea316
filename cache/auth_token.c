/*
 * auth_token: the token request URL built from a challenge, and the token
 * server's JSON answer (see auth.h). JSON goes through jansson.
 */
#include "auth.h"
#include "auth_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

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

		if (auth_is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
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
		return auth_json_errno(&err);
	r = -EINVAL;
	if (!json_is_object(root))
		goto out;
	if (auth_json_string(root, "token", &token, &n) < 0 ||
	    auth_json_string(root, "access_token", &access_token, &access_n) < 0 ||
	    auth_json_string(root, "issued_at", &issued, NULL) < 0)
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
