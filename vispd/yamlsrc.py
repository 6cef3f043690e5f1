"""Read YAML keeping where every value came from.

`load_marked(path)` composes the document with PyYAML (whose nodes carry line and column
marks), turns it into plain Python values and a `SourceMap` from value paths such as
`("slices", 0, "nodes", 2)` to the `SourceMark` of that value (and, with a `"<key>"`
suffix, of its key). Duplicate mapping keys are errors here, since PyYAML silently keeps
the last one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Problem, SourceMark, TopologyError

Path = tuple[Any, ...]


@dataclass
class SourceMap:
    file: str
    lines: list[str] = field(default_factory=list)
    marks: dict[Path, SourceMark] = field(default_factory=dict)

    def mark(self, path: Path) -> SourceMark | None:
        """The mark of `path`, or of its nearest ancestor that exists in the file."""
        path = tuple(path)
        while True:
            if path in self.marks:
                return self.marks[path]
            if not path:
                return None
            path = path[:-1]

    def key_mark(self, path: Path) -> SourceMark | None:
        """The mark of the key that names `path` (for 'unknown key' errors)."""
        return self.marks.get(tuple(path) + ("<key>",)) or self.mark(path)

    def problem(self, path: Path, message: str, at_key: bool = False) -> Problem:
        mark = self.key_mark(path) if at_key else self.mark(path)
        line = None
        if mark and 0 < mark.line <= len(self.lines):
            line = self.lines[mark.line - 1]
        return Problem(mark, message, line)


def _mark(file: str, node: yaml.Node) -> SourceMark:
    return SourceMark(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(node: yaml.Node, path: Path, smap: SourceMap, problems: list[Problem]) -> Any:
    smap.marks[path] = _mark(smap.file, node)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if not isinstance(
                key_node, yaml.ScalarNode
            ) else _scalar(key_node)
            if not isinstance(key, (str, int)):
                problems.append(smap.problem(path, f"mapping key {key!r} must be a string"))
                continue
            if key in result:
                smap.marks[path + (key, "<dup>")] = _mark(smap.file, key_node)
                problems.append(
                    smap.problem(path + (key, "<dup>"), f"duplicate key '{key}'")
                )
                continue
            smap.marks[path + (key, "<key>")] = _mark(smap.file, key_node)
            result[key] = _convert(value_node, path + (key,), smap, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, path + (index,), smap, problems)
            for index, item in enumerate(node.value)
        ]
    return _scalar(node)


def _scalar(node: yaml.ScalarNode) -> Any:
    # Resolve the scalar with SafeLoader's rules (ints, bools, null, strings).
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def load_marked(path: str, text: str | None = None) -> tuple[Any, SourceMap]:
    """Parse `path` (or `text`, reported as `path`) into (data, source map)."""
    if text is None:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise TopologyError([Problem(SourceMark(path, 1, 1), f"cannot read: {exc.strerror}")])
    smap = SourceMap(file=path, lines=text.splitlines())
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = SourceMark(path, mark.line + 1, mark.column + 1) if mark else None
        line = smap.lines[where.line - 1] if where and where.line <= len(smap.lines) else None
        message = f"YAML syntax error: {exc.problem or exc.context}"
        raise TopologyError([Problem(where, message, line)]) from None
    if len(documents) != 1 or documents[0] is None:
        raise TopologyError(
            [Problem(SourceMark(path, 1, 1), "expected exactly one YAML document (a mapping)")]
        )
    problems: list[Problem] = []
    data = _convert(documents[0], (), smap, problems)
    if problems:
        raise TopologyError(problems)
    return data, smap
