#!/usr/bin/env bash
# dindfs mirror: the registry API v2 served from a dindfs mount, checked
# with real clients (skopeo, curl) against a real upstream registry behind
# the mount: headers from the xattrs, Range, HEAD without a download, error
# bodies, registry names, and what happens when upstream is down.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"

export DOCKER_CONFIG=$WORK/docker-config REGISTRY_AUTH_FILE=$WORK/auth.json
mkdir -p "$DOCKER_CONFIG"
MNT=$WORK/mnt

registry_start hub
push_test_image hub library/app v1 docker 3 500000 >/dev/null
app=$IMAGE_DIR app_digest=$IMAGE_DIGEST app_layers=("${IMAGE_LAYERS[@]}")
registry_start other
push_test_image other team/tool v2 oci 2 100000 >/dev/null
tool=$IMAGE_DIR tool_digest=$IMAGE_DIGEST
must_mount "$MNT" --store "$WORK/store" --upstream "docker.io=$hub_URL" \
	--upstream "other.test:5000=$other_URL"

port=$(free_port)
"$DINDFS" mirror --root "$MNT" --listen "127.0.0.1:$port" 2>"$WORK/mirror.err" &
mirror_pid=$!
on_exit "kill $mirror_pid 2>/dev/null; wait $mirror_pid 2>/dev/null"
M=http://127.0.0.1:$port
up() { curl -s -o /dev/null "$M/v2/"; }
check "the mirror answers" wait_until 10 up

# curl_to CODE DESCRIPTION CURL_ARG...: body in $WORK/body, headers in $WORK/headers.
curl_to() {
	local want=$1 what=$2 got
	shift 2
	got=$(curl -s --noproxy '*' -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@" || true)
	if [[ $got == "$want" ]]; then pass "$what"; else
		fail "$what (HTTP $got, wanted $want)"
		head -c 300 "$WORK/body" | sed 's/^/    /'
	fi
}

curl_to 200 "GET /v2/" "$M/v2/"
expect_match "$WORK/headers" '^Docker-Distribution-API-Version: registry/2.0' "it speaks registry/2.0"

# A HEAD of a manifest: headers from the xattrs, and no blob download.
misses=$(stat_of "$MNT" blob_misses)
curl_to 200 "HEAD of a tag (docker.io short name)" -I "$M/v2/library/app/manifests/v1"
expect_match "$WORK/headers" "^Docker-Content-Digest: $app_digest" "Docker-Content-Digest from the xattr"
expect_match "$WORK/headers" '^Content-Type: application/vnd.docker.distribution.manifest.v2\+json' \
	"Content-Type from the xattr"
expect_match "$WORK/headers" "^Content-Length: $(stat -c %s "$app/manifest.json")" "Content-Length"
curl_to 200 "GET of the manifest" "$M/v2/library/app/manifests/v1"
check "its bytes are upstream's" cmp -s "$WORK/body" "$app/manifest.json"
curl_to 200 "GET of the manifest by digest" "$M/v2/library/app/manifests/$app_digest"
check "the same bytes" cmp -s "$WORK/body" "$app/manifest.json"

curl_to 200 "HEAD of a blob" -I "$M/v2/library/app/blobs/${app_layers[2]}"
expect_match "$WORK/headers" "^Content-Length: $(stat -c %s "$app/layer-3.tar.gz")" "its size"
check "a HEAD starts no download" test "$(stat_of "$MNT" blob_misses)" = "$misses"
curl_to 200 "GET of a blob" "$M/v2/library/app/blobs/${app_layers[2]}"
check "its bytes are upstream's" cmp -s "$WORK/body" "$app/layer-3.tar.gz"
curl_to 206 "a Range GET" -r 1000-1999 "$M/v2/library/app/blobs/${app_layers[1]}"
expect_match "$WORK/headers" "^Content-Range: bytes 1000-1999/$(stat -c %s "$app/layer-2.tar.gz")" \
	"with its Content-Range"
check "the range's bytes" cmp -s "$WORK/body" <(tail -c +1001 "$app/layer-2.tar.gz" | head -c 1000)
curl_to 206 "an open-ended Range GET" -r 499000- "$M/v2/library/app/blobs/${app_layers[1]}"
check "to the end" cmp -s "$WORK/body" <(tail -c +499001 "$app/layer-2.tar.gz")

# Registry names: a host in the name, and containerd's ?ns=.
curl_to 200 "a registry named in the path" "$M/v2/other.test:5000/team/tool/manifests/v2" \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json'
check "its bytes" cmp -s "$WORK/body" "$tool/manifest.json"
curl_to 200 "a registry named by ?ns=" "$M/v2/team/tool/manifests/v2?ns=other.test:5000"
check "the same bytes" cmp -s "$WORK/body" "$tool/manifest.json"

# Errors, as OCI error bodies.
curl_to 404 "an unknown tag" "$M/v2/library/app/manifests/nope"
expect_match "$WORK/body" '"code":"MANIFEST_UNKNOWN"' "MANIFEST_UNKNOWN"
curl_to 404 "an unknown blob" "$M/v2/library/app/blobs/sha256:$(printf 0%.0s {1..64})"
expect_match "$WORK/body" '"code":"BLOB_UNKNOWN"' "BLOB_UNKNOWN"
curl_to 400 "an invalid name" "$M/v2/Upper/Case/manifests/v1"
expect_match "$WORK/body" '"code":"NAME_INVALID"' "NAME_INVALID"
curl_to 400 "a garbage digest" "$M/v2/library/app/blobs/sha256:xyz"
curl_to 400 "a path that climbs" --path-as-is "$M/v2/library/../../etc/manifests/v1"
curl_to 405 "a push is refused" -X PUT --data x "$M/v2/library/app/manifests/v1"
curl_to 200 "tags/list" "$M/v2/library/app/tags/list"
expect_match "$WORK/body" '"tags":\["v1"\]' "it names the cached tag"

# Real clients.
expect_exit 0 "skopeo inspect through the mirror" \
	skopeo inspect --tls-verify=false "docker://127.0.0.1:$port/library/app:v1"
expect_match "$WORK/out" "\"Digest\": \"$app_digest\"" "skopeo sees the digest"
expect_exit 0 "skopeo copy through the mirror" \
	skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$port/library/app:v1" "dir:$WORK/copy"
for i in 0 1 2; do
	check "layer $((i + 1)) copied whole" cmp -s "$WORK/copy/${app_layers[$i]#sha256:}" \
		"$app/layer-$((i + 1)).tar.gz"
done

# Upstream down: cached things still come, the rest is a 502, not a 404.
registry_stop hub
curl_to 200 "with upstream down, a cached blob still comes" "$M/v2/library/app/blobs/${app_layers[0]}"
curl_to 502 "an uncached tag is a 502" "$M/v2/library/never/manifests/v1"
check "the mirror is still up" kill -0 "$mirror_pid"

# The command line.
expect_exit 2 "mirror with a bad --listen" "$DINDFS" mirror --root "$MNT" --listen nowhere
expect_exit 1 "mirror of something that is not a mount" "$DINDFS" mirror --root "$WORK"
expect_lines "$WORK/err" 1 "it says so in one line"
expect_exit 1 "mirror on a port in use" "$DINDFS" mirror --root "$MNT" --listen "127.0.0.1:$port"
kill -TERM "$mirror_pid"
check "SIGTERM stops it" wait_until 10 pid_gone "$mirror_pid"

finish
