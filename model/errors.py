"""Errors that point at the user's YAML: FILE:LINE:COL plus a caret line (pure).

Owns the `SourceMark` (where a value came from) and `TopologyError`, which carries
several `Problem`s so that one run reports every mistake it found, not just the first.
What is printed is bounded whatever the input: a message is one line of at most
`MAX_MESSAGE_CHARS`, the quoted source line is an excerpt of `EXCERPT_CHARS` around the
caret (which stays under the column, tabs and wide characters included), and at most
`MAX_SHOWN_PROBLEMS` problems are printed, the rest counted.

Pure.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .limits import EXCERPT_CHARS, MAX_MESSAGE_CHARS, MAX_QUOTED_CHARS, MAX_SHOWN_PROBLEMS

ELLIPSIS = "…"


@dataclass(frozen=True, order=True, slots=True)
class SourceMark:
    """A position in a source file; line and column are 1-based, as editors show them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def shorten(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its head and tail around an ellipsis."""
    if len(text) <= limit:
        return text
    tail = limit // 4
    return text[: limit - tail - 1] + ELLIPSIS + text[len(text) - tail:]


def excerpt(line: str, column: int, width: int = EXCERPT_CHARS) -> tuple[str, str]:
    """(at most `width` characters of `line` around 1-based `column`, the padding that puts
    a caret under that column in a terminal: tabs kept, wide characters counted twice)."""
    index = max(0, column - 1)
    start, end = 0, len(line)
    if len(line) > width:
        start = max(0, min(index - width // 2, len(line) - width))
        end = start + width
    shown = (ELLIPSIS if start else "") + line[start:end] + (ELLIPSIS if end < len(line) else "")
    before = line[start:min(index, end)]
    pad = (" " if start else "") + "".join(_cell(ch) for ch in before)
    return shown, pad + " " * max(0, index - len(line))


def _cell(ch: str) -> str:
    if ch == "\t":
        return "\t"
    if unicodedata.combining(ch):
        return ""
    return "  " if unicodedata.east_asian_width(ch) in ("W", "F") else " "


@dataclass(frozen=True)
class Problem:
    mark: SourceMark | None
    message: str
    source_line: str | None = None  # the text of the offending line, for the caret

    def __post_init__(self) -> None:
        # One short line, whatever went into it (a quoted value can be megabytes long).
        one_line = " ".join(self.message.split("\n")) if "\n" in self.message else self.message
        object.__setattr__(self, "message", shorten(one_line, MAX_MESSAGE_CHARS))

    def render(self, with_caret: bool = True) -> str:
        where = str(self.mark) if self.mark else "<topology>"
        text = f"{where}: {self.message}"
        if with_caret and self.mark and self.source_line is not None:
            shown, pad = excerpt(self.source_line, self.mark.column)
            text += f"\n    {shown}\n    {pad}^"
        return text


@dataclass
class TopologyError(Exception):
    """Raised when a topology cannot be loaded; holds every problem found, sorted by place."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.problems = sorted(
            self.problems,
            key=lambda p: (p.mark or SourceMark("", 0, 0), p.message),
        )
        super().__init__(self.render(with_caret=False))

    def render(self, with_caret: bool = True) -> str:
        shown = self.problems[:MAX_SHOWN_PROBLEMS]
        text = "\n".join(p.render(with_caret) for p in shown)
        hidden = len(self.problems) - len(shown)
        if hidden:
            text += f"\n... and {hidden} more problem{'s' if hidden != 1 else ''} (the first {len(shown)} are shown)"
        return text


class VispdError(Exception):
    """A failure the user can act on (missing state, kernel refusal); printed without traceback."""


class UnknownTopology(VispdError):
    """The TOPOLOGY argument is neither a file nor a topology that is up (bad input: exit 2)."""


def quote(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """repr() of a string, cut to about `limit` characters (with its length when cut)."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"{ELLIPSIS} ({len(text)} characters)"


def describe_value(value: Any) -> str:
    """How a YAML value reads in an error message."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return quote(value)
    return shorten(str(value), MAX_QUOTED_CHARS)


class BadRequest(VispdError):
    """A command names something the topology does not have (exit status 2, like bad YAML)."""
