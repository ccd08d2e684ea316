/*
 * auth_challenge: the WWW-Authenticate parser (see auth.h).
 *
 * A hand-written scanner over RFC 7235's grammar, which is small and which
 * no library here implements.
 */
#include "auth.h"
#include "auth_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* RFC 7230 tchar. */
static bool is_tchar(unsigned char c)
{
	return auth_is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 7235 token68, without its trailing '='s. */
static bool is_token68_char(unsigned char c)
{
	return auth_is_alnum(c) || (c && strchr("-._~+/", c));
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
