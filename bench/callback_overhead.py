"""Cost of one call from pipeline Lua into a Rivet function, vs a bare lupa call.

    .venv/bin/python bench/callback_overhead.py [--calls 100000] [--runs 9]

Both loops run in the same sandbox, interleaved, and call a Python function that
does nothing: ``rivet`` through ``Sandbox.expose`` (argument rules, budget checks,
CPU accounting, the bridge that notices Lua run inside a call, error wrapping),
``bare`` a Python callable handed to Lua as it is. Prints the median time per call
of each (Lua's ``os.clock``, process CPU time) and the difference.
"""

from __future__ import annotations

import argparse
import statistics

from rivet.lua.sandbox import Limits, Sandbox

LOOP = "local f, n = ...; local t0 = os.clock(); for i = 1, n do f(i) end; return os.clock() - t0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    sandbox = Sandbox(Limits(stage_cpu_seconds=600))
    rivet_fn = sandbox.expose(lambda x: None, "noop")
    bare_fn = sandbox.eval_lua("local f = ... return f", lambda x: None)
    loop = sandbox.load(LOOP, "bench.lua")
    rivet: list[float] = []
    bare: list[float] = []
    for _ in range(args.runs):
        for fn, samples in ((rivet_fn, rivet), (bare_fn, bare)):
            seconds = sandbox.call(loop, fn, args.calls, budget=600, label="bench")
            samples.append(seconds / args.calls * 1e6)
    sandbox.close()
    med_r, med_b = statistics.median(rivet), statistics.median(bare)
    print(f"calls: {args.calls} per run, {args.runs} runs each, interleaved")
    print(f"bare lupa call      : median {med_b:6.2f} µs")
    print(f"Rivet function call : median {med_r:6.2f} µs")
    print(f"overhead            : {med_r - med_b:+.2f} µs per call")


if __name__ == "__main__":
    main()
