"""Read YAML keeping where every value came from, with every cost bounded.

`load_marked(path)` reads the file (bounded: model.textfile), composes its one document
(bounded: model.yamlcompose, YAML 1.2 scalars, core tags only), turns it into plain Python
values and a `SourceMap` from value paths such as `("slices", 0, "nodes", 2)` to the
`SourceMark` of that value (and, with a `"<key>"` suffix, of its key), and checks the
counts of the topology's lists (model.limits). Duplicate mapping keys are errors here,
since PyYAML silently keeps the last one. Every problem is a `TopologyError` at its
FILE:LINE:COL; nothing here raises anything else, whatever the input.

Pure, but for reading the file it is given.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Problem, SourceMark, TopologyError, describe_value, quote
from .counts import count_problems
from .limits import MAX_FILE_BYTES
from .textfile import read_topology_text, too_large
from .yamlcompose import MAPPING, SCALAR, SEQUENCE, ComposeStop, Node, compose_document, \
    is_merge_key, syntax_problem

Path = tuple[Any, ...]

# What YAML's reader refuses (PyYAML's Reader.NON_PRINTABLE): checked up front, in one pass.
_NON_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010ffff]")
_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
# Every key of a topology is a kebab-case name; letters of either case and '_' are let
# through so that the schema can suggest the right spelling ('Name', 'prefix_length').
KEY = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


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

    def line_of(self, mark: SourceMark | None) -> str | None:
        if mark and 0 < mark.line <= len(self.lines):
            return self.lines[mark.line - 1]
        return None

    def problem(self, path: Path, message: str, at_key: bool = False) -> Problem:
        mark = self.key_mark(path) if at_key else self.mark(path)
        return Problem(mark, message, self.line_of(mark))

    def problem_at(self, line: int, column: int, message: str) -> Problem:
        mark = SourceMark(self.file, line, column)
        return Problem(mark, message, self.line_of(mark))


class _Converter:
    """Composed nodes → plain values, recording the mark of every value and key. The
    composer has bounded the expanded size and depth, so this recursion is bounded too."""

    def __init__(self, smap: SourceMap, problems: list[Problem]) -> None:
        self.smap = smap
        self.problems = problems

    def mark(self, node: Node) -> SourceMark:
        return SourceMark(self.smap.file, node.line, node.column)

    def convert(self, node: Node, path: Path) -> Any:
        self.smap.marks[path] = self.mark(node)
        if node.kind == SCALAR:
            return node.value
        if node.kind == SEQUENCE:
            return [self.convert(item, path + (index,)) for index, item in enumerate(node.value)]
        return self.mapping(node, path)

    def mapping(self, node: Node, path: Path) -> dict:
        smap = self.smap
        result: dict[str, Any] = {}
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if is_merge_key(key_node):
                self.merge_sources(value_node, merged)
                continue
            key = key_node.value if key_node.kind == SCALAR else None
            if not isinstance(key, str) or not KEY.match(key):
                self.problems.append(smap.problem_at(key_node.line, key_node.column, _bad_key(key_node)))
                continue
            if key in result:
                first = smap.marks[path + (key, "<key>")]
                self.problems.append(smap.problem_at(key_node.line, key_node.column,
                                                     f"duplicate key {quote(key)} (first set on line {first.line})"))
                continue
            smap.marks[path + (key, "<key>")] = self.mark(key_node)
            result[key] = self.convert(value_node, path + (key,))
        for key_node, value_node in merged:
            # Keys written in the mapping itself override merged ones, as YAML specifies.
            key = key_node.value if key_node.kind == SCALAR else None
            if isinstance(key, str) and key not in result:
                smap.marks[path + (key, "<key>")] = self.mark(key_node)
                result[key] = self.convert(value_node, path + (key,))
        return result

    def merge_sources(self, value: Node, into: list[tuple[Node, Node]]) -> None:
        """The pairs a `<<:` brings in (a mapping, or a list of mappings; nested merges
        included, earlier sources first), appended to `into`."""
        sources = value.value if value.kind == SEQUENCE else [value]
        for source in sources:
            if source.kind != MAPPING:
                self.problems.append(self.smap.problem_at(
                    source.line, source.column, "'<<' (a merge key) takes a mapping or a list of mappings"))
                continue
            for key_node, value_node in source.value:
                if is_merge_key(key_node):
                    self.merge_sources(value_node, into)
                else:
                    into.append((key_node, value_node))


def _bad_key(node: Node) -> str:
    if node.kind != SCALAR:
        return "a key must be a name, got a collection"
    if not isinstance(node.value, str):
        return f"a key must be a name, got {describe_value(node.value)}"
    return f"a key must be a name (letters, digits, '-', at most 64), got {quote(node.value)}"


def split_lines(text: str) -> list[str]:
    """The lines of `text` as YAML counts them (\\n, \\r\\n, \\r, NEL, LS, PS)."""
    return _BREAK.split(text)


def _reader_problem(path: str, text: str, lines: list[str]) -> Problem | None:
    bad = _NON_PRINTABLE.search(text)
    if bad is None:
        return None
    breaks = list(_BREAK.finditer(text, 0, bad.start()))
    line_start = breaks[-1].end() if breaks else 0
    mark = SourceMark(path, len(breaks) + 1, bad.start() - line_start + 1)
    return Problem(mark, f"YAML: character #x{ord(bad.group()):04x} is not allowed",
                   lines[mark.line - 1] if mark.line <= len(lines) else None)


def _compose(path: str, text: str, smap: SourceMap):
    """(root node, problems) of the only document; TopologyError when there is none, more
    than one, a syntax error or a bound crossed."""
    try:
        root, found, second = compose_document(text)
    except ComposeStop as stop:
        raise TopologyError([smap.problem_at(stop.line, stop.column, stop.message)]) from None
    except yaml.MarkedYAMLError as exc:
        raise TopologyError([syntax_problem(path, text, exc, smap.lines)]) from None
    except yaml.YAMLError as exc:  # a reader error of libyaml's that the check above missed
        raise TopologyError([Problem(SourceMark(path, 1, 1), f"YAML: {shorten_error(exc)}")]) from None
    if root is None:
        raise TopologyError([Problem(SourceMark(path, 1, 1), "the file is empty: expected a topology mapping")])
    if second is not None:
        raise TopologyError([smap.problem_at(*second, "a second YAML document: a topology file holds exactly one")])
    return root, [smap.problem_at(line, column, message) for line, column, message in found]


def shorten_error(exc: Exception) -> str:
    return " ".join(str(exc).split())


def load_marked(path: str, text: str | None = None) -> tuple[Any, SourceMap]:
    """Parse `path` (or `text`, reported as `path`) into (data, source map)."""
    if text is None:
        text = read_topology_text(path)
    elif len(text) > MAX_FILE_BYTES:
        raise too_large(path, f"the text has {len(text)} characters")
    smap = SourceMap(file=path, lines=split_lines(text))
    bad_character = _reader_problem(path, text, smap.lines)
    if bad_character is not None:
        raise TopologyError([bad_character])
    root, problems = _compose(path, text, smap)
    data = _Converter(smap, problems).convert(root, ())
    if not problems:
        problems = count_problems(data, smap)
    if problems:
        raise TopologyError(problems)
    return data, smap
