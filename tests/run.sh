#!/bin/sh
# tests/run.sh — the one command that runs every test: installs what is missing, builds with ASan+UBSan and
# -Werror, and runs ctest (labels unit, integration, fuzz; later e2e). Exits non-zero on any failure.
# Usage: ./tests/run.sh [ctest arguments, e.g. -L unit or -R envelope]
set -eu
cd "$(dirname "$0")/.."
./deploy/install-deps.sh

BUILD="${CORRAL_TEST_BUILD_DIR:-build/asan}"
mkdir -p "$(dirname "$BUILD")"
JOBS="$(nproc 2>/dev/null || echo 2)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DCORRAL_SANITIZE=ON -DCORRAL_WERROR=ON >"$BUILD.cmake.log" 2>&1 ||
    { cat "$BUILD.cmake.log"; exit 1; }
echo "run.sh: building with ASan+UBSan into $BUILD (log: $BUILD.build.log)"
cmake --build "$BUILD" -j "$JOBS" >"$BUILD.build.log" 2>&1 || { grep -E -B2 -A12 "error|warning" "$BUILD.build.log" | head -150; exit 1; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
cd "$BUILD"
ctest --output-on-failure --timeout 600 -j "$JOBS" "$@"
