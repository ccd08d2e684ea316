#!/usr/bin/env bash
# dindfs mount against a real registry (Debian's docker-registry), looked at
# from outside as a level sees it: the bytes and xattrs under registry/ and
# blobs/, the stats counters, one download for many readers, repository
# links, the tag TTL, ingest/, registry/local/, dindfs pull through the
# mount, and the ways a mount ends. What the registry's access log says it
# was asked is part of each check.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"

STORE=$WORK/store
MNT=$WORK/mnt
own_docker_config # no credentials from ~

OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
blob_gets() { registry_log_count hub GET "/v2/$1/blobs/$2"; } # REPO DIGEST
in_flight_is() { stat_is "$MNT" fetches_in_flight "$1"; }
file_is() { [[ $(cat "$1" 2>/dev/null) == "$2" ]]; }       # FILE CONTENT

# pushed_file IMAGE_DIR DIGEST: the file push_test_image pushed as DIGEST.
pushed_file() {
	local n
	if [[ $2 == "$(cat "$1/manifest.digest")" ]]; then
		echo "$1/manifest.json"
	elif [[ $2 == "$(cat "$1/config.digest")" ]]; then
		echo "$1/config.json"
	else
		n=$(grep -nx "$2" "$1/layers" | cut -d: -f1)
		echo "$1/layer-$n.tar.gz"
	fi
}

# ---- the command line ---------------------------------------------------

expect_exit 0 "mount --help" "$DINDFS" mount --help
expect_exit 0 "umount --help" "$DINDFS" umount --help
expect_exit 2 "mount without a mountpoint" "$DINDFS" mount --store "$STORE"
# (through mount_dindfs: should one of these mount after all, it is undone)
expect_exit 2 "a bad --tag-ttl" mount_dindfs "$WORK/mnt-bad" --store "$STORE" --tag-ttl soon
expect_exit 2 "a bad --upstream" mount_dindfs "$WORK/mnt-bad" --store "$STORE" --upstream nonsense
expect_exit 2 "a bad --max-size" mount_dindfs "$WORK/mnt-bad" --store "$STORE" --max-size lots
expect_exit 2 "an unknown option" mount_dindfs "$WORK/mnt-bad" --store "$STORE" --frobnicate
check "none of them mounted" not is_mounted "$WORK/mnt-bad"
on_exit "unmount_dindfs '$WORK/nowhere' ''"
expect_exit 1 "a mountpoint that does not exist" T "$DINDFS" mount --store "$STORE" "$WORK/nowhere"
expect_lines "$WORK/err" 1 "it says so in one line"
expect_exit 2 "umount without a mountpoint" "$DINDFS" umount
touch "$WORK/a-file"
expect_exit 1 "-f with a store that is a file" T "$DINDFS" mount -f --store "$WORK/a-file" "$WORK/mnt-bad"
expect_match "$WORK/err" "^dindfs: cannot open store '$WORK/a-file': Not a directory$" \
	"in the foreground too, the reason is said"
expect_lines "$WORK/err" 1 "in one line"

# ---- one mount, one registry as docker.io ---------------------------------

registry_start hub
push_test_image hub library/app v1 oci 3 300000 >/dev/null
app=$IMAGE_DIR app_digest=$IMAGE_DIGEST app_config=$IMAGE_CONFIG_DIGEST
app_layers=("${IMAGE_LAYERS[@]}")
# The same registry behind a slow proxy (4 MB/s for blobs), as another host: the
# 50 MB download below lasts 12 s, long enough to look at it on a busy machine.
fault_proxy_start slow "$hub_URL" --match '^GET /v2/.*/blobs/' --throttle 4000000

must_mount "$MNT" --store "$STORE" --upstream "docker.io=$hub_URL" \
	--upstream "$slow_HOSTPORT=$slow_URL" --negative-ttl 1
main_pid=$MOUNT_PID

fsop list "$MNT" >"$WORK/root"
for name in blobs registry ingest; do
	expect_match "$WORK/root" "^$name\$" "the root lists $name/"
