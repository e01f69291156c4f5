"""Cost of one call from pipeline Lua into a Rivet function, vs a bare lupa call.

    .venv/bin/python bench/callback_overhead.py [--calls 100000] [--runs 9]
    .venv/bin/python bench/callback_overhead.py --baseline OTHER/src [--rounds 7]

Both loops run in the same sandbox, interleaved, and call a Python function that
does nothing: ``rivet`` through ``Sandbox.expose`` (argument rules, budget checks,
CPU accounting, the bridge that notices Lua run inside a call, the memory cap lifted
for the call and put back, error wrapping), ``bare`` a Python callable handed to Lua
as it is. Prints the median time per call of each (Lua's ``os.clock``, process CPU
time) and the difference.

With ``--baseline`` it compares two source trees (say, a checkout of main and this
one): each round runs the measurement once in a fresh process for the baseline tree
and once for this tree, in alternating order, so both see the same machine load; it
prints the median overhead per call of each tree and their difference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from rivet.lua.sandbox import Limits, Sandbox

LOOP = "local f, n = ...; local t0 = os.clock(); for i = 1, n do f(i) end; return os.clock() - t0"
HERE_SRC = Path(__file__).resolve().parents[1] / "src"


def measure(calls: int, runs: int) -> tuple[list[float], list[float]]:
    """Microseconds per call of (rivet, bare), one sample per run, interleaved."""
    sandbox = Sandbox(Limits(stage_cpu_seconds=600))
    rivet_fn = sandbox.expose(lambda x: None, "noop")
    bare_fn = sandbox.eval_lua("local f = ... return f", lambda x: None)
    loop = sandbox.load(LOOP, "bench.lua")
    rivet: list[float] = []
    bare: list[float] = []
    for _ in range(runs):
        for fn, samples in ((rivet_fn, rivet), (bare_fn, bare)):
            seconds = sandbox.call(loop, fn, calls, budget=600, label="bench")
            samples.append(seconds / calls * 1e6)
    sandbox.close()
    return rivet, bare


def in_tree(src: Path, calls: int, runs: int) -> tuple[float, float]:
    """Median (rivet, bare) µs per call, measured by a fresh process on ``src``."""
    env = dict(os.environ, PYTHONPATH=str(src))
    args = [sys.executable, __file__, "--calls", str(calls), "--runs", str(runs), "--json"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout)
    return float(figures["rivet"]), float(figures["bare"])


def compare(baseline: Path, calls: int, runs: int, rounds: int) -> None:
    overhead: dict[str, list[float]] = {"baseline": [], "this tree": []}
    trees = [("baseline", baseline), ("this tree", HERE_SRC)]
    for round_ in range(rounds):
        for name, src in trees if round_ % 2 == 0 else trees[::-1]:
            rivet, bare = in_tree(src, calls, runs)
            overhead[name].append(rivet - bare)
    base, here = (statistics.median(overhead[k]) for k in ("baseline", "this tree"))
    print(f"{rounds} rounds, alternating; each: {runs} runs of {calls} calls per tree")
    print(f"baseline ({baseline}) overhead : median {base:5.2f} µs per call")
    print(f"this tree ({HERE_SRC}) overhead: median {here:5.2f} µs per call")
    print(f"difference                      : {here - base:+.2f} µs per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--baseline", type=Path, help="the src/ directory of another tree")
    parser.add_argument("--rounds", type=int, default=7, help="with --baseline")
    parser.add_argument("--json", action="store_true", help="medians as one JSON line")
    args = parser.parse_args()

    if args.baseline is not None:
        compare(args.baseline.resolve(), args.calls, args.runs, args.rounds)
        return
    rivet, bare = measure(args.calls, args.runs)
    med_r, med_b = statistics.median(rivet), statistics.median(bare)
    if args.json:
        print(json.dumps({"rivet": med_r, "bare": med_b}))
        return
    print(f"calls: {args.calls} per run, {args.runs} runs each, interleaved")
    print(f"bare lupa call      : median {med_b:6.2f} µs")
    print(f"Rivet function call : median {med_r:6.2f} µs")
    print(f"overhead            : {med_r - med_b:+.2f} µs per call")


if __name__ == "__main__":
    main()
