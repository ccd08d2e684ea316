#!/usr/bin/env bash
# Run every test of dindfs on a fresh Debian 12 machine: install what the
# tests need, check formatting, build, run CTest (unit suites, fuzz corpus
# replays, integration scripts), then run the unit suites again under
# AddressSanitizer and UBSan. The build links Debian 12's libfuse 3.14 (no
# FUSE passthrough: the daemon serves every read, the fallback); a second
# build links libfuse 3.17 from Debian 13's source (scripts/libfuse317.sh),
# and the mount, workspace and layers tests run again with passthrough.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

install_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"

echo "== formatting"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror

jobs=$(nproc)
echo "== build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDINDFS_TESTS=ON >/dev/null
cmake --build build -j"$jobs"

echo "== build with ASan and UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDINDFS_SANITIZE=ON -DDINDFS_TESTS=ON >/dev/null
cmake --build build-asan -j"$jobs"

echo "== unit suites under ASan and UBSan"
(cd build-asan && ctest --output-on-failure -L unit)

echo "== all tests (libfuse 3.14: no passthrough)"
(cd build && ctest --output-on-failure)

echo "== build with libfuse 3.17 (FUSE passthrough)"
cmake -S . -B build-fuse317 -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDINDFS_LIBFUSE317=ON -DDINDFS_TESTS=ON >/dev/null
cmake --build build-fuse317 -j"$jobs"

echo "== the mount, workspace and layers tests with passthrough"
(cd build-fuse317 && ctest --output-on-failure -R '^(mount|workspace|layers)$')
