"""BGP egress of the slices (pure): every slice egressing at a node runs one ExaBGP (with
vispd's API helper, bgp/helper.py) in its sliver there, holding one iBGP session to the
node's border router (compiler.border) over its link to the node; the border passes each
provider's routes to it on an ADD-PATH path of its own, with that provider's next hop, and
takes the slice's announcements to the providers after screening them. One egress manager
per topology moves every sliver's default route toward the nearest egress that is live
(its session to the border up and routes installed).
"""
from __future__ import annotations

import json
import signal
from dataclasses import dataclass

from .border import SliceLink, exabgp_daemon, plan_borders, providers_at
from .context import PlanContext, PlanParts
from .daemons.speaker_config import METRIC_DEFAULT
from .daemons.ospf import EGRESS_DEFAULT_PROTOCOL, control_socket
from .resources import Daemon

BGP_RTPROTO = 78  # routes learned from providers (installed by the ExaBGP helper)
EGRESS_RTPROTO = 79  # default routes placed by the egress manager


@dataclass(frozen=True)
class Egress:
    """A slice egressing at a node through some of the providers there."""

    slice: str
    node: str
    providers: tuple[str, ...]


def plan_egress(ctx: PlanContext, parts: PlanParts) -> list[SliceLink]:
    links = plan_borders(ctx, parts)
    for link in links:
        parts.add(_speaker_daemon(ctx, link))
    if ctx.topo.providers:
        parts.add(_egress_manager(ctx, links))
    return links


def speaker_config(ctx: PlanContext, link: SliceLink) -> dict:
    """The JSON config of one egress sliver's ExaBGP helper (see bgp/helper.py): one session,
    to the border, and the providers' paths on it."""
    sl = ctx.topo.slice(link.slice)
    prefix = ctx.prefixes[link.slice]
    loopback = ctx.slice_facts[link.slice].loopback[link.node]
    announce = [{"prefix": str(a.prefix), "prepend": a.prepend, "communities": list(a.communities)}
                for a in sl.announce] or [{"prefix": str(prefix), "prepend": 0, "communities": []}]
    ends = {e.name: e for e in providers_at(ctx, link.node)}
    stem = f"exabgp-{link.slice}-{link.node}"
    return {
        "slice": link.slice, "node": link.node, "local_as": ctx.topo.asn, "router_id": loopback,
        "allowed_prefixes": [str(prefix)], "announce": announce, "ibgp": True,
        "neighbors": [{"name": "border", "address": link.border_ip, "local_address": link.slice_ip,
                       "peer_as": ctx.topo.asn, "add_path": "receive"}],
        "paths": [{"name": name, "path_id": ends[name].path_id, "next_hop": hop, "local_pref": ends[name].local_pref}
                  for name, (hop, _, _) in link.next_hops.items()],
        "rt_proto": BGP_RTPROTO, "table": 254, "metric": METRIC_DEFAULT, "prefsrc": loopback, "hold_time": 9,
        "status_file": ctx.runtime.run_file(f"{stem}.status.json"),
        "event_socket": ctx.runtime.socket("egress.sock"),
        "log_file": ctx.runtime.run_file(f"{stem}.helper.log"),
    }


def _speaker_daemon(ctx: PlanContext, link: SliceLink) -> Daemon:
    config = speaker_config(ctx, link)
    return exabgp_daemon(ctx, f"exabgp-{link.slice}-{link.node}", link.node,
                         ctx.sliver_ns(link.node, link.slice), config, [link.slice_ip])


def manager_config(ctx: PlanContext, links: list[SliceLink]) -> dict:
    """The egress manager's view: per slice, each sliver's way to each egress node."""
    topo, runtime = ctx.topo, ctx.runtime
    slices = {}
    for sl in topo.slices:
        egress_nodes = sorted({link.node for link in links if link.slice == sl.name})
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
            "egress": {link.node: sorted(link.next_hops) for link in links if link.slice == sl.name},
            "status_files": {e: runtime.run_file(f"exabgp-{sl.name}-{e}.status.json") for e in egress_nodes},
            "slivers": slivers,
            "routing": sl.routing,
        }
        if sl.routing == "ospf":  # the slivers' BIRDs carry the default (see bgp/egress_manager.py)
            slices[sl.name]["bird_sockets"] = {e: control_socket(runtime.sock_dir, sl.name, e) for e in egress_nodes}
            slices[sl.name]["default_protocol"] = EGRESS_DEFAULT_PROTOCOL
    return {"topology": topo.name, "rt_proto": EGRESS_RTPROTO, "event_socket": runtime.socket("egress.sock"),
            "status_file": runtime.run_file("egress-manager.status.json"), "slices": slices,
            "bgp_rt_proto": BGP_RTPROTO, "bgp_metric": METRIC_DEFAULT}


def _egress_manager(ctx: PlanContext, links: list[SliceLink]) -> Daemon:
    runtime = ctx.runtime
    config = manager_config(ctx, links)
    return Daemon(node="", ns="", name="egress-manager",
                  argv=runtime.module_command("bgp.egress_manager", "--config", runtime.run_file("egress-manager.json")),
                  env=runtime.module_env(), reload_signal=signal.SIGHUP,
                  listens=(("unix", config["event_socket"], 0),),
                  files=(("egress-manager.json", json.dumps(config, indent=1, sort_keys=True)),))
