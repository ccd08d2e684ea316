#!/usr/bin/env bash
# bench/nested-pull.sh: how a nested dockerd gets a ~200 MB image from a
# registry behind an emulated WAN (bench/wan.sh: a network namespace, a
# veth pair, `tc tbf` at RATE each way), every way there is, in one run:
#
#   direct                  L1's dockerd pulls from upstream itself
#   distribution cold/warm  through Debian's docker-registry as a
#                           pull-through mirror (proxy.remoteurl) on the host
#   dindfs mirror cold/warm through `dindfs mirror` in L1, on the host's
#                           dindfs mount bound at /dindfs (the entrypoint's way)
#   dindfs load warm        `dindfs load` in L1, from that warm cache
#   containerised dindfs mirror cold/warm, load warm
#                           the same, with the mount made by dindfs as a
#                           container (the Dockerfile's stage dindfs, as the
#                           README's "Run dindfs as a container" starts it)
#                           and bound at /dindfs:rslave
#   docker load tar         `docker load -i` of a local docker-archive in L1
#   N at once               N fresh L1s pull at the same moment, cold,
#                           through dindfs and through distribution (N in
#                           $CONCURRENT, default "4 8")
#   dindfs ghcr.io mirror cold/warm
#                           the same image from a second upstream behind the
#                           WAN, served as ghcr.io: `docker pull
#                           ghcr.io/org/big` through dindfs mirror (the
#                           name resolves to L1's loopback: dindfs-route);
#                           on the classic store, and with the containerd
#                           image store beside docker.io's cold and warm
#                           there, as its baseline
#
# "L1" is a container of the DinD image built from the Dockerfile (on
# $DIND_SUITE, default trixie), run with the explicit capability set of
# design.md and a tmpfs /var/lib/docker, by the tests' "host" dockerd
# (tests/docker_lib.sh: its shared data-root keeps the images built, so a
# run rebuilds only what changed). Every pull is timed inside L1, with a fresh L1 (an
# empty dockerd) each time; "cold" and "warm" are the state of the cache in
# between. Upstream bytes are read on the upstream side: the bytes of blob
# GETs in its registry's access log, and the bytes the host side of the
# veth received ("wire", so with TCP/IP headers); both are divided by the
# image's size (its config and layers as the manifest gives them).
#
# Networks: the dindfs rows run L1 with --network none (the mirror on L1's
# loopback reads the mount). The direct and distribution rows put L1 on a
# bridge network of the bench's dockerd (no NAT, no iptables): on the host
# side of that bridge listen the distribution mirror and a socat forwarder
# to the upstream registry, and L1's dockerd is started with
# --registry-mirror / --insecure-registry for them.
#
# Prints each measurement, then a table of ratios, each against a baseline
# measured in the same run, with its goal:
#   dindfs mirror cold / direct                  at most 1.05
#   dindfs mirror warm / distribution warm       at most 1.00
#   dindfs load warm / docker load of a tar      at most 1.05
#   containerised dindfs cold / host dindfs cold, and warm / warm:
#                                                within 0.95-1.05
#   N at once through dindfs: upstream bytes / image size exactly 1.00,
#     and the slowest of them / a single dindfs cold pull at most 1.20
#   dindfs ghcr.io / dindfs docker.io, cold and warm, on each image store:
#                                                within 0.95-1.05
# (distribution's figures beside them have no goal: they are the peer), and
# draws the times and ratios with gnuplot into $PLOT (default
# nested-pull.png in the current directory).
#
# Usage: bench/nested-pull.sh [BUILD_DIR] [RANDOM_MB] [ROUNDS] [RATE]
#   defaults: build 170 1 100mbit. The image is debian:12-slim (debootstrap,
#   scripts/base-image.sh) plus two layers of RANDOM_MB/2 MB of random
#   bytes each. With ROUNDS > 1 the rows are interleaved, round by round,
#   and the figures are medians. Needs root (network namespaces, FUSE, a
#   dockerd). Installs what it needs, and builds BUILD_DIR when it has no
#   dindfs yet.
#
# ROWS (default all of them) picks rows, for a quick run while working on
# one: any of direct distribution dindfs container docker-load at-once ghcr
# layers. The ratios whose rows did not run are left out.
#
# layers: the shared layers (README, "Shared layers"), on the containerd
# image store of $DIND_SUITE's dockerd (26.1 on trixie), L1s on no network:
#   layers cold            a fresh cache, L1 with dindfs snapshotter pulls
#                          (nothing unpacked on the host yet), against
#   layers cold, snapshotter off
#                          the same with DINDFS_SNAPSHOTTER=off (today's
#                          cold pull on that store)             at most 1.05
#   layers warm pull+run   once the host daemon has unpacked the layers, a
#                          fresh L1: docker pull && docker run --rm IMAGE
#                          true, against docker load -i of a tar && docker
#                          run in a fresh L1 (classic store)    at most 0.25
#   disk added by it       du -sxk of L1's /var/lib/docker before and after,
#                          / the image size                     under 0.01
#   read every file        in a container: find / -xdev -type f -exec cat,
#                          timed inside it, on the shared layers against
#                          the image unpacked locally (snapshotter off),
#                          each READ_SETTLE_S (default 5) seconds after the
#                          pull, so that neither read shares the 2 cores
#                          with what the pull left running; with the
#                          requests it sent to the daemon's layers/
#                                                               at most 1.20
set -euo pipefail
plot=$(realpath -m "${PLOT:-nested-pull.png}")
cd "$(dirname "$0")/.."
build=$(realpath -m "${1:-build}")
random_mb=${2:-170}
rounds=${3:-1}
rate=${4:-100mbit}
read -r -a concurrent <<<"${CONCURRENT-4 8}"
read -r -a rows_wanted <<<"${ROWS-direct distribution dindfs container docker-load at-once ghcr layers}"
dind_suite=${DIND_SUITE:-trixie}
[[ $(id -u) == 0 ]] || { echo "bench/nested-pull.sh: run as root" >&2; exit 1; }
. scripts/deps.sh
install_packages "${BUILD_PACKAGES[@]}" "${BENCH_PACKAGES[@]}" docker.io docker-registry \
	skopeo debootstrap curl bc python3 iproute2 jq
