"""Validation rules at their edges (each test fails if its rule is weakened or inverted) and
the machine-facing checks of `up`: uids of existing accounts, topology names that a
directory would shadow."""
from __future__ import annotations

import os

import pytest

from compiler.context import ControllerState
from compiler.planner import compile_plan
from compiler.resources import TunTap
from compiler.runtime import Runtime
from model.errors import TopologyError, VispdError
from compiler.loader import load_topology
from vispd import engine, state

BASE = """\
name: edge
asn: 64512
address-space: [10.0.0.0/16]
nodes: [{name: a}, {name: b}]
links: [{between: [a, b], bandwidth: LINKBW}]
"""


def topology(text: str):
    return load_topology("inline.yaml", text)


def problems(text: str) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        topology(text)
    return [p.message for p in caught.value.problems]


def test_a_link_filled_exactly_to_capacity_is_accepted_and_one_bit_more_is_not():
    slices = "slices:\n  - {name: s, bandwidth: 600M}\n  - {name: t, bandwidth: 400M}\n"
    topology(BASE.replace("LINKBW", "1G") + slices)  # 600M + 400M = 1G: fits exactly
    found = problems(BASE.replace("LINKBW", "1G") + slices.replace("400M", "400.000001M"))
    assert any("over-subscribes" in m for m in found)


def test_each_link_takes_a_whole_31_of_the_slice_prefix():
    nodes = ", ".join(f"{{name: n{i}}}" for i in range(12))  # 12 loopbacks: the first quarter holds 16
    pairs = [(i, (i + 1) % 12) for i in range(12)] + [(i, i + 6) for i in range(6)] + [(0, 2), (1, 3)]
    links = ", ".join(f"{{between: [n{a}, n{b}], bandwidth: 1G}}" for a, b in pairs)  # 20 links
    text = f"""\
name: edge
asn: 64512
address-space: [10.0.0.0/16]
nodes: [{nodes}]
links: [{links}]
slices: [{{name: s, prefix: 10.0.0.0/26, bandwidth: 1M, pseudo-devices: [{{node: n0, type: tun}}]}}]
"""
    # 20 links need 40 addresses; a /26's middle half has 32: the /31s would run into the /30s
    assert any("too small for slice 's'" in m for m in problems(text))


def test_sixteen_providers_share_the_default_peerings_and_a_seventeenth_needs_its_own():
    def providers(count: int) -> str:
        return "".join(f"  - {{name: p{i}, node: {'ab'[i % 2]}, asn: {65001 + i}, bandwidth: 1G}}\n"
                       for i in range(count))
    text = BASE.replace("LINKBW", "1G") + "providers:\n"
    topology(text + providers(16))
    found = problems(text + providers(17))
    assert found == ["give provider 'p16' a 'peering' prefix: the default /28s of 192.0.2.0/24 are used up"]


def test_a_border_takes_thirteen_providers_and_not_fourteen():
    def providers(count: int) -> str:
        return "".join(f"  - {{name: p{i}, node: a, asn: {65001 + i}, bandwidth: 1G}}\n" for i in range(count))
    text = BASE.replace("LINKBW", "1G") + "providers:\n"
    topology(text + providers(13))
    found = problems(text + providers(14))
    assert found == ["node 'a' has 14 providers: a border router takes at most 13 (one next hop each on a "
                     "slice's /28 link)"]


@pytest.mark.parametrize("peering, ok", [("192.0.2.0/31", True), ("192.0.2.0/32", False)])
def test_a_peering_prefix_must_hold_the_borders_session(peering, ok):
    text = BASE.replace("LINKBW", "1G") + f"providers: [{{name: up, node: a, asn: 65001, bandwidth: 1G, " \
        f"peering: {peering}}}]\n"
    if ok:
        topology(text)
    else:
        assert problems(text) == [f"peering {peering} has no room for the border's session (a /31: the provider, "
                                  "then the border)"]


@pytest.mark.parametrize("community, ok", [("65535:65535", True), ("0:0", True), ("65536:1", False),
                                           ("1:65536", False)])
def test_communities_take_two_16_bit_parts(community, ok):
    text = BASE.replace("LINKBW", "1G") + f"""\
providers: [{{name: up, node: a, asn: 65001, bandwidth: 1G}}]
slices:
  - name: s
    prefix: 10.0.0.0/22
    bandwidth: 1M
    egress: [up]
    announce: [{{prefix: 10.0.0.0/22, communities: ["{community}"]}}]
"""
    if ok:
        topology(text)
    else:
        assert any("outside 0..65535" in m for m in problems(text))


def test_an_explicit_uid_is_the_slivers_and_the_pseudo_devices_owner():
    topo = topology(BASE.replace("LINKBW", "1G")
                    + "slices: [{name: s, bandwidth: 1M, uid: 61234, pseudo-devices: [{node: a, type: tun}]}]\n")
    plan = compile_plan(topo)
    assert {s.uid for s in plan.slivers} == {61234}
    assert [(r.uid, r.gid) for r in plan.resources if isinstance(r, TunTap)] == [(61234, 61234)]


def test_default_uids_step_around_the_machines_accounts():
    topo = topology(BASE.replace("LINKBW", "1G") + "slices: [{name: s, bandwidth: 1M}]\n")
    free = compile_plan(topo).slivers[0].uid
    taken = Runtime.for_topology("edge", taken_ids=frozenset({free}))
    moved = compile_plan(topo, taken, ControllerState()).slivers[0].uid
    assert moved != free and 60000 <= moved < 64000


def test_up_refuses_a_uid_that_is_an_account_of_the_machine():
    nobody = state.account_of(65534)
    if nobody is None:
        pytest.skip("this machine has no account or group with id 65534 (nobody)")
    topo = topology(BASE.replace("LINKBW", "1G") + "slices: [{name: s, bandwidth: 1M, uid: 65534}]\n")
    with pytest.raises(VispdError, match="uid 65534 is the (account|group) 'no"):
        engine.refuse_taken_uids(topo)


def test_a_topology_name_wins_over_a_directory_of_that_name(tmp_path, monkeypatch):
    monkeypatch.setenv("VISPD_STATE_DIR", str(tmp_path / "state"))
    source = tmp_path / "edge.yaml"
    source.write_text(BASE.replace("LINKBW", "1G"))
    state.TopologyState("edge").set_source(str(source))
    monkeypatch.chdir(tmp_path)
    os.mkdir(tmp_path / "edge")  # would shadow the name if taken for a path
    topo, found = engine.resolve("edge")
    assert topo.name == "edge" and found == str(source)
    with pytest.raises(TopologyError, match="Is a directory"):
        engine.resolve("./edge")  # a path is still a path
