#!/usr/bin/env bash
# dindfs pull against a real registry (Debian's docker-registry): what a
# user checks after a pull — the exit code, the digest printed, the bytes in
# the store — and what the registry's access log says it was asked.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"

STORE=$WORK/store
own_docker_config # no credentials unless a test writes them

pull() { "$DINDFS" pull --store "$STORE" "$@"; }
blob_file() { echo "$STORE/blobs/sha256/${1:7:2}/${1#sha256:}"; }
tmp_is_empty() { [[ -z $(ls -A "$STORE/tmp") ]]; }

# expect_blob DIGEST FILE DESCRIPTION: the store holds exactly FILE's bytes under DIGEST.
expect_blob() { check "$3" cmp -s "$(blob_file "$1")" "$2"; }

docker_config_auth() { # HOST USER PASSWORD: write a config.json with inline auth
	printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$1" "$(printf '%s:%s' "$2" "$3" | base64 -w0)" \
		>"$DOCKER_CONFIG/config.json"
}

# ---- a plain registry as docker.io --------------------------------------

registry_start hub
push_test_image hub library/app v1 oci 3 200000 >/dev/null
app=$IMAGE_DIR app_digest=$IMAGE_DIGEST app_config=$IMAGE_CONFIG_DIGEST
app_layers=("${IMAGE_LAYERS[@]}")
UP=(--upstream "docker.io=$hub_URL")

expect_exit 0 "pull of a three-layer OCI image" pull "${UP[@]}" app:v1
expect_match "$WORK/out" "^Digest: $app_digest$" "pull prints the manifest digest"
expect_match "$WORK/out" "^docker.io/library/app:v1: Pulling from library/app" \
	"a short name is docker.io/library"
for i in 0 1 2; do
	expect_blob "${app_layers[$i]}" "$app/layer-$((i + 1)).tar.gz" "layer $((i + 1)) is byte-identical"
done
expect_blob "$app_config" "$app/config.json" "the config is byte-identical"
expect_blob "$app_digest" "$app/manifest.json" "the manifest is byte-identical"
check "no temp file is left" tmp_is_empty
"$DINDFS" ls --store "$STORE" >"$WORK/ls"
expect_match "$WORK/ls" "^docker.io/library/app:v1 +sha256:${app_digest:7:12} " "ls shows the image"
expect_exit 0 "fsck agrees" "$DINDFS" fsck --store "$STORE"

blob_gets_before=$(registry_log_count hub GET '/v2/library/app/blobs/.*')
manifest_gets_before=$(registry_log_count hub GET '/v2/library/app/manifests/.*')
expect_exit 0 "a second pull of the unchanged tag" pull "${UP[@]}" app:v1
expect_match "$WORK/out" "^Status: Image is up to date" "it says the image is up to date"
check "the second pull GETs no blob" \
	test "$(registry_log_count hub GET '/v2/library/app/blobs/.*')" = "$blob_gets_before"
check "and no manifest" \
	test "$(registry_log_count hub GET '/v2/library/app/manifests/.*')" = "$manifest_gets_before"
check "it costs one HEAD" test "$(registry_log_count hub HEAD '/v2/library/app/manifests/v1')" = 1

# The tag moves upstream: the next pull notices and fetches the new image.
push_test_image hub library/app v1 oci 2 1000 >/dev/null
expect_exit 0 "a pull after the tag moved" pull "${UP[@]}" docker.io/library/app:v1
expect_match "$WORK/out" "^Digest: $IMAGE_DIGEST$" "the new digest"
expect_blob "$IMAGE_DIGEST" "$IMAGE_DIR/manifest.json" "the new manifest is stored"

expect_exit 0 "pull by digest" pull "${UP[@]}" "app@$app_digest"
expect_match "$WORK/out" "^Digest: $app_digest$" "the digest asked for"

push_test_image hub library/dock v1 docker 2 5000 >/dev/null
expect_exit 0 "pull of a Docker schema2 image" pull "${UP[@]}" dock:v1
expect_blob "${IMAGE_LAYERS[1]}" "$IMAGE_DIR/layer-2.tar.gz" "its layer is byte-identical"

