"""What the semantic checks share (pure): a reporter that turns (path, message) into located
problems, name suggestions, and the duplicate-name rule."""
from __future__ import annotations

import difflib

from model.errors import Problem
from model.yamlsrc import SourceMap


class Reporter:
    """Collects problems at the FILE:LINE:COL of a value path (`say(path, message)`)."""

    def __init__(self, smap: SourceMap):
        self.smap = smap
        self.problems: list[Problem] = []

    def __call__(self, path: tuple, message: str) -> None:
        self.problems.append(self.smap.problem(path, message))


def hint(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unique_names(items, attr: str, path: tuple, what: str, say) -> set[str]:
    """The set of names; every repeated one is reported at its second occurrence."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        value = getattr(item, attr)
        if value in seen:
            say(path + (i, attr), f"duplicate {what} name '{value}'")
        else:
            seen[value] = i
    return set(seen)


def one_of(names) -> str:
    names = [f"'{n}'" for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
