/*
 * registry_auth: the auth flow of a request: a cached Bearer token or Basic
 * up front, and the answer to a 401 (a token from the challenge's realm, or
 * Basic from the docker config's credentials).
 */
#include "registry_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "auth.h"

static bool host_wants_basic(struct registry *reg, const char *host)
{
	bool found = false;
	size_t i;

	pthread_mutex_lock(&reg->lock);
	for (i = 0; i < reg->n_basic_hosts && !found; i++)
		found = strcmp(reg->basic_hosts[i], host) == 0;
	pthread_mutex_unlock(&reg->lock);
	return found;
}

static void remember_basic_host(struct registry *reg, const char *host)
{
	if (host_wants_basic(reg, host) || strlen(host) > AUTH_REGISTRY_MAX)
		return;
	pthread_mutex_lock(&reg->lock);
	if (reg->n_basic_hosts < MAX_BASIC_HOSTS)
		snprintf(reg->basic_hosts[reg->n_basic_hosts++], AUTH_REGISTRY_MAX + 1, "%s", host);
	pthread_mutex_unlock(&reg->lock);
}

static void pull_scope(const struct request *req, char *buf, size_t size)
{
	if (req->repository)
		snprintf(buf, size, "repository:%s:pull", req->repository);
	else
		buf[0] = '\0';
}

/* Before the first try: a cached token, or Basic for a registry that wants it. */
void registry_auth_apply_known(struct request *req)
{
	char scope[AUTH_SCOPE_MAX + 1];

	if (req->no_auth_flow)
		return;
	pull_scope(req, scope, sizeof(scope));
	if (auth_cache_get(req->reg->tokens, req->host, scope, time(NULL), &req->token) == 0) {
		req->auth = AUTH_SCHEME_BEARER;
	} else if (host_wants_basic(req->reg, req->host) &&
		   auth_lookup_credentials(req->host, &req->creds) == 0) {
		req->auth = AUTH_SCHEME_BASIC;
	}
}

/* Get a Bearer token from the challenge's realm for this request's scope. */
static int fetch_token(struct request *req, const struct auth_challenge *ch)
{
	struct request *tok = calloc(1, sizeof(*tok));
	char scope[AUTH_SCOPE_MAX + 1], *form = NULL, *escaped = NULL;
	bool have_creds;
	int r;

	if (!tok)
		return -ENOMEM;
	pull_scope(req, scope, sizeof(scope));
	tok->reg = req->reg;
	tok->host = req->host;
	tok->sink = SINK_BUFFER;
	tok->body.max = AUTH_TOKEN_RESPONSE_MAX;
	tok->no_auth_flow = true;
	memcpy(tok->own_origin, req->own_origin, sizeof(tok->own_origin));
	tok->err = req->err;
	tok->curl = req->curl;
	tok->deadline_ms = req->deadline_ms; /* the token is part of the call */
	tok->stop = req->stop;
	r = auth_token_url(ch, *scope ? scope : NULL, tok->url, sizeof(tok->url));
	if (r < 0) {
		registry_request_error(req, "%s: cannot use its token server '%s'", req->host,
				       ch->realm);
		goto out;
	}
	have_creds = auth_lookup_credentials(req->host, &tok->creds) == 0;
	if (have_creds && tok->creds.identity_token) {
		/* an OAuth refresh token is exchanged with a POST (docker does the same) */
		escaped = curl_easy_escape(req->curl, tok->creds.secret, 0);
		if (!escaped || asprintf(&form,
					 "grant_type=refresh_token&client_id=dindfs"
					 "&refresh_token=%s",
					 escaped) < 0) {
			r = -ENOMEM;
			goto out;
		}
		tok->post = form;
	} else if (have_creds) {
		tok->auth = AUTH_SCHEME_BASIC;
	}
	r = registry_request_run(tok);
	if (r == -EACCES) {
		registry_request_error(
			req, "%s: %s", req->host,
			have_creds ? "the token server refused our credentials"
				   : "authentication required, and no credentials for it in "
				     "the docker config");
		goto out;
	}
	if (r < 0)
		goto out;
	r = auth_parse_token_response(tok->body.data, tok->body.len, &req->token);
	if (r < 0) {
		registry_request_error(req, "%s: the token server's answer is not a token",
				       req->host);
		r = -EPROTO;
		goto out;
	}
	req->auth = AUTH_SCHEME_BEARER;
	auth_cache_put(req->reg->tokens, req->host, scope, &req->token, time(NULL));
out:
	if (escaped)
		curl_free(escaped);
	free(form);
	registry_buffer_free(&tok->body);
	auth_credentials_wipe(&tok->creds);
	auth_token_wipe(&tok->token);
	free(tok);
	return r;
}

/* Answer a 401: read the challenge and get what it asks for. */
int registry_auth_answer(struct request *req)
{
	struct auth_challenge ch;
	int r;

	if (req->hdr.www_authenticate_too_long)
		r = -E2BIG;
	else
		r = auth_parse_challenge(req->hdr.www_authenticate, &ch);
	if (r < 0) {
		registry_request_error(req, "%s: answered 401 with a challenge we cannot read",
				       req->host);
		return -EACCES;
	}
	if (ch.scheme == AUTH_SCHEME_BEARER)
		return fetch_token(req, &ch);
	if (auth_lookup_credentials(req->host, &req->creds) < 0) {
		registry_request_error(
			req,
			"%s: authentication required, and no credentials for it in the "
			"docker config",
			req->host);
		return -EACCES;
	}
	remember_basic_host(req->reg, req->host);
	req->auth = AUTH_SCHEME_BASIC;
	return 0;
}
