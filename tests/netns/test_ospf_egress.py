"""An OSPF slice with BGP egress: the egress slivers' BIRDs originate the default into
OSPF while their egress is live (the egress manager toggles it over BIRD's control
socket), so every sliver follows the nearest live egress by OSPF cost, and a provider's
session drop moves traffic to the other egress; its return moves it back.

Topology: a - b - c (b-c costs more: b's nearest egress is a), provider p1 at a, p2 at c,
one slice with `routing: ospf` and egress through both. Real ExaBGP, BIRD providers, the
Internet router and the slivers' OSPF BIRDs."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import unique_name, vispd, wait_for

pytestmark = pytest.mark.root

INTERNET_HOST = "203.0.113.10"


def topology(name: str) -> str:
    return f"""\
name: {name}
asn: 64512
address-space: [10.93.0.0/16]
nodes: [{{name: a}}, {{name: b}}, {{name: c}}]
links:
  - {{between: [a, b], bandwidth: 100M, cost: 1}}
  - {{between: [b, c], bandwidth: 100M, cost: 3}}
providers:
  - {{name: p1, node: a, asn: 65101, bandwidth: 100M}}
  - {{name: p2, node: c, asn: 65102, bandwidth: 100M}}
slices:
  - {{name: s, bandwidth: 10M, routing: ospf, ospf: {{hello: 1, dead: 3}}, egress: [p1, p2]}}
"""


def default_device(name: str, node: str) -> str | None:
    out = subprocess.run(["ip", "-j", "-n", f"vispd.{name}.{node}.s", "route", "show", "default"],
                         capture_output=True, text=True).stdout
    routes = json.loads(out or "[]")
    return routes[0].get("dev") if routes else None


def reaches_internet(name: str, node: str) -> bool:
    result = vispd("exec", name, "s", node, "--", "ping", "-c", "1", "-W", "1", INTERNET_HOST, check=False)
    return result.returncode == 0


def originating(state_dir, name: str) -> list[str]:
    try:
        status = json.loads((state_dir / name / "run" / "egress-manager.status.json").read_text())
    except (OSError, ValueError):
        return []
    return status["slices"]["s"].get("originating", [])


def test_ospf_slice_follows_the_nearest_live_egress(tmp_path, state_dir):
    name = unique_name("oe")
    path = tmp_path / f"{name}.yaml"
    path.write_text(topology(name))
    vispd("up", str(path))
    try:
        assert wait_for(lambda: originating(state_dir, name) == ["a", "c"], 30)
        assert wait_for(lambda: default_device(name, "b") == "v-a", 30)  # a is nearer (cost 1 < 3)
        assert wait_for(lambda: reaches_internet(name, "b"), 15)
        # a live egress relies on its BGP routes: no default of its own in the kernel
        assert default_device(name, "a") is None
        report = vispd("check", name, "--converge", "30", check=False)
        assert report.returncode == 0, report.stdout + report.stderr

        sock = f"/run/vispd/{name}/bird-p1.ctl"
        subprocess.run(["birdc", "-s", sock, "disable", "vispd"], check=True, capture_output=True)
        assert wait_for(lambda: default_device(name, "b") == "v-c", 15)
        assert wait_for(lambda: reaches_internet(name, "b"), 10)
        # a, no longer live, now follows OSPF's default toward c too
        assert wait_for(lambda: default_device(name, "a") == "v-b", 15)
        assert originating(state_dir, name) == ["c"]

        subprocess.run(["birdc", "-s", sock, "enable", "vispd"], check=True, capture_output=True)
        assert wait_for(lambda: default_device(name, "b") == "v-a", 30)
        assert wait_for(lambda: reaches_internet(name, "b"), 10)
    finally:
        vispd("down", name)
