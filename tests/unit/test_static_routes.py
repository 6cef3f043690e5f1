"""Aggregated static routes against their definition: on Abilene (pseudo-devices, access
subnets, a failed link) and on random topologies (ties, slice subsets, partitions), every
sliver sends exactly the addresses of one route per target, each through the same
neighbour, with no two routes overlapping and as few prefixes as that allows; slices with
equal graphs share one computation; a ring's slivers get O(log N) routes."""
from __future__ import annotations

import math
import random
from collections import defaultdict
from ipaddress import IPv4Network, collapse_addresses

import networkx as nx
import yaml

from routing_oracle import expected_ways, planned_ways, reference_next_hops
from unit_helpers import ABILENE, abilene_full_text, topology
from compiler.context import PlanContext
from compiler.loader import load_topology
from compiler.planner import ControllerState, compile_plan
from compiler.resources import Route
from compiler.routing import slice_graph
from compiler.runtime import Runtime


def routes_by_ns(plan) -> dict[str, list[Route]]:
    grouped = defaultdict(list)
    for resource in plan.resources:
        if isinstance(resource, Route):
            grouped[resource.ns].append(resource)
    return grouped


def fewest_prefixes(ways: dict[int, tuple[str, str]]) -> int:
    """The fewest CIDR prefixes covering exactly each neighbour's addresses (the standard library's count)."""
    by_way = defaultdict(list)
    for address, way in ways.items():
        by_way[way].append(IPv4Network(address))
    return sum(len(list(collapse_addresses(networks))) for networks in by_way.values())


def assert_routes_match_definition(topo, state: ControllerState | None = None) -> int:
    """Check every static sliver of `topo`'s plan against the definition; return the pairs checked."""
    plan = compile_plan(topo, Runtime.for_topology(topo.name), state)
    ctx = PlanContext(topo, Runtime.for_topology(topo.name), state)
    routes = routes_by_ns(plan)
    failed = state.failed_links if state else frozenset()
    checked = 0
    for sl in topo.slices:
        if sl.routing != "static":
            continue
        facts = ctx.slice_facts[sl.name]
        graph = slice_graph(facts.members, [lk for lk in topo.slice_links(sl) if lk.key not in failed])
        for node in facts.members:
            mine = routes[ctx.sliver_ns(node, sl.name)]
            want = expected_ways(facts, graph, node)
            got = planned_ways(mine, facts.prefix)
            assert got == want, (sl.name, node)
            assert len([r for r in mine if IPv4Network(r.dst).subnet_of(facts.prefix)]) == fewest_prefixes(want)
            assert {r.prefsrc for r in mine if IPv4Network(r.dst).subnet_of(facts.prefix)} <= {facts.loopback[node]}
            checked += len(want)
    return checked


def test_abilene_with_access_and_pseudo_devices_routes_as_defined():
    topo = load_topology(ABILENE, abilene_full_text())
    assert assert_routes_match_definition(topo) > 1000
    failed = ControllerState(failed_links=frozenset({("denver", "seattle"), ("atlanta", "washington")}))
    assert assert_routes_match_definition(topo, failed) > 1000


def random_topology_text(rng: random.Random) -> str:
    """A connected random graph; slices of every routing mode over all nodes or a connected
    subset, with pseudo-devices; costs 1-3 (ties everywhere)."""
    count = rng.randint(2, 12)
    names = [f"{rng.choice('pqxy')}{i}" for i in rng.sample(range(50), count)]
    rng.shuffle(names)
    edges = {tuple(sorted((names[i], names[rng.randrange(i)]))) for i in range(1, count)}
    edges |= {tuple(sorted(rng.sample(names, 2))) for _ in range(rng.randint(0, 2 * count))}
    neighbours = defaultdict(set)
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    slices = []
    for j in range(rng.randint(1, 3)):
        members = {rng.choice(names)}
        for _ in range(rng.randint(0, count)):
            members.add(rng.choice(sorted(set().union(*(neighbours[m] for m in members)))))
        spec = {"name": f"s{j}", "nodes": "all" if rng.random() < 0.5 else sorted(members), "links": "all",
                "bandwidth": "10M", "routing": rng.choice(["static", "static", "ospf", "none"])}
        span = names if spec["nodes"] == "all" else spec["nodes"]
        spec["pseudo-devices"] = [{"node": rng.choice(span), "type": "tun", "name": f"t{k}"}
                                  for k in range(rng.randint(0, 3))]
        slices.append(spec)
    return yaml.safe_dump({
        "name": "rnd", "asn": 64512, "address-space": ["198.18.0.0/16"],
        "nodes": [{"name": n} for n in names],
        "links": [{"between": list(e), "bandwidth": "1G", "cost": rng.randint(1, 3)} for e in sorted(edges)],
        "slices": slices})


