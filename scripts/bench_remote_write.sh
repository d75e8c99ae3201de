#!/usr/bin/env bash
# Remote-write ingestion, modelwatch side by side with VictoriaMetrics
# (Debian's `victoria-metrics` package), same payloads, same load generator,
# alternating runs so both see the same machine noise. Refused requests
# (503 while persistence catches up) are reported as errors and not counted
# as throughput.
#   scripts/bench_remote_write.sh [seconds-per-run] [rounds] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-10}"
ROUNDS="${2:-3}"
CONCURRENCY="${3:-16}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/modelwatch/target}"
cargo build --release -q -p modelwatch
MW="$CARGO_TARGET_DIR/release/modelwatch"
VM="$(command -v victoria-metrics || echo /usr/bin/victoria-metrics)"
[ -x "$VM" ] || { echo "install Debian's victoria-metrics package first" >&2; exit 1; }

work="$(mktemp -d)"
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT
TOKEN="mw_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 43)"
"$MW" serve --data-dir "$work/mw" --listen 127.0.0.1:19400 --bootstrap-token "$TOKEN" \
  --otlp-grpc-listen off --otlp-http-listen off --log warn >"$work/mw.log" 2>&1 &
pids+=($!)
"$VM" -storageDataPath="$work/vm" -httpListenAddr=127.0.0.1:18428 -loggerLevel=ERROR >"$work/vm.log" 2>&1 &
pids+=($!)
for url in http://127.0.0.1:19400/healthz http://127.0.0.1:18428/health; do
  for _ in $(seq 100); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.1; done
done

run() { # name target
  ("$MW" bench remote-write --json --seconds "$SECONDS_PER_RUN" --concurrency "$CONCURRENCY" \
    --url http://127.0.0.1:19400 --token "$TOKEN" ${2:+--target "$2"} 2>/dev/null || true) |
    python3 -c '
import json, sys
r = json.load(sys.stdin); p = r["phase"]
print("%-16s %12.0f samples/s  p50 %.2f ms  p99 %.2f ms  errors %d"
      % (sys.argv[1], r["samples_per_second"], p["p50_ms"], p["p99_ms"], p["errors"]))' "$1"
}
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  run modelwatch ""
  run victoriametrics http://127.0.0.1:18428/api/v1/write
done
