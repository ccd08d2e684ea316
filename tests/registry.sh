# Test registries, and images pushed into them, for the integration scripts.
# Source it after lib.sh. It runs Debian's docker-registry (distribution 2.8)
# on free loopback ports, optionally behind htpasswd or token auth (the
# token server is tests/fixtures/token_server.py), puts the fault proxy
# (tests/fixtures/fault_proxy.py) in front of a registry, and builds and
# pushes images with curl alone, so that the tests of dindfs's registry
# client check it against a real registry and not against itself.
#
# Every process started here is stopped (by PID) through lib.sh's on_exit.
# Call the *_start functions directly, not in $(...): they set variables.

FIXTURES=$(cd "$(dirname "${BASH_SOURCE[0]}")/fixtures" && pwd)
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}

# ---- small helpers --------------------------------------------------------

# _var NAME FIELD: the value of ${NAME}_FIELD.
_var() {
	local v="${1}_$2"
	printf '%s' "${!v-}"
}

# _set NAME FIELD VALUE: set and export ${NAME}_FIELD.
_set() {
	printf -v "${1}_$2" '%s' "$3"
	export "${1}_$2"
}

_check_name() {
	[[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || {
		echo "registry.sh: '$1' is not a usable name (letters, digits, _)" >&2
		return 1
	}
}

# free_port: a loopback TCP port that was free a moment ago.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# _wait_file FILE PID: wait until FILE exists (the process must stay alive).
_wait_file() {
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s $1 ]] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# _stop_pid PID: stop a process this script started, and reap it.
_stop_pid() {
	[[ -n $1 ]] || return 0
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

_sha256() { sha256sum "$1" | cut -d' ' -f1; }

# ---- registries -----------------------------------------------------------

# registry_start NAME [plain|htpasswd|token] [TOKEN_SERVER_OPTION...]
# Starts a registry and sets (exported):
#   NAME_URL       http://127.0.0.1:PORT       NAME_HOSTPORT  127.0.0.1:PORT
#   NAME_PORT      PORT                        NAME_LOG       $WORK/NAME.log
#   NAME_DIR       config, storage, htpasswd   NAME_AUTH      plain|htpasswd|token
#   NAME_USER, NAME_PASSWORD                   (htpasswd and token)
#   NAME_TOKEN_URL (the realm), NAME_TOKEN_LOG, NAME_SERVICE   (token)
# The options after "token" go to token_server.py (--expires-in SEC,
# --allow-anonymous, --expired-tokens N). REGISTRY_* variables in the
# environment override the config, as distribution documents (e.g.
# REGISTRY_HTTP_RELATIVEURLS=true), except REGISTRY_AUTH_FILE, which skopeo
# reads and the registry is not given.
registry_start() {
	local name=$1 auth=${2:-plain} dir
	shift $(($# < 2 ? $# : 2))
	_check_name "$name"
	dir=$WORK/registry-$name
	mkdir -p "$dir/storage"
	_set "$name" DIR "$dir"
	_set "$name" AUTH "$auth"
	_set "$name" LOG "$WORK/$name.log"
	case $auth in
	plain) ;;
	htpasswd | token)
		_set "$name" USER "tester"
		_set "$name" PASSWORD "secret-$name"
		;;
	*)
		echo "registry_start: unknown auth '$auth' (plain, htpasswd, token)" >&2
		return 1
		;;
	esac
	[[ $auth != htpasswd ]] || htpasswd -Bbn tester "secret-$name" >"$dir/htpasswd"
	[[ $auth != token ]] || _token_server_start "$name" "$@"
	on_exit "registry_stop $name"
	for _ in 1 2 3 4 5; do
		_set "$name" PORT "$(free_port)"
		_set "$name" HOSTPORT "127.0.0.1:$(_var "$name" PORT)"
		_set "$name" URL "http://$(_var "$name" HOSTPORT)"
		_registry_config "$name" >"$dir/config.yml"
		_registry_launch "$name" && return 0
		grep -q 'address already in use' "$(_var "$name" LOG)" || break
	done
	echo "registry_start: registry $name did not start; its log:" >&2
	tail -20 "$(_var "$name" LOG)" >&2
	return 1
}

# registry_stop NAME: stop it (its storage stays; registry_restart reuses it).
registry_stop() {
	_stop_pid "$(_var "$1" PID)"
	_set "$1" PID ""
}

# registry_restart NAME: start it again on the same port with the same data.
registry_restart() {
	registry_stop "$1"
	_registry_launch "$1"
}

_registry_launch() {
	local name=$1 pid i code
	# REGISTRY_AUTH_FILE is skopeo's and podman's, but distribution would
	# read it as auth.file of its config.
	env -u REGISTRY_AUTH_FILE "$REGISTRY_BIN" serve "$(_var "$name" DIR)/config.yml" \
		>>"$(_var "$name" LOG)" 2>&1 &
	pid=$!
	_set "$name" PID "$pid"
	for ((i = 0; i < 150; i++)); do
		code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "$(_var "$name" URL)/v2/" || true)
		[[ $code == 200 || $code == 401 ]] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	registry_stop "$name"
	return 1
}

