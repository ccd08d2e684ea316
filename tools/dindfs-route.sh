#!/bin/bash
# dindfs-route: make every client in this level pull every registry the
# host's dindfs serves through this level's `dindfs mirror`, then run the
# mirror (in the foreground). The DinD entrypoint (tools/dind-entrypoint.sh)
# and the dev container feature's dindfs-init.sh start it as root.
#
#   dindfs-route [--root MOUNTPOINT] [--mirror ADDRESS:PORT] [--dir DIR]
#
# The names: the lines of MOUNTPOINT/.dindfs/registries (what the host
# daemon serves), or, from a host daemon older than that file, the public
# registries it serves by default. For them, it
#   - makes a CA and a certificate for every name (and 127.0.0.1) in DIR
#     (/run/dindfs); the CA's key is deleted once it has signed, so it never
#     leaves the level and signs nothing else;
#   - installs the CA where clients look: the system trust store (the
#     bundle and its hash link, as update-ca-certificates would),
#     /etc/docker/certs.d/<name>/ca.crt (dockerd),
#     /etc/containers/certs.d/<name>/ca.crt (podman, skopeo, buildah);
#   - resolves every name to 127.0.0.1 (/etc/hosts), where the mirror
#     answers plain HTTP on port 80 and on MIRROR (127.0.0.1:5000), and HTTPS
#     on 443, telling the registries apart by the Host header;
#   - containerd (ctr --hosts-dir, nerdctl): /etc/containerd/certs.d/_default
#     and /etc/containerd/certs.d/<name>/hosts.toml name the mirror, which
#     containerd asks with ?ns=<registry>;
#   - podman, buildah, skopeo: /etc/containers/registries.conf.d/50-dindfs.conf
#     names MIRROR/<registry> as each name's mirror.
# dockerd's "registry-mirrors" (docker.io only) is the entrypoint's.
# A name the host does not serve is left alone: with a network of its own,
# the level reaches that registry directly. Without one (no default
# route), every other name resolves here too (dnsmasq on 127.0.0.1:53, named
# in /etc/resolv.conf), so that a pull of an unserved registry fails at once
# with the mirror's answer, which names the registry and
# `dindfs mount --registry NAME`, and not with a DNS error.
set -euo pipefail

ROOT=${DINDFS_ROOT:-/dindfs}
MIRROR=${DINDFS_MIRROR:-127.0.0.1:5000}
DIR=/run/dindfs
HOSTS=/etc/hosts
# What a host daemon without .dindfs/registries serves besides its
# --upstream, --registry and config.json names (design.md).
BUILTIN=(docker.io index.docker.io registry-1.docker.io ghcr.io quay.io mcr.microsoft.com
	registry.k8s.io gcr.io us.gcr.io eu.gcr.io asia.gcr.io marketplace.gcr.io mirror.gcr.io
	public.ecr.aws registry.gitlab.com nvcr.io)

say() { echo "dindfs-route: $*" >&2; }
die() {
	say "$*"
	exit 1
}

while (($#)); do
	case $1 in
	--root) ROOT=$2 ;;
	--mirror) MIRROR=$2 ;;
	--dir) DIR=$2 ;;
	*) die "unknown option '$1' (--root, --mirror, --dir)" ;;
	esac
	shift 2 || die "$1 needs a value"
done
[[ $MIRROR =~ ^[0-9.]+:[0-9]+$ ]] || die "--mirror '$MIRROR' is not ADDRESS:PORT"

# ---- the names ------------------------------------------------------------------

