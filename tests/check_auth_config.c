/*
 * Unit tests for cache/auth's credentials: docker config.json, credential
 * helpers (small shell scripts put on $PATH), and the token cache.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "auth.h"
#include "testutil.h"

/* ---- config.json ---- */

static int from_config(const char *json, const char *registry, struct auth_credentials *c)
{
	return auth_credentials_from_config(json, strlen(json), registry, c);
}

/* base64("hubuser:hubpass"), base64("bob:s3cr:et") */
#define HUB_AUTH "aHVidXNlcjpodWJwYXNz"
#define BOB_AUTH "Ym9iOnMzY3I6ZXQ="

START_TEST(test_config_docker_hub)
{
	const char *json =
		"{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"" HUB_AUTH "\"}}}";
	static const char *const names[] = {"docker.io", "index.docker.io", "registry-1.docker.io",
					    "Docker.IO"};
	struct auth_credentials c;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		memset(&c, 'x', sizeof(c));
		ck_assert_int_eq(from_config(json, names[i], &c), 0);
		ck_assert_str_eq(c.username, "hubuser");
		ck_assert_str_eq(c.secret, "hubpass");
		ck_assert(!c.identity_token);
	}
	ck_assert_int_eq(from_config(json, "ghcr.io", &c), -ENOENT);
	/* Older spellings of the Hub key. */
	ck_assert_int_eq(from_config("{\"auths\":{\"docker.io\":{\"auth\":\"" HUB_AUTH "\"}}}",
				     "docker.io", &c),
			 0);
	ck_assert_int_eq(from_config("{\"auths\":{\"https://index.docker.io/v2/\":{\"auth\":"
				     "\"" HUB_AUTH "\"}}}",
				     "docker.io", &c),
			 0);
	ck_assert_str_eq(c.username, "hubuser");
}
END_TEST

START_TEST(test_config_key_forms)
{
	static const char *const keys[] = {
		"localhost:5000",     "http://localhost:5000",	    "https://localhost:5000/",
		"localhost:5000/v2/", "HTTPS://LocalHost:5000/v1/",
	};
	struct auth_credentials c;
	char json[512];
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(json, sizeof(json), "{\"auths\":{\"%s\":{\"auth\":\"" BOB_AUTH "\"}}}",
			 keys[i]);
		ck_assert_msg(from_config(json, "localhost:5000", &c) == 0, "key '%s'", keys[i]);
		ck_assert_str_eq(c.username, "bob");
		ck_assert_str_eq(c.secret, "s3cr:et");
		/* The port is part of the name. */
		ck_assert_int_eq(from_config(json, "localhost", &c), -ENOENT);
		ck_assert_int_eq(from_config(json, "localhost:5001", &c), -ENOENT);
	}

	/* The exact key wins over an earlier host match. */
	ck_assert_int_eq(from_config("{\"auths\":{\"http://localhost:5000\":{\"username\":\"a\","
				     "\"password\":\"1\"},\"localhost:5000\":{\"username\":\"b\","
				     "\"password\":\"2\"}}}",
				     "localhost:5000", &c),
			 0);
	ck_assert_str_eq(c.username, "b");
	/* Between host matches, the first in the file. */
	ck_assert_int_eq(from_config("{\"auths\":{\"https://ghcr.io/\":{\"username\":\"a\","
				     "\"password\":\"1\"},\"http://ghcr.io\":{\"username\":\"b\","
				     "\"password\":\"2\"}}}",
				     "ghcr.io", &c),
			 0);
	ck_assert_str_eq(c.username, "a");
	/* A host that only shares a prefix does not match. */
	ck_assert_int_eq(from_config("{\"auths\":{\"https://ghcr.io.evil/\":{\"username\":\"a\","
				     "\"password\":\"1\"}}}",
				     "ghcr.io", &c),
			 -ENOENT);
}
END_TEST

