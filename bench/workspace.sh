#!/usr/bin/env bash
# bench/workspace.sh: the workspace against a native directory and its
# peers, on the same file system in the same run: a bind mount, bindfs
# (Debian's), libfuse's example passthrough_ll (built from libfuse3-dev's
# examples), and dindfs mount --workspace.
#
# Each line is the median of ROUNDS interleaved rounds (every target once
# per round), with its ratio to native:
#   untar, stat, rm    a source tree (/usr/include without llvm: ~6000
#                      files, ~100 MB) untarred, then find+lstat of
#                      everything, then rm -rf
#   git status         in a committed (and packed) copy of that tree
#   seq write          1 GiB, dd bs=1M conv=fdatasync
#   seq read (cold)    1 GiB, the file dropped from the page cache first
#   seq read (warm)    1 GiB, again
#   create+unlink      10,000 files, one after another
# and, once per target after the rounds, how long an edit made to the
# directory directly (on the host) takes to show through the target: 100
# samples, each a same-size rewrite of one file polled for through the
# mount (p50 and p99, ms; 2000 ms at most each). With them, the requests
# dindfs served for a warm git status, by kind (.dindfs/stats).
# With FUSE317_BUILD=DIR (a build made with -DDINDFS_LIBFUSE317=ON), two
# more targets: libfuse 3.17's own passthrough_hp (the best peer, built by
# scripts/libfuse317.sh beside the library) and dindfs of that build
# (dindfs-pt: FUSE passthrough); "dindfs" stays the BUILD_DIR one (3.14:
# the fallback).
# Goals for dindfs (issue 13): git status and find+lstat and untar+stat+rm
# at most 1.3x native, 10k create+unlink at most 2.5x, sequential write and
# read at most 1.1x, and faster than passthrough_hp on every line.
#
# passthrough_ll keeps a descriptor open for every inode the kernel holds,
# so the tree is sized to fit the 20000 descriptors a process may have
# here; an operation that fails shows as "failed".
#
# Usage: bench/workspace.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
rounds=${2:-3}
export DINDFS=$build/dindfs
[[ -x $DINDFS ]] || { echo "bench/workspace.sh: build first (cmake --build $build)" >&2; exit 1; }
. scripts/deps.sh
install_packages "${BENCH_PACKAGES[@]}" gcc pkg-config libfuse3-dev fuse3 git python3 bc
TMPDIR=${TMPDIR:-/var/tmp}
. tests/lib.sh
. bench/wan.sh # seconds, median

# passthrough_ll, built from the example libfuse3-dev ships.
PLL_SRC=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
PLL=$WORK/passthrough_ll
if [[ -f $PLL_SRC ]]; then
	gcc -O2 -o "$PLL" "$PLL_SRC" $(pkg-config --cflags --libs fuse3)
else
	echo "note: $PLL_SRC is not shipped; passthrough_ll is left out"
	PLL=""
fi

TARGETS=(native bind bindfs)
[[ -z $PLL ]] || TARGETS+=(passthrough_ll)
TARGETS+=(dindfs)
DINDFS_PT="" PHP=""
if [[ -n ${FUSE317_BUILD:-} ]]; then
	DINDFS_PT=$(realpath "$FUSE317_BUILD")/dindfs
	prefix=$(sed -n 's/^DINDFS_LIBFUSE317_PREFIX:PATH=//p' "$FUSE317_BUILD/CMakeCache.txt")
	PHP=$prefix/build/example/passthrough_hp
	[[ -x $DINDFS_PT && -x $PHP ]] ||
		{ echo "bench/workspace.sh: no $DINDFS_PT or $PHP (build FUSE317_BUILD first)" >&2; exit 1; }
	TARGETS+=(passthrough_hp dindfs-pt)
fi
declare -A ROOT # where each target's operations go

