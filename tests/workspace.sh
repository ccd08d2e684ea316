#!/usr/bin/env bash
# dindfs mount --workspace: the directory served read-write at
# MNT/workspace. Appends from several writers (and from the host directly)
# that never tear or get lost; a real source tree with git; renames with
# flags, links, fifos, xattrs, locks, holes, fallocate, copy_file_range; an
# overlayfs whose upper and work dirs live in the workspace; ownership of
# what is created; permissions for other users; and no way for a request
# to make the daemon touch anything outside the directory.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"

WSOP=$(cd "$(dirname "$0")/fixtures" && pwd)/wsop.py
wsop() { T python3 "$WSOP" "$@" 2>&1 || true; }
expect_wsop() { # DESCRIPTION OP ARG...: wsop must print OK
	local what=$1 got
	shift
	got=$(wsop "$@")
	if [[ $got == OK ]]; then pass "$what"; else fail "$what (got '$(head -c 300 <<<"$got")')"; fi
}

STORE=$WORK/store
MNT=$WORK/mnt
DIR=$WORK/ws
WS=$MNT/workspace
OUTSIDE=$WORK/outside # the canary: nothing may touch it
OWNER=1234
mkdir -p "$DIR" "$OUTSIDE/sub" "$WORK/mnt-bad"
chmod 755 "$WORK" # other users reach the mount through it
echo canary >"$OUTSIDE/file"
chown "$OWNER:$OWNER" "$DIR"

# owner_of PATH: "uid:gid" as the backing file system has it.
owner_of() { stat -c %u:%g "$1"; }
# none_but_owner DIR UID:GID: every file under DIR belongs to UID:GID.
none_but_owner() { [[ -z $(find "$1" \( ! -uid "${2%:*}" -o ! -gid "${2#*:}" \) -print -quit) ]]; }

# ---- the command line ---------------------------------------------------

on_exit "unmount_dindfs '$WORK/mnt-bad' ''"
expect_exit 1 "a workspace that does not exist" T "$DINDFS" mount --store "$STORE" \
	--workspace "$WORK/nowhere" "$WORK/mnt-bad"
expect_lines "$WORK/err" 1 "it says so in one line"
expect_match "$WORK/err" "workspace '.*nowhere'" "naming the directory"
touch "$WORK/plain"
expect_exit 1 "a workspace that is a file" T "$DINDFS" mount --store "$STORE" \
	--workspace "$WORK/plain" "$WORK/mnt-bad"
expect_exit 2 "a bad --workspace-owner" mount_dindfs "$WORK/mnt-bad" --store "$STORE" \
	--workspace "$DIR" --workspace-owner nobody
mkdir -p "$DIR/inside"
on_exit "unmount_dindfs '$DIR/inside' ''"
expect_exit 1 "a mountpoint inside the workspace" T "$DINDFS" mount --store "$STORE" \
	--workspace "$DIR" "$DIR/inside"
expect_match "$WORK/err" "inside the workspace" "says so"
rmdir "$DIR/inside"
check "none of them mounted" not is_mounted "$WORK/mnt-bad"

# ---- the mount ------------------------------------------------------------

touch "$WORK/stamp" # what is newer than this, outside the workspace, was touched
sleep 0.05
# trusted.overlay.* allowed: the overlayfs below keeps its upper dir here
must_mount "$MNT" --store "$STORE" --workspace "$DIR" -o allow_other --workspace-overlay-xattrs

fsop list "$MNT" >"$WORK/root"
expect_match "$WORK/root" '^workspace$' "the root lists workspace/"
expect_match "$WORK/root" '^blobs$' "and the cache beside it"
check "workspace/ is the directory, with its owner" test "$(T stat -c %u:%g "$WS")" = "$OWNER:$OWNER"
echo hello >"$DIR/from-host"
check "a file put there on the host shows" test "$(T cat "$WS/from-host")" = hello

# ---- passthrough (libfuse 3.17 on this kernel) or the daemon (libfuse 3.14) ------------

# The build links libfuse 3.17 (soname libfuse3.so.4) or 3.14 (libfuse3.so.3);
# this kernel has FUSE passthrough, so with 3.17 the kernel serves the data.
# (captured first: under pipefail, grep -q closing the pipe early fails ldd with SIGPIPE)
libs=$(ldd "$DINDFS")
if [[ $libs == *libfuse3.so.4* ]]; then PT=1 PT_SAYS=true; else PT=0 PT_SAYS=false; fi
echo "# $(grep -o 'libfuse3\.so\.[0-9]*' <<<"$libs" | head -n 1): passthrough expected: $PT_SAYS"
check ".dindfs/stats says passthrough: $PT_SAYS" grep -q "\"passthrough\": $PT_SAYS," "$MNT/.dindfs/stats"
opens0=$(stat_of "$MNT" passthrough_opens)
check "a workspace file reads" test "$(T cat "$WS/from-host")" = hello
check "its open went through: $PT more passthrough open(s)" \
	test "$(stat_of "$MNT" passthrough_opens)" = $((opens0 + PT))
head -c 3000000 /dev/urandom >"$WORK/blob"
blob=$(sha256sum "$WORK/blob" | cut -c1-64)
check "a blob ingested" T cp "$WORK/blob" "$MNT/ingest/sha256:$blob"
opens0=$(stat_of "$MNT" passthrough_opens)
served0=$(stat_of "$MNT" bytes_served)
check "reads back from blobs/ byte for byte" T cmp -s "$MNT/blobs/sha256/$blob" "$WORK/blob"
check "its open went through: $PT more passthrough open(s)" \
	test "$(stat_of "$MNT" passthrough_opens)" = $((opens0 + PT))
check "bytes the daemon served for it: $(((1 - PT) * 3000000))" \
	test "$(stat_of "$MNT" bytes_served)" = $((served0 + (1 - PT) * 3000000))
mmap_same() { # FILE COPY: mmap'ed, FILE has COPY's bytes
	python3 -c 'import mmap,sys
f = open(sys.argv[1], "rb"); m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
sys.exit(m[:] != open(sys.argv[2], "rb").read())' "$1" "$2"
}
check "mmap of the blob" mmap_same "$MNT/blobs/sha256/$blob" "$WORK/blob"
cp "$WORK/blob" "$DIR/blob.copy"
check "mmap of a workspace file" mmap_same "$WS/blob.copy" "$WORK/blob"
mmap_write() { # FILE: write through a shared mapping, read back with read()
	python3 -c 'import mmap,os,sys
fd = os.open(sys.argv[1], os.O_RDWR); m = mmap.mmap(fd, 4096); m[0:5] = b"HELLO"; m.flush(); m.close()
sys.exit(os.pread(fd, 5, 0) != b"HELLO")' "$1"
}
check "a shared writable mapping of a workspace file lands in it" mmap_write "$WS/blob.copy"
check "on disk" test "$(head -c 5 "$DIR/blob.copy")" = HELLO
rm "$DIR/blob.copy"

# ---- changes made on the host, told to the kernel ------------------------------

