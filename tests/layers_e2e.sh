#!/usr/bin/env bash
# Shared layers, end to end, on Debian 13's docker.io 26.1 (the containerd
# image store, dindfs snapshotter as its storage driver):
#
#   host:  a dockerd of the test's own (or $DIND_HOST's, to iterate); Debian's
#          docker-registry as docker.io, holding library/layered:1 (busybox,
#          then files, then a layer that deletes one and makes a directory
#          opaque); dindfs mounted, the image pulled into it, its layers
#          unpacked by the host daemon under the mount's layers/
#   L1 a:  pulls the image: containerd finds every layer in the shared trees,
#          and its content store links each layer blob to the host's
#   L1 b:  pulls it again: no layer blob is read from the mount (only the
#          config), /var/lib/docker grows by well under 1 MB; containers see
#          the right files, whiteouts honoured, writes stay in the container;
#          the layers are the host daemon's EROFS mounts of its images over
#          the trees, seen through the level's bind of the mount (the level
#          mounts none of its own);
#          docker images lists it at once, build FROM, save (every layer, the
#          right digests), rmi (containerd's GC removes the links alone)
#
# Levels run with --network none. Needs the DinD image dindfs-dind:13 (built
# here, cached in the shared data-root as for tests/e2e.sh).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"
. "$(dirname "$0")/docker_lib.sh"

export DOCKER_CONFIG=$WORK/docker-config
mkdir -p "$DOCKER_CONFIG"
MNT=$WORK/mnt
. "$(dirname "$0")/dind_lib.sh"
LEVEL+=(-e DOCKERD_CONFIG='{"features": {"containerd-snapshotter": true}}')
IMAGE=layered:1

# ---- the image and its shared trees ---------------------------------------------

image=$WORK/image
mkdir -p "$image" "$WORK/l2/etc" "$WORK/l2/data" "$WORK/l2/opq" \
	"$WORK/l3/data" "$WORK/l3/opq"
cp "$(_busybox_layer)" "$image/layer-1.tar.gz"
echo "from layer 2" >"$WORK/l2/etc/greeting"
echo "deleted in layer 3" >"$WORK/l2/data/gone"
echo "kept" >"$WORK/l2/data/kept"
echo "hidden by layer 3" >"$WORK/l2/opq/old"
head -c 2000000 /dev/urandom >"$WORK/l2/data/big"
make_layer "$WORK/l2" "$image/layer-2.tar.gz"
touch "$WORK/l3/data/.wh.gone" "$WORK/l3/opq/.wh..wh..opq"
echo "new in layer 3" >"$WORK/l3/opq/new"
make_layer "$WORK/l3" "$image/layer-3.tar.gz"
_write_image "$image" docker amd64 "" "$IMAGE"

# ---- the host ---------------------------------------------------------------------

if [[ -z ${DIND_HOST:-} ]]; then
	check "a dockerd of our own starts" dockerd_start host
else
	host_HOST=$DIND_HOST # a developer's dockerd, with the images built
fi
registry_start hub
_push_image hub library/layered 1 "$image"
must_mount "$MNT" --store "$WORK/store" --upstream "docker.io=$hub_URL"
# the host has the image cached, as it has when it unpacked the layers
expect_exit 0 "dindfs pull $IMAGE on the host" "$DINDFS" pull --root "$MNT" "docker.io/library/$IMAGE"
hub_gets=$(registry_log_count hub GET '/v2/library/layered/blobs/sha256:[0-9a-f]{64}')
# three_trees: the host daemon has unpacked the three layers under layers/
three_trees() {
	local layer
	for layer in "$image"/layer-*.tar.gz; do
		[[ -d $MNT/layers/$(layer_diff_id "$layer") && -f $MNT/layers/$(layer_diff_id "$layer").erofs ]] ||
			return 1
	done
}
check "the host daemon unpacks the image's three layers under the mount's layers/, with their EROFS images" \
	wait_until 120 three_trees
check "... and shares the images: mounted over the trees" wait_until 60 stat_is "$MNT" layer_images_shared 3
dind_build 13 || {
	finish || true
	exit 1
}
lap "the host"

# lv LEVEL COMMAND: bash -c COMMAND in a level
lv() {
	local name=$1
	shift
	dk exec "$name" bash -c "$*"
}

