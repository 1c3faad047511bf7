#!/usr/bin/env bash
# Data-parallel training over the bus against one process, on 28x28 MNIST-format
# IDX data: time per step (computing, bus) and the speedup for K = 1, 2.
#
#   cargo build --release -p evospike
#   bash benches/data_parallel.sh DIR [EPOCHS]    # DIR holds train-/t10k-images-idx3-ubyte.gz
#
# Every run: SurrogateGradient defaults (784-800-10, 25 steps, batch 128), seed 0,
# one compute thread per process. Prints one table row per run.
set -euo pipefail
dir=${1:?usage: data_parallel.sh DIR [EPOCHS]}
epochs=${2:-2}
E=${EVOSPIKE:-${CARGO_TARGET_DIR:-target}/release/evospike}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run() { # name, extra flags…
  local name=$1; shift
  "$E" train --data "$dir/train-images-idx3-ubyte.gz" --test "$dir/t10k-images-idx3-ubyte.gz" \
    --epochs "$epochs" --seed 0 --json --out "$out/$name" "$@" > /dev/null 2> "$out/$name.log"
  python3 - "$out/$name/model.json" "$name" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
steps = m.get("dp_steps") or 0
per_step = 1e3 * m["train_seconds"] / (steps or 1)
row = [sys.argv[2], f"{m['train_seconds']:.1f} s", f"{m['test_accuracy']*100:.2f}%"]
if steps:
    row += [f"{per_step:.1f}", f"{m['dp_compute_ms_per_step']:.1f}", f"{m['dp_bus_ms_per_step']:.1f}", f"{m['dp_reduce_ms_per_step']:.1f}"]
else:
    row += ["", "", "", ""]
print("| " + " | ".join(row) + " |")
PY
}

echo "| run | training ($epochs epochs) | test accuracy | ms/step (all) | compute ms/step | bus ms/step | averaging ms/step |"
echo "|---|---|---|---|---|---|---|"
run "one process, 1 thread" --threads 1
run "one process, 2 threads" --threads 2
run "K=1 worker (1 thread)" --threads 1 --workers 1
run "K=2 workers (1 thread each)" --threads 1 --workers 2
