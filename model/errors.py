"""Errors that point at the user's YAML: FILE:LINE:COL plus a caret line.

Owns the `SourceMark` (where a value came from) and `TopologyError`, which carries
several `Problem`s so that one run reports every mistake it found, not just the first.

Pure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class SourceMark:
    """A position in a source file; line and column are 1-based, as editors show them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    mark: SourceMark | None
    message: str
    source_line: str | None = None  # the text of the offending line, for the caret

    def render(self, with_caret: bool = True) -> str:
        where = str(self.mark) if self.mark else "<topology>"
        text = f"{where}: {self.message}"
        if with_caret and self.mark and self.source_line is not None:
            text += f"\n    {self.source_line}\n    {' ' * (self.mark.column - 1)}^"
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
        return "\n".join(p.render(with_caret) for p in self.problems)


class VispdError(Exception):
    """A failure the user can act on (missing state, kernel refusal); printed without traceback."""


class UnknownTopology(VispdError):
    """The TOPOLOGY argument is neither a file nor a topology that is up (bad input: exit 2)."""


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
        return repr(value)
    return str(value)


class BadRequest(VispdError):
    """A command names something the topology does not have (exit status 2, like bad YAML)."""
