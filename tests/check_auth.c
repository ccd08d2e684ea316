/*
 * Unit tests for cache/auth: WWW-Authenticate challenges, token URLs and
 * responses, and Basic credentials (check_auth_config.c: config.json,
 * credential helpers, the token cache).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "auth.h"
#include "testutil.h"

#define HUB_CHALLENGE                                                                              \
	"Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","            \
	"scope=\"repository:library/debian:pull\""

/* ---- challenges ---- */

START_TEST(test_challenge_docker_hub)
{
	struct auth_challenge c;

	ck_assert_int_eq(auth_parse_challenge(HUB_CHALLENGE, &c), 0);
	ck_assert_int_eq(c.scheme, AUTH_SCHEME_BEARER);
	ck_assert_str_eq(c.realm, "https://auth.docker.io/token");
	ck_assert_str_eq(c.service, "registry.docker.io");
	ck_assert_str_eq(c.scope, "repository:library/debian:pull");
}
END_TEST

START_TEST(test_challenge_basic)
{
	struct auth_challenge c;

	ck_assert_int_eq(auth_parse_challenge("Basic realm=\"Registry Realm\"", &c), 0);
	ck_assert_int_eq(c.scheme, AUTH_SCHEME_BASIC);
	ck_assert_str_eq(c.realm, "Registry Realm");
	ck_assert_str_eq(c.service, "");
	ck_assert_str_eq(c.scope, "");

	/* Basic needs no parameters at all. */
	ck_assert_int_eq(auth_parse_challenge("Basic", &c), 0);
	ck_assert_int_eq(c.scheme, AUTH_SCHEME_BASIC);
	ck_assert_str_eq(c.realm, "");
}
END_TEST

START_TEST(test_challenge_case_and_whitespace)
{
	struct auth_challenge c;

	ck_assert_int_eq(auth_parse_challenge("  bEaReR   REALM = \"https://t/x\" ,\tService=tok ,"
					      "scope=\"a:b:pull c:d:pull\"  ",
					      &c),
			 0);
	ck_assert_int_eq(c.scheme, AUTH_SCHEME_BEARER);
	ck_assert_str_eq(c.realm, "https://t/x");
	ck_assert_str_eq(c.service, "tok");
	ck_assert_str_eq(c.scope, "a:b:pull c:d:pull");

	/* Empty list elements are allowed by the #rule. */
	ck_assert_int_eq(auth_parse_challenge(", ,Bearer realm=\"https://t\",, service=s,", &c), 0);
	ck_assert_str_eq(c.realm, "https://t");
	ck_assert_str_eq(c.service, "s");
}
END_TEST

START_TEST(test_challenge_multiple)
{
	struct auth_challenge c;

	/* Bearer wins over Basic, whichever comes first. */
	ck_assert_int_eq(auth_parse_challenge("Basic realm=\"basic\", Bearer realm=\"https://t\","
					      "service=\"svc\"",
					      &c),
			 0);
	ck_assert_int_eq(c.scheme, AUTH_SCHEME_BEARER);
	ck_assert_str_eq(c.realm, "https://t");
	ck_assert_str_eq(c.service, "svc");

	ck_assert_int_eq(auth_parse_challenge("Bearer realm=\"https://t\",service=\"svc\", "
					      "Basic realm=\"basic\"",
					      &c),
			 0);
	ck_assert_int_eq(c.scheme, AUTH_SCHEME_BEARER);
	ck_assert_str_eq(c.service, "svc");

	/* Unknown schemes are skipped, with or without a token68 or params. */
	ck_assert_int_eq(auth_parse_challenge("Negotiate, Basic realm=\"r\"", &c), 0);
	ck_assert_int_eq(c.scheme, AUTH_SCHEME_BASIC);
	ck_assert_str_eq(c.realm, "r");
	ck_assert_int_eq(
		auth_parse_challenge("Negotiate YIIabc+/==, Bearer realm=\"https://t\"", &c), 0);
	ck_assert_int_eq(c.scheme, AUTH_SCHEME_BEARER);
	ck_assert_int_eq(auth_parse_challenge("Digest realm=\"d\", nonce=\"n\", qop=auth, "
					      "Bearer realm=\"https://t\", Basic",
					      &c),
			 0);
	ck_assert_int_eq(c.scheme, AUTH_SCHEME_BEARER);
	ck_assert_str_eq(c.realm, "https://t");

	/* The first of two Bearer challenges. */
	ck_assert_int_eq(auth_parse_challenge("Bearer realm=\"https://one\", Bearer "
					      "realm=\"https://two\"",
					      &c),
			 0);
	ck_assert_str_eq(c.realm, "https://one");

	/* A Bearer challenge without a realm is useless; Basic is next best. */
	ck_assert_int_eq(auth_parse_challenge("Bearer, Basic realm=\"r\"", &c), 0);
	ck_assert_int_eq(c.scheme, AUTH_SCHEME_BASIC);
}
END_TEST

