# Mounting dindfs in the integration scripts, and looking at the mount from
# outside. Source it after lib.sh (and registry.sh).
#
#   mount_dindfs MNT [OPTION...]   dindfs mount with a --pidfile and --log of
#                                  its own; the unmount is registered first
#   must_mount MNT [OPTION...]     the same as a test, and the script stops
#                                  (cleanly) when the mount fails
#   fsop OP ARG...                 one filesystem call, its result or errno
#                                  by name (tests/fixtures/fsop.py)
#   expect_fsop REGEX DESCRIPTION OP ARG...
#   expect_fsop_is WANT DESCRIPTION OP ARG...
#   stat_of MNT FIELD              one counter of MNT/.dindfs/stats
#   mount_answers MNT              MNT answers a stat of its .dindfs/stats
#
# Everything that touches a mount runs under a time limit (MOUNT_TIMEOUT,
# 60 s), so that a hung daemon fails a test instead of hanging the script.
# Every daemon is stopped by the PID its --pidfile names, and every mount is
# detached (fusermount3 -u -z) through lib.sh's on_exit, even when a test
# failed.

FSOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/fixtures" && pwd)/fsop.py
MOUNT_TIMEOUT=${MOUNT_TIMEOUT:-60}
_MOUNT_N=0

# T COMMAND...: COMMAND under the time limit (killed 5 s after a TERM).
T() { timeout -k 5 "$MOUNT_TIMEOUT" "$@"; }

# is_mounted DIR: DIR is a mount point now (as /proc/mounts says).
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

# pid_alive PID: PID runs (a zombie counts as gone).
pid_alive() {
	[[ -n $1 ]] && kill -0 "$1" 2>/dev/null || return 1
	[[ $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) != Z ]]
}
pid_gone() { ! pid_alive "$1"; }

# not COMMAND...: succeeds when COMMAND fails (for check).
not() { ! "$@"; }

# wait_until SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds;
# fails when SECONDS passed first.
wait_until() {
	local deadline
	deadline=$(echo "${EPOCHREALTIME/,/.} + $1" | bc -l)
	shift
	until "$@"; do
		(($(echo "${EPOCHREALTIME/,/.} >= $deadline" | bc -l))) && return 1
		sleep 0.1
	done
}

# file_size_at_least FILE BYTES
file_size_at_least() { [[ -f $1 && $(stat -c %s "$1") -ge $2 ]]; }

# mount_dindfs MNT [OPTION...]: run "dindfs mount --pidfile F --log L
# OPTION... MNT" (it returns once the mount answers) and set MOUNT_PID,
# MOUNT_PIDFILE and MOUNT_LOG. Its exit status is dindfs mount's. The
# unmount is registered before the mount starts.
mount_dindfs() {
	local mnt=$1 rc=0
	shift
	_MOUNT_N=$((_MOUNT_N + 1))
	MOUNT_PIDFILE=$WORK/mount-$_MOUNT_N.pid
	MOUNT_LOG=$WORK/mount-$_MOUNT_N.log
	MOUNT_PID=""
	mkdir -p "$mnt"
	on_exit "unmount_dindfs '$mnt' '$MOUNT_PIDFILE'"
	T "$DINDFS" mount --pidfile "$MOUNT_PIDFILE" --log "$MOUNT_LOG" "$@" "$mnt" || rc=$?
	[[ ! -s $MOUNT_PIDFILE ]] || MOUNT_PID=$(<"$MOUNT_PIDFILE")
	return $rc
}

# must_mount MNT [OPTION...]: mount_dindfs as a test; when it fails, the
# script says why and ends (its cleanups run).
must_mount() {
	local failed=$FAILED
	expect_exit 0 "mount $1 ${*:2}" mount_dindfs "$@"
	if [[ $FAILED == "$failed" ]] && ! is_mounted "$1"; then
		fail "after dindfs mount returned, $1 is not in /proc/mounts"
	fi
	if [[ $FAILED == "$failed" ]] && ! pid_alive "$MOUNT_PID"; then
		fail "the --pidfile names a live daemon (it says '$MOUNT_PID')"
	fi
	[[ $FAILED != "$failed" ]] || return 0
	[[ ! -s $MOUNT_LOG ]] || sed 's/^/    log: /' "$MOUNT_LOG" | tail -20
	echo "# the mount failed: the rest of $TEST_NAME cannot run"
	finish || true
	exit 1
}

