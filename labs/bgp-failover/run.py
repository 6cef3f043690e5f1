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
Each cycle disables the slice's session at the primary provider's BIRD (`birdc disable
slice_SLICE`: a real BGP Cease toward the vISP's ExaBGP), holds it down, enables it again
and waits until the route is back. Figures and a plot go to the report directory.
"""
from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# Run as a script, Python puts this directory first on sys.path: the repository (vispd,
# dataplane) and labs/ (lablib) must be importable instead.
sys.path[0:1] = [REPO, os.path.dirname(HERE)]

import lablib  # noqa: E402
from lablib import alive, say, wait_for  # noqa: E402
from dataplane import netns  # noqa: E402
from vispd.egress import INTERNET  # noqa: E402
from vispd.lab import session_protocol  # noqa: E402
from vispd.labnet import Lab  # noqa: E402
from vispd.naming import lab_ns  # noqa: E402

PROBE_INTERVAL = 0.01   # s between echo requests
ROUTE_POLL = 0.005      # s between route look-ups in the sliver
COUNTER_POLL = 0.02     # s between counter samples
WARMUP = 1.0            # s of traffic before the baseline starts
SWITCH = 0.5            # s after a route change still counted as part of the switch

# One cycle per hold time (how long the session stays disabled). The return depends on it:
# ExaBGP only connects out, and after a session loss it retries at 1, 3, 6, 10, 15, 22, 31,
# 42, 56, 73 ... s (its delay grows as int(1 + 1.2 x delay), up to 60 s), so the session
# comes back at its first retry after the enable. The holds sit between retries (2 -> 3,
# 8 -> 10, 45 -> 56) so that each cycle waits a known part of an interval, not a race.
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


# -- observers ---------------------------------------------------------------------------------
class RouteWatcher(threading.Thread):
    """Polls the kernel's route to `target` in several namespaces (RTM_GETROUTE: the route
    a packet would take now) and records every change per host as (time, gateway, device).
    `main` is the sliver under study; the others (the slice's other slivers) show how the
    whole vISP converges and whether paths loop on the way.

    The netlink sockets are opened by this thread while it is inside each namespace, and
    used only by it: pyroute2's synchronous IPRoute talks from the thread that calls it,
    so a socket handed over from another thread would answer for this thread's namespace."""

    def __init__(self, namespaces: dict[str, str], main: str, target: str, interval: float = ROUTE_POLL):
        super().__init__(name="route-watcher", daemon=True)
        self.namespaces, self.main, self.target, self.interval = namespaces, main, target, interval
        self.changes: dict[str, list[tuple[float, str | None, str | None]]] = {h: [] for h in namespaces}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.watching = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> None:
        super().start()
        self.watching.wait(10)
        if self.error is not None:
            raise RuntimeError(f"cannot watch routes: {self.error}")

    def run(self) -> None:
        from pyroute2 import IPRoute

        sockets = {}
        try:
            for host, ns in self.namespaces.items():
                with netns.entered(ns):
                    ipr = IPRoute()
                sockets[host] = (ipr, {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()})
            self._watch(sockets)
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self.error = exc
            self.watching.set()
        finally:
            for ipr, _ in sockets.values():
                with contextlib.suppress(Exception):
                    ipr.close()

    def _lookup(self, ipr, names) -> tuple[str | None, str | None]:
        try:
            msg = ipr.route("get", dst=self.target)[0]
        except Exception:  # noqa: BLE001 - no route: ENETUNREACH
            return None, None
        oif = msg.get_attr("RTA_OIF")
        return msg.get_attr("RTA_GATEWAY"), names.get(oif, str(oif))

    def _watch(self, sockets) -> None:
        last = {host: ("?", "?") for host in sockets}
        order = [self.main] + [h for h in sockets if h != self.main]
        while not self.stopping.is_set():
            for host in order:
                now = time.monotonic()
                current = self._lookup(*sockets[host])
                if current != last[host]:
                    with self.lock:
                        self.changes[host].append((now, *current))
                    last[host] = current
            self.watching.set()
            self.stopping.wait(self.interval)

    def current(self, host: str | None = None) -> tuple[str | None, str | None]:
        with self.lock:
            changes = self.changes[host or self.main]
            return changes[-1][1:] if changes else (None, None)

    def first_change_after(self, after: float, away_from=None, to=None, host: str | None = None) -> float | None:
        with self.lock:
            for t, gw, dev in self.changes[host or self.main]:
                if t >= after and ((away_from is not None and (gw, dev) != away_from)
                                   or (to is not None and (gw, dev) == to)):
                    return t
        return None

    def last_change_between(self, start: float, end: float) -> tuple[float | None, str | None]:
        """(time, host) of the last route change of any watched host in [start, end]."""
        with self.lock:
            found = [(t, host) for host, changes in self.changes.items() for t, _, _ in changes if start <= t <= end]
        return max(found) if found else (None, None)

    def at(self, when: float, host: str | None = None) -> tuple[str | None, str | None]:
        with self.lock:
            route = (None, None)
            for t, gw, dev in self.changes[host or self.main]:
                if t > when:
                    break
                route = (gw, dev)
            return route

    def change_times(self, start: float, end: float) -> list[float]:
        with self.lock:
            return sorted(t for changes in self.changes.values() for t, _, _ in changes if start <= t <= end)

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=2)


