#!/usr/bin/env python3
"""vispd lab benchmark (issue 5). Run as root:

    python3 bench/lab.py [--quick] [--builds 3] [--failures 3] [--rounds 3] [--compare DIR]
                         [--topology topologies/abilene.yaml] [--prefix bl]

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
3. Make before break, side by side with another checkout (`--compare DIR`, e.g. a
   `git worktree` of the commit before it; without it, this checkout alone). `--rounds`
   times, alternately, a child process (this file, importing vispd from the checkout)
   builds the topology with `vispd up` (`Lab(backend="netns")`) and `--failures` times
   takes seattle-denver down and up again, with two probes running: every 0.5 ms between
   the plb slivers whose round trip stays the same and crosses the most routes the change
   re-cuts (the steady pair: every request sent from the call until vispd has applied the
   change must be answered), and every 2 ms seattle -> denver, whose path changes
   (reconvergence as in 2). Medians per checkout over every change.
4. Everything is torn down in a `finally` (Lab.stop: host shells by PID, then `vispd down`).
   The last line printed is one JSON object with at least `mininet_vs_netns_build_ratio`,
   `static_reconverge_ms`, `ospf_reconverge_ms`, `steady_lost` (and `steady_lost_compare`,
   `changed_reconverge_ms[_compare]`, `link_apply_ms[_compare]` with --compare).

--quick: one build of each kind, one failure per mode, one round of link changes.

I/O (root): Mininet labs and topologies of its own, removed when it ends.
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
from ipaddress import ip_address, ip_network

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OSPF = "    routing: ospf\n    ospf: {hello: 1, dead: 3}\n"
RESEARCH = "    bandwidth: 200M\n    datapath: kernel\n"
LINK = ("seattle", "denver")  # plb's seattle -> denver crosses it; its failure re-cuts many routes
STEADY_INTERVAL, CHANGED_INTERVAL = 0.0005, 0.002  # s between echo requests


def use_checkout(source: str) -> None:
    """Import vispd, compiler and labs from `source` (this checkout, or --compare's): the
    imports of the functions below happen after this, as the checkout is known at run time."""
    sys.path.insert(0, os.path.abspath(source))


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
    from vispd.labnet import Lab

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
    from vispd.labnet import Lab

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


# -- make before break: the steady pair ------------------------------------------------------------
def _longest_match(routes: list, address: str):
    matching = [r for r in routes if ip_address(address) in ip_network(r.dst)]
    return max(matching, key=lambda r: ip_network(r.dst).prefixlen, default=None)


def _router(plan, slice_name: str):
    """walk(a, b): the routes a packet from a's sliver to b's loopback takes, hop by hop
    (longest prefix match over the plan's routes); None if it gets nowhere."""
    from compiler.resources import Address, Route

    routes: dict[str, list] = {}
    for r in plan.resources:
        if isinstance(r, Route):
            routes.setdefault(r.ns, []).append(r)
    owner = {r.cidr.split("/")[0]: r.ns for r in plan.resources if isinstance(r, Address)}

    def walk(src: str, dst: str) -> list | None:
        target, end = plan.sliver(slice_name, dst).loopback, plan.sliver(slice_name, dst).ns
        hops, ns = [], plan.sliver(slice_name, src).ns
        while ns != end and len(hops) <= len(routes):
            route = _longest_match(routes.get(ns, []), target)
            if route is None:
                return None
            hops.append(route)
            ns = owner.get(route.gateway)
        return hops if ns == end else None

    return walk


def steady_pair(topo, slice_name: str, link: tuple[str, str]) -> tuple[str, str, int]:
    """The slice's pair of nodes whose round trip takes the same hops with `link` up and
    down and crosses the most routes that the change re-cuts (other prefixes, same way);
    (a, b, how many)."""
    from compiler.context import ControllerState
    from compiler.planner import compile_plan

    key = tuple(sorted(link))
    walks = [_router(compile_plan(topo, state=ControllerState(failed_links=f)), slice_name)
             for f in (frozenset(), frozenset({key}))]
    nodes = topo.slice_nodes(topo.slice(slice_name))
    best = (0, "", "")
    for a in nodes:
        for b in nodes:
            trips = [(walk(a, b), walk(b, a)) for walk in walks] if a != b else []
            if not trips or any(t is None for trip in trips for t in trip):
                continue
            old, new = (trip[0] + trip[1] for trip in trips)
            if [(r.ns, r.gateway) for r in old] == [(r.ns, r.gateway) for r in new]:
                best = max(best, (sum(1 for o, n in zip(old, new) if o.dst != n.dst), a, b))
    return best[1], best[2], best[0]


def _lost_while(trace, started: float, ended: float) -> tuple[int, int]:
    """(requests sent from `started` to `ended` never answered, requests sent then)."""
    during = [s for s in trace if started <= s.sent <= ended]
    return sum(1 for s in during if not s.answered), len(during)


def link_changes(path: str, failures: int) -> dict:
    """The child of section 3: `vispd up`, then `failures` times LINK down and up with the
    steady pair's and seattle -> denver's probes running; the figures of every change."""
    from labs.failures import path_nodes, reply_ttl
    from labs.lablib import Pinger, event_figures
    from vispd.labnet import Lab

    changes = []
    with Lab(path, backend="netns") as lab:
        src, dst, recut = steady_pair(lab.topo, "plb", LINK)
        host = lab.sliver
        steady = Pinger(lab, host("plb", src), lab.address(host("plb", dst)), STEADY_INTERVAL).start()
        moved = Pinger(lab, host("plb", LINK[0]), lab.address(host("plb", LINK[1])), CHANGED_INTERVAL).start()
        home = reply_ttl(path_nodes(lab.topo, "plb", LINK[1], LINK[0]))
        try:
            for pinger in (steady, moved):
                if not pinger.wait(lambda t: sum(1 for s in t if s.answered) >= 200, 30):
                    raise RuntimeError(f"no steady replies to {pinger.dst} from {pinger.host}")
            for _ in range(failures):
                for down in (True, False):
                    started = time.monotonic()
                    change = lab.link_down(*LINK) if down else lab.link_up(*LINK)
                    ttl = None if down else home
                    moved.wait(lambda t: any(s.sent > change.changed_at and s.answered and (ttl is None or s.ttl == ttl)
                                             for s in t[-200:]), 10)
                    time.sleep(0.3)  # the last replies in, and a quiet moment before the next change
                    lost, sent = _lost_while(steady.trace(), started, change.applied_at)
                    figures = event_figures(moved.trace(), change.changed_at, CHANGED_INTERVAL, ttl=ttl)
                    changes.append({"change": "down" if down else "up", "steady_lost": lost, "steady_sent": sent,
                                    "changed_reconverge_ms": figures["reconverge_ms"], "changed_lost": figures["lost"],
                                    "apply_ms": round((change.applied_at - change.changed_at) * 1000, 3),
                                    "routes_changed": change.routes_changed})
        finally:
            steady.stop()
            moved.stop()
    return {"steady_pair": [src, dst], "recut_routes": recut, "changes": changes}


def link_change_rounds(path: str, rounds: int, failures: int, checkouts: dict[str, str]) -> dict[str, dict]:
    """Section 3's children, the checkouts taking turns; per checkout, every change."""
    results: dict[str, dict] = {label: {"changes": []} for label in checkouts}
    for i in range(rounds):
        for label in (list(checkouts) if i % 2 == 0 else list(reversed(checkouts))):
            argv = [sys.executable, os.path.abspath(__file__), "--child-links", path, "--source", checkouts[label],
                    "--failures", str(failures)]
            child = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            results[label]["changes"] += child["changes"]
            results[label].update(steady_pair=child["steady_pair"], recut_routes=child["recut_routes"])
            for c in child["changes"]:
                print(f"link {c['change']:4} ({label:7}): steady pair lost {c['steady_lost']:2d} of {c['steady_sent']}, "
                      f"seattle -> denver back after {c['changed_reconverge_ms']} ms, vispd applied "
                      f"{c['routes_changed']} routes in {c['apply_ms']} ms", flush=True)
    return results


def link_change_figures(results: dict[str, dict]) -> dict:
    figures: dict = {}
    for label, result in results.items():
        suffix = "" if label == "this" else f"_{label}"
        changes = result["changes"]
        figures[f"steady_lost{suffix}"] = statistics.median(c["steady_lost"] for c in changes)
        figures[f"steady_lost_total{suffix}"] = sum(c["steady_lost"] for c in changes)
        figures[f"steady_sent_total{suffix}"] = sum(c["steady_sent"] for c in changes)
        figures[f"changed_reconverge_ms{suffix}"] = statistics.median(
            c["changed_reconverge_ms"] for c in changes if c["changed_reconverge_ms"] is not None)
        figures[f"link_apply_ms{suffix}"] = statistics.median(c["apply_ms"] for c in changes)
        figures[f"link_changes{suffix}"] = changes
        figures["steady_pair"], figures["steady_recut_routes"] = result["steady_pair"], result["recut_routes"]
    figures["steady_probe_interval_ms"] = STEADY_INTERVAL * 1000
    return figures


# -- main ------------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one build, failure and round of each")
    parser.add_argument("--builds", type=int, default=3)
    parser.add_argument("--failures", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="section 3: children per checkout")
    parser.add_argument("--compare", help="section 3: another vispd checkout to measure side by side")
    parser.add_argument("--topology", default=os.path.join(ROOT, "topologies", "abilene.yaml"))
    parser.add_argument("--prefix", default="bl", help="topology names start with it (then the PID)")
    parser.add_argument("--source", default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--child-links", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.builds = args.failures = args.rounds = 1
    return args


def main() -> int:
    args = parse_args()
    use_checkout(args.source)
    if args.child_links:
        print(json.dumps(link_changes(args.child_links, args.failures)))
        return 0
    from vispd.labnet import mininet_available

    why = mininet_available()
    if why:
        print(f"bench/lab.py needs Mininet: {why}", file=sys.stderr)
        return 2
    checkouts = {"this": ROOT, **({"compare": os.path.abspath(args.compare)} if args.compare else {})}
    with tempfile.TemporaryDirectory(prefix="vispd-bench-lab-") as tmp:
        os.environ["VISPD_STATE_DIR"] = os.path.join(tmp, "state")
        tag = f"{args.prefix}{os.getpid() % 10000}"
        plain = topology_copy(args.topology, tmp, f"{tag}b", ospf_research=False)
        routed = topology_copy(args.topology, tmp, f"{tag}r", ospf_research=True)
        times = build_times(plain, args.builds)
        failures = reconvergence(routed, args.failures)
        links = link_change_rounds(topology_copy(args.topology, tmp, f"{tag}m", ospf_research=False),
                                   args.rounds, args.failures, checkouts)
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
        **link_change_figures(links),
        "load_average": os.getloadavg()[0],
    }
    print(f"build: Mininet {mininet:.2f} s vs namespaces {namespaces:.2f} s = "
          f"{figures['mininet_vs_netns_build_ratio']:.2f}x (goal <= 2)")
    print(f"reconvergence after link down: static {figures['static_reconverge_ms']} ms "
          f"(goal <= 100), OSPF {figures['ospf_reconverge_ms']} ms")
    print(f"link changes, steady pair {'-'.join(figures['steady_pair'])}: lost {figures['steady_lost_total']} of "
          f"{figures['steady_sent_total']} requests" + (f" (compare: {figures['steady_lost_total_compare']} of "
                                                        f"{figures['steady_sent_total_compare']})" if args.compare else ""))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
