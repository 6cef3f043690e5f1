"""The static routes of `routing: static` slices (pure): per sliver, toward each neighbour,
the fewest prefixes covering exactly the addresses whose least-cost path starts there.

The next hops come from one `LeastCostPaths.first_hops` per source node and distinct slice
graph: slices with equal graphs (same nodes, live links and costs) share them, and their
addresses differ only by the slice prefix. Loopbacks are numbered by topology position
(`SliceAddressing.loopback`), so the destinations reached through one neighbour form runs
of consecutive positions; each run, shifted to the slice's prefix (aligned to a power of
two larger than any position), is cut into aligned blocks. Pseudo-device and access
subnets of a destination join its neighbour's ranges before the cut
(`aggregate.exact_cover`). A ring of N nodes gets O(log N) routes per sliver instead of
N - 1; the addresses each neighbour is given are exactly those of one route per target.
"""
from __future__ import annotations

from itertools import groupby
from ipaddress import IPv4Network

from .aggregate import ADDRESS_BITS, aligned_blocks, cidr_text, exact_cover
from .context import PlanContext, SliceFacts
from .resources import Route
from .routing import NO_HOP, LeastCostPaths

Range = tuple[int, int]  # [low, high) of integer addresses or topology positions


def static_routes(ctx: PlanContext) -> dict[tuple[str, str], list[Route]]:
    """(slice, node) -> the routes of that sliver, for every `routing: static` slice."""
    groups: dict[int, list[SliceFacts]] = {}
    for sl in ctx.topo.slices:
        facts = ctx.slice_facts[sl.name]
        if facts.static:
            groups.setdefault(id(facts.graph), []).append(facts)
    routes: dict[tuple[str, str], list[Route]] = {}
    for group in groups.values():
        routes.update(_group_routes(ctx, group))
    return routes


def _group_routes(ctx: PlanContext, group: list[SliceFacts]) -> dict[tuple[str, str], list[Route]]:
    """The routes of slices sharing one graph: one first-hop computation per source serves
    all of them, and so does the cut of its loopback runs into blocks (as offsets from the
    slice prefix, which is aligned beyond any loopback position)."""
    graph = group[0].graph
    order = sorted(range(len(graph.names)), key=lambda i: ctx.node_index[graph.names[i]])
    positions = [ctx.node_index[graph.names[i]] for i in order]
    segments = _consecutive_segments(positions)
    extras = [_extra_ranges(facts, graph) for facts in group]
    texts: list[dict[tuple[int, int], str]] = [{} for _ in group]  # per slice: block -> its CIDR text
    routes = {}
    for source in graph.names:
        hops = graph.first_hops(source)
        blocks = {hop: [block for low, high in runs for block in aligned_blocks(low, high)]
                  for hop, runs in _position_runs([hops[i] for i in order], positions, segments).items()}
        for facts, extra, text in zip(group, extras, texts):
            routes[(facts.slice.name, source)] = _sliver_routes(ctx, facts, source, hops, blocks, extra, text)
    return routes


def _consecutive_segments(positions: list[int]) -> list[Range]:
    """Slices [start, end) of `positions` (ascending) in which each is one more than the last."""
    segments, start = [], 0
    for k in range(1, len(positions) + 1):
        if k == len(positions) or positions[k] != positions[k - 1] + 1:
            segments.append((start, k))
            start = k
    return segments


def _position_runs(hop_in_order: list[int], positions: list[int], segments: list[Range]) -> dict[int, list[Range]]:
    """hop -> runs [low, high) of consecutive topology positions reached through it."""
    runs: dict[int, list[Range]] = {}
    for start, end in segments:
        k = start
        for hop, members in groupby(hop_in_order[start:end]):
            count = len(list(members))
            if hop != NO_HOP:
                runs.setdefault(hop, []).append((positions[k], positions[k] + count))
            k += count
    return runs


def _extra_ranges(facts: SliceFacts, graph: LeastCostPaths) -> list[tuple[int, Range]]:
    """(node index, address range) of every pseudo-device and access subnet of the slice."""
    extra = []
    for node in facts.members:
        subnets: list[IPv4Network] = [s for _, s, _ in facts.devices_at.get(node, ())]
        subnets += facts.access_at.get(node, ())
        for subnet in subnets:
            low = int(subnet.network_address)
            extra.append((graph.index[node], (low, low + subnet.num_addresses)))
    return extra


def _sliver_routes(ctx: PlanContext, facts: SliceFacts, source: str, hops: list[int],
                   blocks: dict[int, list[tuple[int, int]]], extra: list[tuple[int, Range]],
                   text: dict[tuple[int, int], str]) -> list[Route]:
    """One sliver's routes, neighbour by neighbour (by name), each in address order: its
    loopback blocks (offsets from the slice prefix), re-cut together with the pseudo-device
    and access ranges of the destinations behind that neighbour where there are any."""
    base = int(facts.prefix.network_address)  # the loopback of topology position p is base + p
    extra_by_hop: dict[int, list[Range]] = {}
    for node, span in extra:
        if hops[node] != NO_HOP:
            extra_by_hop.setdefault(hops[node], []).append(span)
    graph, ns, loopback = facts.graph, ctx.sliver_ns(source, facts.slice.name), facts.loopback[source]
    routes: list[Route] = []
    for hop in sorted(blocks.keys() | extra_by_hop.keys()):
        if hop in extra_by_hop:
            ranges = [(base + offset, base + offset + (1 << (ADDRESS_BITS - length)))
                      for offset, length in blocks.get(hop, ())]
            cidrs = [cidr_text(network, length) for network, length in exact_cover(ranges + extra_by_hop[hop])]
        else:
            cidrs = [text.get(block) or text.setdefault(block, cidr_text(base + block[0], block[1]))
                     for block in blocks[hop]]
        neighbour = graph.names[hop]
        gateway, ifname = facts.ends[(neighbour, source)].ip, facts.ends[(source, neighbour)].ifname
        routes += [Route(node=source, ns=ns, dst=cidr, gateway=gateway, ifname=ifname, prefsrc=loopback)
                   for cidr in cidrs]
    return routes