done
expect_fsop_is OK ".dindfs/stats is there" stat "$MNT/.dindfs/stats"
check ".dindfs/stats is a JSON object of the 7 integer counters" stats_save "$MNT" "$WORK/s0"
check "no fetch in flight at rest" test "$(stat_in "$WORK/s0" fetches_in_flight)" = 0

# Manifests, by tag and by digest: the pushed bytes, with their xattrs.
tag_path=$(mnt_manifest "$MNT" docker.io library/app v1)
digest_path=$(mnt_manifest "$MNT" docker.io library/app "$app_digest")
check "the tag's manifest is byte-identical" T cmp -s "$tag_path" "$app/manifest.json"
expect_fsop_is "$app_digest" "user.dindfs.digest of the tag" getxattr "$tag_path" user.dindfs.digest
expect_fsop_is "$OCI_MANIFEST" "user.dindfs.media_type of the tag" getxattr "$tag_path" user.dindfs.media_type
check "its size is the manifest's" test "$(T stat -c %s "$tag_path")" = "$(stat -c %s "$app/manifest.json")"
check "the manifest by digest is byte-identical" T cmp -s "$digest_path" "$app/manifest.json"
expect_fsop_is "$app_digest" "user.dindfs.digest by digest" getxattr "$digest_path" user.dindfs.digest
expect_fsop_is "$OCI_MANIFEST" "user.dindfs.media_type by digest" getxattr "$digest_path" user.dindfs.media_type
expect_fsop 'getxattr:(ENODATA|ENOATTR)' "an xattr it does not have" getxattr "$tag_path" user.dindfs.nothing

# A blob: a miss that downloads, then hits that do not. (bytes_served is not
# checked on the hits: the page cache may answer them, rightly.)
layer=${app_layers[1]} layer_file=$app/layer-2.tar.gz
layer_size=$(stat -c %s "$layer_file")
layer_path=$(mnt_repo_blob "$MNT" docker.io library/app "$layer")
stats_save "$MNT" "$WORK/s1" || true
check "a layer read through registry/ is byte-identical" T cmp -s "$layer_path" "$layer_file"
check "its size is the layer's" test "$(T stat -c %s "$layer_path")" = "$layer_size"
check "the fetch is over" wait_until 10 in_flight_is 0
stats_save "$MNT" "$WORK/s2" || true
# grew FIELD NEW OLD: how much a counter grew between two stats_save files
# ("?" when either lacks it, which fails any test of the number).
grew() {
	local new old
	new=$(stat_in "$WORK/$2" "$1") old=$(stat_in "$WORK/$3" "$1")
	if [[ -n $new && -n $old ]]; then echo $((new - old)); else echo "?"; fi
}
check "stats: blob_misses grew ($(grew blob_misses s2 s1))" test "$(grew blob_misses s2 s1)" -ge 1
check "stats: upstream_bytes grew by the layer at least ($(grew upstream_bytes s2 s1) >= $layer_size)" \
	test "$(grew upstream_bytes s2 s1)" -ge "$layer_size"
check "stats: upstream_requests grew ($(grew upstream_requests s2 s1))" test "$(grew upstream_requests s2 s1)" -ge 1
check "stats: bytes_served grew by the layer at least ($(grew bytes_served s2 s1))" \
	test "$(grew bytes_served s2 s1)" -ge "$layer_size"
check "stats: store_bytes grew by the layer at least ($(grew store_bytes s2 s1))" \
	test "$(grew store_bytes s2 s1)" -ge "$layer_size"
check "the store holds the layer" cmp -s "$(store_blob "$STORE" "$layer")" "$layer_file"

check "a second read is byte-identical" T cmp -s "$layer_path" "$layer_file"
stats_save "$MNT" "$WORK/s3" || true
check "stats: blob_hits grew ($(grew blob_hits s3 s2))" test "$(grew blob_hits s3 s2)" -ge 1
check "stats: blob_misses did not ($(grew blob_misses s3 s2))" test "$(grew blob_misses s3 s2)" = 0
check "stats: upstream_bytes did not ($(grew upstream_bytes s3 s2))" test "$(grew upstream_bytes s3 s2)" = 0
check "the same through blobs/sha256/<hex>" T cmp -s "$(mnt_blob "$MNT" "$layer")" "$layer_file"
stats_save "$MNT" "$WORK/s4" || true
check "which asks nothing upstream ($(grew upstream_requests s4 s3) requests)" \
	test "$(grew upstream_requests s4 s3)" = 0
