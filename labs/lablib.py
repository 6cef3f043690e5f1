"""Helpers shared by the labs (labs/NAME/run.py) and by bench/lab.py.

    import lablib                       # run.py puts labs/ on sys.path; or `from labs import lablib`
    args = lablib.parse_args("link-failure", __doc__)
    with lablib.open_lab(args.topology) as lab:
        result = lablib.measure_reconvergence(lab, "static", "seattle", "new-york",
                                              link=("kansas-city", "indianapolis"))
    lablib.write_report(args.out, {"static": result}, plot)

Clocks: everything here is in `time.monotonic()` seconds, the clock `engine.LinkChange`
uses. `Pinger` runs labs/pinger.py in the host, which stamps each request's departure and
each reply's arrival with the same (machine-wide) monotonic clock, at real-time priority;
`ping -D` is not used: it stamps a reply in wall-clock time when it *prints* it (late on a
loaded machine) and never says when a request left. Wall-clock times from other tools
(e.g. a daemon's log) convert with `wall_minus_monotonic()`, the offset taken in one tight
paired reading. iperf3 prints times relative to the start of its test; `Iperf` anchors
them by the moment each interval line arrives (it flushes at every interval).

Processes are started in the lab's hosts with `lab.popen` (not daemonised) and stopped by
their PID; nothing here ever kills by name.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

LABS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(LABS)
if ROOT not in sys.path:  # vispd and dataplane, when run as `python3 labs/NAME/run.py`
    sys.path.insert(0, ROOT)


# -- arguments ---------------------------------------------------------------------------
def parse_args(name: str, description: str | None = None, argv: list[str] | None = None,
               extra=None) -> argparse.Namespace:
    """`--short`, `--out DIR` (default labs/NAME/report), `--topology PATH` (default
    labs/NAME/topology.yaml); `extra(parser)` adds a lab's own options."""
    parser = argparse.ArgumentParser(prog=f"labs/{name}/run.py", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true",
                        help="a short run (for tests and CI): fewer repetitions, shorter phases")
    parser.add_argument("--out", default=os.path.join(LABS, name, "report"),
                        help="where figures.json and plot.png go (default: %(default)s)")
    parser.add_argument("--topology", default=os.path.join(LABS, name, "topology.yaml"),
                        help="the lab's topology file (default: %(default)s)")
    parser.add_argument("--backend", choices=("mininet", "netns"), default="mininet",
                        help="build the lab in Mininet (default) or as plain `vispd up` namespaces")
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


def open_lab(topology: str, backend: str = "mininet"):
    """A `vispd.labnet.Lab` for the topology (use it as a context manager)."""
    from vispd.labnet import Lab

    return Lab(topology, backend=backend)


def require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("the labs build network namespaces: run them as root")


# -- clocks ------------------------------------------------------------------------------
def wall_minus_monotonic(tries: int = 20) -> float:
    """time.time() - time.monotonic(), from the tightest of `tries` paired readings."""
    best = None
    for _ in range(tries):
        m0 = time.monotonic()
        w = time.time()
        m1 = time.monotonic()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, w - (m0 + m1) / 2)
    return best[1]


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGINT, timeout: float = 5.0) -> None:
    """Stop one process we started, by its PID: `sig`, then SIGKILL after `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


# -- ping --------------------------------------------------------------------------------
PINGER = os.path.join(LABS, "pinger.py")


@dataclass
class Sample:
    """One echo request: when it left and, if answered, when the reply came and its TTL."""

    seq: int
    sent: float                    # monotonic
    received: float | None = None  # monotonic; None: lost (so far)
    ttl: int | None = None
    error: int | None = None       # errno when it could not even be sent (no route)

    @property
    def answered(self) -> bool:
        return self.received is not None

    @property
    def rtt_ms(self) -> float | None:
        return (self.received - self.sent) * 1000 if self.received is not None else None


@dataclass
class Pinger:
    """Echo requests every `interval` s from a lab host to `dst`, with every request's send
    time and every reply's arrival time in this process's `time.monotonic()`.

    Runs labs/pinger.py in the host (lab.popen, real-time priority with `chrt -f 50` so the
    probes keep their schedule on a loaded machine); `ping -D` is not used because it stamps
    a reply when it prints it (late under load) and never says when a request left.
    `trace()` is every request so far, by seq. `stop()` signals the prober's PID.
    """

    lab: object
    host: str
    dst: str
    interval: float = 0.01
    realtime: bool = True
    proc: subprocess.Popen | None = None
    _probes: dict = field(default_factory=dict)  # seq -> Sample
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _new: threading.Condition | None = None

    def start(self) -> "Pinger":
        self._new = threading.Condition(self._lock)
        argv = [sys.executable, "-u", PINGER, self.dst, f"{self.interval:g}"]
        if self.realtime and shutil.which("chrt"):
            argv = ["chrt", "-f", "50", *argv]
        self.proc = self.lab.popen(self.host, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, bufsize=1)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            words = line.split()
            if len(words) < 3:
                continue
            kind, seq, when = words[0], int(words[1]), float(words[2])
            with self._new:
                if kind == "S":
                    self._probes.setdefault(seq, Sample(seq, when)).sent = when
                elif kind == "E":
                    self._probes[seq] = Sample(seq, when, error=int(words[3]))
                elif kind == "R":
                    # the prober's receiving thread can print a reply before its sending
                    # thread has printed the request (RTTs here are ~0.1 ms): keep it, the
                    # S line then fills in the send time
                    probe = self._probes.setdefault(seq, Sample(seq, when))
                    probe.received, probe.ttl = when, int(words[3])
                self._new.notify_all()

    def stop(self) -> list[Sample]:
        _stop(self.proc)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.proc is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
        return self.trace()

    def trace(self) -> list[Sample]:
        """Every request so far, in seq order (copies)."""
        with self._lock:
            return [Sample(s.seq, s.sent, s.received, s.ttl, s.error) for _, s in sorted(self._probes.items())]

    def wait(self, predicate, timeout: float) -> bool:
        """Wait until predicate(trace) is true (evaluated as results come in)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self.trace()):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc is not None and self.proc.poll() is not None):
                return False
            with self._new:
                self._new.wait(min(left, 0.05))