# A two-platform index: this machine's platform by default, another on request.
push_test_index hub library/multi v1 oci >/dev/null
expect_exit 0 "pull of a two-platform index" pull "${UP[@]}" multi:v1
expect_match "$WORK/out" "^Digest: $INDEX_DIGEST$" "the index digest is printed"
amd64_layer=$(sed -n 1p "$INDEX_DIR/amd64/layers") arm64_layer=$(sed -n 1p "$INDEX_DIR/arm64/layers")
check "the amd64 image came" test -f "$(blob_file "$INDEX_AMD64_DIGEST")" -a -f "$(blob_file "$amd64_layer")"
check "the arm64 image did not" test ! -e "$(blob_file "$arm64_layer")"
expect_exit 0 "pull --platform linux/arm64/v8" pull "${UP[@]}" --platform linux/arm64/v8 multi:v1
check "the arm64 layer came" test -f "$(blob_file "$arm64_layer")"
expect_exit 1 "a platform the index lacks" pull "${UP[@]}" --platform linux/s390x multi:v1
expect_match "$WORK/err" "no image for platform linux/s390x" "the message names the platform"

# ---- bad input -----------------------------------------------------------

expect_exit 1 "an image that does not exist" pull "${UP[@]}" nope:1
expect_match "$WORK/err" "^dindfs: 'docker.io/library/nope:1': not found upstream$" \
	"not found upstream, in one line"
expect_lines "$WORK/err" 1 "one line on stderr"
expect_exit 1 "an unreachable upstream" pull --upstream "docker.io=http://127.0.0.1:1" app:v1
expect_match "$WORK/err" "^dindfs: docker.io: .*127.0.0.1.*(refused|connect)" \
	"the message names the registry and the transport error"
expect_exit 1 "an invalid reference" pull "${UP[@]}" 'Upper/Case:1'
expect_match "$WORK/err" "invalid reference 'Upper/Case:1': repository name must be lowercase" \
	"the reason is given"
expect_exit 2 "no reference" pull "${UP[@]}"
expect_exit 2 "a bad --upstream" pull --upstream nonsense app:v1
expect_exit 2 "a bad --platform" pull "${UP[@]}" --platform 'linux/amd64/v2/x' app:v1
expect_exit 0 "pull --help" pull --help

# ---- authentication ------------------------------------------------------

registry_start basic htpasswd
push_test_image basic app v1 oci 2 4000 >/dev/null
B=(--upstream "$basic_HOSTPORT=$basic_URL")
rm -f "$DOCKER_CONFIG/config.json"
expect_exit 1 "Basic auth without credentials fails" pull "${B[@]}" "$basic_HOSTPORT/app:v1"
expect_match "$WORK/err" "authentication required, and no credentials" "it says why"
docker_config_auth "$basic_HOSTPORT" "$basic_USER" wrong-password
expect_exit 1 "Basic auth with a wrong password fails" pull "${B[@]}" "$basic_HOSTPORT/app:v1"
docker_config_auth "$basic_HOSTPORT" "$basic_USER" "$basic_PASSWORD"
expect_exit 0 "Basic auth with credentials from config.json" pull "${B[@]}" "$basic_HOSTPORT/app:v1"
expect_blob "$IMAGE_DIGEST" "$IMAGE_DIR/manifest.json" "the manifest came through Basic auth"

registry_start tok token
push_test_image tok app v1 docker 2 4000 >/dev/null
T=(--upstream "$tok_HOSTPORT=$tok_URL")
rm -f "$DOCKER_CONFIG/config.json"
# the realm is plain http on loopback: only an explicit --allow-origin lets it be asked
tokens_before=$(grep -c . "$tok_TOKEN_LOG")
expect_exit 1 "a realm on plain http and loopback is refused" pull "${T[@]}" "$tok_HOSTPORT/app:v1"
expect_match "$WORK/err" "refused to ask the token server http://127.0.0.1:[0-9]+ \(127.0.0.1\)" \
	"it says which and why"
check "and it was not asked" test "$(grep -c . "$tok_TOKEN_LOG")" = "$tokens_before"
T+=(--allow-origin "${tok_TOKEN_URL%/token}")
expect_exit 1 "Bearer auth without credentials fails" pull "${T[@]}" "$tok_HOSTPORT/app:v1"
expect_match "$WORK/err" "authentication required, and no credentials" "it says why"
docker_config_auth "http://$tok_HOSTPORT" "$tok_USER" "$tok_PASSWORD"
tokens_before=$(grep -c . "$tok_TOKEN_LOG")
expect_exit 0 "Bearer auth with credentials from config.json" pull "${T[@]}" "$tok_HOSTPORT/app:v1"
expect_blob "${IMAGE_LAYERS[1]}" "$IMAGE_DIR/layer-2.tar.gz" "the layer came through Bearer auth"
check "one token served the whole pull" test "$(grep -c . "$tok_TOKEN_LOG")" = $((tokens_before + 1))
expect_match "$tok_TOKEN_LOG" 'user=tester auth=yes status=200 scope=repository:app:pull$' \
	"a pull-only token, asked for with the credentials"

