"""Real ``rivet`` processes for end-to-end tests and benchmarks: the installed console
script, run with a private environment (its own RIVET_HOME, no stray RIVET_* values)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
from live_rivet import ADMIN_TOKEN, Api, free_port, wait_for

RIVET = Path(sys.executable).with_name("rivet")


def rivet_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    env.update(RIVET_HOME=str(home), NO_COLOR="1", COLUMNS="200", **extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``rivet ARGS`` to completion, with stdin closed (as in CI)."""
    return subprocess.run(
        [str(RIVET), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class RivetProcess:
    """A long-running ``rivet …`` child (or ``program …``, e.g. a Python script that
    runs Rivet's own server code); stdout+stderr collected line by line."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        program: list[str] | None = None,
    ) -> None:
        self.args = args
        self.log_path = log_path
        self.lines: list[str] = []
        self._log = log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [*(program or [str(RIVET)]), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._log.write(line)
            self._log.flush()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_output(self, text: str, timeout: float = 60.0) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None and text not in self.output:
                raise AssertionError(f"rivet {self.args[0]} exited: {self.output[-3000:]}")
            return text in self.output

        wait_for(seen, timeout, f"{text!r} from rivet {' '.join(self.args[:2])}")

    def signal(self, sig: int = signal.SIGINT) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout=5)
        return code

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL; safe to call twice (fixtures call it on failure too)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


def wait_ready(url: str, proc: RivetProcess, timeout: float = 60.0) -> None:
    def ready() -> bool:
        if proc.proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.output[-3000:]}")
        try:
            return httpx.get(f"{url}/api/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, timeout, f"server at {url}")


def open_to_others(root: Path) -> list[str]:
    """Every file or directory under ``root`` (and ``root``) that group or others may
    access, as ``"path mode"``; what a private RIVET_HOME must never contain."""
    found = []
    for path in [root, *sorted(root.rglob("*"))]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {stat.S_IMODE(mode):04o}")
    return found


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (to prove children are gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


class Processes:
    """Long-running rivet children of one test, stopped newest first (runners before
    the server they report to)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[RivetProcess] = []

    def start(
        self, args: list[str], env: dict[str, str], name: str, program: list[str] | None = None
    ) -> RivetProcess:
        proc = RivetProcess(args, env, self.logs / f"{name}.log", program)
        self.started.append(proc)
        return proc

    def start_server(self, home: Path, name: str = "server", **extra: str) -> Rivet:
        """A ``rivet server`` on a free loopback port with ``home`` as RIVET_HOME, the
        tests' admin token and ``extra`` variables, once ``/api/ready`` answers. The
        caller closes the answer's ``api``."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = rivet_env(home, RIVET_SERVER=url, RIVET_ADMIN_TOKEN=ADMIN_TOKEN, **extra)
        wait_ready(url, self.start(["server", "--port", str(port)], env, name))
        return Rivet(url, home, env, Api(url))

    def start_runner(self, env: dict[str, str], *flags: str, name: str = "runner") -> RivetProcess:
        """A ``rivet runner FLAGS`` registered with a fresh one-time token (made with
        the CLI, as a user would), once it logged that it is ready."""
        token = run_cli(["runner", "token", "create", "--quiet"], env)
        assert token.returncode == 0, token.stderr
        runner_env = dict(env, RIVET_REGISTRATION_TOKEN=token.stdout.strip())
        runner = self.start(["runner", *flags], runner_env, name)
        runner.wait_for_output("ready")
        return runner

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()


@dataclass
class Rivet:
    """A running server, its URL and the environment the CLI needs to reach it."""

    url: str
    home: Path
    env: dict[str, str]
    api: Api
