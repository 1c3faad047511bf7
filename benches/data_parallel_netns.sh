#!/usr/bin/env bash
# Data-parallel training over the bus between two hosts — network namespaces
# joined by a veth pair, each with its own /dev/shm (the test hosts of
# tests/support/src/netns.rs) — against the same processes on one host: time
# per step split into computing and bus, and the speedup for K = 1, 2.
#
#   cargo build --release -p evospike
#   bash benches/data_parallel_netns.sh DIR [EPOCHS]   # root; DIR holds train-images-idx3-ubyte.gz
#
# The topology of launch/data_parallel.yaml: a router on the coordinator's
# host; the coordinator (`run train`, workers: K) and the K workers (`run
# train_worker`) are peers that connect to it and listen on their own address,
# so gossip links each worker straight to the coordinator (multicast scouting
# stays off). "one host": everything in host A (tensors through shared memory);
# "two hosts": the workers in host B, so weights and gradients cross the veth
# link over TCP (the workers' bus totals show shm=0).
#
# Every run: SurrogateGradient defaults (784-800-10, 25 steps, batch 128), 20%
# held out, seed 0, one compute thread per process. One table row per run.
set -euo pipefail
dir=${1:?usage: data_parallel_netns.sh DIR [EPOCHS]}
epochs=${2:-2}
E=$(realpath "${EVOSPIKE:-${CARGO_TARGET_DIR:-target}/release/evospike}")
data=$(realpath "$dir/train-images-idx3-ubyte.gz")
tag=$$
names=(evdpa$tag evdpb$tag)
net=$((tag % 250 + 1))
addrs=(10.214.$net.1 10.214.$net.2)
out=$(mktemp -d)
anchors=()
cleanup() {
  for pid in "${anchors[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  for ns in "${names[@]}"; do ip netns del "$ns" 2> /dev/null || true; done
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The two hosts: a veth pair, and a process per host holding a mount namespace
# with a private /dev/shm.
for ns in "${names[@]}"; do ip netns add "$ns"; done
ip link add "vda$tag" type veth peer name "vdb$tag"
for i in 0 1; do
  dev=$([ "$i" = 0 ] && echo "vda$tag" || echo "vdb$tag")
  ip link set "$dev" netns "${names[$i]}"
  ip -n "${names[$i]}" addr add "${addrs[$i]}/24" dev "$dev"
  ip -n "${names[$i]}" link set "$dev" up
  ip -n "${names[$i]}" link set lo up
  ip netns exec "${names[$i]}" unshare --mount --propagation private sh -c \
    "mount -t tmpfs -o size=2g evospike-shm /dev/shm && touch $out/ready$i && exec sleep 1000000" &
  anchors+=($!)
done
for i in 0 1; do
  for _ in $(seq 100); do [ -e "$out/ready$i" ] && break; sleep 0.1; done
  [ -e "$out/ready$i" ] || { echo "host $i: no private /dev/shm" >&2; exit 1; }
done
on() { # host, command… (run in the background: the job's pid is the command's)
  local host=$1; shift
  exec nsenter -t "${anchors[$host]}" -m -n -- "$@"
}
wait_line() { # file, text
  for _ in $(seq 300); do grep -q "$2" "$1" 2> /dev/null && return; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1
}

run() { # name, workers' host, K
  local name=$1 wh=$2 k=$3
  local cip=${addrs[0]} wip=${addrs[$wh]}
  local port=$((20000 + RANDOM % 20000))
  local params=(-p "data=$data" -p holdout=0.2 -p seed=0 -p job=bench
    -p "learner_params={\"threads\": 1, \"epochs\": $epochs}")
  local pids=()
  on 0 "$E" run router --name router --listen "tcp/$cip:$port" > "$out/$name.router.log" 2>&1 &
  local router=$!
  wait_line "$out/$name.router.log" ready
  on 0 "$E" run train --name coordinator --connect "tcp/$cip:$port" --listen "tcp/$cip:0" \
    "${params[@]}" -p "out=$out/$name" -p retrain=true -p "workers=$k" > "$out/$name.log" 2>&1 &
  local coordinator=$!
  for ((w = 0; w < k; w++)); do
    RUST_LOG=info on "$wh" "$E" run train_worker --name "w$w" --connect "tcp/$cip:$port" \
      --listen "tcp/$wip:0" "${params[@]}" -p "index=$w" -p "workers=$k" > "$out/$name.w$w.log" 2>&1 &
    pids+=($!)
  done
  # A worker that fails ends the run at once (nothing here starts it again).
  local ended=()
  while kill -0 "$coordinator" 2> /dev/null; do
    for ((w = 0; w < k; w++)); do
      [ -n "${ended[$w]:-}" ] && continue
      kill -0 "${pids[$w]}" 2> /dev/null && continue
      ended[$w]=1
      if ! wait "${pids[$w]}"; then
        kill "$coordinator"
        echo "$name: worker $w failed" >&2; cat "$out/$name.w$w.log" >&2; exit 1
      fi
    done
    sleep 0.2
  done
  wait "$coordinator" || { echo "$name: the coordinator failed" >&2; cat "$out/$name.log" >&2; exit 1; }
  for ((w = 0; w < k; w++)); do [ -n "${ended[$w]:-}" ] || wait "${pids[$w]}" || true; done
  kill -INT "$router"; wait "$router" || true
  python3 - "$out/$name/model.json" "$name" "$out/$name.w0.log" <<'PY'
import json, re, sys
m = json.load(open(sys.argv[1]))["metrics"]
totals = [l for l in open(sys.argv[3], errors="replace") if "bus totals" in l]
shm = re.search(r" received=(\d+).* shm=(\d+)", totals[-1]) if totals else None
step = m["dp_compute_ms_per_step"] + m["dp_bus_ms_per_step"] + m["dp_reduce_ms_per_step"]
row = [sys.argv[2], str(int(m["dp_steps"])), f"{m['test_accuracy']*100:.2f}%", f"{step:.1f}",
       f"{m['dp_compute_ms_per_step']:.1f}", f"{m['dp_bus_ms_per_step']:.1f}",
       f"{m['dp_reduce_ms_per_step']:.1f}", f"{shm.group(2)} of {shm.group(1)}" if shm else "?"]
print("| " + " | ".join(row) + " |")
PY
}

echo "| run | steps | test accuracy | ms/step | compute ms/step | bus ms/step | averaging ms/step | worker 0: weights via shm |"
echo "|---|---|---|---|---|---|---|---|"
run "one host, K=1" 0 1
run "one host, K=2" 0 2
run "two hosts, K=1" 1 1
run "two hosts, K=2" 1 2