def answered(trace: list[Sample]) -> list[Sample]:
    return [s for s in trace if s.answered]


def spacing(trace: list[Sample], default: float) -> float:
    """The median time between consecutive requests (seconds)."""
    gaps = [b.sent - a.sent for a, b in zip(trace, trace[1:]) if b.seq == a.seq + 1]
    return statistics.median(gaps) if gaps else default


def steady_ttl(trace: list[Sample], before: float, count: int = 20) -> int | None:
    """The most common TTL of the last `count` replies to requests sent before `before`."""
    ttls = [s.ttl for s in trace if s.answered and s.sent < before][-count:]
    return statistics.mode(ttls) if ttls else None


def event_figures(trace: list[Sample], event: float, interval: float, ttl: int | None = None,
                  lookback: float = 0.05) -> dict:
    """What the probes saw around an event at monotonic time `event` (times in ms from it).

    `recovered`: the first request sent at or after the event that got a reply (with `ttl`,
    when given: over the expected path again). `reconverge_ms`: from the event to that
    reply's arrival (traffic flowing again). `lost`: requests sent from `lookback` s before
    the event (a link is down a moment before its LinkChange is stamped) up to that one that
    got no reply; `loss_window_ms`: lost x the probe spacing, how long probes were being
    lost (0 when none was); `loss_started_ms` / `loss_ended_ms`: the first and the last lost
    request's send time. A request not answered by the time of the call counts as lost.
    """
    step = spacing(trace, interval)
    after = [s for s in trace if s.sent >= event and s.answered and (ttl is None or s.ttl == ttl)]
    if not after:
        return {"recovered": False, "reconverge_ms": None, "loss_window_ms": None, "lost": None}
    first = after[0]
    lost = [s for s in trace if event - lookback <= s.sent < first.sent and not s.answered]

    def ms(t: float) -> float:
        return round((t - event) * 1000, 3)

    return {
        "recovered": True,
        "reconverge_ms": ms(first.received),
        "first_probe_sent_ms": ms(first.sent),
        "loss_window_ms": round(len(lost) * step * 1000, 3),
        "lost": len(lost),
        "lost_unsendable": sum(1 for s in lost if s.error is not None),
        "loss_started_ms": ms(lost[0].sent) if lost else None,
        "loss_ended_ms": ms(lost[-1].sent) if lost else None,
        "ttl_after": first.ttl,
        "probe_spacing_ms": round(step * 1000, 3),
    }


# -- paths -------------------------------------------------------------------------------
def path_nodes(topo, slice_name: str, src: str, dst: str, failed=()) -> list[str]:
    """The least-cost node path of a slice from src to dst (vispd's tie-breaking), with the
    links in `failed` ((a, b) pairs) taken out; [] when unreachable."""
    from vispd.routing import next_hops, slice_graph

    sl = topo.slice(slice_name)
    dead = {tuple(sorted(f)) for f in failed}
    graph = slice_graph(topo.slice_nodes(sl), [lk for lk in topo.slice_links(sl) if lk.key not in dead])
    hops = next_hops(graph)
    path = [src]
    while path[-1] != dst:
        nxt = hops.get(path[-1], {}).get(dst)
        if nxt is None or nxt in path:
            return []
        path.append(nxt)
    return path