check "one GET of the layer upstream for all of it ($(blob_gets library/app "$layer"))" \
	test "$(blob_gets library/app "$layer")" = 1

for i in 0 2; do
	check "layer $((i + 1)) is byte-identical" \
		T cmp -s "$(mnt_repo_blob "$MNT" docker.io library/app "${app_layers[$i]}")" "$app/layer-$((i + 1)).tar.gz"
done
check "the config is byte-identical" \
	T cmp -s "$(mnt_repo_blob "$MNT" docker.io library/app "$app_config")" "$app/config.json"

fsop list "$MNT/blobs/sha256" >"$WORK/blobs"
for d in "${app_layers[@]}" "$app_config" "$app_digest"; do
	expect_match "$WORK/blobs" "^${d#sha256:}\$" "blobs/sha256 lists ${d:0:19}"
	check "blobs/sha256/${d:7:12} is byte-identical" T cmp -s "$(mnt_blob "$MNT" "$d")" "$(pushed_file "$app" "$d")"
done
check "every file under blobs/sha256 hashes to its name" blobs_verified "$MNT/blobs/sha256"

push_test_image hub library/other v1 oci 2 5000 >/dev/null
other_layer=${IMAGE_LAYERS[1]}
expect_fsop '(stat|open):ENOENT' "blobs/sha256 has no blob that was never fetched" \
	stat "$(mnt_blob "$MNT" "$other_layer")"
check "and does not fetch it" test "$(blob_gets library/other "$other_layer")" = 0

# Nothing under blobs/ or registry/docker.io can be written.
expect_fsop_is open:EACCES "a blob cannot be opened for writing" writeopen "$(mnt_blob "$MNT" "$layer")"
expect_fsop_is open:EACCES "nor through registry/" writeopen "$layer_path"
expect_fsop_is open:EACCES "no file can be created under blobs/sha256" \
	write "$MNT/blobs/sha256/${other_layer#sha256:}" "$IMAGE_DIR/layer-2.tar.gz"
expect_fsop_is open:EACCES "no manifest can be written under registry/docker.io" \
	write "$(mnt_manifest "$MNT" docker.io library/app v9)" "$app/manifest.json"
check "nothing was PUT upstream" test "$(registry_log_count hub PUT '/v2/library/app/manifests/v9')" = 0
check "the blob is unchanged" T cmp -s "$(mnt_blob "$MNT" "$layer")" "$layer_file"

# ---- eight readers of one uncached 50 MB blob ----------------------------

push_test_image hub library/big v1 oci 2 $((50 * 1024 * 1024)) >/dev/null
big=${IMAGE_LAYERS[1]} big_file=$IMAGE_DIR/layer-2.tar.gz
big_path=$(mnt_repo_blob "$MNT" "$slow_HOSTPORT" library/big "$big")
readers=()
for i in 1 2 3 4 5 6 7 8; do
	(T cat "$big_path" | sha256sum | cut -c1-64 >"$WORK/reader-$i") 2>"$WORK/reader-$i.err" &
	readers+=($!)
done
check "the download starts" wait_until 20 in_flight_is 1
T head -c 1048576 "$big_path" >"$WORK/big-head" || true
check "a ninth reader gets the first MiB while the download runs" cmp -s "$WORK/big-head" <(head -c 1048576 "$big_file")
check "while one fetch is in flight for all of them" in_flight_is 1
expect_fsop '(stat|open):ENOENT' "and the blob is not under blobs/ before it is whole and verified" \
	stat "$(mnt_blob "$MNT" "$big")"
for i in 1 2 3 4 5 6 7 8; do
	wait "${readers[$((i - 1))]}" || true
	check "reader $i got the right bytes" test "$(cat "$WORK/reader-$i")" = "${big#sha256:}"
