#!/usr/bin/env bash
# A hostile level against the mount's writers and inodes (issue 12, attacks
# 1 and 7): an ingest pwrite()n at 16 GiB and closed through hundreds of
# dup()s, ingests past their size caps, more writers and buffered bytes and
# inodes than a level may have. A second level is a process in a pid
# namespace of its own (unshare -p: depth 1 below the daemon). While each
# attack runs, the mount answers stat of the workspace and of a cached blob
# within 1 s; each limit gives its exact errno (docs/security.md); the other
# level's ingest still works; nothing partial is under blobs/ or left in tmp/.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"

HOSTILE=$(cd "$(dirname "$0")/fixtures" && pwd)/hostile.py
MNT=$WORK/mnt STORE=$WORK/store WS=$WORK/ws
mkdir -p "$WS"
MIB=$((1024 * 1024))
for bad in nosuch=1 ingest-size=lots level-writers=0 level-writers tmp-size=; do
	expect_exit 2 "dindfs mount --limit $bad: a usage error" mount_dindfs "$WORK/mnt-bad" --store "$STORE" --limit "$bad"
	expect_match "$WORK/err" "^dindfs mount: bad --limit '$bad'" "it says which"
done
check "and no daemon for it" not is_mounted "$WORK/mnt-bad"
# small limits, so each attack is quick: the defaults are in docs/security.md
must_mount "$MNT" --store "$STORE" --workspace "$WS" --upstream docker.io=http://127.0.0.1:1 \
	--limit ingest-size=4M --limit tmp-size=12M --limit level-tmp-size=8M \
	--limit level-writers=8 --limit level-buffer-size=1M --limit level-inode-size=1M \
	--limit level-local-tags=2
pid=$MOUNT_PID

hostile() { T python3 "$HOSTILE" "$@"; }
# level1 COMMAND...: run it in a pid namespace of its own, one level down
level1() { T unshare --pid --fork "$@"; }
check "unshare makes a level one below the daemon" \
	test "$(level1 cat "$MNT/.dindfs/whoami" | sed 's/.*"depth": *\([0-9]*\).*/\1/')" = 1

# a blob in the store, through ingest/ as a level adds one
head -c 100000 /dev/urandom >"$WORK/cached"
cached=sha256:$(sha256sum "$WORK/cached" | cut -c1-64)
expect_fsop OK "a level ingests a blob" write "$MNT/ingest/$cached" "$WORK/cached"
echo "answers" >"$WS/file"

# answers: stat of the workspace and of the cached blob, each within 1 s.
answers() {
	timeout 1 stat "$MNT/workspace/file" >/dev/null && timeout 1 stat "$(mnt_blob "$MNT" "$cached")" >/dev/null
}
# answers_while PID: the mount answers (every 0.2 s) as long as PID runs, at least once.
answers_while() {
	local n=0
	while ((n == 0)) || pid_alive "$1"; do
		answers || return 1
		n=$((n + 1))
		sleep 0.2
	done
}
# new_blob FILE SIZE: random bytes, and their digest in BLOB
new_blob() { head -c "$2" /dev/urandom >"$1" && BLOB=sha256:$(sha256sum "$1" | cut -c1-64); }
# held RESULTS N: the holder printed "held" after N result lines
held() { [[ $(wc -l <"$1") -gt $2 ]] && tail -n 1 "$1" | grep -qx held; }
tmp_empty() { store_tmp_empty "$STORE"; }
# tally: how often each line of stdin comes, as "COUNT LINE; " in byte order
tally() { LC_ALL=C sort | uniq -c | awk '{ $1 = $1; printf "%s; ", $0 }'; }
zeros() { printf 'sha256:%063d' 0 | sed "s/0$/$1/"; } # a 63-digit prefix: names end in one hex digit

# ---- attack 1: one write at 16 GiB, then 256 dup()s closed ------------------

