"""PL-VINI's Washington-Seattle RTT on Abilene: does a vISP with geographic link delays
answer like the real backbone did, and does it keep answering so while another slice
loads the same links?

Builds labs/vini-rtt/topology.yaml in Mininet (Abilene's 11 PoPs and 14 links, each with
its geographic one-way delay, `delay: geo`; slices `vini` and `cross` over everything),
then probes the `vini` sliver in Seattle from the one in Washington every 10 ms
(labs/pinger.py: raw ICMP at real-time priority, send and reply stamped on the monotonic
clock) through three phases: idle, while the `cross` slice runs iperf3 TCP from Washington
to Seattle over the same path (the same links, shapers and delay processes), idle again.
Writes figures.json and plot.png to --out (default labs/vini-rtt/report).

    python3 labs/vini-rtt/run.py [--short] [--phase SECONDS] [--streams N]

I/O (root): builds the lab, measures, tears it down.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

# the labs directory (failures, lablib) and this checkout's root, ahead of any other copy of
# vispd installed on the machine (labs/failures.py imports the compiler before lablib runs)
_LABS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0:0] = [_LABS, os.path.dirname(_LABS)]
import failures  # noqa: E402
import lablib  # noqa: E402
from model import geo  # noqa: E402

SRC, DST = "washington", "seattle"
VINI_RTT_MS = 74.0  # PL-VINI's measurement across Abilene (In VINI Veritas, SIGCOMM 2006)
PHASES = ("idle", "cross", "idle after")
COLOURS = {"idle": "tab:blue", "cross": "tab:red", "idle after": "tab:green"}
CROSS_PORT = 5301
SLOW_START_S = 2.0  # the cross phase starts this long after the flow


def options(parser) -> None:
    parser.add_argument("--phase", type=float, help="seconds per phase (default 30; --short: 4)")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between probes (default 0.01)")
    parser.add_argument("--streams", type=int, default=4, help="parallel TCP streams of the cross traffic")


def model_figures(topo, path: list[str]) -> dict:
    """What the topology declares along the path: each hop's one-way delay and distance."""
    where = {n.name: (n.latitude, n.longitude) for n in topo.nodes}
    by_key = {lk.key: lk for lk in topo.links}
    hops = []
    for a, b in zip(path, path[1:]):
        air = geo.great_circle_km(*where[a], *where[b])
        hops.append({"link": [a, b], "great_circle_km": round(air), "route_km": round(geo.route_km(air)),
                     "one_way_ms": topo.link_delay(by_key[tuple(sorted((a, b)))]).delay_us / 1000})
    one_way = sum(h["one_way_ms"] for h in hops)
    return {"hops": hops, "one_way_ms": round(one_way, 3), "rtt_ms": round(2 * one_way, 3),
            "great_circle_km": sum(h["great_circle_km"] for h in hops),
            "route_km": sum(h["route_km"] for h in hops),
            "straight_line_km": round(geo.great_circle_km(*where[path[0]], *where[path[-1]]))}


def delay_pids(lab) -> dict[str, int]:
    return {d["name"]: d["pid"] for d in lab.status()["daemons"] if d["name"].startswith("delay-") and d["pid"]}