def reply_ttl(path: list[str], initial: int = 64) -> int:
    """The TTL of a reply that crossed `path` (each sliver on the way forwards it once)."""
    return initial - (len(path) - 2)


# -- iperf3 ------------------------------------------------------------------------------
_IPERF_LINE = re.compile(r"^\[\s*(\d+|SUM)\]\s+([\d.]+)-([\d.]+)\s+sec\s+[\d.]+\s+\S*Bytes\s+([\d.]+)\s+([KMG]?)bits/sec(.*)$")
_SCALE = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9}


@dataclass
class Interval:
    start: float  # monotonic
    end: float
    bps: float

    @property
    def mid(self) -> float:
        return (self.start + self.end) / 2


class Iperf:
    """An iperf3 test between two lab hosts: the server (`-s -1`) in `server_host`, the
    client in `client_host` towards `address`; `intervals()` are the *receiver's* interval
    rates (the server's lines), in monotonic time.

    TCP by default; `udp=True` with `bitrate` (e.g. "200M") for a constant-rate flood.
    """

    def __init__(self, lab, server_host: str, client_host: str, address: str, seconds: float,
                 port: int = 5201, udp: bool = False, bitrate: str | None = None,
                 interval: float = 0.1, extra: tuple[str, ...] = ()):
        self.lab, self.server_host, self.client_host = lab, server_host, client_host
        self.address, self.seconds, self.port = address, seconds, port
        self.udp, self.bitrate, self.interval, self.extra = udp, bitrate, interval, extra
        self.server = self.client = None
        self.lines: dict[str, list[tuple[float, str]]] = {"server": [], "client": []}
        self._threads: list[threading.Thread] = []
        self._listening = threading.Event()

    def _reader(self, name: str, stream) -> None:
        for line in stream:
            now = time.monotonic()
            self.lines[name].append((now, line.rstrip("\n")))
            if "Server listening" in line:
                self._listening.set()

    def _spawn(self, name: str, host: str, argv: list[str]) -> subprocess.Popen:
        proc = self.lab.popen(host, ["stdbuf", "-oL", *argv], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, bufsize=1)
        thread = threading.Thread(target=self._reader, args=(name, proc.stdout), daemon=True)
        thread.start()
        self._threads.append(thread)
        return proc

    def start(self) -> "Iperf":
        self.server = self._spawn("server", self.server_host,
                                  ["iperf3", "-s", "-1", "-p", str(self.port), "-i", f"{self.interval:g}",
                                   "--forceflush"])
        if not self._listening.wait(10):
            self.stop()
            raise RuntimeError(f"iperf3 server in {self.server_host} did not start: {self.lines['server']}")
        argv = ["iperf3", "-c", self.address, "-p", str(self.port), "-t", f"{self.seconds:g}",
                "-i", f"{self.interval:g}", "--forceflush", *self.extra]
        if self.udp:
            argv += ["-u", "-b", self.bitrate or "1M"]
        elif self.bitrate:
            argv += ["-b", self.bitrate]
        self.client = self._spawn("client", self.client_host, argv)
        return self

    def wait(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else self.seconds + 15)
        for proc in (self.client, self.server):
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.stop()

    def stop(self) -> None:
        """Stop the client (it ends the test and the server's `-1` run), then the server."""
        _stop(self.client)
        if self.server is not None and self.server.poll() is None:
            try:
                self.server.wait(timeout=3)
            except subprocess.TimeoutExpired:
                _stop(self.server)
        for thread in self._threads:
            thread.join(timeout=5)
        for proc in (self.client, self.server):
            if proc is not None and proc.stdout:
                proc.stdout.close()

    def intervals(self, side: str = "server") -> list[Interval]:
        """The interval rates of one side (the server's: what was received), in monotonic
        time: the test's start is placed at min(arrival - end) over the interval lines.
        With parallel streams (-P) the [SUM] lines."""
        parsed = []
        for arrived, line in self.lines[side]:
            m = _IPERF_LINE.match(line)
            if not m or "sender" in m.group(6) or "receiver" in m.group(6):  # the summary
                continue
            parsed.append((m.group(1), arrived, float(m.group(2)), float(m.group(3)),
                           float(m.group(4)) * _SCALE[m.group(5)]))
        if any(stream == "SUM" for stream, *_ in parsed):
            parsed = [p for p in parsed if p[0] == "SUM"]
        if not parsed:
            return []
        anchor = min(arrived - end for _, arrived, _, end, _ in parsed)
        return [Interval(anchor + s, anchor + e, bps) for _, _, s, e, bps in parsed]


