/*
 * store_bench: the store's side of bench/store.sh.
 *
 *   store_bench ingest STORE FILE...   ingest each file (expected digest given,
 *                                      as a pull does), print elapsed seconds
 *   store_bench read STORE             read every blob back, print elapsed seconds
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

#define CHUNK (128 << 10)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Ingest one file through a writer, as the registry client streams a blob. */
static int ingest_file(struct store *s, const char *path, const struct digest *expected,
		       unsigned char *buf)
{
	struct store_writer *w;
	ssize_t n;
	int fd = open(path, O_RDONLY), r;

	if (fd < 0)
		return -errno;
	r = store_writer_new(s, expected, &w);
	while (r == 0 && (n = read(fd, buf, CHUNK)) > 0)
		r = store_writer_write(w, buf, (size_t)n);
	close(fd);
	if (r < 0) {
		store_writer_abort(w);
		return r;
	}
	return store_writer_commit(w, NULL, NULL);
}

static int read_blob(const struct index_blob *blob, void *ctx)
{
	struct store *s = ((void **)ctx)[0];
	unsigned char *buf = ((void **)ctx)[1];
	int fd, r = store_open_blob(s, &blob->digest, &fd);

	if (r < 0)
		return r;
	while ((r = (int)read(fd, buf, CHUNK)) > 0)
		;
	close(fd);
	return r < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
	unsigned char *buf = malloc(CHUNK);
	struct store *s;
	double start;
	int i, r;

	if (argc < 3 || !buf) {
		fprintf(stderr, "usage: store_bench ingest STORE FILE... | read STORE\n");
		return 2;
	}
	r = store_open(argv[2], &s);
	if (r < 0) {
		fprintf(stderr, "store_bench: cannot open '%s': %s\n", argv[2], strerror(-r));
		return 1;
	}
	start = now();
	if (!strcmp(argv[1], "ingest")) {
		/* The expected digest is the file's name, as bench/store.sh names them. */
		for (i = 3; i < argc && r == 0; i++) {
			const char *base = strrchr(argv[i], '/');
			struct digest d;

			r = digest_parse_hex(base ? base + 1 : argv[i], &d);
			if (r == 0)
				r = ingest_file(s, argv[i], &d, buf);
		}
	} else {
		void *ctx[] = {s, buf};

		r = index_foreach_blob(store_index(s), read_blob, ctx);
	}
	if (r < 0) {
		fprintf(stderr, "store_bench: %s\n", strerror(-r));
		return 1;
	}
	printf("%.3f\n", now() - start);
	store_close(s);
	free(buf);
	return 0;
}