START_TEST(test_challenge_escapes)
{
	struct auth_challenge c;

	ck_assert_int_eq(auth_parse_challenge("Bearer realm=\"https://t/\\\"q\\\"\\\\x\","
					      "service=\"a\\,b, c\",scope=\"\"",
					      &c),
			 0);
	ck_assert_str_eq(c.realm, "https://t/\"q\"\\x");
	ck_assert_str_eq(c.service, "a,b, c");
	ck_assert_str_eq(c.scope, "");

	/* obs-text and HTAB inside quotes pass through. */
	ck_assert_int_eq(auth_parse_challenge("Basic realm=\"caf\xc3\xa9\tbar\"", &c), 0);
	ck_assert_str_eq(c.realm, "caf\xc3\xa9\tbar");
}
END_TEST

START_TEST(test_challenge_unknown_params_ignored)
{
	struct auth_challenge c;

	ck_assert_int_eq(auth_parse_challenge("Bearer realm=\"https://t\",error=\"invalid_token\","
					      "error_description=\"The access token expired\","
					      "service=svc,x-extra=1",
					      &c),
			 0);
	ck_assert_str_eq(c.realm, "https://t");
	ck_assert_str_eq(c.service, "svc");
}
END_TEST

START_TEST(test_challenge_unsupported)
{
	struct auth_challenge c;

	ck_assert_int_eq(auth_parse_challenge("Negotiate", &c), -EOPNOTSUPP);
	ck_assert_int_eq(auth_parse_challenge("Digest realm=\"x\", nonce=\"y\"", &c), -EOPNOTSUPP);
}
END_TEST

static const char *const malformed_challenges[] = {
	"",
	"   ",
	",",
	"Bearer realm=\"https://t",			  /* unterminated quote */
	"Bearer realm=\"https://t\\",			  /* backslash at the end */
	"realm=\"https://t\"",				  /* missing scheme */
	"=\"x\"",					  /* no scheme at all */
	"\"Bearer\" realm=\"x\"",			  /* quoted scheme */
	"Bearer realm=\"https://t\" service=\"s\"",	  /* missing comma */
	"Bearer realm=",				  /* missing value */
	"Bearer realm=,service=s",			  /* empty value */
	"Bearer realm=\"https://t\",realm=\"https://u\"", /* repeated parameter */
	"Bearer REALM=\"https://t\",Realm=\"https://u\"", /* repeated, any case */
	"Bearer realm=\"a\x01b\"",			  /* control character */
	"Bearer realm=\"a\nb\"",			  /* newline */
	"Bearer realm=\"a\x7f\"",			  /* DEL */
	"Bearer realm=\"https://t\"x",			  /* junk after a value */
	"Bearer realm=a b",				  /* junk after a token value */
	"Bearer service=\"s\"",				  /* Bearer without realm */
	"Bearer",					  /* Bearer without anything */
	"Bearer, realm=\"https://t\"",			  /* parameter after an empty challenge */
	"Negotiate abc==, realm=\"x\"",			  /* parameter after a token68 */
	"Bearer realm=\"https://t\",@=x",		  /* not a token */
	"Bearer\x01realm=\"x\"",			  /* junk after the scheme */
	"Bearer realm=\"https://t\";service=s",		  /* wrong separator */
};

START_TEST(test_challenge_malformed)
{
	struct auth_challenge c;

	memset(&c, 'x', sizeof(c));
	ck_assert_msg(auth_parse_challenge(malformed_challenges[_i], &c) == -EINVAL,
		      "accepted '%s'", malformed_challenges[_i]);
	/* untouched on failure */
	ck_assert_int_eq(c.realm[0], 'x');
}
END_TEST

