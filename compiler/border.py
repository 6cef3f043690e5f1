"""The vISP's border routers (pure): one per egress node, in the node's namespace, which
slices cannot touch. A commercial provider gives the vISP one BGP session; the border holds
it, from the topology's AS, and every slice egressing there peers with the border instead,
as PEERING's experiments peer with its muxes.

Per provider at the node: its access device `x-PROVIDER` (made by the provider kind, or the
lab world), the border's address on it, a policy table whose default route leads to the
provider, and one HTB class per slice, classified by the slice's source prefix.

Per slice egressing at the node: a veth between its sliver (`border`) and the node
(`s-SLICE`) on a /28 of 169.254.0.0/16 — .1 the border, .2 the slice — and, stacked on the
node's end, one macvlan per provider holding that provider's next hop (.3, .4, ...): the
border passes each provider's routes to the slice on an ADD-PATH path of its own with that
next hop, so the slice picks its egress per destination, and a packet sent to a provider's
next hop enters the node on that provider's macvlan, whose rule sends it to the provider's
table (vBGP's per-upstream next hops). The node routes the slice's prefix back to it, and a
source guard on `s-SLICE` drops anything the slice sends from addresses not its own (BCP 38).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from model.naming import access_ifname, hashed_ifname, mac_address, short_node_name, spread_by_name

from .bfd import with_bfd
from .context import PlanContext, PlanParts
from .daemons import exabgp
from .providers import provider_kind
from .resources import Address, Daemon, Macvlan, Neighbour, Route, RoutingRule, ShapingClass, Veth

LINKS = IPv4Network("169.254.0.0/16")  # slice-border links: link-local, never routed beyond them
LINK_LENGTH = 28
MAX_PROVIDERS_AT_A_NODE = 13  # next hops .3 .. .15 of a /28
POLICY_TABLE_BASE = 1000  # the table toward provider number i is 1000 + i
RULE_PRIORITY_BASE = 100
SLICE_DROP_PRIORITY = 200
SLIVER_DEVICE = "border"


@dataclass(frozen=True)
class ProviderEnd:
    """A provider as the border at its node sees it."""

    name: str
    index: int  # position in the topology's providers: its table, rule and path id
    local_cidr: str  # the border's address on the access link
    peer: str  # the provider's address
    asn: int
    local_pref: int
    max_prefix: int | None

    @property
    def table(self) -> int:
        return POLICY_TABLE_BASE + self.index

    @property
    def path_id(self) -> str:
        return str(IPv4Address(self.index + 1))


@dataclass(frozen=True)
class SliceLink:
    """A slice's link to the border of one egress node."""

    node: str
    slice: str
    subnet: IPv4Network
    node_ifname: str
    node_mac: str
    sliver_mac: str
    next_hops: dict  # provider name -> (next hop address, macvlan name, macvlan MAC)

    @property
    def border_ip(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def slice_ip(self) -> str:
        return str(self.subnet.network_address + 2)


def egress_nodes(ctx: PlanContext) -> list[str]:
    """Nodes with a border router: those some provider attaches to, in topology order."""
    wanted = {p.node for p in ctx.topo.providers}
    return [n.name for n in ctx.topo.nodes if n.name in wanted]


def providers_at(ctx: PlanContext, node: str) -> list[ProviderEnd]:
    ends = []
    for index, provider in enumerate(ctx.topo.providers):
        if provider.node == node:
            local, peer = provider_kind(provider).session_addresses(provider, index, ctx)
            ends.append(ProviderEnd(provider.name, index, local, peer, provider.asn, provider.local_pref,
                                    provider.max_prefix))
    return ends


def slice_links(ctx: PlanContext) -> list[SliceLink]:
    """Every (egress node, slice egressing there) link, with stable addresses: each pair's
    /28 is derived from its names, so adding or removing others moves no one."""
    pairs = [(node, sl.name) for node in egress_nodes(ctx) for sl in ctx.topo.slices
             if any(p.node == node and p.name in sl.egress for p in ctx.topo.providers)]
    slots = spread_by_name([f"{node}/{name}" for node, name in pairs], 1, 2 ** (LINK_LENGTH - 16) - 1)
    links = []
    for node, name in pairs:
        subnet = IPv4Network((int(LINKS.network_address) + slots[f"{node}/{name}"] * 2 ** (32 - LINK_LENGTH),
                              LINK_LENGTH))
        hops = {}
        for position, end in enumerate(providers_at(ctx, node)):
            if end.name in ctx.topo.slice(name).egress:
                hops[end.name] = (str(subnet.network_address + 3 + position),
                                  hashed_ifname("q", ctx.name, node, name, end.name),
                                  mac_address(ctx.name, "border", node, name, end.name))
        links.append(SliceLink(node, name, subnet, "s-" + short_node_name(name, None, 13),
                               mac_address(ctx.name, "border", node, name, "node"),
                               mac_address(ctx.name, "border", node, name, "slice"), hops))
    return links


def plan_borders(ctx: PlanContext, parts: PlanParts) -> list[SliceLink]:
    """The border routers and the slices' links to them; returns the links (for the slices'
    speakers)."""
    links = slice_links(ctx)
    for node in egress_nodes(ctx):
        ends = providers_at(ctx, node)
        for end in ends:
            _plan_provider(ctx, parts, node, end)
        mine = [link for link in links if link.node == node]
        for link in mine:
            _plan_slice_link(ctx, parts, link, ends)
        parts.add(*with_bfd(ctx, node, ends, _border_daemon(ctx, node, ends, mine)))
    return links


def _plan_provider(ctx: PlanContext, parts: PlanParts, node: str, end: ProviderEnd) -> None:
    provider = ctx.topo.provider(end.name)
    ns, device = ctx.node_ns(node), access_ifname(end.name)
    provider_kind(provider).plan_access_device(provider, ctx, parts)
    parts.add(Address(node=node, ns=ns, ifname=device, cidr=end.local_cidr),
              Route(node=node, ns=ns, dst="0.0.0.0/0", gateway=end.peer, ifname=device, table=end.table))
    parts.shape(node, ns, device, provider.bandwidth)


def _plan_slice_link(ctx: PlanContext, parts: PlanParts, link: SliceLink, ends: list[ProviderEnd]) -> None:
    node, ns, sliver = link.node, ctx.node_ns(link.node), ctx.sliver_ns(link.node, link.slice)
    sl, prefix = ctx.topo.slice(link.slice), str(ctx.prefixes[link.slice])
    cidr = f"/{LINK_LENGTH}"
    parts.add(Veth(node=node, ns=ns, ifname=link.node_ifname, peer_ns=sliver, peer_ifname=SLIVER_DEVICE,
                   mac=link.node_mac, peer_mac=link.sliver_mac, arp=False),
              Address(node=node, ns=ns, ifname=link.node_ifname, cidr=link.border_ip + cidr),
              Neighbour(node=node, ns=ns, ifname=link.node_ifname, ip=link.slice_ip, mac=link.sliver_mac),
              Address(node=node, ns=sliver, ifname=SLIVER_DEVICE, cidr=link.slice_ip + cidr),
              Neighbour(node=node, ns=sliver, ifname=SLIVER_DEVICE, ip=link.border_ip, mac=link.node_mac),
              Route(node=node, ns=ns, dst=prefix, gateway=link.slice_ip, ifname=link.node_ifname))
    for end in ends:
        if end.name not in link.next_hops:
            continue
        hop, ifname, mac = link.next_hops[end.name]
        provider = ctx.topo.provider(end.name)
        parts.add(Macvlan(node=node, ns=ns, ifname=ifname, lower_ns=ns, lower_ifname=link.node_ifname, mac=mac),
                  Address(node=node, ns=ns, ifname=ifname, cidr=f"{hop}/32"),
                  Neighbour(node=node, ns=sliver, ifname=SLIVER_DEVICE, ip=hop, mac=mac),
                  RoutingRule(node=node, ns=ns, iif=ifname, table=end.table, priority=RULE_PRIORITY_BASE + end.index))
        parts.classify(ns, access_ifname(end.name), ShapingClass(
            classid=ctx.class_ids[sl.name], rate=min(sl.bandwidth, provider.bandwidth), ceil=provider.bandwidth,
            macs=(), label=sl.name, sources=(prefix,)))
    # what the slice hands the border itself to forward is dropped: it leaves by a provider's
    # next hop (a rule above), or not at all (no way into another slice's link or prefix)
    parts.add(RoutingRule(node=node, ns=ns, iif=link.node_ifname, priority=SLICE_DROP_PRIORITY, blackhole=True))
    parts.source_guard(node, link.node_ifname, (prefix, str(link.subnet)))


def border_config(ctx: PlanContext, node: str, ends: list[ProviderEnd], links: list[SliceLink]) -> dict:
    """The border router's configuration (compiler.daemons.border_config)."""
    runtime, stem = ctx.runtime, f"border-{node}"
    return {
        "role": "border", "node": node, "local_as": ctx.topo.asn, "hold_time": 9,
        "router_id": ends[0].local_cidr.split("/")[0],
        "providers": [{"name": e.name, "address": e.peer, "local_address": e.local_cidr.split("/")[0],
                       "peer_as": e.asn, "local_pref": e.local_pref, "max_prefix": e.max_prefix,
                       "path_id": e.path_id} for e in ends],
        "slices": [{"name": link.slice, "slice": link.slice, "address": link.slice_ip,
                    "local_address": link.border_ip, "peer_as": ctx.topo.asn, "add_path": "send",
                    "allowed_prefixes": [str(ctx.prefixes[link.slice])],
                    "provider_routes": ctx.topo.slice(link.slice).provider_routes,
                    "next_hops": {name: hop for name, (hop, _, _) in link.next_hops.items()}} for link in links],
        "flap_changes": ctx.topo.border.flap_changes, "flap_window": ctx.topo.border.flap_window,
        "status_file": runtime.run_file(f"{stem}.status.json"),
        "log_file": runtime.run_file(f"{stem}.helper.log"),
    }


def _border_daemon(ctx: PlanContext, node: str, ends: list[ProviderEnd], links: list[SliceLink]) -> Daemon:
    config = border_config(ctx, node, ends, links)
    addresses = [p["local_address"] for p in config["providers"]] + [s["local_address"] for s in config["slices"]]
    return exabgp_daemon(ctx, f"border-{node}", node, ctx.node_ns(node), config, addresses)


def exabgp_daemon(ctx: PlanContext, stem: str, node: str, ns: str, config: dict, listen: list[str]) -> Daemon:
    """ExaBGP with vispd's helper as its API process, listening on `listen` (port 179) too."""
    runtime = ctx.runtime
    config_path, conf_path = runtime.run_file(f"{stem}.json"), runtime.run_file(f"{stem}.conf")
    argv, env = exabgp.command(config_path, conf_path, runtime.run_file(f"{stem}.exapid"),
                               runtime.run_file(f"{stem}.exabgp.log"), python=runtime.python,
                               listen=listen, project_root=runtime.project_root)
    return Daemon(node=node, ns=ns, name=stem, argv=tuple(argv), env=tuple(sorted(env.items())),
                  listens=tuple(("tcp", address, 179) for address in listen),
                  files=((f"{stem}.json", json.dumps(config, indent=1, sort_keys=True)),
                         (f"{stem}.conf", exabgp.render(config, config_path, python=runtime.python))))


BORDER_NODE_SYSCTLS = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.ip_forward", "1"),  # between the slices' links and the providers, by policy tables
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
)
