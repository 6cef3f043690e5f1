#!/usr/bin/env python3
"""What `vispd validate` costs on hostile input (issue 10, "Parsing is not bounded"):

    python3 bench/parse.py [--runs 3] [--quick] [--slow-cases]

1. Each hostile class of bench/hostile_topologies.py, sized at the limits of model/limits.py
   (merge and alias bombs, 4 MiB of nodes, a line of unknown keys, the most unknown keys the
   value limit lets through, deep nesting, the largest topology the count limits accept...),
   is validated by `vispd.cli.main(["validate", FILE])` in a fresh child process, --runs
   times; the child reports its own CPU time (user + system) and peak RSS, the parent the
   wall time. Medians. The goal: every case within 5 s and 300 MiB, exit 0 or 2.
2. For scale, the same child on topologies/abilene.yaml and on nothing but the imports.
3. Why a value limit, not only a size limit: plain annotated nodes of growing size with
   the limits lifted in the child (MAX_VALUES, MAX_FILE_BYTES, MAX_EXPANDED_CHARS, counts),
   so CPU and memory per MiB of ordinary topology are seen, then what the limits make of
   the same files.
--slow-cases adds dangling names at the count limits (the semantic checks' "did you mean"
hints, bounded by model.hints; the child is stopped after 30 s). --quick: a few small
cases, one run, a seconds-long check that the bench still works.
The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path[0] = REPO  # run as a script: import the repository's packages, not bench/'s files
elif REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import hostile_topologies as hostile  # noqa: E402
from model import limits  # noqa: E402

CPU_GOAL_S, MEMORY_GOAL_MIB = 5.0, 300
CHILD = """
import json, resource, sys
if sys.argv[2] == "unbounded":
    import model.limits as limits
    for name in ("MAX_VALUES", "MAX_FILE_BYTES", "MAX_EXPANDED_CHARS", "MAX_NODES", "MAX_SLIVERS",
                 "MAX_ROUTE_PAIRS", "MAX_VIRTUAL_LINKS"):
        setattr(limits, name, 10**12)
    limits.COUNTED_LISTS.clear()
