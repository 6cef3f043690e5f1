"""`vispd check` passes unchanged when a deployed Abilene's nftables guards and u32 filters
are swapped for the BPF guard (root; issue 12: "check's isolation tests must pass
unchanged on both"). Until the planner emits `dataplane.bpf.spec.NodeGuard` itself, the
guards are derived here from the plan's IsolationFilter and Shaping resources, as the
planner will: every device of a node namespace (substrate, provider access, public
access) with its slices' (near, far) MAC pairs and HTB classes, and an ingress guard on
the devices whose far end is not a guarded node namespace."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from compiler.loader import load_topology
from compiler.resources import IsolationFilter, Shaping, Veth
from compiler.planner import compile_plan
from compiler.resources import guard as nft, shaping as tc
from dataplane.bpf import detect, node as bpfnode, spec

pytestmark = pytest.mark.root
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def vispd(*args: str) -> subprocess.CompletedProcess:
    """The vispd CLI as a user runs it (tests/conftest.py has the same helper; importing it
    by name picks tests/unit/conftest.py when both directories are collected)."""
    return subprocess.run([sys.executable, "-m", "vispd.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


def far_namespaces(plan) -> dict[tuple[str, str], str]:
    """(namespace, device) -> the namespace of the device's other end, for every veth."""
    ends = {}
    for res in plan.resources:
        if isinstance(res, Veth):
            ends[(res.ns, res.ifname)] = res.peer_ns
            ends[(res.peer_ns, res.peer_ifname)] = res.ns
    return ends


def node_guards(plan) -> list[spec.NodeGuard]:
    filters = [r for r in plan.resources if isinstance(r, IsolationFilter)]
    shaped = {(r.ns, r.ifname): r for r in plan.resources if isinstance(r, Shaping)}
    guarded, far = {f.ns for f in filters}, far_namespaces(plan)
    guards = []
    for guard in filters:
        class_on = {dev: {mac: c.classid for c in shaped[(guard.ns, dev)].classes for mac in c.macs}
                    for dev in guard.devices if (guard.ns, dev) in shaped}
        placed = {mac for classes in class_on.values() for mac in classes}
        devices = []
        for dev in guard.devices:
            classes = class_on.get(dev)

            def here(mac: str, classes=classes) -> bool:  # unshaped devices (public access) take the rest
                return mac in classes if classes is not None else mac not in placed
            ends = tuple(spec.SliceEnd(mac=dst, peer_mac=src, classid=(classes or {}).get(dst, tc.DEFAULT_CLASS))
                         for src, dst in guard.pairs if here(dst))
            devices.append(spec.DeviceGuard(dev, ends, ingress=far.get((guard.ns, dev)) not in guarded))
        guards.append(spec.NodeGuard(guard.ns, tuple(devices)))
    return guards


def swap_to_bpf(plan, mode: str) -> list[spec.NodeGuard]:
    guards = node_guards(plan)
    for guard in guards:
        subprocess.run(["ip", "netns", "exec", guard.ns, "nft", "-f", "-"], input=nft.render_delete(),
                       text=True, check=True)
        lines = []
        for res in plan.resources:
            if isinstance(res, Shaping) and res.ns == guard.ns:
                lines += [f"qdisc del dev {res.ifname} root"]
                lines += [line for line in tc.render(res) if not line.startswith("filter ")]
        subprocess.run(["tc", "-n", guard.ns, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True)
        assert spec.check(guard) == []
        assert bpfnode.apply(guard, mode)
    return guards


def test_check_passes_on_abilene_with_the_bpf_guard(deployed):
    capability = detect.available()
    if not capability.ok:
        pytest.skip(f"no BPF guard here: {capability.reason}")
    path = deployed(prefix="hb")
    plan = compile_plan(load_topology(path))
    guards = swap_to_bpf(plan, capability.mode)
    some = guards[0]
    listed = subprocess.run(["ip", "netns", "exec", some.ns, "nft", "list", "tables"], capture_output=True, text=True)
    assert "netdev vispd" not in listed.stdout  # the nftables guard is really gone
    assert "u32" not in subprocess.run(["tc", "-n", some.ns, "filter", "show", "dev", some.devices[0].ifname],
                                       capture_output=True, text=True).stdout
    assert any(dev.ingress for g in guards for dev in g.devices)  # provider and public access devices
    assert not all(dev.ingress for g in guards for dev in g.devices)  # node-to-node substrate links
    result = vispd("check", path)
    lines = result.stdout.splitlines()
    for expected in ("reach plb: 110/110 pairs ok", "reach research: 56/56 pairs ok",
                     "isolation plb -> research: ok (0 frames leaked, 46 controls seen)",
                     "isolation research -> plb: ok (0 frames leaked, 46 controls seen)"):
        assert expected in lines, result.stdout
    assert result.returncode == 0, result.stdout
    assert all(bpfnode.pending(guard, capability.mode) == [] for guard in guards)