def owners(plan) -> dict[str, str]:
    """Interface address -> the readable host that holds it (slivers and lab hosts)."""
    from vispd.naming import host_names

    names = host_names(plan.namespaces())
    return {r.cidr.split("/")[0]: names.get(r.ns, r.ns) for r in plan.resources
            if r.KIND == "address" and r.ifname != "lo"}


def forward_path(watcher: RouteWatcher, owner: dict[str, str], when: float, limit: int = 32) -> tuple[list[str], str]:
    """The hosts a packet from the main sliver to the target crosses at time `when`,
    following each watched sliver's route: (path, how it ends: 'egress' when it leaves the
    vISP at a provider, 'loop', 'no route', or 'unknown' at a host not watched)."""
    path = [watcher.main]
    while len(path) < limit:
        gateway, _ = watcher.at(when, path[-1])
        if gateway is None:
            return path, "no route"
        nxt = owner.get(gateway)
        if nxt is None:
            return path, "unknown"
        if nxt in path:
            return path + [nxt], "loop"
        path.append(nxt)
        if nxt not in watcher.namespaces:
            return path, "egress"
    return path, "loop"


def path_trouble(watcher: RouteWatcher, owner: dict[str, str], start: float, end: float) -> dict:
    """While routes changed in [start, end]: how long the main sliver's path looped or
    ended without a route (evaluated between consecutive route changes anywhere)."""
    times = [start] + watcher.change_times(start, end) + [end]
    trouble = {"loop": 0.0, "no route": 0.0, "unknown": 0.0}
    loops = []
    for a, b in zip(times, times[1:]):
        path, how = forward_path(watcher, owner, a)
        if how != "egress" and b > a:
            trouble[how] += b - a
            if how == "loop" and path not in loops:
                loops.append(path)
    return {"loop_ms": ms(trouble["loop"]), "no_route_ms": ms(trouble["no route"]), "loops": loops[:3]}


