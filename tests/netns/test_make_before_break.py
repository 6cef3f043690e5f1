"""A link change loses nothing between slivers whose path it does not change.

With routes aggregated per next hop, a link failure re-cuts prefixes at many slivers, also
for destinations whose path stays the same: if every old prefix were deleted before any
new one was created (as the scheduler once did), such a destination would have no route
for as long as the rest of the apply takes. Here a 16-node ring (topology `hs…`) is up, a
prober sends an echo every 0.5 ms (labs/pinger.py, real-time priority) between two slivers
whose path, both ways, is the same before and after and whose routes are re-cut on the way,
and every request sent while vispd applies the change must be answered over the same path:
a failure recorded in the controller's state and applied by `vispd up`, then `vispd link
up`, then `vispd link down`."""
from __future__ import annotations

import subprocess
import time

import pytest

from conftest import unique_name, vispd
from bench.lab import steady_pair  # the pair bench/lab.py probes, chosen the same way
from compiler.loader import load_topology
from compiler.planner import compile_plan
from labs.lablib import Pinger

pytestmark = pytest.mark.root

NODES = [f"r{i:02d}" for i in range(16)]
INTERVAL = 0.0005  # s between echo requests: far below the time an apply takes


def ring(name: str) -> str:
    links = "".join(f"  - {{between: [{a}, {b}], bandwidth: 100M, cost: {1 + i % 3}}}\n"
                    for i, (a, b) in enumerate(zip(NODES, NODES[1:] + NODES[:1])))
    return (f"name: {name}\nasn: 64512\naddress-space: [10.77.0.0/16]\n"
            f"nodes: [{', '.join('{name: %s}' % n for n in NODES)}]\nlinks:\n{links}"
            "slices:\n  - {name: s, bandwidth: 10M}\n")


class Namespaces:
    """What labs.lablib.Pinger needs of a lab: a process in a namespace, stopped by its PID."""

    def popen(self, ns: str, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "--", *argv], **kwargs)


# -- the probe -------------------------------------------------------------------------------------------
def probe_through(topo, src: str, dst: str, change) -> tuple[list, float, float]:
    """Echoes from src's sliver to dst's loopback while `change()` runs; (trace, start, end)."""
    name, target = topo.name, compile_plan(topo).sliver("s", dst).loopback
    pinger = Pinger(Namespaces(), f"vispd.{name}.{src}.s", target, INTERVAL).start()
    try:
        steady = pinger.wait(lambda trace: sum(1 for s in trace if s.answered) >= 400, 20)
        assert steady, f"{src} -> {dst}: no steady replies before the change"
        started = time.monotonic()
        change()
        ended = time.monotonic()
        pinger.wait(lambda trace: trace and trace[-1].sent > ended + 0.2, 10)
    finally:
        trace = pinger.stop()
    return trace, started, ended


def losses(trace, started: float, ended: float, what: str) -> list[str]:
    """What went wrong for the requests sent while the change ran (none lost, same path)."""
    during = [s for s in trace if started <= s.sent <= ended]
    if len(during) < 20:
        return [f"{what}: only {len(during)} requests while it ran"]
    lost = [s for s in during if not s.answered]
    if lost:
        return [f"{what}: {len(lost)} of {len(during)} requests lost "
                f"({(lost[0].sent - started) * 1000:.1f}-{(lost[-1].sent - started) * 1000:.1f} ms in, "
                f"errors {sorted({s.error for s in lost}, key=str)})"]
    before = {s.ttl for s in trace if s.answered and s.sent < started}
    if len(before) != 1 or {s.ttl for s in during} != before:
        return [f"{what}: the path changed (TTL {sorted(before)} -> {sorted({s.ttl for s in during})})"]
    return []


# -- the test --------------------------------------------------------------------------------------------
def test_a_link_change_loses_nothing_between_slivers_whose_path_stays(tmp_path, state_dir):
    name = unique_name("hs")
    path = tmp_path / f"{name}.yaml"
    path.write_text(ring(name))
    topo = load_topology(str(path))
    vispd("up", str(path))
    problems = []
    try:
        # 1. a failure recorded in the controller's state, applied by `vispd up`
        failed = ("r00", "r01")
        src, dst, recut = steady_pair(topo, "s", failed)
        assert recut >= 4, f"{src} <-> {dst}: only {recut} re-cut routes on the way"
        (state_dir / name / "failed-links").write_text(" ".join(failed) + "\n")
        problems += losses(*probe_through(topo, src, dst, lambda: vispd("up", name)), f"up with {failed} failed")
        assert _down(name, "r00", "to-r01")
        # 2. `vispd link up` brings it back, 3. `vispd link down` takes another down
        problems += losses(*probe_through(topo, src, dst, lambda: vispd("link", "up", name, *failed)),
                           f"link up {failed}")
        assert not _down(name, "r00", "to-r01")
        other = ("r04", "r05")
        src, dst, recut = steady_pair(topo, "s", other)
        assert recut >= 4, f"{src} <-> {dst}: only {recut} re-cut routes on the way"
        problems += losses(*probe_through(topo, src, dst, lambda: vispd("link", "down", name, *other)),
                           f"link down {other}")
        assert _down(name, "r04", "to-r05")
        assert not problems, "\n".join(problems)
    finally:
        vispd("down", name)


def _down(name: str, node: str, ifname: str) -> bool:
    out = subprocess.run(["ip", "-n", f"vispd.{name}.{node}", "-o", "link", "show", ifname],
                         capture_output=True, text=True, check=True).stdout
    return "<" in out and ",UP" not in out.split(">")[0] and "<UP" not in out
