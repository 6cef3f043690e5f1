"""`vispd up` against the floor (bench/dataplane.py's part 2; side effects, root).

`vispd up` is timed in-process (`vispd.engine.up(topo, source)`: compile, observe, diff,
apply; the YAML load is timed apart; no interpreter start-up) with the bench's private
VISPD_STATE_DIR. The floor makes the same kernel objects — those of the plan `up` applies,
with the node's guard this machine runs — (a) with a minimal pyroute2 script and (b) with
`ip -n NS -batch -` per namespace + `tc -n NS -batch -` + `nft -f -` or the BPF guard's
programs (bench/floor.py); floor = the faster (median of each). A census of the kernel
objects checks that up and both floors made the same things. A no-op re-up and `down` are
timed too. Up and floor runs are interleaved, their order alternated, medians over the
repetitions. `profile_up` gives a cProfile of one up, re-up and down.
"""
from __future__ import annotations

import cProfile
import io
import pstats
import time
from dataclasses import dataclass, field

from bench import census, floor
from compiler.loader import load_topology
from dataplane import netns
from measure import median, ratio, say
from vispd import engine

SETTLE = 1.0  # seconds after a teardown, for the kernel's asynchronous netns cleanup
FLOORS = (("batch", floor.build_batch), ("pyroute2", floor.build_pyroute2))


@dataclass
class Made:
    """What a run created, so its `finally` removes exactly that."""

    topologies: list[str] = field(default_factory=list)
    namespaces: set[str] = field(default_factory=set)


def timed(func, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - start, result


def node_namespaces(plan) -> list[str]:
    return [r.ns for r in plan.resources if r.KIND == "netns" and r.role == "node"]


def floor_round(builder, spec: floor.FloorSpec, made: Made, want_census: bool) -> tuple[float, dict | None]:
    made.namespaces.update(spec.all_names())
    try:
        seconds, _ = timed(builder, spec)
        counts = census.census(spec.all_names(), set(spec.node_namespaces)) if want_census else None
    finally:
        floor.teardown(spec.all_names())
        time.sleep(SETTLE)
    return seconds, counts


def up_round(topo, source: str, plan, made: Made, want_census: bool) -> dict:
    made.topologies.append(topo.name)
    try:
        up_s, outcome = timed(engine.up, topo, source)
        assert len(outcome.steps) == len(plan.resources), "up on an empty machine creates every resource"
        counts = census.census(plan.namespaces(), set(node_namespaces(plan))) if want_census else None
        reup_s, again = timed(engine.up, topo, source)
        assert not again.steps, f"re-up was not a no-op: {len(again.steps)} steps"
        down_s, _ = timed(engine.down, topo.name)
    finally:
        if netns.list_names(f"vispd.{topo.name}."):
            engine.down(topo.name)
        made.topologies.remove(topo.name)
        time.sleep(SETTLE)
    return {"up": up_s, "reup": reup_s, "down": down_s, "census": counts}


def out_of_the_race(label: str, times: dict) -> bool:
    """A floor builder that took over twice the other's time in the first rep cannot be
    the floor: it is not repeated (saves ~25 s on a 100-node topology)."""
    other = "pyroute2" if label == "batch" else "batch"
    return bool(times[label]) and bool(times[other]) and times[label][0] > 2 * times[other][0]


def measure_up(source: str, made: Made, reps: int) -> dict:
    load_s, topo = timed(load_topology, source)
    compile_s, plan = timed(engine.topology_plan, topo)
    spec = floor.floor_spec(plan)
    times: dict[str, list[float]] = {"up": [], "reup": [], "down": [], "batch": [], "pyroute2": []}
    censuses: dict[str, dict] = {}
    for rep in range(reps):
        steps = list(FLOORS) + [("up", None)]
        if rep % 2:
            steps.reverse()
        for label, builder in steps:
            if builder is None:
                result = up_round(topo, source, plan, made, rep == 0)
                for key in ("up", "reup", "down"):
                    times[key].append(result[key])
                censuses.setdefault("up", result["census"])
            elif out_of_the_race(label, times):
                continue
            else:
                seconds, counts = floor_round(builder, spec, made, rep == 0)
                times[label].append(seconds)
                censuses.setdefault(label, counts)
            say(f"  {topo.name} rep {rep + 1}/{reps} {label:8s} {times[label][-1]:.3f} s")
    return summarize_up(plan, times, censuses, load_s, compile_s)


def plan_counts(plan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for resource in plan.resources:
        counts[resource.KIND] = counts.get(resource.KIND, 0) + 1
    return dict(sorted(counts.items()))


def summarize_up(plan, times: dict, censuses: dict, load_s: float, compile_s: float) -> dict:
    med = {k: round(median(v), 3) for k, v in times.items()}
    floor_s = min(med["batch"], med["pyroute2"])
    method = "batch" if med["batch"] <= med["pyroute2"] else "pyroute2"
    return {
        "up_seconds": med["up"], "reup_noop_seconds": med["reup"], "down_seconds": med["down"],
        "floor_batch_seconds": med["batch"], "floor_pyroute2_seconds": med["pyroute2"],
        "floor_seconds": floor_s, "floor_method": "ip-batch" if method == "batch" else "pyroute2",
        "up_vs_floor_ratio": ratio(med["up"], floor_s),
        "up_vs_pyroute2_floor_ratio": ratio(med["up"], med["pyroute2"]),
        "up_vs_floor_ratio_per_rep": [ratio(u, b) for u, b in zip(times["up"], times[method])],
        "load_seconds": round(load_s, 3), "compile_seconds": round(compile_s, 3),
        "runs_seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "plan_resources": len(plan.resources), "plan_counts": plan_counts(plan),
        "kernel_objects": censuses.get("up"),
        "floor_objects_match_up": censuses.get("up") == censuses.get("batch") == censuses.get("pyroute2"),
    }


def profile_report(profiler: cProfile.Profile, title: str, top: int) -> str:
    buffer = io.StringIO()
    buffer.write(f"== cProfile: {title} ==\n")
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return buffer.getvalue()


def profile_up(source: str, made: Made, top: int = 25) -> str:
    """cProfile of one up, one no-op re-up and one down of the topology in `source`."""
    topo = load_topology(source)
    profilers = {label: cProfile.Profile() for label in ("up", "re-up (no-op)", "down")}
    made.topologies.append(topo.name)
    try:
        profilers["up"].runcall(engine.up, topo, source)
        profilers["re-up (no-op)"].runcall(engine.up, topo, source)
        profilers["down"].runcall(engine.down, topo.name)
    finally:
        if netns.list_names(f"vispd.{topo.name}."):
            engine.down(topo.name)
        made.topologies.remove(topo.name)
    return "\n".join(profile_report(p, f"{label} {topo.name}", top) for label, p in profilers.items())
