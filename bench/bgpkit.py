"""What bench/bgp.py, bench/bgpingest.py and bench/bgpborder.py share to drive and watch
vispd's BGP side: the vispd CLI with a private state directory, the helpers' status files
(the border routers' and the slices' speakers'), BIRD's control socket, per-process CPU and
memory from /proc, the size of a namespace's FIB, polled, and a run's cleanup (`Cleanup`:
what it brought up, removed in a `finally`). I/O (root): runs vispd and birdc, reads /proc.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

import measure
from dataplane import netns
from measure import ratio as _ratio

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the vispd CLI and what its daemons write ------------------------------------------------
def vispd_argv() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "vispd")
    if os.path.exists(script):
        return [sys.executable, script]
    return [sys.executable, "-c", "import sys; from vispd.cli import main; sys.exit(main())"]


class Vispd:
    """`vispd` with VISPD_STATE_DIR=state_dir, and the files its BGP daemons keep there."""

    def __init__(self, state_dir: str):
        self.state_dir = state_dir
        self.env = dict(os.environ, VISPD_STATE_DIR=state_dir)
        self.env["PYTHONPATH"] = REPO + (os.pathsep + self.env["PYTHONPATH"] if self.env.get("PYTHONPATH") else "")
        self.argv = vispd_argv()

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv + list(args), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run(self.argv + list(args), env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"vispd {' '.join(args)} failed ({result.returncode}): "
                               f"{result.stderr.strip() or result.stdout.strip()}")
        return result

    def run_dir(self, topology: str) -> str:
        return os.path.join(self.state_dir, topology, "run")

    def _json(self, topology: str, leaf: str) -> dict:
        try:
            with open(os.path.join(self.run_dir(topology), leaf)) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def speaker(self, topology: str, slice_name: str, node: str) -> dict:
        """The status document of a slice's speaker (its one session: to the border)."""
        return self._json(topology, f"exabgp-{slice_name}-{node}.status.json")

    def to_border(self, topology: str, slice_name: str, node: str) -> dict:
        """A slice speaker's session to its node's border (state, since, installed, paths)."""
        return self.speaker(topology, slice_name, node).get("neighbors", {}).get("border", {})

    def border(self, topology: str, node: str) -> dict:
        """The status document of the border router at an egress node."""
        return self._json(topology, f"border-{node}.status.json")

    def border_neighbor(self, topology: str, node: str, name: str) -> dict:
        """A border's session: a provider by its name, a slice as "slice NAME"."""
        return self.border(topology, node).get("neighbors", {}).get(name, {})

    def daemon_pid(self, topology: str, daemon: str) -> int | None:
        """The PID vispd recorded for a daemon (first line of run/DAEMON.pid)."""
        try:
            with open(os.path.join(self.run_dir(topology), f"{daemon}.pid")) as handle:
                return int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def bgp_pids(self, topology: str, node: str, slices: list[str]) -> dict[str, int | None]:
        """ExaBGP and helper PIDs of the border at `node` and of each slice's speaker there."""
        pids = {"border_exabgp": self.daemon_pid(topology, f"border-{node}"),
                "border_helper": self.border(topology, node).get("pid")}
        for name in slices:
            pids[f"{name}_exabgp"] = self.daemon_pid(topology, f"exabgp-{name}-{node}")
            pids[f"{name}_helper"] = self.speaker(topology, name, node).get("pid")
        return pids


# -- BIRD ---------------------------------------------------------------------------------
def birdc(sock: str, *command: str) -> str:
    return subprocess.run(["birdc", "-s", sock, *command], capture_output=True, text=True, timeout=30).stdout


def provider_sock(topology: str, provider: str) -> str:
    return f"/run/vispd/{topology}/bird-{provider}.ctl"


def protocol_since(sock: str, protocol: str) -> tuple[str, float | None]:
    """(state, wall-clock time of its last state change) of a BIRD protocol."""
    out = birdc(sock, "show", "protocols", protocol)
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] == protocol:
            return fields[3], bird_time(fields[4])
    return "?", None


def bird_time(text: str) -> float | None:
    """BIRD's 'HH:MM:SS.mmm' (today, local time) as an epoch time (nearest to now)."""
    try:
        clock = datetime.time.fromisoformat(text)
    except ValueError:
        return None
    now = time.time()
    today = datetime.date.today()
    candidates = [datetime.datetime.combine(today + datetime.timedelta(days=d), clock).timestamp()
                  for d in (-1, 0, 1)]
    return min(candidates, key=lambda t: abs(t - now))


def route_count(sock: str) -> int:
    out = birdc(sock, "show", "route", "count")
    match = re.search(r"(\d+) of \d+ routes for \d+ networks in table master4", out)
    return int(match.group(1)) if match else 0


# -- processes ----------------------------------------------------------------------------
def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used (0 when it is gone)."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def vm_kib(pid: int | None, key: str) -> int:
    if not pid:
        return 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mem_available() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


