"""`vispd check`: prove a deployed topology's data path by probing it from inside the slivers.

This module owns what is checked and how it is judged; `dataplane.probe` owns the packets.

1. reachability: in each slice, every sliver pings every other sliver's loopback, as the
   slice's unprivileged user (ICMP datagram sockets). It is judged on the slice's graph
   without the substrate links taken down (`vispd link down`): pairs a failed link cuts
   apart are unreachable by design, not failures. OSPF slices are given until `converge`
   seconds to learn their routes (right after `up`, or after a link change), their failed
   pairs pinged again every second, and so are `routing: own` slices (their own software
   routes them: its suite, or their programs); `routing: none` slices have interfaces and
   addresses only, so their reach is not judged (isolation still is);
2. cross-slice ping: from every sliver, the loopbacks of each slice sharing a node with it
   must not answer;
3. isolation: sniffers (root, AF_PACKET, all multicast admitted) run in every sliver while
   each sliver, as its slice's user, sprays UDP unicast at the other slices' addresses,
   broadcast and multicast (224.0.0.5) out each interface, broadcast and multicast frames
   into its TAPs, and control datagrams to its own neighbours (over live links only: a
   failed link carries nothing). A frame of one slice seen in
   another slice's sliver is a leak; a control that nobody saw makes the run inconclusive
   (the sniffers would not have seen a leak either), which fails the check too.

Every probe runs in parallel with the others of its phase, is bounded by a deadline, and is
killed by PID when the phase ends.

I/O (root): probe processes in every sliver.
"""
from __future__ import annotations

import ipaddress
import secrets
import time
from dataclasses import dataclass, field

import networkx as nx

from dataplane import netns

from .check_bgp import bgp_phase
from .check_report import CrossPing, EgressReach, Isolation, Reach, Report
from compiler.plan import Plan, SliverInfo
from .probe_runner import Probe, Probes, collect, wait_ready

STARTUP_GRACE = 8.0  # seconds for a probe process to start on a loaded machine
SETTLE = 0.2  # seconds the sniffers keep listening after the last spray


# --- what the plan says ------------------------------------------------------------------

