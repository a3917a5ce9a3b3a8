#!/bin/sh
# deploy/quickstart.sh — the one command that starts Corral on a fresh Debian machine: installs what is missing,
# builds into build/, and runs the relay with its embedded Redis in the foreground (Ctrl-C stops both).
# On the first run it creates the team "local" and prints its admin token and a host token, once.
# (corrald on the current repository and the pairing QR code arrive with the host issue.)
# Environment: CORRAL_HTTP_LISTEN (default 127.0.0.1:8080), CORRAL_DATA_DIR (default ./var/relay), any CORRAL_* key.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
./deploy/install-deps.sh

BUILD="${CORRAL_BUILD_DIR:-build}"
mkdir -p "$(dirname "$BUILD")"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD.cmake.log" 2>&1 || { cat "$BUILD.cmake.log"; exit 1; }
echo "quickstart: building corral-relay, corrald and corral into $BUILD/bin (log: $BUILD.build.log)"
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target corral-relay corrald corral >"$BUILD.build.log" 2>&1 ||
    { tail -50 "$BUILD.build.log"; exit 1; }

RELAY="$BUILD/bin/corral-relay"
export CORRAL_DATA_DIR="${CORRAL_DATA_DIR:-$ROOT/var/relay}"
export CORRAL_HTTP_LISTEN="${CORRAL_HTTP_LISTEN:-127.0.0.1:8080}"
mkdir -p "$CORRAL_DATA_DIR"

if ! "$RELAY" admin team ls 2>/dev/null | grep -q '^local	'; then
    admin="$("$RELAY" admin team create local)"
    host="$("$RELAY" admin token create --team local --kind host --label "$(hostname)")"
    cat <<MSG

Created team "local". These tokens are shown once; keep them somewhere safe:
  admin token: $admin
  host token:  $host
More tokens: $RELAY admin token create --team local --kind host|device
MSG
fi

echo
echo "corral-relay on http://$CORRAL_HTTP_LISTEN (data in $CORRAL_DATA_DIR); Ctrl-C stops it."
exec "$RELAY"
