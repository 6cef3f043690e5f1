"""Helpers shared by the labs (labs/NAME/run.py) and by bench/lab.py.

    import lablib, failures             # run.py puts labs/ on sys.path; or `from labs import ...`
    args = lablib.parse_args("link-failure", __doc__)
    with lablib.open_lab(args.topology) as lab:
        result = failures.measure_reconvergence(lab, "static", "seattle", "new-york",
                                                link=("kansas-city", "indianapolis"))
    lablib.write_report(args.out, {"static": result}, plot)

(labs/failures.py holds the link-failure measurements: paths, probes, failure cycles.)

Clocks: everything here is in `time.monotonic()` seconds, the clock `linkstate.LinkChange`
uses. `Pinger` runs labs/pinger.py in the host, which stamps each request's departure and
each reply's arrival with the same (machine-wide) monotonic clock, at real-time priority;
`ping -D` is not used: it stamps a reply in wall-clock time when it *prints* it (late on a
loaded machine) and never says when a request left. Wall-clock times from other tools
(e.g. a daemon's log) convert with `wall_minus_monotonic()`, the offset taken in one tight
paired reading. iperf3 prints times relative to the start of its test; `Iperf` anchors
them by the moment each interval line arrives (it flushes at every interval).

Processes are started in the lab's hosts with `lab.popen` (not daemonised) and stopped by
their PID; nothing here ever kills by name.

I/O: processes in lab hosts, report files.
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

import measure  # noqa: E402
from measure import say, wait_for  # noqa: E402,F401  (the labs' shared measuring helpers)
from dataplane.netns import alive as process_alive  # noqa: E402


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
    return measure.median(values, digits=3)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    return process_alive(pid)


# -- leftovers ---------------------------------------------------------------------------
def namespaces_of(topology_name: str) -> list[str]:
    """The namespaces `vispd.<name>` and `vispd.<name>.*` that exist now."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n == f"vispd.{topology_name}" or n.startswith(f"vispd.{topology_name}."))
