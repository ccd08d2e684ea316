/*
 * registries: which registries the mount serves, registry/<host>/ on the
 * mount, and .dindfs/registries.
 *
 * The daemon contacts only the registries it serves: the hosts of
 * --upstream, of --registry, of the keys of the host's docker config.json
 * ("auths" and "credHelpers") and the public ones built in
 * (registry_public_names). The list is made once, at start, and does not
 * change while the mount runs. registry/<host> for any other host is
 * ENOENT, before anything is asked of the index or of the network, with one
 * log line that names the registry and --registry. Docker Hub's aliases,
 * registry/index.docker.io and registry/registry-1.docker.io, are symlinks
 * to docker.io, so that they go exactly where docker.io goes.
 *
 * .dindfs/registries publishes the list, one name a line (docker.io's
 * aliases included), so that each level routes exactly these names to its
 * mirror.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "fs_internal.h"
#include "ref.h"

/* A config.json key's host: served if it is a registry name, else said once. */
static int serve_config_host(const char *host, void *ctx)
{
	struct fs *fs = ctx;
	int r = registry_serve(fs->registry, host);

	if (r == -EINVAL) {
		fs_log(fs, "docker config: '%s' is not a registry name; not served", host);
		return 0;
	}
	return r;
}

int fs_registries_init(struct fs *fs, char *why, size_t why_size)
{
	const struct fs_config *cfg = fs->cfg;
	char path[4096];
	size_t i;
	int r;

	r = registry_serve_public(fs->registry);
	for (i = 0; r == 0 && i < cfg->n_registries; i++) {
		r = registry_serve(fs->registry, cfg->registries[i]);
		if (r < 0) {
			snprintf(why, why_size, "cannot serve --registry '%s': %s",
				 cfg->registries[i],
				 r == -EINVAL ? "not a registry name" : strerror(-r));
			return r;
		}
	}
	for (i = 0; r == 0 && i < cfg->n_allow_origins; i++) {
		r = registry_allow_origin(fs->registry, cfg->allow_origins[i]);
		if (r < 0) {
			snprintf(why, why_size, "cannot allow origin '%s': %s",
				 cfg->allow_origins[i],
				 r == -EINVAL ? "not a base URL" : strerror(-r));
			return r;
		}
	}
	if (r == 0)
		r = auth_lookup_config_hosts(serve_config_host, fs);
	if (r < 0) {
		if (auth_config_path(path, sizeof(path)) < 0)
			snprintf(path, sizeof(path), "config.json");
		snprintf(why, why_size, "cannot read the registries in docker config '%s': %s",
			 path, strerror(-r));
	}
	return r;
}

struct text {
	char *data;
	size_t len, cap;
};

static int add_line(const char *name, void *ctx)
{
	struct text *t = ctx;
	size_t n = strlen(name);

	if (t->len + n + 1 > t->cap) {
		size_t cap = (t->cap ? t->cap * 2 : 512) + n + 1;
		char *data = realloc(t->data, cap);

		if (!data)
			return -ENOMEM;
		t->data = data;
		t->cap = cap;
	}
	memcpy(t->data + t->len, name, n);
	t->data[t->len + n] = '\n';
	t->len += n + 1;
	return 0;
}

int fs_registries_text(struct fs *fs, char **ret, size_t *ret_len)
{
	struct text t = {0};
	int r;

	r = registry_foreach_served(fs->registry, add_line, &t);
	if (r < 0) {
		free(t.data);
		return r;
	}
	*ret = t.data;
	*ret_len = t.len;
	return 0;
}

static bool is_hub_alias(const char *name)
{
	return strcmp(name, REF_DEFAULT_REGISTRY) != 0 &&
	       strcmp(ref_canonical_registry(name), REF_DEFAULT_REGISTRY) == 0;
}

int fs_registries_lookup(struct fs *fs, const char *name, struct fs_node *proto, char *key,
			 size_t key_size)
{
	char message[REGISTRY_URL_MAX];
	bool alias = is_hub_alias(name);

	if (!alias && ref_validate_registry(name) < 0)
		return -ENOENT;
	if (strcmp(name, REF_LOCAL_REGISTRY) != 0 && !registry_serves(fs->registry, name)) {
		snprintf(
			message, sizeof(message),
			"%s: not a registry this mount serves (dindfs mount --registry %s adds it)",
			name, name);
		fs_log_upstream(fs, message);
		return -ENOENT;
	}
	memset(proto, 0, sizeof(*proto));
	/* an alias is a symlink to docker.io: one directory, whichever name reached it */
	proto->kind = alias ? FS_ALIAS : FS_REPO_DIR;
	snprintf(proto->registry, sizeof(proto->registry), "%s", ref_canonical_registry(name));
	return snprintf(key, key_size, "%s:%s/", alias ? "a" : "r", name) < (int)key_size
		       ? 0
		       : -ENAMETOOLONG;
}
