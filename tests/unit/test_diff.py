"""diff(observed, desired): what changes, what is left alone, and in which order."""
from __future__ import annotations

import dataclasses
import gc


from routing_oracle import route_toward, routed_addresses
from unit_helpers import edited_abilene
from compiler.diff import diff
from compiler.resources import Address, Macvlan, Neighbour, Netns, Route, Veth
from compiler.planner import compile_plan

T = "vispd.abilene."


def summary(steps):
    return [(s.action, s.resource.KIND, s.resource.key) for s in steps]


def test_plan_against_itself_is_empty(abilene_plan):
    assert diff(abilene_plan.resources, abilene_plan.resources) == []
    # Also when the kernel reports objects in another order.
    assert diff(list(reversed(abilene_plan.resources)), abilene_plan.resources) == []


def test_fresh_machine_creates_everything_shallowest_phase_first(abilene_plan):
    steps = diff([], abilene_plan.resources)
    assert {s.action for s in steps} == {"create"}
    assert len(steps) == len(abilene_plan.resources)
    phases = [s.resource.PHASE for s in steps]
    assert phases == sorted(phases)
    assert steps[0].resource.KIND == "netns" and steps[-1].resource.KIND == "route"


def test_link_cost_change_updates_only_routes(abilene_plan):
    changed = compile_plan(edited_abilene("denver],           bandwidth: 1G, cost: 16,",
                                          "denver],           bandwidth: 1G, cost: 60,"))
    steps = diff(abilene_plan.resources, changed.resources)
    assert steps
    assert {s.resource.KIND for s in steps} == {"route"}  # updated, or re-cut into other prefixes
    before, after = (route_toward(plan.resources, f"{T}seattle.plb", "198.18.0.5")  # toward houston
                     for plan in (abilene_plan, changed))
    assert (before.ifname, after.ifname) == ("v-dnvr", "v-snva")  # now via Los Angeles
    # The research slice does not use seattle–denver: none of its routes move.
    assert not [s for s in steps if s.resource.ns.endswith(".research")]


def test_removing_a_slice_deletes_only_its_namespaces(abilene_plan):
    text_start = "  # A research vISP"
    without = compile_plan(edited_abilene(
        text_start + " on the central and eastern PoPs.\n  - name: research\n"
        "    nodes: [denver, kansas-city, houston, chicago, indianapolis, atlanta, washington, new-york]\n"
        "    links: all\n    bandwidth: 200M\n    datapath: kernel\n", ""))
    steps = diff(abilene_plan.resources, without.resources)
    deletes = [s for s in steps if s.action == "delete"]
    assert sorted(s.resource.ns for s in deletes) == sorted(
        f"{T}{n}.research" for n in ("denver", "kansas-city", "houston", "chicago", "indianapolis",
                                     "atlanta", "washington", "new-york"))
    assert all(isinstance(s.resource, Netns) for s in deletes)
    # What remains: the shared substrate devices lose the research class and MAC pairs.
    rest = {(s.action, s.resource.KIND) for s in steps if s.action != "delete"}
    assert rest == {("update", "shaping"), ("update", "filter")}
    shaping = [s for s in steps if s.resource.KIND == "shaping"]
    assert len(shaping) == 18  # both ends of research's 9 links
    assert all([c.label for c in s.resource.classes] == ["plb"] for s in shaping)


def test_changed_macvlan_mac_recreates_the_device_and_what_lives_on_it(abilene_plan):
    ns, ifname = f"{T}seattle.plb", "v-dnvr"
    target = next(r for r in abilene_plan.resources if isinstance(r, Macvlan) and (r.ns, r.ifname) == (ns, ifname))
    observed = [dataclasses.replace(r, mac="02:00:00:00:00:01") if r is target else r
                for r in abilene_plan.resources]
    steps = diff(observed, abilene_plan.resources)
    on_device = [r for r in abilene_plan.resources
                 if r.ns == ns and getattr(r, "ifname", None) == ifname and not isinstance(r, Macvlan)]
    assert {type(r) for r in on_device} == {Address, Neighbour, Route}
    assert summary(steps) == [("delete", "macvlan", target.key), ("create", "macvlan", target.key)] + [
        ("create", r.KIND, r.key) for r in sorted(on_device, key=lambda r: (r.PHASE, r.key))]
    # Seattle reaches 8 other loopbacks and New York's TAP subnet (a /30) through denver.
    assert len(routed_addresses([r for r in on_device if isinstance(r, Route)])) == 8 + 4