# The kernel trusts names and attributes for a minute (the daemon watches
# every directory it holds), so a change made in the directory directly
# must reach it through the watch, within 1 s each (polled).
ws_is() { [[ $(T cat "$WS/$1" 2>/dev/null) == "$2" ]]; }                  # NAME TEXT
mode_is() { [[ $(T stat -c %a "$WS/$1" 2>/dev/null) == "$2" ]]; }          # NAME MODE
size_is() { [[ $(T stat -c %s "$WS/$1" 2>/dev/null) == "$2" ]]; }          # NAME BYTES
absent() { [[ ! -e $WS/$1 && ! -L $WS/$1 ]] && ! ls "$WS/$(dirname "$1")" | grep -qx "$(basename "$1")"; }
mkdir "$DIR/hostdir"
check "a directory made on the host shows" wait_until 1 test -d "$WS/hostdir"
check "a name not there yet is not there (the kernel remembers that)" absent hostdir/h1
echo one >"$DIR/hostdir/h1"
check "a file created on the host shows within 1 s" wait_until 1 ws_is hostdir/h1 one
echo two >>"$DIR/hostdir/h1"
check "appended to on the host: its new size within 1 s" wait_until 1 size_is hostdir/h1 8
check "and its new bytes" ws_is hostdir/h1 "$(printf 'one\ntwo')"
chmod 600 "$DIR/hostdir/h1"
check "chmod'ed on the host: 600 within 1 s" wait_until 1 mode_is hostdir/h1 600
mv "$DIR/hostdir/h1" "$DIR/hostdir/h2"
check "renamed on the host: the new name within 1 s" wait_until 1 ws_is hostdir/h2 "$(printf 'one\ntwo')"
check "and the old name gone" wait_until 1 absent hostdir/h1
rm "$DIR/hostdir/h2"
check "removed on the host: gone within 1 s" wait_until 1 absent hostdir/h2
echo three >"$DIR/hostdir/h3"
check "a new file shows" wait_until 1 ws_is hostdir/h3 three
three_stats() { T stat "$WS/from-host" "$WS/hostdir/h3" "$WS/hostdir" >/dev/null; }
served() { echo "$(stat_of "$MNT" workspace_lookups) $(stat_of "$MNT" workspace_getattrs)"; }
quiet() { local before; three_stats && before=$(served) && three_stats && [[ $(served) == "$before" ]]; }
check "the watch's last notifications are in" wait_until 2 quiet
sleep 1.2 # longer than the kernel would trust them without the watch
lookups0=$(stat_of "$MNT" workspace_lookups)
getattrs0=$(stat_of "$MNT" workspace_getattrs)
three_stats
three_stats
check "stat of files looked up over a second ago does not reach the daemon: no lookup" \
	test "$(stat_of "$MNT" workspace_lookups)" = "$lookups0"
check "and no getattr" test "$(stat_of "$MNT" workspace_getattrs)" = "$getattrs0"
check "a name not looked up before: ENOENT" \
	test "$(fsop stat "$WS/hostdir/never-seen" 2>&1)" = stat:ENOENT
check "that one reached the daemon: one lookup" \
	test "$(stat_of "$MNT" workspace_lookups)" = $((lookups0 + 1))

# What the kernel answers alone: .dindfs/stats counts every request the
# workspace serves, by kind (workspace_requests). Directories are listed
# without opendir (the kernel offers FUSE_CAP_NO_OPENDIR_SUPPORT here), and
# the kernel keeps the listings, which the watch drops on host changes.
ws_requests() { # the workspace's requests of every kind, as "kind=count" words
	T python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))["workspace_requests"]
print(" ".join(f"{k}={v}" for k, v in sorted(r.items())))' "$MNT/.dindfs/stats"
}
ws_kind() { stat_of "$MNT" "workspace_requests.$1"; } # KIND
listed() { fsop list "$WS/$1" | grep -qx "$2"; }     # DIR NAME
list_quiet() { local before; fsop list "$WS/hostdir" >/dev/null && before=$(ws_requests) &&
	fsop list "$WS/hostdir" >/dev/null && [[ $(ws_requests) == "$before" ]]; }
before=$(ws_requests)
three_stats
check "a warm stat of three names: no request of any kind reaches the workspace" \
	test "$(ws_requests)" = "$before"
check "the watch's notifications of the listing are in" wait_until 10 list_quiet
before=$(ws_requests)
fsop list "$WS/hostdir" >/dev/null
fsop list "$WS/hostdir" >/dev/null
check "two warm listings: no request of any kind (no opendir, readdir, lookup or getattr)" \
	test "$(ws_requests)" = "$before"
# What a level makes through the mount, the daemon does: the watch skips its
# own events, so the kernel keeps the names and attributes it was given.
# (Not a file opened for writing on the passthrough build: the kernel closes
# its own backing file as the level's process, an event the watch must take.)
T mkdir "$WS/made"
T python3 -c 'import os, sys
for i in range(50):
    os.mkdir(os.path.join(sys.argv[1], "d%d" % i))
    os.symlink("d%d" % i, os.path.join(sys.argv[1], "s%d" % i))
    os.mkfifo(os.path.join(sys.argv[1], "p%d" % i))
os.chmod(os.path.join(sys.argv[1], "p0"), 0o600)' "$WS/made"
sleep 0.5 # the watch gathers events for 5 ms, then tells the kernel
before=$(ws_requests)
T stat -c '%i %a %u' "$WS/made/d0" "$WS/made/d49" "$WS/made/s1" "$WS/made/p0" >/dev/null
check "names made and a mode changed through the mount: an lstat of them sends no request" \
	test "$(ws_requests)" = "$before"
# the first opendir of all (the root's, above) was answered ENOSYS: the kernel sent no more
check "no opendir ever reached the workspace" test "$(ws_kind opendir)" = 0
echo four >"$DIR/hostdir/h4"
check "a file made on the host is in the kept listing within 1 s" wait_until 1 listed hostdir h4
echo five >"$WS/hostdir/h5"
check "one made through the mount is in it at once" listed hostdir h5
rm "$WS/hostdir/h5"
check "and gone from it at once when removed through the mount" not listed hostdir h5
# The cache's listings are not kept: a blob committed since the last listing shows.
fsop list "$MNT/blobs/sha256" >"$WORK/blobs-before"
head -c 5000 /dev/urandom >"$WORK/listed-blob"
listed_digest=$(sha256sum "$WORK/listed-blob" | cut -c1-64)
T cp "$WORK/listed-blob" "$MNT/ingest/sha256:$listed_digest"
blob_listed() { fsop list "$MNT/blobs/sha256" | grep -qx "$1"; }
check "the blob was not in the listing before" not grep -qx "$listed_digest" "$WORK/blobs-before"
check "blobs/sha256 lists a blob ingested after it was listed" blob_listed "$listed_digest"
rm -r "$DIR/hostdir"
check "a directory removed on the host: gone within 1 s" wait_until 1 absent hostdir

# ---- when the watch misses host changes ------------------------------------------

# The kernel trusts names and attributes a day where it can be told to drop
# every name at once (FUSE_NOTIFY_INC_EPOCH, Linux 6.16+), else a minute.
# When the watch misses changes (its queue overflowed), the daemon drops
# everything it told the kernel and trusts nothing past 1 s from then on.
long=60
if [[ $(printf '%s\n' 6.16 "$(uname -r | cut -d- -f1)" | sort -V | head -1) == 6.16 ]]; then
	long=86400
fi
check "names and attributes are trusted $long s (kernel $(uname -r))" \
	test "$(stat_of "$MNT" workspace_timeout_s)" = "$long"
LOST_DIR=$WORK/ws-lost
LOST=$WORK/mnt-lost/workspace
mkdir -p "$LOST_DIR"
echo hi >"$LOST_DIR/f"
chmod 644 "$LOST_DIR/f"
queued=$(sysctl -n fs.fanotify.max_queued_events)
on_exit "sysctl -qw fs.fanotify.max_queued_events=$queued"
sysctl -qw fs.fanotify.max_queued_events=16 # read when the daemon makes its queue
must_mount "$WORK/mnt-lost" --store "$WORK/store-lost" --workspace "$LOST_DIR"
sysctl -qw fs.fanotify.max_queued_events="$queued"
check "a watch with a queue of 16 events: trusted $long s before any is lost" \
	test "$(stat_of "$WORK/mnt-lost" workspace_timeout_s)" = "$long"
T "$DINDFS" doctor --root "$WORK/mnt-lost" >"$WORK/doctor-watched" 2>&1 || true
expect_match "$WORK/doctor-watched" \
	"^ok +workspace: $LOST \(host changes watched; names and attributes trusted $long s\)\$" \
	"doctor: the workspace's host changes are watched"
