# What the Docker-in-Docker end-to-end tests share (tests/e2e.sh,
# tests/container.sh). Source it after lib.sh, registry.sh, mount_lib.sh and
# docker_lib.sh, once `dockerd_start host` has run:
#
#   dk ARG...            docker against the test's dockerd (time limit $LONG)
#   hub_start            base images, and Debian's docker-registry as docker.io
#                        holding the debootstrapped library/debian:12-slim
#   blob_gets            blob GETs of library/debian the hub has answered
#   HUB_BLOBS            how many blobs debian:12-slim has (config + layers)
#   start_level NAME IMAGE [DOCKER_RUN_OPTION...]
#                        a detached L1 running dockerd, ready (LEVEL options)
#   at NAME COMMAND      COMMAND with bash in an L1's /dindfs/workspace
#   lap WHAT             seconds since the last lap (where time goes)

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LONG=${LONG:-600} # seconds for a step that builds or debootstraps

# How a DinD level runs where --privileged is refused (design.md).
DIND=(--cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined
	--security-opt apparmor=unconfined --security-opt systempaths=unconfined
	--device-cgroup-rule='a *:* rwm' --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw)

dk() { DOCKER_HOST=$host_HOST timeout -k 10 "$LONG" docker "$@"; }

_lap=$SECONDS
lap() {
	echo "# $1: $((SECONDS - _lap)) s"
	_lap=$SECONDS
}

# hub_start SUITE...: base images for SUITE (bookworm, trixie), then the
# registry "hub" with debian:12-slim as docker.io/library/debian:12-slim.
hub_start() {
	expect_exit 0 "base images: $* (debootstrap, cached)" \
		timeout "$LONG" "$SRC/scripts/base-image.sh" --host "$host_HOST" "$@"
	registry_start hub
	expect_exit 0 "debian:12-slim pushed to the test registry as docker.io/library/debian:12-slim" \
		skopeo copy --src-daemon-host "$host_HOST" docker-daemon:debian:12-slim \
		"docker://$hub_HOSTPORT/library/debian:12-slim" --dest-tls-verify=false
	HUB_BLOBS=$(skopeo inspect --raw --tls-verify=false "docker://$hub_HOSTPORT/library/debian:12-slim" |
		python3 -c 'import json, sys; m = json.load(sys.stdin); print(1 + len(m["layers"]))')
}

blob_gets() { registry_log_count hub GET '/v2/library/debian/blobs/sha256:[0-9a-f]{64}'; }

# start_level NAME IMAGE [DOCKER_RUN_OPTION...]: "${LEVEL[@]}" (the caller's)
# and the options, detached, removed at exit; returns once its dockerd answers.
start_level() {
	local name=$1 image=$2 i
	shift 2
	on_exit "DOCKER_HOST=$host_HOST docker rm -f $name >/dev/null 2>&1"
	dk run -d --name "$name" --hostname "$name" "${LEVEL[@]}" "$@" "$image" >/dev/null || return 1
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
