#!/usr/bin/env bash
# bench/read.sh: read 1 GiB of blobs through the mount's blobs/sha256/ and
# directly from the store's own files, with the same reader, in the same
# run: warm (both page caches hold everything) and cold (every page cache
# emptied, the daemon remounted). Prints the medians of interleaved rounds
# and the throughput ratios mount / direct (goals: at least 0.95 warm, at
# least 0.90 cold). Run it once per build to compare them: BUILD_DIR built
# with -DDINDFS_LIBFUSE317=ON (FUSE passthrough: the kernel reads the
# store's files itself) and the default libfuse 3.14 build (the daemon
# splices every read); the header says which one ran.
#
# Then fills a second store with SMALL_BLOBS small blobs, mounts it, lists
# blobs/sha256/ (one readdir of all), stats STATS of them (each lookup makes
# an inode in the daemon), and prints the daemon's VmRSS and VmHWM from
# /proc/PID/status (goal: VmRSS at most 64 MB). A last, informative line
# stats every blob, as `ls -l` or `find -type f` of blobs/ would.
#
# Needs root and /dev/fuse. The cold rounds write /proc/sys/vm/drop_caches,
# which empties the page cache of the whole machine (other work on it slows
# down for a moment, and slows these figures down too: the load average is
# printed with them). Where drop_caches cannot be written, the store's files
# are evicted with posix_fadvise(DONTNEED) instead; the FUSE side is evicted
# by remounting either way.
#
# Usage: bench/read.sh [BUILD_DIR] [TOTAL_MIB] [ROUNDS] [SMALL_BLOBS]
#   defaults: build 1024 5 100000 (SMALL_BLOBS 0 skips the memory part)
# Environment:
#   READER=cat|dd   how both sides are read: one `cat` of every file, or one
#                   `dd bs=1M` per file (default cat)
#   STATS=N         blobs stat'ed for the memory figure (default 5000)
#   WARM_PASSES=N   each warm round reads everything N times, so that it
#                   lasts long enough to time (default 4)
#   FUSE_RA_KB=KB   an experiment, not the default: write the mount's
#                   /sys/class/bdi/<dev>/read_ahead_kb after every mount
#   TMPDIR          where the stores go (default /var/tmp; must be a disk,
#                   not tmpfs, for the cold figures to mean anything)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
total_mib=${2:-1024}
rounds=${3:-5}
small=${4:-100000}
reader=${READER:-cat}
n_stat=${STATS:-5000}
warm_passes=${WARM_PASSES:-4}
blob_mib=16
export DINDFS=$build/dindfs
export TMPDIR=${TMPDIR:-/var/tmp}
store_bench=$build/bench/store_bench
make_store=$build/tests/make_store
for bin in "$DINDFS" "$store_bench" "$make_store"; do
	[[ -x $bin ]] || { echo "bench/read.sh: build first (cmake --build $build): no $bin" >&2; exit 1; }
done
case $reader in cat | dd) ;; *) echo "bench/read.sh: READER is cat or dd" >&2; exit 2 ;; esac
[[ $(id -u) == 0 ]] || { echo "bench/read.sh: run as root (drop_caches, FUSE)" >&2; exit 1; }
. tests/lib.sh
trap 'exit 130' INT TERM # so that lib.sh's EXIT trap unmounts

# ---- helpers ----------------------------------------------------------------

seconds() { # COMMAND...: run it, print its wall time in seconds
	local start end
	start=$(date +%s.%N)
	"$@" >/dev/null
	end=$(date +%s.%N)
	echo "$end - $start" | bc -l
}
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# The reader, the same for both sides.
read_files() {
	local f
	case $reader in
	cat) cat "$@" >/dev/null ;;
	dd) for f; do dd if="$f" of=/dev/null bs=1M status=none; done ;;
	esac
}

# Bytes of these files in the page cache (mincore, through fincore).
resident_bytes() {
	fincore -b -n -o RES "$@" | awk '{s += $1} END {print s + 0}'
}