check "f is 644 through the mount (the kernel keeps it)" test "$(T stat -c %a "$LOST/f")" = 644
check "a name not there yet is not there (the kernel keeps that too)" test ! -e "$LOST/late"
# 3000 names made at once overflow the queue (the thread takes at most 16 events per
# 5 ms, about 3,200 a second); the chmod and the name after them are lost
T python3 -c 'import os, sys
for i in range(3000):
    open(os.path.join(sys.argv[1], "burst%d" % i), "w").close()
os.chmod(os.path.join(sys.argv[1], "f"), 0o600)
open(os.path.join(sys.argv[1], "late"), "w").close()' "$LOST_DIR"
check "events lost: the log says so" wait_until 2 grep -q "events lost" "$MOUNT_LOG"
check "from then on names and attributes are trusted 1 s" \
	test "$(stat_of "$WORK/mnt-lost" workspace_timeout_s)" = 1
lost_mode_is() { [[ $(T stat -c %a "$LOST/f" 2>/dev/null) == "$1" ]]; } # MODE
check "the chmod whose event was lost: 600 through the mount within 1 s" wait_until 1 lost_mode_is 600
check "the name whose event was lost, looked up before: there within 1 s" \
	wait_until 1 test -e "$LOST/late"
T "$DINDFS" doctor --root "$WORK/mnt-lost" >"$WORK/doctor-lost" 2>&1 || true
expect_match "$WORK/doctor-lost" "^warn +workspace: $LOST, but host changes are not watched any more" \
	"doctor warns that host changes are not watched any more"
expect_match "$WORK/doctor-lost" "fix: raise fs.fanotify.max_user_marks and fs.fanotify.max_queued_events" \
	"... and says what to raise"
unmount_dindfs "$WORK/mnt-lost" "$MOUNT_PIDFILE"

# Where fanotify cannot mark the workspace (here a ramfs: no file handles;
# also a btrfs subvolume before Linux 6.8, or no fanotify), the daemon
# watches it with inotify, which cannot skip its own events.
RAM_DIR=$WORK/ramfs
mkdir -p "$RAM_DIR"
mount -t ramfs ramfs "$RAM_DIR"
on_exit "umount -l '$RAM_DIR'"
RAM=$WORK/mnt-ramfs/workspace
must_mount "$WORK/mnt-ramfs" --store "$WORK/store-ramfs" --workspace "$RAM_DIR"
check "the log says inotify watches a workspace fanotify cannot" \
	grep -q "workspace: fanotify cannot watch it (Operation not supported): inotify does" "$MOUNT_LOG"
check "and it is watched: trusted $long s" \
	test "$(stat_of "$WORK/mnt-ramfs" workspace_timeout_s)" = "$long"
ram_is() { [[ $(T cat "$RAM/$1" 2>/dev/null) == "$2" ]]; } # NAME TEXT
check "a name not there yet is not there" test ! -e "$RAM/r1"
echo one >"$RAM_DIR/r1"
check "a file made on the host shows within 1 s" wait_until 1 ram_is r1 one
echo two >"$RAM_DIR/r1"
check "rewritten: its new bytes within 1 s" wait_until 1 ram_is r1 two
rm "$RAM_DIR/r1"
check "removed: gone within 1 s" wait_until 1 test ! -e "$RAM/r1"
check "what is made through the mount shows through it" T sh -c "echo three >'$RAM/r3'"
check "and on the host" test "$(cat "$RAM_DIR/r3")" = three
unmount_dindfs "$WORK/mnt-ramfs" "$MOUNT_PIDFILE"

# ---- appends ----------------------------------------------------------------

# Three writers at once, one of them a shell opening the file for each line.
shell_appender() { # FILE TAG N
	local i pad
	pad=$(printf 'x%.0s' {1..80})
	for ((i = 0; i < $3; i++)); do printf '%s %06d %s\n' "$2" "$i" "$pad" >>"$1"; done
}
T python3 "$WSOP" append "$WS/log" A 5000 >/dev/null &
p1=$!
T python3 "$WSOP" append "$WS/log" B 5000 >/dev/null &
p2=$!
T bash -c "$(declare -f shell_appender); shell_appender '$WS/log' C 5000" &
p3=$!
wait $p1 $p2 $p3
expect_wsop "3 writers x 5000 lines through the mount: 15000 whole lines, each once" \
	lines "$WS/log" 15000 A B C
expect_wsop "the same on disk" lines "$DIR/log" 15000 A B C

# And while a fourth appends to the directory directly, on the host.
T python3 "$WSOP" append "$WS/log2" A 5000 >/dev/null &
p1=$!
T python3 "$WSOP" append "$WS/log2" B 5000 >/dev/null &
p2=$!
T python3 "$WSOP" append "$WS/log2" C 5000 >/dev/null &
p3=$!
T python3 "$WSOP" append "$DIR/log2" D 5000 >/dev/null &
p4=$!
wait $p1 $p2 $p3 $p4
expect_wsop "3 through the mount + 1 on the host: 20000 whole lines, each once" \
	lines "$DIR/log2" 20000 A B C D
expect_wsop "and the mount reads the same" lines "$WS/log2" 20000 A B C D

# Appends of 200 KiB each (spliced to the daemon): whole, even with the host appending.
for tag in A B; do T python3 "$WSOP" append "$WS/log3" $tag 100 200000 >/dev/null & done
T python3 "$WSOP" append "$DIR/log3" C 100 200000 >/dev/null &
wait
expect_wsop "appends of 200 KiB from 2 writers + the host: each whole, once" \
	lines "$DIR/log3" 300 A B C

expect_wsop "O_APPEND set and cleared with fcntl: appends land at the true end, pwrite at its offset" \
	setfl "$WS/setfl" "$DIR/setfl"

# ---- a source tree, and git ----------------------------------------------------

tar -C /usr/include -cf "$WORK/src.tar" .
mkdir "$WS/src"
check "a source tree untars into the workspace" T tar -C "$WS/src" --no-same-owner -xf "$WORK/src.tar"
check "byte for byte the tree it came from" T diff -r --no-dereference /usr/include "$WS/src"
check "every file of it is the owner's on disk" none_but_owner "$DIR/src" "$OWNER:$OWNER"
# gc.auto=0: no gc left running in the background (the commit's ~7000
# objects would start one), holding the mount busy and adding requests
git_ws() { T git -C "$WS/src" -c user.name=t -c user.email=t@t -c safe.directory='*' -c gc.auto=0 "$@"; }
check "git init" git_ws init -q
check "git add" git_ws add -A
check "git commit" git_ws commit -qm tree
git_ws status --porcelain >"$WORK/status"
check "git status: clean after the commit" test ! -s "$WORK/status"
echo change >>"$WS/src/stdio.h"
git_ws status --porcelain >"$WORK/status"
expect_match "$WORK/status" '^ M stdio.h$' "git status sees a change"
check "git fsck" git_ws fsck --no-progress
check "git's files are the owner's too" none_but_owner "$DIR/src/.git" "$OWNER:$OWNER"

# ---- names ------------------------------------------------------------------------

mkdir -p "$WS/d1" "$WS/d2/sub"
echo one >"$WS/d1/a"
echo two >"$WS/d2/b"
check "rename across directories" mv "$WS/d1/a" "$WS/d2/sub/a"
check "it is there on disk" test "$(cat "$DIR/d2/sub/a")" = one
check "a directory renamed into another" mv "$WS/d2/sub" "$WS/d1/moved"
check "with what it held" test "$(cat "$WS/d1/moved/a")" = one
got=$(wsop rename2 "$WS/d1/moved/a" "$WS/d2/b" noreplace)
if [[ $got == renameat2:EEXIST ]]; then pass "RENAME_NOREPLACE onto a file: EEXIST"; else
	fail "RENAME_NOREPLACE onto a file: EEXIST (got '$got')"
