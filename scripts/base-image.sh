#!/usr/bin/env bash
# Base images with no Docker Hub: `debootstrap --variant=minbase SUITE`,
# trimmed like Debian's -slim images, then `docker import`ed.
#
#   scripts/base-image.sh [--host unix:///path/docker.sock] SUITE...
#
# SUITE is bookworm (tagged debian:12-slim) or trixie (debian:13-slim).
# The root file system is kept as a tarball in $DINDFS_CACHE (default
# /var/cache/dindfs), so only the first run debootstraps; an image the
# dockerd already has is left as it is. Prints each image's tag. Needs root
# and debootstrap. The archive is the one this machine's apt uses
# (debian_archive in scripts/deps.sh), or $DEBIAN_MIRROR, and its security
# archive likewise, or $DEBIAN_SECURITY_MIRROR; they are only looked up
# when a suite is debootstrapped.
set -euo pipefail

CACHE=${DINDFS_CACHE:-/var/cache/dindfs}
MIRROR=${DEBIAN_MIRROR:-}
SECURITY=${DEBIAN_SECURITY_MIRROR:-}
. "$(dirname "$0")/deps.sh"
host=${DOCKER_HOST:-}

usage() {
	echo "usage: $0 [--host unix:///path/docker.sock] bookworm|trixie..." >&2
	exit 2
}

suites=()
while (($#)); do
	case $1 in
	-H | --host)
		(($# >= 2)) || usage
		host=$2
		shift 2
		;;
	-h | --help) usage ;;
	-*) usage ;;
	*)
		suites+=("$1")
		shift
		;;
	esac
done
((${#suites[@]})) || usage
[[ -z $host ]] || export DOCKER_HOST=$host

tag_of() {
	case $1 in
	bookworm) echo debian:12-slim ;;
	trixie) echo debian:13-slim ;;
	*)
		echo "base-image.sh: unknown suite '$1' (bookworm, trixie)" >&2
		return 1
		;;
	esac
}

# rootfs SUITE: the path of its tarball, made once (under a lock, so that
# two runs at once debootstrap only once).
rootfs() {
	local suite=$1 tarball root
	tarball=$CACHE/debian-$suite-minbase-$(dpkg --print-architecture).tar
	mkdir -p "$CACHE"
	exec 9>"$tarball.lock"
	flock 9
	if [[ ! -s $tarball ]]; then
		command -v debootstrap >/dev/null || {
			echo "base-image.sh: debootstrap is not installed (apt-get install debootstrap)" >&2
			return 1
		}
		archives || return 1
		root=$(mktemp -d "$CACHE/.root-$suite.XXXXXX")
		echo "base-image.sh: debootstrap --variant=minbase $suite (once; kept in $tarball)" >&2
		if ! debootstrap --variant=minbase "$suite" "$root" "$MIRROR" >"$root.log" 2>&1; then
			echo "base-image.sh: debootstrap $suite failed; the end of its log:" >&2
			tail -15 "$root.log" >&2
			rm -rf "$root" "$root.log"
			return 1
		fi
		slim "$suite" "$root"
		tar -C "$root" --numeric-owner --sort=name -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
		rm -rf "$root" "$root.log"
	fi
	exec 9>&-
	echo "$tarball"
}

# archives: MIRROR and SECURITY, from apt's sources unless given.
archives() {
	[[ -n $MIRROR ]] || MIRROR=$(debian_archive 2>&1) || {
		echo "base-image.sh: $MIRROR: set DEBIAN_MIRROR to a Debian archive" >&2
		return 1
	}
	[[ -n $SECURITY ]] || SECURITY=$(debian_archive security 2>&1) || {
		echo "base-image.sh: $SECURITY: set DEBIAN_SECURITY_MIRROR to Debian's security archive" >&2
		return 1
	}
}

# slim SUITE ROOT: what Debian's -slim images leave out, and apt's sources.
slim() {
	local suite=$1 root=${2:?}
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
		"$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/log/apt/* \
		"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
		"$root"/usr/share/locale/* "$root"/dev/* "$root"/run/* "$root"/tmp/*
	mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
	cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<-'EOF'
		# as in Debian's -slim images: no manuals, no documentation, no translations
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/locale/*
	EOF
	cat >"$root/etc/apt/apt.conf.d/docker-clean" <<-'EOF'
		DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
	EOF
	cat >"$root/etc/apt/sources.list" <<-EOF
		deb $MIRROR $suite main
		deb $MIRROR $suite-updates main
		deb $SECURITY $suite-security main
	EOF
	tag_of "$suite" >"$root/etc/dindfs-base-image"
}

for suite in "${suites[@]}"; do
	tag=$(tag_of "$suite")
	if docker image inspect "$tag" >/dev/null 2>&1; then
		echo "$tag"
		continue
	fi
	tarball=$(rootfs "$suite")
	docker import --change 'CMD ["bash"]' "$tarball" "$tag" >/dev/null
	echo "$tag"
done
