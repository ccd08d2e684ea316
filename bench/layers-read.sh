#!/usr/bin/env bash
# bench/layers-read.sh: issue 14's "read every file of the image", without
# the nested bench around it. Three layer trees like bench/nested-pull.sh's
# image (Debian 12 minbase, scripts/base-image.sh's tar, and two layers of
# RANDOM_MB/2 MB of random bytes) are put into a store's layers/, and an
# overlayfs is mounted over them twice: once over the mount's
# layers/sha256:<diffid>/ (dindfs serving them) and once over the same
# trees in the store (the backing disk, no FUSE). Each round reads every
# file of both (`find -xdev -type f -exec cat {} +`, as nested-pull.sh's
# row does inside its container): "cold" with a fresh dindfs mount and a
# fresh overlayfs (the kernel knows nothing of the trees through FUSE: the
# first read in a level after the host unpacked them; the store's files
# stay in the page cache, as they are after an unpack), then "warm", the
# same overlayfs again. Prints the medians and the ratios mount / disk
# (goal: cold at most 1.20), and the trees' requests by kind per file
# from .dindfs/stats (layers_requests; a daemon older than it: all its
# requests), for the cold read and for the warm one, in the first round.
#
# EROFS=1 adds the rows of the layers' EROFS images, as the snapshotter
# mounts them: an image of each tree, made as the host daemon makes it
# (mkfs.erofs --preserve-mtime, cache/layer_image.c; here by the script,
# since these trees have no index rows for the daemon's worker), served
# as layers/sha256:<diffid>.erofs through the mount and mounted
# file-backed by the kernel (mount(2) straight on the file: util-linux's
# mount would put a loop device under it), with the overlayfs over the
# three EROFS mounts. "erofs cold" is a fresh
# dindfs mount (the images' pages go through the daemon once); "erofs next"
# is a fresh EROFS mount over the same dindfs mount (a second level: the
# images' pages are in the FUSE mount's page cache, which every level
# shares); "erofs warm" is the first EROFS mounts read again; "erofs host"
# is a fresh EROFS mount of the store's own image files, no FUSE under it;
# "erofs shared" is what the host daemon does with each image (it shares
# it: the store's image mounted over the tree on the mount and read once
# there), then a fresh overlayfs over the mount's trees, as a level that
# binds the mount afterwards gets them.
#
# Usage: bench/layers-read.sh [BUILD_DIR] [ROUNDS] [RANDOM_MB]
#   defaults: build 5 170. Needs root (FUSE, overlayfs). TMPDIR: where the
#   store goes (default /var/tmp; a disk, as the host's store is).
#   MOUNT_OPTS: more `dindfs mount` options (e.g. --no-passthrough);
#   EROFS=1: the EROFS rows above (installs erofs-utils);
#   PIN=CPU runs everything on that one CPU (taskset), which takes the
#   wake-ups from one CPU to the other out of every request's cost.
set -euo pipefail
if [[ -n ${PIN:-} && -z ${_PINNED:-} ]]; then
	_PINNED=1 exec taskset -c "$PIN" "$0" "$@"
fi
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
rounds=${2:-5}
random_mb=${3:-170}
export DINDFS=$build/dindfs
export TMPDIR=${TMPDIR:-/var/tmp}
[[ -x $DINDFS ]] || { echo "bench/layers-read.sh: build first: no $DINDFS" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "bench/layers-read.sh: run as root (FUSE, overlayfs)" >&2; exit 1; }
. tests/lib.sh
. tests/mount_lib.sh
trap 'exit 130' INT TERM # so that lib.sh's EXIT trap unmounts

base_tar=${DINDFS_CACHE:-/var/cache/dindfs}/debian-bookworm-minbase-amd64.tar
[[ -s $base_tar ]] || {
	echo "bench/layers-read.sh: no '$base_tar': make it with scripts/base-image.sh bookworm" >&2
	exit 1
}
STORE=$WORK/store
MNT=$WORK/mnt
mkdir -p "$STORE/layers" "$MNT"
# Diff-ids of our own: the trees need not match a blob to be served.
ids=()
for n in 1 2 3; do ids+=("sha256:$(printf 'layer %d\n' "$n" | sha256sum | cut -d' ' -f1)"); done
tar --numeric-owner -xpf "$base_tar" -C "$(mkdir -p "$STORE/layers/${ids[0]}" && echo "$_")" \
	--exclude './dev/*'
