#!/usr/bin/env bash
# MLflow REST throughput: modelwatch's /api/2.0/mlflow against `mlflow server`
# (SQLite backend) in one run, on loopback, with the same load generator
# (`modelwatch bench mlflow`), then the real MlflowClient workload timed end
# to end against both (scripts/bench_mlflow_client.py).
#   scripts/bench-mlflow.sh [seconds-per-phase] [concurrency] [client-iterations]
# Needs a full MLflow 3.x (the server) in its own venv, not in CI:
#   python3 -m venv ~/.cache/modelwatch/venv-mlflow-server
#   ~/.cache/modelwatch/venv-mlflow-server/bin/pip install mlflow==3.17.2
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_PHASE="${1:-10}"
CONCURRENCY="${2:-32}"
ITERATIONS="${3:-200}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/modelwatch/target}"
VENV="${MLFLOW_SERVER_VENV:-$HOME/.cache/modelwatch/venv-mlflow-server}"
[ -x "$VENV/bin/mlflow" ] || { echo "install mlflow 3.x into $VENV first (see the header)" >&2; exit 1; }
cargo build --release -q -p modelwatch
MW="$CARGO_TARGET_DIR/release/modelwatch"

work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
TOKEN="mw_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 43)"
"$MW" serve --data-dir "$work/mw" --listen 127.0.0.1:19400 --bootstrap-token "$TOKEN" \
  --otlp-grpc-listen off --otlp-http-listen off --no-evaluator --log warn >"$work/mw.log" 2>&1 &
pids+=($!)
mkdir -p "$work/mlflow"
(cd "$work/mlflow" && exec "$VENV/bin/mlflow" server --host 127.0.0.1 --port 15000 \
  --backend-store-uri "sqlite:///$work/mlflow/mlflow.db" \
  --default-artifact-root "$work/mlflow/artifacts" >"$work/mlflow.log" 2>&1) &
pids+=($!)
for url in http://127.0.0.1:19400/healthz http://127.0.0.1:15000/health; do
  for _ in $(seq 600); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fsS "$url" >/dev/null || { echo "$url did not come up" >&2; tail "$work"/*.log >&2; exit 1; }
done
echo "mlflow server $("$VENV/bin/mlflow" --version | awk '{print $NF}'), modelwatch release build;" \
  "${SECONDS_PER_PHASE}s per phase, concurrency $CONCURRENCY, $(nproc) cores"

"$MW" bench mlflow --json --label modelwatch --seconds "$SECONDS_PER_PHASE" \
  --concurrency "$CONCURRENCY" --url http://127.0.0.1:19400 --token "$TOKEN" >"$work/mw.json" || true
"$MW" bench mlflow --json --label mlflow --seconds "$SECONDS_PER_PHASE" \
  --concurrency "$CONCURRENCY" --url http://127.0.0.1:15000 >"$work/mlflow.json" || true
python3 - "$work/mw.json" "$work/mlflow.json" <<'PY'
import json, sys
mw, ml = (json.load(open(p)) for p in sys.argv[1:3])
print("%-24s %12s %9s %9s %12s %9s %9s %8s" % ("call", "modelwatch/s", "p50 ms", "p99 ms",
      "mlflow/s", "p50 ms", "p99 ms", "ratio"))
for a, b in zip(mw["phases"], ml["phases"]):
    ratio = a["per_second"] / b["per_second"] if b["per_second"] else float("inf")
    print("%-24s %12.0f %9.2f %9.2f %12.0f %9.2f %9.2f %7.1fx%s" % (
        a["phase"], a["per_second"], a["p50_ms"], a["p99_ms"], b["per_second"], b["p50_ms"],
        b["p99_ms"], ratio, "" if a["errors"] == 0 and b["errors"] == 0
        else "  (errors: %d / %d)" % (a["errors"], b["errors"])))
PY

PY_CLIENT="${MODELWATCH_TEST_PYTHON:-$HOME/.cache/modelwatch/venv/bin/python}"
echo "MlflowClient workload, $ITERATIONS iterations of 5 calls:"
printf "  modelwatch: "
MLFLOW_TRACKING_URI=http://127.0.0.1:19400 MLFLOW_TRACKING_TOKEN="$TOKEN" \
  "$PY_CLIENT" scripts/bench_mlflow_client.py "$ITERATIONS" 2>/dev/null
printf "  mlflow:     "
MLFLOW_TRACKING_URI=http://127.0.0.1:15000 \
  "$PY_CLIENT" scripts/bench_mlflow_client.py "$ITERATIONS" 2>/dev/null
