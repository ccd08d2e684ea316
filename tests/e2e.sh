#!/usr/bin/env bash
# The whole Docker-in-Docker story, end to end, with nothing from Docker Hub:
#
#   host:  a dockerd of the test's own; Debian's docker-registry as docker.io,
#          holding a debootstrapped library/debian:12-slim; dindfs mounted
#          with a workspace; the DinD image built from the Dockerfile
#   L1:    the DinD image (-v MNT:/dindfs): dindfs mirror <- dockerd
#   L2:    debian:12-slim, pulled by L1's dockerd through the mirror
#
# hello.sh runs at every level into one log.txt; a second L1 pulls the same
# image and upstream sees no blob request; host, L1 and L2 append 5000 lines
# each at once to one file; an image saved in one L1 runs in another.
#
# The first L1 is built on trixie (docker.io 26.1), the second on the
# Dockerfile's default, bookworm (docker.io 20.10). The host dockerd has no
# bridge and touches no iptables rule: `docker build --network host` reaches
# Debian's archive, and the L1 containers run with --network none (a level
# needs no network: the mount and the mirror on its loopback are all it uses).
# Base images come from scripts/base-image.sh, which debootstraps once per
# machine ($DINDFS_CACHE, /var/cache/dindfs) and imports from there.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"
. "$(dirname "$0")/docker_lib.sh"
. "$(dirname "$0")/dind_lib.sh"

SRC=$(cd "$(dirname "$0")/.." && pwd)
export DOCKER_CONFIG=$WORK/docker-config
mkdir -p "$DOCKER_CONFIG"
MNT=$WORK/mnt
WS=$WORK/workspace
OWNER=4321 # the workspace's owner: what the levels create there is theirs
LONG=600   # seconds for a step that builds or debootstraps

# A level as a user runs one: DIND (dind_lib.sh) and the mount at /dindfs.
LEVEL=("${DIND[@]}" --tmpfs /var/lib/docker:exec --network none -v "$MNT:/dindfs")

# stopwatch: seconds since the last call (the test prints where time goes).
_lap=$SECONDS
lap() {
	echo "# $1: $((SECONDS - _lap)) s"
	_lap=$SECONDS
}

# ---- the host -----------------------------------------------------------------

if ! "$DINDFS" mount --help | grep -q -- --workspace; then
	fail "dindfs mount has no --workspace: this test needs the workspace"
	finish
fi
check "a dockerd of our own starts" dockerd_start host
DIND_HOST=$host_HOST
DK_TIMEOUT=$LONG

expect_exit 0 "base images: debian:12-slim and debian:13-slim (debootstrap, cached)" \
	timeout "$LONG" "$SRC/scripts/base-image.sh" --host "$host_HOST" bookworm trixie
lap "base images"

registry_start hub
expect_exit 0 "debian:12-slim pushed to the test registry as docker.io/library/debian:12-slim" \
	skopeo copy --src-daemon-host "$host_HOST" docker-daemon:debian:12-slim \
	"docker://$hub_HOSTPORT/library/debian:12-slim" --dest-tls-verify=false
mkdir -p "$WS"
chown "$OWNER:$OWNER" "$WS"
must_mount "$MNT" --store "$WORK/store" --workspace "$WS" --upstream "docker.io=$hub_URL"
check "hello.sh in the workspace" cp "$SRC/hello.sh" "$MNT/workspace/hello.sh"

for base in 13 12; do
	expect_exit 0 "the DinD image builds on debian:$base-slim" \
		dk build --network host --build-arg "BASE_IMAGE=debian:$base-slim" -t "dindfs-dind:$base" "$SRC"
	[[ $FAILED == 0 ]] || tail -30 "$WORK/out" "$WORK/err"
done
lap "image builds"
[[ $FAILED == 0 ]] || {
	finish || true
	exit 1
}

# blob_gets: how many blob GETs of library/debian the registry has answered.
blob_gets() { registry_log_count hub GET '/v2/library/debian/blobs/sha256:[0-9a-f]{64}'; }
# n_blobs: the config and layers of debian:12-slim as pushed.
n_blobs=$(skopeo inspect --raw --tls-verify=false "docker://$hub_HOSTPORT/library/debian:12-slim" |
	python3 -c 'import json, sys; m = json.load(sys.stdin); print(1 + len(m["layers"]))')

# ---- 1. hello.sh on the host, in L1, and in L2 from an image pulled in L1 ------

(cd "$MNT/workspace" && ./hello.sh)
expect_exit 0 "L1 (trixie) pulls debian:12-slim through the cache and runs L2" \
	dk run --rm --hostname dind-l1 "${LEVEL[@]}" -w /dindfs/workspace dindfs-dind:13 bash -c '
		set -e
		./hello.sh
		docker pull -q debian:12-slim
		docker run --rm --network none --hostname dind-l2 -v /dindfs:/dindfs \
			-w /dindfs/workspace debian:12-slim ./hello.sh'
expect_match "$WORK/err" 'pulls go through the dindfs cache at /dindfs' "the entrypoint says where pulls go"
log=$MNT/workspace/log.txt
expect_lines "$log" 3 "log.txt has three lines"
expect_match "$log" "^Hello from $(hostname)\$" "one from the host"
expect_match "$log" '^Hello from dind-l1$' "one from L1"
expect_match "$log" '^Hello from dind-l2$' "one from L2"
check "log.txt belongs to the workspace's owner on disk" test "$(stat -c %u:%g "$WS/log.txt")" = "$OWNER:$OWNER"
check "upstream was asked for each blob once" test "$(blob_gets)" = "$n_blobs"
stats_save "$MNT" "$WORK/stats.1"
lap "L1 and L2"

