"""bench/failover.py cannot rot: its quick mode runs and prints sane figures (root). Timings
are never asserted; only that every figure is there and is a number a run can give."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dataplane import netns

pytestmark = pytest.mark.root
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_mode_prints_its_figures():
    proc = subprocess.run([sys.executable, "bench/failover.py", "--quick"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["quick"] is True and figures["runs"] == 1
    for key in ("failover_silent_s", "bfd_detect_s", "moveback_silent_s"):
        assert isinstance(figures[key], float) and 0 < figures[key] < 60, (key, figures[key])
    assert figures["failover_silent_s_runs"] == [figures["failover_silent_s"]]
    assert figures["down_by_bfd"] is True                     # BFD dropped the session, not the hold timer
    assert figures["lost_probes"] >= 0 and figures["hold_time_s"] == 9 and figures["goal_s"] == 0.5
    assert isinstance(figures["goal_met"], bool)
    assert not netns.list_names("vispd.hfbf")                 # nothing left behind
