"""Typer options built from setting declarations (:mod:`rivet.settings`).

:func:`setting_option` makes the option of one setting, for an ``Annotated``
parameter; :func:`with_setting_flags` adds the options of several settings to a
command and hands their values to it as one ``flags`` mapping, which goes straight
to :func:`rivet.settings.load_settings`. The option reads no environment variable
itself: the settings resolver does, so that flag > env > config file > default is
applied in one place and every value knows its source. Help texts name the
variable as typer would (``[env var: RIVET_PORT]``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from rivet.settings.flags import dest
from rivet.settings.spec import Setting

__all__ = ["setting_option", "with_setting_flags"]

F = TypeVar("F", bound=Callable[..., Any])


def setting_option(setting: Setting[Any]) -> Any:
    """The typer option of ``setting``: its flags, help, and the bounds a whole number
    has (so typer refuses ``--concurrency 0`` as a usage error, exit 2)."""
    minimum, maximum = setting.kind.bounds()
    return typer.Option(
        *setting.flags,
        help=setting.help_text(),
        show_default=False,
        min=minimum,
        max=maximum,
    )


def _annotation(setting: Setting[Any]) -> Any:
    value_type: Any = setting.kind.cli_type
    if setting.kind.repeatable:
        value_type = list[value_type]
    return Annotated[value_type | None, setting_option(setting)]


def with_setting_flags(*settings: Setting[Any]) -> Callable[[F], F]:
    """Decorate a command whose parameter ``flags`` receives the given ones of
    ``settings`` (by setting; absent ones left out). The command's other parameters
    stay as declared; the settings' options follow them in ``--help``."""

    def decorate(command: F) -> F:
        return _with_flags(command, settings)  # type: ignore[return-value]

    return decorate


def _with_flags(
    command: Callable[..., Any], settings: Sequence[Setting[Any]]
) -> Callable[..., Any]:
    hints = get_type_hints(command, include_extras=True)
    own = [
        parameter.replace(annotation=hints.get(parameter.name, parameter.annotation))
        for parameter in inspect.signature(command).parameters.values()
        if parameter.name != "flags"
    ]
    added = [
        inspect.Parameter(
            dest(setting),
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=_annotation(setting),
        )
        for setting in settings
    ]
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        else p
        for p in own
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {setting: kwargs.pop(dest(setting)) for setting in settings}
        flags = {setting: value for setting, value in given.items() if value is not None}
        return command(*args, flags=flags, **kwargs)

    parameters = own + added
    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    del wrapper.__wrapped__  # typer must see the new signature, not the command's
    return wrapper