done
check "the registry saw one GET of it ($(blob_gets library/big "$big"))" test "$(blob_gets library/big "$big")" = 1
check "and so did the proxy" test "$(fault_proxy_log_count slow "^proxy GET /v2/library/big/blobs/$big ")" = 1
check "the fetch is over" wait_until 10 in_flight_is 0
check "now it is under blobs/" T cmp -s "$(mnt_blob "$MNT" "$big")" "$big_file"

# ---- repository links ---------------------------------------------------

# Distribution links blobs per repository: a layer pushed to a only is
# unknown to b (HEAD 404) until it is pushed to b as well.
head_code() { curl -s --noproxy '*' -I -o /dev/null -w '%{http_code}' "$hub_URL/v2/$1/blobs/$2"; }
push_test_image hub library/a v1 oci 2 5000 >/dev/null
a_layer=${IMAGE_LAYERS[1]} a_file=$IMAGE_DIR/layer-2.tar.gz
push_test_image hub library/b v1 oci 2 5000 >/dev/null
check "(upstream, b does not have a's layer)" test "$(head_code library/b "$a_layer")" = 404
b_asked() { registry_log_count hub '(HEAD|GET)' "/v2/library/b/blobs/$a_layer"; }
b_before=$(b_asked)
a_path=$(mnt_repo_blob "$MNT" docker.io library/a "$a_layer")
b_path=$(mnt_repo_blob "$MNT" docker.io library/b "$a_layer")
check "a's layer reads through a" T cmp -s "$a_path" "$a_file"
expect_fsop '(stat|open):ENOENT' "and not through b, which upstream says lacks it" read "$b_path"
check "upstream was asked about b ($(($(b_asked) - b_before)) requests)" test "$(b_asked)" -gt "$b_before"
push_blob hub library/b "$a_file" >/dev/null
check "(upstream, now b has it)" test "$(head_code library/b "$a_layer")" = 200
# (a negative answer is trusted for --negative-ttl, 1 s here; the kernel may
# cache a negative lookup for a moment too)
check "once pushed to b, it reads through b" wait_until 5 T cmp -s "$b_path" "$a_file"
check "confirmed upstream without downloading it again" \
	test "$(registry_log_count hub GET "/v2/library/b/blobs/$a_layer" 200)" = 0
check "one GET in all" test "$(blob_gets library/a "$a_layer")" = 1

# ---- ingest/ ----------------------------------------------------------------

head -c 300000 /dev/urandom >"$WORK/in1"
head -c 200000 /dev/urandom >"$WORK/in2"
head -c 100000 /dev/urandom >"$WORK/in3"
d1=sha256:$(_sha256 "$WORK/in1") d2=sha256:$(_sha256 "$WORK/in2")
d3=sha256:$(cat "$WORK/in3" <(echo other) | sha256sum | cut -c1-64) # not in3's digest
expect_exit 0 "dd into ingest/sha256:<hex>" T dd if="$WORK/in1" of="$MNT/ingest/$d1" bs=64k status=none
check "it is committed: blobs/sha256/<hex> has its bytes" T cmp -s "$(mnt_blob "$MNT" "$d1")" "$WORK/in1"
check "in the store as well" cmp -s "$(store_blob "$STORE" "$d1")" "$WORK/in1"
expect_exit 0 "cp into ingest/sha256:<hex>" T cp "$WORK/in2" "$MNT/ingest/$d2"
check "committed too" T cmp -s "$(mnt_blob "$MNT" "$d2")" "$WORK/in2"
# The way a shell writes a file: bash opens it, dup2()s it to 1 and closes
# the first descriptor, so the daemon sees a flush before any byte.
head -c 150000 /dev/urandom >"$WORK/in4"
d4=sha256:$(_sha256 "$WORK/in4")
expect_exit 0 "a shell redirection into ingest/ (cat >)" T bash -c 'cat "$1" >"$2"' _ "$WORK/in4" "$MNT/ingest/$d4"
check "committed too" T cmp -s "$(mnt_blob "$MNT" "$d4")" "$WORK/in4"
expect_fsop_is OK "ingesting a blob the store has already succeeds" write "$MNT/ingest/$d1" "$WORK/in1"
check "and leaves it whole" T cmp -s "$(mnt_blob "$MNT" "$d1")" "$WORK/in1"

