#!/usr/bin/env python3
"""Lab bgp-failover: what happens to traffic toward the Internet host while the primary
provider's BGP session drops and comes back? (README.md in this directory.)

    python3 labs/bgp-failover/run.py [--short] [--topology PATH] [--out DIR]

The topology is built in Mininet (vispd.labnet.Lab). A sliver whose nearest egress is the
primary provider pings the Internet host every 10 ms and pushes a rate-limited TCP flow
(iperf3) to it, while:
  * the sliver's route toward the Internet host is polled every 5 ms (netlink route
    lookup in its namespace: gateway and device),
  * the packet counters of every provider's access device (forward: echo requests and
    data entering the provider from the vISP) and of the Internet router's device toward
    every provider (return: packets leaving toward the vISP) are sampled every 20 ms.
Each cycle disables the vISP's session at the primary provider's BIRD (`birdc disable
vispd`: a real BGP Cease toward the border router of the primary's egress node, which holds
the vISP's one session with that provider and passes its routes to every slice egressing
there), holds it down, enables it again and waits until the route is back. Figures and a
plot go to the report directory.

I/O (root): builds the lab, measures, tears it down.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# Run as a script, Python puts this directory first on sys.path: the repository (vispd,
# dataplane) and labs/ (lablib) must be importable instead.
sys.path[0:1] = [REPO, os.path.dirname(HERE), HERE]

import lablib  # noqa: E402
from lablib import alive, say, wait_for  # noqa: E402
from compiler.providers.emulated import INTERNET  # noqa: E402
from compiler.daemons.bird import session_protocol  # noqa: E402
from vispd.labnet import Lab  # noqa: E402
from model.naming import lab_ns  # noqa: E402
from report_figures import figures, plot  # noqa: E402
from watchers import PROBE_INTERVAL, WARMUP, CounterSampler, RouteWatcher, owners  # noqa: E402


# One cycle per hold time (how long the session stays disabled). The holds once mattered:
# ExaBGP only connected out and its retries back off (1, 3, 6, 10, 15, 22, ... up to 60 s
# apart), so the session came back at its first retry after the enable (11 s after a 45 s
# hold). ExaBGP now also listens, so the provider's next 1-s retry brings it back; the
# three holds show the return no longer depends on the outage's length.
FULL = dict(holds=(2.0, 8.0, 45.0), baseline=5.0, after=5.0, iperf_rate="50M")
SHORT = dict(holds=(2.0,), baseline=2.0, after=2.0, iperf_rate="20M")




# -- what the plan says ---------------------------------------------------------------------
def egress_slice(plan, topo, wanted: str | None):
    """The slice to study: `wanted`, else the first with two or more providers."""
    for sl in topo.slices:
        if (wanted is None or sl.name == wanted) and len(sl.egress) >= 2:
            return sl
    raise SystemExit(f"no slice {'named ' + wanted + ' ' if wanted else ''}with two or more egress providers "
                     "in this topology: the lab needs a primary and a backup")


def provider_control_socket(plan, provider: str) -> str:
    """BIRD's control socket of a lab provider, from its Daemon's argv (`-s SOCK`)."""
    for r in plan.resources:
        if r.KIND == "daemon" and r.name == f"bird-{provider}":
            argv = list(r.argv)
            return argv[argv.index("-s") + 1]
    raise SystemExit(f"provider {provider} is not a BIRD router in this lab (lab-daemon: frr?): "
                     "this lab drops the session with birdc")


def provider_devices(plan, topo_name: str, provider: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """((provider ns, its device facing the vISP), (Internet ns, its device toward the
    provider)), read from the plan's veths."""
    pns, ins = lab_ns(topo_name, provider), lab_ns(topo_name, INTERNET)
    facing = toward = None
    for r in plan.resources:
        if r.KIND != "veth":
            continue
        if r.peer_ns == pns and r.ns != ins and r.ns != pns:
            facing = (pns, r.peer_ifname)
        if r.ns == pns and r.peer_ns == ins:
            toward = (ins, r.peer_ifname)
    if not facing or not toward:
        raise SystemExit(f"cannot find {provider}'s access and transit devices in the plan")
    return facing, toward


