"""Route ingestion for bench/bgp.py (its part 3; the docstring there says what is measured
and how): the ingestion topologies, the three receivers side by side (through the border,
BIRD's kernel protocol, a slice speaker without border) plus the kernel's floor, and the
figures and keys of one table size. I/O (root): topologies via `vispd`, the BIRD lab
(bench/bgpsides.py), the floor's namespace (bench/fibfloor.py)."""
from __future__ import annotations

import os
import time

from bench.bgpkit import Cleanup, FibCounter, Vispd, birdc, median, provider_sock, ratio, vm_kib, wait_for, write
from bench.bgpsides import BirdLab, Side, Watched
from bench.bgpvaried import varied_static
from bench.fibfloor import KernelFloor
from compiler.daemons.bird import session_protocol
from measure import rounded, say
from model.naming import sliver_ns

INGEST_SLICES = ("s1", "s2")     # the slices egressing through p1 in the ingestion topologies
VARIED = "_varied"               # a size label ending so: the realistic table (bench/bgpvaried.py)
HOP_SIZE = "100k"                # the headline size of the extra hop's cost
MAX_PREFIX = 2_000_000
SESSION = session_protocol()     # "vispd": the provider's BGP protocol toward the vISP's border


def ingest_topology(name: str, routes: int) -> str:
    slices = "\n".join(f"  - {{name: {s}, prefix: 198.18.{4 * i}.0/22, nodes: all, bandwidth: 1G, egress: [p1]}}"
                       for i, s in enumerate(INGEST_SLICES))
    return f"""\
# bench/bgp.py: one egress node, one provider originating {routes} generated prefixes,
# {len(INGEST_SLICES)} slices egressing through it (each peering with the node's border router).
name: {name}
asn: 64512
address-space: [198.18.0.0/16]
nodes:
  - {{name: a, site: a}}
providers:
  - {{name: p1, node: a, asn: 65101, bandwidth: 10G, peering: 192.0.2.0/28, max-prefix: {MAX_PREFIX}, lab-routes: {routes}}}
slices:
{slices}
"""


def _first_load(vispd: Vispd, name: str, routes: int, counters: dict, timeout: float,
                up_started: float) -> tuple[dict, dict, float]:
    """Wait for the first load at `up` (not measured: it gives the baselines); returns
    ({slice: routes installed}, {slice: baseline count}, seconds since up started)."""
    def loaded() -> bool:
        return all(vispd.to_border(name, s, "a").get("installed", 0) >= routes + 1 for s in INGEST_SLICES)

    if not wait_for(loaded, timeout=timeout, interval=0.2):
        raise RuntimeError(f"{name}: first load incomplete: "
                           f"{ {s: vispd.to_border(name, s, 'a').get('installed') for s in INGEST_SLICES} }")
    first_load_s = time.monotonic() - up_started
    installed = {s: vispd.to_border(name, s, "a")["installed"] for s in INGEST_SLICES}
    time.sleep(0.3)
    return installed, {s: counters[s]() - installed[s] for s in INGEST_SLICES}, first_load_s


def _cpu_us_per_route(side: Side, process: str, routes: int) -> float | None:
    return median([r["cpu_s"][process] * 1e6 / routes for r in side.complete() if process in r["cpu_s"]])


def _rss(pids: dict) -> dict:
    """Peak RSS (MiB) of each ExaBGP + helper pair: {"border": .., "s1": .., ..., "direct": ..}."""
    pairs = {}
    for key, pid in pids.items():
        if key.endswith("_exabgp"):
            stem = key[:-len("_exabgp")]
            kib = vm_kib(pid, "VmHWM") + vm_kib(pids.get(f"{stem}_helper"), "VmHWM")
            pairs[stem] = round(kib / 1024, 1)
    return pairs


def _floor_keys(floor: KernelFloor, times: dict, t99: dict) -> dict:
    """How far each receiver is above the kernel's own insert time for the table (into one
    FIB), and the border above the time of the table into every slice's FIB at once, which
    bounds the ratio to BIRD any receiver could reach through the border here: the ceiling
    compares like the headline ratio (BIRD's time to 99%; the floor's for the whole table,
    so it errs low by about 1%), since BIRD's time to 100% often holds its sender's tail."""
    kernel_s = median([r["seconds"] for r in floor.runs if not r["errors"]])
    fibs_s = median([r["seconds"] for r in floor.fibs_runs if not r["errors"]])
    return {"kernel_floor_s": rounded(kernel_s, 4),
            "kernel_floor_cpu_s": median([r["cpu_s"] for r in floor.runs if not r["errors"]]),
            **{f"{side}_vs_kernel_floor": ratio(times[side], kernel_s) for side in ("border", "bird", "direct")},
            "kernel_floor_fibs_s": rounded(fibs_s, 4),
            "kernel_floor_fibs_cpu_s": median([r["cpu_s"] for r in floor.fibs_runs if not r["errors"]]),
            "border_vs_kernel_floor_fibs": ratio(times["border"], fibs_s),
            "ceiling_vs_bird_ratio": ratio(t99["bird"], fibs_s)}


