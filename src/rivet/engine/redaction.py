"""Redaction of secret values from everything a job emits (log lines, outputs, errors).

The job context passes every log message through :meth:`Redactor.redact` before it
reaches the event sink, and the process module filters each output stream of a
command through its own :class:`StreamRedactor`, so nothing un-redacted leaves the
executor. What is replaced by ``***``:

- every registered secret value, and its *forms*: each line of a multi-line value,
  standard and URL-safe base64 (whole, and the three alignments the value can take
  inside a longer base64 text), lower/upper-case hex, URL-encoding (``%XX`` in both
  cases, ``+`` for spaces), JSON string escaping, and the quoting Rivet itself
  applies to text in messages: Python's ``repr``/``ascii`` (``{value!r}`` in an
  error) with either quote, and POSIX shell quoting (``shlex.quote``);
- a value (or form) split over consecutive lines of one stream or message: the
  part on the second (third…) line is always redacted; the first line is redacted
  when it ends with at least :data:`MIN_FRAGMENT` leading characters of a form.
  *Breaks* are not only newlines: every control character but the tab (``\r`` of a
  progress bar, ``\x0b``, ``\x0c``, backspace, C1 controls, U+2028/U+2029) and
  every terminal escape sequence (``\x1b[2K``, ``\x1b[31m``…) splits the text the
  same way, so a value with a ``\r`` or a colour code in the middle is masked;
- common credential shapes, registered or not (:data:`CREDENTIAL_SHAPES`):
  GitHub and GitLab tokens, AWS access key ids, bearer tokens and ``Authorization``
  header values, and PEM private-key blocks (also when printed over many lines).

Limits (see docs/secrets.md): values shorter than
:data:`~rivet.domain.secret_rules.MIN_SECRET_LENGTH`
non-blank characters are not registered (the server and ``rivet run`` refuse them),
a line ending with fewer than :data:`MIN_FRAGMENT` leading characters of a value
keeps them, and a pipeline that deliberately transforms a value (reverses it,
prints one character per line) defeats any redaction: this protects against
accidents, not against a hostile pipeline author who was granted the secret.

Speed: all literal forms are compiled into one regular expression built from a
trie (shared prefixes are factored out), so one ``re`` scan per line finds every
form of every secret; the credential shapes are a second compiled expression.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

from rivet.domain.secret_rules import MIN_SECRET_LENGTH

__all__ = [
    "CREDENTIAL_SHAPES",
    "MASK",
    "MIN_FRAGMENT",
    "Redactor",
    "StreamRedactor",
    "secret_forms",
]

MASK = "***"
# A line ending with this many leading characters of a form is masked at its end even
# though the next line has not arrived yet (streams are not delayed to wait for it).
MIN_FRAGMENT = 4

_TOKEN68 = r"[A-Za-z0-9\-._~+/]+=*"
CREDENTIAL_SHAPES: dict[str, str] = {
    "github-token": r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,251}(?![A-Za-z0-9])",
    "github-fine-grained-token": r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,251}",
    "gitlab-token": r"(?<![A-Za-z0-9_])glpat-[A-Za-z0-9_\-]{20,}",
    "aws-access-key-id": r"(?<![A-Z0-9])A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Z0-9])",
    "aws-secret-access-key": (
        r"(?i:aws_secret_access_key)[\"']?\s*[:=]\s*[\"']?(?P<aws>[A-Za-z0-9/+=]{16,})"
    ),
    # The whole value of an Authorization header, whatever its scheme.
    "authorization-header": (
        r"(?i:\bauthorization)[\"']?\s*[:=]\s*[\"']?"
        r"(?:(?i:bearer|basic|token|bot)\s+)?(?P<auth>[^\s\"',;]+)"
    ),
    "bearer-token": r"(?i:\bbearer)\s+(?P<bearer>" + _TOKEN68 + ")",
}
_SHAPES = re.compile("|".join(f"(?:{p})" for p in CREDENTIAL_SHAPES.values()))
_SHAPE_GROUPS = ("aws", "auth", "bearer")
# Every shape contains one of these (lower-cased); a cheap pre-check before the regex.
_SHAPE_MARKERS = (
    "gh",
    "github_pat_",
    "glpat-",
    "akia",
    "asia",
    "aws_secret",
    "authorization",
    "bearer",
)
# Where a text is cut into segments for the split-value logic (see the module
# docstring): runs of terminal escape sequences (CSI first, so its parameters go with
# it; then ESC + one final byte, with intermediates) and of control characters other
# than the tab, including C1 controls and the Unicode line and paragraph separators.
BREAKS = re.compile(
    r"(?:\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|\x1b[ -/]*[0-~]"
    r"|[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029])+"
)
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")


def _base64_forms(data: bytes) -> list[str]:
    """Whole encodings, plus the part of the encoding that depends only on ``data``
    when it sits at byte offset 0, 1 or 2 (mod 3) of a longer encoded text."""
    forms: list[str] = []
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode()
        forms += [whole, whole.rstrip("=")]
        forms.append(encode(data + b"\n").decode())  # `echo $TOKEN | base64`
        for offset in range(3):
            encoded = encode(b"\0" * offset + data + b"\0\0").decode()
            # Character i covers bits [6i, 6i+6); keep those inside the value's bits.
            first = -(-8 * offset // 6)
            last = 8 * (offset + len(data)) // 6
            forms.append(encoded[first:last])
    return forms


def _url_forms(value: str) -> list[str]:
    forms = []
    for encoded in (quote(value, safe=""), quote(value), quote_plus(value)):
        forms.append(encoded)
        forms.append(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded))
    return forms


def _json_forms(value: str) -> list[str]:
    ascii_form = json.dumps(value)[1:-1]
    return [ascii_form, json.dumps(value, ensure_ascii=False)[1:-1], ascii_form.replace("/", "\\/")]


def _quoted_forms(value: str) -> list[str]:
    """What Rivet's own messages make of a text: ``repr`` and ``ascii`` (``{x!r}``),
    inside single quotes (``'`` escaped) and inside double quotes (where Python puts a
    text containing ``'``), and POSIX shell quoting (``shlex.quote``, ``shlex.join``)."""
    forms: list[str] = []
    for quote_fn in (repr, ascii):
        forms.append(quote_fn(value)[1:-1])  # the quoting Python picks for the value
        forms.append(quote_fn(value + '"')[1:-2])  # single quotes forced: \' escapes
    forms.append(value.replace("'", "'\"'\"'"))  # inside shlex.quote's '…'
    return forms


def secret_forms(value: str) -> set[str]:
    """Every text without breaks (:data:`BREAKS`) that reveals ``value`` and is long
    enough to match on: each form once whole with its breaks removed, and once per
    segment between breaks (a multi-line value printed line by line)."""
    data = value.encode("utf-8")
    candidates: list[str] = [value]
    candidates += _base64_forms(data)
    candidates += [data.hex(), data.hex().upper()]
    candidates += _url_forms(value)
    candidates += _json_forms(value)
    candidates += _quoted_forms(value)
    forms: set[str] = set()
    for candidate in candidates:
        forms.add(BREAKS.sub("", candidate))
        if BREAKS.search(candidate):
            forms.update(part.strip() for part in BREAKS.split(candidate))
    return {form for form in forms if len(form.strip()) >= MIN_SECRET_LENGTH}


_Trie = dict[str, "_Trie"]  # char -> subtree; the key "" marks the end of a word


def _trie_regex(words: Iterable[str]) -> str:
    """One alternation for many literals, prefixes factored out; at any position the
    longest word wins (greedy optional groups try the longer branch first)."""
    root: _Trie = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: _Trie) -> str:
        branches: list[str] = []
        for char in sorted(k for k in node if k):
            child = node[char]
            chain = [char]
            # Compress runs of single-child, non-terminal nodes: keeps recursion shallow.
            while len(child) == 1 and "" not in child:
                ((next_char, child),) = child.items()
                chain.append(next_char)
            branches.append(re.escape("".join(chain)) + emit(child))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(root)