for n in 1 2; do
	mkdir -p "$STORE/layers/${ids[n]}/random"
	head -c $((random_mb / 2 * 1000000)) /dev/urandom >"$STORE/layers/${ids[n]}/random/layer-$n"
done
files=$(find "$STORE/layers" -type f | wc -l)
bytes=$(du -sb --apparent-size "$STORE/layers" | cut -f1)

# mount_erofs IMAGE DIR: a file-backed EROFS mount (mount(2) on the file itself)
mount_erofs() {
	python3 - "$1" "$2" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.mount(sys.argv[1].encode(), sys.argv[2].encode(), b"erofs", 1, None) != 0:  # MS_RDONLY
    sys.exit(f"mount erofs {sys.argv[1]}: {os.strerror(ctypes.get_errno())}")
PY
}
ovl() { printf '%s' "${1//:/\\:}"; } # a diff-id's ':' escaped for lowerdir=
# overlay NAME ROOT: an overlayfs of the three trees under ROOT at $WORK/NAME.
overlay() {
	local d=$WORK/$1
	mkdir -p "$d" "$d.upper" "$d.work"
	on_exit "umount '$d' 2>/dev/null"
	mount -t overlay overlay -o "lowerdir=$(ovl "$2/${ids[2]}"):$(ovl "$2/${ids[1]}"):$(ovl "$2/${ids[0]}"),upperdir=$d.upper,workdir=$d.work" "$d"
}
read_all() { # DIR: seconds to read every file
	local s
	s=$EPOCHREALTIME
	(cd "$1" && find . -xdev -type f -exec cat {} + >/dev/null)
	echo "$EPOCHREALTIME - $s" | tr , . | bc -l
}
requests() { # the trees' requests by kind, "kind=count" words
	python3 - "$MNT/.dindfs/stats" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])).get("layers_requests") or json.load(open(sys.argv[1]))["requests"]
print(" ".join(f"{k}={v}" for k, v in sorted(r.items()) if v))
EOF
}
per_file() { # BEFORE AFTER: the difference, per file read
	python3 - "$1" "$2" "$files" <<'EOF'
import sys
a = dict(w.split("=") for w in sys.argv[1].split())
b = dict(w.split("=") for w in sys.argv[2].split())
n = int(sys.argv[3])
d = {k: int(v) - int(a.get(k, 0)) for k, v in b.items()}
print(" ".join(f"{k} {v} ({v / n:.2f})" for k, v in sorted(d.items()) if v) or "none")
EOF
}
# erofs_overlay NAME [ROOT]: an overlayfs at $WORK/NAME over EROFS mounts of
# the images under ROOT/layers (default the mount's; $STORE: the store's own files)
erofs_overlay() {
	local n root=${2:-$MNT}
	for n in 0 1 2; do
		mkdir -p "$WORK/erofs/${ids[n]}"
		on_exit "umount '$WORK/erofs/${ids[n]}' 2>/dev/null"
		mount_erofs "$root/layers/${ids[n]}.erofs" "$WORK/erofs/${ids[n]}"
	done
	overlay "$1" "$WORK/erofs"
}
erofs_unmount() { # NAME
	local n
	umount "$WORK/$1"
	for n in 0 1 2; do umount "$WORK/erofs/${ids[n]}"; done
}
median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

if [[ -n ${EROFS:-} ]]; then
	command -v mkfs.erofs >/dev/null || apt-get install -y -qq erofs-utils >/dev/null
	for n in 0 1 2; do
		mkfs.erofs --quiet --preserve-mtime "$STORE/layers/${ids[n]}.erofs" "$STORE/layers/${ids[n]}"
	done
	# the first read of a fresh image is slower than any later one (seen here): one, untimed
	mkdir -p "$WORK/erofs/first"
	for n in 0 1 2; do
		mount_erofs "$STORE/layers/${ids[n]}.erofs" "$WORK/erofs/first"
		(cd "$WORK/erofs/first" && find . -xdev -type f -exec cat {} + >/dev/null)
		umount "$WORK/erofs/first"
	done
fi

