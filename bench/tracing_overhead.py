"""What traces cost: a job of N ``process.run`` calls through the real executor on
the FAKE container backend (so container time does not drown the difference), with
tracing off (no OTLP endpoint: the default) and on (the SDK recording every span into
its in-memory exporter), interleaved round by round; plus the cost of one no-op span
(tracing off) next to one recorded span.

    .venv/bin/python bench/tracing_overhead.py [--rounds 15] [--commands 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))

from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from recording import EventLog  # noqa: E402

from rivet.engine.backends.fake import FakeBackend  # noqa: E402
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec  # noqa: E402
from rivet.engine.policy import Policy  # noqa: E402
from rivet.observe import tracing  # noqa: E402

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def job_seconds(root: Path, commands: int) -> float:
    source = (
        "return pipeline.define({ name = 'b', stages = { { name = 's', script = function()\n"
        f"for i = 1, {commands} do process.run({{ 'true' }}) end\nend }} }} }})"
    )
    settings = ExecutorSettings(
        workspace_root=root / "w",
        default_image="alpine:latest",
        policy=Policy(),
        secrets_root=root / "s",
    )
    spec = JobSpec(
        f"b-{uuid.uuid4().hex[:8]}", source, "b.lua", {}, local_secrets=True, trace_parent=PARENT
    )
    started = time.perf_counter()
    result = Executor(FakeBackend(), settings).run(spec, EventLog())
    elapsed = time.perf_counter() - started
    assert result.status.value == "succeeded", result
    return elapsed


def span_ns(count: int = 20000) -> float:
    started = time.perf_counter_ns()
    for _ in range(count):
        tracing.end_span(tracing.start_span("x", attributes={"a": 1}))
    return (time.perf_counter_ns() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args()
    off: list[float] = []
    on: list[float] = []
    off_span: list[float] = []
    on_span: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "s").mkdir()
        job_seconds(root, args.commands)  # warm-up: imports, Lua
        for _ in range(args.rounds):
            off.append(job_seconds(root, args.commands))
            off_span.append(span_ns())
            exporter = InMemorySpanExporter()
            tracing.configure("bench", environ={}, exporter=exporter)
            on.append(job_seconds(root, args.commands))
            on_span.append(span_ns())
            tracing.shutdown()
    per = args.commands
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"job of {per} process.run on the fake backend, {args.rounds} rounds interleaved")
    print(f"  tracing off: median {m_off * 1000:.1f} ms ({m_off / per * 1e6:.0f} µs per command)")
    print(f"  tracing on:  median {m_on * 1000:.1f} ms ({m_on / per * 1e6:.0f} µs per command)")
    print(f"  on / off: {m_on / m_off:.3f}")
    print(
        f"one span: off (no-op) median {statistics.median(off_span):.0f} ns, "
        f"on (recorded, in-memory) median {statistics.median(on_span):.0f} ns"
    )


if __name__ == "__main__":
    main()
