/*
 * node: the inode table. Inode numbers are node addresses (as in libfuse's
 * passthrough_ll); the root is FUSE_ROOT_ID. A node lives while the kernel
 * holds lookups on it: each entry reply counts one, forget takes them away,
 * and the last forget frees it. Static directories are permanent: never freed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "fs_internal.h"
#include "hash.h"

#define INITIAL_BUCKETS 4096

int fs_nodes_init(struct fs *fs)
{
	pthread_mutex_init(&fs->nodes_lock, NULL);
	if (fs_hash_init(&fs->nodes, INITIAL_BUCKETS) < 0)
		return -ENOMEM;
	fs->root.family = FS_FAMILY_CACHE;
	fs->root.kind = FS_ROOT;
	fs->root.permanent = true;
	fs->root.nlookup = 1;
	fs->root.level = -1;
	return 0;
}

/* Give the bytes of a node back to the level that made it. */
static void node_uncount(struct fs *fs, const struct fs_node *node)
{
	if (node->level >= 0)
		atomic_fetch_sub(&fs->levels[node->level].node_bytes, node->cost);
}

static void node_free(struct fs_node *node)
{
	free(node->origin);
	free(node->key);
	free(node);
}

/* Blob and ingest nodes, most of the table, carry no names: a tenth of the size. */
static size_t node_size(enum fs_kind kind)
{
	return kind == FS_BLOB || kind == FS_INGEST_FILE ? FS_NODE_NAMELESS_SIZE
							 : sizeof(struct fs_node);
}

static void drain_one(struct fs_hash_link *link, void *ctx)
{
	node_free(fs_hash_entry(link, struct fs_node, link));
}

void fs_nodes_release(struct fs *fs)
{
	if (fs->nodes.buckets)
		fs_hash_drain(&fs->nodes, drain_one, NULL);
	fs_hash_release(&fs->nodes);
	pthread_mutex_destroy(&fs->nodes_lock);
}

struct fs_node *fs_node_of(struct fs *fs, fuse_ino_t ino)
{
	struct fs_node *node = ino == FUSE_ROOT_ID ? &fs->root : (struct fs_node *)(uintptr_t)ino;

	fs_check(node->family == FS_FAMILY_CACHE, "inode %#" PRIx64 " is not the cache's",
		 (uint64_t)ino);
	return node;
}

fuse_ino_t fs_node_ino(struct fs *fs, const struct fs_node *node)
{
	return node == &fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)node;
}

/* The node under key (whose hash is hash), or NULL. Called with nodes_lock held. */
static struct fs_node *node_find(struct fs *fs, const char *key, size_t hash)
{
	struct fs_hash_link *link;

	for (link = fs_hash_chain(&fs->nodes, hash); link; link = link->next) {
		struct fs_node *node = fs_hash_entry(link, struct fs_node, link);

		if (link->hash == hash && strcmp(node->key, key) == 0)
			return node;
	}
	return NULL;
}

/* A found node: a blob's size may have been learnt since (from a manifest, or the store). */
static void node_found(struct fs_node *node, const struct fs_node *proto)
{
	if (node->kind == FS_BLOB && proto->size >= 0)
		node->size = proto->size;
	node->nlookup++;
}

int fs_node_get(struct fs *fs, pid_t pid, const char *key, const struct fs_node *proto,
		struct fs_node **ret)
{
	struct fs_level *budget;
	struct fs_node *node;
	size_t hash = fs_hash_string(key), cost = node_size(proto->kind) + strlen(key) + 1;
	int level, r = 0;

	pthread_mutex_lock(&fs->nodes_lock);
	node = node_find(fs, key, hash);
	if (node)
		node_found(node, proto);
	pthread_mutex_unlock(&fs->nodes_lock);
	if (node) {
		*ret = node;
		return 0;
	}
	/* a new node: charge it to its maker, found outside the lock (a /proc read) */
	level = pid > 0 && !proto->permanent ? fs_level_of(pid) : -1;
	budget = level >= 0 ? &fs->levels[level] : NULL;
	if (budget && atomic_fetch_add(&budget->node_bytes, (int_fast64_t)cost) + (int64_t)cost >
			      fs->limits.level_node_bytes) {
		atomic_fetch_sub(&budget->node_bytes, (int_fast64_t)cost);
		return -ENFILE;
	}
	pthread_mutex_lock(&fs->nodes_lock);
	node = node_find(fs, key, hash); /* made by another thread meanwhile? */
	if (node) {
		node_found(node, proto);
		if (budget)
			atomic_fetch_sub(&budget->node_bytes, (int_fast64_t)cost);
	} else if (fs->nodes.n >= FS_MAX_NODES) {
		r = -ENFILE;
	} else {
		node = malloc(node_size(proto->kind));
		if (node) {
			memcpy(node, proto, node_size(proto->kind));
			node->family = FS_FAMILY_CACHE;
			node->nlookup = 1;
			node->origin = NULL;
			node->level = (int8_t)level;
			node->cost = (uint32_t)cost;
			node->key = strdup(key);
		}
		if (!node || !node->key) {
			free(node);
			node = NULL;
			r = -ENOMEM;
		} else {
			fs_hash_add(&fs->nodes, &node->link, hash);
		}
	}
	pthread_mutex_unlock(&fs->nodes_lock);
	if (r < 0) {
		if (budget)
			atomic_fetch_sub(&budget->node_bytes, (int_fast64_t)cost);
		return r;
	}
	*ret = node;
	return 0;
}

void fs_node_forget(struct fs *fs, struct fs_node *node, uint64_t n)
{
	if (node == &fs->root)
		return;
	pthread_mutex_lock(&fs->nodes_lock);
	fs_check(node->nlookup >= n, "negative lookup count on %s (%" PRIu64 " - %" PRIu64 ")",
		 node->key, node->nlookup, n);
	node->nlookup -= n;
	if (node->nlookup == 0 && !node->permanent) {
		fs_hash_remove(&fs->nodes, &node->link);
		node_uncount(fs, node);
		node_free(node);
	}
	pthread_mutex_unlock(&fs->nodes_lock);
}

int64_t fs_node_size(struct fs *fs, const struct fs_node *node)
{
	int64_t size;

	pthread_mutex_lock(&fs->nodes_lock);
	size = node->size;
	pthread_mutex_unlock(&fs->nodes_lock);
	return size;
}

void fs_node_set_origin(struct fs *fs, struct fs_node *node, const char *registry,
			const char *repository)
{
	size_t a = strlen(registry) + 1, b = strlen(repository) + 1;
	char *origin = malloc(a + b);

	if (!origin)
		return; /* the blob can still be read once it is in the store */
	memcpy(origin, registry, a);
	memcpy(origin + a, repository, b);
	pthread_mutex_lock(&fs->nodes_lock);
	free(node->origin);
	node->origin = origin;
	pthread_mutex_unlock(&fs->nodes_lock);
}

bool fs_node_origin(struct fs *fs, const struct fs_node *node, char *registry, char *repository)
{
	bool known;

	pthread_mutex_lock(&fs->nodes_lock);
	known = node->origin != NULL;
	if (known) {
		snprintf(registry, FS_NAME_MAX + 1, "%s", node->origin);
		snprintf(repository, FS_NAME_MAX + 1, "%s",
			 node->origin + strlen(node->origin) + 1);
	}
	pthread_mutex_unlock(&fs->nodes_lock);
	return known;
}