expect_fsop_is close:EIO "wrong bytes for the digest: close fails with EIO" write "$MNT/ingest/$d3" "$WORK/in3"
expect_fsop '(stat|open):ENOENT' "nothing is committed under blobs/" stat "$(mnt_blob "$MNT" "$d3")"
check "nor in the store" test ! -e "$(store_blob "$STORE" "$d3")"
check "and no temp file stays" wait_until 5 store_tmp_empty "$STORE"
expect_exit 1 "cp of wrong bytes fails" T cp "$WORK/in3" "$MNT/ingest/$d3"
expect_match "$WORK/err" "Input/output error" "with EIO"
check "still nothing committed" not test -e "$(store_blob "$STORE" "$d3")"
check "every file under blobs/sha256 hashes to its name" blobs_verified "$MNT/blobs/sha256"

# ---- registry/local/: manifests written by a level ------------------------

# An image made here (one layer, a config), its blobs ingested, then its
# manifest written to registry/local/.
local_image() { # DIR LABEL
	rm -rf "$1" && mkdir -p "$1"
	_random_layer "$1/layer-1.tar.gz" 20000 local.bin
	_write_image "$1" oci amd64 "" "$2"
}
ingest_path() { echo "$MNT/ingest/sha256:$(_sha256 "$1")"; } # FILE
local_image "$WORK/local" local/myapp:v1
expect_fsop_is OK "ingest the local image's layer" \
	write "$(ingest_path "$WORK/local/layer-1.tar.gz")" "$WORK/local/layer-1.tar.gz"
expect_fsop_is OK "and its config" write "$(ingest_path "$WORK/local/config.json")" "$WORK/local/config.json"
local_digest=sha256:$(_sha256 "$WORK/local/manifest.json")
local_path=$(mnt_manifest "$MNT" local myapp v1)
expect_fsop_is OK "a manifest whose blobs are all in the store is accepted" \
	write "$local_path" "$WORK/local/manifest.json"
check "it reads back byte-identical" T cmp -s "$local_path" "$WORK/local/manifest.json"
expect_fsop_is "$local_digest" "user.dindfs.digest" getxattr "$local_path" user.dindfs.digest
expect_fsop_is "$OCI_MANIFEST" "user.dindfs.media_type" getxattr "$local_path" user.dindfs.media_type
check "by digest too" T cmp -s "$(mnt_manifest "$MNT" local myapp "$local_digest")" "$WORK/local/manifest.json"
expect_exit 0 "a shell redirection into registry/local/ (cat >)" \
	T bash -c 'cat "$1" >"$2"' _ "$WORK/local/manifest.json" "$(mnt_manifest "$MNT" local myapp v1-shell)"
check "it reads back byte-identical" \
	T cmp -s "$(mnt_manifest "$MNT" local myapp v1-shell)" "$WORK/local/manifest.json"
expect_fsop_is OK "a nested repository works" \
	write "$(mnt_manifest "$MNT" local team/tools/myapp v1)" "$WORK/local/manifest.json"
check "the manifest is a blob now" T cmp -s "$(mnt_blob "$MNT" "$local_digest")" "$WORK/local/manifest.json"

local_image "$WORK/local2" local/missing:v1
expect_fsop_is OK "(ingest only the config of a second image)" \
	write "$(ingest_path "$WORK/local2/config.json")" "$WORK/local2/config.json"
expect_fsop_is close:EINVAL "a manifest whose layer is not in the store: close fails" \
	write "$(mnt_manifest "$MNT" local missing v1)" "$WORK/local2/manifest.json"
expect_fsop '(stat|open):(ENOENT|ESTALE)' "and nothing is recorded" read "$(mnt_manifest "$MNT" local missing v1)"
expect_fsop_is close:EINVAL "over an existing tag: close fails" write "$local_path" "$WORK/local2/manifest.json"
check "and the tag keeps its manifest" T cmp -s "$local_path" "$WORK/local/manifest.json"
expect_fsop_is "$local_digest" "and its digest" getxattr "$local_path" user.dindfs.digest

