"""Streaming a large file through a real ``rivet server`` (SQLite, filesystem store):
upload (``POST /api/sources``) and download (the runner's ``GET …/source``) of a
``--mib`` MiB file, against the same bytes copied file to file on the same disk
(the floor: what any store must at least do), interleaved, ``--rounds`` times.

Also printed: how much the server's peak resident memory (VmHWM) grew over the whole
run, which shows that bodies are streamed, never held whole.

Usage: .venv/bin/python bench/artifact_transfer.py [--mib 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from harness import server
from live_rivet import ADMIN

PIPELINE = (
    'return pipeline.define({ name = "bench", stages = { { name = "s", '
    "script = function() end } } })"
)


def hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rivet-bench-art-"))
    data = work / "data.bin"
    with data.open("wb") as f:
        for _ in range(args.mib):
            f.write(os.urandom(1024 * 1024))
    with server(f"sqlite:///{work / 'rivet.db'}") as srv:
        assert srv.proc is not None
        http = httpx.Client(base_url=srv.url, timeout=600)
        start_hwm = hwm_kib(srv.proc.pid)
        http.post("/api/pipelines", json={"source": PIPELINE}).raise_for_status()
        token = http.post("/api/runner-tokens", headers=ADMIN, json={}).json()["token"]
        reg = http.post(
            "/api/runners/register", json={"registration_token": token, "name": "bench"}
        ).json()
        runner = {"Authorization": f"Bearer {reg['token']}"}
        uploads, downloads, copies = [], [], []
        for n in range(args.rounds):
            t = time.perf_counter()
            with data.open("rb") as f:
                answer = http.post(
                    "/api/sources",
                    content=iter(lambda f=f: f.read(1024 * 1024), b""),
                    headers={"Content-Type": "application/octet-stream"},
                )
            answer.raise_for_status()
            uploads.append(time.perf_counter() - t)
            info = {**answer.json(), "files": 1}
            http.post(
                "/api/jobs", json={"pipeline": "bench", "source_archive": info}
            ).raise_for_status()
            job = http.post("/api/runner/claim", headers=runner, json={"wait_seconds": 5}).json()
            t = time.perf_counter()
            with (
                http.stream(
                    "GET",
                    f"/api/runner/jobs/{job['job_id']}/source",
                    headers=runner,
                    params={"attempt": job["attempt"]},
                ) as got,
                (work / "down.bin").open("wb") as out,
            ):
                for chunk in got.iter_bytes(1024 * 1024):
                    out.write(chunk)
            downloads.append(time.perf_counter() - t)
            http.post(
                f"/api/runner/jobs/{job['job_id']}/complete",
                headers=runner,
                params={"attempt": job["attempt"]},
                json={"status": "succeeded"},
            )
            t = time.perf_counter()
            with data.open("rb") as src, (work / f"copy{n}.bin").open("wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
                dst.flush()
                os.fsync(dst.fileno())
            copies.append(time.perf_counter() - t)
            # a new file each round, so the store really writes (content-addressed)
            with data.open("r+b") as f:
                f.write(os.urandom(16))
        grew = hwm_kib(srv.proc.pid) - start_hwm
    shutil.rmtree(work)
    up, down, copy = (statistics.median(x) for x in (uploads, downloads, copies))
    mib = args.mib
    print(f"file {mib} MiB, {args.rounds} rounds, medians:")
    print(f"  upload   {up:.2f} s  ({mib / up:.0f} MiB/s)  ratio to copy {up / copy:.2f}")
    print(f"  download {down:.2f} s  ({mib / down:.0f} MiB/s)  ratio to copy {down / copy:.2f}")
    print(f"  copy     {copy:.2f} s  ({mib / copy:.0f} MiB/s)  (baseline: file to file, fsync)")
    print(f"  server peak RSS grew by {grew / 1024:.1f} MiB over the run")


if __name__ == "__main__":
    main()