def _ingest_figures(border: Side, bird: Side, direct: Side, routes: int, rss: dict, floor: KernelFloor) -> dict:
    """The ingestion figures of one size from the three sides' runs."""
    def rate(count: float, seconds: float | None) -> int | None:
        return round(count / seconds) if seconds else None

    def side_median(side: Side, key: str):
        return median([r[key] for r in side.complete()])

    times = {s.name: side_median(s, "seconds") for s in (border, bird, direct)}
    t99 = {s.name: side_median(s, "t99_s") for s in (border, bird, direct)}
    cpu = {side.name: {p: _cpu_us_per_route(side, p, routes) for p in (side.complete() or [{"cpu_s": {}}])[0]["cpu_s"]}
           for side in (border, bird, direct)}
    border_cpu = cpu["border"]
    border_total = sum(v for k, v in border_cpu.items() if k.startswith("border_") and v is not None)
    return {
        "routes": routes, "slices": len(INGEST_SLICES),
        "border_s": times["border"], "bird_s": times["bird"], "direct_s": times["direct"],
        "border_t99_s": t99["border"], "bird_t99_s": t99["bird"], "direct_t99_s": t99["direct"],
        "border_routes_per_s": rate(routes, times["border"]), "bird_routes_per_s": rate(routes, times["bird"]),
        "direct_routes_per_s": rate(routes, times["direct"]),
        "border_routes_per_s_t99": rate(0.99 * routes, t99["border"]),
        "bird_routes_per_s_t99": rate(0.99 * routes, t99["bird"]),
        "ratio_t99": ratio(rate(0.99 * routes, t99["border"]), rate(0.99 * routes, t99["bird"])),
        "ratio_all": ratio(rate(routes, times["border"]), rate(routes, times["bird"])),
        # at a slice's speaker: the same speaker without the border in front of it
        "direct_ratio_t99": ratio(rate(0.99 * routes, t99["direct"]), rate(0.99 * routes, t99["bird"])),
        "us_per_route_border": rounded(times["border"] and times["border"] * 1e6 / routes, 2),
        "us_per_route_direct": rounded(times["direct"] and times["direct"] * 1e6 / routes, 2),
        "border_vs_direct_ratio": ratio(times["border"], times["direct"]),
        "border_cpu_us_per_route": {"exabgp": border_cpu.get("border_exabgp"), "helper": border_cpu.get("border_helper"),
                                    "total": round(border_total, 2)},
        "cpu_us_per_route": cpu,
        "withdraw_s": {s.name: median([r["withdraw_s"] for r in s.runs if r.get("withdraw_s") is not None])
                       for s in (border, bird, direct)},
        "tail_stalled_runs": {s.name: sum(1 for r in s.runs if r.get("tail_stall")) for s in (border, bird, direct)},
        "rss_mib_pairs": rss, "rss_mib": max(rss.values()) if rss else None,
        **_floor_keys(floor, times, t99),
        "runs": {**{s.name: s.runs for s in (border, bird, direct)}, "kernel": floor.runs,
                 "kernel_fibs": floor.fibs_runs},
    }


def sessions_note(vispd: Vispd, name: str) -> dict:
    """The border's sessions after a run (a session that dropped during the load shows here)."""
    keys = ("state", "flaps", "last_down_reason")
    note = {"p1": {k: vispd.border_neighbor(name, "a", "p1").get(k) for k in keys}}
    note.update({s: {k: vispd.border_neighbor(name, "a", f"slice {s}").get(k) for k in keys} for s in INGEST_SLICES})
    return note


