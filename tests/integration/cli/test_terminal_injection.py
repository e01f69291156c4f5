"""Hostile text from jobs, pipeline files and the server never drives the user's
terminal: a real ``rivet server``, a pipeline whose description, inputs and image
carry escape sequences (its name, tags and plugins rich markup), a runner (played
through the runner API) whose name, tags, log lines, stage errors, outputs and job
error carry them too, and every command that shows them, read as the user sees it:
in-process (CliRunner), as the console script, and under a pseudo-terminal where
rich writes colour.

Names (pipelines, stages, runners, tags, plugins, grants) may not hold control,
format or bidi characters, and pipeline names no '/': each is refused where a name
is made (test_hostile_names_are_refused_where_names_are_made). Rows an older Rivet
stored with such names must still show inert: that runner and the pipelines of
test_pipelines_stored_before_the_name_rule_stay_readable_and_inert and
test_rivet_runner_log_is_inert are written straight into the server's database
(``older_rivet``).

Hostile: OSC 0 (window title), OSC 52 (clipboard), ``ESC [ 2J`` (clear screen),
``ESC [ 1A ESC [ 2K`` (erase the line above), a bare CR, SGR 8 (conceal; rich never
writes it), a bidi override, the C1 CSI ``U+009B``, rich markup, and a message with a
newline followed by a forged log line.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import Result

from rivet.cli import common
from rivet.cli.terminal import visible

Cli = Callable[..., Result]
RIVET = Path(sys.executable).with_name("rivet")

PARTS = {
    "title": "\x1b]0;pwned\x07",
    "clipboard": "\x1b]52;c;cHduZWQ=\x07",
    "clear": "\x1b[2J",
    "erase": "\x1b[1A\x1b[2K",
    "cr": "\roverwritten",
    "conceal": "\x1b[8m",
    "bidi": "\u202eexe.txt",
    "c1": "\x9b31m",
    "markup": "[bold red]markup[/bold red]",
}
FORGED = "ok\n12:00:00.000 deploy  info    forged"
EVIL = "<" + " ".join(PARTS.values()) + ">"
# What a name may still hold that a terminal would act on if printed raw: rich markup
# (without '/', which pipeline names may not hold).
NAME_MARKUP = "[bold red]markup"
# How the user sees each part: escaped, markup printed literally.
SHOWN = [visible(p) for p in PARTS.values()]
BIDI_CHARS = {*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029}
SGR = re.compile(r"\x1b\[[0-9;]*m")
LOG_LINE = re.compile(
    r"^(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d{3} (build|deploy|job)\s+(info|warning|error)\s+\S"
)


def lua(text: str) -> str:
    """A Lua string literal of ``text`` (every byte that is not printable ASCII as \\ddd)."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def assert_inert(output: str, *, pty: bool = False, colour: bool = False) -> None:
    """No character that acts on a terminal reached the output. From a ``pty``, line
    ends are CR LF (the terminal's own translation); with ``colour``, rich's own SGR
    sequences are allowed (and required: they prove rich saw a terminal)."""
    if pty:
        output = output.replace("\r\n", "\n")
    if colour:
        assert SGR.search(output), f"no colour, so rich did not see a terminal: {output!r}"
        output = SGR.sub("", output)
    assert "\x1b" not in output, f"raw ESC in {output!r}"
    for char in output:
        code = ord(char)
        assert not (code < 0x20 and char not in "\n\t"), f"raw {char!r} in {output!r}"
        assert not 0x7F <= code <= 0x9F, f"raw {char!r} in {output!r}"
        assert code not in BIDI_CHARS, f"raw {char!r} in {output!r}"
    assert not re.search(r"^12:00:00\.000", output, re.M), f"forged log line in {output!r}"


