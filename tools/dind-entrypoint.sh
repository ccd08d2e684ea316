#!/bin/bash
# The entrypoint of the dindfs Docker-in-Docker image (Dockerfile).
#
#   dind-entrypoint                  dockerd in the foreground (the default CMD)
#   dind-entrypoint dockerd [OPT...] the same, with dockerd's options
#   dind-entrypoint COMMAND [ARG...] dockerd in the background, then COMMAND
#
# It prepares the container as moby's hack/dind does (securityfs, cgroup v2
# nesting, shared mount propagation), then, when the host's dindfs mount is
# bind-mounted at $DINDFS_ROOT (/dindfs), starts dindfs-route
# (tools/dindfs-route.sh: every registry the host serves resolves to this
# level's loopback, where `dindfs mirror` answers on $DINDFS_MIRROR
# (127.0.0.1:5000), on port 80 and, with a certificate of a CA made here, on
# 443; containerd, podman and skopeo are told too) and names the mirror in
# /etc/docker/daemon.json as "registry-mirrors" for docker.io, so this
# level's clients pull through the host's cache. It refuses to start when
# /var/lib/docker is on overlayfs.
#
# Run the image with --privileged, or where that is refused with
#   --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined
#   --security-opt apparmor=unconfined --security-opt systempaths=unconfined
#   --device-cgroup-rule='a *:* rwm' --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw
# and in both cases --tmpfs /var/lib/docker:exec (or a volume there), and
# -v /dindfs:/dindfs for the cache and the workspace.
#
# -e DINDFS_LOG_REQUESTS=1: the mirror and the snapshotter log every request
# with its time and duration (/var/log/dindfs-mirror.log,
# dindfs-snapshotter.log), containerd logs at debug level: to see where a
# pull's time goes.
set -euo pipefail

ROOT=${DINDFS_ROOT:-/dindfs}
MIRROR=${DINDFS_MIRROR:-127.0.0.1:5000}
DOCKERD_TIMEOUT=${DOCKERD_TIMEOUT:-60}
DAEMON_JSON=/etc/docker/daemon.json
LOGS=/var/log

say() { echo "dind-entrypoint: $*" >&2; }
die() {
	say "$*"
	exit 1
}

# ---- where dockerd keeps its layers ------------------------------------------

command -v dockerd >/dev/null && command -v docker >/dev/null ||
	die "this image lacks dockerd or the docker command"

# has_cap BIT: the effective capability set holds it (linux/capability.h).
has_cap() { (($(printf '%d' "0x$(awk '/^CapEff:/ { print $2 }' /proc/self/status)") >> $1 & 1)); }
has_cap 21 && has_cap 12 ||
	die "no CAP_SYS_ADMIN or CAP_NET_ADMIN: run with --privileged (or the capability set in this script's header)"

mkdir -p /var/lib/docker
case $(stat -fc %T /var/lib/docker) in
overlayfs | aufs)
	die "/var/lib/docker is on $(stat -fc %T /var/lib/docker), where dockerd cannot store layers: run with --tmpfs /var/lib/docker:exec or -v VOLUME:/var/lib/docker"
	;;
esac

# ---- what moby's hack/dind does ----------------------------------------------

# AppArmor: dockerd must know that it runs in a container.
export container=docker
if [[ -d /sys/kernel/security ]] && ! mountpoint -q /sys/kernel/security; then
	mount -t securityfs none /sys/kernel/security 2>/dev/null ||
		say "cannot mount /sys/kernel/security (AppArmor detection may break)"
fi

# cgroup v2: move every process out of the root group (else writing
# subtree_control fails with EBUSY) and hand every controller down. Only in
# a cgroup namespace of our own (the default with --privileged): with
# --cgroupns host the root group is the host's, which is not ours to touch.
# cgroup v1 needs nothing; but when the host's whole hierarchy is
# bind-mounted (--cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup), this
# level's containers go under our own group (cgroup-parent), not beside us
# at the top of the host's, so that they live within our limits and leave
# with us.
cgroup_parent=""
if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
	if [[ $(cat /proc/self/cgroup) == "0::/" ]]; then
		mkdir -p /sys/fs/cgroup/init
		xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
		sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers \
			>/sys/fs/cgroup/cgroup.subtree_control
	else
		say "cgroup v2 without a cgroup namespace of our own: leaving the groups as they are"
	fi