@dataclass
class Layout:
    """Addresses, MACs and neighbours of every sliver, indexed the ways the check needs."""

    slivers: list[SliverInfo]
    slice_of_ip: dict[str, str] = field(default_factory=dict)
    slice_of_mac: dict[str, str] = field(default_factory=dict)
    owner: dict[str, SliverInfo] = field(default_factory=dict)  # address -> sliver holding it
    neighbours: dict[str, list[str]] = field(default_factory=dict)  # ns -> peers' link addresses
    routing: dict[str, str] = field(default_factory=dict)  # slice -> static | ospf | none | own
    failed: frozenset[tuple[str, str]] = frozenset()  # substrate links taken down (sorted pairs)

    @classmethod
    def of(cls, plan: Plan) -> "Layout":
        layout = cls(slivers=list(plan.slivers), routing=dict(plan.routing), failed=frozenset(plan.failed_links))
        by_network: dict[ipaddress.IPv4Network, list[str]] = {}
        for info in plan.slivers:
            layout._own(info.loopback, info)
            for _, cidr, mac in info.interfaces:
                iface = ipaddress.ip_interface(cidr)
                layout._own(str(iface.ip), info)
                layout.slice_of_mac[mac] = info.slice
                by_network.setdefault(iface.network, []).append(str(iface.ip))
        for info in plan.slivers:
            layout.neighbours[info.ns] = [
                peer for _, cidr, _ in info.interfaces
                for peer in by_network[ipaddress.ip_interface(cidr).network]
                if peer != cidr.split("/")[0]]
        return layout

    def _own(self, address: str, info: SliverInfo) -> None:
        self.slice_of_ip[address] = info.slice
        self.owner[address] = info

    def slices(self) -> list[str]:
        return sorted({s.slice for s in self.slivers})

    def members(self, slice_name: str) -> list[SliverInfo]:
        return [s for s in self.slivers if s.slice == slice_name]

    def loopbacks(self, slice_name: str) -> list[str]:
        return [s.loopback for s in self.members(slice_name)]

    def addresses(self, slice_name: str) -> list[str]:
        return sorted(a for a, s in self.slice_of_ip.items() if s == slice_name)

    def macs(self, slice_name: str) -> list[str]:
        return sorted(m for m, s in self.slice_of_mac.items() if s == slice_name)

    def sharing_pairs(self) -> list[tuple[str, str]]:
        """Ordered pairs of distinct slices that have slivers on a common node."""
        nodes = {name: {s.node for s in self.members(name)} for name in self.slices()}
        return [(a, b) for a in nodes for b in nodes if a != b and nodes[a] & nodes[b]]

    def sharing_with(self, slice_name: str) -> list[str]:
        """Slices sharing a node with `slice_name`."""
        return [b for a, b in self.sharing_pairs() if a == slice_name]

    def routing_of(self, slice_name: str) -> str:
        return self.routing.get(slice_name, "static")

    def live_neighbours(self, info: SliverInfo) -> list[str]:
        """The link addresses of `info`'s neighbours over virtual links whose substrate link
        is not down."""
        return [peer for peer in self.neighbours[info.ns]
                if tuple(sorted((info.node, self.owner[peer].node))) not in self.failed]

    def reach_groups(self, slice_name: str) -> dict[str, int]:
        """node -> connected component of the slice's graph without failed links."""
        graph = nx.Graph()
        for info in self.members(slice_name):
            graph.add_node(info.node)
            graph.add_edges_from((info.node, self.owner[peer].node) for peer in self.live_neighbours(info))
        return {node: i for i, group in enumerate(sorted(nx.connected_components(graph), key=min))
                for node in group}

    def reach_targets(self, info: SliverInfo) -> list[str]:
        """Loopbacks of its own slice `info` must reach: none for `routing: none`, and only
        those on its side of any failed links."""
        if self.routing_of(info.slice) == "none":
            return []
        group = self.reach_groups(info.slice)
        return [s.loopback for s in self.members(info.slice)
                if s is not info and group[s.node] == group[info.node]]

    def expected_controls(self) -> set[tuple[str, str, str]]:
        """(slice, sending node, neighbour's link address) for every directed virtual link
        over a live substrate link."""
        return {(s.slice, s.node, peer) for s in self.slivers for peer in self.live_neighbours(s)}


# --- phase 1 and 2: ping -----------------------------------------------------------------

CONVERGING = ("ospf", "own")  # routing modes whose routes may still be on their way


def ping_phase(layout: Layout, report: Report, timeout: float, converge: float = 0.0) -> None:
    """Every sliver pings its own slice's loopbacks (those it must reach) and the other
    slices' loopbacks on shared nodes. Pairs of a converging slice (OSPF) that fail are
    pinged again, once a second, until `converge` seconds have passed since the start."""
    start = time.monotonic()
    own = {info.ns: layout.reach_targets(info) for info in layout.slivers}
    first = {info.ns: own[info.ns] + [a for other in layout.sharing_with(info.slice) for a in layout.loopbacks(other)]
             for info in layout.slivers}
    results = _ping_round(layout, first, timeout, report)
    pending = {name for name in layout.slices() if layout.routing_of(name) in CONVERGING}
    retried: set[str] = set()
    converged: dict[str, float] = {}  # slice that needed retries -> seconds until all pairs answered
    while pending:
        failing = {s.ns: [dst for dst in own[s.ns] if not _ok(results, s.ns, dst)]
                   for s in layout.slivers if s.slice in pending}
        failing = {ns: targets for ns, targets in failing.items() if targets}
        for name in sorted(pending):
            if not any(s.ns in failing for s in layout.members(name)):
                pending.discard(name)
                if name in retried:
                    converged[name] = round(time.monotonic() - start, 1)
        if not failing or time.monotonic() - start >= converge:
            break
        retried |= pending
        time.sleep(1.0)
        for ns, found in _ping_round(layout, failing, timeout, report).items():
            results.setdefault(ns, {}).update(found)
    judge_pings(layout, report, results, converged)


