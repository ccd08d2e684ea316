#!/usr/bin/env bash
# dindfs doctor and dindfs stats, with real parts: a dockerd of the test's
# own, Debian's docker-registry as docker.io, dindfs mounted with a
# workspace, and the DinD image of the Dockerfile (bookworm) for L1.
#
#   host: everything set up: exit 0, the mount answers, depth 0, upstream answers;
#         .dindfs/whoami says depth 0 (1 and 2 below, in new pid namespaces);
#         dindfs stats after a pull: the counters, and --json that parses
#   L1:   set up as the README says: exit 0, a container at depth 1, the mirror
#         answers; an L2 reads depth 2 from whoami
#   L1 without /dindfs: exit 1, naming the missing mount
#   L1 with /var/lib/docker on overlayfs: exit 1, naming overlayfs and the fix
#   a container with docker's default confinement: exit 1, naming the capabilities
#   host, mount hung (SIGSTOP) and then dead (SIGKILL): exit 1, naming it
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"
. "$(dirname "$0")/docker_lib.sh"

own_docker_config
MNT=$WORK/mnt
WS=$WORK/workspace
. "$(dirname "$0")/dind_lib.sh"

# doctor ARG...: dindfs doctor against our dockerd, output in $WORK/out
doctor() { T "$DINDFS" doctor --host "$host_HOST" "$@"; }
# fails_in FILE: show its FAIL lines (to see why an exit was 1)
fails_in() { grep -E -A1 '^FAIL' "$1" | sed 's/^/    /' || true; }
# json_field FILE KEY: one value of a JSON object
json_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# ---- the host -----------------------------------------------------------------

check "a dockerd of our own starts" dockerd_start host
dind_build 12 || {
	finish || true
	exit 1
}
registry_start hub
expect_exit 0 "debian:12-slim pushed to the test registry as docker.io/library/debian:12-slim" \
	skopeo copy --src-daemon-host "$host_HOST" docker-daemon:debian:12-slim \
	"docker://$hub_HOSTPORT/library/debian:12-slim" --dest-tls-verify=false
mkdir -p "$WS"
must_mount "$MNT" --store "$WORK/store" --workspace "$WS" --upstream "docker.io=$hub_URL"

start=$SECONDS
expect_exit 0 "doctor at the host, everything set up: exit 0" doctor --root "$MNT"
echo "# doctor at the host: $((SECONDS - start)) s, $(grep -cE '^(ok|info|warn|FAIL) ' "$WORK/out") checks"
cp "$WORK/out" "$WORK/doctor.host"
expect_match "$WORK/doctor.host" "^ok +mount: $MNT is mounted \(fuse.dindfs\) and answering" "it names the mount as answering"
expect_match "$WORK/doctor.host" '^ok +where: the host, depth 0' "it says host, depth 0"
expect_match "$WORK/doctor.host" "^ok +workspace: $MNT/workspace \(host changes watched; names and attributes trusted [0-9]+ s\)\$" \
	"it finds the workspace, its host changes watched"
expect_match "$WORK/doctor.host" "^ok +dockerd: Docker [^ ]+ answers at $host_HOST\$" "it finds our dockerd"
expect_match "$WORK/doctor.host" "^ok +upstream: docker.io \($hub_URL\) answers" \
	"docker.io answers, at the mount's --upstream"
expect_match "$WORK/doctor.host" '^info +capabilities: .*SYS_RESOURCE missing' \
	"SYS_RESOURCE missing is info (this machine's bounding set)"
expect_no_match "$WORK/doctor.host" '^FAIL' "no FAIL line"
expect_match "$WORK/doctor.host" '^[0-9]+ checks: .* 0 problems: nothing broken$' "the summary says nothing is broken"

expect_exit 2 "an unknown option is a usage error" "$DINDFS" doctor --bogus
expect_exit 2 "a --host that is no unix socket is a usage error" "$DINDFS" doctor --host tcp://x:1

# .dindfs/whoami: the pid namespace depth below the daemon
whoami_depth() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["depth"])' "$1/.dindfs/whoami"; }
check "whoami at the host: depth 0" test "$(whoami_depth "$MNT")" = 0
check "whoami in a new pid namespace: depth 1" \
	test "$(unshare -pf --mount-proc python3 -c 'import json; print(json.load(open("'"$MNT"'/.dindfs/whoami"))["depth"])')" = 1
check "whoami two pid namespaces down: depth 2" \
	test "$(unshare -pf --mount-proc unshare -pf --mount-proc cat "$MNT/.dindfs/whoami" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["depth"])')" = 2
check "whoami names the caller's own pid" python3 -c 'import json, os, sys
sys.exit(json.load(open(sys.argv[1]))["pid"] != os.getpid())' "$MNT/.dindfs/whoami"
expect_fsop 'open:EACCES' "whoami is read-only" writeopen "$MNT/.dindfs/whoami"

# ---- dindfs stats, after a pull ------------------------------------------------

expect_exit 0 "dindfs pull through the mount" "$DINDFS" pull --root "$MNT" debian:12-slim
expect_exit 0 "dindfs stats" "$DINDFS" stats --root "$MNT"
cp "$WORK/out" "$WORK/stats.txt"
bytes=$(stat_of "$MNT" upstream_bytes)
check "upstream bytes are counted ($bytes)" test "$bytes" -gt 0
expect_match "$WORK/stats.txt" "^upstream bytes +[0-9.]+ [KMG]?B \($bytes bytes\)\$" "stats shows the upstream bytes readably"
expect_match "$WORK/stats.txt" '^blobs in the store +[1-9][0-9]*$' "and the blobs in the store"
expect_match "$WORK/stats.txt" '^daemon pid +[1-9][0-9]*$' "and the daemon's pid"
expect_exit 0 "dindfs stats --json" "$DINDFS" stats --root "$MNT" --json
cp "$WORK/out" "$WORK/stats.json"
check "--json parses, with the same upstream_bytes" test "$(json_field "$WORK/stats.json" upstream_bytes)" = "$bytes"
expect_exit 1 "dindfs stats where nothing is mounted" "$DINDFS" stats --root "$WORK"
expect_match "$WORK/err" "cannot read '$WORK/.dindfs/stats'" "it says what it could not read"

