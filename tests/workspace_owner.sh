#!/usr/bin/env bash
# Services that check who owns their files, run in the workspace in its
# default mode (the disk keeps the workspace owner's, uid 1234): Debian's
# postgresql (initdb and pg_ctl as postgres: the data directory must be
# postgres's, 0700, and postgres must write in it) and OpenSSH's sshd with
# StrictModes (the user's home, ~/.ssh and authorized_keys must be the
# user's). Both see what the mount shows: the creator as owner.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"

STORE=$WORK/store
MNT=$WORK/mnt
DIR=$WORK/ws
WS=$MNT/workspace
OWNER=1234
PG_BIN=/usr/lib/postgresql/15/bin
mkdir -p "$DIR"
chmod 755 "$WORK" # other users reach the mount through it
chown "$OWNER:$OWNER" "$DIR"

must_mount "$MNT" --store "$STORE" --workspace "$DIR" -o allow_other

# ---- postgresql ------------------------------------------------------------

check "postgresql 15 and the postgres user are installed" \
	sh -c "test -x '$PG_BIN/initdb' && id -u postgres >/dev/null"
as_postgres() { T runuser -u postgres -- "$@"; }
mkdir "$WS/pg"
check "root gives postgres a directory in the workspace" chown postgres:postgres "$WS/pg"
# logged LOG COMMAND...: COMMAND's output in LOG, shown when it fails
logged() {
	local log=$1
	shift
	"$@" >"$log" 2>&1 && return 0
	sed 's/^/    /' "$log" | tail -20
	return 1
}
check "initdb -D as postgres" logged "$WORK/initdb.log" as_postgres "$PG_BIN/initdb" -D "$WS/pg/data" --auth=trust
check "the data directory is postgres's through the mount, 0700" \
	test "$(T stat -c %U:%a "$WS/pg/data")" = postgres:700
check "and the workspace owner's on disk" test "$(stat -c %u:%g "$DIR/pg/data/pg_wal")" = "$OWNER:$OWNER"
SOCK=$WORK/pgrun # unix sockets outside the workspace: postgres's own dir
mkdir "$SOCK" && chown postgres "$SOCK"
on_exit "runuser -u postgres -- '$PG_BIN/pg_ctl' stop -D '$WS/pg/data' -m immediate >/dev/null 2>&1"
check "pg_ctl start" logged "$WORK/pg_ctl.log" as_postgres "$PG_BIN/pg_ctl" start -w -t 30 \
	-D "$WS/pg/data" -l "$SOCK/log" -o "-k $SOCK -c listen_addresses=''"
check "psql -c 'select 1' says 1" test "$(as_postgres psql -h "$SOCK" -d postgres -Atc 'select 1')" = 1
check "a table written and read back" test "$(as_postgres psql -q -h "$SOCK" -d postgres -Atc \
	'create table t (n int); insert into t select generate_series(1, 1000); select sum(n) from t')" = 500500
check "pg_ctl stop" as_postgres "$PG_BIN/pg_ctl" stop -w -D "$WS/pg/data" -m fast >/dev/null

# ---- sshd with StrictModes ---------------------------------------------------

# A user whose home is in the workspace, in a mount namespace of our own
# (its /etc/passwd a copy with the user added: the host's is not touched).
# uid 4444 makes its ~/.ssh and authorized_keys itself; sshd, with
# StrictModes yes, accepts the key only if the home, ~/.ssh and the file are
# that user's and not writable by others, as the mount shows them.
check "openssh-server and -client are installed" sh -c 'test -x /usr/sbin/sshd && command -v ssh >/dev/null'
HOME_U=$WS/home/dindfsu
mkdir -p "$WS/home" "$HOME_U"
check "root gives the home to uid 4444" chown 4444:4444 "$HOME_U"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/userkey"
check "uid 4444 makes ~/.ssh (0700) and authorized_keys (0600) in the workspace" \
	T setpriv --reuid 4444 --regid 4444 --clear-groups sh -c \
	"umask 077 && mkdir '$HOME_U/.ssh' && cat '$WORK/userkey.pub' >'$HOME_U/.ssh/authorized_keys'"
check "through the mount they are 4444's" \
	test "$(T stat -c %u:%a "$HOME_U/.ssh" "$HOME_U/.ssh/authorized_keys" | tr '\n' ' ')" = "4444:700 4444:600 "
check "on disk the owner's" test "$(stat -c %u "$DIR/home/dindfsu/.ssh/authorized_keys")" = "$OWNER"
{ cat /etc/passwd && echo "dindfsu:x:4444:4444::$HOME_U:/bin/sh"; } >"$WORK/passwd"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $WORK/hostkey
StrictModes yes
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PidFile none
EOF
# one_login: in the namespace, sshd -d (one connection, then it exits) and
# ssh as dindfsu running id -u; prints what the login printed.
one_login() {
	T unshare -m --propagation private sh -c '
		mount --bind "$1/passwd" /etc/passwd || exit 1
		/usr/sbin/sshd -d -e -f "$1/sshd_config" 2>"$1/sshd.log" &
		for i in $(seq 100); do grep -q "Server listening" "$1/sshd.log" && break; sleep 0.05; done
		ssh -F /dev/null -i "$1/userkey" -p "$2" -o BatchMode=yes -o StrictHostKeyChecking=no \
			-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR dindfsu@127.0.0.1 id -u
		wait' sh "$WORK" "$port"
}
mkdir -p /run/sshd # sshd's privilege separation directory (the package's own)
check "sshd -t takes the config" T /usr/sbin/sshd -t -f "$WORK/sshd_config"
check "ssh with the key in the workspace logs in as 4444 (StrictModes yes)" \
	test "$(one_login 2>"$WORK/ssh.err")" = 4444
check "sshd checked the key file and accepted it" grep -q 'Accepted publickey for dindfsu' "$WORK/sshd.log"
# The check that would fail under the old mapping: a ~/.ssh the user does
# not own (0755, so that the user can still read the key file in it).
check "root chowns ~/.ssh to the workspace owner, 0755" \
	sh -c "chown '$OWNER:$OWNER' '$HOME_U/.ssh' && chmod 755 '$HOME_U/.ssh'"
check "then sshd refuses the key (bad ownership)" test -z "$(one_login 2>/dev/null)"
check "saying why" grep -q 'bad ownership or modes for directory' "$WORK/sshd.log"

check "dindfs umount" T "$DINDFS" umount "$MNT"
check "its log has no error" not grep -qi "error\|fail" "$MOUNT_LOG"

finish
