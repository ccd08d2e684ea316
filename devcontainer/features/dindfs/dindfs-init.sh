#!/bin/sh
# The dindfs feature's entrypoint (/usr/local/share/dindfs-init.sh): at
# container start, when the host's dindfs mount is bound at $DINDFS_ROOT
# (/dindfs), start dindfs-route in the background: every registry the
# host serves resolves to the loopback, where `dindfs mirror` answers (and
# /etc/docker/daemon.json names it as docker.io's registry mirror). It
# returns at once: the dev container tooling runs the features' entrypoints one after the other, and dockerd
# (started by the docker-in-docker feature's) needs the mirror only when
# it pulls. Then it runs its arguments, if any.
ROOT=${DINDFS_ROOT:-/dindfs}
DINDFS_MIRROR=127.0.0.1:5000
[ ! -r /usr/local/etc/dindfs-feature.env ] || . /usr/local/etc/dindfs-feature.env
LOG=/var/log/dindfs-mirror.log
touch "$LOG" 2>/dev/null || LOG=/tmp/dindfs-mirror.log

if mountpoint -q "$ROOT" && [ "$(id -u)" = 0 ]; then
	# every registry the host serves, through the mirror (tools/dindfs-route.sh)
	setsid dindfs-route --root "$ROOT" --mirror "$DINDFS_MIRROR" </dev/null >>"$LOG" 2>&1 &
	echo "dindfs: pulls go through the cache at $ROOT (dindfs mirror on $DINDFS_MIRROR, 80 and 443, for every registry the host serves; log $LOG)" >&2
elif mountpoint -q "$ROOT"; then
	# not root: no /etc/hosts, no ports 80 and 443; docker.io through registry-mirrors
	setsid dindfs mirror --root "$ROOT" --listen "$DINDFS_MIRROR" </dev/null >>"$LOG" 2>&1 &
	echo "dindfs: docker.io pulls go through the cache at $ROOT (dindfs mirror on $DINDFS_MIRROR, log $LOG); other registries need root to route" >&2
else
	echo "dindfs: $ROOT is not mounted: no cache, dockerd pulls from registries itself" >&2
fi
exec "$@"
