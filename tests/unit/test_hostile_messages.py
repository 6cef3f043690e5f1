"""What `vispd validate` says to hostile input, by class (issue 10): one located message
per mistake, the same message for every unsupported tag, YAML 1.2 booleans with a hint,
exact bandwidth bounds, count limits at the first item past them, and output that stays
short however long the offending line or however many the problems."""
from __future__ import annotations

import contextlib
import io
import re

import pytest

from bench import hostile_topologies as hostile
from compiler.loader import load_topology
from model import limits
from model.errors import TopologyError, excerpt
from vispd import cli

LOCATED = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$")


def validate_text(tmp_path, text: str, name: str = "t") -> tuple[int, str, str, str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["validate", str(path)])
    return status, out.getvalue(), err.getvalue(), str(path)


def problems(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(TopologyError) as caught:
        load_topology("t.yaml", text)
    return [(p.mark.line, p.mark.column, p.message) for p in caught.value.problems]


# -- tags -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tagged, tag", [
    ("!!python/object/apply:os.system [\"true\"]", "!!python/object/apply:os.system"),
    ("!!python/object/apply:os.system {args: [x]}", "!!python/object/apply:os.system"),
    ("!!python/name:os.system a", "!!python/name:os.system"),
    ("!!binary aGVsbG8=", "!!binary"),
    ("!!timestamp 2005-02-01", "!!timestamp"),
    ("!!set {a: null}", "!!set"),
    ("!!omap [{a: 1}]", "!!omap"),
    ("!foo a", "!foo"),
    ("!foo [a]", "!foo"),
    ("!foo {a: 1}", "!foo"),
    ("!<tag:example.com,2000:x> a", "!<tag:example.com,2000:x>"),
    ("!!map [a]", "!!map"),
    ("!!seq {a: 1}", "!!seq"),
])
def test_every_non_core_tag_gets_one_unsupported_tag_message(tagged, tag):
    text = f"name: t\nasn: 64512\naddress-space: [10.0.0.0/8]\nnodes:\n  - name: {tagged}\n"
    assert problems(text) == [(5, 11, f"YAML: unsupported tag {tag}: only plain YAML values are accepted")]


def test_core_tags_are_understood_and_checked():
    text = ("name: !!str t\nasn: !!int 64512\naddress-space: !!seq [10.0.0.0/8]\n"
            "nodes: [{name: !!str no}, {name: ! yes}]\nlinks: [{between: [no, yes], bandwidth: 1G, cost: !!int 0x10}]\n")
    topo = load_topology("t.yaml", text)
    assert [n.name for n in topo.nodes] == ["no", "yes"] and topo.links[0].cost == 16
    assert problems("name: t\nasn: !!int sixty\n") == [(2, 6, "YAML: 'sixty' is not a valid !!int")]
    assert problems("name: t\nasn: !!bool yes\n") == [(2, 6, "YAML: 'yes' is not a valid !!bool")]


# -- YAML 1.1 booleans ------------------------------------------------------------------------

def test_yaml11_booleans_are_names_as_written(tmp_path):
    names = ["no", "yes", "on", "off", "y", "n"]
    text = (hostile.HEAD + "nodes: [" + ", ".join(f"{{name: {n}}}" for n in names) + "]\nlinks:\n"
            + "".join(f"  - {{between: [{a}, {b}], bandwidth: 1G}}\n" for a, b in zip(names, names[1:]))
            + "slices: [{name: s, bandwidth: 1M, nodes: [no, yes, on]}]\n")
    status, out, err, path = validate_text(tmp_path, text)
    assert (status, err) == (0, "")
    topo = load_topology(path)
    assert [n.name for n in topo.nodes] == names
    assert topo.slices[0].nodes == ["no", "yes", "on"]


