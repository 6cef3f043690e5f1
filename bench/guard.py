#!/usr/bin/env python3
"""The node's guard, side by side: nftables + u32 vs the BPF guard, and the `routing: own`
path, against plain namespaces (issue 12 part 2, issue 14). Run as root:

    python3 bench/guard.py [--runs 10] [--seconds 2] [--quick] [--variants]

Paths, all three hops, loopback to loopback, iperf3 client pinned to CPU 0 and server to
CPU 1 (bench/iperfrun.py), TCP (`-t SECONDS`) and 64-byte UDP (`-u -l 64 -b 0`):

* `plain`: four plain namespaces with the same HTB on every veth (bench/plainpath.py, its
  namespaces hbg-plain.* so this bench never meets bench/dataplane.py's);
* `nft`: the sliced line (bench/guardline.py: node namespaces, 100G substrate veths with
  HTB, one class per slice, private macvlans in the slivers) under vispd's nftables
  ingress guard and u32 source-MAC classification (compiler/resources/guard.py, shaping.py);
* `bpf`: the same line under the BPF guard (dataplane/bpf) on the hook detect picks (tcx
  here): one program per substrate device's egress that admits and classifies; the own
  slice is left out, as in a topology without own slices (no ingress programs);
* `own`: the `routing: own` slice o1 on the same line, BPF guard with own links: a veth
  per virtual link steered by the node (MAC rewrite + bpf_redirect to the substrate, an
  ingress program + bpf_redirect_peer into the far sliver);
* `--variants` adds `mixed` (the kernel-path slice while the own slice is guarded too, so
  every substrate device also runs the ingress program), `clsact` (the BPF guard on
  clsact + cls_bpf instead of tcx) and `noguard` (HTB alone, no guard, no classifier:
  what is left is macvlan).

Three slices (k1 600M and k2 300M kernel path, o1 300M own) on 100G links: classification
is active and HTB never binds. The guard is switched on the one line before each run, so
every other object is shared. Each round runs every path once per protocol (TCP for all
paths, then UDP), in an order that alternates between rounds; a ratio is the median over
rounds of path/plain within the round. UDP counts what the kernel delivered to the server
namespace's UDP layer (InDatagrams + RcvbufErrors, /proc/net/snmp), as bench/dataplane.py
does: `*_pps_ratio`. The machine is shared, and another process on CPU 0 takes packets
from whichever path runs, so each UDP run also records the CPU time spent on its packets
(the client's own, as iperf3 reports it, which includes the softirq forwarding done in
its context, plus what ksoftirqd did meanwhile): `*_pps_per_cpu_ratio` compares
datagrams per CPU-second, which other load disturbs far less (`*_tcp_per_cpu_ratio`
likewise megabits per CPU-second). Everything made is removed
in a `finally` (namespaces by name, iperf3 servers by PID). Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

# Run as a script, Python puts bench/ first on sys.path, where bench/dataplane.py would
# shadow the `dataplane` package: put the repository root there instead.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = REPO

from bench import guardline, iperfrun, plainpath  # noqa: E402
from dataplane import netns  # noqa: E402
from dataplane.bpf import detect  # noqa: E402

PREFIX = "hbg"  # namespaces PREFIX.* and PREFIX-plain.* (--prefix): never bench/dataplane.py's
CAPACITY = 100_000_000_000
SLICES = [guardline.SliceSpec("k1", 600_000_000), guardline.SliceSpec("k2", 300_000_000),
          guardline.SliceSpec("o1", 300_000_000, own=True)]
KEYS = {"bpf": "sliced", "nft": "nft", "own": "own", "mixed": "mixed", "clsact": "clsact", "noguard": "noguard"}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def udp_delivered(ns: str) -> int:
    """Datagrams the kernel delivered to the UDP layer of namespace `ns` so far."""
    with netns.entered(ns):
        with open("/proc/thread-self/net/snmp") as handle:
            rows = [line.split() for line in handle if line.startswith("Udp:")]
    fields = dict(zip(rows[0][1:], map(int, rows[1][1:])))
    return fields["InDatagrams"] + fields["RcvbufErrors"]


def one_run(path: dict, udp: bool, seconds: int, softirq_threads: list[int]) -> dict:
    server = path["server"]
    before, softirq_before = udp_delivered(server.ns), iperfrun.cpu_seconds(softirq_threads)
    report = iperfrun.client(path["client_ns"], path["client_addr"], server, seconds, udp)
    duration = report["end"]["sum_sent" if not udp else "sum"]["seconds"]
    cpu = iperfrun.client_cpu_seconds(report, udp) + iperfrun.cpu_seconds(softirq_threads) - softirq_before
    if not udp:
        mbps = iperfrun.tcp_mbps(report)
        return {"value": mbps, "per_cpu": mbps * duration / cpu if cpu > 0 else 0.0}
    delivered = udp_delivered(server.ns) - before
    return {"value": delivered / duration, "per_cpu": delivered / cpu if cpu > 0 else 0.0}


class Paths:
    """The plain line and the sliced line, their iperf3 servers; `close` removes all."""

    def __init__(self, variants: bool, prefix: str = PREFIX):
        self.prefix = prefix
        self.plain = plainpath.PlainPath(f"{prefix}-plain.")
        self.line: guardline.Line | None = None
        self.servers: list[iperfrun.Server] = []
        self.paths: dict[str, dict] = {}
        self.variants = variants
        self.mode = detect.available().mode

    def build(self) -> None:
        self.plain.build(CAPACITY, SLICES[0].rate)
        self.line = guardline.build(self.prefix, CAPACITY, SLICES, guard=self.mode)
        (pcns, pcaddr), (psns, psaddr) = self.plain.endpoints()
        self._add("plain", (pcns, pcaddr, psns, psaddr), None)
        kernel, own = self._ends("k1"), self._ends("o1")
        self._add("nft", kernel, ("nft", True))
        self._add("bpf", kernel, (self.mode, False))
        self._add("own", own, (self.mode, True))
        if self.variants:
            self._add("mixed", kernel, (self.mode, True))
            if self.mode != "clsact":
                self._add("clsact", kernel, ("clsact", False))
            self._add("noguard", kernel, ("none", True))

    def _ends(self, slice_name: str) -> tuple[str, str, str, str]:
        line = self.line
        return (line.sliver(slice_name, "a"), line.loopback(slice_name, "a"),
                line.sliver(slice_name, "d"), line.loopback(slice_name, "d"))

    def _add(self, name: str, ends: tuple[str, str, str, str], guard: tuple[str, bool] | None) -> None:
        cns, caddr, sns, saddr = ends
        server = next((s for s in self.servers if s.ns == sns), None)
        if server is None:
            server = iperfrun.Server(sns, saddr)
            self.servers.append(server)
            server.start()
        self.paths[name] = {"client_ns": cns, "client_addr": caddr, "server": server, "guard": guard}

    def prepare(self, name: str) -> None:
        guard = self.paths[name]["guard"]
        if guard is not None:
            guardline.use_guard(self.line, guard[0], with_own=guard[1])

    def close(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        if self.line is not None:
            guardline.teardown(self.line)
        self.plain.teardown()


def measure(paths: Paths, runs: int, seconds: int) -> dict[tuple[str, bool], list[dict]]:
    names = list(paths.paths)
    softirq_threads = iperfrun.ksoftirqd_pids()
    for name in names:  # warm-up (ARP, caches), not counted
        paths.prepare(name)
        one_run(paths.paths[name], False, 1, softirq_threads)
    results: dict[tuple[str, bool], list[dict]] = {(n, u): [] for n in names for u in (False, True)}
    for i in range(runs):
        order = names if i % 2 == 0 else list(reversed(names))
        for udp in (False, True):
            for name in order:
                paths.prepare(name)
                result = one_run(paths.paths[name], udp, seconds, softirq_threads)
                results[(name, udp)].append(result)
                unit = "datagrams/s" if udp else "Mbit/s"
                say(f"  round {i + 1}/{runs} {name:8s} {'udp64' if udp else 'tcp  '} {result['value']:,.0f} {unit}, "
                    f"{result['per_cpu']:,.0f} per CPU-second")
    return results


def pair_ratios(results: dict, path: str, udp: bool, key: str = "value") -> list[float]:
    pairs = zip(results[(path, udp)], results[("plain", udp)])
    return [round(mine[key] / plain[key], 3) for mine, plain in pairs if plain[key]]


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarize(results: dict, mode: str, runs: int, seconds: int, quick: bool) -> dict:
    out: dict = {"runs": runs, "seconds": seconds, "quick": quick, "bpf_hook": mode,
                 "load_average": [round(x, 2) for x in os.getloadavg()]}
    names = sorted({name for name, _ in results})
    for name in names:
        out[f"tcp_mbps_{name}"] = round(statistics.median(r["value"] for r in results[(name, False)]), 1)
        out[f"udp64_pps_{name}"] = round(statistics.median(r["value"] for r in results[(name, True)]))
    for name, key in KEYS.items():
        if name not in names:
            continue
        for udp, metric, field in ((True, "pps", "value"), (False, "tcp", "value"),
                                   (True, "pps_per_cpu", "per_cpu"), (False, "tcp_per_cpu", "per_cpu")):
            pairs = pair_ratios(results, name, udp, field)
            out[f"{key}_vs_plain_{metric}_ratio"] = _median(pairs)
            out[f"{key}_vs_plain_{metric}_ratio_pairs"] = pairs
    bpf_nft = [round(b["value"] / n["value"], 3) for b, n in zip(results[("bpf", True)], results[("nft", True)])
               if n["value"]]
    out["bpf_vs_nft_pps_ratio"] = _median(bpf_nft)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="rounds (each path once per protocol)")
    parser.add_argument("--seconds", type=int, default=2, help="length of each iperf3 run")
    parser.add_argument("--quick", action="store_true", help="one round of 1 s runs (for the test suite)")
    parser.add_argument("--variants", action="store_true", help="also mixed, clsact and noguard (attribution)")
    parser.add_argument("--prefix", default=PREFIX, help="names of this run's namespaces (default %(default)s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds = 1, 1
    return args


def refuse_leftovers(paths: Paths) -> None:
    ours = netns.list_names(paths.prefix + ".") + paths.plain.leftovers()
    if ours:
        sys.exit(f"namespaces from an earlier run exist, remove them first: {', '.join(ours[:8])} ...")


def print_summary(figures: dict) -> None:
    for key in ("sliced", "nft", "own", "mixed", "clsact", "noguard"):
        if f"{key}_vs_plain_pps_ratio" in figures:
            say(f"{key:8s} vs plain: pps {figures[f'{key}_vs_plain_pps_ratio']} "
                f"(per CPU-second {figures[f'{key}_vs_plain_pps_per_cpu_ratio']})  "
                f"tcp {figures[f'{key}_vs_plain_tcp_ratio']} "
                f"(per CPU-second {figures[f'{key}_vs_plain_tcp_per_cpu_ratio']})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench/guard.py needs root (network namespaces)")
    capability = detect.available()
    if not capability.ok:
        sys.exit(f"bench/guard.py needs the BPF guard: {capability.reason}")
    paths = Paths(args.variants, args.prefix)
    refuse_leftovers(paths)
    started = time.monotonic()
    try:
        paths.build()
        results = measure(paths, args.runs, args.seconds)
    finally:
        paths.close()
    figures = summarize(results, capability.mode, args.runs, args.seconds, args.quick)
    figures["wall_s"] = round(time.monotonic() - started, 1)
    print_summary(figures)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