_CLIENT_LINE = re.compile(r"^\[\s*\d+\]\s+[\d.]+-([\d.]+)\s+sec\s+[\d.]+\s+\S*Bytes\s+[\d.]+\s+[KMG]?bits/sec\s+(\d+)\s")


def client_retransmits(iperf) -> list[tuple[float, int]]:
    """(monotonic time the interval line arrived, TCP retransmissions in it) from the
    iperf3 client's interval lines (the sender's `Retr` column)."""
    out = []
    for arrived, line in iperf.lines["client"]:
        if line.startswith("- - -"):
            break
        m = _CLIENT_LINE.match(line)
        if m:
            out.append((arrived, int(m.group(2))))
    return out


def birdc(sock: str, *command: str) -> str:
    return subprocess.run(["birdc", "-s", sock, *command], capture_output=True, text=True, timeout=30).stdout


def _up(session: dict) -> bool:
    return str(session.get("state", "")).lower() in ("up", "established")


def provider_session(statuses: list[dict], node: str, provider: str) -> dict:
    """The border router's session with a provider (at the provider's egress node)."""
    for status in statuses:
        if status.get("role") == "border" and status.get("node") == node:
            return status.get("neighbors", {}).get(provider, {})
    return {}


def slice_sessions(statuses: list[dict], slice_name: str) -> list[dict]:
    """The slice's speakers' sessions to the border routers of their egress nodes."""
    return [s.get("neighbors", {}).get("border", {}) for s in statuses
            if s.get("role") != "border" and s.get("slice") == slice_name]


def sessions_up(lab: Lab, slice_name: str, provider_nodes: dict[str, str]) -> bool:
    """Every provider's session with its border is up, and so is every session the slice's
    speakers hold with the borders."""
    statuses = lab.bgp()
    slices = slice_sessions(statuses, slice_name)
    return (all(_up(provider_session(statuses, node, p)) for p, node in provider_nodes.items())
            and len(slices) >= len(set(provider_nodes.values())) and all(_up(s) for s in slices))


# -- the scenario -------------------------------------------------------------------------------
def choose_node(sl, topo, wanted: str | None) -> str:
    """The sliver's node: `wanted`, else new-york (Abilene: its nearest egress is
    washington, one hop away, and the backup path crosses the continent), else the slice's
    first node without an egress of its own."""
    nodes = topo.slice_nodes(sl)
    if wanted:
        if wanted not in nodes:
            raise SystemExit(f"slice {sl.name} has no sliver on {wanted}")
        return wanted
    egress_nodes = {p.node for p in topo.providers if p.name in sl.egress}
    if "new-york" in nodes and "new-york" not in egress_nodes:
        return "new-york"
    return next((n for n in nodes if n not in egress_nodes), nodes[0])


