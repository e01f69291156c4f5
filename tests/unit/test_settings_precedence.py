"""The one precedence, setting by setting: for every setting of every group, a flag
beats its variable, which beats ``$RIVET_HOME/config``, which beats the default, each
value with its source; and a bad value from each of those sources is refused with
that source named (the flag, the variable, or the file and key).

The samples are made from each setting's kind, so a new setting is covered here the
day it is declared (a kind this file does not know fails the test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rivet.settings import GROUPS, CoreGroup, Setting, SettingError, Source, load_settings
from rivet.settings.kinds import (
    DatabaseUrl,
    FilePath,
    Kind,
    LogLevelSpec,
    Networks,
    Number,
    Optional,
    PathList,
    Secret,
    SecretText,
    ServerUrl,
    Tags,
    Text,
    Whole,
)
from rivet.settings.spec import Computed

SETTINGS = [s for group in GROUPS for s in group.settings()]


def _kind(setting: Setting[Any]) -> Kind[Any]:
    kind = setting.kind
    return kind.kind if isinstance(kind, Optional) else kind


def samples(setting: Setting[Any]) -> list[tuple[object, str, object]]:
    """Three different good values, as (a flag's or a TOML value, the text of a
    variable, the resolved value)."""
    kind = _kind(setting)
    if isinstance(kind, Whole):
        low = kind.minimum if kind.minimum is not None else 0
        high = kind.maximum if kind.maximum is not None else low + 1000
        return [(n, str(n), n) for n in (low + 1, low + 2, min(low + 3, high))]
    if isinstance(kind, Number):
        return [(x, str(x), x) for x in (2.5, 3.5, 4.5)]
    if isinstance(kind, ServerUrl):
        return [(f"http://h{i}:1", f"h{i}:1", f"http://h{i}:1") for i in (1, 2, 3)]
    if isinstance(kind, DatabaseUrl):
        return [(f"sqlite:///db{i}", f"sqlite:///db{i}", f"sqlite:///db{i}") for i in (1, 2, 3)]
    if isinstance(kind, Secret):
        return [(f"s{i}", f"s{i}", SecretText(f"s{i}")) for i in (1, 2, 3)]
    if isinstance(kind, FilePath):
        return [(f"/p/{i}", f"/p/{i}", Path(f"/p/{i}")) for i in (1, 2, 3)]
    if isinstance(kind, PathList):
        return [(f"/p/{i}", f"/p/{i}", (Path(f"/p/{i}"),)) for i in (1, 2, 3)]
    if isinstance(kind, Tags):
        # A [tags] table in a file, k=v in a variable; as a flag, repeated --tag k=v.
        return [({f"k{i}": "v"}, f"k{i}=v", {f"k{i}": "v"}) for i in (1, 2, 3)]
    if isinstance(kind, Text):
        # Choices other than the first (the default), repeated when there are fewer
        # than three: each level is still told apart by its source.
        words = (list(kind.choices[1:4]) * 3)[:3] if kind.choices else ["one", "two", "three"]
        return [(w, w, w) for w in words]
    if isinstance(kind, LogLevelSpec):
        return [(w, w, w) for w in ("debug", "warning", "info,rivet.runner=debug")]
    if isinstance(kind, Networks):
        return [(f"10.0.0.{i}", f"10.0.0.{i}", (f"10.0.0.{i}/32",)) for i in (1, 2, 3)]
    raise AssertionError(f"{setting}: no samples for {type(kind).__name__}; add them here")


def bad_text(setting: Setting[Any]) -> tuple[str, str] | None:
    """A text its kind refuses and the problem it names, or None when any text is a
    value of that kind (a path, a token, a free-form name)."""
    kind = _kind(setting)
    if isinstance(kind, Whole):
        return "many", "expected a whole number, got 'many'"
    if isinstance(kind, Number):
        return "soon", "expected a number, got 'soon'"
    if isinstance(kind, ServerUrl):
        return "ftp://x", "server URL must start with http:// or https://: ftp://x"
    if isinstance(kind, Tags):
        return "novalue", "expected a tag as key=value, got 'novalue'"
    if isinstance(kind, LogLevelSpec):
        return "loud", "expected one of "
    if isinstance(kind, Networks):
        return "example.com", "'example.com' is not an address"
    if isinstance(kind, Text) and kind.choices:
        return "loud", "expected one of "
    if isinstance(kind, Text) and kind.max_length is not None:
        return "x" * (kind.max_length + 1), f"may have at most {kind.max_length} characters"
    return None


def flag_name(setting: Setting[Any]) -> str:
    """What a bad flag is named by: its first flag, or the setting when a caller (a
    test, ``rivet up``) gives a setting that has no flag."""
    return setting.flags[0] if setting.flags else f"{setting.path} (set by the caller)"


def toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f'{k} = "{v}"' for k, v in value.items()) + " }"
    return str(value)


def write_config(home: Path, setting: Setting[Any], value: object) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config"
    config.write_text(f"[{setting.group}]\n{setting.name} = {toml(value)}\n")
    return config


def resolved(setting: Setting[Any], flags: dict[Any, object], env: dict[str, str]) -> Any:
    settings = load_settings(flags, env)
    return settings.source(setting), _value(settings, setting)


def _value(settings: Any, setting: Setting[Any]) -> Any:
    if setting is CoreGroup.home:
        return settings.home
    return getattr(getattr(settings, setting.group), setting.name)


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s is not CoreGroup.home], ids=str)
def test_flag_beats_env_beats_file_beats_default(setting: Setting[Any], tmp_path: Path) -> None:
    (in_file, _, from_file), (_, env_text, from_env), (flag, _, from_flag) = samples(setting)
    env = {"RIVET_HOME": str(tmp_path)}
    source, value = resolved(setting, {}, env)
    assert source.origin == "default"
    if not isinstance(setting.default, Computed):
        assert value == setting.default

    if setting.file:
        config = write_config(tmp_path, setting, in_file)
        key = f"{config}: [{setting.group}] {setting.name}"
        assert resolved(setting, {}, env) == (Source("file", key), from_file)
    if setting.env:
        env[setting.env] = env_text
        assert resolved(setting, {}, env) == (Source("env", setting.env), from_env)
    where = flag_name(setting)
    given = [f"{k}={v}" for k, v in flag.items()] if isinstance(flag, dict) else flag
    assert resolved(setting, {setting: given}, env) == (Source("flag", where), from_flag)


def test_the_home_comes_from_flag_then_env_then_default(tmp_path: Path) -> None:
    env = {"RIVET_HOME": str(tmp_path / "from-env")}
    assert resolved(CoreGroup.home, {}, {}) == (
        Source("default", "~/.rivet"),
        Path("~/.rivet").expanduser(),
    )
    assert resolved(CoreGroup.home, {}, env) == (Source("env", "RIVET_HOME"), tmp_path / "from-env")
    flag = {CoreGroup.home: tmp_path / "from-flag"}
    assert resolved(CoreGroup.home, flag, env) == (Source("flag", "--home"), tmp_path / "from-flag")


def test_settings_a_config_file_may_not_hold_are_not_read_from_it(tmp_path: Path) -> None:
    for setting in (s for s in SETTINGS if not s.file and s is not CoreGroup.home):
        write_config(tmp_path, setting, samples(setting)[0][0])
        with pytest.raises(SettingError, match=rf"\[{setting.group}\] {setting.name}: unknown"):
            resolved(setting, {}, {"RIVET_HOME": str(tmp_path)})


@pytest.mark.parametrize("setting", SETTINGS, ids=str)
def test_a_bad_value_names_its_source(setting: Setting[Any], tmp_path: Path) -> None:
    env = {"RIVET_HOME": str(tmp_path)}
    if setting.file:
        config = write_config(tmp_path, setting, True)  # no setting is a boolean
        key = f"{config}: [{setting.group}] {setting.name}"
        with pytest.raises(SettingError) as info:
            resolved(setting, {}, env)
        assert (info.value.where, info.value.problem) == (key, f"expected {_expected(setting)}")
        (tmp_path / "config").unlink()
    bad = bad_text(setting)
    if bad is None:
        return
    text, problem = bad
    if setting.env:
        with pytest.raises(SettingError) as info:
            resolved(setting, {}, {**env, setting.env: text})
        assert info.value.where == setting.env and info.value.problem.startswith(problem)
    given: object = [text] if _kind(setting).repeatable else text
    with pytest.raises(SettingError) as info:
        resolved(setting, {setting: given}, env)
    assert info.value.where == flag_name(setting) and info.value.problem.startswith(problem)


def _expected(setting: Setting[Any]) -> str:
    return f"{_kind(setting).expected}, got true"


def test_every_kind_in_use_has_a_refusable_text_or_takes_any_text() -> None:
    takes_any = {s.path for s in SETTINGS if bad_text(s) is None}
    for path in takes_any:
        kind = _kind(next(s for s in SETTINGS if s.path == path))
        assert isinstance(kind, FilePath | PathList | Secret | DatabaseUrl | Text), path