class CounterSampler(threading.Thread):
    """Samples packet counters of devices in several namespaces. Each namespace's
    /proc/thread-self/net/dev is opened inside it once; every read regenerates it for
    that namespace (no fork, no netlink socket per sample)."""

    def __init__(self, devices: dict[str, tuple[str, str, str]], interval: float = COUNTER_POLL):
        """devices: {label: (namespace, ifname, 'rx' or 'tx')}; counts bytes (packet counts
        would say little: TCP crosses veths as GSO super-packets of up to 64 KB)."""
        super().__init__(name="counters", daemon=True)
        self.devices, self.interval = devices, interval
        self.fds: dict[str, int] = {}
        for ns in {ns for ns, _, _ in devices.values()}:
            with netns.entered(ns):
                self.fds[ns] = os.open("/proc/thread-self/net/dev", os.O_RDONLY)
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def _read(self, fd: int) -> dict[str, tuple[int, int]]:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        result = {}
        for line in b"".join(chunks).decode().splitlines()[2:]:
            name, _, rest = line.partition(":")
            fields = rest.split()
            result[name.strip()] = (int(fields[0]), int(fields[8]))   # rx bytes, tx bytes
        return result

    def sample(self) -> dict[str, int]:
        tables = {ns: self._read(fd) for ns, fd in self.fds.items()}
        values = {}
        for label, (ns, ifname, direction) in self.devices.items():
            rx, tx = tables[ns].get(ifname, (0, 0))
            values[label] = rx if direction == "rx" else tx
        return values

    def run(self) -> None:
        while not self.stopping.is_set():
            now = time.monotonic()
            values = self.sample()
            with self.lock:
                self.samples.append((now, values))
            self.stopping.wait(self.interval)

    def grown(self, start: float, end: float) -> dict[str, int]:
        """Bytes counted per device between `start` and `end`."""
        with self.lock:
            inside = [(t, v) for t, v in self.samples if start <= t <= end]
        if len(inside) < 2:
            return {label: 0 for label in self.devices}
        return {label: inside[-1][1][label] - inside[0][1][label] for label in self.devices}

    def rates(self, start: float, width: float = 0.1) -> tuple[list[float], dict[str, list[float]]]:
        """(bin mid-times, {label: bit/s}) in bins of `width` s from `start` (the counter
        at each bin edge is the last sample taken before it)."""
        with self.lock:
            samples = list(self.samples)
        times, rates = [], {label: [] for label in self.devices}
        if len(samples) < 2:
            return times, rates
        edges, edge = [], start
        while edge <= samples[-1][0]:
            edges.append(edge)
            edge += width
        values, i = [], 0
        for edge in edges:
            while i + 1 < len(samples) and samples[i + 1][0] <= edge:
                i += 1
            values.append(samples[i])
        for (t0, v0), (t1, v1) in zip(values, values[1:]):
            if t1 <= t0:
                continue
            times.append((t0 + t1) / 2)
            for label in self.devices:
                rates[label].append(8 * (v1[label] - v0[label]) / (t1 - t0))
        return times, rates

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=2)
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


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


def neighbor_status(lab: Lab, slice_name: str, provider: str) -> dict:
    for status in lab.bgp():
        if status.get("slice") == slice_name:
            neighbor = status.get("neighbors", {}).get(provider)
            if neighbor:
                return neighbor
    return {}


def sessions_up(lab: Lab, slice_name: str, providers: list[str]) -> bool:
    return all(str(neighbor_status(lab, slice_name, p).get("state", "")).lower() in ("up", "established")
               for p in providers)


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
        self.sockets = {p: provider_control_socket(self.plan, p) for p in self.providers}
        self.protocol = session_protocol(self.slice.name)
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
        if not wait_for(lambda: sessions_up(self.lab, self.slice.name, self.providers), timeout, 0.1):
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
        since = neighbor_status(self.lab, self.slice.name, self.primary).get("since")
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


# -- figures ------------------------------------------------------------------------------------
def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def losses(trace, start: float, end: float) -> tuple[int, float]:
    """(requests sent in [start, end] that got no reply, the longest stretch of time the
    path was broken there: from the first request of a run of unanswered ones to the send
    time of the answered request after it, so to within one probe spacing)."""
    lost, longest, run_from = 0, 0.0, None
    for s in trace:
        if s.sent < start:
            continue
        if s.sent > end and run_from is None:
            break
        if not s.answered:
            if s.sent <= end:
                lost += 1
            if run_from is None:
                run_from = s.sent
        elif run_from is not None:
            longest = max(longest, s.sent - run_from)
            run_from = None
    return lost, longest


