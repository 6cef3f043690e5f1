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
    """One entry per BGP speaker: each egress node's border router (`role` "border") and
    each egress sliver's speaker, from their helpers' status files."""
    result = []
    for daemon in plan.resources:
        if getattr(daemon, "KIND", "") != "daemon" or not daemon.name.startswith(("exabgp-", "border-")):
            continue
        config = json.loads(dict(daemon.files)[f"{daemon.name}.json"])
        try:
            with open(config["status_file"]) as handle:
                status = json.load(handle)
        except (OSError, ValueError):
            status = {"neighbors": {}, "error": "no status yet (is the topology up?)"}
        if config.get("role") == "border":
            status.setdefault("role", "border")
        status.setdefault("slice", config.get("slice", "border"))
        status.setdefault("node", config["node"])
        result.append(status)
    return sorted(result, key=lambda s: (s.get("role") != "border", s["node"], s["slice"]))


def is_up(neighbor: dict) -> bool:
    return str(neighbor.get("state", "")).lower() in ("up", "established")


def _neighbors(status: dict) -> list[dict]:
    neighbors = status.get("neighbors", {})
    return list(neighbors.values()) if isinstance(neighbors, dict) else list(neighbors)


def _state(neighbor: dict, now: float) -> tuple[str, str]:
    up = is_up(neighbor)
    uptime = f"{now - neighbor['since']:.0f}s" if up and neighbor.get("since") else "-"
    return ("established" if up else neighbor.get("state", "?")), uptime


def render_bgp_status(statuses: list[dict]) -> str:
    now = time.time()
    borders = [s for s in statuses if s.get("role") == "border"]
    speakers = [s for s in statuses if s.get("role") != "border"]
    lines = []
    if borders:
        lines += _render_borders(borders, now) + [""]
    lines += _render_speakers(speakers, now)
    return "\n".join(lines)


def bfd_cell(neighbor: dict) -> str:
    """A provider's BFD in a word or two: `up 300ms` (its detection time), `down`, `off`..."""
    bfd = neighbor.get("bfd")
    if not isinstance(bfd, dict):
        return "-"
    state = str(bfd.get("state", "?"))
    return f"{state} {bfd['detect_ms']}ms" if state == "up" and bfd.get("detect_ms") else state


def _bfd_notes(node: str, neighbor: dict, now: float) -> list[str]:
    bfd = neighbor.get("bfd")
    if not isinstance(bfd, dict) or bfd.get("state") in (None, "up", "off"):
        return []
    since = f" for {max(0.0, now - bfd['since']):.0f}s" if bfd.get("since") else ""
    why = bfd.get("problem") or bfd.get("diagnostic") or ("never up" if not bfd.get("failures") else "")
    return [f"  {node}: provider {neighbor.get('name', '?')}: BFD {bfd['state']}{since}"
            f"{' (' + why + ')' if why else ''}"]


def _render_borders(statuses: list[dict], now: float) -> list[str]:
    lines = ["border routers (the vISP's sessions: one per provider, one per slice egressing there)",
             f"{'node':<12} {'peer':<18} {'state':<12} {'uptime':>8} {'in':>8} {'out':>8} {'refused':>8} {'held':>5}"
             "  bfd"]
    for status in statuses:
        notes = []
        for n in _neighbors(status):
            state, uptime = _state(n, now)
            if n.get("kind") == "provider":
                refused = n.get("refused_own_as", 0) + n.get("refused_max_prefix", 0)
                held, peer, bfd = "-", f"provider {n.get('name', '?')}", bfd_cell(n)
                flag = " (max-prefix reached)" if n.get("max_prefix_exceeded") else ""
                notes += _bfd_notes(status["node"], n, now)
            else:
                refused, held, flag, bfd = len(n.get("refused", [])), len(n.get("held", [])), "", "-"
                peer = f"slice {n.get('slice', n.get('name', '?'))}"
            lines.append(f"{status['node']:<12} {peer:<18} {state:<12} {uptime:>8} {n.get('prefixes_in', 0):>8} "
                         f"{n.get('prefixes_out', 0):>8} {refused:>8} {held:>5}  {bfd:<10}{flag}".rstrip())
        lines += notes
        for refused in status.get("refused", []):
            lines.append(f"  {status['node']}: refused from slice {refused['slice']}: {refused['prefix']}: "
                         f"{refused['reason']}")
        for held in status.get("held", []):
            lines.append(f"  {status['node']}: held by the flap guard: {held['prefix']} of slice {held['slice']} "
                         f"(until {max(0, held['until'] - now):.0f}s from now)")
        if status.get("error"):
            lines.append(f"  border {status['node']}: {status['error']}")
    return lines


def _render_speakers(statuses: list[dict], now: float) -> list[str]:
    lines = ["slices' speakers (each peers with its node's border; a path per provider)",
             f"{'slice':<10} {'node':<12} {'session':<16} {'state':<12} {'uptime':>8} "
             f"{'received':>9} {'installed':>9}  announced"]
    for status in statuses:
        announced = ",".join(a["prefix"] for a in status.get("announced", [])) or "-"
        for n in _neighbors(status):
            state, uptime = _state(n, now)
            flag = " (max-prefix reached)" if n.get("max_prefix_exceeded") else ""
            lines.append(f"{status['slice']:<10} {status['node']:<12} {n.get('name', '?'):<16} "
                         f"{state:<12} {uptime:>8} {n.get('received', 0):>9} {n.get('installed', 0):>9}  "
                         f"{announced}{flag}")
            for name, path in sorted((n.get("paths") or {}).items()):
                lines.append(f"{'':<10} {'':<12} {'  via ' + name:<16} {'path ' + path.get('path_id', '?'):<12} "
                             f"{'':>8} {path.get('received', 0):>9} {path.get('installed', 0):>9}")
        for refused in status.get("refused", []):
            lines.append(f"  refused announcement {refused}")
        if status.get("error"):
            lines.append(f"  {status['slice']} {status['node']}: {status['error']}")
    return lines


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

