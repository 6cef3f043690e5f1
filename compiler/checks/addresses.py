"""Semantic checks of the address plan as a whole (pure): no prefix a topology declares — its
address space, slice prefixes and pools, the providers' peering prefixes, the lab's Internet
prefix, host and transit, the public underlay — may lie in a special-purpose range the
kernel will not route as ordinary unicast (this network, loopback, link-local — which vispd
uses for its own links —, multicast, reserved, broadcast), and no two of them may overlap
where that would break the data path: a peering /31 inside a slice prefix, or a lab prefix
over the vISP's address space, silently breaks egress."""
from __future__ import annotations

from ipaddress import IPv4Network


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
                  (("internet", "transit"), topo.internet.transit, "the Internet transit")]
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
    space and slice prefixes, and of one another. A problem with a default (not written in
    the file) is reported where the other prefix is written, naming the default."""
    written = say.smap.marks
    visp = [(("address-space", i), p, "address-space") for i, p in enumerate(topo.address_space)]
    visp += [(("slices", i, "prefix"), s.prefix, f"slice '{s.name}''s prefix") for i, s in enumerate(topo.slices)
             if s.prefix is not None and not any(s.prefix.subnet_of(a) for a in topo.address_space)]
    outside = [entry for entry in _declared(topo) if entry[0][0] in ("providers", "internet", "public")]
    for index, (path, prefix, what) in enumerate(outside):
        clash = next(((p, pre, w) for p, pre, w in visp if prefix.overlaps(pre)), None)
        if clash is not None:
            _say_clash(say, written, (path, prefix, what), clash, "its addresses would be routed into the vISP")
            continue
        for other in outside[:index]:
            if not (path[0] == other[0][0] == "providers") and prefix.overlaps(other[1]):
                _say_clash(say, written, (path, prefix, what), other, "one of them must move")
                break


def _say_clash(say, written: dict, one: tuple, other: tuple, consequence: str) -> None:
    (path, prefix, what), (other_path, other_prefix, other_what) = one, other
    if path not in written and other_path in written:
        (path, prefix, what), (other_path, other_prefix, other_what) = other, one
    default = "" if other_path in written else f" (the default: set `{'.'.join(map(str, other_path))}` to move it)"
    say(path, f"{what} {prefix} overlaps {other_what} {other_prefix}{default}: {consequence}")
