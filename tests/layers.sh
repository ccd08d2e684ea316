#!/usr/bin/env bash
# layers/: after a pull through the mount, the host daemon unpacks each
# layer once into the store, and the mount serves the trees read-only with
# the tar's metadata and overlayfs whiteouts. Checked against the tars
# themselves (GNU tar extracts the reference), then by overlayfs itself
# (mount -t overlay with the mount's trees as lower dirs). The daemon makes
# each tree's EROFS image and shares it: mounted over the tree on the mount,
# where every level's bind finds it; that is the same tree, overlayfs over
# it honours the whiteouts, and reading it asks the daemon nothing. A level
# can also mount an image itself, file-backed through the mount (not from
# a mount with passthrough). Then a kill -9 of the daemon in the middle of
# a big unpack, and the next daemon shares the images again. The trees as
# FUSE serves them are checked through a bind of the mount without its
# submounts ($VIEW).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"

STORE=$WORK/store
MNT=$WORK/mnt
export DOCKER_CONFIG=$WORK/docker-config # no credentials from ~
mkdir -p "$DOCKER_CONFIG"

# tar_layer DIR OUT.tar.gz: DIR's contents with their owners, modes and
# xattrs (make_layer makes everything root's).
tar_layer() {
	tar --sort=name --mtime=@1700000000 --numeric-owner --xattrs --xattrs-include='user.*' \
		-C "$1" -cf - . | gzip -n >"$2"
}

# expect_erofs DESCRIPTION COMMAND...: COMMAND fails with EROFS (strerror's words).
expect_erofs() {
	local what=$1 err
	shift
	if err=$("$@" 2>&1); then fail "$what (it succeeded)"; else
		[[ $err == *"Read-only file system"* ]] && pass "$what" || fail "$what (said '$err')"
	fi
}

# listing DIR: one line per entry: path, type and mode, owner, size (regular
# files), link count, symlink target, device numbers.
listing() {
	(cd "$1" && find . -mindepth 1 -printf '%P %M %U:%G %n %l ' \
		-a \( -type f -printf '%s' -o -type c -printf 'c' -o -true \) -printf '\n' | sort)
}

# ---- the image: busybox, a base, and an upper layer that deletes -------------

registry_start hub
IMG=$(image_dir hub library/layered v1)
mkdir -p "$IMG" "$WORK/base" "$WORK/upper-layer"
cp "$(_busybox_layer)" "$IMG/layer-1.tar.gz"
(
	cd "$WORK/base"
	mkdir -p etc opq/sub srv
	echo keep >etc/keep.conf
	echo gone >etc/gone.conf
	ln etc/keep.conf etc/hard
	echo a >opq/a
	echo b >opq/sub/b
	printf 'tool\n' >srv/tool
	chown 1000:1001 srv/tool
	chmod 4750 srv/tool
	chown 7:8 srv
	ln -s ../etc/keep.conf srv/link
	python3 -c 'import os; os.setxattr("etc/keep.conf", "user.note", b"kept")'
)
tar_layer "$WORK/base" "$IMG/layer-2.tar.gz"
(
	cd "$WORK/upper-layer"
	mkdir etc opq
	: >etc/.wh.gone.conf
	: >opq/.wh..wh..opq
	echo c >opq/c
)
tar_layer "$WORK/upper-layer" "$IMG/layer-3.tar.gz"
_write_image "$IMG" oci amd64 "" layered:v1
_push_image hub library/layered v1 "$IMG"
mapfile -t DIFF_IDS <"$IMG/diff_ids"
# the trees as FUSE serves them: a bind of the mount without the shares over them
VIEW=$WORK/view
L1=$VIEW/layers/${DIFF_IDS[0]}
L2=$VIEW/layers/${DIFF_IDS[1]}
L3=$VIEW/layers/${DIFF_IDS[2]}
mkdir -p "$VIEW"
# fuse_view: bind the mount, alone, at $VIEW (private: no share propagates into it)
fuse_view() {
	mount --bind "$MNT" "$VIEW" && mount --make-private "$VIEW"
}
on_exit "umount -l '$VIEW' 2>/dev/null"

