#!/usr/bin/env bash
# The test fixtures themselves, proved against real clients (curl, skopeo)
# and not against dindfs: the registries of tests/registry.sh (plain,
# htpasswd, token), the images it pushes, the token server and each mode
# of the fault proxy. The registry-client tests rely on all of this.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"

export REGISTRY_AUTH_FILE=$WORK/auth.json # no credentials from ~ for skopeo

c() { curl -sS --noproxy '*' "$@"; }

skopeo_inspect() { skopeo inspect --tls-verify=false "$@"; }
skopeo_copy() { skopeo copy -q --src-tls-verify=false "$@"; }
quiet() { "$@" >/dev/null; }
json_field() { sed -n "s/^    \"$1\": \"\(.*\)\",*$/\1/p"; } # top-level field of skopeo's JSON

# ---- plain registry, images in both formats ------------------------------

registry_start up
check "the registry answers /v2/" test "$(c -o /dev/null -w '%{http_code}' "$up_URL/v2/")" = 200
expect_eq "$up_URL" "http://$up_HOSTPORT" "up_URL is http://up_HOSTPORT"

push_test_image up app v1 oci 3 100000 >/dev/null
expect_eq "${#IMAGE_LAYERS[@]}" 3 "an image with 3 layers"
skopeo_inspect "docker://$up_HOSTPORT/app:v1" >"$WORK/inspect"
expect_eq "$(json_field Digest <"$WORK/inspect")" "$IMAGE_DIGEST" "skopeo sees the manifest digest"
expect_eq "$(json_field Architecture <"$WORK/inspect")/$(json_field Os <"$WORK/inspect")" amd64/linux \
	"an amd64/linux image"
expect_match "$WORK/inspect" "\"${IMAGE_LAYERS[2]}\"" "skopeo lists the layers"
check "skopeo copies the image (digests verified)" skopeo_copy "docker://$up_HOSTPORT/app:v1" "dir:$WORK/copy"
check "the copied layer is the pushed file" cmp -s "$WORK/copy/${IMAGE_LAYERS[2]#sha256:}" "$IMAGE_DIR/layer-3.tar.gz"
check "the copied config is the pushed one" cmp -s "$WORK/copy/${IMAGE_CONFIG_DIGEST#sha256:}" "$IMAGE_DIR/config.json"
check "the image dir keeps the diff_ids" test "$(wc -l <"$IMAGE_DIR/diff_ids")" = 3
check "diff_id is the uncompressed tar's digest" test \
	"$(sed -n 2p "$IMAGE_DIR/diff_ids")" = "$(layer_diff_id "$IMAGE_DIR/layer-2.tar.gz")"
tar -xzf "$IMAGE_DIR/layer-1.tar.gz" -C "$WORK" ./bin/busybox ./bin/sh
check "layer 1 holds a runnable busybox and /bin/sh" test "$("$WORK/bin/busybox" echo hi)" = hi -a -L "$WORK/bin/sh"
oci_first=$IMAGE_DIGEST

expect_http 200 "GET of an OCI manifest" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"$up_URL/v2/app/manifests/v1"
expect_match "$WORK/headers" '^Content-Type: application/vnd.oci.image.manifest.v1\+json' "its media type"
expect_match "$WORK/headers" "^Docker-Content-Digest: $IMAGE_DIGEST" "and its digest"

push_test_image up app v2 docker 2 50000000 >/dev/null
skopeo_inspect "docker://$up_HOSTPORT/app:v2" >"$WORK/inspect"
expect_eq "$(json_field Digest <"$WORK/inspect")" "$IMAGE_DIGEST" "a docker schema2 image with a 50 MB layer"
check "the big layer is 50 MB" test "$(stat -c %s "$IMAGE_DIR/layer-2.tar.gz")" -gt 50000000
expect_http 200 "GET of a docker manifest" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	"$up_URL/v2/app/manifests/v2"
expect_match "$WORK/headers" '^Content-Type: application/vnd.docker.distribution.manifest.v2\+json' "its media type"
expect_match "$WORK/body" '"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip"' "docker layer media type"
check "the busybox layer is shared between images" \
	test "$(sed -n 1p "$(image_dir up app v1)/layers")" = "${IMAGE_LAYERS[0]}"
