#!/usr/bin/env bash
# Run every test of dindfs on a fresh Debian 12 machine: install what the
# tests need, check formatting, build, run CTest (unit suites, fuzz corpus
# replays, integration scripts), then run the unit suites again under
# AddressSanitizer and UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

install_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"

echo "== formatting"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror

jobs=$(nproc)
echo "== build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

echo "== build with ASan and UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDINDFS_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"

echo "== unit suites under ASan and UBSan"
(cd build-asan && ctest --output-on-failure -L unit)

echo "== all tests"
(cd build && ctest --output-on-failure)