START_TEST(test_config_fields)
{
	struct auth_credentials c;

	/* username/password fields. */
	ck_assert_int_eq(from_config("{\"auths\":{\"r.example\":{\"username\":\"u\","
				     "\"password\":\"p\",\"email\":\"e@x\"}}}",
				     "r.example", &c),
			 0);
	ck_assert_str_eq(c.username, "u");
	ck_assert_str_eq(c.secret, "p");
	/* auth wins over them. */
	ck_assert_int_eq(from_config("{\"auths\":{\"r.example\":{\"username\":\"u\","
				     "\"password\":\"p\",\"auth\":\"" BOB_AUTH "\"}}}",
				     "r.example", &c),
			 0);
	ck_assert_str_eq(c.username, "bob");
	ck_assert_str_eq(c.secret, "s3cr:et");
	/* An identity token is the secret. */
	ck_assert_int_eq(from_config("{\"auths\":{\"r.example\":{\"auth\":\"" BOB_AUTH "\","
				     "\"identitytoken\":\"idt\"}}}",
				     "r.example", &c),
			 0);
	ck_assert_str_eq(c.username, "bob");
	ck_assert_str_eq(c.secret, "idt");
	ck_assert(c.identity_token);
	ck_assert_int_eq(from_config("{\"auths\":{\"r.example\":{\"identitytoken\":\"idt\"}}}",
				     "r.example", &c),
			 0);
	ck_assert_str_eq(c.username, "");
	ck_assert(c.identity_token);
	/* base64("u:\0p\0\0"): NULs at the ends of the password go, as in docker. */
	ck_assert_int_eq(
		from_config("{\"auths\":{\"r.example\":{\"auth\":\"dToAcAAA\"}}}", "r.example", &c),
		0);
	ck_assert_str_eq(c.username, "u");
	ck_assert_str_eq(c.secret, "p");
	/* Empty password is allowed ("u:"). */
	ck_assert_int_eq(
		from_config("{\"auths\":{\"r.example\":{\"auth\":\"dTo=\"}}}", "r.example", &c), 0);
	ck_assert_str_eq(c.username, "u");
	ck_assert_str_eq(c.secret, "");
}
END_TEST

START_TEST(test_config_no_credentials)
{
	struct auth_credentials c;

	memset(&c, 'x', sizeof(c));
	ck_assert_int_eq(from_config("{}", "r.example", &c), -ENOENT);
	ck_assert_int_eq(from_config("{\"auths\":{}}", "r.example", &c), -ENOENT);
	ck_assert_int_eq(from_config("{\"auths\":null}", "r.example", &c), -ENOENT);
	ck_assert_int_eq(from_config("{\"auths\":{\"other.example\":{\"auth\":\"" BOB_AUTH "\"}}}",
				     "r.example", &c),
			 -ENOENT);
	/* What docker login leaves when a credsStore holds the secret. */
	ck_assert_int_eq(from_config("{\"auths\":{\"r.example\":{}}}", "r.example", &c), -ENOENT);
	ck_assert_int_eq(from_config("{\"auths\":{\"r.example\":{\"auth\":\"\","
				     "\"email\":\"x\"}}}",
				     "r.example", &c),
			 -ENOENT);
	/* An empty credsStore means none. */
	ck_assert_int_eq(from_config("{\"credsStore\":\"\"}", "r.example", &c), -ENOENT);
	ck_assert_int_eq(c.username[0], 'x');
}
END_TEST

static const char *const malformed_configs[] = {
	"",
	"not json",
	"[]",
	"{\"auths\":[]}",
	"{\"auths\":{\"r.example\":\"dTpw\"}}",
	"{\"auths\":{\"r.example\":{\"auth\":42}}}",
	"{\"auths\":{\"r.example\":{\"username\":[]}}}",
	"{\"auths\":{\"r.example\":{\"auth\":\"not base64!\"}}}",
	"{\"auths\":{\"r.example\":{\"auth\":\"dXNlcg\"}}}",   /* no padding */
	"{\"auths\":{\"r.example\":{\"auth\":\"dXNlcg==\"}}}", /* "user": no colon */
	"{\"auths\":{\"r.example\":{\"auth\":\"OnBhc3M=\"}}}", /* ":pass": no user */
	"{\"auths\":{\"r.example\":{\"auth\":\"dQA6cA==\"}}}", /* "u\0:p" */
	"{\"auths\":{\"r.example\":{\"auth\":\"dTpwAHE=\"}}}", /* "u:p\0q" */
	"{\"auths\":{\"r.example\":{\"auth\":\"dTpw=A==\"}}}", /* '=' inside */
	"{\"auths\":{\"r.example\":{\"auth\":\"dTpw\\n\"}}}",  /* whitespace */
	"{\"credsStore\":7}",
	"{\"credHelpers\":[]}",
	"{\"credHelpers\":{\"r.example\":true}}",
	"{\"credsStore\":\"../../bin/sh\"}", /* not a helper name */
	"{\"credHelpers\":{\"r.example\":\"a b\"}}",
};