if [[ ! -x $build/dindfs ]]; then
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDINDFS_TESTS=OFF >/dev/null
	cmake --build "$build" -j2 --target dindfs >/dev/null
fi
export DINDFS=$build/dindfs
. tests/lib.sh
. tests/registry.sh
. tests/mount_lib.sh
. tests/docker_lib.sh
. tests/dind_lib.sh
. tests/container_lib.sh
. bench/wan.sh
# so that lib.sh's EXIT trap cleans up, once: `timeout` sends its TERM to the
# script and then to its whole group, the script again included
trap 'trap "" INT TERM; exit 130' INT TERM

SRC=$PWD
DIND_IMAGE=dindfs-dind:nested-pull
CMOUNT_IMAGE=dindfs:nested-pull # dindfs as a container
REPO=library/big # docker.io/library/big:v1 to L1, so registry-mirrors apply
GH_REPO=org/big  # ghcr.io/org/big:v1, from the second upstream
TAG=v1
BR_HOST=198.19.0.1 # the host's side of the bench's bridge network
PROXY_PORT=5001    # the distribution mirror there
FORWARD_PORT=5002  # socat to the upstream registry there

say() { echo "# $*"; }

# want ROW: ROW is one of the rows to run ($ROWS).
want() { [[ " ${rows_wanted[*]} " == *" $1 "* ]]; }

# quietly COMMAND...: what it prints is shown only when it fails.
quietly() {
	"$@" >"$WORK/quietly.out" 2>&1 || {
		tail -20 "$WORK/quietly.out" >&2
		return 1
	}
}

# ---- the setup ----------------------------------------------------------------

setup_images() {
	local base
	# the tests' "host" dockerd: its data-root (tests/docker_lib.sh) keeps the
	# base images, the DinD image's layers and big:v1 from run to run
	dockerd_start host
	DIND_HOST=$host_HOST
	base=$("$SRC/scripts/base-image.sh" --host "$host_HOST" bookworm "$dind_suite" | tail -1)
	say "building the DinD image on $base"
	quietly dk build -q --network host --build-arg "BASE_IMAGE=$base" -t "$DIND_IMAGE" "$SRC"
	if want container; then
		say "building the dindfs image (--target dindfs)"
		quietly dk build -q --network host --build-arg "BASE_IMAGE=$base" --target dindfs \
			-t "$CMOUNT_IMAGE" "$SRC"
	fi
	say "building the image: debian:12-slim + 2 x $((random_mb / 2)) MB of random bytes"
	printf 'FROM debian:12-slim\nRUN head -c %d /dev/urandom >/random-1\nRUN head -c %d /dev/urandom >/random-2\n' \
		$((random_mb * 500000)) $((random_mb * 500000)) >"$WORK/Dockerfile.big"
	quietly dk build -q --network none -t "big:$TAG" - <"$WORK/Dockerfile.big"
	mkdir -p "$WORK/tar"
	dk save -o "$WORK/tar/big.tar" "big:$TAG"
}

