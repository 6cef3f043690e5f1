"""Address allocation: deterministic, explicit prefixes respected, stable under growth."""
from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from unit_helpers import ABILENE, abilene_text, edited_abilene, topology
from compiler.addressing import SliceAddressing, allocate_slice_prefixes, slice_addressing
from model.errors import TopologyError
from compiler.loader import load_topology
from compiler.resources import Address, Neighbour
from compiler.planner import compile_plan

FOUR_SLICES = """\
    name: t
    asn: 64512
    address-space: [10.0.0.0/16]
    nodes: [{name: a}]
    slices:
      - {name: x, prefix-length: 24, bandwidth: 1M}
      - {name: y, prefix: 10.0.0.0/24, bandwidth: 1M}
      - {name: z, prefix-length: 23, bandwidth: 1M}
      - {name: w, prefix: 10.0.1.0/24, bandwidth: 1M}
"""


def addresses(plan, ns_suffix=None):
    return {(r.ns, r.ifname, r.cidr) for r in plan.resources if isinstance(r, Address)
            and (ns_suffix is None or r.ns.endswith(ns_suffix))}


def test_allocation_skips_explicit_prefixes_declared_before_and_after():
    prefixes = allocate_slice_prefixes(topology(FOUR_SLICES))
    assert prefixes == {
        "x": IPv4Network("10.0.131.0/24"),  # block crc32("x") % 256 of the /16
        "y": IPv4Network("10.0.0.0/24"),
        "z": IPv4Network("10.0.94.0/23"),  # block crc32("z") % 128
        "w": IPv4Network("10.0.1.0/24"),
    }


def test_allocation_moves_on_to_the_next_address_space_block():
    topo = topology("""\
        name: t
        asn: 64512
        address-space: [10.0.0.0/23, 172.16.0.0/16]
        nodes: [{name: a}]
        slices:
          - {name: x, prefix-length: 23, bandwidth: 1M}
          - {name: y, prefix-length: 23, bandwidth: 1M}
          - {name: v, prefix-length: 24, bandwidth: 1M}
    """)
    assert allocate_slice_prefixes(topo) == {
        "x": IPv4Network("10.0.0.0/23"),  # the only /23 of the first space
        "y": IPv4Network("172.16.42.0/23"),  # first space full: block crc32("y") % 128 of the second
        "v": IPv4Network("172.16.132.0/24"),
    }


def test_abilene_addresses_are_the_documented_layout(abilene, abilene_plan):
    prefixes = allocate_slice_prefixes(abilene)
    assert prefixes == {"plb": IPv4Network("198.18.0.0/22"), "research": IPv4Network("198.18.8.0/22")}
    layout = slice_addressing(abilene, "plb", prefixes["plb"])
    # A /22: loopbacks in the first quarter, link /31s in the middle half, /30s in the last quarter.
    # 11 nodes, 14 links and 2 pseudo-devices (a /30 each in the eighth after the links) need 64.
    assert (layout.loopback_block, layout.link_block, layout.needed) == (256, 512, 64)
    assert layout.loopback(0) == IPv4Address("198.18.0.0")
    assert layout.link_pair(1) == (IPv4Interface("198.18.1.2/31"), IPv4Interface("198.18.1.3/31"))
    assert layout.pseudo_device_subnet(1) == IPv4Network("198.18.3.4/30")
    got = addresses(abilene_plan, ".seattle.plb")
    ns = "vispd.abilene.seattle.plb"
    assert got == {
        (ns, "lo", "198.18.0.0/32"),
        (ns, "v-snva", "198.18.1.0/31"),  # seattle–sunnyvale, link 0: seattle sorts first
        (ns, "v-dnvr", "198.18.1.3/31"),  # seattle–denver, link 1: denver sorts first
        (ns, "plb0", "198.18.3.1/30"),
    }
    research_denver = addresses(abilene_plan, ".denver.research")
    assert ("vispd.abilene.denver.research", "lo", "198.18.8.3/32") in research_denver


