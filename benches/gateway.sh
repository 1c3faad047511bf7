#!/usr/bin/env bash
# The API gateway's overhead: `POST /infer` directly to the inference service
# against the same request through the gateway (`/inference/infer`, routed over
# the bus), at 64 concurrent clients, alternating three times in one run.
#
#   benches/gateway.sh            # BENCH_SECONDS=5 CLIENTS=64 by default
#
# It starts launch/services.yaml on loopback (ports 280xx), trains the default
# digits classifier (800 hidden LIF neurons, 25 steps) through the training
# service, loads it into inference, and drives both paths with
# tests/src/bin/http-load.rs (one thread and keep-alive connection per client).
# Each row also gives the CPU time each process spent per request (from
# /proc/PID/stat), and a third path times the gateway's HTTP handling alone.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
CLIENTS=${CLIENTS:-64}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p evospike -p evospike-tests --bin evospike --bin http-load
E=$CARGO_TARGET_DIR/release/evospike
LOAD=$CARGO_TARGET_DIR/release/http-load
work=$(mktemp -d)
"$E" launch launch/services.yaml --quiet --arg router=tcp/127.0.0.1:27447 --arg host=127.0.0.1 \
  --arg gateway_port=28000 --arg training_port=28001 --arg inference_port=28002 \
  --arg registry_port=28003 --arg monitoring_port=28004 \
  --arg registry_data="$work/registry" --arg logs_data="$work/logs" --arg training_data="$work/training" \
  >"$work/launch.log" 2>&1 &
launch=$!
trap 'kill -INT $launch 2>/dev/null; wait $launch 2>/dev/null; rm -rf "$work"' EXIT
GW=http://127.0.0.1:28000
for _ in $(seq 120); do
  health=$(curl -s $GW/services/health || true)
  if [[ $health == *'"service":"inference"'* && $health == *'"service":"training"'* && $health == *'"service":"registry"'* ]]; then break; fi
  sleep 0.5
done
job=$(curl -s -X POST $GW/training/train -H 'Content-Type: application/json' \
  -d '{"model_type": "classifier", "dataset_path": "builtin:digits", "config": {"epochs": 2, "holdout": 0.2}, "model_id": "bench"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 600); do
  state=$(curl -s $GW/training/jobs/$job | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [[ $state == SUCCEEDED || $state == FAILED ]] && break
  sleep 0.5
done
[[ $state == SUCCEEDED ]] || { echo "training failed: $(curl -s $GW/training/jobs/$job)"; exit 1; }
curl -s -X POST $GW/inference/load_model/bench >/dev/null
python3 - "$work/body.json" <<'PY'
import json, sys
pixels = [((i * 7) % 17) / 16 for i in range(64)]
json.dump({"model_id": "bench", "inputs": {"pixels": pixels}, "config": {"return_scores": False}}, open(sys.argv[1], "w"))
PY
"$LOAD" http://127.0.0.1:28002/infer "$work/body.json" 8 1 >/dev/null   # warm-up
"$LOAD" $GW/inference/infer "$work/body.json" 8 1 >/dev/null
echo '{"name": "bench-external", "url": "http://127.0.0.1:9", "ttl_s": 60}' >"$work/register.json"
# CPU seconds used so far by each process of the run (utime + stime).
cpu() {
  python3 - "$@" <<'PY'
import os, sys
pids = {"gateway": "run gateway", "inference": "run inference", "router": "run router"}
ticks = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmd = open(f"/proc/{pid}/cmdline").read().replace("\0", " ")
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    for name, needle in pids.items():
        if needle in cmd:
            f = stat[stat.rfind(")") + 2:].split()
            ticks[name] = ticks.get(name, 0) + int(f[11]) + int(f[12])
print(" ".join(f"{k}={v / os.sysconf('SC_CLK_TCK')}" for k, v in sorted(ticks.items())))
PY
}
echo "| round | path | requests/s | p50 ms | p99 ms | failed | CPU µs per request: gateway / inference / router |"
echo "|---|---|---|---|---|---|---|"
for round in 1 2 3; do
  # `gateway-local`: the gateway's own HTTP handling alone (middleware and a
  # handler that answers itself, POST /services/register), no bus.
  for path in direct gateway gateway-local; do
    body=$work/body.json
    case $path in
      direct) url=http://127.0.0.1:28002/infer ;;
      gateway) url=$GW/inference/infer ;;
      gateway-local) url=$GW/services/register; body=$work/register.json ;;
    esac
    before=$(cpu)
    out=$("$LOAD" "$url" "$body" "$CLIENTS" "$SECONDS_PER_RUN")
    after=$(cpu)
    echo "$out" >"$work/$round-$path.json"
    python3 - "$round" "$path" "$out" "$before" "$after" "$SECONDS_PER_RUN" <<'PY'
import json, sys
round_, path, out, before, after, seconds = sys.argv[1:]
r = json.loads(out)
b = dict(kv.split("=") for kv in before.split())
a = dict(kv.split("=") for kv in after.split())
n = r["requests_per_s"] * float(seconds)
us = lambda k: "%.0f" % ((float(a.get(k, 0)) - float(b.get(k, 0))) / n * 1e6) if n else "-"
print("| %s | %s | %.0f | %.2f | %.2f | %d | %s / %s / %s |" % (round_, path, r["requests_per_s"], r["p50_ms"], r["p99_ms"], r["failed"], us("gateway"), us("inference"), us("router")))
PY
  done
done
python3 - "$work" <<'PY'
import json, statistics, sys
d = sys.argv[1]
ratio = [json.load(open(f"{d}/{r}-gateway.json"))["requests_per_s"] / json.load(open(f"{d}/{r}-direct.json"))["requests_per_s"] for r in (1, 2, 3)]
print(f"\ngateway / direct throughput: {', '.join(f'{x:.2f}' for x in ratio)} (median {statistics.median(ratio):.2f}x)")
PY
