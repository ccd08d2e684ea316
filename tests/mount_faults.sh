#!/usr/bin/env bash
# dindfs mount when things go wrong: the daemon killed (-9) or stopped
# (TERM) in the middle of a download, wrong bytes from upstream, an
# unreachable upstream, and names that are no image paths at all. After
# each, what the invariants promise: nothing partial or unverified under
# blobs/, a store fsck accepts, and a daemon that still answers.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"

MNT=$WORK/mnt
own_docker_config # no credentials from ~


# store_is_sound STORE: every blob file hashes to its name, and fsck agrees.
store_is_sound() {
	if [[ -d $1/blobs ]]; then blobs_verified "$1/blobs" || return 1; fi
	"$DINDFS" fsck --store "$1" >"$WORK/fsck.out" 2>&1 || {
		sed 's/^/    fsck: /' "$WORK/fsck.out" | tail -5
		return 1
	}
}

registry_start src
# A 40 MB layer, served at 4 MB/s: a download that takes 10 s.
push_test_image src library/big v1 oci 2 $((40 * 1024 * 1024)) >/dev/null
big=${IMAGE_LAYERS[1]} big_file=$IMAGE_DIR/layer-2.tar.gz big_image=$IMAGE_DIR
fault_proxy_start slow "$src_URL" --match '^GET /v2/.*/blobs/' --throttle 4000000
SLOW=(--upstream "$slow_HOSTPORT=$slow_URL")

# ---- kill -9 in the middle of a download ----------------------------------

STORE=$WORK/store-kill
must_mount "$MNT" --store "$STORE" "${SLOW[@]}"
pid=$MOUNT_PID
path=$(mnt_repo_blob "$MNT" "$slow_HOSTPORT" library/big "$big")
T cat "$path" >"$WORK/partial" 2>"$WORK/reader.err" &
reader=$!
check "the download runs (2 MB read)" wait_until 30 file_size_at_least "$WORK/partial" 2000000
kill -KILL "$pid"
check "the daemon is dead" wait_until 10 pid_gone "$pid"
reader_status=0
wait "$reader" || reader_status=$?
check "the reader got an error, not a short file (cat exit $reader_status)" test "$reader_status" != 0
check "fusermount3 -u removes the dead mount" eval 'fusermount3 -u "$MNT" || fusermount3 -u -z "$MNT"'
check "it is gone from /proc/mounts" not is_mounted "$MNT"
check "no partial blob is in the store" test ! -e "$(store_blob "$STORE" "$big")"
check "every blob in the store hashes to its name, and fsck --store exits 0" store_is_sound "$STORE"
must_mount "$MNT" --store "$STORE" "${SLOW[@]}"
pid=$MOUNT_PID
expect_fsop '(stat|open):ENOENT' "mounted again: the blob is not under blobs/" stat "$(mnt_blob "$MNT" "$big")"
check "every file under blobs/sha256 hashes to its name" blobs_verified "$MNT/blobs/sha256"
check "reading it again gives the right bytes" T cmp -s "$path" "$big_file"
# A reader sees the end of a blob only once it is verified (else wrong bytes
# would end in a clean EOF), and committed: then it is under blobs/.
check "once a reader has it all, it is under blobs/" T cmp -s "$(mnt_blob "$MNT" "$big")" "$big_file"
expect_exit 0 "dindfs umount" T "$DINDFS" umount "$MNT"
check "fsck --store after that" store_is_sound "$STORE"

# ---- SIGTERM in the middle of a download -----------------------------------

# At 1 MB/s the download would take 40 s: the daemon must not wait for it.
fault_proxy_start slower "$src_URL" --match '^GET /v2/.*/blobs/' --throttle 1000000
STORE=$WORK/store-term
must_mount "$MNT" --store "$STORE" --upstream "$slower_HOSTPORT=$slower_URL"
pid=$MOUNT_PID
T cat "$(mnt_repo_blob "$MNT" "$slower_HOSTPORT" library/big "$big")" >"$WORK/partial" 2>"$WORK/reader.err" &
reader=$!
check "the download runs (1 MB read)" wait_until 30 file_size_at_least "$WORK/partial" 1000000
kill -TERM "$pid"
check "SIGTERM ends the daemon within 10 s, amid a 40 s download" wait_until 10 pid_gone "$pid"
check "and the mount is gone from /proc/mounts" not is_mounted "$MNT"
reader_status=0
wait "$reader" || reader_status=$?
check "the reader got an error, not a short file (cat exit $reader_status)" test "$reader_status" != 0
check "no partial blob is in the store" test ! -e "$(store_blob "$STORE" "$big")"
check "every blob in the store hashes to its name, and fsck --store exits 0" store_is_sound "$STORE"
check "(the proxy really was slow: the download was cut short)" \
	test "$(fault_proxy_log_count slower "GET /v2/library/big/blobs/$big .*fault=throttle")" = 1

# ---- wrong bytes from upstream ---------------------------------------------

