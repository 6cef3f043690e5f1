"""`vispd bgp status` and `vispd routes`: what the BGP speakers and the FIBs hold.

Session figures come from the status files the ExaBGP helpers keep in the run directory
(state, uptime, prefixes received/accepted/installed, max-prefix, announced and refused
announcements); routes are read from the sliver's kernel table, labelled by who put them
there (route protocol: 77 vispd's static routes, 78 BGP, 79 the egress manager).

I/O: reads status files and a sliver's routing table.
"""
from __future__ import annotations

import json
import socket
import time

from pyroute2 import IPRoute

from dataplane import netns

from compiler.egress import BGP_RTPROTO, EGRESS_RTPROTO
from model.errors import VispdError

ROUTE_ORIGIN = {77: "static", BGP_RTPROTO: "bgp", EGRESS_RTPROTO: "egress", 2: "kernel", 12: "ospf (bird)"}


def speaker_statuses(plan) -> list[dict]:
    """One entry per egress sliver, from its helper's status file."""
    result = []
    for daemon in plan.resources:
        if getattr(daemon, "KIND", "") != "daemon" or not daemon.name.startswith("exabgp-"):
            continue
        config = json.loads(dict(daemon.files)[f"{daemon.name}.json"])
        try:
            with open(config["status_file"]) as handle:
                status = json.load(handle)
        except (OSError, ValueError):
            status = {"neighbors": {}, "error": "no status yet (is the topology up?)"}
        status.setdefault("slice", config["slice"])
        status.setdefault("node", config["node"])
        result.append(status)
    return result


def is_up(neighbor: dict) -> bool:
    return str(neighbor.get("state", "")).lower() in ("up", "established")


def render_bgp_status(statuses: list[dict]) -> str:
    lines = [f"{'slice':<10} {'node':<12} {'provider':<10} {'state':<12} {'uptime':>8} "
             f"{'received':>9} {'installed':>9}  announced"]
    now = time.time()
    for status in statuses:
        announced = ",".join(a["prefix"] for a in status.get("announced", [])) or "-"
        neighbors = status.get("neighbors", {})
        items = neighbors.values() if isinstance(neighbors, dict) else neighbors
        for n in items:
            up = is_up(n)
            uptime = f"{now - n['since']:.0f}s" if up and n.get("since") else "-"
            flag = " (max-prefix reached)" if n.get("max_prefix_exceeded") else ""
            lines.append(f"{status['slice']:<10} {status['node']:<12} {n.get('name', '?'):<10} "
                         f"{('established' if up else n.get('state', '?')):<12} {uptime:>8} "
                         f"{n.get('received', 0):>9} {n.get('installed', 0):>9}  {announced}{flag}")
        for refused in status.get("refused", []):
            lines.append(f"  refused announcement {refused}")
        if status.get("error"):
            lines.append(f"  {status['slice']} {status['node']}: {status['error']}")
    return "\n".join(lines)


def sliver_routes(ns: str) -> list[dict]:
    if not netns.exists(ns):
        raise VispdError(f"{ns} does not exist: is the topology up?")
    with netns.entered(ns):
        ipr = IPRoute()
    try:
        index = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        routes = []
        for msg in ipr.get_routes(family=socket.AF_INET, table=254):
            dst = msg.get_attr("RTA_DST")
            routes.append({
                "dst": f"{dst}/{msg['dst_len']}" if dst else "default",
                "via": msg.get_attr("RTA_GATEWAY"),
                "dev": index.get(msg.get_attr("RTA_OIF"), "?"),
                "origin": ROUTE_ORIGIN.get(msg["proto"], str(msg["proto"])),
            })
        return routes
    finally:
        ipr.close()


def render_routes(routes: list[dict]) -> str:
    return "\n".join(f"{r['dst']:<20} {('via ' + r['via']) if r['via'] else 'connected':<20} "
                     f"dev {r['dev']:<10} {r['origin']}" for r in routes)

