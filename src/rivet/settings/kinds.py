"""Kinds of setting values: how a flag value, an environment variable's text or a
config file value becomes a typed value, what is refused, and how a value is shown.

A kind raises ``ValueError`` with the problem alone (``expected a whole number, got
'x'``); the resolver puts where the value came from in front of it. One rule per
kind, whatever the source: the server URL is normalised and checked here and
nowhere else (:class:`ServerUrl`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from rivet.errors import ConfigError
from rivet.limits import MAX_NAME, MAX_TAGS, name_problem
from rivet.observe.levels import parse_levels

__all__ = [
    "DatabaseUrl",
    "FilePath",
    "Kind",
    "LogLevelSpec",
    "Networks",
    "Number",
    "Optional",
    "RunnerName",
    "Secret",
    "SecretText",
    "ServerUrl",
    "Tags",
    "Text",
    "Whole",
    "parse_tags",
]

T = TypeVar("T")
V = TypeVar("V")

MASK = "****"


def _got(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return repr(value)[:80]
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


class Kind(Generic[T]):
    """How values of one kind are read and shown."""

    # What a command-line parser turns the flag's text into before :meth:`convert`.
    cli_type: ClassVar[type] = str
    # A flag given several times (``--tag a=1 --tag b=2``).
    repeatable: ClassVar[bool] = False
    expected: ClassVar[str] = "a string"

    def convert(self, value: object, base: Path | None = None) -> T:
        """``value`` from a flag, a variable (text) or a config file (any TOML value);
        ``base`` is the directory of that file, for paths relative to it."""
        if isinstance(value, str):
            return self.parse(value, base)
        return self.coerce(value, base)

    def parse(self, text: str, base: Path | None) -> T:
        raise NotImplementedError

    def coerce(self, value: object, base: Path | None) -> T:
        raise ValueError(f"expected {self.expected}, got {_got(value)}")

    def show(self, value: T) -> str:
        """The value as ``rivet config show`` and help print it (secrets masked)."""
        return "-" if value is None else str(value)

    def bounds(self) -> tuple[int | None, int | None]:
        """Inclusive limits a flag parser can check itself (whole numbers)."""
        return None, None


class Optional(Kind[V | None]):
    """``kind`` or nothing: for settings whose default is "not set"."""

    def __init__(self, kind: Kind[V]) -> None:
        self.kind = kind
        self.cli_type = kind.cli_type  # type: ignore[misc]
        self.repeatable = kind.repeatable  # type: ignore[misc]
        self.expected = kind.expected  # type: ignore[misc]

    def convert(self, value: object, base: Path | None = None) -> V | None:
        return self.kind.convert(value, base)

    def show(self, value: V | None) -> str:
        return "-" if value is None else self.kind.show(value)

    def bounds(self) -> tuple[int | None, int | None]:
        return self.kind.bounds()


class Text(Kind[str]):
    def __init__(self, *, max_length: int | None = None, choices: Sequence[str] = ()) -> None:
        self.max_length = max_length
        self.choices = tuple(choices)

    def parse(self, text: str, base: Path | None) -> str:
        if self.choices and text.lower() not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}, got {text!r}")
        if self.max_length is not None and len(text) > self.max_length:
            raise ValueError(f"may have at most {self.max_length} characters")
        return text.lower() if self.choices else text


class LogLevelSpec(Kind[str]):
    """Log levels per component, ``info,rivet.jobqueue=debug`` (the rule is
    :func:`rivet.observe.levels.parse_levels`); kept as its normalised text."""

    def parse(self, text: str, base: Path | None) -> str:
        return str(parse_levels(text))


class Networks(Kind[tuple[str, ...]]):
    """Client addresses as networks, ``127.0.0.0/8,::1`` (a bare address is one
    host); ``none`` or an empty text for no address at all."""

    expected = "a list of addresses or networks"

    def parse(self, text: str, base: Path | None) -> tuple[str, ...]:
        if text.strip().lower() in ("", "none"):
            return ()
        return self._networks([part for part in text.split(",") if part.strip()])

    def coerce(self, value: object, base: Path | None) -> tuple[str, ...]:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return self._networks(value)
        return super().coerce(value, base)

    def _networks(self, parts: Sequence[str]) -> tuple[str, ...]:
        import ipaddress  # on use: every command imports this module

        found = []
        for part in parts:
            try:
                found.append(str(ipaddress.ip_network(part.strip(), strict=False)))
            except ValueError:
                raise ValueError(
                    f"{part.strip()!r} is not an address or network (like 127.0.0.1 or 10.0.0.0/8)"
                ) from None
        return tuple(found)

    def show(self, value: tuple[str, ...]) -> str:
        return ",".join(value) or "none"


class RunnerName(Text):
    """A runner's name: shown in terminals and tables, so it follows the name rule
    (:func:`rivet.limits.name_problem`: no control, format or bidi character), refused
    here rather than by the server at registration."""

    def __init__(self) -> None:
        super().__init__(max_length=MAX_NAME)

    def parse(self, text: str, base: Path | None) -> str:
        name = super().parse(text, base)
        if (problem := name_problem(name)) is not None:
            raise ValueError(f"the runner name {name[:60]!r} {problem}")
        return name


class Whole(Kind[int]):
    cli_type = int
    expected = "a whole number"

    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def parse(self, text: str, base: Path | None) -> int:
        try:
            number = int(text.strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
        return self.coerce(number, base)

    def coerce(self, value: object, base: Path | None) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            return super().coerce(value, base)
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {self.maximum}, got {value}")
        return value

    def bounds(self) -> tuple[int | None, int | None]:
        return self.minimum, self.maximum


class Number(Kind[float]):
    cli_type = float
    expected = "a number"

    def __init__(self, *, greater_than: float | None = None) -> None:
        self.greater_than = greater_than

    def parse(self, text: str, base: Path | None) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
        return self._check(value, repr(text))

    def coerce(self, value: object, base: Path | None) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return super().coerce(value, base)
        return self._check(float(value), repr(value))

    def _check(self, value: float, shown: str) -> float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected a finite number, got {shown}")
        if self.greater_than is not None and not value > self.greater_than:
            raise ValueError(f"must be greater than {self.greater_than:g}, got {shown}")
        return value


class FilePath(Kind[Path]):
    """A path, ``~`` expanded. With ``relative_to_file`` a relative path in a config
    file is taken from that file's directory (the runner's ``policy = "policy.toml"``);
    from a flag or a variable it is relative to the working directory, as usual."""

    cli_type = Path

    def __init__(self, *, what: str = "a path", relative_to_file: bool = False) -> None:
        self.expected = what  # type: ignore[misc]
        self.relative_to_file = relative_to_file

    def parse(self, text: str, base: Path | None) -> Path:
        path = Path(text).expanduser()
        if base is not None and self.relative_to_file:
            return base / path
        return path

    def coerce(self, value: object, base: Path | None) -> Path:
        if isinstance(value, Path):
            return self.parse(str(value), base)
        return super().coerce(value, base)


class PathList(Kind[tuple[Path, ...]]):
    """Directories, ``~`` expanded: ``a:b`` in a variable (like ``PATH``), a TOML list
    of strings in a file (relative to that file's directory)."""

    expected = "a list of paths"

    def parse(self, text: str, base: Path | None) -> tuple[Path, ...]:
        return tuple(Path(p).expanduser() for p in text.split(":") if p.strip())

    def coerce(self, value: object, base: Path | None) -> tuple[Path, ...]:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            found = (Path(v).expanduser() for v in value)
            return tuple(base / p if base is not None else p for p in found)
        return super().coerce(value, base)

    def show(self, value: tuple[Path, ...]) -> str:
        return ":".join(str(p) for p in value) or "none"


class SecretText:
    """A secret value: shown masked everywhere (``repr``, ``str``, ``rivet config
    show``); :meth:`get_secret_value` is the one way to the text."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretText) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"SecretText('{MASK}')"

    __str__ = __repr__


class Secret(Kind[SecretText]):
    """A token or key; surrounding white space (a pasted newline) is dropped."""

    def parse(self, text: str, base: Path | None) -> SecretText:
        return SecretText(text.strip())

    def coerce(self, value: object, base: Path | None) -> SecretText:
        if isinstance(value, SecretText):
            return value
        return super().coerce(value, base)

    def show(self, value: SecretText) -> str:
        return MASK


class ServerUrl(Kind[str]):
    """The one server-URL rule: white space and trailing ``/`` dropped, a trailing
    ``/api`` too (the API's prefix is the client's to add: ``http://host:8420/api``
    means ``http://host:8420``), ``http://`` added when no scheme is given, any scheme
    but http and https refused."""

    expected = "a server URL"

    def parse(self, text: str, base: Path | None) -> str:
        url = text.strip().rstrip("/")
        if "://" not in url:
            url = f"http://{url}"
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"server URL must start with http:// or https://: {url}")
        scheme, rest = url.split("://", 1)
        # Only a path's /api goes (a host may be named "api").
        while "/" in rest and rest.lower().endswith("/api"):
            rest = rest[: -len("/api")].rstrip("/")
        return f"{scheme}://{rest}"


class DatabaseUrl(Kind[str]):
    """A SQLAlchemy URL; its password is masked when shown."""

    expected = "a database URL"

    def parse(self, text: str, base: Path | None) -> str:
        return text.strip()

    def show(self, value: str) -> str:
        return re.sub(r"(://[^:/@]*:)[^@]*@", rf"\g<1>{MASK}@", value)


def parse_tags(items: Sequence[str], source: str) -> dict[str, str]:
    """``["os=linux", "arch=arm64"]`` → ``{"os": "linux", "arch": "arm64"}`` (no caps:
    ``rivet runner set-tags`` leaves those to the server); ``source`` names where the
    items came from in the :class:`~rivet.errors.ConfigError`."""
    try:
        return Tags().items(items)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


class Tags(Kind[dict[str, str]]):
    """Runner tags: ``--tag k=v`` (repeated), ``k=v,k=v`` in a variable, a ``[tags]``
    table in a file; within the server's caps and name rule (:mod:`rivet.limits`),
    refused here with a clear message rather than by the server at registration."""

    repeatable = True
    expected = 'a table of key = "value" pairs'

    def parse(self, text: str, base: Path | None) -> dict[str, str]:
        return self._check(self.items(text.split(",")))

    def coerce(self, value: object, base: Path | None) -> dict[str, str]:
        if isinstance(value, Mapping):
            return self._check({str(k): str(v) for k, v in value.items()})
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return self._check(self.items(value))
        return super().coerce(value, base)

    def items(self, items: Sequence[str]) -> dict[str, str]:
        tags: dict[str, str] = {}
        for item in items:
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key:
                raise ValueError(f"expected a tag as key=value, got {item!r}")
            tags[key] = value
        return tags

    def _check(self, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > MAX_TAGS:
            raise ValueError(f"a runner may offer at most {MAX_TAGS} tags, got {len(tags)}")
        for key, value in tags.items():
            if len(key) > MAX_NAME or len(value) > MAX_NAME:
                raise ValueError(
                    f"tag {key[:40]!r}: keys and values may have at most {MAX_NAME} characters"
                )
            for part, text in (("key", key), ("value", value)):
                if (problem := name_problem(text)) is not None:
                    raise ValueError(f"tag {key[:40]!r}: the {part} {problem}")
        return tags

    def show(self, value: dict[str, str]) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