def assert_shown(output: str, *fragments: str) -> None:
    for fragment in fragments or SHOWN:
        assert fragment in output, f"{fragment!r} not shown in {output!r}"


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables wide enough that no cell is folded in the middle of an escape."""
    monkeypatch.setenv("COLUMNS", "3000")


@pytest.fixture
def evil(cli: Cli, tmp_path: Path, wide: None) -> dict[str, str]:
    """A pipeline full of hostile text, created with ``pipeline create``: name, ref (id
    prefix), lane, path."""
    lane = uuid.uuid4().hex
    name = f"evil-{lane[:8]}{NAME_MARKUP}"
    path = tmp_path / "evil.lua"
    path.write_text(
        # The long comment carries the raw bytes, for `pipeline show --source`.
        f"""--[[ {EVIL} ]]
return pipeline.define({{
  name = {lua(name)},
  description = {lua(EVIL + " " + FORGED)},
  inputs = {{
    target = {{ type = "string", description = {lua(EVIL)}, options = {{ {lua(EVIL)}, "plain" }} }},
    level = {{ type = "string", default = {lua(EVIL)} }},
  }},
  runner = {{ {{ key = "lane", value = "{lane}" }}, {{ key = "where", value = {lua(NAME_MARKUP)} }} }},
  plugins = {{ {lua("plug" + NAME_MARKUP)} }},
  stages = {{
    {{ name = "build", script = function() end }},
    {{ name = "deploy", container = {lua("img" + EVIL)}, script = function() end }},
  }},
}})
""",
        encoding="utf-8",
    )
    created = cli(["pipeline", "create", str(path)])
    assert created.exit_code == 0, created.output
    assert_inert(created.output)
    assert_shown(created.stdout, visible(name))
    match = re.search(r"\(id ([0-9a-f]{8})\)", created.stdout)
    assert match, created.stdout
    return {"name": name, "ref": match.group(1), "lane": lane, "path": str(path)}


def play(runner: Any) -> None:
    """One job, told with hostile text everywhere a runner reports text."""
    runner.claim()
    runner.stage("build", "running")
    runner.log(1, "build", EVIL)
    runner.log(2, "build", FORGED)
    runner.log(3, None, EVIL, "warning")
    runner.stage("build", "succeeded")
    runner.stage("deploy", "running")
    runner.log(4, "deploy", FORGED, "error")
    runner.stage("deploy", "failed", error=f"deploy failed: {EVIL} {FORGED}")
    runner.complete("failed", f"job failed: {EVIL} {FORGED}", **{f"key{EVIL}": f"{EVIL} {FORGED}"})


def hostile_runner(older_rivet: Any, evil: dict[str, str]) -> Any:
    """A runner registered before the name rule: escapes in its name, a tag and a
    plugin, which registration now refuses."""
    return older_rivet.runner(
        evil["lane"],
        name=f"runner{EVIL}",
        tags={"where": NAME_MARKUP, "hostile": EVIL},
        plugins=["plug" + NAME_MARKUP, "plug" + EVIL],
    )


def launch(cli: Cli, evil: dict[str, str], *extra: str) -> Result:
    return cli(["job", "launch", evil["ref"], "-i", f"target={EVIL}", *extra])


def job_id_of(result: Result) -> str:
    assert result.exit_code == 0, result.output
    match = re.search(r"launched job ([0-9a-f]{32})", result.stdout)
    assert match, result.stdout
    return match.group(1)


def test_pipeline_commands(cli: Cli, evil: dict[str, str]) -> None:
    name, ref = evil["name"], evil["ref"]
    for args in (
        ["pipeline", "list"],
        ["pipeline", "show", ref],
        ["pipeline", "versions", ref],
    ):
        result = cli(args)
        assert result.exit_code == 0, result.output
        assert_inert(result.output)
        assert_shown(result.stdout)
    shown = cli(["pipeline", "show", ref]).stdout
    assert f"plug{visible(NAME_MARKUP)}" in shown and f"img{visible(EVIL)}" in shown
    assert f"where={visible(NAME_MARKUP)}" in shown and visible(name) in shown
    assert visible(FORGED) in shown  # the description's newline, escaped

    for args in (["pipeline", "list", "--json"], ["pipeline", "show", ref, "--json"]):
        result = cli(args)
        assert_inert(result.stdout)
        assert json.loads(result.stdout)
    data = json.loads(cli(["pipeline", "show", ref, "--json"]).stdout)
    assert data["name"] == name and data["description"] == f"{EVIL} {FORGED}"
    versions = json.loads(cli(["pipeline", "versions", ref, "--json"]).stdout)
    inputs = {i["name"]: i for i in versions[0]["definition"]["inputs"]}
    assert inputs["target"]["description"] == EVIL and inputs["level"]["default"] == EVIL

    # --source into a pipe (CliRunner): the stored source, exactly the file's bytes
    # (`pipeline create` sends the lone CR as it is).
    source = cli(["pipeline", "show", ref, "--source"]).stdout
    assert source == read_exactly(evil["path"])
    assert PARTS["title"] in source and PARTS["clear"] in source and PARTS["cr"] in source


def test_job_commands_show_a_hostile_job_inert(
    cli: Cli, evil: dict[str, str], older_rivet: Any
) -> None:
    runner = hostile_runner(older_rivet, evil)
    launched = launch(cli, evil)
    job_id = job_id_of(launched)
    assert_inert(launched.output)
    play(runner)

    logs = cli(["job", "logs", job_id])
    assert logs.exit_code == 0
    assert_inert(logs.output)
    assert_shown(logs.stdout)
    # Every line is a real log line: the newline of a message never starts one.
    lines = logs.stdout.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), lines
    assert re.search(r"^\S+ build\s+info\s+" + re.escape(visible(FORGED)) + "$", logs.stdout, re.M)

    for args in (["job", "logs", job_id, "--follow"], ["job", "show", job_id], ["job", "list"]):
        result = cli(args)
        assert_inert(result.output)
        assert_shown(result.stdout)
    followed = cli(["job", "logs", job_id, "--follow"])
    assert followed.exit_code == 1
    assert f"deploy failed: {visible(EVIL)}" in followed.stdout
    assert f"job failed: {visible(EVIL)} {visible(FORGED)}" in followed.stdout
    shown = cli(["job", "show", job_id]).stdout
    assert f"runner{visible(EVIL)}" in shown and f"key{visible(EVIL)}" in shown
    assert visible(EVIL) in cli(["job", "list", "--pipeline", evil["name"]]).stdout

    as_json = cli(["job", "show", job_id, "--json"]).stdout
    assert_inert(as_json)
    data = json.loads(as_json)
    assert data["error"] == f"job failed: {EVIL} {FORGED}"
    assert data["outputs"] == {f"key{EVIL}": f"{EVIL} {FORGED}"}
    assert data["inputs"]["target"] == EVIL
    assert json.loads(cli(["job", "list", "--json"]).stdout)["jobs"][0]["runner"] == (
        f"runner{EVIL}"
    )

    runners = cli(["runner", "list"])
    assert runners.exit_code == 0
    assert_inert(runners.output)
    assert f"runner{visible(EVIL)}" in runners.stdout
    assert f"hostile={visible(EVIL)}" in runners.stdout and f"plug{visible(EVIL)}" in runners.stdout


def test_launch_follow(cli: Cli, evil: dict[str, str], older_rivet: Any) -> None:
    runner = hostile_runner(older_rivet, evil)
    player = threading.Thread(target=play, args=(runner,))
    player.start()
    try:
        followed = launch(cli, evil, "--follow")
    finally:
        player.join()
    assert followed.exit_code == 1, followed.output
    assert_inert(followed.output)
    assert_shown(followed.stdout)
    assert f"job failed: {visible(EVIL)}" in followed.stdout.splitlines()[-1]


def test_launch_prompts_show_the_pipeline_inert(
    cli: Cli, evil: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, a missing input is asked for with its description and options."""
    monkeypatch.setattr(common, "is_interactive", lambda: True)
    result = cli(["job", "launch", evil["ref"]], input="nope\nplain\n")
    job_id_of(result)
    assert_inert(result.output)
    assert f"input target (string, required): {visible(EVIL)}" in result.stderr
    assert f"options: {visible(EVIL)}, plain" in result.stderr
    assert "invalid: " in result.stderr  # "nope" was refused, naming the options


