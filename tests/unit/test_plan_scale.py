"""bench/plan.py in its quick mode (100 nodes, one run): it finishes, and its last line is
one JSON object with the figures the issue asks for, each present and sane (no timing is
judged here: the machine is shared)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from unit_helpers import ROOT

BENCH = os.path.join(ROOT, "bench", "plan.py")


def test_quick_plan_bench_reports_its_figures():
    result = subprocess.run([sys.executable, BENCH, "--quick"], capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    nodes = figures["nodes"]
    assert nodes == 100 and figures["slices"] == 2 and figures["runs"] == 1
    for shape in ("ring", "grid"):
        assert 0 < figures[f"{shape}_load_s"] and 0 < figures[f"{shape}_plan_s"]
        assert 0 < figures[f"{shape}_plan_cpu_s"]
        assert figures[f"{shape}_interpreter_mib"] < figures[f"{shape}_baseline_mib"] <= figures[f"{shape}_peak_mib"]
        # two slices over every node: a sliver per (slice, node), and aggregated routes,
        # fewer than one per (sliver, destination)
        assert 2 * nodes < figures[f"{shape}_routes"] < 2 * nodes * (nodes - 1)
        assert figures[f"{shape}_resources"] > figures[f"{shape}_routes"]
    assert figures["plan_100_nodes_s"] == figures["plan_s"] == max(figures["ring_plan_s"], figures["grid_plan_s"])
    assert figures["plan_100_nodes_mib"] == figures["plan_mib"] == max(figures["ring_peak_mib"],
                                                                       figures["grid_peak_mib"])
    for key in ("ring_nodes_x2_plan_cpu_ratio", "ring_slices_x2_plan_cpu_ratio"):
        assert figures[key] > 0, key
    for key in ("ring_nodes_x2_mib_ratio", "ring_slices_x2_mib_ratio"):  # 0 if a small run stayed in the baseline
        assert figures[key] >= 0, key
    assert 1 < figures["ring_nodes_x2_routes_ratio"] < 4  # more nodes, more routes; far from quadratic
