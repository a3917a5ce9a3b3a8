#!/bin/sh
# deploy/quickstart.sh — the one command that starts Corral on a fresh Debian machine: installs what is missing,
# builds into build/, and starts what this version has. (The relay with its embedded Redis, corrald on the current
# repository and the pairing QR code arrive with their issues; until then this builds and checks the binaries.)
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
./deploy/install-deps.sh

BUILD="${CORRAL_BUILD_DIR:-build}"
mkdir -p "$(dirname "$BUILD")"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD.cmake.log" 2>&1 || { cat "$BUILD.cmake.log"; exit 1; }
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" -- --no-print-directory -s

echo
for b in corral-relay corrald corral; do
    printf '  %-14s %s\n' "$b" "$("$BUILD/bin/$b" --version)"
done
cat <<MSG

Built into $BUILD/bin/. This version has the shared core (wire protocol, sealing, JSON, config, logging);
the relay (corral-relay), the host (corrald) and the CLI (corral) are not runnable services yet, so there is
nothing to start. See each binary's --help for the configuration it will take.
MSG
