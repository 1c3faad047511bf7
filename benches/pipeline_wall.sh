#!/usr/bin/env bash
# Whole-run wall time of the pipeline bench's multi-process network (router,
# encoder, three layers of 1,000 LIF neurons), start included: every node is
# started together and the clock stops when the last has sent its last step.
# Prints the wall seconds and each node's user+system CPU seconds. Comparing
# two step counts separates the start-up from the per-step cost:
#
#   benches/pipeline_wall.sh target/release/evospike 2000
#   benches/pipeline_wall.sh target/release/evospike 40000
set -euo pipefail
E=$1
N=$2
port=$((20000 + RANDOM % 20000))
R=tcp/127.0.0.1:$port
work=$(mktemp -d)
export RUST_LOG=warn
"$E" router --listen "$R" >"$work/router.log" 2>&1 &
router=$!
trap 'kill $router 2>/dev/null; rm -rf "$work"' EXIT
# The nodes retry until the router listens; half a second keeps that out of the clock.
sleep 0.5
timed() { /usr/bin/time -f %U+%S -o "$work/$1.cpu" "${@:2}" >"$work/$1.log" 2>&1; }
start=$(date +%s.%N)
timed encoder "$E" run encoder --connect "$R" --name encoder -p 'source="generator:bars"' \
  -p steps_per_sample=50 -p 'encoder_params={"max_rate_hz":200.0}' -p "max_steps=$N" &
nodes=($!)
input=encoder
for i in 1 2 3; do
  # The last layer has no subscriber: it must not wait for one.
  extra=()
  [[ $i == 3 ]] && extra=(-p wait_subscribers_s=0)
  timed "layer$i" "$E" run layer --connect "$R" --name "layer$i" -p size=1000 \
    -p "inputs=[{\"topic\":\"$input/spikes\",\"p\":0.1,\"weight\":4.0,\"seed\":$i}]" \
    -p 'neuron_params={"tau_ms":20.0,"t_ref_ms":2.0}' -p "max_steps=$N" "${extra[@]}" &
  nodes+=($!)
  input=layer$i
done
wait "${nodes[@]}"
end=$(date +%s.%N)
awk -v a="$start" -v b="$end" 'BEGIN { printf "wall %.3f s", b - a }' 
for node in encoder layer1 layer2 layer3; do
  printf ' | %s %s' "$node" "$(cat "$work/$node.cpu")"
done
echo