setup_upstream() {
	wan_up "$rate"
	wan_registry up 5000
	skopeo copy -q --src-daemon-host "$host_HOST" --dest-tls-verify=false \
		"docker-daemon:big:$TAG" "docker://$up_HOSTPORT/$REPO:$TAG"
	IMAGE_BYTES=$(skopeo inspect --raw --tls-verify=false "docker://$up_HOSTPORT/$REPO:$TAG" |
		python3 -c 'import json, sys; m = json.load(sys.stdin)
print(m["config"]["size"] + sum(l["size"] for l in m["layers"]))')
	say "upstream: $up_URL/$REPO:$TAG, $((IMAGE_BYTES / 1000000)) MB (config and layers)"
	DIFF_IDS=$(skopeo inspect --config --tls-verify=false "docker://$up_HOSTPORT/$REPO:$TAG" |
		python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)["rootfs"]["diff_ids"]))')
	if want ghcr; then
		wan_registry gh 5003
		skopeo copy -q --src-daemon-host "$host_HOST" --dest-tls-verify=false \
			"docker-daemon:big:$TAG" "docker://$gh_HOSTPORT/$GH_REPO:$TAG"
		say "the second upstream, as ghcr.io: $gh_URL/$GH_REPO:$TAG"
	fi
}

# The bytes of blobs the upstream registries have sent so far.
upstream_blob_bytes() {
	local bytes
	bytes=$(wan_blob_bytes up)
	! want ghcr || bytes=$((bytes + $(wan_blob_bytes gh)))
	echo "$bytes"
}

# The bridge network for the L1s that reach the host, and the socat
# forwarder that takes them to the upstream registry.
setup_bridge() {
	BR_NET=nested-pull-$$
	# the bridge itself too, for when the dockerd is gone first
	on_exit "dk network rm $BR_NET >/dev/null; ip link del dfnp$$ 2>/dev/null"
	dk network create --subnet "${BR_HOST%.*}.0/24" --gateway "$BR_HOST" \
		-o "com.docker.network.bridge.name=dfnp$$" "$BR_NET" >/dev/null
	socat "TCP-LISTEN:$FORWARD_PORT,bind=$BR_HOST,fork,reuseaddr" "TCP:$up_HOSTPORT" &
	on_exit "_stop_pid $!"
	wan_wait_v2 "http://$BR_HOST:$FORWARD_PORT" "the forwarder to upstream"
}

# ---- L1s, and timing in them --------------------------------------------------

# What every L1 is: the DinD image, a level's capabilities, a tmpfs for
# its dockerd. Then: on the bridge (with dockerd's options after the image),
# or on no network with a dindfs mount at /dindfs.
#
# Before it pulls docker.io/... through a mirror, dockerd resolves
# docker.io (to match it against the insecure registries). On the bridge,
# docker's embedded DNS forwards that to servers it cannot reach, and the
# lookup takes 10 s; on no network it fails at once. So the bridge's L1s
# find docker.io in /etc/hosts (at 0.0.0.0: nothing to fall back to).
l1_on_bridge() { # NAME [DOCKERD_OPTION...]
	local name=$1
	shift
	level_run "$name" "${DIND[@]}" --tmpfs /var/lib/docker:exec --network "$BR_NET" \
		--add-host docker.io:0.0.0.0 "$DIND_IMAGE" dockerd "$@"
}
l1_on_cache() { # NAME [DOCKER_RUN_OPTION...]
	local name=$1
	shift
	level_run "$name" "${DIND[@]}" --tmpfs /var/lib/docker:exec --network none \
		-v "$CACHE_MNT:/dindfs$CACHE_BIND_MODE" "$@" "$DIND_IMAGE"
}
l1_direct() { l1_on_bridge "$1" --insecure-registry "$BR_HOST:$FORWARD_PORT"; }
l1_distribution() {
	l1_on_bridge "$1" --registry-mirror "http://$BR_HOST:$PROXY_PORT" \
		--insecure-registry "$BR_HOST:$PROXY_PORT"
}

# l1_rm NAME...: remove these L1s, keeping their logs in $WORK (KEEP_WORK=1
# keeps $WORK).
l1_rm() {
	local name
	for name; do
		{ dk logs -t "$name" && dk exec "$name" cat /var/log/dockerd.log; } >>"$WORK/l1-$name.log" 2>&1 || true
	done
	level_rm "$@"
}

# timed_in NAME COMMAND: run COMMAND (bash) in the L1 NAME; print when it
# started and ended there (seconds of L1's clock, the host's).
timed_in() {
	dk exec "$1" bash -c 's=$EPOCHREALTIME; { '"$2"'; } >/dev/null || exit; echo "$s $EPOCHREALTIME"'
}

