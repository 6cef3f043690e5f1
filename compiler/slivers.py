"""A slice's slivers (pure): per node it spans, a namespace with a loopback, one private
macvlan per virtual link on the node's device for that link (fixed MAC, static neighbour,
an HTB class, admitted by the node's guard), its TUN/TAP pseudo-devices, and its routing:
static routes along least-cost paths (`routing: static`, aggregated: see
compiler.static_routes), a BIRD speaking OSPF (`routing: ospf`), or nothing (`routing: none`).

A `routing: own` slice (issue 14) is root over its slivers: each is a namespace owned by a
user namespace whose root is the slice's uid (Netns `userns`), each virtual link end a veth
into the node steered by the node's BPF program (OwnLink: the same MAC, class and admitted
pair as a macvlan end would have, but ordinary ARP and no static neighbour), no routes of
vispd's, and, when the slice brings one (`own:`), its routing suite in every sliver with
its own configuration (compiler.daemons.own)."""
from __future__ import annotations

from .context import PlanContext, PlanParts, SliceFacts
from .daemons.ospf import sliver_daemon
from .daemons.own import own_daemon
from .plan import SliverInfo
from .resources import Address, Macvlan, Neighbour, Netns, OwnLink, Route, ShapingClass, TunTap
from .static_routes import static_routes


def sliver_sysctls(gid: int) -> tuple[tuple[str, str], ...]:
    return (
        ("net.ipv6.conf.all.disable_ipv6", "1"),
        ("net.ipv6.conf.default.disable_ipv6", "1"),
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.default.send_redirects", "0"),
        ("net.ipv4.ping_group_range", f"{gid} {gid}"),
    )


def plan_slices(ctx: PlanContext, parts: PlanParts) -> None:
    routes = static_routes(ctx)
    for sl in ctx.topo.slices:
        facts = ctx.slice_facts[sl.name]
        _plan_virtual_links(ctx, parts, facts)
        _plan_pseudo_devices(ctx, parts, facts)
        for node in facts.members:
            _plan_sliver(ctx, parts, facts, node, routes.pop((sl.name, node), []))


def _plan_virtual_links(ctx: PlanContext, parts: PlanParts, facts: SliceFacts) -> None:
    name = facts.slice.name
    for (x, y), end in facts.ends.items():
        peer = facts.ends[(y, x)]
        ns = ctx.sliver_ns(x, name)
        if facts.own:
            parts.add(OwnLink(node=x, ns=ctx.node_ns(x), ifname=ctx.own_link_if(name, x, y), mtu=end.link_mtu,
                              sliver_ns=ns, sliver_ifname=end.ifname, mac=end.mac, lower_ifname=ctx.substrate_if(y)),
                      Address(node=x, ns=ns, ifname=end.ifname, cidr=end.cidr))
        else:
            parts.add(Macvlan(node=x, ns=ns, ifname=end.ifname, mtu=end.link_mtu, lower_ns=ctx.node_ns(x),
                              lower_ifname=ctx.substrate_if(y), mac=end.mac),
                      Address(node=x, ns=ns, ifname=end.ifname, cidr=end.cidr),
                      Neighbour(node=x, ns=ns, ifname=end.ifname, ip=peer.ip, mac=peer.mac))
        parts.classify(ctx.node_ns(x), ctx.substrate_if(y), ShapingClass(
            classid=ctx.class_ids[name], rate=facts.slice.bandwidth, ceil=end.link_bandwidth, macs=(end.mac,),
            label=name))
        parts.admit(x, peer.mac, end.mac)


def _plan_pseudo_devices(ctx: PlanContext, parts: PlanParts, facts: SliceFacts) -> None:
    for node, devices in facts.devices_at.items():
        ns = ctx.sliver_ns(node, facts.slice.name)
        for ifname, subnet, mode in devices:
            parts.add(TunTap(node=node, ns=ns, ifname=ifname, mode=mode, uid=facts.uid, gid=facts.uid),
                      Address(node=node, ns=ns, ifname=ifname, cidr=f"{subnet.network_address + 1}/30"))


def _plan_sliver(ctx: PlanContext, parts: PlanParts, facts: SliceFacts, x: str, routes: list[Route]) -> None:
    sl = facts.slice
    ns = ctx.sliver_ns(x, sl.name)
    loopback = facts.loopback[x]
    parts.add(Netns(node=x, ns=ns, role="sliver", slice=sl.name, sysctls=sliver_sysctls(facts.uid),
                    userns=(facts.uid, facts.uid) if facts.own else ()),
              Address(node=x, ns=ns, ifname="lo", cidr=f"{loopback}/32"), *routes)
    if sl.routing == "ospf":
        parts.add(_ospf_daemon(ctx, facts, x, ns))
    if facts.own and sl.own is not None:
        path, text = ctx.own_configs[sl.name]
        parts.add(own_daemon(ctx.runtime, sl, x, ns, facts.uid, facts.uid, path, text))
    parts.slivers.append(SliverInfo(
        slice=sl.name, node=x, ns=ns, loopback=loopback, uid=facts.uid, gid=facts.uid,
        interfaces=tuple(sorted((e.ifname, e.cidr, e.mac) for e in facts.ends_at[x])),
        pseudo_devices=tuple((n, m, str(s)) for n, s, m in facts.devices_at[x])))


def _ospf_daemon(ctx: PlanContext, facts: SliceFacts, x: str, ns: str):
    sl = facts.slice
    stubs = [str(s) for _, s, _ in facts.devices_at[x]] + [str(s) for s in facts.access_at[x]]
    neighbours = [(end.ifname, end.cidr, facts.ends[(end.peer, x)].ip, end.cost) for end in facts.ends_at[x]]
    egress_nodes = {p.node for p in ctx.topo.providers if p.name in sl.egress}
    return sliver_daemon(ctx.name, sl, x, ns, facts.loopback[x], neighbours, stubs, ctx.runtime.run_dir,
                         ctx.runtime.sock_dir, originate_default=x in egress_nodes)
