"""bgp-failover's figures and plot, computed from a finished run (run.py's `Run`): losses and
loss windows around each event, the path per phase, the TCP flow around the switches,
per-cycle and summary figures, and the matplotlib figure.

Pure but for writing the plot.
"""
from __future__ import annotations

import os
import statistics

import lablib  # (run.py put labs/ on sys.path)
from watchers import PROBE_INTERVAL, WARMUP, forward_path, ms, path_trouble

SWITCH = 0.5            # s after a route change still counted as part of the switch


# -- figures ------------------------------------------------------------------------------------
def losses(trace, start: float, end: float) -> tuple[int, float]:
    """(requests sent in [start, end] that got no reply, the longest stretch of time the
    path was broken there: from the first request of a run of unanswered ones to the send
    time of the answered request after it, so to within one probe spacing)."""
    lost, longest, run_from = 0, 0.0, None
    for s in trace:
        if s.sent < start:
            continue
        if s.sent > end and run_from is None:
            break
        if not s.answered:
            if s.sent <= end:
                lost += 1
            if run_from is None:
                run_from = s.sent
        elif run_from is not None:
            longest = max(longest, s.sent - run_from)
            run_from = None
    return lost, longest


def lost_at(trace, event: float, start: float, end: float, limit: int = 20) -> list:
    """Send times (ms from the event) of the unanswered requests sent in [start, end];
    `[t, 'unsent']` for one that could not be sent (no route in the sliver)."""
    out = []
    for s in trace:
        if start <= s.sent <= end and not s.answered:
            when = round((s.sent - event) * 1000, 1)
            out.append([when, "unsent"] if s.error is not None else when)
    return out[:limit]


def tcp_around(r: Run, event: float, baseline_from: float, span: float = 1.0) -> dict:
    """The TCP flow around an event: the receiver's median rate in the baseline, its mean
    rate over the `span` s after the event, and the sender's retransmissions then."""
    base = lablib.rate_between(r.intervals, baseline_from, event)
    after = lablib.rate_between(r.intervals, event, event + span)
    return {
        "baseline_mbps": round(statistics.median(base) / 1e6, 2) if base else None,
        f"mean_mbps_{span:g}s_after": round(statistics.mean(after) / 1e6, 2) if after else None,
        f"min_mbps_{span:g}s_after": round(min(after) / 1e6, 2) if after else None,
        f"retransmits_{span:g}s_after": sum(n for t, n in r.retransmits if event <= t <= event + span),
    }


def phase_path(r: Run, start: float, end: float, route) -> dict:
    grown = r.counters.grown(start, end)
    fwd = {p: grown[f"fwd:{p}"] for p in r.providers}
    ret = {p: grown[f"ret:{p}"] for p in r.providers}
    ttls = [s.ttl for s in r.samples if start <= s.sent <= end and s.answered]
    rtts = [s.rtt_ms for s in r.samples if start <= s.sent <= end and s.answered]
    tput = lablib.rate_between(r.intervals, start, end)
    return {
        "window_s": [round(start - r.t0, 3), round(end - r.t0, 3)],
        "route": {"via": route[0], "dev": route[1]},
        "forward_provider": max(fwd, key=fwd.get) if max(fwd.values()) > 0 else None,
        "return_provider": max(ret, key=ret.get) if max(ret.values()) > 0 else None,
        "forward_bytes": fwd,
        "return_bytes": ret,
        "reply_ttl": statistics.mode(ttls) if ttls else None,
        "reply_ttls": {str(t): ttls.count(t) for t in sorted(set(ttls))},
        "rtt_ms_median": round(statistics.median(rtts), 3) if rtts else None,
        "throughput_mbps_median": round(statistics.median(tput) / 1e6, 2) if tput else None,
    }


