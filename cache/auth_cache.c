/*
 * auth_cache: a bounded, thread-safe cache of Bearer tokens keyed by
 * (registry, scope) (see auth.h). Tokens are wiped when they leave it.
 */
#include "auth.h"
#include "auth_internal.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
