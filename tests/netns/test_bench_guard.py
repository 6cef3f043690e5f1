"""bench/guard.py cannot rot: its quick mode runs and prints sane figures (root). Timings
are never asserted; only that every figure is there and is a number a run can give."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from dataplane import netns
from dataplane.bpf import detect

pytestmark = pytest.mark.root
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_mode_prints_its_figures():
    capability = detect.available()
    if not capability.ok:
        pytest.skip(f"no BPF guard here: {capability.reason}")
    prefix = f"hpg{uuid.uuid4().hex[:4]}"
    proc = subprocess.run([sys.executable, "bench/guard.py", "--quick", "--prefix", prefix], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["quick"] is True and figures["runs"] == 1 and figures["bpf_hook"] == capability.mode
    for key in ("sliced", "nft", "own"):
        for metric in ("pps", "tcp", "pps_per_cpu"):
            ratio = figures[f"{key}_vs_plain_{metric}_ratio"]
            assert isinstance(ratio, float) and 0 < ratio < 10, (key, metric, ratio)
            assert len(figures[f"{key}_vs_plain_{metric}_ratio_pairs"]) == 1
    for path in ("plain", "nft", "bpf", "own"):
        assert figures[f"tcp_mbps_{path}"] > 0 and figures[f"udp64_pps_{path}"] > 0
    assert 0 < figures["bpf_vs_nft_pps_ratio"] < 10
    assert not netns.list_names(f"{prefix}.") and not netns.list_names(f"{prefix}-plain.")  # nothing left behind