# ---- L1 a: the first pull ---------------------------------------------------------

start_level snap-a dindfs-dind:13
expect_exit 0 "the level's dockerd uses the containerd image store with dindfs as its snapshotter" \
	lv snap-a 'docker info -f "{{.Driver}} {{json .DriverStatus}}"'
expect_match "$WORK/out" '^dindfs ' "docker info: storage driver dindfs"
expect_exit 0 "dindfs doctor in L1 a" lv snap-a "dindfs doctor >/tmp/doctor; grep -E 'shared layers|layer blobs|layer images' /tmp/doctor"
expect_match "$WORK/out" '^ok +shared layers: yes ' "... says the level uses the shared layers"
expect_match "$WORK/out" "^info +layer blobs: none in containerd's content store yet$" "... and no layer blob yet"
expect_match "$WORK/out" "^ok +layer images: 3 shared by the host .*, 0 mounted here$" \
	"... and that the level sees the host's three shared images, mounting none"
CONTENT=/var/lib/docker/containerd/io.containerd.content.v1.content
stats_save "$MNT" "$WORK/stats.a0"
expect_exit 0 "L1 a: docker pull $IMAGE" lv snap-a "docker pull -q $IMAGE"
stats_save "$MNT" "$WORK/stats.a1"
opened=$(($(stat_in "$WORK/stats.a1" blob_hits) - $(stat_in "$WORK/stats.a0" blob_hits)))
check "... opens two files of the mount's store ($opened): the manifest and the config, no layer" \
	test "$opened" = 2
expect_exit 0 "L1 a: containerd's content store" lv snap-a "ctr -n moby content ls -q | sort"
check "... lists the manifest, the config and the three layer blobs" \
	test "$(cat "$WORK/out")" = "$(sort "$image/manifest.digest" "$image/config.digest" "$image/layers")"
for layer in $(cat "$image/layers"); do
	expect_exit 0 "layer $layer in the content store" lv snap-a "readlink $CONTENT/blobs/sha256/${layer#sha256:}"
	check "... is a link to the host's blob, no copy" grep -qx "/dindfs/blobs/sha256/${layer#sha256:}" "$WORK/out"
done
expect_exit 0 "dindfs doctor in L1 a after the pull" \
	lv snap-a "dindfs doctor >/tmp/doctor; rc=\$?; grep -E 'snapshotter:|layer blobs:' /tmp/doctor; exit \$rc"
expect_match "$WORK/out" '^ok +snapshotter: dindfs snapshotter answers at /run/dindfs/snapshotter\.sock$' \
	"... says the snapshotter answers"
expect_match "$WORK/out" "^ok +layer blobs: 3 of the 5 blobs in containerd's content store are links to the host's store \\(no copy\\)$" \
	"... and that the 3 layer blobs of the 5 (with the manifest and the config) are links"
# the socket moved away for a moment: containerd keeps its connection
expect_exit 1 "dindfs doctor in L1 a with no snapshotter socket fails" \
	lv snap-a "mv /run/dindfs/snapshotter.sock /run/dindfs/moved.sock; dindfs doctor >/tmp/doctor; rc=\$?
		mv /run/dindfs/moved.sock /run/dindfs/snapshotter.sock; grep 'snapshotter:' /tmp/doctor; exit \$rc"
expect_match "$WORK/out" '^FAIL +snapshotter: no socket at /run/dindfs/snapshotter\.sock: pulls and container starts fail$' \
	"... and says why"
lap "L1 a"

# ---- L1 b: nothing to fetch, nothing to unpack -----------------------------------------

# Debian's docker-registry (a Go binary on libc alone) inside L1 b, for docker push
start_level snap-b dindfs-dind:13 -v "$(command -v docker-registry):/usr/local/bin/docker-registry:ro"
before=$(lv snap-b 'du -sxk /var/lib/docker | cut -f1')
stats_save "$MNT" "$WORK/stats.b0"
# docker images right after the pull: the snapshotter records the layer blobs
# from a worker thread once Prepare has answered (README, "Shared layers")
expect_exit 0 "L1 b: docker pull $IMAGE, then at once docker images" \
	lv snap-b "docker pull -q $IMAGE >/dev/null && docker images --format '{{.Repository}}:{{.Tag}}' $IMAGE"
