"""``secret.get`` and secret injection into processes, against real Podman: every way a
job can show a secret value ends as ``***`` before it leaves the executor, and the
job's secret files are gone afterwards."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from recording import EventLog

from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.events import JobResult
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec

pytestmark = pytest.mark.podman

DEBIAN = "localhost/rivet/debian-git:latest"
TOKEN = "tok3n-Val/ue+with=chars"
TRICKY = 'p@ss w/"quote"\\back&x=1'


def everything(result: JobResult, events: EventLog) -> str:
    """All a runner would send: log lines, outputs, stage and job errors."""
    parts = [events.text(), json.dumps(result.outputs), str(result.error)]
    parts += [str(s.error) for s in result.stages + events.stages]
    return "\n".join(parts)


def assert_hidden(blob: str, *values: str) -> None:
    for value in values:
        raw = value.encode()
        for form in (value, base64.b64encode(raw).decode(), raw.hex(), quote(value, safe="")):
            assert form not in blob, f"leaked {form!r}"
        for half in (value[: len(value) // 2], value[len(value) // 2 :]):
            assert half not in blob, f"leaked half {half!r}"


def pipeline(script: str, name: str = "deploy") -> str:
    return (
        f"return pipeline.define({{ name = '{name}', stages = {{\n"
        f"{{ name = 's', container = '{DEBIAN}', script = function()\n{script}\nend }} }} }})"
    )


@pytest.fixture
def run(podman_available: str, podman_image, tmp_path: Path):  # type: ignore[no-untyped-def]
    podman_image(DEBIAN)
    secrets_root = tmp_path / "secrets-root"
    secrets_root.mkdir()

    def go(
        source: str,
        secrets: dict[str, str] | None = None,
        local: bool = False,
        exec_agent: bool = True,
    ) -> tuple[JobResult, EventLog]:
        executor = Executor(
            PodmanBackend(exec_agent=exec_agent),
            ExecutorSettings(workspace_root=tmp_path / "ws", secrets_root=secrets_root),
        )
        events = EventLog()
        spec = JobSpec(
            f"t-{uuid.uuid4().hex[:10]}",
            pipeline(source),
            "t.lua",
            {},
            secrets=secrets if secrets is not None else {"tok": TOKEN, "tricky": TRICKY},
            local_secrets=local,
        )
        result = executor.run(spec, events)
        # hostile: nothing of the job's secret files is left on the host
        assert list(secrets_root.iterdir()) == []
        return result, events

    return go


def test_lua_sees_the_value_but_logs_outputs_and_errors_show_stars(run) -> None:  # type: ignore[no-untyped-def]
    result, events = run(
        """
        local t = secret.get("tok")
        assert(t == "TOKEN", "secret.get returned the wrong value")
        assert(secret.has("tok") and not secret.has("nope"))
        log.info("token is " .. t)
        print("printed", t)
        log.warning(string.format("%q", t))
        output.set("leak", "x" .. t .. "y")
        output.set("tricky", secret.get("tricky"))
        error("failing with " .. t)
        """.replace("TOKEN", TOKEN)
    )
    assert result.status == "failed"
    text = events.text()
    assert "token is ***" in text and "printed\t***" in text
    assert result.outputs == {"leak": "x***y", "tricky": "***"}
    assert result.error is not None and "failing with ***" in result.error
    assert_hidden(everything(result, events), TOKEN, TRICKY)


def test_process_output_plain_encoded_and_split_is_redacted(run) -> None:  # type: ignore[no-untyped-def]
    encoded = {"url": quote(TRICKY, safe=""), "json": json.dumps(TRICKY)[1:-1]}
    script = f"""
    local sh = function(cmd) return process.run({{ "bash", "-c", cmd, secrets = {{ TOKEN = "tok" }} }}) end
    sh('echo "plain: $TOKEN"')
    sh('echo -n "$TOKEN" | base64')
    sh('printf "b64url: %s\\\\n" "$(printf %s "$TOKEN" | base64 | tr "+/" "-_")"')
    sh('printf "embedded: %s\\\\n" "$(printf "xy%s!" "$TOKEN" | base64)"')
    sh('printf "%s\\\\n%s\\\\n" "${{TOKEN:0:11}}" "${{TOKEN:11}}"')
    sh('printf "hex: %s\\\\n" "$(printf %s "$TOKEN" | od -An -tx1 | tr -d " \\\\n")"')
    sh('echo "stderr: $TOKEN" >&2')
    sh('env | grep TOKEN')
    sh('echo "$TOKEN"; echo; echo "nothing secret here"')
    process.run({{ "echo", {json.dumps(encoded["url"])} }})
    process.run({{ "echo", {json.dumps(encoded["json"])} }})
    local out = process.run({{ "bash", "-c", 'printf "%s\\\\n%s\\\\n" "${{TOKEN:0:5}}" "${{TOKEN:5}}"',
                               secrets = {{ TOKEN = "tok" }}, capture_stdout = true }}).stdout
    log.info(out)
    output.set("captured", out)
    """
    result, events = run(script)
    assert result.status == "succeeded", result.error
    text = events.text()
    assert "plain: ***" in text
    assert "stderr: ***" in text and "TOKEN=***" in text
    assert "b64url: ***" in text
    assert "hex: ***" in text
    # the two halves printed on two lines: both masked
    assert "***\n***" in text
    assert_hidden(everything(result, events), TOKEN, TRICKY)
    embedded = [line for line in text.splitlines() if line.startswith("embedded: ")]
    assert embedded and "***" in embedded[0]
    assert "nothing secret here" in text  # masks the secret, not whole lines


def test_secret_env_is_never_on_a_command_line(run, exec_agent: bool) -> None:  # type: ignore[no-untyped-def]
    """While the process runs, no host process has the value in its argv: podman gets
    it through its environment (``--env TOKEN`` without a value), the exec agent over
    its pipe."""
    seen: list[str] = []
    on_a_command_line: list[str] = []
    stop = threading.Event()

    def ours(pid: str, cmdline: str) -> bool:
        if "RIVET_EXEC_ID" in cmdline and "sleep" in cmdline:
            return True  # podman exec ... --env RIVET_EXEC_ID=... sleep 1.5
        if cmdline != "sleep\x001.5\x00":
            return False
        try:  # the command itself, started by the agent
            return b"RIVET_EXEC_ID=" in Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return False

    def scan() -> None:
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                if TOKEN in cmdline:
                    on_a_command_line.append(cmdline)
                if ours(pid, cmdline):
                    seen.append(cmdline.replace("\0", " "))
            time.sleep(0.05)

    scanner = threading.Thread(target=scan, daemon=True)
    scanner.start()
    try:
        result, _ = run(
            'process.run({ "sleep", "1.5", secrets = { TOKEN = "tok" } })', exec_agent=exec_agent
        )
    finally:
        stop.set()
        scanner.join()
    assert result.status == "succeeded", result.error
    assert seen, "the command's process was never seen"
    assert on_a_command_line == []
    if not exec_agent:
        assert any("--env TOKEN " in cmdline for cmdline in seen)


def test_secret_files_are_private_read_only_outside_the_workspace(run) -> None:  # type: ignore[no-untyped-def]
    script = """
    local r = process.run({ "sh", "-c",
      'cat "$RIVET_SECRETS_DIR/token.txt"; echo; stat -c "%a %n" /run/rivet/secrets /run/rivet/secrets/token.txt',
      secret_files = { ["token.txt"] = "tok" } })
    local w = process.run({ "sh", "-c", 'echo x > /run/rivet/secrets/new 2>&1; echo x > /run/rivet/secrets/token.txt' })
    output.set("write_exit", w.exit_code)
    local found = process.run({ "sh", "-c", 'grep -rl "$0" /workspace; true', "TOKEN", capture_stdout = true })
    output.set("in_workspace", found.stdout)
    """.replace("TOKEN", TOKEN)
    result, events = run(script)
    assert result.status == "succeeded", result.error
    text = events.text()
    assert "***" in text
    assert "700 /run/rivet/secrets" in text and "400 /run/rivet/secrets/token.txt" in text
    assert result.outputs["write_exit"] != 0  # mounted read-only
    assert result.outputs["in_workspace"] == ""
    assert_hidden(everything(result, events), TOKEN)


def test_ungranted_secrets_fail_with_a_clear_error(run) -> None:  # type: ignore[no-untyped-def]
    result, _ = run('local v = secret.get("deploy_key")\nlog.info(v)')
    assert result.status == "failed"
    assert "secret.get: secret 'deploy_key' is not granted to pipeline 'deploy'" in str(
        result.error
    )
    assert "rivet secret grant deploy_key deploy" in str(result.error)

    result, _ = run('process.run({ "true", secrets = { KEY = "deploy_key" } })')
    assert "process.run: secrets.KEY: secret 'deploy_key' is not granted" in str(result.error)
    result, _ = run('process.run({ "true", secret_files = { ["k"] = "deploy_key" } })')
    assert "process.run: secret_files['k']: secret 'deploy_key' is not granted" in str(result.error)

    result, _ = run('secret.get("nope")', local=True)
    assert "secret.get: secret 'nope' is not available (rivet run: set RIVET_SECRET_nope" in str(
        result.error
    )
    result, _ = run('secret.get("tok")', secrets={})
    assert "is not granted to pipeline 'deploy'" in str(result.error)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ('secrets = { PATH = "tok" }', "secrets: 'PATH' cannot hold a secret"),
        ('secrets = { LD_PRELOAD = "tok" }', "secrets: 'LD_PRELOAD' cannot hold a secret"),
        ('secrets = { ["A-B"] = "tok" }', "secrets: invalid environment variable name 'A-B'"),
        ('secrets = { ["T*"] = "tok" }', "secrets: invalid environment variable name 'T*'"),
        ('secrets = { T = "tok" }, env = { T = "x" }', "secrets.T: also set in 'env'"),
        ("secrets = { T = 1 }", "secrets.T: expected the name of a secret"),
        ('secrets = "tok"', "option 'secrets' must be a table"),
        ('secret_files = { ["../escape"] = "tok" }', "invalid secret file name '../escape'"),
        ('secret_files = { ["a/b"] = "tok" }', "invalid secret file name 'a/b'"),
    ],
)
def test_bad_secret_options_are_refused_before_anything_runs(
    run, option: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    result, _ = run(f'process.run({{ "true", {option} }})')
    assert result.status == "failed"
    assert message in str(result.error)


NASTY = 'it\'s a "q" $HOME \\ bäck-slash'


def assert_no_four_chars_of(blob: str, value: str) -> None:
    for source in (value, repr(value)[1:-1], ascii(value)[1:-1]):
        for i in range(len(source) - 3):
            assert source[i : i + 4] not in blob, f"{source[i : i + 4]!r} of {value!r} shows"


def test_quoting_and_control_characters_never_reveal_a_secret(run) -> None:  # type: ignore[no-untyped-def]
    """A secret with quotes, spaces, ``$``, a backslash and non-ASCII letters: in the
    shell-quoted ``$ cmd`` line, in ``check = true`` errors, in Rivet's ``{x!r}``
    messages, printed around ``\\r`` and an escape sequence by a progress bar, and in
    a multi-line log message. Every form is masked; no 4 characters show."""
    script = r"""
    local t = secret.get("nasty")
    process.run({ "true", t, "--flag=" .. t })
    local ok, e = pcall(function() local r = process.run({ "sh", "-c", "exit 3", t, check = true }) end)
    log.info("check: " .. e)
    ok, e = pcall(function() local r = process.run({ "true", cwd = t }) end)
    log.info("cwd: " .. e)
    ok, e = pcall(function() local r = fs.read(t) end)
    log.info("fs: " .. e)
    local sh = function(cmd) process.run({ "bash", "-c", cmd, secrets = { T = "nasty" } }) end
    sh('printf "progress %s\r%s done\n" "${T:0:5}" "${T:5}"')
    sh('printf "%s\\033[2K%s\n" "${T:0:3}" "${T:3}"')
    sh('printf "%s" "${T:0:6}"; sleep 0.2; printf "\r%s 100%%\n" "${T:6}"')
    log.info("multi\n" .. t .. "\rline")
    process.run({ "sh", "-c", "exit 4", t, check = true })
    """
    result, events = run(script, secrets={"nasty": NASTY})
    assert result.status == "failed"
    debug = [e.message for e in events.lines if e.level == "debug"]
    assert "$ true '***' '--flag=***'" in debug
    text = events.text()
    assert "check: t.lua:6: process.run: 'sh -c 'exit 3' '***'' exited with code 3" in text
    # A \r is a line break for the log (one line each side), an escape sequence stays.
    assert "progress ***\n*** done" in text and "***\x1b[2K***" in text
    assert "***\n*** 100%" in text
    assert "multi\n***\nline" in text  # three log lines, the value masked
    assert "exited with code 4" in str(result.error)
    blob = everything(result, events)
    assert_hidden(blob, NASTY)
    assert_no_four_chars_of(blob, NASTY)