def test_recreated_veth_takes_its_macvlans_and_shaping_with_it(abilene_plan):
    target = next(r for r in abilene_plan.resources if isinstance(r, Veth)
                  and (r.ns, r.ifname) == (f"{T}denver", "to-sttl"))
    observed = [dataclasses.replace(r, mtu=9000) if r is target else r for r in abilene_plan.resources]
    steps = diff(observed, abilene_plan.resources)
    deletes = [s for s in steps if s.action == "delete"]
    assert summary(deletes) == [("delete", "veth", target.key)]  # its macvlans die with it
    created = {(s.resource.KIND, s.resource.ns) for s in steps if s.action == "create"}
    assert ("macvlan", f"{T}denver.plb") in created and ("macvlan", f"{T}seattle.plb") in created
    assert ("shaping", f"{T}denver") in created and ("shaping", f"{T}seattle") in created
    updated = {(s.resource.KIND, s.resource.ns) for s in steps if s.action == "update"}
    assert updated == {("filter", f"{T}denver"), ("filter", f"{T}seattle")}  # hooks re-bound


def test_deletions_deepest_phase_first_then_creations_shallowest_first(abilene_plan):
    keep = abilene_plan.resources
    mv, other = [r for r in keep if isinstance(r, Macvlan) and r.ns == f"{T}atlanta.plb"][:2]
    stray_route = Route(node="atlanta", ns=f"{T}atlanta.plb", dst="198.18.3.0/24",
                        gateway="198.18.0.40", ifname=other.ifname)
    stray_address = Address(node="atlanta", ns=f"{T}atlanta.plb", ifname="lo", cidr="198.18.3.1/32")
    stray_ns = Netns(node="atlanta", ns=f"{T}atlanta.old", role="sliver", slice="old")
    observed = [dataclasses.replace(r, mac="02:00:00:00:00:02") if r is mv else r for r in keep]
    observed += [stray_route, stray_address, stray_ns]
    steps = diff(observed, keep)
    # A route on the recreated macvlan is not deleted on its own: it goes with the device.
    observed.append(dataclasses.replace(stray_route, dst="198.18.3.128/25", ifname=mv.ifname))
    assert diff(observed, keep) == steps
    actions = [s.action for s in steps]
    assert actions == sorted(actions, key=lambda a: a != "delete")  # all deletes come first
    deletes = [s.resource for s in steps if s.action == "delete"]
    assert [r.PHASE for r in deletes] == sorted((r.PHASE for r in deletes), reverse=True)
    assert [r.KIND for r in deletes] == ["route", "address", "macvlan", "netns"]
    creates = [s.resource.PHASE for s in steps if s.action != "delete"]
    assert creates == sorted(creates) and creates


def test_everything_gone_deletes_namespaces_only(abilene_plan):
    steps = diff(abilene_plan.resources, [])
    assert {s.action for s in steps} == {"delete"}
    assert all(isinstance(s.resource, Netns) for s in steps)
    assert len(steps) == 30


def test_a_cached_key_is_not_part_of_what_a_resource_is(abilene_plan):
    """Keys are computed once and kept in a slot: equality, hash, digest, repr and JSON ignore
    whether that happened, and a changed copy computes its own."""
    for resource in abilene_plan.resources[::7]:
        fresh = dataclasses.replace(resource)
        assert fresh._key is None and fresh.key == resource.key and fresh._key is not None
        untouched = dataclasses.replace(resource)
        assert untouched == fresh and hash(untouched) == hash(fresh) and untouched.digest() == fresh.digest()
        assert repr(untouched) == repr(fresh) and untouched.to_json() == fresh.to_json()
        assert "_key" not in fresh.to_json() and not hasattr(fresh, "__dict__")
    route = next(r for r in abilene_plan.resources if isinstance(r, Route))
    assert dataclasses.replace(route, dst="10.9.9.0/24").key == ("route", route.ns, "10.9.9.0/24")


def test_the_diff_leaves_the_cycle_collector_as_it_found_it(abilene_plan):
    assert gc.isenabled()
    diff([], abilene_plan.resources)
    assert gc.isenabled()
    gc.disable()
    try:
        diff([], abilene_plan.resources)
        assert not gc.isenabled()
    finally:
        gc.enable()
