"""Semantic checks on a schema-valid topology (pure): names, references, addresses, capacity.

Each check appends `Problem`s located through the `SourceMap`, so the user sees every
mistake of the file in one run: dangling node names (with a "did you mean"), duplicate
links (in either order), self-loops, interface names that would clash, overlapping,
out-of-space or too-small prefixes, over-subscribed links, disconnected slices, bad
references from pseudo-devices, egress, providers and access points.

Link guarantees are admitted in declaration order, as an admission controller would: the
slice whose guarantee no longer fits on a link is the one reported (once, listing every
link it over-subscribes), and it is not counted against the slices declared after it.
"""
from __future__ import annotations

import difflib
from collections import defaultdict

import networkx as nx

from .addressing import allocate_slice_prefixes, slice_addressing
from model.errors import Problem
from model.schema import Topology
from model.naming import substrate_ifname, virtual_ifname
from model.units import format_bandwidth
from model.yamlsrc import SourceMap


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
                say(("links", i, "between", end), f"link endpoint '{name}' is not a declared node{_hint(name, node_names)}")
        if a == b:
            say(("links", i, "between"), f"link from '{a}' to itself")
        if link.key in link_keys:
            first = topo.links[link_keys[link.key]]
            line = smap.mark(("links", link_keys[link.key], "between")).line
            say(("links", i, "between"),
                f"duplicate link {a}–{b}: {first.between[0]}–{first.between[1]} is already declared on line {line}")
        else:
            link_keys[link.key] = i

    _check_interface_names(topo, link_keys, say)

    slice_names = _unique(topo.slices, "name", ("slices",), "slice", say)
    provider_names = _unique(topo.providers, "name", ("providers",), "provider", say)
    prefixes = allocate_slice_prefixes(topo)
    # Guarantees are admitted in declaration order: a slice whose guarantee does not fit in
    # what earlier slices left on a link is the one reported, and is not counted further.
    admitted: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    uids: dict[int, str] = {}

    for si, sl in enumerate(topo.slices):
        base = ("slices", si)
        if sl.nodes != "all":
            if not sl.nodes:
                say(base + ("nodes",), f"slice '{sl.name}' spans no nodes")
            for j, name in enumerate(sl.nodes):
                if name not in node_names:
                    say(base + ("nodes", j), f"slice '{sl.name}' spans unknown node '{name}'{_hint(name, node_names)}")
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
        prefix = prefixes.get(sl.name)
        if prefix is None:
            say(base, f"no free /{sl.prefix_length} left in address-space for slice '{sl.name}'")
        else:
            if sl.prefix is not None and not any(prefix.subnet_of(s) for s in topo.address_space):
                say(base + ("prefix",), f"prefix {prefix} is outside address-space ({', '.join(map(str, topo.address_space))})")
            layout = slice_addressing(topo, sl.name, prefix)
            if not layout.fits():
                say(base + ("prefix",) if sl.prefix else base + ("prefix-length",), f"prefix {prefix} is too small for slice '{sl.name}': needs {layout.needed} addresses")
            clashes = [f"{prefixes[other.name]} of slice '{other.name}'" for other in topo.slices[:si]
                       if sl.prefix is not None and prefixes.get(other.name) is not None
                       and prefix.overlaps(prefixes[other.name])]
            if clashes:
                say(base + ("prefix",), f"prefix {prefix} of slice '{sl.name}' overlaps {' and '.join(clashes)}")
        if len(members) > 1:
            graph = nx.Graph()
            graph.add_nodes_from(members)
            graph.add_edges_from(link.key for link in links)
            if not nx.is_connected(graph):
                parts = sorted(sorted(c) for c in nx.connected_components(graph))
                shown = " | ".join(", ".join(part) for part in parts)
                say(base + ("nodes",), f"slice '{sl.name}' is disconnected: {shown}")
        seen_devs: set[tuple[str, str]] = set()
        for j, dev in enumerate(sl.pseudo_devices):
            where = base + ("pseudo-devices", j)
            if dev.node not in members:
                say(where + ("node",), f"pseudo-device on '{dev.node}', which slice '{sl.name}' does not span")
            ifname = dev.name or f"{dev.type}{j}"  # the planner's default name
            if ifname == "lo":
                say(where + ("name",), "'lo' is the sliver's loopback: choose another name")
            elif (dev.node, ifname) in seen_devs:
                say(where + ("name",) if dev.name else where,
                    f"duplicate pseudo-device name '{ifname}' on '{dev.node}'")
            seen_devs.add((dev.node, ifname))
        for j, provider in enumerate(sl.egress):
            if provider not in provider_names:
                say(base + ("egress", j), f"egress through unknown provider '{provider}'{_hint(provider, provider_names)}")
            else:
                attach = next(p.node for p in topo.providers if p.name == provider)
                if attach not in members:
                    say(base + ("egress", j), f"provider '{provider}' attaches to '{attach}', which slice '{sl.name}' does not span")
        if sl.ospf is not None and sl.routing != "ospf":
            say(base + ("ospf",), f"OSPF timers are set but slice '{sl.name}' has routing: {sl.routing}"
                " (set 'routing: ospf')")
        if sl.ospf is not None and sl.ospf.dead <= sl.ospf.hello:
            say(base + ("ospf", "dead"), f"the OSPF dead interval ({sl.ospf.dead} s) must be longer than"
                f" the hello interval ({sl.ospf.hello} s)")
        if sl.routing == "none" and sl.egress:
            say(base + ("routing",), f"slice '{sl.name}' has egress, which needs routing: static or ospf"
                " (with routing: none nothing would carry the default route to the egress)")
        if sl.uid is not None:
            if sl.uid in uids:
                say(base + ("uid",), f"uid {sl.uid} is already the uid of slice '{uids[sl.uid]}'")
            uids[sl.uid] = sl.name

    for i, provider in enumerate(topo.providers):
        if provider.node not in node_names:
            say(("providers", i, "node"), f"provider '{provider.name}' attaches to unknown node '{provider.node}'{_hint(provider.node, node_names)}")
    _check_egress(topo, prefixes, say)
    for i, access in enumerate(topo.access):
        if access.slice not in slice_names:
            say(("access", i, "slice"), f"access for unknown slice '{access.slice}'{_hint(access.slice, slice_names)}")
            continue
        if access.type == "pptp" and not access.insecure_legacy:
            say(("access", i, "type"), "pptp is unencrypted legacy: set 'insecure-legacy: true' to accept that")
        members = set(topo.slice_nodes(topo.slice(access.slice)))
        own = prefixes.get(access.slice)
        if access.pool is not None and own is not None and not access.pool.subnet_of(own):
            say(("access", i, "pool"), f"pool {access.pool} is outside slice '{access.slice}''s prefix {own}")
        if access.pool is not None and access.pool.prefixlen > 29:
            say(("access", i, "pool"), f"pool {access.pool} is too small: give at least a /29")
        if access.type != "socket" and not access.users:
            say(("access", i), f"{access.type} access needs at least one user")
        names = [u.name for u in access.users]
        for j, user in enumerate(access.users):
            if names.index(user.name) != j:
                say(("access", i, "users", j, "name"), f"duplicate user '{user.name}'")
        if access.nodes != "all":
            for j, name in enumerate(access.nodes):
                if name not in members:
                    say(("access", i, "nodes", j), f"access point on '{name}', which slice '{access.slice}' does not span")
    return problems