def lost_at(trace, event: float, start: float, end: float, limit: int = 20) -> list:
    """Send times (ms from the event) of the unanswered requests sent in [start, end];
    `[t, 'unsent']` for one that could not be sent (no route in the sliver)."""
    out = []
    for s in trace:
        if start <= s.sent <= end and not s.answered:
            when = round((s.sent - event) * 1000, 1)
            out.append([when, "unsent"] if s.error is not None else when)
    return out[:limit]


def tcp_around(r: Run, event: float, baseline_from: float, span: float = 1.0) -> dict:
    """The TCP flow around an event: the receiver's median rate in the baseline, its mean
    rate over the `span` s after the event, and the sender's retransmissions then."""
    base = lablib.rate_between(r.intervals, baseline_from, event)
    after = lablib.rate_between(r.intervals, event, event + span)
    return {
        "baseline_mbps": round(statistics.median(base) / 1e6, 2) if base else None,
        f"mean_mbps_{span:g}s_after": round(statistics.mean(after) / 1e6, 2) if after else None,
        f"min_mbps_{span:g}s_after": round(min(after) / 1e6, 2) if after else None,
        f"retransmits_{span:g}s_after": sum(n for t, n in r.retransmits if event <= t <= event + span),
    }


def phase_path(r: Run, start: float, end: float, route) -> dict:
    grown = r.counters.grown(start, end)
    fwd = {p: grown[f"fwd:{p}"] for p in r.providers}
    ret = {p: grown[f"ret:{p}"] for p in r.providers}
    ttls = [s.ttl for s in r.samples if start <= s.sent <= end and s.answered]
    rtts = [s.rtt_ms for s in r.samples if start <= s.sent <= end and s.answered]
    tput = lablib.rate_between(r.intervals, start, end)
    return {
        "window_s": [round(start - r.t0, 3), round(end - r.t0, 3)],
        "route": {"via": route[0], "dev": route[1]},
        "forward_provider": max(fwd, key=fwd.get) if max(fwd.values()) > 0 else None,
        "return_provider": max(ret, key=ret.get) if max(ret.values()) > 0 else None,
        "forward_bytes": fwd,
        "return_bytes": ret,
        "reply_ttl": statistics.mode(ttls) if ttls else None,
        "reply_ttls": {str(t): ttls.count(t) for t in sorted(set(ttls))},
        "rtt_ms_median": round(statistics.median(rtts), 3) if rtts else None,
        "throughput_mbps_median": round(statistics.median(tput) / 1e6, 2) if tput else None,
    }


