"""The vISP's access points (pure): for each one, the server its access type plans in the
slice's sliver and, for remote types, the sliver's public side — a private macvlan `pub`
on the node's public device with the access point's public address, a static neighbour
toward the router and a route back to the public prefix — watched by the node's guard.
The router is the lab underlay's (compiler.world.public), or the machine's own namespace
with `public: {interface:}` (compiler.public_interface)."""
from __future__ import annotations

from . import public_interface, public_side
from .access_types import ACCESS_TYPES, AccessPoint, ServerContext
from .access_types.socket import socket_path
from .context import PlanContext, PlanParts
from .resources import Address, Macvlan, Neighbour, Route


def plan_access(ctx: PlanContext, parts: PlanParts) -> None:
    attached: set[tuple[str, str]] = set()
    sites = public_side.access_sites(ctx)
    public = ctx.topo.public
    for site in sites:
        kind = ACCESS_TYPES[site.type]
        if site.public:
            parts.guard(site.node, public_side.DEVICE)
            if (site.slice, site.node) not in attached:
                attached.add((site.slice, site.node))
                _attach_sliver(ctx, parts, site)
            on_interface = site.side == public_side.INTERFACE
            point = AccessPoint(site.slice, site.node, site.type, tuple(u.name for u in site.entry.users),
                                public_side.public_address(ctx, site), site.entry.port or kind.DEFAULT_PORT,
                                str(site.subnet), public_side.client_ns(ctx, site) if site.remote else None,
                                public_interface=public.interface if on_interface else None,
                                dial=str(public.address) if on_interface and public.address else None)
        else:
            point = AccessPoint(site.slice, site.node, site.type, (), pool=str(site.subnet),
                                socket_path=socket_path(ctx.runtime, site.slice, site.node))
        daemon = kind.server(server_context(ctx, point))
        if daemon is not None:
            point.daemon = daemon.name
            parts.add(daemon)
        parts.access_points.append(point)
    public_interface.plan_home_side(ctx, parts, [s for s in sites if s.side == public_side.INTERFACE])


def server_context(ctx: PlanContext, point: AccessPoint) -> ServerContext:
    facts = ctx.slice_facts[point.slice]
    return ServerContext(ctx.topo, facts.slice, facts.prefix, point, ctx.sliver_ns(point.node, point.slice),
                         facts.uid, ctx.runtime, ctx.state.credentials)


def _attach_sliver(ctx: PlanContext, parts: PlanParts, site) -> None:
    node, ns = site.node, ctx.sliver_ns(site.node, site.slice)
    mac, address = public_side.sliver_mac(ctx, site.slice, node), public_side.public_address(ctx, site)
    router, router_mac = public_side.router_address(ctx, node), public_side.router_mac(ctx, node)
    device = public_side.DEVICE
    parts.add(Macvlan(node=node, ns=ns, ifname=device, lower_ns=ctx.node_ns(node), lower_ifname=device, mac=mac),
              Address(node=node, ns=ns, ifname=device, cidr=f"{address}/24"),
              Neighbour(node=node, ns=ns, ifname=device, ip=router, mac=router_mac),
              # replies to remote clients leave through the public side, from the public address
              Route(node=node, ns=ns, dst=str(ctx.topo.public.prefix), gateway=router, ifname=device,
                    prefsrc=address))
    parts.admit(node, router_mac, mac)