sparse=sha256:$(printf '%064d' 1)
hostile sparse "$MNT/ingest/$sparse" 256 >"$WORK/sparse.out" &
attacker=$!
check "the mount answers while the attack runs" answers_while "$attacker"
wait "$attacker" || true
check "pwrite at 16 GiB: EINVAL (ingest only appends)" test "$(sed -n 1p "$WORK/sparse.out")" = pwrite:EINVAL
check "an append at the end goes in" test "$(sed -n 2p "$WORK/sparse.out")" = OK
check "each of the 257 closes says EIO (1 byte is not the digest), none hangs" \
	test "$(sed -n 3p "$WORK/sparse.out")" = "close close:EIO 257"
# Repeated, the attack cannot add up either: 20 more in a row while the mount is watched.
hostile sparse "$MNT/ingest/$sparse" 256 20 >"$WORK/sparse.out" &
attacker=$!
check "the mount answers through 20 more of them" answers_while "$attacker"
wait "$attacker" || true
check "(each pwrite EINVAL, each close EIO)" \
	test "$(grep -v '^seconds' "$WORK/sparse.out" | tally)" = "20 OK; 20 close close:EIO 257; 20 pwrite:EINVAL; "
expect_fsop '(stat|open):ENOENT' "nothing of it is under blobs/" stat "$(mnt_blob "$MNT" "$sparse")"
check "nor left in tmp/" wait_until 5 tmp_empty

# ---- size caps: one ingest (EFBIG), a level's share of tmp/ (EDQUOT), all of tmp/ (ENOSPC)

new_blob "$WORK/4m" $((4 * MIB))
expect_fsop OK "an ingest of exactly ingest-size (4 MiB) commits" write "$MNT/ingest/$BLOB" "$WORK/4m"
check "with the right bytes" cmp -s "$(mnt_blob "$MNT" "$BLOB")" "$WORK/4m"
check "an ingest past ingest-size: write EFBIG" \
	test "$(hostile write "$MNT/ingest/sha256:$(printf '%064d' 5)" $((4 * MIB + 1)))" = write:EFBIG
rm -f "$WORK/release"
hostile hold "$MNT/ingest" "$(zeros 0)" 3 3000000 "$WORK/release" >"$WORK/hold0.out" &
holder0=$!
check "level 0 holds 8 MB of ingests" wait_until 30 held "$WORK/hold0.out" 3
check "two 3 MB ingests fit in the level's 8 MiB share, the third gets write EDQUOT" \
	test "$(head -n 3 "$WORK/hold0.out" | tr '\n' ' ')" = "OK OK write:EDQUOT "
level1 python3 "$HOSTILE" hold "$MNT/ingest" "$(zeros 1)" 2 3000000 "$WORK/release" >"$WORK/hold1.out" &
holder1=$!
check "level 1 gets its 3 MB" wait_until 30 held "$WORK/hold1.out" 2
check "and then tmp/ (12 MiB in all) is full: write ENOSPC" \
	test "$(head -n 2 "$WORK/hold1.out" | tr '\n' ' ')" = "OK write:ENOSPC "
check "the mount answers while tmp/ is full" answers
touch "$WORK/release"
wait "$holder0" "$holder1" || true
check "closed, they leave nothing in tmp/" wait_until 5 tmp_empty
new_blob "$WORK/3m" 3000000
expect_fsop OK "then level 1 ingests 3 MB again" write "$MNT/ingest/$BLOB" "$WORK/3m"

# ---- writers per level (EMFILE) ---------------------------------------------

rm -f "$WORK/release"
hostile hold "$MNT/ingest" "$(zeros 2)" 9 0 "$WORK/release" >"$WORK/hold0.out" &
holder0=$!
check "level 0 holds its writers" wait_until 30 held "$WORK/hold0.out" 9
check "8 open, the 9th: open EMFILE" \
	test "$(tally <"$WORK/hold0.out")" = "8 OK; 1 held; 1 open:EMFILE; "
expect_fsop 'open:EMFILE' "a local tag writer counts in the same budget" \
	write "$MNT/registry/local/app/manifests/v1" "$WORK/cached"
new_blob "$WORK/other" 200000
check "meanwhile level 1 ingests a blob" \
	test "$(level1 python3 "$FSOP" write "$MNT/ingest/$BLOB" "$WORK/other")" = OK
