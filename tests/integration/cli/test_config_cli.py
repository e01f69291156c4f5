"""``rivet config show`` as a user runs it: the installed console script in a fresh
process, reading a real ``$RIVET_HOME/config``, the environment and its flags. The
in-process checks of every detail are in tests/unit/cli/test_config_command.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

RIVET = Path(sys.executable).with_name("rivet")


def rivet(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    return subprocess.run(
        [str(RIVET), *args],
        capture_output=True,
        text=True,
        env={**clean, "RIVET_HOME": str(home), "COLUMNS": "200", **env},
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def rows(stdout: str) -> dict[str, tuple[str, str]]:
    found = {}
    for line in stdout.splitlines()[1:]:
        name, value, source = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        found[name] = (value, source)
    return found


def test_config_show_says_where_each_value_came_from(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config"
    config.write_text(
        '[client]\nserver = "ci.example.com:8420/"\nadmin_token = "rivet_admin_s3cr3t"\n'
        "[server]\nport = 9100\n[lua]\nmemory_mib = 128\n[up]\nstart_seconds = 90\n"
    )
    done = rivet(home, "config", "show", RIVET_PORT="9200", RIVET_LOG_LEVEL="DEBUG")
    assert done.returncode == 0, done.stderr
    shown = rows(done.stdout)
    assert shown["home"] == (str(home), "env RIVET_HOME")
    assert shown["client.server"] == (
        "http://ci.example.com:8420",
        f"file {config}: [client] server",
    )
    assert shown["client.admin_token"] == ("****", f"file {config}: [client] admin_token")
    assert shown["server.port"] == ("9200", "env RIVET_PORT")  # env beats the file
    assert shown["server.log_level"] == ("debug", "env RIVET_LOG_LEVEL")
    assert shown["lua.memory_mib"] == ("128.0", f"file {config}: [lua] memory_mib")
    assert shown["up.start_seconds"] == ("90.0", f"file {config}: [up] start_seconds")
    assert shown["up.drain_seconds"] == ("10.0", "default")
    assert "rivet_admin_s3cr3t" not in done.stdout + done.stderr


def test_the_home_flag_beats_the_variable_and_json_has_every_field(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "config").write_text('server = "https://other.example"\n')
    done = rivet(tmp_path / "unused", "config", "show", "--json", "--home", str(other))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["files"] == [str(other / "config")]
    settings = {entry["name"]: entry for entry in report["settings"]}
    assert (settings["home"]["source"], settings["home"]["where"]) == ("flag", "--home")
    server = settings["client.server"]
    assert (server["value"], server["source"]) == ("https://other.example", "file")
    assert server["where"] == f"{other / 'config'}: server"


def test_a_bad_value_is_named_by_its_source_and_exits_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config").write_text("[jobs]\ndefault_image = 3\n")
    done = rivet(home, "config", "show", RIVET_UP_DRAIN_SECONDS="later")
    assert done.returncode == 2
    assert "RIVET_UP_DRAIN_SECONDS: expected a number, got 'later'" in done.stdout + done.stderr
    where = f"{home / 'config'}: [jobs] default_image: expected a string, got 3"
    assert where in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    shown = rows(done.stdout)  # the good settings are still listed beside the bad ones
    assert shown["server.port"] == ("8420", "default")
    assert shown["up.drain_seconds"][0] == "(invalid)"