else
	self=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
	if [[ -n $self && $self != / && -d /sys/fs/cgroup/memory$self ]]; then
		cgroup_parent=$self/dind
	fi
fi

# Shared mount propagation, as on a host with systemd.
mount --make-rshared / 2>/dev/null || say "cannot make / rshared"

# ---- the cache: dindfs mirror as this level's registry mirror ---------------

# daemon_json JQ_FILTER [JQ_ARG...]: change /etc/docker/daemon.json,
# keeping whatever else it says.
daemon_json() {
	local tmp
	mkdir -p "$(dirname "$DAEMON_JSON")"
	[[ -s $DAEMON_JSON ]] || echo '{}' >"$DAEMON_JSON"
	tmp=$(mktemp "$DAEMON_JSON.XXXXXX")
	jq "$@" "$DAEMON_JSON" >"$tmp" || {
		rm -f "$tmp"
		die "$DAEMON_JSON is not JSON: cannot change it"
	}
	mv "$tmp" "$DAEMON_JSON"
}

# "registry-mirrors": URL first, then whatever else was there.
daemon_json_set_mirror() {
	daemon_json --arg m "$1" '."registry-mirrors" = [$m] + ((."registry-mirrors" // []) - [$m])'
}

# DOCKERD_CONFIG: JSON merged into daemon.json, e.g. the containerd image store:
#   -e DOCKERD_CONFIG='{"features": {"containerd-snapshotter": true}}'
if [[ -n ${DOCKERD_CONFIG:-} ]]; then
	jq -e 'type == "object"' <<<"$DOCKERD_CONFIG" >/dev/null 2>&1 ||
		die "DOCKERD_CONFIG is not a JSON object: '$DOCKERD_CONFIG'"
	daemon_json --argjson c "$DOCKERD_CONFIG" '. * $c'
fi

if [[ -n $cgroup_parent && ${DOCKERD_OPTS:-} != *--cgroup-parent* ]]; then
	daemon_json --arg p "$cgroup_parent" '."cgroup-parent" //= $p'
fi

# port_answers HOST PORT
port_answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

if mountpoint -q "$ROOT"; then
	dindfs-route --root "$ROOT" --mirror "$MIRROR" >>"$LOGS/dindfs-mirror.log" 2>&1 &
	mirror_pid=$!
	# certificates and the trust store first: seconds on a busy machine
	for ((i = 0; i < DOCKERD_TIMEOUT * 10; i++)); do
		port_answers "${MIRROR%:*}" "${MIRROR##*:}" && port_answers 127.0.0.1 443 && break
		kill -0 "$mirror_pid" 2>/dev/null || break
		sleep 0.1
	done
	port_answers "${MIRROR%:*}" "${MIRROR##*:}" && port_answers 127.0.0.1 443 ||
		die "dindfs mirror did not start: $(grep . "$LOGS/dindfs-mirror.log" | tail -1)"
	daemon_json_set_mirror "http://$MIRROR"
	say "pulls go through the dindfs cache at $ROOT (dindfs mirror on $MIRROR)"
else
	say "$ROOT is not mounted: no dindfs cache, dockerd pulls from registries itself"
fi

# ---- shared layers: dindfs snapshotter under the containerd image store --------

# When this level runs the containerd image store (daemon.json's
# "features": {"containerd-snapshotter": true}, e.g. from DOCKERD_CONFIG) on
# dockerd 26.1 or later and the host's unpacked layers are at $ROOT/layers,
# its snapshotter is `dindfs snapshotter`: a layer the host has unpacked is
# a snapshot at once, no download and no unpack (README, "Shared layers").
# DINDFS_SNAPSHOTTER=on asks for the containerd image store too, =off never
# uses the snapshotter. The classic store (and Debian 12's dockerd 20.10)
# keep the mirror alone. DINDFS_SNAPSHOTTER_ROOT names another directory
# holding layers/ (the tests' own trees).
SNAP_ROOT=${DINDFS_SNAPSHOTTER_ROOT:-$ROOT}
SNAP_SOCKET=/run/dindfs/snapshotter.sock
CONTAINERD_SOCKET=/run/containerd/containerd.sock
CONTAINERD_ROOT=/var/lib/docker/containerd

# engine_has_snapshotters: dockerd is 26.1 or later (the containerd image store
# with a proxy snapshotter as its storage driver).
engine_has_snapshotters() {
	local v major minor
	v=$(dockerd --version | sed -nE 's/^Docker version ([0-9]+)\.([0-9]+).*/\1 \2/p')
	[[ -n $v ]] && read -r major minor <<<"$v" && ((major > 26 || (major == 26 && minor >= 1)))
}