START_TEST(test_challenge_too_long)
{
	char *header = malloc(AUTH_HEADER_MAX + 2);
	struct auth_challenge c;
	int n;

	ck_assert_ptr_nonnull(header);
	/* Exactly the limit, made of an ignored parameter, is fine. */
	n = snprintf(header, AUTH_HEADER_MAX + 1, "Basic realm=\"r\", x=\"");
	memset(header + n, 'a', AUTH_HEADER_MAX - n - 1);
	header[AUTH_HEADER_MAX - 1] = '"';
	header[AUTH_HEADER_MAX] = '\0';
	ck_assert_int_eq(auth_parse_challenge(header, &c), 0);
	ck_assert_str_eq(c.realm, "r");
	/* One byte more is not. */
	header[AUTH_HEADER_MAX - 1] = 'a';
	header[AUTH_HEADER_MAX] = '"';
	header[AUTH_HEADER_MAX + 1] = '\0';
	memset(&c, 'x', sizeof(c));
	ck_assert_int_eq(auth_parse_challenge(header, &c), -E2BIG);
	ck_assert_int_eq(c.realm[0], 'x');

	/* A kept value longer than its field. */
	n = snprintf(header, AUTH_HEADER_MAX, "Bearer realm=\"https://t/");
	memset(header + n, 'a', AUTH_REALM_MAX);
	snprintf(header + n + AUTH_REALM_MAX, 8, "\"");
	ck_assert_int_eq(auth_parse_challenge(header, &c), -E2BIG);
	/* The longest realm that fits. */
	n = snprintf(header, AUTH_HEADER_MAX, "Bearer realm=\"https://t/");
	memset(header + n, 'a', AUTH_REALM_MAX - strlen("https://t/"));
	snprintf(header + n + AUTH_REALM_MAX - strlen("https://t/"), 8, "\"");
	ck_assert_int_eq(auth_parse_challenge(header, &c), 0);
	ck_assert_uint_eq(strlen(c.realm), AUTH_REALM_MAX);
	/* Token (unquoted) values are bounded too. */
	n = snprintf(header, AUTH_HEADER_MAX, "Bearer realm=\"https://t\",service=");
	memset(header + n, 's', AUTH_SERVICE_MAX + 1);
	header[n + AUTH_SERVICE_MAX + 1] = '\0';
	ck_assert_int_eq(auth_parse_challenge(header, &c), -E2BIG);
	free(header);
}
END_TEST

/* ---- token URL ---- */

START_TEST(test_token_url)
{
	char url[AUTH_TOKEN_URL_SIZE];
	struct auth_challenge c;

	ck_assert_int_eq(auth_parse_challenge(HUB_CHALLENGE, &c), 0);
	ck_assert_int_eq(auth_token_url(&c, NULL, url, sizeof(url)), 0);
	ck_assert_str_eq(url, "https://auth.docker.io/token?service=registry.docker.io"
			      "&scope=repository%3Alibrary%2Fdebian%3Apull");

	/* An override scope, several scopes, odd bytes. */
	ck_assert_int_eq(auth_token_url(&c, "repository:a b:pull  repository:c/d:pull,push", url,
					sizeof(url)),
			 0);
	ck_assert_str_eq(url, "https://auth.docker.io/token?service=registry.docker.io"
			      "&scope=repository%3Aa&scope=b%3Apull"
			      "&scope=repository%3Ac%2Fd%3Apull%2Cpush");
	ck_assert_int_eq(auth_token_url(&c, "", url, sizeof(url)), 0);
	ck_assert_str_eq(url, "https://auth.docker.io/token?service=registry.docker.io");

	/* A realm with a query already; no service. */
	ck_assert_int_eq(auth_parse_challenge("Bearer realm=\"http://127.0.0.1:5001/t?x=1\","
					      "scope=\"repository:x&y=z:pull\"",
					      &c),
			 0);
	ck_assert_int_eq(auth_token_url(&c, NULL, url, sizeof(url)), 0);
	ck_assert_str_eq(url, "http://127.0.0.1:5001/t?x=1&scope=repository%3Ax%26y%3Dz%3Apull");

	/* Nothing but the realm. */
	ck_assert_int_eq(auth_parse_challenge("Bearer realm=\"https://t/token\"", &c), 0);
	ck_assert_int_eq(auth_token_url(&c, NULL, url, sizeof(url)), 0);
	ck_assert_str_eq(url, "https://t/token");
}
END_TEST

