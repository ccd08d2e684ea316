#!/usr/bin/env bash
# Package the dindfs dev container feature (devcontainer/features/dindfs):
# the feature's own files plus the sources its install.sh builds dindfs
# from (src/: what the Dockerfile's build stage copies too).
#
#   scripts/feature.sh [OUT_DIR]          OUT_DIR/dindfs/ (default build/feature)
#   scripts/feature.sh --tgz [OUT_DIR]    and OUT_DIR/devcontainer-feature-dindfs.tgz
#
# Put OUT_DIR/dindfs beside your devcontainer.json and name it there as
# "./dindfs", or publish the .tgz (a feature by https URI) or the folder
# (`devcontainer features publish`, to an OCI registry).
set -euo pipefail
cd "$(dirname "$0")/.."

tgz=false
if [[ ${1:-} == --tgz ]]; then
	tgz=true
	shift
fi
(($# <= 1)) || {
	echo "usage: $0 [--tgz] [OUT_DIR]" >&2
	exit 2
}
out=${1:-build/feature}
dest=$out/dindfs

rm -rf "$dest"
mkdir -p "$dest/src/tools"
cp devcontainer/features/dindfs/* "$dest/"
cp CMakeLists.txt "$dest/src/"
cp -r cache fs proto "$dest/src/"
cp tools/CMakeLists.txt tools/*.c tools/*.h tools/dindfs-route.sh "$dest/src/tools/"
if $tgz; then
	tar -C "$dest" --sort=name --owner=0 --group=0 --numeric-owner \
		-czf "$out/devcontainer-feature-dindfs.tgz" .
	echo "$out/devcontainer-feature-dindfs.tgz"
fi
echo "$dest"
