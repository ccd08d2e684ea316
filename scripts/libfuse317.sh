#!/usr/bin/env bash
# scripts/libfuse317.sh PREFIX: build libfuse 3.17 (FUSE passthrough) from
# Debian 13's own source package into PREFIX, for a Debian 12 machine whose
# libfuse is 3.14. Cached: a PREFIX that already holds the build is left
# as it is. CMake runs this for -DDINDFS_LIBFUSE317=ON.
#
# The source comes through apt, from the archive this machine already uses
# (debian_archive in scripts/deps.sh), with a deb-src line for trixie in
# /etc/apt/sources.list.d/dindfs-trixie-src.sources: source only, so no
# trixie binary can be installed by it. meson and ninja are Debian's.
#
# PREFIX gets include/, lib/ (libfuse3.so and its pkg-config file) and
# build/ (libfuse's own build tree; build/example/passthrough_hp is the
# peer bench/workspace.sh compares with).
set -euo pipefail
prefix=${1:?usage: scripts/libfuse317.sh PREFIX}
here=$(cd "$(dirname "$0")" && pwd)
if [[ -f $prefix/.done ]]; then
	exit 0
fi
. "$here/deps.sh"
install_packages "${LIBFUSE317_PACKAGES[@]}"

sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
list=/etc/apt/sources.list.d/dindfs-trixie-src.sources
if [[ ! -f $list ]]; then
	# The machine's own Debian archive (scripts/deps.sh).
	uri=$(debian_archive 2>&1) || { echo "scripts/libfuse317.sh: $uri: no archive to take trixie's source from" >&2; exit 1; }
	printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
		"$uri" | "${sudo[@]}" tee "$list" >/dev/null
fi
# Only this list is refreshed; the others are left as they are.
"${sudo[@]}" apt-get update -qq -o Dir::Etc::sourcelist="$list" -o Dir::Etc::sourceparts=- \
	-o APT::Get::List-Cleanup=0

src=$prefix.src
rm -rf "$src" "$prefix"
mkdir -p "$src" "$prefix"
(cd "$src" && apt-get source -qq fuse3/trixie >/dev/null)
dir=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'fuse3-3.*' | head -1)
[[ -n $dir ]] || { echo "scripts/libfuse317.sh: apt-get source fuse3/trixie unpacked nothing" >&2; exit 1; }
version=${dir##*/fuse3-}
case $version in
3.1[7-9]* | 3.[2-9][0-9]*) ;;
*) echo "scripts/libfuse317.sh: trixie's fuse3 is $version, not 3.17 or later" >&2; exit 1 ;;
esac
# The library and the examples; no fusermount3 (Debian's setuid one stays in use).
meson setup "$prefix/build" "$dir" --prefix="$prefix" --libdir=lib --buildtype=release \
	-Dutils=false -Dexamples=true -Dtests=false >"$prefix/meson.log" 2>&1 ||
	{ tail -20 "$prefix/meson.log" >&2; exit 1; }
ninja -C "$prefix/build" install >"$prefix/ninja.log" 2>&1 ||
	{ tail -20 "$prefix/ninja.log" >&2; exit 1; }
echo "$version" >"$prefix/.done"
rm -rf "$src"
echo "libfuse $version in $prefix"