START_TEST(test_token_url_refused)
{
	static const char *const realms[] = {
		"file:///etc/passwd", "ftp://t/", "https://", "https:///path",	"https://t/a b",
		"https://t/#frag",    "/token",	  "",	      "HTTPS://t/\x7f",
	};
	char url[AUTH_TOKEN_URL_SIZE];
	struct auth_challenge c = {.scheme = AUTH_SCHEME_BEARER};
	size_t i;

	for (i = 0; i < sizeof(realms) / sizeof(realms[0]); i++) {
		snprintf(c.realm, sizeof(c.realm), "%s", realms[i]);
		ck_assert_msg(auth_token_url(&c, NULL, url, sizeof(url)) == -EINVAL,
			      "accepted realm '%s'", realms[i]);
	}
	snprintf(c.realm, sizeof(c.realm), "HTTPS://t/");
	ck_assert_int_eq(auth_token_url(&c, NULL, url, sizeof(url)), 0);

	/* Not Bearer. */
	c.scheme = AUTH_SCHEME_BASIC;
	ck_assert_int_eq(auth_token_url(&c, NULL, url, sizeof(url)), -EINVAL);

	/* A buffer too small. */
	c.scheme = AUTH_SCHEME_BEARER;
	snprintf(c.service, sizeof(c.service), "svc");
	ck_assert_int_eq(auth_token_url(&c, NULL, url, 10), -ENAMETOOLONG);
	ck_assert_str_eq(url, "");
	ck_assert_int_eq(auth_token_url(&c, NULL, url, strlen("HTTPS://t/?service=svc")),
			 -ENAMETOOLONG);
	ck_assert_int_eq(auth_token_url(&c, NULL, url, strlen("HTTPS://t/?service=svc") + 1), 0);
}
END_TEST

START_TEST(test_token_url_worst_case_fits)
{
	char url[AUTH_TOKEN_URL_SIZE];
	struct auth_challenge c = {.scheme = AUTH_SCHEME_BEARER};
	size_t i;

	memcpy(c.realm, "https://t/", 10);
	memset(c.realm + 10, 'r', AUTH_REALM_MAX - 10);
	memset(c.service, '%', AUTH_SERVICE_MAX);
	/* As many one-byte scopes as fit, each needing escapes. */
	for (i = 0; i < AUTH_SCOPE_MAX; i++)
		c.scope[i] = i % 2 ? ' ' : '%';
	ck_assert_int_eq(auth_token_url(&c, NULL, url, sizeof(url)), 0);
	/* An over-long override scope is refused. */
	{
		char scope[AUTH_SCOPE_MAX + 2];

		memset(scope, 'a', sizeof(scope) - 1);
		scope[sizeof(scope) - 1] = '\0';
		ck_assert_int_eq(auth_token_url(&c, scope, url, sizeof(url)), -EINVAL);
	}
}
END_TEST

/* ---- token responses ---- */

static int parse_token(const char *json, struct auth_token *t)
{
	return auth_parse_token_response(json, strlen(json), t);
}

