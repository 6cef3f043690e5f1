"""bench/parse.py --quick still runs and says what it must (its figures are not judged here:
timings are never asserted in tests)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from unit_helpers import ROOT


def test_quick_bench_prints_sane_json_last():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "parse.py"), "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("file_limit_bytes", "value_limit", "imports_cpu_s", "abilene_cpu_s", "abilene_maxrss_mib",
                "worst_case", "worst_cpu_s", "worst_maxrss_mib", "worst_to_abilene_cpu_ratio",
                "all_within_goal", "unbounded_cpu_s_per_mib", "unbounded_maxrss_mib_per_mib", "cases",
                "size_scan"):
        assert key in summary, key
    assert summary["quick"] is True and summary["runs"] == 1
    assert summary["worst_case"] in summary["cases"]
    assert set(summary["cases"]) >= {"merge-bomb", "deep-flow", "plain-nodes-100k"}
    for row in summary["cases"].values():
        assert row["status"] in (0, 2) and row["traceback"] is False
        assert 0 < row["cpu_s"] < 600 and 0 < row["maxrss_mib"] < 100_000
    assert summary["cases"]["merge-bomb"]["status"] == 2
    assert summary["cases"]["plain-nodes-100k"]["status"] == 0
    assert 0 < summary["abilene_cpu_s"] and summary["imports_cpu_s"] <= summary["abilene_cpu_s"] * 2
    assert set(summary["size_scan"]) == {"0.25", "0.5"}
    assert isinstance(summary["all_within_goal"], bool)