# -- FIB size of a namespace ----------------------------------------------------------------
class FibCounter:
    """Routes in a namespace's main FIB trie, from /proc/net/fib_triestat. The file is opened
    inside the namespace once; each read re-generates it for that namespace (no fork)."""

    _PREFIXES = re.compile(rb"Main:.*?Prefixes:\s+(\d+)", re.S)

    def __init__(self, ns: str):
        with netns.entered(ns):
            self.fd = os.open("/proc/thread-self/net/fib_triestat", os.O_RDONLY)

    def __call__(self) -> int:
        os.lseek(self.fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"Local:" in chunk:
                break
        match = self._PREFIXES.search(b"".join(chunks))
        return int(match.group(1)) if match else -1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def poll_until(counter: FibCounter, target: int, timeout: float, at_most: bool = False,
               trace: list | None = None):
    """Poll until the count reaches `target` (or drops to it with at_most); returns
    (wall time it was first seen there or None, last count). `trace` collects every
    (wall time, count) read."""
    done, counts = poll_all({"": (counter, target)}, timeout, at_most, {"": trace} if trace is not None else None)
    return done[""], counts[""]


def poll_all(watched: dict, timeout: float, at_most: bool = False, traces: dict | None = None):
    """Poll several counters ({name: (counter, target)}) until each has reached its target
    (or dropped to it with at_most); returns ({name: wall time first seen there, or None
    after the timeout}, {name: last count}). Polling starts at 5 ms and backs off to 1/50 of
    the elapsed time (at most 0.5 s): a read walks the whole trie."""
    started = time.monotonic()
    done: dict = {name: None for name in watched}
    counts: dict = {}
    while True:
        for name, (counter, target) in watched.items():
            if done[name] is not None:
                continue
            count = counter()
            now_wall = time.time()
            counts[name] = count
            if traces is not None and traces.get(name) is not None:
                traces[name].append((now_wall, count))
            if (count <= target) if at_most else (count >= target):
                done[name] = now_wall
        elapsed = time.monotonic() - started
        if all(t is not None for t in done.values()) or elapsed > timeout:
            return done, counts
        time.sleep(min(0.5, max(0.005, elapsed / 50)))


def write(workdir: str, name: str, text: str) -> str:
    path = os.path.join(workdir, name)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def stop_process(proc: subprocess.Popen, sig: int, timeout: float = 10) -> None:
    """Signal a process we started (by its PID) and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)


# -- what bench/bgp.py and bench/bgpingest.py share ------------------------------------------------
def refuse_leftovers(names: list[str]) -> None:
    ours = [n for n in netns.list_names() if any(n.startswith(f"vispd.{name}.") for name in names)]
    if ours:
        sys.exit(f"namespaces from an earlier run exist, remove them first: {', '.join(ours[:8])} ...")


# -- 1 + 2: up, first packet, failover -----------------------------------------------------------


def median(values) -> float | None:
    return measure.median(values, digits=4)


def wait_for(predicate, timeout: float, interval: float = 0.01):
    return measure.wait_for(predicate, timeout, interval)


def ratio(ours, theirs) -> float | None:
    return _ratio(ours, theirs) if ours and theirs else None


# -- topologies ------------------------------------------------------------------------------------


class Cleanup:
    """What this run created, so `finally` removes exactly that."""

    def __init__(self, vispd: Vispd, keep_logs: str | None = None):
        self.vispd, self.keep_logs = vispd, keep_logs   # where to copy a topology's run directory first
        self.topologies: list[str] = []
        self.labs: list = []   # BirdLab, KernelFloor
        self.probers: list = []   # measure.pathprobe.PathProbe
        self.counters: list[FibCounter] = []

    def down(self, name: str) -> float:
        if self.keep_logs:
            with contextlib.suppress(OSError):   # the daemons' logs, before `down` removes them
                shutil.copytree(self.vispd.run_dir(name), os.path.join(self.keep_logs, f"run-{name}"),
                                ignore=shutil.ignore_patterns("*.sock", "*.ctl"), dirs_exist_ok=True)
        started = time.monotonic()
        try:
            self.vispd.run("down", name, timeout=900)
        except Exception as exc:  # keep cleaning the rest
            print(f"cleanup: vispd down {name}: {exc}", file=sys.stderr)
        if name in self.topologies:
            self.topologies.remove(name)
        return time.monotonic() - started

    def close_counters(self, counters) -> None:
        for counter in counters:
            counter.close()
        self.counters = [c for c in self.counters if c not in counters]

    def run(self) -> None:
        for prober in self.probers:
            with contextlib.suppress(Exception):
                prober.stop()
        self.close_counters(list(self.counters))
        for lab in self.labs:
            with contextlib.suppress(Exception):
                lab.stop()
        for name in list(reversed(self.topologies)):
            self.down(name)
