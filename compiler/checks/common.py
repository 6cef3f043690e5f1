"""What the semantic checks share (pure): a reporter that turns (path, message) into located
problems, name suggestions, and the duplicate-name rule."""
from __future__ import annotations

from model.errors import Problem
from model.hints import Hints
from model.yamlsrc import SourceMap


class Reporter:
    """Collects problems at the FILE:LINE:COL of a value path (`say(path, message)`)."""

    def __init__(self, smap: SourceMap):
        self.smap = smap
        self.problems: list[Problem] = []

    def __call__(self, path: tuple, message: str) -> None:
        self.problems.append(self.smap.problem(path, message))


class Known(set):
    """A set of declared names that also suggests the closest one to a name it lacks, with
    bounded work however many names are missing (model.hints)."""

    def __init__(self, names=()):
        super().__init__(names)
        self._hints: Hints | None = None

    def hint(self, name: str) -> str:
        if self._hints is None:
            self._hints = Hints(self)
        return self._hints.suffix(name)


def hint(name: str, known: "Known") -> str:
    """" (did you mean 'x'?)" for a name `known` lacks, or ""."""
    return known.hint(name)


def unique_names(items, attr: str, path: tuple, what: str, say) -> Known:
    """The declared names; every repeated one is reported at its second occurrence."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        value = getattr(item, attr)
        if value in seen:
            say(path + (i, attr), f"duplicate {what} name '{value}'")
        else:
            seen[value] = i
    return Known(seen)


def one_of(names) -> str:
    names = [f"'{n}'" for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
