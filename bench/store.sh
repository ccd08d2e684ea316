#!/usr/bin/env bash
# bench/store.sh: ingest 1 GiB of blobs into a store and read them back,
# against `sha256sum` + `cp` + `sync` (the same work, done by hand: hash,
# copy, make durable) and `cat`, on the same data in the same run.
#
# Prints each figure as the median of several interleaved rounds and the
# throughput ratio dindfs / baseline (goal for ingest: at least 0.8).
#
# Usage: bench/store.sh [BUILD_DIR] [TOTAL_MIB] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
total_mib=${2:-1024}
rounds=${3:-3}
blob_mib=16
bench="$build/bench/store_bench"
[[ -x $bench ]] || { echo "bench/store.sh: build first (cmake --build $build)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/dindfs-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"

echo "making $total_mib MiB of random blobs ($blob_mib MiB each) in $work"
for ((i = 0; i < total_mib / blob_mib; i++)); do
	head -c $((blob_mib << 20)) /dev/urandom >"$work/src/blob"
	mv "$work/src/blob" "$work/src/$(sha256sum "$work/src/blob" | cut -c1-64)"
done
files=("$work"/src/*)

seconds() { # run a command, print its wall time in seconds
	local start end
	start=$(date +%s.%N)
	"$@" >/dev/null
	end=$(date +%s.%N)
	echo "$end - $start" | bc -l
}

baseline_ingest() {
	rm -rf "$work/copy" && mkdir "$work/copy"
	sha256sum "${files[@]}" >/dev/null
	cp "${files[@]}" "$work/copy/"
	sync "$work"/copy/*
}
dindfs_ingest() {
	rm -rf "$work/store"
	"$bench" ingest "$work/store" "${files[@]}"
}
baseline_read() { cat "$work"/copy/* >/dev/null; }
dindfs_read() { "$bench" read "$work/store"; }

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

declare -A times
for ((r = 0; r < rounds; r++)); do
	for what in baseline_ingest dindfs_ingest baseline_read dindfs_read; do
		times[$what]+="$(seconds $what) "
	done
done

printf '\n%-36s %10s %10s\n' "" "seconds" "MiB/s"
for what in baseline_ingest dindfs_ingest baseline_read dindfs_read; do
	m=$(tr ' ' '\n' <<<"${times[$what]}" | grep . | median)
	declare "med_$what=$m"
	printf '%-36s %10.3f %10.0f\n' "$what" "$m" "$(echo "$total_mib / $m" | bc -l)"
done
ingest_ratio=$(echo "$med_baseline_ingest / $med_dindfs_ingest" | bc -l)
read_ratio=$(echo "$med_baseline_read / $med_dindfs_read" | bc -l)
printf '\ningest throughput ratio (dindfs / sha256sum+cp+sync): %.2f   (goal >= 0.80)\n' "$ingest_ratio"
printf 'read throughput ratio (dindfs / cat):                 %.2f\n' "$read_ratio"