# One byte flipped in the middle, the body sent at 2 MB/s: the reader keeps
# up with the download and asks for its last bytes as they arrive.
push_test_image src library/app v1 oci 3 2000000 >/dev/null
app=$IMAGE_DIR app_digest=$IMAGE_DIGEST app_layers=("${IMAGE_LAYERS[@]}")
victim=${app_layers[1]}
fault_proxy_start bad "$src_URL" --match "^GET /v2/.*/(blobs/$victim|manifests/$app_digest)" --corrupt \
	--throttle 2000000
STORE=$WORK/store-bad
must_mount "$MNT" --store "$STORE" --upstream "$bad_HOSTPORT=$bad_URL"
pid=$MOUNT_PID
victim_path=$(mnt_repo_blob "$MNT" "$bad_HOSTPORT" library/app "$victim")
expect_fsop '(open|read|close):EIO' "a blob whose bytes do not match its digest: the reader gets EIO" read "$victim_path"
check "the proxy did corrupt it" test "$(fault_proxy_log_count bad "GET /v2/library/app/blobs/$victim .*fault=corrupt")" -ge 1
expect_fsop '(stat|open):ENOENT' "nothing is committed under blobs/" stat "$(mnt_blob "$MNT" "$victim")"
check "nor in the store" test ! -e "$(store_blob "$STORE" "$victim")"
expect_fsop '(open|read|close):EIO' "a second reader gets EIO too, not the bad bytes" read "$victim_path"
check "the daemon is still up" pid_alive "$pid"
check "no fetch is left in flight" wait_until 10 stat_is "$MNT" fetches_in_flight 0
check "and no temp file" wait_until 10 store_tmp_empty "$STORE"
check "another layer reads right through the same mount" \
	T cmp -s "$(mnt_repo_blob "$MNT" "$bad_HOSTPORT" library/app "${app_layers[2]}")" "$app/layer-3.tar.gz"
expect_fsop '(open|read|close|stat):EIO' "a manifest by digest whose bytes do not match: EIO" \
	read "$(mnt_manifest "$MNT" "$bad_HOSTPORT" library/app "$app_digest")"
check "it is not under blobs/ either" test ! -e "$(store_blob "$STORE" "$app_digest")"
check "every file under blobs/sha256 hashes to its name" blobs_verified "$MNT/blobs/sha256"
expect_exit 0 "dindfs umount" T "$DINDFS" umount "$MNT"

# ---- an unreachable upstream, nothing cached ------------------------------

STORE=$WORK/store-down
must_mount "$MNT" --store "$STORE" --upstream "docker.io=http://127.0.0.1:1"
pid=$MOUNT_PID
log=$MOUNT_LOG
expect_fsop '(stat|open):EIO' "a tag upstream cannot be asked about: EIO, not ENOENT" \
	read "$(mnt_manifest "$MNT" docker.io library/nothing v1)"
expect_fsop '(stat|open):EIO' "a blob likewise" \
	read "$(mnt_repo_blob "$MNT" docker.io library/nothing "sha256:$(printf '%064d' 0)")"
if wait_until 5 grep -Eq 'docker\.io.*([Cc]onnect|refused)|([Cc]onnect|refused).*docker\.io' "$log"; then
	pass "the log names the host and the transport error"
else
	fail "the log names the host and the transport error"
	sed 's/^/    log: /' "$log" | tail -5
fi
check "the daemon is still up" pid_alive "$pid"
check "and answers" mount_answers "$MNT"
expect_exit 0 "dindfs umount" T "$DINDFS" umount "$MNT"

# ---- names that are no image paths ----------------------------------------