# ---- 2. a second L1 (bookworm) pulls the same image: nothing from upstream -----

start_level() { level_start "$1" "${LEVEL[@]}" "$2"; } # NAME IMAGE: a detached L1, ready
at() { # LEVEL COMMAND: run COMMAND with bash in an L1's workspace
	local name=$1
	shift
	dk exec -w /dindfs/workspace "$name" bash -c "$*"
}

check "a second L1 (bookworm) starts" start_level second dindfs-dind:12
expect_exit 0 "it pulls debian:12-slim" at second docker pull -q debian:12-slim
expect_exit 0 "and runs hello.sh in an L2" at second docker run --rm --network none --hostname dind-l2b \
	-v /dindfs:/dindfs -w /dindfs/workspace debian:12-slim ./hello.sh
expect_match "$log" '^Hello from dind-l2b$' "its line is in log.txt"
check "upstream was asked for no blob again" test "$(blob_gets)" = "$n_blobs"
stats_save "$MNT" "$WORK/stats.2"
check "upstream_bytes did not change ($(stat_in "$WORK/stats.1" upstream_bytes))" \
	test "$(stat_in "$WORK/stats.2" upstream_bytes)" = "$(stat_in "$WORK/stats.1" upstream_bytes)"
check "the blobs were served from the cache" \
	test "$(stat_in "$WORK/stats.2" bytes_served)" -gt "$(stat_in "$WORK/stats.1" bytes_served)"
lap "second L1"

# ---- 3. host, L1 and L2 append 5000 lines each at once to one file ---------------

check "another L1 (trixie) starts" start_level first dindfs-dind:13
expect_exit 0 "it has debian:12-slim (from the cache)" at first docker pull -q debian:12-slim
# appender WHO PAD: says it is ready, and once go exists appends 5000 lines
# through one O_APPEND descriptor.
appender='touch "ready.$1"; until [ -e go ]; do sleep 0.02; done; exec 3>>many.txt
	for i in $(seq 5000); do printf "%s %05d %s\n" "$1" "$i" "$2" >&3; done'
pad=$(printf 'x%.0s' {1..84})
rm -f "$MNT"/workspace/{go,ready.*}
(cd "$MNT/workspace" && bash -c "$appender" - host "$pad") &
host_pid=$!
dk exec -w /dindfs/workspace first bash -c "$appender" - L1 "$pad" &
l1_pid=$!
dk exec first docker run --rm --network none -v /dindfs:/dindfs -w /dindfs/workspace \
	debian:12-slim bash -c "$appender" - L2 "$pad" &
l2_pid=$!
all_ready() { [[ -e $MNT/workspace/ready.host && -e $MNT/workspace/ready.L1 && -e $MNT/workspace/ready.L2 ]]; }
check "the three writers are ready" wait_until 120 all_ready
touch "$MNT/workspace/go"
writers=0
for pid in $host_pid $l1_pid $l2_pid; do wait "$pid" && writers=$((writers + 1)); done
check "the three writers finished" test "$writers" = 3
many=$MNT/workspace/many.txt
expect_lines "$many" 15000 "15000 lines"
check "every line whole" test "$(grep -cE '^(host|L1|L2) [0-9]{5} x{84}$' "$many")" = 15000
for who in host L1 L2; do
	check "5000 distinct lines from $who" \
		test "$(grep "^$who " "$many" | cut -d' ' -f2 | sort -u | wc -l)" = 5000
done
check "many.txt belongs to the workspace's owner" test "$(stat -c %u "$WS/many.txt")" = "$OWNER"
lap "appends"

# ---- 4. dindfs save in one L1, dindfs load in another ---------------------------

at first 'docker run --name maker --network none debian:12-slim sh -c "echo made in $(hostname) >/made" &&
	docker commit maker made/here:v1 >/dev/null' >/dev/null
expect_exit 0 "dindfs save in the first L1" at first dindfs save made/here:v1
expect_match "$WORK/out" 'as local/made/here:v1$' "it names the local image"
expect_exit 0 "dindfs load in the second L1" at second dindfs load local/made/here:v1
expect_match "$WORK/out" '^Loaded image: local/made/here:v1$' "it says what it loaded"
expect_exit 0 "the image runs there" at second docker run --rm --network none local/made/here:v1 cat /made
expect_match "$WORK/out" '^made in first$' "with what the first L1 put in it"
check "upstream was asked for no blob" test "$(blob_gets)" = "$n_blobs"
lap "save and load"

# ---- 5. the entrypoint's refusals -----------------------------------------------

expect_exit 1 "with /var/lib/docker on overlayfs the entrypoint refuses" \
	dk run --rm --network none "${DIND[@]}" dindfs-dind:13 true
expect_lines "$WORK/err" 1 "in one line"
expect_match "$WORK/err" 'overlayfs.*--tmpfs /var/lib/docker' "which says what to do"
expect_exit 1 "without the capabilities it refuses" \
	dk run --rm --network none --tmpfs /var/lib/docker:exec dindfs-dind:13 true
expect_lines "$WORK/err" 1 "in one line"
expect_exit 0 "without /dindfs, dockerd starts all the same" \
	dk run --rm --network none "${DIND[@]}" --tmpfs /var/lib/docker:exec dindfs-dind:13 docker info
expect_match "$WORK/err" '/dindfs is not mounted' "and it says there is no cache"
lap "refusals"

echo "# log.txt:"
sed 's/^/#   /' "$log"
finish