def _sides(vispd: Vispd, name: str, lab: BirdLab, routes: int, counters: dict, installed: dict, baselines: dict,
           cleanup: Cleanup) -> tuple[Side, Side, Side, dict]:
    bird_counter, direct_counter = FibCounter(lab.rcv_ns), FibCounter(lab.spk_ns)
    cleanup.counters += [bird_counter, direct_counter]
    pids = vispd.bgp_pids(name, "a", list(INGEST_SLICES))
    pids.update(provider_bird=vispd.daemon_pid(name, "bird-p1"), egress_manager=vispd.daemon_pid(name, "egress-manager"))
    border = Side("border", routes, provider_sock(name, "p1"), SESSION,
                  {s: Watched(counters[s], baselines[s], installed[s]) for s in INGEST_SLICES}, lambda: pids,
                  notes=lambda: sessions_note(vispd, name))
    bird = Side("bird", routes, lab.snd_sock, "rcv", {"bird": Watched(bird_counter, bird_counter(), routes)},
                lambda: {"bird_rcv": lab.pid("rcv"), "bird_snd": lab.pid("snd")})
    direct = Side("direct", routes, lab.snd_sock, "spk", {"direct": Watched(direct_counter, direct_counter(), routes)},
                  lambda: {"direct_exabgp": lab.speaker_pids()["exabgp"], "direct_helper": lab.speaker_pids()["helper"],
                           "bird_snd": lab.pid("snd")})
    return border, bird, direct, pids


def _vary_provider(vispd: Vispd, name: str, routes: int) -> None:
    """The lab provider p1 of a varied-table topology (brought up with `lab-routes: 0`) gets
    the realistic table: its BIRD configuration gains bench/bgpvaried.py's static protocol,
    then `birdc configure`. (A `lab-routes-varied: true` provider field would do it in vispd.)"""
    conf = os.path.join(vispd.state_dir, name, "run", "bird-p1.conf")
    with open(conf, "a") as handle:
        handle.write("\n# bench/bgp.py: the realistic table (bench/bgpvaried.py)\n" + varied_static(routes))
    out = birdc(provider_sock(name, "p1"), "configure")
    if "Reconfigured" not in out:
        raise RuntimeError(f"{name}: the provider's BIRD did not take the varied table: {out}")


def ingest_one(vispd: Vispd, prefix: str, workdir: str, cleanup: Cleanup, label: str, routes: int, runs: int) -> dict:
    varied = label.endswith(VARIED)
    name = f"{prefix}ing{label.replace(VARIED, 'v')}"
    timeout = 60 + routes / 400   # the border passes a few thousand routes/s to each slice
    lab = BirdLab(label, routes, workdir, MAX_PREFIX, stem=prefix.rstrip("q"), varied=varied)
    cleanup.labs.append(lab)
    lab.start()
    floor = KernelFloor(label, routes, stem=prefix.rstrip("q"), fibs=len(INGEST_SLICES))
    cleanup.labs.append(floor)
    floor.start()
    path = write(workdir, f"{name}.yaml", ingest_topology(name, 0 if varied else routes))
    cleanup.topologies.append(name)
    up_started = time.monotonic()
    vispd.run("up", path, timeout=600)
    if varied:
        _vary_provider(vispd, name, routes)
    up_s = time.monotonic() - up_started
    counters = {s: FibCounter(sliver_ns(name, "a", s)) for s in INGEST_SLICES}
    cleanup.counters += list(counters.values())
    installed, baselines, first_load_s = _first_load(vispd, name, routes, counters, timeout, up_started)
    if not wait_for(lab.loaded, timeout=timeout, interval=0.2):
        raise RuntimeError(f"our BIRD sender ({label}) never loaded {routes} routes, or the direct speaker never started")
    border, bird, direct, pids = _sides(vispd, name, lab, routes, counters, installed, baselines, cleanup)
    say(f"ingest {label}: vispd up {up_s:.2f} s, first load in both slices complete {first_load_s:.2f} s after up "
        f"started; installed {installed}, baselines {baselines}")
    sides = [border, bird, direct]
    for i in range(runs):   # rounds rotate which side goes first
        say(f"  {label} run {i + 1}/{runs} kernel floor {floor.measure()}, "
            f"{len(INGEST_SLICES)} FIBs at once {floor.measure_fibs()}")
        for side in sides[i % 3:] + sides[:i % 3]:
            run = side.measure(timeout)
            say(f"  {label} run {i + 1}/{runs} {side.name:6s} " + " ".join(f"{k}={v}" for k, v in run.items()))
    rss = _rss({**pids, "direct_exabgp": lab.speaker_pids()["exabgp"], "direct_helper": lab.speaker_pids()["helper"]})
    result = {**_ingest_figures(border, bird, direct, routes, rss, floor), "up_s": round(up_s, 3),
              "first_load_s": round(first_load_s, 3)}
    _say_ingest(label, result)
    cleanup.close_counters(list(counters.values()) + [w.counter for s in (bird, direct) for w in s.fibs.values()])
    for stopping in (lab, floor):
        stopping.stop()
        cleanup.labs.remove(stopping)
    result["down_s"] = round(cleanup.down(name), 3)
    return result


