# Docker-in-Docker levels for the integration scripts and bench/nested-pull.sh.
# Source it after lib.sh, registry.sh, mount_lib.sh and docker_lib.sh, with
# the mount's path in MNT (for LEVEL). The levels run on the dockerd named by
# DIND_HOST (unix://...), by default host_HOST, the one `dockerd_start host`
# starts.
#
#   DIND                    how a level runs where --privileged is refused (design.md)
#   LEVEL                   DIND, a tmpfs at /var/lib/docker, no network, MNT at /dindfs
#                           (set when MNT is)
#   lap WHAT                print the seconds since the last lap
#   dk ARG...               docker against the host dockerd, under a long time limit
#   hub_with_debian NAME DOCKER_HOST SUITE...
#                           base images (scripts/base-image.sh, cached), a
#                           registry NAME, debian:12-slim pushed to it as
#                           library/debian:12-slim; sets HUB_BLOBS (its config
#                           and layers)
#   blob_gets NAME          blob GETs of library/debian registry NAME answered
#   dind_build VERSION      (a test) base images by debootstrap (cached), then the DinD
#                           image dindfs-dind:VERSION on debian:VERSION-slim (12, 13)
#   dind_podman_build VERSION
#                           (a test, after dind_build) dindfs-dind-podman:VERSION: the
#                           DinD image with podman and skopeo, whose packages stay
#                           cached (on the Dockerfile's dind-packages stage) while
#                           dindfs changes
#   level_run NAME RUN_ARG...
#                           docker run -d --name NAME --hostname NAME RUN_ARG...
#                           (options, the image, its arguments); removed at exit
#   level_rm NAME...        remove levels now
#   start_level NAME IMAGE [DOCKER_RUN_OPTION...]
#                           a detached level (LEVEL and the options) running its
#                           dockerd, ready; removed at exit
#   level_wait NAME         wait until a level's dockerd answers (60 s); its log if not
#   at NAME COMMAND         bash -c COMMAND in a level, in /dindfs/workspace

DIND_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LONG=${LONG:-600} # seconds for a step that builds or debootstraps

DIND=(--cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined
	--security-opt apparmor=unconfined --security-opt systempaths=unconfined
	--device-cgroup-rule='a *:* rwm' --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw)
[[ -z ${MNT:-} ]] || LEVEL=("${DIND[@]}" --tmpfs /var/lib/docker:exec --network none -v "$MNT:/dindfs")

_lap=$SECONDS
lap() {
	echo "# $1: $((SECONDS - _lap)) s"
	_lap=$SECONDS
}

dk() { DOCKER_HOST=${DIND_HOST:-${host_HOST:?no dockerd for the levels}} timeout -k 10 "$LONG" docker "$@"; }

_codename() { case $1 in 12) echo bookworm ;; 13) echo trixie ;; *) return 1 ;; esac; }

hub_with_debian() {
	local name=$1 docker_host=$2 hostport
	shift 2
	expect_exit 0 "base images: $* (debootstrap, cached)" \
		timeout "$LONG" "$DIND_SRC/scripts/base-image.sh" --host "$docker_host" "$@"
	registry_start "$name"
	hostport=$(_var "$name" HOSTPORT)
	expect_exit 0 "debian:12-slim pushed to the test registry as docker.io/library/debian:12-slim" \
		skopeo copy --src-daemon-host "$docker_host" docker-daemon:debian:12-slim \
		"docker://$hostport/library/debian:12-slim" --dest-tls-verify=false
	HUB_BLOBS=$(skopeo inspect --raw --tls-verify=false "docker://$hostport/library/debian:12-slim" |
		python3 -c 'import json, sys; m = json.load(sys.stdin); print(1 + len(m["layers"]))')
}

blob_gets() { registry_log_count "$1" GET '/v2/library/debian/blobs/sha256:[0-9a-f]{64}'; }

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

dind_podman_build() {
	local version=$1 failed=$FAILED
	expect_exit 0 "the DinD image's packages on debian:$version-slim (cached)" \
		dk build --network host --build-arg "BASE_IMAGE=debian:$version-slim" --target dind-packages \
		-t "dindfs-dind-packages:$version" "$DIND_SRC"
	# podman and skopeo on the DinD image's packages, then the DinD image's own
	# files: podman keeps its images with the vfs driver (this level's /var/lib
	# is on the engine's overlayfs)
	expect_exit 0 "the DinD image with podman and skopeo builds (cached)" \
		dk build --network host -t "dindfs-dind-podman:$version" - <<-EOF
			FROM dindfs-dind-packages:$version
			RUN apt-get update \\
			 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends podman skopeo \\
			 && rm -rf /var/lib/apt/lists/* \\
			 && printf '[storage]\\ndriver = "vfs"\\nrunroot = "/run/containers/storage"\\ngraphroot = "/var/lib/containers/storage"\\n' \\
			  >/etc/containers/storage.conf
			COPY --from=dindfs-dind:$version /usr/local/bin/dind-entrypoint /usr/local/bin/dindfs-route /usr/local/bin/dindfs /usr/local/bin/
			ENV DINDFS_ROOT=/dindfs PODMAN_IGNORE_CGROUPSV1_WARNING=1
			ENTRYPOINT ["dind-entrypoint"]
			CMD []
		EOF
	[[ $FAILED == "$failed" ]] || tail -30 "$WORK/out" "$WORK/err"
	[[ $FAILED == "$failed" ]]
}

start_level() {
	local name=$1 image=$2
	shift 2
	level_run "$name" "${LEVEL[@]}" "$@" "$image" && level_wait "$name"
}

level_run() {
	local name=$1
	shift
	on_exit "level_rm $name"
	dk run -d --name "$name" --hostname "$name" "$@" >/dev/null
}

level_rm() { dk rm -f "$@" >/dev/null 2>&1 || true; }

level_wait() {
	local name=$1 i
	for ((i = 0; i < 600; i++)); do
		dk exec "$name" docker version >/dev/null 2>&1 && return 0
		[[ $(dk inspect -f '{{.State.Running}}' "$name") == true ]] || break
		sleep 0.1
	done
	echo "level_wait: the dockerd of $name did not answer; its last lines:" >&2
	dk logs "$name" 2>&1 | tail -5 >&2
	return 1
}

at() {
	local name=$1
	shift
	dk exec -w /dindfs/workspace "$name" bash -c "$*"
}
