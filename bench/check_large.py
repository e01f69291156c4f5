"""``rivet check`` time for a generated pipeline with many stages (default 1,000).

    .venv/bin/python bench/check_large.py [--stages 1000] [--runs 7]

Measures the whole CLI (``rivet check FILE`` as a subprocess, start-up included) and
the validation alone (``load_definition`` in-process), median of ``--runs``; the
baseline is ``rivet check`` of a one-stage file in the same run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rivet.lua.definition import load_definition


def generate(stages: int) -> str:
    lines = [
        "return pipeline.define({",
        '  name = "big",',
        '  inputs = { flag = { type = "bool", default = false } },',
        "  stages = {",
    ]
    for i in range(stages):
        lines.append(
            f'    {{ name = "stage-{i}", condition = function() return not input.get("flag") end,'
            f' script = function() process.run({{ "echo", "{i}" }}) end }},'
        )
    lines += ["  },", "})"]
    return "\n".join(lines) + "\n"


def rivet_cmd() -> list[str]:
    exe = shutil.which("rivet", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "rivet.cli.main"]


def timed(cmd: list[str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t0)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rivet-bench-"))
    big, small = tmp / "big.lua", tmp / "small.lua"
    big.write_text(generate(args.stages))
    small.write_text(generate(1))

    in_process = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        definition = load_definition(big.read_text(), "big.lua")
        in_process.append(time.perf_counter() - t0)
    assert len(definition.stages) == args.stages

    cli_big = timed([*rivet_cmd(), "check", str(big)], args.runs)
    cli_small = timed([*rivet_cmd(), "check", str(small)], args.runs)
    shutil.rmtree(tmp)

    mb, ms, mi = (statistics.median(x) for x in (cli_big, cli_small, in_process))
    print(
        f"stages: {args.stages}, runs: {args.runs}, file: {len(generate(args.stages)) // 1024} KiB"
    )
    print(f"rivet check (1 stage, baseline)  : median {ms * 1000:7.1f} ms")
    label = f"rivet check ({args.stages} stages)"
    print(f"{label:<33}: median {mb * 1000:7.1f} ms  ({mb / ms:.2f}x baseline)")
    per_stage = mi / args.stages * 1e6
    in_proc = f"median {mi * 1000:7.1f} ms  ({per_stage:.0f} µs per stage)"
    print(f"load_definition in-process       : {in_proc}")


if __name__ == "__main__":
    main()
