#!/usr/bin/env python3
"""Where the border router's time goes (issue 11, part 3 of the bench work). Root:

    python3 bench/bgpborder.py [--quick] [--routes 100000] [--variants stock,profiled,...]

`vispd up` of bench/bgp.py's ingestion topology (`hbbdN`: one node, provider p1 originating
N generated prefixes, slices s1 and s2 egressing through it), then, for each variant, the
border's ExaBGP is restarted by this script in the node's namespace with vispd's own
command line, environment and working directory (read from /proc of the one vispd started)
plus the variant's changes, and measured the same way: once it has passed the table to
both slices, the provider's session is bounced (`birdc disable/enable vispd`): withdrawal
time, then load time (Established until both slices' FIBs hold the N + 1 routes), and the
CPU seconds of every process of the path (/proc/PID/stat) during the load.

Variants (they accumulate left to right after `nolog`):
  stock     what vispd runs (restarted the same way as the others, for a fair comparison)
  profiled  stock, with the border's ExaBGP and helper under cProfile counting CPU time
            (bench/profiled.py); the top functions and the named hot spots are reported
  nolog     exabgp.log.processes=false exabgp.log.statistics=false (a log line per route
            the helper injects, a line per UPDATE)
  nocopy    + no copy.deepcopy of every injected route (bench/exabgp_patched.py)
  limit     + 5000 API steps per reactor loop instead of 50 (bench/exabgp_patched.py)

The patched variants are prototypes that measure what each hot spot costs (for issue 12's
ingestion work); vispd does not run them. The last line printed is one JSON object.
I/O (root): a vispd topology and the ExaBGP processes it restarts, removed at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = REPO  # as a script, bench/ would come first

from measure import say  # noqa: E402

from bench.bgpingest import INGEST_SLICES, SESSION, ingest_topology  # noqa: E402
from bench.bgpkit import (FibCounter, Vispd, birdc, cpu_seconds, poll_all, protocol_since, provider_sock,  # noqa: E402
                          refuse_leftovers, vm_kib, write)
from model.naming import node_ns, sliver_ns  # noqa: E402

VARIANTS = {
    "stock": {},
    "profiled": {"profile": True},
    "nolog": {"env": {"exabgp.log.processes": "false", "exabgp.log.statistics": "false"}},
    "nocopy": {"env": {"exabgp.log.processes": "false", "exabgp.log.statistics": "false", "HB_NOCOPY": "1"},
               "patched": True},
    "limit": {"env": {"exabgp.log.processes": "false", "exabgp.log.statistics": "false", "HB_NOCOPY": "1",
                      "HB_ASYNC_LIMIT": "5000"}, "patched": True},
}
HOT_SPOTS = {   # what the profile's cumulative CPU time is summed for: (file suffix, function)
    "deepcopy_in_remove_self": ("exabgp/bgp/neighbor.py", "remove_self"),
    "api_route_log_lines": ("exabgp/reactor/api/__init__.py", "log_message"),
    "all_logging": ("exabgp/logger/__init__.py", "logger"),
    "api_commands_run": ("exabgp/reactor/asynchronous.py", "run"),
    "outgoing_rib_add": ("exabgp/rib/outgoing.py", "add_to_rib"),
    "updates_built_and_sent": ("exabgp/reactor/protocol.py", "new_update"),
    "updates_received_decoded": ("exabgp/reactor/protocol.py", "read_message"),
    "json_to_helper": ("exabgp/reactor/api/response/json.py", "update"),
    "helper_commands_read": ("exabgp/reactor/api/processes.py", "received"),
}


class BorderUnderTest:
    """The border's ExaBGP of one topology's egress node, restarted by us."""

    def __init__(self, vispd: Vispd, topology: str, node: str, workdir: str):
        self.vispd, self.topology, self.node, self.workdir = vispd, topology, node, workdir
        self.stem = f"border-{node}"
        pid = vispd.daemon_pid(topology, self.stem)
        self.argv = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")[:-1]
        self.env = dict(line.split("=", 1) for line in
                        open(f"/proc/{pid}/environ", "rb").read().decode().split("\0") if "=" in line)
        self.cwd = os.readlink(f"/proc/{pid}/cwd")
        self.pid: int | None = pid       # vispd's, until we restart it
        self.proc: subprocess.Popen | None = None

    def stop(self) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and os.path.exists(f"/proc/{self.pid}") and not _zombie(self.pid):
            time.sleep(0.05)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.pid, self.proc = None, None

    def start(self, name: str, variant: dict) -> None:
        """Start the border's ExaBGP as the variant says; returns once its helper runs."""
        python, conf = self.argv[0], self.argv[-1]
        env = {**self.env, **variant.get("env", {})}
        module = ["-m", "bench.exabgp_patched"] if variant.get("patched") else ["-m", "exabgp"]
        if variant.get("profile"):
            conf = self._profiled_conf(conf, name)
            module = [os.path.join(REPO, "bench", "profiled.py"), self.profile_path(name, "exabgp"),
                      module[1]]
        argv = ["ip", "netns", "exec", node_ns(self.topology, self.node), python, *module, "server", conf]
        log = open(os.path.join(self.workdir, f"{name}.exabgp.out"), "w")
        self.proc = subprocess.Popen(argv, env=env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.pid = self.proc.pid
        if not _wait(lambda: self.vispd.border(self.topology, self.node).get("exabgp_pid") == self.pid, 60):
            raise RuntimeError(f"{name}: the border's helper never reported under ExaBGP {self.pid}")

    def profile_path(self, name: str, what: str) -> str:
        return os.path.join(self.workdir, f"{name}.{what}.prof")

    def _profiled_conf(self, conf: str, name: str) -> str:
        """A copy of the border's ExaBGP configuration whose helper runs under cProfile."""
        text = open(conf).read()
        wrapped = text.replace(" -m bgp.helper ", f" {os.path.join(REPO, 'bench', 'profiled.py')} "
                                                 f"{self.profile_path(name, 'helper')} bgp.helper ")
        if wrapped == text:
            raise RuntimeError(f"no `-m bgp.helper` in {conf}")
        return write(self.workdir, f"{name}.conf", wrapped)

    def helper_pid(self) -> int | None:
        return self.vispd.border(self.topology, self.node).get("pid")


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _wait(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)
    return value


# -- one variant -----------------------------------------------------------------------------------
def measure_variant(border: BorderUnderTest, name: str, variant: dict, counters: dict, targets: dict,
                    baselines: dict, routes: int, timeout: float) -> dict:
    vispd, topology = border.vispd, border.topology
    border.stop()   # the slices' sessions with it drop: they flush its routes
    flushed, counts = poll_all({s: (counters[s], baselines[s]) for s in counters}, timeout, at_most=True)
    if any(t is None for t in flushed.values()):
        raise RuntimeError(f"{name}: the slices kept the stopped border's routes: {counts}")
    border.start(name, variant)
    full = {s: (counters[s], targets[s]) for s in counters}
    done, counts = poll_all(full, timeout)
    if any(t is None for t in done.values()):
        raise RuntimeError(f"{name}: the slices never got the table back: {counts}")
    time.sleep(1.0)
    sock = provider_sock(topology, "p1")
    started = time.time()
    birdc(sock, "disable", SESSION)
    gone, counts = poll_all({s: (counters[s], baselines[s]) for s in counters}, timeout, at_most=True)
    if any(t is None for t in gone.values()):
        raise RuntimeError(f"{name}: routes not withdrawn: {counts}")
    withdraw_s = max(gone.values()) - started
    time.sleep(0.5)
    pids = {"border_exabgp": border.pid, "border_helper": border.helper_pid(),
            **{f"{s}_{p}": pid for s in INGEST_SLICES
               for p, pid in (("exabgp", vispd.daemon_pid(topology, f"exabgp-{s}-a")),
                              ("helper", vispd.speaker(topology, s, "a").get("pid")))},
            "provider_bird": vispd.daemon_pid(topology, "bird-p1")}
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    birdc(sock, "enable", SESSION)
    done, counts = poll_all(full, timeout)
    cpu = {k: cpu_seconds(p) - before[k] for k, p in pids.items()}
    state, established = protocol_since(sock, SESSION)
    if any(t is None for t in done.values()) or established is None:
        raise RuntimeError(f"{name}: load incomplete ({state}): {counts}")
    load_s = round(max(done.values()) - established, 3)
    p1 = vispd.border_neighbor(topology, "a", "p1")
    result = {"provider_session": {k: p1.get(k) for k in ("state", "flaps", "last_down_reason")},
              "border_exabgp_hwm_mib": round(vm_kib(border.pid, "VmHWM") / 1024, 1),
              "withdraw_s": round(withdraw_s, 3), "load_s": load_s,
              "routes_per_s": round(routes / load_s), "us_per_route": round(load_s * 1e6 / routes, 1),
              "cpu_us_per_route": {k: round(v * 1e6 / routes, 1) for k, v in cpu.items()}}
    if variant.get("profile"):
        border.stop()   # ExaBGP and its helper write their profiles as they exit
        result["profile"] = {what: summarise(border.profile_path(name, what)) for what in ("exabgp", "helper")}
    say(f"{name}: withdraw {result['withdraw_s']} s, load {result['load_s']} s ({result['routes_per_s']} routes/s "
        f"to each of {len(INGEST_SLICES)} slices); CPU µs/route {result['cpu_us_per_route']}")
    return result


def summarise(path: str, top: int = 12) -> dict:
    """CPU seconds in all, the named hot spots' cumulative seconds and share, and the top
    functions by own time, from a cProfile file."""
    if not os.path.exists(path):
        return {"missing": path}
    stats = pstats.Stats(path)
    total = stats.total_tt
    spots = {}
    for label, (suffix, function) in HOT_SPOTS.items():
        cum = sum(entry[3] for (file, _, func), entry in stats.stats.items()
                  if file.endswith(suffix) and func == function)
        if cum:
            spots[label] = {"s": round(cum, 3), "share": round(cum / total, 3) if total else None}
    ranked = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:top]
    return {"cpu_s": round(total, 3), "hot_spots": spots,
            "top_own_time": [{"function": f"{os.path.basename(file)}:{line}({func})", "own_s": round(entry[2], 3),
                              "cum_s": round(entry[3], 3), "calls": entry[1]}
                             for (file, line, func), entry in ranked]}