fi
expect_wsop "RENAME_NOREPLACE to a free name" rename2 "$WS/d1/moved/a" "$WS/d2/c" noreplace
expect_wsop "RENAME_EXCHANGE" rename2 "$WS/d2/b" "$WS/d2/c" exchange
check "swapped" test "$(cat "$DIR/d2/b"):$(cat "$DIR/d2/c")" = one:two
echo w >"$WS/d2/w"
expect_wsop "RENAME_WHITEOUT" rename2 "$WS/d2/w" "$WS/d2/w2" whiteout
check "leaves a whiteout (0/0 character device) where the file was" \
	test "$(stat -c %F:%t:%T "$DIR/d2/w")" = "character special file:0:0"
check "which is the owner's" test "$(owner_of "$DIR/d2/w")" = "$OWNER:$OWNER"
check "and the file is at its new name" test "$(cat "$WS/d2/w2")" = w
check "a hard link" ln "$WS/d2/b" "$WS/d1/hard"
check "one inode, two names, on disk" test "$(stat -c %i:%h "$DIR/d1/hard")" = "$(stat -c %i "$DIR/d2/b"):2"
check "the mount counts the links" test "$(stat -c %h "$WS/d2/b")" = 2
check "a fifo" mkfifo "$WS/fifo"
check "is a fifo on disk" test -p "$DIR/fifo"
(T cat "$WS/fifo" >"$WORK/fifo.out") &
reader=$!
echo through >"$WS/fifo"
wait $reader
check "and carries data" test "$(cat "$WORK/fifo.out")" = through
check "a symlink" ln -s d2/b "$WS/link"
check "readlink says what it says" test "$(readlink "$WS/link")" = d2/b
check "it resolves inside the mount" test "$(cat "$WS/link")" = one
ln -s /etc/passwd "$WS/abs"
check "a symlink's target is kept as written, not resolved by the daemon" \
	test "$(readlink "$DIR/abs")" = /etc/passwd
check "rm of the symlink leaves its target" rm "$WS/abs"
check "/etc/passwd is still there" test -s /etc/passwd
check "rmdir" rmdir "$WS/d1/moved"
check "gone on disk" test ! -e "$DIR/d1/moved"

# ---- attributes and xattrs ------------------------------------------------------------

echo attrs >"$WS/attrs"
check "chmod" chmod 640 "$WS/attrs"
check "the mode on disk" test "$(stat -c %a "$DIR/attrs")" = 640
check "chown by root is done as asked" chown 4321:4321 "$WS/attrs"
check "the mount shows it, the disk keeps the owner's" \
	test "$(stat -c %u:%g "$WS/attrs") $(owner_of "$DIR/attrs")" = "4321:4321 $OWNER:$OWNER"
check "truncate" truncate -s 3 "$WS/attrs"
check "the size on disk" test "$(stat -c %s "$DIR/attrs")" = 3
check "utimens" touch -d '2001-02-03 04:05:06' "$WS/attrs"
check "the mtime on disk" test "$(stat -c %Y "$DIR/attrs")" = "$(date -d '2001-02-03 04:05:06' +%s)"
check "utimens on a symlink itself" touch -h -d '2002-01-01' "$WS/link"
check "the link's mtime on disk" test "$(stat -c %Y "$DIR/link")" = "$(date -d 2002-01-01 +%s)"
xattrs() { # PATH: set user, trusted and security xattrs, read and list them back
	python3 - "$1" <<-'EOF'
		import os, sys
		p = sys.argv[1]
		for n, v in (("user.a", b"1"), ("trusted.b", b"2"), ("security.c", b"3")):
		    os.setxattr(p, n, v, follow_symlinks=False)
		    assert os.getxattr(p, n, follow_symlinks=False) == v, n
		assert sorted(os.listxattr(p, follow_symlinks=False)) == ["security.c", "trusted.b", "user.a"]
		os.removexattr(p, "user.a")
		assert "user.a" not in os.listxattr(p, follow_symlinks=False)
	EOF
}
check "user, trusted and security xattrs" xattrs "$WS/attrs"
check "on disk" test "$(python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "trusted.b").decode())' "$DIR/attrs")" = 2
linkx() { python3 -c 'import os,sys; os.setxattr(sys.argv[1], "trusted.l", b"x", follow_symlinks=False); assert os.getxattr(sys.argv[2], "trusted.l", follow_symlinks=False) == b"x"' "$@"; }
check "a trusted xattr on a symlink itself" linkx "$WS/link" "$DIR/link"

check "statfs is the directory's file system" \
	test "$(stat -f -c %b:%S "$WS")" = "$(stat -f -c %b:%S "$DIR")"

# ---- locks, holes, fallocate, copy_file_range ------------------------------------------

expect_wsop "flock: exclusive between two open files" flock "$WS/lockfile"
expect_wsop "flock: a blocked LOCK_EX waits for the holder" flockwait "$WS/lockfile" 1
flock_host() { # a lock taken through the mount holds against the host's file
	python3 - "$WS/lockfile" "$DIR/lockfile" <<-'EOF'
		import fcntl, os, sys
		a = os.open(sys.argv[1], os.O_RDWR)
		fcntl.flock(a, fcntl.LOCK_EX)
		b = os.open(sys.argv[2], os.O_RDWR)
		try:
		    fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
		    sys.exit(1)
		except BlockingIOError:
		    pass
	EOF
}
check "flock through the mount holds on the host's file too" flock_host
expect_wsop "fcntl locks: a held range is refused to another process" posixlock "$WS/lockfile"
expect_wsop "SEEK_DATA and SEEK_HOLE find the hole" holes "$WS/sparse"
expect_wsop "fallocate, and punching a hole" fallocate "$WS/falloc"
head -c 3000000 /dev/urandom >"$WS/random"
expect_wsop "copy_file_range inside the workspace" cfr "$WS/random" "$WS/random.copy"

# ---- overlayfs on the workspace ------------------------------------------------------------

LOWER=$WORK/lower OVL=$WORK/ovl
mkdir -p "$LOWER/dir" "$OVL" "$WS/upper" "$WS/work"
echo low >"$LOWER/file"
echo inner >"$LOWER/dir/inner"
on_exit "umount '$OVL' 2>/dev/null"
if check_ok "an overlayfs with upper and work dirs in the workspace mounts" T mount -t overlay overlay \
	-o "lowerdir=$LOWER,upperdir=$WS/upper,workdir=$WS/work,redirect_dir=on" "$OVL"; then
	echo new >"$OVL/new"
	check "a write lands in the upper dir" test "$(cat "$DIR/upper/new")" = new
	rm "$OVL/file"
	check "a lower file deleted is gone from the overlay" test ! -e "$OVL/file"
	check "and a whiteout (0/0 character device) in the upper dir" \
		test "$(stat -c %F:%t:%T "$DIR/upper/file")" = "character special file:0:0"
	check "renaming a lower directory" mv "$OVL/dir" "$OVL/dir2"
	check "keeps what it held" test "$(cat "$OVL/dir2/inner")" = inner
	check "and leaves no dir behind" test ! -e "$OVL/dir"
	check "the upper dir says where it came from (trusted.overlay.redirect)" python3 -c \
		'import os,sys; os.getxattr(sys.argv[1], "trusted.overlay.redirect")' "$DIR/upper/dir2"
	echo more >>"$OVL/dir2/inner"
	check "a copied-up file" test "$(cat "$OVL/dir2/inner")" = "$(printf 'inner\nmore')"
	check "a copied-up file keeps the lower file's owner (overlayfs chowns it)" \
		test "$(stat -c %u "$OVL/dir2/inner")" = "$(stat -c %u "$LOWER/dir/inner")"
	check "the overlay unmounts" umount "$OVL"
