"""Planning at scale: load and `compile_plan` a generated ring and grid of N nodes (1,000 by
default, 100 with --quick), two slices over every node and link, each run in a fresh
subprocess that does nothing else, so its peak RSS is the planning's.

Per shape: the median over --runs of the load (YAML, schema, semantic checks) and plan
times (wall clock and the child's CPU time, which the other users of a shared machine
disturb less), and of the child's peak RSS, in total and above the interpreter with vispd
imported. Near-linearity: the ring again at N/2 nodes, and at N nodes with four slices;
the ratios say how time and memory grow (2.0 = linear in nodes, 2.0 = linear in slices).

    python3 bench/plan.py [--quick] [--runs N] [--source DIR] [--profile]

--source plans with another checkout of vispd (e.g. an older commit, exported with
`git archive`), for before/after figures. --profile prints where one plan of the grid
spends its time. Pure: writes topology files under a temporary directory, nothing else.

The last line is one JSON object: `plan_{N}_nodes_s` and `plan_{N}_nodes_mib` (the worse
of the two shapes: median wall seconds, median peak MiB of the child), the same as
`plan_s`/`plan_mib` with `nodes`, and per shape `{shape}_{key}` figures.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID_COLUMNS = {1000: 25, 500: 20, 100: 10, 50: 10}  # rows x columns = nodes


# -- topologies --------------------------------------------------------------------------------
def _document(name: str, nodes: list[str], links: list[dict], slices: int) -> str:
    return yaml.safe_dump({
        "name": name, "asn": 64512, "address-space": ["10.0.0.0/8"],
        "nodes": [{"name": n} for n in nodes],
        "links": links,
        "slices": [{"name": f"s{i}", "nodes": "all", "links": "all", "bandwidth": "100M", "prefix-length": 19}
                   for i in range(slices)],
    }, sort_keys=False, default_flow_style=None)


def ring_topology(nodes: int, slices: int) -> str:
    """A ring of `nodes`, link costs 1, 2, 3 in turn (so routes do not split at the antipode only)."""
    names = [f"n{i:04d}" for i in range(nodes)]
    links = [{"between": [names[i], names[(i + 1) % nodes]], "bandwidth": "10G", "cost": 1 + i % 3}
             for i in range(nodes)]
    return _document("ring", names, links, slices)


def grid_topology(nodes: int, slices: int) -> str:
    """A rows x columns grid (nodes row by row), every link cost 1: equal-cost paths everywhere."""
    columns = GRID_COLUMNS.get(nodes) or int(nodes ** 0.5)
    rows = nodes // columns
    name = [[f"g{r:03d}x{c:03d}" for c in range(columns)] for r in range(rows)]
    links = []
    for r in range(rows):
        for c in range(columns):
            if c + 1 < columns:
                links.append({"between": [name[r][c], name[r][c + 1]], "bandwidth": "10G", "cost": 1})
            if r + 1 < rows:
                links.append({"between": [name[r][c], name[r + 1][c]], "bandwidth": "10G", "cost": 1})
    return _document("grid", [n for row in name for n in row], links, slices)


SHAPES = {"ring": ring_topology, "grid": grid_topology}


# -- the child: load and plan once, nothing else ----------------------------------------------------
def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(path: str, source: str, profile: bool) -> None:
    interpreter = _peak_mib()
    sys.path.insert(0, source)
    from compiler.loader import load_topology  # the checkout under test: only known at run time
    from compiler.planner import compile_plan
    baseline = _peak_mib()
    started = time.perf_counter()
    topo = load_topology(path)
    loaded, cpu = time.perf_counter(), time.process_time()
    profiler = cProfile.Profile() if profile else None
    plan = profiler.runcall(compile_plan, topo) if profiler else compile_plan(topo)
    planned, cpu_planned = time.perf_counter(), time.process_time()
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    print(json.dumps({
        "load_s": loaded - started, "plan_s": planned - loaded, "plan_cpu_s": cpu_planned - cpu,
        "peak_mib": _peak_mib(), "baseline_mib": baseline, "interpreter_mib": interpreter,
        "resources": len(plan.resources), "routes": sum(1 for r in plan.resources if r.KIND == "route"),
    }))


def run_child(path: str, source: str, profile: bool = False) -> dict:
    argv = [sys.executable, os.path.abspath(__file__), "--child", path, "--source", source]
    result = subprocess.run(argv + (["--profile"] if profile else []), capture_output=True, text=True, check=True)
    if profile:
        print(result.stderr)
    return json.loads(result.stdout.splitlines()[-1])


# -- the parent: runs, medians, ratios ---------------------------------------------------------------
def measure(workdir: str, shape: str, nodes: int, slices: int, runs: int, source: str) -> dict:
    path = os.path.join(workdir, f"{shape}{nodes}x{slices}.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(SHAPES[shape](nodes, slices))
    samples = [run_child(path, source) for _ in range(runs)]

    def median(key: str, digits: int) -> float:
        return round(statistics.median(s[key] for s in samples), digits)

    figures = {key: median(key, 3) for key in ("load_s", "plan_s", "plan_cpu_s")}
    figures.update({key: median(key, 1) for key in ("peak_mib", "baseline_mib", "interpreter_mib")})
    figures["above_baseline_mib"] = round(statistics.median(s["peak_mib"] - s["baseline_mib"] for s in samples), 1)
    figures["resources"], figures["routes"] = samples[0]["resources"], samples[0]["routes"]
    figures["plan_s_runs"] = [round(s["plan_s"], 3) for s in samples]
    print(f"{shape:4s} {nodes:5d} nodes {slices} slices: load {figures['load_s']:.2f} s, plan {figures['plan_s']:.2f} s "
          f"(cpu {figures['plan_cpu_s']:.2f} s), peak {figures['peak_mib']:.0f} MiB "
          f"({figures['above_baseline_mib']:.0f} above the {figures['baseline_mib']:.0f} MiB of the interpreter "
          f"with vispd), {figures['routes']} routes of {figures['resources']} resources", flush=True)
    return figures


def growth(workdir: str, nodes: int, runs: int, source: str, full: dict) -> dict:
    """How the ring's plan grows: N/2 -> N nodes, and 2 -> 4 slices at N nodes."""
    half = measure(workdir, "ring", nodes // 2, 2, runs, source)
    double = measure(workdir, "ring", nodes, 4, runs, source)

    def ratio(big: dict, small: dict, key: str) -> float:
        return round(big[key] / small[key], 2) if small[key] else 0.0

    return {
        "ring_nodes_x2_plan_cpu_ratio": ratio(full, half, "plan_cpu_s"),
        "ring_nodes_x2_mib_ratio": ratio(full, half, "above_baseline_mib"),
        "ring_nodes_x2_routes_ratio": ratio(full, half, "routes"),
        "ring_slices_x2_plan_cpu_ratio": ratio(double, full, "plan_cpu_s"),
        "ring_slices_x2_mib_ratio": ratio(double, full, "above_baseline_mib"),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 nodes, one run of each")
    parser.add_argument("--nodes", type=int, help="nodes per shape (default 1000, 100 with --quick)")
    parser.add_argument("--runs", type=int, help="fresh subprocesses per figure (default 5, 1 with --quick)")
    parser.add_argument("--source", default=REPO, help="the vispd checkout to plan with (default: this one)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one plan of the grid")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.child:
        child(args.child, args.source, args.profile)
        return 0
    nodes = args.nodes or (100 if args.quick else 1000)
    runs = args.runs or (1 if args.quick else 5)
    source = os.path.abspath(args.source)
    workdir = tempfile.mkdtemp(prefix="vispd-plan-bench-")
    try:
        shapes = {shape: measure(workdir, shape, nodes, 2, runs, source) for shape in SHAPES}
        figures: dict = {"nodes": nodes, "slices": 2, "runs": runs, "source": source}
        for shape, values in shapes.items():
            figures.update({f"{shape}_{key}": value for key, value in values.items()})
        figures["plan_s"] = max(v["plan_s"] for v in shapes.values())
        figures["plan_mib"] = max(v["peak_mib"] for v in shapes.values())
        figures["load_s"] = max(v["load_s"] for v in shapes.values())
        figures[f"plan_{nodes}_nodes_s"], figures[f"plan_{nodes}_nodes_mib"] = figures["plan_s"], figures["plan_mib"]
        figures.update(growth(workdir, nodes, runs, source, shapes["ring"]))
        if args.profile:
            run_child(os.path.join(workdir, f"grid{nodes}x2.yaml"), source, profile=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"worse of ring and grid at {nodes} nodes: plan {figures['plan_s']:.2f} s, peak {figures['plan_mib']:.0f} MiB; "
          f"ring x2 nodes: cpu x{figures['ring_nodes_x2_plan_cpu_ratio']}, memory x{figures['ring_nodes_x2_mib_ratio']}; "
          f"x2 slices: cpu x{figures['ring_slices_x2_plan_cpu_ratio']}, memory x{figures['ring_slices_x2_mib_ratio']}")
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