printf '{"schemaVersion": 2, "mediaType": "%s", "config": ' "$OCI_MANIFEST" >"$WORK/junk.json"
expect_fsop_is close:EINVAL "malformed JSON: close fails" write "$(mnt_manifest "$MNT" local junk v1)" "$WORK/junk.json"
expect_fsop '(stat|open):(ENOENT|ESTALE)' "and nothing is recorded" read "$(mnt_manifest "$MNT" local junk v1)"
echo '{"hello": "world"}' >"$WORK/notmanifest.json"
expect_fsop_is close:EINVAL "JSON that is no manifest: close fails" \
	write "$(mnt_manifest "$MNT" local junk v2)" "$WORK/notmanifest.json"
check "the daemon is still up" pid_alive "$main_pid"

# ---- dindfs pull through the mount --------------------------------------

push_test_image hub library/pulled v1 oci 3 100000 >/dev/null
expect_exit 0 "dindfs pull --root MNT" T "$DINDFS" pull --root "$MNT" pulled:v1
expect_match "$WORK/out" "^Digest: $IMAGE_DIGEST\$" "it prints the manifest digest"
i=0
for d in "${IMAGE_LAYERS[@]}"; do
	i=$((i + 1))
	check "layer $i is in the store, byte-identical" cmp -s "$(store_blob "$STORE" "$d")" "$IMAGE_DIR/layer-$i.tar.gz"
done
check "the config too" cmp -s "$(store_blob "$STORE" "$IMAGE_CONFIG_DIGEST")" "$IMAGE_DIR/config.json"
check "the manifest too" cmp -s "$(store_blob "$STORE" "$IMAGE_DIGEST")" "$IMAGE_DIR/manifest.json"
expect_exit 0 "dindfs ls --store" "$DINDFS" ls --store "$STORE"
expect_match "$WORK/out" "^docker.io/library/pulled:v1 +sha256:${IMAGE_DIGEST:7:12} " "ls shows the pulled image"
check "each of its layers was downloaded once" \
	test "$(registry_log_count hub GET '/v2/library/pulled/blobs/.*' 200)" = 3
expect_exit 0 "pull again with DINDFS_ROOT" T env DINDFS_ROOT="$MNT" "$DINDFS" pull pulled:v1
check "no layer was downloaded again" test "$(registry_log_count hub GET '/v2/library/pulled/blobs/.*' 200)" = 3

# ---- the tag TTL --------------------------------------------------------

# What the TTL decides (no request within it, a HEAD after it, a GET only
# when the digest moved, the cached tag when upstream is down) is pinned on
# an injected clock by tests/check_resolve.c; here the mount shows it end to
# end with a 1 s TTL.
TTL=1
push_test_image hub library/ttl v2 >/dev/null # (only so that its blobs are upstream)
new=$(image_dir hub library/ttl v2) new_digest=$IMAGE_DIGEST new_config=$IMAGE_CONFIG_DIGEST
push_test_image hub library/ttl v1 >/dev/null
old=$(image_dir hub library/ttl v1) old_digest=$IMAGE_DIGEST
must_mount "$WORK/mnt-ttl" --store "$WORK/store-ttl" --upstream "docker.io=$hub_URL" --tag-ttl "$TTL"
ttl_pid=$MOUNT_PID
ttl_path=$(mnt_manifest "$WORK/mnt-ttl" docker.io library/ttl v1)
expect_fsop_is "$old_digest" "the tag resolves" getxattr "$ttl_path" user.dindfs.digest
check "with its bytes" T cmp -s "$ttl_path" "$old/manifest.json"
push_manifest hub library/ttl v1 "$new/manifest.json" "$OCI_MANIFEST" >/dev/null # the tag moves
sleep $((TTL + 1))
expect_fsop_is "$new_digest" "after the TTL the tag has the new digest" getxattr "$ttl_path" user.dindfs.digest
check "and the new bytes" T cmp -s "$ttl_path" "$new/manifest.json"
check "(read its config too, through registry/)" \
	T cmp -s "$(mnt_repo_blob "$WORK/mnt-ttl" docker.io library/ttl "$new_config")" "$new/config.json"

