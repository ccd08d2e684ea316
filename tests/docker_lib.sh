# A dockerd of the test's own, sourced after lib.sh: its own data-root,
# exec-root, pidfile and socket under $WORK, stopped by PID at exit. No
# iptables and no bridge: containers run with --network none.

# dockerd_start NAME [DOCKERD_OPTION...]: start it and set NAME_HOST
# (unix://...), NAME_DIR and NAME_PID. Returns once `docker info` answers.
# The dockerd named "host" (the one that runs DinD levels) keeps its
# data-root in $DINDFS_CACHE/dockerd (see _shared_data_root).
dockerd_start() {
	local name=$1 dir=$WORK/dockerd-$1 i data
	shift
	mkdir -p "$dir"
	data=$dir/data
	[[ $name != host ]] || _shared_data_root data
	# a short exec-root: containerd's socket path must fit in 108 bytes
	local exec_root
	exec_root=$(mktemp -d /tmp/dx.XXXXXX)
	on_exit "_exec_root_remove '$exec_root'"
	dockerd --data-root "$data" --exec-root "$exec_root" --pidfile "$dir/pid" \
		-H "unix://$dir/sock" --iptables=false --bridge=none "$@" >"$dir/log" 2>&1 &
	_set "$name" PID $!
	_set "$name" HOST "unix://$dir/sock"
	_set "$name" DIR "$dir"
	on_exit "dockerd_stop $name"
	for ((i = 0; i < 300; i++)); do
		DOCKER_HOST=unix://$dir/sock docker info >/dev/null 2>&1 && {
			_containers_remove "unix://$dir/sock"
			return 0
		}
		kill -0 "$(_var "$name" PID)" 2>/dev/null || break
		sleep 0.1
	done
	echo "dockerd_start: dockerd did not start; its log:" >&2
	tail -20 "$dir/log" >&2
	return 1
}

# _shared_data_root VAR: sets VAR to where the "host" dockerd keeps its data. Its
# images and build cache (the debootstrapped bases, the DinD images) outlive
# the test, so e2e, doctor, container and devcontainer build them once per
# machine, not once each: CI's time goes to the checks. One dockerd holds it at
# a time (a flock, kept by this shell until it exits); a test that runs while
# another holds it keeps VAR (a data-root of its own). dockerd inherits the
# lock's descriptor, which is fine: the lock is the test's while either lives.
_shared_data_root() {
	local shared=${DINDFS_CACHE:-/var/cache/dindfs}/dockerd
	mkdir -p "$shared" || return 0
	[[ -n ${_DATA_LOCK_FD:-} ]] || exec {_DATA_LOCK_FD}>"$shared.lock"
	! flock -n "$_DATA_LOCK_FD" || printf -v "$1" %s "$shared"
}

# _containers_remove HOST: containers a killed run left in a shared data-root.
_containers_remove() {
	local ids
	ids=$(DOCKER_HOST=$1 docker ps -aq) || return 0
	[[ -z $ids ]] || DOCKER_HOST=$1 docker rm -f $ids >/dev/null 2>&1 || true
}

# _exec_root_remove DIR: what dockerd leaves mounted there (netns/default,
# an nsfs bind mount) is detached first, else rm cannot remove it.
_exec_root_remove() {
	local m
	for m in $(awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$1"
}

# dockerd_stop NAME: stop it (and wait: it unmounts its layers on the way out).
dockerd_stop() {
	local pid i
	pid=$(_var "$1" PID)
	[[ -n $pid ]] || return 0
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	_set "$1" PID ""
}
