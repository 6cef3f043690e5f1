"""The node's guard as planned (pure): under the BPF guard (`Runtime.guard` "bpf-tcx" or
"bpf-clsact") one BpfGuard per node namespace admits exactly the MAC pairs the nftables
guard admits, each on the device its near end's macvlan sits on and in its slice's HTB
class, judges arriving frames only where the far end guards nothing, source-guards the
border's links to slices, classifies the border's access links by source prefix, and the
shaping it classifies carries nothing for u32 to match. A `routing: own` slice's ends
ride on their own link's substrate device and name its node end (the BPF guard steers
them); under the nftables guard an OwnSteering per node does the same job."""
from __future__ import annotations

from dataclasses import replace

import pytest

from bench import topogen
from compiler.loader import load_topology
from compiler.planner import compile_plan, plan_visp
from compiler.resources import BpfGuard, IsolationFilter, Macvlan, OwnLink, OwnSteering, Shaping, ownsteer
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


OWN_RING = """\
name: ownring
asn: 64512
address-space: [198.18.0.0/16]
nodes: [{name: a}, {name: b}, {name: c}]
links:
  - {between: [a, b], bandwidth: 100M}
  - {between: [b, c], bandwidth: 100M}
  - {between: [c, a], bandwidth: 100M}
slices:
  - {name: vic, bandwidth: 30M}
  - {name: mine, bandwidth: 10M, routing: own}
  - {name: evil, bandwidth: 20M, nodes: [a, b], routing: own}
"""


@pytest.fixture(scope="module")
def own_plans():
    topo = topology(OWN_RING)
    runtime = Runtime.for_topology("ownring")
    return compile_plan(topo, runtime), compile_plan(topo, replace(runtime, guard="bpf-tcx"))


def _shaping_classes(plan) -> dict:
    """(namespace, device) -> {near MAC: class} of the nftables plan's u32 classes."""
    return {(s.ns, s.ifname): {mac: c.classid for c in s.classes for mac in c.macs} for s in of(plan, Shaping)}


def test_own_links_ride_on_their_substrate_device_and_name_their_node_end(own_plans):
    nft, bpf = own_plans
    classes = _shaping_classes(nft)
    ends = {(g.ns, e.mac): (d.ifname, e) for g in of(bpf, BpfGuard) for d in g.devices for e in d.ends}
    links = of(bpf, OwnLink)
    assert len(links) == 2 * 3 + 2  # mine on every link end, evil on a-b's two ends
    for link in links:
        device, end = ends[(link.ns, link.mac)]
        assert device == link.lower_ifname and end.own_ifname == link.ifname
        assert end.classid == classes[(link.ns, link.lower_ifname)][link.mac] != 0xFFFF
    kernel_path = [e for _, e in ends.values() if not e.own_ifname]
    assert len(kernel_path) == 2 * 3 and not {e.mac for e in kernel_path} & {link.mac for link in links}


def test_with_own_slices_the_bpf_guard_still_admits_exactly_the_nftables_pairs(own_plans):
    nft, bpf = own_plans
    filters = {f.ns: set(f.pairs) for f in of(nft, IsolationFilter)}
    assert {g.ns: {(e.peer_mac, e.mac) for d in g.devices for e in d.ends} for g in of(bpf, BpfGuard)} == filters


def test_the_bpf_guard_is_bound_to_the_own_links_it_programs(own_plans):
    _, bpf = own_plans
    for guard in of(bpf, BpfGuard):
        own = {(link.ns, link.ifname) for link in of(bpf, OwnLink) if link.ns == guard.ns}
        assert own and own <= set(guard.bound_devices())
    assert not of(bpf, OwnSteering)  # the BPF programs steer: nothing for nftables


def test_under_nftables_each_node_steers_its_own_links_by_their_pair_and_class(own_plans):
    nft, _ = own_plans
    classes = _shaping_classes(nft)
    steering = {s.ns: s for s in of(nft, OwnSteering)}
    links = of(nft, OwnLink)
    assert set(steering) == {link.ns for link in links}
    peers = {pair[1]: pair[0] for f in of(nft, IsolationFilter) for pair in f.pairs}  # near MAC -> far MAC
    for link in links:
        end = next(e for e in steering[link.ns].ends if e.own_ifname == link.ifname)
        assert (end.lower_ifname, end.mac, end.peer_mac) == (link.lower_ifname, link.mac, peers[link.mac])
        assert end.classid == classes[(link.ns, link.lower_ifname)][link.mac]
    assert sum(len(s.ends) for s in steering.values()) == len(links)


def test_the_nftables_steering_pins_the_pair_and_class_and_drops_the_rest(own_plans):
    nft, _ = own_plans
    steering = next(s for s in of(nft, OwnSteering) if s.ns == "vispd.ownring.a")
    text = ownsteer.render(steering, "vispd:ownring")
    for end in steering.ends:
        chain = text.split(f'device "{end.own_ifname}"')[1].split("}")[0]
        assert "policy drop;" in chain
        assert (f"meta priority set 1:{end.classid:x} ether saddr set {end.mac} ether daddr set {end.peer_mac} "
                f'fwd to "{end.lower_ifname}"') in chain
        assert f'{end.peer_mac} . {end.mac} : "{end.own_ifname}"' in text
    assert text.count("priority -600; policy accept;") == len({e.lower_ifname for e in steering.ends})
    assert "delete table netdev vispd_own" in text and 'comment "vispd:ownring"' in text


def test_a_topology_without_own_slices_plans_no_steering(plans):
    nft, bpf = plans
    assert not of(nft, OwnSteering) and not of(bpf, OwnSteering)
    assert not any(e.own_ifname for g in of(bpf, BpfGuard) for d in g.devices for e in d.ends)