def test_server_errors_and_definition_errors(
    cli: Cli, evil: dict[str, str], tmp_path: Path
) -> None:
    # The server names the unknown input in its answer.
    unknown_input = f"x{EVIL}".replace("=", "")  # --input splits at the first "="
    bad_input = cli(["job", "launch", evil["ref"], "-i", f"{unknown_input}=1"])
    assert bad_input.exit_code == 2
    assert_inert(bad_input.output)
    assert f"{visible(unknown_input)}: unknown input" in bad_input.stderr
    # ... and an unknown pipeline.
    unknown = cli(["pipeline", "show", f"nope{PARTS['title']}{PARTS['bidi']}\n{FORGED}"])
    assert unknown.exit_code == 1
    assert_inert(unknown.output)
    assert unknown.stderr.startswith("error: no pipeline"), unknown.stderr
    assert all(line.startswith("error: ") for line in unknown.stderr.splitlines())
    # Definition errors from the server, one line each.
    broken = tmp_path / "broken.lua"
    broken.write_text(
        f"return pipeline.define({{ name = {lua(EVIL)}, stages = {{"
        f" {{ name = {lua('bad' + EVIL)}, script = function() end }},"
        f" {{ name = 'x', script = {lua(FORGED)} }} }} }})\n",
        encoding="utf-8",
    )
    created = cli(["pipeline", "create", str(broken)])
    assert created.exit_code == 1
    assert_inert(created.output)
    problems = created.stderr.splitlines()
    assert len(problems) == 3, problems
    assert "broken.lua:1: name: contains '/'; a pipeline name has" in problems[0]
    assert f"stages[1].name: must match [A-Za-z0-9_.-]+, got 'bad{visible(EVIL)}'" in problems[1]


