/*
 * digest: strict parsing of "sha256:<hex>" names and SHA-256 hashing
 * through OpenSSL EVP.
 */
#include "digest.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#define PREFIX	   DIGEST_ALGORITHM ":"
#define PREFIX_LEN (sizeof(PREFIX) - 1)

struct digest_hasher {
	EVP_MD_CTX *ctx;
};

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int digest_parse_hex(const char *hex, struct digest *ret)
{
	size_t i;

	for (i = 0; i < DIGEST_HEX_LEN; i++)
		if (!is_lower_hex(hex[i]))
			return -EINVAL;
	if (hex[DIGEST_HEX_LEN] != '\0')
		return -EINVAL;
	memcpy(ret->hex, hex, DIGEST_HEX_LEN + 1);
	return 0;
}

int digest_parse(const char *s, struct digest *ret)
{
	if (strncmp(s, PREFIX, PREFIX_LEN) != 0)
		return -EINVAL;
	return digest_parse_hex(s + PREFIX_LEN, ret);
}

void digest_format(const struct digest *d, char buf[DIGEST_STRING_SIZE])
{
	memcpy(buf, PREFIX, PREFIX_LEN);
	memcpy(buf + PREFIX_LEN, d->hex, DIGEST_HEX_LEN + 1);
}

bool digest_equal(const struct digest *a, const struct digest *b)
{
	return memcmp(a->hex, b->hex, DIGEST_HEX_LEN) == 0;
}

static void bytes_to_hex(const unsigned char *bytes, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 0xf];
	}
	out[2 * len] = '\0';
}

int digest_hasher_new(struct digest_hasher **ret)
{
	struct digest_hasher *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		digest_hasher_free(h);
		return -ENOMEM;
	}
	*ret = h;
	return 0;
}

void digest_hasher_update(struct digest_hasher *h, const void *data, size_t len)
{
	/* EVP_DigestUpdate on an initialised SHA-256 context cannot fail. */
	int ok = EVP_DigestUpdate(h->ctx, data, len);

	assert(ok == 1);
	(void)ok;
}

void digest_hasher_final(struct digest_hasher *h, struct digest *ret)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	int ok = EVP_DigestFinal_ex(h->ctx, md, &len);

	assert(ok == 1 && len * 2 == DIGEST_HEX_LEN);
	(void)ok;
	bytes_to_hex(md, len, ret->hex);
}

int digest_hasher_peek(const struct digest_hasher *h, struct digest *ret)
{
	struct digest_hasher copy;
	int r = 0;

	copy.ctx = EVP_MD_CTX_new();
	if (!copy.ctx || EVP_MD_CTX_copy_ex(copy.ctx, h->ctx) != 1)
		r = -ENOMEM;
	else
		digest_hasher_final(&copy, ret);
	EVP_MD_CTX_free(copy.ctx);
	return r;
}

void digest_hasher_reset(struct digest_hasher *h)
{
	int ok = EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);

	assert(ok == 1);
	(void)ok;
}

void digest_hasher_free(struct digest_hasher *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int digest_of_buffer(const void *data, size_t len, struct digest *ret)
{
	struct digest_hasher *h;
	int r = digest_hasher_new(&h);

	if (r < 0)
		return r;
	digest_hasher_update(h, data, len);
	digest_hasher_final(h, ret);
	digest_hasher_free(h);
	return 0;
}

int digest_of_fd(int fd, struct digest *ret)
{
	enum { CHUNK = 1 << 20 };
	struct digest_hasher *h;
	unsigned char *buf;
	off_t offset = 0;
	int r = digest_hasher_new(&h);

	if (r < 0)
		return r;
	buf = malloc(CHUNK);
	if (!buf) {
		r = -ENOMEM;
		goto out_hasher;
	}
	for (;;) {
		ssize_t n = pread(fd, buf, CHUNK, offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out_buf;
		}
		if (n == 0)
			break;
		digest_hasher_update(h, buf, (size_t)n);
		offset += n;
	}
	digest_hasher_final(h, ret);
	r = 0;
out_buf:
	free(buf);
out_hasher:
	digest_hasher_free(h);
	return r;
}

int digest_list_append(struct digest_list *list, const struct digest *d)
{
	if (list->len == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 64;
		struct digest *items = reallocarray(list->items, cap, sizeof(*items));

		if (!items)
			return -ENOMEM;
		list->items = items;
		list->cap = cap;
	}
	list->items[list->len++] = *d;
	return 0;
}

int digest_list_collect(const struct digest *d, void *list)
{
	return digest_list_append(list, d);
}

static int compare_digests(const void *a, const void *b)
{
	return memcmp(((const struct digest *)a)->hex, ((const struct digest *)b)->hex,
		      DIGEST_HEX_LEN);
}

void digest_list_sort(struct digest_list *list)
{
	if (list->len > 1)
		qsort(list->items, list->len, sizeof(list->items[0]), compare_digests);
}

bool digest_list_contains(const struct digest_list *list, const struct digest *d)
{
	size_t i;

	for (i = 0; i < list->len; i++)
		if (digest_equal(&list->items[i], d))
			return true;
	return false;
}

void digest_list_remove(struct digest_list *list, const struct digest *d)
{
	size_t i;

	for (i = 0; i < list->len; i++)
		if (digest_equal(&list->items[i], d))
			list->items[i--] = list->items[--list->len];
}

void digest_list_free(struct digest_list *list)
{
	free(list->items);
	list->items = NULL;
	list->len = list->cap = 0;
}
