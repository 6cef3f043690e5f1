"""Topology files for the benchmark (pure: each function returns YAML text).

* `line_topology`: four nodes in a line a-b-c-d, two slices spanning all of them, so the
  data path between the slivers on a and d is three hops and slicing is really active
  (two MAC classes per substrate device, two admitted MAC pairs per link in the guard);
* `random_topology`: a seeded, connected random graph (a random spanning tree plus random
  chords up to the link count), each slice spanning a connected random subset of nodes
  (grown from a random start node) with every link between its nodes;
* `abilene_copy`: topologies/abilene.yaml under another name, without its providers,
  slice egress and access points: those make `up` start processes (BIRD, ExaBGP, the
  egress manager), which are not kernel objects and have no floor to compare with.
"""
from __future__ import annotations

import os
import random

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADDRESS_SPACE = ["198.18.0.0/15"]


def line_topology(name: str, capacity: str, guarantees: tuple[str, ...], routings: tuple[str, ...] = ()) -> str:
    """The line a-b-c-d; slice s(i+1) has guarantee `guarantees[i]` and routing
    `routings[i]` (default static)."""
    nodes = ["a", "b", "c", "d"]
    doc = {
        "name": name,
        "asn": 64512,
        "address-space": ADDRESS_SPACE,
        "nodes": [{"name": n} for n in nodes],
        "links": [{"between": [x, y], "bandwidth": capacity, "cost": 1}
                  for x, y in zip(nodes, nodes[1:])],
        "slices": [{"name": f"s{i + 1}", "nodes": "all", "links": "all", "bandwidth": bw,
                    **({"routing": routings[i]} if i < len(routings) else {})}
                   for i, bw in enumerate(guarantees)],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def random_edges(rng: random.Random, names: list[str], count: int) -> list[tuple[str, str]]:
    """A connected simple graph on `names` with exactly `count` edges."""
    edges: set[tuple[str, str]] = set()
    order = names[:]
    rng.shuffle(order)
    for i in range(1, len(order)):  # random spanning tree: connected by construction
        edges.add(tuple(sorted((order[i], order[rng.randrange(i)]))))
    while len(edges) < count:
        x, y = rng.sample(names, 2)
        edges.add(tuple(sorted((x, y))))
    return sorted(edges)


def connected_subset(rng: random.Random, adjacency: dict[str, set[str]], size: int) -> list[str]:
    """`size` nodes grown from a random start, each new node adjacent to one already in."""
    start = rng.choice(sorted(adjacency))
    chosen = {start}
    frontier = set(adjacency[start])
    while len(chosen) < size and frontier:
        pick = rng.choice(sorted(frontier))
        chosen.add(pick)
        frontier |= adjacency[pick]
        frontier -= chosen
    return sorted(chosen)


def random_topology(name: str, nodes: int = 100, links: int = 200, slices: int = 10,
                    span: int = 30, seed: int = 20260, capacity: str = "10G",
                    guarantee: str = "500M") -> str:
    rng = random.Random(seed)
    names = [f"n{i:03d}" for i in range(nodes)]
    edges = random_edges(rng, names, links)
    adjacency: dict[str, set[str]] = {n: set() for n in names}
    for x, y in edges:
        adjacency[x].add(y)
        adjacency[y].add(x)
    doc = {
        "name": name,
        "asn": 64512,
        "address-space": ADDRESS_SPACE,
        "nodes": [{"name": n} for n in names],
        "links": [{"between": [x, y], "bandwidth": capacity, "cost": rng.randint(1, 10)}
                  for x, y in edges],
        "slices": [{"name": f"s{i}", "nodes": connected_subset(rng, adjacency, span),
                    "links": "all", "bandwidth": guarantee} for i in range(slices)],
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)


def abilene_copy(name: str) -> str:
    """Abilene's vISP alone (no providers, access or egress, no link delays): what the floor
    can make too."""
    with open(os.path.join(REPO, "topologies", "abilene.yaml")) as handle:
        doc = yaml.safe_load(handle)
    doc["name"] = name
    for section in ("providers", "access"):
        doc.pop(section, None)
    for sl in doc.get("slices", []):
        sl.pop("egress", None)
    for link in doc.get("links", []):  # link delays are processes (the delay line), not kernel objects
        for prop in ("delay", "jitter", "loss"):
            link.pop(prop, None)
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)
