"""Intra-vISP routing (pure): shortest paths by link cost with networkx.

For one slice, `next_hops(graph)` gives, for every (source, destination) node pair, the
neighbour of the source on a least-cost path. Ties are broken deterministically (by the
neighbour's name), so the same topology always yields the same routes.
"""
from __future__ import annotations

import networkx as nx

from model.schema import Link


def slice_graph(nodes: list[str], links: list[Link]) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(sorted(nodes))
    for link in sorted(links, key=lambda lk: lk.key):
        graph.add_edge(*link.key, cost=link.cost)
    return graph


def next_hops(graph: nx.Graph) -> dict[str, dict[str, str]]:
    """{source: {destination: first-hop neighbour}} for all reachable pairs."""
    result: dict[str, dict[str, str]] = {}
    for destination in graph.nodes:
        # Distances *to* the destination; a source's next hop is the neighbour that
        # minimises cost(source, neighbour) + distance(neighbour), ties by name.
        distance = nx.single_source_dijkstra_path_length(graph, destination, weight="cost")
        for source in graph.nodes:
            if source == destination or source not in distance:
                continue
            best = min(
                (graph.edges[source, nb]["cost"] + distance[nb], nb)
                for nb in graph.neighbors(source)
                if nb in distance
            )
            result.setdefault(source, {})[destination] = best[1]
    return result


def distances(graph: nx.Graph) -> dict[str, dict[str, int]]:
    """{source: {destination: least total cost}} for all reachable pairs."""
    return {src: dict(lengths) for src, lengths in nx.all_pairs_dijkstra_path_length(graph, weight="cost")}
