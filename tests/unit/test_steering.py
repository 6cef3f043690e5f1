"""Steering by prefix (bgp.steering): which slivers get a route of their own for a prefix, so
each destination is reached through an egress with the best route for it; checked on a line
of slivers by walking the resulting forwarding hop by hop (no loops, the best exit)."""
from __future__ import annotations

import random

from bgp.steering import best_egresses, choose_steering, steering_ops

# a - e1 - m - e2 - b, unit costs; e1 and e2 are egress nodes
LINE = ["a", "e1", "m", "e2", "b"]


def line_slice() -> dict:
    slivers = []
    for i, node in enumerate(LINE):
        toward = {}
        for egress in ("e1", "e2"):
            j = LINE.index(egress)
            if j != i:
                hop = LINE[i + (1 if j > i else -1)]
                toward[egress] = [f"gw-{hop}", f"v-{hop}", abs(j - i)]
        slivers.append({"node": node, "ns": f"ns-{node}", "loopback": f"lo-{node}", "toward": toward})
    return {"slivers": slivers}


def walk(config: dict, live: set, offers: dict, steering: dict, start: str, prefix: str) -> str | None:
    """Follow packets for `prefix` from `start`: the sliver's steering route, else (at an
    egress offering it) out, else its default toward the nearest live egress. Returns the
    egress it leaves by, None if it loops or is dropped."""
    by_node = {s["node"]: s for s in config["slivers"]}
    node, seen = start, set()
    while node not in seen:
        seen.add(node)
        sliver = by_node[node]
        route = steering[sliver["ns"]].get(prefix)
        if route is not None:
            node = route[0].removeprefix("gw-")
            continue
        if node in live:
            return node if prefix in offers[node] else None
        nearest = min((hop[2], egress) for egress, hop in sliver["toward"].items() if egress in live)[1]
        node = sliver["toward"][nearest][0].removeprefix("gw-")
    return None


def test_a_prefix_only_one_egress_offers_is_steered_there_from_every_sliver():
    config = line_slice()
    offers = {"e1": {"10.0.0.0/24": 100, "203.0.113.0/24": 100}, "e2": {"10.0.0.0/24": 100}}
    steering = choose_steering(config, {"e1", "e2"}, offers)
    assert steering["ns-m"] == {} and steering["ns-a"] == {}                # m's nearest is e1 (by name)
    assert steering["ns-e2"] == {"203.0.113.0/24": ("gw-m", "v-m")}
    assert steering["ns-b"] == {"203.0.113.0/24": ("gw-e2", "v-e2")}
    for node in LINE:
        assert walk(config, {"e1", "e2"}, offers, steering, node, "203.0.113.0/24") == "e1"
        # offered alike: each sliver leaves by its nearest egress, with no route of its own
        assert walk(config, {"e1", "e2"}, offers, steering, node, "10.0.0.0/24") == \
            ("e1" if node in ("a", "e1", "m") else "e2")


def test_the_better_route_wins_over_the_nearer_egress():
    config = line_slice()
    offers = {"e1": {"10.0.0.0/24": 300}, "e2": {"10.0.0.0/24": 200}}       # e2's is better
    steering = choose_steering(config, {"e1", "e2"}, offers)
    for node in LINE:
        assert walk(config, {"e1", "e2"}, offers, steering, node, "10.0.0.0/24") == "e2"
    assert set(steering["ns-e1"]) == {"10.0.0.0/24"}                       # beats e1's own worse route


def test_one_live_egress_needs_no_steering_and_the_default_route_is_never_steered():
    config = line_slice()
    offers = {"e1": {"10.0.0.0/24": 100, "0.0.0.0/0": 100}, "e2": {}}
    assert all(not routes for routes in choose_steering(config, {"e1"}, offers).values())
    assert "0.0.0.0/0" not in best_egresses({"e1", "e2"}, offers)


def test_random_offers_always_leave_by_a_best_egress_without_loops():
    rng = random.Random(7)
    config = line_slice()
    for _ in range(200):
        live = set(rng.sample(["e1", "e2"], rng.choice([1, 2])))
        offers = {e: {f"10.{i}.0.0/24": rng.choice([100, 200]) for i in range(6) if rng.random() < 0.7}
                  for e in ("e1", "e2")}
        steering = choose_steering(config, live, offers)
        for prefix in {p for e in live for p in offers[e]}:
            best = min(offers[e][prefix] for e in live if prefix in offers[e])
            for node in LINE:
                exit_ = walk(config, live, offers, steering, node, prefix)
                assert exit_ is not None and offers[exit_].get(prefix) == best, (live, offers, node, prefix)


def test_steering_ops_replace_changed_and_delete_gone_routes():
    applied = {"10.0.0.0/24": ("gw-m", "v-m"), "10.1.0.0/24": ("gw-m", "v-m")}
    wanted = {"10.0.0.0/24": ("gw-a", "v-a"), "10.2.0.0/24": ("gw-m", "v-m")}
    assert sorted(steering_ops(applied, wanted), key=str) == sorted(
        [("10.0.0.0/24", "gw-a"), ("10.2.0.0/24", "gw-m"), ("10.1.0.0/24", None)], key=str)
    assert steering_ops(wanted, wanted) == []
