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
# each at once to one file; an image saved in one L1 runs in another; every
# registry goes through the cache on each engine (a second registry served
# as ghcr.io, a third private one whose credentials only the host has:
# docker pull, docker build FROM, ctr, skopeo and podman), and one the host
# does not serve fails at once.
#
# The first L1 is built on trixie (docker.io 26.1), the second on the
# Dockerfile's default, bookworm (docker.io 20.10); the level "first" is the
# trixie one with podman and skopeo added (tests/dind_lib.sh,
# dind_podman_build). The host dockerd has no
# bridge and touches no iptables rule: `docker build --network host` reaches
# Debian's archive, and the L1 containers run with --network none (a level
# needs no network: the mount and the mirror on its loopback are all it uses).
# Base images come from scripts/base-image.sh, which debootstraps once per
# machine ($DINDFS_CACHE, /var/cache/dindfs) and imports from there.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"
. "$(dirname "$0")/docker_lib.sh"

SRC=$(cd "$(dirname "$0")/.." && pwd)
export DOCKER_CONFIG=$WORK/docker-config
mkdir -p "$DOCKER_CONFIG"
MNT=$WORK/mnt
WS=$WORK/workspace
OWNER=4321 # the workspace's owner: what the levels create there is theirs
. "$(dirname "$0")/dind_lib.sh" # DIND, LEVEL, lap, dk, hub_with_debian, dind_build, start_level, at

# ---- the host -----------------------------------------------------------------

if ! "$DINDFS" mount --help | grep -- --workspace >/dev/null; then
	fail "dindfs mount has no --workspace: this test needs the workspace"
	finish
fi
check "a dockerd of our own starts" dockerd_start host
hub_with_debian hub "$host_HOST" bookworm trixie
lap "base images and the registry"
mkdir -p "$WS"
chown "$OWNER:$OWNER" "$WS"
# ghcr.io, and a private registry whose credentials only the host has
registry_start gh
push_test_image gh org/tool v1 docker 2 200000 >/dev/null
gh_digest=$IMAGE_DIGEST
push_test_image gh org/base v1 docker 2 100000 >/dev/null
gh_base_digest=$IMAGE_DIGEST
registry_start priv htpasswd
push_test_image priv team/secret v1 docker 2 100000 >/dev/null
priv_digest=$IMAGE_DIGEST
printf '{"auths": {"private.test": {"auth": "%s"}}}\n' \
	"$(printf '%s:%s' "$priv_USER" "$priv_PASSWORD" | base64 -w0)" >"$DOCKER_CONFIG/config.json"
must_mount "$MNT" --store "$WORK/store" --workspace "$WS" --upstream "docker.io=$hub_URL" \
	--upstream "ghcr.io=$gh_URL" --upstream "private.test=$priv_URL"
check "hello.sh in the workspace" cp "$SRC/hello.sh" "$MNT/workspace/hello.sh"

for version in 13 12; do dind_build "$version" || true; done
dind_podman_build 13 || true
lap "image builds"
[[ $FAILED == 0 ]] || {
	finish || true
	exit 1
}

n_blobs=$HUB_BLOBS # the config and layers of debian:12-slim as pushed
# the manifest alone: the blob counts below are the levels' own
hub_digest=sha256:$(skopeo inspect --raw --tls-verify=false "docker://$hub_HOSTPORT/library/debian:12-slim" | sha256sum | cut -d' ' -f1)

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
check "upstream was asked for each blob once" test "$(blob_gets hub)" = "$n_blobs"
stats_save "$MNT" "$WORK/stats.1"
lap "L1 and L2"

# ---- 2. a second L1 (bookworm) pulls the same image: nothing from upstream -----

check "a second L1 (bookworm) starts" start_level second dindfs-dind:12
expect_exit 0 "it pulls debian:12-slim" at second docker pull -q debian:12-slim
expect_exit 0 "and runs hello.sh in an L2" at second docker run --rm --network none --hostname dind-l2b \
	-v /dindfs:/dindfs -w /dindfs/workspace debian:12-slim ./hello.sh
