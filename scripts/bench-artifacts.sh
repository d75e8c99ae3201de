#!/usr/bin/env bash
# Upload and download throughput of one large artifact: modelwatch's native
# artifact route against `mlflow server --serve-artifacts` (its artifact
# proxy) and against a plain `cp` (and `cp` + fsync) on the same disk, same
# client (curl over loopback), release build. Each server runs alone, in
# turns with `cp`: mlflow server's workers and job consumers slow whatever
# shares the 2 cores with them, even between requests.
#
# Needs a full MLflow 3.x (the server) in a venv, not in CI (a venv whose
# scripts' shebangs are stale after a move can be wrapped: a directory
# with bin/mlflow running `<venv>/bin/python -m mlflow "$@"`):
#   python3 -m venv ~/.cache/modelwatch/venv-mlflow-server
#   ~/.cache/modelwatch/venv-mlflow-server/bin/pip install mlflow==3.17.2
#   scripts/bench-artifacts.sh [size-MiB] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-1024}"
ROUNDS="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/modelwatch/target}"
VENV="${MLFLOW_SERVER_VENV:-$HOME/.cache/modelwatch/venv-mlflow-server}"
cargo build --release -q -p modelwatch
MW="$CARGO_TARGET_DIR/release/modelwatch"

# Everything on one disk: the work directory under the cache.
work="$(mktemp -d "$HOME/.cache/modelwatch/bench-artifacts.XXXXXX")"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
file="$work/model.bin"
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$file"

TOKEN="mw_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 43)"
"$MW" serve --data-dir "$work/mw" --listen 127.0.0.1:19402 --bootstrap-token "$TOKEN" \
  --otlp-grpc-listen off --otlp-http-listen off --pg-listen off --no-evaluator --log warn >"$work/mw.log" 2>&1 &
mw_pid=$!
pids+=("$mw_pid")
for _ in $(seq 600); do curl -fsS http://127.0.0.1:19402/healthz >/dev/null 2>&1 && break; sleep 0.2; done
auth=(-H "Authorization: Bearer $TOKEN")
curl -fsS "${auth[@]}" -H 'content-type: application/json' -d '{"name": "bench"}' \
  http://127.0.0.1:19402/api/v1/models >/dev/null
curl -fsS "${auth[@]}" -H 'content-type: application/json' -d '{}' \
  http://127.0.0.1:19402/api/v1/models/bench/versions >/dev/null

# Each timed step starts with no dirty pages left by the step before
# (`sync`): otherwise whichever step fsyncs pays for the others' writeback.
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
declare -A times
record() { times[$1]="${times[$1]:-} $2"; }
mw_peak() { awk '/VmHWM/ {print $2, $3}' "/proc/$mw_pid/status"; }
for round in $(seq "$ROUNDS"); do
  sync; t0=$(now); curl -fsS "${auth[@]}" -T "$file" -o /dev/null \
    "http://127.0.0.1:19402/api/v1/models/bench/versions/1/artifacts/model-$round.bin"; t1=$(now)
  record mw_put "$(secs "$t0" "$t1")"
  # Every written file is new (removed first): overwriting a 1 GiB file
  # costs the freeing of its pages too, and would be counted for the
  # download and cp alike.
  rm -f "$work/down.bin"; sync; t0=$(now); curl -fsS "${auth[@]}" -o "$work/down.bin" \
    "http://127.0.0.1:19402/api/v1/models/bench/versions/1/artifacts/model-$round.bin"; t1=$(now)
  record mw_get "$(secs "$t0" "$t1")"
  cmp -s "$file" "$work/down.bin" || { echo "modelwatch returned other bytes"; exit 1; }
  # The server's side alone: the same download into /dev/null.
  sync; t0=$(now); curl -fsS "${auth[@]}" -o /dev/null \
    "http://127.0.0.1:19402/api/v1/models/bench/versions/1/artifacts/model-$round.bin"; t1=$(now)
  record mw_get_null "$(secs "$t0" "$t1")"
  # The CLI (it hashes the file first, then sends it with its digest):
  # one request, then as a resumable upload in the default 32 MiB chunks.
  sync; t0=$(now); MODELWATCH_URL=http://127.0.0.1:19402 MODELWATCH_TOKEN=$TOKEN \
    "$MW" artifacts push --model bench --version 1 --as "one-$round.bin" \
    --chunk-bytes "$((SIZE_MIB << 21))" "$file" >/dev/null; t1=$(now)
  record mw_cli_push "$(secs "$t0" "$t1")"
  sync; t0=$(now); MODELWATCH_URL=http://127.0.0.1:19402 MODELWATCH_TOKEN=$TOKEN \
    "$MW" artifacts push --model bench --version 1 --as "chunked-$round.bin" "$file" >/dev/null; t1=$(now)
  record mw_cli_chunked "$(secs "$t0" "$t1")"
  rm -f "$work/copy.bin"; sync; t0=$(now); cp "$file" "$work/copy.bin"; t1=$(now)
  record cp "$(secs "$t0" "$t1")"
  rm -f "$work/copy.bin"; sync; t0=$(now); cp "$file" "$work/copy.bin" && sync "$work/copy.bin"; t1=$(now)
  record cp_fsync "$(secs "$t0" "$t1")"