START_TEST(test_config_malformed)
{
	struct auth_credentials c;

	memset(&c, 'x', sizeof(c));
	ck_assert_msg(from_config(malformed_configs[_i], "r.example", &c) == -EINVAL,
		      "accepted '%s'", malformed_configs[_i]);
	ck_assert_int_eq(c.username[0], 'x');
}
END_TEST

START_TEST(test_config_limits)
{
	char json[16384 + 128];
	struct auth_credentials c;
	int n;

	ck_assert_int_eq(from_config("{}", "", &c), -EINVAL);
	ck_assert_int_eq(from_config("{}", "r.example/x", &c), -EINVAL);
	ck_assert_int_eq(from_config("{}", "r example", &c), -EINVAL);
	ck_assert_int_eq(auth_credentials_from_config("{}", AUTH_CONFIG_MAX + 1, "r.example", &c),
			 -E2BIG);
	/* A password longer than AUTH_SECRET_MAX. */
	n = snprintf(json, sizeof(json),
		     "{\"auths\":{\"r.example\":{\"username\":\"u\","
		     "\"password\":\"");
	memset(json + n, 'p', AUTH_SECRET_MAX + 1);
	snprintf(json + n + AUTH_SECRET_MAX + 1, 16, "\"}}}");
	ck_assert_int_eq(from_config(json, "r.example", &c), -E2BIG);
	/* An auth field longer than any valid one. */
	n = snprintf(json, sizeof(json), "{\"auths\":{\"r.example\":{\"auth\":\"");
	memset(json + n, 'A', AUTH_BASIC_SIZE + 3);
	snprintf(json + n + AUTH_BASIC_SIZE + 3, 16, "\"}}}");
	ck_assert_int_eq(from_config(json, "r.example", &c), -E2BIG);
}
END_TEST

/* ---- credential helpers ---- */

/*
 * A fake docker-credential-fake: it records its stdin and arguments, then
 * answers by server URL.
 */
static const char fake_helper[] =
	"#!/bin/sh\n"
	"dir=$(dirname \"$0\")\n"
	"url=$(cat)\n"
	"printf '%s' \"$url\" > \"$dir/last-url\"\n"
	"printf '%s' \"$*\" > \"$dir/last-args\"\n"
	"case \"$url\" in\n"
	"https://index.docker.io/v1/)\n"
	"  echo '{\"ServerURL\":\"https://index.docker.io/v1/\",\"Username\":\"hubuser\","
	"\"Secret\":\"hubpass\"}' ;;\n"
	"ghcr.io) echo '{\"ServerURL\":\"ghcr.io\",\"Username\":\"<token>\",\"Secret\":\"idt\"}' "
	";;\n"
	"empty.example) echo '{\"Username\":\"\",\"Secret\":\"\"}' ;;\n"
	"missing.example) echo 'credentials not found in native keychain'; exit 1 ;;\n"
	"garbage.example) echo 'this is not json' ;;\n"
	"*) echo \"no idea about $url\" >&2; exit 3 ;;\n"
	"esac\n";

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char *path;
	FILE *f;

	ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
	free(path);
}

static char *read_text(const char *dir, const char *name)
{
	char *path, *text = calloc(1, 4096);
	FILE *f;

	ck_assert_ptr_nonnull(text);
	ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	text[fread(text, 1, 4095, f)] = '\0';
	fclose(f);
	free(path);
	return text;
}

/* A temp dir with fake helpers, put first on $PATH (fork mode keeps it per test). */
static char *install_helpers(void)
{
	char *dir = test_mkdtemp(), *path;
	const char *old = getenv("PATH");

	write_file(dir, "docker-credential-fake", fake_helper, 0755);
	write_file(dir, "docker-credential-slow", "#!/bin/sh\nexec sleep 30\n", 0755);
	write_file(dir, "docker-credential-chatty",
		   "#!/bin/sh\nexec yes '{\"Username\":\"u\",\"Secret\":\"s\"}'\n", 0755);
	write_file(dir, "docker-credential-huge",
		   "#!/bin/sh\nprintf '{\"Username\":\"u\",\"Secret\":\"'\n"
		   "head -c 9000 /dev/zero | tr '\\0' s\nprintf '\"}'\n",
		   0755);
	write_file(dir, "docker-credential-killed", "#!/bin/sh\nkill -9 $$\n", 0755);
	write_file(dir, "docker-credential-deaf",
		   "#!/bin/sh\nexec 0<&-\n"
		   "echo '{\"Username\":\"d\",\"Secret\":\"s\"}'\n",
		   0755);
	write_file(dir, "docker-credential-noexec", "#!/bin/sh\nexit 0\n", 0644);
	ck_assert_int_ge(asprintf(&path, "%s:%s", dir, old ? old : "/usr/bin:/bin"), 0);
	ck_assert_int_eq(setenv("PATH", path, 1), 0);
	free(path);
	return dir;
}