check "pushing the same tag again makes a new image" \
	test "$(push_test_image up app v1 oci 1)" != "$oci_first"

# The access log, as registry_log_count reads it.
OCI_ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'
c -o /dev/null -I -H "$OCI_ACCEPT" "$up_URL/v2/app/manifests/v1"
c -o /dev/null -I "$up_URL/v2/app/manifests/v1" # 404: an OCI manifest needs that Accept
c -o /dev/null "$up_URL/v2/app/blobs/${IMAGE_LAYERS[0]}"
c -o /dev/null -I "$up_URL/v2/app/manifests/nope"
expect_match "$up_LOG" '^127\.0\.0\.1 - - \[[^]]+\] "HEAD /v2/app/manifests/v1 HTTP/1\.1" 200 ' \
	"the access log has combined-format lines"
expect_eq "$(registry_log_count up HEAD /v2/app/manifests/v1)" 2 "registry_log_count counts HEADs"
expect_eq "$(registry_log_count up HEAD '/v2/app/manifests/.*' 404)" 2 "and filters on the status"
expect_eq "$(registry_log_count up GET "/v2/app/blobs/${IMAGE_LAYERS[0]}" 200)" 2 \
	"skopeo's and curl's GETs of the busybox layer"
expect_eq "$(registry_log_count up PUT '/v2/app/blobs/uploads/.*')" 9 "one PUT per pushed blob"

# Stopped, the registry is unreachable; restarted, same port, same images.
registry_stop up
expect_http 000 "a stopped registry does not answer" "$up_URL/v2/"
registry_restart up
expect_http 200 "a restarted registry keeps its images" -I "$up_URL/v2/app/manifests/v2"

# A registry that sends relative Location headers (push_blob must cope).
REGISTRY_HTTP_RELATIVEURLS=true registry_start rel
expect_http 202 "rel answers uploads" -X POST "$rel_URL/v2/x/blobs/uploads/"
expect_match "$WORK/headers" '^Location: /v2/x/blobs/uploads/' "with a relative Location"
push_test_image rel app v1 >/dev/null
check "push with a relative Location" quiet skopeo_inspect "docker://$rel_HOSTPORT/app:v1"

# ---- htpasswd --------------------------------------------------------------

registry_start basic htpasswd
expect_http 401 "htpasswd: /v2/ wants credentials" "$basic_URL/v2/"
expect_match "$WORK/headers" '^Www-Authenticate: Basic realm="dindfs-test"' "a Basic challenge"
expect_http 401 "htpasswd: wrong password" -u "$basic_USER:wrong" "$basic_URL/v2/"
expect_http 200 "htpasswd: right password" -u "$basic_USER:$basic_PASSWORD" "$basic_URL/v2/"
push_test_image basic app v1 >/dev/null
expect_exit 1 "skopeo without credentials fails" skopeo_inspect --no-creds "docker://$basic_HOSTPORT/app:v1"
expect_exit 0 "skopeo with credentials works" \
	skopeo_inspect --creds "$basic_USER:$basic_PASSWORD" "docker://$basic_HOSTPORT/app:v1"
expect_match "$WORK/out" "\"Digest\": \"$IMAGE_DIGEST\"" "and sees the pushed image"

# ---- token -----------------------------------------------------------------

registry_start tok token
expect_http 401 "token: a pull without a token" "$tok_URL/v2/app/manifests/v1"
expect_match "$WORK/headers" \
	"^Www-Authenticate: Bearer realm=\"$tok_TOKEN_URL\",service=\"$tok_SERVICE\",scope=\"repository:app:pull\"" \
	"a Bearer challenge naming realm, service and scope"
expect_http 401 "the token server refuses no credentials" "$tok_TOKEN_URL?service=$tok_SERVICE"
expect_http 401 "and wrong ones" -u "$tok_USER:wrong" "$tok_TOKEN_URL?service=$tok_SERVICE"
push_test_image tok app v1 >/dev/null
expect_http 200 "the token server gives a token" -u "$tok_USER:$tok_PASSWORD" \
	"$tok_TOKEN_URL?service=$tok_SERVICE&scope=repository:app:pull"