_registry_config() {
	local name=$1 dir
	dir=$(_var "$name" DIR)
	cat <<-EOF
		version: 0.1
		log:
		  level: info
		  formatter: text
		  accesslog:
		    disabled: false
		storage:
		  filesystem:
		    rootdirectory: $dir/storage
		  delete:
		    enabled: true
		  maintenance:
		    uploadpurging:
		      enabled: false
		http:
		  addr: $(_var "$name" HOSTPORT)
		  secret: dindfs-test-secret
	EOF
	case $(_var "$name" AUTH) in
	htpasswd)
		cat <<-EOF
			auth:
			  htpasswd:
			    realm: dindfs-test
			    path: $dir/htpasswd
		EOF
		;;
	token)
		cat <<-EOF
			auth:
			  token:
			    realm: $(_var "$name" TOKEN_URL)
			    service: $(_var "$name" SERVICE)
			    issuer: dindfs-test-issuer
			    rootcertbundle: $dir/token/token.crt
		EOF
		;;
	esac
}

_token_server_start() {
	local name=$1 dir pid
	shift
	dir=$(_var "$name" DIR)
	_set "$name" SERVICE "dindfs-test-$name"
	_set "$name" TOKEN_LOG "$WORK/$name-token.log"
	python3 "$FIXTURES/token_server.py" --user "$(_var "$name" USER)" \
		--password "$(_var "$name" PASSWORD)" --dir "$dir/token" \
		--port-file "$dir/token.port" --log "$(_var "$name" TOKEN_LOG)" \
		--service "$(_var "$name" SERVICE)" --issuer dindfs-test-issuer "$@" \
		>"$dir/token.out" 2>&1 &
	pid=$!
	on_exit "_stop_pid $pid"
	_wait_file "$dir/token.port" "$pid" || {
		echo "registry_start: the token server of $name did not start:" >&2
		cat "$dir/token.out" >&2
		return 1
	}
	_set "$name" TOKEN_URL "http://127.0.0.1:$(cat "$dir/token.port")/token"
}

# registry_log_count NAME METHOD PATH_REGEX [STATUS_REGEX]: how many requests
# the registry's access log shows. PATH_REGEX (extended) must match the whole
# path; a query string after it is allowed. Example:
#   registry_log_count up GET "/v2/app/blobs/$digest" 200
registry_log_count() {
	local status=${4-}
	[[ -n $status ]] || status='[0-9]{3}'
	grep -cE "\"$2 $3(\?[^ \"]*)? HTTP/[0-9.]+\" $status " "$(_var "$1" LOG)" || true
}

# registry_token NAME SCOPE: a bearer token from NAME's token server, e.g.
#   registry_token up repository:app:pull
registry_token() {
	curl -fsS --noproxy '*' -u "$(_var "$1" USER):$(_var "$1" PASSWORD)" -G \
		--data-urlencode "service=$(_var "$1" SERVICE)" --data-urlencode "scope=$2" \
		"$(_var "$1" TOKEN_URL)" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p'
}

# registry_curl NAME REPO CURL_ARG...: curl with whatever NAME needs to pull
# and push REPO (nothing, Basic credentials, or a fresh bearer token).
registry_curl() {
	local name=$1 repo=$2 auth=()
	shift 2
	case $(_var "$name" AUTH) in
	htpasswd) auth=(-u "$(_var "$name" USER):$(_var "$name" PASSWORD)") ;;
	token) auth=(-H "Authorization: Bearer $(registry_token "$name" "repository:$repo:pull,push")") ;;
	esac
	curl -sS --noproxy '*' "${auth[@]}" "$@"
}