# -- main ----------------------------------------------------------------------------------------------
def run(args, workdir: str) -> dict:
    routes = 1000 if args.quick else args.routes
    name = f"hbbd{'q' if args.quick else ''}{routes}"
    refuse_leftovers([name])
    vispd = Vispd(os.path.join(workdir, "state"))
    timeout = 60 + routes / 200
    result = {"quick": args.quick, "routes": routes, "slices": len(INGEST_SLICES), "variants": {}}
    counters, border = {}, None
    try:
        vispd.run("up", write(workdir, f"{name}.yaml", ingest_topology(name, routes)), timeout=600)
        counters = {s: FibCounter(sliver_ns(name, "a", s)) for s in INGEST_SLICES}
        if not _wait(lambda: all(vispd.to_border(name, s, "a").get("installed", 0) >= routes + 1
                                 for s in INGEST_SLICES), timeout):
            raise RuntimeError(f"{name}: first load incomplete")
        installed = {s: vispd.to_border(name, s, "a")["installed"] for s in INGEST_SLICES}
        targets = {s: counters[s]() for s in INGEST_SLICES}
        baselines = {s: targets[s] - installed[s] for s in INGEST_SLICES}
        border = BorderUnderTest(vispd, name, "a", workdir)
        for variant in args.variants.split(","):
            result["variants"][variant] = measure_variant(border, variant, VARIANTS[variant], counters, targets,
                                                          baselines, routes, timeout)
    finally:
        for counter in counters.values():
            counter.close()
        if border is not None:
            border.stop()
        if args.keep:
            with contextlib.suppress(OSError):
                shutil.copytree(vispd.run_dir(name), os.path.join(workdir, f"run-{name}"), dirs_exist_ok=True)
        with contextlib.suppress(Exception):
            vispd.run("down", name, timeout=900)
    variants = result["variants"]
    if "stock" in variants:
        for variant, figures in variants.items():
            figures["speedup_vs_stock"] = round(variants["stock"]["load_s"] / figures["load_s"], 2)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 routes: about a minute")
    parser.add_argument("--routes", type=int, default=100_000, help="prefixes the provider originates")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"among {','.join(VARIANTS)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (profiles, logs)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("run as root")
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so that `finally` cleans up
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="vispd-bench-bgpborder-")
    os.chmod(workdir, 0o755)
    try:
        result = run(args, workdir)
    finally:
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result["runtime_s"] = round(time.monotonic() - started, 1)
    say(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