def _ping_round(layout: Layout, targets: dict[str, list[str]], timeout: float,
                report: Report) -> dict[str, dict[str, dict]]:
    """ns -> target -> outcome of one round of pings from the slivers in `targets`."""
    deadline = time.monotonic() + timeout + STARTUP_GRACE
    with Probes() as probes:
        pingers = [probes.start(info, ["ping", "--targets", ",".join(targets[info.ns]), "--timeout", str(timeout)])
                   for info in layout.slivers if targets.get(info.ns)]
        collect(pingers, deadline)
        report.errors += [p.error for p in pingers if p.error]
        return {p.info.ns: dict((p.result() or {}).get("results", {})) for p in pingers}


def _ok(results: dict[str, dict[str, dict]], ns: str, dst: str) -> bool:
    return bool(results.get(ns, {}).get(dst, {}).get("ok"))


def judge_pings(layout: Layout, report: Report, results: dict[str, dict[str, dict]],
                converged: dict[str, float] | None = None) -> None:
    """Reach and cross-ping verdicts from `results` (ns -> target -> outcome); `converged`
    gives, for slices that needed retries, after how many seconds all their pairs answered."""
    def outcome(info: SliverInfo, dst: str) -> dict:
        return (results.get(info.ns) or {}).get(dst, {"ok": False, "error": "no result from the probe"})

    def pair(s: SliverInfo, dst: str) -> dict:
        return {"from": s.node, "to": layout.owner[dst].node, "src": s.loopback, "dst": dst}

    for name in layout.slices():
        members = layout.members(name)
        mode = layout.routing_of(name)
        if mode == "none":
            report.reach.append(Reach(name, 0, [], routing=mode, checked=False))
            continue
        expected = {s.ns: set(layout.reach_targets(s)) for s in members}
        failures = [{**pair(s, dst), "error": outcome(s, dst).get("error", "")}
                    for s in members for dst in layout.reach_targets(s) if not outcome(s, dst)["ok"]]
        cut_off = [pair(s, dst) for s in members for dst in layout.loopbacks(name)
                   if dst != s.loopback and dst not in expected[s.ns]]
        report.reach.append(Reach(name, sum(map(len, expected.values())), failures, routing=mode,
                                  cut_off=cut_off, converged_after=(converged or {}).get(name)))
    for source, target in layout.sharing_pairs():
        tried = [(s, dst) for s in layout.members(source) for dst in layout.loopbacks(target)]
        answered = [{"from": s.node, "src": s.loopback, "dst": dst}
                    for s, dst in tried if outcome(s, dst)["ok"]]
        report.cross.append(CrossPing(source, target, len(tried), answered))


def egress_phase(plan: Plan, layout: Layout, report: Report, timeout: float, converge: float) -> None:
    """Every sliver of a slice with egress reaches the Internet host, as the slice's user.
    Right after `up` the BGP sessions may still be converging: slivers that fail are tried
    again until `converge` seconds have passed. A sliver that failed links cut off from
    every egress sliver of its slice cannot get out: it is not tried, and reported."""
    if not plan.internet_host:
        return
    cut_off = egress_cut_off(plan, layout)
    pending = [info for info in layout.slivers if info.slice in plan.egress_slices and info.ns not in cut_off]
    failures: dict[str, dict] = {}
    give_up = time.monotonic() + converge
    while pending:
        with Probes() as probes:
            pingers = [probes.start(info, ["ping", "--targets", plan.internet_host, "--timeout", str(timeout)])
                       for info in pending]
            collect(pingers, time.monotonic() + timeout + STARTUP_GRACE)
            results = {p.info.ns: (p.result() or {}).get("results", {}).get(plan.internet_host, {}) for p in pingers}
        failures = {ns: r for ns, r in results.items() if not r.get("ok")}
        pending = [info for info in pending if info.ns in failures]
        if not pending or time.monotonic() > give_up:
            break
        time.sleep(1.0)
    judge_egress(plan, layout, report, failures, cut_off)