registry_stop hub
sleep $((TTL + 1))
expect_fsop_is "$new_digest" "upstream down, past the TTL: the cached tag is served" \
	getxattr "$ttl_path" user.dindfs.digest
check "with its bytes" T cmp -s "$ttl_path" "$new/manifest.json"
check "and a cached blob still reads through registry/" \
	T cmp -s "$(mnt_repo_blob "$WORK/mnt-ttl" docker.io library/ttl "$new_config")" "$new/config.json"
expect_fsop '(stat|open):EIO' "a tag never cached, upstream down: EIO" \
	read "$(mnt_manifest "$WORK/mnt-ttl" docker.io library/ttl never)"
check "the daemon is still up" pid_alive "$ttl_pid"
registry_restart hub
expect_exit 0 "dindfs umount of the TTL mount" T "$DINDFS" umount "$WORK/mnt-ttl"

# ---- --max-size: GC keeps the store under the limit ----------------------

push_test_image hub library/gc-old v1 oci 2 1500000 >/dev/null
old_layer=${IMAGE_LAYERS[1]}
push_test_image hub library/gc-new v1 oci 2 1500000 >/dev/null
new_layers=("${IMAGE_LAYERS[@]}")
gc_store=$WORK/store-gc gc_mnt=$WORK/mnt-gc
# room for one image (busybox ~1 MB + 1.5 MB + config + manifest), not two
must_mount "$gc_mnt" --store "$gc_store" --upstream "docker.io=$hub_URL" --max-size 3M
expect_exit 0 "pull the first image through a mount with --max-size" \
	T "$DINDFS" pull --root "$gc_mnt" gc-old:v1
expect_exit 0 "pull a second one that does not fit beside it" \
	T "$DINDFS" pull --root "$gc_mnt" gc-new:v1
store_bytes() { find "$1/blobs" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
within() { (($(store_bytes "$1") <= $2)); }
# GC runs on a thread of its own: the pull does not wait for it
check "the store is within the limit within 10 s" wait_until 10 within "$gc_store" $((3 << 20))
check "the older image went" test ! -e "$(store_blob "$gc_store" "$old_layer")"
check "the newer image stays whole" test -f "$(store_blob "$gc_store" "${new_layers[0]}")" \
	-a -f "$(store_blob "$gc_store" "${new_layers[1]}")"
expect_exit 0 "dindfs umount of the GC mount" T "$DINDFS" umount "$gc_mnt"
expect_exit 0 "fsck of the GC store" "$DINDFS" fsck --store "$gc_store"

# ---- -f, SIGTERM, dindfs umount -----------------------------------------

fg_mnt=$WORK/mnt-fg
mkdir -p "$fg_mnt"
on_exit "unmount_dindfs '$fg_mnt' '$WORK/fg.pid'"
"$DINDFS" mount -f --store "$WORK/store-fg" --pidfile "$WORK/fg.pid" "$fg_mnt" >"$WORK/fg.out" 2>&1 &
fg=$!
check "with -f it mounts, in the foreground" wait_until 20 is_mounted "$fg_mnt"
check "it answers" wait_until 10 mount_answers "$fg_mnt"
check "the --pidfile names it" wait_until 5 file_is "$WORK/fg.pid" "$fg"
kill -TERM "$fg"
check "SIGTERM ends it" wait_until 20 pid_gone "$fg"
fg_status=0
pid_alive "$fg" || wait "$fg" || fg_status=$?
check "it exits, and not by a crash (exit status $fg_status)" test "$fg_status" -lt 128 -o "$fg_status" = 143
check "and the mount is gone" not is_mounted "$fg_mnt"

expect_exit 0 "dindfs umount" T "$DINDFS" umount "$MNT"
check "the mount is gone from /proc/mounts" not is_mounted "$MNT"
check "the daemon has exited when umount returns" pid_gone "$main_pid"
expect_exit 1 "dindfs umount of a directory that is not mounted" T "$DINDFS" umount "$MNT"
expect_lines "$WORK/err" 1 "it says so in one line"
expect_exit 0 "fsck of the store afterwards" "$DINDFS" fsck --store "$STORE"
check "no temp file is left in the store" store_tmp_empty "$STORE"

finish
