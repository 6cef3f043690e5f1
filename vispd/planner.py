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

from collections import defaultdict
from ipaddress import IPv4Network

from .addressing import allocate_slice_prefixes, slice_addressing
from .model import Topology
from .naming import (
    mac_address,
    node_ns,
    sliver_ns,
    slice_uid,
    substrate_ifname,
    virtual_ifname,
)
from .plan import (
    Address,
    IsolationFilter,
    Macvlan,
    Neighbour,
    Netns,
    Plan,
    Route,
    Shaping,
    ShapingClass,
    SliverInfo,
    TunTap,
    Veth,
)
from .routing import next_hops, slice_graph

DEFAULT_UID_BASE = 60000
SLICE_CLASS_BASE = 0x10

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


def compile_plan(topo: Topology) -> Plan:
    plan = Plan(topology=topo.name)
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

    # (node, peer) -> list of ShapingClass; node -> [(src mac, dst mac)] admitted on ingress
    classes: dict[tuple[str, str], list[ShapingClass]] = defaultdict(list)
    admitted: dict[str, set[tuple[str, str]]] = defaultdict(set)
    macs_on_lower: dict[tuple[str, str], set[str]] = defaultdict(set)

    for slice_index, sl in enumerate(topo.slices):
        uid = sl.uid if sl.uid is not None else slice_uid(DEFAULT_UID_BASE, slice_index)
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
                classid=SLICE_CLASS_BASE + slice_index, rate=sl.bandwidth, ceil=link.bandwidth,
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

        hops = next_hops(slice_graph(members, links))
        for x in members:
            ns = sliver_ns(t, x, sl.name)
            add(Netns(node=x, ns=ns, role="sliver", slice=sl.name, sysctls=sliver_sysctls(uid)))
            add(Address(node=x, ns=ns, ifname="lo", cidr=f"{loopback[x]}/32"))
            for dest, hop in sorted(hops.get(x, {}).items()):
                ifname, _, _ = ends[(x, hop)]
                gateway = ends[(hop, x)][1].split("/")[0]
                targets = [f"{loopback[dest]}/32"] + [str(s) for _, s, _ in devices_at[dest]]
                for dst in targets:
                    add(Route(node=x, ns=ns, dst=dst, gateway=gateway, ifname=ifname,
                              prefsrc=str(loopback[x])))
            plan.slivers.append(SliverInfo(
                slice=sl.name, node=x, ns=ns, loopback=str(loopback[x]), uid=uid, gid=uid,
                interfaces=tuple(sorted(slivers_if[x])),
                pseudo_devices=tuple((n, m, str(s)) for n, s, m in devices_at[x]),
            ))

    for link in topo.links:
        a, b = link.key
        for x, y in ((a, b), (b, a)):
            add(Shaping(node=x, ns=node_ns(t, x), ifname=sub_if(y), capacity=link.bandwidth,
                        classes=tuple(classes[(x, y)])))
    for node in topo.nodes:
        devices = tuple(sorted(
            sub_if(peer) for lk in topo.links if node.name in lk.key
            for peer in lk.key if peer != node.name))
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
