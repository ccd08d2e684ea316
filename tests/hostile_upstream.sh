#!/usr/bin/env bash
# dindfs mount against a hostile registry (tests/fixtures/tarpit_registry.py,
# mapped in as evil.test) next to a real one (Debian's docker-registry as
# docker.io). What a level can do to the mount through upstream, and what
# the mount promises back (docs/security.md, "Upstream limits"):
#   - a registry that trickles or says 503 with Retry-After: 60 holds no
#     FUSE thread: at most FS_UPSTREAM_PER_HOST (16) of its lookups wait,
#     each at most --upstream-timeout, the rest fail at once with EAGAIN,
#     and the workspace and cached blobs answer within 1 s meanwhile;
#   - 60 lookups of an absent tag are 1 upstream request per --negative-ttl;
#   - a tarpit serving a digest does not hold up docker.io's read of it;
#     one registry gets at most FETCH_MAX_PER_HOST (16) downloads, then
#     EBUSY; a reader that is interrupted stops waiting (EINTR).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"

PROBE=$FIXTURES/upstream_probe.py
MNT=$WORK/mnt STORE=$WORK/store WS=$WORK/ws
TIMEOUT_S=4 NEGATIVE_TTL=3
own_docker_config # no credentials from ~
mkdir -p "$WS"
echo hello >"$WS/hello.txt"

# hostile_start: the hostile registry; sets EVIL_URL and EVIL_LOG.
hostile_start() {
	local pid
	EVIL_LOG=$WORK/evil.log
	: >"$EVIL_LOG"
	python3 "$FIXTURES/tarpit_registry.py" --port-file "$WORK/evil.port" --log "$EVIL_LOG" \
		"$@" >"$WORK/evil.err" 2>&1 &
	pid=$!
	on_exit "_stop_pid $pid"
	_wait_file "$WORK/evil.port" "$pid" || {
		cat "$WORK/evil.err" >&2
		return 1
	}
	EVIL_URL=http://127.0.0.1:$(<"$WORK/evil.port")
}
evil_count() { grep -cE -- "$1" "$EVIL_LOG" || true; } # REGEX: requests logged

# local_answers LABEL: stat of the workspace, of a file in it, of a cached
# blob and of .dindfs/stats each answer, and within 1 s.
local_answers() {
	local out bad
	out=$(T python3 "$PROBE" timed "$MNT/workspace" "$MNT/workspace/hello.txt" \
		"$(mnt_blob "$MNT" "$CACHED")" "$MNT/.dindfs/stats")
	bad=$(awk '$1 != "OK" || $2 >= 1.0' <<<"$out")
	if [[ -z $bad && $(wc -l <<<"$out") == 4 ]]; then pass "$1: local files answer within 1 s"; else
		fail "$1: local files answer within 1 s (got: $(tr '\n' ' ' <<<"$out"))"
	fi
}

registry_start src
push_test_image src library/real v1 oci 2 $((256 * 1024)) >/dev/null
LAYER=${IMAGE_LAYERS[1]} LAYER_FILE=$IMAGE_DIR/layer-2.tar.gz CACHED=$IMAGE_CONFIG_DIGEST
hostile_start --retry-after 60 --blob-size "$(stat -c %s "$LAYER_FILE")"

must_mount "$MNT" --store "$STORE" --workspace "$WS" --upstream "docker.io=$src_URL" \
	--upstream "evil.test=$EVIL_URL" --upstream-timeout "$TIMEOUT_S" --negative-ttl "$NEGATIVE_TTL"
expect_fsop_is OK "a real image's manifest resolves" stat "$(mnt_manifest "$MNT" docker.io library/real v1)"
T cat "$(mnt_repo_blob "$MNT" docker.io library/real "$CACHED")" >/dev/null
check "its config is a cached blob now" test -e "$(mnt_blob "$MNT" "$CACHED")"
local_answers "before any attack"

# ---- attack 2: upstream calls that never end ------------------------------

# 70 lookups at once of tags a registry trickles at 1 byte/s.
T python3 "$PROBE" stampede 70 "$MNT/registry/evil.test/slow{i}/x/manifests/latest" \
	>"$WORK/stampede.out" 2>&1 &
stampede=$!
check "16 trickled manifest GETs reach the registry" \
	wait_until 10 eval '(($(evil_count "^GET /v2/slow[0-9]+/x/manifests/latest") >= 16))'
local_answers "while 16 lookups trickle"
wait "$stampede" || true
expect_match "$WORK/stampede.out" "^EAGAIN 54$" \
	"54 of 70 lookups find evil.test's share of upstream workers full: EAGAIN"
expect_match "$WORK/stampede.out" "^EIO 16$" "16 run until the $TIMEOUT_S s deadline and fail: EIO"
slowest=$(awk '$1 == "slowest" { print $2 }' "$WORK/stampede.out")
check "none waits much past the deadline (slowest $slowest s)" \
	eval "(($(echo "$slowest < $TIMEOUT_S + 2" | bc -l)))"
check "each trickled GET was sent once: the deadline leaves no time for another (16 in all)" \
	test "$(evil_count "^GET /v2/slow[0-9]+/x/manifests/latest")" = 16
