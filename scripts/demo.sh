#!/usr/bin/env bash
# The dindfs demo on a fresh Debian 12 machine. For now: install what the
# build needs, build dindfs, and show the commands and the default store.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

install_packages "${BUILD_PACKAGES[@]}"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

echo "\$ dindfs --help"
build/dindfs --help
echo
echo "\$ dindfs ls   # the default store, ${DINDFS_STORE:-/var/lib/dindfs}"
build/dindfs ls