def test_secret_commands(cli: Cli, evil: dict[str, str]) -> None:
    """The server refuses control, format and bidi characters in grant names (its
    error is shown inert); a grant with markup, which it accepts, is shown escaped."""
    name = f"S_{uuid.uuid4().hex[:8]}"
    grant = f"g-{uuid.uuid4().hex[:6]}-{NAME_MARKUP}"
    made = cli(["secret", "set", name, "--grant", grant], input="s3cret-value\n")
    assert made.exit_code == 0, made.output
    granted = cli(["secret", "grant", name, evil["name"]])
    assert granted.exit_code == 0, granted.output
    listed = cli(["secret", "list"])
    for result in (made, granted, listed):
        assert_inert(result.output)
        assert visible(grant) in result.stdout
    assert visible(evil["name"]) in listed.stdout
    for hostile in (EVIL, "\u202etxt.exe", "g\u2066x\u2069", "zero\u200bwidth", "bom\ufeff"):
        refused = cli(["secret", "grant", name, hostile])
        assert refused.exit_code == 2, refused.output  # the server: 422 invalid_request
        assert_inert(refused.output)
        assert refused.stderr.startswith("error: invalid pipeline name"), refused.stderr
        assert "a pipeline name has 1 to 200 characters" in refused.stderr
        with_grant = cli(["secret", "set", name, "--grant", hostile], input="s3cret-value\n")
        assert with_grant.exit_code == 2 and "invalid pipeline name" in with_grant.stderr
        assert_inert(with_grant.output)
    assert cli(["secret", "list"]).stdout == listed.stdout  # nothing was stored


# --- names: refused where they are made, shown inert where older rows hold them ----------


