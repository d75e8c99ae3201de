#!/usr/bin/env bash
# Remote-write ingestion, modelwatch side by side with VictoriaMetrics
# (Debian's `victoria-metrics` package) and Prometheus (Debian's
# `prometheus`, `--web.enable-remote-write-receiver`): same payloads, same
# load generator, runs alternating so every server sees the same machine
# noise. Two request shapes:
#   model-server  100 series x 10 samples, 6 labels per series
#   prometheus    2,000 series x 1 sample, 20 labels per series (what a
#                 Prometheus remote-write shard sends, node_exporter-like)
# and, for modelwatch only, the Prometheus shape as remote write 2.0.
# Refused requests (503 while persistence catches up, 400 from a TSDB) are
# reported as errors and not counted as throughput. After the runs: each
# server's CPU seconds, peak RSS, and on-disk bytes per acknowledged sample.
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
PROM="$(command -v prometheus || echo /usr/bin/prometheus)"
[ -x "$VM" ] || { echo "install Debian's victoria-metrics package first" >&2; exit 1; }
[ -x "$PROM" ] || { echo "install Debian's prometheus package first" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
TOKEN="mw_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 43)"
"$MW" serve --data-dir "$work/mw" --listen 127.0.0.1:19400 --bootstrap-token "$TOKEN" \
  --otlp-grpc-listen off --otlp-http-listen off --log warn >"$work/mw.log" 2>&1 &
MW_PID=$!; pids+=($MW_PID)
"$VM" -storageDataPath="$work/vm" -httpListenAddr=127.0.0.1:18428 -loggerLevel=ERROR >"$work/vm.log" 2>&1 &
VM_PID=$!; pids+=($VM_PID)
# Concurrent requests of one series arrive out of order (a real Prometheus
# shards by series, this generator does not): allow that, or every
# overtaken request would be a 400.
cat >"$work/prometheus.yml" <<'EOF'
storage:
  tsdb:
    out_of_order_time_window: 1d
EOF
"$PROM" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
  --web.listen-address=127.0.0.1:19090 --web.enable-remote-write-receiver \
  --log.level=error >"$work/prom.log" 2>&1 &
PROM_PID=$!; pids+=($PROM_PID)
for url in http://127.0.0.1:19400/healthz http://127.0.0.1:18428/health http://127.0.0.1:19090/-/ready; do
  for _ in $(seq 100); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.1; done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A acked=([modelwatch]=0 [victoriametrics]=0 [prometheus]=0)
cpu_seconds() { # pid: user + system CPU seconds so far
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"
}
run() { # server shape protocol target
  local server="$1" shape="$2" protocol="$3" target="$4" args
  case "$shape" in
    model-server) args=(--series 100 --samples-per-series 10 --labels 6) ;;
    prometheus) args=(--series 2000 --samples-per-series 1 --labels 20) ;;
  esac
  local out
  out="$("$MW" bench remote-write --json --seconds "$SECONDS_PER_RUN" --concurrency "$CONCURRENCY" \
    "${args[@]}" --protocol "$protocol" --url http://127.0.0.1:19400 --token "$TOKEN" \
    ${target:+--target "$target"} 2>/dev/null || true)"
  [ -n "$out" ] || { echo "$server $shape: the load generator failed" >&2; return; }
  local line samples
  line="$(python3 -c '
import json, sys
r = json.loads(sys.argv[4]); p = r["phase"]
acked = (p["requests"] - p["errors"]) * r["samples_per_request"]
print("%-16s %-13s v%s %12.0f samples/s  p50 %7.2f ms  p99 %7.2f ms  refused %d\t%d"
      % (sys.argv[1], sys.argv[2], sys.argv[3], r["samples_per_second"], p["p50_ms"], p["p99_ms"], p["errors"], acked))' \
    "$server" "$shape" "$protocol" "$out")"
  echo "${line%%$'\t'*}"
  samples="${line##*$'\t'}"
  acked[$server]=$(( ${acked[$server]} + samples ))
}
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  for shape in model-server prometheus; do
    run modelwatch "$shape" 1 ""
    run victoriametrics "$shape" 1 http://127.0.0.1:18428/api/v1/write
    run prometheus "$shape" 1 http://127.0.0.1:19090/api/v1/write
  done
  run modelwatch prometheus 2 ""
done

echo "after the runs (each server's whole life):"
for s in modelwatch:$MW_PID:mw victoriametrics:$VM_PID:vm prometheus:$PROM_PID:prom; do
  IFS=: read -r name pid dir <<<"$s"
  hwm="$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")"
  echo "  $name: CPU $(cpu_seconds "$pid") s, peak RSS ${hwm} MiB, acknowledged ${acked[$name]} samples"
done
# On-disk size once each server has written what it holds: modelwatch and
# VictoriaMetrics flush on SIGTERM; Prometheus keeps its head in the WAL.
kill -TERM "$MW_PID" "$VM_PID" "$PROM_PID"
wait "$MW_PID" "$VM_PID" "$PROM_PID" 2>/dev/null || true
pids=()
for s in modelwatch:mw victoriametrics:vm prometheus:prom; do
  IFS=: read -r name dir <<<"$s"
  bytes="$(du -sb "$work/$dir" | cut -f1)"
  n="${acked[$name]}"
  python3 -c 'import sys; b, n = int(sys.argv[2]), int(sys.argv[3]); print("  %s on disk: %d bytes, %.2f bytes/sample" % (sys.argv[1], b, b / n if n else float("nan")))' "$name" "$bytes" "$n"
done