for key in token access_token expires_in issued_at; do
	expect_match "$WORK/body" "\"$key\": " "the answer has $key"
done
token=$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$WORK/body")
expect_http 200 "the token opens the manifest" -H "Authorization: Bearer $token" \
	-H "Accept: application/vnd.oci.image.manifest.v1+json" "$tok_URL/v2/app/manifests/v1"
expect_match "$WORK/headers" "^Docker-Content-Digest: $IMAGE_DIGEST" "the pushed one"
expect_http 401 "a pull token cannot push" -H "Authorization: Bearer $token" -X POST \
	"$tok_URL/v2/app/blobs/uploads/"
expect_match "$WORK/headers" 'error="insufficient_scope"' "insufficient_scope"
expect_http 401 "nor pull another repository" -H "Authorization: Bearer $token" "$tok_URL/v2/other/tags/list"
expect_http 200 "the OAuth2 form (POST) gives a token too" -X POST \
	--data-urlencode grant_type=password --data-urlencode "username=$tok_USER" \
	--data-urlencode "password=$tok_PASSWORD" --data-urlencode "service=$tok_SERVICE" \
	--data-urlencode "scope=repository:app:pull" "$tok_TOKEN_URL"
token=$(sed -n 's/.*"access_token": *"\([^"]*\)".*/\1/p' "$WORK/body")
expect_http 200 "which the registry accepts" -H "Authorization: Bearer $token" "$tok_URL/v2/app/tags/list"
expect_exit 1 "skopeo without credentials fails" skopeo_inspect --no-creds "docker://$tok_HOSTPORT/app:v1"
expect_exit 0 "skopeo with credentials works" \
	skopeo_inspect --creds "$tok_USER:$tok_PASSWORD" "docker://$tok_HOSTPORT/app:v1"
expect_match "$WORK/out" "\"Digest\": \"$IMAGE_DIGEST\"" "and sees the pushed image"
check "skopeo copies through token auth" \
	skopeo_copy --src-creds "$tok_USER:$tok_PASSWORD" "docker://$tok_HOSTPORT/app:v1" "dir:$WORK/tokcopy"
expect_match "$tok_TOKEN_LOG" "^GET /token\?.* user=$tok_USER auth=yes status=200 scope=repository:app:pull" \
	"the token log names user, status and scope"
expect_match "$tok_TOKEN_LOG" '^GET /token\?.* user=- auth=no status=401' "and the refusals"

registry_start anon token --allow-anonymous --expired-tokens 1
token=$(registry_token anon repository:app:pull)
expect_http 401 "--expired-tokens 1: the registry refuses the first token" \
	-H "Authorization: Bearer $token" "$anon_URL/v2/app/tags/list"
expect_match "$WORK/headers" 'error="invalid_token"' "as an invalid_token"
push_test_image anon app v1 >/dev/null # with later tokens
token=$(c "$anon_TOKEN_URL?service=$anon_SERVICE&scope=repository:app:pull,push" |
	sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
expect_http 200 "--allow-anonymous: anyone may pull" -H "Authorization: Bearer $token" "$anon_URL/v2/app/tags/list"
expect_http 401 "but not push" -H "Authorization: Bearer $token" -X POST "$anon_URL/v2/app/blobs/uploads/"
expect_http 401 "wrong credentials still fail" -u "$anon_USER:wrong" "$anon_TOKEN_URL?service=$anon_SERVICE"
check "skopeo pulls anonymously" quiet skopeo_inspect --no-creds "docker://$anon_HOSTPORT/app:v1"

# ---- indexes -----------------------------------------------------------------

push_test_index up multi v1 >/dev/null
expect_http 200 "GET of the index" -H 'Accept: application/vnd.oci.image.index.v1+json' \
	"$up_URL/v2/multi/manifests/v1"
expect_match "$WORK/headers" '^Content-Type: application/vnd.oci.image.index.v1\+json' "an OCI index"
expect_match "$WORK/headers" "^Docker-Content-Digest: $INDEX_DIGEST" "with the index digest"
expect_match "$WORK/body" "\"digest\":\"$INDEX_ARM64_DIGEST\",\"size\":[0-9]+,\"platform\":\\{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"\\}" \
	"the arm64 v8 child"
