#!/bin/sh
# tests/fuzz/fuzz.sh — builds the libFuzzer targets with clang (ASan+UBSan) and fuzzes each for SECONDS
# (default 600), growing a work corpus under build/fuzz-corpus/. New crashes land in build/fuzz-artifacts/.
# Usage: ./tests/fuzz/fuzz.sh [SECONDS] [TARGET...]     targets: envelope json mime otp smtp inbox voice_wav
set -eu
cd "$(dirname "$0")/../.."
./deploy/install-deps.sh
SECONDS_EACH="${1:-600}"
[ $# -gt 0 ] && shift
TARGETS="${*:-envelope json mime otp smtp inbox voice_wav}"
BUILD=build/fuzz
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORRAL_FUZZ=ON -DCORRAL_SANITIZE=ON -DCORRAL_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target $(for t in $TARGETS; do printf 'fuzz_%s ' "$t"; done)
mkdir -p build/fuzz-artifacts
for t in $TARGETS; do
    mkdir -p "build/fuzz-corpus/$t"
    echo "fuzz: $t for ${SECONDS_EACH}s"
    "$BUILD/fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -artifact_prefix="build/fuzz-artifacts/$t-" \
        "build/fuzz-corpus/$t" "tests/fuzz/$t/corpus"
done
