/*
 * hash: the chained hash table of the inode tables (hash.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "fs_internal.h"
#include "hash.h"

int fs_hash_init(struct fs_hash *t, size_t n_buckets)
{
	t->buckets = calloc(n_buckets, sizeof(*t->buckets));
	t->n_buckets = n_buckets;
	t->n = 0;
	return t->buckets ? 0 : -ENOMEM;
}

void fs_hash_release(struct fs_hash *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->n_buckets = 0;
}

/* Double the buckets when there are twice as many links. */
static void grow(struct fs_hash *t)
{
	struct fs_hash_link **buckets;
	size_t i, n = t->n_buckets * 2;

	if (t->n < t->n_buckets * 2)
		return;
	buckets = calloc(n, sizeof(*buckets));
	if (!buckets)
		return; /* a longer chain is slower, not wrong */
	for (i = 0; i < t->n_buckets; i++) {
		struct fs_hash_link *link = t->buckets[i];

		while (link) {
			struct fs_hash_link *next = link->next;
			size_t b = link->hash & (n - 1);

			link->next = buckets[b];
			buckets[b] = link;
			link = next;
		}
	}
	free(t->buckets);
	t->buckets = buckets;
	t->n_buckets = n;
}

void fs_hash_add(struct fs_hash *t, struct fs_hash_link *link, size_t hash)
{
	struct fs_hash_link **bucket = &t->buckets[hash & (t->n_buckets - 1)];

	link->hash = hash;
	link->next = *bucket;
	*bucket = link;
	t->n++;
	grow(t);
}

void fs_hash_remove(struct fs_hash *t, struct fs_hash_link *link)
{
	struct fs_hash_link **p;

	for (p = &t->buckets[link->hash & (t->n_buckets - 1)]; *p; p = &(*p)->next) {
		if (*p == link) {
			*p = link->next;
			t->n--;
			return;
		}
	}
	fs_internal_error("a hash table entry that is not in its table");
}

void fs_hash_drain(struct fs_hash *t, void (*fn)(struct fs_hash_link *link, void *ctx), void *ctx)
{
	size_t i;

	for (i = 0; i < t->n_buckets; i++) {
		struct fs_hash_link *link = t->buckets[i];

		t->buckets[i] = NULL;
		while (link) {
			struct fs_hash_link *next = link->next;

			fn(link, ctx);
			link = next;
		}
	}
	t->n = 0;
}

#define FNV_OFFSET 1469598103934665603u
#define FNV_PRIME  1099511628211u

size_t fs_hash_string(const char *s)
{
	uint64_t h = FNV_OFFSET; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * FNV_PRIME;
	return (size_t)h;
}

size_t fs_hash_bytes(const void *bytes, size_t n)
{
	const unsigned char *b = bytes;
	uint64_t h = FNV_OFFSET;

	while (n--)
		h = (h ^ *b++) * FNV_PRIME;
	return (size_t)h;
}
