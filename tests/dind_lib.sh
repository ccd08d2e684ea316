# Docker-in-Docker levels for the integration scripts. Source it after
# lib.sh, mount_lib.sh and docker_lib.sh; it needs a dockerd started with
# `dockerd_start host` and the mount's path in MNT.
#
#   DIND                    how a level runs where --privileged is refused (design.md)
#   LEVEL                   DIND, a tmpfs at /var/lib/docker, no network, MNT at /dindfs
#   dk ARG...               docker against the host dockerd, under a long time limit
#   dind_build VERSION      (a test) base images by debootstrap (cached), then the DinD
#                           image dindfs-dind:VERSION on debian:VERSION-slim (12, 13)
#   start_level NAME IMAGE  a detached level running its dockerd, ready; removed at exit
#   at NAME COMMAND         bash -c COMMAND in a level, in /dindfs/workspace

DIND_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LONG=${LONG:-600} # seconds for a step that builds or debootstraps

DIND=(--cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined
	--security-opt apparmor=unconfined --security-opt systempaths=unconfined
	--device-cgroup-rule='a *:* rwm' --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw)
LEVEL=("${DIND[@]}" --tmpfs /var/lib/docker:exec --network none -v "$MNT:/dindfs")

dk() { DOCKER_HOST=$host_HOST timeout -k 10 "$LONG" docker "$@"; }

_codename() { case $1 in 12) echo bookworm ;; 13) echo trixie ;; *) return 1 ;; esac; }

dind_build() {
	local version=$1 failed=$FAILED
	expect_exit 0 "base image debian:$version-slim (debootstrap, cached)" \
		timeout "$LONG" "$DIND_SRC/scripts/base-image.sh" --host "$host_HOST" "$(_codename "$version")"
	expect_exit 0 "the DinD image builds on debian:$version-slim" \
		dk build --network host --build-arg "BASE_IMAGE=debian:$version-slim" \
		-t "dindfs-dind:$version" "$DIND_SRC"
	[[ $FAILED == "$failed" ]] || tail -30 "$WORK/out" "$WORK/err"
	[[ $FAILED == "$failed" ]]
}

start_level() {
	local name=$1 image=$2 i
	on_exit "DOCKER_HOST=$host_HOST docker rm -f $name >/dev/null 2>&1"
	dk run -d --name "$name" --hostname "$name" "${LEVEL[@]}" "$image" >/dev/null || return 1
	for ((i = 0; i < 600; i++)); do
		dk exec "$name" docker version >/dev/null 2>&1 && return 0
		[[ $(dk inspect -f '{{.State.Running}}' "$name") == true ]] || break
		sleep 0.1
	done
	dk logs "$name" 2>&1 | tail -5
	return 1
}

at() {
	local name=$1
	shift
	dk exec -w /dindfs/workspace "$name" bash -c "$*"
}
