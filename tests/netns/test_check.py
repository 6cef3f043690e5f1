"""`vispd check` on the real kernel, driven through the CLI as a user would: it passes on a
freshly built Abilene, and it fails, naming the culprit, when one sliver loses a route or one
node loses its isolation guard (then macvlan hands one slice's multicast to the other).
Whichever guard the machine runs (the BPF one where the kernel has tc BPF, nftables
otherwise; `VISPD_BPF=off|tcx|clsact` forces one), the same checks hold."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import vispd
from dataplane.bpf import node as bpf_node
from vispd.engine import node_guard

pytestmark = pytest.mark.root


def name_of(path: str) -> str:
    return os.path.basename(path)[: -len(".yaml")]


def loopback(name: str, slice_name: str, node: str) -> str:
    status = json.loads(vispd("status", name, "--json").stdout)
    return next(s["loopback"] for s in status["slivers"] if s["slice"] == slice_name and s["node"] == node)


def test_check_passes_on_a_fresh_abilene(deployed):
    path = deployed(prefix="hc")
    result = vispd("check", path)
    lines = result.stdout.splitlines()
    for expected in ("reach plb: 110/110 pairs ok",
                     "reach research: 56/56 pairs ok",
                     "cross-ping plb -> research: ok (0/88 echoes answered)",
                     "cross-ping research -> plb: ok (0/88 echoes answered)",
                     "isolation plb -> research: ok (0 frames leaked, 46 controls seen)",
                     "isolation research -> plb: ok (0 frames leaked, 46 controls seen)",
                     f"{name_of(path)}: ok"):
        assert expected in lines, result.stdout
    report = json.loads(vispd("check", path, "--json").stdout)
    assert report["ok"] is True and report["errors"] == []
    plb = report["spray"]["plb"]["sent"]
    # every vector was really exercised: out of 28 plb link interfaces, its 2 provider access
    # interfaces, its TUN and TAP, 3 public interfaces, 11 local-socket TUNs, the OpenVPN
    # and WireGuard servers' interfaces; one TAP frame each; controls to the 28 link neighbours
    assert plb["broadcast"] == plb["multicast"] == 48 and plb["control"] == 28
    assert plb["tap-broadcast"] == plb["tap-multicast"] == 1, report["warnings"]


def test_check_names_the_pair_a_missing_route_cuts(deployed):
    path = deployed(prefix="hc")
    name = name_of(path)
    # research has no egress, hence no default route to fall back on (plb's would carry it)
    denver, new_york = loopback(name, "research", "denver"), loopback(name, "research", "new-york")
    # the one static route (protocol 77) covering new-york's loopback, whatever prefix carries it
    ns = f"vispd.{name}.denver.research"
    covering = subprocess.run(["ip", "-n", ns, "-o", "route", "show", "match", new_york, "proto", "77"],
                              capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["ip", "-n", ns, "route", "del", covering[0]], check=True)
    result = vispd("check", path, "--timeout", "1", check=False)
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout
    assert (f"  unreachable: research denver ({denver}) -> new-york ({new_york}): Network is unreachable"
            in lines), result.stdout
    assert "reach plb: 110/110 pairs ok" in lines
    assert "isolation plb -> research: ok (0 frames leaked, 46 controls seen)" in lines
    assert lines[-1] == f"{name}: FAILED"


NEIGHBOURS = (("denver", "dnvr"), ("houston", "hstn"), ("indianapolis", "ipls"))  # kansas-city's


def remove_guard(ns: str) -> None:
    guard = node_guard()
    if guard == "nft":
        subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "netdev", "vispd"], check=True)
    else:
        assert bpf_node.delete(ns, guard.removeprefix("bpf-"))


def expected_leaks(source: str, target: str) -> list[str]:
    """Where the frames leak without kansas-city's guard: the nftables guard judges frames
    arriving at a node, so kansas-city's slivers get its neighbours' multicast; the BPF
    guard judges frames leaving a node, so its neighbours' slivers get kansas-city's."""
    if node_guard() == "nft":
        return [f"  leak: {target}@kansas-city received multicast from {source}@{node} on v-{site} "
                for node, site in NEIGHBOURS]
    return [f"  leak: {target}@{node} received multicast from {source}@kansas-city on v-kscy "
            for node, _ in NEIGHBOURS]


def test_check_catches_multicast_leaking_through_macvlan_without_the_guard(deployed):
    path = deployed(prefix="hc")
    name = name_of(path)
    remove_guard(f"vispd.{name}.kansas-city")
    result = vispd("check", path, check=False)
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout
    assert "reach plb: 110/110 pairs ok" in lines and "reach research: 56/56 pairs ok" in lines
    # kansas-city's neighbours denver, houston and indianapolis carry both slices
    for source, target in (("plb", "research"), ("research", "plb")):
        assert f"isolation {source} -> {target}: FAILED (3 frames leaked, 46 controls seen)" in lines, result.stdout
        for leak in expected_leaks(source, target):
            assert any(line.startswith(leak) and "-> 224.0.0.5)" in line for line in lines), result.stdout
    assert lines[-1] == f"{name}: FAILED"
    assert "differs from its plan: 1 to update" in vispd("status", name, check=False).stdout  # the guard: `up` puts it back