MAX_ANNOUNCED_LENGTH = 24
MAX_PREPEND = 5
MAX_COMMUNITIES = 5


def _check_egress(topo: Topology, prefixes: dict, say) -> None:
    """Providers' addressing and capacity, and PEERING-style announcement safety."""
    peerings = []
    for i, provider in enumerate(topo.providers):
        base = ("providers", i)
        if provider.asn == topo.asn:
            say(base + ("asn",), f"provider '{provider.name}' has the vISP's own AS {topo.asn}: egress is eBGP")
        users = [s for s in topo.slices if provider.name in s.egress]
        if provider.peering is not None:
            if provider.peering.num_addresses < 2 * max(1, len(users)):
                say(base + ("peering",), f"peering {provider.peering} has room for {provider.peering.num_addresses // 2} "
                    f"slice(s), {len(users)} egress through '{provider.name}'")
            for other, other_path in peerings:
                if provider.peering.overlaps(other):
                    say(base + ("peering",), f"peering {provider.peering} overlaps {other} of another provider")
            peerings.append((provider.peering, base))
        elif i >= 16 or len(users) > 8:
            say(base, f"give provider '{provider.name}' a 'peering' prefix: the default /28s of 192.0.2.0/24 are used up")
        total = sum(s.bandwidth for s in users)
        if total > provider.bandwidth:
            names = " + ".join(f"{s.name} {format_bandwidth(s.bandwidth)}" for s in users)
            say(base + ("bandwidth",), f"access link to '{provider.name}' is over-subscribed: {names} "
                f"> {format_bandwidth(provider.bandwidth)}")
    if len(topo.providers) > topo.internet.transit.num_addresses // 2:
        say(("internet", "transit"), f"transit {topo.internet.transit} is too small for {len(topo.providers)} providers")
    if topo.providers and topo.internet.host not in topo.internet.prefix:
        say(("internet", "host"), f"host {topo.internet.host} is outside the Internet prefix {topo.internet.prefix}")
    for si, sl in enumerate(topo.slices):
        if sl.announce and not sl.egress:
            say(("slices", si, "announce"), f"slice '{sl.name}' announces but has no egress")
        for j, announcement in enumerate(sl.announce):
            where = ("slices", si, "announce", j)
            own = prefixes.get(sl.name)
            if own is not None and not announcement.prefix.subnet_of(own):
                say(where + ("prefix",), f"refusing to announce {announcement.prefix}: outside slice "
                    f"'{sl.name}''s allocation {own}")
            if announcement.prefix.prefixlen > MAX_ANNOUNCED_LENGTH:
                say(where + ("prefix",), f"refusing to announce {announcement.prefix}: longer than /{MAX_ANNOUNCED_LENGTH}")
            if announcement.prepend > MAX_PREPEND:
                say(where + ("prepend",), f"AS-path prepending is limited to {MAX_PREPEND}")
            if len(announcement.communities) > MAX_COMMUNITIES:
                say(where + ("communities",), f"at most {MAX_COMMUNITIES} communities per announcement")


def _check_interface_names(topo: Topology, link_keys: dict, say) -> None:
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


def _hint(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unique(items, attr, path, what, say) -> set[str]:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        value = getattr(item, attr)
        if value in seen:
            say(path + (i, attr), f"duplicate {what} name '{value}'")
        else:
            seen[value] = i
    return set(seen)
