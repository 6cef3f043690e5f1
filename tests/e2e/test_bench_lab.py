"""bench/lab.py --quick runs end to end (Mininet, `vispd up`, link changes side by side with
a second checkout — here this one again) and its last line is one JSON object whose figures
are present and sane; no timing is judged (the machine is shared). Nothing it built is left."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from vispd.labnet import mininet_available

pytestmark = [pytest.mark.root]

WHY_NOT = mininet_available()
if WHY_NOT:
    print(f"skipping bench/lab.py --quick: {WHY_NOT}")
    pytestmark.append(pytest.mark.skip(reason=WHY_NOT))

PREFIX = "hsb"  # the bench names its topologies PREFIX + its PID + a letter


def bench_namespaces() -> set[str]:
    return {n for n in os.listdir("/run/netns") if n.startswith(f"vispd.{PREFIX}")} if os.path.isdir("/run/netns") \
        else set()


def test_quick_lab_bench_reports_its_figures():
    before = bench_namespaces()
    result = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "lab.py"), "--quick", "--prefix", PREFIX,
                             "--compare", ROOT], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["mininet_build_s"] > 0 and figures["netns_build_s"] > 0
    assert figures["mininet_vs_netns_build_ratio"] > 0
    assert len(figures["builds"]["mininet"]) == len(figures["builds"]["netns"]) == 1
    assert figures["static_reconverge_ms"] > 0 and figures["ospf_reconverge_ms"] > 0
    assert figures["static_apply_ms"] > 0
    # section 3, for this checkout and the compared one: one round, one failure = two changes each
    assert len(figures["steady_pair"]) == 2 and figures["steady_recut_routes"] >= 1
    for suffix in ("", "_compare"):
        changes = figures[f"link_changes{suffix}"]
        assert [c["change"] for c in changes] == ["down", "up"]
        assert all(c["steady_sent"] > 0 and 0 <= c["steady_lost"] <= c["steady_sent"] for c in changes)
        assert all(c["routes_changed"] > 0 and c["apply_ms"] > 0 for c in changes)
        assert figures[f"steady_lost{suffix}"] >= 0 and figures[f"steady_sent_total{suffix}"] > 0
        assert figures[f"changed_reconverge_ms{suffix}"] > 0 and figures[f"link_apply_ms{suffix}"] > 0
    assert bench_namespaces() == before
