#!/usr/bin/env bash
# bench/pull.sh: pull a ~200 MB multi-layer image from a registry behind an
# emulated WAN (bench/wan.sh: 100 Mbit/s each way), with `dindfs pull` and
# with `skopeo copy docker://... dir:...`, cold each time, interleaved, in
# the same run. Prints the medians and the ratio dindfs / skopeo (goal: at
# most 1.0). Needs root (network namespaces).
#
# Usage: bench/pull.sh [BUILD_DIR] [LAYERS] [LAYER_MB] [ROUNDS] [RATE]
# (layer 1 is busybox; the others hold LAYER_MB of random bytes each)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
layers=${2:-6}
layer_mb=${3:-40}
rounds=${4:-3}
rate=${5:-100mbit}
export DINDFS=$build/dindfs
[[ -x $DINDFS ]] || { echo "bench/pull.sh: build first (cmake --build $build)" >&2; exit 1; }
. tests/lib.sh
. tests/registry.sh
. bench/wan.sh

wan_up "$rate"
wan_registry wan 5000
echo "pushing a $layers-layer image of $((layers * layer_mb)) MB (random, so gzip cannot shrink it)"
push_test_image wan big v1 oci "$layers" $((layer_mb * 1000 * 1000)) >/dev/null
size=$(cat "$IMAGE_DIR"/layer-*.tar.gz "$IMAGE_DIR/config.json" | wc -c)
wan_shape
ref=$WAN_PEER:5000/big:v1

dindfs_cold() {
	rm -rf "$WORK/store"
	"$DINDFS" pull --store "$WORK/store" --upstream "$WAN_PEER:5000=http://$WAN_PEER:5000" "$ref"
}
skopeo_cold() {
	rm -rf "$WORK/copy"
	skopeo copy -q --src-tls-verify=false "docker://$ref" "dir:$WORK/copy"
}

declare -A times
for ((r = 0; r < rounds; r++)); do
	for what in skopeo_cold dindfs_cold; do
		t=$(seconds $what)
		times[$what]+="$t "
		printf "round %d: %-12s %6.2fs\n" $((r + 1)) "$what" "$t"
	done
done

printf '\n%d MB image in %d layers, %s each way, median of %d rounds\n' \
	$((size / 1000000)) "$layers" "$rate" "$rounds"
printf '%-28s %10s %10s\n' "" seconds "MB/s"
for what in skopeo_cold dindfs_cold; do
	m=$(tr ' ' '\n' <<<"${times[$what]}" | grep . | median)
	declare "med_$what=$m"
	printf '%-28s %10.2f %10.1f\n' "$what" "$m" "$(echo "$size / 1000000 / $m" | bc -l)"
done
printf '\ndindfs pull / skopeo copy: %.2f   (goal <= 1.00)\n' \
	"$(echo "$med_dindfs_cold / $med_skopeo_cold" | bc -l)"
