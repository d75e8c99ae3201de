#!/usr/bin/env bash
# The registry on PostgreSQL (issue 16), in one run on loopback, against a
# throwaway PostgreSQL started here (Debian's package, durability on:
# fsync and synchronous_commit at their defaults):
#   a. one modelwatch daemon on PostgreSQL: `bench registry`, `bench mlflow`,
#      then `bench registry` from three generators at once (the baseline of b);
#   b. three modelwatch daemons on one PostgreSQL database: three generators
#      at once, one per daemon, concurrency split among them, requests/s
#      summed, p50/p99 the worst of the three;
#   c. `mlflow server` 3.17.2 on the same PostgreSQL: `bench mlflow`;
#   d. one modelwatch daemon on its embedded SQLite: `bench registry`.
# Each of a–c gets a fresh database; each server runs only during its step.
#   scripts/bench-registry-postgres.sh [seconds-per-phase] [concurrency]
# Needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin, Debian's
# postgresql package) and a full MLflow 3.x with a PostgreSQL driver in its
# own venv, not in CI:
#   python3 -m venv ~/.cache/modelwatch/venv-mlflow-server
#   ~/.cache/modelwatch/venv-mlflow-server/bin/pip install mlflow==3.17.2 psycopg2-binary
# Run as root, PostgreSQL runs as the `postgres` user (it refuses root).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_PHASE="${1:-10}"
CONCURRENCY="${2:-32}"
DAEMONS=3
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/modelwatch/target-release}"
VENV="${MLFLOW_SERVER_VENV:-$HOME/.cache/modelwatch/venv-mlflow-server}"
[ -x "$VENV/bin/mlflow" ] && "$VENV/bin/python" -c 'import psycopg2' 2>/dev/null || {
  echo "install mlflow 3.x and psycopg2-binary into $VENV first (see the header)" >&2; exit 1; }
PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
[ -x "$PGBIN/postgres" ] || { echo "no PostgreSQL server under /usr/lib/postgresql/*/bin (apt-get install postgresql)" >&2; exit 1; }
[ "$CONCURRENCY" -ge "$DAEMONS" ] || { echo "concurrency must be at least $DAEMONS" >&2; exit 1; }
cargo build --release -q -p modelwatch
MW="$CARGO_TARGET_DIR/release/modelwatch"

work="$(mktemp -d)"
pgdir="$(mktemp -d)"
pids=()   # process groups of everything started here
stop() {  # stop the process groups given, then wait for them
  local p
  for p in "$@"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}
cleanup() {
  stop "${pids[@]}"
  [ -z "${PG_PID:-}" ] || { kill -INT "$PG_PID" 2>/dev/null || true; wait "$PG_PID" 2>/dev/null || true; }
  rm -rf "$work" "$pgdir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() {  # URL LOG PID
  for _ in $(seq 900); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.2
  done
  echo "$1 did not come up" >&2; tail -n 20 "$2" >&2; exit 1
}

# PostgreSQL, throwaway, as the postgres user, TCP on loopback and a socket in $pgdir.
chown -R postgres:postgres "$pgdir"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
as_pg "$PGBIN/initdb" -D "$pgdir/data" -U postgres --auth=trust >"$work/initdb.log" 2>&1 \
  || { cat "$work/initdb.log" >&2; exit 1; }
PGPORT="$(free_port)"
setpriv --reuid=postgres --regid=postgres --init-groups -- "$PGBIN/postgres" -D "$pgdir/data" -p "$PGPORT" -k "$pgdir" \
  -c listen_addresses=127.0.0.1 -c max_connections=300 >"$work/postgres.log" 2>&1 &
PG_PID=$!   # postgres itself: setpriv execs it
for _ in $(seq 300); do "$PGBIN/pg_isready" -q -h "$pgdir" -p "$PGPORT" -U postgres && break; sleep 0.2; done
"$PGBIN/pg_isready" -q -h "$pgdir" -p "$PGPORT" -U postgres || { tail "$work/postgres.log" >&2; exit 1; }
createdb() { "$PGBIN/createdb" -h "$pgdir" -p "$PGPORT" -U postgres "$1"; }
pgsetting() { "$PGBIN/psql" -h "$pgdir" -p "$PGPORT" -U postgres -Atc "SHOW $1" postgres; }