def cycle_figures(r: Run, c: dict, step: float) -> dict:
    margin = 0.3   # s after a route change before the path is called settled
    before = phase_path(r, c["start"], c["drop"], c["route_before"])
    during = phase_path(r, (c["moved"] or c["drop"]) + margin, c["enable"], c["route_during"])
    after = phase_path(r, (c["back"] or c["enable"]) + margin, c["end"], c["route_after"])
    before["hosts"] = forward_path(r.route, r.owner, c["drop"] - 0.05)[0]
    during["hosts"] = forward_path(r.route, r.owner, c["enable"] - 0.05)[0]
    after["hosts"] = forward_path(r.route, r.owner, c["end"])[0]
    drop_end = (c["moved"] or c["enable"]) + SWITCH
    back_end = (c["back"] or c["end"]) + SWITCH
    drop_last = r.route.last_change_between(c["drop"], min(drop_end, c["enable"]))
    back_last = r.route.last_change_between(c["enable"], min(back_end, c["end"]))
    drop_ev = lablib.event_figures(r.samples, c["drop"], step, ttl=during["reply_ttl"])
    back_ev = lablib.event_figures(r.samples, c["enable"], step, ttl=before["reply_ttl"])
    drop_lost, drop_window = losses(r.samples, c["drop"] - 0.1, (c["moved"] or c["enable"]) + SWITCH)
    back_lost, back_window = losses(r.samples, c["enable"] - 0.1, (c["back"] or c["end"]) + SWITCH)
    out = {
        "hold_s": c["hold"],
        "drop": {
            "route_moved_ms": ms(c["moved"] - c["drop"]) if c["moved"] else None,
            "all_slivers_moved_ms": ms(drop_last[0] - c["drop"]) if drop_last[0] else None,
            "last_sliver_moved": drop_last[1],
            **path_trouble(r.route, r.owner, c["drop"], drop_end),
            "lost": drop_lost,
            "loss_window_ms": ms(drop_window),
            "lost_probes_sent_ms": lost_at(r.samples, c["drop"], c["drop"] - 0.1, (c["moved"] or c["enable"]) + SWITCH),
            "first_reply_on_backup_path_ms": drop_ev["reconverge_ms"],
        },
        "return": {
            "session_established_ms": ms(c["established"] - c["enable"]) if c["established"] else None,
            "manager_lag_ms": ms(c["back"] - c["established"]) if c["back"] and c["established"] else None,
            "route_moved_ms": ms(c["back"] - c["enable"]) if c["back"] else None,
            "all_slivers_moved_ms": ms(back_last[0] - c["enable"]) if back_last[0] else None,
            "last_sliver_moved": back_last[1],
            **path_trouble(r.route, r.owner, c["enable"], back_end),
            "lost": back_lost,
            "loss_window_ms": ms(back_window),
            "lost_probes_sent_ms": lost_at(r.samples, c["enable"], c["enable"] - 0.1, (c["back"] or c["end"]) + SWITCH),
            "first_reply_on_primary_path_ms": back_ev["reconverge_ms"],
        },
        "path": {"before": before, "during": during, "after": after},
    }
    if r.intervals:
        out["drop"]["tcp"] = tcp_around(r, c["drop"], c["start"])
        out["return"]["tcp"] = tcp_around(r, c["enable"], (c["moved"] or c["drop"]) + margin)
    steady = [(c["start"], c["drop"] - 0.1), ((c["moved"] or c["drop"]) + SWITCH, c["enable"] - 0.1),
              ((c["back"] or c["enable"]) + SWITCH, c["end"])]
    out["lost_outside_switches"] = sum(losses(r.samples, a, b)[0] for a, b in steady if b > a)
    out["moved_to_backup"] = bool(c["moved"]) and during["forward_provider"] not in (None, r.primary)
    out["returned_to_primary"] = (bool(c["back"]) and after["forward_provider"] == r.primary
                                  and after["route"] == before["route"])
    return out


