#!/usr/bin/env bash
# dindfs mirror: the registry API v2 served from a dindfs mount, checked
# with real clients (skopeo, curl) against a real upstream registry behind
# the mount: headers from the xattrs, Range, HEAD without a download, error
# bodies, registry names, and what happens when upstream is down.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"

own_docker_config
export REGISTRY_AUTH_FILE=$WORK/auth.json
MNT=$WORK/mnt

registry_start hub
push_test_image hub library/app v1 docker 3 500000 >/dev/null
app=$IMAGE_DIR app_digest=$IMAGE_DIGEST app_layers=("${IMAGE_LAYERS[@]}")
registry_start other
push_test_image other team/tool v2 oci 2 100000 >/dev/null
tool=$IMAGE_DIR tool_digest=$IMAGE_DIGEST
must_mount "$MNT" --store "$WORK/store" --upstream "docker.io=$hub_URL" \
	--upstream "other.test:5000=$other_URL" --upstream "ghcr.io=$other_URL"

port=$(free_port)
"$DINDFS" mirror --root "$MNT" --listen "127.0.0.1:$port" 2>"$WORK/mirror.err" &
mirror_pid=$!
on_exit "kill $mirror_pid 2>/dev/null; wait $mirror_pid 2>/dev/null"
M=http://127.0.0.1:$port
up() { curl -s -o /dev/null "$M/v2/"; }
check "the mirror answers" wait_until 10 up


expect_http 200 "GET /v2/" "$M/v2/"
expect_match "$WORK/headers" '^Docker-Distribution-API-Version: registry/2.0' "it speaks registry/2.0"

# A HEAD of a manifest: headers from the xattrs, and no blob download.
misses=$(stat_of "$MNT" blob_misses)
expect_http 200 "HEAD of a tag (docker.io short name)" -I "$M/v2/library/app/manifests/v1"
expect_match "$WORK/headers" "^Docker-Content-Digest: $app_digest" "Docker-Content-Digest from the xattr"
expect_match "$WORK/headers" '^Content-Type: application/vnd.docker.distribution.manifest.v2\+json' \
	"Content-Type from the xattr"
expect_match "$WORK/headers" "^Content-Length: $(stat -c %s "$app/manifest.json")" "Content-Length"
expect_http 200 "GET of the manifest" "$M/v2/library/app/manifests/v1"
check "its bytes are upstream's" cmp -s "$WORK/body" "$app/manifest.json"
expect_http 200 "GET of the manifest by digest" "$M/v2/library/app/manifests/$app_digest"
check "the same bytes" cmp -s "$WORK/body" "$app/manifest.json"

expect_http 200 "HEAD of a blob" -I "$M/v2/library/app/blobs/${app_layers[2]}"
expect_match "$WORK/headers" "^Content-Length: $(stat -c %s "$app/layer-3.tar.gz")" "its size"
check "a HEAD starts no download" test "$(stat_of "$MNT" blob_misses)" = "$misses"
expect_http 200 "GET of a blob" "$M/v2/library/app/blobs/${app_layers[2]}"
check "its bytes are upstream's" cmp -s "$WORK/body" "$app/layer-3.tar.gz"
expect_http 206 "a Range GET" -r 1000-1999 "$M/v2/library/app/blobs/${app_layers[1]}"
expect_match "$WORK/headers" "^Content-Range: bytes 1000-1999/$(stat -c %s "$app/layer-2.tar.gz")" \
	"with its Content-Range"
check "the range's bytes" cmp -s "$WORK/body" <(tail -c +1001 "$app/layer-2.tar.gz" | head -c 1000)
expect_http 206 "an open-ended Range GET" -r 499000- "$M/v2/library/app/blobs/${app_layers[1]}"
check "to the end" cmp -s "$WORK/body" <(tail -c +499001 "$app/layer-2.tar.gz")

# Registry names: a host in the name, and containerd's ?ns=.
expect_http 200 "a registry named in the path" "$M/v2/other.test:5000/team/tool/manifests/v2" \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json'
check "its bytes" cmp -s "$WORK/body" "$tool/manifest.json"
expect_http 200 "a registry named by ?ns=" "$M/v2/team/tool/manifests/v2?ns=other.test:5000"
check "the same bytes" cmp -s "$WORK/body" "$tool/manifest.json"