fi

# ---- ownership and permissions ---------------------------------------------------------------

echo root >"$WS/by-root"
mkdir "$WS/dir-by-root"
check "a file created by root is the owner's on disk" test "$(owner_of "$DIR/by-root")" = "$OWNER:$OWNER"
check "so is a directory" test "$(owner_of "$DIR/dir-by-root")" = "$OWNER:$OWNER"
mkfifo "$WS/fifo2"
ln -s x "$WS/sym2"
check "so are a fifo and a symlink" test "$(owner_of "$DIR/fifo2") $(stat -c %u:%g "$DIR/sym2")" = "$OWNER:$OWNER $OWNER:$OWNER"
(umask 002 && echo x >"$WS/umask002" && mkdir "$WS/umask002.d")
check "the caller's mode is kept whole (umask 002: 664)" test "$(stat -c %a "$DIR/umask002")" = 664
check "and 775 for a directory" test "$(stat -c %a "$DIR/umask002.d")" = 775
mkdir "$DIR/setgid" && chgrp 555 "$DIR/setgid" && chmod 2775 "$DIR/setgid"
echo x >"$WS/setgid/f"
check "in a set-group-ID directory the group is the directory's" test "$(owner_of "$DIR/setgid/f")" = "$OWNER:555"
as_owner() { T setpriv --reuid "$OWNER" --regid "$OWNER" --clear-groups "$@"; }
as_other() { T setpriv --reuid 4444 --regid 4444 --clear-groups "$@"; }
check "the owner creates a file" as_owner touch "$WS/by-owner"
check "the owner writes to it" as_owner sh -c "echo mine >'$WS/by-owner'"
check "another user cannot create in the owner's 0755 directory" not as_other touch "$WS/by-other" 2>/dev/null
check "nor write the owner's 0644 file" not as_other sh -c "echo x >>'$WS/by-owner'" 2>/dev/null
check "but reads it" as_other cat "$WS/by-owner" >/dev/null
check "the owner makes it 0600" as_owner chmod 600 "$WS/by-owner"
check "then the other user cannot read it" not as_other cat "$WS/by-owner" 2>/dev/null
check "the owner still can" as_owner cat "$WS/by-owner" >/dev/null
check "another user cannot chmod the owner's file" not as_other chmod 666 "$WS/by-owner" 2>/dev/null

# ---- the creator as owner, through the mount (trusted.dindfs.stat) ---------------------------

# What a user makes shows as that user's through the mount (the kernel
# checks permissions against it), while the disk keeps the owner's.
shown() { T stat -c %u:%g "$@"; } # PATH...: "uid:gid" through the mount, one a line
mkdir "$WS/mine" && chmod 1777 "$WS/mine"
check "uid 4444 makes a file, a directory, a fifo and a symlink" as_other sh -c \
	"cd '$WS/mine' && echo x >f && mkdir d && mkfifo p && ln -s f s"
check "through the mount all four are 4444:4444" \
	test "$(shown "$WS"/mine/{f,d,p,s} | tr '\n' ' ')" = "4444:4444 4444:4444 4444:4444 4444:4444 "
check "on disk all four are the owner's" \
	test "$(stat -c %u:%g "$DIR"/mine/{f,d,p,s} | sort -u)" = "$OWNER:$OWNER"
check "root's file shows as 0:0, on disk the owner's" \
	test "$(shown "$WS/by-root") $(owner_of "$DIR/by-root")" = "0:0 $OWNER:$OWNER"
check "a file made on the host shows as on disk" test "$(shown "$WS/from-host")" = "$(owner_of "$DIR/from-host")"
check "4444 makes its file 0600" as_other chmod 600 "$WS/mine/f"
check "chown -1 4444 of it" as_other chown :4444 "$WS/mine/f"
check "truncates it" as_other truncate -s 3 "$WS/mine/f"
check "links it (protected_hardlinks: its own file)" as_other ln "$WS/mine/f" "$WS/mine/f.link"
check "the link shows the same owner" test "$(shown "$WS/mine/f.link")" = 4444:4444
check "4444 writes in its own 0700 directory" as_other sh -c "chmod 700 '$WS/mine/d' && echo y >'$WS/mine/d/in'"
check "which the owner cannot enter" not as_owner ls "$WS/mine/d" 2>/dev/null
mv "$WS/mine/f" "$WS/mine/f.moved"
check "a rename keeps what is shown (the xattr is on the inode)" test "$(shown "$WS/mine/f.moved")" = 4444:4444
check "root chowns it 77:88" chown 77:88 "$WS/mine/f.moved"
check "the mount shows 77:88, the disk still the owner's" \
	test "$(shown "$WS/mine/f.moved") $(owner_of "$DIR/mine/f.moved")" = "77:88 $OWNER:$OWNER"
check "chown back to the owner" chown "$OWNER:$OWNER" "$WS/mine/f.moved"
list_xattrs() { python3 -c 'import os,sys; print(" ".join(os.listxattr(sys.argv[1], follow_symlinks=False)))' "$1"; }
check "which leaves no override on disk (it equals the disk)" test -z "$(list_xattrs "$DIR/mine/f.moved")"
mkdir "$WS/mine/g" && chown 4444:555 "$WS/mine/g" && chmod 2777 "$WS/mine/g"
check "in a set-group-ID directory shown as group 555" as_other touch "$WS/mine/g/f"
check "the group shown is the directory's" test "$(shown "$WS/mine/g/f")" = 4444:555
# xattr_errno OP PATH: set, get or remove trusted.dindfs.stat; print the errno's name, or "done"
xattr_errno() {
	python3 -c 'import errno, os, sys
op, path, name = sys.argv[1], sys.argv[2], "trusted.dindfs.stat"
try:
    {"set": lambda: os.setxattr(path, name, b"0:0"), "get": lambda: os.getxattr(path, name),
     "remove": lambda: os.removexattr(path, name)}[op]()
    print("done")
except OSError as e: print(errno.errorcode[e.errno])' "$@"
}
check "on disk the override is trusted.dindfs.stat = 4444:4444" python3 -c \
	'import os,sys; assert os.getxattr(sys.argv[1], "trusted.dindfs.stat") == b"4444:4444"' "$DIR/mine/d"
check "through the mount it is not listed" test -z "$(list_xattrs "$WS/mine/d")"
setfattr -n trusted.seen -v 1 "$WS/mine/d"
getfattr -d -m - --absolute-names "$WS/mine/d" >"$WORK/getfattr" 2>&1 || true
check "getfattr -d -m - lists the directory's own trusted.seen" grep -q '^trusted.seen="1"$' "$WORK/getfattr"
check "and not the override" not grep -q '^trusted\.dindfs' "$WORK/getfattr"
check "getxattr through the mount: ENODATA, as if absent" test "$(xattr_errno get "$WS/mine/d")" = ENODATA
check "setxattr by root through the mount: EPERM" test "$(xattr_errno set "$WS/mine/d")" = EPERM
check "removexattr by root through the mount: EPERM" test "$(xattr_errno remove "$WS/mine/d")" = EPERM
check "the directory still shows 4444:4444" test "$(shown "$WS/mine/d")" = 4444:4444
check "cp -a by root through the mount keeps what is shown" cp -a "$WS/mine/d" "$WS/mine/d.copy"
check "4444:4444, the disk the owner's" \
	test "$(shown "$WS/mine/d.copy/in") $(owner_of "$DIR/mine/d.copy/in")" = "4444:4444 $OWNER:$OWNER"

