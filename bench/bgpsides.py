"""The receivers bench/bgp.py measures route ingestion into, side by side, and how one run of
a side is measured. I/O (root): namespaces hb-PID-LABEL-*, BIRD and ExaBGP processes.

`BirdLab` is one BIRD sender (originating the same generated table as a vispd lab provider,
compiler.daemons.bird.generated_prefixes) with two sessions, each disabled until measured:
  * `rcv`: to a BIRD receiver whose kernel protocol installs what it learns (BIRD's own
    ingestion: the reference);
  * `spk`: to a slice speaker exactly as vispd runs one (ExaBGP + bgp.helper, the same
    ExaBGP command line and environment, compiler.daemons.exabgp) but without a border in
    between: a plain eBGP session, as tests/netns/test_bgp_speaker.py builds one (the
    extra hop's reference).

`Side` measures one receiver the same way every time: the sending BIRD's session is
disabled (and the receiving FIBs emptied back to their baselines, which is timed too), then
enabled; time = from the session's Established (the sender's `show protocols` Since, ms) to
when every watched FIB holds its expected routes (prefix count in /proc/net/fib_triestat,
polled).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from bench.bgpkit import REPO, FibCounter, birdc, cpu_seconds, poll_all, protocol_since, route_count, stop_process, write
from compiler.daemons import exabgp
from bench.bgpvaried import varied_static
from compiler.daemons.bird import generated_prefixes
from compiler.daemons.speaker_config import METRIC_DEFAULT
from dataplane import netns

SEND_AS, RECV_AS, SPEAKER_AS = 65201, 65202, 64512
SEND_IP, RECV_IP = "198.19.255.0", "198.19.255.1"       # sender <-> BIRD receiver (outside 10/8)
SEND_IP2, SPEAKER_IP = "198.19.255.2", "198.19.255.3"   # sender <-> direct speaker
SPEAKER_PREFIX = "198.18.0.0/22"
BGP_TIMERS = "hold time 9; keepalive time 3; connect retry time 1; connect delay time 1;"


class BirdLab:
    """Namespaces hb-PID-LABEL-snd/-rcv/-spk: the BIRD sender, the BIRD receiver, the direct
    speaker; a veth from the sender to each receiver."""

    def __init__(self, label: str, routes: int, workdir: str, max_prefix: int, stem: str = "hb",
                 varied: bool = False):
        self.label, self.routes, self.max_prefix, self.varied = label, routes, max_prefix, varied
        self.dir = os.path.join(workdir, f"birdlab-{label}")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        stem = f"{stem}-{os.getpid()}-{label}"
        self.snd_ns, self.rcv_ns, self.spk_ns = f"{stem}-snd", f"{stem}-rcv", f"{stem}-spk"
        self.snd_sock = os.path.join(self.dir, "snd.ctl")
        self.rcv_sock = os.path.join(self.dir, "rcv.ctl")
        self.speaker_status = os.path.join(self.dir, "speaker.status.json")
        self.namespaces: list[str] = []
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: list = []

    # -- building ------------------------------------------------------------------------
    def start(self) -> None:
        for ns in (self.snd_ns, self.rcv_ns, self.spk_ns):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            self.namespaces.append(ns)
        for ns, dev, peer_ns, peer_dev, ours, theirs in (
                (self.snd_ns, "bb0", self.rcv_ns, "bb1", SEND_IP, RECV_IP),
                (self.snd_ns, "bs0", self.spk_ns, "bs1", SEND_IP2, SPEAKER_IP)):
            for command in (["ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", peer_dev,
                             "netns", peer_ns],
                            ["ip", "-n", ns, "addr", "add", f"{ours}/31", "dev", dev],
                            ["ip", "-n", peer_ns, "addr", "add", f"{theirs}/31", "dev", peer_dev],
                            ["ip", "-n", ns, "link", "set", dev, "up"],
                            ["ip", "-n", peer_ns, "link", "set", peer_dev, "up"]):
                subprocess.run(command, check=True)
        for ns in self.namespaces:
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        self._start_bird("snd", self.snd_ns, self._sender_conf(), self.snd_sock)
        self._start_bird("rcv", self.rcv_ns, self._receiver_conf(), self.rcv_sock)
        self._start_speaker()

    def _sender_conf(self) -> str:
        if self.varied:   # the realistic table, as the border side's provider gets it
            static = varied_static(self.routes)
        else:
            static = "protocol static gen {\n  ipv4;\n" + "\n".join(
                f"  route {p} blackhole;" for p in generated_prefixes(self.routes)) + "\n}"
        return write(self.dir, "snd.conf", f"""\
