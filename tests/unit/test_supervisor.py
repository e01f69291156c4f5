"""The supervisor (``rivet.supervisor``) without the CLI: children started in order and
waited for, a crash reported with the end of the log, the reverse-order stop with its
second SIGTERM and SIGKILL, and the plan ``rivet up`` makes from its settings. The
real server and runner under it: tests/e2e/test_rivet_up.py."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from rivet.errors import ConfigError, RivetError
from rivet.settings import CoreGroup, JobsGroup, RunnerGroup, ServerGroup, SettingError
from rivet.supervisor import ChildSpec, Crashed, LocalPlan, Supervisor

# A child that records each SIGTERM in its log and exits after `limit` of them (0:
# ignores them all); it says "up" once its handler is installed.
CHILD = """
import signal, sys, time
name, limit = sys.argv[1], int(sys.argv[2])
seen = 0
def on_term(signum, frame):
    global seen
    seen += 1
    print(f"{name}: SIGTERM {seen} at {time.monotonic()}", flush=True)
    if limit and seen >= limit:
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print(f"{name}: up", flush=True)
while True:
    time.sleep(0.05)
"""


def spec(tmp_path: Path, name: str, limit: int = 1, **extra: object) -> ChildSpec:
    argv = [sys.executable, "-c", CHILD, name, str(limit)]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return ChildSpec(name, argv, env, tmp_path / f"{name}.log", **extra)  # type: ignore[arg-type]


def up(path: Path) -> bool:
    return path.exists() and ": up" in path.read_text()


def never() -> bool:
    return False


def test_children_start_in_order_and_stop_in_reverse(tmp_path: Path) -> None:
    with Supervisor(never) as supervisor:
        first, second = spec(tmp_path, "first"), spec(tmp_path, "second")
        assert supervisor.start(first, lambda: up(first.log_path), "first child")
        assert supervisor.start(second, lambda: up(second.log_path), "second child")
        children = list(supervisor.children)
    assert [c.exited() for c in children] == [0, 0]
    stopped = {c.name: float(c.log_path.read_text().split(" at ")[1]) for c in children}
    assert stopped["second"] < stopped["first"]
    for child in children:
        assert stat.S_IMODE(child.log_path.stat().st_mode) == 0o600


def test_a_child_that_exits_is_a_crash_with_the_end_of_its_log(tmp_path: Path) -> None:
    crash = ChildSpec(
        "server",
        [sys.executable, "-c", "import sys; print('boom: bad setting'); sys.exit(3)"],
        {"PATH": "/usr/bin:/bin"},
        tmp_path / "server.log",
    )
    with Supervisor(never) as supervisor, pytest.raises(Crashed) as info:
        supervisor.start(crash, never, "server to be ready")
    message = str(info.value)
    assert message.startswith("the server exited with status 3; end of ")
    assert str(tmp_path / "server.log") in message and message.endswith("boom: bad setting")


def test_a_crash_while_watching_stops_the_others(tmp_path: Path) -> None:
    with pytest.raises(Crashed, match="the dies exited with status 5"), Supervisor(never) as sup:
        steady = spec(tmp_path, "steady")
        assert sup.start(steady, lambda: up(steady.log_path), "steady")
        dies = ChildSpec(
            "dies",
            [sys.executable, "-c", "import time, sys; time.sleep(0.3); sys.exit(5)"],
            {"PATH": "/usr/bin:/bin"},
            tmp_path / "dies.log",
        )
        assert sup.start(dies, lambda: True, "dies")
        children = list(sup.children)
        sup.watch(interval=0.05)
    assert all(c.exited() is not None for c in children)


def test_a_child_that_never_gets_ready_times_out(tmp_path: Path) -> None:
    slow = spec(tmp_path, "slow")
    with Supervisor(never, start_timeout=0.5) as supervisor, pytest.raises(RivetError) as info:
        supervisor.start(slow, never, "slow child")
    assert str(info.value) == f"timed out waiting for the slow child; see {slow.log_path}"


def test_a_stop_request_ends_the_wait_and_stops_the_child(tmp_path: Path) -> None:
    asked = time.monotonic() + 0.3
    with Supervisor(lambda: time.monotonic() > asked) as supervisor:
        assert not supervisor.start(spec(tmp_path, "child"), never, "child")
        [child] = supervisor.children
        supervisor.watch()  # returns at once: a stop was asked for
    assert child.exited() == 0


def test_the_second_sigterm_and_then_sigkill(tmp_path: Path) -> None:
    with Supervisor(never) as supervisor:
        drains = spec(tmp_path, "drains", limit=2, second_signal_after=0.3)
        stubborn = spec(tmp_path, "stubborn", limit=0, stop_grace=0.5)
        assert supervisor.start(drains, lambda: up(drains.log_path), "drains")
        assert supervisor.start(stubborn, lambda: up(stubborn.log_path), "stubborn")
        children = {c.name: c for c in supervisor.children}
    assert children["drains"].exited() == 0
    assert children["drains"].log_path.read_text().count("SIGTERM") == 2
    assert children["stubborn"].exited() == -9  # ignored SIGTERM: killed after the grace


def test_a_child_gets_exactly_the_environment_it_is_given(tmp_path: Path) -> None:
    dump = tmp_path / "env.json"
    code = (
        "import json, os, time; "
        f"open({str(dump)!r}, 'w').write(json.dumps(sorted(os.environ))); time.sleep(60)"
    )
    child = ChildSpec("env", [sys.executable, "-c", code], {"ONLY": "this"}, tmp_path / "env.log")
    os.environ["SUPERVISOR_TEST_CANARY"] = "leak"
    try:
        with Supervisor(never) as supervisor:
            assert supervisor.start(child, lambda: dump.exists() and dump.stat().st_size > 0, "env")
    finally:
        del os.environ["SUPERVISOR_TEST_CANARY"]
    names = json.loads(dump.read_text())
    assert "SUPERVISOR_TEST_CANARY" not in names and "ONLY" in names


# --- the plan of `rivet up` ------------------------------------------------------------


def test_the_plan_comes_from_the_settings_chain(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "runner.toml").write_text('concurrency = 3\n[tags]\nos = "file"\n')
    (home / "config").write_text('[server]\nhost = "0.0.0.0"\n')
    env = {"RIVET_HOME": str(home), "RIVET_PORT": "9123"}
    (home / "config").write_text('[server]\nhost = "0.0.0.0"\n[up]\ndrain_seconds = 4\n')
    plan = LocalPlan.from_flags({}, {**env, "RIVET_UP_START_SECONDS": "90"})
    assert (plan.home, plan.host, plan.port, plan.concurrency) == (home, "0.0.0.0", 9123, 3)
    assert (plan.start_seconds, plan.drain_seconds) == (90.0, 4.0)
    assert plan.url == "http://127.0.0.1:9123"
    assert plan.server_argv()[1:] == [
        "-m", "rivet.cli.server", "--host", "0.0.0.0", "--port", "9123", "--home", str(home),
        "--database-url", f"sqlite:///{home / 'rivet.db'}",
    ]  # fmt: skip
    # The runner resolves its file's tags itself; only flags given to `up` are passed.
    assert plan.runner_argv()[1:] == [
        "-m", "rivet.runner", "--server", plan.url, "--config", str(home / "runner.toml"),
        "--concurrency", "3",
    ]  # fmt: skip
    assert plan.settings.runner.tags == {"os": "file"}


def test_flags_given_to_up_are_handed_to_the_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("policy.toml").write_text('[process]\ndenied_binaries = ["curl"]\n')
    flags = {
        CoreGroup.home: Path("home"),
        ServerGroup.host: "::1",
        RunnerGroup.tags: ["os=linux", "arch=x"],
        RunnerGroup.concurrency: 2,
        JobsGroup.policy: Path("policy.toml"),
    }
    plan = LocalPlan.from_flags(flags, {})
    assert plan.home == tmp_path / "home"  # absolute: the children may run elsewhere
    assert plan.url == "http://[::1]:8420"
    argv = plan.runner_argv()
    assert argv[argv.index("--concurrency") + 1] == "2"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--tag"] == ["os=linux", "arch=x"]
    assert argv[argv.index("--policy") + 1] == str(tmp_path / "policy.toml")


def test_a_bad_plan_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = {"RIVET_HOME": str(tmp_path / "home")}
    with pytest.raises(SettingError, match=r"^--port: rivet up needs a port between 1 and 65535"):
        LocalPlan.from_flags({ServerGroup.port: 0}, env)
    bad = tmp_path / "bad.toml"
    bad.write_text("[process]\ndenied_binaries = 'curl'\n")
    with pytest.raises(
        ConfigError, match=r"^.*bad\.toml: process\.denied_binaries: must be a list"
    ):
        LocalPlan.from_flags({JobsGroup.policy: bad}, env)
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read policy file"):
        LocalPlan.from_flags({}, {**env, "RIVET_POLICY": str(tmp_path / "missing.toml")})
    with pytest.raises(SettingError, match=r"^--tag: expected a tag as key=value"):
        LocalPlan.from_flags({RunnerGroup.tags: ["novalue"]}, env)
    with pytest.raises(SettingError, match=r"^RIVET_UP_START_SECONDS: expected a number"):
        LocalPlan.from_flags({}, {**env, "RIVET_UP_START_SECONDS": "soon"})
    assert not (tmp_path / "home").exists()