# Device nodes: an empty regular file on disk, a device through the mount.
# The mount is nodev (libfuse's default), so the kernel opens none of them.
check "the mount is nodev" awk -v m="$MNT" '$2 == m && $4 ~ /(^|,)nodev(,|$)/ { f = 1 } END { exit !f }' /proc/mounts
check "root's mknod c 1 3 and b 7 0" sh -c "mknod '$WS/mine/null' c 1 3 && mknod '$WS/mine/loop' b 7 0"
check "the mount shows the devices and their numbers" \
	test "$(T stat -c '%F %t %T' "$WS/mine/null" "$WS/mine/loop" | tr '\n' ' ')" = "character special file 1 3 block special file 7 0 "
check "owned by root as made" test "$(shown "$WS/mine/null")" = 0:0
check "on disk two empty regular files, 0600, the owner's" \
	test "$(stat -c '%F %a %u:%g' "$DIR/mine/null" "$DIR/mine/loop" | sort -u)" = "regular empty file 600 $OWNER:$OWNER"
# open_errno PATH: open(2) for reading; the errno's name, or "opened"
open_errno() { python3 -c 'import errno, os, sys
try: os.close(os.open(sys.argv[1], os.O_RDONLY)); print("opened")
except OSError as e: print(errno.errorcode[e.errno])' "$1"; }
check "opening the character device through the mount: EACCES (nodev)" \
	test "$(open_errno "$WS/mine/null")" = EACCES
check "and the block device: EACCES" test "$(open_errno "$WS/mine/loop")" = EACCES
check "chmod 640 and chown 5:6 of the device" sh -c "chmod 640 '$WS/mine/null' && chown 5:6 '$WS/mine/null'"
check "the mount shows them" test "$(T stat -c '%F %a %u:%g' "$WS/mine/null")" = "character special file 640 5:6"
check "the disk still 0600, the owner's" test "$(stat -c '%a %u:%g' "$DIR/mine/null")" = "600 $OWNER:$OWNER"
check "a link to it is the same device" sh -c "ln '$WS/mine/null' '$WS/mine/null2' && test \"\$(stat -c '%t:%T %h' '$WS/mine/null2')\" = '1:3 2'"

# ---- no privilege for the host: set-id bits, file capabilities ---------------------------------

# Root as a plain container has it (Docker's default capabilities: CHOWN,
# FSETID, SETFCAP among them), through the mount; then a user on the host.
as_container_root() {
	T setpriv --bounding-set -all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap \
		--inh-caps -all "$@"
}
check "root in a container copies a shell into the workspace" as_container_root cp /bin/bash "$WS/rootsh"
check "chowns it to 0:0" as_container_root chown 0:0 "$WS/rootsh"
check "chmod 4755 succeeds" as_container_root chmod 4755 "$WS/rootsh"
check "on the host it is the owner's, mode 755: no set-user-ID bit" \
	test "$(stat -c %u:%g:%a "$DIR/rootsh")" = "$OWNER:$OWNER:755"
# The mount shows the bit, as POSIX says (pjdfstest's chmod/00, chown/00):
# it is nosuid, so the bit grants nothing there either.
check "the mount says 0:0, 4755 (the bit in trusted.dindfs.stat only)" \
	test "$(stat -c %u:%g:%a "$WS/rootsh")" = 0:0:4755
check "so a user on the host who runs it stays himself" \
	test "$(as_other "$DIR/rootsh" -p -c 'id -u')" = 4444
check "chmod 6755 then chown 0:0: no set-id bit either" \
	as_container_root sh -c "chmod 6755 '$WS/rootsh' && chown 0:0 '$WS/rootsh'"
check "755 on the host" test "$(stat -c %a "$DIR/rootsh")" = 755
check "and 755 shown: a chown, even root's, clears S_ISUID, and S_ISGID with group-execute" \
	test "$(stat -c %a "$WS/rootsh")" = 755
check "chmod 2755 of a file: no set-group-ID bit" as_container_root chmod 2755 "$WS/rootsh"
check "755 on the host" test "$(stat -c %a "$DIR/rootsh")" = 755
check "2755 shown" test "$(stat -c %a "$WS/rootsh")" = 2755
ctime_of() { stat -c %Z "$1"; }
ctime=$(ctime_of "$WS/rootsh")
sleep 1.1
check "chown -1 -1 of it (python's os.chown)" as_container_root python3 -c 'import os, sys; os.chown(sys.argv[1], -1, -1)' "$WS/rootsh"
check "clears S_ISGID too (group-executable) and changes the ctime, as on ext4" \
	test "$(stat -c %a "$WS/rootsh") $(($(ctime_of "$WS/rootsh") > ctime))" = "755 1"
check "chmod 4777 of it" chmod 4777 "$WS/rootsh"
check "another user appends to it" as_other sh -c "printf '' >>'$WS/rootsh'"
check "777 shown: a writer without CAP_FSETID clears the bit" test "$(stat -c %a "$WS/rootsh")" = 777
setid_create() { # WS: a file created 04755, a directory 06775, a fifo 04644
	python3 - "$1" <<-'EOF'
		import os, sys
		ws = sys.argv[1]
		os.umask(0)
		os.close(os.open(f"{ws}/made-4755", os.O_WRONLY | os.O_CREAT, 0o4755))
		os.mknod(f"{ws}/made-fifo", 0o4644 | 0o010000)
		os.mkdir(f"{ws}/made-dir", 0o6775)
	EOF
}
check "create with mode 04755, mkfifo 04644, mkdir 06775" \
	as_container_root bash -c "$(declare -f setid_create); setid_create '$WS'"
check "on the host: 755, 644, 775" \
	test "$(stat -c %a "$DIR/made-4755") $(stat -c %a "$DIR/made-fifo") $(stat -c %a "$DIR/made-dir")" = "755 644 775"
check "shown: 4755, 4644, 775 (mkdir takes no set-id bit: the kernel drops them)" \
	test "$(stat -c %a "$WS/made-4755") $(stat -c %a "$WS/made-fifo") $(stat -c %a "$WS/made-dir")" = "4755 4644 775"
check "a directory keeps chmod 2775 (set-group-ID picks new files' group)" \
	as_container_root chmod 2775 "$WS/made-dir"
check "2775 on the host" test "$(stat -c %a "$DIR/made-dir")" = 2775
check "but chmod 04775 of a directory leaves no set-user-ID bit" as_container_root chmod 04775 "$WS/made-dir"
check "775 on the host" test "$(stat -c %a "$DIR/made-dir")" = 775
check "4775 shown" test "$(stat -c %a "$WS/made-dir")" = 4775
cp /bin/bash "$DIR/host-suid" && chmod 4755 "$DIR/host-suid"
check "a set-user-ID file the host made, opened for writing by a level" \
	as_container_root sh -c "printf '' >>'$WS/host-suid'"
check "is one no more (as the kernel does for a writer without CAP_FSETID)" \
	test "$(stat -c %a "$DIR/host-suid")" = 755
check "and 755 through the mount at once (the daemon tells the kernel: the watch skips its own change)" \
	test "$(T stat -c %a "$WS/host-suid")" = 755
# With FUSE_HANDLE_KILLPRIV_V2 (libfuse 3.17) the daemon, not the kernel,
# clears what a rewrite must: the kernel stops asking for
# security.capability before every write.
# (once after the attributes were fetched: another writer may have set some)
if [[ $PT == 1 ]]; then KP_SAYS=true KP_ASKS=1; else KP_SAYS=false KP_ASKS=100; fi
check ".dindfs/stats says killpriv_v2: $KP_SAYS" grep -q "\"killpriv_v2\": $KP_SAYS," "$MNT/.dindfs/stats"
writes() { # FILE N: N writes of 4 KiB through one open
	T python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
for _ in range(int(sys.argv[2])): os.write(fd, b"x" * 4096)
os.close(fd)' "$1" "$2"
}
check "a file written once" writes "$WS/written" 1
sleep 0.1 # the watch has told the kernel of that write
check "its attributes asked again" T stat "$WS/written" >/dev/null
asked=$(stat_of "$MNT" workspace_requests.getxattr)
check "then 100 writes of it" writes "$WS/written" 100
asked=$(($(stat_of "$MNT" workspace_requests.getxattr) - asked))
check "ask the daemon for security.capability $KP_ASKS times (asked $asked)" test $asked = $KP_ASKS
rm -f "$DIR/written"
cp /bin/true "$DIR/host-cap" && chmod 777 "$DIR/host-cap" && setcap cap_net_raw+ep "$DIR/host-cap"
check "a file the host gave a capability, written by another user through the mount" \
	as_other sh -c "printf x >>'$WS/host-cap'"
check "has it no more" test -z "$(getcap "$DIR/host-cap")"
setcap cap_net_raw+ep "$DIR/host-cap"
check "given it again, truncated by another user" as_other truncate -s 1 "$WS/host-cap"
check "has it no more" test -z "$(getcap "$DIR/host-cap")"
setcap cap_net_raw+ep "$DIR/host-cap"
check "given it again, chowned by a level" as_container_root chown 4444 "$WS/host-cap"
check "has it no more" test -z "$(getcap "$DIR/host-cap")"
chmod 4777 "$DIR/host-cap"
check "made set-user-ID on the host, written by another user" \
	as_other sh -c "printf x >>'$WS/host-cap'"
check "is not set-user-ID any more (POSIX: a write by one without CAP_FSETID clears it)" \
	test "$(stat -c %a "$DIR/host-cap")" = 777
rm -f "$DIR/host-cap"
setcap_ws() { # PATH: set a valid file capability (cap_net_raw+ep, v2), print the errno's name
	python3 - "$1" <<-'EOF'
		import errno, os, struct, sys
		value = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)
		try:
		    os.setxattr(sys.argv[1], "security.capability", value)
		    print("set")
		except OSError as e:
		    print(errno.errorcode[e.errno])
	EOF
}
check "setxattr security.capability (cap_net_raw+ep) by container root: ENOTSUP" \
	test "$(as_container_root bash -c "$(declare -f setcap_ws); setcap_ws '$WS/rootsh'")" = ENOTSUP
