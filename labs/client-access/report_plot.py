"""client-access's plot: connect times, RTT distributions and throughputs of a finished run.

Pure but for writing the plot.
"""
from __future__ import annotations

import lablib  # (run.py put labs/ on sys.path)


# -- plot --------------------------------------------------------------------------------------
def plot(r: Run, figs: dict):
    plt = lablib.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1.3, 1.3, 1]})
    ax = axes[0]
    labels = {"internet_download": f"download from {r.target}", "internet_upload": f"upload to {r.target}",
              "far_sliver_download": f"download from {r.far_sliver}"}
    for name, series in r.iperf_series.items():
        if series:
            ax.step([t for t, _ in series], [v for _, v in series], where="post", label=labels.get(name, name))
    ax.set_xlabel("seconds since iperf3 started")
    ax.set_ylabel("Mbit/s (receiver, 0.2 s intervals)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{r.args.user} through OpenVPN ({r.point.node}) into {r.slice}")
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[1]
    names = {"internet_host": f"Internet host {r.target} (tunnel)", "access_sliver": f"{r.access_sliver} (tunnel)",
             "far_sliver": f"{r.far_sliver} (tunnel)", "underlay_no_tunnel": "access point, underlay only"}
    for name, rtts in r.rtts.items():
        if rtts:
            ordered = sorted(rtts)
            ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=names.get(name, name))
    ax.set_xscale("log")
    ax.set_xlabel("RTT (ms, log scale)")
    ax.set_ylabel("fraction of probes")
    ax.set_title(f"RTT distribution (a probe every {figs['probe_interval_ms']:.0f} ms)")
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[2]
    runs = figs.get("connects", [])
    xs = list(range(1, len(runs) + 1))
    for key, label, marker in (("tunnel_up_s", "tunnel address up", "o"),
                               ("initialization_completed_s", "Initialization Sequence Completed", "s"),
                               ("first_internet_reply_s", f"first reply from {r.target}", "^")):
        ax.plot(xs, [(run.get(key) or float("nan")) * 1000 for run in runs], marker=marker, ls="", label=label)
    ax.set_xticks(xs)
    ax.set_xlabel("connect #")
    ax.set_ylabel("ms since the client was started")
    top = max([(run.get(k) or 0) * 1000 for run in runs for k in ("tunnel_up_s", "first_internet_reply_s")] or [1])
    ax.set_ylim(0, top * 1.9)
    ax.set_title("connect time")
    refusals = figs.get("refusals")
    if refusals:
        text = (f"Refusals: `vispd access revoke` closed {r.args.user}'s live session: "
                f"{refusals['revoke']['session_closed']} ({refusals['revoke']['session_closed_s']} s after it "
                f"started);  reconnecting with the revoked certificate refused: "
                f"{refusals['revoked_reconnect']['refused']};  a certificate from another CA refused: "
                f"{refusals['foreign_ca']['refused']}")
        fig.text(0.5, 0.005, text, ha="center", va="bottom", fontsize=9,
                 bbox=dict(boxstyle="round", fc="white", ec="0.7"))
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout(rect=(0, 0.06 if refusals else 0, 1, 1))
    return fig
