#!/usr/bin/env bash
# A hostile level against the host's unpacker (issue 14): a level ingests an
# image of its own through the mount (its blobs into ingest/, its manifest
# into registry/local/), and the host daemon unpacks its layers. Each hostile
# layer (fixtures/hostile_layers.py) gets the errno docs/security.md names in
# its index row, and no tree; the layers docs/security.md keeps as in the tar
# (device nodes, setuid files) stay where no host user reaches them; nothing
# is written outside the tree; no half tree shows under layers/; and while
# each unpack runs the mount answers stat within 1 s. Then the limits no
# tar's content decides: a gzip bomb past the per-layer deadline (ETIMEDOUT,
# the deadline shortened for the test by DINDFS_LAYER_TIMEOUT_MS) and past
# the cap of all trees, --max-layers-size (EDQUOT).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"

FIXTURE=$(cd "$(dirname "$0")/fixtures" && pwd)/hostile_layers.py
MNT=$WORK/mnt STORE=$WORK/store OUT=$WORK/outside IMAGES=$WORK/images
mkdir -p "$OUT" "$IMAGES"
echo victim >"$OUT/victim"

for bad in lots -1 12Q ""; do
	expect_exit 2 "dindfs mount --max-layers-size '$bad': a usage error" \
		mount_dindfs "$WORK/mnt-bad" --store "$STORE" --max-layers-size "$bad"
	expect_match "$WORK/err" "^dindfs mount: bad --max-layers-size '$bad'" "it says which"
done
check "and no daemon for them" not is_mounted "$WORK/mnt-bad"

# level1 COMMAND...: run it in a pid namespace of its own, one level down
level1() { T unshare --pid --fork "$@"; }

# push_local NAME TAG: as a level, ingest image NAME's blobs, then tag it in registry/local.
push_local() {
	local f ok=0
	for f in "$IMAGES/$1"/blob-*; do
		level1 cp "$f" "$MNT/ingest/sha256:${f##*/blob-}" || ok=1
	done
	level1 cp "$IMAGES/$1/manifest.json" "$MNT/registry/local/$1/manifests/$2" || ok=1
	return $ok
}
# diff_of NAME KIND: the diff-id of image NAME's layer KIND
diff_of() { awk -v k="$2" '$1 == k { print $2 }' "$IMAGES/$1/layers"; }
# row DIFF: "state error" of the layer's index row (state 1 unpacked, 2 failed)
row() {
	sqlite3 -readonly "$STORE/index.db" \
		"SELECT state || ' ' || error FROM layers WHERE diffid = '${1#sha256:}'" 2>/dev/null
}
settled() { local r; r=$(row "$1") && [[ -n $r && $r != 0\ * ]]; }
# answers: stat of the stats file and of the good tree, each within 1 s
answers() { timeout 1 stat "$MNT/.dindfs/stats" >/dev/null && timeout 1 stat "$MNT/layers" >/dev/null; }
# answers_until DIFF: the mount answers (every 0.2 s) until DIFF's row is settled
answers_until() {
	local n=0
	while ((n == 0)) || ! settled "$1"; do
		answers || return 1
		# a tree shows only whole: never one of a layer still unpacking
		[[ ! -e $MNT/layers/$1 ]] || settled "$1" || return 1
		n=$((n + 1))
		((n < 3000)) || return 1
		sleep 0.2
	done
}
layers_tmp_empty() { [[ -z $(ls -A "$STORE/layers/tmp" 2>/dev/null) ]]; }

KINDS=(good dotdot absolute symlink hardlink deep devices setuid xattrs entries)
T python3 "$FIXTURE" "$IMAGES" evil "$OUT" "${KINDS[@]}"
T python3 "$FIXTURE" "$IMAGES" bomb "$OUT" bomb-16
T python3 "$FIXTURE" "$IMAGES" bigbomb "$OUT" bomb-15

# ---- the tar's content: one errno each ------------------------------------

must_mount "$MNT" --store "$STORE" --upstream docker.io=http://127.0.0.1:1
check "a level ingests its image and tags it in registry/local" push_local evil v1
check "the mount answers while the worker unpacks it, no half tree shows" \
	answers_until "$(diff_of evil entries)"
expected=(
	"good 1 0"
	"dotdot 2 -1"      # EPERM
	"absolute 2 -1"    # EPERM
	"symlink 2 -1"     # EPERM
	"hardlink 2 -1"    # EPERM
	"deep 2 -40"       # ELOOP
	"devices 1 0"      # kept, as dockerd keeps them
	"setuid 1 0"       # kept
	"xattrs 1 0"       # kept, the overlay ones dropped
	"entries 2 -7"     # E2BIG
)
for e in "${expected[@]}"; do
	read -r kind state err <<<"$e"
	d=$(diff_of evil "$kind")
	check "$kind: its row says '$state $err'" test "$(row "$d")" == "$state $err"
	if [[ $state == 2 ]]; then
		check "$kind: no tree under layers/" not test -e "$MNT/layers/$d" -o -e "$STORE/layers/$d"
	else
		check "$kind: its tree is there" test -f "$MNT/layers/$d/ok"
	fi
