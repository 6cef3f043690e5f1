"""Compile a validated `Topology` into a `Plan` (pure: no root, no I/O).

The kernel data path it describes (one machine, one namespace per node and per sliver):

* node namespace `vispd.T.N` holds the substrate devices `to-PEER` (one veth pair per
  link), each shaped by HTB (capacity; a class per slice: guarantee as rate, capacity as
  ceiling) and guarded by an nftables ingress filter that admits only frames whose source
  and destination MAC belong to the same slice;
* sliver namespace `vispd.T.N.S` holds the slice's interfaces `v-PEER`: private-mode
  macvlans on the substrate device, demultiplexed by MAC with no encapsulation, ARP off
  and static neighbours (so no broadcast is ever needed), a loopback address, the slice's
  TUN/TAP pseudo-devices, and static routes along least-cost paths.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from ipaddress import IPv4Network

from .addressing import allocate_slice_prefixes, slice_addressing
from model.schema import Topology
from .egress import access_ifname as _access_if
from model.naming import (
    lab_ns,
    mac_address,
    node_ns,
    sliver_ns,
    spread_by_name,
    substrate_ifname,
    virtual_ifname,
)
from .plan import Plan, SliverInfo
from .resources import (
    Address,
    IsolationFilter,
    LinkDown,
    Macvlan,
    Neighbour,
    Netns,
    Route,
    Shaping,
    ShapingClass,
    TunTap,
    Veth,
)
from .access_plan import access_subnets, plan_access
from .egress import plan_egress
from .routing import distances, next_hops, slice_graph

DEFAULT_UID_BASE = 60000  # default slice uids: 60000..63999, derived from the slice name
UID_SPAN = 4000
SLICE_CLASS_BASE = 0x10  # HTB class minor ids per slice: 0x10..0xfff0, from the slice name
CLASS_SPAN = 0xFFE0

NODE_SYSCTLS = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.ip_forward", "0"),
)


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


class PlanningError(ValueError):
    """The topology is valid but cannot be laid out (e.g. a MAC hash collision)."""


@dataclass(frozen=True)
class DaemonPaths:
    """Where daemons keep files: configs, logs, PID files (`run_dir`) and control sockets
    (`sock_dir`, kept short: UNIX socket paths are limited to 107 bytes)."""

    run_dir: str
    sock_dir: str
    state_dir: str = ""  # where credentials live (PKI, keys, passwords)

    @classmethod
    def for_topology(cls, state_dir: str, topology: str) -> "DaemonPaths":
        return cls(os.path.join(state_dir, "run"), f"/run/vispd/{topology}", state_dir)


def compile_plan(topo: Topology, paths: DaemonPaths | None = None, credentials: dict | None = None,
                 failed_links: frozenset[tuple[str, str]] = frozenset()) -> Plan:
    """The plan of `topo`. `credentials` (from vispd.credentials) supplies generated public
    keys; without it, placeholders stand in (the plan stays computable anywhere).
    `failed_links` (sorted node pairs) are substrate links taken down: both ends are planned
    administratively down and `routing: static` slices route around them."""
    paths = paths or DaemonPaths.for_topology(f"/var/lib/vispd/{topo.name}", topo.name)
    plan = Plan(topology=topo.name, routing={sl.name: sl.routing for sl in topo.slices},
                failed_links=frozenset(failed_links))
    add = plan.resources.append
    sites = {n.name: n.site for n in topo.nodes}
    node_index = {n.name: i for i, n in enumerate(topo.nodes)}
    link_index = {lk.key: i for i, lk in enumerate(topo.links)}
    prefixes = allocate_slice_prefixes(topo)
    t = topo.name

    def sub_if(peer: str) -> str:
        return substrate_ifname(peer, sites[peer])

    for node in topo.nodes:
        add(Netns(node=node.name, ns=node_ns(t, node.name), role="node", sysctls=NODE_SYSCTLS))
    for link in topo.links:
        a, b = link.key
        add(Veth(node=a, ns=node_ns(t, a), ifname=sub_if(b), mtu=link.mtu,
                 peer_ns=node_ns(t, b), peer_ifname=sub_if(a)))
        if link.key in failed_links:
            add(LinkDown(node=a, ns=node_ns(t, a), ifname=sub_if(b)))
            add(LinkDown(node=b, ns=node_ns(t, b), ifname=sub_if(a)))

    # (node, peer) -> list of ShapingClass; node -> [(src mac, dst mac)] admitted on ingress
    classes: dict[tuple[str, str], list[ShapingClass]] = defaultdict(list)
    admitted: dict[str, set[tuple[str, str]]] = defaultdict(set)
    macs_on_lower: dict[tuple[str, str], set[str]] = defaultdict(set)
    all_loopbacks: dict[tuple[str, str], str] = {}
    uids: dict[str, int] = {}
    slice_paths: dict[str, dict[str, dict[str, tuple[str, str, int]]]] = {}
    layouts: dict[str, object] = {}

    explicit_uids = {sl.uid for sl in topo.slices if sl.uid is not None}
    default_uids = spread_by_name([sl.name for sl in topo.slices if sl.uid is None], DEFAULT_UID_BASE,
                                  UID_SPAN, explicit_uids)
    class_ids = spread_by_name([sl.name for sl in topo.slices], SLICE_CLASS_BASE, CLASS_SPAN)
    for sl in topo.slices:
        uid = sl.uid if sl.uid is not None else default_uids[sl.name]
        prefix = prefixes[sl.name]
        assert prefix is not None, "validated topologies always have a prefix"
        layout = slice_addressing(topo, sl.name, prefix)
        members = topo.slice_nodes(sl)
        links = topo.slice_links(sl)
        loopback = {n: layout.loopback(node_index[n]) for n in members}
        ends: dict[tuple[str, str], tuple[str, str, str]] = {}  # (x, y) -> (ifname, ip, mac) at x toward y
        for link in links:
            a, b = link.key
            addr_a, addr_b = layout.link_pair(link_index[link.key])
            for x, y, addr in ((a, b, addr_a), (b, a, addr_b)):
                mac = mac_address(t, sl.name, x, y)
                if mac in macs_on_lower[(x, y)]:
                    raise PlanningError(f"MAC collision on {x}->{y}: {mac}")
                macs_on_lower[(x, y)].add(mac)
                ends[(x, y)] = (virtual_ifname(y, sites[y]), str(addr), mac)
        slivers_if: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for (x, y), (ifname, addr, mac) in ends.items():
            link = next(lk for lk in links if lk.key == tuple(sorted((x, y))))
            ns = sliver_ns(t, x, sl.name)
            peer_ifname, peer_addr, peer_mac = ends[(y, x)]
            add(Macvlan(node=x, ns=ns, ifname=ifname, mtu=link.mtu, lower_ns=node_ns(t, x),
                        lower_ifname=sub_if(y), mac=mac))
            add(Address(node=x, ns=ns, ifname=ifname, cidr=addr))
            add(Neighbour(node=x, ns=ns, ifname=ifname, ip=peer_addr.split("/")[0], mac=peer_mac))
            classes[(x, y)].append(ShapingClass(
                classid=class_ids[sl.name], rate=sl.bandwidth, ceil=link.bandwidth,
                macs=(mac,), label=sl.name))
            admitted[x].add((peer_mac, mac))
            slivers_if[x].append((ifname, addr, mac))

        devices_at: dict[str, list[tuple[str, IPv4Network, str]]] = defaultdict(list)
        for j, dev in enumerate(sl.pseudo_devices):
            ifname = dev.name or f"{dev.type}{j}"
            subnet = layout.pseudo_device_subnet(j)
            ns = sliver_ns(t, dev.node, sl.name)
            add(TunTap(node=dev.node, ns=ns, ifname=ifname, mode=dev.type, uid=uid, gid=uid))
            add(Address(node=dev.node, ns=ns, ifname=ifname, cidr=f"{subnet.network_address + 1}/30"))
            devices_at[dev.node].append((ifname, subnet, dev.type))
        layouts[sl.name] = layout
        access_at: dict[str, list[IPv4Network]] = defaultdict(list)
        for node, _, subnet in access_subnets(topo, sl.name, layout):
            access_at[node].append(subnet)

        graph = slice_graph(members, [lk for lk in links if lk.key not in failed_links])
        # Only `routing: static` slices get vispd's routes; OSPF slices' BIRDs and `none`
        # slices' own software fill their tables.
        hops = next_hops(graph) if sl.routing == "static" else {}
        cost = distances(graph)
        uids[sl.name] = uid
        slice_paths[sl.name] = {
            x: {d: (ends[(hop, x)][1].split("/")[0], ends[(x, hop)][0], cost[x][d]) for d, hop in hops.get(x, {}).items()}
            for x in members}
        for x in members:
            all_loopbacks[(sl.name, x)] = str(loopback[x])
        for x in members:
            ns = sliver_ns(t, x, sl.name)
            add(Netns(node=x, ns=ns, role="sliver", slice=sl.name, sysctls=sliver_sysctls(uid)))
            add(Address(node=x, ns=ns, ifname="lo", cidr=f"{loopback[x]}/32"))
            for dest, hop in sorted(hops.get(x, {}).items()):
                ifname, _, _ = ends[(x, hop)]
                gateway = ends[(hop, x)][1].split("/")[0]
                targets = ([f"{loopback[dest]}/32"] + [str(s) for _, s, _ in devices_at[dest]]
                           + [str(s) for s in access_at[dest]])
                for dst in targets:
                    add(Route(node=x, ns=ns, dst=dst, gateway=gateway, ifname=ifname,
                              prefsrc=str(loopback[x])))
            if sl.routing == "ospf":
                from .ospf import sliver_daemon

                stubs = ([str(s) for _, s, _ in devices_at[x]] + [str(s) for s in access_at[x]])
                neighbours = []
                for (a, b), (ifname, addr, _) in sorted(ends.items()):
                    if a != x:
                        continue
                    link = next(lk for lk in links if lk.key == tuple(sorted((a, b))))
                    neighbours.append((ifname, addr, ends[(b, a)][1].split("/")[0], link.cost))
                egress_nodes = {p.node for p in topo.providers if p.name in sl.egress}
                add(sliver_daemon(t, sl, x, ns, str(loopback[x]), neighbours, stubs,
                                  paths.run_dir, paths.sock_dir, originate_default=x in egress_nodes))
            plan.slivers.append(SliverInfo(
                slice=sl.name, node=x, ns=ns, loopback=str(loopback[x]), uid=uid, gid=uid,
                interfaces=tuple(sorted(slivers_if[x])),
                pseudo_devices=tuple((n, m, str(s)) for n, s, m in devices_at[x]),
            ))

    egress = plan_egress(topo, prefixes, all_loopbacks, class_ids, paths.run_dir, paths.sock_dir,
                         lambda name: slice_paths[name])
    plan.resources.extend(egress.resources)
    if topo.providers:
        plan.internet_host = str(topo.internet.host)
        plan.egress_slices = [sl.name for sl in topo.slices if sl.egress]
    access = plan_access(topo, layouts, uids, paths.run_dir, paths.sock_dir, paths.state_dir, credentials or {})
    plan.resources.extend(access.resources)
    plan.access_points = access.points
    for link in topo.links:
        a, b = link.key
        for x, y in ((a, b), (b, a)):
            add(Shaping(node=x, ns=node_ns(t, x), ifname=sub_if(y), capacity=link.bandwidth,
                        classes=tuple(classes[(x, y)])))
    for provider in topo.providers:
        device = _access_if(provider.name)
        add(Shaping(node=provider.node, ns=node_ns(t, provider.node), ifname=device,
                    capacity=provider.bandwidth, classes=tuple(egress.classes.get((provider.node, device), ()))))
        add(Shaping(node="+" + provider.name, ns=lab_ns(t, provider.name), ifname=sub_if(provider.node),
                    capacity=provider.bandwidth))
    for node, pairs in [*egress.admitted.items(), *access.admitted.items()]:
        admitted[node] |= pairs
    for node in topo.nodes:
        devices = tuple(sorted([
            sub_if(peer) for lk in topo.links if node.name in lk.key
            for peer in lk.key if peer != node.name]
            + egress.devices.get(node.name, []) + access.devices.get(node.name, [])))
        if devices:
            add(IsolationFilter(node=node.name, ns=node_ns(t, node.name), devices=devices,
                                pairs=tuple(sorted(admitted[node.name]))))
    _check_unique_keys(plan)
    return plan


def _check_unique_keys(plan: Plan) -> None:
    seen: dict[tuple, object] = {}
    for resource in plan.resources:
        if resource.key in seen:
            raise PlanningError(f"two resources share the key {resource.key}: "
                                f"{seen[resource.key]} and {resource}")
        seen[resource.key] = resource
