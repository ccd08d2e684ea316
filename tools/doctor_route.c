/*
 * doctor_route: in a level, for each client found (dockerd, containerd's
 * ctr and nerdctl, podman/skopeo/buildah), which registries the host's
 * dindfs serves go through this level's mirror and which would go direct,
 * and why — what tools/dindfs-route.sh sets up, checked from the files
 * each client reads and from how each name resolves here.
 */
#include "doctor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mount_layout.h"
#include "ref.h"

#define NAMES_MAX     256
#define ETC_HOSTS     "/etc/hosts"
#define RESOLV_CONF   "/etc/resolv.conf"
#define PROC_ROUTE    "/proc/net/route"
#define PROC_ROUTE6   "/proc/net/ipv6_route"
#define CONTAINERD_D  "/etc/containerd/certs.d"
#define CONTAINERS_CF "/etc/containers/registries.conf.d/50-dindfs.conf"
#define MIRROR_PLAIN  "127.0.0.1:5000"

/* What a host daemon without .dindfs/registries serves (besides its own names). */
static const char *const builtin[] = {
	"docker.io",
	"index.docker.io",
	"registry-1.docker.io",
	"ghcr.io",
	"quay.io",
	"mcr.microsoft.com",
	"registry.k8s.io",
	"gcr.io",
	"public.ecr.aws",
	"registry.gitlab.com",
	"nvcr.io",
};

struct names {
	char *v[NAMES_MAX];
	size_t n;
	bool published; /* from .dindfs/registries */
};

static void names_load(const struct doctor *d, struct names *ret)
{
	char path[4096], line[REF_NAME_MAX + 2];
	FILE *f;

	memset(ret, 0, sizeof(*ret));
	snprintf(path, sizeof(path), "%s/" FS_LAYOUT_REGISTRIES_PATH, d->root);
	f = fopen(path, "re");
	if (!f) {
		for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
			ret->v[ret->n++] = strdup(builtin[i]);
		return;
	}
	ret->published = true;
	while (ret->n < NAMES_MAX && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (*line && *line != '#')
			ret->v[ret->n++] = strdup(line);
	}
	fclose(f);
}

static void names_release(struct names *names)
{
	for (size_t i = 0; i < names->n; i++)
		free(names->v[i]);
}

static bool is_hub(const char *name)
{
	return strcmp(name, "docker.io") == 0 || strcmp(name, "index.docker.io") == 0 ||
	       strcmp(name, "registry-1.docker.io") == 0;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* A command on $PATH (or in the usual places). */
static bool have_command(const char *name)
{
	static const char *const dirs[] = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
					   "/usr/bin",	      "/sbin",		"/bin"};
	char path[256];

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dirs[i], name);
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

/*
 * The address /etc/hosts gives host (its first line that names it), into
 * buf; false when it names it nowhere.
 */
static bool etc_hosts_address(const char *host, char *buf, size_t size)
{
	static const char blank[] = " \t";
	char line[1024];
	bool found = false;
	FILE *f = fopen(ETC_HOSTS, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		const char *p = line + strspn(line, blank), *addr = p;
		size_t addr_len;

		line[strcspn(line, "#\n")] = '\0';
		addr_len = strcspn(addr, blank);
		if (addr_len == 0)
			continue;
		for (p = addr + addr_len; !found && *(p += strspn(p, blank));
		     p += strcspn(p, blank))
			found = strcspn(p, blank) == strlen(host) &&
				strncasecmp(p, host, strlen(host)) == 0;
		if (found)
			snprintf(buf, size, "%.*s", (int)addr_len, addr);
	}
	fclose(f);
	return found;
}

static bool loopback(const char *address)
{
	struct in_addr a;

	return inet_pton(AF_INET, address, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/*
 * Whether name (a registry, maybe with a port) reaches this level's mirror
 * when a client connects to it; else why not, into why.
 */
static bool resolves_here(const char *name, char *why, size_t size)
{
	char host[REF_NAME_MAX + 1], address[64];
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
	const char *colon = strrchr(name, ':');
	size_t len = colon ? (size_t)(colon - name) : strlen(name);
	int r;

	snprintf(host, sizeof(host), "%.*s", (int)len, name);
	if (etc_hosts_address(host, address, sizeof(address))) {
		if (loopback(address))
			return true;
		snprintf(why, size, "/etc/hosts points elsewhere (%s)", address);
		return false;
	}
	r = getaddrinfo(host, NULL, &hints, &res);
	if (r != 0) {
		snprintf(why, size, "not in /etc/hosts, and it does not resolve (%s)",
			 gai_strerror(r));
		return false;
	}
	inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, address,
		  sizeof(address));
	freeaddrinfo(res);
	if (loopback(address))
		return true;
	snprintf(why, size, "not in /etc/hosts: DNS gives %s, the registry itself", address);
	return false;
}

/* Whether the file names the mirror (a line that holds MIRROR_PLAIN). */
static bool file_names_mirror(const char *path)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(path, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, MIRROR_PLAIN) != NULL;
	fclose(f);
	return found;
}