class Run:
    """Everything observed during one run (monotonic seconds)."""

    def __init__(self, lab: Lab, args, settings: dict):
        self.lab, self.args, self.settings = lab, args, settings
        self.topo, self.plan = lab.topo, lab.plan
        self.slice = egress_slice(self.plan, self.topo, args.slice)
        self.node = choose_node(self.slice, self.topo, args.node)
        self.host = lab.sliver(self.slice.name, self.node)
        self.target = self.plan.internet_host or "203.0.113.10"
        self.providers = list(self.slice.egress)
        self.provider_nodes = {p: self.topo.provider(p).node for p in self.providers}
        self.sockets = {p: provider_control_socket(self.plan, p) for p in self.providers}
        self.protocol = session_protocol()   # the provider's one session with the vISP's border
        devices = {}
        for p in self.providers:
            (pns, facing), (ins, toward) = provider_devices(self.plan, self.topo.name, p)
            devices[f"fwd:{p}"] = (pns, facing, "rx")      # from the vISP into the provider
            devices[f"ret:{p}"] = (ins, toward, "tx")      # from the Internet router to the provider
        self.devices = devices
        self.route = self.counters = self.pinger = self.iperf = None
        self.events: list[tuple[float, str]] = []          # (time, label)
        self.cycles: list[dict] = []
        self.t0 = 0.0
        self.primary = self.backup = None
        self.pids: list[int] = []

    def event(self, label: str, when: float | None = None) -> float:
        when = time.monotonic() if when is None else when
        self.events.append((when, label))
        say(f"  {when - self.t0:7.3f} s  {label}")
        return when

    # -- phases -----------------------------------------------------------------------------
    def ready(self, timeout: float = 60.0) -> None:
        started = time.monotonic()
        if not wait_for(lambda: sessions_up(self.lab, self.slice.name, self.provider_nodes), timeout, 0.1):
            raise RuntimeError(f"BGP sessions of {self.slice.name} not established after {timeout:.0f} s: "
                               f"{self.lab.bgp()}")
        reach = lambda: " 0% packet loss" in self.lab.cmd(self.host, ["ping", "-c", "1", "-W", "1", self.target])
        if not wait_for(reach, timeout, 0.2):
            raise RuntimeError(f"{self.host} does not reach {self.target}")
        self.ready_s = time.monotonic() - started
        say(f"ready: sessions up and {self.host} reaches {self.target} ({self.ready_s:.1f} s after the build)")

    def start_observers(self) -> None:
        slivers = {self.lab.sliver(self.slice.name, n): None for n in self.topo.slice_nodes(self.slice)}
        self.route = RouteWatcher({h: self.lab.namespace(h) for h in slivers}, self.host, self.target)
        self.owner = owners(self.plan)
        self.counters = CounterSampler(self.devices)
        self.route.start()
        self.counters.start()
        s = self.settings
        expected = s["baseline"] + sum(h + s["after"] + 5 for h in s["holds"]) + 60
        self.iperf = None
        if s["iperf_rate"]:
            # 16 KB writes: with iperf3's default 128 KB a 0.1 s interval at 20-50 Mbit/s
            # holds one write more or less, and the rate would jump by half
            self.iperf = lablib.Iperf(self.lab, "internet", self.host, self.target, expected,
                                      bitrate=s["iperf_rate"], interval=0.1, extra=("-l", "16K")).start()
            self.pids += [self.iperf.server.pid, self.iperf.client.pid]
        self.pinger = lablib.Pinger(self.lab, self.host, self.target, PROBE_INTERVAL).start()
        self.pids.append(self.pinger.proc.pid)
        time.sleep(WARMUP)   # neighbour caches, the flow's slow start: not part of the baseline
        if self.iperf is not None:
            self.check_flow()
        self.t0 = time.monotonic()
        self.event("probes started")

    def check_flow(self) -> None:
        """The TCP flow must be running and delivering, else the report would be wrong."""
        running = self.iperf.client.poll() is None and self.iperf.server.poll() is None
        delivered = [iv for iv in self.iperf.intervals() if iv.bps > 0]
        if not (running and delivered):
            said = [line for _, line in self.iperf.lines["client"][-6:] + self.iperf.lines["server"][-6:]]
            raise RuntimeError("the iperf3 flow is not running: " + " | ".join(said))

    def stop_observers(self) -> None:
        for part in (self.pinger, self.iperf, self.route, self.counters):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()

    def forward_provider(self, start: float, end: float) -> tuple[str | None, dict]:
        grown = self.counters.grown(start, end)
        fwd = {p: grown[f"fwd:{p}"] for p in self.providers}
        best = max(fwd, key=fwd.get)
        return (best if fwd[best] > 0 else None), fwd

    def settle(self, seconds: float) -> None:
        time.sleep(seconds)

    def cycle(self, index: int) -> dict:
        s = self.settings
        start = time.monotonic()
        self.settle(s["baseline"] if index == 0 else 0.5)
        before_route = self.route.current()
        if self.primary is None:
            self.primary, fwd = self.forward_provider(start, time.monotonic())
            if self.primary is None:
                raise RuntimeError(f"no traffic through any provider before the drop (bytes): {fwd}")
            others = [p for p in self.providers if p != self.primary]
            self.backup = others[0] if len(others) == 1 else None
            say(f"primary: {self.primary} (bytes from the vISP in the baseline: {fwd}); "
                f"route to {self.target}: via {before_route[0]} dev {before_route[1]}")
        sock = self.sockets[self.primary]
        drop = self.event(f"disable {self.protocol} at {self.primary}")
        said = birdc(sock, "disable", self.protocol)
        if "disabled" not in said:
            raise RuntimeError(f"birdc disable failed: {said.strip()}")
        moved = wait_for(lambda: self.route.first_change_after(drop, away_from=before_route), 15, 0.005)
        if moved:
            self.event(f"route moved: via {self.route.at(moved)[0]} dev {self.route.at(moved)[1]}", moved)
        self.settle(s["holds"][index])
        during_route = self.route.current()
        enable = self.event(f"enable {self.protocol} at {self.primary}")
        said = birdc(sock, "enable", self.protocol)
        if "enabled" not in said:
            raise RuntimeError(f"birdc enable failed: {said.strip()}")
        back = wait_for(lambda: self.route.first_change_after(enable, to=before_route), 30, 0.005)
        if back:
            self.event(f"route back: via {before_route[0]} dev {before_route[1]}", back)
        self.settle(s["after"])
        end = time.monotonic()
        since = provider_session(self.lab.bgp(), self.provider_nodes[self.primary], self.primary).get("since")
        established = (since - self.wall_offset) if since else None
        if established is not None and established < enable:
            established = None   # not the session that came back after this enable
        return {"hold": s["holds"][index], "start": start, "drop": drop, "moved": moved, "enable": enable, "back": back,
                "established": established, "end": end, "route_before": before_route,
                "route_during": during_route, "route_after": self.route.current()}

    def run(self) -> None:
        self.wall_offset = lablib.wall_minus_monotonic()
        self.ready()
        self.start_observers()
        try:
            holds = self.settings["holds"]
            for i in range(len(holds)):
                say(f"cycle {i + 1}/{len(holds)}: the session stays down {holds[i]:g} s")
                self.cycles.append(self.cycle(i))
            if self.iperf is not None and self.iperf.client.poll() is not None:
                said = [line for _, line in self.iperf.lines["client"][-4:]]
                raise RuntimeError(f"the iperf3 flow ended during cycle {i + 1}: {' | '.join(said)}")
        finally:
            self.stop_observers()
        self.samples = self.pinger.trace()
        self.intervals = self.iperf.intervals() if self.iperf else []
        self.retransmits = client_retransmits(self.iperf) if self.iperf else []
        with self.route.lock:
            self.route_changes = list(self.route.changes)