# ---- the fault proxy ------------------------------------------------------

# fault_proxy_start NAME UPSTREAM_URL [fault_proxy.py OPTION...]
# Sets NAME_URL, NAME_HOSTPORT, NAME_PORT, NAME_LOG ($WORK/NAME.log, one line
# per request) and, with --redirect-blobs, NAME_REDIRECT_PORT. Example:
#   fault_proxy_start px "$up_URL" --match '^GET /v2/.*/blobs/' --cut-after 1000
fault_proxy_start() {
	local name=$1 upstream=$2 pid
	shift 2
	_check_name "$name"
	_set "$name" LOG "$WORK/$name.log"
	python3 "$FIXTURES/fault_proxy.py" --upstream "$upstream" \
		--port-file "$WORK/$name.port" --log "$WORK/$name.log" "$@" >"$WORK/$name.err" 2>&1 &
	pid=$!
	on_exit "_stop_pid $pid"
	_wait_file "$WORK/$name.port" "$pid" || {
		echo "fault_proxy_start: $name did not start:" >&2
		cat "$WORK/$name.err" >&2
		return 1
	}
	_set "$name" PORT "$(sed -n 1p "$WORK/$name.port")"
	_set "$name" REDIRECT_PORT "$(sed -n 2p "$WORK/$name.port")"
	_set "$name" HOSTPORT "127.0.0.1:$(_var "$name" PORT)"
	_set "$name" URL "http://$(_var "$name" HOSTPORT)"
}

# fault_proxy_log_count NAME REGEX: how many lines of NAME's log match, e.g.
#   fault_proxy_log_count px '^redirect GET .* auth=no status=200'
fault_proxy_log_count() { grep -cE -- "$2" "$(_var "$1" LOG)" || true; }

# ---- building and pushing images -----------------------------------------

# make_layer DIR OUT.tar.gz: a reproducible gzip'ed tar of DIR's contents.
make_layer() {
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
		-C "$1" -cf - . | gzip -n >"$2"
}

# layer_diff_id LAYER.tar.gz: sha256:<hex> of the uncompressed tar.
layer_diff_id() { echo "sha256:$(gzip -dc "$1" | sha256sum | cut -d' ' -f1)"; }

