#!/bin/sh
# Cross-build weft for aarch64 and run its plain tests (tests/stress_*.c,
# tls_lto) under qemu-user, to exercise the aarch64 context switch
# (runtime/arch/switch_aarch64.S) on an x86-64 host. Criterion suites are
# skipped: Criterion is not installed for arm64.
#
#   scripts/cross-aarch64.sh [ctest arguments...]
#
# Environment: BUILD (default build-aarch64), JOBS (default nproc),
# WEFT_TEST_SCALE (default 100, the full size: the suite takes ~6 s under
# qemu).
#
# Under qemu-user, madvise(MADV_GUARD_INSTALL) succeeds without installing
# anything (qemu 7.2); weft checks its first guard and falls back to
# mprotect()ed guard pages there (runtime/stack.c).
set -eu
cd "$(dirname "$0")/.."

./scripts/deps.sh gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user

BUILD=${BUILD:-build-aarch64}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD" \
	-DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchain-aarch64.cmake" \
	-DCMAKE_BUILD_TYPE=Release \
	-DWEFT_WERROR=ON \
	-DWEFT_JEMALLOC=OFF \
	-DWEFT_BUILD_BENCHES=OFF \
	-DWEFT_TEST_SCALE="${WEFT_TEST_SCALE:-100}"
cmake --build "$BUILD" -j"$JOBS"
cd "$BUILD"
ctest --output-on-failure "$@"