def test_same_yaml_gives_same_addresses(abilene_plan):
    again = compile_plan(load_topology(ABILENE, abilene_text()))
    assert again.resources == abilene_plan.resources
    # The file name plays no part: the same text under another name plans identically.
    elsewhere = compile_plan(load_topology("/elsewhere/copy.yaml", abilene_text()))
    assert addresses(elsewhere) == addresses(abilene_plan)


def test_adding_a_node_to_a_slice_renumbers_nothing(abilene_plan):
    grown = compile_plan(edited_abilene("nodes: [denver, kansas-city,", "nodes: [seattle, denver, kansas-city,"))
    before, after = addresses(abilene_plan), addresses(grown)
    assert before < after
    new = after - before
    assert {ns for ns, _, _ in new} == {"vispd.abilene.seattle.research", "vispd.abilene.denver.research"}
    assert ("vispd.abilene.seattle.research", "lo", "198.18.8.0/32") in new
    # ...and the neighbours of existing slivers keep their addresses too.
    neighbours = lambda plan: {(r.ns, r.ifname, r.ip, r.mac) for r in plan.resources if isinstance(r, Neighbour)}
    assert neighbours(abilene_plan) < neighbours(grown)


def test_adding_a_link_to_a_slice_renumbers_nothing():
    base = """\
        name: t
        asn: 64512
        address-space: [10.0.0.0/16]
        nodes: [{name: a}, {name: b}, {name: c}]
        links:
          - {between: [a, b], bandwidth: 1G}
          - {between: [b, c], bandwidth: 1G}
          - {between: [a, c], bandwidth: 1G}
        slices:
          - {name: s, links: LINKS, bandwidth: 1M}
    """
    small = compile_plan(topology(base.replace("LINKS", "[[a, b], [b, c]]")))
    large = compile_plan(topology(base.replace("LINKS", "[[a, b], [b, c], [c, a]]")))
    assert addresses(small) < addresses(large)
    assert addresses(large) - addresses(small) == {
        ("vispd.t.a.s", "v-c", "10.0.45.4/31"),  # link a–c is the topology's link 2: prefix
        ("vispd.t.c.s", "v-a", "10.0.45.5/31"),  # 10.0.44.0/22, links from its second quarter
    }


def test_too_small_prefix_is_an_error():
    assert SliceAddressing(IPv4Network("10.0.0.0/26"), 11, 14, 2).fits()
    assert not SliceAddressing(IPv4Network("10.0.0.0/27"), 11, 14, 2).fits()
    with pytest.raises(TopologyError) as caught:
        edited_abilene("prefix: 198.18.0.0/22", "prefix: 198.18.0.0/27")
    (problem,) = caught.value.problems
    assert problem.message == "prefix 198.18.0.0/27 is too small for slice 'plb': needs 64 addresses"
    line = next(i for i, text in enumerate(abilene_text().splitlines(), 1) if "prefix: 198.18.0.0/22" in text)
    assert (problem.mark.line, problem.mark.column) == (line, 13)


def _abilene_without_plb():
    text = abilene_text()
    start, end = text.index("  # PLB: the reference"), text.index("  # A research vISP")
    return load_topology(ABILENE, text[:start] + text[end:])


def test_removing_a_slice_keeps_the_other_slices_addresses(abilene_plan):
    without = compile_plan(_abilene_without_plb())
    assert addresses(abilene_plan, ".research") == addresses(without, ".research")


def test_growing_the_topology_keeps_existing_addresses(abilene_plan):
    extra_nodes = "".join(f"  - {{name: extra{i}}}\n" for i in range(6))
    extra_links = "".join(f"  - {{between: [seattle, extra{i}], bandwidth: 1G}}\n" for i in range(6))
    text = abilene_text().replace("longitude: -74.01}\n", "longitude: -74.01}\n" + extra_nodes)
    text = text.replace("cost: 3,  delay: geo}\n\nslices:", "cost: 3,  delay: geo}\n" + extra_links + "\nslices:")
    grown = load_topology(ABILENE, text)
    assert len(grown.nodes) == 17 and len(grown.links) == 20
    assert addresses(abilene_plan) <= addresses(compile_plan(grown))