# push_blob NAME REPO FILE: upload FILE (POST, then PUT ?digest=); prints
# its digest.
push_blob() {
	local name=$1 repo=$2 file=$3 url digest location code
	url=$(_var "$name" URL)
	digest=sha256:$(_sha256 "$file")
	location=$(registry_curl "$name" "$repo" -X POST -o /dev/null -D - \
		"$url/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: *//p')
	case $location in
	http://* | https://*) ;;
	/*) location=$url$location ;;
	'')
		echo "push_blob: $repo: no upload location" >&2
		return 1
		;;
	*) location=$url/v2/$repo/blobs/uploads/$location ;;
	esac
	[[ $location == *\?* ]] && location+="&" || location+="?"
	code=$(registry_curl "$name" "$repo" -T "$file" -H 'Content-Type: application/octet-stream' \
		-o "$WORK/.push_blob.out" -w '%{http_code}' "${location}digest=$digest")
	if [[ $code != 201 ]]; then
		echo "push_blob: $repo $digest: HTTP $code $(cat "$WORK/.push_blob.out")" >&2
		return 1
	fi
	echo "$digest"
}

# push_manifest NAME REPO REF FILE MEDIATYPE: PUT FILE as REPO's manifest REF
# (a tag or a digest); prints its digest.
push_manifest() {
	local name=$1 repo=$2 ref=$3 file=$4 type=$5 digest code
	digest=sha256:$(_sha256 "$file")
	code=$(registry_curl "$name" "$repo" -X PUT -H "Content-Type: $type" --data-binary "@$file" \
		-D "$WORK/.push_manifest.headers" -o "$WORK/.push_manifest.out" -w '%{http_code}' \
		"$(_var "$name" URL)/v2/$repo/manifests/$ref")
	if [[ $code != 201 ]]; then
		echo "push_manifest: $repo:$ref: HTTP $code $(cat "$WORK/.push_manifest.out")" >&2
		return 1
	fi
	if ! grep -qi "^docker-content-digest: $digest" "$WORK/.push_manifest.headers"; then
		echo "push_manifest: $repo:$ref: the registry names another digest" >&2
		return 1
	fi
	echo "$digest"
}

# image_dir NAME REPO REF: where push_test_image / push_test_index keep what
# they pushed:
#   manifest.json manifest.digest media_type   the manifest (or index)
#   config.json config.digest                  the image config
#   layer-N.tar.gz, layers, diff_ids           layers, their digests in order
#   amd64/ arm64/                              an index's children (same files)
image_dir() { echo "$WORK/images/$1/$2/$3"; }

_media_types() { # FORMAT -> manifest, config, layer and index media types
	case $1 in
	oci) echo application/vnd.oci.image.manifest.v1+json application/vnd.oci.image.config.v1+json \
		application/vnd.oci.image.layer.v1.tar+gzip application/vnd.oci.image.index.v1+json ;;
	docker) echo application/vnd.docker.distribution.manifest.v2+json \
		application/vnd.docker.container.image.v1+json \
		application/vnd.docker.image.rootfs.diff.tar.gzip \
		application/vnd.docker.distribution.manifest.list.v2+json ;;
	*)
		echo "registry.sh: unknown image format '$1' (oci, docker)" >&2
		return 1
		;;
	esac
}

# _descriptor MEDIATYPE FILE [EXTRA_JSON]: one descriptor as JSON.
_descriptor() {
	printf '{"mediaType":"%s","digest":"sha256:%s","size":%s%s}' \
		"$1" "$(_sha256 "$2")" "$(stat -c %s "$2")" "${3:+,$3}"
}

# _layer_files DIR: DIR/layer-N.tar.gz in the order of N.
_layer_files() { printf '%s\n' "$1"/layer-*.tar.gz | sort -V; }

# _write_image DIR FORMAT ARCH VARIANT LABEL: config.json and manifest.json
# for the layer-*.tar.gz already in DIR.
_write_image() {
	local dir=$1 format=$2 arch=$3 variant=$4 label=$5 types layer diff_ids="" history="" descs=""
	read -r -a types <<<"$(_media_types "$format")"
	: >"$dir/diff_ids"
	for layer in $(_layer_files "$dir"); do
		layer_diff_id "$layer" >>"$dir/diff_ids"
		diff_ids+="${diff_ids:+,}\"$(tail -1 "$dir/diff_ids")\""
		history+="${history:+,}{\"created\":\"1970-01-01T00:00:00Z\",\"created_by\":\"$(basename "$layer")\"}"
		descs+="${descs:+,}$(_descriptor "${types[2]}" "$layer")"
	done
	printf '{"architecture":"%s",%s"os":"linux","created":"1970-01-01T00:00:00Z",' \
		"$arch" "${variant:+\"variant\":\"$variant\",}" >"$dir/config.json"
	printf '"config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"Labels":{"dindfs.test.image":"%s","dindfs.test.nonce":"%s"}},' \
		"$label" "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >>"$dir/config.json"
	printf '"rootfs":{"type":"layers","diff_ids":[%s]},"history":[%s]}' "$diff_ids" "$history" >>"$dir/config.json"
	printf '{"schemaVersion":2,"mediaType":"%s","config":%s,"layers":[%s]}' \
		"${types[0]}" "$(_descriptor "${types[1]}" "$dir/config.json")" "$descs" >"$dir/manifest.json"
	echo "${types[0]}" >"$dir/media_type"
}

# _push_image NAME REPO REF DIR: push DIR's layers, config and manifest.
_push_image() {
	local name=$1 repo=$2 ref=$3 dir=$4 layer
	: >"$dir/layers"
	for layer in $(_layer_files "$dir"); do
		push_blob "$name" "$repo" "$layer" >>"$dir/layers"
	done
	push_blob "$name" "$repo" "$dir/config.json" >"$dir/config.digest"
	push_manifest "$name" "$repo" "$ref" "$dir/manifest.json" "$(cat "$dir/media_type")" \
		>"$dir/manifest.digest"
}

# The busybox layer, the same bytes (and digest) in every image.
_busybox_layer() {
	local out=$WORK/images/.busybox.tar.gz root applet
	if [[ ! -s $out ]]; then
		root=$WORK/images/.busybox
		mkdir -p "$root/bin" "$root/tmp"
		cp /bin/busybox "$root/bin/busybox"
		for applet in $(/bin/busybox --list); do
			[[ -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
		done
		make_layer "$root" "$out"
	fi
	echo "$out"
}

# _random_layer OUT BYTES NAME: a layer holding one file of random bytes.
_random_layer() {
	local tmp
	tmp=$(mktemp -d "$WORK/.layer.XXXXXX")
	mkdir "$tmp/data"
	head -c "$2" /dev/urandom >"$tmp/data/$3"
	make_layer "$tmp" "$1"
	rm -rf "$tmp"
}

# push_test_image NAME REPO TAG [oci|docker] [LAYER_COUNT] [LAYER_BYTES]
# An amd64/linux image: layer 1 is busybox (/bin/sh and every applet; the
# same digest in every image), layers 2..LAYER_COUNT each hold one file of
# LAYER_BYTES random bytes (defaults: oci, 2 layers, 4096 bytes). Each call
# makes a new image (its config has a random label). Prints the manifest
# digest and sets IMAGE_DIR, IMAGE_DIGEST, IMAGE_CONFIG_DIGEST and the array
# IMAGE_LAYERS; the files are in $(image_dir NAME REPO TAG).
push_test_image() {
	local name=$1 repo=$2 tag=$3 format=${4:-oci} count=${5:-2} bytes=${6:-4096} dir i
	dir=$(image_dir "$name" "$repo" "$tag")
	rm -rf "$dir" && mkdir -p "$dir"
	cp "$(_busybox_layer)" "$dir/layer-1.tar.gz"
	for ((i = 2; i <= count; i++)); do
		_random_layer "$dir/layer-$i.tar.gz" "$bytes" "layer-$i.bin"
	done
	_write_image "$dir" "$format" amd64 "" "$repo:$tag"
	_push_image "$name" "$repo" "$tag" "$dir"
	IMAGE_DIR=$dir
	IMAGE_DIGEST=$(cat "$dir/manifest.digest")
	IMAGE_CONFIG_DIGEST=$(cat "$dir/config.digest")
	mapfile -t IMAGE_LAYERS <"$dir/layers"
	echo "$IMAGE_DIGEST"
}

# push_test_index NAME REPO TAG [oci|docker]
# An index (OCI) or manifest list (docker) of two small images, linux/amd64
# and linux/arm64 variant v8, each one layer of its own; the children are
# pushed by digest only. Prints the index digest and sets INDEX_DIR,
# INDEX_DIGEST, INDEX_AMD64_DIGEST, INDEX_ARM64_DIGEST; the files are in
# $(image_dir NAME REPO TAG) and its amd64/ and arm64/.
push_test_index() {
	local name=$1 repo=$2 tag=$3 format=${4:-oci} dir types arch variant entries="" child
	read -r -a types <<<"$(_media_types "$format")"
	dir=$(image_dir "$name" "$repo" "$tag")
	rm -rf "$dir" && mkdir -p "$dir"
	for arch in amd64 arm64; do
		variant=""
		[[ $arch != arm64 ]] || variant=v8
		child=$dir/$arch
		mkdir "$child"
		_random_layer "$child/layer-1.tar.gz" 1024 "$arch.bin"
		_write_image "$child" "$format" "$arch" "$variant" "$repo:$tag/$arch"
		_push_image "$name" "$repo" "sha256:$(_sha256 "$child/manifest.json")" "$child"
		entries+="${entries:+,}$(_descriptor "${types[0]}" "$child/manifest.json" \
			"\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"${variant:+,\"variant\":\"$variant\"}}")"
	done
	printf '{"schemaVersion":2,"mediaType":"%s","manifests":[%s]}' "${types[3]}" "$entries" \
		>"$dir/manifest.json"
	echo "${types[3]}" >"$dir/media_type"
	push_manifest "$name" "$repo" "$tag" "$dir/manifest.json" "${types[3]}" >"$dir/manifest.digest"
	INDEX_DIR=$dir
	INDEX_DIGEST=$(cat "$dir/manifest.digest")
	INDEX_AMD64_DIGEST=$(cat "$dir/amd64/manifest.digest")
	INDEX_ARM64_DIGEST=$(cat "$dir/arm64/manifest.digest")
	echo "$INDEX_DIGEST"
}
