"""The labs bgp-failover and client-access, each run in short mode exactly as its README's
one command (`python3 labs/NAME/run.py --short`, with `--out` and `--topology`), in
Mininet: their figures must be sane, and the run must leave nothing behind (no namespace
of the topology, no root-namespace link, no process it started: every process the run
starts inherits a marker in its environment, looked for in /proc afterwards).

The topology is topologies/abilene.yaml under a unique name (a `vispd up abilene` on the
same machine is not disturbed).
"""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from conftest import ROOT, TOPOLOGIES, renamed_topology, unique_name
from vispd.labnet import mininet_available

pytestmark = [pytest.mark.root]

WHY_NOT = mininet_available()
if WHY_NOT:
    print(f"skipping the lab tests: {WHY_NOT}")
    pytestmark.append(pytest.mark.skip(reason=WHY_NOT))

MARKER = "VISPD_LAB_TEST_RUN"
SHORT_RUN_BUDGET = 120  # s: a short run takes 20-40 s here; fail rather than hang CI


def namespaces(name: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(f"vispd.{name}."))
    except FileNotFoundError:
        return []


def root_links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def processes_with(marker: str) -> list[str]:
    """Processes (other than zombies) whose environment holds `marker`."""
    found = []
    needle = marker.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if needle not in handle.read():
                    continue
            with open(f"/proc/{pid}/stat") as handle:
                stat = handle.read()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{pid}: {command[:120]}")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def run_lab(lab: str, tmp_path) -> tuple[dict, str]:
    """Run labs/LAB/run.py --short; returns (figures, output). Asserts a clean exit and
    that nothing is left behind."""
    name = unique_name("lb")
    topology = renamed_topology(tmp_path, os.path.join(TOPOLOGIES, "abilene.yaml"), name)
    out_dir = tmp_path / "report"
    token = uuid.uuid4().hex
    marker = f"{MARKER}={token}"
    env = dict(os.environ, VISPD_STATE_DIR=str(tmp_path / "state"))
    env[MARKER] = token
    links_before = root_links()
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, os.path.join("labs", lab, "run.py"), "--short",
                                 "--out", str(out_dir), "--topology", topology],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=SHORT_RUN_BUDGET)
    finally:
        elapsed = time.monotonic() - started
        time.sleep(0.5)  # processes signalled at the very end are reaped
        leftovers = (namespaces(name), processes_with(marker), sorted(root_links() - links_before))
        if leftovers[0]:  # never leave a broken run's namespaces to the next test
            subprocess.run([sys.executable, "-m", "vispd.cli", "down", name], cwd=ROOT, env=env,
                           capture_output=True, timeout=300)
    output = result.stdout + result.stderr
    print(f"labs/{lab}/run.py --short: {elapsed:.1f} s\n{output}")
    assert leftovers == ([], [], []), f"left behind (namespaces, processes, root links): {leftovers}"
    assert result.returncode == 0, output
    with open(out_dir / "figures.json") as handle:
        figures = json.load(handle)
    with open(out_dir / "plot.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert figures["mode"] == "short" and figures["topology"] == name
    assert figures["leftovers"] == {"namespaces": [], "processes": []}
    return figures, output


def test_bgp_failover_moves_traffic_to_the_backup_and_back(tmp_path):
    figures, output = run_lab("bgp-failover", tmp_path)
    assert figures["primary"] == "mae-east" and figures["backup"] == "mae-west", output
    assert figures["moved_to_backup"] and figures["returned_to_primary"], output
    cycle = figures["cycles"][0]
    drop, back, path = cycle["drop"], cycle["return"], cycle["path"]
    # the traffic really went through the backup provider while the session was down, both
    # ways (the vISP's packets into the provider, the Internet's replies out of it), and
    # came back to the primary after the session returned
    for phase, provider in (("before", "mae-east"), ("during", "mae-west"), ("after", "mae-east")):
        assert path[phase]["forward_provider"] == provider, (phase, path[phase])
        assert path[phase]["return_provider"] == provider, (phase, path[phase])
    assert path["before"]["hosts"][-1] == "mae-east" and path["during"]["hosts"][-1] == "mae-west"
    assert path["before"]["route"] == path["after"]["route"] != path["during"]["route"]
    # the default route moved on the session's Cease (an event, not a hold timer) and came
    # back once the session was re-established
    assert drop["route_moved_ms"] is not None and 0 < drop["route_moved_ms"] < 3000, drop
    assert back["route_moved_ms"] is not None and 0 < back["route_moved_ms"] < 15000, back
    assert back["session_established_ms"] is None or back["session_established_ms"] <= back["route_moved_ms"] + 50
    # a finite outage: the probes recovered, and any run of lost probes was short
    for event in (drop, back):
        assert event["loss_window_ms"] is not None and 0 <= event["loss_window_ms"] < 2000, event
    assert drop["first_reply_on_backup_path_ms"] is not None, drop
    assert back["first_reply_on_primary_path_ms"] is not None, back
    rtt = figures["rtt_ms_median"]
    assert all(rtt[p] is not None and rtt[p] > 0 for p in ("before", "during", "after")), rtt
    tcp = figures["throughput_mbps_median"]
    assert all(tcp[p] and tcp[p] > 0 for p in ("before", "during", "after")), tcp


def test_client_access_reaches_the_internet_through_the_visp_and_bad_certificates_are_refused(tmp_path):
    figures, output = run_lab("client-access", tmp_path)
    pool = ipaddress.ip_network(figures["access_point"]["pool"])
    assert figures["tunnel_address"] and ipaddress.ip_address(figures["tunnel_address"]) in pool, output
    assert all(c["tunnel_up_s"] is not None and c["tunnel_up_s"] < 10 for c in figures["connects"]), figures["connects"]
    # the client host cannot reach the Internet host by itself: it gets there through the vISP
    assert figures["internet_reachable_without_tunnel"] is False
    assert figures["route_devices"][figures["target"]] == "tun-lab0", figures["route_devices"]
    internet = figures["rtt_ms"]["internet_host"]
    assert internet["count"] > 0 and internet["median"] > 0 and internet["lost"] <= internet["sent"] // 10, internet
    assert figures["rtt_ms"]["far_sliver"]["count"] > 0
    throughput = figures["throughput"]
    for test in ("internet_download", "internet_upload", "far_sliver_download"):
        assert throughput[test]["mbps"] and throughput[test]["mbps"] > 0, throughput
    refusals = figures["refusals"]
    assert refusals["revoke"]["session_closed"], refusals["revoke"]
    for attempt in ("revoked_reconnect", "foreign_ca"):
        assert refusals[attempt]["refused"] and refusals[attempt]["tunnel_address"] is None, refusals[attempt]
        assert refusals[attempt]["server_refused_after_s"] is not None, refusals[attempt]
    assert any("certificate revoked" in line for line in refusals["revoked_reconnect"]["server_said"])