expect_match "$log" '^Hello from dind-l2b$' "its line is in log.txt"
check "upstream was asked for no blob again" test "$(blob_gets hub)" = "$n_blobs"
stats_save "$MNT" "$WORK/stats.2"
check "upstream_bytes did not change ($(stat_in "$WORK/stats.1" upstream_bytes))" \
	test "$(stat_in "$WORK/stats.2" upstream_bytes)" = "$(stat_in "$WORK/stats.1" upstream_bytes)"
check "the blobs were served from the cache" \
	test "$(stat_in "$WORK/stats.2" bytes_served)" -gt "$(stat_in "$WORK/stats.1" bytes_served)"
lap "second L1"

# ---- 3. host, L1 and L2 append 5000 lines each at once to one file ---------------

check "another L1 (trixie, with podman and skopeo) starts" start_level first dindfs-dind-podman:13
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
check "upstream was asked for no blob" test "$(blob_gets hub)" = "$n_blobs"
lap "save and load"

# ---- 5. every registry through the cache, on each engine -------------------------
# ghcr.io and private.test resolve to each level's loopback (dindfs-route),
# where the mirror answers on 443 and 80: docker pull, a docker build FROM
# line, the private image (no credentials in the level), and containerd's
# ctr with the hosts.toml. The trixie L1 (26.1, classic store) pulls first,
# then the bookworm one (20.10) and one with the containerd image store.

gh_blob_gets() { registry_log_count gh GET '/v2/org/[a-z]+/blobs/sha256:[0-9a-f]{64}'; }
priv_blob_gets() { registry_log_count priv GET '/v2/team/secret/blobs/sha256:[0-9a-f]{64}'; }
# The shared-layers snapshotter has its own test (layers_e2e.sh); this level
# checks routing on dockerd's own containerd, whose socket ctr uses below.
check "an L1 with the containerd image store (trixie) starts" start_level snap dindfs-dind:13 \
	-e DINDFS_SNAPSHOTTER=off -e DOCKERD_CONFIG='{"features": {"containerd-snapshotter": true}}'
expect_exit 0 "it runs the containerd image store" at snap "docker info -f '{{json .DriverStatus}}'"
expect_match "$WORK/out" 'io.containerd.snapshotter' "docker info says so"
expect_exit 0 "dindfs doctor there" at snap "dindfs doctor >/tmp/doctor; grep 'shared layers' /tmp/doctor"
expect_match "$WORK/out" '^info +shared layers: no \(the containerd image store with the overlayfs snapshotter: the DinD entrypoint uses dindfs snapshotter when /dindfs/layers exists and DINDFS_SNAPSHOTTER is not off\)$' \
	"... says it does not use the shared layers, and when it would"
# pulls LEVEL WHAT: the checks in one L1
pulls() {
	local level=$1 what=$2
	expect_exit 0 "$what: docker pull ghcr.io/org/tool:v1" at "$level" \
		"docker pull -q ghcr.io/org/tool:v1 >/dev/null && docker image inspect -f '{{json .RepoDigests}}' ghcr.io/org/tool:v1"
	expect_match "$WORK/out" "\"ghcr.io/org/tool@$gh_digest\"" "$what: its digest is upstream's"
	expect_exit 0 "$what: docker build FROM ghcr.io/org/base:v1" at "$level" \
		"printf 'FROM ghcr.io/org/base:v1\nRUN echo built in \$(hostname) >/built\n' |
			docker build -q --network none -t built:v1 - >/dev/null &&
			docker run --rm --network none built:v1 cat /built"
	expect_match "$WORK/out" '^built in ' "$what: the built image runs"
	expect_exit 0 "$what: the private image, credentials only on the host" at "$level" \
		"docker pull -q private.test/team/secret:v1 >/dev/null && docker image inspect -f '{{json .RepoDigests}}' private.test/team/secret:v1"
	expect_match "$WORK/out" "\"private.test/team/secret@$priv_digest\"" "$what: its digest is upstream's"
	expect_exit 0 "$what: ctr pulls ghcr.io/org/tool:v1 with the hosts.toml" at "$level" \
		"ctr --address /var/run/docker/containerd/containerd.sock -n dindfs images pull \
			--hosts-dir /etc/containerd/certs.d ghcr.io/org/tool:v1 >/dev/null &&
			ctr --address /var/run/docker/containerd/containerd.sock -n dindfs images ls"
	expect_match "$WORK/out" "^ghcr.io/org/tool:v1 .*$gh_digest" "$what: ctr has it by upstream's digest"
}
pulls first "trixie, 26.1, classic store"
gh_gets=$(gh_blob_gets) priv_gets=$(priv_blob_gets)
check "ghcr.io was asked for blobs ($gh_gets)" test "$gh_gets" -gt 0
check "private.test was asked for blobs ($priv_gets)" test "$priv_gets" -gt 0
pulls second "bookworm, 20.10, classic store"
pulls snap "trixie, 26.1, containerd image store"
check "the other L1s asked ghcr.io for no blob" test "$(gh_blob_gets)" = "$gh_gets"
check "nor private.test" test "$(priv_blob_gets)" = "$priv_gets"
# skopeo and podman in the first L1, through the mirror that
# registries.conf.d names, warm: the cache has every blob
expect_exit 0 "skopeo inspect ghcr.io/org/tool:v1" at first \
	"skopeo inspect --format '{{.Digest}}' docker://ghcr.io/org/tool:v1"
