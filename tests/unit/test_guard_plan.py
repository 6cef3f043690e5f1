"""The node's guard as planned (pure): under the BPF guard (`Runtime.guard` "bpf-tcx" or
"bpf-clsact") one BpfGuard per node namespace admits exactly the MAC pairs the nftables
guard admits, each on the device its near end's macvlan sits on and in its slice's HTB
class, judges arriving frames only where the far end guards nothing, source-guards the
border's links to slices, classifies the border's access links by source prefix, and the
shaping it classifies carries nothing for u32 to match."""
from __future__ import annotations

from dataclasses import replace

import pytest

from bench import topogen
from compiler.loader import load_topology
from compiler.planner import compile_plan, plan_visp
from compiler.resources import BpfGuard, IsolationFilter, Macvlan, Shaping
from compiler.runtime import GUARDS, Runtime
from unit_helpers import ABILENE, topology

NFT = Runtime.for_topology("abilene")
TCX = replace(NFT, guard="bpf-tcx")
WASH = "vispd.abilene.washington"


def of(plan, kind):
    return [r for r in plan.resources if isinstance(r, kind)]


@pytest.fixture(scope="module")
def abilene():
    return load_topology(ABILENE)


@pytest.fixture(scope="module")
def plans(abilene):
    return compile_plan(abilene, NFT), compile_plan(abilene, TCX)


def test_the_default_runtime_keeps_the_nftables_guard(abilene):
    plan = compile_plan(abilene)
    assert of(plan, IsolationFilter) and not of(plan, BpfGuard)
    assert NFT.guard == "nft" and set(GUARDS) == {"nft", "bpf-tcx", "bpf-clsact"}


def test_the_bpf_guard_replaces_the_nftables_one_on_the_same_namespaces(plans):
    nft, bpf = plans
    assert not of(bpf, IsolationFilter)
    assert {g.ns for g in of(bpf, BpfGuard)} == {f.ns for f in of(nft, IsolationFilter)}
    assert all(g.hook == "tcx" for g in of(bpf, BpfGuard))
    assert len(bpf.resources) == len(nft.resources)


def test_it_admits_exactly_the_pairs_the_nftables_guard_admits(plans):
    nft, bpf = plans
    filters = {f.ns: f for f in of(nft, IsolationFilter)}
    for guard in of(bpf, BpfGuard):
        pairs = {(end.peer_mac, end.mac) for device in guard.devices for end in device.ends}
        assert pairs == set(filters[guard.ns].pairs), guard.ns
        watched = {d.ifname for d in guard.devices if not d.sources and not d.source_classes}
        assert watched == set(filters[guard.ns].devices)
        assert {(d.ifname, d.sources) for d in guard.devices if d.sources} == set(filters[guard.ns].sources)


def test_each_pair_rides_on_its_macvlans_device_in_its_slices_class(plans):
    nft, bpf = plans
    lower = {(m.lower_ns, m.mac): m.lower_ifname for m in of(bpf, Macvlan)}
    classes = {(s.ns, s.ifname): {mac: c.classid for c in s.classes for mac in c.macs} for s in of(nft, Shaping)}
    seen = 0
    for guard in of(bpf, BpfGuard):
        for device in guard.devices:
            for end in device.ends:
                assert lower[(guard.ns, end.mac)] == device.ifname
                expected = classes.get((guard.ns, device.ifname), {}).get(end.mac, 0xFFFF)  # pub: unshaped
                assert end.classid == expected
                seen += 1
    assert seen == sum(len(f.pairs) for f in of(nft, IsolationFilter))


def test_arriving_frames_are_judged_only_where_the_far_end_guards_nothing(plans):
    _, bpf = plans
    ingress = {(g.ns, d.ifname) for g in of(bpf, BpfGuard) for d in g.devices if d.ingress}
    assert ingress == {("vispd.abilene.seattle", "pub"), ("vispd.abilene.chicago", "pub"),
                       ("vispd.abilene.new-york", "pub")}  # the public underlay; every substrate link has a guarded far end


def test_the_vISP_alone_plans_the_same_guards(abilene, plans):
    _, bpf = plans
    assert of(plan_visp(abilene, TCX), BpfGuard) == of(bpf, BpfGuard)  # no veth to the public side: judged anyway


def test_the_border_source_guards_slices_and_classifies_providers_by_source(plans):
    nft, bpf = plans
    guard = next(g for g in of(bpf, BpfGuard) if g.ns == WASH)
    devices = {d.ifname: d for d in guard.devices}
    assert devices["s-plb"].sources == dict(next(f for f in of(nft, IsolationFilter) if f.ns == WASH).sources)["s-plb"]
    assert devices["s-plb"].ends == () and not devices["s-plb"].ingress
    plb_class = next(c.classid for s in of(nft, Shaping) if s.ifname == "x-mae-east" for c in s.classes)
    assert devices["x-mae-east"].source_classes == (("198.18.0.0/22", plb_class),)
    assert devices["x-mae-east"].ends == () and devices["x-mae-east"].sources == ()


def test_shaping_the_bpf_guard_classifies_has_nothing_for_u32(plans):
    nft, bpf = plans
    before = {s.key: s for s in of(nft, Shaping)}
    for shaping in of(bpf, Shaping):
        old = before[shaping.key]
        assert [(c.classid, c.rate, c.ceil, c.label) for c in shaping.classes] == \
               [(c.classid, c.rate, c.ceil, c.label) for c in old.classes]
        if shaping.ns.startswith("vispd.abilene.+"):  # lab hosts: no guard, nothing classified anyway
            assert shaping == old
        else:
            assert all(c.macs == () and c.sources == () for c in shaping.classes), shaping.describe()


def test_clsact_is_asked_for_by_the_runtime(abilene):
    plan = compile_plan(abilene, replace(NFT, guard="bpf-clsact"))
    assert {g.hook for g in of(plan, BpfGuard)} == {"clsact"}


def test_a_random_topology_keeps_the_pairs_of_the_nftables_guard():
    topo = topology(topogen.random_topology("rnd", nodes=30, links=60, slices=4, span=12))
    nft, bpf = compile_plan(topo, NFT), compile_plan(topo, TCX)
    filters = {f.ns: set(f.pairs) for f in of(nft, IsolationFilter)}
    guards = {g.ns: {(e.peer_mac, e.mac) for d in g.devices for e in d.ends} for g in of(bpf, BpfGuard)}
    assert guards == filters
    assert not any(d.ingress for g in of(bpf, BpfGuard) for d in g.devices)  # node to node only


def test_only_what_the_guard_holds_changes_its_digest(abilene):
    base = {g.ns: g.digest() for g in of(compile_plan(abilene, TCX), BpfGuard)}
    text = open(ABILENE).read()
    guarantee = topology(text.replace("bandwidth: 200M", "bandwidth: 150M", 1))
    assert {g.ns: g.digest() for g in of(compile_plan(guarantee, TCX), BpfGuard)} == base  # the shaping's business
    assert "BPF guard (tcx) in vispd.abilene.washington on 4 devices (4 MAC pairs), source guard on 1, " \
           "classes by source on 1" in [g.describe() for g in of(compile_plan(abilene, TCX), BpfGuard)]