START_TEST(test_helper_direct)
{
	char *dir = install_helpers(), *text;
	struct auth_credentials c;

	ck_assert_int_eq(auth_run_helper("fake", "https://index.docker.io/v1/", 10000, &c), 0);
	ck_assert_str_eq(c.username, "hubuser");
	ck_assert_str_eq(c.secret, "hubpass");
	ck_assert(!c.identity_token);
	/* The URL exactly, no newline; one argument, "get". */
	text = read_text(dir, "last-url");
	ck_assert_str_eq(text, "https://index.docker.io/v1/");
	free(text);
	text = read_text(dir, "last-args");
	ck_assert_str_eq(text, "get");
	free(text);

	ck_assert_int_eq(auth_run_helper("fake", "ghcr.io", 10000, &c), 0);
	ck_assert_str_eq(c.username, "");
	ck_assert_str_eq(c.secret, "idt");
	ck_assert(c.identity_token);

	/* A helper that closes stdin without reading it. */
	ck_assert_int_eq(auth_run_helper("deaf", "r.example", 10000, &c), 0);
	ck_assert_str_eq(c.username, "d");
	test_rmdir(dir);
}
END_TEST

START_TEST(test_helper_closed_stdio)
{
	char *dir = install_helpers();
	struct auth_credentials c;

	/* A daemon without stdio: the pipes get fds 0 and 1. */
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	ck_assert_int_eq(auth_run_helper("fake", "https://index.docker.io/v1/", 10000, &c), 0);
	ck_assert_str_eq(c.username, "hubuser");
	ck_assert_str_eq(c.secret, "hubpass");
	test_rmdir(dir);
}
END_TEST

START_TEST(test_helper_failures)
{
	char *dir = install_helpers();
	struct auth_credentials c;

	memset(&c, 'x', sizeof(c));
	ck_assert_int_eq(auth_run_helper("fake", "missing.example", 10000, &c), -ENOENT);
	ck_assert_int_eq(auth_run_helper("fake", "empty.example", 10000, &c), -ENOENT);
	ck_assert_int_eq(auth_run_helper("fake", "boom.example", 10000, &c), -EIO);
	ck_assert_int_eq(auth_run_helper("fake", "garbage.example", 10000, &c), -EINVAL);
	ck_assert_int_eq(auth_run_helper("killed", "r.example", 10000, &c), -EIO);
	ck_assert_int_eq(auth_run_helper("chatty", "r.example", 10000, &c), -E2BIG);
	ck_assert_int_eq(auth_run_helper("huge", "r.example", 10000, &c), -E2BIG);
	ck_assert_int_eq(auth_run_helper("nonexistent", "r.example", 10000, &c), -ENOPKG);
	ck_assert_int_eq(auth_run_helper("noexec", "r.example", 10000, &c), -EACCES);
	ck_assert_int_eq(auth_run_helper("../fake", "r.example", 10000, &c), -EINVAL);
	ck_assert_int_eq(auth_run_helper("", "r.example", 10000, &c), -EINVAL);
	ck_assert_int_eq(c.username[0], 'x');
	test_rmdir(dir);
}
END_TEST