# wait_socket PATH PID: until PATH is a socket, or PID has gone.
wait_socket() {
	for ((i = 0; i < DOCKERD_TIMEOUT * 10; i++)); do
		[[ -S $1 ]] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# wants_containerd_store: the switch, or daemon.json, asks for it
wants_containerd_store() {
	[[ ${DINDFS_SNAPSHOTTER:-auto} == on ]] ||
		{ [[ -s $DAEMON_JSON ]] && jq -e '.features."containerd-snapshotter" == true' "$DAEMON_JSON" >/dev/null 2>&1; }
}

case ${DINDFS_SNAPSHOTTER:-auto} in
auto | on | off) ;;
*) die "DINDFS_SNAPSHOTTER is '$DINDFS_SNAPSHOTTER': auto, on or off" ;;
esac
if [[ ${DINDFS_SNAPSHOTTER:-auto} != off && -d $SNAP_ROOT/layers ]] && wants_containerd_store &&
	engine_has_snapshotters && command -v containerd >/dev/null; then
	# state and containerd's root on /var/lib/docker: overlayfs upper layers
	# cannot live on the container's own overlayfs
	# A shared layer's blob is linked into containerd's content store from
	# $SNAP_ROOT/blobs and recorded in the pull's namespace, so docker images,
	# save and push see it without a copy.
	mkdir -p /run/dindfs /etc/containerd
	dindfs snapshotter --root "$SNAP_ROOT" --socket "$SNAP_SOCKET" \
		--state /var/lib/docker/dindfs-snapshotter \
		--content "$CONTAINERD_ROOT/io.containerd.content.v1.content" \
		--containerd "$CONTAINERD_SOCKET" ${DINDFS_LOG_REQUESTS:+--log-requests} \
		>>"$LOGS/dindfs-snapshotter.log" 2>&1 &
	snap_pid=$!
	wait_socket "$SNAP_SOCKET" "$snap_pid" ||
		die "dindfs snapshotter did not start: $(grep . "$LOGS/dindfs-snapshotter.log" | tail -1)"
	cat >/etc/containerd/dindfs.toml <<-EOF
		# Written by dind-entrypoint: containerd for this level's dockerd, with
		# dindfs snapshotter as the snapshotter named "dindfs".
		version = 2
		root = "$CONTAINERD_ROOT"
		state = "/run/containerd"
		disabled_plugins = ["io.containerd.grpc.v1.cri"]
		[grpc]
		  address = "$CONTAINERD_SOCKET"
		[proxy_plugins.dindfs]
		  type = "snapshot"
		  address = "$SNAP_SOCKET"
	EOF
	containerd --config /etc/containerd/dindfs.toml ${DINDFS_LOG_REQUESTS:+--log-level debug} \
		>>"$LOGS/containerd.log" 2>&1 &
	containerd_pid=$!
	wait_socket "$CONTAINERD_SOCKET" "$containerd_pid" ||
		die "containerd did not start: $(grep . "$LOGS/containerd.log" | tail -1)"
	daemon_json --arg s "$CONTAINERD_SOCKET" \
		'.features."containerd-snapshotter" = true | ."storage-driver" = "dindfs" | .containerd = $s'
	say "images use the shared layers of $SNAP_ROOT/layers (dindfs snapshotter, containerd image store)"
fi

# ---- dockerd, then the command ------------------------------------------------

if (($# == 0)); then
	set -- dockerd
fi
if [[ $1 == dockerd ]]; then
	exec "$@"
fi

# shellcheck disable=SC2086 # DOCKERD_OPTS is a list of options
dockerd ${DOCKERD_OPTS:-} >"$LOGS/dockerd.log" 2>&1 &
dockerd_pid=$!
for ((i = 0; i < DOCKERD_TIMEOUT * 10; i++)); do
	docker version >/dev/null 2>&1 && break
	kill -0 "$dockerd_pid" 2>/dev/null || break
	sleep 0.1
done
if ! docker version >/dev/null 2>&1; then
	say "dockerd did not start; the end of $LOGS/dockerd.log:"
	tail -15 "$LOGS/dockerd.log" | sed 's/^/    /' >&2
	exit 1
fi
exec "$@"
