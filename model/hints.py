"""'Did you mean' hints with bounded work (pure).

difflib compares a misspelt name with every known one, so a file whose thousands of links
name thousands of unknown nodes costs misses × names comparisons: minutes for a file of a
few hundred kB. A `Hints` object answers each distinct name once and stops looking after
`MAX_HINT_COMPARISONS` comparisons in all: later misses are still reported, without a hint.

    hints = Hints(node_names)
    say(path, f"link endpoint '{name}' is not a declared node{hints.suffix(name)}")
"""
from __future__ import annotations

import difflib
from typing import Iterable

MAX_HINT_COMPARISONS = 200_000  # about 0.5 s of difflib on this machine's cores


class Hints:
    def __init__(self, known: Iterable[str], budget: int = MAX_HINT_COMPARISONS) -> None:
        self.known = sorted(set(known))
        self.budget = budget
        self.answers: dict[str, str | None] = {}

    def closest(self, name: str) -> str | None:
        """The known name closest to `name` (difflib's ratio at least 0.6), or None."""
        if name in self.answers:
            return self.answers[name]
        if self.budget < len(self.known):
            return None
        self.budget -= len(self.known)
        close = difflib.get_close_matches(name, self.known, n=1, cutoff=0.6)
        self.answers[name] = close[0] if close else None
        return self.answers[name]

    def suffix(self, name: str) -> str:
        """" (did you mean 'x'?)" or ""."""
        close = self.closest(name)
        return f" (did you mean '{close}'?)" if close else ""