def test_random_topologies_route_as_defined_even_with_failed_links():
    rng = random.Random(77)
    checked = 0
    for _ in range(60):
        topo = topology(random_topology_text(rng), "random.yaml")
        checked += assert_routes_match_definition(topo)
        if topo.links:
            failed = frozenset(rng.sample([lk.key for lk in topo.links], rng.randint(1, min(3, len(topo.links)))))
            checked += assert_routes_match_definition(topo, ControllerState(failed_links=failed))
    assert checked > 2000


RING_SIZE = 64


def ring_text(size: int, slices: list[dict]) -> str:
    names = [f"r{i:03d}" for i in range(size)]
    return yaml.safe_dump({
        "name": "bigring", "asn": 64512, "address-space": ["198.18.0.0/16"],
        "nodes": [{"name": n} for n in names],
        "links": [{"between": [names[i], names[(i + 1) % size]], "bandwidth": "10G", "cost": 1}
                  for i in range(size)],
        "slices": slices})


def test_a_ring_gets_logarithmically_many_routes_per_sliver():
    topo = topology(ring_text(RING_SIZE, [{"name": "big", "nodes": "all", "links": "all", "bandwidth": "10M"}]))
    routes = routes_by_ns(compile_plan(topo))
    assert len(routes) == RING_SIZE
    # each neighbour's destinations: at most two runs of loopbacks (one where the ring wraps)
    assert max(len(r) for r in routes.values()) <= 2 * 2 * math.log2(RING_SIZE)
    assert sum(len(r) for r in routes.values()) < RING_SIZE * (RING_SIZE - 1) / 4


def test_slices_with_equal_graphs_share_their_paths_and_others_do_not():
    topo = topology(ring_text(8, [
        {"name": "one", "nodes": "all", "links": "all", "bandwidth": "10M"},
        {"name": "two", "nodes": "all", "links": "all", "bandwidth": "10M", "routing": "ospf"},
        {"name": "three", "nodes": "all", "links": [["r000", "r001"], ["r001", "r002"], ["r002", "r003"],
                                                    ["r003", "r004"], ["r004", "r005"], ["r005", "r006"],
                                                    ["r006", "r007"]], "bandwidth": "10M"}]))
    facts = PlanContext(topo, Runtime.for_topology(topo.name)).slice_facts
    assert facts["one"].graph is facts["two"].graph
    assert facts["three"].graph is not facts["one"].graph
    # without r007-r000, r000 reaches r007 the long way round
    assert facts["three"].hops["r000"]["r007"] == "r001" and facts["one"].hops["r000"]["r007"] == "r007"


def test_paths_and_costs_for_the_egress_manager_follow_the_definition(abilene):
    ctx = PlanContext(abilene, Runtime.for_topology(abilene.name))
    for sl in abilene.slices:
        facts = ctx.slice_facts[sl.name]
        graph = slice_graph(facts.members, abilene.slice_links(sl))
        reference = reference_next_hops(graph)
        paths, cost = facts.paths(), facts.cost
        for source in facts.members:
            for destination in facts.members:
                hop = reference.get(source, {}).get(destination)
                if hop is None:
                    assert destination not in paths[source]
                    continue
                gateway, ifname, total = paths[source][destination]
                assert (gateway, ifname) == (facts.ends[(hop, source)].ip, facts.ends[(source, hop)].ifname)
                assert total == cost[source][destination] == nx.dijkstra_path_length(graph, source, destination, weight="cost")
            assert sorted(paths[source]) == sorted(reference.get(source, {}))
            assert facts.hops[source] == reference.get(source, {})


def test_slices_without_static_routing_have_no_hops_but_costs():
    topo = topology(ring_text(4, [{"name": "o", "nodes": "all", "links": "all", "bandwidth": "10M",
                                   "routing": "ospf"}]))
    facts = PlanContext(topo, Runtime.for_topology(topo.name)).slice_facts["o"]
    assert dict(facts.hops) == {} and all(not row for row in facts.paths().values())
    assert facts.cost["r000"]["r002"] == 2
