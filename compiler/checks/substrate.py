"""Semantic checks of the substrate (pure): node names and site codes, address spaces,
links (endpoints, self-loops, duplicates, their kinds' own rules) and the device names
their ends get on each node."""
from __future__ import annotations

from model.naming import substrate_ifname, virtual_ifname

from ..links import LINK_KINDS
from .common import hint, unique_names


def check_nodes(topo, smap, say) -> set[str]:
    names = unique_names(topo.nodes, "name", ("nodes",), "node", say)
    seen_sites: dict[str, int] = {}
    for i, node in enumerate(topo.nodes):
        if not node.site:
            continue
        if node.site in seen_sites:
            say(("nodes", i, "site"), f"site '{node.site}' is already used by node '{topo.nodes[seen_sites[node.site]].name}'")
        else:
            seen_sites[node.site] = i
    for i, space in enumerate(topo.address_space):
        for j in range(i):
            if space.overlaps(topo.address_space[j]):
                say(("address-space", i), f"address-space {space} overlaps {topo.address_space[j]}")
    return names


def check_links(topo, smap, say, node_names: set[str]) -> dict[tuple[str, str], int]:
    """Link problems; returns the declared links' keys with their first position."""
    keys: dict[tuple[str, str], int] = {}
    for i, link in enumerate(topo.links):
        a, b = link.between
        for end, name in enumerate((a, b)):
            if name not in node_names:
                say(("links", i, "between", end), f"link endpoint '{name}' is not a declared node{hint(name, node_names)}")
        if a == b:
            say(("links", i, "between"), f"link from '{a}' to itself")
        if link.key in keys:
            first = topo.links[keys[link.key]]
            line = smap.mark(("links", keys[link.key], "between")).line
            say(("links", i, "between"),
                f"duplicate link {a}–{b}: {first.between[0]}–{first.between[1]} is already declared on line {line}")
        else:
            keys[link.key] = i
        LINK_KINDS[link.kind].check(link, ("links", i), say)
    _check_device_names(topo, keys, say)
    return keys


def _check_device_names(topo, link_keys: dict, say) -> None:
    """Two neighbours of one node must not give the node's devices the same name (a site
    code equal to another node's name, or a hash clash of long names)."""
    sites = {n.name: n.site for n in topo.nodes}
    reported: set[tuple[str, str, str]] = set()
    for namer in (substrate_ifname, virtual_ifname):
        seen: dict[tuple[str, str], str] = {}
        for key, index in sorted(link_keys.items(), key=lambda item: item[1]):
            a, b = key
            if a == b or a not in sites or b not in sites:
                continue
            for here, peer in ((a, b), (b, a)):
                ifname = namer(peer, sites[peer])
                other = seen.setdefault((here, ifname), peer)
                if other != peer and (here, other, peer) not in reported:
                    reported.add((here, other, peer))
                    say(("links", index, "between"),
                        f"on '{here}', the devices toward '{other}' and '{peer}' would both be "
                        f"named '{ifname}': give one of them a different site code")
