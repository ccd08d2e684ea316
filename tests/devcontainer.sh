#!/usr/bin/env bash
# The dev container feature (devcontainer/features/dindfs), applied as the
# devcontainer CLI applies it, on a dockerd of the test's own:
#
#   - the image: debootstrapped debian:12-slim with Debian's docker.io, a
#     daemon.json of its own, and a stand-in for the docker-in-docker
#     feature's entrypoint (it starts dockerd); then the feature folder as
#     scripts/feature.sh packages it, copied in, its options written to
#     devcontainer-features.env (a non-default listen address), sourced
#     with `set -a`, and install.sh run as root;
#   - the container: the feature's mount (the host's dindfs mount at
#     /dindfs), the capability set of design.md, --network none, and the
#     entrypoints chained by `/bin/sh -c` as the CLI chains them.
#
# Its dockerd names the mirror first (and keeps daemon.json's other
# settings); `docker pull debian:12-slim` works with no network, and with
# the blobs already cached on the host, upstream sees no blob GET and the
# mount counts a hit for each blob.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"
. "$(dirname "$0")/docker_lib.sh"

SRC=$(cd "$(dirname "$0")/.." && pwd)
FEATURE=$SRC/devcontainer/features/dindfs
own_docker_config
MNT=$WORK/mnt
. "$(dirname "$0")/dind_lib.sh"
LISTEN=127.0.0.1:5055 # the option, not its default: options must reach install.sh

# ---- the feature's metadata ---------------------------------------------------------

meta() { jq -er "$1" "$FEATURE/devcontainer-feature.json"; }
has() { meta "$1" >/dev/null; }
check "devcontainer-feature.json is JSON with an id and a version" has '.id and .version'
check "its id is its folder's name" test "$(meta .id)" = "$(basename "$FEATURE")"
check "it installs after the docker-in-docker feature" \
	has '.installsAfter | index("ghcr.io/devcontainers/features/docker-in-docker") != null'
check "it binds the host's /dindfs at /dindfs" \
	has '.mounts | any(.type == "bind" and .source == "/dindfs" and .target == "/dindfs")'
ENTRYPOINT=$(meta .entrypoint)

