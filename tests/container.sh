#!/usr/bin/env bash
# dindfs as a container (compose.yaml, the Dockerfile's stage dindfs), end to
# end, with the command the README documents:
#
#   host:    a dockerd of the test's own; Debian's docker-registry as docker.io
#            holding a debootstrapped library/debian:12-slim; $HOSTDIR standing
#            for the Docker host's /var/lib/dindfs (a shared mount)
#   dindfs:  `docker-compose up -d`: the mount and its anchor, the mount
#            appearing on the host at $HOSTDIR/mnt by propagation
#   L1:      the DinD image, -v $HOSTDIR/mnt:/dindfs:rslave, --network none
#
# L1 pulls debian:12-slim through the mount; the mount restarts (docker
# restart, then a kill and a start) while L1 stays up, and each time L1 sees
# the new mount on its /dindfs and pulls again, from the store that survived;
# `docker-compose down` leaves nothing mounted. Then the same with the
# README's two `docker run`s and `docker stop`.
#
# The test's dockerd has no bridge, so the mount runs with --network host
# (DINDFS_NETWORK=host) to reach the registry on the host's loopback; with a
# bridge (Docker Desktop, any default dockerd) it needs no host network.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"
. "$(dirname "$0")/docker_lib.sh"

SRC=$(cd "$(dirname "$0")/.." && pwd)
own_docker_config
HOSTDIR=$WORK/host # the Docker host's /var/lib/dindfs
MNT=$HOSTDIR/mnt
. "$(dirname "$0")/dind_lib.sh"
. "$(dirname "$0")/container_lib.sh"
WS=$WORK/workspace
OWNER=4321
LEVEL=("${DIND[@]}" --tmpfs /var/lib/docker:exec --network none -v "$MNT:/dindfs:rslave")
PROJECT=dindfs-test-$$

# ---- the host ---------------------------------------------------------------------

check "a dockerd of our own starts" dockerd_start host
hub_with_debian hub "$host_HOST" bookworm
lap "base image and the registry"

expect_exit 0 "the dindfs image builds (docker build --target dindfs)" \
	dk build --network host --target dindfs -t dindfs "$SRC"
[[ $FAILED == 0 ]] || tail -30 "$WORK/out" "$WORK/err"
expect_exit 0 "a plain docker build builds the DinD image" \
	dk build --network host -t dindfs-dind "$SRC"
[[ $FAILED == 0 ]] || tail -30 "$WORK/out" "$WORK/err"
lap "image builds"
[[ $FAILED == 0 ]] || {
	finish || true
	exit 1
}
image_size() { dk image inspect -f '{{.Size}}' "$1"; }
echo "# docker images: dindfs $(($(image_size dindfs) / 1000000)) MB, dindfs-dind $(($(image_size dindfs-dind) / 1000000)) MB"
check "the dindfs image runs the mount" \
	test "$(dk image inspect -f '{{json .Config.Entrypoint}}' dindfs)" = '["dindfs-entrypoint"]'
check "the DinD image runs dockerd" \
	test "$(dk image inspect -f '{{json .Config.Entrypoint}}' dindfs-dind)" = '["dind-entrypoint"]'
check "the dindfs image is the smaller" test "$(image_size dindfs)" -lt "$(image_size dindfs-dind)"

# compose ARG...: docker-compose with the documented file, against our dockerd.
compose() {
	DOCKER_HOST=$host_HOST DINDFS_HOST_DIR=$HOSTDIR DINDFS_WORKSPACE=$WS DINDFS_NETWORK=host \
		DINDFS_UPSTREAM="docker.io=$hub_URL" \
		timeout -k 10 "$LONG" docker-compose -f "$SRC/compose.yaml" -p "$PROJECT" "$@"
}
# Whatever happens, nothing of ours stays mounted or running, and the store's
# volume goes.
on_exit "compose down -v >/dev/null 2>&1"
undo_host_dir() {
	compose down >/dev/null 2>&1
	host_dir_undo "$HOSTDIR"
}

