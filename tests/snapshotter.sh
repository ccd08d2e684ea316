#!/usr/bin/env bash
# dindfs snapshotter behind a real containerd (Debian's, as a proxy plugin)
# on the host, driven with ctr: the snapshot calls and their errors over
# gRPC, overlay mounts that really mount, a client that sends garbage, and a
# clean stop. Seconds; the engine side is tests/layers_e2e.sh.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"

SOCK=$WORK/snap.sock
cat >"$WORK/containerd.toml" <<EOF
version = 2
root = "$WORK/containerd-root"
state = "$WORK/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$WORK/containerd.sock"
[ttrpc]
  address = "$WORK/containerd.sock.ttrpc"
[proxy_plugins.dindfs]
  type = "snapshot"
  address = "$SOCK"
EOF
mkdir -p "$WORK/root/layers"
"$DINDFS" snapshotter --root "$WORK/root" --socket "$SOCK" --state "$WORK/state" \
	--log-requests >"$WORK/snap.log" 2>&1 &
snap_pid=$!
on_exit "kill $snap_pid 2>/dev/null"
containerd --config "$WORK/containerd.toml" >"$WORK/containerd.log" 2>&1 &
containerd_pid=$!
on_exit "kill $containerd_pid 2>/dev/null; wait $containerd_pid 2>/dev/null"
check "the snapshotter listens" wait_until 10 test -S "$SOCK"
check "containerd starts" wait_until 20 test -S "$WORK/containerd.sock"
sn() { ctr -a "$WORK/containerd.sock" snapshots --snapshotter dindfs "$@"; }
on_exit "umount '$WORK/mnt' 2>/dev/null"

expect_exit 0 "prepare a first snapshot" sn prepare k1
expect_exit 0 "its mounts" sn mounts "$WORK/mnt" k1
check "... a read-write bind of its fs" \
	test "$(cat "$WORK/out")" = "mount -t bind $WORK/state/snapshots/1/fs $WORK/mnt -o rw,rbind"
echo one >"$WORK/state/snapshots/1/fs/file"
expect_exit 0 "commit it" sn commit c1 k1
expect_exit 0 "prepare on it" sn prepare k2 c1
expect_exit 0 "its mounts" sn mounts "$WORK/mnt" k2
check "... overlay with an upper of its own" \
	test "$(cat "$WORK/out")" = "mount -t overlay overlay $WORK/mnt -o index=off,workdir=$WORK/state/snapshots/2/work,upperdir=$WORK/state/snapshots/2/fs,lowerdir=$WORK/state/snapshots/1/fs"
mkdir -p "$WORK/mnt"
expect_exit 0 "that mount mounts" bash -c "$(cat "$WORK/out")"
check "... shows the committed file" grep -qx one "$WORK/mnt/file"
echo two >"$WORK/mnt/file"
umount "$WORK/mnt"
check "... and a write lands in the upper, not in the parent" \
	test "$(cat "$WORK/state/snapshots/2/fs/file" "$WORK/state/snapshots/1/fs/file")" = "$(printf 'two\none')"
expect_exit 0 "list" sn ls
expect_match "$WORK/out" '^k2 +c1 +Active' "... k2 on c1, active"
expect_match "$WORK/out" '^c1 +Committed' "... c1 committed"
expect_exit 0 "label c1" sn label c1 team=dindfs
expect_exit 0 "info c1" sn info c1
expect_match "$WORK/out" '"team": "dindfs"' "... carries the label"
expect_exit 1 "removing a parent fails" sn rm c1
expect_match "$WORK/err" 'failed precondition' "... with FAILED_PRECONDITION"
expect_exit 1 "preparing a taken key fails" sn prepare k2 c1
expect_match "$WORK/err" 'already exists' "... with ALREADY_EXISTS"
# --log-requests: one line per call that reaches it, with its gRPC status
# (containerd itself refuses the taken key and the parent's removal)
call_line='^dindfs snapshotter: [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6} '
ms='in [0-9]+\.[0-9]{2} ms \(request [0-9]+\.[0-9]{2}, handling [0-9]+\.[0-9]{2}\)$'
expect_match "$WORK/snap.log" "${call_line}Commit: status 0 $ms" "--log-requests: the Commit, status 0, its milliseconds"
expect_match "$WORK/snap.log" "${call_line}Mounts: status 0 $ms" "... the Mounts"
check "... one line per call: the 2 Prepares" test "$(grep -c ' Prepare: status 0 ' "$WORK/snap.log")" = 2

# a client that sends garbage, then one that connects and says nothing
timeout 10 python3 - "$SOCK" <<'EOF' || true
import os, socket, sys
garbage = socket.socket(socket.AF_UNIX)
garbage.connect(sys.argv[1])
garbage.sendall(os.urandom(4096))
silent = socket.socket(socket.AF_UNIX)
silent.connect(sys.argv[1])
garbage.close()
EOF
check "the snapshotter outlives them" kill -0 "$snap_pid"
expect_exit 0 "and answers after them" sn mounts "$WORK/mnt" k2
expect_match "$WORK/out" "upperdir=$WORK/state/snapshots/2/fs," "... with k2's mounts"

kill -TERM "$snap_pid"
code=0
wait "$snap_pid" || code=$?
check "SIGTERM stops it with exit 0 (got $code)" test "$code" = 0
check "... removing its socket" test ! -e "$SOCK"
expect_exit 0 "its state outlives it" sqlite3 "$WORK/state/metadata.db" 'SELECT name, kind FROM snapshots'
# containerd names them NAMESPACE/ID/KEY in its snapshotters
expect_match "$WORK/out" '^default/[0-9]+/c1\|3$' "... c1, committed"
expect_match "$WORK/out" '^default/[0-9]+/k2\|2$' "... k2, active"
expect_exit 2 "a stray argument is a usage error" "$DINDFS" snapshotter extra
expect_match "$WORK/err" "unexpected argument 'extra'" "... that names it"
expect_exit 2 "--containerd without --content is a usage error" \
	"$DINDFS" snapshotter --containerd "$WORK/containerd.sock"
expect_match "$WORK/err" "--containerd needs --content" "... that says so"
printf x >"$WORK/file"
expect_exit 1 "a socket path that is a file is refused" \
	"$DINDFS" snapshotter --root "$WORK/root" --socket "$WORK/file" --state "$WORK/state"
expect_match "$WORK/err" "^dindfs: cannot listen on '$WORK/file': not a socket$" "... in one line"
check "... and the file is kept" test "$(cat "$WORK/file")" = x
finish