check "the children differ" test "$INDEX_AMD64_DIGEST" != "$INDEX_ARM64_DIGEST"
skopeo_inspect --override-arch arm64 --override-variant v8 "docker://$up_HOSTPORT/multi:v1" >"$WORK/inspect"
expect_eq "$(json_field Architecture <"$WORK/inspect")" arm64 "skopeo picks the arm64 child"
expect_match "$WORK/inspect" "\"$(cat "$INDEX_DIR/arm64/layers")\"" "with the arm64 layer"
check "skopeo copies the whole index" \
	skopeo_copy --all "docker://$up_HOSTPORT/multi:v1" "dir:$WORK/multi"
check "both children came" test -f "$WORK/multi/${INDEX_AMD64_DIGEST#sha256:}.manifest.json" \
	-a -f "$WORK/multi/${INDEX_ARM64_DIGEST#sha256:}.manifest.json"
push_test_index up multi docker docker >/dev/null
expect_http 200 "a docker manifest list" "$up_URL/v2/multi/manifests/docker" \
	-H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json'
expect_match "$WORK/headers" '^Content-Type: application/vnd.docker.distribution.manifest.list.v2\+json' \
	"with its media type"
check "skopeo copies it" skopeo_copy --all "docker://$up_HOSTPORT/multi:docker" "dir:$WORK/multi-docker"

# ---- the fault proxy ----------------------------------------------------------

big=$(image_dir up app v2) # a 50 MB layer and the busybox one
blob=$(sed -n 1p "$big/layers")
blob_file=$big/layer-1.tar.gz
blob_size=$(stat -c %s "$blob_file")

fault_proxy_start pass "$up_URL"
expect_http 200 "pass: a manifest through the proxy" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"$pass_URL/v2/app/manifests/v1"
check "pass: the same bytes" cmp -s "$WORK/body" "$(image_dir up app v1)/manifest.json"
expect_match "$WORK/headers" '^Content-Type: application/vnd.oci.image.manifest.v1\+json' \
	"pass: the upstream's headers"
expect_http 206 "pass: a Range request" -r 100-199 "$pass_URL/v2/app/blobs/$blob"
check "pass: the right 100 bytes" cmp -s "$WORK/body" <(tail -c +101 "$blob_file" | head -c 100)
push_test_image pass app viaproxy oci 2 3000000 >/dev/null # curl sends Expect: 100-continue
check "pass: a push through the proxy (uploads follow Location back to it)" \
	quiet skopeo_inspect "docker://$pass_HOSTPORT/app:viaproxy"
expect_match "$pass_LOG" '^proxy PUT /v2/app/blobs/uploads/.* status=201 fault=-' "pass: the PUTs are logged"
expect_match "$pass_LOG" "^proxy GET /v2/app/blobs/$blob range=bytes=100-199 auth=no status=206 fault=-$" \
	"pass: the log line has method, path, Range, auth and status"
fresh=$(push_test_image up fresh v1 oci 2 2000000)
skopeo_copy "docker://$up_HOSTPORT/fresh:v1" "dir:$WORK/fresh"
check "skopeo pushes through the proxy (chunked PATCH bodies)" skopeo copy -q --dest-tls-verify=false \
	"dir:$WORK/fresh" "docker://$pass_HOSTPORT/pushed:v1"
expect_match "$pass_LOG" '^proxy PATCH /v2/pushed/blobs/uploads/.* status=202 fault=-$' "skopeo's PATCHes went through"
skopeo_inspect "docker://$up_HOSTPORT/pushed:v1" >"$WORK/inspect"
expect_eq "$(json_field Digest <"$WORK/inspect")" "$fresh" "the same image arrived upstream"
check "skopeo copies the 50 MB image through the proxy" skopeo_copy "docker://$pass_HOSTPORT/app:v2" "dir:$WORK/big"
check "intact" cmp -s "$WORK/big/$(sed -n 2p "$big/layers" | cut -c8-)" "$big/layer-2.tar.gz"

