"""bench/bgpborder.py --quick runs end to end: every variant of the border's ExaBGP passes the
table to both slices and is measured, the profiled one yields CPU profiles of the border's
ExaBGP and helper with the hot spots named, and nothing is left behind. No timing is
asserted (the machine is shared)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from dataplane import netns

pytestmark = pytest.mark.root

QUICK_BUDGET = 400  # s: about 60-120 s here


def test_quick_border_profile_reports_every_variant():
    for tool in ("bird", "birdc", "exabgp"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bgpborder.py"), "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=QUICK_BUDGET)
    assert [n for n in netns.list_names() if n.startswith("vispd.hbbdq1000.")] == []
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["quick"] is True and figures["routes"] == 1000 and figures["slices"] == 2
    assert set(figures["variants"]) == {"stock", "profiled", "nolog", "nocopy", "limit"}
    for name, variant in figures["variants"].items():
        assert variant["load_s"] > 0 and variant["withdraw_s"] > 0, name
        assert variant["routes_per_s"] == round(1000 / variant["load_s"]), name
        assert variant["speedup_vs_stock"] > 0, name
        assert set(variant["cpu_us_per_route"]) >= {"border_exabgp", "border_helper", "s1_exabgp", "s2_exabgp"}
    assert figures["variants"]["stock"]["speedup_vs_stock"] == 1.0
    profile = figures["variants"]["profiled"]["profile"]
    exabgp, helper = profile["exabgp"], profile["helper"]
    assert exabgp["cpu_s"] > 0 and helper["cpu_s"] > 0
    # the border's ExaBGP ran API commands and deep-copied the routes they injected
    spots = exabgp["hot_spots"]
    assert 0 < spots["api_commands_run"]["share"] <= 1
    assert 0 < spots["deepcopy_in_remove_self"]["s"] <= spots["api_commands_run"]["s"]
    assert len(exabgp["top_own_time"]) == 12 and all(f["own_s"] >= 0 for f in exabgp["top_own_time"])