check "... lists it" test "$(cat "$WORK/out")" = "$IMAGE"
stats_save "$MNT" "$WORK/stats.b1"
after=$(lv snap-b 'du -sxk /var/lib/docker | cut -f1')
opened=$(($(stat_in "$WORK/stats.b1" blob_hits) - $(stat_in "$WORK/stats.b0" blob_hits)))
check "... the pull opened two files of the mount's store ($opened): the manifest and the config, no layer" \
	test "$opened" = 2
expect_exit 0 "L1 b: containerd's content store" lv snap-b "ctr -n moby content ls -q | sort"
check "... lists the manifest, the config and the three layer blobs" \
	test "$(cat "$WORK/out")" = "$(sort "$image/manifest.digest" "$image/config.digest" "$image/layers")"
check "the levels' pulls sent no blob request upstream" \
	test "$(registry_log_count hub GET '/v2/library/layered/blobs/sha256:[0-9a-f]{64}')" = "$hub_gets"
check "L1 b's /var/lib/docker grew by well under 1 MB ($((after - before)) KiB; the image is 3 MB)" \
	test "$((after - before))" -lt 256
expect_exit 0 "L1 b's EROFS mounts" lv snap-b "awk '\$3 == \"erofs\" { print \$2 }' /proc/mounts | sort"
check "... are the host's three, over the trees in the level's /dindfs/layers/: the level mounted none" \
	test "$(cat "$WORK/out")" = \
	"$(for l in "$image"/layer-*.tar.gz; do echo "/dindfs/layers/$(layer_diff_id "$l")"; done | sort)"
expect_exit 0 "dindfs doctor in L1 b" lv snap-b "dindfs doctor >/tmp/doctor; grep 'layer images:' /tmp/doctor"
expect_match "$WORK/out" '^ok +layer images: 3 shared by the host .*, 0 mounted here$' "... counts them"
lap "L1 b pull"

expect_exit 0 "a container reads each layer's files" \
	lv snap-b "docker run --rm --network none $IMAGE sh -c 'cat /etc/greeting /data/kept /opq/new; wc -c </data/big'"
check "... with the contents the layers gave them" \
	test "$(cat "$WORK/out")" = "$(printf 'from layer 2\nkept\nnew in layer 3\n2000000')"
expect_exit 0 "a file deleted in layer 3 is absent, an opaque directory shows only layer 3's files" \
	lv snap-b "docker run --rm --network none $IMAGE sh -c 'test ! -e /data/gone && ls /opq'"
check "... /opq holds 'new' alone" test "$(cat "$WORK/out")" = new
expect_exit 0 "writes in a container stay in it" \
	lv snap-b "docker run --rm --network none $IMAGE sh -c 'echo mine >/etc/greeting && rm /data/kept && cat /etc/greeting'
		docker run --rm --network none $IMAGE sh -c 'cat /etc/greeting /data/kept'"
check "... the next container and the shared tree see the image as it was" \
	test "$(cat "$WORK/out")" = "$(printf 'mine\nfrom layer 2\nkept')"
check "... and the shared trees are untouched" grep -qx 'from layer 2' "$MNT/layers/$(layer_diff_id "$image/layer-2.tar.gz")/etc/greeting"
dk exec snap-a docker run --rm --network none $IMAGE cat /etc/greeting >"$WORK/at-a" 2>&1 &
at_a=$!
dk exec snap-b docker run --rm --network none $IMAGE cat /etc/greeting >"$WORK/at-b" 2>&1 &
at_b=$!
check "two levels run the image at once: a" wait "$at_a"
check "two levels run the image at once: b" wait "$at_b"
check "... both read the file" test "$(cat "$WORK/at-a" "$WORK/at-b")" = "$(printf 'from layer 2\nfrom layer 2')"

expect_exit 0 "docker build FROM it" \
	lv snap-b "printf 'FROM $IMAGE\nRUN cat /etc/greeting >/built && test ! -e /data/gone\n' |
		docker build --network none -q -t derived:1 - && docker run --rm --network none derived:1 cat /built"
check "... sees the image's files" grep -qx 'from layer 2' "$WORK/out"