def egress_cut_off(plan: Plan, layout: Layout) -> set[str]:
    """Slivers (ns) of egress slices with no path left to any of their slice's egress
    slivers (those running ExaBGP) once failed links are taken out."""
    found = set()
    for name in plan.egress_slices:
        egress_nodes = {r.node for r in plan.resources if r.KIND == "daemon" and r.name == f"exabgp-{name}-{r.node}"}
        group = layout.reach_groups(name)
        live = {group[node] for node in egress_nodes if node in group}
        found |= {s.ns for s in layout.members(name) if group[s.node] not in live}
    return found


def judge_egress(plan: Plan, layout: Layout, report: Report, failures: dict[str, dict], cut_off: set[str]) -> None:
    for name in plan.egress_slices:
        members = layout.members(name)
        failed = [{"from": s.node, "error": failures[s.ns].get("error", "no reply")}
                  for s in members if s.ns in failures]
        report.egress.append(EgressReach(name, plan.internet_host, len(members) - sum(s.ns in cut_off for s in members),
                                         failed, cut_off=[s.node for s in members if s.ns in cut_off]))


# --- phase 3: isolation ------------------------------------------------------------------

def isolation_phase(layout: Layout, report: Report, timeout: float) -> None:
    marker = "vispd-" + secrets.token_hex(8)
    with Probes() as probes:
        sniffers = [probes.start(info, sniff_args(layout, info, marker, timeout + 2 * STARTUP_GRACE),
                                 as_root=True, stdin=True) for info in layout.slivers]
        wait_ready(sniffers, time.monotonic() + STARTUP_GRACE)
        sprayers = [probes.start(info, spray_args(layout, info, marker)) for info in layout.slivers]
        collect(sprayers, time.monotonic() + timeout + STARTUP_GRACE)
        time.sleep(SETTLE)
        for sniffer in sniffers:
            sniffer.proc.stdin.close()
        collect(sniffers, time.monotonic() + timeout + STARTUP_GRACE)
        report.errors += [p.error for p in (*sniffers, *sprayers) if p.result() is None]
        for sprayer in sprayers:
            _add_tally(report.spray.setdefault(sprayer.info.slice, _empty_tally()), sprayer.result())
            report.warnings += _tap_warnings(sprayer)
        captures = {s.info.ns: s.result() for s in sniffers}
    judge_isolation(layout, report, marker, captures)


def sniff_args(layout: Layout, info: SliverInfo, marker: str, max_seconds: float) -> list[str]:
    others = [name for name in layout.slices() if name != info.slice]
    return ["sniff", "--marker", marker,
            "--foreign-macs", ",".join(m for o in others for m in layout.macs(o)),
            "--foreign-ips", ",".join(a for o in others for a in layout.addresses(o)),
            "--max-seconds", str(max_seconds)]


def spray_args(layout: Layout, info: SliverInfo, marker: str) -> list[str]:
    unicast = [a for other in layout.sharing_with(info.slice) for a in layout.addresses(other)]
    taps = [f"{ifname}={ipaddress.ip_network(subnet).network_address + 2}"
            for ifname, mode, subnet in info.pseudo_devices if mode == "tap"]
    return ["spray", "--marker", marker, "--slice", info.slice, "--node", info.node,
            "--unicast", ",".join(unicast), "--controls", ",".join(layout.live_neighbours(info)),
            "--taps", ",".join(taps)]


