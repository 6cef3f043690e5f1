"""Intra-vISP routing (pure): least-cost paths by link cost, with one deterministic
tie-break — among equal-cost paths, the first hop with the smallest name.

`LeastCostPaths` holds one slice graph (nodes by sorted name, adjacency with costs) and
answers, without any all-pairs table:

* `first_hops(source)`: the next hop from `source` toward every node, in one Dijkstra
  whose labels are (cost, rank of the first hop), compared lexicographically: the first
  label a node gets is its least cost and, among the paths of that cost, the smallest
  first hop. Costs are integers >= 1, so distances are processed in buckets (a heap of
  the distinct pending distances, a list of nodes per distance);
* `toward(destination)`: every node's next hop toward one destination and its cost, from
  one Dijkstra rooted at the destination (links are symmetric): what the egress manager
  needs for a few egress nodes. Both give the same hops.

`slice_graph`, `next_hops` and `distances` keep the older dict-of-dicts interface
(networkx graphs) for the labs and the tests.
"""
from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping

import networkx as nx

from model.schema import Link

NO_HOP = -1  # `first_hops` entry of the source itself and of nodes it cannot reach
TOWARD_CACHE = 64  # destinations whose `toward` answer is kept (egress nodes: a handful)


class LeastCostPaths:
    """Least-cost routing over one graph of nodes and symmetric links with integer costs >= 1."""

    def __init__(self, nodes: Iterable[str], edges: Iterable[tuple[str, str, int]]):
        self.names: list[str] = sorted(nodes)  # a node's index is its rank by name: ties pick the lowest
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        self.adjacency: list[list[tuple[int, int]]] = [[] for _ in self.names]
        for a, b, cost in edges:
            if cost < 1:
                raise ValueError(f"link {a}-{b}: cost {cost} (least-cost routing needs costs >= 1)")
            i, j = self.index[a], self.index[b]
            self.adjacency[i].append((j, cost))
            self.adjacency[j].append((i, cost))
        self._toward: OrderedDict[int, tuple[list[int], list[int | None]]] = OrderedDict()

    @classmethod
    def from_links(cls, nodes: Iterable[str], links: Iterable[Link]) -> "LeastCostPaths":
        return cls(nodes, ((*lk.key, lk.cost) for lk in links))

    @staticmethod
    def graph_key(nodes: Iterable[str], links: Iterable[Link]) -> tuple:
        """Equal for graphs with the same nodes, links and costs (their routes are the same)."""
        return tuple(sorted(nodes)), tuple(sorted((*lk.key, lk.cost) for lk in links))

    def first_hops(self, source: str) -> list[int]:
        """Index of the next hop from `source` toward each node (by index), or NO_HOP."""
        size = len(self.names)
        adjacency, push, pop = self.adjacency, heapq.heappush, heapq.heappop
        best = [1 << 62] * size  # cost * size + rank of the first hop: the best label so far
        hop = [NO_HOP] * size
        origin = self.index[source]
        best[origin] = -1
        bucket: dict[int, list[int]] = {}  # distance -> nodes labelled with it
        for neighbour, cost in adjacency[origin]:
            best[neighbour] = min(best[neighbour], cost * size + neighbour)
            bucket.setdefault(cost, []).append(neighbour)
        pending = list(bucket)  # the distinct distances waiting, as a heap
        heapq.heapify(pending)
        while pending:
            distance = pop(pending)
            base = distance * size
            for node in bucket.pop(distance):
                if hop[node] != NO_HOP:
                    continue  # settled already (at a shorter distance, or listed twice)
                label = best[node]
                hop[node] = label - base
                for neighbour, cost in adjacency[node]:
                    further = label + cost * size
                    if further < best[neighbour]:
                        best[neighbour] = further
                        nodes = bucket.get(distance + cost)
                        if nodes is None:
                            bucket[distance + cost] = [neighbour]
                            push(pending, distance + cost)
                        else:
                            nodes.append(neighbour)
        return hop

    def distances_from(self, source: str) -> list[int | None]:
        """Least cost from `source` to each node (by index); None where unreachable."""
        distance: list[int | None] = [None] * len(self.names)
        heap = [(0, self.index[source])]
        while heap:
            cost, node = heapq.heappop(heap)
            if distance[node] is not None:
                continue
            distance[node] = cost
            for neighbour, step in self.adjacency[node]:
                if distance[neighbour] is None:
                    heapq.heappush(heap, (cost + step, neighbour))
        return distance

    def toward(self, destination: str) -> tuple[list[int], list[int | None]]:
        """(next hop index of each node toward `destination` or NO_HOP, each node's cost to it)."""
        target = self.index[destination]
        cached = self._toward.get(target)
        if cached is not None:
            self._toward.move_to_end(target)
            return cached
        distance = self.distances_from(destination)
        hop = [NO_HOP] * len(self.names)
        for node, neighbours in enumerate(self.adjacency):
            if node == target or distance[node] is None:
                continue
            hop[node] = min((cost + distance[nb], nb) for nb, cost in neighbours if distance[nb] is not None)[1]
        self._toward[target] = (hop, distance)
        if len(self._toward) > TOWARD_CACHE:
            self._toward.popitem(last=False)
        return hop, distance

    def hop_table(self, source: str) -> dict[str, str]:
        """{destination: next hop} from `source`, by name, for every node it reaches."""
        names = self.names
        return {names[d]: names[h] for d, h in enumerate(self.first_hops(source)) if h != NO_HOP}

    def cost_row(self, source: str) -> dict[str, int]:
        """{destination: least cost} from `source` (itself included, at 0)."""
        return {self.names[d]: c for d, c in enumerate(self.distances_from(source)) if c is not None}


class LazyTable(Mapping):
    """{node: row} over a fixed set of nodes, each row computed when asked for (not kept):
    a dict-of-dicts interface without holding every pair at once."""

    def __init__(self, nodes: Iterable[str], row):
        self._nodes = list(nodes)
        self._known = set(self._nodes)
        self._row = row

    def __getitem__(self, node: str):
        if node not in self._known:
            raise KeyError(node)
        return self._row(node)

    def __contains__(self, node: object) -> bool:
        return node in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)


# -- the dict-of-dicts interface over networkx graphs -------------------------------------------
def slice_graph(nodes: list[str], links: list[Link]) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(sorted(nodes))
    for link in sorted(links, key=lambda lk: lk.key):
        graph.add_edge(*link.key, cost=link.cost)
    return graph


def paths_of(graph: nx.Graph) -> LeastCostPaths:
    return LeastCostPaths(graph.nodes, ((a, b, data["cost"]) for a, b, data in graph.edges(data=True)))


def next_hops(graph: nx.Graph) -> dict[str, dict[str, str]]:
    """{source: {destination: first-hop neighbour}} for all reachable pairs."""
    paths = paths_of(graph)
    tables = {source: paths.hop_table(source) for source in paths.names}
    return {source: table for source, table in tables.items() if table}


def distances(graph: nx.Graph) -> dict[str, dict[str, int]]:
    """{source: {destination: least total cost}} for all reachable pairs."""
    paths = paths_of(graph)
    return {source: paths.cost_row(source) for source in paths.names}
