"""The counts of a topology's lists against their limits (`model.limits`), on the plain
data that `yamlsrc` produced, before the schema sees it (pure): too many nodes, links,
slices... each become a `Problem` at the first item over the limit, else too many slivers,
virtual links or route pairs in total. The limits are read when called (bench/parse.py
lifts them to measure the unbounded cost)."""
from __future__ import annotations

from typing import Any

from . import limits
from .errors import Problem


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


def _over(data: Any, pattern: tuple, limit: int) -> tuple[tuple, int] | None:
    """(path of the first item past `limit`, total) when the lists at `pattern` hold more
    than `limit` items together, else None."""
    total, first = 0, None
    for path, items in _lists_at(data, pattern):
        if first is None and total + len(items) > limit:
            first = path + (limit - total,)
        total += len(items)
    return (first, total) if first is not None else None


def _slice_sizes(data: dict) -> list[tuple[int, int]]:
    """(nodes spanned, links used) of every slice, as the raw data declares them."""
    nodes = data.get("nodes") if isinstance(data.get("nodes"), list) else []
    links = data.get("links") if isinstance(data.get("links"), list) else []
    sizes = []
    for sl in data.get("slices") if isinstance(data.get("slices"), list) else []:
        sl = sl if isinstance(sl, dict) else {}
        spans, uses = sl.get("nodes", "all"), sl.get("links", "all")
        members = len(nodes) if spans == "all" else len(spans) if isinstance(spans, list) else 0
        if uses == "all":
            uses = links if spans == "all" else _links_within(links, spans)
        sizes.append((members, len(uses) if isinstance(uses, list) else 0))
    return sizes


def _links_within(links: list, spans: Any) -> list:
    names = set(n for n in spans if isinstance(n, str)) if isinstance(spans, list) else set()
    return [lk for lk in links if isinstance(lk, dict) and isinstance(lk.get("between"), list)
            and all(isinstance(end, str) and end in names for end in lk["between"])]


def _totals_problem(data: dict, smap) -> Problem | None:
    sizes = _slice_sizes(data)
    for total, limit, what in ((sum(n for n, _ in sizes), limits.MAX_SLIVERS, "slivers (the nodes each slice spans)"),
                               (sum(k for _, k in sizes), limits.MAX_VIRTUAL_LINKS, "virtual links (the links each slice uses)"),
                               (sum(n * n for n, _ in sizes), limits.MAX_ROUTE_PAIRS,
                                "route pairs (the square of the nodes each slice spans)")):
        if total > limit:
            return smap.problem(("slices",), f"slices: {total} {what}; a topology holds at most "
                                f"{limit} (vispd's limit)", at_key=True)
    return None


def count_problems(data: Any, smap) -> list[Problem]:
    """A located problem for every kind of list of the topology that holds more items
    than its limit (at the first item past it), else for more slivers, virtual links or
    route pairs than allowed. `smap` is the `yamlsrc.SourceMap` of `data`."""
    if not isinstance(data, dict):
        return []
    problems = []
    for pattern, limit, what in limits.COUNTED_LISTS:
        over = _over(data, pattern, limit)
        if over is not None:
            path, total = over
            problems.append(smap.problem(path, f"{pattern[-1]}: {total} {what}; a topology holds "
                                         f"at most {limit} (vispd's limit)"))
    if not problems:
        totals = _totals_problem(data, smap)
        problems = [totals] if totals else []
    return problems