def cpu_seconds(pids: dict[str, int]) -> float:
    """User + system CPU time of the delay processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids.values():
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / ticks


def phase_figures(trace, start: float, end: float, model_rtt: float) -> dict:
    probes = [s for s in trace if start <= s.sent < end]
    rtts = sorted(s.rtt_ms for s in probes if s.answered)
    if not rtts:
        return {"probes": len(probes), "answered": 0}

    def pct(q: float) -> float:
        return round(rtts[min(len(rtts) - 1, int(q * len(rtts)))], 3)

    def within(ms: float) -> float:
        return round(sum(abs(r - model_rtt) <= ms for r in rtts) / len(probes), 4)

    return {"probes": len(probes), "answered": len(rtts), "lost": len(probes) - len(rtts),
            "median_ms": round(statistics.median(rtts), 3), "min_ms": pct(0), "p1_ms": pct(0.01),
            "p99_ms": pct(0.99), "max_ms": round(rtts[-1], 3),
            "within_1ms_of_model": within(1.0), "within_3ms_of_model": within(3.0),
            "median_minus_model_ms": round(statistics.median(rtts) - model_rtt, 3)}


def run_phases(lab, pinger, args, phase_s: float) -> tuple[dict, list, lablib.Iperf]:
    """The three phases' windows (monotonic), the delay processes' CPU in each, the flow."""
    pids = delay_pids(lab)
    windows, cpu = {}, {}
    start, used = time.monotonic(), cpu_seconds(pids)
    time.sleep(phase_s)
    windows["idle"], cpu["idle"] = (start, time.monotonic()), cpu_seconds(pids) - used
    flow = lablib.Iperf(lab, lab.sliver("cross", DST), lab.sliver("cross", SRC), lab.address(lab.sliver("cross", DST)),
                        seconds=phase_s + SLOW_START_S + 0.5, port=CROSS_PORT, interval=0.5,
                        extra=("-P", str(args.streams)))
    flow.start()
    time.sleep(SLOW_START_S)
    start, used = time.monotonic(), cpu_seconds(pids)
    time.sleep(phase_s)
    windows["cross"], cpu["cross"] = (start, time.monotonic()), cpu_seconds(pids) - used
    flow.wait()
    time.sleep(1.0)
    start, used = time.monotonic(), cpu_seconds(pids)
    time.sleep(phase_s)
    windows["idle after"], cpu["idle after"] = (start, time.monotonic()), cpu_seconds(pids) - used
    return windows, [cpu, len(pids)], flow


def main(argv=None) -> int:
    args = lablib.parse_args("vini-rtt", __doc__, argv, options)
    lablib.require_root()
    phase_s = args.phase or (4.0 if args.short else 30.0)
    started = time.monotonic()
    with lablib.open_lab(args.topology, args.backend) as lab:
        build_s = time.monotonic() - started
        path = failures.path_nodes(lab.topo, "vini", SRC, DST)
        model = model_figures(lab.topo, path)
        host, address = lab.sliver("vini", SRC), lab.address(lab.sliver("vini", DST))
        if failures.wait_reachable(lab, host, address, timeout=30) is None:
            raise SystemExit(f"{DST} never answered {SRC}")
        mechanisms = sorted({d["mechanism"] for d in lab.status()["link_delays"]})
        pinger = lablib.Pinger(lab, host, address, args.interval).start()
        try:
            time.sleep(0.5)
            windows, (cpu, processes), flow = run_phases(lab, pinger, args, phase_s)
            time.sleep(1.0)  # the last phase's probes are still on their 67 ms way back
        finally:
            trace = pinger.stop()
    figures = summarise(args, phase_s, path, model, windows, cpu, processes, flow, trace, build_s, mechanisms)
    out = lablib.write_report(args.out, figures, lambda: plot(figures, trace, windows, flow))
    print_summary(figures)
    print(f"report: {out['figures']}, {out['plot']}")
    return 0


def summarise(args, phase_s, path, model, windows, cpu, processes, flow, trace, build_s, mechanisms) -> dict:
    figures = {
        "lab": "vini-rtt", "short": bool(args.short), "topology": os.path.relpath(args.topology, lablib.ROOT),
        "src": SRC, "dst": DST, "path": path, "model": model, "vini_rtt_ms": VINI_RTT_MS,
        "model_minus_vini_ms": round(model["rtt_ms"] - VINI_RTT_MS, 3),
        "phase_s": phase_s, "probe_interval_ms": args.interval * 1000, "cross_streams": args.streams,
        "delay_mechanism": mechanisms, "delay_processes": processes, "build_s": round(build_s, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
    }
    intervals = flow.intervals()
    for phase in PHASES:
        start, end = windows[phase]
        f = phase_figures(trace, start, end, model["rtt_ms"])
        f["delay_cpu_cores"] = round(cpu[phase] / (end - start), 3)
        rates = lablib.rate_between(intervals, start, end)
        f["cross_mbps"] = round(statistics.median(rates) / 1e6, 1) if rates else 0.0
        figures[phase] = f
    return figures


def plot(figures, trace, windows, flow):
    plt = lablib.pyplot()
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(12, 11), gridspec_kw={"height_ratios": [1.3, 0.7, 1]})
    origin = windows["idle"][0]
    model, vini = figures["model"]["rtt_ms"], figures["vini_rtt_ms"]
    for phase in PHASES:
        start, end = windows[phase]
        probes = [s for s in trace if start <= s.sent < end]
        ok = [s for s in probes if s.answered]
        top.plot([s.sent - origin for s in ok], [s.rtt_ms for s in ok], ".", ms=2, color=COLOURS[phase],
                 label=f"{phase}: median {figures[phase]['median_ms']} ms, "
                       f"{100 * figures[phase]['within_1ms_of_model']:.1f}% within 1 ms of the model")
        lost = [s for s in probes if not s.answered]
        top.plot([s.sent - origin for s in lost], [model - 1.5] * len(lost), "|", ms=8, color="black")
        top.axvspan(start - origin, end - origin, color=COLOURS[phase], alpha=0.06)
    top.axhline(model, color="grey", ls="--", lw=1, label=f"model: geographic delays, {model} ms")
    top.axhline(vini, color="purple", ls=":", lw=1.5, label=f"PL-VINI's measurement: {vini:g} ms")
    top.set_ylim(model - 2, max(vini + 2, model + 8))
    top.set_ylabel("RTT (ms)")
    top.set_xlabel("seconds")
    top.legend(loc="upper right", fontsize=8, markerscale=4)
    top.set_title(f"{figures['src']} -> {figures['dst']} in slice vini ({' - '.join(figures['path'])}): "
                  f"one probe every {figures['probe_interval_ms']:g} ms (values above the axis clipped)", fontsize=10)
    iv = flow.intervals()
    middle.step([i.start - origin for i in iv], [i.bps / 1e6 for i in iv], where="post", color=COLOURS["cross"])
    middle.set_xlim(top.get_xlim())
    middle.set_ylabel("cross slice TCP (Mbit/s)")
    middle.set_title(f"slice cross: iperf3, {figures['cross_streams']} TCP streams {figures['src']} -> "
                     f"{figures['dst']} over the same links and delay processes", fontsize=10)
    for phase in PHASES:
        start, end = windows[phase]
        offsets = sorted(s.rtt_ms - model for s in trace if start <= s.sent < end and s.answered)
        if offsets:
            bottom.plot(offsets, [(i + 1) / len(offsets) for i in range(len(offsets))], color=COLOURS[phase],
                        label=f"{phase}: p99 {figures[phase]['p99_ms']} ms")
    bottom.axvspan(-1, 1, color="grey", alpha=0.12, label="within 1 ms of the model")
    bottom.set_xlim(-1.5, 4)
    bottom.set_xlabel("RTT minus the model's RTT (ms)")
    bottom.set_ylabel("fraction of replies")
    bottom.legend(loc="lower right", fontsize=8)
    fig.suptitle("labs/vini-rtt: PL-VINI's Washington-Seattle RTT on Abilene, with and without cross traffic "
                 "in another slice", fontsize=11)
    fig.tight_layout()
    return fig


def print_summary(figures) -> None:
    print(f"path {' - '.join(figures['path'])}: model {figures['model']['rtt_ms']} ms "
          f"({figures['model']['great_circle_km']} km of great circles), PL-VINI {figures['vini_rtt_ms']:g} ms")
    for phase in PHASES:
        f = figures[phase]
        print(f"{phase:10s} median {f.get('median_ms')} ms (p1 {f.get('p1_ms')}, p99 {f.get('p99_ms')}), "
              f"{f.get('within_1ms_of_model')} within 1 ms, {f.get('lost')} lost of {f.get('probes')}; "
              f"cross {f['cross_mbps']} Mbit/s; delay processes {f['delay_cpu_cores']} cores")


if __name__ == "__main__":
    sys.exit(main())