_Partial = tuple[int, tuple[str, ...]]  # (start in the scanned text, forms it may become)
# Raw characters of a stream kept for the next line: enough for any short form to be
# found across a line break; a longer form begun earlier is followed as an open
# partial instead, so the text scanned per line stays small whatever the secrets.
TAIL_CHARS = 256


@dataclass(frozen=True)
class _Matcher:
    """An immutable snapshot of the registered forms: swapped whole on ``add`` so that
    readers on other threads never see a half-built state and need no lock.

    One regex finds the candidate positions: where the first MIN_FRAGMENT characters
    of some form start (every form is at least that long). Candidates are rare in
    ordinary text, and each is checked against the few forms sharing that head."""

    heads: re.Pattern[str] | None
    by_head: dict[str, tuple[str, ...]]
    max_len: int

    @classmethod
    def build(cls, forms: set[str]) -> _Matcher:
        if not forms:
            return cls(None, {}, 0)
        by_head: dict[str, list[str]] = {}
        for form in forms:
            by_head.setdefault(form[:MIN_FRAGMENT], []).append(form)
        return cls(
            re.compile(_trie_regex(by_head)),
            {head: tuple(sorted(fs, key=len, reverse=True)) for head, fs in by_head.items()},
            max(len(f) for f in forms),
        )

    def spans(self, text: str, start: int) -> tuple[list[tuple[int, int]], _Partial | None]:
        """Spans of forms in ``text`` that end after ``start``; and the trailing partial
        form (at least MIN_FRAGMENT leading characters at the very end), if any, which
        is also masked: its position and the forms it may still become."""
        found: list[tuple[int, int]] = []
        if self.heads is None:
            return found, None
        size = len(text)
        search = self.heads.search
        match = search(text)
        while match is not None:
            position = match.start()
            forms = self.by_head[match.group()]
            full = next((f for f in forms if text.startswith(f, position)), None)
            if full is not None:
                if position + len(full) > start:
                    found.append((position, position + len(full)))
            elif size - position < len(forms[0]):
                rest = text[position:]
                growing = tuple(f for f in forms if len(f) > len(rest) and f.startswith(rest))
                if growing:
                    # The leftmost partial is the longest: mask to the end and stop.
                    found.append((position, size))
                    return found, (position, growing)
            # One step, not a jump past the match: forms of different secrets overlap.
            match = search(text, position + 1)
        return found, None


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    parts: list[str] = []
    position = 0
    for begin, end in _merge(spans):
        parts.append(text[position:begin])
        parts.append(MASK)
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _shift(spans: list[tuple[int, int]], by: int) -> list[tuple[int, int]]:
    return [(begin + by, end + by) for begin, end in spans]