from vispd import cli
status = cli.main(["validate", sys.argv[1]]) if sys.argv[1] != "-" else 0
usage = resource.getrusage(resource.RUSAGE_SELF)
hwm_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"status": status, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "maxrss_mib": hwm_kib / 1024}))  # VmHWM: ru_maxrss keeps the forked parent's
"""


def full_cases() -> dict:
    size = limits.MAX_FILE_BYTES - 100
    return {
        "merge-bomb": hostile.merge_bomb,
        "merge-and-alias-bomb": hostile.merge_and_alias_bomb,
        "billion-laughs": hostile.laughs,
        "string-bomb": hostile.string_bomb,
        "aliased-megabyte-values": hostile.aliased_big_values,
        "plain-nodes-4mib": lambda: hostile.plain_nodes(size),
        "bad-names-4mib": lambda: hostile.many_bad_names(size),
        "flow-of-numbers-4mib": lambda: hostile.flow_of_ones(size),
        "one-line-of-unknown-keys": hostile.long_line_of_unknown_keys,
        "unknown-keys-at-the-value-limit": hostile.unknown_keys_at_the_value_limit,
        "deep-flow": hostile.deep_flow,
        "deep-block": hostile.deep_block,
        "deep-through-aliases": hostile.deep_through_aliases,
        "syntax-error-after-3mib": lambda: hostile.syntax_error_after(
            hostile.HEAD + "# a comment line of some length\n" * 98_000),
        "at-the-count-limits": hostile.at_the_count_limits,
    }


def quick_cases() -> dict:
    return {"merge-bomb": hostile.merge_bomb, "deep-flow": lambda: hostile.deep_flow(2000),
            "plain-nodes-100k": lambda: hostile.plain_nodes(100 * 1024)}


def run_child(path: str, mode: str = "bounded", timeout: float = 120) -> dict:
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-c", CHILD, path, mode], cwd=REPO, capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": None, "cpu_s": None, "maxrss_mib": None, "wall_s": timeout, "timed_out": True}
    usage = json.loads(result.stdout.splitlines()[-1])
    usage["wall_s"] = time.monotonic() - started
    usage["traceback"] = "Traceback" in result.stderr
    usage["stderr_bytes"] = len(result.stderr)
    return usage


def median_of(runs: list[dict]) -> dict:
    merged = {"status": runs[0]["status"], "runs": len(runs)}
    for key in ("cpu_s", "maxrss_mib", "wall_s", "stderr_bytes"):
        values = [r[key] for r in runs if r.get(key) is not None]
        merged[key] = round(statistics.median(values), 3) if values else None
    merged["traceback"] = any(r.get("traceback") for r in runs)
    merged["timed_out"] = any(r.get("timed_out") for r in runs)
    return merged


def measure(cases: dict, directory: str, runs: int, timeout: float = 120) -> dict:
    results = {}
    for name, make in cases.items():
        path = os.path.join(directory, f"{name}.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(make())
        results[name] = median_of([run_child(path, timeout=timeout) for _ in range(runs)])
        results[name]["file_bytes"] = os.path.getsize(path)
        row = results[name]
        print(f"{name:34s} {row['file_bytes'] / 1024:8.0f} kB  exit {row['status']}  cpu {row['cpu_s']} s  "
              f"rss {row['maxrss_mib']} MiB  wall {row['wall_s']} s", flush=True)
    return results


def size_scan(sizes_mib: list[float], directory: str, runs: int) -> dict:
    """Plain annotated nodes of each size, with the limits lifted and with them in force."""
    scan = {}
    for size in sizes_mib:
        path = os.path.join(directory, f"plain-{size}.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(hostile.plain_nodes(int(size * 1024 * 1024)))
        row = {mode: median_of([run_child(path, mode) for _ in range(runs)]) for mode in ("unbounded", "bounded")}
        scan[str(size)] = row
        print(f"plain nodes {size:5} MiB: limits lifted cpu {row['unbounded']['cpu_s']} s "
              f"rss {row['unbounded']['maxrss_mib']} MiB (exit {row['unbounded']['status']}); "
              f"with limits cpu {row['bounded']['cpu_s']} s rss {row['bounded']['maxrss_mib']} MiB", flush=True)
    return scan


def per_mib(scan: dict, key: str) -> float | None:
    """Slope of the lifted-limits cost between the smallest and the largest size."""
    sizes = sorted(scan, key=float)
    if len(sizes) < 2:
        return None
    low, high = scan[sizes[0]]["unbounded"][key], scan[sizes[-1]]["unbounded"][key]
    return round((high - low) / (float(sizes[-1]) - float(sizes[0])), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a few small cases, one run")
    parser.add_argument("--slow-cases", action="store_true", help="add dangling names at the count limits")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    cases = quick_cases() if args.quick else full_cases()
    with tempfile.TemporaryDirectory(prefix="hy-parse-") as directory:
        baseline = {"imports-only": median_of([run_child("-") for _ in range(runs)]),
                    "abilene": median_of([run_child(os.path.join(REPO, "topologies", "abilene.yaml")) for _ in range(runs)])}
        results = measure(cases, directory, runs)
        if args.slow_cases:
            results.update(measure({"dangling-names-at-the-count-limits": hostile.dangling_link_ends},
                                   directory, 1, timeout=30))
        scan = size_scan([0.25, 0.5] if args.quick else [0.5, 1, 2, 4], directory, runs)
    judged = {name: row for name, row in results.items() if row["cpu_s"] is not None}
    worst = max(judged, key=lambda name: judged[name]["cpu_s"])
    within = all(row["status"] in (0, 2) and not row["traceback"] and not row["timed_out"]
                 and row["cpu_s"] <= CPU_GOAL_S and row["maxrss_mib"] <= MEMORY_GOAL_MIB
                 for row in results.values())
    summary = {
        "quick": args.quick, "runs": runs, "file_limit_bytes": limits.MAX_FILE_BYTES,
        "value_limit": limits.MAX_VALUES, "cpu_goal_s": CPU_GOAL_S, "memory_goal_mib": MEMORY_GOAL_MIB,
        "imports_cpu_s": baseline["imports-only"]["cpu_s"], "abilene_cpu_s": baseline["abilene"]["cpu_s"],
        "abilene_maxrss_mib": baseline["abilene"]["maxrss_mib"],
        "worst_case": worst, "worst_cpu_s": judged[worst]["cpu_s"],
        "worst_maxrss_mib": max(row["maxrss_mib"] for row in judged.values()),
        "worst_to_abilene_cpu_ratio": round(judged[worst]["cpu_s"] / baseline["abilene"]["cpu_s"], 2),
        "all_within_goal": within,
        "unbounded_cpu_s_per_mib": per_mib(scan, "cpu_s"),
        "unbounded_maxrss_mib_per_mib": per_mib(scan, "maxrss_mib"),
        "cases": results, "size_scan": scan,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
