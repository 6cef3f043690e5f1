#!/usr/bin/env python3
"""vispd data-plane benchmark (issues 2 and 12). Run as root:

    python3 bench/dataplane.py [--runs 10] [--seconds 2] [--reps 3] [--variants] [--profile]
                               [--quick] [--prefix hb]

1. Data path. Two slivers three hops apart through the vISP (topology PREFIXline: nodes
   a-b-c-d in a line, 100G links, slices s1 600M and s2 300M both spanning everything, so
   every substrate device has two HTB classes and every node's guard admits two slices),
   built by `vispd up` with the node's guard this machine runs (`sliced`: the BPF guard
   where the kernel has tc BPF), and the same line under the nftables fallback
   (PREFIXlinenft, built with VISPD_BPF=off: nft ingress guard + u32 source-MAC filters;
   `nft`), against the same line built as plain namespaces (veths, kernel forwarding,
   static routes, no macvlan, no guard; bench/plainpath.py) carrying the same HTB
   (capacity class + a 600M/100G leaf) on every veth egress. The links are 100G because at
   10G the HTB ceiling binds TCP on this machine (~9 Gbit/s): with 100G the shaping is
   non-binding on every path, so the ratio measures slicing alone.
   iperf3 from the sliver (namespace) on a to the one on d, loopback to loopback, client
   pinned to CPU 0 and server to CPU 1: TCP (`-t SECONDS`) and 64-byte UDP
   (`-u -l 64 -b 0`). The paths take turns (the order alternates); each ratio is the
   median over `--runs` rounds of the ratio within the round (adjacent runs, so the
   machine's slow drifts cancel); the ratio of the medians is printed too.
   UDP is counted three ways: datagrams/s sent (iperf3 client), received by the iperf3
   server (its JSON via `--get-server-output`: packets - lost), and delivered by the
   kernel to the UDP layer of the server's namespace (Udp InDatagrams + RcvbufErrors from
   /proc/net/snmp there). `*_vs_plain_pps_ratio` uses the kernel count: on this machine
   iperf3's receiver tops out near 200k datagrams/s, below what the plain path forwards,
   so its own count measures the receiver and not the path (the JSON keeps it as
   `sliced_vs_plain_pps_iperf3_rx_ratio`, with `udp64_iperf3_receiver_bound`). Another
   process on the client's CPU takes packets from whichever path runs, so each UDP run
   also records the CPU time spent on its packets (the client's, as iperf3 reports it,
   which includes the softirq forwarding done in its context, plus what ksoftirqd did
   meanwhile): `*_vs_plain_pps_per_cpu_ratio` compares datagrams per CPU-second, which
   other load disturbs far less (as bench/guard.py does).
   `own` (issue 14): the same line with s1 `routing: own` (PREFIXlineown: s1's ends are
   veths into the node, its frames steered by the node's guard; s2 stays on the kernel
   path beside it), s1's routes written as its own software would (bench/ownpath.py), under
   the machine's guard, and under the nftables fallback (`own-nft`, PREFIXlineownnft) where
   the machine's guard is BPF: `own_vs_plain_tcp_ratio` and `own_vs_plain_pps_ratio`.
   `--variants` adds the sliced path without its guard, and without guard and classifier
   (bench/variants.py), to show where slicing's cost goes.
2. Up time (bench/uptime.py). `vispd up` in-process against the floor (the same kernel
   objects made by minimal scripts, bench/floor.py) for a renamed copy of abilene
   (PREFIXabilene) and a generated 100-node, 200-link, 10-slice topology (PREFIX100,
   bench/topogen.py, fixed seed); `up_vs_floor_ratio` is the latter's. `--profile` prints
   a cProfile of one up, re-up and down of PREFIX100.
3. `--quick` (for the test suite: the bench must not rot): one round of 1-second runs, and
   up against the floor once on a 12-node topology (PREFIXq) instead of abilene and the
   100-node one; the same JSON keys.
4. Everything is removed in a `finally`: vispd down for the bench's topologies, the vbp-*
   namespaces by name, iperf3 servers by PID. The last line printed is one JSON object.

I/O (root): topologies and namespaces of its own, removed when it ends.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time

# Run as a script, Python puts bench/ first on sys.path, where this very file would shadow
# the `dataplane` package: put the repository root there instead.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = REPO

from bench import floor, iperfrun, ownpath, plainpath, topogen, uptime, variants  # noqa: E402
from compiler.loader import load_topology  # noqa: E402
from dataplane import netns  # noqa: E402
from measure import median, ratio, say  # noqa: E402
from model.units import parse_bandwidth  # noqa: E402
from vispd import engine  # noqa: E402

LINE_CAPACITY, LINE_GUARANTEES = "100G", ("600M", "300M")
OWN_ROUTINGS = ("own", "static")  # the own line: s1 routes itself, s2 on the kernel path beside it


class Names:
    """The bench's topologies and plain namespaces, all under one prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.line, self.line_nft = f"{prefix}line", f"{prefix}linenft"
        self.line_own, self.line_own_nft = f"{prefix}lineown", f"{prefix}lineownnft"
        self.abilene, self.big, self.quick = f"{prefix}abilene", f"{prefix}100", f"{prefix}q"
        self.plain = plainpath.PlainPath(f"{floor.FLOOR_PREFIX}{prefix}plain.")

    def leftovers(self) -> list[str]:
        mine = [f"vispd.{t}." for t in (*self.lines(), self.abilene, self.big, self.quick)]
        mine += [floor.floor_name(p) for p in mine]
        return [n for n in netns.list_names() if n.startswith(tuple(mine))] + self.plain.leftovers()

    def lines(self) -> tuple[str, ...]:
        return self.line, self.line_nft, self.line_own, self.line_own_nft


