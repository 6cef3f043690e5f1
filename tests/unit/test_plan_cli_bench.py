"""bench/plan_cli.py in its quick mode (100 nodes, one run), side by side with this checkout
as its own comparison: it finishes, and its last line is one JSON object with every figure
present and sane (no timing is judged: the machine is shared)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from unit_helpers import ROOT

BENCH = os.path.join(ROOT, "bench", "plan_cli.py")


def test_quick_plan_cli_bench_reports_its_figures():
    result = subprocess.run([sys.executable, BENCH, "--quick", "--compare", ROOT, "--prefix", "hs"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["nodes"] == 100 and figures["runs"] == 1 and figures["slices"] == 2
    for shape in ("ring", "grid"):
        for label in ("this", "compare"):
            for mode in ("default", "full"):
                prefix = f"{label}_{shape}_{mode}"
                assert 0 < figures[f"{prefix}_cpu_s"] and 0 < figures[f"{prefix}_wall_s"]
                assert 20 < figures[f"{prefix}_peak_mib"] < 4096
            # thousands of steps: every one with --full (and the summary line), a table by default
            assert figures[f"{label}_{shape}_full_lines"] > 1000 > figures[f"{label}_{shape}_default_lines"] > 3
        for mode in ("default", "full"):
            for ratio in ("cpu", "wall", "mib"):
                assert figures[f"{shape}_{mode}_{ratio}_ratio"] > 0
