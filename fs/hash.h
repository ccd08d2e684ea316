/*
 * hash: the chained hash table of both inode tables (node.c, ws_inode.c).
 *
 * A link is embedded in each entry and keeps the entry's hash, so the
 * table doubles its buckets when chains get long without asking the
 * caller to hash again; a table that cannot grow (no memory) is slower,
 * not wrong. The caller locks, finds (walking fs_hash_chain() and
 * comparing its own keys) and owns the entries.
 */
#ifndef DINDFS_HASH_H
#define DINDFS_HASH_H

#include <stddef.h>

struct fs_hash_link {
	struct fs_hash_link *next;
	size_t hash;
};

struct fs_hash {
	struct fs_hash_link **buckets;
	size_t n_buckets;
	size_t n; /* links in the table */
};

/* The entry of type that link is the member field of. */
#define fs_hash_entry(link, type, member) ((type *)((char *)(link)-offsetof(type, member)))

/* An empty table of n_buckets (a power of two). Returns 0 or -ENOMEM. */
int fs_hash_init(struct fs_hash *t, size_t n_buckets);
/* Free the buckets (not the entries: fs_hash_drain() them first). */
void fs_hash_release(struct fs_hash *t);

/* The first link whose hash may be hash; follow ->next and compare ->hash. */
static inline struct fs_hash_link *fs_hash_chain(const struct fs_hash *t, size_t hash)
{
	return t->buckets[hash & (t->n_buckets - 1)];
}

void fs_hash_add(struct fs_hash *t, struct fs_hash_link *link, size_t hash);
/* Take link out of the table; it must be in it. */
void fs_hash_remove(struct fs_hash *t, struct fs_hash_link *link);
/* Empty the table, calling fn on each link it held (fn may free its entry). */
void fs_hash_drain(struct fs_hash *t, void (*fn)(struct fs_hash_link *link, void *ctx), void *ctx);

/* FNV-1a of a string, and of n bytes. */
size_t fs_hash_string(const char *s);
size_t fs_hash_bytes(const void *bytes, size_t n);

#endif