check "with the right bytes" cmp -s "$(mnt_blob "$MNT" "$BLOB")" "$WORK/other"
check "the mount answers" answers
touch "$WORK/release"
wait "$holder0" || true

# ---- local tag writers' memory per level (ENOBUFS) --------------------------

rm -f "$WORK/release"
hostile hold "$MNT/registry/local/app/manifests" v 3 400000 "$WORK/release" >"$WORK/hold0.out" &
holder0=$!
check "level 0 holds local tag writers" wait_until 30 held "$WORK/hold0.out" 3
# each 400000-byte buffer takes 512 KiB
check "two fit in level-buffer-size (1 MiB), the third gets write ENOBUFS" \
	test "$(head -n 3 "$WORK/hold0.out" | tr '\n' ' ')" = "OK OK write:ENOBUFS "
level1 python3 "$HOSTILE" hold "$MNT/registry/local/app/manifests" w 1 400000 "$WORK/release" >"$WORK/hold1.out" &
holder1=$!
check "level 1 still buffers one" wait_until 30 held "$WORK/hold1.out" 1
check "(it says OK)" test "$(head -n 1 "$WORK/hold1.out")" = OK
touch "$WORK/release"
wait "$holder0" "$holder1" || true
expect_fsop '' "no tag came of them" list "$MNT/registry/local"

# ---- local tags per level (EDQUOT) -------------------------------------------

echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$WORK/config"
config=sha256:$(sha256sum "$WORK/config" | cut -c1-64)
expect_fsop OK "an image config goes in" write "$MNT/ingest/$config" "$WORK/config"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[]}' \
	"$config" "$(stat -c %s "$WORK/config")" >"$WORK/manifest"
tags="$MNT/registry/local/app/manifests"
expect_fsop OK "level 0 saves a first local tag" write "$tags/t1" "$WORK/manifest"
expect_fsop OK "and a second" write "$tags/t2" "$WORK/manifest"
expect_fsop close:EDQUOT "a third, past level-local-tags (2): close EDQUOT" write "$tags/t3" "$WORK/manifest"
expect_fsop '(stat|open):ENOENT' "and it is not there" stat "$tags/t3"
expect_fsop OK "overwriting one of its tags still goes" write "$tags/t1" "$WORK/manifest"
check "level 1 saves a tag of its own" test "$(level1 python3 "$FSOP" write "$tags/t3" "$WORK/manifest")" = OK
expect_fsop_is "$(printf 't1\nt2\nt3')" "registry/local/app has those three" list "$tags"
check "level 0 forgets one" T rm "$tags/t2"
expect_fsop OK "and has room for another" write "$tags/t4" "$WORK/manifest"

# ---- inodes per level (ENFILE) ----------------------------------------------

hostile lookups "$MNT/registry/docker.io" 20000 >"$WORK/lookups.out" &
attacker=$!
check "the mount answers while level 0 looks up names" answers_while "$attacker"
wait "$attacker" || true
got=$(cat "$WORK/lookups.out")
enfile_after_500() { [[ $1 =~ ^([0-9]+)\ stat:ENFILE$ ]] && ((BASH_REMATCH[1] >= 500)); }
check "names past level-inode-size (1 MiB): stat ENFILE, after at least 500 ($got)" \
	enfile_after_500 "$got"
check "level 1 still looks names up" test "$(level1 python3 "$HOSTILE" lookups "$MNT/registry/docker.io" 100)" = "100 OK"

# ---- after it all ------------------------------------------------------------

check "the daemon is up" pid_alive "$pid"
# read from level 1: level 0's inodes are all spent by now
check "every file under blobs/sha256 hashes to its name" \
	test "$(level1 python3 "$FSOP" verify "$MNT/blobs/sha256")" = OK
check "no temp file is left" wait_until 5 tmp_empty
expect_exit 0 "dindfs umount" T "$DINDFS" umount "$MNT"
expect_exit 0 "dindfs fsck --store" "$DINDFS" fsck --store "$STORE"
finish
