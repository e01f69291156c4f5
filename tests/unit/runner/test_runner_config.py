"""Runner settings: flag > environment > runner.toml > $RIVET_HOME/config > default;
the saved token file."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from rivet.errors import ConfigError
from rivet.limits import MAX_NAME, MAX_TAGS
from rivet.runner.config import resolve_settings
from rivet.runner.config_file import read_runner_file, save_registration
from rivet.runner.retry import Backoff
from rivet.settings import ClientGroup, RunnerGroup, parse_tags


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_come_from_rivet_home(tmp_path: Path) -> None:
    settings = resolve_settings({}, {"RIVET_HOME": str(tmp_path)})
    assert settings.server == "http://127.0.0.1:8420"
    assert settings.token is None and settings.concurrency == 1
    assert settings.config_file == tmp_path / "runner.toml"
    assert settings.workspace_root == tmp_path / "workspaces"
    assert settings.default_image == "alpine:latest"
    assert settings.name and settings.tags == {}


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    write(
        tmp_path / "runner.toml",
        'server = "http://file:1"\nname = "from-file"\nconcurrency = 3\n'
        'default_image = "file:img"\n[tags]\nos = "file"\n',
    )
    env = {
        "RIVET_HOME": str(tmp_path),
        "RIVET_RUNNER_NAME": "from-env",
        "RIVET_RUNNER_TAGS": "os=env,arch=x86",
        "RIVET_DEFAULT_IMAGE": "env:img",
    }
    from_file = resolve_settings({}, {"RIVET_HOME": str(tmp_path)})
    assert (from_file.server, from_file.name, from_file.concurrency) == (
        "http://file:1",
        "from-file",
        3,
    )
    assert from_file.tags == {"os": "file"} and from_file.default_image == "file:img"
    from_env = resolve_settings({}, env)
    assert (from_env.name, from_env.tags, from_env.default_image) == (
        "from-env",
        {"os": "env", "arch": "x86"},
        "env:img",
    )
    flags = {
        RunnerGroup.name: "flag",
        RunnerGroup.tags: ["os=flag"],
        RunnerGroup.concurrency: 2,
        ClientGroup.server: "flag:9",
    }
    from_flags = resolve_settings(flags, env)
    assert (from_flags.name, from_flags.tags, from_flags.concurrency) == ("flag", {"os": "flag"}, 2)
    assert from_flags.server == "http://flag:9"


def test_saved_token_is_used_only_for_its_own_server(tmp_path: Path) -> None:
    config = tmp_path / "runner.toml"
    save_registration(config, server="http://a:1", runner_id="r1", token="tok-a", name="n")
    env = {"RIVET_HOME": str(tmp_path)}
    same = resolve_settings({}, env)
    assert (same.server, same.token, same.runner_id) == ("http://a:1", "tok-a", "r1")
    other = resolve_settings({ClientGroup.server: "http://b:2"}, env)
    assert other.token is None
    explicit = resolve_settings({ClientGroup.server: "http://b:2", RunnerGroup.token: "tok-b"}, env)
    assert explicit.token == "tok-b"


def test_registration_is_saved_private_and_keeps_other_keys(tmp_path: Path) -> None:
    config = write(tmp_path / "deep" / "runner.toml", 'name = "old"\n[tags]\n"odd key" = "v"\n')
    config.chmod(0o644)
    save_registration(config, server="http://s:1", runner_id="r", token='t"\\x', name="new")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    data = tomllib.loads(config.read_text())
    assert data == {
        "name": "new",
        "tags": {"odd key": "v"},
        "server": "http://s:1",
        "runner_id": "r",
        "token": 't"\\x',
    }
    assert read_runner_file(tmp_path / "missing.toml") == {}
    assert [p.name for p in config.parent.iterdir()] == ["runner.toml"]


def test_bad_values_are_config_errors(tmp_path: Path) -> None:
    env = {"RIVET_HOME": str(tmp_path)}
    with pytest.raises(ConfigError, match="key=value"):
        parse_tags(["novalue"], "--tag")
    with pytest.raises(ConfigError, match=r"^--concurrency: must be at least 1, got 0$"):
        resolve_settings({RunnerGroup.concurrency: 0}, env)
    with pytest.raises(ConfigError, match=r"^RIVET_RUNNER_CONCURRENCY: expected a whole number"):
        resolve_settings({}, {**env, "RIVET_RUNNER_CONCURRENCY": "two"})
    with pytest.raises(ConfigError, match=r"^--server: server URL must start with http"):
        resolve_settings({ClientGroup.server: "ftp://x"}, env)
    write(tmp_path / "runner.toml", "server = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve_settings({}, env)


def test_cli_config_server_is_the_fallback(tmp_path: Path) -> None:
    write(tmp_path / "config", 'server = "cli-host:7"\n')
    assert resolve_settings({}, {"RIVET_HOME": str(tmp_path)}).server == "http://cli-host:7"


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    exact = Backoff(0.1, 1.0, jitter=0.0)
    assert [round(exact.next_delay(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    exact.reset()
    assert exact.next_delay() == pytest.approx(0.1)
    jittered = Backoff(1.0, 1.0, jitter=0.5, rng=lambda: 1.0)
    assert jittered.next_delay() == pytest.approx(0.5)
    with pytest.raises(ValueError):
        Backoff(0, 1)


def test_tags_and_name_over_the_server_caps_are_config_errors(tmp_path: Path) -> None:
    env = {"RIVET_HOME": str(tmp_path)}
    many = [f"t{n}=v" for n in range(MAX_TAGS + 1)]
    with pytest.raises(ConfigError, match=f"^--tag: a runner may offer at most {MAX_TAGS} tags"):
        resolve_settings({RunnerGroup.tags: many}, env)
    with pytest.raises(ConfigError, match=f"at most {MAX_NAME} characters"):
        resolve_settings({RunnerGroup.tags: ["os=" + "l" * (MAX_NAME + 1)]}, env)
    with pytest.raises(ConfigError, match=f"^--name: may have at most {MAX_NAME}"):
        resolve_settings({RunnerGroup.name: "n" * (MAX_NAME + 1)}, env)
    ok = resolve_settings({RunnerGroup.tags: ["empty="], RunnerGroup.name: "n" * MAX_NAME}, env)
    assert ok.tags == {"empty": ""}


def test_the_runner_offers_built_in_and_plugin_dir_plugins_minus_denied_ones(
    tmp_path: Path,
) -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "plugins"
    plain = resolve_settings({}, {"RIVET_HOME": str(tmp_path)})
    assert plain.plugins == ("archive",)
    write(tmp_path / "runner.toml", f'plugin_dirs = ["{example}"]\n')
    from_file = resolve_settings({}, {"RIVET_HOME": str(tmp_path)})
    assert from_file.plugins == ("archive", "greet")
    assert from_file.plugin_catalog.versions() == {"archive": "1.0.0", "greet": "1.0.0"}
    policy = write(tmp_path / "policy.toml", '[plugins]\ndenied = ["archive"]\n')
    env = {"RIVET_HOME": str(tmp_path), "RIVET_POLICY": str(policy)}
    assert resolve_settings({}, env).plugins == ("greet",)