must_mount "$MNT" --store "$STORE" --upstream "docker.io=$hub_URL"
check "a bind of the mount, without its submounts" fuse_view
check "layers/ is there, empty, before any pull" test -z "$(ls -A "$MNT/layers")"
expect_exit 0 "dindfs pull through the mount" T "$DINDFS" pull --root "$MNT" layered:v1
check "the three trees appear" wait_until 30 test -d "$L3" -a -d "$L2" -a -d "$L1"
PT=$(jq -r .passthrough "$MNT/.dindfs/stats")
check "and their three EROFS images" wait_until 30 test -f "$L3.erofs" -a -f "$L2.erofs" -a -f "$L1.erofs"
check "layers/ lists exactly the three diff-ids and their images" \
	test "$(ls "$MNT/layers" | sort)" == "$(printf '%s\n' "${DIFF_IDS[@]}" "${DIFF_IDS[@]/%/.erofs}" | sort)"
# shared_mounts: "MOUNTPOINT SOURCE" of each EROFS mount over the mount's layers/
shared_mounts() { awk -v p="$MNT/layers/" '$3 == "erofs" && index($2, p) == 1 { print $2, $1 }' /proc/mounts | sort; }
check "the daemon shares each image: mounted over its tree" wait_until 30 stat_is "$MNT" layer_images_shared 3
check "... three EROFS mounts of the store's own image files, on the mount's trees" \
	test "$(shared_mounts)" == "$(for d in "${DIFF_IDS[@]}"; do echo "$MNT/layers/$d $(realpath "$STORE")/layers/$d.erofs"; done | sort)"
check "... so it stores none into the mount's page cache: no level reads one through FUSE" \
	stat_is "$MNT" layer_images_warmed 0
check "layers/tmp stays hidden" not test -e "$MNT/layers/tmp"
stats_save "$MNT" "$WORK/stats"
check "the stats count three unpacked layers" test "$(stat_in "$WORK/stats" layers)" == 3
check "... unpacked by this daemon, none failed" \
	test "$(stat_in "$WORK/stats" layers_unpacked) $(stat_in "$WORK/stats" layers_failed)" == "3 0"
check "... and their bytes (the uncompressed tars)" test "$(stat_in "$WORK/stats" layer_bytes)" == \
	"$(for l in "$IMG"/layer-*.tar.gz; do gzip -dc "$l" | wc -c; done | paste -sd+ | bc)"
check "... 3 images of the bytes on disk, none failed" test \
	"$(stat_in "$WORK/stats" layer_images) $(stat_in "$WORK/stats" layer_image_bytes) $(stat_in "$WORK/stats" layer_images_failed)" == \
	"3 $(stat -c %s "$STORE"/layers/*.erofs | paste -sd+ | bc) 0"

# ---- each tree is its tar --------------------------------------------------

for n in 1 2; do
	mkdir "$WORK/ref-$n"
	tar --numeric-owner --xattrs --xattrs-include='user.*' -xpzf "$IMG/layer-$n.tar.gz" \
		-C "$WORK/ref-$n"
	listing "$WORK/ref-$n" >"$WORK/ref-$n.list"
	listing "$VIEW/layers/${DIFF_IDS[n - 1]}" >"$WORK/tree-$n.list"
	check "layer $n: names, types, modes, owners, sizes, links as in the tar" \
		cmp -s "$WORK/ref-$n.list" "$WORK/tree-$n.list"
	check "layer $n: the same bytes" diff -r --no-dereference "$WORK/ref-$n" \
		"$VIEW/layers/${DIFF_IDS[n - 1]}"
done
[[ $(wc -l <"$WORK/tree-1.list") -gt 100 ]] && pass "busybox's applets are all there" ||
	fail "busybox's layer has $(wc -l <"$WORK/tree-1.list") entries"
check "the setuid file keeps its mode and owner" \
	test "$(stat -c '%A %u:%g' "$L2/srv/tool")" == "-rwsr-x--- 1000:1001"
check "the hard link is one file of two links" \
	test "$(stat -c '%i %h' "$L2/etc/hard")" == "$(stat -c '%i %h' "$L2/etc/keep.conf")" \
	-a "$(stat -c %h "$L2/etc/hard")" == 2
check "the symlink as in the tar" test "$(readlink "$L2/srv/link")" == ../etc/keep.conf
expect_fsop_is kept "a user xattr of the tar" getxattr "$L2/etc/keep.conf" user.note
check "mtimes as in the tar" test "$(stat -c %Y "$L2/etc/keep.conf")" == 1700000000
check "the whiteout is a character device 0:0" \
	test "$(stat -c '%F %t:%T' "$L3/etc/gone.conf")" == "character special file 0:0"