MOUNTS=()
PIDFILE=$WORK/daemon.pid
mount_fs() { # STORE MOUNTPOINT
	mkdir -p "$2"
	"$DINDFS" mount --store "$1" --log "$WORK/daemon.log" --pidfile "$PIDFILE" "$2"
	MOUNTS+=("$2")
	if [[ -n ${FUSE_RA_KB:-} ]]; then
		echo "$FUSE_RA_KB" >"/sys/class/bdi/$(mountpoint -d "$2")/read_ahead_kb"
	fi
}
unmount_fs() { # MOUNTPOINT
	"$DINDFS" umount "$1"
}
# At exit: unmount what is still mounted; stop the daemon we started, by
# its PID, only if the unmount did not.
unmount_all() {
	local m pid
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" || continue
		"$DINDFS" umount "$m" || umount -l "$m" || true
	done
	pid=$(cat "$PIDFILE" 2>/dev/null || true)
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null &&
		grep -qz dindfs "/proc/$pid/cmdline" 2>/dev/null; then
		kill "$pid" || true
	fi
}
on_exit unmount_all

# Evict the page cache of the store's files (and of everything else, with
# drop_caches). The FUSE side is evicted by remounting.
EVICT=drop_caches
evict() { # STORE_FILE...
	sync
	case $EVICT in
	drop_caches) echo 3 >/proc/sys/vm/drop_caches ;;
	fadvise)
		python3 -c '
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
' "$@"
		;;
	esac
}

# ---- the big blobs ----------------------------------------------------------

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
n_blobs=$((total_mib / blob_mib))
((n_blobs > 0)) || n_blobs=1
total_mib=$((n_blobs * blob_mib))
if [[ $(stat -f -c %T "$WORK") == tmpfs ]]; then
	echo "warning: $WORK is on tmpfs: the cold figures will not be cold (set TMPDIR to a disk)"
fi
echo "making $total_mib MiB of random blobs ($n_blobs x $blob_mib MiB) in $WORK"
mkdir -p "$WORK/src"
hexes=()
for ((i = 0; i < n_blobs; i++)); do
	head -c $((blob_mib << 20)) /dev/urandom >"$WORK/src/blob"
	hex=$(sha256sum "$WORK/src/blob" | cut -c1-64)
	mv "$WORK/src/blob" "$WORK/src/$hex"
	hexes+=("$hex")
