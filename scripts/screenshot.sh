#!/usr/bin/env bash
# A screenshot of the Rerun viewer (rerun-sdk 0.36.3's web viewer) showing an episode, taken
# in headless Chromium with software rendering (SwiftShader): no GPU, no display.
#
# usage: scripts/screenshot.sh EPISODE.mcap|RECORDING.rrd OUT.png [WAIT_MS]
#        (an .rrd is shown as is, e.g. one saved by `demotape view --live --save`)
# needs: apt-get install chromium nodejs npm; the test venv (~/.cache/demotape/venv, created by
#        `cargo test`) for `rerun`; playwright-core is installed under ~/.cache/demotape/pw.
set -euo pipefail
EP=$1; OUT=$(readlink -f "$2"); WAIT=${3:-40000}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${HOME}/.cache/demotape"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
TMP=$(mktemp -d)
RERUN_PID=
# the `rerun` wrapper starts the real server as a child, which would keep running (and
# burning a core): run it in its own process group and stop the whole group
trap '[ -n "$RERUN_PID" ] && kill -- -"$RERUN_PID" 2>/dev/null; rm -rf "$TMP"' EXIT
if [[ "$EP" == *.rrd ]]; then
  cp "$EP" "$TMP/ep.rrd"
else
  (cd "$ROOT" && cargo build --release -q -p demotape-annotate)
  "$CARGO_TARGET_DIR/release/demotape" view "$EP" --save "$TMP/ep.rrd"
fi
[ -d "$CACHE/pw/node_modules/playwright-core" ] || (mkdir -p "$CACHE/pw" && cd "$CACHE/pw" && npm i -s playwright-core@1)
RERUN_ANALYTICS=0 setsid "$CACHE/venv/bin/rerun" --serve-web --web-viewer-port 9090 --port 9876 "$TMP/ep.rrd" >"$TMP/rerun.log" 2>&1 &
RERUN_PID=$!
sleep 8
NODE_PATH="$CACHE/pw/node_modules" node "$ROOT/scripts/screenshot/shot.js" \
  "http://127.0.0.1:9090/?url=rerun%2Bhttp%3A%2F%2F127.0.0.1%3A9876%2Fproxy" "$OUT" "$WAIT"
echo "wrote $OUT"
