"""Link failure on Abilene: how long is a path broken, static routes vs OSPF?

Builds labs/link-failure/topology.yaml in Mininet (Abilene's 11 PoPs and 14 links, a
`static` slice and an `ospf` slice over all of them), then, in both slices at once, pings
new-york's sliver from seattle's every 2 ms and runs an iperf3 TCP flow between them
while the Kansas City-Indianapolis link, on their least-cost path, fails and recovers.
Writes figures.json and plot.png to --out (default labs/link-failure/report).

    python3 labs/link-failure/run.py [--short]

I/O (root): builds the lab, measures, tears it down.
"""
from __future__ import annotations

import os
import sys
import time

# the labs directory (failures, lablib) and this checkout's root, ahead of any other copy of
# vispd installed on the machine (an editable install elsewhere would mix two checkouts)
_LABS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0:0] = [_LABS, os.path.dirname(_LABS)]
import failures  # noqa: E402
import lablib  # noqa: E402

SRC, DST = "seattle", "new-york"
LINK = ("kansas-city", "indianapolis")
SLICES = ("static", "ospf")
COLOURS = {"static": "tab:blue", "ospf": "tab:orange"}


def options(parser) -> None:
    parser.add_argument("--cycles", type=int, help="failures and recoveries (default 5; --short: 1)")
    parser.add_argument("--interval", type=float, default=0.002, help="seconds between probes (default 0.002)")
    parser.add_argument("--rate", default="50M", help="iperf3 TCP rate per slice (default 50M)")


def main(argv=None) -> int:
    args = lablib.parse_args("link-failure", __doc__, argv, options)
    lablib.require_root()
    cycles = args.cycles or (1 if args.short else 5)
    hold_down, hold_up = (2.0, 1.0) if args.short else (4.0, 2.5)
    started = time.monotonic()
    lab = lablib.open_lab(args.topology, args.backend)
    probes = [failures.Probe(sl, SRC, DST) for sl in SLICES]
    flows: dict[str, lablib.Iperf] = {}
    results, changes = [], []
    with lab:
        build_s = time.monotonic() - started
        paths = {sl: failures.path_nodes(lab.topo, sl, SRC, DST) for sl in SLICES}
        detours = {sl: failures.path_nodes(lab.topo, sl, SRC, DST, failed=[LINK]) for sl in SLICES}
        for sl in SLICES:
            assert any({a, b} == set(LINK) for a, b in zip(paths[sl], paths[sl][1:])), paths[sl]
        try:
            t = time.monotonic()
            failures.start_probes(lab, probes, args.interval)
            reach_s = time.monotonic() - t
            for port, sl in enumerate(SLICES, 5201):
                flows[sl] = lablib.Iperf(lab, lab.sliver(sl, DST), lab.sliver(sl, SRC),
                                         lab.address(lab.sliver(sl, DST)), seconds=600, port=port,
                                         bitrate=args.rate).start()
            time.sleep(2.0)  # a baseline for the flows before the first failure
            for _ in range(cycles):
                cycle = failures.failure_cycle(lab, probes, LINK, args.interval, hold_down=hold_down,
                                             hold_up=hold_up, timeout=30.0)
                results.append(cycle)
                changes.append((cycle["down"], cycle["up"]))
            end = time.monotonic()
        finally:
            for flow in flows.values():
                flow.stop()
            traces = {p.slice: p.pinger.stop() if p.pinger else [] for p in probes}
        origin = changes[0][0].changed_at - 3.0 if changes else started
    figures = summarise(args, results, flows, traces, paths, detours, build_s, reach_s)
    paths_out = lablib.write_report(args.out, figures,
                                    lambda: plot(figures, results, flows, traces, origin, end))
    print_summary(figures)
    print(f"report: {paths_out['figures']}, {paths_out['plot']}")
    return 0 if all(figures[sl]["recovered_every_time"] for sl in SLICES) else 1


