"""Where remote users reach the access points (pure): the public side of each node with a
remote access point.

Every node with such an access point has a device `pub` — in the lab, a veth to the
underlay's router `vispd.T.+public` (the *underlay* side); with `public: {interface:}`, a
veth to the machine's own namespace, whose end there plays the router (the *interface*
side, compiler.public_interface) — and the router's address on it is 100.64.NODE.1 by
default; each slice with an access point there gets a private macvlan `pub` in its sliver
with the public address 100.64.NODE.SLOT (slots from 2, by slice). On the underlay, each
access point also has a client host `vispd.T.+c-TYPE-SLICE-NODE`, outside the vISP. The
vISP's part (compiler.access, compiler.public_interface) and the world's
(compiler.world.public) read these facts.
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from model.naming import lab_ns, mac_address, short_node_name

from .access_types import ACCESS_TYPES
from .addressing import access_points, access_subnets

PUBLIC = "public"
DEVICE = "pub"  # the node's public device, and each attached sliver's
LOCAL, UNDERLAY, INTERFACE = "local", "underlay", "interface"  # where an access point is reached from


@dataclass(frozen=True)
class AccessSite:
    """One access point as planned: where, what, its subnet, and (remote) its public slot."""

    slice: str
    node: str
    type: str
    subnet: IPv4Network
    entry: object  # model.schema.Access
    slot: int = 0  # public: the sliver's host number on the node's public /24
    client_index: int = -1  # underlay: the position of its client host on the underlay
    side: str = LOCAL  # LOCAL (on the node), UNDERLAY (the lab's) or INTERFACE (the machine's)

    @property
    def public(self) -> bool:
        """Reached by remote clients, on a public address."""
        return self.side != LOCAL

    @property
    def remote(self) -> bool:
        """Reached over the lab's emulated underlay: the lab world plans its side."""
        return self.side == UNDERLAY


def access_sites(ctx) -> list[AccessSite]:
    """Every access point of the topology, slice by slice, in file order."""
    sites, slots, clients = [], {}, 0
    side = INTERFACE if ctx.topo.public.interface else UNDERLAY
    for sl in ctx.topo.slices:
        layout = ctx.slice_facts[sl.name].layout
        entries = [entry for _, entry, _ in access_points(ctx.topo, sl.name)]
        for (node, kind, subnet), entry in zip(access_subnets(ctx.topo, sl.name, layout), entries):
            if not ACCESS_TYPES[kind].REMOTE:
                sites.append(AccessSite(sl.name, node, kind, subnet, entry))
                continue
            if (sl.name, node) not in slots:
                slots[(sl.name, node)] = 2 + sum(1 for key in slots if key[1] == node)
            if side == UNDERLAY:
                sites.append(AccessSite(sl.name, node, kind, subnet, entry, slots[(sl.name, node)], clients, side))
                clients += 1
            else:
                sites.append(AccessSite(sl.name, node, kind, subnet, entry, slots[(sl.name, node)], side=side))
    return sites


def node_base(ctx, node: str) -> IPv4Address:
    """The first address of `node`'s public /24 on the underlay."""
    return IPv4Network(ctx.topo.public.prefix).network_address + 256 * ctx.node_index[node]


def router_address(ctx, node: str) -> str:
    return str(node_base(ctx, node) + 1)


def router_mac(ctx, node: str) -> str:
    return mac_address(ctx.name, PUBLIC, node, "router")


def node_mac(ctx, node: str) -> str:
    return mac_address(ctx.name, PUBLIC, node, "node")


def router_ifname(ctx, node: str) -> str:
    """The underlay router's device toward `node`."""
    return "n-" + short_node_name(node, ctx.sites[node], 13)


def sliver_mac(ctx, slice_name: str, node: str) -> str:
    return mac_address(ctx.name, slice_name, PUBLIC, node)


def public_address(ctx, site: AccessSite) -> str:
    return str(node_base(ctx, site.node) + site.slot)


def client_ns(ctx, site: AccessSite) -> str:
    return lab_ns(ctx.name, f"c-{site.type}-{site.slice}-{site.node}")
