# Debian packages, by what needs them. Sourced by the scripts beside it.

# To build dindfs.
BUILD_PACKAGES=(build-essential cmake pkg-config libfuse3-dev fuse3 libcurl4-openssl-dev
	libsqlite3-dev libssl-dev libjansson-dev libmicrohttpd-dev libarchive-dev
	# dindfs snapshotter: gRPC's C core, protobuf-c and its compiler (proto/)
	libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
	# run by the daemon: mkfs.erofs makes each layer's EROFS image (cache/layer_image.h)
	erofs-utils)
# To build libfuse 3.17 from Debian 13's source (scripts/libfuse317.sh,
# -DDINDFS_LIBFUSE317=ON): FUSE passthrough on a Debian 12 machine.
LIBFUSE317_PACKAGES=(meson ninja-build dpkg-dev g++ pkg-config)
# To run its tests, on top of the build.
TEST_PACKAGES=(check sqlite3 clang-format
	# the test registries and their fixtures (tests/registry.sh, tests/fixtures/)
	docker-registry skopeo apache2-utils busybox-static python3 curl openssl bc
	# getcap, for a file capability in an unpacked layer (tests/hostile_layers.sh)
	libcap2-bin
	# a real dockerd for tests/docker.sh; base images for tests/e2e.sh;
	# compose.yaml's start and stop in tests/container.sh
	docker.io debootstrap docker-compose
	# the workspace (tests/workspace.sh): a real project, other users, xattrs
	git util-linux attr
	# services that check their files' owner in the workspace (tests/workspace_owner.sh):
	# postgresql's initdb and pg_ctl as postgres, sshd with StrictModes
	postgresql openssh-server openssh-client
	# systemd-analyze verify for contrib/systemd (tests/systemd.sh); jq for
	# the dev container feature's metadata (tests/devcontainer.sh)
	systemd jq)
# For the benchmarks (bench/), on top of the tests: the peers they compare with,
# a TCP forwarder to the emulated WAN and the plots (bench/nested-pull.sh).
BENCH_PACKAGES=(bindfs socat gnuplot-nox
	# to build pjdfstest outside the repository for bench/pjdfstest.sh
	autoconf automake libtool)
# For the demo (scripts/demo.sh), on top of the build: a dockerd, base
# images without Docker Hub, and a local registry when there is no internet.
DEMO_PACKAGES=(docker.io debootstrap docker-registry skopeo curl ca-certificates)
# To render the docs' pictures (scripts/docs.sh: docs/*.dot -> docs/*.png).
DOCS_PACKAGES=(graphviz)

# Install whichever of the named packages are missing (apt-get update only then).
install_packages() {
	local missing=() pkg
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$pkg")
	done
	((${#missing[@]})) || return 0
	echo "installing: ${missing[*]}"
	local sudo=()
	[[ $(id -u) == 0 ]] || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
}

# debian_archive [security]: the URI of the Debian archive this machine's apt
# uses (its entry for this release's suite, or with "security" for
# SUITE-security), from the deb822 files in /etc/apt/sources.list.d, else
# /etc/apt/sources.list. One line on stderr and status 1 when there is none.
# The release is VERSION_CODENAME in /etc/os-release (bookworm when unset).
debian_archive() {
	local kind=${1:-main} codename suite uri
	codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
	suite=${codename:-bookworm}
	[[ $kind != security ]] || suite+=-security
	uri=$(awk -v want="$suite" 'BEGIN { RS = ""; FS = "\n" }
		{
			deb = 0; found = 0; uri = ""
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^Types:/) deb = $i ~ /[ \t]deb([ \t]|$)/
				else if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) found = found || s[j] == want }
				else if ($i ~ /^URIs:/) { split($i, u, /[ \t]+/); uri = u[2] }
			}
			if (deb && found && uri ~ /^[a-z]+:\/\//) { print uri; exit }
		}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
	if [[ -z $uri ]]; then
		uri=$(awk -v want="$suite" '$1 == "deb" {
				for (i = 2; i < NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i + 1) == want) { print $i; exit } break }
			}' /etc/apt/sources.list 2>/dev/null)
	fi
	if [[ -z $uri ]]; then
		echo "no deb entry for $suite in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list" >&2
		return 1
	fi
	echo "${uri%/}"
}
