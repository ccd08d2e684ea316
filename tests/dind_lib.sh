# What the Docker-in-Docker tests share, sourced after lib.sh, registry.sh
# and docker_lib.sh: how a level runs here, a stopwatch, and a docker.io
# upstream holding a debootstrapped library/debian:12-slim.
#
#   DIND=(...)                    the explicit capability set of design.md,
#                                 for where --privileged is refused
#   lap WHAT                      print the seconds since the last lap
#   hub_with_debian NAME DOCKER_HOST SUITE...
#                                 base images (scripts/base-image.sh, cached),
#                                 a registry NAME, debian:12-slim pushed to it
#                                 as library/debian:12-slim; sets HUB_BLOBS
#                                 (its config and layers)
#   blob_gets NAME                blob GETs of library/debian NAME answered

DIND=(--cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined
	--security-opt apparmor=unconfined --security-opt systempaths=unconfined
	--device-cgroup-rule='a *:* rwm' --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw)

_lap=$SECONDS
lap() {
	echo "# $1: $((SECONDS - _lap)) s"
	_lap=$SECONDS
}

hub_with_debian() {
	local name=$1 docker_host=$2 hostport
	shift 2
	expect_exit 0 "base images: $* (debootstrap, cached)" \
		timeout 600 "$(dirname "${BASH_SOURCE[0]}")/../scripts/base-image.sh" --host "$docker_host" "$@"
	registry_start "$name"
	hostport=$(_var "$name" HOSTPORT)
	expect_exit 0 "debian:12-slim pushed to the test registry as docker.io/library/debian:12-slim" \
		skopeo copy --src-daemon-host "$docker_host" docker-daemon:debian:12-slim \
		"docker://$hostport/library/debian:12-slim" --dest-tls-verify=false
	HUB_BLOBS=$(skopeo inspect --raw --tls-verify=false "docker://$hostport/library/debian:12-slim" |
		python3 -c 'import json, sys; m = json.load(sys.stdin); print(1 + len(m["layers"]))')
}

blob_gets() { registry_log_count "$1" GET '/v2/library/debian/blobs/sha256:[0-9a-f]{64}'; }
