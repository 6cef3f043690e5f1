#!/usr/bin/env python3
"""vispd data-plane benchmark (issue 2, "Benchmark (not a test)"). Run as root:

    python3 bench/dataplane.py [--runs 10] [--seconds 2] [--reps 3] [--variants] [--profile]

1. Data path. Two slivers three hops apart through the vISP (topology `hbline`: nodes
   a-b-c-d in a line, 100G links, slices s1 600M and s2 300M both spanning everything, so
   every substrate device has two HTB classes with u32 MAC filters and every node's nft
   guard admits two slices) against the same line built as plain namespaces (veths,
   kernel forwarding, static routes, no macvlan, no nft; bench/plainpath.py) carrying the
   same HTB (capacity class + a 600M/100G leaf) on every veth egress. The links are 100G
   because at 10G the HTB ceiling binds TCP on this machine (~9 Gbit/s): with 100G the
   shaping is non-binding on both paths, so the ratio measures slicing alone.
   iperf3 from the sliver (namespace) on a to the one on d, loopback to loopback, client
   pinned to CPU 0 and server to CPU 1: TCP (`-t SECONDS`) and 64-byte UDP
   (`-u -l 64 -b 0`). Sliced and plain runs alternate (which goes first alternates too);
   each ratio is the median over `--runs` pairs of the ratio within the pair (adjacent
   runs, so the machine's slow drifts cancel); the ratio of the medians is printed too.
   UDP is counted three ways: datagrams/s sent (iperf3 client), received by the iperf3
   server (its JSON via `--get-server-output`: packets - lost), and delivered by the
   kernel to the UDP layer of the server's namespace (Udp InDatagrams + RcvbufErrors from
   /proc/net/snmp there). `sliced_vs_plain_pps_ratio` uses the kernel count: on this
   machine iperf3's receiver tops out near 200k datagrams/s, below what the plain path
   forwards, so its own count measures the receiver and not the path (the JSON keeps it
   as `sliced_vs_plain_pps_iperf3_rx_ratio`, with `udp64_iperf3_receiver_bound`).
   `--variants` adds the sliced path without its nft guard, and without guard and u32
   filters (bench/variants.py), to show where slicing's cost goes.
2. Up time. `vispd up` is timed in-process (`vispd.engine.up(topo, source)`: compile,
   observe, diff, apply; the YAML load is timed apart; no interpreter start-up) with a
   private VISPD_STATE_DIR, for a renamed copy of abilene (`hbabilene`) and a generated
   100-node, 200-link, 10-slice topology (`hb100`, bench/topogen.py, fixed seed). The
   floor makes the same kernel objects, derived from `compile_plan(topo).resources`, (a)
   with a minimal pyroute2 script and (b) with `ip -n NS -batch -` per namespace +
   `tc -n NS -batch -` + `nft -f -` (bench/floor.py); floor = the faster (median of
   each). A census of the kernel objects checks that up and both floors made the same
   things. A no-op re-up and `down` are timed too. Up and floor runs are interleaved,
   their order alternated, medians over `--reps`. `--profile` prints a cProfile of one
   up, re-up and down of hb100.
3. Everything is removed in a `finally`: vispd down for the hb* topologies, the vbp-*
   namespaces by name, iperf3 servers by PID. The last line printed is one JSON object.

I/O (root): topologies and namespaces of its own, removed when it ends.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import signal
import sys
import tempfile
import time

# Run as a script, Python puts bench/ first on sys.path, where this very file would shadow
# the `dataplane` package: put the repository root there instead.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = REPO

from bench import census, floor, iperfrun, plainpath, topogen, variants  # noqa: E402
from measure import median, ratio, say  # noqa: E402
from dataplane import netns  # noqa: E402
from vispd import engine  # noqa: E402
from compiler.loader import load_topology  # noqa: E402
from compiler.planner import compile_plan  # noqa: E402
from model.units import parse_bandwidth  # noqa: E402

LINE = "hbline"
ABILENE = "hbabilene"
BIG = "hb100"
LINE_CAPACITY, LINE_GUARANTEES = "100G", ("600M", "300M")
SETTLE = 1.0  # seconds after a teardown, for the kernel's asynchronous netns cleanup


class Cleanup:
    """What this run created, so `finally` removes exactly that."""

    def __init__(self) -> None:
        self.topologies: list[str] = []
        self.servers: list[iperfrun.Server] = []
        self.namespaces: set[str] = set()

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


def refuse_leftovers() -> None:
    ours = [n for n in netns.list_names() if n.startswith(("vbp-", f"vispd.{LINE}.", f"vispd.{ABILENE}.", f"vispd.{BIG}."))]
    if ours:
        sys.exit(f"namespaces from an earlier run exist, remove them first: {', '.join(ours[:8])} ...")


# -- 1. data path ----------------------------------------------------------------------
def udp_delivered(ns: str) -> int:
    """Datagrams the kernel delivered to the UDP layer of namespace `ns` so far."""
    with netns.entered(ns):
        with open("/proc/thread-self/net/snmp") as handle:
            rows = [line.split() for line in handle if line.startswith("Udp:")]
    fields = dict(zip(rows[0][1:], map(int, rows[1][1:])))
    return fields["InDatagrams"] + fields["RcvbufErrors"]


def one_run(path: dict, udp: bool, seconds: int) -> dict:
    path.get("prepare", lambda: None)()
    try:
        before = udp_delivered(path["server"].ns)
        report = iperfrun.client(path["client_ns"], path["client_addr"], path["server"], seconds, udp)
        delivered = udp_delivered(path["server"].ns) - before
    finally:
        path.get("restore", lambda: None)()
    if not udp:
        return {"mbps": iperfrun.tcp_mbps(report)}
    return {"kernel_pps": delivered / report["end"]["sum"]["seconds"],
            "rx_pps": iperfrun.udp_received_pps(report), "tx_pps": iperfrun.udp_sent_pps(report)}


def setup_paths(workdir: str, cleanup: Cleanup, with_variants: bool) -> dict[str, dict]:
    source = write_topology(workdir, LINE, topogen.line_topology(LINE, LINE_CAPACITY, LINE_GUARANTEES))
    topo = load_topology(source)
    plan = compile_plan(topo)
    cleanup.topologies.append(LINE)
    engine.up(topo, source)
    capacity, rate = parse_bandwidth(LINE_CAPACITY), parse_bandwidth(LINE_GUARANTEES[0])
    cleanup.namespaces.update(plainpath.names())
    plainpath.build(capacity, rate)
    a, d = plan.sliver("s1", "a"), plan.sliver("s1", "d")
    (plain_cns, plain_caddr), (plain_sns, plain_saddr) = plainpath.endpoints()
    sliced = {"client_ns": a.ns, "client_addr": a.loopback, "server": iperfrun.Server(d.ns, d.loopback)}
    paths = {
        "sliced": sliced,
        "plain": {"client_ns": plain_cns, "client_addr": plain_caddr, "server": iperfrun.Server(plain_sns, plain_saddr)},
    }
    for name in ("sliced", "plain"):
        cleanup.servers.append(paths[name]["server"])
        paths[name]["server"].start()
    if with_variants:
        for name, (prepare, restore) in variants.hooks(plan, capacity, rate).items():
            paths[name] = dict(sliced, prepare=prepare, restore=restore)
    return paths


def measure_datapath(workdir: str, cleanup: Cleanup, runs: int, seconds: int, with_variants: bool) -> dict:
    paths = setup_paths(workdir, cleanup, with_variants)
    for name in ("sliced", "plain"):  # warm-up (ARP on the plain path, caches), not counted
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
    for name in ("sliced", "plain"):
        paths[name]["server"].stop()
    return summarize_datapath(results, list(paths), runs, seconds)


def pair_ratios(results: dict, path: str, udp: bool, key: str) -> list[float]:
    """path/plain within each pair of adjacent runs (slow drifts of the machine cancel)."""
    pairs = zip(results[(path, udp)], results[("plain", udp)])
    return [round(mine[key] / plain[key], 3) for mine, plain in pairs if plain[key]]


def pair_ratio(results: dict, path: str, udp: bool, key: str) -> float:
    return round(median(pair_ratios(results, path, udp, key)), 3)


def summarize_datapath(results: dict, names: list[str], runs: int, seconds: int) -> dict:
    def med(path: str, udp: bool, key: str) -> float:
        return round(median([r[key] for r in results[(path, udp)]]), 1)

    out = {"datapath_runs": runs, "datapath_seconds_per_run": seconds,
           "datapath_link_capacity": LINE_CAPACITY, "datapath_guarantees": list(LINE_GUARANTEES)}
    for path in names:
        key = path.replace("-", "_")
        out[f"tcp_mbps_{key}"] = med(path, False, "mbps")
        for metric in ("kernel", "rx", "tx"):
            out[f"udp64_{metric}_pps_{key}"] = med(path, True, f"{metric}_pps")
        out[f"tcp_mbps_{key}_runs"] = [round(r["mbps"]) for r in results[(path, False)]]
        out[f"udp64_kernel_pps_{key}_runs"] = [round(r["kernel_pps"]) for r in results[(path, True)]]
        out[f"udp64_rx_pps_{key}_runs"] = [round(r["rx_pps"]) for r in results[(path, True)]]
    for path in names:
        if path == "plain":
            continue
        key = path.replace("-", "_")
        out[f"{key}_vs_plain_tcp_ratio"] = pair_ratio(results, path, False, "mbps")
        out[f"{key}_vs_plain_pps_ratio"] = pair_ratio(results, path, True, "kernel_pps")
        out[f"{key}_vs_plain_tcp_ratio_pairs"] = pair_ratios(results, path, False, "mbps")
        out[f"{key}_vs_plain_pps_ratio_pairs"] = pair_ratios(results, path, True, "kernel_pps")
        out[f"{key}_vs_plain_tcp_ratio_of_medians"] = ratio(out[f"tcp_mbps_{key}"], out["tcp_mbps_plain"])
        out[f"{key}_vs_plain_pps_ratio_of_medians"] = ratio(out[f"udp64_kernel_pps_{key}"], out["udp64_kernel_pps_plain"])
    out["sliced_vs_plain_pps_iperf3_rx_ratio"] = pair_ratio(results, "sliced", True, "rx_pps")
    out["sliced_vs_plain_pps_tx_ratio"] = pair_ratio(results, "sliced", True, "tx_pps")
    out["udp64_iperf3_receiver_bound"] = any(
        out[f"udp64_rx_pps_{p}"] < 0.95 * out[f"udp64_kernel_pps_{p}"] for p in ("sliced", "plain"))
    return out


# -- 2. up time against the floor --------------------------------------------------------
def timed(func, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - start, result


def floor_round(builder, spec: floor.FloorSpec, cleanup: Cleanup, want_census: bool) -> tuple[float, dict | None]:
    cleanup.namespaces.update(spec.all_names())
    try:
        seconds, _ = timed(builder, spec)
        counts = census.census(spec.all_names(), set(spec.node_namespaces)) if want_census else None
    finally:
        floor.teardown(spec.all_names())
        time.sleep(SETTLE)
    return seconds, counts


def up_round(topo, source: str, plan, cleanup: Cleanup, want_census: bool) -> dict:
    cleanup.topologies.append(topo.name)
    try:
        up_s, outcome = timed(engine.up, topo, source)
        assert len(outcome.steps) == len(plan.resources), "up on an empty machine creates every resource"
        counts = census.census(plan.namespaces(), set(node_namespaces(plan))) if want_census else None
        reup_s, again = timed(engine.up, topo, source)
        assert not again.steps, f"re-up was not a no-op: {len(again.steps)} steps"
        down_s, _ = timed(engine.down, topo.name)
    finally:
        if netns.list_names(f"vispd.{topo.name}."):
            engine.down(topo.name)
        cleanup.topologies.remove(topo.name)
        time.sleep(SETTLE)
    return {"up": up_s, "reup": reup_s, "down": down_s, "census": counts}


def node_namespaces(plan) -> list[str]:
    return [r.ns for r in plan.resources if r.KIND == "netns" and r.role == "node"]


FLOORS = (("batch", floor.build_batch), ("pyroute2", floor.build_pyroute2))


def out_of_the_race(label: str, times: dict) -> bool:
    """A floor builder that took over twice the other's time in the first rep cannot be
    the floor: it is not repeated (saves ~25 s on hb100)."""
    other = "pyroute2" if label == "batch" else "batch"
    return bool(times[label]) and times[label][0] > 2 * times[other][0]


def measure_up(workdir: str, cleanup: Cleanup, name: str, text: str, reps: int) -> dict:
    source = write_topology(workdir, name, text)
    load_s, topo = timed(load_topology, source)
    compile_s, plan = timed(compile_plan, topo)
    spec = floor.floor_spec(plan)
    times: dict[str, list[float]] = {"up": [], "reup": [], "down": [], "batch": [], "pyroute2": []}
    censuses: dict[str, dict] = {}
    for rep in range(reps):
        first = rep == 0
        steps = list(FLOORS) + [("up", None)]
        if rep % 2:
            steps.reverse()
        for label, builder in steps:
            if builder is None:
                result = up_round(topo, source, plan, cleanup, first)
                for key in ("up", "reup", "down"):
                    times[key].append(result[key])
                censuses.setdefault("up", result["census"])
            elif out_of_the_race(label, times):
                continue
            else:
                seconds, counts = floor_round(builder, spec, cleanup, first)
                times[label].append(seconds)
                censuses.setdefault(label, counts)
            say(f"  {name} rep {rep + 1}/{reps} {label:8s} {times[label][-1]:.3f} s")
    return summarize_up(name, plan, times, censuses, load_s, compile_s)


def plan_counts(plan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for resource in plan.resources:
        counts[resource.KIND] = counts.get(resource.KIND, 0) + 1
    return dict(sorted(counts.items()))


def summarize_up(name: str, plan, times: dict, censuses: dict, load_s: float, compile_s: float) -> dict:
    med = {k: round(median(v), 3) for k, v in times.items()}
    floor_s = min(med["batch"], med["pyroute2"])
    return {
        "up_seconds": med["up"], "reup_noop_seconds": med["reup"], "down_seconds": med["down"],
        "floor_batch_seconds": med["batch"], "floor_pyroute2_seconds": med["pyroute2"],
        "floor_seconds": floor_s, "floor_method": "ip-batch" if med["batch"] <= med["pyroute2"] else "pyroute2",
        "up_vs_floor_ratio": ratio(med["up"], floor_s),
        "up_vs_pyroute2_floor_ratio": ratio(med["up"], med["pyroute2"]),
        "up_vs_floor_ratio_per_rep": [ratio(u, b) for u, b in zip(times["up"], times[
            "batch" if med["batch"] <= med["pyroute2"] else "pyroute2"])],
        "load_seconds": round(load_s, 3), "compile_seconds": round(compile_s, 3),
        "runs_seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "plan_resources": len(plan.resources), "plan_counts": plan_counts(plan),
        "kernel_objects": censuses.get("up"),
        "floor_objects_match_up": censuses.get("up") == censuses.get("batch") == censuses.get("pyroute2"),
    }


def profile_report(profiler: cProfile.Profile, title: str, top: int) -> str:
    buffer = io.StringIO()
    buffer.write(f"== cProfile: {title} ==\n")
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return buffer.getvalue()


def profile_up(workdir: str, cleanup: Cleanup, name: str, text: str, top: int = 25) -> str:
    """cProfile of one up, one no-op re-up and one down of topology `text`."""
    source = write_topology(workdir, name, text)
    topo = load_topology(source)
    profilers = {label: cProfile.Profile() for label in ("up", "re-up (no-op)", "down")}
    cleanup.topologies.append(name)
    try:
        profilers["up"].runcall(engine.up, topo, source)
        profilers["re-up (no-op)"].runcall(engine.up, topo, source)
        profilers["down"].runcall(engine.down, name)
    finally:
        if netns.list_names(f"vispd.{name}."):
            engine.down(name)
        cleanup.topologies.remove(name)
    return "\n".join(profile_report(p, f"{label} {name}", top) for label, p in profilers.items())


# -- main --------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="iperf3 run pairs per protocol")
    parser.add_argument("--seconds", type=int, default=2, help="length of each iperf3 run")
    parser.add_argument("--reps", type=int, default=3, help="up/floor repetitions for hb100")
    parser.add_argument("--abilene-reps", type=int, default=5, help="up/floor repetitions for abilene")
    parser.add_argument("--skip-datapath", action="store_true")
    parser.add_argument("--skip-up", action="store_true")
    parser.add_argument("--variants", action="store_true",
                        help="also measure the sliced path without its nft guard / u32 filters (bench/variants.py)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one up of hb100")
    return parser.parse_args()


def print_summary(figures: dict) -> None:
    if "tcp_mbps_sliced" in figures:
        say(f"TCP   sliced {figures['tcp_mbps_sliced']:,.0f} Mbit/s  plain {figures['tcp_mbps_plain']:,.0f} Mbit/s"
            f"  ratio {figures['sliced_vs_plain_tcp_ratio']} (median of pair ratios;"
            f" ratio of medians {figures['sliced_vs_plain_tcp_ratio_of_medians']})")
        for kind, label in (("kernel", "delivered (kernel)"), ("rx", "received (iperf3)"), ("tx", "sent (iperf3)")):
            say(f"UDP64 {label:18s} sliced {figures[f'udp64_{kind}_pps_sliced']:,.0f} pps  "
                f"plain {figures[f'udp64_{kind}_pps_plain']:,.0f} pps")
        say(f"UDP64 ratio delivered {figures['sliced_vs_plain_pps_ratio']} (median of pair ratios;"
            f" ratio of medians {figures['sliced_vs_plain_pps_ratio_of_medians']})  received (iperf3) "
            f"{figures['sliced_vs_plain_pps_iperf3_rx_ratio']}  sent {figures['sliced_vs_plain_pps_tx_ratio']}"
            + ("  (iperf3's receiver fell behind the kernel: its count measures the receiver)"
               if figures["udp64_iperf3_receiver_bound"] else ""))
        for key in sorted(k for k in figures if k.endswith("_vs_plain_pps_ratio") and not k.startswith("sliced_vs")):
            variant = key.removesuffix("_vs_plain_pps_ratio")
            say(f"variant {variant}: pps ratio {figures[key]}  tcp ratio {figures[variant + '_vs_plain_tcp_ratio']}")
    for name in (ABILENE, BIG):
        fig = figures.get(name)
        if fig:
            say(f"{name}: {fig['plan_resources']} objects; up {fig['up_seconds']} s, floor {fig['floor_seconds']} s "
                f"({fig['floor_method']}; ip-batch {fig['floor_batch_seconds']} s, pyroute2 {fig['floor_pyroute2_seconds']} s)"
                f", up/floor {fig['up_vs_floor_ratio']}; re-up {fig['reup_noop_seconds']} s, down {fig['down_seconds']} s;"
                f" objects match {fig['floor_objects_match_up']}")


def main() -> int:
    args = parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates network namespaces")
    refuse_leftovers()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still clean up in `finally`
    os.environ["VISPD_STATE_DIR"] = state_dir = tempfile.mkdtemp(prefix="vbp-state-")
    started = time.perf_counter()
    figures: dict = {"up_method": "in-process vispd.engine.up(topo, source)"}
    cleanup = Cleanup()
    workdir = tempfile.mkdtemp(prefix="vbp-yaml-")
    try:
        if not args.skip_datapath:
            say("data path: sliced (vISP slivers) vs plain namespaces, 3 hops")
            figures.update(measure_datapath(workdir, cleanup, args.runs, args.seconds, args.variants))
            engine.down(LINE)
            cleanup.topologies.remove(LINE)
            plainpath.teardown()
        if not args.skip_up:
            say("up time vs floor: abilene copy")
            figures[ABILENE] = measure_up(workdir, cleanup, ABILENE, topogen.abilene_copy(ABILENE), args.abilene_reps)
            say("up time vs floor: 100 nodes, 200 links, 10 slices of 30 nodes")
            figures[BIG] = measure_up(workdir, cleanup, BIG, topogen.random_topology(BIG), args.reps)
            figures["up_vs_floor_ratio"] = figures[BIG]["up_vs_floor_ratio"]
            figures["up_vs_floor_ratio_abilene"] = figures[ABILENE]["up_vs_floor_ratio"]
        if args.profile:
            say(profile_up(workdir, cleanup, BIG, topogen.random_topology(BIG)))
    finally:
        cleanup.run()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)
    figures["runtime_seconds"] = round(time.perf_counter() - started, 1)
    print_summary(figures)
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
