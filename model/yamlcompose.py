"""Compose YAML events into a node graph, bounded (pure: text in, nodes or problems out).

PyYAML's own composer recurses once per nesting level (thousands of `[` end in a
RecursionError), keeps two marks per node, resolves every tag and lets aliases and merge
keys expand without limit. This one reads the parser's events in a loop and keeps, for
every node, what it would cost once aliases and merge keys are expanded: values, scalar
characters and height. It stops at the first event that would take the document past
`MAX_DEPTH`, `MAX_VALUES` or `MAX_EXPANDED_CHARS`, so the converter after it does bounded
work. Tags: the core ones only (see yamlscalar); any other tag on a scalar, sequence or
mapping is one "unsupported tag" problem. Scalars are resolved by YAML 1.2's core schema.

Events come from libyaml when PyYAML has it (about 20 times faster than PyYAML's Python
parser); a syntax error is then worded by the Python parser, so that messages do not depend
on how PyYAML was built (see `syntax_problem`).
"""
from __future__ import annotations

from typing import Any, Iterator

import yaml
from yaml import events as ev

from .errors import Problem, SourceMark, quote
from .limits import MAX_DEPTH, MAX_EXPANDED_CHARS, MAX_VALUES
from .yamlscalar import MAP, MERGE, NULL, SEQ, STR, BadScalar, construct, resolve_plain, unsupported

SCALAR, SEQUENCE, MAPPING = "scalar", "sequence", "mapping"


class Node:
    """A composed value: kind, resolved tag, value (a Python scalar; a list of nodes; a
    list of (key, value) node pairs), 1-based line and column, and its expanded cost."""

    __slots__ = ("kind", "tag", "value", "line", "column", "values", "chars", "height")

    def __init__(self, kind: str, tag: str, value: Any, line: int, column: int) -> None:
        self.kind, self.tag, self.value = kind, tag, value
        self.line, self.column = line, column
        self.values, self.chars = 1, 0
        self.height = 0 if kind == SCALAR else 1  # collections nested in it, itself included


class ComposeStop(Exception):
    """The document cannot be composed further (a bound or a structural error)."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


def _where(event) -> tuple[int, int]:
    return event.start_mark.line + 1, event.start_mark.column + 1


class _Frame:
    __slots__ = ("node", "pending_key")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.pending_key: Node | None = None


class Composer:
    """One document's events → a `Node` tree; problems that do not stop composing (a bad
    tag, a bad scalar, an alias cycle) are collected in `problems` as (line, column, text)."""

    def __init__(self) -> None:
        self.anchors: dict[str, Node] = {}
        self.stack: list[_Frame] = []
        self.open_ids: set[int] = set()
        self.values = 0  # values the converter will produce, in document order so far
        self.chars = 0
        self.aliased = 0  # how many of them come through aliases
        self.problems: list[tuple[int, int, str]] = []

    # -- bounds -----------------------------------------------------------------------
    def _charge(self, event, values: int, chars: int, through_alias: bool) -> None:
        self.values += values
        self.chars += chars
        if through_alias:
            self.aliased += values
        line, column = _where(event)
        if self.values > MAX_VALUES:
            if self.aliased * 2 > self.values:
                raise ComposeStop(line, column, f"the document expands to more than {MAX_VALUES} values "
                                                "through its aliases and merge keys")
            raise ComposeStop(line, column, f"the document has more than {MAX_VALUES} values (keys, "
                                            "scalars, lists and mappings): vispd's limit for a topology file")
        if self.chars > MAX_EXPANDED_CHARS:
            raise ComposeStop(line, column, f"the document expands to more than {MAX_EXPANDED_CHARS} "
                                            "characters through its aliases and merge keys")

    def _check_depth(self, event, height: int) -> None:
        if len(self.stack) + height > MAX_DEPTH:
            line, column = _where(event)
            raise ComposeStop(line, column, f"YAML: nested more than {MAX_DEPTH} levels deep "
                                            "(a topology needs about 6)")

    # -- building -----------------------------------------------------------------------
    def _attach(self, node: Node) -> Node | None:
        """Add `node` to the open collection; the root (no collection open) is returned."""
        if not self.stack:
            return node
        frame = self.stack[-1]
        parent = frame.node
        if parent.kind == SEQUENCE:
            parent.value.append(node)
        elif frame.pending_key is None:
            frame.pending_key = node
        else:
            parent.value.append((frame.pending_key, node))
            frame.pending_key = None
        return None

    def _anchor(self, event, node: Node) -> None:
        if event.anchor is None:
            return
        first = self.anchors.get(event.anchor)
        if first is not None:  # YAML would let the second win; PyYAML refuses it, and so do we
            line, column = _where(event)
            self.problems.append((line, column, f"YAML: duplicate anchor {quote(event.anchor)} (first "
                                                f"defined on line {first.line}, column {first.column})"))
        self.anchors[event.anchor] = node

    def _scalar(self, event) -> Node:
        line, column = _where(event)
        tag, value = STR, event.value
        try:
            if event.tag in (None, "!"):
                if event.tag is None and event.implicit[0]:  # plain
                    tag, value = resolve_plain(event.value)
            else:
                tag, value = event.tag, construct(event.tag, event.value)
        except BadScalar as exc:
            self.problems.append((line, column, exc.message))
            tag, value = NULL, None
        node = Node(SCALAR, tag, value, line, column)
        node.chars = len(event.value)
        self._charge(event, 1, node.chars, False)
        return node

    def _collection_start(self, event, kind: str, own_tag: str) -> None:
        self._check_depth(event, 1)
        line, column = _where(event)
        if event.tag not in (None, "!", own_tag):
            self.problems.append((line, column, unsupported(event.tag)))
        node = Node(kind, own_tag, [], line, column)
        self._charge(event, 1, 0, False)
        self._anchor(event, node)
        self.stack.append(_Frame(node))
        self.open_ids.add(id(node))

    def _collection_end(self) -> Node:
        node = self.stack.pop().node
        self.open_ids.discard(id(node))
        children = node.value if node.kind == SEQUENCE else [n for pair in node.value for n in pair]
        node.values = 1 + sum(child.values for child in children)
        node.chars = sum(child.chars for child in children)
        node.height = 1 + max((child.height for child in children), default=0)
        return node

    def _alias(self, event) -> Node:
        line, column = _where(event)
        target = self.anchors.get(event.anchor)
        if target is None:
            raise ComposeStop(line, column, f"YAML syntax error: found undefined alias {quote(event.anchor)}")
        if id(target) in self.open_ids:
            self.problems.append((line, column, "an alias refers to a value that contains it"))
            return Node(MAPPING, MAP, [], line, column)  # an empty stand-in: no echo of the problem
        self._check_depth(event, target.height)
        self._charge(event, target.values, target.chars, True)
        return target

    def feed(self, event) -> Node | None:
        """Take one event of the document's body; return the root node once it is complete."""
        if isinstance(event, ev.ScalarEvent):
            node = self._scalar(event)
            self._anchor(event, node)
        elif isinstance(event, ev.AliasEvent):
            node = self._alias(event)
        elif isinstance(event, ev.SequenceStartEvent):
            self._collection_start(event, SEQUENCE, SEQ)
            return None
        elif isinstance(event, ev.MappingStartEvent):
            self._collection_start(event, MAPPING, MAP)
            return None
        elif isinstance(event, (ev.SequenceEndEvent, ev.MappingEndEvent)):
            node = self._collection_end()
        else:
            return None
        return self._attach(node)


