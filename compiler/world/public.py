"""The lab's public underlay (pure): `vispd.T.+public` stands for the Internet remote users
come from — a router with a veth `pub` to each node that has a remote access point (ARP off,
static neighbours toward the slivers' public addresses) — and one client host
`vispd.T.+c-TYPE-SLICE-NODE` per remote access point, outside the vISP, on a /30 of the
top of the public prefix, routed to the rest of it."""
from __future__ import annotations

from ipaddress import IPv4Network

from model.naming import lab_ns

from .. import public_side
from ..providers.emulated import LAB_SYSCTLS
from ..resources import Address, Neighbour, Netns, Route, Veth

HOST = "+" + public_side.PUBLIC


def needs_underlay(ctx) -> bool:
    return any(site.remote for site in public_side.access_sites(ctx))


def plan_underlay(ctx, parts) -> None:
    ns = lab_ns(ctx.name, public_side.PUBLIC)
    parts.add(Netns(node=HOST, ns=ns, role="lab", sysctls=LAB_SYSCTLS))
    wired: set[str] = set()
    attached: set[tuple[str, str]] = set()
    for site in public_side.access_sites(ctx):
        if not site.remote:
            continue
        if site.node not in wired:
            wired.add(site.node)
            _wire_node(ctx, parts, ns, site.node)
        if (site.slice, site.node) not in attached:
            attached.add((site.slice, site.node))
            parts.add(Neighbour(node=HOST, ns=ns, ifname=public_side.router_ifname(ctx, site.node),
                                ip=public_side.public_address(ctx, site),
                                mac=public_side.sliver_mac(ctx, site.slice, site.node)))
        _client_host(ctx, parts, ns, site)


def _wire_node(ctx, parts, ns: str, node: str) -> None:
    """The node's veth to the underlay router, and the router's address on it."""
    router_if = public_side.router_ifname(ctx, node)
    parts.add(Veth(node=node, ns=ctx.node_ns(node), ifname=public_side.DEVICE, peer_ns=ns, peer_ifname=router_if,
                   mac=public_side.node_mac(ctx, node), peer_mac=public_side.router_mac(ctx, node), arp=False),
              Address(node=HOST, ns=ns, ifname=router_if, cidr=f"{public_side.router_address(ctx, node)}/24"))


def _client_host(ctx, parts, ns: str, site) -> None:
    """A lab host outside the vISP, on the public underlay (where a remote user sits)."""
    prefix = IPv4Network(ctx.topo.public.prefix)
    index = site.client_index
    net = IPv4Network((int(prefix.broadcast_address) - 3 - 4 * index, 30))  # the index-th /30 from the top
    router_end, client_end = net.network_address + 1, net.network_address + 2
    client_ns = public_side.client_ns(ctx, site)
    host = client_ns.rsplit(".", 1)[-1]
    parts.add(Netns(node=host, ns=client_ns, role="lab", sysctls=LAB_SYSCTLS[:2]),
              Veth(node=HOST, ns=ns, ifname=f"c{index}", peer_ns=client_ns, peer_ifname=public_side.DEVICE),
              Address(node=HOST, ns=ns, ifname=f"c{index}", cidr=f"{router_end}/30"),
              Address(node=host, ns=client_ns, ifname=public_side.DEVICE, cidr=f"{client_end}/30"),
              Route(node=host, ns=client_ns, dst=str(prefix), gateway=str(router_end), ifname=public_side.DEVICE,
                    prefsrc=str(client_end)))