check "skopeo: its digest is upstream's" test "$(cat "$WORK/out")" = "$gh_digest"
expect_exit 0 "skopeo inspect docker.io/library/debian:12-slim" at first \
	"skopeo inspect --format '{{.Digest}}' docker://docker.io/library/debian:12-slim"
check "skopeo: its digest is upstream's" test "$(cat "$WORK/out")" = "$hub_digest"
expect_exit 0 "skopeo inspect private.test/team/secret:v1, credentials only on the host" at first \
	"skopeo inspect --format '{{.Digest}}' docker://private.test/team/secret:v1"
check "skopeo: its digest is upstream's" test "$(cat "$WORK/out")" = "$priv_digest"
expect_exit 0 "skopeo copy ghcr.io/org/base:v1 to a directory" at first \
	"skopeo copy -q --preserve-digests docker://ghcr.io/org/base:v1 dir:/tmp/base &&
		echo sha256:\$(sha256sum </tmp/base/manifest.json | cut -d' ' -f1)"
check "skopeo: the manifest it copied is upstream's" test "$(cat "$WORK/out")" = "$gh_base_digest"
expect_exit 0 "podman pull ghcr.io/org/tool:v1" at first \
	"podman pull -q ghcr.io/org/tool:v1 >/dev/null && podman image inspect --format '{{.Digest}}' ghcr.io/org/tool:v1"
check "podman: its digest is upstream's" test "$(cat "$WORK/out")" = "$gh_digest"
expect_exit 0 "podman pull docker.io/library/debian:12-slim" at first \
	"podman pull -q docker.io/library/debian:12-slim >/dev/null &&
		podman image inspect --format '{{.Digest}}' docker.io/library/debian:12-slim"
check "podman: its digest is upstream's" test "$(cat "$WORK/out")" = "$hub_digest"
check "skopeo and podman made no upstream blob GET" \
	test "$(gh_blob_gets) $(priv_blob_gets) $(blob_gets hub)" = "$gh_gets $priv_gets $n_blobs"
# dindfs doctor names what goes through the cache, and what would not and why
at first 'dindfs doctor >/tmp/doctor.out; cat /tmp/doctor.out' >"$WORK/doctor.first" || true
expect_match "$WORK/doctor.first" '^ok +dockerd: [0-9]+ registries go through the cache \(.*\): all the host serves$' \
	"doctor: dockerd pulls every registry the host serves through the cache"
expect_match "$WORK/doctor.first" '^ok +containerd \(ctr --hosts-dir /etc/containerd/certs.d, nerdctl\): [0-9]+ registries go through the cache' \
	"doctor: and containerd"
expect_match "$WORK/doctor.first" '^ok +podman/skopeo/buildah: [0-9]+ registries go through the cache \(.*\): all the host serves$' \
	"doctor: and podman, skopeo and buildah"
expect_match "$WORK/doctor.first" '^ok +other registries: no network here; they resolve to the mirror \(127\.0\.0\.1\), which refuses them, naming dindfs mount --registry NAME$' \
	"doctor: and the registries the host does not serve resolve to the mirror"