# A host whose / is private (like this one) refuses rshared binds, in docker's
# words; a shared bind mount of the directory on itself mends it.
mkdir -p "$HOSTDIR" "$WS"
chown "$OWNER:$OWNER" "$WS"
if [[ $(findmnt -no PROPAGATION --target "$HOSTDIR") == private ]]; then
	expect_exit 1 "on a private mount, docker refuses the rshared bind" compose up -d
	expect_match "$WORK/err" "path $HOSTDIR is mounted on .* but it is not a shared mount" \
		"and says it is not a shared mount"
	compose down >/dev/null 2>&1 || true
fi
check "the directory becomes a shared mount" \
	host_dir_share "$HOSTDIR"
on_exit undo_host_dir
expect_exit 1 "without rshared, the entrypoint refuses" \
	dk run --rm --network none --device /dev/fuse --cap-add SYS_ADMIN -v "$HOSTDIR:/run/dindfs" dindfs
expect_match "$WORK/err" 'not a shared bind mount: run with -v /var/lib/dindfs:/run/dindfs:rshared' \
	"and says how to bind it"
expect_exit 1 "without CAP_SYS_ADMIN, it refuses" \
	dk run --rm --network none --device /dev/fuse -v "$HOSTDIR:/run/dindfs:rshared" dindfs
expect_match "$WORK/err" 'no CAP_SYS_ADMIN: run with --cap-add SYS_ADMIN' "in one line"

# ---- start: the mount appears on the host -------------------------------------------

mount_alive() { cmount_alive "$HOSTDIR"; }
expect_exit 0 "docker-compose up -d starts it" compose up -d
check "the mount appears on the host at $MNT" wait_until 30 mount_alive
check "hello.sh in the workspace" cp "$SRC/hello.sh" "$MNT/workspace/hello.sh"
(cd "$MNT/workspace" && ./hello.sh)
lap "dindfs up"

check "an L1 (the DinD image) starts with $MNT bound at /dindfs" start_level l1 dindfs-dind
expect_exit 0 "hello.sh in L1" at l1 ./hello.sh
log=$WS/log.txt
expect_lines "$log" 2 "log.txt has two lines"
expect_match "$log" "^Hello from $(hostname)\$" "one from the host"
expect_match "$log" '^Hello from l1$' "one from L1"
check "log.txt belongs to the workspace's owner" test "$(stat -c %u:%g "$log")" = "$OWNER:$OWNER"

# pull_in_l1 WHAT: time `docker pull` of debian:12-slim in L1, after removing it.
pull_in_l1() {
	local t0
	at l1 'docker rmi -f debian:12-slim' >/dev/null 2>&1 || true
	t0=$EPOCHREALTIME
	expect_exit 0 "$1: L1 pulls debian:12-slim" at l1 docker pull -q debian:12-slim
	PULL_SECONDS=$(echo "$EPOCHREALTIME - $t0" | bc -l)
	printf '# %s: the pull took %.2f s\n' "$1" "$PULL_SECONDS"
	expect_exit 0 "$1: it runs" at l1 docker run --rm --network none debian:12-slim true
}
pull_in_l1 "first"
check "upstream was asked for each blob once" test "$(blob_gets hub)" = "$HUB_BLOBS"
lap "L1"

# ---- restarts, L1 staying up ----------------------------------------------------------

