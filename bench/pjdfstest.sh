#!/usr/bin/env bash
# bench/pjdfstest.sh: pjdfstest (the POSIX file system suite) run as root
# in the workspace, once per ownership mode, and on the backing file system
# itself as the baseline, in the same run. Prints the failed subtests per
# mode and per test file, then one line per mode.
#
#   native    a scratch directory on the backing file system
#   default   dindfs mount --workspace DIR, DIR owned by a user (uid 1234):
#             what is created is DIR's owner's (README: the workspace)
#   preserve  the same with --workspace-owner preserve: plain POSIX
#
# pjdfstest is not packaged in Debian and none of it is in this repository:
# build it elsewhere (needs BENCH_PACKAGES' autoconf, automake, libtool):
#   git clone https://github.com/pjd/pjdfstest /work/pjdfstest
#   cd /work/pjdfstest && autoreconf -ifs && ./configure && make pjdfstest
# Not in CI (minutes per mode).
#
# Usage: PJDFSTEST=/path/to/built/pjdfstest bench/pjdfstest.sh [BUILD_DIR] [MODE...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
shift || true
modes=("$@")
((${#modes[@]})) || modes=(native default preserve)
export DINDFS=$build/dindfs
suite=${PJDFSTEST:-}
[[ -x $DINDFS ]] || { echo "bench/pjdfstest.sh: build first (cmake --build $build)" >&2; exit 1; }
[[ -n $suite && -x $suite/pjdfstest && -d $suite/tests ]] ||
	{ echo "bench/pjdfstest.sh: PJDFSTEST must name a built pjdfstest (its pjdfstest and tests/)" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "bench/pjdfstest.sh: run as root (pjdfstest changes owners)" >&2; exit 1; }
suite=$(realpath "$suite")
TMPDIR=${TMPDIR:-/var/tmp}
. tests/lib.sh
. tests/mount_lib.sh
chmod 755 "$WORK"

# run_suite NAME DIR: prove -r in DIR; the summary lines in $WORK/NAME.failed
# ("FILE FAILED" per file with failures) and the totals in $WORK/NAME.total.
run_suite() {
	local name=$1 dir=$2 log=$WORK/$1.prove
	(cd "$dir" && prove -r "$suite/tests" >"$log" 2>&1) || true
	# "…/tests/chmod/00.t (Wstat: 0 Tests: 119 Failed: 4)"; a file that died
	# early counts its planned but unrun subtests too ("Parse errors: Bad plan").
	awk -v root="$suite/tests/" '
		/^Test Summary Report/ { on = 1; next }
		on && /^[^ ].*\(Wstat: / {
			file = $1; sub(root, "", file)
			n = 0
			if (match($0, /Failed: [0-9]+/)) n = substr($0, RSTART + 8, RLENGTH - 8) + 0
			failed[file] += n; order[++k] = file
		}
		on && /Bad plan\.  You planned [0-9]+ tests but ran [0-9]+/ {
			split($0, w, /planned | tests but ran |\./); missing[file] += w[3] - w[4]
		}
		END { for (i = 1; i <= k; i++) { f = order[i]; if (!(f in seen)) { seen[f] = 1; print f, failed[f] + missing[f] } } }
	' "$log" >"$WORK/$name.failed"
	local total
	total=$(sed -n 's/^Files=\([0-9]*\), Tests=\([0-9]*\),.*/\2/p' "$log")
	echo "${total:-0} $(awk '{ s += $2 } END { print s + 0 }' "$WORK/$name.failed")" >"$WORK/$name.total"
}

for mode in "${modes[@]}"; do
	case $mode in
	native)
		mkdir -p "$WORK/native"
		run_suite native "$WORK/native"
		;;
	default | preserve)
		dir=$WORK/ws-$mode mnt=$WORK/mnt-$mode
		mkdir -p "$dir/scratch"
		chown -R 1234:1234 "$dir"
		opts=()
		[[ $mode == default ]] || opts=(--workspace-owner preserve)
		mount_dindfs "$mnt" --store "$WORK/store-$mode" --workspace "$dir" -o allow_other "${opts[@]}" ||
			{ echo "bench/pjdfstest.sh: the $mode mount failed" >&2; exit 1; }
		run_suite "$mode" "$mnt/workspace/scratch"
		unmount_dindfs "$mnt" "$MOUNT_PIDFILE"
		;;
	*) echo "bench/pjdfstest.sh: unknown mode '$mode' (native, default, preserve)" >&2; exit 1 ;;
	esac
done

echo "# pjdfstest $(git -C "$suite" describe --always 2>/dev/null || echo "at $suite"), $(uname -r), load: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in "${modes[@]}"; do
	echo "## $mode: failed subtests per file"
	sort "$WORK/$mode.failed" | sed 's/^/  /'
done
for mode in "${modes[@]}"; do
	read -r total failed <"$WORK/$mode.total"
	printf '%-9s %5d of %5d subtests failed\n' "$mode" "$failed" "$total"
done
[[ -z ${KEEP_PROVE:-} ]] || cp "$WORK"/*.prove "$KEEP_PROVE"/
