/*
 * registry: the registry client object (see registry.h): its options, the
 * upstream URLs per registry name, the names it serves, the curl share, and
 * its lifecycle. The calls themselves are in registry_api.c, on the engine
 * in registry_request.c.
 */
#include "registry_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "hosts.h"
#include "ref.h"

static void share_lock(CURL *handle, curl_lock_data data, curl_lock_access access, void *ctx)
{
	struct registry *reg = ctx;

	(void)handle;
	(void)access;
	pthread_mutex_lock(&reg->share_locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *ctx)
{
	struct registry *reg = ctx;

	(void)handle;
	pthread_mutex_unlock(&reg->share_locks[data]);
}

/* Check an upstream URL with curl's URL parser: http(s), a host, no path, query or user. */
static int normalize_upstream_url(const char *url, char *buf, size_t size)
{
	struct hosts_url u;
	int r, n;

	r = hosts_parse_url(url, &u);
	if (r < 0)
		return r;
	if (!u.is_base || u.has_user || u.has_fragment) {
		r = -EINVAL;
		goto out;
	}
	n = snprintf(buf, size, "%s", url);
	if (n < 0 || (size_t)n >= size) {
		r = -ENAMETOOLONG;
		goto out;
	}
	while (n > 0 && buf[n - 1] == '/')
		buf[--n] = '\0';
out:
	hosts_url_release(&u);
	return r;
}

int registry_set_upstream(struct registry *reg, const char *host, const char *url)
{
	char normalized[REGISTRY_URL_MAX + 1];
	size_t i;
	int r;

	host = ref_canonical_registry(host);
	if (ref_validate_registry(host) < 0 || strcmp(host, REF_LOCAL_REGISTRY) == 0)
		return -EINVAL;
	r = normalize_upstream_url(url, normalized, sizeof(normalized));
	if (r < 0)
		return r;
	r = registry_serve(reg, host);
	if (r == 0)
		r = hosts_trust_origin(reg->hosts, normalized);
	if (r < 0)
		return r;
	pthread_mutex_lock(&reg->lock);
	for (i = 0; i < reg->n_upstreams; i++)
		if (strcmp(reg->upstreams[i].host, host) == 0)
			break;
	if (i == MAX_UPSTREAMS) {
		r = -ENOSPC;
	} else {
		snprintf(reg->upstreams[i].host, sizeof(reg->upstreams[i].host), "%s", host);
		snprintf(reg->upstreams[i].url, sizeof(reg->upstreams[i].url), "%s", normalized);
		if (i == reg->n_upstreams)
			reg->n_upstreams++;
	}
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int registry_add_upstream_spec(struct registry *reg, const char *spec)
{
	const char *eq = strchr(spec, '=');
	char host[AUTH_REGISTRY_MAX + 1];

	if (!eq || eq == spec || (size_t)(eq - spec) > AUTH_REGISTRY_MAX)
		return -EINVAL;
	memcpy(host, spec, (size_t)(eq - spec));
	host[eq - spec] = '\0';
	return registry_set_upstream(reg, host, eq + 1);
}

int registry_base_url(struct registry *reg, const char *host, char *buf, size_t size)
{
	const char *url = NULL;
	size_t i;
	int n;

	if (!*host || strlen(host) > AUTH_REGISTRY_MAX || strpbrk(host, "/?#@ \t\r\n"))
		return -EINVAL;
	host = ref_canonical_registry(host);
	pthread_mutex_lock(&reg->lock);
	for (i = 0; i < reg->n_upstreams && !url; i++)
		if (strcmp(reg->upstreams[i].host, host) == 0)
			url = reg->upstreams[i].url;
	if (url)
		n = snprintf(buf, size, "%s", url);
	else if (strcmp(host, "docker.io") == 0)
		n = snprintf(buf, size, "%s", REGISTRY_DOCKER_HUB_URL);
	else
		n = snprintf(buf, size, "https://%s", host);
	pthread_mutex_unlock(&reg->lock);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

const char *const registry_public_names[] = {
	"docker.io",
	"ghcr.io",
	"quay.io",
	"mcr.microsoft.com",
	"registry.k8s.io",
	"gcr.io",
	"us.gcr.io",
	"eu.gcr.io",
	"asia.gcr.io",
	"us-docker.pkg.dev",
	"europe-docker.pkg.dev",
	"asia-docker.pkg.dev",
	"public.ecr.aws",
	"registry.gitlab.com",
	"nvcr.io",
	NULL,
};

int registry_serve(struct registry *reg, const char *name)
{
	return hosts_serve(reg->hosts, name);
}

int registry_serve_public(struct registry *reg)
{
	size_t i;
	int r = 0;

	for (i = 0; r == 0 && registry_public_names[i]; i++)
		r = registry_serve(reg, registry_public_names[i]);
	return r;
}

bool registry_serves(struct registry *reg, const char *name)
{
	return hosts_serves(reg->hosts, name);
}

int registry_foreach_served(struct registry *reg, int (*fn)(const char *name, void *ctx), void *ctx)
{
	return hosts_foreach_served(reg->hosts, fn, ctx);
}

int registry_allow_origin(struct registry *reg, const char *url)
{
	return hosts_trust_origin(reg->hosts, url);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void init_curl(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int registry_new(const struct registry_options *opts, struct registry **ret)
{
	pthread_condattr_t cond_attr;
	struct registry *reg;
	int i, r;

	pthread_once(&curl_once, init_curl);
	if (curl_init_result != CURLE_OK)
		return -EIO;
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	if (opts)
		reg->opts = *opts;
	if (reg->opts.connect_timeout_s <= 0)
		reg->opts.connect_timeout_s = 15;
	if (reg->opts.stall_timeout_s <= 0)
		reg->opts.stall_timeout_s = 30;
	if (reg->opts.max_attempts <= 0)
		reg->opts.max_attempts = 5;
	if (reg->opts.backoff_ms <= 0)
		reg->opts.backoff_ms = 500;
	if (reg->opts.max_wait_s <= 0)
		reg->opts.max_wait_s = 60;
	if (reg->opts.deadline_s <= 0)
		reg->opts.deadline_s = REGISTRY_DEADLINE_S;
	if (reg->opts.stall_timeout_s > reg->opts.deadline_s)
		reg->opts.stall_timeout_s = reg->opts.deadline_s;
	if (reg->opts.min_rate <= 0)
		reg->opts.min_rate = 1024;
	pthread_mutex_init(&reg->lock, NULL);
	pthread_mutex_init(&reg->sleep_lock, NULL);
	pthread_condattr_init(&cond_attr);
	pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
	pthread_cond_init(&reg->sleep_cond, &cond_attr);
	pthread_condattr_destroy(&cond_attr);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&reg->share_locks[i], NULL);
	r = auth_cache_new(0, &reg->tokens);
	if (r == 0)
		r = hosts_new(&reg->hosts);
	if (r < 0)
		goto out_free;
	reg->share = curl_share_init();
	if (!reg->share) {
		r = -ENOMEM;
		goto out_free;
	}
	curl_share_setopt(reg->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(reg->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(reg->share, CURLSHOPT_USERDATA, reg);
	curl_share_setopt(reg->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(reg->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(reg->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	*ret = reg;
	return 0;
out_free:
	registry_free(reg);
	return r;
}

void registry_free(struct registry *reg)
{
	int i;

	if (!reg)
		return;
	if (reg->share)
		curl_share_cleanup(reg->share);
	auth_cache_free(reg->tokens);
	hosts_free(reg->hosts);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&reg->share_locks[i]);
	pthread_mutex_destroy(&reg->lock);
	pthread_cond_destroy(&reg->sleep_cond);
	pthread_mutex_destroy(&reg->sleep_lock);
	free(reg);
}
