"""The error tree drawn in ``rivet/errors.py``'s docstring is the code's: every
exception class of ``src/rivet`` is drawn, under its real base, with the module that
defines it, and nothing drawn is missing. A RivetError outside the tree, or an
internal exception that became user-facing without being drawn, fails here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass

import rivet
import rivet.errors
from rivet.errors import RivetError

# The Alembic environment runs migrations when it is imported.
SKIPPED = ("rivet.store.migrations",)
DRAWN = re.compile(r"^(?P<lead>[ │├└─]*)(?P<name>_?[A-Z]\w*)\s*(?:\[(?P<module>[\w.]+)\])?")


@dataclass(frozen=True)
class Drawn:
    name: str
    parent: str | None
    module: str


def drawing(block: str) -> dict[str, Drawn]:
    """The classes of one drawn block: indentation (4 columns a level) gives the parent;
    a class without a module in brackets lives in its parent's (rivet.errors at the top)."""
    found: dict[str, Drawn] = {}
    parents: list[str] = []
    for line in block.splitlines():
        match = DRAWN.match(line.removeprefix("    "))
        if match is None:
            continue
        depth = len(match["lead"]) // 4
        del parents[depth:]
        parent = parents[-1] if parents else None
        if match["module"]:
            module = "rivet." + match["module"]
        else:
            module = found[parent].module if parent else "rivet.errors"
        found[match["name"]] = Drawn(match["name"], parent, module)
        parents.append(match["name"])
    return found


def drawn_blocks() -> tuple[dict[str, Drawn], dict[str, Drawn]]:
    doc = rivet.errors.__doc__ or ""
    tree, _, internal = doc.partition("Not RivetErrors")
    user = drawing(tree[tree.index("    RivetError") :])
    return user, drawing(internal[internal.index("\n\n") :])


def exception_classes() -> dict[str, type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(rivet.__path__, "rivet."):
        if info.name.startswith(SKIPPED) or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == info.name:
                assert value.__name__ not in classes, f"two exception classes {value.__name__}"
                classes[value.__name__] = value
    return classes


def test_every_exception_class_is_drawn_under_its_base_with_its_module() -> None:
    user, internal = drawn_blocks()
    for name, cls in exception_classes().items():
        drawn = user if issubclass(cls, RivetError) else internal
        assert name in drawn, f"{cls.__module__}.{name} is not drawn in rivet/errors.py"
        entry = drawn[name]
        assert entry.module == cls.__module__, f"{name} is drawn in {entry.module}"
        base = cls.__bases__[0]
        expected = None if base in (Exception, BaseException) else base.__name__
        assert entry.parent == expected, f"{name} is drawn under {entry.parent}, not {expected}"


def test_every_drawn_class_exists() -> None:
    user, internal = drawn_blocks()
    classes = exception_classes()
    assert set(user) | set(internal) <= set(classes), sorted(
        set(user) | set(internal) - set(classes)
    )
    assert user["RivetError"].parent is None
    assert not set(user) & set(internal)


def test_the_drawing_is_read_as_a_tree() -> None:
    user, internal = drawn_blocks()
    assert user["ResourceLimitError"] == Drawn("ResourceLimitError", "LuaError", "rivet.errors")
    assert user["BodyTooLarge"].parent == "RequestRejected"
    assert user["UsageProblem"] == Drawn("UsageProblem", "RivetError", "rivet.cli.common")
    assert internal["MissingError"].parent == "JailError"
    assert internal["LuaCallError"].parent is None