done
store=$WORK/store
mnt=$WORK/mnt
"$store_bench" ingest "$store" "$WORK"/src/* >/dev/null
rm -rf "$WORK/src"
mapfile -t hexes < <(printf '%s\n' "${hexes[@]}" | sort)
direct=() through=()
for hex in "${hexes[@]}"; do
	direct+=("$store/blobs/sha256/${hex:0:2}/$hex")
	through+=("$mnt/blobs/sha256/$hex")
done
for f in "${direct[@]}"; do
	[[ -f $f ]] || { echo "bench/read.sh: the store has no $f" >&2; exit 1; }
done
store_files=("${direct[@]}")
mapfile -t -O ${#store_files[@]} store_files < <(find "$store" -maxdepth 1 -type f)

# Check that eviction works here; fall back to posix_fadvise(DONTNEED).
cat "${direct[0]}" >/dev/null
evict_note=""
if ! (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	evict_note="drop_caches cannot be written here; "
	EVICT=fadvise
fi
evict "${store_files[@]}"
if (($(resident_bytes "${direct[0]}") > 0)) && [[ $EVICT == drop_caches ]]; then
	evict_note="drop_caches left the file cached; "
	EVICT=fadvise
	evict "${store_files[@]}"
fi
if (($(resident_bytes "${direct[0]}") > 0)); then
	evict_note+="WARNING: $EVICT left $(resident_bytes "${direct[0]}") bytes cached: cold is not cold; "
fi
evict_note+="evicting with $EVICT (checked with fincore), remounting for the FUSE side"

mount_fs "$store" "$mnt"
fuse_bdi=$(mountpoint -d "$mnt")
fuse_ra=$(cat "/sys/class/bdi/$fuse_bdi/read_ahead_kb")
store_bdi=$(stat -c '%Hd:%Ld' "$store")
store_ra=$(cat "/sys/class/bdi/$store_bdi/read_ahead_kb" 2>/dev/null ||
	cat "/sys/dev/block/$store_bdi/../queue/read_ahead_kb" 2>/dev/null || echo "?")
pt_mode=$(python3 -c 'import json,sys; print("passthrough" if json.load(open(sys.argv[1])).get("passthrough") else "served by the daemon")' "$mnt/.dindfs/stats")
libfuse=$(ldd "$DINDFS" | grep -o 'libfuse3\.so\.[0-9]*' | head -1)
got=$(sha256sum "${through[0]}" | cut -c1-64)
[[ $got == "${hexes[0]}" ]] || { echo "bench/read.sh: ${through[0]} reads wrong bytes" >&2; exit 1; }

direct_cold_read() { read_files "${direct[@]}"; }
mount_cold_read() { read_files "${through[@]}"; }
repeat() { # N FILE...: the files, N times over
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do printf '%s\0' "$@"; done
}
mapfile -d '' -t direct_n < <(repeat "$warm_passes" "${direct[@]}")
mapfile -d '' -t through_n < <(repeat "$warm_passes" "${through[@]}")
direct_warm_read() { read_files "${direct_n[@]}"; }
mount_warm_read() { read_files "${through_n[@]}"; }

declare -A times
declare -A mib=([direct_warm]=$((total_mib * warm_passes)) [mount_warm]=$((total_mib * warm_passes))
	[direct_cold]=$total_mib [mount_cold]=$total_mib)
record() { # ROUND WHAT SECONDS
	times[$2]+="$3 "
	printf 'round %d: %-12s %7.3fs  %6.0f MiB/s\n' "$1" "$2" "$3" "$(echo "${mib[$2]} / $3" | bc -l)"
}

# Warm: a first read of both sides fills both page caches; then every
# round reads from memory on each side, in alternating order.
echo "warm: reading everything once through the mount and directly"
read_files "${through[@]}" "${direct[@]}"
warm_through=$(resident_bytes "${through[@]}")
warm_direct=$(resident_bytes "${direct[@]}")
for ((r = 1; r <= rounds; r++)); do
	if ((r % 2)); then order=(direct_warm mount_warm); else order=(mount_warm direct_warm); fi
	for what in "${order[@]}"; do
		record "$r" "$what" "$(seconds "${what}_read")"
	done
done

# Cold: before each read, unmount, empty the page caches, mount again.
echo "cold: $evict_note"
max_left=0
for ((r = 1; r <= rounds; r++)); do
	if ((r % 2)); then order=(direct_cold mount_cold); else order=(mount_cold direct_cold); fi
	for what in "${order[@]}"; do
		unmount_fs "$mnt"
		evict "${store_files[@]}"
		left=$(resident_bytes "${direct[@]}")
		((left <= max_left)) || max_left=$left
		mount_fs "$store" "$mnt"
		record "$r" "$what" "$(seconds "${what}_read")"
	done
done
unmount_fs "$mnt"

# ---- memory with many small blobs ---------------------------------------------

mem_lines=()
if ((small > 0)); then
	# make_store: images of 58 layers + config + manifest = 60 blobs each
	echo "making a store of $small small blobs (1 KiB each)"
	specs=()
	left_blobs=$small
	for ((i = 0; left_blobs > 2; i++)); do
		layers=$((left_blobs - 2 > 58 ? 58 : left_blobs - 2))
		specs+=("bench/img$i:v1:$layers:1024")
		left_blobs=$((left_blobs - layers - 2))
	done
	"$make_store" "$WORK/small" "${specs[@]}" >/dev/null
	smnt=$WORK/smnt
	mount_fs "$WORK/small" "$smnt"
	pid=$(cat "$PIDFILE")
	mem() { # LABEL
		awk -v label="$1" '/^VmRSS:/ {rss = $2} /^VmHWM:/ {hwm = $2}
			END {printf "%-40s %10.1f %10.1f\n", label, rss / 1024, hwm / 1024}' \
			"/proc/$pid/status"
	}
	mem_lines+=("$(mem "mounted")")
	ls "$smnt/blobs/sha256" >"$WORK/names"
	listed=$(wc -l <"$WORK/names")
	mem_lines+=("$(mem "ls blobs/sha256 ($listed names)")")
	((n_stat <= listed)) || n_stat=$listed
	(cd "$smnt/blobs/sha256" && head -n "$n_stat" "$WORK/names" | xargs -d '\n' stat -c %s >/dev/null)
	mem_lines+=("$(mem "+ stat $n_stat of them")")
	goal_rss=$(awk '/^VmRSS:/ {print $2 / 1024}' "/proc/$pid/status")
	(cd "$smnt/blobs/sha256" && xargs -d '\n' stat -c %s <"$WORK/names" >/dev/null)
	mem_lines+=("$(mem "+ stat all $listed (informative)")")
	unmount_fs "$smnt"
fi

# ---- the table -----------------------------------------------------------------

printf '\n%d MiB in %d blobs, reader: %s, median of %d interleaved rounds (warm: %d passes each)\n' \
	"$total_mib" "$n_blobs" "$([[ $reader == cat ]] && echo "one cat of all files" || echo "dd bs=1M per file")" \
	"$rounds" "$warm_passes"
printf 'dindfs: %s (%s): blob reads %s\n' "$DINDFS" "$libfuse" "$pt_mode"
printf 'read_ahead_kb: FUSE mount (bdi %s) %s%s, store device (bdi %s) %s\n' "$fuse_bdi" "$fuse_ra" \
	"${FUSE_RA_KB:+ (set by FUSE_RA_KB)}" "$store_bdi" "$store_ra"
printf 'page cache before the warm rounds: %d of %d MiB through the mount, %d of %d MiB direct\n' \
	$((warm_through >> 20)) "$total_mib" $((warm_direct >> 20)) "$total_mib"
printf 'page cache before each cold read: at most %d KiB of the store files\n' $((max_left >> 10))
printf 'load average at the start: %s, at the end: %s (other work on the machine skews the figures)\n' \
	"$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n%-28s %10s %10s %14s\n' "" seconds "MiB/s" "best MiB/s"
for what in direct_warm mount_warm direct_cold mount_cold; do
	m=$(tr ' ' '\n' <<<"${times[$what]}" | grep . | median)
	best=$(tr ' ' '\n' <<<"${times[$what]}" | grep . | sort -g | head -1)
	declare "med_$what=$m"
	printf '%-28s %10.3f %10.0f %14.0f\n' "$what" "$m" "$(echo "${mib[$what]} / $m" | bc -l)" \
		"$(echo "${mib[$what]} / $best" | bc -l)"
done
printf '\nwarm read ratio (mount / direct): %.2f   (goal >= 0.95)\n' \
	"$(echo "$med_direct_warm / $med_mount_warm" | bc -l)"
printf 'cold read ratio (mount / direct): %.2f   (goal >= 0.90)\n' \
	"$(echo "$med_direct_cold / $med_mount_cold" | bc -l)"
if ((small > 0)); then
	printf '\ndaemon memory, store of %d small blobs (MiB)  %10s %10s\n' "$listed" VmRSS VmHWM
	printf '%s\n' "${mem_lines[@]}"
	printf '\ndaemon VmRSS after ls + stat of %d: %.1f MiB   (goal <= 64)\n' "$n_stat" "$goal_rss"
fi