fault_proxy_start cut "$up_URL" --match '^GET /v2/.*/blobs/' --cut-after 1000
expect_exit 18 "cut: curl sees a partial body" curl -sS --noproxy '*' -o "$WORK/part" "$cut_URL/v2/app/blobs/$blob"
check "cut: exactly 1000 bytes came" test "$(stat -c %s "$WORK/part")" = 1000
check "cut: and they are the blob's first 1000" cmp -s "$WORK/part" <(head -c 1000 "$blob_file")
expect_http 206 "cut: the Range resume passes" -r 1000- "$cut_URL/v2/app/blobs/$blob"
check "cut: part + resume = the blob" cmp -s <(cat "$WORK/part" "$WORK/body") "$blob_file"
expect_http 200 "cut: manifests are not matched" -H "$OCI_ACCEPT" "$cut_URL/v2/app/manifests/v1"
expect_match "$cut_LOG" "^proxy GET /v2/app/blobs/$blob range=- auth=no status=200 fault=cut$" "cut: logged as cut"
expect_match "$cut_LOG" "^proxy GET /v2/app/blobs/$blob range=bytes=1000- auth=no status=206 fault=-$" \
	"cut: the resume logged with its Range"
fault_proxy_start cut3 "$up_URL" --match '/blobs/' --cut-after 0 --cut-times 2
expect_exit 18 "cut-times 2: the first fails" curl -sS --noproxy '*' -o /dev/null "$cut3_URL/v2/app/blobs/$blob"
expect_exit 18 "cut-times 2: the second fails" curl -sS --noproxy '*' -o /dev/null "$cut3_URL/v2/app/blobs/$blob"
expect_exit 0 "cut-times 2: the third passes" curl -sS --noproxy '*' -o /dev/null "$cut3_URL/v2/app/blobs/$blob"

fault_proxy_start bad "$up_URL" --match '^GET /v2/.*/blobs/' --corrupt
expect_http 200 "corrupt: the blob comes" "$bad_URL/v2/app/blobs/$blob"
check "corrupt: same length" test "$(stat -c %s "$WORK/body")" = "$blob_size"
check "corrupt: a different digest" test "sha256:$(_sha256 "$WORK/body")" != "$blob"
check "corrupt: exactly one byte differs, in the middle" \
	test "$(cmp -l "$WORK/body" "$blob_file" | awk '{print $1}')" = $((blob_size / 2 + 1))
expect_http 200 "corrupt: unmatched requests pass" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"$bad_URL/v2/app/manifests/v1"
check "corrupt: the manifest is intact" cmp -s "$WORK/body" "$(image_dir up app v1)/manifest.json"
expect_exit 1 "corrupt: skopeo notices" skopeo_copy "docker://$bad_HOSTPORT/app:v1" "dir:$WORK/badcopy"
expect_match "$bad_LOG" "^proxy GET /v2/app/blobs/$blob .* fault=corrupt$" "corrupt: logged"

# Throttled at half the blob's size a second: it takes about 2 s, intact.
fault_proxy_start slow "$up_URL" --match '^GET /v2/.*/blobs/' --throttle $((blob_size / 2))
start=$(date +%s.%N)
expect_http 200 "throttle: the blob comes" "$slow_URL/v2/app/blobs/$blob"
took=$(echo "$(date +%s.%N) - $start" | bc -l)
check "throttle: intact" cmp -s "$WORK/body" "$blob_file"
check "throttle: it took about 2 s (${took}s)" test "$(echo "$took >= 1.8 && $took < 5" | bc -l)" = 1
start=$(date +%s.%N)
expect_http 200 "throttle: unmatched requests pass" -H "$OCI_ACCEPT" "$slow_URL/v2/app/manifests/v1"
expect_http 200 "throttle: a HEAD passes" -I "$slow_URL/v2/app/blobs/$blob"
took=$(echo "$(date +%s.%N) - $start" | bc -l)
check "throttle: at full speed (${took}s)" test "$(echo "$took < 1" | bc -l)" = 1
expect_match "$slow_LOG" "^proxy GET /v2/app/blobs/$blob range=- auth=no status=200 fault=throttle$" \
	"throttle: logged"