check "the host file has no capability" \
	not python3 -c 'import os,sys; os.getxattr(sys.argv[1], "security.capability")' "$DIR/rootsh" 2>/dev/null
check "setcap's own words for it" \
	test "$(as_container_root setcap cap_net_raw+ep "$WS/rootsh" 2>&1 | grep -c 'Operation not supported')" = 1
check "no set-id file and no capability anywhere in the workspace" \
	test -z "$(find "$DIR" -perm /6000 ! -type d -print -quit)$(getcap -r "$DIR" 2>/dev/null)"
rm -f "$DIR/host-suid"

# ---- escapes -------------------------------------------------------------------------------

# The kernel resolves symlinks in the caller's namespace (a link that
# points out of the mount leaves it, as it would anywhere). What must not
# happen is the daemon following one: these tests hand it inodes and names
# whose backing files were replaced by symlinks to $OUTSIDE behind its back.
check "'..' of the workspace is the mount's root" test "$(T ls -a "$WS/..")" = "$(T ls -a "$MNT")"
check "'..' chains stay in the caller's tree" test "$(T realpath "$WS/../../mnt/workspace/../..")" = "$WORK"
escape_by_stale_dir() {
	python3 - "$WS" "$DIR" "$OUTSIDE" <<-'EOF'
		import os, sys
		ws, d, outside = sys.argv[1:]
		os.mkdir(f"{ws}/a")
		dfd = os.open(f"{ws}/a", os.O_RDONLY | os.O_DIRECTORY)  # the daemon's inode of a
		os.rename(f"{d}/a", f"{d}/a.old")                       # behind its back:
		os.symlink(outside, f"{d}/a")                            # a is now a way out
		os.mkdir("new", dir_fd=dfd)
		os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=dfd))
		os.mkfifo("p", dir_fd=dfd)
		os.symlink("t", "s", dir_fd=dfd)
		os.chmod(dfd, 0o700)
		os.setxattr(dfd, "user.x", b"1")
		os.utime(dfd, (0, 0))
		os.rename("f", "g", src_dir_fd=dfd, dst_dir_fd=dfd)
		os.unlink("g", dir_fd=dfd)
		assert sorted(os.listdir(dfd)) == ["new", "p", "s"], os.listdir(dfd)
		os.close(dfd)
		assert sorted(os.listdir(f"{d}/a.old")) == ["new", "p", "s"]
	EOF
}
check "a directory swapped for a symlink out: the daemon works in the directory it had" \
	escape_by_stale_dir
escape_by_stale_file() {
	python3 - "$WS" "$DIR" "$OUTSIDE" <<-'EOF'
		import os, sys
		ws, d, outside = sys.argv[1:]
		with open(f"{ws}/victim", "w") as f:
		    f.write("inside\n")
		pfd = os.open(f"{ws}/victim", os.O_PATH)    # the daemon's inode of victim
		os.rename(f"{d}/victim", f"{d}/victim.old")
		os.symlink(f"{outside}/file", f"{d}/victim")
		fd = os.open(f"/proc/self/fd/{pfd}", os.O_WRONLY | os.O_TRUNC)  # reopens the inode
		os.write(fd, b"written\n")
		os.close(fd)
		os.truncate(f"/proc/self/fd/{pfd}", 3)
		os.chmod(f"/proc/self/fd/{pfd}", 0o600)
		os.setxattr(f"/proc/self/fd/{pfd}", "user.y", b"2")
		assert open(f"{d}/victim.old").read() == "wri"
	EOF
}
check "a file swapped for a symlink out: opens, truncate, chmod, xattrs stay on the file" \
	escape_by_stale_file
escape_by_create() { # a name the kernel believes absent, made a symlink out on the host
	python3 - "$WS" "$DIR" "$OUTSIDE" <<-'EOF'
		import errno, os, sys
		ws, d, outside = sys.argv[1:]
		for name, make in (("c1", lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))),
		                   ("c2", lambda p: os.mkdir(p)),
		                   ("c3", lambda p: os.mkfifo(p))):
		    try:
		        os.lstat(f"{ws}/{name}")  # the kernel now caches "absent"
		    except FileNotFoundError:
		        pass
		    os.symlink(f"{outside}/{name}", f"{d}/{name}")
		    try:
		        make(f"{ws}/{name}")
		    except OSError as e:
		        assert e.errno in (errno.ELOOP, errno.EEXIST), e
		    assert not os.path.lexists(f"{outside}/{name}"), name
	EOF
}
check "creating over a name made a symlink out on the host: refused, nothing made outside" \
	escape_by_create
check "nothing outside the workspace was created or changed" \
	test -z "$(find "$OUTSIDE" -newer "$WORK/stamp")"
check "the canary says what it said" test "$(ls -A "$OUTSIDE" | tr '\n' ' ')" = "file sub " -a \
	"$(cat "$OUTSIDE/file")" = canary

# ---- --workspace-owner --------------------------------------------------------------------

check_ok "dindfs umount" T "$DINDFS" umount "$MNT" || holders_of "$MNT"
check "the daemon is gone" wait_until 10 pid_gone "$MOUNT_PID"
# This daemon may hold 2048 descriptors: far fewer inodes than the tree has,
# so they are closed and reopened by handle as the kernel comes back to them.
printf '#!/bin/sh\nexec prlimit --nofile=2048:2048 "%s" "$@"\n' "$DINDFS" >"$WORK/dindfs-2048"
many=1074 # the budget (half of 2048 here) + 50; made before the mount, so no watch event about them
mkdir "$DIR/many" && (cd "$DIR/many" && seq "$many" | xargs touch)
chmod +x "$WORK/dindfs-2048"
DINDFS=$WORK/dindfs-2048 must_mount "$MNT" --store "$STORE" --workspace "$DIR" \
	--workspace-owner 4321:4322 --no-passthrough
