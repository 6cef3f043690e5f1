"""Load a topology file: YAML → strict schema → semantic checks → `Topology`.

Every problem becomes a `Problem` at the FILE:LINE:COL of the offending value, and all
problems of a run are reported together (`TopologyError`). Nothing here touches the
kernel; `load_topology` is what every command calls before doing anything.
"""
from __future__ import annotations

from pydantic import ValidationError

from .errors import Problem, TopologyError
from .model import Topology
from .semantic import check_semantics
from .yamlsrc import SourceMap, load_marked


def _pydantic_problems(exc: ValidationError, smap: SourceMap) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        kind = error["type"]
        # Union members add their tag ("list[...]", "literal[...]") to the path: drop them.
        path = tuple(p for p in loc if isinstance(p, int) or ("[" not in str(p) and "'" not in str(p)))
        message = error["msg"]
        if kind == "extra_forbidden":
            message = f"unknown key '{path[-1]}'"
            problems.append(smap.problem(path, message, at_key=True))
            continue
        if kind == "missing":
            parent = path[:-1]
            message = f"missing required key '{path[-1]}'"
            problems.append(smap.problem(parent, message, at_key=bool(parent)))
            continue
        if kind == "value_error":
            message = message.removeprefix("Value error, ")
        elif kind == "string_pattern_mismatch":
            message = f"{error['input']!r} is not a valid name (lower-case letters, digits, '-')"
        field_name = next((str(p) for p in reversed(path) if isinstance(p, str)), "value")
        problems.append(smap.problem(path, f"{field_name}: {message}"))
    # Unions report one error per member; keep one message per place and text.
    unique: dict[tuple, Problem] = {}
    for problem in problems:
        unique.setdefault((problem.mark, problem.message), problem)
    return _collapse_union_noise(list(unique.values()))


def _collapse_union_noise(problems: list[Problem]) -> list[Problem]:
    """At one place, 'input should be all' plus 'should be a list' read better as one line."""
    by_mark: dict[object, list[Problem]] = {}
    for problem in problems:
        by_mark.setdefault(problem.mark, []).append(problem)
    result = []
    for mark, group in by_mark.items():
        literal = [p for p in group if "Input should be 'all'" in p.message]
        rest = [p for p in group if p not in literal]
        if literal and rest and all("valid list" in p.message for p in rest):
            name = literal[0].message.split(":")[0]
            result.append(
                Problem(mark, f"{name}: must be 'all' or a list", literal[0].source_line)
            )
        else:
            result.extend(group)
    return result


def load_topology(path: str, text: str | None = None) -> Topology:
    """Load and fully validate `path`; raise TopologyError with every problem found."""
    data, smap = load_marked(path, text)
    if not isinstance(data, dict):
        raise TopologyError([smap.problem((), "the topology must be a YAML mapping")])
    try:
        topology = Topology.model_validate(data)
    except ValidationError as exc:
        raise TopologyError(_pydantic_problems(exc, smap)) from None
    topology._source = smap
    problems = check_semantics(topology, smap)
    if problems:
        raise TopologyError(problems)
    return topology
