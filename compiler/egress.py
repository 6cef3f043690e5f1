"""BGP egress of the vISP (pure): for every provider, its access device on the egress
node (shaped to the provider's bandwidth, one HTB class per slice egressing there, watched
by the node's guard) and, for every slice egressing through it, a private macvlan
`p-PROVIDER` in the slice's sliver on that node with a /31 from the provider's `peering`
prefix (provider side even, slice side odd) and a static neighbour toward the provider.

Every egress sliver runs one ExaBGP (with vispd's API helper, bgp/helper.py) holding an
eBGP session to each of its slice's providers at that node; one egress manager per
topology moves every sliver's default route toward the nearest egress whose sessions are
up. How a provider's access device comes to exist and what is at its far end is the
provider kind's (compiler.providers).
"""
from __future__ import annotations

import json
import signal
from collections import defaultdict
from dataclasses import dataclass
from ipaddress import IPv4Network

from model.naming import access_ifname, mac_address, sliver_access_ifname
from model.schema import Provider, Topology

from .context import PlanContext, PlanParts
from .daemons import exabgp
from .daemons.ospf import EGRESS_DEFAULT_PROTOCOL, control_socket
from .providers import provider_kind
from .resources import Address, Daemon, Macvlan, Neighbour, ShapingClass

BGP_RTPROTO = 78  # routes learned from providers (installed by the ExaBGP helper)
EGRESS_RTPROTO = 79  # default routes placed by the egress manager


def provider_peering(index: int, provider: Provider) -> IPv4Network:
    """The provider's access-link prefix: as declared, else the index-th /28 of 192.0.2.0/24."""
    if provider.peering is not None:
        return provider.peering
    return list(IPv4Network("192.0.2.0/24").subnets(new_prefix=28))[index]


@dataclass
class Session:
    """One eBGP session between a slice's egress sliver and a provider."""

    slice: str
    node: str
    provider: str
    provider_asn: int
    provider_address: str
    slice_address: str
    local_pref: int
    max_prefix: int | None
    slice_mac: str = ""


def sessions_of(topo: Topology) -> list[Session]:
    """Every (slice, provider) session, provider by provider, slices in topology order."""
    sessions = []
    for index, provider in enumerate(topo.providers):
        peering = list(provider_peering(index, provider).subnets(new_prefix=31))
        for j, sl in enumerate(s for s in topo.slices if provider.name in s.egress):
            pair = peering[j]
            sessions.append(Session(sl.name, provider.node, provider.name, provider.asn, str(pair.network_address),
                                    str(pair.network_address + 1), provider.local_pref, provider.max_prefix,
                                    mac_address(topo.name, sl.name, "access", provider.name)))
    return sessions


def plan_egress(ctx: PlanContext, parts: PlanParts) -> list[Session]:
    topo = ctx.topo
    sessions = sessions_of(topo)
    for provider in topo.providers:
        device = access_ifname(provider.name)
        parts.shape(provider.node, ctx.node_ns(provider.node), device, provider.bandwidth)
        parts.guard(provider.node, device)
        provider_kind(provider).plan_access_device(provider, ctx, parts)
    for session in sessions:
        _plan_session_side(ctx, parts, session)
    by_sliver: dict[tuple[str, str], list[Session]] = defaultdict(list)
    for session in sessions:
        by_sliver[(session.slice, session.node)].append(session)
    for (slice_name, node), group in sorted(by_sliver.items()):
        parts.add(_exabgp_daemon(ctx, slice_name, node, group))
    if topo.providers:
        parts.add(_egress_manager(ctx, sessions))
    return sessions


def _plan_session_side(ctx: PlanContext, parts: PlanParts, session: Session) -> None:
    """The slice's end of one session: its macvlan on the access device, address, neighbour."""
    provider = ctx.topo.provider(session.provider)
    device = access_ifname(provider.name)
    ns = ctx.sliver_ns(session.node, session.slice)
    ifname = sliver_access_ifname(provider.name)
    far_mac = provider_kind(provider).far_end_mac(provider, ctx)
    parts.add(Macvlan(node=session.node, ns=ns, ifname=ifname, lower_ns=ctx.node_ns(session.node),
                      lower_ifname=device, mac=session.slice_mac),
              Address(node=session.node, ns=ns, ifname=ifname, cidr=f"{session.slice_address}/31"),
              Neighbour(node=session.node, ns=ns, ifname=ifname, ip=session.provider_address, mac=far_mac))
    sl = ctx.topo.slice(session.slice)
    parts.classify(ctx.node_ns(session.node), device, ShapingClass(
        classid=ctx.class_ids[sl.name], rate=min(sl.bandwidth, provider.bandwidth), ceil=provider.bandwidth,
        macs=(session.slice_mac,), label=sl.name))
    parts.admit(session.node, far_mac, session.slice_mac)


