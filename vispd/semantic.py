"""Semantic checks on a schema-valid topology (pure): names, references, addresses, capacity.

Each check appends `Problem`s located through the `SourceMap`, so the user sees every
mistake of the file in one run: dangling node names, duplicate links, overlapping or
out-of-space prefixes, over-subscribed links, disconnected slices, bad references from
providers and access points.
"""
from __future__ import annotations

from collections import defaultdict

import networkx as nx

from .addressing import allocate_slice_prefixes, slice_addressing
from .errors import Problem
from .model import Topology
from .units import format_bandwidth
from .yamlsrc import SourceMap


def check_semantics(topo: Topology, smap: SourceMap) -> list[Problem]:
    problems: list[Problem] = []
    say = lambda path, msg: problems.append(smap.problem(path, msg))  # noqa: E731

    node_names = _unique(topo.nodes, "name", ("nodes",), "node", say)
    sites = [(i, n.site) for i, n in enumerate(topo.nodes) if n.site]
    seen_sites: dict[str, int] = {}
    for i, site in sites:
        if site in seen_sites:
            say(("nodes", i, "site"), f"site '{site}' is already used by node '{topo.nodes[seen_sites[site]].name}'")
        else:
            seen_sites[site] = i

    for i, space in enumerate(topo.address_space):
        for j in range(i):
            if space.overlaps(topo.address_space[j]):
                say(("address-space", i), f"address-space {space} overlaps {topo.address_space[j]}")

    link_keys: dict[tuple[str, str], int] = {}
    for i, link in enumerate(topo.links):
        a, b = link.between
        for end, name in enumerate((a, b)):
            if name not in node_names:
                say(("links", i, "between", end), f"link endpoint '{name}' is not a declared node")
        if a == b:
            say(("links", i, "between"), f"link from '{a}' to itself")
        if link.key in link_keys:
            first = smap.mark(("links", link_keys[link.key]))
            say(("links", i), f"duplicate link {a}–{b} (first declared at {first})")
        else:
            link_keys[link.key] = i

    slice_names = _unique(topo.slices, "name", ("slices",), "slice", say)
    provider_names = _unique(topo.providers, "name", ("providers",), "provider", say)
    prefixes = allocate_slice_prefixes(topo)
    usage: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    uids: dict[int, str] = {}

    for si, sl in enumerate(topo.slices):
        base = ("slices", si)
        if sl.nodes != "all":
            for j, name in enumerate(sl.nodes):
                if name not in node_names:
                    say(base + ("nodes", j), f"slice '{sl.name}' spans unknown node '{name}'")
        members = set(topo.slice_nodes(sl))
        if sl.links != "all":
            for j, pair in enumerate(sl.links):
                key = tuple(sorted(pair))
                if key not in link_keys:
                    say(base + ("links", j), f"slice '{sl.name}' uses {pair[0]}–{pair[1]}, which is not a declared link")
                elif not set(pair) <= members:
                    say(base + ("links", j), f"link {pair[0]}–{pair[1]} ends on a node outside slice '{sl.name}'")
        links = topo.slice_links(sl)
        for link in links:
            usage[link.key].append((si, sl.bandwidth))
        prefix = prefixes.get(sl.name)
        if prefix is None:
            say(base, f"no free /{sl.prefix_length} left in address-space for slice '{sl.name}'")
        else:
            if sl.prefix is not None and not any(prefix.subnet_of(s) for s in topo.address_space):
                say(base + ("prefix",), f"prefix {prefix} is outside address-space ({', '.join(map(str, topo.address_space))})")
            layout = slice_addressing(topo, sl.name, prefix)
            if not layout.fits():
                say(base + ("prefix",) if sl.prefix else base, f"prefix {prefix} is too small for slice '{sl.name}': needs {layout.needed} addresses")
            for sj in range(si):
                other = topo.slices[sj]
                other_prefix = prefixes.get(other.name)
                if other_prefix is not None and sl.prefix is not None and prefix.overlaps(other_prefix):
                    say(base + ("prefix",), f"prefix {prefix} of slice '{sl.name}' overlaps {other_prefix} of slice '{other.name}'")
        if len(members) > 1:
            graph = nx.Graph()
            graph.add_nodes_from(members)
            graph.add_edges_from(link.between for link in links)
            if not nx.is_connected(graph):
                parts = sorted(sorted(c) for c in nx.connected_components(graph))
                shown = " | ".join(", ".join(part) for part in parts)
                say(base + ("nodes",), f"slice '{sl.name}' is disconnected: {shown}")
        seen_devs: set[str] = set()
        for j, dev in enumerate(sl.pseudo_devices):
            if dev.node not in members:
                say(base + ("pseudo-devices", j, "node"), f"pseudo-device on '{dev.node}', which slice '{sl.name}' does not span")
            if dev.name:
                if (dev.node, dev.name) in seen_devs:
                    say(base + ("pseudo-devices", j, "name"), f"duplicate pseudo-device '{dev.name}' on '{dev.node}'")
                seen_devs.add((dev.node, dev.name))
        for j, provider in enumerate(sl.egress):
            if provider not in provider_names:
                say(base + ("egress", j), f"egress through unknown provider '{provider}'")
        if sl.uid is not None:
            if sl.uid in uids:
                say(base + ("uid",), f"uid {sl.uid} is already the uid of slice '{uids[sl.uid]}'")
            uids[sl.uid] = sl.name

    for key, users in usage.items():
        if key not in link_keys:
            continue
        link_index = link_keys[key]
        capacity = topo.links[link_index].bandwidth
        total = sum(bw for _, bw in users)
        if total > capacity:
            names = ", ".join(f"{topo.slices[si].name} {format_bandwidth(bw)}" for si, bw in users)
            for si, _ in users:
                say(("slices", si, "bandwidth"), f"link {key[0]}–{key[1]} is over-subscribed: guarantees {names} sum to {format_bandwidth(total)} > capacity {format_bandwidth(capacity)}")

    for i, provider in enumerate(topo.providers):
        if provider.node not in node_names:
            say(("providers", i, "node"), f"provider '{provider.name}' attaches to unknown node '{provider.node}'")
    for i, access in enumerate(topo.access):
        if access.slice not in slice_names:
            say(("access", i, "slice"), f"access for unknown slice '{access.slice}'")
            continue
        if access.type == "pptp" and not access.insecure_legacy:
            say(("access", i, "type"), "pptp is unencrypted legacy: set 'insecure-legacy: true' to accept that")
        members = set(topo.slice_nodes(topo.slice(access.slice)))
        if access.nodes != "all":
            for j, name in enumerate(access.nodes):
                if name not in members:
                    say(("access", i, "nodes", j), f"access point on '{name}', which slice '{access.slice}' does not span")
    return problems


def _unique(items, attr, path, what, say) -> set[str]:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        value = getattr(item, attr)
        if value in seen:
            say(path + (i, attr), f"duplicate {what} name '{value}'")
        else:
            seen[value] = i
    return set(seen)
