#!/bin/sh
# The dindfs feature's entrypoint (/usr/local/share/dindfs-init.sh): at
# container start, when the host's dindfs mount is bound at $DINDFS_ROOT
# (/dindfs), start `dindfs mirror` in the background, the registry mirror
# that /etc/docker/daemon.json names. It returns at once: the dev container
# tooling runs the features' entrypoints one after the other, and dockerd
# (started by the docker-in-docker feature's) needs the mirror only when
# it pulls. Then it runs its arguments, if any.
ROOT=${DINDFS_ROOT:-/dindfs}
DINDFS_MIRROR=127.0.0.1:5000
[ ! -r /usr/local/etc/dindfs-feature.env ] || . /usr/local/etc/dindfs-feature.env
LOG=/var/log/dindfs-mirror.log
touch "$LOG" 2>/dev/null || LOG=/tmp/dindfs-mirror.log

if mountpoint -q "$ROOT"; then
	setsid dindfs mirror --root "$ROOT" --listen "$DINDFS_MIRROR" </dev/null >>"$LOG" 2>&1 &
	echo "dindfs: pulls go through the cache at $ROOT (dindfs mirror on $DINDFS_MIRROR, log $LOG)" >&2
else
	echo "dindfs: $ROOT is not mounted: no cache, dockerd pulls from registries itself" >&2
fi
exec "$@"