at first 'cp /etc/hosts /tmp/hosts && { echo "10.9.9.9 ghcr.io"; cat /tmp/hosts; } >/etc/hosts &&
	dindfs doctor >/tmp/doctor.out; cat /tmp/hosts >/etc/hosts; cat /tmp/doctor.out' >"$WORK/doctor.first" || true
expect_match "$WORK/doctor.first" '^warn +dockerd: ghcr.io would go direct, not through the cache: /etc/hosts points elsewhere \(10\.9\.9\.9\)$' \
	"doctor: with ghcr.io pointed elsewhere in /etc/hosts, it says so"
# A registry the host does not serve: with no network, dindfs-route
# resolves it to the mirror (dnsmasq), which refuses it without asking the
# mount, naming --registry: as an error body (docker's classic pull), and as
# the Bearer challenge's error (containerd: ctr, the containerd image store).
stats_save "$MNT" "$WORK/stats.unlisted"
unserved="registry unlisted.example is not served by the host's dindfs cache: add it there with dindfs mount --registry unlisted.example"
classic="Error response from daemon: pull access denied for unlisted.example/x, repository does not exist or may require 'docker login': denied: $unserved"
snap_line='Error response from daemon: failed to resolve reference "unlisted.example/x:v1": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to http://127.0.0.1:5000/dindfs/unserved/unlisted.example/add-it-with/dindfs-mount--registry-unlisted.example?scope=repository%3Ax%3Apull&service=dindfs: 403 Forbidden'
for level in first second snap; do
	start=$SECONDS
	expect_exit 1 "$level: docker pull of a registry the host does not serve fails" at "$level" \
		"docker pull -q unlisted.example/x:v1"
	check "$level: in seconds ($((SECONDS - start)) s), not a DNS timeout" test $((SECONDS - start)) -lt 10
	expect_lines "$WORK/err" 1 "$level: in one line"
	if [[ $level == snap ]]; then
		expect_match "$WORK/err" 'unlisted\.example/add-it-with/dindfs-mount--registry-unlisted\.example' \
			"$level: which names the registry and --registry"
	else
		expect_match "$WORK/err" "$unserved" "$level: which names the registry and --registry"
	fi
	[[ $level == snap ]] || check "$level: the classic pull's line" test "$(cat "$WORK/err")" = "$classic"
done
# dockerd's containerd image store turns a "server message" into a line of
# its own: there the mirror's token realm says it (tests/mirror.sh)
check "snap: the containerd image store's line" test "$(cat "$WORK/err")" = "$snap_line"
start=$SECONDS
expect_exit 1 "ctr pull of it fails" at first \
	"ctr --address /var/run/docker/containerd/containerd.sock -n dindfs images pull \
		--hosts-dir /etc/containerd/certs.d unlisted.example/x:v1"
check "in seconds ($((SECONDS - start)) s)" test $((SECONDS - start)) -lt 10
check "its error line names the registry and --registry" test "$(grep '^ctr: ' "$WORK/err")" = \
	"ctr: failed to resolve reference \"unlisted.example/x:v1\": pull access denied, repository does not exist or may require authorization: server message: $unserved: authorization failed"
start=$SECONDS
expect_exit 125 "podman pull of it fails" at first "podman pull -q unlisted.example/x:v1"
check "in seconds ($((SECONDS - start)) s)" test $((SECONDS - start)) -lt 10
expect_lines "$WORK/err" 1 "in one line"
expect_match "$WORK/err" '^Error: initializing source docker://unlisted\.example/x:v1: pinging container registry unlisted\.example: .*certificate is valid for .*, not unlisted\.example$' \
	"naming the registry (the level's certificate covers only the names the host serves)"
stats_save "$MNT" "$WORK/stats.unlisted.after"
check "the host daemon sent nothing upstream for them" test \
	"$(stat_in "$WORK/stats.unlisted.after" upstream_requests)" = "$(stat_in "$WORK/stats.unlisted" upstream_requests)"
check "nor was unlisted.example asked of the mount" not grep -q unlisted "$MOUNT_LOG"
lap "every registry"

# ---- 6. the entrypoint's refusals -----------------------------------------------

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
