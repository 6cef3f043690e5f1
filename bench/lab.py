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
   `--failures` times: a ping every 2 ms between two slivers whose least-cost path uses
   one link (plb: seattle -> denver over seattle-denver; research: chicago -> new-york
   over chicago-new-york), the link taken down with `Lab.link_down` (the same code as
   `vispd link down`: the link goes down first, then the controller computes and applies),
   then brought back up once traffic flows again (OSPF: 6 s more, as a router may
   re-originate its LSA only every 5 s). Reconvergence = first echo reply after
   the replies stopped - the moment the link went down (0 if no reply went missing);
   loss = echo requests never answered. Medians over the runs.
3. Everything is torn down in a `finally` (Lab.stop: host shells by PID, then `vispd down`).
   The last line printed is one JSON object with at least `mininet_vs_netns_build_ratio`,
   `static_reconverge_ms`, `ospf_reconverge_ms`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vispd.labnet import Lab, mininet_available  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)")
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


def route_device(lab: Lab, slice_name: str, node: str, destination: str) -> str | None:
    for route in lab.routes(slice_name, node):
        if route["dst"] == f"{destination}/32":
            return route["dev"]
    return None


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def one_failure(lab: Lab, slice_name: str, src: str, dst: str, link: tuple[str, str], direct_dev: str,
                recover: float, settle: float = 0.0) -> dict:
    target = lab.address(lab.sliver(slice_name, dst))
    if not wait_until(lambda: route_device(lab, slice_name, src, target) == direct_dev, 30):
        raise SystemExit(f"{slice_name}: {src} never routed to {dst} over {direct_dev}")
    time.sleep(settle)  # OSPF: a router re-originates its LSA at most every 5 s (MinLSInterval)
    ping = lab.popen(lab.sliver(slice_name, src), ["ping", "-D", "-n", "-i", "0.002", "-W", "1", target],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(1.0)
        wall, mono = time.time(), time.monotonic()
        change = lab.link_down(*link)
        down_at = wall + (change.changed_at - mono)
        apply_ms = (change.applied_at - change.changed_at) * 1000
        time.sleep(recover)
    finally:
        ping.terminate()
        out, _ = ping.communicate()
        lab.link_up(*link)
    wait_until(lambda: route_device(lab, slice_name, src, target) == direct_dev, 30)
    replies = [(float(m[1]), int(m[2])) for m in map(REPLY.match, out.splitlines()) if m]
    before = [seq for t, seq in replies if t <= down_at]
    after = [(t, seq) for t, seq in replies if t > down_at]
    if not before or not after:
        raise SystemExit(f"{slice_name}: no echo replies {'before' if not before else 'after'} the failure")
    last_before = max(before)
    first_back, first_seq = min(after, key=lambda r: r[1])
    lost = first_seq - last_before - 1  # requests between the last reply before and the first after
    reconverge = (first_back - down_at) * 1000 if lost > 0 else 0.0
    return {"reconverge_ms": round(reconverge, 2), "lost": lost, "apply_ms": round(apply_ms, 2),
            "routes_changed": change.routes_changed}


def reconvergence(path: str, runs: int) -> dict:
    results: dict[str, list[dict]] = {"static": [], "ospf": []}
    with Lab(path) as lab:
        for i in range(runs):
            results["static"].append(one_failure(lab, "plb", "seattle", "denver", ("seattle", "denver"),
                                                 "v-dnvr", recover=0.5))
            print(f"static failure {i + 1}: {results['static'][-1]}", flush=True)
            results["ospf"].append(one_failure(lab, "research", "chicago", "new-york", ("chicago", "new-york"),
                                               "v-nycm", recover=6.0, settle=6.0))
            print(f"ospf   failure {i + 1}: {results['ospf'][-1]}", flush=True)
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
        "ping_interval_ms": 2,
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