def test_hostile_names_are_refused_where_names_are_made(
    cli: Cli, rivet_server: Any, tmp_path: Path, wide: None
) -> None:
    """Escapes, bidi controls and '/' in a pipeline's name, control characters in a
    stage's, a tag's or a plugin's: ``rivet check``, ``rivet run`` and ``pipeline
    create`` refuse them, one inert line each naming the field and the rule, and
    nothing is stored. A runner cannot register (or be given) such a name, tag or
    plugin: 422 naming the field, the registration token left unused."""
    path = tmp_path / "names.lua"
    path.write_text(
        f"""return pipeline.define({{
  name = {lua("names" + EVIL)},
  runner = {{ {{ key = {lua("k" + PARTS["bidi"])}, value = {lua("v" + PARTS["title"])} }} }},
  plugins = {{ {lua("plug" + PARTS["c1"])} }},
  stages = {{ {{ name = "build\\n", script = function() end }} }},
}})
""",
        encoding="utf-8",
    )
    expected = [
        f"{path}:1: name: contains '/'; a pipeline name has 1 to 200 characters, no '/', "
        "no control, format or bidi characters",
        "runner[1].key: contains U+202E (RIGHT-TO-LEFT OVERRIDE) at character 2: names may "
        "not hold control, format or bidi characters",
        "runner[1].value: contains U+001B (a control character) at character 2",
        "plugins[1]: contains U+009B (a control character) at character 5",
        "stages[1].name: must match [A-Za-z0-9_.-]+, got 'build\\n'",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    env["RIVET_HOME"] = str(tmp_path / "run-home")
    checked = rivet_check(str(path))
    ran = run_piped([str(RIVET), "run", str(path)], env)
    created = cli(["pipeline", "create", str(path)])
    for name, code, output, lines in (
        ("check", checked.returncode, checked.stdout + checked.stderr, checked.stdout),
        ("run", ran.returncode, ran.stdout + ran.stderr, ran.stderr),
        ("create", created.exit_code, created.output, created.stderr),
    ):
        assert code == 1, (name, output)
        assert_inert(output)
        problems = lines.splitlines()
        assert len(problems) == len(expected), (name, problems)
        for problem, fragment in zip(problems, expected, strict=True):
            assert fragment in problem, (name, fragment, problem)
    listed = json.loads(cli(["pipeline", "list", "--all", "--json"]).stdout)["pipelines"]
    assert not [p for p in listed if p["name"].startswith("names<")]

    with httpx.Client(base_url=rivet_server.url, timeout=30) as http:
        token = http.post("/api/runner-tokens", headers=rivet_server.admin, json={}).json()
        for field, registration in (
            ("name", {"name": f"runner{EVIL}"}),
            ("tags", {"tags": {"os": "linux" + PARTS["bidi"]}}),
            ("tags", {"tags": {"os" + PARTS["title"]: "linux"}}),
            ("tags", {"tags": {"os": "zero\u200bwidth"}}),
            ("plugins", {"plugins": ["git" + PARTS["c1"]]}),
        ):
            body = {"registration_token": token["token"], "name": "clean", **registration}
            answer = http.post("/api/runners/register", json=body)
            assert answer.status_code == 422, answer.text
            error = answer.json()["error"]
            assert error["code"] == "invalid_request"
            assert error["details"][0]["loc"][:2] == ["body", field], error
            assert "names may not hold control, format or bidi characters" in error["message"]
        # Nothing was consumed: the same token registers a runner with clean names.
        body = {"registration_token": token["token"], "name": f"runner{PARTS['markup']}"}
        registered = http.post("/api/runners/register", json=body)
        assert registered.status_code == 200, registered.text
        runner_id = registered.json()["runner_id"]
    set_tags = cli(["runner", "set-tags", runner_id, f"os=linux{PARTS['bidi']}"])
    assert set_tags.exit_code == 2, set_tags.output
    assert_inert(set_tags.output)
    assert "contains U+202E (RIGHT-TO-LEFT OVERRIDE)" in set_tags.stderr
    # `rivet runner` refuses its own settings (exit 2) before it contacts the server.
    for flags, fragment in (
        (["--name", f"runner{EVIL}"], "the runner name"),
        (["--tag", f"os=linux{PARTS['bidi']}"], "tag 'os': the value contains U+202E"),
    ):
        argv = [str(RIVET), "runner", "--server", rivet_server.url, *flags]
        started = run_piped([*argv, "--registration-token", "unused"], env)
        assert started.returncode == 2, started.stdout + started.stderr
        assert_inert(started.stdout + started.stderr)
        assert fragment in started.stderr and "names may not hold" in started.stderr


def test_pipelines_stored_before_the_name_rule_stay_readable_and_inert(
    cli: Cli, older_rivet: Any, wide: None
) -> None:
    """Pipelines an older Rivet stored with escapes in their names, tags and plugins:
    listed, shown and launched (by id, and by name when the name has no '/'), every
    name shown escaped."""
    lane = uuid.uuid4().hex
    slashed = older_rivet.pipeline(
        f"""return pipeline.define({{
  name = {lua(f"legacy-{lane[:8]}{EVIL}")},
  runner = {{ {{ key = "lane", value = "{lane}" }}, {{ key = "where", value = {lua(EVIL)} }} }},
  plugins = {{ {lua("plug" + EVIL)} }},
  stages = {{ {{ name = "build", script = function() end }} }},
}})
"""
    )
    plain_name = f"legacy-{lane[:8]}{PARTS['title']}{PARTS['bidi']}{PARTS['c1']}"
    plain = older_rivet.pipeline(
        f"return pipeline.define({{ name = {lua(plain_name)},"
        f" runner = {{ {{ key = 'lane', value = '{lane}' }} }},"  # left queued: no runner
        " stages = {{ name = 'build', script = function() end }} })\n"
    )
    assert (slashed.name, plain.name) == (f"legacy-{lane[:8]}{EVIL}", plain_name)
    listed = cli(["pipeline", "list"])
    assert listed.exit_code == 0, listed.output
    shown = cli(["pipeline", "show", slashed.id[:8]])
    versions = cli(["pipeline", "versions", slashed.id[:8]])
    by_name = cli(["pipeline", "show", plain_name])
    for result in (listed, shown, versions, by_name):
        assert result.exit_code == 0, result.output
        assert_inert(result.output)
    assert visible(slashed.name) in listed.stdout and visible(plain_name) in listed.stdout
    assert visible(slashed.name) in shown.stdout and f"where={visible(EVIL)}" in shown.stdout
    assert f"plug{visible(EVIL)}" in shown.stdout and visible(plain_name) in by_name.stdout
    data = json.loads(cli(["pipeline", "show", plain_name, "--json"]).stdout)
    assert data["name"] == plain_name and data["id"] == plain.id

    for ref, name in ((slashed.id[:8], slashed.name), (plain_name, plain_name)):
        launched = cli(["job", "launch", ref])
        job_id = job_id_of(launched)
        assert_inert(launched.output)
        for args in (["job", "show", job_id], ["job", "list", "--pipeline", name]):
            result = cli(args)
            assert result.exit_code == 0, result.output
            assert_inert(result.output)
            assert visible(name) in result.stdout, (args, result.stdout)
        assert json.loads(cli(["job", "show", job_id, "--json"]).stdout)["pipeline"] == name


# --- the console script, and under a pseudo-terminal ---------------------------------------


def run_in_pty(
    argv: Sequence[str], env: dict[str, str], columns: int = 80, timeout: float = 60
) -> str:
    """Run ``argv`` with stdin, stdout and stderr on a new pty of ``columns`` columns;
    everything it wrote."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(
        list(argv), stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError as exc:  # EIO: the child closed its end
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            chunks.append(chunk)
        else:
            raise AssertionError(f"{argv} did not finish within {timeout} s")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    return b"".join(chunks).decode("utf-8")


def test_console_script_under_a_pty_and_a_pipe(
    cli: Cli, evil: dict[str, str], older_rivet: Any, rivet_server: Any
) -> None:
    runner = hostile_runner(older_rivet, evil)
    job_id = job_id_of(launch(cli, evil))
    play(runner)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES"):
        env.pop(name, None)
    env.update(
        RIVET_SERVER=rivet_server.url, RIVET_HOME=str(rivet_server.home), TERM="xterm-256color"
    )
    commands = [
        ["job", "logs", job_id],
        ["job", "logs", job_id, "--follow"],
        ["job", "show", job_id],
        ["job", "list"],
        ["pipeline", "show", evil["ref"]],
        ["pipeline", "list"],
        ["runner", "list"],
        ["pipeline", "show", evil["ref"], "--source"],
        ["job", "launch", evil["ref"], "-i", f"x{PARTS['title']}=1"],  # a server error
    ]
    for args in commands:
        output = run_in_pty([str(RIVET), *args], env, columns=2000)
        assert_inert(output, pty=True, colour="--source" not in args)
        assert visible(PARTS["title"]) in output, (args, output)
        if args[:2] in (["job", "show"], ["job", "list"]):  # folded into 80 columns
            assert_inert(run_in_pty([str(RIVET), *args], env), pty=True, colour=True)
        if args[:2] in (["job", "logs"], ["job", "show"], ["job", "launch"]):
            piped = run_piped([str(RIVET), *args], env)  # CliRunner covers the others
            assert_inert(piped.stdout + piped.stderr)
            assert "Traceback" not in piped.stderr


def run_piped(
    argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``argv`` with stdout and stderr into pipes, decoded without newline translation
    (``text=True`` would turn a bare CR into a line break and hide it)."""
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
    )


