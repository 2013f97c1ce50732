#!/usr/bin/env bash
# Load test: permatrix's /v1/check against the stock `opa run --server`
# (the baseline) answering /v1/data/permatrix/decision over the same
# policies, data and store export, side by side, one after the other, on
# loopback. Needs wrk (apt-get install wrk). Usage: test/bench/run.sh [SECONDS] [USERS]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-15}
users=${2:-10000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/permatrix" ./cmd/permatrix
(cd test/tools && go build -o "$work/opa" github.com/open-policy-agent/opa)

# A store of $users analysts, each with one project grant; a tenth in group ops.
python3 - "$users" > "$work/seed.ndjson" <<'PY'
import json, sys
n = int(sys.argv[1])
for i in range(n):
    print(json.dumps({"subject": f"user:u{i}", "system": "celonis-task-mining", "role": "analyst", "scope": {"type": "service"}}))
    print(json.dumps({"subject": f"user:u{i}", "system": "celonis-task-mining", "permission": "edit_users", "scope": {"type": "project", "id": f"p{i % 50}"}}))
print(json.dumps({"subject": "group:ops", "system": "celonis-task-mining", "permission": "edit_client_settings", "scope": {"type": "service"}}))
PY

"$work/permatrix" serve --addr 127.0.0.1:18181 --db "$work/p.db" --admin-token bench --log-level error --body-limit 67108864 &
for _ in $(seq 50); do curl -sf 127.0.0.1:18181/health >/dev/null && break; sleep 0.2; done
curl -sf -H 'Authorization: Bearer bench' --data-binary @"$work/seed.ndjson" 127.0.0.1:18181/v1/import >/dev/null
curl -sf -H 'Authorization: Bearer bench' 127.0.0.1:18181/v1/export > "$work/export.json"

"$work/opa" run --server --addr 127.0.0.1:18282 --log-level error --ignore '*_test.rego' policies systems:systems "$work/export.json" &
for _ in $(seq 50); do curl -sf 127.0.0.1:18282/health >/dev/null && break; sleep 0.2; done

run() { # name port path wrap
  BENCH_PATH=$3 BENCH_WRAP=$4 wrk -t2 -c16 -d"${secs}s" --latency -s test/bench/check.lua "http://127.0.0.1:$2" > "$work/$1.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.txt")
  p50=$(awk '$1=="50%" {print $2}' "$work/$1.txt"); p99=$(awk '$1=="99%" {print $2}' "$work/$1.txt")
  echo "$1 rps=$rps p50=$p50 p99=$p99"
}
run warmup-permatrix 18181 /v1/check 0 >/dev/null
run warmup-opa 18282 /v1/data/permatrix/decision 1 >/dev/null
a=$(run permatrix 18181 /v1/check 0); echo "$a"
b=$(run opa-baseline 18282 /v1/data/permatrix/decision 1); echo "$b"
ra=$(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$a"); rb=$(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$b")
python3 -c "print(f'ratio permatrix/opa = {float($ra)/float($rb):.2f}')"
