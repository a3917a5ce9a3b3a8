#!/bin/sh
# deploy/install-deps.sh — the one list of what Corral needs from Debian (and, later, npm).
# Idempotent: installs only what is missing and prints nothing when everything is there.
# Used by ./deploy/quickstart.sh, ./tests/run.sh and CI.
set -eu

# Build tools and the libraries every component links.
PKGS="build-essential cmake pkg-config git ca-certificates
libuv1-dev libh2o-dev libwslay-dev libssl-dev libcurl4-openssl-dev libgit2-dev
libmsgpack-dev libsodium-dev libhiredis-dev redis-server
libgmime-3.0-dev libpcre2-dev libqrencode-dev
libpocketsphinx-dev pocketsphinx-en-us libopusfile-dev
clang libclang-rt-14-dev
python3 python3-cryptography python3-jwt openssl redis-tools
chromium espeak-ng"
# The phone web app (clients/web) is built with Node.js and npm: Debian's, unless the machine has a node already.
if ! command -v node >/dev/null 2>&1; then
    PKGS="$PKGS nodejs npm"
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    # A stale package index makes apt-get fail on a fresh machine; refresh it once.
    $SUDO apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
    echo "install-deps: done"
fi

# The web app's npm packages (esbuild, playwright-core, ...), exactly as package-lock.json says: when they are missing
# or the lock file changed since they were installed.
WEB="$(cd "$(dirname "$0")/.." && pwd)/clients/web"
if [ ! -f "$WEB/node_modules/.package-lock.json" ] || [ "$WEB/package-lock.json" -nt "$WEB/node_modules/.package-lock.json" ]; then
    echo "install-deps: npm ci in clients/web"
    (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