def cycle_figures(r: Run, c: dict, step: float) -> dict:
    margin = 0.3   # s after a route change before the path is called settled
    before = phase_path(r, c["start"], c["drop"], c["route_before"])
    during = phase_path(r, (c["moved"] or c["drop"]) + margin, c["enable"], c["route_during"])
    after = phase_path(r, (c["back"] or c["enable"]) + margin, c["end"], c["route_after"])
    before["hosts"] = forward_path(r.route, r.owner, c["drop"] - 0.05)[0]
    during["hosts"] = forward_path(r.route, r.owner, c["enable"] - 0.05)[0]
    after["hosts"] = forward_path(r.route, r.owner, c["end"])[0]
    drop_end = (c["moved"] or c["enable"]) + SWITCH
    back_end = (c["back"] or c["end"]) + SWITCH
    drop_last = r.route.last_change_between(c["drop"], min(drop_end, c["enable"]))
    back_last = r.route.last_change_between(c["enable"], min(back_end, c["end"]))
    drop_ev = lablib.event_figures(r.samples, c["drop"], step, ttl=during["reply_ttl"])
    back_ev = lablib.event_figures(r.samples, c["enable"], step, ttl=before["reply_ttl"])
    drop_lost, drop_window = losses(r.samples, c["drop"] - 0.1, (c["moved"] or c["enable"]) + SWITCH)
    back_lost, back_window = losses(r.samples, c["enable"] - 0.1, (c["back"] or c["end"]) + SWITCH)
    out = {
        "hold_s": c["hold"],
        "drop": {
            "route_moved_ms": ms(c["moved"] - c["drop"]) if c["moved"] else None,
            "all_slivers_moved_ms": ms(drop_last[0] - c["drop"]) if drop_last[0] else None,
            "last_sliver_moved": drop_last[1],
            **path_trouble(r.route, r.owner, c["drop"], drop_end),
            "lost": drop_lost,
            "loss_window_ms": ms(drop_window),
            "lost_probes_sent_ms": lost_at(r.samples, c["drop"], c["drop"] - 0.1, (c["moved"] or c["enable"]) + SWITCH),
            "first_reply_on_backup_path_ms": drop_ev["reconverge_ms"],
        },
        "return": {
            "session_established_ms": ms(c["established"] - c["enable"]) if c["established"] else None,
            "manager_lag_ms": ms(c["back"] - c["established"]) if c["back"] and c["established"] else None,
            "route_moved_ms": ms(c["back"] - c["enable"]) if c["back"] else None,
            "all_slivers_moved_ms": ms(back_last[0] - c["enable"]) if back_last[0] else None,
            "last_sliver_moved": back_last[1],
            **path_trouble(r.route, r.owner, c["enable"], back_end),
            "lost": back_lost,
            "loss_window_ms": ms(back_window),
            "lost_probes_sent_ms": lost_at(r.samples, c["enable"], c["enable"] - 0.1, (c["back"] or c["end"]) + SWITCH),
            "first_reply_on_primary_path_ms": back_ev["reconverge_ms"],
        },
        "path": {"before": before, "during": during, "after": after},
    }
    if r.intervals:
        out["drop"]["tcp"] = tcp_around(r, c["drop"], c["start"])
        out["return"]["tcp"] = tcp_around(r, c["enable"], (c["moved"] or c["drop"]) + margin)
    steady = [(c["start"], c["drop"] - 0.1), ((c["moved"] or c["drop"]) + SWITCH, c["enable"] - 0.1),
              ((c["back"] or c["enable"]) + SWITCH, c["end"])]
    out["lost_outside_switches"] = sum(losses(r.samples, a, b)[0] for a, b in steady if b > a)
    out["moved_to_backup"] = bool(c["moved"]) and during["forward_provider"] not in (None, r.primary)
    out["returned_to_primary"] = (bool(c["back"]) and after["forward_provider"] == r.primary
                                  and after["route"] == before["route"])
    return out