def speaker_config(ctx: PlanContext, slice_name: str, node: str, sessions: list[Session]) -> dict:
    """The JSON config of one egress sliver's ExaBGP helper (see bgp/helper.py)."""
    sl = ctx.topo.slice(slice_name)
    prefix = ctx.prefixes[slice_name]
    loopback = ctx.slice_facts[slice_name].loopback[node]
    announce = [{"prefix": str(a.prefix), "prepend": a.prepend, "communities": list(a.communities)}
                for a in sl.announce] or [{"prefix": str(prefix), "prepend": 0, "communities": []}]
    stem = f"exabgp-{slice_name}-{node}"
    return {
        "slice": slice_name, "node": node, "local_as": ctx.topo.asn, "router_id": loopback,
        "allowed_prefixes": [str(prefix)],
        "announce": announce,
        "neighbors": [{"name": s.provider, "address": s.provider_address, "local_address": s.slice_address,
                       "peer_as": s.provider_asn, "local_pref": s.local_pref, "max_prefix": s.max_prefix}
                      for s in sessions],
        "rt_proto": BGP_RTPROTO, "table": 254, "prefsrc": loopback, "hold_time": 9,
        "status_file": ctx.runtime.run_file(f"{stem}.status.json"),
        "event_socket": ctx.runtime.socket("egress.sock"),
        "log_file": ctx.runtime.run_file(f"{stem}.helper.log"),
    }


def _exabgp_daemon(ctx: PlanContext, slice_name: str, node: str, sessions: list[Session]) -> Daemon:
    runtime = ctx.runtime
    stem = f"exabgp-{slice_name}-{node}"
    config = speaker_config(ctx, slice_name, node, sessions)
    config_path, conf_path = runtime.run_file(f"{stem}.json"), runtime.run_file(f"{stem}.conf")
    argv, env = exabgp.command(config_path, conf_path, runtime.run_file(f"{stem}.exapid"),
                               runtime.run_file(f"{stem}.exabgp.log"), python=runtime.python,
                               listen=[n["local_address"] for n in config["neighbors"]],
                               project_root=runtime.project_root)
    return Daemon(node=node, ns=ctx.sliver_ns(node, slice_name), name=stem, argv=tuple(argv),
                  env=tuple(sorted(env.items())),
                  listens=tuple(("tcp", n["local_address"], 179) for n in config["neighbors"]),
                  files=((f"{stem}.json", json.dumps(config, indent=1, sort_keys=True)),
                         (f"{stem}.conf", exabgp.render(config, config_path, python=runtime.python))))


def manager_config(ctx: PlanContext, sessions: list[Session]) -> dict:
    """The egress manager's view: per slice, each sliver's way to each egress node."""
    topo, runtime = ctx.topo, ctx.runtime
    slices = {}
    for sl in topo.slices:
        egress_nodes = sorted({s.node for s in sessions if s.slice == sl.name})
        if not egress_nodes:
            continue
        facts = ctx.slice_facts[sl.name]
        routes = facts.paths()
        slivers = []
        for node in facts.members:
            toward = {e: list(routes[node][e]) for e in egress_nodes if e != node and e in routes.get(node, {})}
            slivers.append({"node": node, "ns": ctx.sliver_ns(node, sl.name), "loopback": facts.loopback[node],
                            "toward": toward})
        slices[sl.name] = {
            "egress": {e: sorted(s.provider for s in sessions if s.slice == sl.name and s.node == e)
                       for e in egress_nodes},
            "status_files": {e: runtime.run_file(f"exabgp-{sl.name}-{e}.status.json") for e in egress_nodes},
            "slivers": slivers,
            "routing": sl.routing,
        }
        if sl.routing == "ospf":  # the slivers' BIRDs carry the default (see bgp/egress_manager.py)
            slices[sl.name]["bird_sockets"] = {e: control_socket(runtime.sock_dir, sl.name, e) for e in egress_nodes}
            slices[sl.name]["default_protocol"] = EGRESS_DEFAULT_PROTOCOL
    return {"topology": topo.name, "rt_proto": EGRESS_RTPROTO, "event_socket": runtime.socket("egress.sock"),
            "status_file": runtime.run_file("egress-manager.status.json"), "slices": slices}


def _egress_manager(ctx: PlanContext, sessions: list[Session]) -> Daemon:
    runtime = ctx.runtime
    config = manager_config(ctx, sessions)
    return Daemon(node="", ns="", name="egress-manager",
                  argv=runtime.module_command("bgp.egress_manager", "--config", runtime.run_file("egress-manager.json")),
                  env=runtime.module_env(), reload_signal=signal.SIGHUP,
                  listens=(("unix", config["event_socket"], 0),),
                  files=(("egress-manager.json", json.dumps(config, indent=1, sort_keys=True)),))
