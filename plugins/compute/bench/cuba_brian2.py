#!/usr/bin/env python3
"""Vogels-Abbott CUBA network in Brian2's C++ standalone mode (the Brian2 side of the
evospike CUBA benchmark).

Install once (the script installs nothing itself):

    python3 -m venv .venv && .venv/bin/pip install 'brian2==2.9.*' 'numpy<2'

Run alone with `.venv/bin/python cuba_brian2.py --repeats 5`, or let
`cargo bench -p evospike-neuron --bench cuba` run it (it uses $BRIAN2_PYTHON).

Prints one JSON object on the last line of stdout: wall time of the simulation
proper (Brian2's own `Network::run` timer, which excludes code generation,
compilation and network construction), spikes, mean rate, synaptic events.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of the compiled binary")
    parser.add_argument("--duration-ms", type=float, default=1000.0)
    parser.add_argument("--threads", type=int, default=0, help="OpenMP threads (0 = no OpenMP, one thread)")
    parser.add_argument("--build-dir", default=None, help="where Brian2 writes the C++ project")
    args = parser.parse_args()

    # Brian2 logs to stderr; keep stdout for the JSON result.
    import brian2 as b2
    from brian2 import ms, mV, second

    build_dir = args.build_dir or tempfile.mkdtemp(prefix="evospike-cuba-brian2-")
    b2.set_device("cpp_standalone", build_on_run=False, directory=build_dir)
    b2.prefs.devices.cpp_standalone.openmp_threads = args.threads
    b2.defaultclock.dt = 0.1 * ms

    n, n_exc = 4000, 3200
    taum, taue, taui = 20 * ms, 5 * ms, 10 * ms
    Vt, Vr, El = -50 * mV, -60 * mV, -49 * mV
    eqs = """
    dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
    dge/dt = -ge/taue : volt
    dgi/dt = -gi/taui : volt
    """
    P = b2.NeuronGroup(n, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms, method="exact")
    P.v = "Vr + rand() * (Vt - Vr)"
    P.ge = 0 * mV
    P.gi = 0 * mV
    we = (60 * 0.27 / 10) * mV  # +1.62 mV
    wi = (-20 * 4.5 / 10) * mV  # -9 mV
    Ce = b2.Synapses(P, P, on_pre="ge += we")
    Ci = b2.Synapses(P, P, on_pre="gi += wi")
    Ce.connect("i < n_exc", p=0.02)
    Ci.connect("i >= n_exc", p=0.02)
    mon = b2.SpikeMonitor(P, record=False)
    # Spikes of each neuron, to count synaptic events (spikes x out-degree).
    b2.run(args.duration_ms * ms)
    b2.device.build(directory=build_dir, compile=True, run=True, debug=False)

    def one_run_result():
        counts = mon.count[:]
        out_degree = [0] * n
        for i in Ce.i[:]:
            out_degree[int(i)] += 1
        for i in Ci.i[:]:
            out_degree[int(i)] += 1
        events = int(sum(int(c) * d for c, d in zip(counts, out_degree)))
        return float(b2.device._last_run_time), int(mon.num_spikes), events

    runs = [one_run_result()]
    for _ in range(args.repeats - 1):
        b2.device.run(directory=build_dir, with_output=False)
        runs.append(one_run_result())

    wall = statistics.median(r[0] for r in runs)
    spikes = runs[0][1]
    events = runs[0][2]
    duration_s = args.duration_ms / 1000.0
    result = {
        "simulator": f"brian2 {b2.__version__} cpp_standalone",
        "threads": max(args.threads, 1),
        "wall_s": wall,
        "wall_all_s": [r[0] for r in runs],
        "spikes": spikes,
        "mean_rate_hz": spikes / n / duration_s,
        "rates_all_hz": [r[1] / n / duration_s for r in runs],
        "synaptic_events": events,
        "events_per_s": events / wall if wall > 0 else None,
        "synapses": int(len(Ce) + len(Ci)),
        "build_dir": build_dir,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