TOKEN="mw_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 43)"
# One daemon, in a process group of its own added to pids, up when this
# returns: NAME PORT [--registry-url URL].
start_mw() {
  local name="$1" port="$2"; shift 2
  setsid "$MW" serve --data-dir "$work/$name" --listen "127.0.0.1:$port" --bootstrap-token "$TOKEN" \
    --otlp-grpc-listen off --otlp-http-listen off --pg-listen off --no-evaluator --log warn \
    "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  wait_up "http://127.0.0.1:$port/healthz" "$work/$name.log" "${pids[-1]}"
}
bench() {  # GENERATOR OUT CONCURRENCY PORT [extra args]
  local gen="$1" out="$2" c="$3" port="$4"; shift 4
  "$MW" bench "$gen" --json --seconds "$SECONDS_PER_PHASE" --concurrency "$c" \
    --url "http://127.0.0.1:$port" "$@" >"$out" 2>>"$work/generators.log" || true
}

echo "$(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(nproc) cores; load average$(uptime | sed 's/.*load average//')"
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') (fsync=$(pgsetting fsync)," \
  "synchronous_commit=$(pgsetting synchronous_commit), max_connections=$(pgsetting max_connections));" \
  "mlflow server $("$VENV/bin/mlflow" --version | awk '{print $NF}') (its defaults);" \
  "modelwatch release build (evaluator off, registry pool default);" \
  "${SECONDS_PER_PHASE}s per phase, concurrency $CONCURRENCY"

# Concurrency split among $DAEMONS generators, the remainder to the first ones.
shares=()
for d in $(seq 0 $((DAEMONS - 1))); do
  shares+=($((CONCURRENCY / DAEMONS + (d < CONCURRENCY % DAEMONS ? 1 : 0))))
done
# $DAEMONS generators at once, each on a model of its own, generator d
# against the d-th of the ports given (round robin): GENERATOR PREFIX PORT…
split_bench() {
  local gen="$1" prefix="$2" d extra gpids=(); shift 2
  local ports=("$@")
  for d in $(seq 0 $((DAEMONS - 1))); do
    extra=(--token "$TOKEN"); [ "$gen" != mlflow ] || extra+=(--label "$prefix-$((d + 1))")
    bench "$gen" "$work/$prefix-$((d + 1)).json" "${shares[$d]}" "${ports[$((d % ${#ports[@]}))]}" "${extra[@]}" &
    gpids+=($!)
  done
  wait "${gpids[@]}"
}

# a. One daemon on PostgreSQL: one generator, then (for the scaling in b,
# like for like) $DAEMONS generators at once.
createdb mw1
port="$(free_port)"
start_mw pg1 "$port" --registry-url "postgres://postgres@127.0.0.1:$PGPORT/mw1"
echo "a. one daemon on PostgreSQL ..." >&2
bench registry "$work/reg-pg1.json" "$CONCURRENCY" "$port" --token "$TOKEN"
bench mlflow "$work/ml-pg1.json" "$CONCURRENCY" "$port" --token "$TOKEN" --label modelwatch-pg1
split_bench registry reg-pg1x "$port"
stop "${pids[@]}"; pids=()

# b. $DAEMONS daemons on one PostgreSQL database, one generator per daemon.
# The first creates the schema and the admin token; the others start once
# it is up.
createdb mw3
ports=()
for d in $(seq "$DAEMONS"); do
  ports+=("$(free_port)")
  start_mw "pg3-$d" "${ports[-1]}" --registry-url "postgres://postgres@127.0.0.1:$PGPORT/mw3"
done
echo "b. $DAEMONS daemons on one PostgreSQL database ..." >&2
split_bench registry reg-pg3 "${ports[@]}"
split_bench mlflow ml-pg3 "${ports[@]}"
stop "${pids[@]}"; pids=()

# c. mlflow server on the same PostgreSQL, through psycopg2: the SQLAlchemy
# 2.1 that mlflow 3.17.2 installs maps a bare postgresql:// to psycopg 3,
# which the venv does not hold.
createdb mlflowdb
mlport="$(free_port)"
mkdir -p "$work/mlflow"
(cd "$work/mlflow" && exec setsid "$VENV/bin/mlflow" server --host 127.0.0.1 --port "$mlport" \
  --backend-store-uri "postgresql+psycopg2://postgres@127.0.0.1:$PGPORT/mlflowdb" \
  --default-artifact-root "$work/mlflow/artifacts" >"$work/mlflow.log" 2>&1) &
pids+=($!)
wait_up "http://127.0.0.1:$mlport/health" "$work/mlflow.log" "${pids[-1]}"
echo "c. mlflow server on PostgreSQL ..." >&2
bench mlflow "$work/ml-mlflow.json" "$CONCURRENCY" "$mlport" --label mlflow
stop "${pids[@]}"; pids=()