def figures(r: Run, mode: str) -> dict:
    step = lablib.spacing(r.samples, PROBE_INTERVAL)
    cycles = [cycle_figures(r, c, step) for c in r.cycles]
    first = cycles[0] if cycles else {}

    def med(part, key):
        return lablib.median([c[part].get(key) for c in cycles])

    def worst(part, key):
        values = [c[part].get(key) for c in cycles if c[part].get(key) is not None]
        return max(values) if values else None

    backup = r.backup or (first.get("path", {}).get("during", {}).get("forward_provider"))
    return {
        "lab": "bgp-failover",
        "mode": mode,
        "topology": r.topo.name,
        "slice": r.slice.name,
        "sliver": r.host,
        "target": r.target,
        "primary": r.primary,
        "backup": backup,
        "probe_interval_ms": PROBE_INTERVAL * 1000,
        "probe_spacing_ms": round(step * 1000, 3),
        "iperf3_bitrate": r.settings["iperf_rate"] or None,
        "cycles": cycles,
        "moved_to_backup": bool(cycles) and all(c["moved_to_backup"] for c in cycles),
        "returned_to_primary": bool(cycles) and all(c["returned_to_primary"] for c in cycles),
        "drop_route_moved_ms": med("drop", "route_moved_ms"),
        "drop_loss_window_ms": med("drop", "loss_window_ms"),
        "drop_loss_window_ms_max": worst("drop", "loss_window_ms"),
        "drop_lost": [c["drop"]["lost"] for c in cycles],
        "return_session_established_ms": med("return", "session_established_ms"),
        "return_route_moved_ms": med("return", "route_moved_ms"),
        "return_manager_lag_ms": med("return", "manager_lag_ms"),
        "return_by_hold_s": {f"{c['hold_s']:g}": {k: c["return"][k] for k in
                                                 ("session_established_ms", "route_moved_ms", "loss_window_ms")}
                             for c in cycles},
        "return_loss_window_ms": med("return", "loss_window_ms"),
        "return_loss_window_ms_max": worst("return", "loss_window_ms"),
        "return_lost": [c["return"]["lost"] for c in cycles],
        "path": first.get("path"),
        "rtt_ms_median": {phase: lablib.median([c["path"][phase]["rtt_ms_median"] for c in cycles])
                          for phase in ("before", "during", "after")},
        "throughput_mbps_median": {phase: lablib.median([c["path"][phase]["throughput_mbps_median"] for c in cycles])
                                   for phase in ("before", "during", "after")},
        "lost_outside_switches": sum(c["lost_outside_switches"] for c in cycles),
        "events_s": [[round(t - r.t0, 4), label] for t, label in r.events],
        "ready_after_build_s": round(r.ready_s, 2),
        "build_s": round(r.lab.times.total, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# -- plot ---------------------------------------------------------------------------------------
def plot(r: Run, figs: dict):
    """Overview of the whole run (bytes per provider both ways, the TCP flow), then, per
    cycle, the probes zoomed in around the drop and around the return."""
    plt = lablib.pyplot()
    cycles = r.cycles
    n = max(1, len(cycles))
    overview = 3 if r.intervals else 2
    heights = [1.2, 0.8, 0.8][:overview] + [1.3, 1.3]
    fig = plt.figure(figsize=(max(12, 4.5 * n), 2.3 * sum(heights) + 0.5))
    grid = fig.add_gridspec(len(heights), n, height_ratios=heights)
    t0 = r.t0
    colour = {p: c for p, c in zip(r.providers, ["tab:blue", "tab:purple", "tab:brown", "tab:gray"])}
    backup = figs.get("backup") or "backup"
    ttl_primary = (figs.get("path") or {}).get("before", {}).get("reply_ttl")

    # -- overview ---------------------------------------------------------------------------
    times, rates = r.counters.rates(t0 - WARMUP)
    xs = [t - t0 for t in times]
    axes = [fig.add_subplot(grid[0, :])]
    axes += [fig.add_subplot(grid[i, :], sharex=axes[0]) for i in range(1, overview)]
    for ax, key, what in ((axes[0], "fwd", "vISP -> provider\n(Mbit/s)"),
                          (axes[1], "ret", "Internet -> provider\n(toward the vISP, Mbit/s)")):
        for p in r.providers:
            ax.plot(xs, [v / 1e6 for v in rates[f"{key}:{p}"]], color=colour[p], lw=1.2, label=p)
        ax.set_ylabel(what)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper right", fontsize=8)
    if r.intervals:
        ax = axes[2]
        ax.step([iv.end - t0 for iv in r.intervals], [iv.bps / 1e6 for iv in r.intervals], where="pre",
                color="tab:green", lw=1, label="TCP flow, received (iperf3, 0.1 s)")
        retr = [(t - t0, k) for t, k in r.retransmits if k]
        if retr:
            ax.scatter([t for t, _ in retr], [0] * len(retr), marker="x", color="tab:red",
                       label=f"retransmissions ({sum(k for _, k in retr)} segments in all)")
        ax.set_ylabel("Mbit/s")
        ax.set_ylim(bottom=-1)
        ax.legend(loc="lower right", fontsize=8)
    for ax in axes:
        for c in cycles:
            ax.axvspan(c["drop"] - t0, c["enable"] - t0, color="tab:red", alpha=0.07, lw=0)
            for when, col, style in ((c["drop"], "tab:red", "-"), (c["moved"], "tab:orange", ":"),
                                     (c["enable"], "tab:green", "-"), (c["back"], "tab:blue", ":")):
                if when:
                    ax.axvline(when - t0, color=col, ls=style, lw=1)
        ax.set_xlim(left=-0.2)
        if ax is not axes[-1]:
            plt.setp(ax.get_xticklabels(), visible=False)
    for i, c in enumerate(cycles):
        axes[0].annotate(f"cycle {i + 1}: {r.primary} down {c['hold']:g} s", (c["drop"] - t0, 1),
                         xycoords=("data", "axes fraction"), fontsize=8, xytext=(3, -11), textcoords="offset points")
    axes[0].set_title(f"{r.host} -> {r.target}: {r.primary}'s one BGP session with the vISP's border router "
                      f"disabled at its BIRD (red band), enabled again; solid lines: disable/enable, "
                      f"dotted: {r.host}'s route moved")
    axes[-1].set_xlabel("seconds since the baseline started")

    # -- zooms around each drop and each return -----------------------------------------------
    def zoom(ax, centre: float, lo: float, hi: float, marks: list, title: str) -> None:
        inside = [s for s in r.samples if centre + lo <= s.sent <= centre + hi]
        for label, col, pick in ((f"reply via {r.primary}", colour[r.primary], lambda s: s.ttl == ttl_primary),
                                 (f"reply via {backup}", colour.get(backup, "tab:purple"),
                                  lambda s: s.ttl != ttl_primary)):
            pts = [s for s in inside if s.answered and pick(s)]
            ax.scatter([(s.sent - centre) * 1000 for s in pts], [s.rtt_ms for s in pts], s=6, color=col, label=label)
        lost = [(s.sent - centre) * 1000 for s in inside if not s.answered]
        if lost:
            ax.scatter(lost, [0] * len(lost), marker="|", s=200, color="tab:red", label=f"lost ({len(lost)})")
        for when, col, style, label in marks:
            if when is not None and lo <= when - centre <= hi:
                ax.axvline((when - centre) * 1000, color=col, ls=style, lw=1.2, label=label)
        ax.set_xlim(lo * 1000, hi * 1000)
        ax.set_ylim(bottom=-0.02)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="upper right")

    for i, c in enumerate(cycles):
        figs_c = figs["cycles"][i]
        ax = fig.add_subplot(grid[overview, i])
        zoom(ax, c["drop"], -0.2, 0.6,
             [(c["drop"], "tab:red", "-", "disable"), (c["moved"], "tab:orange", ":", "route moved")],
             f"cycle {i + 1}: drop (route moved {figs_c['drop']['route_moved_ms']} ms, "
             f"loss window {figs_c['drop']['loss_window_ms']} ms)")
        ax.set_xlabel("ms since the disable")
        if i == 0:
            ax.set_ylabel("probe RTT (ms)")
        ax = fig.add_subplot(grid[overview + 1, i])
        centre = c["back"] or c["enable"]
        ret = figs_c["return"]
        zoom(ax, centre, -0.8, 0.4,
             [(c["established"], "tab:gray", "--", "border's session Established"),
              (c["back"], "tab:blue", ":", "route back")],
             f"return: Established {ret['session_established_ms']} ms and route back {ret['route_moved_ms']} ms "
             f"after the enable")
        ax.set_xlabel("ms since the route moved back")
        if i == 0:
            ax.set_ylabel("probe RTT (ms)")
    fig.tight_layout()
    return fig
