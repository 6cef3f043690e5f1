"""bench/delay.py --quick runs end to end and its JSON carries sane figures (no timing is
asserted: the machine is shared)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from bench.delaypath import ROOT
from dataplane import delaycaps, netns

pytestmark = pytest.mark.root


def test_quick_bench_reports_its_figures():
    if shutil.which("iptables-restore") is None or not delaycaps.probe().nfqueue:
        pytest.skip("needs NFQUEUE through iptables (apt iptables) for the delay line")
    before = set(netns.list_names("hd-"))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "delay.py"), "--quick"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("rtt_within_1ms_fraction", "rtt_within_1ms_fraction_idle"):
        assert 0.0 <= figures[key] <= 1.0
    assert 0 < figures["rtt_median_ms"] < 1000
    assert figures["rtt_target_ms"] == 74.0
    assert figures["cross_traffic_mbps"] > 0
    assert figures["delayed_link_pps"] > 0
    assert figures["pps_bound_by"] in ("line", "sender", "rates")
    assert 0 < figures["delay_cpu_per_100k_pps"] < 16
    step = figures["pps_steps"][0]
    assert step["sent"] > 0 and 0 <= step["received"] <= step["sent"]
    assert figures["quick"] is True
    assert set(netns.list_names("hd-")) == before  # its namespaces are gone
