#!/usr/bin/env bash
# dindfs with a real dockerd (Debian's docker.io): `dindfs load` and
# `dindfs save` over its socket, and `docker pull` through `dindfs mirror`
# set as its registry mirror. Containers run from what came through the
# cache, and the registry's access log shows what upstream was asked.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"
. "$(dirname "$0")/docker_lib.sh"

own_docker_config
MNT=$WORK/mnt

registry_start hub
push_test_image hub library/app v1 docker 2 300000 >/dev/null
app_layers=("${IMAGE_LAYERS[@]}")
must_mount "$MNT" --store "$WORK/store" --upstream "docker.io=$hub_URL"
port=$(free_port)
"$DINDFS" mirror --root "$MNT" --listen "127.0.0.1:$port" 2>"$WORK/mirror.err" &
mirror_pid=$!
on_exit "kill $mirror_pid 2>/dev/null; wait $mirror_pid 2>/dev/null"

check "a dockerd of our own starts" dockerd_start one
D1=$one_HOST
dk() { DOCKER_HOST=$D1 docker "$@"; }

# ---- load: the cache -> dockerd, no registry -----------------------------

expect_exit 0 "dindfs load of an image not yet cached" "$DINDFS" load --root "$MNT" --host "$D1" app:v1
expect_match "$WORK/out" '^Loaded image: app:v1$' "it says what it loaded"
expect_exit 0 "the image runs" dk run --rm --network none app:v1 /bin/sh -c 'echo hello from app'
expect_match "$WORK/out" '^hello from app$' "with its own shell"
check "the layers came through the cache" test "$(registry_log_count hub GET "/v2/library/app/blobs/${app_layers[1]}")" = 1
dk rmi app:v1 >/dev/null
expect_exit 0 "a second load" "$DINDFS" load --root "$MNT" --host "$D1" app:v1
check "asks upstream for no blob again" test "$(registry_log_count hub GET "/v2/library/app/blobs/${app_layers[1]}")" = 1
expect_exit 1 "load of an image that does not exist" "$DINDFS" load --root "$MNT" --host "$D1" nope:1
expect_match "$WORK/err" "not found upstream" "it says so"
expect_exit 1 "load to a dockerd that is not there" "$DINDFS" load --root "$MNT" --host "unix://$WORK/none.sock" app:v1
expect_lines "$WORK/err" 1 "in one line"

# ---- save: dockerd -> the cache, then load it elsewhere ---------------------

dk tag app:v1 built/here:v2
expect_exit 0 "dindfs save of a local image" "$DINDFS" save --root "$MNT" --host "$D1" built/here:v2
expect_match "$WORK/out" 'as local/built/here:v2$' "it names the local image"
check "the manifest is under registry/local/" test -f "$MNT/registry/local/built/here/manifests/v2"
check "a dockerd of its own for the other level" dockerd_start two
expect_exit 0 "dindfs load local/built/here:v2 elsewhere" "$DINDFS" load --root "$MNT" --host "$two_HOST" local/built/here:v2
expect_exit 0 "the saved image runs there" \
	env DOCKER_HOST="$two_HOST" docker run --rm --network none local/built/here:v2 /bin/sh -c 'echo saved and loaded'
expect_match "$WORK/out" '^saved and loaded$' "with its own shell"
expect_exit 1 "save of an image dockerd lacks" "$DINDFS" save --root "$MNT" --host "$D1" never:1
expect_lines "$WORK/err" 1 "in one line"

# ---- docker pull through dindfs mirror ----------------------------------

dockerd_stop two
push_test_image hub library/fresh v1 docker 2 200000 >/dev/null
fresh_layers=("${IMAGE_LAYERS[@]}")
check "a dockerd with the mirror as registry-mirrors" dockerd_start three --registry-mirror "http://127.0.0.1:$port"
expect_exit 0 "docker pull through the mirror" env DOCKER_HOST="$three_HOST" docker pull fresh:v1
expect_exit 0 "the pulled image runs" \
	env DOCKER_HOST="$three_HOST" docker run --rm --network none fresh:v1 /bin/sh -c 'echo pulled through dindfs'
expect_match "$WORK/out" '^pulled through dindfs$' "with its own shell"
check "upstream was asked for each layer once" \
	test "$(registry_log_count hub GET "/v2/library/fresh/blobs/${fresh_layers[1]}")" = 1
DOCKER_HOST=$three_HOST docker rmi fresh:v1 >/dev/null
expect_exit 0 "a second docker pull" env DOCKER_HOST="$three_HOST" docker pull fresh:v1
check "upstream was not asked for the layer again" \
	test "$(registry_log_count hub GET "/v2/library/fresh/blobs/${fresh_layers[1]}")" = 1

finish
