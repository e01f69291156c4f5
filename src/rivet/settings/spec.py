"""The pieces every setting is declared with: :class:`Setting`, :class:`Group`,
:class:`Computed` defaults, :class:`Source` (where a value came from) and
:class:`SettingError`.

A setting is declared once, as a class attribute of its group, with everything any
part of Rivet needs to know about it: its kind (how text, a flag value or a config
file value becomes a typed value, and how it is shown), its default, its
environment variable, its command-line flags, its help and whether a config file
may set it. The command lines (typer and argparse), the resolver and ``rivet config
show`` all read these declarations; nothing repeats them.

Accessed on the class (``ServerGroup.port``) a setting is its declaration; on a
resolved group (``settings.server.port``) it is the value.

Kept free of heavy imports (no pydantic): every ``rivet`` command imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, overload

from rivet.errors import ConfigError

if TYPE_CHECKING:
    from rivet.home import RivetHome
    from rivet.settings.kinds import Kind

__all__ = ["Computed", "Group", "Origin", "Setting", "SettingError", "Source"]

T = TypeVar("T")

Origin = Literal["flag", "env", "file", "default"]


class SettingError(ConfigError):
    """A setting has a bad value; the message starts with where it came from (the flag,
    the environment variable, or the file and key)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class Source:
    """Where a resolved value came from: ``origin`` and, for a flag, a variable or a
    file, which one (``--port``, ``RIVET_PORT``, ``/home/me/.rivet/config: [server] port``)."""

    origin: Origin
    where: str = ""

    def describe(self) -> str:
        """``env RIVET_PORT``, ``file /x/config: [server] port``, ``default``,
        ``default ($RIVET_HOME/workspaces)``."""
        if not self.where:
            return self.origin
        if self.origin == "default":
            return f"default ({self.where})"
        return f"{self.origin} {self.where}"


@dataclass(frozen=True)
class Computed(Generic[T]):
    """A default that depends on the home directory (``$RIVET_HOME/workspaces``) or on
    the machine (the host name); ``text`` is how help and ``rivet config show`` say it."""

    compute: Callable[[RivetHome], T]
    text: str


class Setting(Generic[T]):
    """One setting, declared once (see the module docstring)."""

    group: str
    name: str

    def __init__(
        self,
        kind: Kind[T],
        default: T | Computed[T],
        *,
        help: str,
        env: str | None = None,
        flags: tuple[str, ...] = (),
        file: bool = True,
        default_text: str | None = None,
    ) -> None:
        self.kind = kind
        self.default = default
        self.help = help
        self.env = env
        self.flags = flags
        # False for settings that choose the files themselves (home, runner config) and
        # for tokens a file must not hold as a setting.
        self.file = file
        self._default_text = default_text

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Setting[T]: ...

    @overload
    def __get__(self, obj: Group, owner: type[Any]) -> T: ...

    def __get__(self, obj: Group | None, owner: type[Any]) -> Setting[T] | T:
        if obj is None:
            return self
        value: T = obj._values[self.name]
        return value

    @property
    def path(self) -> str:
        """``server.port``; a setting of the root group is its bare name (``home``)."""
        return f"{self.group}.{self.name}" if self.group else self.name

    @property
    def default_text(self) -> str | None:
        """How the default reads in help and ``rivet config show``; None: no default."""
        if self._default_text is not None:
            return self._default_text
        if isinstance(self.default, Computed):
            return self.default.text
        if self.default is None:
            return None
        return self.kind.show(self.default)

    def help_text(self) -> str:
        """The help of its flags: what it is, the default, the environment variable."""
        text = self.help
        if self.default_text is not None:
            text += f" (default: {self.default_text})"
        if self.env:
            text += f" [env var: {self.env}]"
        return text

    def __repr__(self) -> str:
        return f"<setting {self.path}>"


class Group:
    """A group of settings (``[server]`` in the config file, ``settings.server`` in
    code). Subclasses declare :class:`Setting` attributes and ``name=`` in the class
    statement (``section=``: its name in code, in the config file and in ``rivet config
    show``); an instance holds resolved values and their sources."""

    section: ClassVar[str] = ""
    _declared: ClassVar[tuple[Setting[Any], ...]] = ()

    def __init_subclass__(cls, *, section: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.section = section
        cls._declared = tuple(v for v in vars(cls).values() if isinstance(v, Setting))
        for setting in cls._declared:
            setting.group = section

    def __init__(self, values: dict[str, Any], sources: dict[str, Source]) -> None:
        self._values = values
        self._sources = sources

    @classmethod
    def settings(cls) -> tuple[Setting[Any], ...]:
        """The group's settings in declaration order."""
        return cls._declared

    def source(self, setting: Setting[Any]) -> Source:
        return self._sources[setting.name]

    def __repr__(self) -> str:
        shown = ", ".join(f"{s.name}={s.kind.show(self._values[s.name])}" for s in self.settings())
        return f"{type(self).__name__}({shown})"
