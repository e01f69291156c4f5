"""Unpacking with rivet.engine.archives (every entry checked first, then written
descriptor-relative, never following a link) vs Python's own
``tarfile.extractall(filter="data")`` on the same tar.gz, interleaved; and the cost of
loading the archive plugin into a job (a job listing it vs the same job without).

    .venv/bin/python bench/archive_extract.py [--files 2000] [--runs 9]

Prints the median of each and the ratio to its baseline, measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

from lua_job import Quiet

from rivet.engine.archives import extract
from rivet.engine.backends.fake import FakeBackend
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec


def make_archive(files: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i in range(files):
            data = f"file {i}\n".encode() * 20
            info = tarfile.TarInfo(f"d{i % 50}/f{i}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def rivet_once(data: bytes, dest: Path) -> float:
    dest.mkdir()
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    started = time.perf_counter()
    try:
        extract(io.BytesIO(data), fd)
    finally:
        os.close(fd)
    return time.perf_counter() - started


def stdlib_once(data: bytes, dest: Path) -> float:
    dest.mkdir()
    started = time.perf_counter()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return time.perf_counter() - started


def job_once(root: Path, plugins: str) -> float:
    source = (
        f"return pipeline.define({{ name = 'b', plugins = {{ {plugins} }}, stages = {{"
        "{ name = 's', script = function() end } } })"
    )
    settings = ExecutorSettings(workspace_root=root, secrets_root=root)
    spec = JobSpec(f"b-{uuid.uuid4().hex[:8]}", source, "b.lua", {}, local_secrets=True)
    started = time.perf_counter()
    Executor(FakeBackend(), settings).run(spec, Quiet())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    data = make_archive(args.files)
    work = Path(tempfile.mkdtemp(prefix="rivet-bench-"))
    try:
        rivet, stdlib, with_plugin, without = [], [], [], []
        for i in range(args.runs):
            rivet.append(rivet_once(data, work / f"r{i}"))
            stdlib.append(stdlib_once(data, work / f"s{i}"))
            with_plugin.append(job_once(work, '"archive"'))
            without.append(job_once(work, ""))
        r, s = statistics.median(rivet), statistics.median(stdlib)
        w, o = statistics.median(with_plugin), statistics.median(without)
        print(f"extract {args.files} files ({len(data)} bytes tar.gz), median of {args.runs}:")
        print(f"  rivet.engine.archives   {r * 1000:8.1f} ms")
        print(f"  tarfile filter='data'   {s * 1000:8.1f} ms   ratio {r / s:.2f}x")
        print("a job with an empty stage, median:")
        print(f"  plugins = {{ 'archive' }} {w * 1000:8.1f} ms")
        print(f"  no plugins              {o * 1000:8.1f} ms   difference {(w - o) * 1000:+.1f} ms")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
