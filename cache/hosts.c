/*
 * hosts: the served names, the trusted origins and the address check (see
 * hosts.h). URLs are taken apart by curl's URL parser, addresses by
 * inet_pton; two small arrays under one mutex hold the lists, which are
 * filled at start and only read afterwards.
 */
#include "hosts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ref.h"

struct hosts {
	pthread_mutex_t lock; /* guards everything below */
	char served[HOSTS_SERVED_MAX][REF_NAME_MAX + 1];
	size_t n_served;
	char origins[HOSTS_ORIGINS_MAX][HOSTS_ORIGIN_MAX + 1];
	size_t n_origins;
};

int hosts_new(struct hosts **ret)
{
	struct hosts *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	*ret = h;
	return 0;
}

void hosts_free(struct hosts *h)
{
	if (!h)
		return;
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* ---- served names -------------------------------------------------------- */

static bool served_locked(struct hosts *h, const char *canonical)
{
	size_t i;

	for (i = 0; i < h->n_served; i++)
		if (strcmp(h->served[i], canonical) == 0)
			return true;
	return false;
}

int hosts_serve(struct hosts *h, const char *name)
{
	int r = 0;

	name = ref_canonical_registry(name);
	if (ref_validate_registry(name) < 0 || strcmp(name, REF_LOCAL_REGISTRY) == 0)
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	if (!served_locked(h, name)) {
		if (h->n_served == HOSTS_SERVED_MAX)
			r = -ENOSPC;
		else
			snprintf(h->served[h->n_served++], REF_NAME_MAX + 1, "%s", name);
	}
	pthread_mutex_unlock(&h->lock);
	return r;
}

bool hosts_serves(struct hosts *h, const char *name)
{
	bool found;

	name = ref_canonical_registry(name);
	pthread_mutex_lock(&h->lock);
	found = served_locked(h, name);
	pthread_mutex_unlock(&h->lock);
	return found;
}

int hosts_foreach_served(struct hosts *h, int (*fn)(const char *name, void *ctx), void *ctx)
{
	size_t i, j;
	int r = 0;

	pthread_mutex_lock(&h->lock);
	for (i = 0; r == 0 && i < h->n_served; i++) {
		r = fn(h->served[i], ctx);
		if (strcmp(h->served[i], REF_DEFAULT_REGISTRY) != 0)
			continue;
		for (j = 0; r == 0 && j < REF_N_DOCKER_HUB_ALIASES; j++)
			r = fn(ref_docker_hub_aliases[j], ctx);
	}
	pthread_mutex_unlock(&h->lock);
	return r;
}

/* ---- origins ------------------------------------------------------------- */

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* The origin of url; with base_only, url must also have no path beyond "/" nor query. */
int hosts_parse_url(const char *url, struct hosts_url *ret)
{
	char *user = NULL, *path = NULL, *query = NULL, *fragment = NULL;
	struct hosts_url u = {0};
	CURLU *h = curl_url();
	int r = -EINVAL;

	*ret = u;
	if (!h)
		return -ENOMEM;
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	curl_url_get(h, CURLUPART_SCHEME, &u.scheme, 0);
	curl_url_get(h, CURLUPART_HOST, &u.host, 0);
	curl_url_get(h, CURLUPART_PORT, &u.port, CURLU_DEFAULT_PORT);
	curl_url_get(h, CURLUPART_USER, &user, 0);
	curl_url_get(h, CURLUPART_PATH, &path, 0);
	curl_url_get(h, CURLUPART_QUERY, &query, 0);
	curl_url_get(h, CURLUPART_FRAGMENT, &fragment, 0);
	if (!u.scheme || !u.host || !u.port || !*u.host)
		goto out;
	lower(u.scheme);
	lower(u.host);
	if (strcmp(u.scheme, "http") != 0 && strcmp(u.scheme, "https") != 0)
		goto out;
	u.has_user = user != NULL;
	u.has_fragment = fragment != NULL;
	u.is_base = (!path || strcmp(path, "/") == 0) && !query;
	*ret = u;
	r = 0;
out:
	if (r < 0)
		hosts_url_release(&u);
	curl_free(user);
	curl_free(path);
	curl_free(query);
	curl_free(fragment);
	curl_url_cleanup(h);
	return r;
}

void hosts_url_release(struct hosts_url *u)
{
	curl_free(u->scheme);
	curl_free(u->host);
	curl_free(u->port);
	u->scheme = u->host = u->port = NULL;
}

static int origin_of(const char *url, bool base_only, char *buf, size_t size)
{
	struct hosts_url u;
	int r, n;

	r = hosts_parse_url(url, &u);
	if (r < 0)
		return r;
	if (u.has_user || (base_only && !u.is_base)) {
		r = -EINVAL;
		goto out;
	}
	n = snprintf(buf, size, "%s://%s:%s", u.scheme, u.host, u.port);
	r = n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
out:
	hosts_url_release(&u);
	return r;
}

int hosts_origin(const char *url, char *buf, size_t size)
{
	return origin_of(url, false, buf, size);
}

int hosts_base_origin(const char *url, char *buf, size_t size)
{
	return origin_of(url, true, buf, size);
}

static bool trusted_locked(struct hosts *h, const char *origin)
{
	size_t i;

	for (i = 0; i < h->n_origins; i++)
		if (strcmp(h->origins[i], origin) == 0)
			return true;
	return false;
}

int hosts_trust_origin(struct hosts *h, const char *url)
{
	char origin[HOSTS_ORIGIN_MAX + 1];
	int r = hosts_base_origin(url, origin, sizeof(origin));

	if (r < 0)
		return r == -ENAMETOOLONG ? -EINVAL : r;
	pthread_mutex_lock(&h->lock);
	if (!trusted_locked(h, origin)) {
		if (h->n_origins == HOSTS_ORIGINS_MAX)
			r = -ENOSPC;
		else
			snprintf(h->origins[h->n_origins++], HOSTS_ORIGIN_MAX + 1, "%s", origin);
	}
	pthread_mutex_unlock(&h->lock);
	return r;
}

bool hosts_origin_trusted(struct hosts *h, const char *origin)
{
	bool found;

	pthread_mutex_lock(&h->lock);
	found = trusted_locked(h, origin);
	pthread_mutex_unlock(&h->lock);
	return found;
}

/* ---- addresses ----------------------------------------------------------- */

/* a.b.c.d in host order, against prefix/len. */
static bool in4(uint32_t a, uint32_t prefix, int len)
{
	uint32_t mask = len == 0 ? 0 : 0xffffffffu << (32 - len);

	return (a & mask) == (prefix & mask);
}

static bool ipv4_is_public(uint32_t a)
{
	static const struct {
		uint32_t prefix;
		int len;
	} private4[] = {
		{0x00000000u, 8},  /* 0.0.0.0/8: this network, 0.0.0.0 */
		{0x0a000000u, 8},  /* 10/8 */
		{0x64400000u, 10}, /* 100.64/10: carrier-grade NAT */
		{0x7f000000u, 8},  /* 127/8: loopback */
		{0xa9fe0000u, 16}, /* 169.254/16: link-local, cloud metadata */
		{0xac100000u, 12}, /* 172.16/12 */
		{0xc0000000u, 24}, /* 192.0.0/24: IETF protocol assignments */
		{0xc0a80000u, 16}, /* 192.168/16 */
		{0xc6120000u, 15}, /* 198.18/15: benchmarking */
		{0xe0000000u, 4},  /* 224/4: multicast */
		{0xf0000000u, 4},  /* 240/4: reserved, 255.255.255.255 */
	};
	size_t i;

	for (i = 0; i < sizeof(private4) / sizeof(private4[0]); i++)
		if (in4(a, private4[i].prefix, private4[i].len))
			return false;
	return true;
}

static uint32_t v4_at(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool ipv6_is_public(const unsigned char *a)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const unsigned char compat[12] = {0};
	static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b};

	/* an IPv4 address inside: judged as that address (:: and ::1 are in compat) */
	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0 || memcmp(a, compat, 12) == 0)
		return ipv4_is_public(v4_at(a + 12));
	if ((a[0] & 0xfe) == 0xfc) /* fc00::/7: unique local */
		return false;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10: link-local */
		return false;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) /* fec0::/10: site-local, deprecated */
		return false;
	if (a[0] == 0xff) /* multicast */
		return false;
	if (a[0] == 0x20 && a[1] == 0x02) /* 2002::/16, 6to4: the IPv4 address it wraps */
		return ipv4_is_public(v4_at(a + 2));
	return true;
}

bool hosts_address_is_public(const char *ip)
{
	unsigned char a[16];

	if (!ip)
		return false;
	if (inet_pton(AF_INET, ip, a) == 1)
		return ipv4_is_public(v4_at(a));
	if (inet_pton(AF_INET6, ip, a) == 1)
		return ipv6_is_public(a);
	return false;
}

bool hosts_may_follow(struct hosts *h, const char *url, const char *ip, const char *own_origin)
{
	char origin[HOSTS_ORIGIN_MAX + 1];

	if (hosts_origin(url, origin, sizeof(origin)) < 0)
		return false;
	if ((own_origin && strcmp(origin, own_origin) == 0) || hosts_origin_trusted(h, origin))
		return true;
	return strncmp(origin, "https://", 8) == 0 && hosts_address_is_public(ip);
}
