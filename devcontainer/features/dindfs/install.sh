#!/usr/bin/env bash
# install.sh of the dindfs dev container feature (devcontainer-feature.json).
# The dev container tooling runs it as root while it builds the image, with
# the feature's options in the environment (LISTEN).
#
# It builds dindfs from the sources that scripts/feature.sh put beside it
# (src/): a binary built here links to this image's own libraries, whatever
# its Debian or Ubuntu release. The build packages it had to add are purged
# again; the libraries dindfs needs stay. Then it names the mirror in
# /etc/docker/daemon.json (keeping what else is there) and installs the
# entrypoint that starts the mirror.
set -euo pipefail

LISTEN=${LISTEN:-127.0.0.1:5000}
HERE=$(cd "$(dirname "$0")" && pwd)
DAEMON_JSON=/etc/docker/daemon.json
BUILD_PACKAGES=(gcc libc6-dev make cmake pkg-config binutils jq libfuse3-dev libcurl4-openssl-dev
	libsqlite3-dev libssl-dev libjansson-dev libmicrohttpd-dev libarchive-dev
	# dindfs snapshotter: gRPC's C core, protobuf-c and its compiler (proto/)
	libgrpc-dev libprotobuf-c-dev protobuf-c-compiler)

die() {
	echo "dindfs feature: $*" >&2
	exit 1
}

[[ $(id -u) == 0 ]] || die "install.sh must run as root (the dev container tooling does)"
command -v apt-get >/dev/null || die "this image has no apt-get: the feature supports Debian and Ubuntu"
[[ -f $HERE/src/CMakeLists.txt ]] ||
	die "no dindfs sources in $HERE/src: package the feature with scripts/feature.sh"
[[ $LISTEN =~ ^[0-9.]+:[0-9]+$ ]] || die "listen '$LISTEN' is not ADDRESS:PORT"

# ---- build dindfs ------------------------------------------------------------------

added=()
for pkg in "${BUILD_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || added+=("$pkg")
done
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
((${#added[@]} == 0)) || apt-get install -y -qq --no-install-recommends "${added[@]}" >/dev/null
# what dindfs-route runs with (certificates, the trust store): these stay
apt-get install -y -qq --no-install-recommends openssl ca-certificates >/dev/null
apt-mark manual openssl ca-certificates >/dev/null

build=$(mktemp -d)
cmake -S "$HERE/src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDINDFS_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target dindfs >/dev/null
install -m 0755 -s "$build/dindfs" /usr/local/bin/dindfs

# the packages of the shared libraries it links to stay when the build's go
multiarch=$(gcc -print-multiarch)
runtime=$(readelf -d /usr/local/bin/dindfs | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
	while read -r lib; do
		dpkg -S "*/$lib" | grep -E "/$multiarch/$lib\$" | head -1 | cut -d: -f1
	done | sort -u)
[[ -n $runtime ]] || die "cannot tell which packages hold dindfs's libraries"
# shellcheck disable=SC2086 # one package a word
apt-mark manual $runtime >/dev/null

# ---- dockerd's registry mirror ---------------------------------------------------------

mkdir -p "$(dirname "$DAEMON_JSON")"
[[ -s $DAEMON_JSON ]] || echo '{}' >"$DAEMON_JSON"
tmp=$(mktemp "$DAEMON_JSON.XXXXXX")
jq --arg m "http://$LISTEN" '."registry-mirrors" = [$m] + ((."registry-mirrors" // []) - [$m])' \
	"$DAEMON_JSON" >"$tmp" || {
	rm -f "$tmp"
	die "$DAEMON_JSON is not JSON: cannot add the mirror to it"
}
chmod 0644 "$tmp"
mv "$tmp" "$DAEMON_JSON"

# ---- the entrypoint --------------------------------------------------------------------

install -m 0755 "$HERE/dindfs-init.sh" /usr/local/share/dindfs-init.sh
install -m 0755 "$HERE/src/tools/dindfs-route.sh" /usr/local/bin/dindfs-route
mkdir -p /usr/local/etc
echo "DINDFS_MIRROR=$LISTEN" >/usr/local/etc/dindfs-feature.env

# ---- leave only what runs ---------------------------------------------------------------

rm -rf "$build"
((${#added[@]} == 0)) || apt-get purge -y -qq --auto-remove "${added[@]}" >/dev/null
rm -rf /var/lib/apt/lists/*
dindfs --version
