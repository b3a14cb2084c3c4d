#!/usr/bin/env bash
# Soak: record the simulated humanoid at 2x humanoid-ref (cameras 60 Hz, joints 1 kHz,
# wrenches 2 kHz, tactile 400 Hz: ~246 MB/s) through the real recorder binary for
# SOAK_SECS (default 600) seconds, sampling its RSS every 5 s. Finished episodes are deleted
# as soon as they close (10 minutes at 2x is ~120 GB), so the disk does not fill.
# Prints the RSS curve (CSV), the drops, and a verdict line. Not a CI step.
#
#   scripts/soak.sh                 # 10 minutes, episodes in a temporary dir on disk
#   SOAK_SECS=60 scripts/soak.sh    # quick look
#   SOAK_DIR=/dev/shm/soak SOAK_EPISODE_SECS=20 scripts/soak.sh
#                                   # on tmpfs: the recorder alone, without the disk stalls
#                                   # that deleting 12 GB episodes causes
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SOAK_SECS:-600}
EP=${SOAK_EPISODE_SECS:-60}
OUT=${SOAK_DIR:-$(mktemp -d)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/demotape/target}
cargo build --release -q -p demotape-recorder
BIN=$CARGO_TARGET_DIR/release/demotape-recorder
cat > "$OUT/soak.toml" <<TOML
[recorder]
out_dir = "$OUT/episodes"
[sim]
camera_rate_hz = 60.0
joint_rate_hz = 1000.0
wrench_rate_hz = 2000.0
tactile_rate_hz = 400.0
TOML
N=$(( (SECS + EP - 1) / EP ))
"$BIN" sim --config "$OUT/soak.toml" --episodes "$N" --duration "$EP" --json > "$OUT/summaries.jsonl" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
echo "t_s,rss_mb" > "$OUT/rss.csv"
T0=$(date +%s)
while kill -0 "$PID" 2>/dev/null; do
  RSS=$(awk '/VmRSS/ {print $2/1024}' "/proc/$PID/status" 2>/dev/null || echo "")
  [ -n "$RSS" ] && echo "$(( $(date +%s) - T0 )),$RSS" >> "$OUT/rss.csv"
  # delete every finished episode (all but the newest file)
  # (shrunk 1 GB at a time: unlinking a 12 GB file at once stalls the disk for seconds,
  # which the recorder survives by queueing, but that is the harness's doing, not a load)
  for f in $({ ls -1t "$OUT"/episodes/*/*.mcap 2>/dev/null || true; } | tail -n +2); do
    while [ "$(stat -c %s "$f")" -gt 1073741824 ]; do truncate -s -1G "$f"; sleep 0.3; done
    rm -f "$f"
  done
  sleep 5
done
RC=0; wait "$PID" || RC=$?
rm -f "$OUT"/episodes/*/*.mcap
cat "$OUT/rss.csv"
python3 - "$OUT" <<'PY'
import json, sys, csv
out = sys.argv[1]
eps = [json.loads(l) for l in open(f"{out}/summaries.jsonl")]
msgs = sum(sum(s["messages"] for s in e["summary"]["streams"]) for e in eps)
drops = sum(sum(s["drops"] for s in e["summary"]["streams"]) for e in eps)
mb = sum(sum(s["bytes"] for s in e["summary"]["streams"]) for e in eps) / 1e6
rss = [float(r["rss_mb"]) for r in csv.DictReader(open(f"{out}/rss.csv"))]
warm = rss[len(rss)//10:] or rss
print(json.dumps({"soak": "humanoid-ref x2", "episodes": len(eps), "messages": msgs,
                  "mb": round(mb), "drops": drops, "rss_mb_min": min(warm),
                  "rss_mb_max": max(rss), "rss_mb_last": rss[-1]}))
PY
exit $RC