def _back_spans(segments: list[tuple[int, int]], count: int) -> list[tuple[int, int]]:
    """The last ``count`` characters of ``segments`` (positions in one text), as spans."""
    spans: list[tuple[int, int]] = []
    for begin, end in reversed(segments):
        if count <= 0:
            break
        take = min(count, end - begin)
        spans.append((end - take, end))
        count -= take
    return spans


def _shape_spans(line: str) -> list[tuple[int, int]]:
    # Substring tests run at memchr speed; most lines contain none of the markers, and
    # the shapes regex (with its look-behinds) is the slowest step of a line.
    lowered = line.lower()
    if not any(marker in lowered for marker in _SHAPE_MARKERS):
        return []
    spans = []
    for match in _SHAPES.finditer(line):
        group = next((g for g in _SHAPE_GROUPS if match.group(g) is not None), None)
        spans.append(match.span(group) if group else match.span())
    return spans


_OpenForm = tuple[str, tuple[str, ...]]


class StreamRedactor:
    """Redacts consecutive lines of one stream (a process's stdout, say), remembering
    the raw end of the previous lines so that a value split across them is found.
    One per stream; not thread-safe (a stream's lines arrive on one thread)."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._tail = ""
        # A form begun on earlier lines and not finished yet: its raw text so far and
        # the forms it may still become.
        self._open: _OpenForm | None = None
        self._in_private_key = False

    def line(self, line: str) -> str:
        """``line`` with every secret it shows masked; the breaks it contains (line
        ends, ``\r``, other controls, escape sequences) are kept as they are."""
        return _mask(line, self.spans(line))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where ``text`` shows secrets: ``(begin, end)`` positions to mask. The text
        is cut at its breaks into segments that are read as consecutive lines; a form
        that ends in a later segment of ``text`` is also masked in the earlier ones
        (they have not been sent yet), whatever their length."""
        # Every break character is unprintable: most lines are settled by this C-speed
        # test (the BREAKS scan is ten times slower on a line without any).
        if text.isprintable() or BREAKS.search(text) is None:
            return self._segment(text)[0]
        spans: list[tuple[int, int]] = []
        earlier: list[tuple[int, int]] = []  # the segments of ``text`` seen so far
        position = 0
        ends = [(m.start(), m.end()) for m in BREAKS.finditer(text)] + [(len(text), len(text))]
        for begin, end in ends:
            if begin > position:
                found, back = self._segment(text[position:begin])
                spans += _shift(found, position)
                spans += _back_spans(earlier, back)
                earlier.append((position, begin))
            position = end
        return spans

    def _segment(self, body: str) -> tuple[list[tuple[int, int]], int]:
        """Spans in one segment (no breaks), which continues the previous ones; and
        how many characters before it (in earlier segments) a form found here began."""
        matcher = self._redactor._matcher
        spans, still_open = self._continue_open(body)
        joined = self._tail + body
        offset = len(self._tail)
        found, partial = matcher.spans(joined, offset)
        spans += [(max(begin, offset) - offset, end - offset) for begin, end in found]
        back = max((offset - begin for begin, _ in found if begin < offset), default=0)
        if still_open is None and partial is not None:
            position, forms = partial
            still_open = (joined[position:], forms)
        self._open = still_open
        spans += _shape_spans(body)
        spans += self._private_key_spans(body)
        keep = min(matcher.max_len - 1, TAIL_CHARS)
        self._tail = joined[-keep:] if keep > 0 else ""
        return spans, back

    def _continue_open(self, body: str) -> tuple[list[tuple[int, int]], _OpenForm | None]:
        """Where ``body`` continues the open partial form: the span to mask, and the
        partial to carry on when the form goes on past this line."""
        if self._open is None:
            return [], None
        seen, forms = self._open
        text = seen + body
        growing = tuple(f for f in forms if len(f) > len(text) and f.startswith(text))
        if growing:
            return [(0, len(body))], (text, growing)
        done = [len(f) - len(seen) for f in forms if text.startswith(f)]
        return ([(0, max(done))] if done else []), None

    def _private_key_spans(self, body: str) -> list[tuple[int, int]]:
        """Everything between BEGIN … PRIVATE KEY and END … PRIVATE KEY markers, which
        stay visible; the state carries over lines."""
        spans: list[tuple[int, int]] = []
        position = 0
        while position <= len(body):
            if self._in_private_key:
                end = _PEM_END.search(body, position)
                if end is None:
                    if position < len(body):
                        spans.append((position, len(body)))
                    return spans
                if end.start() > position:
                    spans.append((position, end.start()))
                self._in_private_key = False
                position = end.end()
            else:
                begin = _PEM_BEGIN.search(body, position)
                if begin is None:
                    return spans
                self._in_private_key = True
                position = begin.end()
        return spans


