#!/usr/bin/env bash
# The dindfs demo: the classic Docker-in-Docker demo (hello.sh at every
# level, one log.txt) redone through dindfs, on a fresh Debian 12 machine.
#
#   scripts/demo.sh          run it; everything it started is stopped at the end
#   scripts/demo.sh --keep   leave /dindfs mounted, to look around (it serves
#                            what it cached; the stand-in registry stops)
#
# It installs what it needs, builds dindfs, uses the dockerd on
# /var/run/docker.sock or starts one of its own, mounts dindfs at /dindfs
# (store /var/lib/dindfs, workspace /var/lib/dindfs-demo/workspace, yours if
# you ran it with sudo), builds the DinD image (Dockerfile) on a
# debootstrapped trixie, then runs hello.sh on the host, in a DinD
# container (L1) and in a container that L1's dockerd starts (L2) from
# debian:12-slim pulled through the cache; then a second L1 pulls the same
# image again: nothing comes from upstream. Without internet, a local
# docker-registry holding a debootstrapped debian:12-slim stands in for
# Docker Hub.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD

keep=""
case ${1-} in
--keep) keep=1 ;;
"") ;;
*)
	echo "usage: $0 [--keep]" >&2
	exit 2
	;;
esac
if [[ $(id -u) != 0 ]]; then
	exec sudo "$0" "$@"
fi

MNT=/dindfs
STORE=${DINDFS_STORE:-/var/lib/dindfs}
DEMO=/var/lib/dindfs-demo
WS=$DEMO/workspace
IMAGE=dindfs-dind
RUN=$(mktemp -d /tmp/dindfs-demo.XXXXXX) # logs, pids, sockets of this run

step=0
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }
show() { # COMMAND...: print it (quoted where it must be), run it
	local arg line="$"
	for arg in "$@"; do
		if [[ $arg =~ ^[][A-Za-z0-9_./:=,@+-]+$ ]]; then line+=" $arg"; else line+=" '$arg'"; fi
	done
	printf '\033[36m%s\033[0m\n' "$line"
	"$@"
}
level_step() {
	step=$((step + 1))
	say "$step. $*"
}

# ---- cleanup ----------------------------------------------------------------

CLEANUPS=()
on_exit() { CLEANUPS+=("$1"); }
cleanup() {
	local i
	cd /
	for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[$i]}" || true; done
	rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # PID: a process this script started
	kill "$1" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null || true
}

# ---- what it needs ------------------------------------------------------------

say "Installing what the demo needs, building dindfs"
. scripts/deps.sh
install_packages "${BUILD_PACKAGES[@]}" "${DEMO_PACKAGES[@]}"
# its own build directory, without the tests (and their packages)
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDINDFS_TESTS=OFF >/dev/null
cmake --build build-demo -j"$(nproc)" --target dindfs >/dev/null
DINDFS=$SRC/build-demo/dindfs
note "built $DINDFS"

# ---- a dockerd ------------------------------------------------------------------

export DOCKER_HOST=unix:///var/run/docker.sock
if docker version >/dev/null 2>&1; then
	note "using the dockerd on /var/run/docker.sock"
else
	# Its own: data kept in $DEMO/docker (the next run reuses the images),
	# no bridge and no iptables rule: image builds use the host's network,
	# the levels need none.
	exec_root=$(mktemp -d /tmp/dx.XXXXXX) # containerd's socket path must stay short
	export DOCKER_HOST=unix://$RUN/docker.sock
	dockerd --data-root "$DEMO/docker" --exec-root "$exec_root" --pidfile "$RUN/dockerd.pid" \
		-H "$DOCKER_HOST" --iptables=false --bridge=none >"$RUN/dockerd.log" 2>&1 &
	dockerd_pid=$!
	on_exit "stop_pid $dockerd_pid; umount -l '$exec_root/netns/default' 2>/dev/null; rm -rf '$exec_root'"
	for _ in $(seq 300); do
		docker version >/dev/null 2>&1 && break
		kill -0 "$dockerd_pid" 2>/dev/null || break
		sleep 0.1
	done
	docker version >/dev/null 2>&1 || {
		echo "demo: dockerd did not start:" >&2
		tail -15 "$RUN/dockerd.log" >&2
		exit 1
	}
	note "no dockerd on /var/run/docker.sock: started one of our own (PID $dockerd_pid), stopped at the end"
fi

# How a level runs: --privileged where the host allows it; where the
# capability bounding set lacks CAP_SYS_RESOURCE (some sandboxes, CI
# runners), --privileged fails and the explicit set below does the same job.
if (($(printf '%d' "0x$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)") >> 24 & 1)); then
	PRIV=(--privileged)
else
	PRIV=(--cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined
		--security-opt apparmor=unconfined --security-opt systempaths=unconfined
		--device-cgroup-rule='a *:* rwm' --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw)
fi
LEVEL=("${PRIV[@]}" --tmpfs /var/lib/docker:exec --network none -v "$MNT:$MNT" -w "$MNT/workspace")

# ---- base images, and an upstream for docker.io ---------------------------------

say "Base images with debootstrap (once; then from /var/cache/dindfs)"
scripts/base-image.sh bookworm trixie | sed 's/^/   /'

upstream=()
if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 https://registry-1.docker.io/v2/ || true) == 401 ]]; then
	note "Docker Hub answers: docker.io images come from there, through the cache"