class Cleanup(uptime.Made):
    """What this run created, so `finally` removes exactly that."""

    def __init__(self) -> None:
        super().__init__()
        self.servers: list[iperfrun.Server] = []

    def run(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        for name in reversed(self.topologies):
            try:
                engine.down(name)
            except Exception as exc:  # keep cleaning the rest
                print(f"cleanup: vispd down {name}: {exc}", file=sys.stderr)
        floor.teardown(sorted(n for n in self.namespaces if netns.exists(n)))


def write_topology(workdir: str, name: str, text: str) -> str:
    path = os.path.join(workdir, f"{name}.yaml")
    with open(path, "w") as handle:
        handle.write(text)
    return path


@contextlib.contextmanager
def environment(**values: str):
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- 1. data path ----------------------------------------------------------------------
def udp_delivered(ns: str) -> int:
    """Datagrams the kernel delivered to the UDP layer of namespace `ns` so far."""
    with netns.entered(ns):
        with open("/proc/thread-self/net/snmp") as handle:
            rows = [line.split() for line in handle if line.startswith("Udp:")]
    fields = dict(zip(rows[0][1:], map(int, rows[1][1:])))
    return fields["InDatagrams"] + fields["RcvbufErrors"]


SOFTIRQ_THREADS = iperfrun.ksoftirqd_pids()


def one_run(path: dict, udp: bool, seconds: int) -> dict:
    path.get("prepare", lambda: None)()
    try:
        before, softirq_before = udp_delivered(path["server"].ns), iperfrun.cpu_seconds(SOFTIRQ_THREADS)
        report = iperfrun.client(path["client_ns"], path["client_addr"], path["server"], seconds, udp)
        delivered = udp_delivered(path["server"].ns) - before
        cpu = iperfrun.client_cpu_seconds(report, udp) + iperfrun.cpu_seconds(SOFTIRQ_THREADS) - softirq_before
    finally:
        path.get("restore", lambda: None)()
    if not udp:
        return {"mbps": iperfrun.tcp_mbps(report)}
    return {"kernel_pps": delivered / report["end"]["sum"]["seconds"], "per_cpu": delivered / cpu if cpu > 0 else 0.0,
            "rx_pps": iperfrun.udp_received_pps(report), "tx_pps": iperfrun.udp_sent_pps(report)}


def sliced_line(workdir: str, cleanup: Cleanup, name: str, routings: tuple[str, ...] = (),
                **env: str) -> tuple[dict, object]:
    """`vispd up` of the line (with `env`, e.g. VISPD_BPF=off; s1 and s2 routed as
    `routings` says, default static); its path (s1, a to d) and plan."""
    source = write_topology(workdir, name, topogen.line_topology(name, LINE_CAPACITY, LINE_GUARANTEES, routings))
    topo = load_topology(source)
    cleanup.topologies.append(name)
    with environment(**env):
        engine.up(topo, source)
        plan = engine.topology_plan(topo)
    if routings[:1] == ("own",):
        ownpath.route_line(plan, "s1")  # what the slice's own software would write
    a, d = plan.sliver("s1", "a"), plan.sliver("s1", "d")
    return {"client_ns": a.ns, "client_addr": a.loopback, "server": iperfrun.Server(d.ns, d.loopback)}, plan


def setup_paths(workdir: str, cleanup: Cleanup, names: Names, with_variants: bool) -> tuple[dict[str, dict], str]:
    """The paths to measure, and the guard of the sliced one."""
    guard = engine.node_guard()
    paths: dict[str, dict] = {}
    paths["sliced"], plan = sliced_line(workdir, cleanup, names.line)
    if guard != "nft":
        paths["nft"], _ = sliced_line(workdir, cleanup, names.line_nft, VISPD_BPF="off")
    paths["own"], _ = sliced_line(workdir, cleanup, names.line_own, OWN_ROUTINGS)
    if guard != "nft":
        paths["own-nft"], _ = sliced_line(workdir, cleanup, names.line_own_nft, OWN_ROUTINGS, VISPD_BPF="off")
    capacity, rate = parse_bandwidth(LINE_CAPACITY), parse_bandwidth(LINE_GUARANTEES[0])
    cleanup.namespaces.update(names.plain.names())
    names.plain.build(capacity, rate)
    (plain_cns, plain_caddr), (plain_sns, plain_saddr) = names.plain.endpoints()
    paths["plain"] = {"client_ns": plain_cns, "client_addr": plain_caddr,
                      "server": iperfrun.Server(plain_sns, plain_saddr)}
    for path in paths.values():
        cleanup.servers.append(path["server"])
        path["server"].start()
    if with_variants:
        for name, (prepare, restore) in variants.hooks(plan, capacity, rate).items():
            paths[name] = dict(paths["sliced"], prepare=prepare, restore=restore)
    return paths, guard


def measure_datapath(workdir: str, cleanup: Cleanup, names: Names, runs: int, seconds: int,
                     with_variants: bool) -> dict:
    paths, guard = setup_paths(workdir, cleanup, names, with_variants)
    for name in paths:  # warm-up (ARP on the plain path, caches), not counted
        one_run(paths[name], udp=False, seconds=1)
    results: dict[tuple[str, bool], list[dict]] = {(p, u): [] for p in paths for u in (False, True)}
    for i in range(runs):
        order = list(paths) if i % 2 == 0 else list(reversed(paths))
        for udp in (False, True):
            for name in order:
                result = one_run(paths[name], udp, seconds)
                results[(name, udp)].append(result)
                say(f"  run {i + 1}/{runs} {name:24s} {'udp64' if udp else 'tcp  '} "
                    + " ".join(f"{k}={v:,.0f}" for k, v in result.items()))
    for path in paths.values():
        path["server"].stop()
    return dict(summarize_datapath(results, list(paths), runs, seconds), datapath_guard=guard)


def pair_ratios(results: dict, path: str, udp: bool, key: str, versus: str = "plain") -> list[float]:
    """path/versus within each round (slow drifts of the machine cancel)."""
    pairs = zip(results[(path, udp)], results[(versus, udp)])
    return [round(mine[key] / other[key], 3) for mine, other in pairs if other[key]]


def pair_ratio(results: dict, path: str, udp: bool, key: str, versus: str = "plain") -> float | None:
    return median(pair_ratios(results, path, udp, key, versus), 3)


def summarize_datapath(results: dict, names: list[str], runs: int, seconds: int) -> dict:
    def med(path: str, udp: bool, key: str) -> float:
        return round(median([r[key] for r in results[(path, udp)]]), 1)

    out: dict = {"datapath_runs": runs, "datapath_seconds_per_run": seconds,
                 "datapath_link_capacity": LINE_CAPACITY, "datapath_guarantees": list(LINE_GUARANTEES)}
    for path in names:
        key = path.replace("-", "_")
        out[f"tcp_mbps_{key}"] = med(path, False, "mbps")
        for metric in ("kernel", "rx", "tx"):
            out[f"udp64_{metric}_pps_{key}"] = med(path, True, f"{metric}_pps")
        out[f"tcp_mbps_{key}_runs"] = [round(r["mbps"]) for r in results[(path, False)]]
        out[f"udp64_kernel_pps_{key}_runs"] = [round(r["kernel_pps"]) for r in results[(path, True)]]
    for path in names:
        if path == "plain":
            continue
        key = path.replace("-", "_")
        out[f"{key}_vs_plain_tcp_ratio"] = pair_ratio(results, path, False, "mbps")
        out[f"{key}_vs_plain_pps_ratio"] = pair_ratio(results, path, True, "kernel_pps")
        out[f"{key}_vs_plain_tcp_ratio_pairs"] = pair_ratios(results, path, False, "mbps")
        out[f"{key}_vs_plain_pps_ratio_pairs"] = pair_ratios(results, path, True, "kernel_pps")
        out[f"{key}_vs_plain_pps_per_cpu_ratio"] = pair_ratio(results, path, True, "per_cpu")
        out[f"{key}_vs_plain_tcp_ratio_of_medians"] = ratio(out[f"tcp_mbps_{key}"], out["tcp_mbps_plain"])
        out[f"{key}_vs_plain_pps_ratio_of_medians"] = ratio(out[f"udp64_kernel_pps_{key}"], out["udp64_kernel_pps_plain"])
    if "nft" in names:
        out["sliced_vs_nft_pps_ratio"] = pair_ratio(results, "sliced", True, "kernel_pps", versus="nft")
    if "own" in names:  # what steering by where a frame entered costs over the kernel path
        out["own_vs_sliced_tcp_ratio"] = pair_ratio(results, "own", False, "mbps", versus="sliced")
        out["own_vs_sliced_pps_ratio"] = pair_ratio(results, "own", True, "kernel_pps", versus="sliced")
    out["sliced_vs_plain_pps_iperf3_rx_ratio"] = pair_ratio(results, "sliced", True, "rx_pps")
    out["sliced_vs_plain_pps_tx_ratio"] = pair_ratio(results, "sliced", True, "tx_pps")
    out["udp64_iperf3_receiver_bound"] = any(
        out[f"udp64_rx_pps_{p}"] < 0.95 * out[f"udp64_kernel_pps_{p}"] for p in ("sliced", "plain"))
    return out


# -- main --------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="iperf3 rounds per protocol")
    parser.add_argument("--seconds", type=int, default=2, help="length of each iperf3 run")
    parser.add_argument("--reps", type=int, default=3, help="up/floor repetitions for the 100-node topology")
    parser.add_argument("--abilene-reps", type=int, default=5, help="up/floor repetitions for abilene")
    parser.add_argument("--skip-datapath", action="store_true")
    parser.add_argument("--skip-up", action="store_true")
    parser.add_argument("--variants", action="store_true",
                        help="also measure the sliced path without its guard / classifier (bench/variants.py)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one up of PREFIX100")
    parser.add_argument("--quick", action="store_true", help="one round of 1 s runs, up vs floor once on 12 nodes")
    parser.add_argument("--prefix", default="hb", help="names of this run's topologies (default %(default)s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds, args.reps = 1, 1, 1
    return args


def print_summary(figures: dict, names: Names) -> None:
    if "tcp_mbps_sliced" in figures:
        say(f"data path: the sliced line under the {figures['datapath_guard']} guard"
            + (", and under the nft fallback" if "tcp_mbps_nft" in figures else ""))
        for path in ("sliced", "nft", "own", "own_nft"):
            if f"tcp_mbps_{path}" not in figures:
                continue
            say(f"  {path:7s} TCP {figures[f'tcp_mbps_{path}']:,.0f} Mbit/s (plain {figures['tcp_mbps_plain']:,.0f}): "
                f"ratio {figures[f'{path}_vs_plain_tcp_ratio']};  UDP64 delivered "
                f"{figures[f'udp64_kernel_pps_{path}']:,.0f} pps (plain {figures['udp64_kernel_pps_plain']:,.0f}): "
                f"ratio {figures[f'{path}_vs_plain_pps_ratio']} (median of round ratios; ratio of medians "
                f"{figures[f'{path}_vs_plain_pps_ratio_of_medians']}; per CPU-second "
                f"{figures[f'{path}_vs_plain_pps_per_cpu_ratio']})")
        if "own_vs_sliced_pps_ratio" in figures:
            say(f"  own vs sliced (side by side): TCP ratio {figures['own_vs_sliced_tcp_ratio']}, "
                f"pps ratio {figures['own_vs_sliced_pps_ratio']} (goals vs plain: TCP >= 0.90, pps >= 0.70)")
        if figures["udp64_iperf3_receiver_bound"]:
            say("  (iperf3's receiver fell behind the kernel: its own count measures the receiver)")
        for key in sorted(k for k in figures if k.endswith("_vs_plain_pps_ratio")
                          and k.startswith("sliced_") and k != "sliced_vs_plain_pps_ratio"):
            variant = key.removesuffix("_vs_plain_pps_ratio")
            say(f"  variant {variant}: pps ratio {figures[key]}  tcp ratio {figures[variant + '_vs_plain_tcp_ratio']}")
    for name in (names.abilene, names.big, names.quick):
        fig = figures.get(name)
        if fig:
            say(f"{name}: {fig['plan_resources']} objects; up {fig['up_seconds']} s, floor {fig['floor_seconds']} s "
                f"({fig['floor_method']}; ip-batch {fig['floor_batch_seconds']} s, pyroute2 {fig['floor_pyroute2_seconds']} s)"
                f", up/floor {fig['up_vs_floor_ratio']}; re-up {fig['reup_noop_seconds']} s, down {fig['down_seconds']} s;"
                f" objects match {fig['floor_objects_match_up']}")


def measure_uptimes(workdir: str, cleanup: Cleanup, names: Names, args: argparse.Namespace) -> dict:
    figures: dict = {}
    if args.quick:
        say("up time vs floor: 12 nodes, 20 links, 3 slices (quick)")
        text = topogen.random_topology(names.quick, nodes=12, links=20, slices=3, span=6)
        figures[names.quick] = uptime.measure_up(write_topology(workdir, names.quick, text), cleanup, 1)
        figures["up_vs_floor_ratio"] = figures[names.quick]["up_vs_floor_ratio"]
        return figures
    say("up time vs floor: abilene copy")
    source = write_topology(workdir, names.abilene, topogen.abilene_copy(names.abilene))
    figures[names.abilene] = uptime.measure_up(source, cleanup, args.abilene_reps)
    say("up time vs floor: 100 nodes, 200 links, 10 slices of 30 nodes")
    source = write_topology(workdir, names.big, topogen.random_topology(names.big))
    figures[names.big] = uptime.measure_up(source, cleanup, args.reps)
    figures["up_vs_floor_ratio"] = figures[names.big]["up_vs_floor_ratio"]
    figures["up_vs_floor_ratio_abilene"] = figures[names.abilene]["up_vs_floor_ratio"]
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates network namespaces")
    names = Names(args.prefix)
    if names.leftovers():
        sys.exit(f"namespaces from an earlier run exist, remove them first: {', '.join(names.leftovers()[:8])} ...")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still clean up in `finally`
    os.environ["VISPD_STATE_DIR"] = state_dir = tempfile.mkdtemp(prefix="vbp-state-")
    started = time.perf_counter()
    figures: dict = {"up_method": "in-process vispd.engine.up(topo, source)", "quick": args.quick,
                     "node_guard": engine.node_guard(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    cleanup = Cleanup()
    workdir = tempfile.mkdtemp(prefix="vbp-yaml-")
    try:
        if not args.skip_datapath:
            say("data path: sliced (vISP slivers) vs plain namespaces, 3 hops")
            figures.update(measure_datapath(workdir, cleanup, names, args.runs, args.seconds, args.variants))
            for name in names.lines():
                if name in cleanup.topologies:
                    engine.down(name)
                    cleanup.topologies.remove(name)
            names.plain.teardown()
        if not args.skip_up:
            figures.update(measure_uptimes(workdir, cleanup, names, args))
        if args.profile:
            source = write_topology(workdir, names.big, topogen.random_topology(names.big))
            say(uptime.profile_up(source, cleanup))
    finally:
        cleanup.run()
        names.plain.teardown()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)
    figures["runtime_seconds"] = round(time.perf_counter() - started, 1)
    print_summary(figures, names)
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
