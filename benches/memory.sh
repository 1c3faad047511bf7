#!/usr/bin/env bash
# Memory per node process: private memory and proportional shared memory (PSS,
# from /proc/PID/smaps_rollup), for the demo (launch/demo.yaml) and for a
# 20-node chain (router, encoder, 18 layers of 1,000 LIF neurons), each running
# at 200 steps/s for SETTLE seconds (default 10) before it is measured.
#
#   benches/memory.sh [path/to/evospike]    # default: $CARGO_TARGET_DIR/release/evospike
#
# Columns (MiB): private = Private_Clean + Private_Dirty; shmem = Pss_Shmem (the
# shared-memory pools this process maps, each page divided among the processes
# mapping it); pss = Pss (everything, shared pages divided). Totals sum the nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
E=${1:-${CARGO_TARGET_DIR:-target}/release/evospike}
SETTLE=${SETTLE:-10}
work=$(mktemp -d)
launcher=
cleanup() {
  [[ -n $launcher ]] && kill -INT "$launcher" 2>/dev/null && wait "$launcher" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The launch file of the chain, written here so it is exactly what is measured.
chain() {
  cat <<YAML
name: chain20
description: router, encoder and 18 layers in a chain
bus: {mode: peer, connect: ["tcp/127.0.0.1:27647"]}
nodes:
  - {name: router, kind: router, args: [--listen, "tcp/127.0.0.1:27647"], ready_when: ready, required: true}
  - name: encoder
    kind: encoder
    depends_on: [router]
    params: {source: "generator:bars", steps_per_second: 200}
YAML
  local input=encoder/spikes
  for i in $(seq 1 18); do
    cat <<YAML
  - name: layer$i
    kind: layer
    depends_on: [router]
    params: {size: 1000, inputs: [{topic: $input, p: 0.1, weight: 4.0, seed: $i}], wait_subscribers_s: 0}
YAML
    input=layer$i/spikes
  done
}

# Prints one table row per node process of the launcher $1, and the totals.
measure() {
  printf '| node | private MiB | shmem (PSS) MiB | PSS MiB |\n|---|---|---|---|\n'
  local total_private=0 total_shmem=0 total_pss=0
  for pid in $(pgrep -P "$1" | sort -n); do
    local name
    name=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^EVOSPIKE_NODE_NAME=//p')
    [[ -z $name ]] && continue
    read -r private shmem pss < <(awk '
      /^Private_(Clean|Dirty):/ {private += $2}
      /^Pss_Shmem:/ {shmem = $2}
      /^Pss:/ {pss = $2}
      END {printf "%d %d %d\n", private, shmem, pss}' "/proc/$pid/smaps_rollup")
    total_private=$((total_private + private)); total_shmem=$((total_shmem + shmem)); total_pss=$((total_pss + pss))
    awk -v n="$name" -v a="$private" -v b="$shmem" -v c="$pss" \
      'BEGIN {printf "| %s | %.1f | %.1f | %.1f |\n", n, a/1024, b/1024, c/1024}'
  done
  awk -v a="$total_private" -v b="$total_shmem" -v c="$total_pss" \
    'BEGIN {printf "| **total** | %.1f | %.1f | %.1f |\n", a/1024, b/1024, c/1024}'
}

run() {
  local title=$1; shift
  "$E" launch "$@" >"$work/launch.log" 2>&1 &
  launcher=$!
  # Started once every node process is up, then measured after SETTLE seconds.
  for _ in $(seq 600); do
    grep -q "$READY" "$work/launch.log" 2>/dev/null && break
    kill -0 "$launcher" 2>/dev/null || { cat "$work/launch.log"; exit 1; }
    sleep 0.5
  done
  sleep "$SETTLE"
  printf '\n### %s\n\n' "$title"
  measure "$launcher"
  kill -INT "$launcher"; wait "$launcher" 2>/dev/null || true
  launcher=
}

READY="readout.*prediction\|prediction" run "demo (launch/demo.yaml, 200 steps/s)" \
  launch/demo.yaml --arg router=tcp/127.0.0.1:27547 --arg model="$work/model" --arg rate=200
chain >"$work/chain20.yaml"
READY="layer18" run "20-node chain (router, encoder, 18 × 1,000 LIF, 200 steps/s)" "$work/chain20.yaml"