# The Host header names the registry (a client that reached the mirror
# under a registry's name), unless it is an address or localhost.
expect_http 200 "a registry named by the Host header" -H 'Host: other.test:5000' \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json' "$M/v2/team/tool/manifests/v2"
check "its bytes" cmp -s "$WORK/body" "$tool/manifest.json"
expect_http 200 "Host: ghcr.io:443 is ghcr.io" -H 'Host: ghcr.io:443' \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json' "$M/v2/team/tool/manifests/v2"
check "its bytes" cmp -s "$WORK/body" "$tool/manifest.json"
for alias in index.docker.io registry-1.docker.io; do
	expect_http 200 "Host: $alias is docker.io" -H "Host: $alias" "$M/v2/library/app/manifests/v1"
	check "its bytes" cmp -s "$WORK/body" "$app/manifest.json"
done
expect_http 404 "Host: localhost is the mirror itself (docker.io, no such repository)" \
	-H 'Host: localhost:5000' "$M/v2/team/tool/manifests/v2"

# Range (RFC 9110 §14): suffixes, 416, merged ranges, multipart/byteranges.
blob=$M/v2/library/app/blobs/${app_layers[1]} layer=$app/layer-2.tar.gz
size=$(stat -c %s "$layer")
expect_http 416 "a range from the blob's end is unsatisfiable" -H "Range: bytes=$size-" "$blob"
expect_match "$WORK/headers" "^Content-Range: bytes \*/$size"$'\r'"?\$" "its Content-Range is bytes */$size"
expect_http 416 "bytes=-0 is unsatisfiable" -H 'Range: bytes=-0' "$blob"
expect_http 206 "a suffix range, bytes=-5" -H 'Range: bytes=-5' "$blob"
expect_match "$WORK/headers" "^Content-Range: bytes $((size - 5))-$((size - 1))/$size" "the last 5 bytes' range"
check "the last 5 bytes" cmp -s "$WORK/body" <(tail -c 5 "$layer")
expect_http 206 "a suffix longer than the blob" -H "Range: bytes=-$((2 * size))" "$blob"
expect_match "$WORK/headers" "^Content-Range: bytes 0-$((size - 1))/$size" "is all of it"
check "every byte" cmp -s "$WORK/body" "$layer"
expect_http 206 "a last byte past the end" -H "Range: bytes=$((size - 10))-$((size + 100))" "$blob"
expect_match "$WORK/headers" "^Content-Range: bytes $((size - 10))-$((size - 1))/$size" "stops at the end"
expect_http 206 "ranges that overlap or touch" -H 'Range: bytes=300-399, 100-199,150-299' "$blob"
expect_match "$WORK/headers" "^Content-Range: bytes 100-399/$size" "are one range"
check "its bytes" cmp -s "$WORK/body" <(tail -c +101 "$layer" | head -c 300)
expect_http 206 "two ranges apart" -H 'Range: bytes=0-9,-10' "$blob"
expect_match "$WORK/headers" '^Content-Type: multipart/byteranges; boundary=[0-9a-f]{32}' \
	"are a multipart/byteranges answer"
# parts FILE: each part's Content-Range, whether its bytes are FILE's there, its type
parts() {
	python3 - "$WORK/headers" "$WORK/body" "$1" <<-'PY'
		import email.parser, email.policy, sys
		headers, body, blob = sys.argv[1:]
		ctype = [l.split(":", 1)[1].strip() for l in open(headers, encoding="latin-1")
		         if l.lower().startswith("content-type:")][0]
		msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
		    b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + open(body, "rb").read())
		data = open(blob, "rb").read()
		for part in msg.iter_parts():
		    cr = part["Content-Range"]
		    first, last = map(int, cr.split()[1].split("/")[0].split("-"))
		    same = part.get_payload(decode=True) == data[first:last + 1]
		    print(cr, "same" if same else "differs", part.get_content_type())
	PY
}
parts "$layer" >"$WORK/parts"
printf '%s\n' "bytes 0-9/$size same application/octet-stream" \
	"bytes $((size - 10))-$((size - 1))/$size same application/octet-stream" >"$WORK/parts.want"
check "its parts: the first 10 bytes and the last 10, each with its bytes" \
	diff -u "$WORK/parts.want" "$WORK/parts"
expect_http 200 "an invalid range (last < first) is ignored" -H 'Range: bytes=9-5' "$blob"
check "the whole blob" cmp -s "$WORK/body" "$layer"
expect_http 200 "another unit is ignored" -H 'Range: items=0-5' "$blob"
spec=$(for i in $(seq 0 16); do printf '%d-%d,' $((i * 10)) $((i * 10 + 1)); done)
expect_http 200 "more than 16 parts: the whole blob" -H "Range: bytes=${spec%,}" "$blob"
check "every byte" cmp -s "$WORK/body" "$layer"

# Errors, as OCI error bodies.
unserved="registry unlisted.example is not served by the host's dindfs cache: add it there with dindfs mount --registry unlisted.example"
expect_http 401 "a registry the host does not serve" "$M/v2/x/manifests/v1?ns=unlisted.example"
check "DENIED, naming the registry and --registry" \
	test "$(cat "$WORK/body")" = "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"$unserved\"}]}"