START_TEST(test_token_response)
{
	struct auth_token t;

	ck_assert_int_eq(parse_token("{\"token\":\"abc.def-ghi_\",\"expires_in\":300,"
				     "\"issued_at\":\"2009-11-10T23:00:00Z\"}",
				     &t),
			 0);
	ck_assert_str_eq(t.token, "abc.def-ghi_");
	ck_assert_int_eq(t.expires_in, 300);
	ck_assert_int_eq(t.issued_at, 1257894000);

	/* access_token alone, and winning over token. */
	ck_assert_int_eq(parse_token("{\"access_token\":\"oauth\"}", &t), 0);
	ck_assert_str_eq(t.token, "oauth");
	ck_assert_int_eq(t.expires_in, AUTH_TOKEN_DEFAULT_LIFETIME);
	ck_assert_int_eq(t.issued_at, 0);
	ck_assert_int_eq(parse_token("{\"token\":\"t\",\"access_token\":\"a\"}", &t), 0);
	ck_assert_str_eq(t.token, "a");
	ck_assert_int_eq(parse_token("{\"token\":\"t\",\"access_token\":\"\"}", &t), 0);
	ck_assert_str_eq(t.token, "t");
	ck_assert_int_eq(parse_token("{\"token\":\"t\",\"access_token\":null,"
				     "\"expires_in\":null,\"issued_at\":null}",
				     &t),
			 0);
	ck_assert_str_eq(t.token, "t");

	/* Lifetimes: floor, ceiling. */
	ck_assert_int_eq(parse_token("{\"token\":\"t\",\"expires_in\":10}", &t), 0);
	ck_assert_int_eq(t.expires_in, AUTH_TOKEN_DEFAULT_LIFETIME);
	ck_assert_int_eq(parse_token("{\"token\":\"t\",\"expires_in\":-5}", &t), 0);
	ck_assert_int_eq(t.expires_in, AUTH_TOKEN_DEFAULT_LIFETIME);
	ck_assert_int_eq(parse_token("{\"token\":\"t\",\"expires_in\":9223372036854775807}", &t),
			 0);
	ck_assert_int_eq(t.expires_in, AUTH_TOKEN_MAX_LIFETIME);

	/* issued_at with fractions and offsets; leap day. */
	ck_assert_int_eq(parse_token("{\"token\":\"t\","
				     "\"issued_at\":\"2009-11-10T23:00:00.123456789+01:00\"}",
				     &t),
			 0);
	ck_assert_int_eq(t.issued_at, 1257894000 - 3600);
	ck_assert_int_eq(
		parse_token("{\"token\":\"t\",\"issued_at\":\"2024-02-29t00:00:00-00:30\"}", &t),
		0);
	ck_assert_int_eq(t.issued_at, 1709164800 + 1800);
	ck_assert_int_eq(
		parse_token("{\"token\":\"t\",\"issued_at\":\"1970-01-01T00:00:00Z\"}", &t), 0);
	ck_assert_int_eq(t.issued_at, 0);

	/* Extra members (refresh_token, scope) are ignored. */
	ck_assert_int_eq(parse_token("{\"token\":\"t\",\"refresh_token\":\"r\",\"scope\":[1]}", &t),
			 0);

	/* Not NUL-terminated: only len bytes count. */
	ck_assert_int_eq(auth_parse_token_response("{\"token\":\"xy\"}garbage", 14, &t), 0);
	ck_assert_str_eq(t.token, "xy");

	auth_token_wipe(&t);
	ck_assert_int_eq(t.token[0], 0);
	ck_assert_int_eq(t.expires_in, 0);
}
END_TEST

static const char *const malformed_tokens[] = {
	"",
	"not json",
	"[\"token\"]",
	"\"token\"",
	"{}",
	"{\"token\":\"\"}",
	"{\"token\":42}",
	"{\"token\":[\"a\"]}",
	"{\"token\":\"a\",\"access_token\":7}",
	"{\"token\":\"has space\"}",
	"{\"token\":\"line\\r\\nX-Injected: 1\"}",
	"{\"token\":\"nul\\u0000byte\"}",
	"{\"token\":\"caf\\u00e9\"}",
	"{\"token\":\"a\",\"expires_in\":\"300\"}",
	"{\"token\":\"a\",\"expires_in\":1.5}",
	"{\"token\":\"a\",\"issued_at\":\"yesterday\"}",
	"{\"token\":\"a\",\"issued_at\":12345}",
	"{\"token\":\"a\",\"issued_at\":\"2009-02-30T00:00:00Z\"}",
	"{\"token\":\"a\",\"issued_at\":\"2009-11-10T24:00:00Z\"}",
	"{\"token\":\"a\",\"issued_at\":\"2009-11-10T23:00:00\"}",
	"{\"token\":\"a\",\"issued_at\":\"2009-11-10T23:00:00.Z\"}",
	"{\"token\":\"a\",\"issued_at\":\"2009-11-10T23:00:00+0100\"}",
	"{\"token\":\"a\",\"issued_at\":\"2009-11-10T23:00:00Zjunk\"}",
	"{\"token\":\"a\",\"issued_at\":\"+009-11-10T23:00:00Z\"}",
	"{\"token\":\"a\",\"token\":\"b\"}",
	"{\"token\":\"a\"} {}",
	"{\"token\":\"a\"",
};