# bench/bgp.py: sender, originating the same generated table as a vispd lab provider
log "{os.path.join(self.dir, 'snd.birdlog')}" all;
router id {SEND_IP};
protocol device {{ scan time 10; }}
{static}
protocol bgp rcv {{
  disabled;
  local {SEND_IP} as {SEND_AS};
  neighbor {RECV_IP} as {RECV_AS};
  {BGP_TIMERS}
  ipv4 {{ import none; export where proto = "gen"; next hop self; }};
}}
protocol bgp spk {{
  disabled;
  local {SEND_IP2} as {SEND_AS};
  neighbor {SPEAKER_IP} as {SPEAKER_AS};
  {BGP_TIMERS}
  ipv4 {{ import none; export where proto = "gen"; next hop self; }};
}}
""")

    def _receiver_conf(self) -> str:
        return write(self.dir, "rcv.conf", f"""\
# bench/bgp.py: receiver, BIRD's own kernel protocol installing what it learns
log "{os.path.join(self.dir, 'rcv.birdlog')}" all;
router id {RECV_IP};
protocol device {{ scan time 10; }}
protocol kernel {{ ipv4 {{ export all; }}; }}
protocol bgp snd {{
  local {RECV_IP} as {RECV_AS};
  neighbor {SEND_IP} as {SEND_AS};
  {BGP_TIMERS}
  ipv4 {{ import all; export none; }};
}}
""")

    def _start_bird(self, role: str, ns: str, conf: str, sock: str) -> None:
        log = open(os.path.join(self.dir, f"{role}.log"), "w")
        self.logs.append(log)
        # `ip netns exec` execs in place: the PID we hold is BIRD's own
        self.procs[role] = subprocess.Popen(
            ["ip", "netns", "exec", ns, "bird", "-f", "-c", conf, "-s", sock,
             "-P", os.path.join(self.dir, f"{role}.pid")], stdout=log, stderr=log)

    def speaker_config(self) -> dict:
        """A slice speaker's config as compiler/egress.py writes one, but for a plain eBGP
        session with the sending BIRD (no border, no ADD-PATH paths)."""
        return {
            "slice": "direct", "node": self.label, "local_as": SPEAKER_AS, "router_id": SPEAKER_IP,
            "allowed_prefixes": [SPEAKER_PREFIX], "announce": [{"prefix": SPEAKER_PREFIX, "prepend": 0, "communities": []}],
            "neighbors": [{"name": "bird", "address": SEND_IP2, "local_address": SPEAKER_IP, "peer_as": SEND_AS,
                           "local_pref": 100, "max_prefix": self.max_prefix}],
            "rt_proto": 78, "table": 254, "metric": METRIC_DEFAULT, "hold_time": 9,
            "status_file": self.speaker_status, "log_file": os.path.join(self.dir, "speaker.helper.log"),
        }

    def _start_speaker(self) -> None:
        config = self.speaker_config()
        config_path = write(self.dir, "speaker.json", json.dumps(config, indent=1))
        conf_path = write(self.dir, "speaker.conf", exabgp.render(config, config_path, python=sys.executable))
        argv, env = exabgp.command(config_path, conf_path, os.path.join(self.dir, "speaker.exapid"),
                                   os.path.join(self.dir, "speaker.exabgp.log"), python=sys.executable,
                                   listen=[SPEAKER_IP], project_root=REPO)
        log = open(os.path.join(self.dir, "speaker.log"), "w")
        self.logs.append(log)
        self.procs["spk"] = subprocess.Popen(["ip", "netns", "exec", self.spk_ns, *argv], env={**os.environ, **env},
                                             stdout=log, stderr=log, cwd=self.dir)

    # -- questions -----------------------------------------------------------------------
    def pid(self, role: str) -> int | None:
        proc = self.procs.get(role)
        return proc.pid if proc and proc.poll() is None else None

    def speaker_pids(self) -> dict[str, int | None]:
        try:
            with open(self.speaker_status) as handle:
                helper = json.load(handle).get("pid")
        except (OSError, ValueError):
            helper = None
        return {"exabgp": self.pid("spk"), "helper": helper}

    def loaded(self) -> bool:
        """The sender has its table and the speaker is running (its helper wrote a status)."""
        for role, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{role} ({self.label}) exited: see {self.dir}/{role if role != 'spk' else 'speaker'}.log")
        return (os.path.exists(self.snd_sock) and os.path.exists(self.speaker_status)
                and route_count(self.snd_sock) >= self.routes)

    def stop(self) -> None:
        # BIRDs get SIGKILL (a clean shutdown would first withdraw every route from the
        # kernel; the namespaces and their routes are deleted right after); ExaBGP SIGTERM,
        # so that its helper stops with it.
        for role, proc in self.procs.items():
            stop_process(proc, signal.SIGTERM if role == "spk" else signal.SIGKILL)
            if proc.poll() is None:
                stop_process(proc, signal.SIGKILL)
        self.procs.clear()
        for log in self.logs:
            log.close()
        self.logs = []
        for ns in self.namespaces:
            netns.remove(ns)   # a namespace already gone is no error
        self.namespaces = []


# -- one side, measured ----------------------------------------------------------------------
TAIL_STALL_S = 0.1
TAIL_STALL_MISSING = 0.01


def progress_gaps(trace: list[tuple[float, int]], baseline: int, target: int) -> dict:
    """The longest time the FIB count stood still between the first new route and the last
    (a stall), and how many routes were still missing then."""
    longest, missing = 0.0, 0
    changed_at, last = None, None
    for t, n in trace:
        if last is not None and n != last:
            if changed_at is not None and t - changed_at > longest and last > baseline:
                longest, missing = t - changed_at, target - last
            changed_at = t
        elif last is None:
            changed_at = t
        last = n
    return {"longest_stall_s": round(longest, 3), "missing_during_stall": missing}


def tail_stalled(stalls: dict, expected: int) -> bool:
    """The FIB stood still for >= 0.1 s with at most 1% of the routes missing. Seen between
    two BIRDs here (most runs at 10k/100k, for up to the keepalive interval, 3 s: the last
    ~0.16% of the routes), also with the receiver's kernel protocol disabled, so it is a
    BGP transfer effect between the BIRDs, not the kernel protocol's installation speed."""
    return stalls["longest_stall_s"] >= TAIL_STALL_S and stalls["missing_during_stall"] <= TAIL_STALL_MISSING * expected


