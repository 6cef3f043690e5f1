"""The bounds on a topology file, in one place (pure).

Every stage after reading is at most linear in what these allow, so that any input up to
them is judged in a few seconds and a few hundred MB, and anything beyond them is refused
with one located message instead of a long run. The numbers were chosen by measuring the
worst inputs on a 2-core machine (see the README, "The topology file", and
tests/unit/test_hostile_input.py): a realistic research topology (Abilene: 4 kB; the
largest Topology Zoo network, about 750 PoPs: about 150 kB written as vispd YAML) is far
below each of them.

`count_problems(data, smap)` checks the counts on the plain data that `yamlsrc` produced,
before the schema sees it: too many nodes, links, slices... each become a `Problem` at the
first item over the limit.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # errors.py reads its output bounds from here
    from .errors import Problem

# -- reading ----------------------------------------------------------------------------
MAX_FILE_BYTES = 4 * 1024 * 1024  # larger files are refused at once, unread
READ_TIMEOUT_S = 2.0  # a pipe, FIFO or device must deliver all of its input within this

# -- YAML structure ---------------------------------------------------------------------
MAX_DEPTH = 64  # nesting of mappings and sequences (a topology needs 6), aliases included
MAX_VALUES = 250_000  # values once aliases and merge keys are expanded (scalars, lists, mappings, keys)
MAX_EXPANDED_CHARS = 2 * MAX_FILE_BYTES  # characters of all scalars once aliases are expanded
MAX_NUMBER_CHARS = 40  # a number written with more characters is refused (no field needs 20)

# -- error output -------------------------------------------------------------------------
MAX_SHOWN_PROBLEMS = 100  # the rest are counted, not printed
MAX_MESSAGE_CHARS = 300  # a message is shortened in the middle beyond this
EXCERPT_CHARS = 120  # the quoted source line is cut to this many characters around the caret
MAX_QUOTED_CHARS = 40  # a value quoted in a message is cut to this many characters

# -- counts (the later stages grow with them) ----------------------------------------------
MAX_NODES = 4096
MAX_LINKS = 16384
MAX_SLICES = 256
MAX_SLIVERS = 32768  # the sum over slices of the nodes each spans: the plan grows with it
MAX_PROVIDERS = 256
MAX_ACCESS = 1024  # entries under `access:`
MAX_ITEMS = 1024  # any other list: address-space, a slice's nodes/links/pseudo-devices/egress/announce, users

# (path pattern of a list, its limit, what its items are); '*' matches any list index.
_COUNTED: list[tuple[tuple, int, str]] = [
    (("nodes",), MAX_NODES, "nodes"),
    (("links",), MAX_LINKS, "links"),
    (("slices",), MAX_SLICES, "slices"),
    (("providers",), MAX_PROVIDERS, "providers"),
    (("access",), MAX_ACCESS, "access entries"),
    (("address-space",), MAX_ITEMS, "prefixes"),
    (("slices", "*", "nodes"), MAX_NODES, "nodes"),
    (("slices", "*", "links"), MAX_LINKS, "links"),
    (("slices", "*", "pseudo-devices"), MAX_ITEMS, "pseudo-devices"),
    (("slices", "*", "egress"), MAX_ITEMS, "providers"),
    (("slices", "*", "announce"), MAX_ITEMS, "announcements"),
    (("slices", "*", "announce", "*", "communities"), MAX_ITEMS, "communities"),
    (("access", "*", "nodes"), MAX_NODES, "nodes"),
    (("access", "*", "users"), MAX_ITEMS, "users"),
]


def _lists_at(data: Any, pattern: tuple, path: tuple = ()):
    """(path, list) for every list in `data` at `pattern` ('*' = each index of a list)."""
    if not pattern:
        if isinstance(data, list):
            yield path, data
        return
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        if isinstance(data, list):
            for index, item in enumerate(data):
                yield from _lists_at(item, rest, path + (index,))
    elif isinstance(data, dict) and head in data:
        yield from _lists_at(data[head], rest, path + (head,))


def _sliver_count(data: dict) -> int:
    nodes = data.get("nodes")
    all_nodes = len(nodes) if isinstance(nodes, list) else 0
    total = 0
    for sl in data.get("slices") if isinstance(data.get("slices"), list) else []:
        spans = sl.get("nodes", "all") if isinstance(sl, dict) else None
        total += all_nodes if spans == "all" else len(spans) if isinstance(spans, list) else 0
    return total


def count_problems(data: Any, smap) -> list[Problem]:
    """A located problem for every list of the topology longer than its limit, and for
    more slivers (slices × the nodes they span) than MAX_SLIVERS. `smap` is the
    `yamlsrc.SourceMap` of `data`."""
    if not isinstance(data, dict):
        return []
    problems = []
    for pattern, limit, what in _COUNTED:
        for path, items in _lists_at(data, pattern):
            if len(items) > limit:
                problems.append(smap.problem(path + (limit,), f"{path[-1]}: {len(items)} {what}; "
                                             f"a topology holds at most {limit} (vispd's limit)"))
    slivers = _sliver_count(data)
    if slivers > MAX_SLIVERS and not problems:
        problems.append(smap.problem(("slices",), f"slices: {slivers} slivers (slices × the nodes each "
                                     f"spans); a topology holds at most {MAX_SLIVERS} (vispd's limit)",
                                     at_key=True))
    return problems