START_TEST(test_helper_timeout)
{
	char *dir = install_helpers();
	struct auth_credentials c;
	struct timespec a, b;
	double elapsed;

	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_int_eq(auth_run_helper("slow", "r.example", 300, &c), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	elapsed = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	ck_assert_msg(elapsed >= 0.25 && elapsed < 5, "took %.3f s", elapsed);
	test_rmdir(dir);
}
END_TEST

START_TEST(test_config_helpers)
{
	char *dir = install_helpers(), *text;
	struct auth_credentials c;

	/* credsStore for Docker Hub: the helper gets docker's Hub key. */
	ck_assert_int_eq(from_config("{\"auths\":{\"https://index.docker.io/v1/\":{}},"
				     "\"credsStore\":\"fake\"}",
				     "docker.io", &c),
			 0);
	ck_assert_str_eq(c.username, "hubuser");
	ck_assert_str_eq(c.secret, "hubpass");
	text = read_text(dir, "last-url");
	ck_assert_str_eq(text, AUTH_DOCKER_HUB_KEY);
	free(text);

	/* credHelpers wins over inline auths, and over credsStore. */
	ck_assert_int_eq(from_config("{\"auths\":{\"ghcr.io\":{\"auth\":\"" BOB_AUTH "\"}},"
				     "\"credsStore\":\"nonexistent\","
				     "\"credHelpers\":{\"ghcr.io\":\"fake\"}}",
				     "ghcr.io", &c),
			 0);
	ck_assert_str_eq(c.secret, "idt");
	ck_assert(c.identity_token);

	/* An empty credHelpers entry turns the store off for that registry. */
	ck_assert_int_eq(from_config("{\"auths\":{\"r.example\":{\"auth\":\"" BOB_AUTH "\"}},"
				     "\"credsStore\":\"nonexistent\","
				     "\"credHelpers\":{\"r.example\":\"\"}}",
				     "r.example", &c),
			 0);
	ck_assert_str_eq(c.username, "bob");

	/* With a helper, inline auths are not consulted (as docker). */
	ck_assert_int_eq(from_config("{\"auths\":{\"missing.example\":{\"auth\":\"" BOB_AUTH
				     "\"}},\"credsStore\":\"fake\"}",
				     "missing.example", &c),
			 -ENOENT);
	/* Failing and missing helpers are errors, not "no credentials". */
	ck_assert_int_eq(from_config("{\"credsStore\":\"fake\"}", "fail.example", &c), -EIO);
	ck_assert_int_eq(from_config("{\"credsStore\":\"nonexistent\"}", "r.example", &c), -ENOPKG);
	ck_assert_int_eq(from_config("{\"credHelpers\":{\"r.example\":\"nonexistent\"}}",
				     "other.example", &c),
			 -ENOENT);
	test_rmdir(dir);
}
END_TEST

START_TEST(test_lookup_docker_config)
{
	char *home = test_mkdtemp(), *conf = test_mkdtemp(), *docker_dir;
	struct auth_credentials c;

	ck_assert_int_ge(asprintf(&docker_dir, "%s/.docker", home), 0);
	ck_assert_int_eq(mkdir(docker_dir, 0700), 0);
	write_file(docker_dir, "config.json",
		   "{\"auths\":{\"r.example\":{\"username\":\"home\",\"password\":\"h\"}}}", 0600);
	write_file(conf, "config.json",
		   "{\"auths\":{\"r.example\":{\"username\":\"conf\",\"password\":\"c\"}}}", 0600);

	ck_assert_int_eq(setenv("HOME", home, 1), 0);
	ck_assert_int_eq(unsetenv("DOCKER_CONFIG"), 0);
	ck_assert_int_eq(auth_lookup_credentials("r.example", &c), 0);
	ck_assert_str_eq(c.username, "home");
	ck_assert_int_eq(auth_lookup_credentials("other.example", &c), -ENOENT);

	/* DOCKER_CONFIG is a directory and wins over HOME. */
	ck_assert_int_eq(setenv("DOCKER_CONFIG", conf, 1), 0);
	ck_assert_int_eq(auth_lookup_credentials("r.example", &c), 0);
	ck_assert_str_eq(c.username, "conf");
	ck_assert_str_eq(c.secret, "c");

	/* DOCKER_CONFIG may name ~/.docker itself. */
	ck_assert_int_eq(setenv("DOCKER_CONFIG", docker_dir, 1), 0);
	ck_assert_int_eq(auth_lookup_credentials("r.example", &c), 0);
	ck_assert_str_eq(c.username, "home");
	/* No file there: no credentials, without falling back to HOME. */
	ck_assert_int_eq(setenv("DOCKER_CONFIG", "/nonexistent/dindfs", 1), 0);
	ck_assert_int_eq(auth_lookup_credentials("r.example", &c), -ENOENT);

	/* An empty DOCKER_CONFIG is unset; no HOME at all means none. */
	ck_assert_int_eq(setenv("DOCKER_CONFIG", "", 1), 0);
	ck_assert_int_eq(auth_lookup_credentials("r.example", &c), 0);
	ck_assert_str_eq(c.username, "home");
	ck_assert_int_eq(unsetenv("HOME"), 0);
	ck_assert_int_eq(auth_lookup_credentials("r.example", &c), -ENOENT);

	/* A directory where the file should be. */
	ck_assert_int_eq(setenv("HOME", conf, 1), 0);
	{
		char *sub;

		ck_assert_int_ge(asprintf(&sub, "%s/.docker", conf), 0);
		ck_assert_int_eq(mkdir(sub, 0700), 0);
		free(sub);
		ck_assert_int_ge(asprintf(&sub, "%s/.docker/config.json", conf), 0);
		ck_assert_int_eq(mkdir(sub, 0700), 0);
		free(sub);
	}
	ck_assert_int_eq(auth_lookup_credentials("r.example", &c), -EINVAL);
	ck_assert_int_eq(auth_lookup_credentials("bad/name", &c), -EINVAL);

	free(docker_dir);
	test_rmdir(home);
	test_rmdir(conf);
}
END_TEST

START_TEST(test_lookup_large_config)
{
	char *conf = test_mkdtemp(), *path;
	struct auth_credentials c;
	FILE *f;

	ck_assert_int_ge(asprintf(&path, "%s/config.json", conf), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(ftruncate(fileno(f), AUTH_CONFIG_MAX + 1), 0);
	fclose(f);
	ck_assert_int_eq(setenv("DOCKER_CONFIG", conf, 1), 0);
	ck_assert_int_eq(auth_lookup_credentials("r.example", &c), -E2BIG);
	free(path);
	test_rmdir(conf);
}
END_TEST

START_TEST(test_lookup_with_helper)
{
	char *helpers = install_helpers(), *conf = test_mkdtemp();
	struct auth_credentials c;

	write_file(conf, "config.json", "{\"credsStore\":\"fake\"}", 0600);
	ck_assert_int_eq(setenv("DOCKER_CONFIG", conf, 1), 0);
	ck_assert_int_eq(auth_lookup_credentials("registry-1.docker.io", &c), 0);
	ck_assert_str_eq(c.username, "hubuser");
	ck_assert_int_eq(auth_lookup_credentials("missing.example", &c), -ENOENT);
	ck_assert_int_eq(auth_lookup_credentials("fail.example", &c), -EIO);
	test_rmdir(conf);
	test_rmdir(helpers);
}
END_TEST

/* ---- token cache ---- */

static struct auth_token make_token(const char *value, int64_t expires_in)
{
	struct auth_token t = {.expires_in = expires_in, .issued_at = 42};

	snprintf(t.token, sizeof(t.token), "%s", value);
	return t;
}

START_TEST(test_cache_expiry)
{
	struct auth_cache *cache;
	struct auth_token t = make_token("tok-a", 300), got;

	ck_assert_int_eq(auth_cache_new(0, &cache), 0);
	ck_assert_int_eq(auth_cache_get(cache, "r", "s", 1000, &got), -ENOENT);
	ck_assert_int_eq(auth_cache_put(cache, "r", "s", &t, 1000), 0);
	ck_assert_int_eq(auth_cache_get(cache, "r", "s", 1000, &got), 0);
	ck_assert_str_eq(got.token, "tok-a");
	ck_assert_int_eq(got.expires_in, 300 - AUTH_CACHE_MARGIN);
	ck_assert_int_eq(got.issued_at, 42);
	/* Keyed by both registry and scope. */
	ck_assert_int_eq(auth_cache_get(cache, "r", "other", 1000, &got), -ENOENT);
	ck_assert_int_eq(auth_cache_get(cache, "other", "s", 1000, &got), -ENOENT);
	/* Good until the margin before expiry. */
	ck_assert_int_eq(auth_cache_get(cache, "r", "s", 1000 + 300 - AUTH_CACHE_MARGIN - 1, &got),
			 0);
	ck_assert_int_eq(got.expires_in, 1);
	ck_assert_int_eq(auth_cache_get(cache, "r", "s", 1000 + 300 - AUTH_CACHE_MARGIN, &got),
			 -ENOENT);
	/* Gone for good, even if the clock goes back. */
	ck_assert_int_eq(auth_cache_get(cache, "r", "s", 1000, &got), -ENOENT);

	/* Replacing a key. */
	ck_assert_int_eq(auth_cache_put(cache, "r", "s", &t, 2000), 0);
	t = make_token("tok-b", 60);
	ck_assert_int_eq(auth_cache_put(cache, "r", "s", &t, 2001), 0);
	ck_assert_int_eq(auth_cache_get(cache, "r", "s", 2001, &got), 0);
	ck_assert_str_eq(got.token, "tok-b");
	ck_assert_int_eq(got.expires_in, 60 - AUTH_CACHE_MARGIN);

	/* Short lifetimes keep half. */
	t = make_token("tok-c", 10);
	ck_assert_int_eq(auth_cache_put(cache, "r", "", &t, 0), 0);
	ck_assert_int_eq(auth_cache_get(cache, "r", "", 4, &got), 0);
	ck_assert_int_eq(auth_cache_get(cache, "r", "", 5, &got), -ENOENT);
	t = make_token("tok-d", 0);
	ck_assert_int_eq(auth_cache_put(cache, "r", "", &t, 0), 0);
	ck_assert_int_eq(auth_cache_get(cache, "r", "", 0, &got), -ENOENT);

	auth_cache_free(cache);
	auth_cache_free(NULL);
}
END_TEST

START_TEST(test_cache_eviction)
{
	struct auth_cache *cache;
	struct auth_token a = make_token("a", 100), b = make_token("b", 300),
			  c = make_token("c", 200), got;

	ck_assert_int_eq(auth_cache_new(2, &cache), 0);
	ck_assert_int_eq(auth_cache_put(cache, "r", "a", &a, 0), 0);
	ck_assert_int_eq(auth_cache_put(cache, "r", "b", &b, 0), 0);
	/* Full: the one expiring first goes. */
	ck_assert_int_eq(auth_cache_put(cache, "r", "c", &c, 0), 0);
	ck_assert_int_eq(auth_cache_get(cache, "r", "a", 1, &got), -ENOENT);
	ck_assert_int_eq(auth_cache_get(cache, "r", "b", 1, &got), 0);
	ck_assert_int_eq(auth_cache_get(cache, "r", "c", 1, &got), 0);
	/* An expired one goes first (c expired at 190). */
	ck_assert_int_eq(auth_cache_put(cache, "r", "a", &a, 195), 0);
	ck_assert_int_eq(auth_cache_get(cache, "r", "c", 195, &got), -ENOENT);
	ck_assert_int_eq(auth_cache_get(cache, "r", "b", 195, &got), 0);
	ck_assert_int_eq(auth_cache_get(cache, "r", "a", 195, &got), 0);
	auth_cache_free(cache);
}
END_TEST

START_TEST(test_cache_refuses)
{
	struct auth_cache *cache;
	struct auth_token t = make_token("", 300);
	char long_scope[AUTH_SCOPE_MAX + 2];

	ck_assert_int_eq(auth_cache_new(1, &cache), 0);
	ck_assert_int_eq(auth_cache_put(cache, "r", "s", &t, 0), -EINVAL);
	t = make_token("x", 300);
	memset(long_scope, 's', sizeof(long_scope) - 1);
	long_scope[sizeof(long_scope) - 1] = '\0';
	ck_assert_int_eq(auth_cache_put(cache, "r", long_scope, &t, 0), -EINVAL);
	long_scope[AUTH_SCOPE_MAX] = '\0';
	ck_assert_int_eq(auth_cache_put(cache, "r", long_scope, &t, 0), 0);
	auth_cache_free(cache);
}
END_TEST

#define CACHE_THREADS 4
#define CACHE_ROUNDS  5000

struct cache_worker {
	struct auth_cache *cache;
	int id;
	int hits;
};

static void *cache_worker_main(void *arg)
{
	struct cache_worker *w = arg;
	struct auth_token t, got;
	char scope[32];
	int i;

	for (i = 0; i < CACHE_ROUNDS; i++) {
		snprintf(scope, sizeof(scope), "scope-%d", (i + w->id) % 12);
		snprintf(t.token, sizeof(t.token), "token-for-%s", scope);
		t.expires_in = 60 + i % 7;
		t.issued_at = 0;
		if (i % 3 == 0) {
			if (auth_cache_put(w->cache, "r", scope, &t, i / 100) != 0)
				return NULL;
		} else if (auth_cache_get(w->cache, "r", scope, i / 100, &got) == 0) {
			/* Whatever thread put it, the token belongs to this key. */
			if (strcmp(got.token, t.token) != 0)
				return NULL;
			w->hits++;
		}
	}
	return w;
}

START_TEST(test_cache_threads)
{
	struct cache_worker workers[CACHE_THREADS];
	pthread_t threads[CACHE_THREADS];
	struct auth_cache *cache;
	void *ret;
	int i, hits = 0;

	ck_assert_int_eq(auth_cache_new(8, &cache), 0);
	for (i = 0; i < CACHE_THREADS; i++) {
		workers[i] = (struct cache_worker){.cache = cache, .id = i};
		ck_assert_int_eq(pthread_create(&threads[i], NULL, cache_worker_main, &workers[i]),
				 0);
	}
	for (i = 0; i < CACHE_THREADS; i++) {
		ck_assert_int_eq(pthread_join(threads[i], &ret), 0);
		ck_assert_ptr_eq(ret, &workers[i]);
		hits += workers[i].hits;
	}
	ck_assert_int_gt(hits, 0);
	auth_cache_free(cache);
}
END_TEST

static int collect_host(const char *host, void *ctx)
{
	char *buf = ctx;

	strcat(buf, host);
	strcat(buf, "\n");
	return 0;
}

static int config_hosts(const char *json, char *buf)
{
	buf[0] = '\0';
	return auth_config_hosts(json, strlen(json), collect_host, buf);
}

START_TEST(test_config_hosts)
{
	char hosts[1024];

	ck_assert_int_eq(config_hosts("{\"auths\":{\"https://index.docker.io/v1/\":{},"
				      "\"GHCR.io\":{\"auth\":\"" HUB_AUTH "\"},"
				      "\"http://reg.example:5000/v2/\":{},\"\":{},\"https://\":{}},"
				      "\"credsStore\":\"desktop\","
				      "\"credHelpers\":{\"quay.io\":\"ecr\",\"[::1]:5000\":\"x\"}}",
				      hosts),
			 0);
	ck_assert_str_eq(hosts,
			 "index.docker.io\nghcr.io\nreg.example:5000\nquay.io\n[::1]:5000\n");
	ck_assert_int_eq(config_hosts("{}", hosts), 0);
	ck_assert_str_eq(hosts, "");
	ck_assert_int_eq(config_hosts("{\"auths\":null,\"credHelpers\":{}}", hosts), 0);
	ck_assert_str_eq(hosts, "");
	ck_assert_int_eq(config_hosts("{\"auths\":[\"ghcr.io\"]}", hosts), -EINVAL);
	ck_assert_int_eq(config_hosts("{\"credHelpers\":\"x\"}", hosts), -EINVAL);
	ck_assert_int_eq(config_hosts("[]", hosts), -EINVAL);
	ck_assert_int_eq(config_hosts("{\"auths\":{", hosts), -EINVAL);
}
END_TEST

static Suite *auth_config_suite(void)
{
	Suite *s = suite_create("auth_config");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_config_docker_hub);
	tcase_add_test(tc, test_config_key_forms);
	tcase_add_test(tc, test_config_fields);
	tcase_add_test(tc, test_config_no_credentials);
	tcase_add_loop_test(tc, test_config_malformed, 0,
			    (int)(sizeof(malformed_configs) / sizeof(malformed_configs[0])));
	tcase_add_test(tc, test_config_limits);
	tcase_add_test(tc, test_helper_direct);
	tcase_add_test(tc, test_helper_closed_stdio);
	tcase_add_test(tc, test_helper_failures);
	tcase_add_test(tc, test_helper_timeout);
	tcase_add_test(tc, test_config_helpers);
	tcase_add_test(tc, test_lookup_docker_config);
	tcase_add_test(tc, test_lookup_large_config);
	tcase_add_test(tc, test_lookup_with_helper);
	tcase_add_test(tc, test_cache_expiry);
	tcase_add_test(tc, test_cache_eviction);
	tcase_add_test(tc, test_cache_refuses);
	tcase_add_test(tc, test_cache_threads);
	tcase_add_test(tc, test_config_hosts);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(auth_config_suite());
}
