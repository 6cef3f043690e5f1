"""Semantic checks of the address plan as a whole (pure): no prefix a topology declares — its
address space, slice prefixes and pools, the providers' peering prefixes, the lab's Internet
prefix, host and transit, the public underlay — may lie in a special-purpose range the
kernel will not route as ordinary unicast (this network, loopback, link-local — which vispd
uses for its own links —, multicast, reserved, broadcast), and no two of them may overlap
where that would break the data path: a peering /31 inside a slice prefix, or a lab prefix
over the vISP's address space, silently breaks egress."""
from __future__ import annotations

from ipaddress import IPv4Network

from ..addressing import allocate_slice_prefixes

SPECIAL = (
    (IPv4Network("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (IPv4Network("127.0.0.0/8"), "loopback (127.0.0.0/8)"),
    (IPv4Network("169.254.0.0/16"), "link-local (169.254.0.0/16, used by vispd's own links)"),
    (IPv4Network("224.0.0.0/4"), "multicast (224.0.0.0/4)"),
    (IPv4Network("240.0.0.0/4"), "reserved (240.0.0.0/4) and broadcast"),
)


def _declared(topo) -> list[tuple[tuple, IPv4Network, str]]:
    """(path, prefix, what it is) of every prefix the file declares (or defaults)."""
    found = [(("address-space", i), p, "address-space") for i, p in enumerate(topo.address_space)]
    found += [(("slices", i, "prefix"), s.prefix, f"slice '{s.name}''s prefix")
              for i, s in enumerate(topo.slices) if s.prefix is not None]
    found += [(("access", i, "pool"), a.pool, f"the {a.type} pool of slice '{a.slice}'")
              for i, a in enumerate(topo.access) if a.pool is not None]
    found += [(("providers", i, "peering"), p.peering, f"provider '{p.name}''s peering")
              for i, p in enumerate(topo.providers) if p.peering is not None]
    if topo.providers:
        found += [(("internet", "prefix"), topo.internet.prefix, "the Internet prefix"),
                  (("internet", "transit"), topo.internet.transit, "the Internet transit"),
                  (("internet", "host"), IPv4Network(f"{topo.internet.host}/32"), "the Internet host")]
    if any(a.type != "socket" for a in topo.access):
        found.append((("public", "prefix"), IPv4Network(topo.public.prefix), "the public underlay"))
    return found


def check_special_ranges(topo, say) -> None:
    for path, prefix, what in _declared(topo):
        for special, name in SPECIAL:
            if prefix.overlaps(special):
                say(path, f"{what} {prefix} reaches into {name}: vispd cannot route it as ordinary unicast")
                break


def check_lab_prefixes(topo, say) -> None:
    """The lab's prefixes and the providers' peerings must stay clear of the vISP's address
    space and slice prefixes, and of one another."""
    visp = [(p, "address-space") for p in topo.address_space]
    visp += [(p, f"slice '{name}''s prefix {p}") for name, p in allocate_slice_prefixes(topo).items()
             if p is not None and not any(p.subnet_of(s) for s in topo.address_space)]
    outside = [(path, prefix, what) for path, prefix, what in _declared(topo)
               if path[0] in ("providers", "internet", "public")]
    for index, (path, prefix, what) in enumerate(outside):
        clash = next((name for space, name in visp if prefix.overlaps(space)), None)
        if clash is not None:
            say(path, f"{what} {prefix} overlaps the vISP's {clash}: its addresses would be routed into the vISP")
            continue
        for other_path, other, other_what in outside[:index]:
            if _may_not_overlap(path, other_path) and prefix.overlaps(other):
                say(path, f"{what} {prefix} overlaps {other_what} {other}")
                break


def _may_not_overlap(one: tuple, other: tuple) -> bool:
    """The Internet host lives inside the Internet prefix by design; peerings are checked
    against each other with the providers."""
    pair = {one, other}
    return pair != {("internet", "prefix"), ("internet", "host")} and not (one[0] == other[0] == "providers")