unmount() { umount "$1" 2>/dev/null || fusermount3 -u -z "$1" 2>/dev/null || true; }
for t in "${TARGETS[@]}"; do
	mkdir -p "$WORK/$t.dir" "$WORK/$t.mnt"
	case $t in
	native) ROOT[$t]=$WORK/$t.dir ;;
	bind)
		mount --bind "$WORK/$t.dir" "$WORK/$t.mnt"
		ROOT[$t]=$WORK/$t.mnt
		;;
	bindfs)
		bindfs "$WORK/$t.dir" "$WORK/$t.mnt"
		ROOT[$t]=$WORK/$t.mnt
		;;
	passthrough_ll)
		"$PLL" -o "source=$WORK/$t.dir" "$WORK/$t.mnt"
		ROOT[$t]=$WORK/$t.mnt
		;;
	passthrough_hp)
		"$PHP" "$WORK/$t.dir" "$WORK/$t.mnt" # mounts, then goes to the background
		ROOT[$t]=$WORK/$t.mnt
		;;
	dindfs | dindfs-pt)
		bin=$DINDFS
		[[ $t == dindfs ]] || bin=$DINDFS_PT
		"$bin" mount --store "$WORK/$t.store" --workspace "$WORK/$t.dir" \
			--pidfile "$WORK/$t.pid" "$WORK/$t.mnt"
		ROOT[$t]=$WORK/$t.mnt/workspace
		;;
	esac
	[[ $t == native ]] || on_exit "unmount '$WORK/$t.mnt'"
done

echo "making the source tree and the data file"
tar -C /usr/include --exclude=./llvm-14 -cf "$WORK/src.tar" .
files=$(tar -tf "$WORK/src.tar" | wc -l)
for t in "${TARGETS[@]}"; do # a committed copy for git status
	mkdir "${ROOT[$t]}/repo"
	tar -C "${ROOT[$t]}/repo" --no-same-owner -xf "$WORK/src.tar"
	git -C "${ROOT[$t]}/repo" init -q
	git -C "${ROOT[$t]}/repo" add -A
	git -C "${ROOT[$t]}/repo" -c user.name=b -c user.email=b@b commit -qm tree
	git -C "${ROOT[$t]}/repo" gc -q
done

untar() { mkdir "$1/t" && tar -C "$1/t" --no-same-owner -xf "$WORK/src.tar"; }
stat_all() { find "$1/t" -printf '%i %s %m %u\n' >/dev/null; }
rm_all() { rm -rf "$1/t"; }
git_status() { git -C "$1/repo" status --porcelain >/dev/null; }
seq_write() { dd if=/dev/zero of="$1/big" bs=1M count=1024 conv=fdatasync status=none; }
drop() { # the file out of every page cache it is in (the mount's, and the disk's)
	dd if="$1/big" iflag=nocache count=0 status=none
	dd if="$WORK/$2.dir/big" iflag=nocache count=0 status=none
}
seq_read() { dd if="$1/big" of=/dev/null bs=1M status=none; }
create_unlink() {
	python3 - "$1" <<-'EOF'
		import os, sys
		d = sys.argv[1]
		for i in range(10000):
		    p = f"{d}/f{i}"
		    os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))
		    os.unlink(p)
	EOF
}

OPS=(untar stat_all rm_all git_status seq_write seq_read_cold seq_read_warm create_unlink)
declare -A LABEL=([untar]="untar ($files entries)" [stat_all]="find + lstat of all"
	[rm_all]="rm -rf" [git_status]="git status" [seq_write]="1 GiB seq write (fdatasync)"
	[seq_read_cold]="1 GiB seq read, cold" [seq_read_warm]="1 GiB seq read, warm"
	[create_unlink]="10,000 create+unlink" [tree]="untar + stat + rm")
# measure COMMAND...: its wall time in seconds, or "failed".
measure() {
	local start end
	start=$(date +%s.%N)
	if "$@" >/dev/null 2>"$WORK/last.err"; then
		end=$(date +%s.%N)
		echo "$end - $start" | bc -l
	else
		echo failed
		sed 's/^/    /' "$WORK/last.err" | head -3 >&2
	fi
}
declare -A times
for ((r = 1; r <= rounds; r++)); do
	for t in "${TARGETS[@]}"; do
		root=${ROOT[$t]}
		sync
		a=$(measure untar "$root")
		b=$(measure stat_all "$root")
		c=$(measure rm_all "$root")
		times[$t.untar]+="$a "
		times[$t.stat_all]+="$b "
		times[$t.rm_all]+="$c "
		if [[ "$a$b$c" == *failed* ]]; then
			times[$t.tree]+="failed "
		else
			times[$t.tree]+="$(echo "$a + $b + $c" | bc -l) "
		fi
		times[$t.git_status]+="$(measure git_status "$root") "
		times[$t.seq_write]+="$(measure seq_write "$root") "
		drop "$root" "$t" 2>/dev/null || true
		times[$t.seq_read_cold]+="$(measure seq_read "$root") "
		times[$t.seq_read_warm]+="$(measure seq_read "$root") "
		rm -f "$root/big"
		times[$t.create_unlink]+="$(measure create_unlink "$root") "
		printf 'round %d: %s done\n' "$r" "$t"
	done
