"""The compiler's shape: the plan is a pure function of the topology and a Runtime (and the
controller's state), the lab world is a layer of its own, and a kind is found through its
registry only."""
from __future__ import annotations

import json

import pytest

from compiler import links
from compiler.links.base import LinkKind
from compiler.planner import compile_plan, plan_visp
from compiler.resources import Netns, Veth
from compiler.runtime import Runtime
from unit_helpers import ABILENE, abilene_text, topology
from compiler.loader import load_topology


def runtime(root: str) -> Runtime:
    return Runtime.for_topology("abilene", python=f"{root}/bin/python", project_root=f"{root}/src",
                                state_root=f"{root}/state")


def rendered(plan, rt: Runtime) -> list[str]:
    """Every resource as JSON, with the runtime's own strings replaced by their names."""
    out = []
    for resource in plan.resources:
        text = json.dumps(resource.to_json(), sort_keys=True, default=str)
        for field in ("run_dir", "sock_dir", "state_dir", "python", "project_root"):  # longest first
            text = text.replace(getattr(rt, field), f"<{field}>")
        out.append(text)
    return sorted(out)


def test_the_same_topology_compiles_to_the_same_plan_under_two_runtimes():
    topo = load_topology(ABILENE)
    one, other = runtime("/opt/one"), runtime("/srv/other")
    plan_one, plan_other = compile_plan(topo, one), compile_plan(topo, other)
    assert [r.key for r in plan_one.resources] == [r.key for r in plan_other.resources]
    assert rendered(plan_one, one) == rendered(plan_other, other)
    # and the runtime really is what differs: its fields reach the daemons
    assert rendered(plan_one, one) != sorted(json.dumps(r.to_json(), sort_keys=True, default=str)
                                             for r in plan_one.resources)


def test_the_plan_does_not_read_the_environment(monkeypatch):
    topo = load_topology(ABILENE)
    rt = runtime("/opt/one")
    before = compile_plan(topo, rt)
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    monkeypatch.setenv("VISPD_STATE_DIR", "/another/state")
    monkeypatch.chdir("/")
    assert compile_plan(topo, rt).resources == before.resources


def lab_namespaces(plan) -> list[str]:
    return [r.ns for r in plan.resources if isinstance(r, Netns) and r.role == "lab"]


def test_a_topology_without_emulated_parts_plans_no_emulated_namespace():
    topo = load_topology(ABILENE, abilene_text())  # no providers, no remote access points
    plan = compile_plan(topo)
    assert plan.namespaces() and not lab_namespaces(plan)
    assert not any(".+" in r.ns for r in plan.resources)


def test_the_vispd_is_planned_without_the_lab_world():
    topo = load_topology(ABILENE)
    full, visp = compile_plan(topo), plan_visp(topo)
    assert lab_namespaces(full)  # providers, the Internet, the public underlay, client hosts
    assert not any(".+" in r.ns for r in visp.resources)
    # the vISP's own resources are the same with or without the world around it
    assert {r.key for r in visp.resources} <= {r.key for r in full.resources}
    visp_keys = {r.key for r in visp.resources}
    world = [r for r in full.resources if r.key not in visp_keys]
    # what the world adds lives in its own namespaces, or is a link into one of them
    assert world and all(".+" in r.ns or ".+" in getattr(r, "peer_ns", "") for r in world)


class _WideVeth(LinkKind):
    """A link kind only this test knows: a veth pair whose MTU is 9000 whatever the YAML says."""

    NAME = "test-jumbo"

    def plan(self, link, ctx, parts):
        (a, a_ns, a_if), (b, b_ns, b_if) = self.end_devices(link, ctx)
        parts.add(Veth(node=a, ns=a_ns, ifname=a_if, mtu=9000, peer_ns=b_ns, peer_ifname=b_if))


def test_a_new_link_kind_is_one_class_and_one_registry_entry(monkeypatch):
    monkeypatch.setitem(links.LINK_KINDS, _WideVeth.NAME, _WideVeth())
    topo = topology("""\
        name: kinds
        asn: 64512
        address-space: [198.18.0.0/16]
        nodes: [{name: a}, {name: b}, {name: c}]
        links:
          - {between: [a, b], bandwidth: 1G, kind: test-jumbo}
          - {between: [b, c], bandwidth: 1G}
        slices: [{name: s, bandwidth: 10M}]
        """)
    everything = {(r.ns, r.ifname): r.mtu for r in compile_plan(topo).resources if isinstance(r, Veth)}
    assert everything[("vispd.kinds.a", "to-b")] == 9000 and everything[("vispd.kinds.b", "to-c")] == 1500


def test_an_unknown_kind_is_a_located_error():
    from model.errors import TopologyError

    with pytest.raises(TopologyError) as caught:
        topology("""\
            name: kinds
            asn: 64512
            address-space: [198.18.0.0/16]
            nodes: [{name: a}, {name: b}]
            links: [{between: [a, b], bandwidth: 1G, kind: gre}]
            """)
    assert "inline.yaml:5:48: kind: must be 'mpls-tunnel' or 'interfaces', got 'gre'" in caught.value.render()