# What upstream has sent: blob bytes in its access log, and the bytes the
# host side of the veth has received.
upstream_mark() {
	mark_blob=$(upstream_blob_bytes)
	mark_wire=$(wan_received)
}
upstream_ratios() { # prints "BLOB WIRE": each since the mark, / the image size
	upstream_settle
	echo "$(($(upstream_blob_bytes) - mark_blob)) $(($(wan_received) - mark_wire))" |
		awk -v size="$IMAGE_BYTES" '{ printf "%.2f %.2f\n", $1 / size, $2 / size }'
}

# upstream_settle: wait until nothing more comes from upstream (1 s with no
# byte; at most 2 minutes). A pull-through cache may still be fetching when
# its client is done, and an access log line is written at the end of its
# response: what a pull causes upstream is counted whole.
upstream_settle() {
	local before after i
	after=$(wan_received)
	for ((i = 0; i < 120; i++)); do
		before=$after
		sleep 1
		after=$(wan_received)
		((after != before)) || return 0
	done
}

# Results, by row label: the times of every round, and upstream's ratios.
declare -A TIMES EACH SLOWEST BLOB WIRE
LABELS=()
record() { # LABEL SECONDS... (several for the N-at-once rows)
	local label=$1 ratios
	shift
	[[ -v "TIMES[$label]" ]] || LABELS+=("$label")
	ratios=$(upstream_ratios)
	TIMES[$label]+="$* "
	EACH[$label]+="${EACH[$label]:+ | }$*"
	SLOWEST[$label]+="$(printf '%s\n' "$@" | sort -g | tail -1) "
	BLOB[$label]+="${ratios% *} "
	WIRE[$label]+="${ratios#* } "
	printf '  %-46s %s s   upstream %sx the image (wire %sx)\n' "$label" "$*" "${ratios% *}" "${ratios#* }"
}

# measure LABEL NAME COMMAND: a fresh L1 NAME is running; time COMMAND in
# it, record it, remove the L1.
measure() {
	local label=$1 name=$2 t
	level_wait "$name"
	upstream_mark
	t=$(timed_in "$name" "$3") || {
		echo "bench/nested-pull.sh: $label: '$3' failed in $name" >&2
		return 1
	}
	record "$label" "$(awk '{ printf "%.2f", $2 - $1 }' <<<"$t")"
	echo "pull from $t" >>"$WORK/l1-$name.log"
	l1_rm "$name"
}

# ---- the caches ---------------------------------------------------------------

# A cache function makes a cold dindfs cache and sets CACHE_MNT, the path
# L1s bind at /dindfs, CACHE_BIND_MODE, the bind's options (":rslave"), and
# CACHE_DROP, the command that ends it (the next cache function runs it).
CACHE_N=0
CACHE_DROP=:

# This one: a new store, mounted on the host.
cache_host_mount() {
	$CACHE_DROP
	CACHE_N=$((CACHE_N + 1))
	CACHE_MNT=$WORK/mnt-$CACHE_N
	CACHE_BIND_MODE=""
	mount_dindfs "$CACHE_MNT" --store "$WORK/store-$CACHE_N" --upstream "docker.io=$up_URL" \
		${gh_URL:+--upstream "ghcr.io=$gh_URL"}
	CACHE_DROP="drop_host_mount $CACHE_MNT $MOUNT_PIDFILE $WORK/store-$CACHE_N"
}
drop_host_mount() { # MNT PIDFILE STORE
	unmount_dindfs "$1" "$2"
	rm -rf "$3"
}

# This one: dindfs as a container on the bench's dockerd, as the README
# starts it without compose (tests/container_lib.sh): the mount and its
# anchor, a new volume for the store, $WORK/var-lib-dindfs standing for the
# Docker host's /var/lib/dindfs (made a shared mount once). The mount runs
# with --network host: the upstream is behind the WAN, on this host's side.
cache_container_mount() {
	local hostdir=$WORK/var-lib-dindfs
	$CACHE_DROP
	CACHE_N=$((CACHE_N + 1))
	if [[ -z ${HOSTDIR_SHARED:-} ]]; then
		host_dir_share "$hostdir"
		on_exit "host_dir_undo $hostdir"
		HOSTDIR_SHARED=1
	fi
	on_exit "dk volume rm nested-pull-store-$CACHE_N >/dev/null 2>&1"
	cmount_run nested-pull-dindfs "$hostdir" "nested-pull-store-$CACHE_N" --network host \
		-e "DINDFS_UPSTREAM=docker.io=$up_URL"
	CACHE_MNT=$hostdir/mnt
	CACHE_BIND_MODE=:rslave
	CACHE_DROP="drop_container_mount nested-pull-store-$CACHE_N"
}
drop_container_mount() { # VOLUME
	{ dk logs -t nested-pull-dindfs && dk logs -t nested-pull-dindfs-anchor; } \
		>>"$WORK/dindfs-container.log" 2>&1 || true
	cmount_stop nested-pull-dindfs
	dk volume rm "$1" >/dev/null 2>&1 || true
}