START_TEST(test_token_response_malformed)
{
	struct auth_token t;

	memset(&t, 'x', sizeof(t));
	ck_assert_msg(parse_token(malformed_tokens[_i], &t) == -EINVAL, "accepted '%s'",
		      malformed_tokens[_i]);
	ck_assert_int_eq(t.token[0], 'x');
}
END_TEST

START_TEST(test_token_response_limits)
{
	size_t size = AUTH_TOKEN_RESPONSE_MAX + 64;
	char *json = malloc(size);
	struct auth_token *t = malloc(sizeof(*t));
	int n;

	ck_assert_ptr_nonnull(json);
	ck_assert_ptr_nonnull(t);
	/* The longest token. */
	n = snprintf(json, size, "{\"token\":\"");
	memset(json + n, 'a', AUTH_TOKEN_MAX);
	snprintf(json + n + AUTH_TOKEN_MAX, size - n - AUTH_TOKEN_MAX, "\"}");
	ck_assert_int_eq(parse_token(json, t), 0);
	ck_assert_uint_eq(strlen(t->token), AUTH_TOKEN_MAX);
	/* One more. */
	memset(json + n, 'a', AUTH_TOKEN_MAX + 1);
	snprintf(json + n + AUTH_TOKEN_MAX + 1, size - n - AUTH_TOKEN_MAX - 1, "\"}");
	ck_assert_int_eq(parse_token(json, t), -E2BIG);
	/* A body past the limit, whatever it holds. */
	memset(json, ' ', size);
	memcpy(json, "{\"token\":\"a\"}", 13);
	ck_assert_int_eq(auth_parse_token_response(json, AUTH_TOKEN_RESPONSE_MAX, t), 0);
	ck_assert_int_eq(auth_parse_token_response(json, AUTH_TOKEN_RESPONSE_MAX + 1, t), -E2BIG);
	free(json);
	free(t);
}
END_TEST

/* ---- basic encoding ---- */

START_TEST(test_basic_encode)
{
	struct auth_credentials c = {0};
	char buf[AUTH_BASIC_SIZE];

	snprintf(c.username, sizeof(c.username), "user");
	snprintf(c.secret, sizeof(c.secret), "pass");
	ck_assert_int_eq(auth_basic_encode(&c, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "dXNlcjpwYXNz");
	ck_assert_int_eq(auth_basic_encode(&c, buf, 12), -ENAMETOOLONG);
	ck_assert_int_eq(auth_basic_encode(&c, buf, 13), 0);
	ck_assert_str_eq(buf, "dXNlcjpwYXNz");

	/* The longest credentials fit AUTH_BASIC_SIZE. */
	memset(c.username, 'u', AUTH_USERNAME_MAX);
	memset(c.secret, 's', AUTH_SECRET_MAX);
	ck_assert_int_eq(auth_basic_encode(&c, buf, sizeof(buf)), 0);
	ck_assert_uint_eq(strlen(buf), AUTH_BASIC_SIZE - 1);

	auth_credentials_wipe(&c);
	ck_assert_int_eq(c.username[0], 0);
	ck_assert_int_eq(c.secret[AUTH_SECRET_MAX - 1], 0);
}
END_TEST

static Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_challenge_docker_hub);
	tcase_add_test(tc, test_challenge_basic);
	tcase_add_test(tc, test_challenge_case_and_whitespace);
	tcase_add_test(tc, test_challenge_multiple);
	tcase_add_test(tc, test_challenge_escapes);
	tcase_add_test(tc, test_challenge_unknown_params_ignored);
	tcase_add_test(tc, test_challenge_unsupported);
	tcase_add_loop_test(tc, test_challenge_malformed, 0,
			    (int)(sizeof(malformed_challenges) / sizeof(malformed_challenges[0])));
	tcase_add_test(tc, test_challenge_too_long);
	tcase_add_test(tc, test_token_url);
	tcase_add_test(tc, test_token_url_refused);
	tcase_add_test(tc, test_token_url_worst_case_fits);
	tcase_add_test(tc, test_token_response);
	tcase_add_loop_test(tc, test_token_response_malformed, 0,
			    (int)(sizeof(malformed_tokens) / sizeof(malformed_tokens[0])));
	tcase_add_test(tc, test_token_response_limits);
	tcase_add_test(tc, test_basic_encode);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(auth_suite());
}
