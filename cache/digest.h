/*
 * digest: content digests of the form "sha256:<64 lowercase hex>".
 *
 * Every blob in dindfs is named by its SHA-256. This module parses and
 * formats those names strictly (anything else is refused, so a digest can
 * be used as a file name without further checks) and hashes streams with
 * OpenSSL's EVP interface.
 */
#ifndef DINDFS_DIGEST_H
#define DINDFS_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define DIGEST_ALGORITHM "sha256"
#define DIGEST_HEX_LEN	 64
/* "sha256:" + hex + NUL */
#define DIGEST_STRING_SIZE (sizeof(DIGEST_ALGORITHM ":") + DIGEST_HEX_LEN)

struct digest {
	char hex[DIGEST_HEX_LEN + 1]; /* lowercase, NUL-terminated */
};

/*
 * Parse "sha256:<hex>". Returns 0, or -EINVAL for anything else (another
 * algorithm, upper case, wrong length, trailing bytes). *ret is untouched
 * on failure.
 */
int digest_parse(const char *s, struct digest *ret);

/* Parse a bare 64-character lowercase hex string, as used in blob paths. */
int digest_parse_hex(const char *hex, struct digest *ret);

/* Write "sha256:<hex>" into buf, which holds DIGEST_STRING_SIZE bytes. */
void digest_format(const struct digest *d, char buf[DIGEST_STRING_SIZE]);

bool digest_equal(const struct digest *a, const struct digest *b);

/* SHA-256 of a buffer in one call. Returns 0 or -ENOMEM. */
int digest_of_buffer(const void *data, size_t len, struct digest *ret);

/* SHA-256 of everything an fd reads from offset 0. Returns 0 or -errno. */
int digest_of_fd(int fd, struct digest *ret);

/* A streaming hash. */
struct digest_hasher;

int digest_hasher_new(struct digest_hasher **ret);
void digest_hasher_update(struct digest_hasher *h, const void *data, size_t len);
/* Finish the hash; the hasher may then be freed or reset. */
void digest_hasher_final(struct digest_hasher *h, struct digest *ret);
/* The digest of what was fed so far, leaving h as it was. Returns 0 or -ENOMEM. */
int digest_hasher_peek(const struct digest_hasher *h, struct digest *ret);
/* Start again from empty input. */
void digest_hasher_reset(struct digest_hasher *h);
/* Accepts NULL. */
void digest_hasher_free(struct digest_hasher *h);

/* A growable array of digests. Zero-initialise; free with digest_list_free. */
struct digest_list {
	struct digest *items;
	size_t len, cap;
};

int digest_list_append(struct digest_list *list, const struct digest *d);
/* digest_list_append with the argument order of a walk callback (ctx is the list). */
int digest_list_collect(const struct digest *d, void *list);
void digest_list_sort(struct digest_list *list);
/* Does list hold d (a linear scan)? */
bool digest_list_contains(const struct digest_list *list, const struct digest *d);
/* Remove every d from list (the last item takes its place: the order changes). */
void digest_list_remove(struct digest_list *list, const struct digest *d);
void digest_list_free(struct digest_list *list);

#endif