declare -A T
echo "$files files, $((bytes / 1000000)) MB in 3 trees; $(basename "$build") ${MOUNT_OPTS:-}${PIN:+ on CPU $PIN}, $rounds rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= rounds; r++)); do
	overlay disk "$STORE/layers"
	T[disk cold]+="$(read_all "$WORK/disk") "
	T[disk warm]+="$(read_all "$WORK/disk") "
	umount "$WORK/disk"
	# shellcheck disable=SC2086 # words
	mount_dindfs "$MNT" --store "$STORE" ${MOUNT_OPTS:-} >/dev/null
	overlay fuse "$MNT/layers"
	before=$(requests)
	T[mount cold]+="$(read_all "$WORK/fuse") "
	cold=$(requests)
	T[mount warm]+="$(read_all "$WORK/fuse") "
	warm=$(requests)
	umount "$WORK/fuse"
	unmount_dindfs "$MNT" "$MOUNT_PIDFILE"
	if [[ -n ${EROFS:-} ]]; then
		# shellcheck disable=SC2086 # words
		mount_dindfs "$MNT" --store "$STORE" ${MOUNT_OPTS:-} >/dev/null
		erofs_overlay erofs-ovl
		T[erofs cold]+="$(read_all "$WORK/erofs-ovl") "
		T[erofs warm]+="$(read_all "$WORK/erofs-ovl") "
		erofs_unmount erofs-ovl
		erofs_overlay erofs-ovl
		T[erofs next]+="$(read_all "$WORK/erofs-ovl") "
		erofs_unmount erofs-ovl
		unmount_dindfs "$MNT" "$MOUNT_PIDFILE"
		# the images mounted from the store's files, no FUSE under them (as host-side mounts would be)
		erofs_overlay erofs-ovl "$STORE"
		T[erofs host]+="$(read_all "$WORK/erofs-ovl") "
		erofs_unmount erofs-ovl
		# the host daemon's share (layer_image_share): each image over its tree on the
		# mount, read once there; then what a level does, a fresh overlayfs over the trees
		# shellcheck disable=SC2086 # words
		mount_dindfs "$MNT" --store "$STORE" ${MOUNT_OPTS:-} >/dev/null
		for n in 0 1 2; do
			on_exit "umount '$MNT/layers/${ids[n]}' 2>/dev/null"
			mount_erofs "$STORE/layers/${ids[n]}.erofs" "$MNT/layers/${ids[n]}"
			(cd "$MNT/layers/${ids[n]}" && find . -xdev -type f -exec cat {} + >/dev/null)
		done
		overlay erofs-shared "$MNT/layers"
		T[erofs shared]+="$(read_all "$WORK/erofs-shared") "
		umount "$WORK/erofs-shared"
		for n in 0 1 2; do umount "$MNT/layers/${ids[n]}"; done
		unmount_dindfs "$MNT" "$MOUNT_PIDFILE"
		printf '  erofs %.2f / %.2f / %.2f s cold / next / warm\n' \
			$(for k in "erofs cold" "erofs next" "erofs warm"; do v=${T[$k]% }; echo "${v##* }"; done)
	fi
	printf 'round %d: disk %.2f / %.2f s, mount %.2f / %.2f s cold / warm (load %s)\n' "$r" \
		$(for k in "disk cold" "disk warm" "mount cold" "mount warm"; do v=${T[$k]% }; echo "${v##* }"; done) \
		"$(cut -d' ' -f1 /proc/loadavg)"
	((r > 1)) || {
		echo "  requests per file, cold: $(per_file "$before" "$cold")"
		echo "  requests per file, warm: $(per_file "$cold" "$warm")"
	}
done
echo
keys=("disk cold" "mount cold" "disk warm" "mount warm")
[[ -z ${EROFS:-} ]] || keys+=("erofs cold" "erofs next" "erofs warm" "erofs host" "erofs shared")
for k in "${keys[@]}"; do
	printf '%-12s %s s   (rounds: %s)\n' "$k" "$(tr ' ' '\n' <<<"${T[$k]}" | grep . | median)" "${T[$k]}"
done
for t in cold warm; do
	printf 'read every file, %s: mount / disk %.2f%s\n' "$t" \
		"$(echo "$(tr ' ' '\n' <<<"${T[mount $t]}" | grep . | median) / $(tr ' ' '\n' <<<"${T[disk $t]}" | grep . | median)" | bc -l)" \
		"$([[ $t == cold ]] && echo '   (goal at most 1.20)')"
done
[[ -z ${EROFS:-} ]] || for t in cold next warm host shared; do
	base=cold
	[[ $t != warm ]] || base=warm
	printf 'read every file, EROFS %s: erofs / disk %s %.2f\n' "$t" "$base" \
		"$(echo "$(tr ' ' '\n' <<<"${T[erofs $t]}" | grep . | median) / $(tr ' ' '\n' <<<"${T[disk $base]}" | grep . | median)" | bc -l)"
done
echo "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
