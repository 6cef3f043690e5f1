"""The public side on the machine's own interface (pure): with `public: {interface: NAME}`,
remote clients reach the access points on the machine's public address, and the machine
keeps its interface (usually its only way out).

Each node with such an access point gets a veth `pub` to the machine's own namespace
(`vp` + a hash there: that namespace is shared by every topology) with fixed MACs and ARP
off; the machine's end plays the underlay router's part (its address and MAC, a static
neighbour toward each sliver's public address), and one PortForward resource
(compiler.resources.forward) forwards each access point's port arriving on the interface
to its sliver. The slivers' side is compiler.access's, as on the lab's underlay.
"""
from __future__ import annotations

from model.naming import HOME_NS, home_link_ifname

from . import public_side
from .access_types import ACCESS_TYPES
from .resources import PortForward, Veth


def plan_home_side(ctx, parts, sites: list) -> None:
    """`sites`: the access points reached on the interface (public_side.INTERFACE)."""
    if not sites:
        return
    nodes = sorted({site.node for site in sites}, key=ctx.node_index.__getitem__)
    links = []
    for node in nodes:
        home_if = home_link_ifname(ctx.name, node)
        parts.add(Veth(node=node, ns=ctx.node_ns(node), ifname=public_side.DEVICE, peer_ns=HOME_NS,
                       peer_ifname=home_if, mac=public_side.node_mac(ctx, node),
                       peer_mac=public_side.router_mac(ctx, node), arp=False))
        slivers = sorted({(public_side.public_address(ctx, s), public_side.sliver_mac(ctx, s.slice, node))
                          for s in sites if s.node == node})
        links.append((home_if, f"{public_side.router_address(ctx, node)}/24", tuple(slivers)))
    ports = tuple((ACCESS_TYPES[s.type].TRANSPORT, s.entry.port or ACCESS_TYPES[s.type].DEFAULT_PORT,
                   public_side.public_address(ctx, s)) for s in sites)
    parts.add(PortForward(node="", ns=HOME_NS, interface=ctx.topo.public.interface, links=tuple(links),
                          ports=ports))
