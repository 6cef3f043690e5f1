"""The loader on good input: what it accepts, the marks it keeps, how problems render."""
from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from unit_helpers import ABILENE, topology
from model.errors import Problem, SourceMark, TopologyError
from compiler.loader import load_topology
from model.yamlsrc import load_marked

SMALL = """\
    name: t
    asn: 64512
    address-space: [10.0.0.0/16]
    nodes:
      - {name: a, site: aa}
      - {name: b}
    links:
      - {between: [b, a], bandwidth: 1Gb/s, cost: 3}
    slices:
      - {name: s, bandwidth: 10M}
"""


def test_abilene_loads(abilene):
    assert abilene.name == "abilene"
    assert len(abilene.nodes) == 11 and len(abilene.links) == 14
    assert [s.name for s in abilene.slices] == ["plb", "research"]
    assert abilene.slice("plb").prefix == IPv4Network("198.18.0.0/22")
    assert abilene.slice("research").prefix is None  # allocated by the planner
    assert all(link.bandwidth == 10**9 for link in abilene.links)
    assert abilene.source.file == ABILENE


def test_small_topology_values_and_defaults():
    topo = topology(SMALL)
    link = topo.links[0]
    assert link.between == ("b", "a") and link.key == ("a", "b")
    assert (link.bandwidth, link.cost, link.mtu, link.kind) == (10**9, 3, 1500, "mpls-tunnel")
    sl = topo.slice("s")
    assert (sl.nodes, sl.links, sl.prefix, sl.prefix_length, sl.datapath) == ("all", "all", None, 22, "kernel")
    assert topo.slice_nodes(sl) == ["a", "b"]
    assert topo.slice_links(sl) == [link]


def test_marks_point_at_values_and_keys():
    topo = topology(SMALL, path="small.yaml")
    smap = topo.source
    assert smap.mark(("links", 0, "bandwidth")) == SourceMark("small.yaml", 8, 34)
    assert smap.key_mark(("links", 0, "bandwidth")) == SourceMark("small.yaml", 8, 23)
    assert smap.mark(("links", 0, "between", 1)) == SourceMark("small.yaml", 8, 19)
    assert smap.mark(("nodes", 1, "name")) == SourceMark("small.yaml", 6, 12)
    # A path that is not written (a default) falls back to its nearest written ancestor.
    assert smap.mark(("slices", 0, "prefix")) == smap.mark(("slices", 0)) == SourceMark("small.yaml", 10, 5)


def test_merge_keys_and_anchors_are_understood():
    topo = topology("""\
        name: t
        asn: 64512
        address-space: [10.0.0.0/16]
        nodes: [{name: a}, {name: b}, {name: c}]
        links:
          - &first {between: [a, c], bandwidth: 1G, cost: 5}
          - {<<: *first, between: [a, b]}
          - {<<: *first, between: [b, c], cost: 7}
    """)
    costs = {lk.key: (lk.cost, lk.bandwidth) for lk in topo.links}
    assert costs == {("a", "c"): (5, 10**9), ("a", "b"): (5, 10**9), ("b", "c"): (7, 10**9)}


def test_quoted_numbers_are_not_numbers():
    with pytest.raises(TopologyError) as caught:
        topology(SMALL.replace("cost: 3", "cost: '3'"))
    assert [p.message for p in caught.value.problems] == ["cost: must be an integer, got '3'"]


def test_schema_errors_stop_before_semantics():
    # A dangling node name *and* a bad unit: only the schema problem is reported, since
    # semantic checks on a half-valid file would report echoes of it.
    with pytest.raises(TopologyError) as caught:
        topology(SMALL.replace("[b, a]", "[b, z]").replace("1Gb/s", "1GB"))
    assert [p.message.split(":")[0] for p in caught.value.problems] == ["bandwidth"]


def test_render_has_location_line_and_caret():
    problem = Problem(SourceMark("f.yaml", 3, 5), "oops", "    x: 1")
    assert problem.render() == "f.yaml:3:5: oops\n        x: 1\n        ^"
    assert problem.render(with_caret=False) == "f.yaml:3:5: oops"
    assert Problem(None, "no place").render() == "<topology>: no place"


def test_topology_error_sorts_problems_by_place():
    error = TopologyError([
        Problem(SourceMark("f", 9, 1), "late"),
        Problem(SourceMark("f", 2, 7), "b"),
        Problem(SourceMark("f", 2, 3), "a"),
    ])
    assert [p.message for p in error.problems] == ["a", "b", "late"]
    assert str(error) == "f:2:3: a\nf:2:7: b\nf:9:1: late"


def test_unreadable_and_undecodable_files(tmp_path):
    with pytest.raises(TopologyError) as caught:
        load_topology(str(tmp_path / "missing.yaml"))
    assert "cannot read: No such file" in caught.value.problems[0].message
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: t\nasn: \xff\n")
    with pytest.raises(TopologyError) as caught:
        load_topology(str(binary))
    assert caught.value.problems[0].mark == SourceMark(str(binary), 2, 6)
    assert "not UTF-8" in caught.value.problems[0].message


def test_control_characters_and_alias_bombs_are_errors_not_crashes():
    with pytest.raises(TopologyError) as caught:
        load_marked("c.yaml", "name: a\x07\n")
    assert caught.value.problems[0].mark == SourceMark("c.yaml", 1, 8)
    with pytest.raises(TopologyError) as caught:
        load_marked("r.yaml", "a: &x [1, *x]\n")
    assert "alias refers to a value that contains it" in caught.value.problems[0].message
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    with pytest.raises(TopologyError) as caught:
        load_marked("bomb.yaml", bomb)
    assert "expands to more than" in caught.value.problems[0].message