else
	for _ in $(seq 50); do # a free loopback port
		port=$((20000 + RANDOM % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
	done
	mkdir -p "$RUN/registry"
	cat >"$RUN/registry/config.yml" <<-EOF
		version: 0.1
		log: {level: warn, accesslog: {disabled: true}}
		storage: {filesystem: {rootdirectory: $RUN/registry}}
		http: {addr: 127.0.0.1:$port}
	EOF
	docker-registry serve "$RUN/registry/config.yml" >"$RUN/registry.log" 2>&1 &
	registry_pid=$!
	on_exit "stop_pid $registry_pid"
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break
		sleep 0.1
	done
	skopeo copy -q --src-daemon-host "$DOCKER_HOST" docker-daemon:debian:12-slim \
		"docker://127.0.0.1:$port/library/debian:12-slim" --dest-tls-verify=false
	upstream=(--upstream "docker.io=http://127.0.0.1:$port")
	note "No Docker Hub here: a local docker-registry on 127.0.0.1:$port stands in for docker.io,"
	note "holding the debootstrapped debian:12-slim as library/debian:12-slim."
fi

# ---- the mount ------------------------------------------------------------------

say "Mounting dindfs at $MNT"
if mountpoint -q "$MNT"; then
	note "$MNT is mounted already (a demo run with --keep?): unmounting it first"
	"$DINDFS" umount "$MNT" 2>/dev/null || umount "$MNT"
fi
mkdir -p "$WS" "$MNT"
owner=${SUDO_UID:-0}:${SUDO_GID:-0}
chown "$owner" "$WS"
cp "$SRC/hello.sh" "$WS/hello.sh"
chown "$owner" "$WS/hello.sh"
rm -f "$WS/log.txt"
show "$DINDFS" mount --store "$STORE" --workspace "$WS" "${upstream[@]}" \
	--log "$RUN/dindfs.log" -o allow_other "$MNT"
if [[ -n $keep ]]; then
	keep_note="left mounted: unmount with 'sudo $DINDFS umount $MNT'"
else
	on_exit "'$DINDFS' umount '$MNT'"
fi
note "the workspace $WS (owned by $owner) is $MNT/workspace at every level"

stat_of() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" "$MNT/.dindfs/stats"; }

say "Building the DinD image ($IMAGE) on debian:13-slim"
show docker build -q --network host --build-arg BASE_IMAGE=debian:13-slim -t "$IMAGE" "$SRC" 2>&1 |
	grep -v -e DEPRECATED -e 'Install the buildx' -e 'docs.docker.com/go/buildx' -e '^$' || true
docker image inspect "$IMAGE" >/dev/null

# ---- the classic demo, through dindfs ----------------------------------------------

cd "$MNT/workspace"
level_step "hello.sh on the host, in $MNT/workspace"
show ./hello.sh

level_step "A DinD container (L1): its entrypoint starts dindfs mirror and dockerd"
note "inside it: hello.sh; docker pull debian:12-slim (through the mirror, i.e. the"
note "host's cache); then a container (L2) from that image runs hello.sh"
up0=$(stat_of upstream_bytes)
show docker run --rm --hostname level1 "${LEVEL[@]}" "$IMAGE" bash -c '
	set -e
	echo "[L1] ./hello.sh"; ./hello.sh
	echo "[L1] docker pull debian:12-slim"; t0=$EPOCHREALTIME; docker pull -q debian:12-slim
	awk -v s="$t0" -v e="$EPOCHREALTIME" "BEGIN { printf \"[L1] pull-time %.1f s\\n\", e - s }"
	echo "[L1] docker run debian:12-slim ./hello.sh   (L2)"
	docker run --rm --network none --hostname level2 -v /dindfs:/dindfs -w /dindfs/workspace \
		debian:12-slim ./hello.sh' | tee "$RUN/first.out"
up1=$(stat_of upstream_bytes)
if ((up1 == up0)); then
	note "upstream bytes of this pull: 0 (the store, $STORE, kept the image from an earlier run)"
else
	note "upstream bytes of this pull: $((up1 - up0)) (the host's daemon fetched every blob once)"
fi

level_step "A second L1 pulls the same image and runs L2 again"
note "and first asks dindfs doctor what it sees at that level"
show docker run --rm --hostname level1-again "${LEVEL[@]}" "$IMAGE" bash -c '
	set -e
	echo "[L1] dindfs doctor"; dindfs doctor
	echo "[L1] ./hello.sh"; ./hello.sh
	echo "[L1] docker pull debian:12-slim"; t0=$EPOCHREALTIME; docker pull -q debian:12-slim
	awk -v s="$t0" -v e="$EPOCHREALTIME" "BEGIN { printf \"[L1] pull-time %.1f s\\n\", e - s }"
	echo "[L1] docker run debian:12-slim ./hello.sh   (L2)"
	docker run --rm --network none --hostname level2-again -v /dindfs:/dindfs -w /dindfs/workspace \
		debian:12-slim ./hello.sh' | tee "$RUN/second.out"
up2=$(stat_of upstream_bytes)
note "upstream bytes of the second pull: $((up2 - up1))"

level_step "One log.txt, written from every level"
show cat log.txt
note "on disk: $WS/log.txt, owned by $(stat -c %U "$WS/log.txt")"

level_step "The cache's counters ($MNT/.dindfs/stats)"
show "$DINDFS" stats --root "$MNT"

pull_time() { sed -n 's/^\[L1\] pull-time \(.*\)$/\1/p' "$1"; } # OUTPUT FILE
say "What it shows"
note "first pull of debian:12-slim (L1):  $(pull_time "$RUN/first.out"), $((up1 - up0)) bytes fetched upstream"
note "second pull (another L1):          $(pull_time "$RUN/second.out"), $((up2 - up1)) bytes fetched upstream"
note "(bytes: upstream_bytes in $MNT/.dindfs/stats, before and after each pull)"
note "log.txt: $WS/log.txt on the host, $MNT/workspace/log.txt at every level"
cd /
[[ -z ${keep_note-} ]] || note "$MNT is $keep_note"