class Watched:
    """One FIB a side fills: its counter, the count before, the routes it should gain."""

    def __init__(self, counter: FibCounter, baseline: int, expected: int):
        self.counter, self.baseline, self.expected = counter, baseline, expected


class Side:
    """One receiver (or several FIBs fed by one session) measured the same way: the sending
    BIRD's session is bounced and the watched FIBs polled."""

    def __init__(self, name: str, routes: int, send_sock: str, protocol: str, fibs: dict[str, Watched], pids,
                 notes=None):
        self.name, self.routes = name, routes
        self.send_sock, self.protocol = send_sock, protocol
        self.fibs, self.pids = fibs, pids
        self.notes = notes   # what to note after each run (e.g. the sessions' flaps), or None
        self.runs: list[dict] = []

    def complete(self) -> list[dict]:
        return [r for r in self.runs if r.get("complete")]

    def withdraw(self, timeout: float) -> float | None:
        """Disable the session if routes are installed; seconds until every FIB is back to
        its baseline (None when nothing was there)."""
        if all(w.counter() <= w.baseline for w in self.fibs.values()):
            return None
        started = time.time()
        birdc(self.send_sock, "disable", self.protocol)
        done, counts = poll_all({n: (w.counter, w.baseline) for n, w in self.fibs.items()}, timeout, at_most=True)
        if any(t is None for t in done.values()):
            raise RuntimeError(f"{self.name}: routes not withdrawn within {timeout:.0f} s: {counts}")
        return round(max(done.values()) - started, 4)

    def measure(self, timeout: float) -> dict:
        withdraw_s = self.withdraw(timeout)
        time.sleep(0.3)
        pids = self.pids()
        cpu_before = {k: cpu_seconds(p) for k, p in pids.items()}
        enabled = time.time()
        birdc(self.send_sock, "enable", self.protocol)
        traces = {name: [] for name in self.fibs}
        done, counts = poll_all({n: (w.counter, w.baseline + w.expected) for n, w in self.fibs.items()}, timeout,
                                traces=traces)
        state, established = protocol_since(self.send_sock, self.protocol)
        cpu = {k: round(cpu_seconds(p) - cpu_before[k], 3) for k, p in pids.items()}
        run = {"installed": {n: counts[n] - w.baseline for n, w in self.fibs.items()}, "withdraw_s": withdraw_s}
        if self.notes is not None:
            run["notes"] = self.notes()
        if any(t is None for t in done.values()) or established is None or state != "up":
            run.update(complete=False, state=state, cpu_s=cpu)
            self.runs.append(run)
            return run
        run.update(self._figures(done, traces, established, enabled), cpu_s=cpu)
        self.runs.append(run)
        return run

    def _figures(self, done: dict, traces: dict, established: float, enabled: float) -> dict:
        last = max(done.values())
        seconds = last - established
        t99, stalls, tail = [], [], False
        for name, watched in self.fibs.items():
            t99.append(next(t for t, n in traces[name] if n - watched.baseline >= 0.99 * watched.expected))
            gaps = progress_gaps(traces[name], watched.baseline, watched.baseline + watched.expected)
            stalls.append(gaps)
            tail |= tail_stalled(gaps, watched.expected)
        worst = max(stalls, key=lambda s: s["longest_stall_s"])
        return {"complete": True, "seconds": round(seconds, 4),
                "per_fib_s": {n: round(t - established, 4) for n, t in done.items()},
                "from_enable_s": round(last - enabled, 4),
                "established_after_enable_s": round(established - enabled, 4),
                "routes_per_s": round(self.routes / seconds) if seconds > 0 else None,
                "t99_s": round(max(t99) - established, 4), **worst, "tail_stall": tail}
