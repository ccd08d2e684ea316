# dindfs as a container (the Dockerfile's stage dindfs, tools/dindfs-entrypoint.sh)
# for tests/container.sh and bench/nested-pull.sh. Source it after lib.sh,
# mount_lib.sh and dind_lib.sh (for dk: the containers run on DIND_HOST).
#
#   fuse_mounts DIR             how many dindfs mounts are stacked on DIR here
#   host_dir_share DIR          make DIR a shared mount, as docker needs for an
#                               rshared bind: a bind mount of DIR on itself
#                               (a host whose / is private, like this one)
#   host_dir_undo DIR           detach what is left mounted on DIR/mnt, then DIR's
#                               own bind
#   cmount_alive DIR            DIR/mnt is one dindfs mount, and it answers
#   cmount_run NAME DIR VOLUME [DOCKER_RUN_OPTION...] -- [DINDFS_MOUNT_OPTION...]
#                               the README's compose-less start: the anchor
#                               NAME-anchor and the mount NAME, with DIR as the
#                               Docker host's /var/lib/dindfs and the store in
#                               the volume VOLUME; returns once DIR/mnt answers;
#                               stopped at exit
#   cmount_stop NAME            docker stop, then docker rm, the mount and its
#                               anchor (not rm -f: a killed dindfs leaves its
#                               mount behind, dead)
#
# The image is CMOUNT_IMAGE (default dindfs: docker build --target dindfs).

fuse_mounts() { awk -v d="$1" '$2 == d && $3 == "fuse.dindfs" { n++ } END { print n + 0 }' /proc/mounts; }

host_dir_share() {
	mkdir -p "$1"
	mount --bind "$1" "$1" && mount --make-shared "$1"
}

host_dir_undo() {
	while [[ $(fuse_mounts "$1/mnt") != 0 ]]; do umount -l "$1/mnt" || break; done
	umount -l "$1"
}

cmount_alive() { [[ $(fuse_mounts "$1/mnt") == 1 ]] && T stat "$1/mnt/.dindfs/stats" >/dev/null 2>&1; }

cmount_run() {
	local name=$1 dir=$2 volume=$3 run=() dindfs=()
	shift 3
	while (($#)) && [[ $1 != -- ]]; do
		run+=("$1")
		shift
	done
	(($# == 0)) || shift
	dindfs=("$@")
	on_exit "cmount_stop $name"
	local common=(--cap-add SYS_ADMIN --security-opt apparmor=unconfined
		-v "$dir:/run/dindfs:rshared")
	dk run -d --name "$name-anchor" --network none "${common[@]}" "${CMOUNT_IMAGE:-dindfs}" anchor >/dev/null &&
		dk run -d --name "$name" --device /dev/fuse "${common[@]}" \
			-v "$volume:/var/lib/dindfs/store" "${run[@]}" "${CMOUNT_IMAGE:-dindfs}" "${dindfs[@]}" >/dev/null &&
		wait_until 30 cmount_alive "$dir" || {
		echo "cmount_run: the dindfs container did not mount $dir/mnt; its last lines:" >&2
		dk logs "$name" 2>&1 | tail -5 >&2
		return 1
	}
}

cmount_stop() {
	dk stop "$1" "$1-anchor" >/dev/null 2>&1 || true
	dk rm "$1" "$1-anchor" >/dev/null 2>&1 || true
}
