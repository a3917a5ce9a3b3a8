#!/bin/sh
# deploy/quickstart.sh — the one command that starts Corral on a fresh Debian machine: installs what is missing,
# builds into build/, runs the relay with its embedded Redis and corrald on the current git repository, and prints the
# pairing QR code and the web address. Stays in the foreground; Ctrl-C stops corrald and the relay.
# On the first run it creates the team "local" with an admin and a host token, kept in var/quickstart.env (mode 0600).
# Running it again reuses them (idempotent).
# Environment: CORRAL_HTTP_LISTEN (default 127.0.0.1:8080), CORRAL_DATA_DIR (default ./var/relay), CORRAL_HOME (corrald's
# home, default ~/.local/state/corral), CORRAL_BUILD_DIR (default build), CORRAL_WEB_ROOT (default the web app built in
# $CORRAL_BUILD_DIR/web), any CORRAL_* key of the relay.
set -eu
START_DIR="$(pwd)"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
./deploy/install-deps.sh

BUILD="${CORRAL_BUILD_DIR:-build}"
mkdir -p "$(dirname "$BUILD")"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD.cmake.log" 2>&1 || { cat "$BUILD.cmake.log"; exit 1; }
echo "quickstart: building corral-relay, corrald, corral into $BUILD/bin and the web app into $BUILD/web (log: $BUILD.build.log)"
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target corral-relay corrald corral corral-web >"$BUILD.build.log" 2>&1 ||
    { tail -50 "$BUILD.build.log"; exit 1; }

BIN="$(cd "$BUILD/bin" && pwd)"
RELAY="$BIN/corral-relay"
CORRAL="$BIN/corral"
export CORRAL_DATA_DIR="${CORRAL_DATA_DIR:-$ROOT/var/relay}"
export CORRAL_HTTP_LISTEN="${CORRAL_HTTP_LISTEN:-127.0.0.1:8080}"
export CORRAL_WEB_ROOT="${CORRAL_WEB_ROOT:-$(cd "$BUILD" && pwd)/web}"   # the phone app the relay serves at /
ENV_FILE="$ROOT/var/quickstart.env"
mkdir -p "$CORRAL_DATA_DIR"

# The repository corrald runs for: the git repository the script was started in, else Corral itself.
REPO="$(git -C "$START_DIR" rev-parse --show-toplevel 2>/dev/null || echo "$ROOT")"

# corrald reaches the relay over loopback, whatever address the relay listens on.
PORT="${CORRAL_HTTP_LISTEN##*:}"
RELAY_URL="http://127.0.0.1:$PORT"

# The team and its tokens, made once.
QS_ADMIN_TOKEN=""
QS_HOST_TOKEN=""
if [ -f "$ENV_FILE" ]; then
    . "$ENV_FILE"
fi
if [ -z "$QS_HOST_TOKEN" ]; then
    if ! "$RELAY" admin team ls 2>/dev/null | grep -q '^local	'; then
        QS_ADMIN_TOKEN="$("$RELAY" admin team create local)"
    fi
    QS_HOST_TOKEN="$("$RELAY" admin token create --team local --kind host --label "$(hostname)")"
    (umask 077 && printf 'QS_ADMIN_TOKEN=%s\nQS_HOST_TOKEN=%s\n' "$QS_ADMIN_TOKEN" "$QS_HOST_TOKEN" >"$ENV_FILE")
    chmod 600 "$ENV_FILE"
    echo "quickstart: team \"local\" and a host token made; they are kept in $ENV_FILE (mode 0600)"
fi

RELAY_PID=""
CORRALD_PID=""
stop() {
    trap - INT TERM EXIT
    if [ -n "$CORRALD_PID" ] && kill -0 "$CORRALD_PID" 2>/dev/null; then
        echo "quickstart: stopping corrald (pid $CORRALD_PID)"
        kill -TERM "$CORRALD_PID" 2>/dev/null || true
        i=0
        while kill -0 "$CORRALD_PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    fi
    if [ -n "$RELAY_PID" ]; then
        # Ctrl-C reaches the relay too (it stops on SIGINT); either way wait until it and its Redis are down
        echo "quickstart: stopping corral-relay (pid $RELAY_PID)"
        kill -TERM "$RELAY_PID" 2>/dev/null || true
        wait "$RELAY_PID" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

RELAY_LOG="$CORRAL_DATA_DIR/relay.log"
if curl -fsS -o /dev/null "$RELAY_URL/healthz" 2>/dev/null; then
    echo "quickstart: a relay already answers on $RELAY_URL; using it"
else
    "$RELAY" >>"$RELAY_LOG" 2>&1 &
    RELAY_PID=$!
    i=0
    until curl -fsS -o /dev/null "$RELAY_URL/healthz" 2>/dev/null; do
        if ! kill -0 "$RELAY_PID" 2>/dev/null || [ $i -ge 100 ]; then
            echo "quickstart: corral-relay did not start; its log ends:" >&2
            tail -20 "$RELAY_LOG" >&2
            exit 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "quickstart: corral-relay on http://$CORRAL_HTTP_LISTEN (data in $CORRAL_DATA_DIR, log $RELAY_LOG)"
fi

up="$("$CORRAL" up --relay "$RELAY_URL" --token "$QS_HOST_TOKEN" --repo "$REPO")" || { echo "$up"; exit 1; }
echo "$up"
case "$up" in
*"(pid "*) CORRALD_PID="$(echo "$up" | sed -n 's/.*(pid \([0-9]*\)).*/\1/p')" ;;
esac

echo
"$CORRAL" pair || true
echo
echo "Web app: http://$CORRAL_HTTP_LISTEN/  (a phone on your network needs CORRAL_HTTP_LISTEN=0.0.0.0:$PORT and"
echo "CORRAL_HTTP_PUBLIC_URL=http://<this machine>:$PORT)"
echo "corrald runs for $REPO; try: $CORRAL new \"your task\" --name demo"
echo "Ctrl-C stops corrald and the relay."
if [ -n "$RELAY_PID" ]; then
    wait "$RELAY_PID" || true
else
    while :; do sleep 3600; done
fi
