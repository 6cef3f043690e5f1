"""Slice isolation: does a slice keep its guaranteed bandwidth while another floods?

Builds labs/slice-isolation/topology.yaml in Mininet (seattle - denver - kansas-city, two
100 Mbit/s links shared by slice `flood`, guaranteed 60 Mbit/s, and slice `steady`,
guaranteed 30 Mbit/s). `steady` runs one iperf3 TCP flow seattle -> kansas-city for the
whole run; in the middle third `flood` sends iperf3 UDP at 200 Mbit/s along the same
links. Both receivers' rates are recorded every 0.1 s. Writes figures.json and plot.png to
--out (default labs/slice-isolation/report).

    python3 labs/slice-isolation/run.py [--short]

I/O (root): builds the lab, measures, tears it down.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

# the labs directory (failures, lablib) and this checkout's root, ahead of any other copy of
# vispd installed on the machine (an editable install elsewhere would mix two checkouts)
_LABS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0:0] = [_LABS, os.path.dirname(_LABS)]
import lablib  # noqa: E402
from measure import percentile  # noqa: E402
from model.units import parse_bandwidth  # noqa: E402

SRC, DST = "seattle", "kansas-city"
FLOOD, STEADY = "flood", "steady"
SETTLE = 0.5  # seconds skipped after each phase change


def options(parser) -> None:
    parser.add_argument("--phase", type=float, help="seconds of each phase (default 10; --short: 4)")
    parser.add_argument("--flood-rate", default="200M", help="UDP rate of the flooding slice (default 200M)")
    parser.add_argument("--flood-streams", type=int, default=32,
                        help="parallel UDP streams of the flood (default 32: enough sockets that the sending "
                             "sockets' buffers cannot hold the flood back, so it overflows the queue)")


def mbps(value: float | None) -> float | None:
    return round(value / 1e6, 2) if value is not None else None


def per_stream(rate: str, streams: int) -> str:
    """iperf3's -b is per stream: the total split over `streams`, in bit/s."""
    return str(parse_bandwidth(rate) // streams)


def main(argv=None) -> int:
    args = lablib.parse_args("slice-isolation", __doc__, argv, options)
    lablib.require_root()
    phase = args.phase or (4.0 if args.short else 10.0)
    started = time.monotonic()
    lab = lablib.open_lab(args.topology, args.backend)
    steady = flood = None
    with lab:
        build_s = time.monotonic() - started
        topo = lab.topo
        capacity = min(lk.bandwidth for lk in topo.links)
        guarantee = {sl.name: sl.bandwidth for sl in topo.slices}
        try:
            steady = lablib.Iperf(lab, lab.sliver(STEADY, DST), lab.sliver(STEADY, SRC),
                                  lab.address(lab.sliver(STEADY, DST)), seconds=3 * phase).start()
            time.sleep(phase)
            flood = lablib.Iperf(lab, lab.sliver(FLOOD, DST), lab.sliver(FLOOD, SRC),
                                 lab.address(lab.sliver(FLOOD, DST)), seconds=phase, udp=True,
                                 bitrate=per_stream(args.flood_rate, args.flood_streams),
                                 extra=("-P", str(args.flood_streams))).start()
            flood_started = time.monotonic()
            flood.wait(phase + 15)
            flood_ended = time.monotonic()
            steady.wait(3 * phase + 15)
        finally:
            for flow in (flood, steady):
                if flow is not None:
                    flow.stop()
    figures, series = summarise(args, phase, capacity, guarantee, steady, flood, flood_started, flood_ended, build_s)
    paths = lablib.write_report(args.out, figures, lambda: plot(figures, series))
    print_summary(figures)
    print(f"report: {paths['figures']}, {paths['plot']}")
    return 0 if figures["isolation_holds"] else 1


def summarise(args, phase, capacity, guarantee, steady, flood, flood_started, flood_ended, build_s):
    s_iv = steady.intervals()
    f_iv = flood.intervals()
    # the flood as the receiver saw it (its first and last interval), else as we started it
    on = f_iv[0].start if f_iv else flood_started
    off = f_iv[-1].end if f_iv else flood_ended
    t0 = s_iv[0].start if s_iv else on - phase
    end = s_iv[-1].end if s_iv else off + phase
    alone = lablib.rate_between(s_iv, t0 + SETTLE, on)
    shared = lablib.rate_between(s_iv, on + SETTLE, off)
    after = lablib.rate_between(s_iv, off + SETTLE, end)
    flood_rates = lablib.rate_between(f_iv, on + SETTLE, off)
    sent = [iv.bps for iv in flood.intervals("client")][int(SETTLE * 10):]
    totals = [a.bps + b.bps for a in s_iv for b in f_iv
              if abs(a.start - b.start) < 0.05 and a.start >= on + SETTLE and a.end <= off]
    g_steady, g_flood = guarantee[STEADY], guarantee[FLOOD]
    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    figures = {
        "lab": "slice-isolation",
        "short": bool(args.short),
        "topology": os.path.relpath(args.topology, lablib.ROOT),
        "link_capacity_mbps": mbps(capacity),
        "guarantee_mbps": {k: mbps(v) for k, v in guarantee.items()},
        "flood_offered": args.flood_rate,
        "flood_streams": args.flood_streams,
        "phase_s": phase,
        "build_s": round(build_s, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "steady": {
            "alone_mbps": mbps(med(alone)),
            "under_flood_mbps": mbps(med(shared)),
            "under_flood_p10_mbps": mbps(percentile(shared, 0.1)),
            "under_flood_min_mbps": mbps(min(shared) if shared else None),
            "after_flood_mbps": mbps(med(after)),
            "under_flood_over_guarantee": round(med(shared) / g_steady, 3) if shared else None,
            "intervals_under_flood": len(shared),
        },
        "flood": {
            "sent_mbps": mbps(med(sent)),
            "received_mbps": mbps(med(flood_rates)),
            "received_max_mbps": mbps(max(flood_rates) if flood_rates else None),
            "received_over_guarantee": round(med(flood_rates) / g_flood, 3) if flood_rates else None,
            "intervals": len(flood_rates),
        },
        "total_under_flood_mbps": mbps(med(totals)),
    }
    st = figures["steady"]
    figures["isolation_holds"] = bool(shared and med(shared) >= 0.9 * g_steady
                                      and flood_rates and max(flood_rates) <= 1.05 * capacity)
    figures["work_conserving"] = bool(alone and med(alone) >= 1.5 * g_steady
                                      and after and med(after) >= 1.5 * g_steady)
    st["alone_over_guarantee"] = round(med(alone) / g_steady, 3) if alone else None
    series = {"steady": s_iv, "flood": f_iv, "t0": t0, "on": on, "off": off, "end": end,
              "capacity": capacity, "guarantee": guarantee}
    return figures, series


def plot(figures, series):
    plt = lablib.pyplot()
    fig, ax = plt.subplots(figsize=(12, 5.5))
    t0 = series["t0"]
    for name, colour in ((STEADY, "tab:blue"), (FLOOD, "tab:red")):
        iv = series[name]
        label = {STEADY: f"steady (TCP), guaranteed {figures['guarantee_mbps'][STEADY]:g} Mbit/s",
                 FLOOD: f"flood (UDP, {figures['flood_streams']} streams, {figures['flood']['sent_mbps']} Mbit/s "
                        f"sent), guaranteed {figures['guarantee_mbps'][FLOOD]:g} Mbit/s"}[name]
        ax.step([i.start - t0 for i in iv], [i.bps / 1e6 for i in iv], where="post", color=colour, label=label)
        ax.axhline(figures["guarantee_mbps"][name], color=colour, ls=":", lw=1)
    ax.axhline(figures["link_capacity_mbps"], color="black", ls="--", lw=0.8, label="link capacity")
    ax.axvspan(series["on"] - t0, series["off"] - t0, color="red", alpha=0.07, label="flood on")
    st, fl = figures["steady"], figures["flood"]
    ax.set_title(f"labs/slice-isolation: steady keeps {st['under_flood_mbps']} Mbit/s "
                 f"({st['under_flood_over_guarantee']:.0%} of its guarantee) while flood is held to "
                 f"{fl['received_mbps']} Mbit/s; alone it gets {st['alone_mbps']} Mbit/s", fontsize=10)
    ax.set_xlabel("seconds")
    ax.set_ylabel("received rate (Mbit/s, 0.1 s intervals)")
    ax.set_ylim(0, figures["link_capacity_mbps"] * 1.25)
    ax.legend(loc="upper right", fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def print_summary(figures) -> None:
    st, fl = figures["steady"], figures["flood"]
    print(f"steady alone {st['alone_mbps']} Mbit/s, under flood {st['under_flood_mbps']} Mbit/s "
          f"(p10 {st['under_flood_p10_mbps']}, {st['under_flood_over_guarantee']} x guarantee), "
          f"after {st['after_flood_mbps']}; flood sent {fl['sent_mbps']}, received {fl['received_mbps']} Mbit/s; "
          f"isolation {'holds' if figures['isolation_holds'] else 'FAILS'}, "
          f"work-conserving {figures['work_conserving']}")


if __name__ == "__main__":
    sys.exit(main())
