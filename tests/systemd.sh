#!/usr/bin/env bash
# contrib/systemd/dindfs.service, the unit for the host's mount:
#
#   - `systemd-analyze verify` finds nothing to say about it;
#   - its Exec lines, read from the unit and expanded with its
#     EnvironmentFile example (tests/fixtures/unit_exec.py) as systemd
#     would, run against a temp store, workspace and mountpoint (systemd is
#     not PID 1 here, so the test plays its part): start brings the mount up
#     and ExecStartPost returns once it answers; stop takes it away and the
#     daemon exits 0; after a crash (SIGKILL), what Restart=on-failure runs
#     again brings it back over the dead mount.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"

SRC=$(cd "$(dirname "$0")/.." && pwd)
UNIT=$SRC/contrib/systemd/dindfs.service
DEFAULTS=$SRC/contrib/systemd/dindfs.default
MNT=$WORK/mnt

# ---- systemd-analyze verify ---------------------------------------------------

# verify checks that the programs named exist: the unit's dindfs is ours.
mkdir -p "$WORK/units"
sed "s|/usr/local/bin/dindfs|$DINDFS|g" "$UNIT" >"$WORK/units/dindfs.service"
expect_exit 0 "systemd-analyze verify accepts the unit" \
	systemd-analyze verify "$WORK/units/dindfs.service"
check "and has nothing to say about it" test ! -s "$WORK/err" -a ! -s "$WORK/out"
sed 's/^Restart=/Restrat=/' "$WORK/units/dindfs.service" >"$WORK/units/dindfs-typo.service"
systemd-analyze verify "$WORK/units/dindfs-typo.service" >"$WORK/typo.out" 2>&1 || true
expect_match "$WORK/typo.out" "Unknown key 'Restrat'" "(it does speak up about a misspelt key)"

# ---- the Exec lines, as systemd would run them -----------------------------------

python3 "$SRC/tests/fixtures/unit_exec.py" "$UNIT" "$DEFAULTS" \
	"/usr/local/bin/dindfs=$DINDFS" "/var/lib/dindfs-workspace=$WORK/workspace" \
	"/var/lib/dindfs=$WORK/store" "/dindfs=$MNT" "/root/.docker=$WORK/docker-config" \
	>"$WORK/exec.sh"
. "$WORK/exec.sh"
check "the unit has one ExecStart, one ExecStop, ExecStartPre and ExecStartPost" \
	test "$n_ExecStart/$n_ExecStop/$((n_ExecStartPre > 0))/$((n_ExecStartPost > 0))" = 1/1/1/1
echo "# ExecStart: ${ExecStart_0[*]}"

MAIN_PID=""
# mount_pid: the PID of the daemon serving $MNT, as its stats say.
mount_pid() { T python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' "$MNT/.dindfs/stats"; }
stop_main() { # the cleanup: whatever the test left running or mounted
	[[ -z $MAIN_PID ]] || ! pid_alive "$MAIN_PID" || kill -KILL "$MAIN_PID" 2>/dev/null || true
	! is_mounted "$MNT" || fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
}
on_exit stop_main

# run_phase KEY: each KEY line in order; one that may not fail and fails ends it.
run_phase() {
	local key=$1 i n cmd may_fail
	n=n_$key
	for ((i = 0; i < ${!n}; i++)); do
		cmd="${key}_$i[@]"
		may_fail=${key}_${i}_may_fail
		T "${!cmd}" >>"$WORK/phase.log" 2>&1 || ((${!may_fail})) || {
			echo "    $key failed: ${!cmd}" >&2
			tail -5 "$WORK/phase.log" >&2
			return 1
		}
	done
}

# start: what systemd does for Type=simple (ExecStart is the main process).
start() {
	run_phase ExecStartPre || return 1
	"${ExecStart_0[@]}" 2>>"$WORK/daemon.log" &
	MAIN_PID=$!
	run_phase ExecStartPost
}

check "start: ExecStartPre, ExecStart and ExecStartPost succeed" start
check "the mount is up once ExecStartPost returns" is_mounted "$MNT"
check "and it is the main process's" test "$(mount_pid)" = "$MAIN_PID"
check "the workspace from the EnvironmentFile was made" test -d "$WORK/workspace"
echo "through the unit's mount" >"$MNT/workspace/note.txt"
check "a file written in /dindfs/workspace lands in it" \
	test "$(cat "$WORK/workspace/note.txt" 2>/dev/null)" = "through the unit's mount"
check "the store is the unit's --store" test -f "$WORK/store/index.db"

expect_exit 0 "stop: ExecStop succeeds" run_phase ExecStop
check "the mount is gone" not is_mounted "$MNT"
status=0
wait "$MAIN_PID" || status=$?
check "the main process exited 0 (systemd: inactive, not failed)" test "$status" = 0

# ---- a crash, and what Restart=on-failure runs then --------------------------------

check "started again" start
kill -KILL "$MAIN_PID"
wait "$MAIN_PID" 2>/dev/null || true
check "after SIGKILL the mount is dead (stat fails)" not stat "$MNT"
check "restart: ExecStartPre, ExecStart and ExecStartPost succeed over it" start
check "the mount answers again" test "$(mount_pid)" = "$MAIN_PID"
check "with the workspace as it was" \
	test "$(cat "$MNT/workspace/note.txt" 2>/dev/null)" = "through the unit's mount"
expect_exit 0 "stop" run_phase ExecStop
check "the mount is gone" not is_mounted "$MNT"
wait "$MAIN_PID" 2>/dev/null || true
finish