# install.sh from the repository folder, unpackaged, says what to do
mkdir -p "$WORK/bare"
cp "$FEATURE"/* "$WORK/bare/"
expect_exit 1 "install.sh without the sources refuses" "$WORK/bare/install.sh"
expect_match "$WORK/err" 'scripts/feature.sh' "and names the script that packages them"

# ---- the image, as the devcontainer CLI builds it -------------------------------------

check "a dockerd of our own starts" dockerd_start host
hub_with_debian hub "$host_HOST" bookworm
must_mount "$MNT" --store "$WORK/store" --upstream "docker.io=$hub_URL"
lap "base image, registry, mount"

ctx=$WORK/context
expect_exit 0 "scripts/feature.sh packages the feature" "$SRC/scripts/feature.sh" "$ctx"
# the options file: each option's id in capitals, the user's value or the default
jq -r --arg listen "$LISTEN" '.options | to_entries[] |
	"\(.key | ascii_upcase | gsub("[^A-Z0-9_]"; "_"))=\"\(if .key == "listen" then $listen else .value.default end)\""' \
	"$FEATURE/devcontainer-feature.json" >"$ctx/dindfs/devcontainer-features.env"
cat >"$ctx/docker-init.sh" <<-'EOS'
	#!/bin/sh
	# stands in for the docker-in-docker feature's entrypoint: dockerd, in the background
	dockerd >/var/log/dockerd.log 2>&1 &
	exec "$@"
EOS
chmod +x "$ctx/docker-init.sh"
cat >"$ctx/Dockerfile" <<-'EOS'
	FROM debian:12-slim
	RUN apt-get update \
	 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io iptables procps \
	 && rm -rf /var/lib/apt/lists/*
	RUN mkdir -p /etc/docker \
	 && echo '{"log-level": "warn", "registry-mirrors": ["http://127.0.0.1:5999"]}' >/etc/docker/daemon.json
	COPY docker-init.sh /usr/local/share/docker-init.sh
	COPY dindfs /tmp/dev-container-features/dindfs_0
	RUN cd /tmp/dev-container-features/dindfs_0 \
	 && set -a && . ./devcontainer-features.env && set +a \
	 && chmod +x ./install.sh && ./install.sh
EOS
expect_exit 0 "the image builds with the feature installed" dk build --network host -t dindfs-devcontainer "$ctx"
[[ $FAILED == 0 ]] || {
	tail -n 30 "$WORK/out" "$WORK/err"
	finish || true
	exit 1
}
lap "image build"
in_image() { dk run --rm --network none --entrypoint /bin/sh dindfs-devcontainer -c "$1"; }
expect_exit 0 "dindfs runs in the image" in_image 'dindfs --version'
check "the build packages it added are gone" not in_image 'command -v gcc || command -v cmake'
expect_exit 0 "its entrypoint is where the metadata says" in_image "test -x $ENTRYPOINT"

# ---- the dev container ------------------------------------------------------------------

# the CLI's entrypoint: each feature's entrypoint in install order, then the command
chain="echo Container started
trap 'exit 0' 15
/usr/local/share/docker-init.sh
$ENTRYPOINT
exec \"\$@\"
while sleep 1 & wait \$!; do :; done"
start_dev() { # NAME [DOCKER RUN OPTION...]: running, its dockerd answering
	local name=$1
	shift
	on_exit "DOCKER_HOST=$host_HOST docker rm -f $name >/dev/null 2>&1"
	dk run -d --name "$name" "${DIND[@]}" --tmpfs /var/lib/docker:exec --network none "$@" \
		--entrypoint /bin/sh dindfs-devcontainer -c "$chain" - >/dev/null || return 1
	level_wait "$name" || {
		dk exec "$name" tail -5 /var/log/dockerd.log
		return 1
	}
}
at() { dk exec dev "$@"; }

check "the dev container starts and its dockerd answers" start_dev dev -v "$MNT:/dindfs"
dk logs dev >"$WORK/dev.log" 2>&1
expect_match "$WORK/dev.log" "pulls go through the cache at /dindfs \(dindfs mirror on $LISTEN" \
	"the feature's entrypoint says where pulls go"
at docker info --format '{{json .RegistryConfig.Mirrors}}' >"$WORK/mirrors" 2>&1 || true
expect_match "$WORK/mirrors" "^\[\"http://$LISTEN/\",\"http://127.0.0.1:5999/\"\]\$" \
	"docker info: the feature's mirror first, the image's own kept"
at cat /etc/docker/daemon.json >"$WORK/daemon.json"
json_true() { jq -e "$1" "$2" >/dev/null; } # FILTER FILE
check "daemon.json keeps its other settings" json_true '."log-level" == "warn"' "$WORK/daemon.json"

# the blobs are in the cache already (another level pulled them): this pull
# must come from the mount alone
expect_exit 0 "the host pulls debian:12-slim into the cache" "$DINDFS" pull --root "$MNT" debian:12-slim
gets=$(blob_gets hub)
check "upstream was asked for each blob once ($HUB_BLOBS)" test "$gets" = "$HUB_BLOBS"
stats_save "$MNT" "$WORK/stats.1"
expect_exit 0 "docker pull debian:12-slim in the dev container (no network)" at docker pull -q debian:12-slim
stats_save "$MNT" "$WORK/stats.2"
check "upstream saw no blob GET" test "$(blob_gets hub)" = "$gets"
check "upstream_bytes did not change" \
	test "$(stat_in "$WORK/stats.2" upstream_bytes)" = "$(stat_in "$WORK/stats.1" upstream_bytes)"
hits=$(($(stat_in "$WORK/stats.2" blob_hits) - $(stat_in "$WORK/stats.1" blob_hits)))
check "the mount counted a hit for each blob ($hits, wanted >= $HUB_BLOBS)" test "$hits" -ge "$HUB_BLOBS"
check "and served bytes" \
	test "$(stat_in "$WORK/stats.2" bytes_served)" -gt "$(stat_in "$WORK/stats.1" bytes_served)"
want=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$hub_HOSTPORT/library/debian:12-slim")
at docker image inspect --format '{{json .RepoDigests}}' debian:12-slim >"$WORK/digests" 2>&1 || true
expect_match "$WORK/digests" "debian@$want" "the image pulled is upstream's ($want)"
lap "dev container"

# ---- without the mount --------------------------------------------------------------------

check "a dev container without /dindfs starts all the same" start_dev bare
dk logs bare >"$WORK/bare.log" 2>&1
expect_match "$WORK/bare.log" '/dindfs is not mounted' "and its entrypoint says there is no cache"
lap "without the mount"
finish