@pytest.mark.parametrize("written, meant", [("yes", "true"), ("on", "true"), ("no", "false"), ("off", "false")])
def test_yaml11_booleans_where_true_or_false_is_expected_get_a_hint(written, meant):
    text = (hostile.HEAD + "nodes: [{name: a}]\nslices: [{name: s, bandwidth: 1M}]\naccess:\n"
            f"  - {{slice: s, type: pptp, nodes: all, insecure-legacy: {written}}}\n")
    [(line, column, message)] = problems(text)
    assert (line, column) == (7, text.splitlines()[6].index(f": {written}}}") + 3)
    assert message == (f"insecure-legacy: must be true or false, got '{written}' (topology files are "
                       f"YAML 1.2, where yes/no/on/off are text: write {meant})")


def test_a_name_read_as_a_boolean_says_how_to_quote_it():
    [(line, column, message)] = problems(hostile.HEAD + "nodes: [{name: a}, {name: true}]\n")
    assert (line, column) == (4, 27)
    assert message == "name: must be a string, got true (if 'true' is the name, quote it: \"true\")"


def test_yaml11_numbers_are_yaml12_numbers_or_text():
    data = load_topology("t.yaml", "name: t\nasn: 010\naddress-space: [10.0.0.0/8]\nnodes: [{name: a}]\n")
    assert data.asn == 10  # YAML 1.1 read 010 as octal 8
    assert problems("name: t\nasn: 1_000\naddress-space: [10.0.0.0/8]\nnodes: [{name: a}]\n") == \
        [(2, 6, "asn: must be an integer, got '1_000'")]


# -- numbers and bandwidths -------------------------------------------------------------------

@pytest.mark.parametrize("bandwidth, said", [
    ("9" * 500 + "G", "is above the maximum of 10T (10 Tbit/s)"),
    ("100000000000000000000bit", "is not a bandwidth"),
    ("20T", "is above the maximum of 10T"),
    ("10.000001T", "is above the maximum of 10T"),
    ("0." + "0" * 300 + "1T", "has more digits than a bandwidth needs"),
    ("'" + "1" * 300 + "'", "has no unit: write e.g. '100M'"),
], ids=["500-digits", "1e20-bit", "20T", "over-10T", "300-decimals", "quoted-300-digits"])
def test_bandwidths_out_of_range_are_located_errors(bandwidth, said):
    text = hostile.HEAD + f"nodes: [{{name: a}}, {{name: b}}]\nlinks:\n  - {{between: [a, b], bandwidth: {bandwidth}}}\n"
    [(line, column, message)] = problems(text)
    assert (line, column) == (6, 34) and said in message
    assert len(message) <= limits.MAX_MESSAGE_CHARS


def test_ten_terabits_is_the_largest_bandwidth():
    text = hostile.HEAD + "nodes: [{name: a}, {name: b}]\nlinks:\n  - {between: [a, b], bandwidth: 10T}\n"
    assert load_topology("t.yaml", text).links[0].bandwidth == 10 * 10**12


def test_a_number_with_hundreds_of_digits_is_refused():
    assert problems("name: t\nasn: " + "9" * 5000 + "\n") == \
        [(2, 6, f"YAML: a number of 5000 characters: at most {limits.MAX_NUMBER_CHARS} are accepted")]
    assert problems(hostile.HEAD.replace("64512", "1e999") + "nodes: [{name: a}]\n") == \
        [(2, 6, "asn: must be an integer, got inf")]


# -- nesting --------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [hostile.deep_flow, hostile.deep_flow_mapping, hostile.deep_block,
                                  hostile.deep_dashes, hostile.deep_through_aliases])
def test_deep_nesting_is_one_located_message(make):
    [(_, _, message)] = problems(make())
    assert message == f"YAML: nested more than {limits.MAX_DEPTH} levels deep (a topology needs about 6)"


def test_nesting_up_to_the_limit_is_only_a_schema_matter():
    depth = limits.MAX_DEPTH - 1  # the top-level mapping is the first level
    text = hostile.HEAD + "nodes: [{name: a}]\ndescription: " + "[" * depth + "]" * depth + "\n"
    assert problems(text) == [(5, 14, "description: must be a string, got a list")]