def is_merge_key(node: Node) -> bool:
    return node.kind == SCALAR and node.tag == MERGE


def _events(text: str, loader) -> Iterator:
    parser = loader(text)
    try:
        while parser.check_event():
            yield parser.get_event()
    finally:
        parser.dispose()


def compose_document(text: str) -> tuple[Node | None, list[tuple[int, int, str]], tuple[int, int] | None]:
    """(root node or None for an empty stream, problems, where a second document starts).

    Raises ComposeStop for a bound or an undefined alias, and yaml.YAMLError (from the
    parser in use) for a syntax error."""
    composer = Composer()
    root: Node | None = None
    documents = 0
    loader = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
    stream = _events(text, loader)
    for event in stream:
        if isinstance(event, ev.DocumentStartEvent):
            documents += 1
            if documents == 2:
                body = next(stream)
                return root, composer.problems, _where(body)
            continue
        done = composer.feed(event)
        if done is not None:
            root = done
    return root, composer.problems, None


def syntax_problem(path: str, text: str, error: yaml.MarkedYAMLError, lines: list[str]) -> Problem:
    """A YAML syntax error as a located problem, worded by PyYAML's Python parser."""
    error = _python_wording(text, error)
    mark = error.problem_mark or error.context_mark
    where = SourceMark(path, mark.line + 1, mark.column + 1) if mark else None
    line = lines[where.line - 1] if where and where.line <= len(lines) else None
    message = f"YAML syntax error: {error.problem or error.context}"
    if error.problem and error.context and error.context_mark and error.problem_mark \
            and error.context_mark.line != error.problem_mark.line:
        message += (f" ({error.context.replace('while parsing', 'in')} that starts on line "
                    f"{error.context_mark.line + 1}, column {error.context_mark.column + 1})")
    return Problem(where, message, line)


FULL_REPARSE_CHARS = 256 * 1024  # the Python parser reads about 0.6 MB/s here: at most ~0.5 s


def _drain(text: str) -> yaml.MarkedYAMLError | None:
    try:
        for _ in _events(text, yaml.SafeLoader):
            pass
    except yaml.MarkedYAMLError as exc:
        return exc
    return None


def _end_of_line(text: str, line: int) -> int:
    """The index just after the end of 0-based `line` (or the text's length)."""
    cut = 0
    for _ in range(line + 1):
        found = text.find("\n", cut)
        if found < 0:
            return len(text)
        cut = found + 1
    return cut


def _python_wording(text: str, error: yaml.MarkedYAMLError) -> yaml.MarkedYAMLError:
    """The same error from the Python parser, on the text up to two lines after the error
    (the parser looks no further ahead than that; the whole text when it is small). The
    Python parser is slow, so when that text is long, or the parsers disagree, libyaml's
    own wording is kept: the message is still located, only worded differently."""
    mark = error.problem_mark or error.context_mark
    if getattr(yaml, "CSafeLoader", None) is None or mark is None:
        return error  # already the Python parser's
    cut = len(text) if len(text) <= FULL_REPARSE_CHARS else _end_of_line(text, mark.line + 2)
    if cut > FULL_REPARSE_CHARS:
        return error
    again = _drain(text[:cut])
    if again is None or again.problem_mark is None:
        return error
    if cut == len(text) or (again.problem_mark.line, again.problem_mark.column) == (mark.line, mark.column):
        return again
    return error
