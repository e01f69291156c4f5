"""The structure rules of docs/architecture.md, checked on the code.

The package table of docs/architecture.md is read here and is the rule: every import
in ``src/rivet`` (at the top of a module, inside a function, under TYPE_CHECKING)
from one row's package to another's must be allowed by the first row, each row may
only import rows above it (so dependencies point one way), and every allowance is
used (so the table stays true). No module is named like a standard-library module
or a builtin, and none is over 500 lines.
"""

from __future__ import annotations

import ast
import builtins
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "rivet"
DOC = ROOT / "docs" / "architecture.md"
MAX_LINES = 500
EVERYTHING_ABOVE = "everything above"


@dataclass(frozen=True)
class Row:
    name: str  # errors, domain, … (the file or folder under src/rivet, without .py or /)
    allowed: frozenset[str]
    everything_above: bool


@dataclass(frozen=True)
class Import:
    source: Path
    line: int
    target: str  # the row of the imported module; "" for rivet/__init__.py


def table() -> list[Row]:
    text = DOC.read_text("utf-8")
    section = text[text.index("## Packages (`src/rivet/`)") :]
    section = section[: section.index("\n## ", 1)]
    rows: list[Row] = []
    for line in section.splitlines():
        match = re.fullmatch(r"\| `([\w.]+?)(?:\.py|/)` \|.*\| (.+?) \|", line)
        if match is None:
            continue
        cell = match[2].strip()
        if cell in ("—", EVERYTHING_ABOVE):
            names: frozenset[str] = frozenset()
        else:
            names = frozenset(name.strip() for name in cell.split(","))
        rows.append(Row(match[1], names, cell == EVERYTHING_ABOVE))
    return rows


def row_of(module: str) -> str:
    """``rivet.engine.backends.podman`` -> ``engine``; ``rivet`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def imports() -> Iterator[Import]:
    """Every import of a Rivet module, wherever it stands in the file."""
    for path in python_files():
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                if base == "rivet":
                    # `from rivet import limits` imports rivet.limits; `__version__` the root.
                    targets = [
                        f"rivet.{alias.name}" if is_submodule(alias.name) else "rivet"
                        for alias in node.names
                    ]
                else:
                    targets = [base]
            for target in targets:
                if target == "rivet" or target.startswith("rivet."):
                    yield Import(path, node.lineno, row_of(target))


def is_submodule(name: str) -> bool:
    return (SRC / f"{name}.py").is_file() or (SRC / name / "__init__.py").is_file()


def top_level_names() -> set[str]:
    names = {p.stem for p in SRC.glob("*.py") if p.name != "__init__.py"}
    return names | {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}


# --- the table -------------------------------------------------------------------------


def test_the_table_has_one_row_for_every_module_and_package_of_src_rivet() -> None:
    rows = [row.name for row in table()]
    assert len(rows) == len(set(rows)), "a row appears twice"
    assert set(rows) == top_level_names()


def test_each_row_allows_only_rows_above_it() -> None:
    seen: set[str] = set()
    for row in table():
        assert row.allowed <= seen, (
            f"{row.name} may import {sorted(row.allowed - seen)}, not above it"
        )
        seen.add(row.name)


def test_every_import_between_packages_is_one_the_table_allows() -> None:
    rows = table()
    allowed = {
        row.name: frozenset(r.name for r in rows[:i]) if row.everything_above else row.allowed
        for i, row in enumerate(rows)
    }
    wrong = [
        f"{imp.source.relative_to(ROOT)}:{imp.line}: {source} imports {imp.target}"
        for imp in imports()
        if imp.target
        and (source := row_of(module_name(imp.source))) != imp.target
        and imp.target not in allowed[source]
    ]
    assert wrong == [], "imports docs/architecture.md does not allow:\n" + "\n".join(wrong)


def test_every_allowance_of_the_table_is_used() -> None:
    used: dict[str, set[str]] = {}
    for imp in imports():
        source = row_of(module_name(imp.source))
        if imp.target and imp.target != source:
            used.setdefault(source, set()).add(imp.target)
    unused = {
        row.name: sorted(row.allowed - used.get(row.name, set()))
        for row in table()
        if row.allowed - used.get(row.name, set())
    }
    assert unused == {}, f"allowed in docs/architecture.md but never imported: {unused}"


def test_the_root_package_imports_nothing_of_rivet() -> None:
    assert [imp for imp in imports() if imp.source == SRC / "__init__.py"] == []


def test_the_rules_are_read_from_the_document() -> None:
    rows = {row.name: row for row in table()}
    assert rows["errors"].allowed == frozenset()
    assert "engine" in rows["runner"].allowed and "orchestrator" not in rows["runner"].allowed
    assert "engine" not in rows["lua"].allowed
    assert rows["cli"].everything_above


def test_the_server_never_loads_the_engine() -> None:
    probe = (
        "import sys, rivet.orchestrator.app, rivet.cli.server; "
        "print(sorted(m for m in sys.modules if m.startswith('rivet.engine')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


# --- names and sizes -------------------------------------------------------------------

SHADOWED = set(sys.stdlib_module_names) | {n for n in dir(builtins) if not n.startswith("_")}


def test_no_module_or_package_is_named_like_the_standard_library_or_a_builtin() -> None:
    named = [p for p in SRC.rglob("*") if "__pycache__" not in p.parts]
    clashes = [
        str(p.relative_to(ROOT))
        for p in named
        if (p.suffix == ".py" and p.stem in SHADOWED)
        or (p.is_dir() and (p / "__init__.py").is_file() and p.name in SHADOWED)
    ]
    assert clashes == []


def test_no_module_is_over_500_lines() -> None:
    sources = [*python_files(), *sorted(SRC.rglob("*.lua"))]
    long = {
        str(p.relative_to(ROOT)): n
        for p in sources
        if (n := len(p.read_text("utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