# ---- the rows -----------------------------------------------------------------

row_direct() {
	l1_direct direct
	measure "direct" direct "docker pull $BR_HOST:$FORWARD_PORT/$REPO:$TAG"
}

row_distribution() {
	wan_proxy proxy "$BR_HOST:$PROXY_PORT" "$up_URL"
	l1_distribution dist-cold
	measure "distribution cold" dist-cold "docker pull big:$TAG"
	l1_distribution dist-warm
	measure "distribution warm" dist-warm "docker pull big:$TAG"
}

# row_dindfs_mirror CACHE_FUNCTION LABEL: docker pull through dindfs mirror,
# cold and warm, on the cache that CACHE_FUNCTION makes; then dindfs load,
# warm, on the same cache.
row_dindfs_mirror() {
	local label=$2 name=${2// /-}
	"$1"
	l1_on_cache "$name-cold"
	measure "$label mirror cold" "$name-cold" "docker pull big:$TAG"
	l1_on_cache "$name-warm"
	measure "$label mirror warm" "$name-warm" "docker pull big:$TAG"
	l1_on_cache "$name-load"
	measure "$label load warm" "$name-load" "dindfs load big:$TAG"
}

# row_ghcr STORE: docker pull ghcr.io/org/big through dindfs mirror, cold
# (a new cache) and warm, with dockerd's classic image store or (STORE
# containerd) the containerd image store; on the latter, docker.io's cold
# and warm pulls first, on a cache of their own: its baseline.
row_ghcr() {
	local store=$1 opts=() label=""
	if [[ $store == containerd ]]; then
		opts=(-e 'DOCKERD_CONFIG={"features": {"containerd-snapshotter": true}}')
		label=", containerd store"
		cache_host_mount
		l1_on_cache hub-cd-cold "${opts[@]}"
		measure "dindfs mirror cold$label" hub-cd-cold "docker pull big:$TAG"
		l1_on_cache hub-cd-warm "${opts[@]}"
		measure "dindfs mirror warm$label" hub-cd-warm "docker pull big:$TAG"
	fi
	cache_host_mount
	l1_on_cache "gh-$store-cold" "${opts[@]}"
	measure "dindfs ghcr.io mirror cold$label" "gh-$store-cold" "docker pull ghcr.io/$GH_REPO:$TAG"
	l1_on_cache "gh-$store-warm" "${opts[@]}"
	measure "dindfs ghcr.io mirror warm$label" "gh-$store-warm" "docker pull ghcr.io/$GH_REPO:$TAG"
}

row_docker_load() {
	level_run docker-load "${DIND[@]}" --tmpfs /var/lib/docker:exec --network none \
		-v "$WORK/tar:/tar:ro" "$DIND_IMAGE"
	measure "docker load tar" docker-load "docker load -i /tar/big.tar"
}

# row_at_once N VIA: N fresh L1s pull at the same moment, with a cold
# cache: VIA is dindfs (cache_host_mount) or distribution.
row_at_once() {
	local n=$1 via=$2 i pids=() times=()
	case $via in
	dindfs) cache_host_mount ;;
	distribution) wan_proxy proxy "$BR_HOST:$PROXY_PORT" "$up_URL" ;;
	esac
	for ((i = 1; i <= n; i++)); do
		case $via in
		dindfs) l1_on_cache "once-$i" ;;
		distribution) l1_distribution "once-$i" ;;
		esac
	done
	for ((i = 1; i <= n; i++)); do level_wait "once-$i"; done
	upstream_mark
	for ((i = 1; i <= n; i++)); do
		timed_in "once-$i" "docker pull big:$TAG" >"$WORK/once-$i" &
		pids+=($!)
	done
	for ((i = 0; i < n; i++)); do
		wait "${pids[$i]}" || {
			echo "bench/nested-pull.sh: $n at once through $via: L1 $((i + 1)) failed" >&2
			return 1
		}
		times+=("$(awk '{ printf "%.2f", $2 - $1 }' "$WORK/once-$((i + 1))")")
	done
	[[ $via != dindfs ]] || say "dindfs's own count: upstream_bytes $(stat_of "$CACHE_MNT" upstream_bytes)"
	record "$n at once, $via" "${times[@]}"
	for ((i = 1; i <= n; i++)); do l1_rm "once-$i"; done
}

