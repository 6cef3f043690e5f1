"""bench/bgp.py --quick runs end to end through the border router and its last line is one
JSON object carrying sane figures (no timing is asserted: the machine is shared), and it
leaves nothing behind (its topologies' namespaces, its hb-PID-* namespaces)."""
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

QUICK_BUDGET = 300  # s: a quick run takes about 25-60 s here; fail rather than hang CI
PROCESS_KEYS = ("border_exabgp", "border_helper", "s1_exabgp", "s1_helper", "s2_exabgp", "s2_helper")


def _ours(names: list[str], pid: int) -> list[str]:
    return [n for n in names if n.startswith(("vispd.hbqline.", "vispd.hbqing1k.", "vispd.hbqing1kv.", f"hb-{pid}-"))]


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_quick_bench_measures_through_the_border():
    for tool in ("bird", "birdc", "exabgp"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "bgp.py"), "--quick"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=QUICK_BUDGET)
    except subprocess.TimeoutExpired:
        proc.terminate()   # the bench cleans up on SIGTERM
        out, err = proc.communicate(timeout=120)
        pytest.fail(f"bench/bgp.py --quick took more than {QUICK_BUDGET} s: {out[-2000:]} {err[-2000:]}")
    assert _ours(netns.list_names(), proc.pid) == []   # nothing left behind
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["quick"] is True

    # up and failover: the provider's session with the border dropped, traffic moved to p2
    assert 0 < figures["up_to_established_s"] < 120 and 0 < figures["up_to_first_packet_s"] < 120
    assert len(figures["failover_runs"]) == 1
    assert _positive(figures["failover_s"]) and figures["failover_s"] == figures["failover_runs_s"][0]
    assert "p2" in figures["failover_runs"][0]["after_via"]      # the requests left via the backup
    assert figures["goals"]["failover_le_1s"] in (True, False)

    # ingestion: through the border to both slices, BIRD's kernel protocol, a speaker without border
    one = figures["ingest_1k"]
    assert one["routes"] == 1000 and one["slices"] == 2
    for side in ("border", "bird", "direct"):
        (run,) = one["runs"][side]
        assert run["complete"] is True, (side, run)
    border_run = one["runs"]["border"][0]
    assert set(border_run["per_fib_s"]) == {"s1", "s2"}
    assert border_run["installed"] == {"s1": 1001, "s2": 1001}    # the table + the provider's Internet route
    assert border_run["seconds"] == max(border_run["per_fib_s"].values())
    for key in ("border_ingest_routes_per_s_1k", "ingest_routes_per_s_1k", "bird_routes_per_s_1k",
                "direct_routes_per_s_1k", "us_per_route_border_1k", "us_per_route_direct_1k",
                "border_vs_direct_ratio_1k", "ingest_vs_bird_ratio_1k", "ingest_vs_bird_ratio_1k_all", "rss_mib_1k"):
        assert _positive(figures[key]), key
    assert figures["border_ingest_routes_per_s_1k"] == round(1000 / figures["border_ingest_s_1k"])
    assert figures["us_per_route_border_1k"] == pytest.approx(figures["border_ingest_s_1k"] * 1000, rel=1e-3)
    assert figures["border_vs_direct_ratio_1k"] == pytest.approx(
        figures["us_per_route_border_1k"] / figures["us_per_route_direct_1k"], rel=0.01)
    cpu = one["cpu_us_per_route"]["border"]
    assert all(key in cpu for key in PROCESS_KEYS)
    assert _positive(cpu["border_exabgp"])   # the border's ExaBGP did work for these routes
    # the kernel's own insert time for the table, each receiver above it
    (floor,) = one["runs"]["kernel"]
    assert floor["errors"] == 0 and _positive(floor["seconds"]) and figures["kernel_floor_s_1k"] == floor["seconds"]
    assert figures["bird_vs_kernel_floor_1k"] == pytest.approx(figures["bird_s_1k"] / floor["seconds"], rel=0.01)
    assert all(_positive(figures[f"{side}_vs_kernel_floor_1k"]) for side in ("border", "speaker"))
    # ... and into both slices' FIBs at once (the border path's floor), a writer process each
    (fibs,) = one["runs"]["kernel_fibs"]
    assert fibs["errors"] == 0 and len(fibs["each_s"]) == 2 and fibs["seconds"] >= max(fibs["each_s"])
    assert figures["kernel_floor_fibs_s_1k"] == fibs["seconds"]
    assert figures["ceiling_vs_bird_ratio_1k"] == pytest.approx(figures["bird_t99_s_1k"] / fibs["seconds"], rel=0.01)
    assert _positive(figures["border_vs_kernel_floor_fibs_1k"])
    assert set(one["rss_mib_pairs"]) == {"border", "s1", "s2", "direct"}
    assert all(_positive(v) for v in one["rss_mib_pairs"].values())

    # the realistic table (varied attributes, ~3 prefixes per UPDATE), through the same three sides
    varied = figures["ingest_1k_varied"]
    for side in ("border", "bird", "direct"):
        assert varied["runs"][side][0]["complete"] is True, (side, varied["runs"][side])
    assert varied["runs"]["border"][0]["installed"] == {"s1": 1001, "s2": 1001}
    assert _positive(figures["ingest_vs_bird_ratio_1k_varied"]) and _positive(figures["rss_mib_1k_varied"])
    assert figures["goals"]["ingest_ratio_100k_varied_ge_1.2"] is False   # not measured in a quick run

    # the headline keys of the extra hop, here at the quick size
    assert figures["hop_size"] == "1k"
    assert figures["us_per_route_border"] == figures["us_per_route_border_1k"]
    assert figures["border_cpu_us_per_route"]["exabgp"] == cpu["border_exabgp"]