def rivet_check(*args: str) -> subprocess.CompletedProcess[str]:
    return run_piped([str(RIVET), "check", *args])


def test_rivet_check_errors_and_warnings(tmp_path: Path) -> None:
    broken = tmp_path / "broken.lua"
    broken.write_text(
        f"return pipeline.define({{ name = 'b', inputs = {{ x = {{ type = {lua(EVIL)} }} }},"
        f" stages = {{ {{ name = {lua('bad' + FORGED)}, script = function() end }} }} }})\n",
        encoding="utf-8",
    )
    raising = tmp_path / "raising.lua"
    raising.write_text(f"error({lua(EVIL + ' ' + FORGED)})\n", encoding="utf-8")
    warned = tmp_path / "warned.lua"
    warned.write_text(
        f"return pipeline.define({{ name = 'w', plugins = {{ {lua('plug' + NAME_MARKUP)} }},"
        " stages = {{ name = 'a', script = function() end }} })\n",
        encoding="utf-8",
    )
    proc = rivet_check(str(broken), str(raising), str(warned))
    assert proc.returncode == 1
    assert_inert(proc.stdout + proc.stderr)
    lines = proc.stdout.splitlines()
    assert len(lines) == 5, lines  # 2 problems, 1 error, ok, 1 warning: one line each
    assert_shown(proc.stdout)
    assert visible(FORGED) in lines[1] and visible(FORGED) in lines[2]
    assert f"plugin 'plug{visible(NAME_MARKUP)}' is not known" in lines[4], lines[4]
    as_json = rivet_check("--json", str(raising), str(warned))
    assert_inert(as_json.stdout + as_json.stderr)
    documents = json.loads(as_json.stdout)
    assert documents[1]["plugins"] == ["plug" + NAME_MARKUP]


