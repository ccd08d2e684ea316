#!/bin/bash
# The entrypoint of the dindfs image (Dockerfile, stage dindfs): the dindfs
# mount, run as a container, for hosts where dindfs cannot be installed
# (Docker Desktop's VM, CI runners). compose.yaml runs it twice:
#
#   dindfs-entrypoint [DINDFS_MOUNT_OPTION...]   the mount (dindfs mount -f)
#   dindfs-entrypoint anchor                     the anchor (see below)
#
# Both bind the host's /var/lib/dindfs at /run/dindfs with rshared
# propagation and need CAP_SYS_ADMIN. The mount goes on /run/dindfs/mnt, so
# it appears on the host at /var/lib/dindfs/mnt, and Docker-in-Docker
# containers bind that with -v /var/lib/dindfs/mnt:/dindfs:rslave.
#
# Restarts. A container bound to the mount holds a copy of it, not the path:
# when dindfs stops, that copy is dead ("Transport endpoint is not
# connected"), and a new mount on the host path does not replace it. What
# does reach it is a mount made on top of a mount of the old mount's peer
# group: the anchor keeps one such mount (out of the host's sight, in its own
# namespace), and whenever a new dindfs mount appears it binds it on top, so
# every running DinD container sees the new mount on its /dindfs. One dead
# layer per restart stays underneath, in the anchor and in those containers,
# and goes with them. The parent directory is bound, not the mount point,
# because docker cannot bind a path whose mount is dead: after a crash the
# mount detaches the dead one (umount -l, which propagates) and mounts anew.
#
# Environment: DINDFS_UPSTREAM ("HOST=URL ..."), DINDFS_TAG_TTL,
# DINDFS_MAX_SIZE, DINDFS_WORKSPACE_OWNER (UID:GID); the workspace is
# /workspace when that exists, the store /var/lib/dindfs/store (a volume).
set -euo pipefail

HOST_DIR=/run/dindfs
MNT=$HOST_DIR/mnt
STORE=/var/lib/dindfs/store
WORKSPACE=/workspace
ANCHOR=/run/dindfs-anchor

say() { echo "dindfs-entrypoint: $*" >&2; }
die() {
	say "$*"
	exit 1
}

# mount_info DIR: "DEVICE PROPAGATION FSTYPE" of the top mount on DIR (empty
# if DIR is no mount point); DEVICE is the file system's MAJOR:MINOR,
# PROPAGATION "shared", "slave" or "private".
mount_info() {
	awk -v dir="$1" '$5 == dir {
		prop = "private"
		for (i = 7; $i != "-"; i++) {
			if ($i ~ /^shared:/) prop = "shared"
			else if ($i ~ /^master:/ && prop != "shared") prop = "slave"
		}
		top = $3 " " prop " " $(i + 1)
	} END { if (top != "") print top }' /proc/self/mountinfo
}

# has_cap BIT: the effective capability set holds it (linux/capability.h).
has_cap() { (($(printf '%d' "0x$(awk '/^CapEff:/ { print $2 }' /proc/self/status)") >> $1 & 1)); }
has_cap 21 || die "no CAP_SYS_ADMIN: run with --cap-add SYS_ADMIN"

# The host's directory, bound with rshared propagation (else the mount stays
# in this container).
read -r _ propagation _ <<<"$(mount_info "$HOST_DIR")" || true
[[ ${propagation:-} == shared ]] ||
	die "$HOST_DIR is not a shared bind mount: run with -v /var/lib/dindfs:$HOST_DIR:rshared"

# is_alive DIR: DIR answers (a dead FUSE mount says ENOTCONN).
is_alive() { timeout 10 stat -f "$1" >/dev/null 2>&1; }

# ---- the anchor ------------------------------------------------------------------

if [[ ${1:-} == anchor ]]; then
	trap 'exit 0' TERM INT
	mkdir -p "$ANCHOR"
	anchored=""
	while :; do
		# a mount's device is not reused while the anchor holds it
		read -r device _ fstype <<<"$(mount_info "$MNT")" || true
		if [[ ${fstype:-} == fuse.dindfs && $device != "$anchored" ]] && is_alive "$MNT"; then
			mount --bind "$MNT" "$ANCHOR" || die "cannot bind $MNT on $ANCHOR"
			anchored=$device
			say "anchored the dindfs mount (device $device)"
		fi
		sleep 0.5 &
		wait $! || true
	done
fi

# ---- the mount --------------------------------------------------------------------

[[ -c /dev/fuse ]] || die "no /dev/fuse: run with --device /dev/fuse"

# What a dindfs that died left behind: detached here, and so on the host.
for ((i = 0; i < 100; i++)); do
	read -r _ _ fstype <<<"$(mount_info "$MNT")" || true
	[[ ${fstype:-} == fuse.dindfs ]] || break
	if is_alive "$MNT"; then
		die "$MNT is mounted and answers: another dindfs serves it"
	fi
	say "detaching a dead dindfs mount at $MNT"
	umount -l "$MNT" || die "cannot detach the dead mount at $MNT"
done
mkdir -p "$MNT"

args=(mount -f -o allow_other --store "$STORE")
[[ ! -d $WORKSPACE ]] || args+=(--workspace "$WORKSPACE")
[[ -z ${DINDFS_WORKSPACE_OWNER:-} ]] || args+=(--workspace-owner "$DINDFS_WORKSPACE_OWNER")
[[ -z ${DINDFS_TAG_TTL:-} ]] || args+=(--tag-ttl "$DINDFS_TAG_TTL")
[[ -z ${DINDFS_MAX_SIZE:-} ]] || args+=(--max-size "$DINDFS_MAX_SIZE")
for upstream in ${DINDFS_UPSTREAM:-}; do
	args+=(--upstream "$upstream")
done
# dindfs is PID 1: on SIGTERM it unmounts (which propagates) and closes the store.
exec dindfs "${args[@]}" "$@" "$MNT"
