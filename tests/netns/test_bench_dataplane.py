"""bench/dataplane.py cannot rot (issue 12 part 4): its quick mode runs end to end — the
sliced line under the machine's guard and under the nftables fallback against plain
namespaces, the line with a `routing: own` slice (under both guards where BPF is the
machine's), and `vispd up` against the floor on a small topology — and prints every figure
the README quotes, each a number a run can give (root). Timings are never asserted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from dataplane import netns
from vispd.engine import node_guard

pytestmark = pytest.mark.root
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ratio_ok(value) -> bool:
    return isinstance(value, float) and 0 < value < 10


def test_quick_mode_prints_its_figures():
    for tool in ("iperf3", "ip", "tc", "nft"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            pytest.skip(f"needs {tool}")
    prefix = f"hq{uuid.uuid4().hex[:4]}"
    proc = subprocess.run([sys.executable, "bench/dataplane.py", "--quick", "--prefix", prefix], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    guard = node_guard()
    assert figures["quick"] is True and figures["datapath_runs"] == 1
    assert figures["node_guard"] == figures["datapath_guard"] == guard
    paths = ["sliced", "plain"] + (["nft", "own", "own_nft"] if guard != "nft" else ["own"])
    for path in paths:
        assert figures[f"tcp_mbps_{path}"] > 0 and figures[f"udp64_kernel_pps_{path}"] > 0
    for path in paths[:1] + paths[2:]:
        for metric in ("pps", "tcp"):
            assert ratio_ok(figures[f"{path}_vs_plain_{metric}_ratio"]), (path, metric)
            assert len(figures[f"{path}_vs_plain_{metric}_ratio_pairs"]) == 1
    for path in paths[:1] + paths[2:]:
        assert ratio_ok(figures[f"{path}_vs_plain_pps_per_cpu_ratio"]), path
    if guard != "nft":
        assert ratio_ok(figures["sliced_vs_nft_pps_ratio"])
    for metric in ("tcp", "pps"):  # issue 14's keys, and the own path beside the kernel path
        assert ratio_ok(figures[f"own_vs_plain_{metric}_ratio"]) and ratio_ok(figures[f"own_vs_sliced_{metric}_ratio"])
    assert ratio_ok(figures["up_vs_floor_ratio"])
    small = figures[f"{prefix}q"]
    assert small["floor_objects_match_up"] is True  # the floor made what `up` made
    assert small["plan_resources"] > 100 and small["up_seconds"] > 0 and small["reup_noop_seconds"] > 0
    objects = small["kernel_objects"]
    assert objects["namespaces"] > 10 and objects["routes"] > 10
    assert (objects.get("bpf_programs", 0) > 0) == (guard != "nft")
    leftovers = [n for n in netns.list_names() if prefix in n]
    assert leftovers == []  # topologies, floor and plain namespaces all removed
