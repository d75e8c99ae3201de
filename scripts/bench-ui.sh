#!/usr/bin/env bash
# The web UI's server time and page weight (`modelwatch bench ui`) on a
# registry seeded with 1,000 models × 20 versions and a version with 720
# evaluations of drift results, release build, loopback; then Lighthouse's
# accessibility score of the main pages in Debian's chromium when
# Lighthouse is installed (npm registry, not in CI):
#   (cd ~/.cache/modelwatch && npm install lighthouse@12)
#   scripts/bench-ui.sh [requests-per-page] [evaluations]
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${1:-200}"
EVALUATIONS="${2:-720}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/modelwatch/target}"
LIGHTHOUSE="${LIGHTHOUSE:-$HOME/.cache/modelwatch/node_modules/.bin/lighthouse}"
cargo build --release -q -p modelwatch
MW="$CARGO_TARGET_DIR/release/modelwatch"

work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
TOKEN="mw_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 43)"
"$MW" serve --data-dir "$work/mw" --listen 127.0.0.1:19401 --bootstrap-token "$TOKEN" \
  --otlp-grpc-listen off --otlp-http-listen off --log warn >"$work/mw.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do curl -fsS http://127.0.0.1:19401/healthz >/dev/null 2>&1 && break; sleep 0.2; done
echo "modelwatch release build, $(nproc) cores, $REQUESTS requests per page, one at a time"
"$MW" bench ui --url http://127.0.0.1:19401 --token "$TOKEN" --requests "$REQUESTS" --evaluations "$EVALUATIONS"

if [ -x "$LIGHTHOUSE" ]; then
  echo "Lighthouse $("$LIGHTHOUSE" --version) accessibility, $(chromium --version):"
  for page in /ui/models /ui/models/uibench-0500 /ui/models/uibench-drift/versions/1 /ui/recommendations /ui/sql /ui/login; do
    CHROME_PATH=/usr/bin/chromium "$LIGHTHOUSE" "http://127.0.0.1:19401$page" --quiet --output=json \
      --output-path="$work/lh.json" --only-categories=accessibility \
      --extra-headers="{\"Cookie\": \"modelwatch_session=$TOKEN\"}" \
      --chrome-flags="--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-background-networking --disable-component-update --disable-sync --no-first-run" \
      >/dev/null 2>"$work/lh.err" || { echo "  $page: lighthouse failed: $(tail -1 "$work/lh.err")"; continue; }
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); c=r["categories"]["accessibility"]; \
fails=[a for a in c["auditRefs"] if r["audits"][a["id"]].get("score") == 0]; \
print("  %-42s %3d%s" % (sys.argv[2], round(c["score"]*100), ("  failing: " + ", ".join(a["id"] for a in fails)) if fails else ""))' "$work/lh.json" "$page"
  done
else
  echo "Lighthouse not installed at $LIGHTHOUSE: accessibility not measured (see the header)"
fi