class Redactor:
    """Collects the secret values a job has seen and masks them; thread-safe.

    :meth:`add` may be called while other threads redact: they keep using the
    previous snapshot until the new one is swapped in (an attribute assignment).
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._matcher = _Matcher.build(set())
        self.add_all(values)

    def add(self, value: str) -> bool:
        """Remember ``value`` so that later text containing it (or one of its forms) is
        masked; False when it is too short to be redacted (it is then ignored)."""
        return self.add_all([value]) == 1

    def add_all(self, values: Iterable[str]) -> int:
        """Register several values with one rebuild; how many are (now) registered."""
        accepted = 0
        with self._lock:
            fresh: set[str] = set()
            for value in values:
                if len(value.strip()) < MIN_SECRET_LENGTH:
                    continue
                accepted += 1
                if value not in self._values:
                    self._values.add(value)
                    fresh |= secret_forms(value)
            if fresh - self._forms:
                self._forms |= fresh
                self._matcher = _Matcher.build(self._forms)
        return accepted

    def __len__(self) -> int:
        return len(self._values)

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)

    def redact(self, text: str) -> str:
        """``text`` with every secret masked; its lines (and other segments between
        breaks) are treated as one stream, so a value split over two lines of one
        message, or around a ``\r``, is found too."""
        return StreamRedactor(self).line(text)

    def shell_join(self, argv: Sequence[str]) -> str:
        """``shlex.join(argv)`` with every secret masked *before* quoting, for the
        ``$ cmd`` line and command errors: quoting would otherwise cut a value with a
        quote, a space or a backslash into pieces no form matches. Secrets are looked
        for in the arguments joined by spaces, so a value spanning two arguments is
        masked in both."""
        joined = " ".join(argv)
        spans = _merge(self.stream().spans(joined))
        if not spans:
            return shlex.join(argv)
        shown: list[str] = []
        start = 0
        for arg in argv:
            end = start + len(arg)
            inside = [
                (max(b, start) - start, min(e, end) - start)
                for b, e in spans
                if b < end and e > start
            ]
            shown.append(_mask(arg, inside))
            start = end + 1
        return shlex.join(shown)