def figures(r: Run, mode: str) -> dict:
    step = lablib.spacing(r.samples, PROBE_INTERVAL)
    cycles = [cycle_figures(r, c, step) for c in r.cycles]
    first = cycles[0] if cycles else {}

    def med(part, key):
        return lablib.median([c[part].get(key) for c in cycles])

    def worst(part, key):
        values = [c[part].get(key) for c in cycles if c[part].get(key) is not None]
        return max(values) if values else None

    backup = r.backup or (first.get("path", {}).get("during", {}).get("forward_provider"))
    return {
        "lab": "bgp-failover",
        "mode": mode,
        "topology": r.topo.name,
        "slice": r.slice.name,
        "sliver": r.host,
        "target": r.target,
        "primary": r.primary,
        "backup": backup,
        "probe_interval_ms": PROBE_INTERVAL * 1000,
        "probe_spacing_ms": round(step * 1000, 3),
        "iperf3_bitrate": r.settings["iperf_rate"] or None,
        "cycles": cycles,
        "moved_to_backup": bool(cycles) and all(c["moved_to_backup"] for c in cycles),
        "returned_to_primary": bool(cycles) and all(c["returned_to_primary"] for c in cycles),
        "drop_route_moved_ms": med("drop", "route_moved_ms"),
        "drop_loss_window_ms": med("drop", "loss_window_ms"),
        "drop_loss_window_ms_max": worst("drop", "loss_window_ms"),
        "drop_lost": [c["drop"]["lost"] for c in cycles],
        "return_session_established_ms": med("return", "session_established_ms"),
        "return_route_moved_ms": med("return", "route_moved_ms"),
        "return_manager_lag_ms": med("return", "manager_lag_ms"),
        "return_by_hold_s": {f"{c['hold_s']:g}": {k: c["return"][k] for k in
                                                 ("session_established_ms", "route_moved_ms", "loss_window_ms")}
                             for c in cycles},
        "return_loss_window_ms": med("return", "loss_window_ms"),
        "return_loss_window_ms_max": worst("return", "loss_window_ms"),
        "return_lost": [c["return"]["lost"] for c in cycles],
        "path": first.get("path"),
        "rtt_ms_median": {phase: lablib.median([c["path"][phase]["rtt_ms_median"] for c in cycles])
                          for phase in ("before", "during", "after")},
        "throughput_mbps_median": {phase: lablib.median([c["path"][phase]["throughput_mbps_median"] for c in cycles])
                                   for phase in ("before", "during", "after")},
        "lost_outside_switches": sum(c["lost_outside_switches"] for c in cycles),
        "events_s": [[round(t - r.t0, 4), label] for t, label in r.events],
        "ready_after_build_s": round(r.ready_s, 2),
        "build_s": round(r.lab.times.total, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# -- plot ---------------------------------------------------------------------------------------
def plot(r: Run, figs: dict):
    """Overview of the whole run (bytes per provider both ways, the TCP flow), then, per
    cycle, the probes zoomed in around the drop and around the return."""
    plt = lablib.pyplot()
    cycles = r.cycles
    n = max(1, len(cycles))
    overview = 3 if r.intervals else 2
    heights = [1.2, 0.8, 0.8][:overview] + [1.3, 1.3]
    fig = plt.figure(figsize=(max(12, 4.5 * n), 2.3 * sum(heights) + 0.5))
    grid = fig.add_gridspec(len(heights), n, height_ratios=heights)
    t0 = r.t0
    colour = {p: c for p, c in zip(r.providers, ["tab:blue", "tab:purple", "tab:brown", "tab:gray"])}
    backup = figs.get("backup") or "backup"
    ttl_primary = (figs.get("path") or {}).get("before", {}).get("reply_ttl")

    # -- overview ---------------------------------------------------------------------------
    times, rates = r.counters.rates(t0 - WARMUP)
    xs = [t - t0 for t in times]
    axes = [fig.add_subplot(grid[0, :])]
    axes += [fig.add_subplot(grid[i, :], sharex=axes[0]) for i in range(1, overview)]
    for ax, key, what in ((axes[0], "fwd", "vISP -> provider\n(Mbit/s)"),
                          (axes[1], "ret", "Internet -> provider\n(toward the vISP, Mbit/s)")):
        for p in r.providers:
            ax.plot(xs, [v / 1e6 for v in rates[f"{key}:{p}"]], color=colour[p], lw=1.2, label=p)
        ax.set_ylabel(what)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper right", fontsize=8)
    if r.intervals:
        ax = axes[2]
        ax.step([iv.end - t0 for iv in r.intervals], [iv.bps / 1e6 for iv in r.intervals], where="pre",
                color="tab:green", lw=1, label="TCP flow, received (iperf3, 0.1 s)")
        retr = [(t - t0, k) for t, k in r.retransmits if k]
        if retr:
            ax.scatter([t for t, _ in retr], [0] * len(retr), marker="x", color="tab:red",
                       label=f"retransmissions ({sum(k for _, k in retr)} segments in all)")
        ax.set_ylabel("Mbit/s")
        ax.set_ylim(bottom=-1)
        ax.legend(loc="lower right", fontsize=8)
    for ax in axes:
        for c in cycles:
            ax.axvspan(c["drop"] - t0, c["enable"] - t0, color="tab:red", alpha=0.07, lw=0)
            for when, col, style in ((c["drop"], "tab:red", "-"), (c["moved"], "tab:orange", ":"),
                                     (c["enable"], "tab:green", "-"), (c["back"], "tab:blue", ":")):
                if when:
                    ax.axvline(when - t0, color=col, ls=style, lw=1)
        ax.set_xlim(left=-0.2)
        if ax is not axes[-1]:
            plt.setp(ax.get_xticklabels(), visible=False)
    for i, c in enumerate(cycles):
        axes[0].annotate(f"cycle {i + 1}: {r.primary} down {c['hold']:g} s", (c["drop"] - t0, 1),
                         xycoords=("data", "axes fraction"), fontsize=8, xytext=(3, -11), textcoords="offset points")
    axes[0].set_title(f"{r.host} -> {r.target}: {r.primary}'s BGP session disabled at its BIRD (red band), "
                      f"enabled again; solid lines: disable/enable, dotted: {r.host}'s route moved")
    axes[-1].set_xlabel("seconds since the baseline started")

    # -- zooms around each drop and each return -----------------------------------------------
    def zoom(ax, centre: float, lo: float, hi: float, marks: list, title: str) -> None:
        inside = [s for s in r.samples if centre + lo <= s.sent <= centre + hi]
        for label, col, pick in ((f"reply via {r.primary}", colour[r.primary], lambda s: s.ttl == ttl_primary),
                                 (f"reply via {backup}", colour.get(backup, "tab:purple"),
                                  lambda s: s.ttl != ttl_primary)):
            pts = [s for s in inside if s.answered and pick(s)]
            ax.scatter([(s.sent - centre) * 1000 for s in pts], [s.rtt_ms for s in pts], s=6, color=col, label=label)
        lost = [(s.sent - centre) * 1000 for s in inside if not s.answered]
        if lost:
            ax.scatter(lost, [0] * len(lost), marker="|", s=200, color="tab:red", label=f"lost ({len(lost)})")
        for when, col, style, label in marks:
            if when is not None and lo <= when - centre <= hi:
                ax.axvline((when - centre) * 1000, color=col, ls=style, lw=1.2, label=label)
        ax.set_xlim(lo * 1000, hi * 1000)
        ax.set_ylim(bottom=-0.02)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="upper right")

    for i, c in enumerate(cycles):
        figs_c = figs["cycles"][i]
        ax = fig.add_subplot(grid[overview, i])
        zoom(ax, c["drop"], -0.2, 0.6,
             [(c["drop"], "tab:red", "-", "disable"), (c["moved"], "tab:orange", ":", "route moved")],
             f"cycle {i + 1}: drop (route moved {figs_c['drop']['route_moved_ms']} ms, "
             f"loss window {figs_c['drop']['loss_window_ms']} ms)")
        ax.set_xlabel("ms since the disable")
        if i == 0:
            ax.set_ylabel("probe RTT (ms)")
        ax = fig.add_subplot(grid[overview + 1, i])
        centre = c["back"] or c["enable"]
        ret = figs_c["return"]
        zoom(ax, centre, -0.8, 0.4,
             [(c["established"], "tab:gray", "--", "session Established"), (c["back"], "tab:blue", ":", "route back")],
             f"return: Established {ret['session_established_ms']} ms and route back {ret['route_moved_ms']} ms "
             f"after the enable")
        ax.set_xlabel("ms since the route moved back")
        if i == 0:
            ax.set_ylabel("probe RTT (ms)")
    fig.tight_layout()
    return fig


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