names=()
if [[ -r $ROOT/.dindfs/registries ]]; then
	while read -r name; do
		[[ -z $name || $name == \#* ]] || names+=("$name")
	done <"$ROOT/.dindfs/registries"
else
	names=("${BUILTIN[@]}")
fi
# the host part of each name that is not an address: what /etc/hosts and
# the certificate name
hosts=()
for name in "${names[@]}"; do
	host=${name%:*}
	[[ $name == *:*:* || $host =~ ^[0-9.]+$ || $host == localhost || $host == \[* ]] || hosts+=("$host")
done
mapfile -t hosts < <(printf '%s\n' "${hosts[@]}" | sort -u)
((${#hosts[@]})) || die "no registry names to route"

# ---- the CA and the mirror's certificate ----------------------------------------

mkdir -p "$DIR"
chmod 0700 "$DIR"
san="IP:127.0.0.1,DNS:localhost"
for host in "${hosts[@]}"; do san+=",DNS:$host"; done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
	-subj "/CN=dindfs level CA ($(hostname))" -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>"$DIR/openssl.err" &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=dindfs mirror" \
		-keyout "$DIR/mirror.key" -out "$DIR/mirror.csr" 2>>"$DIR/openssl.err" &&
	openssl x509 -req -in "$DIR/mirror.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
		-days 3650 -out "$DIR/mirror.crt" -extfile <(printf '%s\n' "subjectAltName=$san" \
		extendedKeyUsage=serverAuth basicConstraints=critical,CA:FALSE) 2>>"$DIR/openssl.err" ||
	die "cannot make the level's certificates: $(tail -1 "$DIR/openssl.err")"
rm -f "$DIR/ca.key" "$DIR/mirror.csr" "$DIR/openssl.err"

# ---- trust -------------------------------------------------------------------------

# What update-ca-certificates would do, without its minute of rehashing on a
# busy machine: the CA joins the bundle (what Go and curl read) and gets its
# hash link (OpenSSL's CApath); from /usr/local/share/ca-certificates a later
# update-ca-certificates keeps it.
ca=$(<"$DIR/ca.crt")
mkdir -p /usr/local/share/ca-certificates /etc/ssl/certs
printf '%s\n' "$ca" >/usr/local/share/ca-certificates/dindfs-level-ca.crt
printf '%s\n' "$ca" >>/etc/ssl/certs/ca-certificates.crt
ln -sf /usr/local/share/ca-certificates/dindfs-level-ca.crt /etc/ssl/certs/dindfs-level-ca.pem
ln -sf dindfs-level-ca.pem "/etc/ssl/certs/$(openssl x509 -hash -noout -in "$DIR/ca.crt").0"
# one mkdir, then the shell's own writes: a process per name is seconds here
dirs=()
for name in "${names[@]}"; do
	dirs+=("/etc/docker/certs.d/$name" "/etc/containers/certs.d/$name" "/etc/containerd/certs.d/$name")
done
mkdir -p "${dirs[@]}" /etc/containerd/certs.d/_default /etc/containers/registries.conf.d
for name in "${names[@]}"; do
	printf '%s\n' "$ca" >"/etc/docker/certs.d/$name/ca.crt"
	printf '%s\n' "$ca" >"/etc/containers/certs.d/$name/ca.crt"
done

# ---- names to the loopback ------------------------------------------------------------

# appended, not rewritten: /etc/hosts is a file the engine bind-mounted
{
	echo "# dindfs-route: the registries the host's dindfs serves, through this level's mirror"
	for host in "${hosts[@]}"; do echo "127.0.0.1 $host"; done
} >>"$HOSTS"

# ---- containerd ---------------------------------------------------------------------------

hosts_toml() { # SERVER_URL: a hosts.toml with the mirror first
	[[ -z $1 ]] || echo "server = \"$1\""
	printf '\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$MIRROR"
}
hosts_toml "" >/etc/containerd/certs.d/_default/hosts.toml
for name in "${names[@]}"; do
	case $name in
	docker.io | index.docker.io | registry-1.docker.io) server=https://registry-1.docker.io ;;
	*) server=https://$name ;;
	esac
	hosts_toml "$server" >"/etc/containerd/certs.d/$name/hosts.toml"
done

# ---- podman, buildah, skopeo ---------------------------------------------------------------

{
	echo "# dindfs-route: pulls of the registries the host's dindfs serves go to this level's mirror"
	for name in "${names[@]}"; do
		# a mirror location is a registry and a namespace: a name with a port cannot be one
		[[ $name != *:* ]] || continue
		printf '\n[[registry]]\nprefix = "%s"\nlocation = "%s"\n\n[[registry.mirror]]\nlocation = "%s/%s"\ninsecure = true\n' \
			"$name" "$name" "$MIRROR" "$name"
	done
} >/etc/containers/registries.conf.d/50-dindfs.conf

# ---- without a network: every other name to the mirror too -------------------------------

# no_network: no default route, IPv4 or IPv6 (a route file that cannot be
# read counts as a network: DNS is left alone)
no_network() {
	[[ -r /proc/net/route ]] && ! awk '$2 == "00000000" { f = 1 } END { exit !f }' /proc/net/route &&
		! awk '$1 == "00000000000000000000000000000000" && $2 == "00" && $10 != "lo" { f = 1 } END { exit !f }' \
			/proc/net/ipv6_route 2>/dev/null
}
if no_network && command -v dnsmasq >/dev/null; then
	# /etc/hosts first (the served names), then this: 127.0.0.1 for any
	# other name, no AAAA (the mirror listens on IPv4)
	dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --no-poll --bind-interfaces \
		--listen-address=127.0.0.1 --port=53 --user=root --group=root \
		--address=/#/127.0.0.1 --pid-file="$DIR/dnsmasq.pid" \
		2>"$DIR/dnsmasq.err" || die "cannot start dnsmasq: $(tail -1 "$DIR/dnsmasq.err")"
	# rewritten in place: the engine bind-mounted it
	printf '%s\n' "# dindfs-route: no network here; other names go to the mirror, which says which registries the host serves" \
		"nameserver 127.0.0.1" >/etc/resolv.conf
	say "no network: names the host does not serve resolve to this level's mirror, which refuses them"
fi

say "${#names[@]} registries go through the dindfs cache: ${names[*]}"
# DINDFS_LOG_REQUESTS=1 (dind-entrypoint): a line per request, with its time
exec dindfs mirror --root "$ROOT" --listen "$MIRROR" --listen 127.0.0.1:80 \
	--tls-listen 127.0.0.1:443 --cert "$DIR/mirror.crt" --key "$DIR/mirror.key" \
	${DINDFS_LOG_REQUESTS:+--log-requests}