# d. One daemon on its embedded SQLite (synchronous=FULL), for the ratio in the same run.
port="$(free_port)"
start_mw sqlite "$port"
echo "d. one daemon on SQLite: bench registry ..." >&2
bench registry "$work/reg-sqlite.json" "$CONCURRENCY" "$port" --token "$TOKEN"
stop "${pids[@]}"; pids=()

python3 - "$work" "$DAEMONS" "${shares[@]}" <<'PY'
import json, os, sys
work, n, shares = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(name):
    try:
        d = json.load(open(os.path.join(work, name + ".json")))
    except (OSError, ValueError):
        return None  # the generator failed before reporting (see its log)
    return d["phases"] if isinstance(d, dict) else d
def summed(prefix):
    """The generators prefix-1…n, phase by phase: rates and errors summed,
    p50/p99 the worst."""
    runs = [load("%s-%d" % (prefix, d)) for d in range(1, n + 1)]
    if any(r is None for r in runs):
        return None
    return [{"phase": ps[0]["phase"],
             "per_second": sum(p["per_second"] for p in ps),
             "p50_ms": max(p["p50_ms"] for p in ps),
             "p99_ms": max(p["p99_ms"] for p in ps),
             "errors": sum(p["errors"] for p in ps)} for ps in zip(*runs)]
W = 27
def cell(p):
    return "%9.0f %7.2f %9.2f" % (p["per_second"], p["p50_ms"], p["p99_ms"]) if p else "%*s" % (W, "—")
def ratio(a, b):
    if not a or not b:
        return "%8s" % "—"
    return "%7.2fx" % (a["per_second"] / b["per_second"]) if b["per_second"] else "%8s" % "inf"
def table(title, columns, ratios):
    """columns: (label, phases); ratios: (label, i, j) = column i / column j."""
    print("\n" + title)
    print("%-22s" % "" + "".join(" %*s" % (W, l) for l, _ in columns)
          + "".join(" %8s" % l for l, _, _ in ratios))
    print("%-22s" % "phase" + (" %*s" % (W, "/s    p50 ms    p99 ms")) * len(columns))
    rows = next((c for _, c in columns if c), [])
    for i, first in enumerate(rows):
        cells = [c[i] if c else None for _, c in columns]
        errs = ["%s: %d" % (l, c["errors"]) for (l, _), c in zip(columns, cells) if c and c["errors"]]
        print("%-22s" % first["phase"] + "".join(" " + cell(c) for c in cells)
              + "".join(" " + ratio(cells[a], cells[b]) for _, a, b in ratios)
              + ("  (errors: %s)" % "; ".join(errs) if errs else ""))

print("\n%d generators at once: concurrency %s, each on a model of its own; requests/s "
      "summed, p50/p99 the worst of the %d." % (n, "+".join(shares), n, ))
table("bench registry (modelwatch's native API)",
      [("SQLite, 1 daemon", load("reg-sqlite")), ("PG, 1 daemon", load("reg-pg1")),
       ("PG, 1 daemon, %d gen." % n, summed("reg-pg1x")), ("PG, %d daemons, %d gen." % (n, n), summed("reg-pg3"))],
      [("%dd/1d" % n, 3, 2)])
table("bench mlflow (MLflow REST, the same generator against both)",
      [("modelwatch PG, 1 daemon", load("ml-pg1")), ("modelwatch PG, %d daemons" % n, summed("ml-pg3")),
       ("mlflow server PG", load("ml-mlflow"))],
      [("1d/mlflow", 0, 2), ("%dd/mlflow" % n, 1, 2)])
PY
echo
echo "load average after the run$(uptime | sed 's/.*load average//')"
# Warnings and errors the servers logged, and what the generators said
# besides their banner, counted (timestamps stripped).
for log in "$work"/pg1.log "$work"/pg3-*.log "$work"/sqlite.log "$work"/mlflow.log "$work"/generators.log; do
  [ -f "$log" ] || continue
  lines="$(grep -v '^benchmarking ' "$log" | grep -i 'warn\|error\|panic\|traceback' |
    sed -E 's/^[0-9T:.Z-]+ +//' | sort | uniq -c | sort -rn | head -n 8 || true)"
  [ -z "$lines" ] || printf '%s:\n%s\n' "$(basename "$log")" "$lines"
done
lines="$(grep -E '(ERROR|FATAL|PANIC|WARNING): ' "$work/postgres.log" | sed -E 's/^.*(ERROR|FATAL|PANIC|WARNING): +/\1: /' |
  cut -c1-160 | sort | uniq -c | sort -rn | head -n 8 || true)"
[ -z "$lines" ] || printf 'postgres.log (all databases):\n%s\n' "$lines"