# ---- faults ---------------------------------------------------------------

registry_start src
push_test_image src app v1 oci 2 3000000 >/dev/null
big=${IMAGE_LAYERS[1]} big_file=$IMAGE_DIR/layer-2.tar.gz

fault_proxy_start cut "$src_URL" --match "^GET /v2/.*/blobs/$big" --cut-after 100000
rm -rf "$STORE"
expect_exit 0 "a connection cut mid-blob is resumed" pull --upstream "x.test=$cut_URL" x.test/app:v1
expect_blob "$big" "$big_file" "the resumed blob is byte-identical"
check "the resume asked for a Range" test "$(fault_proxy_log_count cut "GET /v2/app/blobs/$big range=bytes=[1-9]")" -ge 1

fault_proxy_start bad "$src_URL" --match "^GET /v2/.*/blobs/$big" --corrupt
rm -rf "$STORE"
expect_exit 1 "wrong bytes for a digest fail the pull" pull --upstream "x.test=$bad_URL" x.test/app:v1
expect_match "$WORK/err" "sha256:${big#sha256:} does not match its digest" "the message names the blob"
check "nothing of it is committed" test ! -e "$(blob_file "$big")"
check "and no temp file stays" tmp_is_empty

fault_proxy_start badman "$src_URL" --match '^GET /v2/.*/manifests/' --corrupt
rm -rf "$STORE"
expect_exit 1 "a corrupted manifest is refused" pull --upstream "x.test=$badman_URL" x.test/app:v1
expect_match "$WORK/err" "does not match" "as not matching its digest"
check "no blob is stored" test -z "$(find "$STORE/blobs" -type f)"

fault_proxy_start busy "$src_URL" --match '/manifests/' --status-then-pass 429:1:1
rm -rf "$STORE"
start=$(date +%s.%N)
expect_exit 0 "a 429 then a 200" pull --upstream "x.test=$busy_URL" x.test/app:v1
waited=$(echo "$(date +%s.%N) - $start" | bc -l)
check "the pull waited for Retry-After (${waited}s)" test "$(echo "$waited >= 1" | bc -l)" = 1
check "it asked again after the 429" test "$(fault_proxy_log_count busy 'GET /v2/app/manifests/v1 .*status=200')" -ge 1

registry_start private htpasswd
push_test_image private app v1 oci 2 20000 >/dev/null
fault_proxy_start redir "$private_URL" --redirect-blobs
docker_config_auth r.test "$private_USER" "$private_PASSWORD"
rm -rf "$STORE"
expect_exit 1 "a redirect to plain http on loopback is refused" pull --upstream "r.test=$redir_URL" r.test/app:v1
expect_match "$WORK/err" "refused to follow a redirect to http://localhost:$redir_REDIRECT_PORT" "it says where"
check "and it was not followed" test "$(fault_proxy_log_count redir '^redirect GET ')" = 0
rm -rf "$STORE"
expect_exit 0 "blobs redirected to another host" pull --upstream "r.test=$redir_URL" \
	--allow-origin "http://localhost:$redir_REDIRECT_PORT" r.test/app:v1
expect_blob "${IMAGE_LAYERS[1]}" "$IMAGE_DIR/layer-2.tar.gz" "the redirected blob is byte-identical"
check "the redirected requests carried no credentials" \
	test "$(fault_proxy_log_count redir '^redirect GET .* auth=yes')" = 0
check "there were redirected requests" test "$(fault_proxy_log_count redir '^redirect GET ')" -ge 1

# ---- the terminal display ------------------------------------------------

rm -rf "$STORE"
script -qec "$DINDFS pull --store $STORE ${UP[*]} app:v1" /dev/null >"$WORK/tty" 2>&1 || true
expect_match "$WORK/tty" $'\e\\[[0-9]+A' "on a terminal, lines are redrawn in place"
expect_match "$WORK/tty" "Download complete" "each layer ends complete"

finish
