"""Planning of OSPF slices with BGP egress: which slivers can originate the default, and
what the egress manager is told to toggle."""
from __future__ import annotations

import json

from compiler.loader import load_topology
from compiler.planner import compile_plan

TOPOLOGY = """\
name: oep
asn: 64512
address-space: [10.93.0.0/16]
nodes: [{name: a}, {name: b}, {name: c}]
links:
  - {between: [a, b], bandwidth: 100M, cost: 1}
  - {between: [b, c], bandwidth: 100M, cost: 3}
providers:
  - {name: p1, node: a, asn: 65101, bandwidth: 100M}
  - {name: p2, node: c, asn: 65102, bandwidth: 100M}
slices:
  - {name: s, bandwidth: 10M, routing: ospf, egress: [p1, p2]}
  - {name: t, bandwidth: 10M, egress: [p1]}
"""


def plan_of(tmp_path):
    path = tmp_path / "oep.yaml"
    path.write_text(TOPOLOGY)
    return compile_plan(load_topology(str(path)))


def bird_conf(plan, node: str) -> str:
    daemon = next(r for r in plan.resources if r.KIND == "daemon" and r.name == f"ospf-s-{node}")
    return dict(daemon.files)[f"ospf-s-{node}.conf"]


def test_only_egress_slivers_can_originate_the_default_and_it_starts_disabled(tmp_path):
    plan = plan_of(tmp_path)
    for node in ("a", "c"):
        conf = bird_conf(plan, node)
        assert "protocol static egress_default {\n  disabled;" in conf
        assert "route 0.0.0.0/0 unreachable;" in conf
        assert 'if proto = "egress_default" then { ospf_metric1 = 1; accept; }' in conf
    conf = bird_conf(plan, "b")
    assert "egress_default" not in conf and "export none;" in conf
    # OSPF's external routes (the default) reach the kernel too, with the loopback as source
    assert "RTS_OSPF_EXT1" in conf


def test_the_egress_manager_toggles_bird_for_ospf_slices_and_routes_static_ones(tmp_path):
    plan = plan_of(tmp_path)
    manager = next(r for r in plan.resources if r.KIND == "daemon" and r.name == "egress-manager")
    config = json.loads(dict(manager.files)["egress-manager.json"])
    ospf, static = config["slices"]["s"], config["slices"]["t"]
    assert ospf["routing"] == "ospf" and ospf["default_protocol"] == "egress_default"
    assert sorted(ospf["bird_sockets"]) == ["a", "c"]
    assert ospf["bird_sockets"]["a"].endswith("/ospf-s-a.ctl")
    assert all(not s["toward"] for s in ospf["slivers"])  # no static paths in an OSPF slice
    assert static["routing"] == "static" and "bird_sockets" not in static
    assert any(s["toward"] for s in static["slivers"])
    # no vispd routes in the OSPF slice's slivers
    assert not [r for r in plan.resources if r.KIND == "route" and r.ns.endswith(".s")]