/* Whether registries.conf.d/50-dindfs.conf has prefix = "name". */
static bool containers_conf_names(const char *name)
{
	char line[1024], want[REF_NAME_MAX + 16];
	bool found = false;
	FILE *f = fopen(CONTAINERS_CF, "re");

	if (!f)
		return false;
	snprintf(want, sizeof(want), "prefix = \"%s\"", name);
	while (!found && fgets(line, sizeof(line), f))
		found = strncmp(line, want, strlen(want)) == 0;
	fclose(f);
	return found;
}

/*
 * One client's verdict: the names through the cache in one line, then the
 * names that would go direct, one line for each reason (the name's, or
 * "...: no hosts.toml names the mirror" shared by many), and the fix.
 */
#define LIST_SHOWN  8
#define REASONS_MAX 8

struct reason {
	char why[256];
	char names[1024];
	size_t n;
};

struct verdict {
	const char *client;
	char through[1024];
	size_t n_through, n_direct, n_reasons;
	struct reason reasons[REASONS_MAX + 1]; /* the last: every other reason */
};

/* Append name to a list of n names ("a, b, ..." past LIST_SHOWN). */
static void list_add(char *list, size_t size, size_t n, const char *name)
{
	size_t len = strlen(list);

	if (n < LIST_SHOWN)
		snprintf(list + len, size - len, "%s%s", len ? ", " : "", name);
	else if (n == LIST_SHOWN)
		snprintf(list + len, size - len, ", ...");
}

static void verdict_through(struct verdict *v, const char *name)
{
	list_add(v->through, sizeof(v->through), v->n_through++, name);
}

static void verdict_direct(struct verdict *v, const char *name, const char *why)
{
	struct reason *r = NULL;

	for (size_t i = 0; i < v->n_reasons && !r; i++)
		if (strcmp(v->reasons[i].why, why) == 0)
			r = &v->reasons[i];
	if (!r) {
		r = &v->reasons[v->n_reasons < REASONS_MAX ? v->n_reasons++ : REASONS_MAX];
		if (!r->n)
			snprintf(r->why, sizeof(r->why), "%s",
				 r == &v->reasons[REASONS_MAX] ? "for other reasons" : why);
	}
	list_add(r->names, sizeof(r->names), r->n++, name);
	v->n_direct++;
}

static void verdict_end(struct doctor *d, struct verdict *v, const char *fix)
{
	if (v->n_through)
		doctor_say(d, v->n_direct ? DOCTOR_INFO : DOCTOR_OK,
			   "%s: %zu registr%s through the cache (%s)%s", v->client, v->n_through,
			   v->n_through == 1 ? "y goes" : "ies go", v->through,
			   v->n_direct ? "" : ": all the host serves");
	for (size_t i = 0; i <= REASONS_MAX; i++) {
		const struct reason *r = &v->reasons[i];

		if (r->n)
			doctor_say(d, DOCTOR_WARN,
				   "%s: %s would go direct, not through the cache: %s", v->client,
				   r->names, r->why);
	}
	if (v->n_direct)
		doctor_fix(d, "%s", fix);
}

static const char fix_route[] =
	"start the level with the dindfs DinD image's entrypoint (dindfs-route sets "
	"/etc/hosts, the certificates and the clients' files), or run dindfs-route";

static void check_dockerd(struct doctor *d, const struct names *names)
{
	json_t *mirrors = json_object_get(json_object_get(d->info, "RegistryConfig"), "Mirrors");
	struct verdict v = {.client = "dockerd"};
	bool hub_mirror = false;
	char why[256];
	json_t *m;
	size_t i;

	json_array_foreach(mirrors, i, m)
	{
		const char *url = json_string_value(m);

		hub_mirror |= url && strstr(url, MIRROR_PLAIN) != NULL;
	}
	for (i = 0; i < names->n; i++) {
		const char *name = names->v[i];

		if (is_hub(name)) {
			if (hub_mirror)
				verdict_through(&v, name);
			else
				verdict_direct(
					&v, name,
					"\"registry-mirrors\" does not name http://" MIRROR_PLAIN);
		} else if (resolves_here(name, why, sizeof(why))) {
			verdict_through(&v, name);
		} else {
			verdict_direct(&v, name, why);
		}
	}
	verdict_end(d, &v, fix_route);
}