# ---- shared layers ------------------------------------------------------------

CD_STORE=(-e 'DOCKERD_CONFIG={"features": {"containerd-snapshotter": true}}')
declare -A DISK READ

# layers_unpacked: the host daemon has every layer of the image under layers/,
# with its EROFS image, shared (mounted over the tree and read once:
# layer_images_shared), or where the daemon may not mount, stored into the
# mount's page cache for the levels' own mounts (layer_images_warmed).
layers_unpacked() {
	local d n=0
	for d in $DIFF_IDS; do
		[[ -d $CACHE_MNT/layers/$d && -f $CACHE_MNT/layers/$d.erofs ]] || return 1
		n=$((n + 1))
	done
	[[ $(jq -r ".layer_images_shared >= $n or .layer_images_warmed >= $n" "$CACHE_MNT/.dindfs/stats") == true ]]
}

# vardisk NAME: KiB in the L1's /var/lib/docker (a tmpfs; the shared trees
# are symlinks out of it).
vardisk() { dk exec "$1" du -sxk /var/lib/docker | cut -f1; }

# read_all LABEL NAME: in a container of the image in L1 NAME, read every
# file once, timed inside the container (no container start in the figure).
layer_requests() { jq '[.layers_requests[]] | add' "$CACHE_MNT/.dindfs/stats"; } # all of them
read_all() {
	local t asked
	asked=$(layer_requests)
	t=$(dk exec "$2" docker run --rm --network none "big:$TAG" sh -c \
		's=$(date +%s.%N); n=$(find / -xdev -type f -exec cat {} + | wc -c); echo "$s $(date +%s.%N) $n"') || {
		echo "bench/nested-pull.sh: $1: reading the image's files failed in $2" >&2
		return 1
	}
	asked=$(($(layer_requests) - asked))
	READ[$1]+="$(awk '{ printf "%.2f", $2 - $1 }' <<<"$t") "
	printf '  %-46s %s s (%s bytes; %s requests to the daemon'"'"'s layers/)\n' "read every file, $1" \
		"$(awk '{ printf "%.2f", $2 - $1 }' <<<"$t")" "${t##* }" "$asked"
}

# measure_disk LABEL NAME COMMAND: measure, with the growth of L1's
# /var/lib/docker by COMMAND recorded in DISK (bytes / the image), then
# READ_AFTER (a label) reads every file before the L1 goes.
measure_disk() {
	local label=$1 name=$2 before after t
	level_wait "$name"
	before=$(vardisk "$name")
	upstream_mark
	t=$(timed_in "$name" "$3") || {
		echo "bench/nested-pull.sh: $label: '$3' failed in $name" >&2
		return 1
	}
	after=$(vardisk "$name")
	record "$label" "$(awk '{ printf "%.2f", $2 - $1 }' <<<"$t")"
	DISK[$label]+="$(awk -v k=$((after - before)) -v s="$IMAGE_BYTES" 'BEGIN { printf "%.5f", k * 1024 / s }') "
	say "$label: /var/lib/docker grew by $((after - before)) KiB"
	if [[ -n ${READ_AFTER:-} ]]; then # twice: the second from the page cache
		# the same quiet for both reads: what the pull left running in L1 (the
		# snapshotter's links, containerd's GC) ends first
		sleep "${READ_SETTLE_S:-5}"
		read_all "$READ_AFTER" "$name"
		read_all "$READ_AFTER again" "$name"
	fi
	l1_rm "$name"
}

row_layers() {
	local i
	# today's cold pull on the containerd store, then the image read from
	# its local unpack
	cache_host_mount
	l1_on_cache layers-off "${CD_STORE[@]}" -e DINDFS_SNAPSHOTTER=off
	READ_AFTER=local measure_disk "layers cold, snapshotter off" layers-off "docker pull big:$TAG"
	# through dindfs snapshotter, the host holding nothing
	cache_host_mount
	l1_on_cache layers-cold "${CD_STORE[@]}"
	READ_AFTER="" measure_disk "layers cold" layers-cold "docker pull big:$TAG"
	for ((i = 0; i < 1200; i++)); do
		layers_unpacked && break
		sleep 0.1
	done
	layers_unpacked || {
		echo "bench/nested-pull.sh: the host daemon did not unpack the image's layers in 120 s" >&2
		return 1
	}
	l1_on_cache layers-warm "${CD_STORE[@]}"
	READ_AFTER=shared measure_disk "layers warm pull+run" layers-warm \
		"docker pull big:$TAG && docker run --rm --network none big:$TAG true"
	level_run load-run "${DIND[@]}" --tmpfs /var/lib/docker:exec --network none \
		-v "$WORK/tar:/tar:ro" "$DIND_IMAGE"
	READ_AFTER="" measure_disk "docker load tar+run" load-run \
		"docker load -i /tar/big.tar && docker run --rm --network none big:$TAG true"
}