check "no .wh. file is left" not test -e "$L3/etc/.wh.gone.conf" -o -e "$L3/opq/.wh..wh..opq"
expect_fsop_is y "the opaque directory has trusted.overlay.opaque=y" \
	getxattr "$L3/opq" trusted.overlay.opaque
expect_fsop_is "getxattr:ENODATA" "other directories are not opaque" \
	getxattr "$L3/etc" trusted.overlay.opaque

# ---- each image is its tree, mounted by the kernel ---------------------------

# images_are_trees WHAT DIR1 DIR2 DIR3: the EROFS mounts DIRn of the images are the trees
images_are_trees() {
	local what=$1 n
	shift
	listing "$L3" >"$WORK/tree-3.list"
	for n in 1 2 3; do
		listing "${!n}" >"$WORK/erofs-$n.list"
		check "$what, layer $n: names, types, modes, owners, sizes, links as in the tree" \
			cmp -s "$WORK/tree-$n.list" "$WORK/erofs-$n.list"
		((n == 3)) || # diff cannot compare the whiteout, a device: the listing did
			check "$what, layer $n: the same bytes" diff -r --no-dereference \
				"$VIEW/layers/${DIFF_IDS[n - 1]}" "${!n}"
	done
	check "$what: mtimes kept" test "$(stat -c %Y "$2/etc/keep.conf")" == 1700000000
	expect_fsop_is kept "$what: and the tar's user xattr" getxattr "$2/etc/keep.conf" user.note
	check "$what: the whiteout is a character device 0:0" \
		test "$(stat -c '%F %t:%T' "$3/etc/gone.conf")" == "character special file 0:0"
	expect_fsop_is y "$what: the opaque directory has trusted.overlay.opaque=y" \
		getxattr "$3/opq" trusted.overlay.opaque
	rm -rf "$WORK/ev-upper" "$WORK/ev-work"
	mkdir -p "$WORK/ev-upper" "$WORK/ev-work" "$WORK/ev-merged"
	on_exit "umount '$WORK/ev-merged' 2>/dev/null"
	expect_exit 0 "$what: mount -t overlay over the three" mount -t overlay overlay \
		-o "lowerdir=$(ovl "$3"):$(ovl "$2"):$(ovl "$1"),upperdir=$WORK/ev-upper,workdir=$WORK/ev-work" \
		"$WORK/ev-merged"
	check "$what: over them, the deleted file is absent" not test -e "$WORK/ev-merged/etc/gone.conf"
	check "$what: the opaque directory hides the lower entries" test "$(ls -A "$WORK/ev-merged/opq")" == c
	check "$what: busybox runs from the merged images" test "$("$WORK/ev-merged/bin/busybox" echo hi)" == hi
}
# a diff-id's ':' separates lower dirs in overlayfs's options: escape it as '\:'
ovl() { printf '%s' "${1//:/\\:}"; }
read_all() { find "$1" -xdev -type f -exec cat {} + >/dev/null; } # DIR: every file under it
layer_requests() { jq '[.layers_requests[]] | add' "$MNT/.dindfs/stats"; }

images_are_trees "the host's share" "$MNT/layers/${DIFF_IDS[0]}" "$MNT/layers/${DIFF_IDS[1]}" \
	"$MNT/layers/${DIFF_IDS[2]}"
before=$(layer_requests)
check "every file over the shared images reads" read_all "$WORK/ev-merged"
expect_eq "$(layer_requests)" "$before" "... and the daemon got no request for it: the kernel read EROFS"
umount "$WORK/ev-merged"
expect_erofs "a shared image is read-only" touch "$MNT/layers/${DIFF_IDS[1]}/new"
# a level's copy of a share is its own: what it does to it stays in its mount
# namespace (a slave of the host's, as with docker's rslave)
expect_exit 0 "a level unmounts its copy of a share" \
	unshare -m --propagation slave umount "$MNT/layers/${DIFF_IDS[0]}"
check "... and the host's three shares stay" test "$(shared_mounts | wc -l)" == 3
expect_erofs "a level that remounts its copy read-write still cannot write to it" \
	unshare -m --propagation slave sh -c \
	"mount -o remount,rw '$MNT/layers/${DIFF_IDS[1]}' && touch '$MNT/layers/${DIFF_IDS[1]}/new'"

