"""bgp-failover's observers: the route every sliver would use toward the Internet host,
polled through netlink in each namespace (RouteWatcher, with the paths and loops those
routes make), and byte counters of the providers' and the Internet router's devices
(CounterSampler). Both are threads that only record; run.py starts and stops them.

I/O: threads reading routes and sockets inside the lab's namespaces.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time

from dataplane import netns  # (run.py put the repository on sys.path)
from model.naming import host_names
from pyroute2 import IPRoute

PROBE_INTERVAL = 0.01   # s between echo requests
ROUTE_POLL = 0.005      # s between route look-ups in the sliver
COUNTER_POLL = 0.02     # s between counter samples
WARMUP = 1.0            # s of traffic before the baseline starts


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


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
    """Interface address -> the readable host that holds it (slivers and lab hosts). A
    provider's next hop on a slice's link to its border router (a macvlan address in the
    egress node's namespace, whose packets the border sends to that provider) counts as the
    provider's: a packet sent to it leaves the vISP there."""
    names = host_names(plan.namespaces())
    owner = {r.cidr.split("/")[0]: names.get(r.ns, r.ns) for r in plan.resources
             if r.KIND == "address" and r.ifname != "lo"}
    for r in plan.resources:
        if r.KIND == "daemon" and r.name.startswith("exabgp-"):   # a slice's speaker: its providers' paths
            config = json.loads(dict(r.files).get(f"{r.name}.json", "{}"))
            owner.update({path["next_hop"]: path["name"] for path in config.get("paths", [])})
    return owner


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