done
check "nothing left in the store's layers/tmp" wait_until 5 layers_tmp_empty
check "nothing written outside the tree: the outside dir holds only its victim" \
	test "$(ls -A "$OUT")" == victim
check "the victim keeps its one link and its bytes" \
	test "$(stat -c %h "$OUT/victim") $(cat "$OUT/victim")" == "1 victim"
check "nothing escaped into the store or the work dir" \
	not test -e "$STORE/escaped" -o -e "$WORK/escaped" -o -e /abs-escaped -o -e "$STORE/layers/escaped"
check "the stats: 4 trees, 6 failed" \
	test "$(stat_of "$MNT" layers) $(stat_of "$MNT" layers_failed)" == "4 6"

dev=$MNT/layers/$(diff_of evil devices)
check "the block device is kept as in the tar (8:0)" \
	test "$(stat -c '%F %t:%T' "$dev/dev/sda")" == "block special file 8:0"
expect_fsop 'open:EACCES' "but the mount is nodev: it does not open" read "$dev/dev/sda"
suid=$MNT/layers/$(diff_of evil setuid)
check "setuid and setgid bits are kept" \
	test "$(stat -c '%A %g' "$suid/su" "$suid/sg" | paste -sd' ')" == "-rwsr-xr-x 0 -rwxr-sr-x 42"
check "the mount answers nosuid,nodev" awk -v m="$MNT" \
	'$2 == m && $4 ~ /nosuid/ && $4 ~ /nodev/ { found = 1 } END { exit !found }' /proc/mounts
check "and the store's trees are 0700 root: no host user reaches them" \
	test "$(stat -c '%a %u' "$STORE/layers")" == "700 0"
xa=$MNT/layers/$(diff_of evil xattrs)
expect_fsop_is "getxattr:ENODATA" "a forged trusted.overlay.opaque is dropped" \
	getxattr "$xa/opq" trusted.overlay.opaque
expect_fsop_is "getxattr:ENODATA" "so is user.overlay.opaque" getxattr "$xa/opq" user.overlay.opaque
expect_fsop_is "getxattr:ENODATA" "and trusted.overlay.redirect" \
	getxattr "$xa/opq/f" trusted.overlay.redirect
expect_fsop_is kept "a user xattr stays" getxattr "$xa/opq/f" user.note
check "a file capability stays as in the tar (ping needs it in its image)" \
	test "$(getcap "$STORE/layers/$(diff_of evil xattrs)/cap")" == "$STORE/layers/$(diff_of evil xattrs)/cap cap_net_raw=ep"
unmount_dindfs "$MNT" "$MOUNT_PIDFILE"

# ---- a gzip bomb past the per-layer deadline: ETIMEDOUT, for good ---------------

DINDFS_LAYER_TIMEOUT_MS=1500 must_mount "$MNT" --store "$STORE" --upstream docker.io=http://127.0.0.1:1
b=$(diff_of bomb bomb-16)
check "a level ingests a bomb (16 GiB of zeros in 16 MiB)" push_local bomb v1
check "the mount answers while the bomb unpacks" answers_until "$b"
check "the bomb's row: ETIMEDOUT" test "$(row "$b")" == "2 -110"
check "no tree of it, nothing in layers/tmp" eval 'test ! -e "$STORE/layers/$b" && wait_until 5 layers_tmp_empty'
unmount_dindfs "$MNT" "$MOUNT_PIDFILE"

# ---- past the cap of all trees: EDQUOT, and the cap in the stats ---------------

used=$(sqlite3 -readonly "$STORE/index.db" "SELECT sum(size) FROM layers WHERE state = 1")
cap=$((used + 64 * 1024 * 1024))
must_mount "$MNT" --store "$STORE" --upstream docker.io=http://127.0.0.1:1 --max-layers-size "$cap"
check "the stats show the cap" stat_is "$MNT" layers_max_bytes "$cap"
check "the bomb is not tried again (ETIMEDOUT is final)" test "$(row "$b")" == "2 -110"
b=$(diff_of bigbomb bomb-15)
check "a level ingests another bomb" push_local bigbomb v1
check "the mount answers while it unpacks" answers_until "$b"
check "the bomb's row: EDQUOT, past the 64 MiB left" test "$(row "$b")" == "2 -122"
check "no tree of it, nothing in layers/tmp" eval 'test ! -e "$STORE/layers/$b" && wait_until 5 layers_tmp_empty'
check "the stats count it over the cap" stat_is "$MNT" layers_over_cap 1
check "the trees and their EROFS images stay under the cap" \
	test "$(($(stat_of "$MNT" layer_bytes) + $(stat_of "$MNT" layer_image_bytes)))" -le "$cap" \
	-a "$(stat_of "$MNT" layers)" == 4 -a "$(stat_of "$MNT" layer_images)" == 4
unmount_dindfs "$MNT" "$MOUNT_PIDFILE"

finish