if [[ $PT == true ]]; then
	mkdir "$WORK/erofs-1"
	expect_fsop_is "mount:ENOTBLK" "a level cannot mount an image from a mount with passthrough itself" \
		mounterofs "$MNT/layers/${DIFF_IDS[0]}.erofs" "$WORK/erofs-1"
else
	for n in 1 2 3; do
		mkdir "$WORK/erofs-$n"
		on_exit "umount '$WORK/erofs-$n' 2>/dev/null"
		expect_fsop OK "layer $n's image mounts file-backed, through the mount, as a level may" \
			mounterofs "$MNT/layers/${DIFF_IDS[n - 1]}.erofs" "$WORK/erofs-$n"
	done
	images_are_trees "a level's own mount" "$WORK/erofs-1" "$WORK/erofs-2" "$WORK/erofs-3"
	umount "$WORK/ev-merged"
	for n in 1 2 3; do umount "$WORK/erofs-$n"; done
fi
expect_fsop_is "open:EROFS" "an image cannot be opened for writing" writeopen "$L2.erofs"
expect_erofs "nor an image be made in layers/" touch "$MNT/layers/sha256:$(printf 'b%.0s' {1..64}).erofs"
check "the store's image is read-only, root's" test "$(stat -c '%a %u' "$STORE/layers/${DIFF_IDS[1]}.erofs")" == "444 0"

# ---- read-only -----------------------------------------------------------

expect_fsop_is "open:EROFS" "a tree's file cannot be opened for writing" \
	writeopen "$L2/etc/keep.conf"
expect_erofs "nor can a directory be made in it" mkdir "$L2/new"
expect_erofs "nor a file removed" rm -f "$L2/etc/keep.conf"
expect_erofs "nor its mode changed" chmod 600 "$L2/etc/keep.conf"
expect_erofs "nor a tree be made in layers/" mkdir "$MNT/layers/sha256:$(printf 'a%.0s' {1..64})"
check "the store's tree is 0700 root" test "$(stat -c '%a %u' "$STORE/layers")" == "700 0"
check "the mount answers nosuid,nodev" awk -v m="$MNT" \
	'$2 == m && $4 ~ /nosuid/ && $4 ~ /nodev/ { found = 1 } END { exit !found }' /proc/mounts

# ---- overlayfs over the mount's trees ------------------------------------------

mkdir -p "$WORK/ov-upper" "$WORK/ov-work" "$WORK/merged"
on_exit "umount '$WORK/merged' 2>/dev/null"
expect_exit 0 "mount -t overlay with layers/ as lower dirs" mount -t overlay overlay \
	-o "lowerdir=$(ovl "$L3"):$(ovl "$L2"):$(ovl "$L1"),upperdir=$WORK/ov-upper,workdir=$WORK/ov-work" "$WORK/merged"
check "the file the upper layer deleted is absent" not test -e "$WORK/merged/etc/gone.conf"
check "its neighbour is there" test "$(cat "$WORK/merged/etc/keep.conf")" == keep
check "the opaque directory hides the lower entries" test "$(ls -A "$WORK/merged/opq")" == c
check "busybox runs from the merged tree" test "$("$WORK/merged/bin/busybox" echo hi)" == hi
# the requests reading every file of the merged tree sends to the trees
layer_counts() { for k in flush lookup read; do stat_of "$MNT" "layers_requests.$k"; done | paste -sd' '; }
before=$(layer_counts)
check "every file of the merged tree reads" read_all "$WORK/merged"
after=$(layer_counts)
expect_eq "${after%% *}" "${before%% *}" "closing a tree's files sends no FLUSH (FOPEN_NOFLUSH)"
check "every file of the merged tree reads again" read_all "$WORK/merged"
expect_eq "$(layer_counts)" "$after" \
	"... and again from the kernel's caches: no FLUSH, LOOKUP or READ reaches the daemon"
echo new >"$WORK/merged/etc/keep.conf"
check "a write lands in the upper dir" test "$(cat "$WORK/ov-upper/etc/keep.conf")" == new
check "and not in the shared tree" test "$(cat "$L2/etc/keep.conf")" == keep
umount "$WORK/merged"

# ---- kill -9 mid-unpack ---------------------------------------------------

