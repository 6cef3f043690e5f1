"""BFD between the border routers and their providers, end to end (root): a small topology
made here (nodes a and b, provider p1 at a, p2 at b, slice s egressing through both), real
ExaBGP + helper + FRR bfdd at the borders, real BIRD (or FRR) providers with BFD.

A provider that silently drops everything (an nftables table on its device facing the
vISP: no NOTIFICATION, no link event) loses its session by BFD, not by the hold timer, and
the sliver's traffic to the Internet host moves to the other provider; it moves back when
the drop ends. A provider that switches BFD off keeps its session, and `vispd check`
fails until BFD is back. Timings are printed, not asserted (bench/failover.py measures)."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from measure.pathprobe import PathProbe
from conftest import vispd, wait_for
from measure.silentlab import provider_device, silence, topology
from model.naming import lab_ns, sliver_ns

pytestmark = pytest.mark.root

INTERNET_HOST = "203.0.113.10"
HOLD_TIME = 9


def borders(name: str) -> dict:
    """{provider: its entry in its border's status}."""
    statuses = json.loads(vispd("bgp", "status", name, "--json").stdout)
    return {n["name"]: n for s in statuses if s.get("role") == "border"
            for n in s["neighbors"].values() if n.get("kind") == "provider"}


def healthy(name: str, *providers: str) -> bool:
    entries = borders(name)
    return all(entries.get(p, {}).get("state") == "up" and entries[p].get("bfd", {}).get("state") == "up"
               for p in providers)


def _lab(deployed, tmp_path, p1_daemon: str):
    source = tmp_path / "hf-source.yaml"
    source.write_text(topology("placeholder", p1_daemon))
    name = deployed(str(source), prefix="hf").rsplit("/", 1)[1][: -len(".yaml")]
    assert wait_for(lambda: healthy(name, "p1", "p2"), timeout=60), vispd("bgp", "status", name).stdout
    probe = PathProbe(sliver_ns(name, "a", "s"), INTERNET_HOST).start()
    try:
        for provider in ("p1", "p2"):
            probe.tap(provider, lab_ns(name, provider), provider_device(provider))
        assert wait_for(lambda: probe.only_via("p1"), timeout=15)    # a leaves by its own provider
        yield name, probe
    finally:
        probe.stop()
        silence(name, "p1", False)


@pytest.fixture(params=["bird", "frr"])
def lab(request, deployed, tmp_path):
    """p1 emulated by BIRD, then by FRR (bfdd beside bgpd and zebra)."""
    yield from _lab(deployed, tmp_path, request.param)


@pytest.fixture
def bird_lab(deployed, tmp_path):
    yield from _lab(deployed, tmp_path, "bird")


def test_a_silent_provider_is_dropped_by_bfd_and_traffic_moves_to_the_other_and_back(lab):
    name, probe = lab
    silence(name, "p1", True)
    t0 = time.monotonic()
    try:
        moved = wait_for(lambda: probe.first_reply_via("p2", t0), timeout=3 * HOLD_TIME)
        assert moved, "traffic never moved to p2"
        print(f"traffic moved to p2 {moved - t0:.3f} s after p1 went silent")
        p1 = borders(name)["p1"]
        assert p1["state"] == "down" and p1["last_down_reason"] == "BFD down (control detection time expired)"
        assert p1["bfd"]["state"] == "down" and p1["bfd"]["failures"] == 1
        assert moved - t0 < HOLD_TIME        # BFD, not the hold timer (its reason says so too)
        status = vispd("bgp", "status", name).stdout
        assert "a: provider p1: BFD down for" in status and "(control detection time expired)" in status
        assert wait_for(lambda: probe.only_via("p2"), timeout=5)
    finally:
        silence(name, "p1", False)
    t1 = time.monotonic()
    back = wait_for(lambda: probe.first_reply_via("p1", t1), timeout=6 * HOLD_TIME)
    assert back, "traffic never came back to p1"
    print(f"traffic back through p1 {back - t1:.3f} s after the drop ended")
    assert wait_for(lambda: probe.only_via("p1") and healthy(name, "p1"), timeout=15)


def test_a_provider_that_switches_bfd_off_keeps_its_session_and_check_fails_until_it_is_back(bird_lab):
    name, _ = bird_lab
    birdc = ["birdc", "-s", f"/run/vispd/{name}/bird-p2.ctl"]
    subprocess.run([*birdc, "disable", "bfd1"], check=True, capture_output=True)
    try:
        # BIRD sends no AdminDown: the border sees p2's BFD time out and drops the session,
        # which comes back; BFD does not
        assert wait_for(lambda: borders(name)["p2"]["bfd"]["failures"] == 1, timeout=10)
        assert wait_for(lambda: borders(name)["p2"]["state"] == "up", timeout=30), borders(name)["p2"]
        assert borders(name)["p2"]["bfd"]["state"] != "up"
        check = vispd("check", name, "--converge", "3", check=False)
        assert check.returncode != 0
        assert "border b: provider p2: BGP Established but BFD down" in check.stdout + check.stderr
    finally:
        subprocess.run([*birdc, "enable", "bfd1"], check=True, capture_output=True)
    assert wait_for(lambda: healthy(name, "p2"), timeout=30), borders(name)["p2"]
    assert vispd("check", name, check=False).returncode == 0