STORE=$WORK/store-names
registry_start hub
push_test_image hub library/app v1 oci 2 5000 >/dev/null
good=$IMAGE_DIR good_layer=${IMAGE_LAYERS[1]}
must_mount "$MNT" --store "$STORE" --upstream "docker.io=$hub_URL"
pid=$MOUNT_PID
check "(a good read first)" T cmp -s "$(mnt_manifest "$MNT" docker.io library/app v1)" "$good/manifest.json"
R=$MNT/registry/docker.io/library/app
hex=${good_layer#sha256:}
long() { python3 -c "print('$1' * $2)"; } # STRING COUNT

# Past PATH_MAX the kernel answers itself.
expect_fsop 'open:ENAMETOOLONG' "a 5000-character name at the root" read "$MNT/$(long a 5000)"
expect_fsop 'open:ENAMETOOLONG' "under blobs/sha256" read "$MNT/blobs/sha256/$(long a 5000)"
expect_fsop 'open:ENAMETOOLONG' "as a tag" read "$R/manifests/$(long a 5000)"
# Below it FUSE hands long names to the daemon (up to 4 KiB on Linux, not 255).
for n in 256 1100 4000; do
	expect_fsop 'open:(ENAMETOOLONG|ENOENT|EINVAL)' "a $n-character tag" read "$R/manifests/$(long v $n)"
	expect_fsop 'open:(ENAMETOOLONG|ENOENT|EINVAL)' "a $n-character repository" \
		read "$MNT/registry/docker.io/$(long r $n)/manifests/v1"
	expect_fsop 'open:(ENAMETOOLONG|ENOENT|EINVAL)' "a $n-character host" \
		read "$MNT/registry/$(long h $n)/app/manifests/v1"
	expect_fsop 'open:(ENAMETOOLONG|ENOENT|EINVAL)' "a $n-character name in ingest/" \
		write "$MNT/ingest/$(long i $n)" "$good/config.json"
done
expect_fsop 'stat:(ENAMETOOLONG|ENOENT|EINVAL)' "a 4000-character name at the root" stat "$MNT/$(long x 4000)"

bad_names=(
	# garbage digests
	"blobs/sha256/zz"
	"blobs/sha256/${hex:0:63}"
	"blobs/sha256/${hex}0"
	"blobs/sha256/${hex^^}"
	"blobs/sha256/sha256:$hex"
	"blobs/sha256/$(printf 'g%.0s' {1..64})"
	"blobs/md5/$hex"
	"blobs/sha512/$hex$hex"
	"registry/docker.io/library/app/blobs/sha256:xyz"
	"registry/docker.io/library/app/blobs/$hex"
	"registry/docker.io/library/app/blobs/sha256:${hex^^}"
	"registry/docker.io/library/app/blobs/sha256:${hex:0:63}"
	"registry/docker.io/library/app/blobs/sha512:$hex$hex"
	"registry/docker.io/library/app/blobs/md5:$hex"
	"registry/docker.io/library/app/blobs/sha256:"
	"registry/docker.io/library/app/manifests/sha256:abc"
	"registry/docker.io/library/app/manifests/sha256:${hex^^}"
	# tags that are not tags
	"registry/docker.io/library/app/manifests/-v1"
	"registry/docker.io/library/app/manifests/.v1"
	"registry/docker.io/library/app/manifests/v1:v2"
	"registry/docker.io/library/app/manifests/$(long t 129)"
	# hosts that are not hosts
	"registry/UPPER/app/manifests/v1"
	"registry/-bad-/app/manifests/v1"
	"registry/bad_host/app/manifests/v1"
	"registry/host:port/app/manifests/v1"
	"registry/a..b/app/manifests/v1"
	"registry/.hidden/app/manifests/v1"
	"registry/%2e%2e/app/manifests/v1"
	# repository components that are not, ..-like ones first
	"registry/docker.io/..app/manifests/v1"
	"registry/docker.io/library/..app/manifests/v1"
	"registry/docker.io/library/a..b/manifests/v1"
	"registry/docker.io/library/app../manifests/v1"
	"registry/docker.io/library/.../manifests/v1"
	"registry/docker.io/library/.app/manifests/v1"
	"registry/docker.io/library/App/manifests/v1"
	"registry/docker.io/library/a_-b/manifests/v1"
	"registry/docker.io/library/a\\b/manifests/v1"
	$'registry/docker.io/library/a\nb/manifests/v1'
	"registry/local/..app/manifests/v1"
	# ingest names that are no digests
	"ingest/notadigest"
	"ingest/sha256:zz"
	"ingest/sha256:${hex^^}"
)
for name in "${bad_names[@]}"; do
	expect_fsop '(stat|open|read):(ENOENT|EINVAL)' "read $(printf '%q' "$name" | cut -c1-90)" read "$MNT/$name"
done
for name in "ingest/notadigest" "ingest/sha256:zz" "ingest/sha256:${hex^^}" "ingest/sha512:$hex$hex" \
	"registry/local/..app/manifests/v1" "registry/local/App/manifests/v1" "registry/local/app/manifests/-v1" \
	"registry/local/app/manifests/sha256:zz" "blobs/sha256/$hex"; do
	expect_fsop 'open:E[A-Z]+' "create $name fails" write "$MNT/$name" "$good/config.json"
done
# What upstream was asked, apart from the good reads.
{ grep -E '"[A-Z]+ /v2/' "$hub_LOG" || true; } |
	grep -vE "\"(HEAD|GET) /v2/(library/app/(manifests/(v1|$IMAGE_DIGEST)|blobs/sha256:[0-9a-f]{64}))? " |
	grep -vE '"(POST|PUT|PATCH) ' >"$WORK/asked" || true
expect_lines "$WORK/asked" 0 "none of those names reached upstream"
sed 's/^/    upstream: /' "$WORK/asked" | head -5
check "the daemon is still up" pid_alive "$pid"
check "a good read still works" T cmp -s "$(mnt_manifest "$MNT" docker.io library/app v1)" "$good/manifest.json"
check "and a good blob" T cmp -s "$(mnt_repo_blob "$MNT" docker.io library/app "$good_layer")" "$good/layer-2.tar.gz"
check "every file under blobs/sha256 hashes to its name" blobs_verified "$MNT/blobs/sha256"
expect_exit 0 "dindfs umount" T "$DINDFS" umount "$MNT"
check "fsck --store at the end" store_is_sound "$STORE"

finish
