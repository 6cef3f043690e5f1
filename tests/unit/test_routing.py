"""Shortest-path next hops: known answers on small graphs and on Abilene, deterministic ties,
and the fast paths (`LeastCostPaths`) against the definition on random graphs."""
from __future__ import annotations

import random

import networkx as nx
import pytest

from model.schema import Link
from routing_oracle import reference_next_hops
from compiler.routing import NO_HOP, LeastCostPaths, distances, next_hops, paths_of, slice_graph


def links(*specs: tuple[str, str, int]) -> list[Link]:
    return [Link.model_validate({"between": [a, b], "bandwidth": "1G", "cost": cost}) for a, b, cost in specs]


def hops(nodes: str, *specs):
    return next_hops(slice_graph(list(nodes), links(*specs)))


def test_line_graph():
    assert hops("abc", ("a", "b", 1), ("b", "c", 1)) == {
        "a": {"b": "b", "c": "b"},
        "b": {"a": "a", "c": "c"},
        "c": {"a": "b", "b": "b"},
    }


def test_triangle_prefers_the_cheaper_two_hop_path():
    result = hops("abc", ("a", "b", 1), ("b", "c", 1), ("a", "c", 5))
    assert result["a"]["c"] == "b" and result["c"]["a"] == "b"


def test_cost_change_flips_the_path():
    cheap_detour = hops("abc", ("a", "b", 1), ("b", "c", 1), ("a", "c", 3))
    assert cheap_detour["a"]["c"] == "b"
    cheap_direct = hops("abc", ("a", "b", 1), ("b", "c", 1), ("a", "c", 1))
    assert cheap_direct["a"]["c"] == "c"
    costly_hop = hops("abc", ("a", "b", 9), ("b", "c", 1), ("a", "c", 3))
    assert costly_hop["a"]["b"] == "c"  # a→c→b (4) beats the direct a→b (9)


def test_ties_are_broken_by_neighbour_name_whatever_the_declaration_order():
    square = [("a", "d", 1), ("d", "c", 1), ("a", "b", 1), ("b", "c", 1)]
    expected = {"a": {"b": "b", "c": "b", "d": "d"}, "c": {"a": "b", "b": "b", "d": "d"}}
    rng = random.Random(7)
    for _ in range(10):
        order = square[:]
        rng.shuffle(order)
        nodes = list("abcd")
        rng.shuffle(nodes)
        result = next_hops(slice_graph(nodes, links(*order)))
        assert {k: result[k] for k in "ac"} == expected


def test_unreachable_pairs_have_no_next_hop():
    result = hops("abcd", ("a", "b", 1), ("c", "d", 1))
    assert result == {"a": {"b": "b"}, "b": {"a": "a"}, "c": {"d": "d"}, "d": {"c": "c"}}


def test_single_node_has_no_routes():
    assert hops("a") == {}


ABILENE_EXPECTED = {
    # Worked out by hand from the costs in topologies/abilene.yaml.
    ("seattle", "new-york"): "denver",      # 16+9+7+3+11 = 46 via Kansas City and Chicago
    ("seattle", "houston"): "denver",       # 16+9+10 = 35 beats 11+5+22 = 38 via Los Angeles
    ("seattle", "los-angeles"): "sunnyvale",
    ("los-angeles", "new-york"): "houston",  # 22+11+9+3 = 45 beats 50 via Sunnyvale
    ("new-york", "los-angeles"): "washington",
    ("chicago", "atlanta"): "indianapolis",
    ("denver", "sunnyvale"): "sunnyvale",
}


def test_abilene_next_hops_match_hand_computed_paths(abilene):
    sl = abilene.slice("plb")
    result = next_hops(slice_graph(abilene.slice_nodes(sl), abilene.slice_links(sl)))
    for (source, destination), hop in ABILENE_EXPECTED.items():
        assert result[source][destination] == hop, (source, destination)


def test_abilene_every_next_hop_lies_on_a_least_cost_path(abilene):
    sl = abilene.slice("plb")
    graph = slice_graph(abilene.slice_nodes(sl), abilene.slice_links(sl))
    result = next_hops(graph)
    distance = dict(nx.all_pairs_dijkstra_path_length(graph, weight="cost"))
    pairs = 0
    for source, table in result.items():
        assert set(table) == set(graph.nodes) - {source}
        for destination, hop in table.items():
            assert graph.has_edge(source, hop)
            assert graph.edges[source, hop]["cost"] + distance[hop][destination] == distance[source][destination]
            pairs += 1
    assert pairs == 11 * 10


# -- the fast paths agree with the definition, on random graphs full of ties -------------------

def random_graph(rng: random.Random) -> nx.Graph:
    """Up to 14 nodes with shuffled names, sparse or dense, costs 1-3 (many equal-cost
    paths), sometimes in several parts."""
    names = [f"{rng.choice('abcxyz')}{i}" for i in rng.sample(range(100), rng.randint(1, 14))]
    specs = {tuple(sorted(rng.sample(names, 2))) for _ in range(rng.randint(0, 3 * len(names)))
             if len(names) > 1}
    return slice_graph(names, links(*[(a, b, rng.randint(1, 3)) for a, b in sorted(specs)]))


def test_first_hops_match_the_definition_on_random_graphs():
    rng = random.Random(2026)
    for _ in range(300):
        graph = random_graph(rng)
        assert next_hops(graph) == reference_next_hops(graph)


def test_toward_a_destination_gives_the_same_hops_and_the_least_costs():
    rng = random.Random(11)
    for _ in range(100):
        graph = random_graph(rng)
        paths = paths_of(graph)
        reference = reference_next_hops(graph)
        lengths = dict(nx.all_pairs_dijkstra_path_length(graph, weight="cost"))
        for destination in paths.names:
            hops, costs = paths.toward(destination)
            for node, name in enumerate(paths.names):
                want = reference.get(name, {}).get(destination)
                assert (paths.names[hops[node]] if hops[node] != NO_HOP else None) == want
                assert costs[node] == lengths[destination].get(name)
        assert distances(graph) == lengths


def test_a_cost_below_one_is_refused():
    with pytest.raises(ValueError, match="cost 0"):
        LeastCostPaths(["a", "b"], [("a", "b", 0)])