# ---- the report -----------------------------------------------------------------

med() { tr ' ' '\n' <<<"$1" | grep . | median; }

# ratio LABEL NUMERATOR_ROW DENOMINATOR_ROW GOAL_OP GOAL [FIELD]: one line of
# the table (FIELD: SLOWEST for the N-at-once rows, else TIMES).
ratio_line() {
	local label=$1 num=$2 den=$3 op=$4 goal=$5 field=${6:-TIMES} a b r
	[[ -v "TIMES[$num]" && -v "TIMES[$den]" ]] || return 0
	local -n f=$field
	a=$(med "${f[$num]}")
	b=$(med "${TIMES[$den]}")
	r=$(echo "$a / $b" | bc -l)
	_ratio_out "$label" "$r" "$op" "$goal"
}
bytes_line() { # LABEL ROW GOAL_OP GOAL
	[[ -v "TIMES[$2]" ]] || return 0
	_ratio_out "$1" "$(med "${BLOB[$2]}")" "$3" "$4"
}
_ratio_out() { # LABEL RATIO OP GOAL (OP "" : no goal; "~" : within 1 +- GOAL)
	local verdict=peer goal_col="?" low_col="?" goal_text=${3:+$3 $4}
	if [[ -n $3 ]]; then
		goal_col=$4
		verdict=$(awk -v r="$2" -v g="$4" -v op="$3" 'BEGIN {
			if (op != "<") r = sprintf("%.2f", r) + 0 # "<": small fractions, unrounded
			ok = op == "<" ? r < g : op == "<=" ? r <= g : op == "~" ? r >= 1 - g && r <= 1 + g : r == g
			print ok ? "met" : "missed" }')
	fi
	if [[ $3 == "~" ]]; then # the plot marks both ends
		goal_col=$(echo "1 + $4" | bc -l)
		low_col=$(echo "1 - $4" | bc -l | sed 's/^\./0./')
		goal_text=$low_col-$goal_col
	fi
	if [[ $3 == "<" ]]; then # small fractions (disk): more digits
		printf '%-52s %6.4f   %-9s %s\n' "$1" "$2" "$goal_text" "$verdict"
	else
		printf '%-52s %6.2f   %-9s %s\n' "$1" "$2" "$goal_text" "$verdict"
	fi
	printf '"%s" %.3f %s %s\n' "$1" "$2" "$goal_col" "$low_col" >>"$WORK/ratios.dat"
}