# -- aliases and merge keys -------------------------------------------------------------------------

@pytest.mark.parametrize("make, said", [
    (hostile.merge_bomb, f"expands to more than {limits.MAX_VALUES} values through its aliases and merge keys"),
    (hostile.merge_and_alias_bomb, f"expands to more than {limits.MAX_VALUES} values"),
    (hostile.laughs, f"expands to more than {limits.MAX_VALUES} values"),
    (hostile.string_bomb, f"expands to more than {limits.MAX_EXPANDED_CHARS} characters"),
])
def test_alias_and_merge_expansion_is_refused_where_it_crosses_the_limit(make, said):
    text = make()
    [(line, column, message)] = problems(text)
    assert said in message
    assert text.splitlines()[line - 1][column - 1] == "*"  # at the alias that crossed it


def test_merge_keys_take_mappings():
    line = "nodes: [{<<: 5, name: a}, {<<: [*x, [1]], name: b}]"
    said = "'<<' (a merge key) takes a mapping or a list of mappings"
    assert problems(f"name: t\nx: &x {{q: 1}}\n{line}\n") == [(3, line.index("5") + 1, said),
                                                              (3, line.index("[1]") + 1, said)]


def test_duplicate_anchors_are_refused():
    assert problems("name: &a t\nasn: &a 1\n") == [(2, 6, "YAML: duplicate anchor 'a' (first defined on line 1, column 7)")]


# -- counts ---------------------------------------------------------------------------------------

def _list_of(count: int, item: str) -> str:
    return "[" + ", ".join(item.format(i=i) for i in range(count)) + "]"


@pytest.mark.parametrize("key, limit, item", [
    ("nodes", limits.MAX_NODES, "{{name: n{i}}}"),
    ("slices", limits.MAX_SLICES, "{{name: s{i}, bandwidth: 1k}}"),
    ("providers", limits.MAX_PROVIDERS, "{{name: p{i}, node: n0, asn: 1, bandwidth: 1G}}"),
])
def test_too_many_items_are_refused_at_the_first_one_past_the_limit(key, limit, item):
    text = hostile.HEAD + f"{key}: {_list_of(limit + 1, item)}\n"
    [(line, column, message)] = problems(text)
    assert message == f"{key}: {limit + 1} {key}; a topology holds at most {limit} (vispd's limit)"
    assert text.splitlines()[line - 1][column - 1:].startswith(item.format(i=limit))


def test_lists_inside_slices_are_counted_over_the_whole_file():
    per_slice = limits.MAX_ITEMS // 2 + 1
    devices = _list_of(per_slice, "{{node: a, type: tun}}")
    text = hostile.HEAD + ("nodes: [{name: a}]\nslices:\n"
                           f"  - {{name: s, bandwidth: 1k, pseudo-devices: {devices}}}\n"
                           f"  - {{name: u, bandwidth: 1k, pseudo-devices: {devices}}}\n")
    [(line, _, message)] = problems(text)
    assert line == 7 and message.startswith(f"pseudo-devices: {2 * per_slice} pseudo-devices")


@pytest.mark.parametrize("slices, said", [
    (9, f"slivers (the nodes each slice spans); a topology holds at most {limits.MAX_SLIVERS}"),
    (2, f"route pairs (the square of the nodes each slice spans); a topology holds at most {limits.MAX_ROUTE_PAIRS}"),
])
def test_slivers_and_route_pairs_are_bounded(slices, said):
    [(line, column, message)] = problems(hostile.ring(limits.MAX_NODES, slices))
    assert said in message and column == 1


def test_at_the_route_pair_limit_the_topology_is_accepted():
    topo = load_topology("t.yaml", hostile.at_the_count_limits())
    sizes = [len(topo.slice_nodes(s)) for s in topo.slices]
    assert sum(n * n for n in sizes) == limits.MAX_ROUTE_PAIRS and len(topo.nodes) == limits.MAX_NODES


