"""Read YAML keeping where every value came from.

`load_marked(path)` composes the document with PyYAML (whose nodes carry line and column
marks), turns it into plain Python values and a `SourceMap` from value paths such as
`("slices", 0, "nodes", 2)` to the `SourceMark` of that value (and, with a `"<key>"`
suffix, of its key). Duplicate mapping keys are errors here, since PyYAML silently keeps
the last one.

Pure, but for reading the file it is given.
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


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _merged_pairs(node: yaml.MappingNode, seen: frozenset[int] = frozenset()) -> tuple[list, list]:
    """(own key/value pairs, pairs brought in by `<<: *anchor` merge keys)."""
    own, merged = [], []
    seen = seen | {id(node)}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                if isinstance(source, yaml.MappingNode) and id(source) not in seen:
                    sub_own, sub_merged = _merged_pairs(source, seen)
                    merged.extend(sub_own + sub_merged)
        else:
            own.append((key_node, value_node))
    return own, merged


def _key(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return None
    try:
        return _scalar(node)
    except _BadScalar:
        return node.value


MAX_VALUES = 200_000  # aliases can make a small file expand exponentially ("billion laughs")


class _Converter:
    """Composed YAML nodes → plain values, recording the mark of every value and key."""

    def __init__(self, smap: SourceMap, problems: list[Problem]) -> None:
        self.smap = smap
        self.problems = problems
        self.active: set[int] = set()  # nodes being converted (an alias to one is a cycle)
        self.count = 0

    def say(self, path: Path, mark: SourceMark, message: str) -> None:
        self.smap.marks[path] = mark
        self.problems.append(self.smap.problem(path, message))

    def convert(self, node: yaml.Node, path: Path) -> Any:
        smap = self.smap
        smap.marks[path] = _mark(smap.file, node)
        self.count += 1
        if self.count > MAX_VALUES:
            raise TopologyError([smap.problem(path, f"the document expands to more than {MAX_VALUES} values (aliases?)")])
        if isinstance(node, yaml.ScalarNode):
            try:
                return _scalar(node)
            except _BadScalar as exc:
                self.problems.append(smap.problem(path, exc.message))
                return None
        if id(node) in self.active:
            self.problems.append(smap.problem(path, "an alias refers to a value that contains it"))
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, path + (index,)) for index, item in enumerate(node.value)]
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict:
        smap = self.smap
        result: dict[str, Any] = {}
        own, merged = _merged_pairs(node)
        for key_node, value_node in own:
            key_mark = _mark(smap.file, key_node)
            key = _key(key_node)
            if not isinstance(key, str):
                shown = repr(key) if isinstance(key_node, yaml.ScalarNode) else "a collection"
                self.say(path + ("<badkey>",), key_mark, f"a key must be a name, got {shown}")
                continue
            if key in result:
                first = smap.marks[path + (key, "<key>")]
                self.say(path + (key, "<dup>"), key_mark,
                         f"duplicate key '{key}' (first set on line {first.line})")
                continue
            smap.marks[path + (key, "<key>")] = key_mark
            result[key] = self.convert(value_node, path + (key,))
        for key_node, value_node in merged:
            # Keys written in the mapping itself override merged ones, as YAML specifies.
            key = _key(key_node)
            if isinstance(key, str) and key not in result:
                smap.marks[path + (key, "<key>")] = _mark(smap.file, key_node)
                result[key] = self.convert(value_node, path + (key,))
        return result


class _BadScalar(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _scalar(node: yaml.ScalarNode) -> Any:
    """Resolve a scalar with the safe loader's rules (ints, floats, bools, null, strings)."""
    constructor = yaml.constructor.SafeConstructor()
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError:
        raise _BadScalar(f"YAML: unsupported tag {_short_tag(node.tag)}: only plain YAML values "
                         "are accepted") from None
    except ValueError:  # e.g. `!!int x`
        raise _BadScalar(f"YAML: {node.value!r} is not a valid {_short_tag(node.tag)}") from None


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def _compose(text: str) -> list:
    """Compose every document, with libyaml when present (about ten times faster on big
    topologies, same marks). Errors always come from the pure-Python parser, so that their
    wording and position do not depend on how PyYAML was built."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return list(yaml.compose_all(text, Loader=fast))
        except yaml.YAMLError:
            pass
    return list(yaml.compose_all(text, Loader=yaml.SafeLoader))


def load_marked(path: str, text: str | None = None) -> tuple[Any, SourceMap]:
    """Parse `path` (or `text`, reported as `path`) into (data, source map)."""
    if text is None:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise TopologyError([Problem(SourceMark(path, 1, 1), f"cannot read: {exc.strerror}")]) from None
        except UnicodeDecodeError as exc:
            before = exc.object[: exc.start]
            line = before.count(b"\n") + 1
            column = exc.start - (before.rfind(b"\n") + 1) + 1
            raise TopologyError([Problem(SourceMark(path, line, column),
                                         f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})")]) from None
    smap = SourceMap(file=path, lines=text.splitlines())
    try:
        documents = _compose(text)
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        where = SourceMark(path, before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
        raise TopologyError([Problem(where, f"YAML: character #x{exc.character:04x} is not allowed",
                                     smap.lines[where.line - 1] if where.line <= len(smap.lines) else None)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = SourceMark(path, mark.line + 1, mark.column + 1) if mark else None
        line = smap.lines[where.line - 1] if where and where.line <= len(smap.lines) else None
        message = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.problem and exc.context and exc.context_mark and exc.problem_mark \
                and exc.context_mark.line != exc.problem_mark.line:
            message += (f" ({exc.context.replace('while parsing', 'in')} that starts on line {exc.context_mark.line + 1},"
                        f" column {exc.context_mark.column + 1})")
        raise TopologyError([Problem(where, message, line)]) from None
    if not documents or documents[0] is None:
        raise TopologyError([Problem(SourceMark(path, 1, 1), "the file is empty: expected a topology mapping")])
    if len(documents) > 1:
        second = _mark(path, documents[1])
        raise TopologyError([Problem(second, "a second YAML document: a topology file holds exactly one",
                                     smap.lines[second.line - 1] if second.line <= len(smap.lines) else None)])
    problems: list[Problem] = []
    data = _Converter(smap, problems).convert(documents[0], ())
    if problems:
        raise TopologyError(problems)
    return data, smap
