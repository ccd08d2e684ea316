#!/usr/bin/env bash
# Which hosts the mount's daemon contacts, against a real mount: only the
# registries it serves (built-in, --registry, --upstream, config.json),
# published in .dindfs/registries; Docker Hub's aliases go where docker.io
# goes; an unserved name is ENOENT with no connection. Hostile registries
# and an "internal service" are tests/fixtures/hostile_registry.py, whose
# logs say who was asked what.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/mount_lib.sh"

HOSTILE=$FIXTURES/hostile_registry.py
MNT=$WORK/mnt
own_docker_config

# hostile_start NAME MODE...: a hostile_registry.py listener; sets NAME_PORT,
# NAME_URL (http://127.0.0.1:PORT), NAME_HOSTPORT and NAME_LOG.
hostile_start() {
	local name=$1 pid
	shift
	_set "$name" LOG "$WORK/$name.log"
	: >"$WORK/$name.log"
	python3 "$HOSTILE" --port-file "$WORK/$name.port" --log "$WORK/$name.log" "$@" &
	pid=$!
	on_exit "_stop_pid $pid"
	_wait_file "$WORK/$name.port" "$pid" || {
		echo "hostile_registry.py $name did not start" >&2
		return 1
	}
	_set "$name" PORT "$(head -1 "$WORK/$name.port")"
	_set "$name" URL "http://127.0.0.1:$(_var "$name" PORT)"
	_set "$name" HOSTPORT "127.0.0.1:$(_var "$name" PORT)"
}
log_lines() { wc -l <"$(_var "$1" LOG)"; } # NAME

# ---- which names, and nothing else ---------------------------------------

registry_start hub
push_test_image hub library/app v1 >/dev/null
app_digest=$IMAGE_DIGEST
hostile_start internal --token
# a registry only the config.json names (its credentials are for it alone)
cat >"$DOCKER_CONFIG/config.json" <<EOF
{"auths": {"https://private.example:5000/v1/": {"auth": "dTpw"}},
 "credHelpers": {"Helped.Example": "none"}}
EOF

expect_exit 2 "a bad --registry" mount_dindfs "$WORK/mnt-bad" --store "$WORK/store" --registry 'a/b'
expect_match "$WORK/err" "bad --registry 'a/b'" "names it"
expect_exit 2 "--registry local is no registry" mount_dindfs "$WORK/mnt-bad" --store "$WORK/store" --registry local
expect_exit 2 "a bad --allow-origin" mount_dindfs "$WORK/mnt-bad" --store "$WORK/store" \
	--allow-origin "http://127.0.0.1:1/token"
expect_match "$WORK/err" "bad --allow-origin 'http://127.0.0.1:1/token' \(want a base URL" "names it"
cp "$DOCKER_CONFIG/config.json" "$WORK/config.good"
echo '{"auths": [' >"$DOCKER_CONFIG/config.json"
expect_exit 1 "a config.json that is not JSON" mount_dindfs "$WORK/mnt-bad" --store "$WORK/store"
expect_match "$WORK/err" "^dindfs: cannot read the registries in docker config '$DOCKER_CONFIG/config.json': Invalid argument$" \
	"says which file, in one line"
expect_lines "$WORK/err" 1 "(one line)"
cp "$WORK/config.good" "$DOCKER_CONFIG/config.json"
check "none mounted" not is_mounted "$WORK/mnt-bad"

must_mount "$MNT" --store "$WORK/store" --upstream "docker.io=$hub_URL" \
	--registry extra.example --registry 'extra.example:8443'
cat >"$WORK/registries.want" <<EOF
docker.io
index.docker.io
registry-1.docker.io
ghcr.io
quay.io
mcr.microsoft.com
registry.k8s.io
gcr.io
us.gcr.io
eu.gcr.io
asia.gcr.io
us-docker.pkg.dev
europe-docker.pkg.dev
asia-docker.pkg.dev
public.ecr.aws
registry.gitlab.com
nvcr.io
extra.example
extra.example:8443
private.example:5000
helped.example
EOF
check ".dindfs/registries lists exactly the built-in, --upstream, --registry and config.json names" \
	T cmp -s "$MNT/.dindfs/registries" "$WORK/registries.want"
[[ $FAILED == 0 ]] || diff "$WORK/registries.want" "$MNT/.dindfs/registries" | sed 's/^/    /'
expect_fsop_is OK ".dindfs/registries is listed in .dindfs/" stat "$MNT/.dindfs/registries"
expect_fsop 'open:(EACCES|EROFS|EPERM)' "and it is read-only" writeopen "$MNT/.dindfs/registries"

# an unserved host, even one that answers: ENOENT, no connection, one log line
expect_fsop_is 'stat:ENOENT' "registry/<unserved host:port>/... is ENOENT" \
	stat "$MNT/registry/$internal_HOSTPORT/x/manifests/latest"
expect_fsop_is 'open:ENOENT' "and reading a blob there too" \
	read "$MNT/registry/$internal_HOSTPORT/x/blobs/$app_digest"
expect_fsop_is 'stat:ENOENT' "registry/<unserved host>/ itself is ENOENT" \
	stat "$MNT/registry/evil.example"