# -- bounded output ---------------------------------------------------------------------------------

def test_many_problems_print_the_first_hundred_and_count_the_rest(tmp_path):
    count = 3 * limits.MAX_SHOWN_PROBLEMS
    text = hostile.HEAD + "nodes:\n" + "".join(f"  - {{name: 'N{i}'}}\n" for i in range(count))
    status, _, err, path = validate_text(tmp_path, text)
    lines = err.splitlines()
    located = [line for line in lines if line.startswith(f"{path}:")]
    assert status == 2 and len(located) == limits.MAX_SHOWN_PROBLEMS
    assert lines[-2:] == [f"... and {count - limits.MAX_SHOWN_PROBLEMS} more problems (the first "
                          f"{limits.MAX_SHOWN_PROBLEMS} are shown)", f"{count} errors; nothing was changed"]


def test_a_long_line_is_quoted_as_a_short_excerpt_with_the_caret_under_the_column(tmp_path):
    keys = ", ".join(f"k{i}: {i}" for i in range(20_000))  # ~190 kB on one line
    text = hostile.HEAD + f"nodes: [{{name: a, {keys}, name: b}}]\n"
    status, _, err, path = validate_text(tmp_path, text)
    lines = err.splitlines()
    assert status == 2 and len(err) < 100_000
    for index, line in enumerate(lines):
        match = LOCATED.match(line)
        if not match or not match["path"] == path:
            continue
        quoted, caret = lines[index + 1], lines[index + 2]
        assert len(quoted) <= 4 + limits.EXCERPT_CHARS + 2 and caret.strip() == "^"
        column = int(match["column"])
        source = text.splitlines()[int(match["line"]) - 1]
        under = quoted[len(caret) - 1]
        assert under == source[column - 1], (line, quoted, caret)
    duplicate = [line for line in lines if "duplicate key 'name'" in line]
    assert duplicate, lines[:6]


def test_a_huge_key_is_quoted_short(tmp_path):
    text = hostile.HEAD + "nodes: [{name: a}]\n? " + "k" * 1_000_000 + "\n: 1\n"  # longer than a simple key
    status, _, err, _ = validate_text(tmp_path, text)
    assert status == 2 and len(err) < 2000
    message = LOCATED.match(err.splitlines()[0])["message"]
    assert message == "a key must be a name (letters, digits, '-', at most 64), got 'kkkk" + "k" * 36 + \
        "'… (1000000 characters)"


@pytest.mark.parametrize("key", ["a[sn", "it's", "with space", "", "k" * 65, "é"])
def test_keys_are_names(key):
    [(line, column, message)] = problems(hostile.HEAD + f"nodes: [{{name: a}}]\n'{key}': 1\n".replace("'it's'", '"it\'s"'))
    assert (line, column) == (5, 1) and message.startswith("a key must be a name (letters, digits, '-', at most 64), got ")


@pytest.mark.parametrize("line, column, shown, pad", [
    ("short line", 3, "short line", "  "),
    ("\tx: 1", 2, "\tx: 1", "\t"),
    ("- {d: 日本語, bogus: 1}", 12, "- {d: 日本語, bogus: 1}", " " * 8 + "  " * 3),
    ("x" * 1000, 500, "…" + "x" * limits.EXCERPT_CHARS + "…", " " * (1 + limits.EXCERPT_CHARS // 2)),
    ("x" * 1000, 1000, "…" + "x" * limits.EXCERPT_CHARS, " " * limits.EXCERPT_CHARS),
    ("x" * 1000, 1, "x" * limits.EXCERPT_CHARS + "…", ""),
])
def test_excerpt_keeps_the_caret_under_the_column(line, column, shown, pad):
    assert excerpt(line, column) == (shown, pad)
