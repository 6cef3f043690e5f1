"""Property-based fuzzing of `vispd validate` (hypothesis): valid topologies (abilene.yaml
and small generated ones) mutated structurally (drop, retype, swap, deepen, alias, cycle)
and textually (byte flips, truncation, deletions, repeated lines, hostile snippets, tags,
merge keys). For every mutant, through the public entry point `vispd.cli.main`:

- the exit status is 0 or 2, and nothing escapes as an exception (no traceback);
- the output is bounded: at most `bench.hostile_topologies.output_bound(len(path))` characters
  (100 problems of one location, a message of at most 300 characters, an excerpt of at
  most 120 characters and a caret line, about 75 kB), whatever the mutant;
- exit 2 ends with the count line, every located line is FILE:LINE:COL inside the file;
  exit 0 says "ok".

Deterministic by default (CI: 400 examples per test, about 15 s in all);
`VISPD_FUZZ=explore` draws new examples, 3000 per test; `VISPD_FUZZ_EXAMPLES=N` sets the count.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import hostile_topologies as hostile
from model.yamlsrc import split_lines
from unit_helpers import abilene_full_text
from vispd import cli

EXPLORE = os.environ.get("VISPD_FUZZ") == "explore"
EXAMPLES = int(os.environ.get("VISPD_FUZZ_EXAMPLES", 3000 if EXPLORE else 400))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not EXPLORE,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
ABILENE = abilene_full_text()
ABILENE_DATA = yaml.safe_load(ABILENE)
COUNT_LINE = re.compile(r"^\d+ errors?; nothing was changed$")
LOCATED = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): ")

SNIPPETS = ["[", "]", "{", "}", "&a ", "*a", "<<: *a\n", "<<: [*a, *a]\n", "!!binary ", "!foo ",
            "!!python/object/apply:os.system ", "!<tag:x,2000:y> ", "? ", "- ", ": ", "\t", "---\n",
            "...\n", "%YAML 1.1\n", "'", '"', "#", "|\n", ">\n", "9" * 60, "no", "yes", "~", "1e999",
            ".nan", "0x7fffffff", "0o777", "2005-02-01", "1:30", "\u2028", "\ufeff", "日本語", "é",
            "[" * 80, "- " * 80, "{a: " * 70, "\\x00", "\x85", "    " * 40, "bandwidth: 99999999999T",
            "prefix: 0.0.0.0/0", "nodes: all", "links: all", "&b [*b]"]

# -- generated topologies -----------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", "d", "no", "yes", "on", "seattle", "new-york", "x1"])


@st.composite
def small_topology(draw) -> dict:
    nodes = draw(st.lists(NAMES, min_size=1, max_size=6, unique=True))
    pairs = [[a, b] for i, a in enumerate(nodes) for b in nodes[i + 1:]]
    links = draw(st.lists(st.sampled_from(pairs), max_size=6, unique_by=tuple)) if pairs else []
    topology = {"name": "fz", "asn": 64512, "address-space": ["198.18.0.0/16"],
                "nodes": [{"name": n} for n in nodes],
                "links": [{"between": pair, "bandwidth": draw(st.sampled_from(["1G", "100M", "10T"]))}
                          for pair in links]}
    slices = draw(st.lists(st.sampled_from(["s", "t", "plb"]), max_size=3, unique=True))
    topology["slices"] = [{"name": s, "bandwidth": "1M",
                           "routing": draw(st.sampled_from(["static", "ospf", "none"]))} for s in slices]
    if slices and draw(st.booleans()):
        topology["providers"] = [{"name": "up", "node": nodes[0], "asn": 65001, "bandwidth": "1G"}]
        topology["slices"][0]["egress"] = ["up"]
    if slices and draw(st.booleans()):
        topology["access"] = [{"slice": slices[0], "type": draw(st.sampled_from(["openvpn", "socket"])),
                               "nodes": "all", "users": [{"name": "ann"}]}]
    return topology


# -- structural mutations -----------------------------------------------------------------

def paths_of(data, path=(), inside=frozenset()):
    """Every path into `data`, not going round a cycle (a collection inside itself)."""
    yield path
    if id(data) in inside or len(path) > 90:
        return
    inside = inside | {id(data)}
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths_of(value, path + (key,), inside)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from paths_of(value, path + (index,), inside)


def get(data, path):
    for part in path:
        data = data[part]
    return data


def put(data, path, value):
    get(data, path[:-1])[path[-1]] = value


ANY_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
              st.sampled_from(["all", "1G", "10.0.0.0/8", "no", "seattle", "", "-1G", "1e3G"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)


def mutate_once(draw, data, path: tuple, paths: list) -> None:
    kind = draw(st.sampled_from(["drop", "retype", "swap", "deepen", "alias", "cycle"]))
    if kind == "drop":
        del get(data, path[:-1])[path[-1]]
    elif kind == "retype":
        put(data, path, draw(ANY_VALUE))
    elif kind == "swap":
        other = draw(st.sampled_from(paths))
        if path[:len(other)] != other and other[:len(path)] != path:
            a, b = get(data, path), get(data, other)
            put(data, path, b)
            put(data, other, a)
    elif kind == "deepen":
        value = get(data, path)
        for _ in range(draw(st.integers(1, 80))):
            value = [value] if draw(st.booleans()) else {"k": value}
        put(data, path, value)
    elif kind == "alias":  # the same object twice: the dumper writes an anchor and an alias
        put(data, draw(st.sampled_from(paths)), get(data, path))
    elif isinstance(get(data, path), (list, dict)):  # cycle: a collection inside itself
        container = get(data, path)
        if isinstance(container, list):
            container.append(container)
        else:
            container["self"] = container


@st.composite
def structurally_mutated(draw, seed: dict) -> str:
    data = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in paths_of(data) if p]
        if not paths:
            break
        try:
            mutate_once(draw, data, draw(st.sampled_from(paths)), paths)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier alias shared an object, so this path no longer leads where it did
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True,
                          default_flow_style=draw(st.sampled_from([False, None, True])),
                          width=draw(st.sampled_from([80, 10**6])))


# -- textual mutations ----------------------------------------------------------------------

@st.composite
def textually_mutated(draw, text: str) -> bytes:
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "repeat-line", "tag", "merge"]))
        if kind == "flip" and data:
            data[min(where, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[where:]
        elif kind == "insert":
            data[where:where] = draw(st.sampled_from(SNIPPETS)).encode()
        elif kind == "delete":
            del data[where:where + draw(st.integers(1, 200))]
        elif kind == "repeat-line":
            start = data.rfind(b"\n", 0, where) + 1
            end = data.find(b"\n", where)
            line = bytes(data[start:end + 1 if end >= 0 else len(data)])
            data[start:start] = line * draw(st.integers(1, 500))
        elif kind == "tag":
            colon = data.find(b": ", where)
            if colon >= 0:
                data[colon + 2:colon + 2] = draw(st.sampled_from(
                    [b"!!python/object/apply:os.system ", b"!!binary ", b"!foo ", b"!!set ", b"!!str ", b"! "]))
        else:
            data[0:0] = b"base: &a {name: x, bandwidth: 1G, asn: 1}\n"
            colon = data.find(b"\n  - ", where)
            if colon >= 0:
                data[colon + 5:colon + 5] = b"<<: *a\n    "
    return bytes(data)


# -- the property ---------------------------------------------------------------------------

def check_validate(path, content: bytes) -> None:
    path.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["validate", str(path)])
    out, err = out.getvalue(), err.getvalue()
    assert status in (0, 2), (status, out, err[-2000:])
    assert "Traceback" not in out + err
    assert len(out) + len(err) <= hostile.output_bound(len(str(path))), len(out) + len(err)
    if status == 0:
        assert out.startswith(f"{path}: ok: ") and err == ""
        return
    lines = err.splitlines()
    assert lines and (COUNT_LINE.match(lines[-1]) or lines[-1].startswith("vispd: ")), lines[-3:]
    line_count = len(split_lines(content.decode("utf-8", "replace"))) + 1  # YAML's line breaks
    for line in lines:
        match = LOCATED.match(line)
        if match and match["path"] == str(path):
            assert 1 <= int(match["line"]) <= line_count and int(match["column"]) >= 1, line


@FUZZ
@given(text=st.one_of(small_topology(), st.just(ABILENE_DATA)).flatmap(structurally_mutated))
def test_structural_mutants_exit_0_or_2_with_bounded_output(tmp_path, text):
    check_validate(tmp_path / "mutant.yaml", text.encode())


@FUZZ
@given(content=st.one_of(st.just(ABILENE), small_topology().map(lambda t: yaml.safe_dump(t, sort_keys=False)))
       .flatmap(textually_mutated))
def test_textual_mutants_exit_0_or_2_with_bounded_output(tmp_path, content):
    check_validate(tmp_path / "mutant.yaml", content)


@FUZZ
@given(content=st.one_of(small_topology(), st.just(ABILENE_DATA)).flatmap(structurally_mutated)
       .flatmap(textually_mutated))
def test_both_kinds_of_mutants_together(tmp_path, content):
    check_validate(tmp_path / "mutant.yaml", content)