report() {
	local row n
	printf '\n%d MB image (%d MB random in 2 layers on debian:12-slim), %s each way, L1 on %s' \
		$((IMAGE_BYTES / 1000000)) "$random_mb" "$rate" "$dind_suite"
	((rounds == 1)) && echo ", 1 round" || echo ", medians of $rounds rounds"
	say "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
	printf '\n%-46s %9s %11s %10s\n' "" seconds "upstream/x" "wire/x"
	: >"$WORK/times.dat"
	for row in "${LABELS[@]}"; do
		printf '%-46s %9.2f %11.2f %10.2f\n' "$row" "$(med "${SLOWEST[$row]}")" \
			"$(med "${BLOB[$row]}")" "$(med "${WIRE[$row]}")"
		[[ $row != *"at once"* ]] || printf '%-46s %s\n' "  each one (s), by round" "${EACH[$row]}"
		printf '"%s" %.3f\n' "$row" "$(med "${SLOWEST[$row]}")" >>"$WORK/times.dat"
	done
	printf '(N at once: the slowest; upstream/x: blob bytes from upstream / image size)\n'
	printf '\n%-52s %6s   %-9s\n' ratio value goal
	: >"$WORK/ratios.dat"
	ratio_line "dindfs mirror cold / direct" "dindfs mirror cold" direct "<=" 1.05
	ratio_line "dindfs mirror warm / distribution warm" "dindfs mirror warm" "distribution warm" "<=" 1.00
	ratio_line "dindfs load warm / docker load tar" "dindfs load warm" "docker load tar" "<=" 1.05
	ratio_line "containerised dindfs cold / host dindfs cold" \
		"containerised dindfs mirror cold" "dindfs mirror cold" "~" 0.05
	ratio_line "containerised dindfs warm / host dindfs warm" \
		"containerised dindfs mirror warm" "dindfs mirror warm" "~" 0.05
	ratio_line "distribution cold / direct" "distribution cold" direct "" ""
	local temp suffix
	for suffix in "" ", containerd store"; do
		for temp in cold warm; do
			ratio_line "dindfs ghcr.io $temp / docker.io $temp${suffix}" \
				"dindfs ghcr.io mirror $temp$suffix" "dindfs mirror $temp$suffix" "~" 0.05
		done
	done
	ratio_line "layers cold / cold with snapshotter off" "layers cold" \
		"layers cold, snapshotter off" "<=" 1.05
	ratio_line "layers warm pull+run / docker load tar+run" "layers warm pull+run" \
		"docker load tar+run" "<=" 0.25
	if [[ -v "DISK[layers warm pull+run]" ]]; then
		_ratio_out "layers warm: disk added / image" "$(med "${DISK[layers warm pull+run]}")" "<" 0.01
		_ratio_out "docker load tar+run: disk added / image" "$(med "${DISK[docker load tar+run]}")" "" ""
	fi
	if [[ -v "READ[shared]" && -v "READ[local]" ]]; then
		_ratio_out "read every file: shared layers / local unpack" \
			"$(echo "$(med "${READ[shared]}") / $(med "${READ[local]}")" | bc -l)" "<=" 1.20
		_ratio_out "read every file again: shared / local" \
			"$(echo "$(med "${READ[shared again]}") / $(med "${READ[local again]}")" | bc -l)" "" ""
	fi
	for n in "${concurrent[@]}"; do
		bytes_line "$n at once, dindfs: upstream bytes / image" "$n at once, dindfs" "=" 1.00
		ratio_line "$n at once, dindfs: slowest / dindfs mirror cold" "$n at once, dindfs" \
			"dindfs mirror cold" "<=" 1.20 SLOWEST
		bytes_line "$n at once, distribution: upstream bytes / image" "$n at once, distribution" "" ""
		ratio_line "$n at once, distribution: slowest / distribution cold" \
			"$n at once, distribution" "distribution cold" "" "" SLOWEST
	done
	draw
}

draw() { # horizontal bars: the labels are long
	gnuplot <<-EOF
		set terminal pngcairo size 1600,720 font ",10"
		set output "$plot"
		set multiplot title "a nested dockerd getting a $((IMAGE_BYTES / 1000000)) MB image, upstream at $rate each way"
		set style fill solid 0.6 border -1
		set datafile missing "?"
		set ytics noenhanced
		set yrange [*:*] reverse
		set xrange [0:*]
		set offsets 0, graph 0.1, 0.5, 0.5
		set grid xtics
		set key outside top center horizontal
		set size 0.4, 0.95
		set origin 0, 0
		set title "seconds (N at once: the slowest)"
		plot "$WORK/times.dat" using (\$2 / 2):0:(\$2 / 2):(0.35):ytic(1) with boxxyerror notitle, \
			"" using 2:0:(sprintf(" %.1f", \$2)) with labels left notitle
		# no ratio when ROWS left out their baselines
		if ($([[ -s $WORK/ratios.dat ]] && echo 1 || echo 0)) {
			set size 0.6, 0.95
			set origin 0.4, 0
			set title "ratios against their baselines"
			plot "$WORK/ratios.dat" using (\$2 / 2):0:(\$2 / 2):(0.35):ytic(1) with boxxyerror title "measured", \
				"" using (valid(3) && \$3 > \$2 ? \$3 : \$2):0:(sprintf("  %.2f", \$2)) with labels left notitle, \
				"" using 3:0:(0.42) with yerrorbars pt 0 ps 0 lw 3 lc rgb "red" title "goal", \
				"" using 4:0:(0.42) with yerrorbars pt 0 ps 0 lw 3 lc rgb "red" notitle
		}
		unset multiplot
	EOF
	say "plot: $plot"
}

# ---- the run ----------------------------------------------------------------------

say "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
setup_images
setup_upstream
setup_bridge
wan_shape
for ((round = 1; round <= rounds; round++)); do
	say "round $round of $rounds (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	if want direct; then row_direct; fi
	if want distribution; then row_distribution; fi
	if want dindfs; then row_dindfs_mirror cache_host_mount dindfs; fi
	if want container; then row_dindfs_mirror cache_container_mount "containerised dindfs"; fi
	if want docker-load; then row_docker_load; fi
	if want ghcr; then
		row_ghcr classic
		row_ghcr containerd
	fi
	if want layers; then row_layers; fi
	if want at-once; then
		for n in "${concurrent[@]}"; do
			row_at_once "$n" dindfs
			row_at_once "$n" distribution
		done
	fi
done
report
