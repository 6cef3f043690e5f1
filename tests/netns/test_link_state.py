"""Failed links are controller state that `up` enforces: a link set up behind vispd's back
is taken down again, and a `link down` whose run died after recording its intent (before
touching the kernel) is completed by the next `up`."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import unique_name, vispd

pytestmark = pytest.mark.root


def triangle(name: str) -> str:
    return f"""\
name: {name}
asn: 64512
address-space: [10.95.0.0/16]
nodes: [{{name: a}}, {{name: b}}, {{name: c}}]
links:
  - {{between: [a, b], bandwidth: 100M, cost: 1}}
  - {{between: [b, c], bandwidth: 100M, cost: 1}}
  - {{between: [a, c], bandwidth: 100M, cost: 5}}
slices:
  - {{name: s, bandwidth: 10M}}
"""


def link_state(name: str, node: str, ifname: str) -> str:
    out = subprocess.run(["ip", "-n", f"vispd.{name}.{node}", "-o", "link", "show", ifname],
                         capture_output=True, text=True, check=True).stdout
    return "UP" if ",UP" in out or "<UP" in out else "DOWN"


def route_dev(name: str, node: str, dst: str) -> str:
    out = subprocess.run(["ip", "-n", f"vispd.{name}.{node}.s", "route", "get", dst],
                         capture_output=True, text=True).stdout
    return out.split(" dev ")[1].split()[0] if " dev " in out else out.strip()


def test_up_enforces_failed_links_and_completes_a_recorded_link_down(tmp_path, state_dir):
    name = unique_name("ls")
    path = tmp_path / f"{name}.yaml"
    path.write_text(triangle(name))
    vispd("up", str(path))
    try:
        slivers = json.loads(vispd("status", name, "--json").stdout)["slivers"]
        c_loopback = next(s["loopback"] for s in slivers if s["node"] == "c")
        assert route_dev(name, "a", c_loopback) == "v-b"  # a-b-c costs 2, a-c 5
        vispd("link", "down", name, "a", "b")
        assert link_state(name, "a", "to-b") == "DOWN" and link_state(name, "b", "to-a") == "DOWN"
        assert route_dev(name, "a", c_loopback) == "v-c"
        # someone brings one end up behind vispd's back: plan sees it, up puts it down again
        subprocess.run(["ip", "-n", f"vispd.{name}.a", "link", "set", "to-b", "up"], check=True)
        planned = vispd("plan", name).stdout
        assert "+ link down vispd." in planned and planned.strip().endswith("1 to create"), planned
        vispd("up", name)
        assert link_state(name, "a", "to-b") == "DOWN"
        assert vispd("plan", name).stdout.strip().endswith("no changes")
        vispd("link", "up", name, "a", "b")
        assert route_dev(name, "a", c_loopback) == "v-b"
        # a `link down` that recorded its intent and died before touching the kernel
        (state_dir / name / "failed-links").write_text("b c\n")
        vispd("up", name)
        assert link_state(name, "b", "to-c") == "DOWN" and link_state(name, "c", "to-b") == "DOWN"
        assert route_dev(name, "a", c_loopback) == "v-c"
        assert vispd("plan", name).stdout.strip().endswith("no changes")
    finally:
        vispd("down", name)