static void check_containerd(struct doctor *d, const struct names *names)
{
	bool fallback = file_names_mirror(CONTAINERD_D "/_default/hosts.toml");
	struct verdict v = {.client = "containerd (ctr --hosts-dir " CONTAINERD_D ", nerdctl)"};
	char path[512];

	for (size_t i = 0; i < names->n; i++) {
		snprintf(path, sizeof(path), CONTAINERD_D "/%s/hosts.toml", names->v[i]);
		if (exists(path) ? file_names_mirror(path) : fallback)
			verdict_through(&v, names->v[i]);
		else
			verdict_direct(&v, names->v[i],
				       exists(path) ? "its hosts.toml does not name the mirror"
						    : "no hosts.toml names the mirror");
	}
	verdict_end(d, &v, fix_route);
}

static void check_containers(struct doctor *d, const struct names *names)
{
	struct verdict v = {.client = "podman/skopeo/buildah"};
	char why[256];

	for (size_t i = 0; i < names->n; i++) {
		const char *name = names->v[i];

		if (containers_conf_names(name) || resolves_here(name, why, sizeof(why)))
			verdict_through(&v, name);
		else
			verdict_direct(&v, name,
				       "no mirror in " CONTAINERS_CF
				       ", and the name is not routed here");
	}
	verdict_end(d, &v, fix_route);
}

/*
 * Whether this level has a network: a default route (IPv4 or IPv6). Not
 * its interfaces: the level's own dockerd adds a bridge.
 */
static bool have_network(void)
{
	char line[512], dest[64];
	bool found = false;
	FILE *f = fopen(PROC_ROUTE, "re");

	if (!f)
		return true; /* cannot tell: as a level with one would */
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%*s %63s", dest) == 1 && strcmp(dest, "00000000") == 0;
	fclose(f);
	f = fopen(PROC_ROUTE6, "re");
	while (f && !found && fgets(line, sizeof(line), f)) {
		char plen[8], iface[32];

		found = sscanf(line, "%63s %7s %*s %*s %*s %*s %*s %*s %*s %31s", dest, plen,
			       iface) == 3 &&
			strcmp(dest, "00000000000000000000000000000000") == 0 &&
			strcmp(plen, "00") == 0 && strcmp(iface, "lo") != 0;
	}
	if (f)
		fclose(f);
	return found;
}

/* The first nameserver of /etc/resolv.conf, into buf; false when none. */
static bool first_nameserver(char *buf, size_t size)
{
	char line[512], address[64];
	bool found = false;
	FILE *f = fopen(RESOLV_CONF, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, " nameserver %63s", address) == 1;
	fclose(f);
	if (found)
		snprintf(buf, size, "%s", address);
	return found;
}

/*
 * The names the host does not serve: with a network, they go direct; with
 * none, dindfs-route resolves them to the mirror (dnsmasq), which refuses
 * them in one line naming --registry, where a DNS error would not.
 */
static void check_others(struct doctor *d)
{
	char ns[64];

	if (have_network()) {
		doctor_say(
			d, DOCTOR_INFO,
			"other registries: not served by the host's dindfs, they go direct (this "
			"level has a network)");
	} else if (first_nameserver(ns, sizeof(ns)) && loopback(ns)) {
		doctor_say(
			d, DOCTOR_OK,
			"other registries: no network here; they resolve to the mirror (%s), which "
			"refuses them, naming dindfs mount --registry NAME",
			ns);
	} else {
		doctor_say(
			d, DOCTOR_WARN,
			"other registries: no network here, and %s%s: a pull of one fails on DNS, "
			"without saying that the host's dindfs does not serve it",
			first_nameserver(ns, sizeof(ns)) ? "the nameserver is " : "no nameserver",
			first_nameserver(ns, sizeof(ns)) ? ns : "");
		doctor_fix(d, "%s", fix_route);
	}
}

void doctor_check_routes(struct doctor *d)
{
	struct names names;

	if (d->at_daemon_level || !d->stats)
		return; /* at the host, or no mount to go through */
	names_load(d, &names);
	if (!names.published)
		doctor_say(
			d, DOCTOR_INFO,
			"registries: the host's dindfs publishes no .dindfs/registries: checking "
			"the public registries it serves by default");
	if (d->info)
		check_dockerd(d, &names);
	if (have_command("ctr") || have_command("nerdctl") || have_command("containerd"))
		check_containerd(d, &names);
	if (have_command("podman") || have_command("skopeo") || have_command("buildah"))
		check_containers(d, &names);
	check_others(d);
	names_release(&names);
}