done

# host_edit HOST_FILE MOUNT_FILE: "p50 p99" ms from a host write to the mount showing it.
host_edit() {
	python3 - "$1" "$2" <<-'EOF'
		import statistics, sys, time
		host, mnt = sys.argv[1], sys.argv[2]
		def read():
		    try:
		        with open(mnt) as f:
		            return f.read()
		    except OSError:
		        return None
		waits = []
		for i in range(100):
		    text = "%08d\n" % i  # the same size every time: the data must be told stale
		    with open(host, "w") as f:
		        f.write(text)
		    start = time.monotonic()
		    while read() != text and time.monotonic() - start < 2:
		        pass
		    waits.append((time.monotonic() - start) * 1000)
		    time.sleep(0.01)
		waits.sort()
		print("%.1f %.1f" % (statistics.median(waits), waits[98]))
	EOF
}
declare -A edit
for t in "${TARGETS[@]}"; do
	[[ $t == native ]] && continue
	echo start >"$WORK/$t.dir/edit"
	cat "${ROOT[$t]}/edit" >/dev/null # known to the target's caches first
	edit[$t]=$(host_edit "$WORK/$t.dir/edit" "${ROOT[$t]}/edit")
done
# requests_of MNT: the workspace's requests by kind, as "kind=count" words.
requests_of() {
	python3 -c 'import json, sys
r = json.load(open(sys.argv[1])).get("workspace_requests", {})  # none before issue 13
print(" ".join(f"{k}={v}" for k, v in r.items() if v))' "$1/.dindfs/stats"
}
declare -A served
for t in dindfs dindfs-pt; do
	[[ -n ${ROOT[$t]:-} ]] || continue
	git_status "${ROOT[$t]}" # warm
	before=$(requests_of "$WORK/$t.mnt")
	git_status "${ROOT[$t]}"
	served[$t]=$(python3 -c 'import sys
a = dict(w.split("=") for w in sys.argv[1].split())
b = dict(w.split("=") for w in sys.argv[2].split())
d = {k: int(v) - int(a.get(k, 0)) for k, v in b.items() if int(v) != int(a.get(k, 0))}
print(sum(d.values()), " ".join(f"{k}={v}" for k, v in d.items()))' "$before" "$(requests_of "$WORK/$t.mnt")")
done

printf '\nmedian seconds of %d interleaved rounds (ratio to native)\n' "$rounds"
printf '%-30s' ""
for t in "${TARGETS[@]}"; do printf '%18s' "$t"; done
echo
for op in tree "${OPS[@]}"; do
	printf '%-30s' "${LABEL[$op]}"
	base=$(tr ' ' '\n' <<<"${times[native.$op]}" | grep . | median)
	for t in "${TARGETS[@]}"; do
		if [[ ${times[$t.$op]} == *failed* ]]; then
			printf '%18s' failed
			continue
		fi
		m=$(tr ' ' '\n' <<<"${times[$t.$op]}" | grep . | median)
		printf '%10.3f (%4.2fx)' "$m" "$(echo "$m / $base" | bc -l)"
	done
	echo
done
printf '%-30s' "host edit shows, p50/p99 ms"
for t in "${TARGETS[@]}"; do
	if [[ $t == native ]]; then printf '%18s' "-"; else printf '%18s' "${edit[$t]/ //}"; fi
done
echo
for t in "${!served[@]}"; do
	echo "$t: requests of a warm git status: ${served[$t]}"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "goals for dindfs: git status, find + lstat, untar + stat + rm <= 1.30x native;"
echo "10,000 create+unlink <= 2.50x; sequential write and read <= 1.10x; faster than"
echo "passthrough_hp on every line"
