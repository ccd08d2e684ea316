#!/usr/bin/env bash
# dindfs ls, gc, fsck, pin and unpin on a real store, as a user runs them: what they
# print, what they change, and their exit codes (0 done, 1 failed, 2 usage).
. "$(dirname "$0")/lib.sh"
: "${MAKE_STORE:?}"

STORE=$WORK/store
blob_bytes() { find "$STORE/blobs" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

# Three images, 2 layers and a config of 100 KiB each, used in this order:
# old, mid, new (times in the future, so that they stay the latest use).
"$MAKE_STORE" "$STORE" old:1:2:102400:4000000000 mid:1:2:102400:4000000100 \
	new:1:2:102400:4000000200 >"$WORK/manifests"

expect_exit 0 "ls lists the store" "$DINDFS" ls --store "$STORE"
expect_match "$WORK/out" '^REFERENCE +DIGEST +SIZE +LAST USED' "ls prints a header"
expect_match "$WORK/out" "^docker.io/old:1 +sha256:$(sed -n 1p "$WORK/manifests" | cut -c8-19) " \
	"ls names each image with its short digest"
expect_match "$WORK/out" '^docker.io/new:1 .*300\.[0-9] KB' "ls sums an image's blobs"
expect_match "$WORK/out" '^12 blobs, ' "ls counts the blobs"
expect_exit 0 "DINDFS_STORE is the default store" env DINDFS_STORE="$STORE" "$DINDFS" ls
expect_match "$WORK/out" '^12 blobs' "ls reads \$DINDFS_STORE"

expect_exit 0 "fsck of a clean store" "$DINDFS" fsck --store "$STORE"
expect_match "$WORK/out" '^checked 12 blobs' "fsck counts what it checked"

# Flip one byte of one layer: fsck names it, quarantines it, exits 1.
victim=$(find "$STORE/blobs" -type f -size 100k | head -1)
printf '\x00' | dd of="$victim" bs=1 seek=4096 conv=notrunc status=none
expect_exit 1 "fsck of a damaged store fails" "$DINDFS" fsck --store "$STORE"
expect_match "$WORK/out" "^bad blob sha256:$(basename "$victim"): " "fsck names the bad digest"
expect_lines "$WORK/err" 1 "fsck says it in one line on stderr"
check "the bad blob is in quarantine" test -f "$STORE/quarantine/$(basename "$victim")"
check "and no longer under blobs/" test ! -e "$victim"
expect_exit 0 "fsck after quarantine is clean" "$DINDFS" fsck --store "$STORE"

# GC down to what two images take: the least recently used one goes whole.
limit=$(($(blob_bytes) - 102400))
expect_exit 0 "gc to a limit" "$DINDFS" gc --store "$STORE" --max-size "$limit"
expect_match "$WORK/out" '^removed 1 image and [0-9]+ blobs' "gc reports what it removed"
check "gc met the limit" test "$(blob_bytes)" -le "$limit"
"$DINDFS" ls --store "$STORE" >"$WORK/ls"
expect_no_match "$WORK/ls" '^docker.io/old:1 ' "the least recently used image is gone"
expect_match "$WORK/ls" '^docker.io/mid:1 ' "a newer image stays"
expect_match "$WORK/ls" '^docker.io/new:1 ' "the newest image stays"
expect_exit 0 "gc with sizes like 1G" "$DINDFS" gc --store "$STORE" --max-size 1G
expect_match "$WORK/out" '^removed 0 images and 0 blobs' "nothing to do under the limit"
expect_exit 0 "gc to zero" "$DINDFS" gc --store "$STORE" --max-size 0
check "the store is empty" test "$(blob_bytes)" = 0

# A pinned image stays through any gc, with its config and layers, until it is unpinned.
"$MAKE_STORE" "$STORE" library/kept:1:2:102400:4000000000 library/gone:1:2:102400:4000000100 \
	>"$WORK/manifests"
kept=$(sed -n 1p "$WORK/manifests")
expect_exit 0 "pin an image by its short name" "$DINDFS" pin --store "$STORE" kept:1
expect_match "$WORK/out" "^pinned docker.io/library/kept:1 \(sha256:${kept:7:12}\) with its config and layers\$" \
	"pin names the image and its digest"
"$DINDFS" ls --store "$STORE" >"$WORK/ls"
expect_match "$WORK/ls" "^docker.io/library/kept:1 .* yes\$" "ls shows the pin"
expect_match "$WORK/ls" "^docker.io/library/gone:1 .* -\$" "and no pin on the other image"
expect_exit 1 "gc to zero cannot remove a pinned image" "$DINDFS" gc --store "$STORE" --max-size 0
expect_match "$WORK/out" '^removed 1 image and 4 blobs' "it removes the unpinned image"
expect_match "$WORK/err" "what is left is pinned" "and says what is left is pinned"
check "the pinned image's 4 blobs stay (3 x 100 KiB and its manifest)" \
	test "$(find "$STORE/blobs" -type f | wc -l)" = 4
"$DINDFS" ls --store "$STORE" >"$WORK/ls"
expect_match "$WORK/ls" '^docker.io/library/kept:1 ' "ls still lists it"
expect_no_match "$WORK/ls" '^docker.io/library/gone:1 ' "and not the other"
expect_exit 0 "fsck agrees" "$DINDFS" fsck --store "$STORE"
expect_exit 0 "unpin it by digest" "$DINDFS" unpin --store "$STORE" "kept@$kept"
expect_match "$WORK/out" "^unpinned docker.io/library/kept@$kept " "unpin names it"
expect_exit 0 "gc to zero once it is unpinned" "$DINDFS" gc --store "$STORE" --max-size 0
expect_match "$WORK/out" '^removed 1 image and 4 blobs' "it goes"
check "the store is empty again" test "$(blob_bytes)" = 0
expect_exit 1 "pin of an image the store lacks" "$DINDFS" pin --store "$STORE" kept:1
expect_lines "$WORK/err" 1 "one line on stderr"
expect_match "$WORK/err" "^dindfs: 'docker.io/library/kept:1' is not in store '$STORE'\$" "it names the image and the store"
expect_exit 2 "pin without a reference" "$DINDFS" pin --store "$STORE"
expect_exit 1 "pin of an invalid reference" "$DINDFS" pin --store "$STORE" 'UPPER:1'
expect_match "$WORK/err" "^dindfs: invalid reference 'UPPER:1'" "the bad reference is quoted"

# Usage mistakes: usage on stderr, exit 2.
expect_exit 2 "no command" "$DINDFS"
expect_exit 2 "unknown command" "$DINDFS" frobnicate
expect_match "$WORK/err" "unknown command 'frobnicate'" "the unknown command is named"
expect_exit 2 "unknown option" "$DINDFS" ls --frob
expect_match "$WORK/err" "unknown option '--frob'" "the unknown option is named"
expect_match "$WORK/err" '^usage: dindfs ls' "usage follows"
expect_exit 2 "gc without --max-size" "$DINDFS" gc --store "$STORE"
expect_exit 2 "a bad size" "$DINDFS" gc --store "$STORE" --max-size 12Q
expect_match "$WORK/err" "bad size '12Q'" "the bad size is quoted"
expect_exit 2 "a missing value" "$DINDFS" gc --store
expect_exit 2 "a stray argument" "$DINDFS" fsck --store "$STORE" extra
for cmd in ls gc fsck pin unpin; do
	expect_exit 0 "$cmd --help" "$DINDFS" $cmd --help
	expect_match "$WORK/out" "^usage: dindfs $cmd" "$cmd --help prints usage on stdout"
done
expect_exit 0 "dindfs --help" "$DINDFS" --help

# Failures: one clear line, exit 1, nothing created where it should not be.
touch "$WORK/file"
expect_exit 1 "a store that is a file" "$DINDFS" ls --store "$WORK/file"
expect_lines "$WORK/err" 1 "one line on stderr"
expect_match "$WORK/err" "^dindfs: cannot open store '$WORK/file': Not a directory" \
	"it names the store and the reason"
sqlite3 "$STORE/index.db" 'PRAGMA user_version = 99'
expect_exit 1 "a store from a newer dindfs" "$DINDFS" ls --store "$STORE"
expect_match "$WORK/err" 'written by a newer dindfs' "the reason is clear"

finish
