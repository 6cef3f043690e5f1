#!/usr/bin/env python3
"""vispd lab benchmark (issue 5). Run as root:

    python3 bench/lab.py [--builds 3] [--failures 3] [--topology topologies/abilene.yaml]

1. Build. The same topology (Abilene under a private name, every slice, providers with
   BGP, access points) is built with `Lab(backend="mininet")` (every namespace a Mininet
   host, every veth a Mininet link) and with `Lab(backend="netns")` (exactly `vispd up`),
   alternately, `--builds` times each; time = `Lab.start()` (compile, credentials, every
   namespace, device, route and daemon) to return. Each build is torn down before the
   next (not timed). Ratio = median Mininet / median netns.
2. Reconvergence. One Mininet build of the topology with the research slice switched to
   `routing: ospf` (hello 1 s, dead 3 s) next to plb (`routing: static`). For each mode,
   `--failures` times, with labs/failures.measure_reconvergence (the link-failure lab's
   measurement): a probe every 2 ms between two slivers whose least-cost path uses one
   link (plb: seattle -> denver over seattle-denver; research: chicago -> new-york over
   chicago-new-york), the link taken down with `Lab.link_down` (the same code as `vispd
   link down`: the link goes down first, then the controller computes and applies), then
   brought back up. Reconvergence = from the link going down to the first reply to a
   probe sent after it; lost = probes never answered. OSPF runs wait 6 s first, as a
   router may re-originate its LSA only every 5 s. Medians over the runs.
3. Everything is torn down in a `finally` (Lab.stop: host shells by PID, then `vispd down`).
   The last line printed is one JSON object with at least `mininet_vs_netns_build_ratio`,
   `static_reconverge_ms`, `ospf_reconverge_ms`.

I/O (root): Mininet labs and topologies of its own, removed when it ends.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vispd.labnet import Lab, mininet_available  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OSPF = "    routing: ospf\n    ospf: {hello: 1, dead: 3}\n"
RESEARCH = "    bandwidth: 200M\n    datapath: kernel\n"


def topology_copy(source: str, directory: str, name: str, ospf_research: bool) -> str:
    with open(source) as handle:
        text = handle.read()
    text = re.sub(r"(?m)^name: .*$", f"name: {name}", text, count=1)
    if ospf_research:
        if RESEARCH not in text:
            raise SystemExit("the topology has no research slice as in abilene.yaml: cannot switch it to OSPF")
        text = text.replace(RESEARCH, RESEARCH + OSPF)
    path = os.path.join(directory, f"{name}.yaml")
    with open(path, "w") as handle:
        handle.write(text)
    return path


def build_times(path: str, runs: int) -> dict:
    times = {"mininet": [], "netns": []}
    for i in range(runs):
        order = ("mininet", "netns") if i % 2 == 0 else ("netns", "mininet")
        for backend in order:
            lab = Lab(path, backend=backend)
            try:
                lab.start()
                times[backend].append(lab.times.total)
                print(f"build {backend:8} {lab.times.total:6.2f} s ({lab.times.steps} objects"
                      + (f"; hosts {lab.times.hosts:.2f} s, links {lab.times.links:.2f} s" if backend == "mininet" else "")
                      + ")", flush=True)
            finally:
                lab.stop()
    return times


def reconvergence(path: str, runs: int) -> dict:
    """Static (plb, seattle -> denver over seattle-denver) and OSPF (research, chicago ->
    new-york over chicago-new-york) link failures with labs/failures.measure_reconvergence:
    the labs' real-time prober (raw ICMP every 2 ms, send and reply stamped on the clock
    LinkChange uses), recovery judged by the reply's path (TTL)."""
    from labs import failures

    results: dict[str, list[dict]] = {"static": [], "ospf": []}
    cases = (("static", "plb", "seattle", "denver", ("seattle", "denver"), 0.0),
             ("ospf", "research", "chicago", "new-york", ("chicago", "new-york"), 6.0))
    with Lab(path) as lab:
        for i in range(runs):
            for mode, slice_name, src, dst, link, settle in cases:
                time.sleep(settle)  # OSPF: a router re-originates its LSA at most every 5 s (MinLSInterval)
                figures = failures.measure_reconvergence(lab, slice_name, src, dst, link, interval=0.002)
                down, up = figures["down"], figures["up"]
                run = {"reconverge_ms": down["reconverge_ms"], "lost": down["lost"],
                       "loss_window_ms": down["loss_window_ms"], "apply_ms": down.get("applied_ms"),
                       "routes_changed": down.get("routes_changed"), "up_reconverge_ms": up["reconverge_ms"],
                       "up_lost": up["lost"]}
                results[mode].append(run)
                print(f"{mode:6} failure {i + 1}: {run}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--builds", type=int, default=3)
    parser.add_argument("--failures", type=int, default=3)
    parser.add_argument("--topology", default=os.path.join(ROOT, "topologies", "abilene.yaml"))
    args = parser.parse_args()
    why = mininet_available()
    if why:
        print(f"bench/lab.py needs Mininet: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="vispd-bench-lab-") as tmp:
        os.environ["VISPD_STATE_DIR"] = os.path.join(tmp, "state")
        tag = f"bl{os.getpid() % 10000}"
        plain = topology_copy(args.topology, tmp, f"{tag}b", ospf_research=False)
        routed = topology_copy(args.topology, tmp, f"{tag}r", ospf_research=True)
        times = build_times(plain, args.builds)
        failures = reconvergence(routed, args.failures)
    mininet, namespaces = statistics.median(times["mininet"]), statistics.median(times["netns"])
    figures = {
        "mininet_build_s": round(mininet, 3),
        "netns_build_s": round(namespaces, 3),
        "mininet_vs_netns_build_ratio": round(mininet / namespaces, 3),
        "static_reconverge_ms": statistics.median(r["reconverge_ms"] for r in failures["static"]),
        "ospf_reconverge_ms": statistics.median(r["reconverge_ms"] for r in failures["ospf"]),
        "static_lost_pings": statistics.median(r["lost"] for r in failures["static"]),
        "ospf_lost_pings": statistics.median(r["lost"] for r in failures["ospf"]),
        "static_apply_ms": statistics.median(r["apply_ms"] for r in failures["static"]),
        "static_up_lost_pings": statistics.median(r["up_lost"] for r in failures["static"]),
        "ospf_up_lost_pings": statistics.median(r["up_lost"] for r in failures["ospf"]),
        "probe_interval_ms": 2,
        "builds": times,
        "failures": failures,
        "load_average": os.getloadavg()[0],
    }
    print(f"build: Mininet {mininet:.2f} s vs namespaces {namespaces:.2f} s = "
          f"{figures['mininet_vs_netns_build_ratio']:.2f}x (goal <= 2)")
    print(f"reconvergence after link down: static {figures['static_reconverge_ms']} ms "
          f"(goal <= 100), OSPF {figures['ospf_reconverge_ms']} ms")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