# -- main ---------------------------------------------------------------------------------------
def extra_args(parser) -> None:
    parser.set_defaults(topology=os.path.join(REPO, "topologies", "abilene.yaml"))
    parser.add_argument("--slice", help="the slice (default: the first with two or more providers)")
    parser.add_argument("--node", help="the sliver's node (default: new-york, else the first without an egress)")
    parser.add_argument("--holds", help="comma-separated seconds the session stays down, one cycle each "
                        "(default: 2,8,45; --short: 2)")
    parser.add_argument("--no-iperf", action="store_true", help="ping only, no TCP flow")



def main(argv: list[str] | None = None) -> int:
    args = lablib.parse_args("bgp-failover", __doc__, argv, extra=extra_args)
    lablib.require_root()
    settings = dict(SHORT if args.short else FULL)
    if args.holds:
        settings["holds"] = tuple(float(h) for h in args.holds.split(","))
    if args.no_iperf:
        settings["iperf_rate"] = None
    lab = lablib.open_lab(args.topology, args.backend)
    name = lab.topo.name
    say(f"building {name} ({args.backend}) from {args.topology}")
    run = None
    try:
        lab.start()
        say(f"built in {lab.times.total:.1f} s")
        run = Run(lab, args, settings)
        say(f"slice {run.slice.name}, sliver {run.host}, providers {', '.join(run.providers)}")
        run.run()
        figs = figures(run, "short" if args.short else "full")
        fig = plot(run, figs)
    finally:
        if run is not None:
            run.stop_observers()
        lab.stop()
    figs["leftovers"] = {"namespaces": lablib.namespaces_of(name),
                         "processes": [pid for pid in run.pids if alive(pid)]}
    paths = lablib.write_report(args.out, figs, fig)
    say(f"moved to backup: {figs['moved_to_backup']}, returned to primary: {figs['returned_to_primary']}; "
        f"drop: route moved {figs['drop_route_moved_ms']} ms, loss window {figs['drop_loss_window_ms']} ms; "
        f"return: route moved {figs['return_route_moved_ms']} ms after the enable, "
        f"loss window {figs['return_loss_window_ms']} ms")
    say(f"report: {paths['figures']}, {paths['plot']}")
    ok = figs["moved_to_backup"] and figs["returned_to_primary"] and not any(figs["leftovers"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