check "--no-passthrough: .dindfs/stats says passthrough: false" \
	grep -q '"passthrough": false,' "$MNT/.dindfs/stats"
served0=$(stat_of "$MNT" bytes_served)
check "the blob reads back" T cmp -s "$MNT/blobs/sha256/$blob" "$WORK/blob"
check "the daemon served it: bytes_served grew by its size" \
	test "$(stat_of "$MNT" bytes_served)" = $((served0 + 3000000))
check "and no open went through" test "$(stat_of "$MNT" passthrough_opens)" = 0
# Descriptors past the budget: look up $many new files, then read them in the
# same order. Each new inode past the budget closes the least recently
# used descriptor; reading them again in that order finds every one closed:
# each is reopened by handle, and closes another.
budget=$(stat_of "$MNT" workspace_fd_budget)
fds0=$(stat_of "$MNT" workspace_fds)
evictions0=$(stat_of "$MNT" workspace_fd_evictions)
reopens0=$(stat_of "$MNT" workspace_fd_reopens)
check "with 2048 descriptors the budget is 1024" test "$budget" = 1024
check "$many new files looked up" T python3 -c '
import os, sys
for i in range(1, int(sys.argv[2]) + 1): os.stat("%s/%d" % (sys.argv[1], i))' "$WS/many" "$many"
check "the descriptors past the budget were closed: $((fds0 + many + 1 - budget))" \
	test "$(stat_of "$MNT" workspace_fd_evictions)" = $((evictions0 + fds0 + many + 1 - budget))
check "and the budget holds: $budget open" test "$(stat_of "$MNT" workspace_fds)" = "$budget"
check "$many files read in the same order" T python3 -c '
import sys
for i in range(1, int(sys.argv[2]) + 1): open("%s/%d" % (sys.argv[1], i)).close()' "$WS/many" "$many"
check "each was reopened by handle: $many reopens" \
	test "$(stat_of "$MNT" workspace_fd_reopens)" = $((reopens0 + many))
check "and each closed another: $many more closed" \
	test "$(stat_of "$MNT" workspace_fd_evictions)" = $((evictions0 + fds0 + 2 * many + 1 - budget))
echo x >"$WS/chosen"
mkdir "$WS/chosen.d"
check "--workspace-owner: a file is the chosen owner's" test "$(owner_of "$DIR/chosen")" = 4321:4322
check "and a directory" test "$(owner_of "$DIR/chosen.d")" = 4321:4322
check "what was there is still there" test "$(cat "$WS/from-host")" = hello
set_overlay_xattr() { # PATH: trusted.overlay.opaque=y, print the errno's name
	python3 - "$1" <<-'EOF'
		import errno, os, sys
		try:
		    os.setxattr(sys.argv[1], "trusted.overlay.opaque", b"y")
		    print("set")
		except OSError as e:
		    print(errno.errorcode[e.errno])
	EOF
}
check "without --workspace-overlay-xattrs: setxattr trusted.overlay.opaque is ENOTSUP" \
	test "$(set_overlay_xattr "$WS/chosen.d")" = ENOTSUP
check "other trusted.* xattrs still pass" \
	python3 -c 'import os,sys; os.setxattr(sys.argv[1], "trusted.other", b"1")' "$WS/chosen.d"
check "a trusted.overlay.* xattr set before still reads (reading grants nothing)" python3 -c \
	'import os,sys; os.getxattr(sys.argv[1], "trusted.overlay.redirect")' "$WS/upper/dir2"
check "with 2048 descriptors: the whole tree compares" T diff -r --no-dereference \
	--exclude=.git --exclude=stdio.h /usr/include "$WS/src"
check "stat of every file" T find "$WS/src" -exec stat -c %i {} + >/dev/null
git_ws status --porcelain >"$WORK/status"
check "git status" test "$(cat "$WORK/status")" = " M stdio.h"
check "git fsck" git_ws fsck --no-progress
check "the whole tree again, from the start" T diff -r --no-dereference \
	--exclude=.git --exclude=stdio.h /usr/include "$WS/src"
check_ok "dindfs umount" T "$DINDFS" umount "$MNT" || holders_of "$MNT"
check "unmounted" not is_mounted "$MNT"
check "the mount log has no error" not grep -qi "error\|fail" "$MOUNT_LOG"

# ---- --workspace-owner preserve: what is created is its creator's --------------------------

must_mount "$MNT" --store "$STORE" --workspace "$DIR" --workspace-owner preserve -o allow_other
mkdir "$WS/pres" && chmod 1777 "$WS/pres"
check "preserve: root creates a file: root's on disk" sh -c "echo x >'$WS/pres/by-root'"
check "0:0" test "$(owner_of "$DIR/pres/by-root")" = 0:0
check "the owner creates a file and a directory" as_owner sh -c "touch '$WS/pres/o' && mkdir '$WS/pres/o.d'"
check "both the owner's" test "$(owner_of "$DIR/pres/o") $(owner_of "$DIR/pres/o.d")" = "$OWNER:$OWNER $OWNER:$OWNER"
check "another user makes a symlink and a fifo" as_other sh -c "ln -s x '$WS/pres/s' && mkfifo '$WS/pres/p'"
check "both that user's" test "$(owner_of "$DIR/pres/s") $(owner_of "$DIR/pres/p")" = "4444:4444 4444:4444"
mkdir "$DIR/pres/g" && chgrp 555 "$DIR/pres/g" && chmod 2777 "$DIR/pres/g"
check "in a set-group-ID directory" as_other touch "$WS/pres/g/f"
check "the group is the directory's" test "$(owner_of "$DIR/pres/g/f")" = 4444:555
check "still no set-user-ID bit" as_other sh -c "touch '$WS/pres/x' && chmod 4755 '$WS/pres/x'"
check "755 on the host" test "$(stat -c %a "$DIR/pres/x")" = 755
check "4755 shown, kept in trusted.dindfs.stat" \
	test "$(stat -c %a "$WS/pres/x") $(getfattr --only-values -n trusted.dindfs.stat "$DIR/pres/x")" = "4755 4444:4444:04000"
check "root's chown 4444:4444 (the same owner) clears it, as on ext4" chown 4444:4444 "$WS/pres/x"
check "755 shown, and no override left" \
	test "$(stat -c %a "$WS/pres/x") $(list_xattrs "$DIR/pres/x")" = "755 "
check "preserve: what 4444 makes shows as 4444's, with no override on disk" \
	test "$(shown "$WS/pres/p") $(list_xattrs "$DIR/pres/p")" = "4444:4444 "
# Device nodes are emulated in preserve mode too: a real one would give the
# host a device in a user's directory.
check "preserve: root's mknod c 1 3 and b 7 0" sh -c "mknod '$WS/pres/null' c 1 3 && mknod '$WS/pres/loop' b 7 0"
check "the mount shows the devices and their numbers" \
	test "$(T stat -c '%F %t %T %u:%g' "$WS/pres/null" "$WS/pres/loop" | tr '\n' ' ')" = "character special file 1 3 0:0 block special file 7 0 0:0 "
check "on disk two empty regular files, 0600, root's (the creator's)" \
	test "$(stat -c '%F %a %u:%g' "$DIR/pres/null" "$DIR/pres/loop" | sort -u)" = "regular empty file 600 0:0"
check "opening one through the mount: EACCES (nodev)" test "$(open_errno "$WS/pres/null")" = EACCES
check "chown 4444:4444 of a device in preserve mode: the disk too" chown 4444:4444 "$WS/pres/null"
check "4444:4444 shown and on disk" test "$(shown "$WS/pres/null") $(owner_of "$DIR/pres/null")" = "4444:4444 4444:4444"
check_ok "dindfs umount" T "$DINDFS" umount "$MNT" || holders_of "$MNT"
check "its log has no error" not grep -qi "error\|fail" "$MOUNT_LOG"

finish
