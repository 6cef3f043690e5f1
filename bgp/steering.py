"""Steering by prefix (pure): which slivers of a slice need a route of their own for a
prefix, so that every sliver reaches each destination through the egress whose providers
offer the best route for it, not only through its nearest egress.

Input: the slice's live egress nodes and what each one's FIB offers — `{node: {prefix:
metric}}`, the metric being what the egress speaker installed (bgp/speaker.py: the base
metric plus a preference code, lower is better: higher local_pref, then shorter AS path).
For each prefix, the *best egresses* are those offering it at the lowest metric. A sliver
whose default already leads to a best egress (its nearest live egress, or itself) needs
nothing; any other sliver gets `prefix via <first hop toward its nearest best egress>`.
What every live egress offers alike is thus left to the defaults, and a prefix that only one
provider announces (an ISP's own customers) reaches every sliver.

Loop-free: a sliver with a steering route forwards along a least-cost path to its nearest
best egress; a sliver without one forwards toward its nearest egress, which is itself a best
egress. Either way each hop is strictly nearer a best egress. The default route is left to
the egress manager's defaults.
"""
from __future__ import annotations

DEFAULT_ROUTE = "0.0.0.0/0"

Steering = dict  # sliver ns -> {prefix: (gateway, ifname)}


def best_egresses(live: set[str], offers: dict[str, dict[str, int]]) -> dict[str, tuple[int, frozenset]]:
    """{prefix: (best metric, the live egress nodes offering it at that metric)} for the
    prefixes the live egresses do not all offer alike."""
    best: dict[str, list] = {}
    for node in sorted(live):
        for prefix, metric in offers.get(node, {}).items():
            entry = best.get(prefix)
            if entry is None or metric < entry[0]:
                best[prefix] = [metric, [node]]
            elif metric == entry[0]:
                entry[1].append(node)
    everyone = len(live)
    cache: dict[tuple, frozenset] = {}
    result = {}
    for prefix, (metric, nodes) in best.items():
        if len(nodes) == everyone or prefix == DEFAULT_ROUTE:
            continue
        key = tuple(nodes)
        result[prefix] = (metric, cache.setdefault(key, frozenset(key)))
    return result


def _nearest(sliver: dict, candidates) -> str | None:
    """The candidate egress nearest the sliver (itself if it is one), ties by name."""
    if sliver["node"] in candidates:
        return sliver["node"]
    options = [(hop[2], node) for node, hop in sliver["toward"].items() if node in candidates]
    return min(options)[1] if options else None


def choose_steering(slice_config: dict, live: set[str], offers: dict[str, dict[str, int]]) -> Steering:
    """The steering routes every sliver of the slice should hold."""
    slivers = slice_config["slivers"]
    if len(live) < 2:
        return {s["ns"]: {} for s in slivers}
    wanted = best_egresses(live, offers)
    result: Steering = {}
    for sliver in slivers:
        default = _nearest(sliver, live)
        targets: dict[frozenset, str | None] = {}
        routes = {}
        for prefix, (_, nodes) in wanted.items():
            if default in nodes:
                continue
            if nodes not in targets:
                targets[nodes] = _nearest(sliver, nodes)
            target = targets[nodes]
            if target is None or target == sliver["node"]:
                continue
            gateway, ifname, _ = sliver["toward"][target]
            routes[prefix] = (gateway, ifname)
        result[sliver["ns"]] = routes
    return result


def steering_ops(applied: dict[str, tuple], wanted: dict[str, tuple]) -> list[tuple[str, str | None]]:
    """FIB operations (prefix, gateway or None to delete) from what is applied to what is wanted."""
    ops = [(prefix, hop[0]) for prefix, hop in wanted.items() if applied.get(prefix) != hop]
    ops += [(prefix, None) for prefix in applied if prefix not in wanted]
    return ops