check "the unserved service was never connected to" test "$(log_lines internal)" -eq 0
expect_match "$MOUNT_LOG" "$internal_HOSTPORT: not a registry this mount serves \(dindfs mount --registry $internal_HOSTPORT adds it\)" \
	"the log names the registry and --registry"
check "one line for it, however often it was asked" \
	test "$(grep -c "$internal_HOSTPORT: not a registry" "$MOUNT_LOG")" -eq 1

# ---- Docker Hub's aliases go where docker.io goes --------------------------

before=$(registry_log_count hub GET "/v2/library/app/manifests/v1")
for alias in index.docker.io registry-1.docker.io; do
	check "registry/$alias is a symlink to docker.io" \
		test "$(T readlink "$MNT/registry/$alias")" = docker.io
	check "registry/$alias/library/app/manifests/v1 is the --upstream's manifest" \
		T cmp -s "$MNT/registry/$alias/library/app/manifests/v1" "$IMAGE_DIR/manifest.json"
done
check "the aliases asked the --upstream, not Docker Hub" \
	test "$(registry_log_count hub GET "/v2/library/app/manifests/v1")" -gt "$before"

# ---- attack 5: redirects and realms aimed at an internal service -----------

# Hostile registries, served (as --upstream, so their own origins are
# trusted), that send the daemon to the internal service on loopback.
hostile_start redir --redirect "$internal_URL"
hostile_start tlsredir --redirect "https://localhost:$internal_PORT"
hostile_start realm --realm "$internal_URL/token"
hostile_start tlsrealm --realm "https://localhost:$internal_PORT/token"
# attack 6: registries with credentials that redirect to another host (let
# in by --allow-origin), which names a realm (let in too); one asks for its
# credentials first, one does not
hostile_start collector --token
hostile_start elsewhere --realm "$collector_URL/token"
hostile_start creds --basic --redirect "$elsewhere_URL"
hostile_start creds2 --redirect "$elsewhere_URL"
auth=$(printf 'u:secret' | base64)
printf '{"auths": {"creds.test": {"auth": "%s"}, "creds2.test": {"auth": "%s"}}}\n' \
	"$auth" "$auth" >"$DOCKER_CONFIG/config.json"
: >"$internal_LOG"

must_mount "$WORK/mnt2" --store "$WORK/store2" --upstream "redir.test=$redir_URL" \
	--upstream "tlsredir.test=$tlsredir_URL" --upstream "realm.test=$realm_URL" \
	--upstream "tlsrealm.test=$tlsrealm_URL" --upstream "creds.test=$creds_URL" \
	--upstream "creds2.test=$creds2_URL" \
	--allow-origin "$elsewhere_URL" --allow-origin "$collector_URL/"
M2=$WORK/mnt2/registry

expect_fsop_is 'stat:EIO' "a redirect to plain http on loopback is not followed (EIO)" \
	stat "$M2/redir.test/x/manifests/latest"
expect_match "$MOUNT_LOG" "redir.test: refused to follow a redirect to http://127.0.0.1:$internal_PORT \(127.0.0.1\)" \
	"the log says where it was sent"
expect_fsop_is 'stat:EIO' "nor one to https on a name that resolves to loopback" \
	stat "$M2/tlsredir.test/x/manifests/latest"
expect_match "$MOUNT_LOG" "tlsredir.test: refused to follow a redirect to https://localhost:$internal_PORT \((127.0.0.1|::1)\)" \
	"judged by the address connected to, not by the name"
expect_fsop_is 'stat:EIO' "a realm on plain http on loopback is not asked (EIO)" \
	stat "$M2/realm.test/x/manifests/latest"
expect_match "$MOUNT_LOG" "realm.test: refused to ask the token server http://127.0.0.1:$internal_PORT" \
	"the log says which token server"
expect_fsop_is 'stat:EIO' "nor one on https on a name that resolves to loopback" \
	stat "$M2/tlsrealm.test/x/manifests/latest"
check "the hostile registries were asked" test "$(log_lines redir)" -ge 1 -a "$(log_lines realm)" -ge 1 \
	-a "$(log_lines tlsredir)" -ge 1 -a "$(log_lines tlsrealm)" -ge 1
check "the internal service's access log stays empty" test "$(log_lines internal)" -eq 0

# ---- attack 6: no credentials to another host after a redirect -------------

expect_fsop_is 'stat:EACCES' "a redirect that ends in a 401 elsewhere is EACCES" \
	stat "$M2/creds.test/x/manifests/latest"
expect_match "$creds_LOG" 'auth=Basic' "the registry got its credentials"
check "the host it redirected to was asked" test "$(log_lines elsewhere)" -ge 1
check "with no credentials, Basic or Bearer" test "$(grep -vc ' auth=-$' "$elsewhere_LOG")" -eq 0
expect_fsop_is 'stat:EACCES' "the same when the registry redirects before any 401" \
	stat "$M2/creds2.test/x/manifests/latest"
check "the realm the other host named never heard from us" test "$(log_lines collector)" -eq 0
check "nor did the other host get credentials" test "$(grep -vc ' auth=-$' "$elsewhere_LOG")" -eq 0
expect_match "$MOUNT_LOG" "creds2.test: a redirect to another host answered 401; not authenticating there" \
	"the log says why"

finish