expect_exit 0 "docker save of it" lv snap-b "docker save -o /tmp/saved.tar $IMAGE"
mkdir -p "$WORK/saved"
expect_exit 0 "... writes an archive" lv snap-b "cat /tmp/saved.tar"
cp "$WORK/out" "$WORK/saved.tar" # expect_exit writes out again
expect_exit 0 "... that unpacks" tar -x -C "$WORK/saved" -f "$WORK/saved.tar"
for layer in $(cat "$image/layers"); do
	check "... that holds layer $layer" test -s "$WORK/saved/blobs/sha256/${layer#sha256:}"
done
check "... every blob in it with the digest it is named by" blobs_verified "$WORK/saved/blobs/sha256"
check "... and nothing was fetched upstream for it" \
	test "$(registry_log_count hub GET '/v2/library/layered/blobs/sha256:[0-9a-f]{64}')" = "$hub_gets"
# docker push reads the layer blobs through the links, from the host's store
expect_exit 0 "a registry in L1 b" lv snap-b "mkdir -p /tmp/reg && printf '%s\n' 'version: 0.1' \
	'storage: {filesystem: {rootdirectory: /tmp/reg}}' 'http: {addr: 127.0.0.1:5055}' >/tmp/reg.yml &&
	{ docker-registry serve /tmp/reg.yml >/tmp/reg.log 2>&1 & } &&
	for i in \$(seq 50); do grep -q 'listening on' /tmp/reg.log && exit 0; sleep 0.2; done; exit 1"
expect_exit 0 "docker push of it to that registry" \
	lv snap-b "docker tag $IMAGE 127.0.0.1:5055/layered:1 && docker push -q 127.0.0.1:5055/layered:1"
expect_exit 0 "... which then holds" lv snap-b "ls /tmp/reg/docker/registry/v2/blobs/sha256/*/ | sort"
for layer in $(cat "$image/layers"); do
	expect_match "$WORK/out" "^${layer#sha256:}\$" "... layer $layer (the registry checks each digest)"
done
expect_exit 0 "... and tags the image's manifest" \
	lv snap-b "cat /tmp/reg/docker/registry/v2/repositories/layered/_manifests/tags/1/current/link"
check "... unchanged ($(cat "$image/manifest.digest"))" test "$(cat "$WORK/out")" = "$(cat "$image/manifest.digest")"
expect_exit 0 "docker rmi of the pushed tag" lv snap-b "docker rmi 127.0.0.1:5055/layered:1"
expect_exit 0 "docker rmi of the derived image and of it" lv snap-b "docker rmi derived:1 $IMAGE"
expect_exit 0 "docker images no longer lists it" lv snap-b "docker images -q $IMAGE"
expect_lines "$WORK/out" 0 "... (no line)"
# links_gone: containerd's GC has removed every layer's link
links_gone() {
	local layer
	for layer in $(cat "$image/layers"); do
		lv snap-b "test ! -L $CONTENT/blobs/sha256/${layer#sha256:}" || return 1
	done
}
check "containerd's GC removes the layer links" wait_until 30 links_gone
for layer in $(cat "$image/layers"); do
	check "... and keeps the host's blob of $layer" test -f "$MNT/blobs/sha256/${layer#sha256:}"
done
check "... whose digests still verify" blobs_verified "$MNT/blobs/sha256"
expect_exit 0 "docker pull of it once more" lv snap-b "docker pull -q $IMAGE >/dev/null &&
	docker images --format '{{.Repository}}:{{.Tag}}' $IMAGE && docker run --rm --network none $IMAGE cat /etc/greeting"
check "... is listed and runs" test "$(cat "$WORK/out")" = "$(printf '%s\nfrom layer 2' "$IMAGE")"
# the record lands before Prepare answers: docker images never misses it
listed=0
for round in 1 2 3 4 5; do
	lv snap-b "docker rmi -f $IMAGE >/dev/null && docker pull -q $IMAGE >/dev/null &&
		docker images -q $IMAGE" >"$WORK/round" 2>&1 && [[ $(wc -l <"$WORK/round") == 1 ]] &&
		listed=$((listed + 1))
done
check "docker rmi, docker pull, then at once docker images: listed $listed times of 5" test "$listed" = 5
lap "L1 b"
finish
