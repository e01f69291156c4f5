"""Size limits and value rules of the HTTP API, shared by the server, the runner, the
CLI and the Lua runtime so that all of them refuse the same things with the same words.

Why each number:

- Names (pipelines, stages, runners, tag keys and values, plugins) are stored in
  ``VARCHAR(200)`` columns: :data:`MAX_NAME`.
- Versions, log sequence numbers and paging offsets are stored in or compared with
  32-bit ``integer`` columns: :data:`MAX_INT32`.
- Numbers that reach a pipeline (inputs) or leave it (outputs) must survive JSON, both
  databases (PostgreSQL's ``jsonb`` turns ``1e30`` into the integer
  1000000000000000000000000000000, which Lua cannot hold) and Lua, whose integers are
  64-bit and whose floats are doubles: finite, with ``|x| <= 2**53``
  (:data:`MAX_EXACT_NUMBER`), the range where every integer is exact in both.
- Text must be valid Unicode without NUL: PostgreSQL refuses NUL in ``text`` and
  ``jsonb``, and a lone UTF-16 surrogate (``"\\ud800"`` in JSON) cannot be encoded as
  UTF-8, so it breaks every answer that would carry it.
- Names (pipelines, stages, runners, tags, plugins, grants) are shown in terminals,
  tables and logs and typed back to find things, so each must read as what it is: no
  control, format or bidi character (:func:`name_problem`). A pipeline's name is also
  a segment of its URL (``/api/pipelines/NAME``): no ``/``, not ``.`` or ``..``, no
  leading or trailing blank (:func:`pipeline_name_problem`). Both rules apply where a
  name is *made* (a definition, a registration, a grant), never where one is looked
  up: rows stored before the rules existed stay readable.

The request body as a whole is capped by the server setting ``RIVET_MAX_BODY_BYTES``
(:data:`DEFAULT_MAX_BODY_BYTES`); the caps below bound each part of it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_DESCRIPTION",
    "MAX_ERROR",
    "MAX_EXACT_NUMBER",
    "MAX_FILENAME",
    "MAX_GRANTS",
    "MAX_INPUTS",
    "MAX_INT32",
    "MAX_LOG_LINES",
    "MAX_LOG_MESSAGE",
    "MAX_NAME",
    "MAX_OUTPUTS",
    "MAX_OUTPUTS_BYTES",
    "MAX_OUTPUT_NAME",
    "MAX_PLUGINS",
    "MAX_SOURCE_BYTES",
    "MAX_TAGS",
    "MAX_TOKEN",
    "MAX_VALUE",
    "PIPELINE_NAME_RULE",
    "name_problem",
    "number_problem",
    "output_size",
    "outputs_size",
    "pipeline_name_problem",
    "scrub",
    "text_problem",
    "text_problems",
    "truncate",
    "value_problems",
]

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_SOURCE_BYTES = 1024 * 1024  # a pipeline file, UTF-8
MAX_FILENAME = 255
MAX_NAME = 200
MAX_DESCRIPTION = 1000
MAX_TOKEN = 200
MAX_INPUTS = 100  # launch inputs, and inputs a pipeline may declare
# Outputs (output.set, the completion): the runner's caps (rivet.engine.limits uses
# these very numbers), so that the server accepts whatever a job may set.
MAX_OUTPUTS = 1000
MAX_OUTPUT_NAME = 256
MAX_OUTPUTS_BYTES = 1024 * 1024  # names and values together, UTF-8
MAX_VALUE = 64 * 1024  # characters of one string input value
MAX_LOG_LINES = 1000  # lines in one log batch
MAX_LOG_MESSAGE = 64 * 1024  # characters of one log line
MAX_ERROR = 64 * 1024  # characters of a job's or stage's error
MAX_TAGS = 50
MAX_PLUGINS = 50
MAX_GRANTS = 100
MAX_INT32 = 2**31 - 1
MAX_EXACT_NUMBER = 2**53

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored or sent (NUL, lone surrogate), or None."""
    found = _BAD_TEXT.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "contains a NUL character (\\u0000), which cannot be stored"
    return (
        f"contains a lone UTF-16 surrogate (\\u{ord(char):04x}), which is not valid Unicode "
        "text (send the character itself, or both halves of a surrogate pair)"
    )


# Unicode categories no name may hold: Cc (C0 and C1 controls, DEL), Cf (format
# characters: bidi embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069,
# the marks U+200E, U+200F and U+061C, zero-width U+200B-U+200D, U+2060, the BOM
# U+FEFF, soft hyphen...), Zl and Zp (U+2028, U+2029).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


PIPELINE_NAME_RULE = (
    f"a pipeline name has 1 to {MAX_NAME} characters, no '/', no control, format or bidi "
    "characters and no leading or trailing whitespace, and is not '.' or '..' (it is part "
    "of the pipeline's URL)"
)


