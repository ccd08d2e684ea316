#!/usr/bin/env bash
# The daemon killed (-9) at random moments while 8 readers read a 3-layer
# image cold through it, 50 times over. After each kill, fsck of the store
# is clean and every file under blobs/ hashes to its name; mounted again,
# every blob of the image reads back with its digest. (A fresh store each
# round, so that every round's reads are cold.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"

ROUNDS=${KILL_ROUNDS:-50}
own_docker_config # no credentials from ~

registry_start hub
push_test_image hub library/app v1 oci 3 500000 >/dev/null
blobs=("$IMAGE_DIGEST" "$IMAGE_CONFIG_DIGEST" "${IMAGE_LAYERS[@]}")
# 2 MB/s a download: a round's reads take half a second or so, and the kill lands amid them
fault_proxy_start slow "$hub_URL" --match '^GET /v2/.*/blobs/' --throttle 2000000
UP=(--upstream "$slow_HOSTPORT=$slow_URL")
# after the kill, the same registry name, straight to the registry: reading back needs no throttle
BACK=(--upstream "$slow_HOSTPORT=$hub_URL")
repo_blob() { mnt_repo_blob "$MNT" "$slow_HOSTPORT" library/app "$1"; }

# reader N: the manifest by tag, then the config and layers, from blob N % 3 on
reader() {
	local i
	T cat "$(mnt_manifest "$MNT" "$slow_HOSTPORT" library/app v1)" || return
	for ((i = 0; i < 4; i++)); do
		T cat "$(repo_blob "${blobs[1 + ($1 + i) % 4]}")" || return
	done
}

# downloading STORE: a download has its temp file in STORE/tmp
downloading() { compgen -G "$1/tmp/*" >/dev/null; }

# files_verified STORE: every file under STORE/blobs hashes to its name
files_verified() {
	local f
	while IFS= read -r f; do
		[[ $(sha256sum "$f" | cut -c1-64) == "$(basename "$f")" ]] || {
			echo "    $f holds other bytes"
			return 1
		}
	done < <(find "$1/blobs" -type f)
}

# reads_back: every blob of the image, through the mount, hashes to its digest
reads_back() {
	local d got
	T cat "$(mnt_manifest "$MNT" "$slow_HOSTPORT" library/app v1)" >/dev/null || return 1
	for d in "${blobs[@]}"; do
		got=sha256:$(T cat "$(repo_blob "$d")" | sha256sum | cut -c1-64)
		[[ $got == "$d" ]] || {
			echo "    $d read back as $got"
			return 1
		}
	done
}

unsound=() unreadable=() mount_failed=() mid_commit=0
for ((round = 1; round <= ROUNDS; round++)); do
	# a mount point and a store of its own: the last round's daemon may still be ending
	store=$WORK/store-$round MNT=$WORK/mnt-$round
	if ! mount_dindfs "$MNT" --store "$store" "${UP[@]}"; then
		mount_failed+=("$round")
		continue
	fi
	pid=$MOUNT_PID
	readers=()
	for n in 0 1 2 3 4 5 6 7; do
		(reader "$n" >/dev/null 2>&1) &
		readers+=($!)
	done
	# a random moment once the first download runs (however loaded the machine)
	wait_until 20 downloading "$store" || true
	sleep "0.$(printf '%03d' $((RANDOM % 800)))"
	kill -KILL "$pid"
	for ((i = 0; i < 200; i++)); do pid_alive "$pid" || break; sleep 0.05; done
	fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
	wait "${readers[@]}" 2>/dev/null || true
	# how far it got: some rounds die with blobs committed, some before any
	n=$(find "$store/blobs" -type f 2>/dev/null | wc -l)
	((n == 0 || n == ${#blobs[@]})) || mid_commit=$((mid_commit + 1))
	if ! { files_verified "$store" && "$DINDFS" fsck --store "$store" >"$WORK/fsck.out" 2>&1; }; then
		unsound+=("$round")
		sed 's/^/    fsck: /' "$WORK/fsck.out" | tail -3
	fi
	if ! mount_dindfs "$MNT" --store "$store" "${BACK[@]}"; then
		mount_failed+=("$round")
		continue
	fi
	reads_back || unreadable+=("$round")
	kill -TERM "$MOUNT_PID" # it unmounts itself; the cleanup mount_dindfs registered makes sure
	[[ ! -d $WORK/store-$((round - 2)) ]] || rm -rf "$WORK/store-$((round - 2))"
done

check "the daemon mounted the store again after each of $ROUNDS kills (failed: ${mount_failed[*]:-none})" \
	test ${#mount_failed[@]} = 0
check "after each kill, every file under blobs/ hashes to its name and fsck is clean (not: ${unsound[*]:-none})" \
	test ${#unsound[@]} = 0
check "after each restart, every blob of the image reads back with its digest (not: ${unreadable[*]:-none})" \
	test ${#unreadable[@]} = 0
# not a property of dindfs but of the test: the kills did land amid the work
check "some kills landed with part of the image committed ($mid_commit of $ROUNDS)" test "$mid_commit" -gt 0
check "the proxy served the downloads (it was in the way)" \
	test "$(fault_proxy_log_count slow 'GET /v2/library/app/blobs/')" -ge "$ROUNDS"
finish