check "and the same in a Bearer challenge's error, with the mirror's token realm" \
	test "$(tr -d '\r' <"$WORK/headers" | sed -n 's/^WWW-Authenticate: //p')" = \
	"Bearer realm=\"http://127.0.0.1:$port/dindfs/token\",service=\"dindfs\",error=\"$unserved\""
expect_http 401 "a HEAD of it: the same challenge (what containerd shows)" -I "$M/v2/x/manifests/v1?ns=unlisted.example"
expect_match "$WORK/headers" "^WWW-Authenticate: Bearer .*error=\"registry unlisted.example is not served" "with the reason"
expect_http 200 "the realm gives a token (that opens nothing: the challenge comes again)" "$M/dindfs/token?service=dindfs"
expect_match "$WORK/body" '^\{"token":"dindfs-unserved","access_token":"dindfs-unserved"\}$' "the token"
expect_http 401 "with it, the same 401" -H 'Authorization: Bearer dindfs-unserved' "$M/v2/x/manifests/v1?ns=unlisted.example"
expect_http 401 "asked as the registry (the Host header), a HEAD of it" -I -H 'Host: unlisted.example' "$M/v2/x/manifests/v1"
realm=http://127.0.0.1:$port/dindfs/unserved/unlisted.example/add-it-with/dindfs-mount--registry-unlisted.example
check "its realm's URL names the registry and --registry" \
	test "$(tr -d '\r' <"$WORK/headers" | sed -n 's/^WWW-Authenticate: //p')" = \
	"Bearer realm=\"$realm\",service=\"dindfs\",error=\"$unserved\""
expect_http 403 "and that realm refuses a token (what dockerd's containerd image store shows)" "$realm?scope=repository:x:pull&service=dindfs"
expect_http 404 "an unknown tag" "$M/v2/library/app/manifests/nope"
expect_match "$WORK/body" '"code":"MANIFEST_UNKNOWN"' "MANIFEST_UNKNOWN"
expect_http 404 "an unknown blob" "$M/v2/library/app/blobs/sha256:$(printf 0%.0s {1..64})"
expect_match "$WORK/body" '"code":"BLOB_UNKNOWN"' "BLOB_UNKNOWN"
expect_http 400 "an invalid name" "$M/v2/Upper/Case/manifests/v1"
expect_match "$WORK/body" '"code":"NAME_INVALID"' "NAME_INVALID"
expect_http 400 "a garbage digest" "$M/v2/library/app/blobs/sha256:xyz"
expect_http 400 "a path that climbs" --path-as-is "$M/v2/library/../../etc/manifests/v1"
expect_http 405 "a push is refused" -X PUT --data x "$M/v2/library/app/manifests/v1"
expect_http 200 "tags/list" "$M/v2/library/app/tags/list"
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

# HTTPS: a certificate for the served names, from a CA made here.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj '/CN=dindfs test CA' \
	-keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=ghcr.io \
	-keyout "$WORK/tls.key" -out "$WORK/tls.csr" 2>/dev/null
openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -days 1 -out "$WORK/tls.crt" \
	-extfile <(printf 'subjectAltName=DNS:ghcr.io,DNS:other.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') 2>/dev/null
tls=$(free_port) plain=$(free_port)
"$DINDFS" mirror --root "$MNT" --listen "127.0.0.1:$plain" --tls-listen "127.0.0.1:$tls" \
	--cert "$WORK/tls.crt" --key "$WORK/tls.key" --log-requests 2>"$WORK/tls-mirror.err" &
tls_pid=$!
on_exit "kill $tls_pid 2>/dev/null; wait $tls_pid 2>/dev/null"
tls_up() { curl -s -o /dev/null --cacert "$WORK/ca.crt" "https://127.0.0.1:$tls/v2/"; }
check "the HTTPS listener answers" wait_until 10 tls_up
expect_http 200 "HTTPS as ghcr.io, the registry from the Host header" --cacert "$WORK/ca.crt" \
	--resolve "ghcr.io:$tls:127.0.0.1" -H 'Host: ghcr.io' \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json' "https://ghcr.io:$tls/v2/team/tool/manifests/v2"
check "its bytes" cmp -s "$WORK/body" "$tool/manifest.json"
expect_exit 60 "a client without the CA does not trust it (curl's exit 60)" \
	curl -s --noproxy '*' --resolve "ghcr.io:$tls:127.0.0.1" "https://ghcr.io:$tls/v2/"
expect_exit 60 "nor a name the certificate does not cover" curl -s --noproxy '*' \
	--cacert "$WORK/ca.crt" --resolve "quay.io:$tls:127.0.0.1" "https://quay.io:$tls/v2/"