def _hidden_character(name: str) -> str | None:
    if name.isascii() and name.isprintable():
        return None  # the common case, without a look-up per character
    for position, char in enumerate(name, start=1):
        if unicodedata.category(char) in _HIDDEN_CATEGORIES:
            what = unicodedata.name(char, "a control character")
            return f"contains U+{ord(char):04X} ({what}) at character {position}"
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name anything (it holds a control, format or bidi
    character, which would hide or reorder text where it is shown), or None."""
    found = _hidden_character(name)
    if found is None:
        return None
    return f"{found}: names may not hold control, format or bidi characters"


def pipeline_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a new pipeline's name (:data:`PIPELINE_NAME_RULE`), or
    None. The name is a segment of ``/api/pipelines/NAME``: a server decodes ``%2F``
    before routing, and clients drop ``.`` and ``..`` segments. Letters of every
    script, digits, inner spaces and other punctuation are fine."""
    if not name:
        why: str | None = "is empty"
    elif name != name.strip():
        why = "starts or ends with whitespace"
    elif "/" in name:
        why = "contains '/'"
    elif name in (".", ".."):
        why = f"is {name!r}"
    elif len(name) > MAX_NAME:
        why = f"has {len(name)} characters"
    else:
        why = _hidden_character(name)
    return None if why is None else f"{why}; {PIPELINE_NAME_RULE}"


def number_problem(value: float) -> str | None:
    """Why a pipeline number cannot be used exactly (infinite, NaN, too large), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    if abs(value) > MAX_EXACT_NUMBER:
        return (
            f"{value!r} is outside the range of numbers a pipeline can use exactly "
            f"(-2^53 to 2^53, i.e. ±{MAX_EXACT_NUMBER})"
        )
    return None


def text_problems(data: Any, path: str) -> Iterator[tuple[str, str]]:
    """``(path, problem)`` for every string (dict keys included) in JSON-like ``data``
    that :func:`text_problem` refuses; paths read like ``body.inputs.name``."""
    if isinstance(data, str):
        problem = text_problem(data)
        if problem is not None:
            yield path, problem
    elif isinstance(data, dict):
        for key, item in data.items():
            key_problem = text_problem(key) if isinstance(key, str) else None
            shown = _SURROGATE.sub("\ufffd", str(key)).replace("\x00", "\\u0000")
            if key_problem is not None:
                yield f"{path}.{shown}", f"the key {key_problem}"
            yield from text_problems(item, f"{path}.{shown}")
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from text_problems(item, f"{path}[{index}]")


def value_problems(data: Any, path: str) -> Iterator[tuple[str, str]]:
    """Like :func:`text_problems`, and also numbers :func:`number_problem` refuses:
    everything that must not reach a pipeline (a stored job's inputs, for example)."""
    yield from text_problems(data, path)
    yield from _number_problems(data, path)


def _number_problems(data: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(data, bool):
        return
    if isinstance(data, int | float):
        problem = number_problem(data)
        if problem is not None:
            yield path, problem
    elif isinstance(data, dict):
        for key, item in data.items():
            yield from _number_problems(item, f"{path}.{key}")
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _number_problems(item, f"{path}[{index}]")


def scrub(data: Any) -> Any:
    """JSON-like ``data`` made safe to show: lone surrogates become U+FFFD and
    non-finite floats their name ("inf", "nan"). For rows an older version stored
    before these rules existed; new rows never need it. Returns ``data`` itself
    when nothing had to change (the common case costs one scan)."""
    if isinstance(data, str):
        return _SURROGATE.sub("\ufffd", data) if _SURROGATE.search(data) else data
    if isinstance(data, float):
        return data if math.isfinite(data) else str(data)
    if isinstance(data, dict):
        changed = False
        cleaned: dict[Any, Any] = {}
        for key, item in data.items():
            new_key, new_item = scrub(key), scrub(item)
            changed = changed or new_key is not key or new_item is not item
            cleaned[new_key] = new_item
        return cleaned if changed else data
    if isinstance(data, list):
        items = [scrub(v) for v in data]
        return items if any(a is not b for a, b in zip(items, data, strict=True)) else data
    return data


def output_size(key: str, value: object) -> int:
    """What one output counts against :data:`MAX_OUTPUTS_BYTES`: its name and its value
    (numbers and booleans as their text), in UTF-8 bytes."""
    text = value if isinstance(value, str) else str(value)
    return len(key.encode("utf-8", "replace")) + len(text.encode("utf-8", "replace"))


def outputs_size(outputs: dict[str, Any]) -> int:
    return sum(output_size(key, value) for key, value in outputs.items())


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    marker = f" … [{len(text) - limit} more characters cut: the limit is {limit}]"
    keep = max(limit - len(marker), 0)
    return text[:keep] + marker[: limit - keep]
