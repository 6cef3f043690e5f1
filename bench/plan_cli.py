"""`vispd plan` end to end at scale: the command a user types, on bench/plan.py's ring and
grid of N nodes (1,000 by default, 100 with --quick; two slices over everything), each run
a fresh `python3 -m vispd.cli plan FILE` process whose output goes to a file, timed from its
start to its exit (wall clock, and its user + system CPU time, which the other users of a
shared machine disturb less), with its peak RSS (from os.wait4).

Modes: `default` is what `vispd plan FILE` prints (this checkout: beyond 1,000 steps, a
table by kind; before, every step), `full` every step (`--full` where the checkout has it),
and with --json, `json` (`--json`).

Side by side: --compare DIR measures another checkout in the same run (e.g. the base commit,
`git worktree add --detach /tmp/base COMMIT`), the two taking turns run by run; the ratios
are this checkout's medians over the other's.

    python3 bench/plan_cli.py [--quick] [--nodes N] [--runs N] [--json] [--compare DIR] [--prefix bp]

As root, `vispd plan` also reads the kernel for what is already up (nothing, for these
names: `--prefix`, the shape and this process's PID); otherwise it plans against an empty
machine. Writes only under a temporary directory. The last line is one JSON object:
`{label}_{shape}_{mode}_{wall_s,cpu_s,peak_mib,lines}` per checkout (`this`, `compare`) and,
with --compare, `{shape}_{mode}_{cpu,wall,mib}_ratio` (this / compare).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.plan import SHAPES  # noqa: E402  (the same topologies as the planning bench)


def has_full_flag(checkout: str, env: dict) -> bool:
    """Whether this checkout's `vispd plan` knows --full (before it, every step was listed)."""
    result = subprocess.run([sys.executable, "-m", "vispd.cli", "plan", "--help"], cwd=checkout, env=env,
                            capture_output=True, text=True, check=True)
    return "--full" in result.stdout


def run_plan(checkout: str, path: str, flags: list[str], env: dict, workdir: str) -> dict:
    """One `vispd plan` process: wall and CPU seconds, peak MiB, lines and bytes it printed."""
    out_path, err_path = os.path.join(workdir, "plan.out"), os.path.join(workdir, "plan.err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "vispd.cli", "plan", path, *flags], cwd=checkout, env=env,
                                stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        with open(err_path, errors="replace") as handle:
            raise RuntimeError(f"vispd plan {path} {' '.join(flags)} in {checkout} exited {proc.returncode}: "
                               f"{handle.read()[-2000:]}")
    with open(out_path, "rb") as handle:
        data = handle.read()
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024,
            "lines": data.count(b"\n"), "bytes": len(data)}


def modes_of(checkout: str, env: dict, with_json: bool) -> dict[str, list[str]]:
    modes = {"default": [], "full": ["--full"] if has_full_flag(checkout, env) else []}
    if with_json:
        modes["json"] = ["--json"]
    return modes


def measure(checkouts: dict[str, str], files: dict[str, str], runs: int, with_json: bool, workdir: str) -> dict:
    """{label: {shape: {mode: [run, ...]}}}, the checkouts taking turns run by run."""
    env = {**os.environ, "VISPD_STATE_DIR": os.path.join(workdir, "state")}
    envs = {label: {**env, "PYTHONPATH": checkout} for label, checkout in checkouts.items()}
    modes = {label: modes_of(checkout, envs[label], with_json) for label, checkout in checkouts.items()}
    samples: dict = {label: {shape: {mode: [] for mode in modes[label]} for shape in files} for label in checkouts}
    for i in range(runs):
        for shape, path in files.items():
            for mode in modes["this"]:
                order = list(checkouts) if i % 2 == 0 else list(reversed(checkouts))
                for label in order:
                    run = run_plan(checkouts[label], path, modes[label][mode], envs[label], workdir)
                    samples[label][shape][mode].append(run)
                    print(f"{label:7} {shape:4} {mode:7} wall {run['wall_s']:6.2f} s, cpu {run['cpu_s']:6.2f} s, "
                          f"peak {run['peak_mib']:5.0f} MiB, {run['lines']:,} lines", flush=True)
    return samples


def figures_of(samples: dict, nodes: int, runs: int) -> dict:
    figures: dict = {"nodes": nodes, "slices": 2, "runs": runs}
    for label, shapes in samples.items():
        for shape, modes in shapes.items():
            for mode, runs_of in modes.items():
                prefix = f"{label}_{shape}_{mode}"
                for key, digits in (("wall_s", 3), ("cpu_s", 3), ("peak_mib", 1)):
                    figures[f"{prefix}_{key}"] = round(statistics.median(r[key] for r in runs_of), digits)
                figures[f"{prefix}_lines"] = runs_of[0]["lines"]
    if "compare" in samples:
        for shape, modes in samples["this"].items():
            for mode in modes:
                for key, name in (("cpu_s", "cpu"), ("wall_s", "wall"), ("peak_mib", "mib")):
                    this, other = figures[f"this_{shape}_{mode}_{key}"], figures[f"compare_{shape}_{mode}_{key}"]
                    figures[f"{shape}_{mode}_{name}_ratio"] = round(this / other, 3) if other else 0.0
    return figures


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 nodes, one run of each")
    parser.add_argument("--nodes", type=int, help="nodes per shape (default 1000, 100 with --quick)")
    parser.add_argument("--runs", type=int, help="runs per checkout, shape and mode (default 5, 1 with --quick)")
    parser.add_argument("--json", action="store_true", help="also time `vispd plan --json`")
    parser.add_argument("--compare", help="another vispd checkout to measure side by side")
    parser.add_argument("--prefix", default="bp", help="topology names start with it")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    nodes = args.nodes or (100 if args.quick else 1000)
    runs = args.runs or (1 if args.quick else 5)
    checkouts = {"this": REPO, **({"compare": os.path.abspath(args.compare)} if args.compare else {})}
    workdir = tempfile.mkdtemp(prefix="vispd-plan-cli-bench-")
    try:
        files = {}
        for shape, make in SHAPES.items():
            name = f"{args.prefix}{shape}{os.getpid() % 10000}"
            files[shape] = os.path.join(workdir, f"{name}.yaml")
            with open(files[shape], "w", encoding="utf-8") as handle:
                handle.write(make(nodes, 2).replace("name: " + shape, "name: " + name, 1))
        figures = figures_of(measure(checkouts, files, runs, args.json, workdir), nodes, runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for shape in SHAPES:
        line = (f"{shape} at {nodes} nodes, `vispd plan`: {figures[f'this_{shape}_default_wall_s']:.2f} s, "
                f"{figures[f'this_{shape}_default_peak_mib']:.0f} MiB ({figures[f'this_{shape}_default_lines']:,} lines)")
        if "compare" in checkouts:
            line += (f"; compare {figures[f'compare_{shape}_default_wall_s']:.2f} s, "
                     f"{figures[f'compare_{shape}_default_peak_mib']:.0f} MiB "
                     f"({figures[f'compare_{shape}_default_lines']:,} lines); cpu x{figures[f'{shape}_default_cpu_ratio']}, "
                     f"memory x{figures[f'{shape}_default_mib_ratio']}")
        print(line)
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