expect_http 200 "the same mirror's plain listener" "http://127.0.0.1:$plain/v2/library/app/manifests/v1"
check "its bytes" cmp -s "$WORK/body" "$app/manifest.json"
expect_match "$WORK/tls-mirror.err" "serving .* on https://127.0.0.1:$tls\$" "it says where it serves HTTPS"
expect_match "$WORK/tls-mirror.err" \
	'^dindfs mirror: [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6} GET /v2/team/tool/manifests/v2 \(Host ghcr.io\): 200 in [0-9]+\.[0-9]{2} ms$' \
	"--log-requests: the manifest GET as ghcr.io, its status and milliseconds"
expect_match "$WORK/tls-mirror.err" '^dindfs mirror: .* GET /v2/library/app/manifests/v1 \(Host 127\.0\.0\.1:[0-9]+\): 200 in ' \
	"... the plain listener's too"
expect_no_match "$WORK/mirror.err" ' GET /v2/' "a mirror without --log-requests logs no request"
expect_exit 1 "a key that is not the certificate's" "$DINDFS" mirror --root "$MNT" \
	--tls-listen "127.0.0.1:$(free_port)" --cert "$WORK/tls.crt" --key "$WORK/ca.key"
expect_lines "$WORK/err" 1 "one line"
expect_match "$WORK/err" "^dindfs: --key is not the key of --cert's certificate\$" "which says so"
expect_exit 1 "a certificate that is not one" "$DINDFS" mirror --root "$MNT" \
	--tls-listen "127.0.0.1:$(free_port)" --cert "$WORK/tls.csr" --key "$WORK/tls.key"
expect_match "$WORK/err" "^dindfs: --cert holds no PEM certificate\$" "says so in one line"
expect_exit 2 "--tls-listen without --cert and --key" "$DINDFS" mirror --root "$MNT" \
	--tls-listen "127.0.0.1:$(free_port)"
kill "$tls_pid"

# Idle and slow connections (mirror_guard.h): a request trickled a byte a
# second is cut at 10 s, a kept-alive connection that sends nothing more at
# 10 s; 300 idle connections leave room for a real request.
SLOW=$FIXTURES/slow_client.py
python3 "$SLOW" trickle 127.0.0.1 "$port" >"$WORK/trickle" &
trickle_pid=$!
python3 "$SLOW" keepalive 127.0.0.1 "$port" >"$WORK/keepalive" &
keepalive_pid=$!
wait "$trickle_pid" "$keepalive_pid"
in_window() { python3 -c 'import sys; t = float(open(sys.argv[1]).read()); sys.exit(not 10 <= t < 12)' "$1"; }
check "a request trickled a byte a second is cut after 10 s ($(cat "$WORK/trickle") s)" in_window "$WORK/trickle"
check "a kept-alive connection idle for 10 s is closed ($(cat "$WORK/keepalive") s)" in_window "$WORK/keepalive"
python3 "$SLOW" idle 127.0.0.1 "$port" 300 "$WORK/idle" &
idle_pid=$!
on_exit "kill $idle_pid 2>/dev/null; wait $idle_pid 2>/dev/null"
check "300 idle connections open" wait_until 40 test -s "$WORK/idle"
check "the 44 oldest beyond 256 were shut ($(cat "$WORK/idle" 2>/dev/null))" test "$(cat "$WORK/idle")" = 44
expect_http 200 "while they are held, a real request is answered within 2 s" --max-time 2 \
	"$M/v2/library/app/manifests/v1"
check "its bytes" cmp -s "$WORK/body" "$app/manifest.json"
kill "$idle_pid"
wait "$idle_pid" 2>/dev/null || true

# Upstream down: cached things still come, the rest is a 502, not a 404.
registry_stop hub
expect_http 200 "with upstream down, a cached blob still comes" "$M/v2/library/app/blobs/${app_layers[0]}"
expect_http 502 "an uncached tag is a 502" "$M/v2/library/never/manifests/v1"
check "the mirror is still up" kill -0 "$mirror_pid"

# The command line.
expect_exit 2 "mirror with a bad --listen" "$DINDFS" mirror --root "$MNT" --listen nowhere
expect_exit 1 "mirror of something that is not a mount" "$DINDFS" mirror --root "$WORK"
expect_lines "$WORK/err" 1 "it says so in one line"
expect_exit 1 "mirror on a port in use" "$DINDFS" mirror --root "$MNT" --listen "127.0.0.1:$port"
kill -TERM "$mirror_pid"
check "SIGTERM stops it" wait_until 10 pid_gone "$mirror_pid"

finish