def rate_between(intervals: list[Interval], start: float, end: float) -> list[float]:
    """The rates (bit/s) of the intervals that lie wholly in [start, end]."""
    return [iv.bps for iv in intervals if iv.start >= start - 1e-3 and iv.end <= end + 1e-3]


def throughput_dip(intervals: list[Interval], event: float, until: float, baseline: float | None,
                   threshold: float = 0.5) -> dict:
    """How a flow's received rate fell after an event, against `baseline` (bit/s, e.g. the
    median before the first failure): `below_half_ms`, the total time of the intervals in
    [event, until] whose rate was below threshold x baseline; `min_mbps`, the lowest rate
    there; `max_mbps`, the highest (a sender with a backlog catches up after a stall)."""
    after = [iv for iv in intervals if iv.end > event and iv.start < until]
    below = sum(iv.end - iv.start for iv in after if baseline and iv.bps < threshold * baseline)
    return {
        "below_half_ms": round(below * 1000, 1),
        "min_mbps": round(min(iv.bps for iv in after) / 1e6, 2) if after else None,
        "max_mbps": round(max(iv.bps for iv in after) / 1e6, 2) if after else None,
    }


def baseline_rate(intervals: list[Interval], start: float, end: float) -> float | None:
    """The median received rate (bit/s) of the intervals wholly in [start, end]."""
    rates = rate_between(intervals, start, end)
    return statistics.median(rates) if rates else None


# -- reports -----------------------------------------------------------------------------
def write_report(out_dir: str, figures: dict, plot) -> dict[str, str]:
    """Write `figures.json` (sorted, indented) and `plot.png` into out_dir. `plot` is a
    matplotlib Figure or a callable returning one (drawn with the Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    paths = {"figures": os.path.join(out_dir, "figures.json"), "plot": os.path.join(out_dir, "plot.png")}
    with open(paths["figures"], "w") as handle:
        json.dump(figures, handle, indent=2, sort_keys=True)
        handle.write("\n")
    fig = plot() if callable(plot) else plot
    if fig is not None:
        fig.savefig(paths["plot"], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return paths


def pyplot():
    """matplotlib.pyplot with the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


# -- reconvergence -----------------------------------------------------------------------
@dataclass
class Probe:
    """One pinger of a failure cycle: slice, source node -> destination node's sliver."""

    slice: str
    src: str
    dst: str
    pinger: Pinger | None = None


def wait_reachable(lab, host: str, address: str, timeout: float = 60.0) -> float | None:
    """Wait until one ping from `host` to `address` is answered (an OSPF slice has no
    routes for several seconds after `up`); the seconds it took, None on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        out = lab.cmd(host, ["ping", "-n", "-c", "1", "-W", "1", address], timeout=5)
        if " 0% packet loss" in out:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def start_probes(lab, probes: list[Probe], interval: float, timeout: float = 60.0) -> None:
    """Start each probe's pinger once its destination answers (an OSPF slice has no routes
    for seconds after `up`)."""
    for p in probes:
        host, address = lab.sliver(p.slice, p.src), lab.address(lab.sliver(p.slice, p.dst))
        if wait_reachable(lab, host, address, timeout) is None:
            raise RuntimeError(f"{p.slice}: {p.dst} never answered {p.src} within {timeout:g} s")
        p.pinger = Pinger(lab, host, address, interval).start()


def _replies_since(t: float, ttl: int | None, count: int):
    def ok(trace: list[Sample]) -> bool:
        fresh = [s for s in answered(trace)[-count:] if s.sent >= t]
        return len(fresh) >= count and (ttl is None or all(s.ttl == ttl for s in fresh))
    return ok


def wait_steady(probes: list[Probe], ttl: dict[str, int | None], timeout: float = 30.0,
                count: int = 20) -> bool:
    """Wait until each probe's last `count` replies are recent and have the expected TTL."""
    deadline = time.monotonic() + timeout
    since = time.monotonic()
    for p in probes:
        if not p.pinger.wait(_replies_since(since, ttl.get(p.slice), count), deadline - time.monotonic()):
            return False
    return True


