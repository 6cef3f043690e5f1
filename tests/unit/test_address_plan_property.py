"""Property (hypothesis): for random valid topologies — random connected graphs, slices of
every routing mode with pseudo-devices, providers and egress, access points of every
address-taking type, links failed or not — the compiled plan never gives two interfaces the
same address, never lets two different subnets overlap except on one node (a border's
next-hop /32s inside its slice link), keeps every slice inside its own prefix, and keeps
slice prefixes disjoint from each other and from the lab's Internet and underlay."""
from __future__ import annotations

import os
from collections import defaultdict
from ipaddress import IPv4Network, ip_interface

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.addressing import allocate_slice_prefixes
from compiler.context import ControllerState
from compiler.planner import compile_plan
from compiler.resources import Address
from model.naming import parse_ns
from unit_helpers import topology

EXAMPLES = int(os.environ.get("VISPD_FUZZ_EXAMPLES", 150))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LINK_LOCAL = IPv4Network("169.254.0.0/16")


@st.composite
def valid_topology(draw) -> tuple[str, frozenset]:
    count = draw(st.integers(2, 9))
    names = [f"n{i}" for i in range(count)]
    edges = {tuple(sorted((names[i], names[draw(st.integers(0, i - 1))]))) for i in range(1, count)}
    extra = draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(names)), max_size=count))
    edges |= {tuple(sorted(pair)) for pair in extra if pair[0] != pair[1]}
    providers = [{"name": f"p{i}", "node": draw(st.sampled_from(names)), "asn": 65001 + i, "bandwidth": "1G"}
                 for i in range(draw(st.integers(0, 3)))]
    slices, access = [], []
    for j in range(draw(st.integers(1, 4))):
        spec = {"name": f"s{j}", "nodes": "all", "links": "all", "bandwidth": "10M",
                "routing": draw(st.sampled_from(["static", "ospf", "none"])),
                "prefix-length": draw(st.sampled_from([20, 21, 22]))}
        spec["pseudo-devices"] = [{"node": draw(st.sampled_from(names)), "type": "tun", "name": f"t{k}"}
                                  for k in range(draw(st.integers(0, 2)))]
        if providers and spec["routing"] != "none":
            spec["egress"] = sorted(draw(st.sets(st.sampled_from([p["name"] for p in providers]), max_size=3)))
        slices.append(spec)
        for kind in draw(st.sets(st.sampled_from(["openvpn", "wireguard", "socket"]), max_size=2)):
            point = {"slice": spec["name"], "type": kind, "nodes": sorted(draw(
                st.sets(st.sampled_from(names), min_size=1, max_size=2)))}
            if kind != "socket":
                point["users"] = [{"name": "alice"}]
            access.append(point)
    text = yaml.safe_dump({
        "name": "prop", "asn": 64512, "address-space": ["198.18.0.0/15"],
        "nodes": [{"name": n} for n in names],
        "links": [{"between": list(e), "bandwidth": "10G", "cost": draw(st.integers(1, 3))} for e in sorted(edges)],
        "slices": slices, "providers": providers, "access": access})
    failed = frozenset(draw(st.sets(st.sampled_from(sorted(edges)), max_size=2)))
    return text, failed


def node_of(ns: str) -> str:
    return parse_ns(ns)[1] if parse_ns(ns) else ns


@PROPERTY
@given(valid_topology())
def test_planned_addresses_never_collide(case):
    text, failed = case
    topo = topology(text, "prop.yaml")
    plan = compile_plan(topo, state=ControllerState(failed_links=failed))
    addresses = [r for r in plan.resources if isinstance(r, Address)]
    owner: dict = {}
    networks = defaultdict(set)
    for address in addresses:
        interface = ip_interface(address.cidr)
        assert interface.ip not in owner, f"{interface.ip} on {owner.get(interface.ip)} and {address.ns}"
        owner[interface.ip] = (address.ns, address.ifname)
        networks[interface.network].add(node_of(address.ns))
    ordered = sorted(networks, key=lambda n: (int(n.network_address), n.prefixlen))
    for i, network in enumerate(ordered):
        for other in ordered[i + 1:]:
            if other.network_address > network.broadcast_address:
                break
            # distinct subnets may nest only on one node (a border's next hops in its slice links)
            assert networks[network] == networks[other] and len(networks[network]) == 1, (network, other)
    prefixes = allocate_slice_prefixes(topo)
    for address in addresses:
        parsed = parse_ns(address.ns)
        if parsed and parsed[2]:   # a sliver: its slice's prefix, its link to a border, its public side
            interface = ip_interface(address.cidr)
            allowed = (prefixes[parsed[2]], LINK_LOCAL, topo.public.prefix)
            assert any(interface.ip in prefix for prefix in allowed), (address, prefixes[parsed[2]])
    taken = list(prefixes.values()) + [topo.internet.prefix, topo.internet.transit, topo.public.prefix]
    for i, prefix in enumerate(taken):
        for other in taken[i + 1:]:
            assert not prefix.overlaps(other), (prefix, other)