def _tap_warnings(sprayer: Probe) -> list[str]:
    """A TAP the slice user could not attach to was not tested (nor can the slice use it)."""
    errors = (sprayer.result() or _empty_tally())["errors"]
    return [f"{sprayer.info.slice}@{sprayer.info.node} could not write frames into its TAP "
            f"({reason.split(': ', 1)[1]}): that path into the vISP was not tested"
            for reason in errors if reason.startswith("tap-attach")]


def _empty_tally() -> dict:
    return {"sent": {}, "refused": {}, "errors": {}}


def _add_tally(total: dict, tally: dict | None) -> None:
    for part in total:
        for key, count in (tally or _empty_tally())[part].items():
            total[part][key] = total[part].get(key, 0) + count


def judge_isolation(layout: Layout, report: Report, marker: str, captures: dict[str, dict | None]) -> None:
    leaks: dict[tuple[str, str], list[dict]] = {}
    seen: set[tuple[str, str, str]] = set()
    for info in layout.slivers:
        for frame in (captures.get(info.ns) or {}).get("frames", []):
            sender = _sender(layout, frame, marker)
            if sender["slice"] is not None and sender["slice"] != info.slice:
                leaks.setdefault((sender["slice"], info.slice), []).append(_leak(info, frame, sender))
            elif sender["kind"] == "control" and layout.owner.get(sender["detail"]) == info:
                seen.add((info.slice, sender["node"], sender["detail"]))
    missing = layout.expected_controls() - seen
    pairs = layout.sharing_pairs() + sorted(set(leaks) - set(layout.sharing_pairs()))
    for source, target in pairs:
        involved = {source, target}
        expected = [c for c in layout.expected_controls() if c[0] in involved]
        lost = sorted(c for c in missing if c[0] in involved)
        report.isolation.append(Isolation(
            source, target, leaks.get((source, target), []), len(expected) - len(lost), len(expected),
            [{"slice": c[0], "from": c[1], "to": layout.owner[c[2]].node, "dst": c[2]} for c in lost]))


def _sender(layout: Layout, frame: dict, marker: str) -> dict:
    """Who sent a captured frame: from its payload tag, else from its source MAC or address."""
    parts = (frame.get("tag") or "").split("|")
    if len(parts) == 5 and parts[0] == marker:
        return {"slice": parts[2], "kind": parts[1], "node": parts[3], "detail": parts[4]}
    owner = layout.slice_of_mac.get(frame["src_mac"]) or layout.slice_of_ip.get(frame["ip_src"])
    return {"slice": owner, "kind": None, "node": None, "detail": None}


def _leak(info: SliverInfo, frame: dict, sender: dict) -> dict:
    what = f"{sender['kind']} from {sender['slice']}@{sender['node']}" if sender["kind"] else \
        f"frame from {sender['slice']}"
    addresses = f", {frame['ip_src']} -> {frame['ip_dst']}" if frame["ip_src"] else ""
    text = (f"{info.slice}@{info.node} received {what} on {frame['if']} "
            f"({frame['src_mac']} -> {frame['dst_mac']}{addresses})")
    return {"at": info.ns, "frame": frame, "sender": sender, "text": text}


# --- entry point -------------------------------------------------------------------------

def run_checks(plan: Plan, timeout: float = 2.0, converge: float = 30.0) -> Report:
    """Run every check against the live slivers of `plan` (needs root). `converge` bounds
    how long OSPF slices and BGP egress are given to converge before a failure counts."""
    report = Report(plan.topology, failed_links=sorted(plan.failed_links))
    missing = [s.ns for s in plan.slivers if not netns.exists(s.ns)]
    if missing:
        report.errors += [f"sliver {ns} does not exist: run `vispd up {plan.topology}` first" for ns in missing]
        return report
    layout = Layout.of(plan)
    bgp_phase(plan, report, converge)
    ping_phase(layout, report, timeout, converge)
    egress_phase(plan, layout, report, timeout, converge)
    isolation_phase(layout, report, timeout)
    return report
