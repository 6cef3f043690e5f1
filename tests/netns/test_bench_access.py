"""bench/access.py cannot rot (issue 12 part 4): its quick mode (one connect and one
1-second run of each access type) runs end to end and prints every figure the README
quotes, each a number a run can give (root). Timings are never asserted."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from dataplane import netns

pytestmark = pytest.mark.root
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = ("openvpn", "wireguard-go", "wg", "iperf3", "pptpd", "pptp")


def test_quick_mode_prints_its_figures():
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    proc = subprocess.run([sys.executable, "bench/access.py", "--quick", "--prefix", "hp"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "error" not in figures and figures["iperf3_seconds"] == 1
    assert 0 < figures["openvpn_vs_plain_ratio"] < 10
    for key in ("openvpn_mbps", "plain_openvpn_mbps", "wireguard_mbps", "sliver_path_mbps"):
        assert figures[key] > 0, key
    for key in ("openvpn_connect_s", "wireguard_connect_s", "plain_openvpn_connect_s"):
        assert 0 < figures[key] < 30, key
    assert figures["pptp_mbps"] is None or figures["pptp_mbps"] > 0
    assert figures["pptp_mbps"] is not None or figures.get("pptp_error"), "PPTP neither measured nor explained"
    assert len(figures["runs"]["openvpn"]) == 1
    name = figures["topology"]
    assert name.startswith("hp") and not netns.list_names(f"vispd.{name}.")  # torn down
    assert not netns.list_names(f"vbx-{name[2:]}-")