local_answers "after the trickle"

# A lookup whose caller gives up (a signal) stops waiting for the trickle.
T python3 "$PROBE" statwait "$WORK/statwait.status" "$(mnt_manifest "$MNT" evil.test slowint latest)" &
statwaiter=$!
check "(the interrupted lookup's GET reached the registry)" \
	wait_until 10 eval '(($(evil_count "^GET /v2/slowint/manifests/latest") == 1))'
kill -USR1 "$(awk '$1 == "pid" { print $2 }' "$WORK/statwait.status")"
check "an interrupted lookup returns" wait_until 3 grep -qx done "$WORK/statwait.status"
expect_match "$WORK/statwait.status" "^stat EINTR [01]\." "with EINTR, within 2 s of the signal"
wait "$statwaiter" || true

# 503 with Retry-After: 60, longer than the deadline: fail now, do not wait.
out=$(T python3 "$PROBE" timed "$(mnt_manifest "$MNT" evil.test busy latest)")
check "a 503 with Retry-After: 60 fails with EIO within 1 s (got '$out')" \
	eval '[[ $out =~ ^EIO\ 0\. ]]'
check "and was asked once, not retried past the deadline" \
	test "$(evil_count "^GET /v2/busy/manifests/latest")" = 1

# ---- negative caching --------------------------------------------------------

path=$(mnt_manifest "$MNT" evil.test absent nope)
T python3 "$PROBE" repeat 60 "$path" >"$WORK/absent.out"
expect_match "$WORK/absent.out" "^ENOENT 60$" "60 lookups of an absent tag: 60 x ENOENT"
check "60 lookups of an absent tag made 1 upstream request" \
	test "$(evil_count "^GET /v2/absent/manifests/nope$")" = 1
sleep "$NEGATIVE_TTL.2"
expect_fsop_is stat:ENOENT "after the negative TTL ($NEGATIVE_TTL s) the tag is still absent" stat "$path"
check "and upstream was asked again, once (2 in all)" \
	test "$(evil_count "^GET /v2/absent/manifests/nope$")" = 2

# ---- attack 3: a tarpit serving a real digest -------------------------------

# A mount of its own, with a deadline long enough for the checks below to
# run while the tarpit downloads are still pending.
TIMEOUT_S=10 MNT=$WORK/mnt3 STORE=$WORK/store3
must_mount "$MNT" --store "$STORE" --workspace "$WS" --upstream "docker.io=$src_URL" \
	--upstream "evil.test=$EVIL_URL" --upstream-timeout "$TIMEOUT_S"
T cat "$(mnt_repo_blob "$MNT" docker.io library/real "$CACHED")" >/dev/null
local_answers "on the second mount"

# 17 blobs of a tarpit: the real layer and 16 made-up digests.
paths=("$(mnt_repo_blob "$MNT" evil.test tarpit "$LAYER")")
for ((i = 1; i <= 16; i++)); do
	paths+=("$(mnt_repo_blob "$MNT" evil.test tarpit "sha256:$(printf 'tarpit %d' "$i" | sha256sum | cut -d' ' -f1)")")
done
T python3 "$PROBE" hold "$WORK/hold.status" "${paths[@]}" &
holder=$!
check "the holder opened what it could" wait_until 20 grep -qx ready "$WORK/hold.status"
check "16 tarpit downloads started: 16 opens OK" \
	test "$(grep -c '^open .* OK$' "$WORK/hold.status")" = 16
check "the 17th finds evil.test's share of downloads full: EBUSY" \
	eval '[[ $(grep "^open " "$WORK/hold.status" | sed -n 17p) == "open ${paths[16]} EBUSY" ]]'
check "the tarpit got the GET of the real layer" \
	wait_until 5 eval '(($(evil_count "^GET /v2/tarpit/blobs/$LAYER") >= 1))'
local_answers "while 16 tarpit downloads stall"
got=$(T sha256sum <"$(mnt_repo_blob "$MNT" docker.io library/real "$LAYER")" | cut -d' ' -f1)
check "docker.io's read of the same digest completes, from the real registry" \
	test "sha256:$got" = "$LAYER"
check "while the tarpit read is still pending" not grep -q '^read ' "$WORK/hold.status"
check "docker.io's registry served that GET" \
	test "$(registry_log_count src GET "/v2/library/real/blobs/$LAYER" 200)" -ge 1
kill -USR1 "$(awk '$1 == "pid" { print $2 }' "$WORK/hold.status")"
check "an interrupted tarpit read stops waiting" wait_until 3 grep -qx done "$WORK/hold.status"
expect_match "$WORK/hold.status" "^read EINTR 0\." "it returns EINTR, within 1 s of the signal"
wait "$holder" || true
opens_again() { [[ $(T python3 "$PROBE" open "${paths[16]}") == OK ]]; }
check "the tarpit downloads end by the deadline: a 17th starts now" wait_until 20 opens_again
check "nothing of the tarpit is in the store" \
	test ! -e "$(mnt_blob "$MNT" "sha256:$(printf 'tarpit 1' | sha256sum | cut -d' ' -f1)")"
check "the real layer is, verified" blobs_verified "$STORE/blobs"

finish