done
mw_rss=$(mw_peak)
kill "$mw_pid"; wait "$mw_pid" 2>/dev/null || true
"$VENV/bin/mlflow" server --host 127.0.0.1 --port 19403 --serve-artifacts \
  --artifacts-destination "$work/mlflow-artifacts" --backend-store-uri "sqlite:///$work/mlflow.db" \
  >"$work/mlflow.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do curl -fsS http://127.0.0.1:19403/health >/dev/null 2>&1 && break; sleep 0.2; done
# mlflow server answers /health while its workers and job consumers are
# still importing (about 20 CPU-seconds on 2 cores): wait until its
# processes stop using CPU, or every figure below measures that instead.
mlflow_cpu() { ps -eo cputimes,args | awk '/[m]lflow|[h]uey/ {s += $1} END {print s + 0}'; }
prev=-1
for _ in $(seq 120); do
  cur=$(mlflow_cpu); [ "$cur" = "$prev" ] && break; prev=$cur; sleep 2
done
for round in $(seq "$ROUNDS"); do
  sync; t0=$(now); curl -fsS -T "$file" -o /dev/null \
    "http://127.0.0.1:19403/api/2.0/mlflow-artifacts/artifacts/0/bench/artifacts/model-$round.bin"; t1=$(now)
  record mlflow_put "$(secs "$t0" "$t1")"
  rm -f "$work/down.bin"; sync; t0=$(now); curl -fsS -o "$work/down.bin" \
    "http://127.0.0.1:19403/api/2.0/mlflow-artifacts/artifacts/0/bench/artifacts/model-$round.bin"; t1=$(now)
  record mlflow_get "$(secs "$t0" "$t1")"
  cmp -s "$file" "$work/down.bin" || { echo "mlflow returned other bytes"; exit 1; }
  sync; t0=$(now); curl -fsS -o /dev/null \
    "http://127.0.0.1:19403/api/2.0/mlflow-artifacts/artifacts/0/bench/artifacts/model-$round.bin"; t1=$(now)
  record mlflow_get_null "$(secs "$t0" "$t1")"
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "$SIZE_MIB MiB, $ROUNDS rounds (modelwatch in turns with cp, then mlflow server alone), $(nproc) cores; modelwatch release build, mlflow server $("$VENV/bin/mlflow" --version | awk '{print $NF}'); median seconds (MiB/s):"
for k in mw_put mlflow_put mw_get mlflow_get mw_get_null mlflow_get_null mw_cli_push mw_cli_chunked cp cp_fsync; do
  m=$(median "${times[$k]}")
  printf '  %-11s %8s s  %7.0f MiB/s   (runs:%s)\n' "$k" "$m" "$(python3 -c "print($SIZE_MIB / $m)")" "${times[$k]}"
done
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$(median "${times[$1]}")" "$(median "${times[$2]}")"; }
echo "ratios of median times: mlflow_put/mw_put $(ratio mlflow_put mw_put) (goal >= 5), mlflow_get/mw_get $(ratio mlflow_get mw_get) (goal >= 5),"
echo "  servers alone (downloads into /dev/null): mlflow_get_null/mw_get_null $(ratio mlflow_get_null mw_get_null), mw_get_null/cp $(ratio mw_get_null cp),"
echo "  mw_put/cp_fsync $(ratio mw_put cp_fsync), mw_put/cp $(ratio mw_put cp), mw_get/cp $(ratio mw_get cp) (goal <= 2)"
echo "  resumable upload in chunks vs one request (both through the CLI): mw_cli_chunked/mw_cli_push $(ratio mw_cli_chunked mw_cli_push)"
echo "modelwatch peak RSS: $mw_rss"
