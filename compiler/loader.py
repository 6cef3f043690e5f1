"""Load a topology file: YAML → strict schema → semantic checks → `Topology`.

Every problem becomes a `Problem` at the FILE:LINE:COL of the offending value (of the key,
for unknown keys), and all problems of a stage are reported together (`TopologyError`).
The stages run in order — YAML syntax, schema, semantics — and a stage runs only when the
previous one found nothing, because semantic checks on a half-parsed file would report
mistakes that are only echoes of the first ones. Nothing here touches the kernel;
`load_topology` is what every command calls before doing anything.

Pure, but for reading the file it is given.
"""
from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from model.errors import Problem, TopologyError
from model.schema import (
    IFNAME_PATTERN,
    INTERFACE_PATTERN,
    NAME_PATTERN,
    SHORT_NAME_PATTERN,
    SITE_PATTERN,
    Topology,
    describe_value,
)
from .checks import check_kinds_known, check_semantics
from model.yamlsrc import SourceMap, load_marked

_PATTERNS = {
    NAME_PATTERN: "is not a valid name: use lower-case letters, digits and '-', "
                  "starting with a letter, at most 31 characters",
    SHORT_NAME_PATTERN: "is not a valid name: use lower-case letters, digits and '-', "
                        "starting with a letter, at most 16 characters",
    SITE_PATTERN: "is not a valid site code: 1 to 6 lower-case letters or digits",
    IFNAME_PATTERN: "is not a valid device name: a lower-case letter, then letters or digits, "
                    "at most 15 characters",
    INTERFACE_PATTERN: "is not an interface name: a letter or digit, then letters, digits, '_', '.' "
                       "or '-', at most 15 characters",
}

_TYPE_WORDS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "list_type": "a list", "tuple_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}

_BOUNDS = {
    "greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than"),
}


def _is_tag(part: Any) -> bool:
    """Union members add their tag ("list[...]", "literal['all']") to pydantic's locations."""
    return isinstance(part, str) and ("[" in part or "'" in part)


def _value_at(data: Any, path: tuple) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _union_branch_fits(tag: str, value: Any) -> bool:
    """Whether the union member named `tag` is the one the user evidently meant."""
    if tag.startswith("literal["):
        return isinstance(value, str)
    if tag.startswith(("list[", "tuple[")):
        return isinstance(value, list)
    return True


def _message(error: dict, field: str) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind in _TYPE_WORDS:
        return f"{field}: must be {_TYPE_WORDS[kind]}, got {describe_value(value)}"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return f"{field}: must be {words} {ctx.get(name)}, got {describe_value(value)}"
    if kind == "literal_error":
        return f"{field}: must be {ctx.get('expected')}, got {describe_value(value)}"
    if kind == "string_pattern_mismatch":
        what = _PATTERNS.get(ctx.get("pattern"), f"does not match {ctx.get('pattern')}")
        return f"{field}: {value!r} {what}"
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        if minimum == 1:
            return f"{field}: must not be empty"
        return f"{field}: needs at least {minimum} items, got {ctx.get('actual_length')}"
    if kind == "too_long":
        return f"{field}: takes at most {ctx.get('max_length')} items, got {ctx.get('actual_length')}"
    if kind == "value_error":
        return f"{field}: {error['msg'].removeprefix('Value error, ')}"
    return f"{field}: {error['msg']}"


def _model_at(path: tuple) -> type[BaseModel] | None:
    """The model class whose mapping sits at `path` of the document (for key suggestions)."""
    annotation: Any = Topology
    for part in path:
        model = _find_model(annotation)
        if isinstance(part, str):
            if model is None:
                return None
            field = next((f for n, f in model.model_fields.items()
                          if (f.alias or n) == part), None)
            if field is None:
                return None
            annotation = field.annotation
        else:
            annotation = _list_item(annotation)
            if annotation is None:
                return None
    return _find_model(annotation)


def _members(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _find_model(annotation: Any) -> type[BaseModel] | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _list_item(annotation: Any) -> Any:
    for member in _members(annotation):
        if typing.get_origin(member) in (list, tuple):
            return typing.get_args(member)[0]
    return None


def _unknown_key(path: tuple) -> str:
    key = str(path[-1])
    model = _model_at(path[:-1])
    message = f"unknown key '{key}'"
    if model is not None:
        known = sorted(f.alias or n for n, f in model.model_fields.items())
        close = difflib.get_close_matches(key.replace("_", "-").lower(), known, n=1, cutoff=0.6)
        if close:
            message += f" (did you mean '{close[0]}'?)"
    return message


def _pydantic_problems(exc: ValidationError, data: Any, smap: SourceMap) -> list[Problem]:
    errors = exc.errors(include_url=False)
    # Keep only the errors of the union member the user evidently wrote: a list written
    # where 'all' or a list is allowed is judged as a list.
    kept = []
    for error in errors:
        loc = tuple(error["loc"])
        tags = [i for i, part in enumerate(loc) if _is_tag(part)]
        if any(not _union_branch_fits(loc[i], _value_at(data, tuple(p for p in loc[:i] if not _is_tag(p))))
               for i in tags):
            continue
        kept.append(error)
    union_places = {tuple(p for p in error["loc"][:i] if not _is_tag(p))
                    for error in errors for i, part in enumerate(error["loc"]) if _is_tag(part)}
    problems = []
    covered = set()
    for error in kept:
        path = tuple(p for p in error["loc"] if not _is_tag(p))
        covered.update(path[:n] for n in range(len(path) + 1))
        kind = error["type"]
        if kind == "extra_forbidden":
            problems.append(smap.problem(path, _unknown_key(path), at_key=True))
            continue
        if kind == "missing":
            parent = path[:-1]
            problems.append(smap.problem(parent, f"missing required key '{path[-1]}'",
                                         at_key=bool(parent) and isinstance(parent[-1], str)))
            continue
        field = next((str(p) for p in reversed(path) if isinstance(p, str)), "value")
        if kind == "literal_error" and any(str(p).startswith("literal[") for p in error["loc"]):
            message = f"{field}: must be 'all' or a list, got {describe_value(error.get('input'))}"
        else:
            message = _message(error, field)
        problems.append(smap.problem(path, message))
    for place in union_places - covered:
        # No member fits the value's type: say what the union accepts.
        field = next((str(p) for p in reversed(place) if isinstance(p, str)), "value")
        value = _value_at(data, place)
        problems.append(smap.problem(
            place, f"{field}: must be 'all' or a list, got {describe_value(value)}"))
    unique: dict[tuple, Problem] = {}
    for problem in problems:
        unique.setdefault((problem.mark, problem.message), problem)
    return list(unique.values())


def load_topology(path: str, text: str | None = None) -> Topology:
    """Load and fully validate `path` (or `text`, reported as `path`); raise TopologyError
    with every problem found."""
    data, smap = load_marked(path, text)
    if not isinstance(data, dict):
        raise TopologyError([smap.problem(
            (), f"the topology must be a mapping (name:, asn:, nodes:, ...), got {describe_value(data)}")])
    try:
        topology = Topology.model_validate(data)
    except ValidationError as exc:
        raise TopologyError(_pydantic_problems(exc, data, smap)) from None
    topology._source = smap
    problems = check_kinds_known(topology, smap) or check_semantics(topology, smap)
    if problems:
        raise TopologyError(problems)
    return topology