def summarise(args, results, flows, traces, paths, detours, build_s, reach_s) -> dict:
    figures = {
        "lab": "link-failure",
        "short": bool(args.short),
        "topology": os.path.relpath(args.topology, lablib.ROOT),
        "src": SRC, "dst": DST, "link": list(LINK),
        "cycles": len(results),
        "probe_interval_ms": args.interval * 1000,
        "iperf_rate": args.rate,
        "build_s": round(build_s, 2),
        "ospf_first_reachable_s": round(reach_s, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "vispd_link_change": {
            "down_applied_ms": lablib.median([failures.change_figures(c["down"])["applied_ms"] for c in results]),
            "up_applied_ms": lablib.median([failures.change_figures(c["up"])["applied_ms"] for c in results]),
            "routes_changed": results[0]["down"].routes_changed if results else None,
        },
    }
    keys = ("loss_window_ms", "reconverge_ms", "lost")
    for sl in SLICES:
        intervals = flows[sl].intervals() if sl in flows else []
        first_down = results[0]["down"].changed_at if results else 0.0
        baseline = lablib.baseline_rate(intervals, first_down - 2.0, first_down)
        runs = []
        for cycle in results:
            down, up = cycle["down"], cycle["up"]
            runs.append({
                "down": cycle["slices"][sl]["down"], "up": cycle["slices"][sl]["up"],
                "throughput_down": lablib.throughput_dip(intervals, down.changed_at, up.changed_at, baseline),
                "throughput_up": lablib.throughput_dip(intervals, up.changed_at, cycle["end"], baseline),
            })
        figures[sl] = {
            "path": paths[sl], "path_after_failure": detours[sl],
            "down": {k: lablib.median([r["down"].get(k) for r in runs]) for k in keys},
            "up": {k: lablib.median([r["up"].get(k) for r in runs]) for k in keys},
            "throughput": {
                "baseline_mbps": round(baseline / 1e6, 2) if baseline else None,
                "below_half_ms_after_failure": lablib.median([r["throughput_down"]["below_half_ms"] for r in runs]),
                "min_mbps_after_failure": lablib.median([r["throughput_down"]["min_mbps"] for r in runs]),
                "below_half_ms_after_recovery": lablib.median([r["throughput_up"]["below_half_ms"] for r in runs]),
            },
            "recovered_every_time": bool(runs) and all(r["down"]["recovered"] and r["up"]["recovered"] for r in runs),
            "runs": runs,
        }
    s, o = figures["static"]["down"]["reconverge_ms"], figures["ospf"]["down"]["reconverge_ms"]
    figures["ospf_over_static_reconverge"] = round(o / s, 1) if s and o else None
    figures["goal_static_reconverge_le_100ms"] = bool(s is not None and s <= 100)
    return figures


def plot(figures, results, flows, traces, origin, end):
    plt = lablib.pyplot()
    fig, axes = plt.subplots(3, 2, figsize=(14, 10.5), gridspec_kw={"height_ratios": [1, 1, 1.1]})
    for col, sl in enumerate(SLICES):
        f = figures[sl]
        trace = traces[sl]
        ok = [s for s in trace if s.answered and origin <= s.sent <= end]
        lost = [s for s in trace if not s.answered and origin <= s.sent <= end]
        rtts = sorted(s.rtt_ms for s in ok) or [1.0]
        top = max(1.0, 2 * rtts[int(0.99 * (len(rtts) - 1))])
        ax = axes[0][col]
        ax.plot([s.sent - origin for s in ok], [min(s.rtt_ms, top) for s in ok], ".", ms=1.5,
                color=COLOURS[sl], label="reply RTT (clipped)")
        ax.plot([s.sent - origin for s in lost], [0.0] * len(lost), "|", ms=10, color="red", label="lost probe")
        ax.set_ylim(-0.05 * top, top * 1.05)
        ax.set_ylabel("RTT (ms)")
        ax.set_title(f"{sl}: {SRC} -> {DST} while {LINK[0]}-{LINK[1]} fails and recovers (x{len(results)})\n"
                     f"down: {f['down']['loss_window_ms']} ms of loss, reconverged in {f['down']['reconverge_ms']} ms; "
                     f"up: {f['up']['loss_window_ms']} ms of loss, on its path again in {f['up']['reconverge_ms']} ms",
                     fontsize=9)
        ax = axes[1][col]
        intervals = flows[sl].intervals() if sl in flows else []
        iv = [i for i in intervals if origin <= i.start <= end]
        base = f["throughput"]["baseline_mbps"] or 1.0
        cap = 3 * base
        ax.step([i.start - origin for i in iv], [min(i.bps / 1e6, cap) for i in iv], where="post", color=COLOURS[sl])
        peak = max((i.bps / 1e6 for i in iv), default=0)
        ax.set_ylim(0, cap * 1.05)
        ax.set_ylabel("iperf3 TCP received (Mbit/s)")
        ax.set_xlabel("seconds (0 = 3 s before the first failure)")
        ax.set_title(f"{f['throughput']['below_half_ms_after_failure']} ms below half rate after the failure"
                     + (f" (peaks up to {peak:.0f} Mbit/s clipped: iperf3 -b catches up after a stall)" if peak > cap else ""),
                     fontsize=9)
        for row in (0, 1):
            for cycle in results:
                axes[row][col].axvline(cycle["down"].changed_at - origin, color="red", ls="--", lw=0.8)
                axes[row][col].axvline(cycle["up"].changed_at - origin, color="green", ls="--", lw=0.8)
        axes[0][col].legend(loc="upper right", fontsize=7, markerscale=4)
        # zoom on the first failure: each probe, answered (its RTT) or lost, by send time
        ax = axes[2][col]
        if results:
            event = results[0]["down"].changed_at
            first = f["runs"][0]["down"]
            span = max(40.0, 1.5 * (first.get("reconverge_ms") or 0))
            near = [s for s in trace if -0.25 * span <= (s.sent - event) * 1000 <= span]
            a = [s for s in near if s.answered]
            x = [s for s in near if not s.answered]
            ax.plot([(s.sent - event) * 1000 for s in a], [min(s.rtt_ms, top) for s in a], ".", ms=3,
                    color=COLOURS[sl], label="answered (RTT)")
            ax.plot([(s.sent - event) * 1000 for s in x], [0] * len(x), "|", ms=12, color="red", label="lost")
            ax.axvline(0, color="red", ls="--", lw=0.8, label="link down")
            if sl == "static":
                applied = (results[0]["down"].applied_at - event) * 1000
                ax.axvline(applied, color="grey", ls=":", lw=1, label=f"vispd's new routes in place ({applied:.1f} ms)")
            ax.set_ylim(-0.05 * top, top * 1.05)
            ax.set_xlabel("ms since the link went down (probe send time)")
            ax.set_ylabel("RTT (ms)")
            ax.set_title(f"{sl}: the first failure up close: {first.get('lost')} probes lost "
                         f"({first.get('loss_window_ms')} ms), first reply after {first.get('reconverge_ms')} ms",
                         fontsize=9)
            ax.legend(loc="upper right", fontsize=7)
    fig.suptitle("labs/link-failure: static routes (vispd) vs OSPF (BIRD, hello 1 s, dead 3 s) on Abilene "
                 "(red: link down, green: link up)", fontsize=11)
    fig.tight_layout()
    return fig


def print_summary(figures) -> None:
    for sl in SLICES:
        f = figures[sl]
        print(f"{sl:7s} down: loss window {f['down']['loss_window_ms']} ms, reconverged in {f['down']['reconverge_ms']} ms; "
              f"up: back on the original path in {f['up']['reconverge_ms']} ms (loss {f['up']['loss_window_ms']} ms); "
              f"TCP {f['throughput']['baseline_mbps']} Mbit/s, {f['throughput']['below_half_ms_after_failure']} ms below half rate after the failure")


if __name__ == "__main__":
    sys.exit(main())