# unmount_dindfs MNT PIDFILE: the cleanup of mount_dindfs. Stops the daemon
# (TERM, then KILL after 10 s) and detaches whatever is still mounted on MNT.
unmount_dindfs() {
	local mnt=$1 pid="" i
	[[ ! -s $2 ]] || pid=$(<"$2")
	if pid_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		wait_until 10 pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
	fi
	for ((i = 0; i < 5; i++)); do
		is_mounted "$mnt" || break
		fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || break
	done
	if pid_alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
		wait_until 5 pid_gone "$pid" || true
	fi
}

# fsop OP ARG...: print what tests/fixtures/fsop.py says (OK, a value, or
# STEP:ERRNAME); "timeout" when the call hung.
fsop() {
	local rc=0 out
	out=$(T python3 "$FSOP" "$@" 2>&1) || rc=$?
	if ((rc == 124 || rc == 137)); then echo timeout; else printf '%s\n' "$out"; fi
}

# expect_fsop REGEX DESCRIPTION OP ARG...: fsop's output must match REGEX
# whole, e.g. expect_fsop '(open|read):ENOENT' "..." read "$MNT/x".
expect_fsop() {
	local want=$1 what=$2 got
	shift 2
	got=$(fsop "$@")
	if [[ $got =~ ^($want)$ ]]; then pass "$what"; else
		fail "$what (got '$(head -c 300 <<<"$got")', wanted /$want/)"
	fi
}

# expect_fsop_is WANT DESCRIPTION OP ARG...: fsop's output must be WANT.
expect_fsop_is() {
	local want=$1 what=$2 got
	shift 2
	got=$(fsop "$@")
	if [[ $got == "$want" ]]; then pass "$what"; else
		fail "$what (got '$(head -c 300 <<<"$got")', wanted '$want')"
	fi
}

# xattr_of PATH NAME: the value of an extended attribute (or STEP:ERRNAME).
xattr_of() { fsop getxattr "$1" "$2"; }

# stat_of MNT FIELD: one counter of MNT/.dindfs/stats (fails when the file
# is not the JSON object of counters it should be).
stat_of() {
	local out
	out=$(fsop stats "$1/.dindfs/stats" "$2")
	[[ $out =~ ^[0-9]+$ ]] || {
		echo "stat_of $2: $out" >&2
		return 1
	}
	echo "$out"
}

# mount_answers MNT: the daemon behind MNT answers (a stat of .dindfs/stats).
mount_answers() { [[ $(fsop stat "$1/.dindfs/stats") == OK ]]; }

# stat_is MNT FIELD VALUE: the counter is VALUE now.
stat_is() { [[ $(stat_of "$1" "$2" 2>/dev/null) == "$3" ]]; }

# stats_save MNT FILE: all counters, as "NAME VALUE" lines; stat_in FILE NAME.
stats_save() {
	fsop stats "$1/.dindfs/stats" >"$2"
	grep -q '^upstream_requests [0-9]' "$2"
}
stat_in() { awk -v n="$2" '$1 == n { print $2 }' "$1"; }

# blobs_verified DIR: every file under DIR hashes to its name (fsop verify).
blobs_verified() {
	local out
	out=$(fsop verify "$1")
	[[ $out == OK ]] || {
		sed 's/^/    /' <<<"$out" | head -10
		return 1
	}
}

# Paths under a mount.
mnt_blob() { echo "$1/blobs/sha256/${2#sha256:}"; }     # MNT DIGEST
mnt_manifest() { echo "$1/registry/$2/$3/manifests/$4"; } # MNT HOST REPO TAG|DIGEST
mnt_repo_blob() { echo "$1/registry/$2/$3/blobs/$4"; }    # MNT HOST REPO DIGEST
store_blob() { echo "$1/blobs/sha256/${2:7:2}/${2#sha256:}"; } # STORE DIGEST
store_tmp_empty() { [[ ! -d $1/tmp || -z $(ls -A "$1/tmp") ]]; } # STORE
