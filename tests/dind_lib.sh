# Docker-in-Docker levels for the scripts that run them (tests/e2e.sh,
# bench/nested-pull.sh). Source it after lib.sh and docker_lib.sh, and set
# DIND_HOST to the dockerd that runs the levels (unix://..., the NAME_HOST
# of docker_lib.sh's dockerd_start).
#
#   dk DOCKER_ARG...               docker against that dockerd, under a time
#                                  limit (DK_TIMEOUT seconds, default 600)
#   level_run NAME RUN_ARG...      docker run -d --name NAME --hostname NAME
#                                  RUN_ARG... (options, the image, its
#                                  arguments); removed at exit
#   level_wait NAME                wait until the level's dockerd answers
#   level_start NAME RUN_ARG...    both
#   level_rm NAME...               remove levels now

# How a DinD level runs where --privileged is refused (design.md); a level
# also needs a /var/lib/docker that is not overlayfs (--tmpfs or a volume).
DIND=(--cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined
	--security-opt apparmor=unconfined --security-opt systempaths=unconfined
	--device-cgroup-rule='a *:* rwm' --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw)

dk() { DOCKER_HOST=${DIND_HOST:?DIND_HOST names no dockerd} timeout -k 10 "${DK_TIMEOUT:-600}" docker "$@"; }

level_run() {
	local name=$1
	shift
	on_exit "level_rm $name"
	dk run -d --name "$name" --hostname "$name" "$@" >/dev/null
}

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

level_start() {
	level_run "$@" && level_wait "$1"
}

level_rm() { dk rm -f "$@" >/dev/null 2>&1 || true; }
