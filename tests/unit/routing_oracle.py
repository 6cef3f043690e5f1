"""The definition of vispd's static routes, written the slow and obvious way, for tests to
hold the planner's fast and aggregated routes against: next hops by a Dijkstra from every
destination (ties to the smallest neighbour name), one route per target of each destination,
and the addresses each sliver sends through each of its neighbours."""
from __future__ import annotations

from ipaddress import IPv4Network, ip_network

import networkx as nx

from compiler.resources import Route


def reference_next_hops(graph: nx.Graph) -> dict[str, dict[str, str]]:
    """{source: {destination: neighbour minimising (link cost + its distance, its name)}}."""
    result: dict[str, dict[str, str]] = {}
    for destination in graph.nodes:
        distance = nx.single_source_dijkstra_path_length(graph, destination, weight="cost")
        for source in graph.nodes:
            if source == destination or source not in distance:
                continue
            result.setdefault(source, {})[destination] = min(
                (graph.edges[source, nb]["cost"] + distance[nb], nb)
                for nb in graph.neighbors(source) if nb in distance)[1]
    return result


def expected_ways(facts, graph: nx.Graph, source: str) -> dict[int, tuple[str, str]]:
    """address -> (gateway, ifname) that one route per target gives the sliver at `source`."""
    ways: dict[int, tuple[str, str]] = {}
    for destination, hop in reference_next_hops(graph).get(source, {}).items():
        way = (facts.ends[(hop, source)].ip, facts.ends[(source, hop)].ifname)
        for target in facts.targets(destination):
            for address in IPv4Network(target):
                assert int(address) not in ways, f"{target} overlaps another target"
                ways[int(address)] = way
    return ways


def planned_ways(routes: list[Route], within: IPv4Network) -> dict[int, tuple[str, str]]:
    """address -> (gateway, ifname) of a sliver's routes inside `within`; no two may overlap."""
    ways: dict[int, tuple[str, str]] = {}
    for route in routes:
        network = ip_network(route.dst)
        if not network.subnet_of(within):
            continue
        for address in network:
            assert int(address) not in ways, f"{route.dst} overlaps another route of {route.ns}"
            ways[int(address)] = (route.gateway, route.ifname)
    return ways


def route_toward(resources: list, ns: str, address: str) -> Route | None:
    """The route of `ns` that the kernel picks for `address` (longest prefix match)."""
    matching = [r for r in resources if isinstance(r, Route) and r.ns == ns
                and ip_network(address).subnet_of(ip_network(r.dst))]
    return max(matching, key=lambda r: ip_network(r.dst).prefixlen, default=None)


def routed_addresses(routes: list[Route]) -> set[int]:
    """Every address the routes cover (routes of one namespace never overlap: checked)."""
    covered: set[int] = set()
    for route in routes:
        for address in ip_network(route.dst):
            assert int(address) not in covered, f"{route.dst} overlaps another route of {route.ns}"
            covered.add(int(address))
    return covered


def addresses_of(*cidrs: str) -> set[int]:
    return {int(a) for cidr in cidrs for a in ip_network(cidr)}
