"""Semantic checks of slices (pure): the nodes and links each spans, its guarantee on every
link (admitted in declaration order, as an admission controller would: the slice whose
guarantee no longer fits is the one reported, once, listing every link it over-subscribes,
and it is not counted against the slices declared after it), its prefix and address
layout, connectivity, pseudo-devices, routing mode, egress references and uid."""
from __future__ import annotations

from collections import defaultdict

import networkx as nx

from model.units import format_bandwidth

from ..addressing import allocate_slice_prefixes, slice_addressing
from .common import hint, unique_names


def check_slices(topo, say, node_names: set[str], link_keys: dict, provider_names: set[str]) -> set[str]:
    names = unique_names(topo.slices, "name", ("slices",), "slice", say)
    prefixes = allocate_slice_prefixes(topo)
    admitted: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    uids: dict[int, str] = {}
    for si, sl in enumerate(topo.slices):
        base = ("slices", si)
        members, links = _membership(topo, sl, base, node_names, link_keys, say)
        _admit_guarantee(sl, base, links, admitted, say)
        _check_prefix(topo, sl, si, prefixes, say)
        _check_connected(sl, base, members, links, say)
        _check_pseudo_devices(sl, base, members, say)
        _check_routing(sl, base, say)
        _check_egress_references(topo, sl, base, members, provider_names, say)
        if sl.uid is not None:
            if sl.uid in uids:
                say(base + ("uid",), f"uid {sl.uid} is already the uid of slice '{uids[sl.uid]}'")
            uids[sl.uid] = sl.name
    return names


def _membership(topo, sl, base, node_names, link_keys, say) -> tuple[set[str], list]:
    """(nodes it spans, links it uses among the valid ones) with the references checked."""
    if sl.nodes != "all":
        if not sl.nodes:
            say(base + ("nodes",), f"slice '{sl.name}' spans no nodes")
        for j, name in enumerate(sl.nodes):
            if name not in node_names:
                say(base + ("nodes", j), f"slice '{sl.name}' spans unknown node '{name}'{hint(name, node_names)}")
    members = set(topo.slice_nodes(sl))
    if sl.links != "all":
        for j, pair in enumerate(sl.links):
            key = tuple(sorted(pair))
            if key not in link_keys:
                say(base + ("links", j), f"slice '{sl.name}' uses {pair[0]}–{pair[1]}, which is not a declared link")
            elif not set(pair) <= members:
                say(base + ("links", j), f"link {pair[0]}–{pair[1]} ends on a node outside slice '{sl.name}'")
    links = [lk for lk in topo.slice_links(sl)
             if lk.key in link_keys and topo.links[link_keys[lk.key]] is lk
             and lk.key[0] != lk.key[1] and set(lk.key) <= members]
    return members, links


def _admit_guarantee(sl, base, links, admitted, say) -> None:
    over = []
    for link in links:
        used = admitted[link.key]
        total = sum(bw for _, bw in used) + sl.bandwidth
        if total > link.bandwidth:
            others = "".join(f"{name} {format_bandwidth(bw)} + " for name, bw in used)
            total_text = f" = {format_bandwidth(total)}" if used else ""
            over.append(f"{link.key[0]}–{link.key[1]} ({others}{sl.name} {format_bandwidth(sl.bandwidth)}"
                        f"{total_text} > capacity {format_bandwidth(link.bandwidth)})")
        else:
            used.append((sl.name, sl.bandwidth))
    if over:
        what = f"link {over[0]}" if len(over) == 1 else f"{len(over)} links: {'; '.join(over)}"
        say(base + ("bandwidth",), f"slice '{sl.name}' over-subscribes {what}")


def _check_prefix(topo, sl, si, prefixes, say) -> None:
    base = ("slices", si)
    prefix = prefixes.get(sl.name)
    if prefix is None:
        say(base, f"no free /{sl.prefix_length} left in address-space for slice '{sl.name}'")
        return
    if sl.prefix is not None and not any(prefix.subnet_of(s) for s in topo.address_space):
        say(base + ("prefix",), f"prefix {prefix} is outside address-space ({', '.join(map(str, topo.address_space))})")
    layout = slice_addressing(topo, sl.name, prefix)
    if not layout.fits():
        say(base + ("prefix",) if sl.prefix else base + ("prefix-length",),
            f"prefix {prefix} is too small for slice '{sl.name}': needs {layout.needed} addresses")
    clashes = [f"{prefixes[other.name]} of slice '{other.name}'" for other in topo.slices[:si]
               if sl.prefix is not None and prefixes.get(other.name) is not None
               and prefix.overlaps(prefixes[other.name])]
    if clashes:
        say(base + ("prefix",), f"prefix {prefix} of slice '{sl.name}' overlaps {' and '.join(clashes)}")


def _check_connected(sl, base, members, links, say) -> None:
    if len(members) <= 1:
        return
    graph = nx.Graph()
    graph.add_nodes_from(members)
    graph.add_edges_from(link.key for link in links)
    if not nx.is_connected(graph):
        parts = sorted(sorted(c) for c in nx.connected_components(graph))
        shown = " | ".join(", ".join(part) for part in parts)
        say(base + ("nodes",), f"slice '{sl.name}' is disconnected: {shown}")


def _check_pseudo_devices(sl, base, members, say) -> None:
    seen: set[tuple[str, str]] = set()
    for j, dev in enumerate(sl.pseudo_devices):
        where = base + ("pseudo-devices", j)
        if dev.node not in members:
            say(where + ("node",), f"pseudo-device on '{dev.node}', which slice '{sl.name}' does not span")
        ifname = dev.name or f"{dev.type}{j}"  # the planner's default name
        if ifname == "lo":
            say(where + ("name",), "'lo' is the sliver's loopback: choose another name")
        elif (dev.node, ifname) in seen:
            say(where + ("name",) if dev.name else where, f"duplicate pseudo-device name '{ifname}' on '{dev.node}'")
        seen.add((dev.node, ifname))


def _check_routing(sl, base, say) -> None:
    if sl.ospf is not None and sl.routing != "ospf":
        say(base + ("ospf",), f"OSPF timers are set but slice '{sl.name}' has routing: {sl.routing}"
            " (set 'routing: ospf')")
    if sl.ospf is not None and sl.ospf.dead <= sl.ospf.hello:
        say(base + ("ospf", "dead"), f"the OSPF dead interval ({sl.ospf.dead} s) must be longer than"
            f" the hello interval ({sl.ospf.hello} s)")
    if sl.routing == "none" and sl.egress:
        say(base + ("routing",), f"slice '{sl.name}' has egress, which needs routing: static or ospf"
            " (with routing: none nothing would carry the default route to the egress)")


def _check_egress_references(topo, sl, base, members, provider_names, say) -> None:
    for j, provider in enumerate(sl.egress):
        if provider not in provider_names:
            say(base + ("egress", j), f"egress through unknown provider '{provider}'{hint(provider, provider_names)}")
            continue
        attach = topo.provider(provider).node
        if attach not in members:
            say(base + ("egress", j), f"provider '{provider}' attaches to '{attach}', which slice '{sl.name}' does not span")