# l1_sees_mount: L1's /dindfs is the mount the host has now, and it answers.
l1_sees_mount() {
	[[ $(dk exec l1 stat -c %d /dindfs/.dindfs/stats 2>/dev/null) == "$(stat -c %d "$MNT/.dindfs/stats" 2>/dev/null)" ]]
}
after_restart() { # WHAT: what L1 and the host must see after a restart
	local before=$1 what=$2
	check "$what: the mount is back on the host" wait_until 30 mount_alive
	check "$what: it is a new mount" test "$(stat -c %d "$MNT")" != "$before"
	check "$what: one dindfs mount on $MNT, none dead beneath" test "$(fuse_mounts "$MNT")" = 1
	check "$what: L1 sees the new mount on /dindfs" wait_until 10 l1_sees_mount
	expect_exit 0 "$what: stat /dindfs/.dindfs/stats in L1 works" dk exec l1 stat /dindfs/.dindfs/stats
	pull_in_l1 "$what"
	check "$what: no blob came from upstream (the store survived)" test "$(blob_gets hub)" = "$HUB_BLOBS"
	expect_exit 0 "$what: hello.sh in L1" at l1 ./hello.sh
}
lines=2

t0=$EPOCHREALTIME
dev=$(stat -c %d "$MNT")
expect_exit 0 "docker-compose restart mount" compose restart mount
printf '# the restart took %.2f s\n' "$(echo "$EPOCHREALTIME - $t0" | bc -l)"
after_restart "$dev" "after a restart"
expect_lines "$log" $((lines += 1)) "log.txt has one more line"

# A crash: the daemon dies (SIGKILL, by PID), its dead mount stays on the
# host (and in L1), dockerd restarts the container (restart: unless-stopped),
# and its entrypoint detaches the dead mount before mounting anew.
dev=$(stat -c %d "$MNT")
mount_container=$(compose ps -q mount)
check "the mount's daemon is killed" kill -KILL "$(dk inspect -f '{{.State.Pid}}' "$mount_container")"
restarted() { [[ $(dk inspect -f '{{.RestartCount}}' "$mount_container") == 1 ]]; }
check "dockerd restarts the container" wait_until 30 restarted
check "its entrypoint detached the dead mount" wait_until 30 eval \
	'dk logs "$mount_container" 2>&1 | grep "detaching a dead dindfs mount" >/dev/null'
after_restart "$dev" "after a crash"
expect_lines "$log" $((lines += 1)) "log.txt has one more line"
lap "restarts"

# ---- stop ----------------------------------------------------------------------------

expect_exit 0 "docker-compose down stops it" compose down
check "nothing is mounted on $MNT" test "$(fuse_mounts "$MNT")" = 0
no_fuse_under() { ! awk -v d="$1/" 'index($2 "/", d) == 1 && $3 ~ /^fuse/' /proc/mounts | grep -q .; }
check "no FUSE mount is left anywhere under $HOSTDIR" no_fuse_under "$HOSTDIR"
check "no container of the project is left" test -z "$(dk ps -aq --filter "label=com.docker.compose.project=$PROJECT")"
check "the store's volume stays" eval 'dk volume inspect "${PROJECT}_store" >/dev/null'
lap "dindfs down"

# ---- the README's docker run form (tests/container_lib.sh: cmount_run) -------------

expect_exit 0 "docker run starts the anchor and the mount without compose" \
	cmount_run "$PROJECT-run" "$HOSTDIR" "$PROJECT-run-store" --network host -v "$WS:/workspace" \
	-e "DINDFS_WORKSPACE_OWNER=$OWNER:$OWNER" -- --upstream "docker.io=$hub_URL"
on_exit "dk volume rm $PROJECT-run-store >/dev/null 2>&1"
check "the mount appears on the host at $MNT" mount_alive
check "an L1 started now sees it" start_level l1-run dindfs-dind
gets=$(blob_gets hub)
expect_exit 0 "L1 pulls debian:12-slim through it" at l1-run docker pull -q debian:12-slim
check "from upstream, into the new store: each blob once" test "$(blob_gets hub)" = $((gets + HUB_BLOBS))
expect_exit 0 "hello.sh in L1" at l1-run ./hello.sh
expect_lines "$log" $((lines += 1)) "log.txt has one more line"
level_rm l1-run
cmount_stop "$PROJECT-run"
check "docker stop leaves nothing mounted on $MNT" test "$(fuse_mounts "$MNT")" = 0
lap "docker run form"

echo "# log.txt:"
sed 's/^/#   /' "$log"
finish