# a layer of 20000 small files, so that its unpack lasts a while
BIG=$(image_dir hub library/big v1)
mkdir -p "$BIG"
cp "$(_busybox_layer)" "$BIG/layer-1.tar.gz"
python3 - "$BIG/layer-2.tar.gz" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz", compresslevel=1) as t:
    for d in range(20):
        info = tarfile.TarInfo("d%02d" % d); info.type = tarfile.DIRTYPE; info.mode = 0o755
        t.addfile(info)
        for f in range(1000):
            data = (b"%d/%d\n" % (d, f)) * 16
            info = tarfile.TarInfo("d%02d/f%04d" % (d, f)); info.size = len(data)
            t.addfile(info, io.BytesIO(data))
EOF
_write_image "$BIG" oci amd64 "" big:v1
_push_image hub library/big v1 "$BIG"
BIG_DIFF=$(sed -n 2p "$BIG/diff_ids")
unpacking() { compgen -G "$STORE/layers/tmp/${BIG_DIFF#sha256:}.*/d0[0-9]" >/dev/null; }
expect_exit 0 "pull the big image" T "$DINDFS" pull --root "$MNT" big:v1
if wait_until 30 unpacking; then
	pass "its unpack runs in layers/tmp"
	kill -KILL "$MOUNT_PID"
	wait_until 10 pid_gone "$MOUNT_PID" || true
else
	fail "its unpack was never seen in layers/tmp"
fi
umount -l "$VIEW"
fusermount3 -u -z "$MNT" 2>/dev/null || true
check "a lazy unmount of the dead mount takes its shares with it" test -z "$(shared_mounts)"
check "killed mid-unpack: no tree in the store" not test -e "$STORE/layers/$BIG_DIFF"
check "only a leftover in layers/tmp" test -n "$(ls -A "$STORE/layers/tmp")"
must_mount "$MNT" --store "$STORE" --upstream "docker.io=$hub_URL"
check "the bind of the new mount, alone" fuse_view
check "after a remount the unpack completes" wait_until 60 test -d "$MNT/layers/$BIG_DIFF"
check "whole: 20 directories of 1000 files" \
	test "$(find "$MNT/layers/$BIG_DIFF" -type f | wc -l)" == 20000
tmp_empty() { test -z "$(ls -A "$STORE/layers/tmp")"; }
check "its image follows" wait_until 30 test -f "$MNT/layers/$BIG_DIFF.erofs"
check "the new daemon shares it, and the three images the last one built" \
	wait_until 30 stat_is "$MNT" layer_images_shared 4
check "... four EROFS mounts over the trees" test "$(shared_mounts | wc -l)" == 4
check "the leftover is gone" wait_until 10 tmp_empty
check "the other trees stayed" test -d "$L3" -a -d "$L2" -a -d "$L1"
check "four layers now (busybox's is shared)" stat_is "$MNT" layers 4
check "the new daemon unpacked the interrupted layer only" stat_is "$MNT" layers_unpacked 1
umount "$VIEW"
expect_exit 0 "dindfs umount" T "$DINDFS" umount "$MNT"
check "... detaches the shares first: no EROFS mount is left over the trees" test -z "$(shared_mounts)"
check "... and the daemon is gone" wait_until 10 pid_gone "$MOUNT_PID"
unmount_dindfs "$MNT" "$MOUNT_PIDFILE"

# ---- fsck and gc see the trees ---------------------------------------------

expect_exit 0 "dindfs fsck" "$DINDFS" fsck --store "$STORE"
expect_match "$WORK/out" '^checked [0-9]+ blobs .* and 4 unpacked layers$' "fsck checked the four trees"
rm -rf "${STORE:?}/layers/${DIFF_IDS[2]}"
expect_exit 1 "fsck finds a tree gone behind its back" "$DINDFS" fsck --store "$STORE"
expect_match "$WORK/out" "^layer ${DIFF_IDS[2]}: unpacked layer tree is missing; its row dropped$" \
	"and names it"
expect_exit 0 "gc down to nothing" "$DINDFS" gc --store "$STORE" --max-size 0
expect_match "$WORK/out" '^removed 3 unpacked layers with their blobs$' "the trees went with their blobs"
check "layers/ holds nothing but tmp/: the images went with their trees" \
	test "$(ls -A "$STORE/layers")" == tmp

finish