@pytest.mark.podman
def test_rivet_run_with_hostile_process_output(podman_available: str, tmp_path: Path) -> None:
    """``rivet run`` on real Podman: a command prints the escapes raw on stdout and
    stderr (also the C1 CSI as a bare byte, not UTF-8), Lua logs them, sets them as an
    output and fails with them; under a pty and into a pipe."""
    pipeline = tmp_path / "evil.lua"
    pipeline.write_text(
        f"""return pipeline.define({{
  name = {lua("run" + NAME_MARKUP)},
  stages = {{
    {{ name = "deploy", script = function()
      log.info({lua(FORGED)})
      process.run({{ "printf", "%s\\n", {lua(EVIL)} }})
      process.run({{ "sh", "-c", "printf 'raw\\\\233c1 %s\\\\n' \\"$X\\" >&2", env = {{ X = {lua(EVIL)} }} }})
      process.run({{ "sh", "-c", "printf 'one\\\\ntwo\\\\r\\\\n12:00:00.000 deploy  info    forged\\\\n'" }})
      output.set({lua("key" + EVIL)}, {lua(EVIL + FORGED)})
      error({lua(EVIL + " " + FORGED)})
    end }},
  }},
}})
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES"):
        env.pop(name, None)
    env.update(
        RIVET_HOME=str(tmp_path / "home"),
        RIVET_DEFAULT_IMAGE="localhost/rivet/busybox:latest",
        TERM="xterm-256color",
    )
    argv = [str(RIVET), "run", str(pipeline)]
    on_pty = run_in_pty(argv, env, columns=2000, timeout=240)
    assert_inert(on_pty, pty=True, colour=True)
    # COLUMNS: table cells are not wrapped in the middle of an escape.
    piped = run_piped(argv, env | {"COLUMNS": "3000"}, timeout=240)
    assert piped.returncode == 1, piped.stdout + piped.stderr
    assert_inert(piped.stdout + piped.stderr)
    for output in (SGR.sub("", on_pty).replace("\r\n", "\n"), piped.stdout):
        assert_shown(output)
        assert f"key{visible(EVIL)}" in output  # the output's name
        assert visible(FORGED) in output  # log.info's message, on one line
        assert "raw" in output and "c1" in output
        assert output.rstrip().splitlines()[-1].startswith("job failed")
        assert visible(FORGED) in output.rstrip().splitlines()[-1]


def read_exactly(path: str) -> str:
    """A file's text with its line ends as they are (no universal newlines)."""
    return Path(path).read_bytes().decode("utf-8")


def test_rivet_runner_log_is_inert(
    cli: Cli, rivet_server: Any, older_rivet: Any, tmp_path: Path, wide: None
) -> None:
    """``rivet runner`` logs the pipeline's name when it claims a job and the job's
    error when it ends; both reach the operator's terminal escaped, one record a line.
    The pipeline was stored by an older Rivet, with escapes in its name: the runner
    still runs that version (under the rules it was stored with)."""
    lane = uuid.uuid4().hex
    view = older_rivet.pipeline(
        f"""return pipeline.define({{
  name = {lua(f"runner-job-{lane[:8]}{EVIL}")},
  runner = {{ {{ key = "lane", value = "{lane}" }} }},
  stages = {{ {{ name = "fail", script = function() error({lua(EVIL + " " + FORGED)}) end }} }},
}})
""",
        "runner-job.lua",
    )
    job_id = job_id_of(cli(["job", "launch", view.id[:8]]))
    token = cli(["runner", "token", "create", "--quiet"]).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    env.update(RIVET_HOME=str(tmp_path / "runner-home"), RIVET_POLL_INTERVAL="0.2")
    argv = [str(RIVET), "runner", "--server", rivet_server.url, "--registration-token", token]
    argv += ["--tag", f"lane={lane}", "--workspace-root", str(tmp_path / "ws")]
    with (tmp_path / "runner.err").open("wb") as err:
        runner = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            deadline = time.monotonic() + 120
            while json.loads(cli(["job", "show", job_id, "--json"]).stdout)["status"] != "failed":
                assert runner.poll() is None, read_exactly(err.name)
                assert time.monotonic() < deadline, "the runner did not finish the job"
                time.sleep(0.3)
            deadline = time.monotonic() + 30
            while "finished: failed" not in read_exactly(err.name):
                assert time.monotonic() < deadline, read_exactly(err.name)
                time.sleep(0.1)
        finally:
            runner.send_signal(signal.SIGINT)
            try:
                runner.wait(timeout=60)
            except subprocess.TimeoutExpired:
                runner.kill()
                runner.wait()
        log = read_exactly(err.name)
    assert_inert(log)
    claimed = [line for line in log.splitlines() if f"claimed job {job_id}" in line]
    assert len(claimed) == 1 and f"runner-job-{lane[:8]}{visible(EVIL)}" in claimed[0], log
    finished = [line for line in log.splitlines() if f"job {job_id} finished: failed" in line]
    assert len(finished) == 1 and visible(FORGED) in finished[0], log
    # The stage ran and failed with its own error (not a refused definition).
    stage = json.loads(cli(["job", "show", job_id, "--json"]).stdout)["stages"][0]
    assert stage["status"] == "failed" and EVIL in stage["error"], stage
