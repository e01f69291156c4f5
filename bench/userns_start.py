"""Cost of a private user namespace (policy ``container.userns = "auto"``) on container
start, against the runner's own users (``host``), measured interleaved in one run.

    .venv/bin/python bench/userns_start.py [--rounds 15]

Per image and round, three starts through the real ``PodmanBackend`` (each followed by
one ``true`` exec, so a container that starts but cannot run is not counted as fast):

- ``host``: no user namespace (container root is host root under rootful Podman);
- ``auto``: a job's first container: ``--userns=auto:size=65536``, then ``podman
  inspect`` for the range and the hand-over of the workspace to the range's root;
- ``shared``: a job's later container, started with that range (``--uidmap``).

Prints median and p90 per mode and the ratio of the medians to ``host``. Needs the
``containers`` entries in /etc/subuid and /etc/subgid (scripts/setup.sh adds them).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from harness import summary

from rivet.engine.backends.base import (
    ContainerOptions,
    ContainerSpec,
    ExecRequest,
    IdMap,
    RunningContainer,
    container_name,
)
from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.workspaces import make_workspace, prepare_root, remove_tree

IMAGES = ("localhost/rivet/busybox:latest", "localhost/rivet/debian-git:latest")
MODES = ("host", "auto", "shared")


def start(
    backend: PodmanBackend,
    root: Path,
    image: str,
    userns: str,
    id_map: IdMap | None = None,
    workspace: Path | None = None,
) -> tuple[float, RunningContainer]:
    job = f"bench-{uuid.uuid4().hex[:8]}"
    workspace = workspace or make_workspace(root, job)
    options = ContainerOptions(userns=userns)
    spec = ContainerSpec(
        job_id=job,
        image=image,
        workspace=workspace,
        name=container_name(job, image, options),
        options=options,
        id_map=id_map,
    )
    began = time.perf_counter()
    container = backend.start(spec)
    result = backend.exec(container, ExecRequest(argv=["true"]))
    elapsed = time.perf_counter() - began
    if result.exit_code != 0:
        raise SystemExit(f"{userns}: 'true' exited with {result.exit_code} in {image}")
    return elapsed, container


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    backend = PodmanBackend()
    root = Path(tempfile.mkdtemp(prefix="rivet-bench-userns-"))
    prepare_root(root)
    times: dict[tuple[str, str], list[float]] = {(i, m): [] for i in IMAGES for m in MODES}
    try:
        for _ in range(args.rounds):
            for image in IMAGES:
                host_s, host_c = start(backend, root, image, "host")
                backend.remove_job(host_c.job_id)
                auto_s, auto_c = start(backend, root, image, "auto")
                # The job's second container: same workspace, same range.
                ws = root / auto_c.job_id
                shared_s, shared_c = start(backend, root, image, "auto", auto_c.id_map, ws)
                backend.remove_job(auto_c.job_id)
                backend.remove_job(shared_c.job_id)
                times[(image, "host")].append(host_s)
                times[(image, "auto")].append(auto_s)
                times[(image, "shared")].append(shared_s)
    finally:
        remove_tree(root)

    print(f"container start + first exec, {args.rounds} rounds, interleaved")
    for image in IMAGES:
        base = statistics.median(times[(image, "host")])
        print(image)
        for mode in MODES:
            values = times[(image, mode)]
            ratio = statistics.median(values) / base
            print(f"  {mode:7s} {summary(values, 1000, ' ms')}  ratio {ratio:5.2f}x")


if __name__ == "__main__":
    main()