def _say_ingest(label: str, r: dict) -> None:
    say(f"ingest {label}: to 100% of the routes: through the border to both slices {r['border_s']} s "
        f"({r['border_routes_per_s']} routes/s, {r['us_per_route_border']} µs/route), direct to one speaker "
        f"{r['direct_s']} s ({r['us_per_route_direct']} µs/route): border/direct {r['border_vs_direct_ratio']}; "
        f"BIRD {r['bird_s']} s ({r['bird_routes_per_s']} routes/s). Ratio to BIRD: to 99% {r['ratio_t99']}, "
        f"to 100% {r['ratio_all']}; withdrawals {r['withdraw_s']} s; tail-stalled runs {r['tail_stalled_runs']}")
    say(f"ingest {label}: CPU µs/route {r['cpu_us_per_route']}; peak RSS per ExaBGP + helper {r['rss_mib_pairs']} MiB")
    say(f"ingest {label}: the kernel alone inserts the table in {r['kernel_floor_s']} s; above it: border "
        f"{r['border_vs_kernel_floor']}x, BIRD {r['bird_vs_kernel_floor']}x, direct {r['direct_vs_kernel_floor']}x; "
        f"into the {len(INGEST_SLICES)} slices' FIBs at once {r['kernel_floor_fibs_s']} s (border "
        f"{r['border_vs_kernel_floor_fibs']}x above it): through the border no receiver can pass "
        f"{r['ceiling_vs_bird_ratio']}x BIRD's rate to 99% here")


def size_keys(label: str, one: dict) -> dict:
    return {
        f"ingest_{label}": one,
        f"border_ingest_routes_per_s_{label}": one["border_routes_per_s"],
        f"border_ingest_s_{label}": one["border_s"],
        f"border_ingest_t99_s_{label}": one["border_t99_s"],
        # the keys before the border, now measured through it (to every slice)
        f"ingest_routes_per_s_{label}": one["border_routes_per_s"],
        f"ingest_s_{label}": one["border_s"],
        f"ingest_t99_s_{label}": one["border_t99_s"],
        f"bird_routes_per_s_{label}": one["bird_routes_per_s"],
        f"bird_s_{label}": one["bird_s"],
        f"bird_t99_s_{label}": one["bird_t99_s"],
        # headline: rates over the first 99% (BIRD<->BIRD transfers stall on the last 0.16%)
        f"ingest_vs_bird_ratio_{label}": one["ratio_t99"],
        f"ingest_vs_bird_ratio_{label}_all": one["ratio_all"],
        f"direct_routes_per_s_{label}": one["direct_routes_per_s"],
        f"speaker_vs_bird_ratio_{label}": one["direct_ratio_t99"],
        f"us_per_route_border_{label}": one["us_per_route_border"],
        f"us_per_route_direct_{label}": one["us_per_route_direct"],
        f"border_vs_direct_ratio_{label}": one["border_vs_direct_ratio"],
        f"border_cpu_us_per_route_{label}": one["border_cpu_us_per_route"],
        f"rss_mib_{label}": one["rss_mib"],
        # what no receiver installing into a Linux FIB can beat here, and each one's distance to it
        f"kernel_floor_s_{label}": one["kernel_floor_s"],
        f"bird_vs_kernel_floor_{label}": one["bird_vs_kernel_floor"],
        f"speaker_vs_kernel_floor_{label}": one["direct_vs_kernel_floor"],
        f"border_vs_kernel_floor_{label}": one["border_vs_kernel_floor"],
        # the border path's floor: the table into every egressing slice's FIB at once, and the
        # highest ingest_vs_bird ratio (to 99%) it leaves any receiver through the border
        f"kernel_floor_fibs_s_{label}": one["kernel_floor_fibs_s"],
        f"border_vs_kernel_floor_fibs_{label}": one["border_vs_kernel_floor_fibs"],
        f"ceiling_vs_bird_ratio_{label}": one["ceiling_vs_bird_ratio"],
    }


def hop_keys(result: dict, sizes: dict) -> dict:
    """The extra hop's cost at the headline size (the largest measured if 100k was not)."""
    label = HOP_SIZE if HOP_SIZE in sizes else max(sizes, key=sizes.get)
    return {"hop_size": label, "us_per_route_border": result.get(f"us_per_route_border_{label}"),
            "us_per_route_direct": result.get(f"us_per_route_direct_{label}"),
            "border_vs_direct_ratio": result.get(f"border_vs_direct_ratio_{label}"),
            "border_cpu_us_per_route": result.get(f"border_cpu_us_per_route_{label}")}