# ---- L1 --------------------------------------------------------------------------

start=$SECONDS
expect_exit 0 "doctor in L1, set up as the README says: exit 0" \
	dk run --rm "${LEVEL[@]}" dindfs-dind:12 dindfs doctor
echo "# doctor in L1 (dockerd start included): $((SECONDS - start)) s, $(grep -cE '^(ok|info|warn|FAIL) ' "$WORK/out") checks"
cp "$WORK/out" "$WORK/doctor.l1"
fails_in "$WORK/doctor.l1"
expect_match "$WORK/doctor.l1" '^ok +where: a container .*, depth 1 below the dindfs daemon$' "it says container, depth 1"
expect_match "$WORK/doctor.l1" '^ok +mount: /dindfs is mounted \(fuse.dindfs\) and answering' "the mount answers"
expect_match "$WORK/doctor.l1" '^ok +mirror: dockerd pulls through http://127.0.0.1:5000/?, which answers$' \
	"dockerd uses the mirror, and it answers"
expect_match "$WORK/doctor.l1" '^ok +data root: /var/lib/docker is on tmpfs$' "the data root is on tmpfs"
expect_no_match "$WORK/doctor.l1" '^ok +upstream' "no upstream check below the host"

expect_exit 0 "an L2 reads whoami through L1's dockerd" \
	dk run --rm "${LEVEL[@]}" dindfs-dind:12 bash -c '
		docker pull -q debian:12-slim >/dev/null &&
		docker run --rm --network none -v /dindfs:/dindfs debian:12-slim cat /dindfs/.dindfs/whoami'
check "whoami in L2: depth 2" test "$(python3 -c 'import json, sys; print(json.load(sys.stdin)["depth"])' <"$WORK/out")" = 2

expect_exit 1 "doctor in an L1 without /dindfs: exit 1" \
	dk run --rm "${DIND[@]}" --tmpfs /var/lib/docker:exec --network none dindfs-dind:12 dindfs doctor
cp "$WORK/out" "$WORK/doctor.nomount"
expect_match "$WORK/doctor.nomount" '^FAIL +mount: /dindfs is not mounted$' "it names the missing mount"
expect_match "$WORK/doctor.nomount" '^ +fix: run this container with -v /dindfs:/dindfs' "with the fix"
expect_match "$WORK/doctor.nomount" '^ok +where: a container .*, depth unknown' "depth unknown, honestly"

# the entrypoint refuses an overlayfs /var/lib/docker: doctor runs as the entrypoint
expect_exit 1 "doctor in an L1 with /var/lib/docker on overlayfs: exit 1" \
	dk run --rm "${DIND[@]}" --network none -v "$MNT:/dindfs" --entrypoint dindfs dindfs-dind:12 doctor
cp "$WORK/out" "$WORK/doctor.overlay"
expect_match "$WORK/doctor.overlay" '^FAIL +data root: /var/lib/docker is on overlayfs' "it names overlayfs"
expect_match "$WORK/doctor.overlay" '^ +fix: run this container with --tmpfs /var/lib/docker:exec or -v VOLUME:/var/lib/docker$' \
	"and the fix"

# docker's defaults: no SYS_ADMIN or NET_ADMIN, a seccomp filter (the entrypoint refuses)
expect_exit 1 "doctor in a plain container (docker's default confinement): exit 1" \
	dk run --rm --network none --tmpfs /var/lib/docker:exec -v "$MNT:/dindfs" --entrypoint dindfs \
	dindfs-dind:12 doctor
cp "$WORK/out" "$WORK/doctor.plain"
expect_match "$WORK/doctor.plain" '^FAIL +capabilities: .*NET_ADMIN.*SYS_ADMIN.* missing, which a nested dockerd needs$' \
	"it names the capabilities a nested dockerd needs"
expect_match "$WORK/doctor.plain" '^ +fix: run with --privileged' "with the fix"
expect_match "$WORK/doctor.plain" '^warn +seccomp: a filter is on' "it warns of the seccomp filter"

# ---- the host, with the mount hung, then dead --------------------------------------

kill -STOP "$MOUNT_PID"
start=$SECONDS
expect_exit 1 "doctor at the host, mount hung: exit 1" doctor --root "$MNT"
took=$((SECONDS - start))
kill -CONT "$MOUNT_PID"
expect_match "$WORK/out" "^FAIL +mount: $MNT is mounted, but hung: no answer within 5 s" "it names the hung mount"
check "it did not wait for it ($took s)" test "$took" -lt 20

kill -KILL "$MOUNT_PID"
wait_until 10 pid_gone "$MOUNT_PID" || true
expect_exit 1 "doctor at the host, mount dead: exit 1" doctor --root "$MNT"
cp "$WORK/out" "$WORK/doctor.dead"
expect_match "$WORK/doctor.dead" "^FAIL +mount: $MNT is mounted, but dead: its daemon is gone" "it names the dead mount"
expect_match "$WORK/doctor.dead" '^ +fix: .*fusermount3 -u' "with the fix"
expect_exit 1 "dindfs stats on the dead mount: exit 1" "$DINDFS" stats --root "$MNT"
expect_match "$WORK/err" "the mount's daemon is gone" "it says the daemon is gone"

finish