fault_proxy_start busy "$up_URL" --match '/manifests/' --status-then-pass 429:2:1
expect_http 429 "status: first request 429" "$busy_URL/v2/app/manifests/v1"
expect_match "$WORK/headers" '^Retry-After: 1' "status: with Retry-After"
expect_match "$WORK/body" '"code":"TOOMANYREQUESTS"' "status: and a registry error body"
expect_http 200 "status: unmatched requests pass meanwhile" -I "$busy_URL/v2/app/blobs/$blob"
expect_http 429 "status: second request 429" -I "$busy_URL/v2/app/manifests/v1"
expect_http 200 "status: third passes" -H "$OCI_ACCEPT" "$busy_URL/v2/app/manifests/v1"
fault_proxy_start busy2 "$up_URL" --status-then-pass 503:1
expect_exit 0 "status: curl --retry gets through a 503" curl -sS --noproxy '*' --retry 2 --retry-delay 1 \
	-o "$WORK/retry.out" "$busy2_URL/v2/"
expect_eq "$(fault_proxy_log_count busy2 '^proxy GET /v2/ .*status=503 fault=status$')" 1 "status: one 503 logged"
expect_eq "$(fault_proxy_log_count busy2 '^proxy GET /v2/ .*status=200 fault=-$')" 1 "then one 200"

fault_proxy_start redir "$tok_URL" --redirect-blobs
token=$(registry_token tok repository:app:pull)
tokimg=$(image_dir tok app v1)
tokblob=$(sed -n 2p "$tokimg/layers")
expect_http 307 "redirect: a blob GET is redirected" -H "Authorization: Bearer $token" \
	"$redir_URL/v2/app/blobs/$tokblob"
expect_match "$WORK/headers" "^Location: http://localhost:$redir_REDIRECT_PORT/r/[0-9a-f]+" \
	"redirect: to another host name and port"
location=$(tr -d '\r' <"$WORK/headers" | sed -n 's/^Location: //p')
expect_http 200 "redirect: curl -L follows" -L -H "Authorization: Bearer $token" "$redir_URL/v2/app/blobs/$tokblob"
check "redirect: the blob comes whole" cmp -s "$WORK/body" "$tokimg/layer-2.tar.gz"
expect_match "$redir_LOG" "^redirect GET /r/[0-9a-f]+ range=- auth=no status=200 fault=-$" \
	"redirect: logged, without Authorization (curl drops it for another host)"
expect_http 206 "redirect: Range on the redirect target" -r 10-19 "$location"
check "redirect: the right 10 bytes" cmp -s "$WORK/body" <(tail -c +11 "$tokimg/layer-2.tar.gz" | head -c 10)
expect_http 200 "redirect: manifests are not redirected" -H "Authorization: Bearer $token" \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json' "$redir_URL/v2/app/manifests/v1"
expect_http 200 "redirect: a blob HEAD is not redirected" -I -H "Authorization: Bearer $token" \
	"$redir_URL/v2/app/blobs/$tokblob"
expect_http 200 "redirect: a client that sends Authorization there too" -H "Authorization: Bearer $token" \
	"$location"
expect_match "$redir_LOG" "^redirect GET /r/[0-9a-f]+ range=- auth=yes status=200 fault=-$" \
	"redirect: is logged with auth=yes"
check "redirect: skopeo copies through the redirects" \
	skopeo_copy --src-creds "$tok_USER:$tok_PASSWORD" "docker://$redir_HOSTPORT/app:v1" "dir:$WORK/redircopy"
check "redirect: intact" cmp -s "$WORK/redircopy/${tokblob#sha256:}" "$tokimg/layer-2.tar.gz"

finish
