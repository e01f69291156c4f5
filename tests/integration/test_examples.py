"""Every pipeline in examples/ runs green with `rivet run` against the local images,
and prints the lines it is there to show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.podman

RIVET = Path(sys.executable).with_name("rivet")
ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d{3} (?P<stage>\S+)\s+(?P<level>\S+)\s+(?P<message>.*)$"
)

EXAMPLES: dict[str, tuple[list[str], list[tuple[str, str, str]]]] = {
    "hello.lua": (
        ["--input", "name=tester", "--input", "times=2"],
        [
            ("greet", "info", "hello from Lua, tester"),
            ("greet", "info", "hello from a container, tester (1)"),
            ("greet", "info", "hello from a container, tester (2)"),
            ("report", "info", "greeted\ttester"),
        ],
    ),
    "builder.lua": (
        ["--input", "image_name=demo", "--input", "push=yes"],
        [
            ("build", "info", "build log: building demo"),
            ("push", "info", "pushing demo:latest"),
        ],
    ),
    "typed-inputs.lua": (
        ["--input", "environment=staging", "--input", "replicas=2"],
        [
            ("plan", "info", "plan: 2 replica(s) to staging"),
            ("approve-prod", "info", "stage 'approve-prod' skipped: its condition returned false"),
            ("deploy", "info", "stage 'deploy' skipped: its condition returned false"),
            ("dry-run", "warning", "dry run: would deploy stagingx2"),
        ],
    ),
    "containers.lua": (
        [],
        [
            ("prepare", "info", "working directory: /workspace/src/app"),
            ("nested", "info", "Linux"),
            ("exit-codes", "info", "exit code 3 does not fail the stage unless check = true"),
            ("in-debian", "info", 'print("hi from python")'),
        ],
    ),
    "parallel.lua": (
        ["--input", "max=2"],
        [
            ("fan-out", "info", "linux -> built-for-linux"),
            ("fan-out", "info", "darwin -> built-for-darwin"),
            ("fan-out", "info", "windows -> built-for-windows"),
            ("fan-out", "info", "freebsd -> built-for-freebsd"),
        ],
    ),
}


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in (ROOT / "examples").glob("*.lua")) == sorted(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs_green(name: str, podman_available: str, podman_image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    podman_image("localhost/rivet/debian-git:latest")
    args, expected = EXAMPLES[name]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    env |= {"RIVET_HOME": str(tmp_path), "NO_COLOR": "1"}
    proc = subprocess.run(
        [str(RIVET), "run", str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Whitespace is normalised: the terminal renderer expands the tab print() puts between arguments.
    lines = [
        (m["stage"], m["level"], " ".join(m["message"].split()))
        for m in map(LINE.match, proc.stdout.splitlines())
        if m
    ]
    expected = [(stage, level, " ".join(message.split())) for stage, level, message in expected]
    # every expected line, in order
    position = 0
    for want in expected:
        assert want in lines[position:], f"missing {want} after line {position}:\n{proc.stdout}"
        position = lines.index(want, position) + 1
    assert "job succeeded" in proc.stdout


def test_python_project_builds_and_its_wheel_is_used_with_rivet_run(
    podman_available: str,
    podman_image,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """examples/python-project through `rivet run`: --source, tests, wheel, report,
    local artifacts; then the consumer pipeline downloads and runs the wheel."""
    podman_image("localhost/rivet/debian-git:latest")
    project = ROOT / "examples" / "python-project"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    env |= {"RIVET_HOME": str(tmp_path), "NO_COLOR": "1"}

    def run(*args: str) -> str:
        proc = subprocess.run(
            [str(RIVET), "run", *args],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    built = run(str(project / "build.lua"), "--source", str(project))
    assert "source: copied" in built and "Ran 3 tests" in built
    wheels = list((tmp_path / "local-artifacts").glob("*/wheel/files/dist/*.whl"))
    assert [w.name for w in wheels] == ["democalc-0.1.0-py3-none-any.whl"]
    reports = list((tmp_path / "local-artifacts").glob("*/report/files/reports/tests.txt"))
    assert len(reports) == 1 and "OK" in reports[0].read_text()
    used = run(str(project / "use-wheel.lua"))
    assert "installed wheel says: democalc 0.1.0: sum = 42" in " ".join(used.split())