def failure_cycle(lab, probes: list[Probe], link: tuple[str, str], interval: float,
                  hold_down: float = 1.0, hold_up: float = 1.0, timeout: float = 30.0,
                  on_event=None) -> dict:
    """One failure and recovery of `link` with the probes' pingers running (start them with
    `start_probes`): wait until every probe is steady on its least-cost path, take the link
    down, wait until every probe gets replies again (then `hold_down` s more), bring it up,
    wait until every probe's replies come back with the pre-failure TTL (then `hold_up`).
    `on_event(kind, change)` is called after each change. Returns the LinkChanges and, per
    probe's slice, the figures of `event_figures` for "down" and "up"."""
    topo = lab.topo
    expected = {p.slice: reply_ttl(path_nodes(topo, p.slice, p.dst, p.src)) for p in probes}
    failed = {p.slice: reply_ttl(path_nodes(topo, p.slice, p.dst, p.src, failed=[link])) for p in probes}
    if not wait_steady(probes, expected, timeout):
        raise RuntimeError("the probes did not settle on their least-cost paths: "
                           + ", ".join(f"{p.slice}: ttl {steady_ttl(p.pinger.trace(), time.monotonic())} "
                                       f"(expected {expected[p.slice]})" for p in probes))
    down = lab.link_down(*link)
    if on_event:
        on_event("down", down)
    for p in probes:
        p.pinger.wait(_replies_since(down.changed_at, None, 5), timeout)
    time.sleep(hold_down)
    up = lab.link_up(*link)
    if on_event:
        on_event("up", up)
    for p in probes:
        p.pinger.wait(_replies_since(up.changed_at, expected[p.slice], 20), timeout)
    time.sleep(hold_up)
    out = {"link": list(link), "down": down, "up": up, "end": time.monotonic(), "slices": {}}
    for p in probes:
        trace = p.pinger.trace()
        d = event_figures(trace, down.changed_at, interval)
        u = event_figures(trace, up.changed_at, interval, ttl=expected[p.slice])
        # the reply TTLs expected on the least-cost path and on the detour
        out["slices"][p.slice] = {"down": d, "up": u, "ttl_path": expected[p.slice],
                                  "ttl_detour": failed[p.slice]}
    return out


def change_figures(change) -> dict:
    return {"routes_changed": change.routes_changed,
            "applied_ms": round((change.applied_at - change.changed_at) * 1000, 3)}


def measure_reconvergence(lab, slice_name: str, src_node: str, dst_node: str,
                          link: tuple[str, str], interval: float = 0.01, timeout: float = 30.0,
                          hold: float = 1.0) -> dict:
    """Reconvergence of one slice after `link` fails, and after it comes back.

    Pings every `interval` s from the slice's sliver on `src_node` to the loopback of its
    sliver on `dst_node`, waits until the replies are steady on the least-cost path (OSPF
    slices may need seconds after `up`), takes `link` down, waits for replies again, then
    brings it up and waits until the replies come back over the original path (their TTL).
    The link must lie on the path and have an alternative. Returns (times in ms):

        {"slice", "src", "dst", "link", "interval_ms",
         "down": {"loss_window_ms", "reconverge_ms", "lost", "recovered", ...,
                  "routes_changed", "applied_ms"},
         "up":   {... the same, recovery = first reply over the original path}}

    `reconverge_ms`: from the link's change (LinkChange.changed_at) to the first reply of a
    probe sent after it (after `up`: the first reply over the original path); `loss_window_ms`:
    lost probes x probe spacing in between; `applied_ms`: vispd's own part (the link's change
    to every route in place; `routes_changed` routes, static slices only).
    """
    path = path_nodes(lab.topo, slice_name, src_node, dst_node)
    if not any({a, b} == set(link) for a, b in zip(path, path[1:])):
        raise ValueError(f"link {link} is not on {slice_name}'s path {' - '.join(path)}")
    if not path_nodes(lab.topo, slice_name, src_node, dst_node, failed=[link]):
        raise ValueError(f"{slice_name} has no path from {src_node} to {dst_node} without {link}")
    probe = Probe(slice_name, src_node, dst_node)
    start_probes(lab, [probe], interval)
    try:
        cycle = failure_cycle(lab, [probe], link, interval, hold_down=hold, hold_up=hold, timeout=timeout)
    finally:
        probe.pinger.stop()
    figures = cycle["slices"][slice_name]
    return {
        "slice": slice_name, "src": src_node, "dst": dst_node, "link": list(link),
        "interval_ms": interval * 1000, "path": path,
        "down": {**figures["down"], **change_figures(cycle["down"])},
        "up": {**figures["up"], **change_figures(cycle["up"])},
    }


# -- leftovers ---------------------------------------------------------------------------
def namespaces_of(topology_name: str) -> list[str]:
    """The namespaces `vispd.<name>` and `vispd.<name>.*` that exist now."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n == f"vispd.{topology_name}" or n.startswith(f"vispd.{topology_name}."))
