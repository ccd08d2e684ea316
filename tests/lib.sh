# Shared helpers for the integration scripts. Source it; it sets strict
# mode, gives each script a temp dir removed on exit, and small assertions
# that print what was expected and what came. KEEP_WORK=1 keeps the temp
# dir for a post-mortem.

set -euo pipefail

: "${DINDFS:?DINDFS must name the dindfs binary}"

TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dindfs-$TEST_NAME.XXXXXX")
CLEANUPS=()
PASSED=0
FAILED=0

# Register a command to run at exit (last registered runs first).
on_exit() { CLEANUPS+=("$*"); }

run_cleanups() {
	# a name of its own: a cleanup's loop variable must not move this one
	local _cleanup_at
	for ((_cleanup_at = ${#CLEANUPS[@]} - 1; _cleanup_at >= 0; _cleanup_at--)); do
		eval "${CLEANUPS[$_cleanup_at]}" || true
	done
	if [[ -n ${KEEP_WORK:-} ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap run_cleanups EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }

# check DESCRIPTION COMMAND...: the command must succeed.
check() {
	local what=$1; shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}

# check_ok DESCRIPTION COMMAND...: check, and fail with it too (for an `if`
# or before `||` only: a bare failing call would end the script, set -e).
check_ok() {
	local what=$1; shift
	if "$@"; then pass "$what"; else fail "$what"; return 1; fi
}

# holders_of MNT: after an unmount failed with EBUSY, say which processes
# hold something under MNT (a cwd, a root or an open file), to tell a test's
# own leftover from another program walking the machine's mounts.
holders_of() {
	local mnt=$1 link pid target
	for link in /proc/[0-9]*/cwd /proc/[0-9]*/root /proc/[0-9]*/fd/*; do
		target=$(readlink "$link" 2>/dev/null) || continue
		[[ $target == "$mnt" || $target == "$mnt"/* ]] || continue
		pid=${link#/proc/}; pid=${pid%%/*}
		echo "# $mnt held by $pid ($(cat "/proc/$pid/comm" 2>/dev/null)): $target"
	done
}

# expect_exit CODE DESCRIPTION COMMAND...: run, capturing stdout/stderr in
# $WORK/out and $WORK/err, and compare the exit status.
expect_exit() {
	local want=$1 what=$2 got=0; shift 2
	"$@" >"$WORK/out" 2>"$WORK/err" || got=$?
	if [[ $got == "$want" ]]; then
		pass "$what"
	else
		fail "$what (exit $got, wanted $want)"
		sed 's/^/    stdout: /' "$WORK/out" | head -20
		sed 's/^/    stderr: /' "$WORK/err" | head -20
	fi
}

# expect_match FILE REGEX DESCRIPTION
expect_match() {
	if grep -Eq -- "$2" "$1"; then pass "$3"; else
		fail "$3 (no line of $(basename "$1") matches /$2/)"
		sed 's/^/    /' "$1" | head -20
	fi
}

expect_no_match() {
	if ! grep -Eq -- "$2" "$1"; then pass "$3"; else
		fail "$3 (a line of $(basename "$1") matches /$2/)"
		grep -E -- "$2" "$1" | sed 's/^/    /' | head -20
	fi
}

# expect_eq GOT WANT DESCRIPTION
expect_eq() {
	if [[ $1 == "$2" ]]; then pass "$3"; else fail "$3 (got '$1', wanted '$2')"; fi
}

# expect_http CODE DESCRIPTION CURL_ARG...: the body goes to $WORK/body, the
# headers to $WORK/headers.
expect_http() {
	local want=$1 what=$2 got
	shift 2
	got=$(curl -sS --noproxy '*' -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@" 2>/dev/null || true)
	if [[ $got == "$want" ]]; then pass "$what"; else
		fail "$what (HTTP $got, wanted $want)"
		head -c 400 "$WORK/body" | sed 's/^/    /'
	fi
}

# A docker config of this test's own (DOCKER_CONFIG, empty): no credentials
# from ~ unless the test writes them.
own_docker_config() {
	export DOCKER_CONFIG=$WORK/docker-config
	mkdir -p "$DOCKER_CONFIG"
}

expect_lines() { # FILE N DESCRIPTION
	local n
	n=$(wc -l <"$1")
	if [[ $n == "$2" ]]; then pass "$3"; else fail "$3 ($n lines, wanted $2)"; fi
}

finish() {
	echo "$PASSED passed, $FAILED failed"
	[[ $FAILED == 0 ]]
}
