/*
 * dindfs mirror: serve a dindfs mount as a registry mirror until stopped,
 * on plain HTTP and TLS listeners.
 */
#include "cmd_mirror.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "mirror.h"
#include "pull_mount.h"

#define DEFAULT_LISTEN "127.0.0.1:5000"
#define PEM_MAX	       (1024 * 1024) /* a certificate chain or a key, as a file */

/* "ADDRESS:PORT" (IPv4) into its parts. */
static int parse_listen(const char *s, char *address, size_t size, uint16_t *ret_port)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (!colon || colon == s || (size_t)(colon - s) >= size)
		return -EINVAL;
	port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port <= 0 || port > 65535)
		return -EINVAL;
	memcpy(address, s, (size_t)(colon - s));
	address[colon - s] = '\0';
	*ret_port = (uint16_t)port;
	return 0;
}

/* A PEM file's text (NUL-terminated, PEM_MAX at most) into *ret; 0 or -errno. */
static int read_pem(const char *path, char **ret)
{
	FILE *f = fopen(path, "re");
	char *text;
	size_t n;

	if (!f)
		return -errno;
	text = malloc(PEM_MAX + 1);
	if (!text) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(text, 1, PEM_MAX + 1, f);
	fclose(f);
	if (n > PEM_MAX) {
		free(text);
		return -EFBIG;
	}
	text[n] = '\0';
	*ret = text;
	return 0;
}

/*
 * Whether cert (a PEM chain, the server's first) and key (PEM) go
 * together; else the reason, in one line, into why.
 */
static bool pem_pair_ok(const char *cert, const char *key, char *why, size_t size)
{
	BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
	X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
	EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	bool ok = false;

	if (!x)
		snprintf(why, size, "--cert holds no PEM certificate");
	else if (!k)
		snprintf(why, size, "--key holds no PEM private key (or it is encrypted)");
	else if (X509_check_private_key(x, k) != 1)
		snprintf(why, size, "--key is not the key of --cert's certificate");
	else
		ok = true;
	ERR_clear_error();
	EVP_PKEY_free(k);
	X509_free(x);
	BIO_free(kb);
	BIO_free(cb);
	return ok;
}

static int run_mirror(const struct tool_command *cmd, int argc, char **argv)
{
	static const struct option options[] = {
		{"root", required_argument, NULL, 'r'},
		{"listen", required_argument, NULL, 'l'},
		{"tls-listen", required_argument, NULL, 't'},
		{"cert", required_argument, NULL, 'c'},
		{"key", required_argument, NULL, 'k'},
		{"log-requests", no_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct mirror_listen listen[MIRROR_LISTEN_MAX];
	struct mirror_options o = {.root = tool_default_root(), .listen = listen};
	const char *cert_path = NULL, *key_path = NULL, *spec[MIRROR_LISTEN_MAX];
	char *cert = NULL, *key = NULL, why[128];
	bool any_tls = false;
	struct mirror *m;
	size_t failed;
	sigset_t stop;
	int c, r, sig, status = TOOL_EXIT_FAILED;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case 'r':
			o.root = optarg;
			break;
		case 'l':
		case 't':
			if (o.n_listen == MIRROR_LISTEN_MAX)
				return tool_usage_error(cmd, "more than %d listeners",
							MIRROR_LISTEN_MAX);
			if (parse_listen(optarg, listen[o.n_listen].address,
					 sizeof(listen[o.n_listen].address),
					 &listen[o.n_listen].port) < 0)
				return tool_usage_error(cmd, "bad --%s '%s' (want ADDRESS:PORT)",
							c == 'l' ? "listen" : "tls-listen", optarg);
			listen[o.n_listen].tls = c == 't';
			any_tls |= c == 't';
			spec[o.n_listen++] = optarg;
			break;
		case 'c':
			cert_path = optarg;
			break;
		case 'k':
			key_path = optarg;
			break;
		case 'L':
			o.log_requests = true;
			break;
		default:
			return tool_other_option(cmd, c, argv);
		}
	}
	if (optind != argc)
		return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (o.n_listen == 0) {
		parse_listen(DEFAULT_LISTEN, listen[0].address, sizeof(listen[0].address),
			     &listen[0].port);
		listen[0].tls = false;
		spec[o.n_listen++] = DEFAULT_LISTEN;
	}
	if (any_tls != (cert_path && key_path) || (!cert_path != !key_path))
		return tool_usage_error(cmd, "--tls-listen, --cert and --key go together");
	if (!tool_is_dindfs_mount(o.root)) {
		tool_error("'%s' is not a dindfs mount", o.root);
		return TOOL_EXIT_FAILED;
	}
	if (any_tls) {
		r = read_pem(cert_path, &cert);
		if (r < 0) {
			tool_error("cannot read '%s': %s", cert_path, tool_strerror(r));
			goto out_free;
		}
		r = read_pem(key_path, &key);
		if (r < 0) {
			tool_error("cannot read '%s': %s", key_path, tool_strerror(r));
			goto out_free;
		}
		if (!pem_pair_ok(cert, key, why, sizeof(why))) {
			tool_error("%s", why);
			goto out_free;
		}
		o.cert_pem = cert;
		o.key_pem = key;
	}
	/* the server's threads inherit the mask: only sigwait below sees these */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	r = mirror_start(&o, &m, &failed);
	if (r < 0) {
		tool_error("cannot serve on %s: %s", spec[failed],
			   r == -EINVAL	   ? "not an IPv4 address"
			   : r == -ENOTSUP ? "this libmicrohttpd has no TLS"
					   : "address in use or not ours");
		goto out_free;
	}
	for (size_t i = 0; i < o.n_listen; i++)
		fprintf(stderr, "dindfs mirror: serving %s on %s://%s\n", o.root,
			listen[i].tls ? "https" : "http", spec[i]);
	sigwait(&stop, &sig);
	mirror_stop(m);
	status = TOOL_EXIT_OK;
out_free:
	free(key);
	free(cert);
	return status;
}

const struct tool_command tool_cmd_mirror = {
	.name = "mirror",
	.brief = "serve a dindfs mount as a registry mirror for the local dockerd",
	.synopsis = "[--root MOUNTPOINT] [--listen ADDRESS:PORT]... "
		    "[--tls-listen ADDRESS:PORT... --cert FILE --key FILE] [--log-requests]",
	.summary =
		"Answer the read side of the registry API v2 from the mount, so that a\n"
		"dockerd with \"registry-mirrors\": [\"http://127.0.0.1:5000\"] pulls through the\n"
		"host's cache, and any client that reaches it under a registry's name (the\n"
		"Host header) gets that registry's images from the cache. Runs until SIGTERM\n"
		"or SIGINT.",
	.usage = "  --root MOUNTPOINT          the mount (default $DINDFS_ROOT, "
		 "then " TOOL_DEFAULT_ROOT ")\n"
		 "  --listen ADDRESS:PORT      plain HTTP here; repeatable (default " DEFAULT_LISTEN
		 "; loopback unless told)\n"
		 "  --tls-listen ADDRESS:PORT  HTTPS here; repeatable\n"
		 "  --cert FILE, --key FILE    the PEM certificate (chain) and key for HTTPS\n"
		 "  --log-requests             one line on stderr per request: the time, the\n"
		 "                             request, its status and milliseconds to answer\n",
	.run = run_mirror,
};
